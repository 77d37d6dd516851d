//! Checkpoints. Each is a directory holding the model, the optimizer moments, the run's
//! configuration, the live state (step, seed, alpha, r_s, learning rate, weight decay) and a
//! manifest of every file's length and hash. It is written whole under a temporary name, each
//! file and the directory fsynced, then put in place by one rename: under its final name a
//! checkpoint is complete or absent. The manifest catches what happens to it afterwards (a
//! truncated copy, a file swapped for another run's, bytes changed on disk).
//!
//! A run directory keeps its checkpoints under `checkpoints/step-NNNNNNNN`, the two newest of
//! them: when the newest is damaged, loading says why and uses the one before.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::module::Module;
use burn::record::{FullPrecisionSettings, NamedMpkBytesRecorder, Recorder};
use burn::tensor::backend::AutodiffBackend;
use serde::{Deserialize, Serialize};

use super::{Trainer, TrainingData, parameter_shapes};
use crate::atomic::{sync_dir, write_synced};
use crate::config::TrainConfig;
use crate::loss::PackingParams;
use crate::optim::{ModelOptimizer, OptimizerRecord};

const MODEL_FILE: &str = "model.mpk";
const OPTIMIZER_FILE: &str = "optimizer.mpk";
const CONFIG_FILE: &str = "config.toml";
const STATE_FILE: &str = "state.json";
const MANIFEST_FILE: &str = "manifest.json";
/// The files a checkpoint holds besides its manifest, in the order they are written.
pub const CHECKPOINT_FILES: [&str; 4] = [MODEL_FILE, OPTIMIZER_FILE, CONFIG_FILE, STATE_FILE];
/// Where a run directory keeps its checkpoints.
pub const CHECKPOINTS_DIR: &str = "checkpoints";
/// Checkpoints a run keeps: the newest and the one before, in case the newest is damaged.
pub const KEEP: usize = 2;

/// The live state saved beside the weights.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckpointState {
    pub step: usize,
    pub seed: u64,
    pub params: PackingParams,
    pub lr: f64,
    pub weight_decay: f64,
}

/// Length and hash of every file of a checkpoint, written last.
#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    step: usize,
    files: Vec<ManifestEntry>,
}

#[derive(Debug, Serialize, Deserialize)]
struct ManifestEntry {
    name: String,
    bytes: u64,
    /// FNV-1a (64 bit) of the content, in hex.
    fnv1a: String,
}

/// FNV-1a, 64 bit: enough to tell a damaged or swapped file from the one written.
fn fnv1a(bytes: &[u8]) -> String {
    let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("{hash:016x}")
}

type Bytes = NamedMpkBytesRecorder<FullPrecisionSettings>;

/// Saves `trainer` as the checkpoint directory `dir`, replacing one already there.
pub fn save<B: AutodiffBackend>(trainer: &Trainer<B>, dir: &Path) -> Result<(), String> {
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
    let state = serde_json::to_vec_pretty(&state).map_err(|e| e.to_string())?;
    let config = trainer.config.to_toml().into_bytes();
    let contents: [&[u8]; 4] = [&model, &optimizer, &config, &state];
    write_checkpoint_dir(dir, trainer.step_count(), &contents)
}

/// Writes the files of one checkpoint and its manifest into a staging directory beside `dir`,
/// fsyncs them, and renames the whole into place.
fn write_checkpoint_dir(dir: &Path, step: usize, contents: &[&[u8]; 4]) -> Result<(), String> {
    let parent = dir.parent().unwrap_or(Path::new("."));
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| format!("{}: not a directory name", dir.display()))?;
    fs::create_dir_all(parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    let staging = parent.join(format!(".{name}.partial-{}", std::process::id()));
    let failed = |what: &Path, e: String| format!("cannot write {}: {e}", what.display());
    let _ = fs::remove_dir_all(&staging);
    fs::create_dir(&staging).map_err(|e| failed(&staging, e.to_string()))?;
    let mut files = Vec::with_capacity(CHECKPOINT_FILES.len());
    for (file, bytes) in CHECKPOINT_FILES.iter().zip(contents) {
        let path = staging.join(file);
        write_synced(&path, bytes).map_err(|e| failed(&path, e))?;
        files.push(ManifestEntry {
            name: file.to_string(),
            bytes: bytes.len() as u64,
            fnv1a: fnv1a(bytes),
        });
    }
    let manifest =
        serde_json::to_vec_pretty(&Manifest { step, files }).map_err(|e| e.to_string())?;
    let path = staging.join(MANIFEST_FILE);
    write_synced(&path, &manifest).map_err(|e| failed(&path, e))?;
    sync_dir(&staging);
    // A directory cannot be renamed over a non-empty one: move the old one aside first.
    let aside = parent.join(format!(".{name}.old-{}", std::process::id()));
    let replacing = dir.exists();
    if replacing {
        let _ = fs::remove_dir_all(&aside);
        fs::rename(dir, &aside).map_err(|e| failed(dir, e.to_string()))?;
    }
    fs::rename(&staging, dir).map_err(|e| failed(dir, e.to_string()))?;
    sync_dir(parent);
    if replacing {
        let _ = fs::remove_dir_all(&aside);
    }
    Ok(())
}

