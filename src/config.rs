//! The run configuration: one TOML table whose keys are the `clamp train` flags (with `_` for
//! `-`). Unknown keys and out-of-range values are errors that name the key and the allowed range.
//! The configuration and the seed are saved next to every checkpoint, so a run can be reproduced.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::loss::{ALPHA_RANGE, PackingParams, RADIUS_SCALE_RANGE, check_range};
use crate::model::{EncoderKind, ModelConfig};
use crate::optim::OptimizerKind;

/// Which objective trains the network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LossKind {
    /// The CLAMP packing loss.
    Clamp,
    /// SimCLR's NT-Xent, for comparison.
    Simclr,
}

impl std::str::FromStr for LossKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "clamp" => Ok(Self::Clamp),
            "simclr" => Ok(Self::Simclr),
            other => Err(format!("unknown loss '{other}' (choose clamp or simclr)")),
        }
    }
}

/// Where training runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BackendChoice {
    /// WGPU on a hardware GPU; the CPU backend when the only adapter is a software rasterizer
    /// (there the CPU backend is several times faster and leaves the rasterizer its cores).
    Auto,
    /// burn's WGPU backend on whatever adapter there is (software Vulkan counts).
    Wgpu,
    /// burn's pure-Rust CPU backend (`flex`).
    Cpu,
}

impl std::str::FromStr for BackendChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Self::Auto),
            "wgpu" => Ok(Self::Wgpu),
            "cpu" => Ok(Self::Cpu),
            other => Err(format!(
                "unknown backend '{other}' (choose auto, wgpu or cpu)"
            )),
        }
    }
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

fn check_count(key: &str, value: usize, low: usize, high: usize) -> Result<(), String> {
    if (low..=high).contains(&value) {
        Ok(())
    } else {
        Err(format!(
            "{key} = {value} is out of range: allowed {low} to {high}"
        ))
    }
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

    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }

    /// Checks every value against its allowed range; the error names the key.
    pub fn validate(&self) -> Result<(), String> {
        check_count("steps", self.steps, 1, 10_000_000)?;
        if let Some(epochs) = self.epochs {
            check_range("epochs", epochs, (1e-3, 1e5))?;
        }
        check_count("batch", self.batch, 2, 8192)?;
        check_count("views", self.views, 2, 64)?;
        check_count("dim", self.dim, 2, 4096)?;
        check_range("alpha", self.alpha, ALPHA_RANGE)?;
        check_range("radius_scale", self.radius_scale, RADIUS_SCALE_RANGE)?;
        check_range("temperature", self.temperature, (1e-3, 100.0))?;
        check_range("lr", self.lr, (1e-7, 100.0))?;
        check_range("weight_decay", self.weight_decay, (0.0, 1.0))?;
        check_count("width", self.width, 1, 1024)?;
        check_count("projector_hidden", self.projector_hidden, 1, 65_536)?;
        check_range("crop_min", self.crop_min as f64, (0.01, 1.0))?;
        check_range(
            "crop_max",
            self.crop_max as f64,
            (self.crop_min as f64, 1.0),
        )?;
        check_range("blur_prob", self.blur_prob as f64, (0.0, 1.0))?;
        check_range("toy_noise", self.toy_noise as f64, (0.0, 10.0))?;
        check_count("snapshot_images", self.snapshot_images, 2, 100_000)?;
        check_count(
            "probe_train_images",
            self.probe_train_images,
            10,
            10_000_000,
        )?;
        check_count("probe_test_images", self.probe_test_images, 10, 10_000_000)?;
        Ok(())
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
