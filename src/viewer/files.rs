//! The platform's seam: where the viewer's files go (under the working directory on the
//! desktop, written whole and atomically; as a download from a browser's page, which has no
//! directory of its own), the clipboard and the page's address (a page's "copy link"), and a
//! page's fetches. Training and the panels use the platform through this module only.

use std::path::Path;

/// Saves `bytes` as `path` and says where they went ("saved screenshots/a.png",
/// "downloaded a.png"). On a page only the file's name is kept.
pub fn save(path: &Path, bytes: &[u8], mime: &str) -> Result<String, String> {
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = mime;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        crate::atomic::write_atomically(path, bytes)?;
        Ok(format!("saved {}", path.display()))
    }
    #[cfg(target_arch = "wasm32")]
    {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "clamp".into());
        download(&name, bytes, mime).map_err(|e| format!("cannot download {name}: {e:?}"))?;
        Ok(format!("downloaded {name}"))
    }
}

/// Hands `bytes` to the browser as a file download named `name`.
#[cfg(target_arch = "wasm32")]
fn download(name: &str, bytes: &[u8], mime: &str) -> Result<(), wasm_bindgen::JsValue> {
    use wasm_bindgen::JsCast;
    let parts = js_sys::Array::of1(&js_sys::Uint8Array::from(bytes).into());
    let options = web_sys::BlobPropertyBag::new();
    options.set_type(mime);
    let blob = web_sys::Blob::new_with_u8_array_sequence_and_options(&parts, &options)?;
    let url = web_sys::Url::create_object_url_with_blob(&blob)?;
    let document = web_sys::window()
        .and_then(|w| w.document())
        .ok_or("the page has no document")?;
    let link: web_sys::HtmlAnchorElement = document.create_element("a")?.dyn_into()?;
    link.set_href(&url);
    link.set_download(name);
    link.click();
    web_sys::Url::revoke_object_url(&url)?;
    Ok(())
}

/// Puts `text` in the clipboard (a page's "copy link"); the page also keeps it as
/// `window.clampLink`, where a browser refuses the clipboard (no user gesture, no permission).
#[cfg(target_arch = "wasm32")]
pub fn copy_to_clipboard(text: &str) {
    use wasm_bindgen::JsValue;
    let Some(window) = web_sys::window() else {
        return;
    };
    let _ = js_sys::Reflect::set(
        &window,
        &JsValue::from_str("clampLink"),
        &JsValue::from_str(text),
    );
    // The promise settles later; a refusal only leaves the link in `window.clampLink`.
    let _ = window.navigator().clipboard().write_text(text);
}

/// The page build this is (WebGPU or CPU).
#[cfg(all(target_arch = "wasm32", feature = "web-wgpu"))]
pub const PAGE_PATH: crate::page::PagePath = crate::page::PagePath::Gpu;
#[cfg(all(target_arch = "wasm32", not(feature = "web-wgpu")))]
pub const PAGE_PATH: crate::page::PagePath = crate::page::PagePath::Cpu;

/// The page's address with `config` and `comparison`'s runs in it (a `compare=` a run beside
/// the first), for a class or a colleague.
#[cfg(target_arch = "wasm32")]
pub fn settings_link(
    config: &crate::config::TrainConfig,
    comparison: Option<&crate::compare::Comparison>,
) -> String {
    let location = web_sys::window().map(|w| w.location());
    let base = location
        .and_then(|l| Some(format!("{}{}", l.origin().ok()?, l.pathname().ok()?)))
        .unwrap_or_default();
    let compare: String = comparison
        .map(|c| c.specs())
        .unwrap_or_default()
        .iter()
        .map(|spec| format!("&compare={}", crate::page::encode_component(spec)))
        .collect();
    format!(
        "{base}{}{compare}",
        crate::page::settings_query(config, PAGE_PATH)
    )
}

/// The bytes at `url` (relative to the page, or to the worker's script), or what went wrong.
#[cfg(target_arch = "wasm32")]
pub async fn fetch_bytes(url: &str) -> Result<Vec<u8>, String> {
    let failed = |what: &str, error: JsValue| format!("{url}: {what} ({error:?})");
    use wasm_bindgen::{JsCast, JsValue};
    let global = js_sys::global();
    let request = match global.dyn_ref::<web_sys::Window>() {
        Some(window) => window.fetch_with_str(url),
        None => global
            .unchecked_ref::<web_sys::WorkerGlobalScope>()
            .fetch_with_str(url),
    };
    let response = wasm_bindgen_futures::JsFuture::from(request)
        .await
        .map_err(|e| failed("could not be fetched", e))?;
    let response: web_sys::Response = response
        .dyn_into()
        .map_err(|e| failed("is not a response", e))?;
    if !response.ok() {
        return Err(format!(
            "{url}: the server answered {} {} (build the page with scripts/build-web.sh, \
             which copies the dataset next to it)",
            response.status(),
            response.status_text()
        ));
    }
    let buffer = response
        .array_buffer()
        .map_err(|e| failed("could not be read", e))?;
    let buffer = wasm_bindgen_futures::JsFuture::from(buffer)
        .await
        .map_err(|e| failed("could not be read", e))?;
    Ok(js_sys::Uint8Array::new(&buffer).to_vec())
}
