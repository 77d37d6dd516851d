//! A small training run on the bundled Fashion-MNIST, shared by the tests that train.

use std::path::Path;
use std::sync::Arc;

use clamp::augment::AugmentConfig;
use clamp::backend::BackendChoice;
use clamp::config::TrainConfig;
use clamp::data::{Split, load_fashion_mnist};
use clamp::train::TrainingData;

/// A small CNN on batches of 32 x 4 views, d = 8, on the CPU.
pub fn small_config() -> TrainConfig {
    TrainConfig {
        batch: 32,
        views: 4,
        dim: 8,
        width: 8,
        projector_hidden: 32,
        radius_scale: 3.0,
        snapshot_images: 64,
        probe_train_images: 256,
        probe_test_images: 128,
        steps: 20,
        warmup_steps: 2,
        backend: BackendChoice::Cpu,
        ..TrainConfig::default()
    }
}

/// 512 training and 128 test images of the bundled Fashion-MNIST test split.
pub fn small_data(config: &TrainConfig) -> Arc<TrainingData> {
    bundled_data(config, 512, 128)
}

/// The first `train_images` of the bundled Fashion-MNIST test split to train on, and
/// `test_images` from image 9,000 on to probe with.
pub fn bundled_data(
    config: &TrainConfig,
    train_images: usize,
    test_images: usize,
) -> Arc<TrainingData> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/fashion-mnist");
    let all = load_fashion_mnist(&dir, Split::Test).expect("bundled Fashion-MNIST");
    let train = all.subset(&(0..train_images).collect::<Vec<_>>());
    let test = all.subset(&(9000..9000 + test_images).collect::<Vec<_>>());
    let augment = AugmentConfig {
        crop_scale: (config.crop_min, config.crop_max),
        ..AugmentConfig::default()
    };
    let description = format!("{train_images} bundled");
    Arc::new(TrainingData::new(train, test, description, augment, config).unwrap())
}
