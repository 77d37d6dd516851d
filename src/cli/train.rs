//! `clamp train`, `clamp eval` and `clamp embed`.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use web_time::Instant;

use burn::tensor::backend::AutodiffBackend;
use serde_json::json;

use super::flags::{TrainingFlags, set, validated};
use super::signals;
use crate::backend::BackendChoice;
use crate::backend::{BackendTask, run_on};
use crate::config::TrainConfig;
use crate::eval::{Features, KNN_K, ProbeSettings, knn_accuracy, linear_probe_accuracy};
use crate::model::EncoderKind;
use crate::optim::OptimizerKind;
use crate::progress::Progress;
use crate::train::{Fault, FaultKind, ProbeReport, RunStart, Trainer, TrainingData, checkpoint};

/// `clamp train`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct TrainArgs {
    #[command(flatten)]
    pub training: TrainingFlags,
    /// Passes over the training set (instead of --steps).
    #[arg(long, value_name = "E")]
    pub epochs: Option<f64>,
    /// The run's directory: metrics.jsonl, checkpoints/ [default: runs/seedS-UNIXTIME].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Optimizer (LARS is the large-batch recipe of the paper's ResNet runs).
    #[arg(long, value_enum)]
    pub optimizer: Option<OptimizerKind>,
    /// The backbone whose features the probes score.
    #[arg(long, value_enum)]
    pub encoder: Option<EncoderKind>,
    /// Run the kNN and linear probes every N steps (0: at the start and the end only).
    #[arg(long, value_name = "N")]
    pub eval_every: Option<usize>,
    /// Temperature of SimCLR's NT-Xent (with --loss simclr).
    #[arg(long, value_name = "T")]
    pub temperature: Option<f64>,
    /// Steps of linear learning-rate warm-up before the cosine schedule.
    #[arg(long, value_name = "N")]
    pub warmup_steps: Option<usize>,
    /// Training images the probes fit on (all of them, in order, when at least the set's size).
    #[arg(long, value_name = "N")]
    pub probe_train_images: Option<usize>,
    /// Minimise the energy E itself instead of the paper's ln(E + 1e-6).
    #[arg(long)]
    pub no_log: bool,
    /// Continue the run in DIR from its newest whole checkpoint, as if never interrupted (with
    /// its own configuration: only --steps, --epochs, --backend, --eval-every and
    /// --checkpoint-every may accompany it).
    #[arg(long, value_name = "DIR")]
    pub resume: Option<PathBuf>,
    /// Save a checkpoint every N steps (0: only on Ctrl-C and at the end) [default: about
    /// every five minutes of work].
    #[arg(long, value_name = "N")]
    pub checkpoint_every: Option<usize>,
    /// Write the packing of the drawn held-out images to the run's pictures.bin every N steps,
    /// and at the last (0: no pictures) [default: about every 2 s of work, at most 2.5% of
    /// it]. `clamp view --follow` and `clamp record --from` draw them.
    #[arg(long, value_name = "N")]
    pub picture_every: Option<usize>,
    /// Held-out images in each picture (the first of them are the ones the viewer draws).
    #[arg(long, value_name = "N", default_value_t = crate::pictures::DEFAULT_SPHERES)]
    pub picture_spheres: usize,
}

impl TrainArgs {
    /// The config from `--config FILE` (or the defaults) with every flag applied, validated.
    pub fn config(&self) -> Result<TrainConfig, String> {
        let config = match &self.training.config {
            Some(path) => TrainConfig::from_toml_file(path)?,
            None => TrainConfig::default(),
        };
        let mut config = self.training.apply(config);
        set(&mut config.optimizer, &self.optimizer);
        set(&mut config.encoder, &self.encoder);
        set(&mut config.eval_every, &self.eval_every);
        set(&mut config.temperature, &self.temperature);
        set(&mut config.warmup_steps, &self.warmup_steps);
        set(&mut config.probe_train_images, &self.probe_train_images);
        if self.epochs.is_some() {
            config.epochs = self.epochs;
        }
        if self.out.is_some() {
            config.out = self.out.clone();
        }
        if self.no_log {
            config.log_energy = false;
        }
        validated(config)
    }
}

