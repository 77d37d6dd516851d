//! The images a run trains and evaluates on, with the view recipe and input normalisation.

use crate::augment::AugmentConfig;
use crate::config::TrainConfig;
use crate::data::{DatasetChoice, ImageSet, resolve_dataset};

use super::{mix_seed, permutation};

/// Train and test images plus everything derived from them once per run.
#[derive(Clone, Debug)]
pub struct TrainingData {
    pub train: ImageSet,
    pub test: ImageSet,
    /// One line for the log: which data, from where.
    pub description: String,
    pub augment: AugmentConfig,
    /// Per-channel mean and std of the training pixels (in [0, 1] units).
    pub channel_mean: Vec<f32>,
    pub channel_std: Vec<f32>,
    /// The held-out images drawn as spheres (indices into `test`).
    pub snapshot_images: Vec<usize>,
}

impl TrainingData {
    /// Resolves and reads the dataset named by `config.dataset`.
    pub fn load(config: &TrainConfig) -> Result<Self, String> {
        let spec = (config.dataset != "fashion-mnist").then_some(config.dataset.as_str());
        let choice: DatasetChoice = resolve_dataset(spec).map_err(|e| e.to_string())?;
        let (train, test) = choice.load().map_err(|e| e.to_string())?;
        let augment = if choice.is_toy() {
            AugmentConfig::noise_only(config.toy_noise)
        } else {
            image_augment(config)
        };
        Self::new(train, test, choice.description, augment, config)
    }

    /// Photographs (not the toy set) already read, as a page fetches them: views from the
    /// config's recipe.
    pub fn of_images(
        train: ImageSet,
        test: ImageSet,
        description: String,
        config: &TrainConfig,
    ) -> Result<Self, String> {
        Self::new(train, test, description, image_augment(config), config)
    }

    /// Derives normalisation and the snapshot images from the two sets.
    pub fn new(
        train: ImageSet,
        test: ImageSet,
        description: String,
        augment: AugmentConfig,
        config: &TrainConfig,
    ) -> Result<Self, String> {
        augment.validate()?;
        if train.len < 2 || test.len < 2 {
            return Err(format!(
                "{}: needs at least 2 training and 2 test images (found {} and {})",
                train.source, train.len, test.len
            ));
        }
        if (train.channels, train.height, train.width) != (test.channels, test.height, test.width) {
            return Err(format!(
                "train images ({}) are {}x{}x{} but test images ({}) are {}x{}x{}",
                train.source,
                train.channels,
                train.height,
                train.width,
                test.source,
                test.channels,
                test.height,
                test.width
            ));
        }
        let (channel_mean, channel_std) = channel_stats(&train);
        let snapshot_images = drawn_images(test.len, config.seed, config.snapshot_images);
        Ok(Self {
            train,
            test,
            description,
            augment,
            channel_mean,
            channel_std,
            snapshot_images,
        })
    }
}

/// The `count` held-out images a run of `seed` draws (fewer when the test split is smaller), in
/// order: a prefix of one permutation, so the first 200 of 1,000 are the 200 the viewer draws.
pub fn drawn_images(test_len: usize, seed: u64, count: usize) -> Vec<usize> {
    let shown = count.min(test_len);
    let mut images = permutation(test_len, mix_seed(seed, 3))[..shown].to_vec();
    images.sort_unstable();
    images
}

/// The config's augmentation recipe for photographs.
fn image_augment(config: &TrainConfig) -> AugmentConfig {
    AugmentConfig {
        crop_scale: (config.crop_min, config.crop_max),
        blur_prob: config.blur_prob,
        ..AugmentConfig::default()
    }
}

/// Mean and std of each channel over (up to 10,000 of) the images.
fn channel_stats(set: &ImageSet) -> (Vec<f32>, Vec<f32>) {
    let plane = set.height * set.width;
    let count = set.len.min(10_000);
    let mut sum = vec![0f64; set.channels];
    let mut sum_sq = vec![0f64; set.channels];
    for i in 0..count {
        for (k, &pixel) in set.image(i).iter().enumerate() {
            let x = pixel as f64 / 255.0;
            sum[k / plane] += x;
            sum_sq[k / plane] += x * x;
        }
    }
    let n = (count * plane) as f64;
    let mean: Vec<f32> = sum.iter().map(|s| (s / n) as f32).collect();
    let std = sum_sq
        .iter()
        .zip(&mean)
        .map(|(s, &m)| ((s / n - (m as f64).powi(2)).max(1e-6).sqrt()) as f32)
        .collect();
    (mean, std)
}
