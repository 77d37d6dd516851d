//! Screenshots (F12 or the panel), recording the window to PNG frames and then a GIF or MP4, and
//! the `--frames N [--screenshot FILE] [--stats]` mode used by tests and the frame-rate benchmark.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bevy::prelude::*;
use bevy::render::view::screenshot::{Screenshot, ScreenshotCaptured};
use bevy::time::Real;

use super::camera::SceneView;
use super::runs::{Run, Runs};
use crate::video::{self, VideoOutput};

#[derive(Message, Clone, Debug)]
pub enum CaptureRequest {
    Screenshot,
    ToggleRecording,
}

/// A recording in progress.
pub struct ActiveRecording {
    pub output: VideoOutput,
    pub frames: usize,
}

#[derive(Resource, Default)]
pub struct Recording {
    pub active: Option<ActiveRecording>,
    /// The last thing that happened (file saved, error), for the panel.
    pub message: Option<String>,
    /// Filled by background encoders and screenshot observers.
    inbox: Arc<Mutex<Vec<String>>>,
}

/// `--frames`, `--screenshot` and `--stats`.
#[derive(Resource)]
struct FrameBudget {
    frames: Option<u64>,
    /// Or stop after this many seconds from the first picture.
    seconds: Option<f64>,
    /// Or once training has taken this many steps.
    until_step: Option<usize>,
    started: Option<web_time::Instant>,
    screenshot: Option<PathBuf>,
    stats: bool,
    /// Print the statistics line every this many seconds too.
    stats_every: Option<f64>,
    last_stats: Option<web_time::Instant>,
    counted: u64,
    exit_requested_at: Option<u64>,
    saved: Arc<AtomicBool>,
    frame_seconds: Vec<f32>,
    /// Sum over the measured frames of the scene's render scale (dynamic resolution moves it).
    render_scale_sum: f64,
    /// Each run's training step at the first measured frame, and its time, for the steps per
    /// second.
    first_steps: Vec<usize>,
    measured_since: Option<web_time::Instant>,
}

pub struct CapturePlugin {
    pub frames: Option<u64>,
    pub seconds: Option<f64>,
    pub until_step: Option<usize>,
    pub screenshot: Option<PathBuf>,
    pub stats: bool,
    pub stats_every: Option<f64>,
}

impl Plugin for CapturePlugin {
    fn build(&self, app: &mut App) {
        app.init_resource::<Recording>()
            .add_message::<CaptureRequest>()
            .insert_resource(FrameBudget {
                frames: self.frames,
                seconds: self.seconds,
                until_step: self.until_step,
                started: None,
                screenshot: self.screenshot.clone(),
                stats: self.stats,
                stats_every: self.stats_every,
                last_stats: None,
                counted: 0,
                exit_requested_at: None,
                saved: Arc::new(AtomicBool::new(false)),
                frame_seconds: Vec::new(),
                render_scale_sum: 0.0,
                first_steps: Vec::new(),
                measured_since: None,
            })
            .add_systems(
                Update,
                (capture_keys, handle_requests, record_frame, frame_budget).chain(),
            );
    }
}

/// Saves the captured window to `path` (atomically; a download in a page) and reports to
/// `inbox`.
fn save_to(
    path: PathBuf,
    inbox: Arc<Mutex<Vec<String>>>,
    done: Option<Arc<AtomicBool>>,
) -> impl FnMut(On<ScreenshotCaptured>) {
    move |captured: On<ScreenshotCaptured>| {
        let result = captured
            .image
            .clone()
            .try_into_dynamic()
            .map_err(|e| format!("cannot convert the screenshot: {e:?}"))
            .and_then(|image| video::encode_png(&image.to_rgba8()))
            .and_then(|png| super::files::save(&path, &png, "image/png"));
        let line = result.unwrap_or_else(|e| format!("screenshot failed: {e}"));
        if let Ok(mut inbox) = inbox.lock() {
            inbox.push(line);
        }
        if let Some(done) = &done {
            done.store(true, Ordering::SeqCst);
        }
    }
}

fn capture_keys(keys: Res<ButtonInput<KeyCode>>, mut requests: MessageWriter<CaptureRequest>) {
    if keys.just_pressed(KeyCode::F12) {
        requests.write(CaptureRequest::Screenshot);
    }
}

