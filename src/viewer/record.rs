//! `clamp record`: trains and renders offscreen, with no window and no X server. The scene is the
//! viewer's own (same plugins, same shader) drawn into an image that is read back after every
//! frame; the trainer runs on this thread, K steps per frame, so the same config and seed give
//! the same frames on the CPU backend. PNG files are encoded and written on a thread of their
//! own while the next frame is trained and drawn, and the time of each stage is counted.

use std::path::PathBuf;
use std::sync::Arc;

use bevy::math::Vec2;
use burn::tensor::backend::AutodiffBackend;

use super::camera::OrbitCamera;
use super::offscreen::OffscreenRenderer;
use super::training::frame_of;
use crate::backend::{BackendTask, run_on};
use crate::config::TrainConfig;
use crate::progress::Progress;
use crate::train::{Trainer, TrainingData};
use crate::video::{self, VideoOutput};

/// Everything `clamp record` needs.
#[derive(Clone, Debug)]
pub struct RecordOptions {
    pub config: TrainConfig,
    /// Steps trained before the first frame: the stretch of the run that is recorded starts
    /// there.
    pub start_step: usize,
    pub frames: usize,
    pub steps_per_frame: usize,
    pub fps: f64,
    pub size: (u32, u32),
    /// Degrees per second of camera orbit (in video time).
    pub orbit: f32,
    pub output: VideoOutput,
    /// Runs recorded beside the first: each frame shows them all, side by side (two) or in a
    /// 2 x 2 grid (three or four).
    pub compare: Option<crate::compare::Comparison>,
}

impl RecordOptions {
    /// The defaults of `clamp record` for `config`, into `output`.
    pub fn for_config(config: TrainConfig, output: VideoOutput) -> Self {
        Self {
            config,
            start_step: 0,
            frames: 120,
            steps_per_frame: 2,
            fps: 24.0,
            size: (960, 540),
            orbit: 6.0,
            output,
            compare: None,
        }
    }

    /// Checks every value; errors name the flag.
    pub fn validate(&self) -> Result<(), String> {
        let (w, h) = self.size;
        if w == 0 || h == 0 {
            return Err(format!(
                "--size {w}x{h}: width and height must be at least 1"
            ));
        }
        if w > 8192 || h > 8192 {
            return Err(format!("--size {w}x{h}: at most 8192 pixels a side"));
        }
        if self.frames == 0 || self.frames > 100_000 {
            return Err(format!("--frames {}: allowed 1 to 100000", self.frames));
        }
        if self.start_step > 10_000_000 {
            return Err(format!(
                "--start-step {}: allowed 0 to 10000000",
                self.start_step
            ));
        }
        if self.steps_per_frame > 100_000 {
            return Err(format!(
                "--steps-per-frame {}: allowed 0 to 100000",
                self.steps_per_frame
            ));
        }
        if !(self.fps.is_finite() && self.fps > 0.0 && self.fps <= 240.0) {
            return Err(format!("--fps {}: allowed above 0 up to 240", self.fps));
        }
        if !self.orbit.is_finite() || self.orbit.abs() > 3600.0 {
            return Err(format!(
                "--orbit {}: allowed -3600 to 3600 degrees per second",
                self.orbit
            ));
        }
        if self.compare.is_some() && (w < 2 || h < 2) {
            return Err(format!(
                "--size {w}x{h}: views side by side need at least 2 pixels across and down"
            ));
        }
        self.config.validate().map_err(String::from)
    }
}

/// What a recording produced.
#[derive(Clone, Debug)]
pub struct RecordSummary {
    pub frames: Vec<PathBuf>,
    /// The GIF or MP4, when one was written.
    pub video: Option<PathBuf>,
    /// Why no video was written, when one was asked for.
    pub note: Option<String>,
    pub steps: usize,
    pub seconds: f64,
    /// Where the frames' time went.
    pub stages: StageSeconds,
}

