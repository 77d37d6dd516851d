//! The live viewer: a Bevy app of small plugins around the bevy-free core, built around a list
//! of runs.
//!
//! * [`runs`] holds the viewer's unit, the [`Run`](runs::Run): its trainer's link, status, plot
//!   history, live controls, projected scene, timeline and view. [`Runs`](runs::Runs) is one run,
//!   or two to four side by side; every system and panel iterates over them, none special.
//! * [`training`] is a run's link to its [`Session`](crate::train::session::Session): starting
//!   and restarting it, its events folded into status and plots, its snapshots turned into
//!   [`SceneFrame`]s, the controls turned into commands. Nothing else talks to a trainer.
//! * [`physics_mode`] is the other source of frames: plain soft spheres being compressed to
//!   jamming, with the same pair energy, drawn in the first view.
//! * [`timeline`] keeps a run's snapshots in bounded memory and replays them on the scrubber.
//! * [`scene`] projects each frame to 3-D (PCA aligned by Procrustes) and eases positions.
//! * [`spheres`] draws each run's spheres in one mesh of camera-facing quads with the impostor
//!   shader `shaders/spheres.wgsl`, and [`lines`] its contact lines and the unit-sphere
//!   wireframe, each run into its cell of the one picture; [`picture`] shows the picture in the
//!   panel's central area.
//! * [`camera`] orbits, and lays the runs out in cells of the picture (one camera draws them
//!   all); [`panel`] is the egui side panel, plots, legend and hover card; [`picking`] finds the sphere under the pointer; [`pacing`] adapts the
//!   resolution to the frame rate; [`capture`] takes screenshots, records videos and measures
//!   frame times.
//! * [`offscreen`] draws the same scene into an image with no window; [`record`] (`clamp
//!   record`) trains and renders a video with it.
//! * [`preset`] reads and writes presets and lessons; [`ranges`] holds every slider's range.
//! * [`files`] is the platform's seam: files saved or downloaded, the clipboard, the page's
//!   address and fetches; [`web`] and [`worker`] are the page's platform behind it.
//!
//! Every plugin only reads resources and sends commands, so the render loop never waits on the
//! training threads.

pub mod camera;
pub mod capture;
pub mod files;
pub mod follow;
#[cfg(feature = "gpu")]
pub mod gpu;
pub mod lines;
// Drawing without a window (`clamp record`): the desktop's.
#[cfg(not(target_arch = "wasm32"))]
pub mod offscreen;
pub mod pacing;
pub mod palette;
pub mod panel;
pub mod physics_mode;
pub mod picking;
pub mod picture;
pub mod preset;
pub mod ranges;
#[cfg(not(target_arch = "wasm32"))]
pub mod record;
pub mod runs;
pub mod scene;
pub mod spheres;
pub mod timeline;
pub mod training;
#[cfg(target_arch = "wasm32")]
pub mod web;
#[cfg(target_arch = "wasm32")]
pub mod worker;

use std::path::PathBuf;

use bevy::prelude::*;
use bevy::window::{PresentMode, WindowResolution};

use crate::config::TrainConfig;
use crate::train::session::TrainingPriority;

/// The window's (and the page's) title.
pub const TITLE: &str = "clamp: contrastive learning as manifold packing";

/// What the log shows unless `CLAMP_LOG` says otherwise: clamp's own lines and others' warnings.
pub const LOG_FILTER: &str = "warn,clamp=info,wgpu=error,naga=warn";

pub use scene::{SceneFrame, ViewerMode};

