//! Screenshots (F12 or the panel), recording the window to PNG frames and then a GIF or MP4, and
//! the `--frames N [--screenshot FILE] [--stats]` mode used by tests and the frame-rate benchmark.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bevy::prelude::*;
use bevy::render::view::screenshot::{Screenshot, ScreenshotCaptured};
use bevy::time::Real;

use super::scene::Scene;
use super::training::TrainingStatus;
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
    counted: u64,
    exit_requested_at: Option<u64>,
    saved: Arc<AtomicBool>,
    frame_seconds: Vec<f32>,
    /// Sum over the measured frames of the scene's render scale (dynamic resolution moves it).
    render_scale_sum: f64,
    /// Training step and time at the first measured frame, for the steps per second.
    first_measured: Option<(usize, web_time::Instant)>,
    /// The second run's step at the first measured frame (a comparison).
    second_first_step: usize,
}

pub struct CapturePlugin {
    pub frames: Option<u64>,
    pub seconds: Option<f64>,
    pub until_step: Option<usize>,
    pub screenshot: Option<PathBuf>,
    pub stats: bool,
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
                counted: 0,
                exit_requested_at: None,
                saved: Arc::new(AtomicBool::new(false)),
                frame_seconds: Vec::new(),
                render_scale_sum: 0.0,
                first_measured: None,
                second_first_step: 0,
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
    scene: Res<Scene>,
    status: Option<Res<TrainingStatus>>,
    history: Option<Res<super::training::History>>,
    link: Option<Res<super::training::TrainingLink>>,
    view: Option<Res<super::camera::SceneView>>,
    time: Res<Time<Real>>,
    mut exit: MessageWriter<AppExit>,
    second: Option<Res<super::compare::SecondRun>>,
) {
    // Frames count from the first picture with spheres in it.
    if scene.version == 0 {
        return;
    }
    budget.counted += 1;
    if budget.counted == 1 {
        info!("first picture: {} spheres", scene.len());
        budget.started = Some(web_time::Instant::now());
    }
    if budget.counted.is_multiple_of(100) {
        debug!("frame {}", budget.counted);
    }
    if budget.stats && budget.counted == 1 {
        let step = status.as_ref().map_or(0, |s| s.step);
        budget.first_measured = Some((step, web_time::Instant::now()));
        budget.second_first_step = second.as_ref().map_or(0, |s| s.status.step);
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
    // (In a comparison, both runs.)
    let steps_done = budget.until_step.is_none_or(|steps| {
        status.as_ref().is_some_and(|s| s.step >= steps)
            && second.as_ref().is_none_or(|s| s.status.step >= steps)
    });
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
            let training = status.as_deref().map(|status| {
                let (first_step, since) = budget
                    .first_measured
                    .unwrap_or((0, web_time::Instant::now()));
                TrainingStats {
                    status,
                    steps_per_sec: status.step.saturating_sub(first_step) as f64
                        / since.elapsed().as_secs_f64().max(1e-9),
                    history: history.as_deref(),
                    pixel_purity: link.as_ref().and_then(|l| l.pixel_purity),
                    classes: link
                        .as_ref()
                        .map_or(scene.classes, |l| l.data.test.num_classes()),
                    backend: link.as_ref().map_or("", |l| l.backend.description.as_str()),
                }
            });
            let seconds = budget
                .first_measured
                .map_or(1e-9, |(_, since)| since.elapsed().as_secs_f64().max(1e-9));
            let second = second.as_deref().map(|run| SecondRunStats {
                run,
                steps_per_sec: run.status.step.saturating_sub(budget.second_first_step) as f64
                    / seconds,
            });
            println!(
                "{}",
                frame_stats_json(
                    &budget.frame_seconds,
                    budget.render_scale_sum,
                    &scene,
                    training.as_ref(),
                    second.as_ref(),
                )
            );
        }
        if !saved {
            eprintln!("clamp view: the screenshot was not captured");
            exit.write(AppExit::from_code(2));
        } else {
            exit.write(AppExit::Success);
        }
    }
}

/// What `--stats` reports of training besides the frames.
pub struct TrainingStats<'a> {
    pub status: &'a TrainingStatus,
    /// Training steps per second over the measured frames.
    pub steps_per_sec: f64,
    pub history: Option<&'a super::training::History>,
    pub pixel_purity: Option<f64>,
    pub classes: usize,
    /// Where training runs, as the panel says it.
    pub backend: &'a str,
}

