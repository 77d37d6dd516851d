//! `clamp view` (the live viewer) and `clamp record` (offscreen video).

use std::path::PathBuf;

use super::flags::{TrainingFlags, validated};
use crate::config::TrainConfig;
use crate::train::session::TrainingPriority;
use crate::video::VideoOutput;
use crate::viewer::record::{RecordOptions, record as record_video};
use crate::viewer::{ViewerMode, ViewerOptions, default_train_threads, preset};

/// `clamp view`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ViewArgs {
    #[command(flatten)]
    pub training: TrainingFlags,
    /// Held-out images drawn as spheres.
    #[arg(long, value_name = "N")]
    pub spheres: Option<usize>,
    /// Open with the teaching overlay: captions that say what the picture shows.
    #[arg(long)]
    pub teaching: bool,
    /// Open in the physics sandbox (plain soft spheres jammed and unjammed) instead of training.
    #[arg(long)]
    pub physics: bool,
    /// Open paused: nothing trains until play (or space) is pressed.
    #[arg(long)]
    pub paused: bool,
    /// Quit after N frames.
    #[arg(long, value_name = "N")]
    pub frames: Option<u64>,
    /// Quit after S seconds.
    #[arg(long, value_name = "S")]
    pub seconds: Option<f64>,
    /// Quit once training has taken N steps (and --frames are drawn, if given; --seconds still
    /// quits at its time).
    #[arg(long, value_name = "N")]
    pub until_step: Option<usize>,
    /// Save the last frame as this PNG when quitting (after 120 frames unless --frames or
    /// --seconds says otherwise).
    #[arg(long, value_name = "FILE.png")]
    pub screenshot: Option<PathBuf>,
    /// Print frames per second, training steps and the frame-time spread as JSON on exit.
    #[arg(long)]
    pub stats: bool,
    /// With --stats, print the line every S seconds too.
    #[arg(long, value_name = "S", requires = "stats")]
    pub stats_every: Option<f64>,
    /// Draw a run trained elsewhere from its folder as it trains (`clamp train --out DIR`, or
    /// python/clamp_follow.py), instead of training one here: the newest picture, its plots
    /// and a timeline over every picture. Repeat it for up to four runs side by side.
    #[arg(long, value_name = "DIR")]
    pub follow: Vec<PathBuf>,
    /// Draw the spheres this fraction of their radius (0.02 to 1; the panel's slider).
    #[arg(long, value_name = "F")]
    pub sphere_size: Option<f32>,
    /// Window size, WIDTHxHEIGHT, 320x240 to 8192x8192 [default: 960x540 on a software
    /// rasterizer, else 1280x720].
    #[arg(long, value_name = "WxH")]
    pub size: Option<String>,
    /// Threads the training may use [default: all cores but the renderer's].
    #[arg(long, value_name = "T")]
    pub train_threads: Option<usize>,
    /// Rendered pixels per window pixel, 0.1 to 2 [default: 0.5 on a software rasterizer,
    /// adapted to the frame rate; else 1].
    #[arg(long, value_name = "S")]
    pub render_scale: Option<f32>,
    /// Keep the render scale fixed instead of adapting it to the frame rate.
    #[arg(long)]
    pub fixed_resolution: bool,
    /// How the training threads share the cores with drawing [default: background beside a
    /// software rasterizer, else normal].
    #[arg(long, value_enum)]
    pub train_priority: Option<TrainingPriority>,
    #[command(flatten)]
    pub compare: CompareFlags,
}

/// The comparison asked for by `--compare` and `--compare-config` (a run beside the first for
/// each, in that order), against `config`; else the `[[compare]]` runs of the lesson given as
/// `--config`, applied over the command line's run (with its --backend, say).
fn comparison(
    config: &TrainConfig,
    flags: &CompareFlags,
    lesson: Option<&std::path::Path>,
) -> Result<Option<crate::compare::Comparison>, String> {
    use crate::compare::{Comparison, other_from_spec};
    let mut others = Vec::new();
    for spec in &flags.compare {
        others.push(other_from_spec(config, spec).map_err(|e| format!("--compare {spec}: {e}"))?);
    }
    for file in &flags.compare_config {
        others.push(preset::load(file, config)?.config);
    }
    if !others.is_empty() {
        return Comparison::of_runs(config, others)
            .map(Some)
            .map_err(|e| format!("--compare: {e}"));
    }
    let Some(path) = lesson else { return Ok(None) };
    preset::load(path, &TrainConfig::viewer_default())?
        .compare
        .map(|lesson| Comparison::from_specs(config, &lesson.specs()))
        .transpose()
        .map_err(|e| format!("{}: [[compare]]: {e}", path.display()))
}