/// Seconds spent in each stage of the frames: the profile of a recording.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct StageSeconds {
    /// Training steps between frames.
    pub training: f64,
    /// Embedding the drawn images and reading their spheres back.
    pub embedding: f64,
    /// Drawing the scene and reading the picture back.
    pub drawing: f64,
    /// Encoding and writing PNG files, on a thread of its own beside the stages above.
    pub writing: f64,
    /// Waiting for that thread (the writing that the other stages did not hide).
    pub waiting_for_writing: f64,
    /// The frames' wall time, from the first frame's training to the last file written.
    pub frames: f64,
}

/// Times `work` into `seconds`.
fn timed<T>(seconds: &mut f64, work: impl FnOnce() -> T) -> T {
    let started = web_time::Instant::now();
    let value = work();
    *seconds += started.elapsed().as_secs_f64();
    value
}

/// A recording's frames as they are made: numbered PNG files written on a thread of their own
/// while the next frame is drawn.
struct FrameFiles {
    dir: PathBuf,
    written: Vec<PathBuf>,
    writer: video::FrameWriter,
    started: web_time::Instant,
}

impl FrameFiles {
    fn start(output: &VideoOutput, frames: usize) -> Self {
        Self {
            dir: output.frames_dir(),
            written: Vec::with_capacity(frames),
            writer: video::FrameWriter::spawn(),
            started: web_time::Instant::now(),
        }
    }

    /// Hands the next frame to the writer (waiting only when it is behind).
    fn write(&mut self, image: image::RgbaImage, stages: &mut StageSeconds) -> Result<(), String> {
        let path = video::frame_path(&self.dir, self.written.len());
        timed(&mut stages.waiting_for_writing, || {
            self.writer.write(path.clone(), image)
        })?;
        self.written.push(path);
        Ok(())
    }

    /// Waits for the last file; the frames written, and the video `output` asks for made of
    /// them (or why there is none).
    fn finish(
        self,
        output: &VideoOutput,
        fps: f64,
        stages: &mut StageSeconds,
    ) -> Result<(Vec<PathBuf>, Option<PathBuf>, Option<String>), String> {
        let writer = self.writer;
        stages.writing = timed(&mut stages.waiting_for_writing, || writer.finish())?;
        stages.frames = self.started.elapsed().as_secs_f64();
        let (video_path, note) = encode(output, &self.written, fps)?;
        Ok((self.written, video_path, note))
    }
}

/// `clamp record --from DIR`: a frame for each picture a run wrote into its folder (trained
/// elsewhere, or by `clamp train`), projected and aligned from picture to picture as the viewer
/// does, each captioned with the step, Z and the class purity of what it shows. Nothing is
/// trained, so the same pictures give the same bytes.
pub fn record_from(
    dir: &std::path::Path,
    size: (u32, u32),
    fps: f64,
    orbit: f32,
    sphere_size: f32,
    output: VideoOutput,
) -> Result<RecordSummary, String> {
    let started = web_time::Instant::now();
    let header = crate::pictures::PictureHeader::read(dir).map_err(|e| format!("--from: {e}"))?;
    let read = crate::pictures::read_pictures(dir)?;
    let note = read.damage.clone();
    if let Some(damage) = &read.damage {
        eprintln!("warning: {damage}");
    }
    if read.pictures.is_empty() {
        return Err(format!(
            "--from {}: no whole picture to draw{}",
            dir.display(),
            note.map(|n| format!(" ({n})")).unwrap_or_default()
        ));
    }
    if let Some(problem) = super::renderer_problem(crate::backend::probe_adapter().as_ref()) {
        return Err(problem);
    }
    output.prepare()?;
    let mut renderer = OffscreenRenderer::new(size)?;
    renderer.set_sphere_size(sphere_size);
    let name = super::runs::folder_name(dir);
    let mut progress = Progress::new("record", read.pictures.len());
    let mut stages = StageSeconds::default();
    let mut files = FrameFiles::start(&output, read.pictures.len());
    let mut last_step = 0;
    for (index, picture) in read.pictures.into_iter().enumerate() {
        let frame = super::follow::frame_of_picture(picture, &header);
        let (step, dim, contacts) = (frame.step, frame.dim, frame.mean_contacts());
        last_step = step;
        let yaw = OrbitCamera::default().yaw + (orbit * index as f32 / fps as f32).to_radians();
        let mut image = timed(&mut stages.drawing, || renderer.render(frame, yaw))?;
        let caption = format!(
            "{name}  step {step}  Z {contacts:.1} (2d = {})  class purity {:.2}",
            2 * dim,
            renderer.purity().unwrap_or(f64::NAN),
        );
        progress.set_message(&caption);
        video::draw_caption(&mut image, &caption);
        files.write(image, &mut stages)?;
        progress.set(index + 1);
    }
    progress.finish();
    let (written, video_path, encode_note) = files.finish(&output, fps, &mut stages)?;
    Ok(RecordSummary {
        frames: written,
        video: video_path,
        note: encode_note.or(note),
        steps: last_step,
        seconds: started.elapsed().as_secs_f64(),
        stages,
    })
}

