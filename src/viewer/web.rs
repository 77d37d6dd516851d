//! The viewer in a browser's page: the same plugins as `clamp view`, in one of two builds the
//! page's loader (`web/index.html`) chooses between at load time:
//!
//! * `web-wgpu`: WebGPU draws, and training runs on the page's GPU through the renderer's own
//!   device, its read-backs awaited, one step in flight;
//! * `web-cpu`: WebGL2 draws (every current browser has it), and training runs on burn's CPU
//!   backend compiled to WebAssembly with SIMD128, as a task of the page's between frames.
//!
//! [`start`] reads the address ([`crate::page::parse_address`]), fetches the bundled
//! Fashion-MNIST test split from the page's own folder, and starts the app; anything that goes
//! wrong is written on the page, not only to the console. What the page has done is published
//! as `window.clampStats` (path, steps, first and last loss and the means of five at either end,
//! frames and steps per second, class purity, the training's error), for `scripts/test-web.sh` and for anyone curious in the console.

use std::sync::Arc;

use bevy::prelude::*;
use bevy::window::WindowResolution;
use wasm_bindgen::prelude::*;

use super::files::fetch_bytes;
use super::pacing::next_step_delay;
use super::runs::{Runs, RunsPlugin};
use super::training::{SessionElsewhere, StartElsewhere, start_sessions_elsewhere};
use super::{LOG_FILTER, TITLE, ViewerOptions, add_viewer_plugins, palette};
use crate::backend::{BackendKind, ResolvedBackend};
use crate::config::TrainConfig;
use crate::data::{FASHION_MNIST_CLASSES, idx_pair_from_bytes};
use crate::page::{PagePath, parse_address};
use crate::train::TrainingData;

/// Whether the CPU page trains in a worker (the address's `worker`, true unless it says so).
pub static TRAIN_IN_WORKER: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(true);

/// The path this build runs.
pub use super::files::PAGE_PATH as PATH;

/// The dataset's files, next to the page.
pub const IMAGES_FILE: &str = "t10k-images-idx3-ubyte.gz";
pub const LABELS_FILE: &str = "t10k-labels-idx1-ubyte.gz";

/// What the WebGPU build says when the browser has no WebGPU (the loader only opens it
/// there when asked to, with `?backend=wgpu`).
#[cfg(feature = "web-wgpu")]
const NO_WEBGPU: &str = "This build of the page trains on your GPU through WebGPU, which this \
    browser does not offer (Chrome or Edge 113 and later, Safari 26, Firefox 141 on Windows \
    have it). Open the page without ?backend=wgpu: it then trains on the CPU and draws with \
    WebGL2, which every current browser has.";

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
    #[cfg(feature = "web-wgpu")]
    require_webgpu(&window).await?;
    let query = window.location().search().unwrap_or_default();
    let address = parse_address(&query, PATH).map_err(|e| e.to_string())?;
    let config = address.config;
    let compare = address.compare;
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
        "Fashion-MNIST test split from this page's folder ({} images): training on all of \
         them, probes on disjoint subsets",
        thousands(set.len)
    );
    let data = TrainingData::of_images(set.clone(), set, description, &config)?;
    show_status("starting", false);
    let software = loader_field(&window, "software").as_bool().unwrap_or(false);
    run_app(
        config,
        compare,
        Arc::new(data),
        backend(&loader_reason(&window), address.worker),
        software,
    )
}

/// A field of what the loader found (`window.clampLoader`: `reason`, `renderer`, `software`).
fn loader_field(window: &web_sys::Window, field: &str) -> JsValue {
    js_sys::Reflect::get(window, &JsValue::from_str("clampLoader"))
        .and_then(|loader| js_sys::Reflect::get(&loader, &JsValue::from_str(field)))
        .unwrap_or(JsValue::UNDEFINED)
}

/// Why the loader chose this build, and what draws, for the panel.
fn loader_reason(window: &web_sys::Window) -> String {
    let reason = loader_field(window, "reason")
        .as_string()
        .unwrap_or_else(|| "opened directly".into());
    match loader_field(window, "renderer").as_string() {
        Some(renderer) => format!("{reason}; drawing on {renderer}"),
        None => reason,
    }
}