/// How often `clamp train` saves a checkpoint while it runs.
#[derive(Clone, Copy, Debug)]
enum CheckpointEvery {
    Steps(usize),
    /// The default: about five minutes of work, whatever a step costs.
    Seconds(f64),
}

const DEFAULT_CHECKPOINT_SECONDS: f64 = 300.0;

/// How often `clamp train` writes a picture.
#[derive(Clone, Copy, Debug)]
enum PictureEvery {
    Never,
    Steps(usize),
    /// The default: after this many seconds of work, or 40 times what the last picture took
    /// if longer (so pictures cost at most 2.5% of the run).
    Seconds(f64),
}

const DEFAULT_PICTURE_SECONDS: f64 = 2.0;
const PICTURE_COST_SHARE: f64 = 40.0;

/// Flags that may accompany `--resume`: they change how the run goes on, not what it trains.
const RESUME_FLAGS: &[&str] = &[
    "resume",
    "backend",
    "steps",
    "epochs",
    "eval-every",
    "checkpoint-every",
    "picture-every",
];

/// Exit code of a run stopped by repeated non-finite steps.
pub const EXIT_DIVERGED: i32 = 3;

/// `clamp train`; `given` names the flags on the command line. Returns the exit code (0,
/// 128 + signal when interrupted, [`EXIT_DIVERGED`]).
pub fn train(args: TrainArgs, given: &[String]) -> Result<i32, String> {
    let fault = Fault::from_env()?;
    let checkpoint_every = match args.checkpoint_every {
        Some(steps) => CheckpointEvery::Steps(steps),
        None => CheckpointEvery::Seconds(DEFAULT_CHECKPOINT_SECONDS),
    };
    let picture_every = match args.picture_every {
        Some(0) => PictureEvery::Never,
        Some(steps) => PictureEvery::Steps(steps),
        None => PictureEvery::Seconds(DEFAULT_PICTURE_SECONDS),
    };
    let picture_spheres = args.picture_spheres;
    if !(2..=crate::pictures::MAX_SPHERES).contains(&picture_spheres) {
        return Err(format!(
            "--picture-spheres {picture_spheres}: allowed 2 to {}",
            crate::pictures::MAX_SPHERES
        ));
    }
    let (config, out) = match &args.resume {
        Some(run) => {
            if let Some(flag) = given
                .iter()
                .find(|flag| !RESUME_FLAGS.contains(&flag.as_str()))
            {
                return Err(format!(
                    "--{flag} cannot be given with --resume, which continues the run in {} with \
                     its own configuration (start a new run with --out to change it)",
                    run.display()
                ));
            }
            // A save that a crash cut short left its pieces beside the checkpoints.
            for line in checkpoint::recover_interrupted_saves(run) {
                eprintln!("{line}");
            }
            let found = checkpoint::find(run)?;
            let mut config = checkpoint::load_config(&found.dir)?;
            if let Some(backend) = args.training.backend {
                config.backend = backend;
            }
            if let Some(steps) = args.training.steps {
                config.steps = steps;
                config.epochs = None;
            }
            if args.epochs.is_some() {
                config.epochs = args.epochs;
            }
            if let Some(every) = args.eval_every {
                config.eval_every = every;
            }
            config.out = Some(run.clone());
            (validated(config)?, run.clone())
        }
        None => {
            let mut config = args.config()?;
            let out = config.out.clone().unwrap_or_else(|| {
                PathBuf::from(format!(
                    "runs/seed{}-{}",
                    config.seed,
                    crate::progress::unix_time()
                ))
            });
            config.out = Some(out.clone());
            (config, out)
        }
    };
    let resuming = args.resume.is_some();
    std::fs::create_dir_all(&out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let metrics_path = out.join("metrics.jsonl");
    // Checked before any training: the metrics file must be writable.
    let metrics = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&metrics_path)
        .map_err(|e| format!("cannot write {}: {e}", metrics_path.display()))?;

    let start = RunStart::prepare(&config)?.for_training(&config)?;
    start.report_to_stderr();
    let RunStart { data, backend, .. } = start;
    signals::install();
    let outcome = run_on(
        &backend,
        TrainRun {
            config,
            data,
            out,
            metrics,
            resuming,
            checkpoint_every,
            picture_every,
            picture_spheres,
            fault,
        },
    )?;
    match outcome {
        Outcome::Finished(summary) => {
            println!("{summary}");
            Ok(0)
        }
        Outcome::Interrupted { signal } => Ok(128 + signal),
        Outcome::Diverged(message) => {
            eprintln!("clamp train: {message}");
            Ok(EXIT_DIVERGED)
        }
    }
}