/// Validates, prepares the output (before any training), then records.
pub fn record(options: RecordOptions) -> Result<RecordSummary, String> {
    options.validate()?;
    if let Some(problem) = super::renderer_problem(crate::backend::probe_adapter().as_ref()) {
        return Err(problem);
    }
    options.output.prepare()?;
    let start = crate::train::RunStart::prepare(&options.config)?.for_training(&options.config)?;
    start.report_to_stderr();
    let data = start.data;
    run_on(&start.backend, RecordTask { options, data })
}

struct RecordTask {
    options: RecordOptions,
    data: Arc<TrainingData>,
}

impl BackendTask for RecordTask {
    type Output = Result<RecordSummary, String>;

    fn run<B: AutodiffBackend>(self, device: B::Device) -> Self::Output {
        let started = web_time::Instant::now();
        let RecordOptions {
            config,
            start_step,
            frames,
            steps_per_frame,
            fps,
            size,
            orbit,
            output,
            compare,
        } = self.options;
        if let Some(comparison) = compare {
            let fault = crate::train::Fault::from_env()?;
            let runs: Vec<Trainer<B>> = comparison
                .configs
                .iter()
                .map(|config| {
                    let mut trainer =
                        Trainer::<B>::new(config.clone(), self.data.clone(), device.clone());
                    trainer.set_fault(fault);
                    trainer
                })
                .collect();
            return record_comparison(
                runs,
                &comparison,
                Recording {
                    start_step,
                    frames,
                    steps_per_frame,
                    fps,
                    size,
                    orbit,
                    output,
                    started,
                },
            );
        }
        let mut trainer = Trainer::<B>::new(config, self.data, device);
        trainer.set_fault(crate::train::Fault::from_env()?);
        let mut renderer = OffscreenRenderer::new(size)?;
        if start_step > 0 {
            let mut progress = Progress::new("train to the first frame", start_step);
            for step in 0..start_step {
                step_or_note(&mut trainer, &mut progress)?;
                progress.set(step + 1);
            }
            progress.finish();
        }
        let mut progress = Progress::new("record", frames);
        let mut stages = StageSeconds::default();
        let mut files = FrameFiles::start(&output, frames);
        for index in 0..frames {
            if index > 0 {
                timed(&mut stages.training, || {
                    (0..steps_per_frame).try_for_each(|_| step_or_note(&mut trainer, &mut progress))
                })?;
            }
            let snapshot = timed(&mut stages.embedding, || trainer.snapshot());
            let metrics = &snapshot.readout.metrics;
            let (step, params, dim) = (snapshot.step, snapshot.params, snapshot.readout.dim);
            let contacts = metrics.mean_contacts;
            let yaw = OrbitCamera::default().yaw + (orbit * index as f32 / fps as f32).to_radians();
            let mut image = timed(&mut stages.drawing, || {
                renderer.render(frame_of(snapshot), yaw)
            })?;
            // The scene computed the purity of what it drew, as the viewer's does.
            let caption = format!(
                "step {step}  r_s {:.2}  alpha {:.2}  Z {contacts:.1} (2d = {})  class purity {:.2}",
                params.radius_scale,
                params.alpha,
                2 * dim,
                renderer.purity().unwrap_or(f64::NAN),
            );
            progress.set_message(&caption);
            video::draw_caption(&mut image, &caption);
            files.write(image, &mut stages)?;
            progress.set(index + 1);
        }
        progress.finish();
        let (written, video_path, note) = files.finish(&output, fps, &mut stages)?;
        Ok(RecordSummary {
            frames: written,
            video: video_path,
            note,
            steps: trainer.step_count(),
            seconds: started.elapsed().as_secs_f64(),
            stages,
        })
    }
}