/// The training backend of this build, described for the panel with the loader's reason.
fn backend(reason: &str, worker: bool) -> ResolvedBackend {
    TRAIN_IN_WORKER.store(worker, std::sync::atomic::Ordering::Relaxed);
    let (kind, what) = match (PATH, worker) {
        (PagePath::Gpu, _) => (BackendKind::Wgpu, "WebGPU, shared with the renderer"),
        (PagePath::Cpu, true) => (
            BackendKind::Cpu,
            "the CPU (WebAssembly SIMD, in a worker), drawn with WebGL2",
        ),
        (PagePath::Cpu, false) => (
            BackendKind::Cpu,
            "the CPU (WebAssembly SIMD, on the page's thread), drawn with WebGL2",
        ),
    };
    ResolvedBackend {
        kind,
        description: format!("{what}: {reason}"),
        warning: None,
        wgpu_device: None,
        // A browser's adapter, software or not, is not told apart here; the page's model
        // (the viewer's MLP) sums over its batch's rows only.
        software_adapter: false,
        time_both: false,
    }
}

/// `navigator.gpu` with an adapter behind it, or the page's message saying what is missing.
#[cfg(feature = "web-wgpu")]
async fn require_webgpu(window: &web_sys::Window) -> Result<(), String> {
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
    Ok(())
}

/// The page's address with `config`'s settings and the comparison running (what "Copy link"
/// copies).
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

/// Runs the app. On a `software` rasterizer (no GPU: SwiftShader, llvmpipe) the spheres are
/// drawn at half resolution, lowered further while frames run long, as `clamp view` does there.
fn run_app(
    config: TrainConfig,
    compare: Option<crate::compare::Comparison>,
    data: Arc<TrainingData>,
    backend: ResolvedBackend,
    software: bool,
) -> Result<(), String> {
    // Beside a software rasterizer the GPU process needs a core too: training pauses after
    // each step, 10 ms to begin with, then as `share_cores` finds (on a GPU's page nothing
    // waits).
    let sharing = software && PATH == PagePath::Cpu;
    let step_delay =
        std::time::Duration::from_millis(if sharing { START_STEP_DELAY_MS } else { 0 });
    start_sessions_elsewhere(START_IN_WORKER);
    let training = RunsPlugin::start_in_page(&config, data, backend, false, step_delay)?;
    let mut options = ViewerOptions::new(config);
    options.compare = compare;
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
                        // On a software rasterizer one canvas pixel is one pixel, whatever
                        // the screen's density: a HiDPI screen would cost four times as much.
                        resolution: if software {
                            WindowResolution::new(960, 540).with_scale_factor_override(1.0)
                        } else {
                            WindowResolution::new(1280, 720)
                        },
                        ..default()
                    }),
                    ..default()
                })
                .set(bevy::log::LogPlugin {
                    filter: LOG_FILTER.into(),
                    ..default()
                }),
        );
    let render_scale = if software { 0.5 } else { 1.0 };
    add_viewer_plugins(&mut app, &options, training, render_scale, software);
    app.init_resource::<PageStats>()
        .add_systems(Last, publish_stats);
    if sharing {
        app.insert_resource(CoreSharing {
            delay_ms: START_STEP_DELAY_MS,
            ..default()
        })
        .add_systems(Last, share_cores);
    }
    show_status("", false);
    app.run();
    Ok(())
}

const START_STEP_DELAY_MS: u64 = 10;

/// CPU training in a worker of the page's (unless the address says `worker=false`), so the
/// page's thread draws.
const START_IN_WORKER: StartElsewhere = |config, options| {
    if !TRAIN_IN_WORKER.load(std::sync::atomic::Ordering::Relaxed) {
        return None;
    }
    let script = format!("./{}/worker.js", PagePath::Cpu.name());
    Some(
        super::worker::WorkerSession::spawn(config, options, &script, IMAGES_FILE, LABELS_FILE)
            .map(|worker| Box::new(worker) as Box<dyn SessionElsewhere>),
    )
};

/// The last second's frames and steps, and the pause after each step now in force.
#[derive(Resource, Default)]
struct CoreSharing {
    delay_ms: u64,
    seconds: f64,
    frames: u64,
    first_step: usize,
}

/// Once a second, moves the pause after each training step toward the frame rate's aim
/// without starving training (`pacing::next_step_delay`).
fn share_cores(
    time: Res<Time<bevy::time::Real>>,
    runs: Res<Runs>,
    mut sharing: ResMut<CoreSharing>,
) {
    let Some(status) = runs.list.first().map(|run| &run.status) else {
        return;
    };
    sharing.frames += 1;
    sharing.seconds += time.delta_secs_f64();
    if sharing.seconds < 1.0 {
        return;
    }
    let frames_per_sec = sharing.frames as f64 / sharing.seconds;
    let steps_per_sec = status.step.saturating_sub(sharing.first_step) as f64 / sharing.seconds;
    let next = next_step_delay(sharing.delay_ms, frames_per_sec, steps_per_sec);
    let delay =
        crate::train::session::Command::SetStepDelay(std::time::Duration::from_millis(next));
    if next != sharing.delay_ms {
        // Every run pauses as long: they share what drawing leaves.
        for link in runs.list.iter().filter_map(|run| run.link.as_ref()) {
            link.send(delay.clone());
        }
        sharing.delay_ms = next;
    }
    sharing.seconds = 0.0;
    sharing.frames = 0;
    sharing.first_step = status.step;
}