/// How a training run ended.
enum Outcome {
    /// All steps done: the summary JSON.
    Finished(String),
    /// Stopped by a signal after saving a checkpoint.
    Interrupted { signal: i32 },
    /// Stopped by non-finite steps after saving the last finite state.
    Diverged(String),
}

struct TrainRun {
    config: TrainConfig,
    data: Arc<TrainingData>,
    out: PathBuf,
    metrics: File,
    resuming: bool,
    checkpoint_every: CheckpointEvery,
    picture_every: PictureEvery,
    picture_spheres: usize,
    fault: Option<Fault>,
}

/// The pictures a run writes as it trains, and what they cost.
struct Pictures {
    writer: crate::pictures::PictureWriter,
    images: Vec<usize>,
    every: PictureEvery,
    last: Instant,
    last_cost: f64,
    seconds: f64,
    written: usize,
}

impl Pictures {
    /// Starts (or, resuming at `step`, continues) the run's pictures, with one of `step`.
    fn start<B: AutodiffBackend>(
        trainer: &Trainer<B>,
        out: &std::path::Path,
        every: PictureEvery,
        spheres: usize,
        resuming: bool,
    ) -> Result<Option<Self>, String> {
        use crate::pictures::{PictureHeader, PictureWriter};
        if matches!(every, PictureEvery::Never) {
            return Ok(None);
        }
        let test = &trainer.data.test;
        let images = crate::train::inputs::drawn_images(test.len, trainer.config.seed, spheres);
        let labels = images.iter().map(|&i| test.labels[i]).collect();
        let mut header =
            PictureHeader::new(trainer.config.dim, labels, images.clone(), "clamp train");
        header.classes = test.class_names.clone();
        let step = trainer.step_count() as u64;
        let writer = if resuming {
            PictureWriter::resume(out, header, step)?
        } else {
            PictureWriter::create(out, header)?
        };
        let mut pictures = Self {
            writer,
            images,
            every,
            last: Instant::now(),
            last_cost: 0.0,
            seconds: 0.0,
            written: 0,
        };
        // A resumed run goes on from the pictures it kept: the same pictures as a run never
        // interrupted.
        if pictures.writer.last_step().is_none() {
            pictures.write(trainer)?;
        }
        Ok(Some(pictures))
    }

    fn write<B: AutodiffBackend>(&mut self, trainer: &Trainer<B>) -> Result<(), String> {
        let started = Instant::now();
        self.writer.write(&trainer.picture(&self.images))?;
        self.last_cost = started.elapsed().as_secs_f64();
        self.seconds += self.last_cost;
        self.written += 1;
        self.last = Instant::now();
        Ok(())
    }

    /// Writes one after `trainer`'s step if one is due (always at the run's last step).
    fn after_step<B: AutodiffBackend>(
        &mut self,
        trainer: &Trainer<B>,
        total: usize,
    ) -> Result<(), String> {
        let step = trainer.step_count();
        let due = step >= total
            || match self.every {
                PictureEvery::Never => false,
                PictureEvery::Steps(every) => step.is_multiple_of(every),
                PictureEvery::Seconds(seconds) => {
                    self.last.elapsed().as_secs_f64()
                        >= seconds.max(PICTURE_COST_SHARE * self.last_cost)
                }
            };
        if due && self.writer.last_step() != Some(step as u64) {
            self.write(trainer)?;
        }
        Ok(())
    }
}