/// What `--stats` reports of a comparison's second run.
pub struct SecondRunStats<'a> {
    pub run: &'a super::compare::SecondRun,
    /// Its training steps per second over the measured frames.
    pub steps_per_sec: f64,
}

/// One run's line of a comparison: its settings, pace and picture.
fn run_json(
    settings: String,
    step: usize,
    steps_per_sec: f64,
    scene: &Scene,
    history: Option<&super::training::History>,
) -> serde_json::Value {
    let frame = &scene.frame;
    let n = frame.radii.len().max(1) as f64;
    serde_json::json!({
        "settings": settings,
        "train_step": step,
        "train_steps_per_sec": steps_per_sec,
        "picture_step": frame.step,
        "class_purity": scene.purity,
        "best_class_purity": history
            .and_then(|h| h.pictures.iter().map(|p| p.purity).reduce(f64::max)),
        "drawn_contacts": frame.contacts.iter().map(|&c| c as f64).sum::<f64>() / n,
        "isostatic_contacts": 2 * frame.dim,
        "drawn_mean_radius": frame.radii.iter().map(|&r| r as f64).sum::<f64>() / n,
        "spheres": scene.len(),
    })
}

/// Frames per second, mean and 99th-percentile frame time, the mean render scale, and what the
/// picture shows at the end: class purity of the drawn spheres (with the raw-pixel baseline
/// and chance beside it), their contacts and radius, and the batch's contacts. In a
/// comparison, `runs` holds both runs' own lines (the top-level fields are the first run's).
pub fn frame_stats_json(
    seconds: &[f32],
    render_scale_sum: f64,
    scene: &Scene,
    training: Option<&TrainingStats>,
    second: Option<&SecondRunStats>,
) -> String {
    let spheres = scene.len();
    let frame = &scene.frame;
    let n = frame.radii.len().max(1) as f64;
    let drawn_contacts = frame.contacts.iter().map(|&c| c as f64).sum::<f64>() / n;
    let drawn_radius = frame.radii.iter().map(|&r| r as f64).sum::<f64>() / n;
    let status = training.map(|t| t.status);
    let best_purity = training
        .and_then(|t| t.history)
        .and_then(|h| h.pictures.iter().map(|p| p.purity).reduce(f64::max));
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
    let runs = second.map(|second| {
        let run = second.run;
        vec![
            run_json(
                run.caption(0),
                status.map_or(0, |s| s.step),
                training.map_or(0.0, |t| t.steps_per_sec),
                scene,
                training.and_then(|t| t.history),
            ),
            run_json(
                run.caption(1),
                run.status.step,
                second.steps_per_sec,
                &run.scene,
                Some(&run.history),
            ),
        ]
    });
    serde_json::json!({
        "runs": runs,
        "frames": sorted.len(),
        "fps": if mean > 0.0 { 1.0 / mean } else { f64::NAN },
        "mean_frame_ms": mean * 1e3,
        "p99_frame_ms": p99 * 1e3,
        "mean_render_scale": render_scale_sum / n as f64,
        "spheres": spheres,
        "train_step": status.map(|s| s.step).unwrap_or(0),
        "train_steps_per_sec": training.map(|t| t.steps_per_sec).unwrap_or(0.0),
        "picture_step": frame.step,
        "class_purity": scene.purity,
        "best_class_purity": best_purity,
        "pixel_pca_purity": training.and_then(|t| t.pixel_purity),
        "chance_purity": training.map(|t| 1.0 / t.classes.max(1) as f64),
        "drawn_contacts": drawn_contacts,
        "isostatic_contacts": 2 * frame.dim,
        "drawn_mean_radius": drawn_radius,
        "batch_contacts": status.and_then(|s| s.last.as_ref()).map(|r| r.packing.mean_contacts),
        "backend": training.map(|t| t.backend),
        // The first step plotted, and its loss: what a backend's agreement is checked on.
        "first_step": training.and_then(|t| t.history).and_then(|h| h.steps.first().copied()),
        "first_step_loss": training.and_then(|t| t.history).and_then(|h| h.loss.first().copied()),
    })
    .to_string()
}