/// The video of the frames written, as `output` asks; or why there is none.
fn encode(
    output: &VideoOutput,
    written: &[PathBuf],
    fps: f64,
) -> Result<(Option<PathBuf>, Option<String>), String> {
    let dir = output.frames_dir();
    Ok(match output {
        VideoOutput::Frames(_) => (None, None),
        VideoOutput::Gif(file) => {
            video::encode_gif(written, file, fps)?;
            (Some(file.clone()), None)
        }
        VideoOutput::Mp4(file) => {
            if video::ffmpeg_available() {
                video::encode_mp4(&dir, file, fps)?;
                (Some(file.clone()), None)
            } else {
                (
                    None,
                    Some(format!(
                        "ffmpeg is not on PATH: no MP4 written; the PNG frames are in {}",
                        dir.display()
                    )),
                )
            }
        }
    })
}

/// A recording's shape, shared by one run and a comparison.
struct Recording {
    start_step: usize,
    frames: usize,
    steps_per_frame: usize,
    fps: f64,
    size: (u32, u32),
    orbit: f32,
    output: VideoOutput,
    started: web_time::Instant,
}

/// Where each of `n` views goes in a `width` x `height` frame, as (x, y, width, height): one
/// fills it, two split it left and right, three or four make a 2 x 2 grid (row by row), as the
/// viewer lays them out.
pub fn grid_cells(n: usize, width: u32, height: u32) -> Vec<(u32, u32, u32, u32)> {
    let (left, right) = (width / 2, width - width / 2);
    let (top, bottom) = (height / 2, height - height / 2);
    match n {
        0 => Vec::new(),
        1 => vec![(0, 0, width, height)],
        2 => vec![(0, 0, left, height), (left, 0, right, height)],
        _ => [
            (0, 0, left, top),
            (left, 0, right, top),
            (0, top, left, bottom),
            (left, top, right, bottom),
        ]
        .into_iter()
        .take(n.min(4))
        .collect(),
    }
}

