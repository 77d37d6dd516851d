//! The run configuration: one TOML table whose keys are the `clamp train` flags (with `_` for
//! `-`). Unknown keys and out-of-range values are errors that name the key and the allowed range.
//! The configuration and the seed are saved next to every checkpoint, so a run can be reproduced.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::backend::BackendChoice;
use crate::limits::{ConfigError, check_count, check_range};
use crate::loss::{ALPHA_RANGE, PackingParams, RADIUS_SCALE_RANGE};
use crate::model::{EncoderKind, ModelConfig};
use crate::optim::OptimizerKind;

/// Which objective trains the network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum LossKind {
    /// The CLAMP packing loss.
    Clamp,
    /// SimCLR's NT-Xent, for comparison.
    Simclr,
}

/// Everything that defines a training run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// `fashion-mnist` (the default chain: --data, CLAMP_DATA, the Debian package, the bundled
    /// test split), `toy`, or a directory (IDX, CIFAR binary, or one folder per class).
    pub dataset: String,
    pub backend: BackendChoice,
    pub loss: LossKind,
    /// Optimisation steps. `epochs`, when set, overrides it.
    pub steps: usize,
    pub epochs: Option<f64>,
    /// Images per step (each seen in `views` augmented views).
    pub batch: usize,
    /// Views m per image.
    pub views: usize,
    /// Embedding dimension d.
    pub dim: usize,
    pub alpha: f64,
    pub radius_scale: f64,
    /// Minimise ln(E + 1e-6) (the paper) rather than E.
    pub log_energy: bool,
    /// SimCLR temperature.
    pub temperature: f64,
    pub optimizer: OptimizerKind,
    /// Base learning rate for a batch of 256 (scaled by batch / 256).
    pub lr: f64,
    pub weight_decay: f64,
    pub warmup_steps: usize,
    pub seed: u64,
    pub encoder: EncoderKind,
    /// Channels of the first encoder stage.
    pub width: usize,
    pub projector_hidden: usize,
    /// Random-resized-crop area range.
    pub crop_min: f32,
    pub crop_max: f32,
    /// Probability of a 3x3 Gaussian blur per view (the reference recipe's 0.5).
    pub blur_prob: f32,
    /// Gaussian-noise std of the toy dataset's views.
    pub toy_noise: f32,
    /// Spheres shown by the viewer / read out in snapshots (held-out images).
    pub snapshot_images: usize,
    /// Run the kNN and linear probes every this many steps (0: only at the end).
    pub eval_every: usize,
    /// Training images whose features the probes fit on (all of them, in order, when this is
    /// at least the training set's size).
    pub probe_train_images: usize,
    /// Test images the probes are scored on.
    pub probe_test_images: usize,
    /// Where metrics.jsonl and checkpoints go.
    pub out: Option<PathBuf>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            dataset: "fashion-mnist".into(),
            backend: BackendChoice::Auto,
            loss: LossKind::Clamp,
            steps: 1400,
            epochs: None,
            batch: 256,
            views: 2,
            dim: 32,
            alpha: 2.0,
            radius_scale: 2.5,
            log_energy: true,
            temperature: 0.5,
            optimizer: OptimizerKind::Adam,
            lr: 2e-3,
            weight_decay: 1e-5,
            warmup_steps: 50,
            seed: 0,
            encoder: EncoderKind::SmallCnn,
            width: 16,
            projector_hidden: 256,
            crop_min: 0.3,
            crop_max: 1.0,
            blur_prob: 0.5,
            toy_noise: 0.3,
            snapshot_images: 1000,
            // The probes of the summary follow the offline protocol: all training images (a
            // probe then takes about 1.7 minutes on 2 cores, so only at the start and the end
            // by default).
            eval_every: 0,
            probe_train_images: 60_000,
            probe_test_images: 10_000,
            out: None,
        }
    }
}