/// Runs beside the first (`view` draws them side by side, `record` films them).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct CompareFlags {
    /// Train a run beside the first, differing only in these settings, and show them side by
    /// side, each captioned (e.g. alpha=2.5 or radius_scale=4,views=8). Repeat it for up to
    /// three runs beside the first (a 2 x 2 grid).
    #[arg(long, value_name = "KEY=VALUE[,...]")]
    pub compare: Vec<String>,
    /// Like --compare, with a run's whole configuration from a file (it may differ in anything
    /// but dataset, seed, backend and out). Repeatable, with --compare or alone.
    #[arg(long, value_name = "B.toml")]
    pub compare_config: Vec<PathBuf>,
}

/// `clamp record`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct RecordArgs {
    #[command(flatten)]
    pub training: TrainingFlags,
    /// Held-out images drawn as spheres.
    #[arg(long, value_name = "N")]
    pub spheres: Option<usize>,
    /// Train this many steps before the first frame.
    #[arg(long, value_name = "S", default_value_t = 0)]
    pub start_step: usize,
    /// Frames to render.
    #[arg(long, value_name = "N", default_value_t = 120)]
    pub frames: usize,
    /// Training steps between two frames.
    #[arg(long, value_name = "K", default_value_t = 2)]
    pub steps_per_frame: usize,
    /// Frames per second of the video.
    #[arg(long, value_name = "F", default_value_t = 24.0)]
    pub fps: f64,
    /// Frame size, WIDTHxHEIGHT.
    #[arg(long, value_name = "WxH", default_value = "960x540")]
    pub size: String,
    /// Camera orbit in degrees per second (0: still) [default: the lesson's, else 6].
    #[arg(long, value_name = "DEG_PER_SECOND")]
    pub orbit: Option<f32>,
    /// FILE.mp4 (ffmpeg), FILE.gif, or DIR/ for PNG frames.
    #[arg(long, value_name = "FILE|DIR/", default_value = "recordings/clamp.gif")]
    pub out: PathBuf,
    #[command(flatten)]
    pub compare: CompareFlags,
    /// Film a run trained elsewhere from the pictures in its folder (`clamp train --out DIR`,
    /// python/clamp_follow.py), a frame a picture, instead of training one.
    #[arg(long, value_name = "DIR")]
    pub from: Option<PathBuf>,
    /// Draw the spheres this fraction of their radius (0.02 to 1): in many dimensions they
    /// overlap in any 3-D picture.
    #[arg(long, value_name = "F", default_value_t = 1.0)]
    pub sphere_size: f32,
}

fn base_config(
    training: &TrainingFlags,
    spheres: Option<usize>,
    default: TrainConfig,
) -> Result<
    (
        TrainConfig,
        Option<preset::ViewPreset>,
        Option<preset::Lesson>,
    ),
    String,
> {
    let (config, view, lesson) = match &training.config {
        Some(path) => {
            let preset = preset::load(path, &default)?;
            (preset.config, preset.view, preset.lesson)
        }
        None => (default, None, None),
    };
    let mut config = training.apply(config);
    if let Some(spheres) = spheres {
        config.snapshot_images = spheres;
    }
    Ok((validated(config)?, view, lesson))
}