/// Frames counted for the page's frame rate.
#[derive(Resource, Default)]
struct PageStats {
    /// Seconds from the page's navigation to its first training step.
    first_step: Option<f64>,
    frames: u64,
    /// Seconds since the first frame.
    elapsed: f64,
    /// Seconds since the statistics were last written.
    since_written: f64,
}

/// Writes `window.clampStats` twice a second.
fn publish_stats(
    time: Res<Time<bevy::time::Real>>,
    runs: Res<Runs>,
    sharing: Option<Res<CoreSharing>>,
    mut stats: ResMut<PageStats>,
) {
    let Some(first) = runs.list.first() else {
        return;
    };
    let (status, history) = (&first.status, &first.history);
    stats.frames += 1;
    if stats.first_step.is_none() && status.step > 0 {
        // `performance.now()` counts from the navigation.
        stats.first_step = web_sys::window()
            .and_then(|w| w.performance())
            .map(|p| p.now() / 1000.0);
    }
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
        ("path", JsValue::from_str(PATH.name())),
        ("steps", JsValue::from_f64(status.step as f64)),
        (
            "loss_first",
            history.loss.first().copied().map_or(JsValue::NULL, number),
        ),
        (
            "loss_last",
            history.loss.last().copied().map_or(JsValue::NULL, number),
        ),
        // Means over a few steps: one step's loss swings with its batch, so a test that
        // compares single steps passes an optimizer that never moves about half the time.
        (
            "loss_head",
            mean_of(history.loss.iter().take(LOSS_WINDOW)).map_or(JsValue::NULL, number),
        ),
        (
            "loss_tail",
            mean_of(history.loss.iter().rev().take(LOSS_WINDOW)).map_or(JsValue::NULL, number),
        ),
        ("fps", number(stats.frames as f64 / stats.elapsed.max(1e-9))),
        ("frames", JsValue::from_f64(stats.frames as f64)),
        ("steps_per_sec", number(status.steps_per_sec)),
        (
            "first_step_s",
            stats.first_step.map_or(JsValue::NULL, number),
        ),
        (
            "step_delay_ms",
            sharing.map_or(JsValue::NULL, |s| JsValue::from_f64(s.delay_ms as f64)),
        ),
        (
            "probe",
            status.last_probe.as_ref().map_or(JsValue::NULL, |p| {
                let probe = js_sys::Object::new();
                for (key, value) in [
                    ("step", p.step as f64),
                    ("knn", p.knn_acc),
                    ("linear", p.linear_acc),
                    ("seconds", p.seconds),
                ] {
                    let _ = js_sys::Reflect::set(&probe, &key.into(), &number(value));
                }
                probe.into()
            }),
        ),
        (
            "purity",
            history
                .pictures
                .last()
                .map_or(JsValue::NULL, |p| number(p.purity)),
        ),
        (
            "purity_best",
            history
                .pictures
                .iter()
                .map(|p| p.purity)
                .reduce(f64::max)
                .map_or(JsValue::NULL, number),
        ),
        (
            "error",
            runs.list
                .iter()
                .find_map(|run| run.status.error.as_deref())
                .map_or(JsValue::NULL, JsValue::from_str),
        ),
        // Every run's steps (one entry a run side by side).
        (
            "run_steps",
            runs.list
                .iter()
                .map(|run| JsValue::from_f64(run.status.step as f64))
                .collect::<js_sys::Array>()
                .into(),
        ),
    ];
    for (key, value) in fields {
        let _ = js_sys::Reflect::set(&record, &JsValue::from_str(key), &value);
    }
    if let Some(window) = web_sys::window() {
        let _ = js_sys::Reflect::set(&window, &JsValue::from_str("clampStats"), &record);
    }
}

/// How many losses `loss_head` and `loss_tail` average.
const LOSS_WINDOW: usize = 5;

fn mean_of<'a>(values: impl Iterator<Item = &'a f64>) -> Option<f64> {
    let (sum, count) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    (count > 0).then(|| sum / count as f64)
}

/// The bytes at `url` (relative to the page, or absolute), fetched by the page or a worker.
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