impl BackendTask for TrainRun {
    type Output = Result<Outcome, String>;

    fn run<B: AutodiffBackend>(self, device: B::Device) -> Self::Output {
        let TrainRun {
            config,
            data,
            out,
            mut metrics,
            resuming,
            checkpoint_every,
            picture_every,
            picture_spheres,
            fault,
        } = self;
        let started = Instant::now();
        let mut trainer = if resuming {
            let (trainer, dir) = load_newest::<B>(&out, &config, data, device)?;
            let step = trainer.step_count();
            // Lines past the checkpoint belong to steps that will be run again.
            metrics = keep_metrics_up_to(&out.join("metrics.jsonl"), step)?;
            eprintln!("resuming at step {step} from {}", dir.display());
            write_line(
                &mut metrics,
                &json!({"event": "resumed", "step": step, "checkpoint": dir}).to_string(),
            )?;
            trainer
        } else {
            Trainer::<B>::new(config.clone(), data, device)
        };
        // The first picture before the first probe, so a follower sees the run at once.
        let mut pictures =
            Pictures::start(&trainer, &out, picture_every, picture_spheres, resuming)?;
        let initial = if resuming {
            None
        } else {
            let initial = trainer.probe();
            eprintln!(
                "at initialisation: kNN {:.4}, linear probe {:.4} ({:.1} s)",
                initial.knn_acc, initial.linear_acc, initial.seconds
            );
            write_line(&mut metrics, &probe_json(&initial))?;
            Some(initial)
        };
        trainer.set_fault(fault);
        let total = trainer.total_steps();
        let first_step = trainer.step_count();

        let mut progress = Progress::new("train", total);
        progress.set(first_step);
        progress.set_message("first step: compiling kernels, tuning");
        let mut last = None;
        let mut latest_probe: Option<ProbeReport> = None;
        let mut image_seconds = (0usize, 0.0f64);
        let mut last_save = Instant::now();
        while trainer.step_count() < total {
            match trainer.step() {
                Ok(report) => {
                    if report.step == first_step + 1 {
                        progress.note(&format!(
                            "first step took {:.2} s (warm-up included)",
                            report.seconds
                        ));
                    } else {
                        image_seconds.0 +=
                            trainer.config.batch.min(trainer.data.train.len) * config.views;
                        image_seconds.1 += report.seconds;
                    }
                    write_line(
                        &mut metrics,
                        &serde_json::to_string(&report).unwrap_or_default(),
                    )?;
                    progress.set_message(&format!(
                        "loss {:.4}  Z {:.2}  {:.0} img/s",
                        report.loss, report.packing.mean_contacts, report.images_per_sec
                    ));
                    if config.eval_every > 0
                        && report.step % config.eval_every == 0
                        && report.step < total
                    {
                        let probe = trainer.probe();
                        progress.note(&format!(
                            "step {}: kNN {:.4}, linear probe {:.4}",
                            probe.step, probe.knn_acc, probe.linear_acc
                        ));
                        write_line(&mut metrics, &probe_json(&probe))?;
                        latest_probe = Some(probe);
                    }
                    last = Some(report);
                }
                Err(skipped) => {
                    write_line(
                        &mut metrics,
                        &json!({
                            "event": "non_finite",
                            "step": skipped.step,
                            "what": skipped.what,
                            "base_lr": skipped.lr,
                            "in_a_row": skipped.in_a_row,
                        })
                        .to_string(),
                    )?;
                    if !skipped.is_fatal() {
                        progress.note(&format!("warning: {skipped}"));
                    } else {
                        progress.finish();
                        let dir = checkpoint::save_in_run(&trainer, &out)?;
                        write_line(
                            &mut metrics,
                            &json!({"event": "stopped", "step": trainer.step_count(), "checkpoint": dir})
                                .to_string(),
                        )?;
                        return Ok(Outcome::Diverged(format!(
                            "{skipped}. Checkpoint of that state: {}",
                            dir.display()
                        )));
                    }
                }
            }
            let step = trainer.step_count();
            progress.set(step);
            if let Some(pictures) = pictures.as_mut() {
                pictures.after_step(&trainer, total)?;
            }
            if fault.is_some_and(|f| f.kind == FaultKind::Interrupt && f.strikes(step)) {
                signals::interrupt_self();
            }
            if fault.is_some_and(|f| f.kind == FaultKind::Stall && f.strikes(step)) {
                let until = Instant::now() + std::time::Duration::from_secs(120);
                while signals::received().is_none() && Instant::now() < until {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
            }
            if let Some(signal) = signals::received() {
                progress.finish();
                let dir = checkpoint::save_in_run(&trainer, &out)?;
                write_line(
                    &mut metrics,
                    &json!({"event": "interrupted", "step": step, "signal": signal, "checkpoint": dir})
                        .to_string(),
                )?;
                eprintln!(
                    "{} at step {step}: checkpoint saved to {}; continue with: clamp train --resume {}",
                    signals::name(signal),
                    dir.display(),
                    out.display()
                );
                return Ok(Outcome::Interrupted { signal });
            }
            let due = match checkpoint_every {
                CheckpointEvery::Steps(every) => every > 0 && step % every == 0,
                CheckpointEvery::Seconds(seconds) => last_save.elapsed().as_secs_f64() >= seconds,
            };
            if due && step < total {
                let dir = checkpoint::save_in_run(&trainer, &out)?;
                write_line(
                    &mut metrics,
                    &json!({"event": "checkpoint", "step": step, "checkpoint": dir}).to_string(),
                )?;
                last_save = Instant::now();
            }
        }
        progress.finish();
        let probe = match latest_probe.filter(|p| p.step == total) {
            Some(p) => p,
            None => {
                let p = trainer.probe();
                write_line(&mut metrics, &probe_json(&p))?;
                p
            }
        };
        let checkpoint_dir = checkpoint::save_in_run(&trainer, &out)?;
        write_line(
            &mut metrics,
            &json!({"event": "checkpoint", "step": total, "checkpoint": checkpoint_dir})
                .to_string(),
        )?;
        let snapshot = trainer.snapshot();
        let (loss, mean_contacts, activity, images_per_sec) = match &last {
            Some(r) => (
                r.loss,
                r.packing.mean_contacts,
                r.packing.activity,
                r.images_per_sec,
            ),
            None => (f64::NAN, f64::NAN, f64::NAN, f64::NAN),
        };
        Ok(Outcome::Finished(
            json!({
                "steps": trainer.step_count(),
                "loss": loss,
                "mean_contacts": mean_contacts,
                "activity": activity,
                "knn_acc": probe.knn_acc,
                "linear_acc": probe.linear_acc,
                "initial_knn_acc": initial.as_ref().map(|p| p.knn_acc),
                "initial_linear_acc": initial.as_ref().map(|p| p.linear_acc),
                "nearest_centroid_acc": snapshot.readout.metrics.nearest_centroid_acc,
                "images_per_sec": if image_seconds.1 > 0.0 { image_seconds.0 as f64 / image_seconds.1 } else { images_per_sec },
                "seconds": started.elapsed().as_secs_f64(),
                "loss_kind": config.loss,
                "checkpoint": checkpoint_dir,
                "resumed": resuming,
                "pictures": pictures.as_ref().map(|p| p.written),
                "picture_seconds": pictures.as_ref().map(|p| p.seconds),
            })
            .to_string(),
        ))
    }
}

/// The newest whole checkpoint of `run` (a run or checkpoint directory) with `config`, saying
/// on stderr which damaged ones were passed over.
fn load_newest<B: AutodiffBackend>(
    run: &std::path::Path,
    config: &TrainConfig,
    data: Arc<TrainingData>,
    device: B::Device,
) -> Result<(Trainer<B>, PathBuf), String> {
    let (trainer, dir, passed_over) =
        checkpoint::load_newest::<B>(run, |_| Ok(config.clone()), data, device)?;
    for reason in &passed_over {
        eprintln!("warning: passed over a damaged checkpoint: {reason}");
    }
    Ok((trainer, dir))
}

/// Rewrites `path` (atomically) keeping the lines of steps up to `step`, and returns it open for
/// appending. Lines without a step, or torn by an interruption, are dropped.
pub fn keep_metrics_up_to(path: &std::path::Path, step: usize) -> Result<File, String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let kept: String = text
        .lines()
        .filter(|line| {
            serde_json::from_str::<serde_json::Value>(line)
                .ok()
                .and_then(|v| v.get("step").and_then(|s| s.as_u64()))
                .is_some_and(|s| s as usize <= step)
        })
        .flat_map(|line| [line, "\n"])
        .collect();
    crate::atomic::write_atomically(path, kept.as_bytes())?;
    OpenOptions::new()
        .append(true)
        .open(path)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn probe_json(probe: &ProbeReport) -> String {
    json!({"step": probe.step, "knn_acc": probe.knn_acc, "linear_acc": probe.linear_acc, "probe_seconds": probe.seconds})
        .to_string()
}

fn write_line(file: &mut File, line: &str) -> Result<(), String> {
    writeln!(file, "{line}").map_err(|e| format!("cannot append to metrics.jsonl: {e}"))
}

/// `clamp eval`.
#[derive(clap::Args, Debug, Clone)]
pub struct EvalArgs {
    /// A checkpoint directory, or a run's directory (its newest whole checkpoint).
    #[arg(long, value_name = "DIR")]
    pub checkpoint: PathBuf,
    /// A directory holding the data set, instead of the run's.
    #[arg(long, value_name = "DIR")]
    pub data: Option<String>,
    /// Where the encoder runs, instead of the run's choice.
    #[arg(long, value_enum)]
    pub backend: Option<BackendChoice>,
}

pub fn eval(args: EvalArgs) -> Result<(), String> {
    let dir = args.checkpoint;
    // A run directory stands for its newest whole checkpoint.
    let found = checkpoint::find(&dir)?;
    let mut config = checkpoint::load_config(&found.dir)?;
    if let Some(data) = args.data {
        config.dataset = data;
    }
    if let Some(backend) = args.backend {
        config.backend = backend;
    }
    let start = RunStart::prepare(&config)?;
    start.report_to_stderr();
    let RunStart { data, backend, .. } = start;
    let result = run_on(&backend, EvalRun { dir, config, data })?;
    println!("{result}");
    Ok(())
}

struct EvalRun {
    dir: PathBuf,
    config: TrainConfig,
    data: Arc<TrainingData>,
}

impl BackendTask for EvalRun {
    type Output = Result<String, String>;