impl TrainConfig {
    /// What `clamp view` starts with: made for watching, not for the probe score. An MLP on
    /// the pixels (784 -> 256 -> 256 -> 3) instead of the CNN, so that a step takes a few
    /// milliseconds and the picture moves ten times a second beside a software renderer; a
    /// 3-d embedding (the true picture: spheres on the unit sphere, no projection); four views
    /// of 128 images per step; r_s = 0.75, where the spheres start jammed and fall through
    /// Z = 2d while classes gather (`examples/live_bench.rs` measures both); 200 spheres drawn;
    /// a long cosine schedule for open-ended watching; smaller probes.
    pub fn viewer_default() -> Self {
        Self {
            encoder: EncoderKind::Mlp,
            width: 256,
            projector_hidden: 256,
            dim: 3,
            radius_scale: 0.75,
            views: 4,
            batch: 128,
            // As many spheres as the picture can show packing with: 200 held-out images are
            // about 1.6 times as dense on the sphere as a batch of 128, so the drawn spheres
            // unjam soon after the batch does and gaps open (1,000 stay overlapping until
            // r < 0.06); `--spheres` draws more.
            snapshot_images: 200,
            steps: 20_000,
            probe_train_images: 5_000,
            probe_test_images: 2_000,
            ..Self::default()
        }
    }
}

/// Every key of a configuration file, in the struct's order (a test holds it to the struct).
pub const KEYS: &[&str] = &[
    "dataset",
    "backend",
    "loss",
    "steps",
    "epochs",
    "batch",
    "views",
    "dim",
    "alpha",
    "radius_scale",
    "log_energy",
    "temperature",
    "optimizer",
    "lr",
    "weight_decay",
    "warmup_steps",
    "seed",
    "encoder",
    "width",
    "projector_hidden",
    "crop_min",
    "crop_max",
    "blur_prob",
    "toy_noise",
    "snapshot_images",
    "eval_every",
    "probe_train_images",
    "probe_test_images",
    "out",
];

/// Allowed ranges of the whole-number keys: what `validate` enforces and `--help` shows.
pub const COUNT_LIMITS: &[(&str, (usize, usize))] = &[
    ("steps", (1, 10_000_000)),
    ("batch", (2, 8192)),
    ("views", (2, 64)),
    ("dim", (2, 4096)),
    ("width", (1, 1024)),
    ("projector_hidden", (1, 65_536)),
    ("snapshot_images", (2, 100_000)),
    ("probe_train_images", (10, 10_000_000)),
    ("probe_test_images", (10, 10_000_000)),
];

/// Allowed ranges of the real-valued keys (`crop_max` also stays at or above `crop_min`).
pub const REAL_LIMITS: &[(&str, (f64, f64))] = &[
    ("epochs", (1e-3, 1e5)),
    ("alpha", ALPHA_RANGE),
    ("radius_scale", RADIUS_SCALE_RANGE),
    ("temperature", (1e-3, 100.0)),
    ("lr", LR_RANGE),
    ("weight_decay", WEIGHT_DECAY_RANGE),
    ("crop_min", (0.01, 1.0)),
    ("crop_max", (0.01, 1.0)),
    ("blur_prob", (0.0, 1.0)),
    ("toy_noise", (0.0, 10.0)),
];

/// Allowed learning rates (also what the viewer's slider and a live change accept).
pub const LR_RANGE: (f64, f64) = (1e-7, 100.0);
/// Allowed weight decays.
pub const WEIGHT_DECAY_RANGE: (f64, f64) = (0.0, 1.0);

/// The largest seed: a config file is TOML, whose integers are signed 64-bit, so a larger seed
/// could not be saved beside a checkpoint or in a preset, nor put in a page's link.
pub const MAX_SEED: u64 = i64::MAX as u64;

fn check_seed(seed: u64) -> Result<(), ConfigError> {
    if seed <= MAX_SEED {
        Ok(())
    } else {
        Err(ConfigError {
            key: "seed".into(),
            value: seed.to_string(),
            allowed: format!("0 to {MAX_SEED}"),
        })
    }
}

