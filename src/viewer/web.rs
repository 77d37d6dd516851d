//! The viewer in a browser's page (wasm32, WebGPU): the same plugins as `clamp view`, training
//! on the page's GPU through the renderer's own device.
//!
//! The page (`web/index.html`) has a canvas and a status line. [`start`] checks for WebGPU,
//! fetches the bundled Fashion-MNIST test split from the page's own folder, and starts the app;
//! anything that goes wrong is written on the page, not only to the console. A page has one
//! thread and cannot wait for the GPU: training is a task of the browser's
//! ([`crate::train::session`]) whose read-backs are awaited, one step in flight.
//!
//! What the page has done is published as `window.clampStats` (steps, first and last loss,
//! frames per second), for `scripts/test-web.sh` and for anyone curious in the console.

use std::sync::Arc;

use bevy::prelude::*;
use bevy::window::WindowResolution;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;

use super::training::{History, TrainingPlugin, TrainingStatus};
use super::{LOG_FILTER, TITLE, ViewerOptions, add_viewer_plugins, palette};
use crate::config::{BackendChoice, TrainConfig};
use crate::data::{FASHION_MNIST_CLASSES, idx_pair_from_bytes};
use crate::train::TrainingData;

/// The dataset's files, next to the page.
const IMAGES_FILE: &str = "t10k-images-idx3-ubyte.gz";
const LABELS_FILE: &str = "t10k-labels-idx1-ubyte.gz";

/// What the page shows when the browser has no WebGPU.
const NO_WEBGPU: &str = "This page trains on your GPU through WebGPU, which this browser does \
    not offer. It runs in Chrome or Edge 113 and later (on Linux: chrome://flags, \"Unsafe \
    WebGPU\"), Safari 26, and Firefox 141 on Windows. The desktop app (`clamp view`) runs \
    anywhere.";

/// The page's entry point.
pub fn start() {
    std::panic::set_hook(Box::new(|info| {
        show_status(&format!("clamp stopped: {info}"), true);
        console_error_panic_hook::hook(info);
    }));
    wasm_bindgen_futures::spawn_local(async {
        if let Err(message) = launch().await {
            show_status(&message, true);
        }
    });
}

async fn launch() -> Result<(), String> {
    let window = web_sys::window().ok_or("no window")?;
    let gpu = js_sys::Reflect::get(&window.navigator(), &JsValue::from_str("gpu"))
        .unwrap_or(JsValue::UNDEFINED);
    if gpu.is_undefined() || gpu.is_null() {
        return Err(NO_WEBGPU.into());
    }
    // `navigator.gpu` can be there with no adapter behind it (WebGPU switched off, a blocked
    // driver): ask for one before downloading anything.
    let request = js_sys::Reflect::get(&gpu, &JsValue::from_str("requestAdapter"))
        .ok()
        .and_then(|f| f.dyn_into::<js_sys::Function>().ok())
        .and_then(|f| f.call0(&gpu).ok())
        .and_then(|p| p.dyn_into::<js_sys::Promise>().ok());
    let adapter = match request {
        Some(promise) => wasm_bindgen_futures::JsFuture::from(promise)
            .await
            .unwrap_or(JsValue::NULL),
        None => JsValue::NULL,
    };
    if adapter.is_null() || adapter.is_undefined() {
        return Err(format!("WebGPU gives this page no adapter. {NO_WEBGPU}"));
    }
    let config = page_config()?;
    show_status("fetching the Fashion-MNIST test split (4.4 MB)", false);
    let images = fetch_bytes(IMAGES_FILE).await?;
    let labels = fetch_bytes(LABELS_FILE).await?;
    let set = idx_pair_from_bytes(
        IMAGES_FILE,
        images,
        LABELS_FILE,
        labels,
        &FASHION_MNIST_CLASSES,
    )
    .map_err(|e| e.to_string())?;
    let description = format!(
        "Fashion-MNIST test split from this page's folder ({} images): training and evaluating \
         on the same images",
        thousands(set.len)
    );
    let data = TrainingData::of_images(set.clone(), set, description, &config)?;
    show_status("starting WebGPU", false);
    run_app(config, Arc::new(data))
}