fn handle_requests(
    mut commands: Commands,
    mut requests: MessageReader<CaptureRequest>,
    mut recording: ResMut<Recording>,
) {
    let news: Vec<String> = recording
        .inbox
        .lock()
        .map(|mut inbox| inbox.drain(..).collect())
        .unwrap_or_default();
    if let Some(last) = news.last() {
        info!("{last}");
        recording.message = Some(last.clone());
    }
    for request in requests.read() {
        match request {
            CaptureRequest::Screenshot => {
                let path = PathBuf::from("screenshots")
                    .join(format!("clamp-{}.png", crate::progress::unix_time()));
                commands
                    .spawn(Screenshot::primary_window())
                    .observe(save_to(path, recording.inbox.clone(), None));
            }
            CaptureRequest::ToggleRecording => match recording.active.take() {
                Some(active) => finish_recording(active, recording.inbox.clone()),
                None => {
                    let extension = if video::ffmpeg_available() {
                        "mp4"
                    } else {
                        "gif"
                    };
                    let path = PathBuf::from(format!(
                        "recordings/clamp-{}.{extension}",
                        crate::progress::unix_time()
                    ));
                    match VideoOutput::from_path(&path).and_then(|o| o.prepare().map(|()| o)) {
                        Ok(output) => {
                            recording.message = Some(format!("recording to {}", path.display()));
                            recording.active = Some(ActiveRecording { output, frames: 0 });
                        }
                        Err(e) => recording.message = Some(e),
                    }
                }
            },
        }
    }
}

/// Encodes the frames on a thread of its own, so the window keeps drawing.
fn finish_recording(active: ActiveRecording, inbox: Arc<Mutex<Vec<String>>>) {
    let count = active.frames;
    std::thread::spawn(move || {
        let dir = active.output.frames_dir();
        let frames: Vec<PathBuf> = (0..count)
            .map(|k| video::frame_path(&dir, k))
            .filter(|p| p.exists())
            .collect();
        let fps = 30.0;
        let line = match &active.output {
            VideoOutput::Frames(dir) => format!("{} frames in {}", frames.len(), dir.display()),
            VideoOutput::Gif(file) => match video::encode_gif(&frames, file, fps) {
                Ok(()) => format!("saved {}", file.display()),
                Err(e) => format!("GIF failed: {e} (frames kept in {})", dir.display()),
            },
            VideoOutput::Mp4(file) => match video::encode_mp4(&dir, file, fps) {
                Ok(()) => format!("saved {}", file.display()),
                Err(e) => format!("MP4 failed: {e} (frames kept in {})", dir.display()),
            },
        };
        if let Ok(mut inbox) = inbox.lock() {
            inbox.push(line);
        }
    });
}

fn record_frame(mut commands: Commands, mut recording: ResMut<Recording>) {
    let inbox = recording.inbox.clone();
    if let Some(active) = recording.active.as_mut() {
        let path = video::frame_path(&active.output.frames_dir(), active.frames);
        active.frames += 1;
        commands
            .spawn(Screenshot::primary_window())
            .observe(save_to(path, inbox, None));
    }
}

// (A system's parameters are the data it reads and writes.)
#[allow(clippy::too_many_arguments)]
fn frame_budget(
    mut commands: Commands,
    mut budget: ResMut<FrameBudget>,
    recording: Res<Recording>,
    runs: Res<Runs>,
    view: Option<Res<SceneView>>,
    time: Res<Time<Real>>,
    mut exit: MessageWriter<AppExit>,
) {
    // Frames count from the first picture with spheres in it.
    let Some(first) = runs.list.first().filter(|run| run.scene.version > 0) else {
        return;
    };
    budget.counted += 1;
    if budget.counted == 1 {
        info!("first picture: {} spheres", first.scene.len());
        budget.started = Some(web_time::Instant::now());
    }
    if budget.counted.is_multiple_of(100) {
        debug!("frame {}", budget.counted);
    }
    if budget.stats && budget.counted == 1 {
        budget.first_steps = runs.list.iter().map(|run| run.status.step).collect();
        budget.measured_since = Some(web_time::Instant::now());
    }
    if budget.stats && budget.counted > 1 {
        let dt = time.delta_secs();
        budget.frame_seconds.push(dt);
        budget.render_scale_sum += view.as_ref().map_or(1.0, |v| v.render_scale as f64);
    }
    let time_is_up = budget.seconds.is_some_and(|limit| {
        budget
            .started
            .is_some_and(|t| t.elapsed().as_secs_f64() >= limit)
    });
    // --frames and --until-step must both be met when both are given; --seconds caps the wait.
    let frames_done = budget.frames.is_none_or(|frames| budget.counted >= frames);
    // (In a comparison, every run.)
    let steps_done = budget.until_step.is_none_or(|steps| {
        runs.list
            .iter()
            .filter(|run| run.has_source())
            .all(|run| run.status.step >= steps)
    });
    if let Some(every) = budget.stats_every
        && budget.stats
        && budget
            .last_stats
            .or(budget.measured_since)
            .is_some_and(|t| t.elapsed().as_secs_f64() >= every)
    {
        budget.last_stats = Some(web_time::Instant::now());
        println!("{}", stats_line(&budget, &runs));
    }
    let counted_out =
        (budget.frames.is_some() || budget.until_step.is_some()) && frames_done && steps_done;
    if budget.exit_requested_at.is_none() && (counted_out || time_is_up) {
        budget.exit_requested_at = Some(budget.counted);
        if let Some(path) = budget.screenshot.clone() {
            commands
                .spawn(Screenshot::primary_window())
                .observe(save_to(
                    path,
                    recording.inbox.clone(),
                    Some(budget.saved.clone()),
                ));
        }
    }
    let Some(requested) = budget.exit_requested_at else {
        return;
    };
    let saved = budget.screenshot.is_none() || budget.saved.load(Ordering::SeqCst);
    if saved || budget.counted > requested + 600 {
        if let Ok(mut inbox) = recording.inbox.lock() {
            for line in inbox.drain(..) {
                eprintln!("{line}");
            }
        }
        if budget.stats {
            println!("{}", stats_line(&budget, &runs));
        }
        if !saved {
            eprintln!("clamp view: the screenshot was not captured");
            exit.write(AppExit::from_code(2));
        } else {
            exit.write(AppExit::Success);
        }
    }
}

