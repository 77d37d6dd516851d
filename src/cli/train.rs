//! `clamp train` and `clamp eval`.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use burn::tensor::backend::AutodiffBackend;
use serde_json::json;

use super::args::{Args, FlagSpec};
use super::progress::Progress;
use crate::backend::{BackendTask, run_on};
use crate::config::TrainConfig;
use crate::eval::{Features, KNN_K, ProbeSettings, knn_accuracy, linear_probe_accuracy};
use crate::train::{ProbeReport, RunStart, Trainer, TrainingData, checkpoint};

/// Training flags that also apply when watching (`clamp view`) or recording (`clamp record`).
pub const SHARED_TRAINING_FLAGS: &[&str] = &[
    "config",
    "dataset",
    "data",
    "backend",
    "steps",
    "batch",
    "views",
    "dim",
    "alpha",
    "radius-scale",
    "lr",
    "weight-decay",
    "seed",
    "loss",
    "width",
    "crop-min",
    "blur-prob",
];

pub const TRAIN_FLAGS: FlagSpec = FlagSpec {
    shared_options: SHARED_TRAINING_FLAGS,
    options: &[
        "epochs",
        "out",
        "optimizer",
        "encoder",
        "eval-every",
        "temperature",
        "warmup-steps",
        "probe-train-images",
    ],
    switches: &["no-log"],
};

/// The config from `--config FILE` (or the defaults) with every flag applied on top.
pub fn config_from_args(args: &Args) -> Result<TrainConfig, String> {
    let config = match args.get::<PathBuf>("config")? {
        Some(path) => TrainConfig::from_toml_file(&path)?,
        None => TrainConfig::default(),
    };
    apply_train_flags(config, args)
}

/// Overrides `config` with every training flag present in `args`, then validates it.
pub fn apply_train_flags(mut config: TrainConfig, args: &Args) -> Result<TrainConfig, String> {
    macro_rules! flag {
        ($name:literal => $field:ident) => {
            if let Some(value) = args.get($name)? {
                config.$field = value;
            }
        };
    }
    flag!("dataset" => dataset);
    flag!("data" => dataset);
    flag!("backend" => backend);
    flag!("steps" => steps);
    flag!("batch" => batch);
    flag!("views" => views);
    flag!("dim" => dim);
    flag!("alpha" => alpha);
    flag!("radius-scale" => radius_scale);
    flag!("lr" => lr);
    flag!("weight-decay" => weight_decay);
    flag!("seed" => seed);
    flag!("loss" => loss);
    flag!("optimizer" => optimizer);
    flag!("encoder" => encoder);
    flag!("width" => width);
    flag!("eval-every" => eval_every);
    flag!("temperature" => temperature);
    flag!("crop-min" => crop_min);
    flag!("blur-prob" => blur_prob);
    flag!("warmup-steps" => warmup_steps);
    flag!("probe-train-images" => probe_train_images);
    if let Some(epochs) = args.get("epochs")? {
        config.epochs = Some(epochs);
    }
    if let Some(out) = args.get("out")? {
        config.out = Some(out);
    }
    if args.switch("no-log") {
        config.log_energy = false;
    }
    config
        .validate()
        .map_err(|e| format!("--{}", e.replace('_', "-")))?;
    Ok(config)
}

pub fn train(words: &[String]) -> Result<(), String> {
    let args = Args::parse(words, &TRAIN_FLAGS)?;
    let mut config = config_from_args(&args)?;
    let out = config
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("runs/seed{}-{}", config.seed, unix_time())));
    config.out = Some(out.clone());
    std::fs::create_dir_all(&out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    // Checked before any training: the metrics file must be writable.
    let metrics = OpenOptions::new()
        .create(true)
        .append(true)
        .open(out.join("metrics.jsonl"))
        .map_err(|e| format!("cannot write {}: {e}", out.join("metrics.jsonl").display()))?;

    let start = RunStart::prepare(&config)?;
    start.report_to_stderr();
    let RunStart { data, backend, .. } = start;
    let summary = run_on(
        &backend,
        TrainRun {
            config,
            data,
            out,
            metrics,
        },
    )?;
    println!("{summary}");
    Ok(())
}