/// The desktop viewer's run (`clamp view`), on the WGPU backend, with the settings of the
/// page's address (`?radius_scale=1.2&batch=64`: any key of a config file).
fn page_config() -> Result<TrainConfig, String> {
    let base = TrainConfig {
        backend: BackendChoice::Wgpu,
        ..TrainConfig::viewer_default()
    };
    let query = web_sys::window()
        .and_then(|w| w.location().search().ok())
        .unwrap_or_default();
    let decode = |text: &str| {
        js_sys::decode_uri_component(&text.replace('+', " "))
            .map(String::from)
            .unwrap_or_else(|_| text.to_string())
    };
    let settings: Vec<(String, String)> = query
        .trim_start_matches('?')
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, "true"));
            (decode(key), decode(value))
        })
        .collect();
    let config = base
        .with_settings(settings.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .map_err(|e| format!("the page's address: {e}"))?;
    if config.backend != BackendChoice::Wgpu {
        return Err(
            "the page's address: the page trains on WebGPU only (backend=wgpu); the \
                    desktop app (`clamp view`) also trains on the CPU"
                .into(),
        );
    }
    Ok(config)
}

/// 10000 as "10,000".
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (k, c) in digits.chars().enumerate() {
        if k > 0 && (digits.len() - k) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn run_app(config: TrainConfig, data: Arc<TrainingData>) -> Result<(), String> {
    let training = TrainingPlugin::start_on_renderer_device_with_data(
        &config,
        data,
        "WebGPU, shared with the renderer",
        false,
    )?;
    let options = ViewerOptions::new(config);
    let mut app = App::new();
    app.insert_resource(ClearColor(palette::BACKGROUND))
        .add_plugins(
            DefaultPlugins
                .set(WindowPlugin {
                    primary_window: Some(Window {
                        title: TITLE.into(),
                        canvas: Some("#clamp".into()),
                        fit_canvas_to_parent: true,
                        prevent_default_event_handling: true,
                        resolution: WindowResolution::new(1280, 720),
                        ..default()
                    }),
                    ..default()
                })
                .set(bevy::log::LogPlugin {
                    filter: LOG_FILTER.into(),
                    ..default()
                }),
        );
    add_viewer_plugins(&mut app, &options, training, 1.0, false);
    app.init_resource::<PageStats>()
        .add_systems(Last, publish_stats);
    show_status("", false);
    app.run();
    Ok(())
}

/// Frames counted for the page's frame rate.
#[derive(Resource, Default)]
struct PageStats {
    frames: u64,
    /// Seconds since the first frame.
    elapsed: f64,
    /// Seconds since the statistics were last written.
    since_written: f64,
}

/// Writes `window.clampStats` twice a second.
fn publish_stats(
    time: Res<Time<bevy::time::Real>>,
    status: Res<TrainingStatus>,
    history: Res<History>,
    mut stats: ResMut<PageStats>,
) {
    stats.frames += 1;
    stats.elapsed += time.delta_secs_f64();
    stats.since_written += time.delta_secs_f64();
    if stats.since_written < 0.5 {
        return;
    }
    stats.since_written = 0.0;
    let number = |x: f64| {
        if x.is_finite() {
            JsValue::from_f64(x)
        } else {
            JsValue::NULL
        }
    };
    let record = js_sys::Object::new();
    let fields = [
        ("steps", JsValue::from_f64(status.step as f64)),
        (
            "loss_first",
            history.loss.first().copied().map_or(JsValue::NULL, number),
        ),
        (
            "loss_last",
            history.loss.last().copied().map_or(JsValue::NULL, number),
        ),
        ("fps", number(stats.frames as f64 / stats.elapsed.max(1e-9))),
        ("frames", JsValue::from_f64(stats.frames as f64)),
        ("steps_per_sec", number(status.steps_per_sec)),
        (
            "purity",
            history
                .pictures
                .last()
                .map_or(JsValue::NULL, |p| number(p.purity)),
        ),
        (
            "error",
            status
                .error
                .as_deref()
                .map_or(JsValue::NULL, JsValue::from_str),
        ),
    ];
    for (key, value) in fields {
        let _ = js_sys::Reflect::set(&record, &JsValue::from_str(key), &value);
    }
    if let Some(window) = web_sys::window() {
        let _ = js_sys::Reflect::set(&window, &JsValue::from_str("clampStats"), &record);
    }
}

/// The bytes at `url`, relative to the page.
async fn fetch_bytes(url: &str) -> Result<Vec<u8>, String> {
    let window = web_sys::window().ok_or("no window")?;
    let failed = |what: &str, error: JsValue| format!("{url}: {what} ({error:?})");
    let response = wasm_bindgen_futures::JsFuture::from(window.fetch_with_str(url))
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

/// Writes `message` in the page's status line (empty: hides it).
fn show_status(message: &str, error: bool) {
    let Some(element) = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.get_element_by_id("status"))
    else {
        return;
    };
    element.set_text_content(Some(message));
    let class = match (message.is_empty(), error) {
        (true, _) => "hidden",
        (false, true) => "error",
        (false, false) => "",
    };
    element.set_class_name(class);
}
