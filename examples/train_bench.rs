//! Training throughput of one step on each backend, beside the augmentation throughput that
//! feeds it, on the bundled Fashion-MNIST with the default `clamp train` settings.
//!
//!     cargo run --release --example train_bench [-- STEPS [WIDTH [BATCH [VIEWS]]]
//!         [--cpu-only | --wgpu-only | --adapter-only]]

use std::sync::Arc;
use std::time::Instant;

use burn::tensor::backend::AutodiffBackend;
use clamp::augment::make_views;
use clamp::backend::{BackendTask, CpuBackend, WgpuBackend, probe_adapter};
use clamp::config::TrainConfig;
use clamp::train::{Trainer, TrainingData};

struct Measure {
    config: TrainConfig,
    data: Arc<TrainingData>,
    steps: usize,
}

impl BackendTask for Measure {
    type Output = (f64, f64);
    /// (first step seconds, images per second over the following steps)
    fn run<B: AutodiffBackend>(self, device: B::Device) -> (f64, f64) {
        let mut trainer = Trainer::<B>::new(self.config.clone(), self.data, device);
        let first = trainer.step().expect("first step").seconds;
        let started = Instant::now();
        for _ in 0..self.steps {
            trainer.step().expect("step");
        }
        let images = (self.steps * self.config.batch * self.config.views) as f64;
        (first, images / started.elapsed().as_secs_f64())
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

    println!("| what | first step (s) | views/s |");
    println!("| --- | ---: | ---: |");
    println!(
        "| augmentation (rayon, {} threads) | - | {augment_rate:.0} |",
        rayon::current_num_threads()
    );
    if !skip_cpu {
        let cpu = Measure {
            config: config.clone(),
            data: data.clone(),
            steps,
        }
        .run::<CpuBackend>(Default::default());
        println!(
            "| training step, cpu (burn flex) | {:.2} | {:.0} |",
            cpu.0, cpu.1
        );
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
                "| training step, wgpu ({}) | {:.2} | {:.0} |",
                adapter.name, gpu.0, gpu.1
            );
        }
        None => println!("| training step, wgpu | no adapter | - |"),
    }
}
