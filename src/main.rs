#[cfg(not(target_arch = "wasm32"))]
fn main() {
    quiet_wayland_probe();
    let words: Vec<String> = std::env::args().skip(1).collect();
    std::process::exit(clamp::cli::run(&words));
}

/// In a browser's page (`scripts/build-web.sh`): the viewer. (In the CPU page's training
/// worker the module is the same, and `worker.js` calls the two exports below instead.)
#[cfg(target_arch = "wasm32")]
fn main() {
    if !clamp::viewer::worker::in_worker() {
        clamp::viewer::web::start();
    }
}

/// The training worker's start (`web/worker.js`).
#[cfg(target_arch = "wasm32")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn worker_start(start: &[u8]) {
    clamp::viewer::worker::worker_start(start);
}

/// A command for the training worker (`web/worker.js`).
#[cfg(target_arch = "wasm32")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn worker_command(bytes: &[u8]) {
    clamp::viewer::worker::worker_command(bytes);
}

/// Vulkan loaders probe Wayland even for headless compute, and libwayland prints an "error:" line
/// when XDG_RUNTIME_DIR is unset (servers, CI, cron). Give it an empty private directory instead,
/// so the log only shows what matters.
#[cfg(not(target_arch = "wasm32"))]
fn quiet_wayland_probe() {
    if std::env::var_os("XDG_RUNTIME_DIR").is_some() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("clamp-runtime-{}", std::process::id()));
    if std::fs::create_dir_all(&dir).is_ok() {
        // SAFETY: called first thing in main, before any other thread exists.
        unsafe { std::env::set_var("XDG_RUNTIME_DIR", &dir) };
    }
}
