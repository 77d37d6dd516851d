//! Training throughput of one step on each backend, beside the augmentation throughput that
//! feeds it, on the bundled Fashion-MNIST with the default `clamp train` settings.
//!
//!     cargo run --release --example train_bench [-- STEPS [WIDTH [BATCH [VIEWS]]]
//!         [--cpu-only | --wgpu-only | --adapter-only | --agreement]]
//!
//! `--agreement` instead compares one step of that configuration on WGPU with the same step
//! on the CPU (loss and every gradient entry) and prints one `agreement:` line.
//!
//! When PyTorch is importable (the venv of `../shared/bench/run-torch-step.sh`,
//! `CLAMP_TORCH_VENV`, default ~/.cache/clamp-torch-venv; the script's folder from
//! `CLAMP_TORCH_BENCH`), the same step in PyTorch runs first, on as many threads, and the table
//! ends with the CPU step's ratio to it. The script is never asked to install anything.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use burn::tensor::backend::AutodiffBackend;
use clamp::augment::make_views;
use clamp::backend::{BackendTask, CpuBackend, WgpuBackend, probe_adapter};
use clamp::config::TrainConfig;
use clamp::train::agreement::compare_one_step;
use clamp::train::{Trainer, TrainingData};

struct Measure {
    config: TrainConfig,
    data: Arc<TrainingData>,
    steps: usize,
}

/// One backend's timing: the first step, the views per second over the timed steps, and
/// their median step (the fair measure on a noisy machine: one slow step moves the mean, not
/// the median).
struct Timing {
    first_seconds: f64,
    views_per_sec: f64,
    median_ms: f64,
}

impl BackendTask for Measure {
    type Output = Timing;
    fn run<B: AutodiffBackend>(self, device: B::Device) -> Timing {
        let mut trainer = Trainer::<B>::new(self.config.clone(), self.data, device);
        let first = trainer.step().expect("first step").seconds;
        let started = Instant::now();
        let mut times = Vec::with_capacity(self.steps);
        for _ in 0..self.steps {
            let step = Instant::now();
            trainer.step().expect("step");
            times.push(step.elapsed().as_secs_f64());
        }
        let images = (self.steps * self.config.batch * self.config.views) as f64;
        Timing {
            first_seconds: first,
            views_per_sec: images / started.elapsed().as_secs_f64(),
            median_ms: median(&mut times) * 1e3,
        }
    }
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => 0.5 * (values[n / 2 - 1] + values[n / 2]),
    }
}