/// The checkpoint directory of step `step` in the run directory `run`.
pub fn step_dir(run: &Path, step: usize) -> PathBuf {
    run.join(CHECKPOINTS_DIR).join(format!("step-{step:08}"))
}

/// Saves `trainer` into the run directory `run` as `checkpoints/step-NNNNNNNN` and removes all
/// but the [`KEEP`] newest checkpoints. Returns the new checkpoint's directory.
pub fn save_in_run<B: AutodiffBackend>(
    trainer: &Trainer<B>,
    run: &Path,
) -> Result<PathBuf, String> {
    let dir = step_dir(run, trainer.step_count());
    recover_interrupted_saves(run);
    save(trainer, &dir)?;
    for (_, old) in list(run).into_iter().skip(KEEP) {
        let _ = fs::remove_dir_all(old);
    }
    Ok(dir)
}

/// Puts right what an interrupted save left in the run directory `run` (a crash, a second
/// signal, a full disk between two of its steps): a staging directory `.NAME.partial-PID` is
/// removed (its save did not finish, so it is never trusted); a checkpoint moved aside as
/// `.NAME.old-PID` before its replacement was renamed into place goes back to `NAME` when
/// `NAME` is missing and it verifies whole, and is removed otherwise. Returns a line for each
/// thing done, for the log.
pub fn recover_interrupted_saves(run: &Path) -> Vec<String> {
    let checkpoints = run.join(CHECKPOINTS_DIR);
    let Ok(entries) = fs::read_dir(&checkpoints) else {
        return Vec::new();
    };
    let mut done = Vec::new();
    let mut names: Vec<String> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .collect();
    names.sort();
    for name in names {
        let Some((kept_name, kind)) = interrupted_save(&name) else {
            continue;
        };
        let path = checkpoints.join(&name);
        let target = checkpoints.join(kept_name);
        if kind == "old" && !target.exists() && verify(&path).is_ok() {
            match fs::rename(&path, &target) {
                Ok(()) => {
                    sync_dir(&checkpoints);
                    done.push(format!(
                        "recovered {} (a save was interrupted after moving it aside)",
                        target.display()
                    ));
                }
                Err(e) => done.push(format!("cannot recover {}: {e}", path.display())),
            }
            continue;
        }
        match fs::remove_dir_all(&path) {
            Ok(()) => done.push(format!(
                "removed {} (left by an interrupted save)",
                path.display()
            )),
            Err(e) => done.push(format!("cannot remove {}: {e}", path.display())),
        }
    }
    done
}

/// `.NAME.partial-PID` or `.NAME.old-PID` as (NAME, "partial" or "old").
fn interrupted_save(name: &str) -> Option<(&str, &str)> {
    let rest = name.strip_prefix('.')?;
    let (stem, pid) = rest.rsplit_once('-')?;
    if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (kept, kind) = stem.rsplit_once('.')?;
    (kept.starts_with("step-") && (kind == "partial" || kind == "old")).then_some((kept, kind))
}

/// The checkpoints of the run directory `run`, newest (highest step) first.
pub fn list(run: &Path) -> Vec<(usize, PathBuf)> {
    let Ok(entries) = fs::read_dir(run.join(CHECKPOINTS_DIR)) else {
        return Vec::new();
    };
    let mut found: Vec<(usize, PathBuf)> = entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name();
            let step = name.to_str()?.strip_prefix("step-")?.parse().ok()?;
            Some((step, entry.path()))
        })
        .collect();
    found.sort_by_key(|entry| std::cmp::Reverse(entry.0));
    found
}

/// Checks that `dir` is a whole checkpoint: every file present with the length and hash its
/// manifest gives, and a readable state. The error names the file and the problem.
pub fn verify(dir: &Path) -> Result<CheckpointState, String> {
    let manifest_path = dir.join(MANIFEST_FILE);
    let manifest = fs::read(&manifest_path).map_err(|e| {
        format!(
            "{}: {} (not a checkpoint, or one whose writing was cut short)",
            manifest_path.display(),
            io_reason(&e)
        )
    })?;
    let manifest: Manifest = serde_json::from_slice(&manifest).map_err(|e| {
        format!(
            "{}: not a checkpoint manifest ({e})",
            manifest_path.display()
        )
    })?;
    for file in CHECKPOINT_FILES {
        let path = dir.join(file);
        let entry = manifest
            .files
            .iter()
            .find(|entry| entry.name == file)
            .ok_or_else(|| {
                format!(
                    "{}: the manifest does not list {file}",
                    manifest_path.display()
                )
            })?;
        let bytes =
            fs::read(&path).map_err(|e| format!("{}: {}", path.display(), io_reason(&e)))?;
        if bytes.len() as u64 != entry.bytes {
            return Err(format!(
                "{}: {} bytes where {} were written (truncated or replaced)",
                path.display(),
                bytes.len(),
                entry.bytes
            ));
        }
        if fnv1a(&bytes) != entry.fnv1a {
            return Err(format!(
                "{}: its content is not what was written (corrupt, or a file of another checkpoint)",
                path.display()
            ));
        }
    }
    let state_path = dir.join(STATE_FILE);
    let state: CheckpointState = serde_json::from_slice(
        &fs::read(&state_path)
            .map_err(|e| format!("{}: {}", state_path.display(), io_reason(&e)))?,
    )
    .map_err(|e| format!("{}: {e}", state_path.display()))?;
    if state.step != manifest.step {
        return Err(format!(
            "{}: step {} but the manifest says {}",
            state_path.display(),
            state.step,
            manifest.step
        ));
    }
    Ok(state)
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "missing".into(),
        _ => e.to_string(),
    }
}