/// The allowed values of `key`, as `validate` states them; `None` for keys without a range.
pub fn allowed(key: &str) -> Option<String> {
    if key == "seed" {
        return Some(format!("0 to {MAX_SEED}"));
    }
    COUNT_LIMITS
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, (low, high))| format!("{low} to {high}"))
        .or_else(|| {
            REAL_LIMITS
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, (low, high))| format!("{low} to {high}"))
        })
}

impl TrainConfig {
    /// Reads a TOML file; unknown keys and bad values name the key (and the file).
    pub fn from_toml_file(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let config: Self = toml::from_str(&text)
            .map_err(|e| format!("{}: {}", path.display(), e.to_string().trim()))?;
        config
            .validate()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(config)
    }

    /// This config with `key=value` settings applied, as a page's address carries them
    /// (`?radius_scale=1.2&batch=64`). A value is read as TOML (a number, `true`) or else as
    /// text; an unknown key or a value out of range is an error that names the key.
    pub fn with_settings<'a>(
        &self,
        settings: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, String> {
        let mut table = toml::Table::try_from(self).map_err(|e| e.to_string())?;
        for (key, value) in settings {
            let parsed = toml::from_str::<toml::Table>(&format!("value = {value}"))
                .ok()
                .and_then(|mut t| t.remove("value"))
                .unwrap_or_else(|| toml::Value::String(value.to_string()));
            table.insert(key.to_string(), parsed);
        }
        let config: Self = table
            .try_into()
            .map_err(|e: toml::de::Error| e.to_string().trim().to_string())?;
        config.validate()?;
        Ok(config)
    }

    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }

    /// Checks every value against its allowed range; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for &(key, limits) in COUNT_LIMITS {
            check_count(key, self.count(key), limits)?;
        }
        for &(key, limits) in REAL_LIMITS {
            match self.real(key) {
                Some(value) => check_range(key, value, limits)?,
                None => continue,
            }
        }
        let crop = |key| self.real(key).unwrap_or(f64::NAN);
        check_range("crop_max", crop("crop_max"), (crop("crop_min"), 1.0))?;
        check_seed(self.seed)
    }

    fn count(&self, key: &str) -> usize {
        match key {
            "steps" => self.steps,
            "batch" => self.batch,
            "views" => self.views,
            "dim" => self.dim,
            "width" => self.width,
            "projector_hidden" => self.projector_hidden,
            "snapshot_images" => self.snapshot_images,
            "probe_train_images" => self.probe_train_images,
            "probe_test_images" => self.probe_test_images,
            other => unreachable!("COUNT_LIMITS names {other}, which is not a count"),
        }
    }

    /// The value of a real-valued key; `None` for an optional one that is not set. An `f32`
    /// value is read as the decimal it prints as, so `crop_min = 0.01` is 0.01, not the
    /// nearest `f32` below it.
    fn real(&self, key: &str) -> Option<f64> {
        let decimal = |x: f32| x.to_string().parse::<f64>().unwrap_or(f64::NAN);
        Some(match key {
            "epochs" => self.epochs?,
            "alpha" => self.alpha,
            "radius_scale" => self.radius_scale,
            "temperature" => self.temperature,
            "lr" => self.lr,
            "weight_decay" => self.weight_decay,
            "crop_min" => decimal(self.crop_min),
            "crop_max" => decimal(self.crop_max),
            "blur_prob" => decimal(self.blur_prob),
            "toy_noise" => decimal(self.toy_noise),
            other => unreachable!("REAL_LIMITS names {other}, which is not a real value"),
        })
    }

    pub fn packing(&self) -> PackingParams {
        PackingParams {
            alpha: self.alpha,
            radius_scale: self.radius_scale,
            log_energy: self.log_energy,
        }
    }

    pub fn model(&self, channels: usize, pixels: usize) -> ModelConfig {
        ModelConfig {
            encoder: self.encoder,
            channels,
            pixels,
            width: self.width,
            projector_hidden: self.projector_hidden,
            embedding_dim: self.dim,
        }
    }

    /// Number of steps, from `epochs` when set.
    pub fn total_steps(&self, train_images: usize) -> usize {
        match self.epochs {
            Some(epochs) => {
                let per_epoch = (train_images / self.batch.min(train_images)).max(1);
                ((epochs * per_epoch as f64).ceil() as usize).max(1)
            }
            None => self.steps,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sets `key` of a default config through its TOML name, as a config file would.
    fn with(key: &str, value: toml::Value) -> Result<TrainConfig, String> {
        let mut table = toml::Table::try_from(TrainConfig::default()).unwrap();
        table.insert(key.to_string(), value);
        let config: TrainConfig = table.try_into().map_err(|e| e.to_string())?;
        config.validate().map_err(|e| e.to_string())?;
        Ok(config)
    }

    #[test]
    fn keys_are_exactly_the_fields_of_a_config_file() {
        // Every field a full config writes is listed, in order (the two optional ones set).
        let full = TrainConfig {
            epochs: Some(1.0),
            out: Some("runs/a".into()),
            ..TrainConfig::default()
        };
        let written: Vec<String> = toml::Table::try_from(full)
            .unwrap()
            .keys()
            .cloned()
            .collect();
        let mut sorted_keys: Vec<&str> = KEYS.to_vec();
        sorted_keys.sort();
        assert_eq!(written, sorted_keys);
        // And nothing else is accepted.
        let error = with("radius", toml::Value::Float(1.0)).unwrap_err();
        assert!(error.contains("unknown field `radius`"), "{error}");
    }

    #[test]
    fn every_limit_accepts_its_ends_and_names_the_key_just_outside() {
        for &(key, (low, high)) in COUNT_LIMITS {
            assert!(
                with(key, toml::Value::Integer(low as i64)).is_ok(),
                "{key} = {low}"
            );
            assert!(
                with(key, toml::Value::Integer(high as i64)).is_ok(),
                "{key} = {high}"
            );
            let error = with(key, toml::Value::Integer(high as i64 + 1)).unwrap_err();
            assert!(
                error.starts_with(&format!("{key} = {}", high + 1)),
                "{error}"
            );
            assert!(
                error.ends_with(&format!("allowed {low} to {high}")),
                "{error}"
            );
        }
        for &(key, (low, high)) in REAL_LIMITS {
            assert_eq!(allowed(key), Some(format!("{low} to {high}")));
            // crop_max may not go below crop_min (0.3 by default).
            let low = if key == "crop_max" { 0.3 } else { low };
            assert!(with(key, toml::Value::Float(low)).is_ok(), "{key} = {low}");
            assert!(
                with(key, toml::Value::Float(high)).is_ok(),
                "{key} = {high}"
            );
            let error = with(key, toml::Value::Float(high * 1.5 + 1.0)).unwrap_err();
            assert!(error.starts_with(&format!("{key} = ")), "{error}");
        }
        assert_eq!(allowed("views").as_deref(), Some("2 to 64"));
        assert_eq!(allowed("temperature").as_deref(), Some("0.001 to 100"));
        assert_eq!(allowed("log_energy"), None);
    }

    #[test]
    fn a_seed_beyond_what_toml_can_write_is_refused_by_name() {
        let largest = TrainConfig {
            seed: MAX_SEED,
            ..TrainConfig::default()
        };
        assert!(largest.validate().is_ok());
        // It survives the trip through a config file.
        let text = largest.to_toml();
        assert!(text.contains("seed = 9223372036854775807"), "{text}");
        let error = TrainConfig {
            seed: MAX_SEED + 1,
            ..TrainConfig::default()
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert_eq!(
            error,
            "seed = 9223372036854775808 is out of range: allowed 0 to 9223372036854775807"
        );
    }
}