    fn run<B: AutodiffBackend>(self, device: B::Device) -> Self::Output {
        let started = Instant::now();
        let config = self.config;
        let (trainer, dir) =
            load_newest::<B>(&self.dir, &config, self.data.clone(), device.clone())?;
        let (train_set, test_set) = (&self.data.train, &self.data.test);
        let classes = train_set.num_classes();
        let all = |n: usize| (0..n).collect::<Vec<usize>>();

        let mut progress = Progress::new("eval", 4);
        progress.set_message("encoding the training images");
        let train = trainer.features(false, &all(train_set.len));
        progress.set(1);
        progress.set_message("encoding the test images");
        let test = trainer.features(true, &all(test_set.len));
        progress.set(2);
        progress.set_message("linear probe and kNN");
        let linear = linear_probe_accuracy(&train, &test, classes, &ProbeSettings::default());
        let inner = device.clone();
        let knn = knn_accuracy::<B::InnerBackend>(&train, &test, classes, KNN_K, &inner);
        progress.set(3);
        progress.set_message("raw-pixel kNN baseline");
        let raw_knn = knn_accuracy::<B::InnerBackend>(
            &raw_pixels(train_set),
            &raw_pixels(test_set),
            classes,
            KNN_K,
            &inner,
        );
        progress.set(4);
        progress.finish();
        Ok(json!({
            "checkpoint": dir,
            "step": trainer.step_count(),
            "train_images": train.len(),
            "test_images": test.len(),
            "linear_acc": linear,
            "knn_acc": knn,
            "raw_pixel_knn_acc": raw_knn,
            "seconds": started.elapsed().as_secs_f64(),
        })
        .to_string())
    }
}

/// Raw pixels in [0, 1] as features: the baseline any learned representation should beat.
fn raw_pixels(set: &crate::data::ImageSet) -> Features {
    Features {
        values: set.images.iter().map(|&p| p as f32 / 255.0).collect(),
        labels: set.labels.clone(),
        dim: set.pixels_per_image(),
    }
}

/// Which split `clamp embed` reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Split {
    #[default]
    Test,
    Train,
}