/// Every run of a comparison in lock-step, each drawn into its cell of every frame from the
/// same camera (placed for whichever run reaches furthest, so all show at one scale) and
/// captioned with its settings.
fn record_comparison<B: AutodiffBackend>(
    mut runs: Vec<Trainer<B>>,
    comparison: &crate::compare::Comparison,
    recording: Recording,
) -> Result<RecordSummary, String> {
    let Recording {
        start_step,
        frames,
        steps_per_frame,
        fps,
        size: (width, height),
        orbit,
        output,
        started,
    } = recording;
    let cells = grid_cells(runs.len(), width, height);
    let mut renderers = cells
        .iter()
        .map(|&(_, _, w, h)| OffscreenRenderer::new((w, h)))
        .collect::<Result<Vec<_>, String>>()?;
    let step_all = |runs: &mut Vec<Trainer<B>>, progress: &mut Progress| {
        runs.iter_mut()
            .try_for_each(|trainer| step_or_note(trainer, progress))
    };
    if start_step > 0 {
        let mut progress = Progress::new("train the runs to the first frame", start_step);
        for step in 0..start_step {
            step_all(&mut runs, &mut progress)?;
            progress.set(step + 1);
        }
        progress.finish();
    }
    let narrow =
        super::camera::narrow_view_framing(Vec2::new(cells[0].2 as f32, cells[0].3 as f32));
    let mut progress = Progress::new(&format!("record {} runs", runs.len()), frames);
    let mut stages = StageSeconds::default();
    let mut files = FrameFiles::start(&output, frames);
    let divider = image::Rgba([60, 60, 60, 255]);
    for index in 0..frames {
        if index > 0 {
            timed(&mut stages.training, || {
                (0..steps_per_frame).try_for_each(|_| step_all(&mut runs, &mut progress))
            })?;
        }
        let scenes: Vec<super::scene::SceneFrame> = timed(&mut stages.embedding, || {
            runs.iter()
                .map(|trainer| frame_of(trainer.snapshot()))
                .collect()
        });
        let reach = scenes.iter().map(frame_reach).fold(0.0, f32::max);
        let framing = super::camera::framing_for(reach) * narrow;
        let yaw = OrbitCamera::default().yaw + (orbit * index as f32 / fps as f32).to_radians();
        let mut image = image::RgbaImage::from_pixel(width, height, background());
        for (run, ((frame, renderer), &(x, y, _, _))) in scenes
            .into_iter()
            .zip(&mut renderers)
            .zip(&cells)
            .enumerate()
        {
            let (step, contacts, dim) = (frame.step, frame.mean_contacts(), frame.dim);
            let mut cell = timed(&mut stages.drawing, || {
                renderer.render_framed(frame, yaw, framing)
            })?;
            let caption = format!(
                "{}\nstep {step}  Z {contacts:.1} (2d = {})  purity {:.2}",
                comparison.caption(run),
                2 * dim,
                renderer.purity().unwrap_or(f64::NAN),
            );
            video::draw_caption(&mut cell, &caption);
            image::imageops::replace(&mut image, &cell, x as i64, y as i64);
        }
        // Thin lines between the cells.
        for &(x, y, w, h) in &cells {
            if x + w < width {
                for yy in y..y + h {
                    image.put_pixel(x + w - 1, yy, divider);
                }
            }
            if y + h < height {
                for xx in x..x + w {
                    image.put_pixel(xx, y + h - 1, divider);
                }
            }
        }
        progress.set_message(&comparison.legend());
        files.write(image, &mut stages)?;
        progress.set(index + 1);
    }
    progress.finish();
    let (written, video_path, note) = files.finish(&output, fps, &mut stages)?;
    Ok(RecordSummary {
        frames: written,
        video: video_path,
        note,
        steps: runs[0].step_count(),
        seconds: started.elapsed().as_secs_f64(),
        stages,
    })
}

/// The scene's background as an 8-bit pixel (an empty cell of a 2 x 2 grid of three runs).
fn background() -> image::Rgba<u8> {
    let c = super::palette::BACKGROUND.to_srgba();
    let byte = |v: f32| (v * 255.0).round() as u8;
    image::Rgba([byte(c.red), byte(c.green), byte(c.blue), 255])
}

/// How far a frame's spheres reach from their mean (all but the largest 2%), in the
/// embedding: the projection to 3-D is centered on the mean and shortens no distance for
/// d = 3 (for larger d it may, so this errs on the side of showing everything).
fn frame_reach(frame: &super::scene::SceneFrame) -> f32 {
    let (n, dim) = (frame.radii.len(), frame.dim.max(1));
    if n == 0 || frame.centers.len() < n * dim {
        return 0.0;
    }
    let mut mean = vec![0.0f32; dim];
    for row in frame.centers.chunks(dim).take(n) {
        for (m, x) in mean.iter_mut().zip(row) {
            *m += x / n as f32;
        }
    }
    let mut reach: Vec<f32> = frame
        .centers
        .chunks(dim)
        .zip(&frame.radii)
        .map(|(row, r)| {
            row.iter()
                .zip(&mean)
                .map(|(x, m)| (x - m) * (x - m))
                .sum::<f32>()
                .sqrt()
                + r
        })
        .collect();
    let k = ((n as f32 * 0.98) as usize).min(n - 1);
    *reach.select_nth_unstable_by(k, f32::total_cmp).1
}

/// One training step; a skipped non-finite step is noted above the progress bar, and only a run
/// of them stops the recording.
fn step_or_note<B: AutodiffBackend>(
    trainer: &mut Trainer<B>,
    progress: &mut Progress,
) -> Result<(), String> {
    match trainer.step() {
        Ok(_) => Ok(()),
        Err(skipped) if !skipped.is_fatal() => {
            progress.note(&skipped.to_string());
            Ok(())
        }
        Err(fatal) => Err(fatal.to_string()),
    }
}