/// A checkpoint found for loading, and the newer ones passed over on the way (each with why).
#[derive(Debug)]
pub struct Found {
    pub dir: PathBuf,
    pub state: CheckpointState,
    pub passed_over: Vec<String>,
}

/// The checkpoint `path` names: `path` itself when it is a checkpoint directory, otherwise the
/// newest whole checkpoint of the run directory `path`.
pub fn find(path: &Path) -> Result<Found, String> {
    if path.join(MANIFEST_FILE).exists() || path.join(STATE_FILE).exists() {
        let state = verify(path)?;
        return Ok(Found {
            dir: path.to_path_buf(),
            state,
            passed_over: Vec::new(),
        });
    }
    let candidates = list(path);
    if candidates.is_empty() {
        return Err(format!(
            "{}: no checkpoint here (neither a checkpoint directory nor a run with {CHECKPOINTS_DIR}/)",
            path.display()
        ));
    }
    let mut passed_over = Vec::new();
    for (_, dir) in candidates {
        match verify(&dir) {
            Ok(state) => {
                return Ok(Found {
                    dir,
                    state,
                    passed_over,
                });
            }
            Err(e) => passed_over.push(e),
        }
    }
    Err(format!(
        "{}: no whole checkpoint: {}",
        path.display(),
        passed_over.join("; ")
    ))
}

/// The configuration a checkpoint was trained with.
pub fn load_config(dir: &Path) -> Result<TrainConfig, String> {
    TrainConfig::from_toml_file(&dir.join(CONFIG_FILE))
}

/// Rebuilds the trainer saved in the checkpoint directory `dir` on `device`, ready to continue
/// where it stopped.
pub fn load<B: AutodiffBackend>(
    dir: &Path,
    data: Arc<TrainingData>,
    device: B::Device,
) -> Result<Trainer<B>, String> {
    verify(dir)?;
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
    let state = verify(dir)?;
    let read = |file: &str| {
        let path = dir.join(file);
        fs::read(&path).map_err(|e| format!("{}: {}", path.display(), io_reason(&e)))
    };
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
    let expected = parameter_shapes(trainer.model());
    let model = trainer.model().clone().load_record(model_record);
    let found = parameter_shapes(&model);
    if found != expected {
        let first = expected
            .iter()
            .zip(&found)
            .position(|(a, b)| a != b)
            .unwrap_or(expected.len().min(found.len()));
        return Err(format!(
            "{}: a model of another shape (parameter {first}: {:?} where this configuration has {:?}; \
             {} parameters where it has {})",
            dir.join(MODEL_FILE).display(),
            found.get(first),
            expected.get(first),
            found.len(),
            expected.len()
        ));
    }
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

/// Loads the newest checkpoint of the run directory (or the checkpoint directory) `path` that
/// loads whole, passing over damaged ones; `adjust` may change its configuration first (a
/// resumed run given more steps). Returns the trainer, its directory, and what was passed over.
pub fn load_newest<B: AutodiffBackend>(
    path: &Path,
    adjust: impl Fn(TrainConfig) -> Result<TrainConfig, String>,
    data: Arc<TrainingData>,
    device: B::Device,
) -> Result<(Trainer<B>, PathBuf, Vec<String>), String> {
    let found = find(path)?;
    let mut passed_over = found.passed_over;
    let candidates: Vec<PathBuf> = if found.dir == path {
        vec![found.dir]
    } else {
        list(path)
            .into_iter()
            .map(|(_, dir)| dir)
            .skip_while(|dir| *dir != found.dir)
            .collect()
    };
    for dir in candidates {
        let attempt = load_config(&dir)
            .and_then(&adjust)
            .and_then(|config| load_with_config(&dir, config, data.clone(), device.clone()));
        match attempt {
            Ok(trainer) => return Ok((trainer, dir, passed_over)),
            Err(e) => passed_over.push(e),
        }
    }
    Err(format!(
        "{}: no checkpoint loads: {}",
        path.display(),
        passed_over.join("; ")
    ))
}