/// `--sphere-size`, checked.
fn sphere_size(size: f32) -> Result<f32, String> {
    let (low, high) = crate::viewer::ranges::SPHERE_SIZE;
    if (low..=high).contains(&size) {
        Ok(size)
    } else {
        Err(format!("--sphere-size {size}: allowed {low} to {high}"))
    }
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

pub fn view(args: ViewArgs) -> Result<(), String> {
    crate::train::Fault::from_env()?;
    let (config, view, lesson) =
        base_config(&args.training, args.spheres, TrainConfig::viewer_default())?;
    let compare = comparison(&config, &args.compare, args.training.config.as_deref())?;
    let mut options = ViewerOptions::new(config);
    options.lesson = lesson;
    options.frames = args.frames;
    if options.frames == Some(0) {
        return Err("--frames 0: render at least one frame".into());
    }
    options.seconds = args.seconds;
    if let Some(seconds) = options.seconds
        && !(seconds > 0.0 && seconds <= 86_400.0)
    {
        return Err(format!("--seconds {seconds}: allowed above 0, up to 86400"));
    }
    options.until_step = args.until_step;
    if options.until_step == Some(0) {
        return Err("--until-step 0: wait for at least one step".into());
    }
    options.screenshot = args.screenshot;
    if let Some(path) = &options.screenshot {
        if path
            .extension()
            .is_none_or(|e| !e.eq_ignore_ascii_case("png"))
        {
            return Err(format!("--screenshot {}: must end in .png", path.display()));
        }
        if options.frames.is_none() && options.seconds.is_none() && options.until_step.is_none() {
            options.frames = Some(120);
        }
    }
    options.stats = args.stats;
    if let Some(every) = args.stats_every
        && !(every.is_finite() && every > 0.0 && every <= 86_400.0)
    {
        return Err(format!(
            "--stats-every {every}: allowed above 0, up to 86400"
        ));
    }
    options.stats_every = args.stats_every;
    options.sphere_size = args.sphere_size.map(sphere_size).transpose()?;
    if !args.follow.is_empty() {
        if args.follow.len() > crate::compare::MAX_RUNS {
            return Err(format!(
                "--follow: {} runs asked for: at most {}",
                args.follow.len(),
                crate::compare::MAX_RUNS
            ));
        }
        for dir in &args.follow {
            crate::viewer::follow::check_followable(dir)?;
        }
        if compare.is_some() || args.physics {
            return Err(
                "--follow draws runs trained elsewhere: it cannot be given with \
                        --compare, --compare-config or --physics"
                    .into(),
            );
        }
        options.follow = args.follow.clone();
    }
    options.paused = args.paused;
    options.teaching = args.teaching || view.as_ref().is_some_and(|v| v.teaching);
    if args.physics {
        options.mode = ViewerMode::Physics;
    }
    if let Some(size) = &args.size {
        let (w, h) = parse_size(size)?;
        if w < 320 || h < 240 || w > 8192 || h > 8192 {
            return Err(format!("--size {size}: allowed 320x240 to 8192x8192"));
        }
        options.window = Some((w, h));
    }
    // Runs side by side take turns at the same training cores.
    options.train_threads = Some(
        args.train_threads
            .unwrap_or_else(default_train_threads)
            .max(1),
    );
    options.compare = compare;
    options.view = view;
    if let Some(scale) = args.render_scale {
        if !(0.1..=2.0).contains(&scale) {
            return Err(format!("--render-scale {scale}: allowed 0.1 to 2"));
        }
        options.render_scale = Some(scale);
    }
    options.train_priority = args.train_priority;
    if args.fixed_resolution {
        options.adaptive_resolution = Some(false);
    }
    crate::viewer::run(options)
}

/// `clamp record --from DIR`: training flags make no sense there and are refused.
fn record_from_run(
    dir: &std::path::Path,
    args: &RecordArgs,
    size: (u32, u32),
    output: VideoOutput,
) -> Result<(), String> {
    if args.training != TrainingFlags::default()
        || args.spheres.is_some()
        || !args.compare.compare.is_empty()
        || !args.compare.compare_config.is_empty()
        || args.start_step != 0
    {
        return Err(format!(
            "--from {}: films the run's own pictures; training flags, --spheres, --compare \
             and --start-step do not apply",
            dir.display()
        ));
    }
    let probe = RecordOptions {
        size,
        fps: args.fps,
        orbit: args.orbit.unwrap_or(6.0),
        frames: 1,
        ..RecordOptions::for_config(TrainConfig::viewer_default(), output.clone())
    };
    probe.validate()?;
    let summary = crate::viewer::record::record_from(
        dir,
        size,
        args.fps,
        probe.orbit,
        sphere_size(args.sphere_size)?,
        output,
    )?;
    print_summary(&summary);
    Ok(())
}

fn print_summary(summary: &crate::viewer::record::RecordSummary) {
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
            "frames_per_second": summary.frames.len() as f64 / summary.stages.frames.max(1e-9),
            "stage_seconds": summary.stages,
        })
    );
}

pub fn record(args: RecordArgs) -> Result<(), String> {
    crate::train::Fault::from_env()?;
    // Output and size problems are reported before the data is read or a step is taken.
    let output = VideoOutput::from_path(&args.out)?;
    let size = parse_size(&args.size)?;
    if let Some(dir) = &args.from {
        return record_from_run(dir, &args, size, output);
    }
    let (config, view, _lesson) =
        base_config(&args.training, args.spheres, TrainConfig::viewer_default())?;
    let compare = comparison(&config, &args.compare, args.training.config.as_deref())?;
    let options = RecordOptions {
        config,
        compare,
        start_step: args.start_step,
        frames: args.frames,
        steps_per_frame: args.steps_per_frame,
        fps: args.fps,
        size,
        orbit: args
            .orbit
            .unwrap_or_else(|| view.map(|v| v.auto_rotate).unwrap_or(6.0)),
        output,
    };
    let summary = record_video(options)?;
    print_summary(&summary);
    Ok(())
}