/// Command-line choices for `clamp view`.
#[derive(Clone, Debug)]
pub struct ViewerOptions {
    pub config: TrainConfig,
    /// Render this many frames, then exit (after the screenshot, if any).
    pub frames: Option<u64>,
    /// Or run this many seconds from the first picture, then exit.
    pub seconds: Option<f64>,
    /// Or exit once training has taken this many steps.
    pub until_step: Option<usize>,
    pub screenshot: Option<PathBuf>,
    /// Print frame-time statistics as JSON on exit.
    pub stats: bool,
    /// Start with the teaching layout (advanced controls hidden).
    pub teaching: bool,
    pub mode: ViewerMode,
    /// Window size in logical pixels (None: 960x540 on a software adapter, else 1280x720).
    pub window: Option<(u32, u32)>,
    /// Training threads (None: leave one core to the renderer).
    pub train_threads: Option<usize>,
    /// How training competes with drawing for cores (None: only on cycles drawing leaves on
    /// a software rasterizer, like any thread on a GPU).
    pub train_priority: Option<TrainingPriority>,
    /// View settings from a preset.
    pub view: Option<preset::ViewPreset>,
    /// Open with training paused (Play starts it).
    pub paused: bool,
    /// The lesson the panel shows (from `--config` with a `[lesson]` table).
    pub lesson: Option<preset::Lesson>,
    /// Rendered pixels per window pixel (None: 0.5 on a software adapter, else 1).
    pub render_scale: Option<f32>,
    /// Lower the resolution when frames run long (None: on a software adapter).
    pub adaptive_resolution: Option<bool>,
    /// Runs beside the first (one to three), differing in the named settings.
    pub compare: Option<crate::compare::Comparison>,
    /// Draw these runs, trained elsewhere, from their folders instead of training (one to
    /// four).
    pub follow: Vec<PathBuf>,
    /// Print the statistics line every this many seconds too (with `stats`).
    pub stats_every: Option<f64>,
    /// Drawn radii over true ones (None: 1).
    pub sphere_size: Option<f32>,
}

impl ViewerOptions {
    pub fn new(config: TrainConfig) -> Self {
        Self {
            config,
            frames: None,
            seconds: None,
            until_step: None,
            screenshot: None,
            stats: false,
            teaching: false,
            mode: ViewerMode::Training,
            window: None,
            train_threads: None,
            train_priority: None,
            view: None,
            paused: false,
            lesson: None,
            render_scale: None,
            adaptive_resolution: None,
            compare: None,
            follow: Vec::new(),
            stats_every: None,
            sphere_size: None,
        }
    }
}

/// Training threads that leave one core to rendering and the UI.
pub fn default_train_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get().saturating_sub(1).max(1))
        .unwrap_or(1)
}

/// Why no window can open on this Linux session, if that can be told before trying: no
/// `DISPLAY` (windows open through X11; on a Wayland desktop XWayland provides it), or one
/// naming a local X server whose socket is not there. (A remote `host:N` display is left to
/// the windowing library.)
pub fn display_problem(
    display: Option<&str>,
    exists: impl Fn(&std::path::Path) -> bool,
) -> Option<String> {
    let Some(display) = display.filter(|d| !d.is_empty()) else {
        return Some(
            "there is no display to open a window on (DISPLAY is unset; windows open through \
             X11, which a Wayland desktop provides as XWayland)"
                .into(),
        );
    };
    let (host, rest) = display.rsplit_once(':')?;
    if !(host.is_empty() || host == "unix") {
        return None;
    }
    let number = rest.split('.').next().unwrap_or("");
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return Some(format!("DISPLAY={display} is not a display name like :0"));
    }
    let socket = std::path::PathBuf::from(format!("/tmp/.X11-unix/X{number}"));
    if exists(&socket) {
        None
    } else {
        Some(format!(
            "DISPLAY={display}, but no X server listens there ({} is missing)",
            socket.display()
        ))
    }
}

/// Why this build cannot draw on `adapter`, the one wgpu would choose, if it cannot: no adapter
/// at all, or on Linux one that is not Vulkan (the renderer's shaders need Vulkan there; wgpu's
/// fallback to GL has no present modes for the window and cannot compile them).
pub fn renderer_problem(adapter: Option<&crate::backend::AdapterSummary>) -> Option<String> {
    const INSTALL: &str = "install a Vulkan driver (Debian/Ubuntu: `sudo apt install \
                           mesa-vulkan-drivers`, which also draws without a GPU)";
    match adapter {
        None => Some(format!(
            "no graphics adapter found (wgpu sees no Vulkan or GL device): {INSTALL}"
        )),
        Some(a) if cfg!(target_os = "linux") && a.backend != "Vulkan" => Some(format!(
            "no Vulkan driver: the only adapter is {} on {}, which the renderer cannot use: \
             {INSTALL}",
            a.name, a.backend
        )),
        Some(_) => None,
    }
}

