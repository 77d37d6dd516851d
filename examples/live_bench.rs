//! The live viewer's training without a window: how fast its model steps on the CPU backend and
//! how its picture develops, step by step. Every row is a snapshot of the drawn spheres (the
//! viewer's held-out images): the class purity of their 3-D positions, their mean contact
//! number Z against the isostatic 2d, their mean radius, and the batch's own Z.
//!
//!     cargo run --release --example live_bench [-- STEPS [EVERY] [key=value ...]]
//!
//! `key=value` pairs override the viewer's defaults with `clamp train --config` keys, e.g.
//! `radius_scale=1.5 lr=0.004 width=256`.

use std::sync::Arc;
use std::time::Instant;

use clamp::backend::CpuBackend;
use clamp::config::TrainConfig;
use clamp::eval::{PURITY_K, class_purity, pixel_pca_purity};
use clamp::train::{Trainer, TrainingData};

fn config_with(overrides: &[String]) -> Result<TrainConfig, String> {
    let mut table: toml::Table =
        toml::from_str(&TrainConfig::viewer_default().to_toml()).map_err(|e| e.to_string())?;
    for pair in overrides {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| format!("'{pair}' is not key=value"))?;
        let parsed: toml::Table = toml::from_str(&format!("v = {value}"))
            .or_else(|_| toml::from_str(&format!("v = \"{value}\"")))
            .map_err(|e: toml::de::Error| e.to_string())?;
        table.insert(key.to_string(), parsed["v"].clone());
    }
    let config: TrainConfig = toml::from_str(&table.to_string()).map_err(|e| e.to_string())?;
    config.validate()?;
    Ok(config)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let numbers: Vec<usize> = args.iter().filter_map(|a| a.parse().ok()).collect();
    let overrides: Vec<String> = args.iter().filter(|a| a.contains('=')).cloned().collect();
    let steps = numbers.first().copied().unwrap_or(600);
    let every = numbers.get(1).copied().unwrap_or(50).max(1);
    let config = match config_with(&overrides) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("live_bench: {e}");
            std::process::exit(2);
        }
    };
    let data = Arc::new(TrainingData::load(&config).expect("data"));
    let baseline = pixel_pca_purity(&data.test, &data.snapshot_images).expect("pixel PCA");
    println!("data: {}", data.description);
    println!(
        "config: {:?} width {} -> {} -> d = {}, batch {} x {} views, r_s {}, alpha {}, lr {}",
        config.encoder,
        config.width,
        config.projector_hidden,
        config.dim,
        config.batch,
        config.views,
        config.radius_scale,
        config.alpha,
        config.lr
    );
    println!(
        "{} drawn spheres; class purity (k = {PURITY_K}) of their raw pixels by PCA to 3-D: {baseline:.3}\n",
        data.snapshot_images.len()
    );
    println!(
        "| step | seconds of training | steps/s | class purity | Z drawn (2d = {}) | mean radius drawn | Z batch | loss |",
        2 * config.dim
    );
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    let mut trainer = Trainer::<CpuBackend>::new(config.clone(), data, Default::default());
    let mut training_seconds = 0.0;
    let row = |trainer: &Trainer<CpuBackend>,
               training_seconds: f64,
               batch: Option<&clamp::train::StepReport>| {
        let snapshot = trainer.snapshot();
        let readout = &snapshot.readout;
        let purity = class_purity(&readout.centers, readout.dim, &snapshot.labels, PURITY_K);
        println!(
            "| {} | {:.1} | {:.1} | {:.3} | {:.2} | {:.4} | {} | {} |",
            snapshot.step,
            training_seconds,
            snapshot.step as f64 / training_seconds.max(1e-9),
            purity,
            readout.metrics.mean_contacts,
            readout.metrics.mean_radius * config.radius_scale,
            batch.map_or("-".into(), |r| format!("{:.2}", r.packing.mean_contacts)),
            batch.map_or("-".into(), |r| format!("{:.3}", r.loss)),
        );
    };
    row(&trainer, 0.0, None);
    for step in 1..=steps {
        let started = Instant::now();
        let report = trainer.step().expect("step");
        training_seconds += started.elapsed().as_secs_f64();
        if step % every == 0 {
            row(&trainer, training_seconds, Some(&report));
        }
    }
}
