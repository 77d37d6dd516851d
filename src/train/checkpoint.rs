//! Checkpoints: model, optimizer moments, the run configuration and the live state (step, seed,
//! alpha, r_s, learning rate, weight decay), each file written atomically (temporary file, then
//! rename) with `state.json` last, so an interrupted save never leaves a checkpoint that loads
//! half-old, half-new.

use std::fs;
use std::path::Path;
use std::sync::Arc;

use burn::module::Module;
use burn::record::{FullPrecisionSettings, NamedMpkBytesRecorder, Recorder};
use burn::tensor::backend::AutodiffBackend;
use serde::{Deserialize, Serialize};

use super::{Trainer, TrainingData};
use crate::config::TrainConfig;
use crate::loss::PackingParams;
use crate::optim::{ModelOptimizer, OptimizerRecord};

const MODEL_FILE: &str = "model.mpk";
const OPTIMIZER_FILE: &str = "optimizer.mpk";
const CONFIG_FILE: &str = "config.toml";
const STATE_FILE: &str = "state.json";

/// The live state saved beside the weights.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckpointState {
    pub step: usize,
    pub seed: u64,
    pub params: PackingParams,
    pub lr: f64,
    pub weight_decay: f64,
}

type Bytes = NamedMpkBytesRecorder<FullPrecisionSettings>;

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temporary = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    fs::write(&temporary, bytes)
        .and_then(|()| fs::rename(&temporary, path))
        .map_err(|e| {
            let _ = fs::remove_file(&temporary);
            format!("cannot write {}: {e}", path.display())
        })
}

/// Saves `trainer` into `dir` (created if needed).
pub fn save<B: AutodiffBackend>(trainer: &Trainer<B>, dir: &Path) -> Result<(), String> {
    fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let recorder = Bytes::new();
    let model = recorder
        .record(trainer.model().clone().into_record(), ())
        .map_err(|e| format!("cannot encode the model: {e}"))?;
    let optimizer = match trainer.optimizer().record() {
        OptimizerRecord::Adam(r) => recorder.record(r, ()),
        OptimizerRecord::Lars(r) => recorder.record(r, ()),
    }
    .map_err(|e| format!("cannot encode the optimizer: {e}"))?;
    let state = CheckpointState {
        step: trainer.step_count(),
        seed: trainer.config.seed,
        params: trainer.params(),
        lr: trainer.base_lr(),
        weight_decay: trainer.weight_decay(),
    };
    write_atomically(&dir.join(MODEL_FILE), &model)?;
    write_atomically(&dir.join(OPTIMIZER_FILE), &optimizer)?;
    write_atomically(&dir.join(CONFIG_FILE), trainer.config.to_toml().as_bytes())?;
    let state = serde_json::to_vec_pretty(&state).map_err(|e| e.to_string())?;
    write_atomically(&dir.join(STATE_FILE), &state)
}

/// The configuration a checkpoint was trained with.
pub fn load_config(dir: &Path) -> Result<TrainConfig, String> {
    TrainConfig::from_toml_file(&dir.join(CONFIG_FILE))
}

/// Rebuilds the trainer saved in `dir` on `device`, ready to continue where it stopped.
pub fn load<B: AutodiffBackend>(
    dir: &Path,
    data: Arc<TrainingData>,
    device: B::Device,
) -> Result<Trainer<B>, String> {
    let config = load_config(dir)?;
    load_with_config(dir, config, data, device)
}

/// As [`load`], with a configuration supplied by the caller (a resumed run may train longer).
pub fn load_with_config<B: AutodiffBackend>(
    dir: &Path,
    config: TrainConfig,
    data: Arc<TrainingData>,
    device: B::Device,
) -> Result<Trainer<B>, String> {
    let read = |file: &str| {
        let path = dir.join(file);
        fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))
    };
    let state: CheckpointState = serde_json::from_slice(&read(STATE_FILE)?)
        .map_err(|e| format!("{}: {e}", dir.join(STATE_FILE).display()))?;
    let mut trainer = Trainer::<B>::new(config, data, device.clone());
    let recorder = Bytes::new();
    let corrupt = |file: &str, e: burn::record::RecorderError| {
        format!(
            "{}: not a checkpoint of this model ({e})",
            dir.join(file).display()
        )
    };
    let model_record = recorder
        .load(read(MODEL_FILE)?, &device)
        .map_err(|e| corrupt(MODEL_FILE, e))?;
    let model = trainer.model().clone().load_record(model_record);
    let fresh = ModelOptimizer::new(trainer.config.optimizer, state.weight_decay);
    let optimizer_bytes = read(OPTIMIZER_FILE)?;
    let optimizer = match &fresh {
        ModelOptimizer::Adam(_) => recorder
            .load(optimizer_bytes, &device)
            .map(OptimizerRecord::Adam),
        ModelOptimizer::Lars(_) => recorder
            .load(optimizer_bytes, &device)
            .map(OptimizerRecord::Lars),
    }
    .map_err(|e| corrupt(OPTIMIZER_FILE, e))?;
    let optimizer = fresh.load(optimizer);
    trainer.restore(
        model,
        optimizer,
        state.step,
        state.params,
        state.lr,
        state.weight_decay,
    );
    Ok(trainer)
}