/// Lets the allocator keep and reuse what training frees instead of returning it to the
/// system at every step. Each step allocates and frees hundreds of megabytes; given back,
/// every unmap interrupts the render threads to flush their address translations (measured:
/// about 3,000 such interrupts a second while training, about one a second with this) and
/// every reuse page-faults again. One arena, because a thread's own arena is unmapped
/// piecewise as it shrinks; large blocks from the heap, and no trimming of its top.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; called before the training and
    // render threads start.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
}

/// Seconds between two hand-backs of the allocator's free pages.
const RELEASE_FREED_EVERY: f32 = 10.0;

/// Hands the free pages inside the heap back to the system now and then. With one arena and no
/// trimming (above), memory freed between long-lived blocks (timeline entries, scene pictures
/// reallocated when the resolution changes) would stay resident for good, and the resident size
/// of a long session would creep up; a hand-back every ten seconds costs one flush of the
/// render threads' address translations, not thousands.
fn release_freed_memory(time: Res<Time<bevy::time::Real>>, mut since: Local<f32>) {
    *since += time.delta_secs();
    if *since < RELEASE_FREED_EVERY {
        return;
    }
    *since = 0.0;
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free pages to the system; any thread may call it.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Opens the window and runs until it is closed (or `--frames` are done).
pub fn run(options: ViewerOptions) -> Result<(), String> {
    // Without a display the windowing library would only panic later; say what to do instead.
    if cfg!(target_os = "linux")
        && let Some(problem) = display_problem(
            std::env::var("DISPLAY").ok().as_deref(),
            // X servers also listen on an abstract socket of the same name (all a container
            // sharing the host's network sees).
            |path| {
                path.exists()
                    || std::fs::read_to_string("/proc/net/unix").is_ok_and(|table| {
                        table
                            .lines()
                            .any(|line| line.ends_with(&format!(" @{}", path.display())))
                    })
            },
        )
    {
        return Err(format!(
            "{problem}: run it on a desktop, under `xvfb-run -a`, or render offscreen with \
             `clamp record`"
        ));
    }
    let adapter = crate::backend::probe_adapter();
    if let Some(problem) = renderer_problem(adapter.as_ref()) {
        return Err(problem);
    }
    // Spheres cost per covered pixel: on a software rasterizer draw them at half resolution.
    let software = adapter.as_ref().is_none_or(|a| a.software);
    // The tuning for a software rasterizer, which shares the CPU with training: training only
    // on cycles drawing leaves, and freed memory kept (see `keep_freed_memory`). A GPU needs
    // neither.
    if software {
        keep_freed_memory();
    }
    let priority = options.train_priority.unwrap_or(if software {
        TrainingPriority::Background
    } else {
        TrainingPriority::Normal
    });
    let training = if options.follow.is_empty() {
        runs::RunsPlugin::start_on_renderer_device(
            &options.config,
            options.train_threads,
            priority,
            options.paused,
            adapter.clone(),
        )?
    } else {
        runs::RunsPlugin::follow(options.follow.clone())
    };

    // A software rasterizer pays for every window pixel several times a frame (Bevy's frame,
    // the egui panel, the scene picture, the copy to the display), whatever is drawn.
    let (width, height) = options
        .window
        .unwrap_or(if software { (960, 540) } else { (1280, 720) });
    let render_scale = options
        .render_scale
        .unwrap_or(if software { 0.5 } else { 1.0 });
    let mut app = App::new();
    app.insert_resource(ClearColor(palette::BACKGROUND))
        .add_plugins(
            DefaultPlugins
                .set(WindowPlugin {
                    primary_window: Some(Window {
                        title: TITLE.into(),
                        resolution: WindowResolution::new(width, height),
                        present_mode: if options.stats {
                            PresentMode::AutoNoVsync
                        } else {
                            PresentMode::AutoVsync
                        },
                        ..default()
                    }),
                    ..default()
                })
                .set(bevy::log::LogPlugin {
                    filter: std::env::var("CLAMP_LOG").unwrap_or_else(|_| LOG_FILTER.into()),
                    ..default()
                }),
        )
        // Keep drawing while training even when the window is not focused (a projector, Xvfb).
        .insert_resource(bevy::winit::WinitSettings {
            focused_mode: bevy::winit::UpdateMode::Continuous,
            unfocused_mode: bevy::winit::UpdateMode::Continuous,
        });
    add_viewer_plugins(&mut app, &options, training, render_scale, software);
    if software {
        app.add_systems(Last, release_freed_memory);
    }
    let exit = app.run();
    match exit {
        AppExit::Success => Ok(()),
        AppExit::Error(code) => Err(format!("the viewer stopped with code {code}")),
    }
}

/// The viewer's own plugins, after Bevy's: the same in a window and in a browser's page.
pub fn add_viewer_plugins(
    app: &mut App,
    options: &ViewerOptions,
    training: runs::RunsPlugin,
    render_scale: f32,
    software: bool,
) {
    app.add_plugins(bevy_egui::EguiPlugin::default())
        .add_plugins(training.comparing(options.compare.clone()));
    // The renderer's device handed to training (not in a build that trains on the CPU only).
    #[cfg(feature = "gpu")]
    app.add_plugins(gpu::SharedDevicePlugin);
    app.add_plugins((
        physics_mode::PhysicsModePlugin { mode: options.mode },
        runs::ScenePlugin {
            settings: scene::SceneSettings {
                render_scale,
                sphere_size: options.sphere_size.unwrap_or(1.0),
                ..scene::SceneSettings::from_preset(options.view.as_ref())
            },
            ease_in_real_time: true,
        },
        spheres::SphereRenderPlugin,
        lines::LinesPlugin,
        picture::PicturePlugin,
        camera::OrbitCameraPlugin {
            auto_rotate: options.view.as_ref().map(|v| v.auto_rotate).unwrap_or(6.0),
            render_scale,
        },
        picking::PickingPlugin,
        panel::PanelPlugin {
            teaching: options.teaching,
            lesson: options.lesson.clone(),
        },
        pacing::PacingPlugin {
            enabled: options.adaptive_resolution.unwrap_or(software),
        },
        capture::CapturePlugin {
            frames: options.frames,
            seconds: options.seconds,
            until_step: options.until_step,
            screenshot: options.screenshot.clone(),
            stats: options.stats,
            stats_every: options.stats_every,
        },
    ));
}

#[cfg(test)]
mod tests {
    use super::display_problem;
    use std::path::Path;

    #[test]
    fn only_a_vulkan_adapter_is_taken_for_drawing_on_linux() {
        use super::renderer_problem;
        use crate::backend::AdapterSummary;
        let adapter = |backend: &str| AdapterSummary {
            name: "llvmpipe".into(),
            backend: backend.into(),
            software: true,
        };
        let none = renderer_problem(None).unwrap();
        assert!(none.contains("mesa-vulkan-drivers"), "{none}");
        assert_eq!(renderer_problem(Some(&adapter("Vulkan"))), None);
        if cfg!(target_os = "linux") {
            let gl = renderer_problem(Some(&adapter("Gl"))).unwrap();
            assert!(
                gl.contains("no Vulkan driver") && gl.contains("llvmpipe on Gl"),
                "{gl}"
            );
        }
    }

    #[test]
    fn a_display_is_refused_only_when_it_surely_cannot_open() {
        let x0 = |p: &Path| p == Path::new("/tmp/.X11-unix/X0");
        // Open: a local server whose socket is there (screen suffix and unix: prefix too), or
        // a remote host that only the windowing library can judge.
        for display in [":0", ":0.0", "unix:0", "remote.example:7"] {
            assert_eq!(display_problem(Some(display), x0), None, "{display}");
        }
        // Refused, naming what is wrong.
        let none = display_problem(None, x0).unwrap();
        assert!(none.contains("DISPLAY is unset"), "{none}");
        let gone = display_problem(Some(":99"), x0).unwrap();
        assert!(
            gone.contains("DISPLAY=:99") && gone.contains("/tmp/.X11-unix/X99"),
            "{gone}"
        );
        let odd = display_problem(Some(":x"), x0).unwrap();
        assert!(odd.contains("DISPLAY=:x"), "{odd}");
        assert!(display_problem(Some(""), x0).unwrap().contains("unset"));
    }
}