/// `clamp embed`: projector outputs of a checkpoint, as the `[m, N, d]` float32 array that
/// `clamp analyze` reads.
#[derive(clap::Args, Debug, Clone)]
pub struct EmbedArgs {
    /// A checkpoint directory, or a run's directory (its newest whole checkpoint).
    #[arg(long, value_name = "DIR")]
    pub checkpoint: PathBuf,
    /// The .npy file to write (atomically): float32, shape [M, N, d].
    #[arg(long, value_name = "FILE.npy")]
    pub out: PathBuf,
    /// Augmented views M of each image [default: the run's --views].
    #[arg(long, value_name = "M")]
    pub views: Option<usize>,
    /// The first N images of the split.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub images: usize,
    /// The split the images come from.
    #[arg(long, value_enum, default_value_t = Split::Test)]
    pub split: Split,
    /// A directory holding the data set, instead of the run's.
    #[arg(long, value_name = "DIR")]
    pub data: Option<String>,
    /// Where the network runs, instead of the run's choice.
    #[arg(long, value_enum)]
    pub backend: Option<BackendChoice>,
}

pub fn embed(args: EmbedArgs) -> Result<(), String> {
    let EmbedArgs {
        checkpoint: dir,
        out,
        views,
        images,
        split,
        data,
        backend,
    } = args;
    if out.extension().is_none_or(|e| e != "npy") {
        return Err(format!("--out: {} does not end in .npy", out.display()));
    }
    let test = split == Split::Test;
    let found = checkpoint::find(&dir)?;
    let mut config = checkpoint::load_config(&found.dir)?;
    if let Some(data) = data {
        config.dataset = data;
    }
    if let Some(backend) = backend {
        config.backend = backend;
    }
    let views = views.unwrap_or(config.views);
    if views < 2 {
        return Err(format!("--views: {views}; a sphere needs at least 2 views"));
    }
    if images < 2 {
        return Err(format!(
            "--images: {images}; packing needs at least 2 images"
        ));
    }
    let start = RunStart::prepare(&config)?;
    start.report_to_stderr();
    let RunStart { data, backend, .. } = start;
    let result = run_on(
        &backend,
        EmbedRun {
            dir,
            config,
            data,
            out,
            views,
            images,
            test,
        },
    )?;
    println!("{result}");
    Ok(())
}

struct EmbedRun {
    dir: PathBuf,
    config: TrainConfig,
    data: Arc<TrainingData>,
    out: PathBuf,
    views: usize,
    images: usize,
    test: bool,
}

impl BackendTask for EmbedRun {
    type Output = Result<String, String>;

    fn run<B: AutodiffBackend>(self, device: B::Device) -> Self::Output {
        let config = self.config;
        let (trainer, dir) = load_newest::<B>(&self.dir, &config, self.data.clone(), device)?;
        let set = if self.test {
            &self.data.test
        } else {
            &self.data.train
        };
        let images = self.images.min(set.len);
        let indices: Vec<usize> = (0..images).collect();
        let projections = trainer.embed_views(
            self.test,
            &indices,
            self.views,
            trainer.snapshot_view_seed(),
        );
        let shape = [self.views, images, trainer.config.dim];
        let values: Vec<f32> = projections.into_data().iter::<f32>().collect();
        crate::atomic::write_atomically(&self.out, &crate::npy::encode_npy_f32(&shape, &values))?;
        Ok(json!({
            "out": self.out,
            "shape": shape,
            "split": if self.test { "test" } else { "train" },
            "checkpoint": dir,
            "step": trainer.step_count(),
        })
        .to_string())
    }
}
