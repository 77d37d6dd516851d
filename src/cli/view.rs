//! `clamp view` (the live viewer) and `clamp record` (offscreen video).

use std::path::PathBuf;

use super::args::{Args, FlagSpec};
use super::train::{SHARED_TRAINING_FLAGS, apply_train_flags};
use crate::config::TrainConfig;
use crate::train::session::TrainingPriority;
use crate::video::VideoOutput;
use crate::viewer::record::{RecordOptions, record as record_video};
use crate::viewer::{ViewerMode, ViewerOptions, default_train_threads, preset};

const VIEW_FLAGS: FlagSpec = FlagSpec {
    shared_options: SHARED_TRAINING_FLAGS,
    options: &[
        "spheres",
        "frames",
        "seconds",
        "screenshot",
        "size",
        "train-threads",
        "render-scale",
        "train-priority",
    ],
    switches: &["stats", "teaching", "physics", "paused", "fixed-resolution"],
};

const RECORD_FLAGS: FlagSpec = FlagSpec {
    shared_options: SHARED_TRAINING_FLAGS,
    options: &[
        "spheres",
        "start-step",
        "frames",
        "steps-per-frame",
        "fps",
        "size",
        "orbit",
        "out",
    ],
    switches: &[],
};

fn base_config(
    args: &Args,
    default: TrainConfig,
) -> Result<
    (
        TrainConfig,
        Option<preset::ViewPreset>,
        Option<preset::Lesson>,
    ),
    String,
> {
    let (config, view, lesson) = match args.get::<PathBuf>("config")? {
        Some(path) => {
            let preset = preset::load(&path, &default)?;
            (preset.config, preset.view, preset.lesson)
        }
        None => (default, None, None),
    };
    let mut config = apply_train_flags(config, args)?;
    if let Some(spheres) = args.get::<usize>("spheres")? {
        config.snapshot_images = spheres;
        config
            .validate()
            .map_err(|e| format!("--{}", e.replace("snapshot_images", "spheres")))?;
    }
    Ok((config, view, lesson))
}

/// Parses `WxH`.
pub fn parse_size(text: &str) -> Result<(u32, u32), String> {
    let (w, h) = text
        .split_once(['x', 'X'])
        .ok_or_else(|| format!("--size {text}: expected WIDTHxHEIGHT, e.g. 960x540"))?;
    let parse = |s: &str| {
        s.trim()
            .parse::<u32>()
            .map_err(|_| format!("--size {text}: expected WIDTHxHEIGHT, e.g. 960x540"))
    };
    Ok((parse(w)?, parse(h)?))
}

pub fn view(words: &[String]) -> Result<(), String> {
    let args = Args::parse(words, &VIEW_FLAGS)?;
    crate::train::Fault::from_env()?;
    let (config, view, lesson) = base_config(&args, TrainConfig::viewer_default())?;
    let mut options = ViewerOptions::new(config);
    options.lesson = lesson;
    options.frames = args.get("frames")?;
    if options.frames == Some(0) {
        return Err("--frames 0: render at least one frame".into());
    }
    options.seconds = args.get("seconds")?;
    if let Some(seconds) = options.seconds
        && !(seconds > 0.0 && seconds <= 86_400.0)
    {
        return Err(format!("--seconds {seconds}: allowed above 0, up to 86400"));
    }
    options.screenshot = args.get("screenshot")?;
    if let Some(path) = &options.screenshot {
        if path
            .extension()
            .is_none_or(|e| !e.eq_ignore_ascii_case("png"))
        {
            return Err(format!("--screenshot {}: must end in .png", path.display()));
        }
        if options.frames.is_none() && options.seconds.is_none() {
            options.frames = Some(120);
        }
    }
    options.stats = args.switch("stats");
    options.paused = args.switch("paused");
    options.teaching = args.switch("teaching") || view.as_ref().is_some_and(|v| v.teaching);
    if args.switch("physics") {
        options.mode = ViewerMode::Physics;
    }
    if let Some(size) = args.get::<String>("size")? {
        let (w, h) = parse_size(&size)?;
        if w < 320 || h < 240 || w > 8192 || h > 8192 {
            return Err(format!("--size {size}: allowed 320x240 to 8192x8192"));
        }
        options.window = Some((w, h));
    }
    options.train_threads = Some(
        args.get::<usize>("train-threads")?
            .unwrap_or_else(default_train_threads)
            .max(1),
    );
    options.view = view;
    if let Some(scale) = args.get::<f32>("render-scale")? {
        if !(0.1..=2.0).contains(&scale) {
            return Err(format!("--render-scale {scale}: allowed 0.1 to 2"));
        }
        options.render_scale = Some(scale);
    }
    if let Some(priority) = args.get::<String>("train-priority")? {
        options.train_priority = match priority.as_str() {
            "background" => TrainingPriority::Background,
            "shared" => TrainingPriority::Shared,
            "normal" => TrainingPriority::Normal,
            other => {
                return Err(format!(
                    "--train-priority {other}: allowed background, shared, normal"
                ));
            }
        };
    }
    if args.switch("fixed-resolution") {
        options.adaptive_resolution = Some(false);
    }
    crate::viewer::run(options)
}

pub fn record(words: &[String]) -> Result<(), String> {
    let args = Args::parse(words, &RECORD_FLAGS)?;
    crate::train::Fault::from_env()?;
    // Output and size problems are reported before the data is read or a step is taken.
    let out: PathBuf = args
        .get("out")?
        .unwrap_or_else(|| PathBuf::from("recordings/clamp.gif"));
    let output = VideoOutput::from_path(&out)?;
    let size = parse_size(
        &args
            .get::<String>("size")?
            .unwrap_or_else(|| "960x540".into()),
    )?;
    let (config, view, _lesson) = base_config(&args, TrainConfig::viewer_default())?;
    let options = RecordOptions {
        config,
        start_step: args.get("start-step")?.unwrap_or(0),
        frames: args.get("frames")?.unwrap_or(120),
        steps_per_frame: args.get("steps-per-frame")?.unwrap_or(2),
        fps: args.get("fps")?.unwrap_or(24.0),
        size,
        orbit: args
            .get("orbit")?
            .unwrap_or_else(|| view.map(|v| v.auto_rotate).unwrap_or(6.0)),
        output,
    };
    let summary = record_video(options)?;
    if let Some(note) = &summary.note {
        eprintln!("note: {note}");
    }
    println!(
        "{}",
        serde_json::json!({
            "frames": summary.frames.len(),
            "frames_dir": summary.frames.first().and_then(|p| p.parent()).map(|p| p.display().to_string()),
            "video": summary.video.as_ref().map(|p| p.display().to_string()),
            "steps": summary.steps,
            "seconds": summary.seconds,
        })
    );
    Ok(())
}