fn main() {
    let arg = |k: usize| {
        std::env::args()
            .nth(k)
            .and_then(|s| s.parse::<usize>().ok())
    };
    let steps = arg(1).unwrap_or(10);
    let defaults = TrainConfig::default();
    let config = TrainConfig {
        width: arg(2).unwrap_or(defaults.width),
        batch: arg(3).unwrap_or(defaults.batch),
        views: arg(4).unwrap_or(defaults.views),
        ..defaults
    };
    let skip_wgpu = std::env::args().any(|a| a == "--cpu-only");
    let skip_cpu = std::env::args().any(|a| a == "--wgpu-only");
    match probe_adapter() {
        Some(adapter) => println!(
            "adapter: {} ({}{})",
            adapter.name,
            adapter.backend,
            if adapter.software { ", software" } else { "" }
        ),
        None => println!("adapter: none (no Vulkan driver)"),
    }
    if std::env::args().any(|a| a == "--adapter-only") {
        return;
    }
    let data = Arc::new(TrainingData::load(&config).expect("data"));
    if std::env::args().any(|a| a == "--agreement") {
        let scratch = std::env::temp_dir().join(format!("clamp-agreement-{}", std::process::id()));
        match compare_one_step(config, data, &scratch) {
            Ok(agreement) => println!(
                "agreement: {} within 1e-3: {}",
                if agreement.holds_within(1e-3) {
                    "yes"
                } else {
                    "NO"
                },
                agreement.summary()
            ),
            Err(why) => println!("agreement: failed: {why}"),
        }
        return;
    }
    println!("data: {}", data.description);
    println!(
        "config: batch {} x {} views, small CNN width {}, d = {}; {steps} timed steps after one warm-up step\n",
        config.batch, config.views, config.width, config.dim
    );

    let indices: Vec<usize> = (0..config.batch).collect();
    let repeats = 20usize;
    let started = Instant::now();
    for r in 0..repeats {
        std::hint::black_box(make_views(
            &data.train,
            &indices,
            config.views,
            &data.augment,
            r as u64,
        ));
    }
    let augment_rate =
        (repeats * config.batch * config.views) as f64 / started.elapsed().as_secs_f64();

    println!("| what | first step (s) | views/s | median step (ms) |");
    println!("| --- | ---: | ---: | ---: |");
    println!(
        "| augmentation (rayon, {} threads) | - | {augment_rate:.0} | - |",
        rayon::current_num_threads()
    );
    let pytorch = (!skip_cpu && config.width == defaults.width && config.views == 2)
        .then(|| pytorch_step(config.batch, steps));
    if let Some(reference) = &pytorch {
        match reference {
            Ok(torch) => println!(
                "| training step, PyTorch (same model, loss, read-out, Adam) | - | {:.0} | {:.1} |",
                torch.views_per_sec, torch.median_ms
            ),
            Err(why) => println!("| training step, PyTorch | {why} | - | - |"),
        }
    }
    if !skip_cpu {
        let cpu = Measure {
            config: config.clone(),
            data: data.clone(),
            steps,
        }
        .run::<CpuBackend>(Default::default());
        println!(
            "| training step, cpu (burn flex) | {:.2} | {:.0} | {:.1} |",
            cpu.first_seconds, cpu.views_per_sec, cpu.median_ms
        );
        if let Some(Ok(torch)) = pytorch {
            // Speed-ups: above 1, clamp's step is the faster one.
            println!(
                "| **PyTorch's step / clamp's** | | **{:.2}x** (views/s) | **{:.2}x** (medians) |",
                cpu.views_per_sec / torch.views_per_sec,
                torch.median_ms / cpu.median_ms
            );
        }
    }
    match probe_adapter().filter(|_| !skip_wgpu) {
        Some(adapter) => {
            let gpu = Measure {
                config,
                data,
                steps,
            }
            .run::<WgpuBackend>(Default::default());
            println!(
                "| training step, wgpu ({}) | {:.2} | {:.0} | {:.1} |",
                adapter.name, gpu.first_seconds, gpu.views_per_sec, gpu.median_ms
            );
        }
        None => println!("| training step, wgpu | no adapter | - | - |"),
    }
}

/// The PyTorch reference step, run now for as many timed steps: its views per second and
/// median step; or why it could not run.
fn pytorch_step(batch: usize, steps: usize) -> Result<Timing, String> {
    let bench = std::env::var_os("CLAMP_TORCH_BENCH")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/bench"));
    let script = bench.join("run-torch-step.sh");
    if !script.is_file() {
        return Err(format!("no {}", script.display()));
    }
    let venv = std::env::var_os("CLAMP_TORCH_VENV")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/clamp-torch-venv")))
        .ok_or("no HOME")?;
    let importable = Command::new(venv.join("bin/python"))
        .args(["-c", "import torch"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !importable {
        return Err(format!("torch not importable from {}", venv.display()));
    }
    let output = Command::new(&script)
        .args(["--threads", &rayon::current_num_threads().to_string()])
        .args(["--batch", &batch.to_string()])
        .args(["--steps", &steps.max(1).to_string()])
        .output()
        .map_err(|e| format!("{}: {e}", script.display()))?;
    let text = String::from_utf8_lossy(&output.stdout);
    let views_per_sec = text
        .lines()
        .find_map(|line| line.strip_prefix("RESULT views/s "))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| format!("{} printed no RESULT line", script.display()))?;
    // "per-step s: min 0.0712 median 0.0741 max 0.0903"
    let median_s: f64 = text
        .lines()
        .find_map(|line| line.strip_prefix("per-step s: "))
        .and_then(|rest| {
            let words: Vec<&str> = rest.split_whitespace().collect();
            let at = words.iter().position(|w| *w == "median")?;
            words.get(at + 1)?.parse().ok()
        })
        .ok_or_else(|| format!("{} printed no per-step median", script.display()))?;
    Ok(Timing {
        first_seconds: f64::NAN,
        views_per_sec,
        median_ms: median_s * 1e3,
    })
}