/// The statistics since the first measured frame.
fn stats_line(budget: &FrameBudget, runs: &Runs) -> String {
    let seconds = budget
        .measured_since
        .map_or(1e-9, |since| since.elapsed().as_secs_f64().max(1e-9));
    let steps_per_sec: Vec<f64> = runs
        .list
        .iter()
        .enumerate()
        .map(|(k, run)| {
            let first_step = budget.first_steps.get(k).copied().unwrap_or(0);
            run.status.step.saturating_sub(first_step) as f64 / seconds
        })
        .collect();
    frame_stats_json(
        &budget.frame_seconds,
        budget.render_scale_sum,
        runs,
        &steps_per_sec,
    )
}

/// One run's line: its settings, pace and picture, and what its trainer reported.
fn run_json(run: &Run, steps_per_sec: f64) -> serde_json::Value {
    let scene = &run.scene;
    let frame = &scene.frame;
    let history = &run.history;
    let link = run.link.as_ref();
    serde_json::json!({
        "settings": run.caption,
        "train_step": run.status.step,
        "train_steps_per_sec": steps_per_sec,
        "picture_step": frame.step,
        "spheres": scene.len(),
        "class_purity": scene.purity,
        "best_class_purity": history.pictures.iter().map(|p| p.purity).reduce(f64::max),
        "pixel_pca_purity": link.and_then(|l| l.pixel_purity),
        "chance_purity": run.chance_purity(),
        "drawn_contacts": frame.mean_contacts(),
        "isostatic_contacts": 2 * frame.dim,
        "drawn_mean_radius": frame.mean_radius(),
        "batch_contacts": run.status.last.as_ref().map(|r| r.packing.mean_contacts),
        "backend": link.map(|l| l.backend.description.as_str()),
        // A followed run: the folder, the step of the picture drawn, the pictures read.
        "followed": run.followed.as_ref().map(|f| f.dir.display().to_string()),
        "followed_step": run.followed.as_ref().map(|_| frame.step),
        "pictures": run.followed.as_ref().map(|f| f.pictures),
        "follow_problem": run.followed.as_ref().and_then(|f| f.problem.clone()),
        // The first step plotted, and its loss: what a backend's agreement is checked on.
        "first_step": history.steps.first().copied(),
        "first_step_loss": history.loss.first().copied(),
    })
}

/// Frames per second, mean and 99th-percentile frame time, the mean render scale, and what the
/// pictures show at the end: per run (`runs`, one entry a run) its settings, steps per second,
/// the class purity of its drawn spheres (with the raw-pixel baseline and chance beside it),
/// their contacts and radius, and the batch's contacts. The first run's fields are also at the
/// top level.
pub fn frame_stats_json(
    seconds: &[f32],
    render_scale_sum: f64,
    runs: &Runs,
    steps_per_sec: &[f64],
) -> String {
    let mut sorted: Vec<f64> = seconds.iter().map(|&s| s as f64).collect();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len().max(1);
    let mean = sorted.iter().sum::<f64>() / n as f64;
    let p99 = sorted
        .get(
            ((n as f64 * 0.99).ceil() as usize)
                .saturating_sub(1)
                .min(n - 1),
        )
        .copied()
        .unwrap_or(f64::NAN);
    let lines: Vec<serde_json::Value> = runs
        .list
        .iter()
        .enumerate()
        .map(|(k, run)| run_json(run, steps_per_sec.get(k).copied().unwrap_or(0.0)))
        .collect();
    let mut stats = serde_json::json!({
        "frames": sorted.len(),
        "fps": if mean > 0.0 { 1.0 / mean } else { f64::NAN },
        "mean_frame_ms": mean * 1e3,
        "p99_frame_ms": p99 * 1e3,
        "mean_render_scale": render_scale_sum / n as f64,
    });
    if let (Some(object), Some(serde_json::Value::Object(first))) =
        (stats.as_object_mut(), lines.first())
    {
        for (key, value) in first {
            if key != "settings" {
                object.insert(key.clone(), value.clone());
            }
        }
    }
    stats["runs"] = serde_json::Value::Array(lines);
    stats.to_string()
}