struct TrainRun {
    config: TrainConfig,
    data: Arc<TrainingData>,
    out: PathBuf,
    metrics: File,
}

impl BackendTask for TrainRun {
    type Output = Result<String, String>;

    fn run<B: AutodiffBackend>(self, device: B::Device) -> Self::Output {
        let TrainRun {
            config,
            data,
            out,
            mut metrics,
        } = self;
        let started = Instant::now();
        let mut trainer = Trainer::<B>::new(config.clone(), data, device);
        let total = trainer.total_steps();
        let initial = trainer.probe();
        eprintln!(
            "at initialisation: kNN {:.4}, linear probe {:.4} ({:.1} s)",
            initial.knn_acc, initial.linear_acc, initial.seconds
        );
        write_line(&mut metrics, &probe_json(&initial))?;

        let mut progress = Progress::new("train", total);
        progress.set_message("first step: compiling kernels, tuning");
        let mut last = None;
        let mut latest_probe: Option<ProbeReport> = None;
        let mut image_seconds = (0usize, 0.0f64);
        for _ in 0..total {
            let report = trainer.step().map_err(|e| e.to_string())?;
            if report.step == 1 {
                eprintln!(
                    "\rfirst step took {:.2} s (warm-up included)",
                    report.seconds
                );
            } else {
                image_seconds.0 += trainer.config.batch.min(trainer.data.train.len) * config.views;
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
            progress.set(report.step);
            if config.eval_every > 0 && report.step % config.eval_every == 0 && report.step < total
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
        progress.finish();
        let probe = match latest_probe.filter(|p| p.step == total) {
            Some(p) => p,
            None => {
                let p = trainer.probe();
                write_line(&mut metrics, &probe_json(&p))?;
                p
            }
        };
        let checkpoint_dir = out.join("checkpoint");
        checkpoint::save(&trainer, &checkpoint_dir)?;
        let last = last.ok_or("no step was run")?;
        let snapshot = trainer.snapshot();
        Ok(json!({
            "steps": last.step,
            "loss": last.loss,
            "mean_contacts": last.packing.mean_contacts,
            "activity": last.packing.activity,
            "knn_acc": probe.knn_acc,
            "linear_acc": probe.linear_acc,
            "initial_knn_acc": initial.knn_acc,
            "initial_linear_acc": initial.linear_acc,
            "nearest_centroid_acc": snapshot.readout.metrics.nearest_centroid_acc,
            "images_per_sec": if image_seconds.1 > 0.0 { image_seconds.0 as f64 / image_seconds.1 } else { last.images_per_sec },
            "seconds": started.elapsed().as_secs_f64(),
            "loss_kind": config.loss,
            "checkpoint": checkpoint_dir,
        })
        .to_string())
    }
}

fn probe_json(probe: &ProbeReport) -> String {
    json!({"step": probe.step, "knn_acc": probe.knn_acc, "linear_acc": probe.linear_acc, "probe_seconds": probe.seconds})
        .to_string()
}

fn write_line(file: &mut File, line: &str) -> Result<(), String> {
    writeln!(file, "{line}").map_err(|e| format!("cannot append to metrics.jsonl: {e}"))
}

fn unix_time() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub fn eval(words: &[String]) -> Result<(), String> {
    let spec = FlagSpec {
        shared_options: &[],
        options: &["checkpoint", "data", "backend"],
        switches: &[],
    };
    let args = Args::parse(words, &spec)?;
    let dir: PathBuf = args
        .get("checkpoint")?
        .ok_or("--checkpoint DIR is required")?;
    let mut config = checkpoint::load_config(&dir)?;
    if let Some(data) = args.get("data")? {
        config.dataset = data;
    }
    if let Some(backend) = args.get("backend")? {
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
        let trainer = checkpoint::load_with_config::<B>(
            &self.dir,
            self.config,
            self.data.clone(),
            device.clone(),
        )?;
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
            "checkpoint": self.dir,
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
