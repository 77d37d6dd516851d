//! Datasets: IDX (MNIST / Fashion-MNIST), CIFAR-10/100 binary batches, folders of images, the toy
//! set, and the rule that decides which dataset a run uses ([`resolve_dataset`]).
//!
//! Every reader returns an [`ImageSet`] of `u8` pixels in CHW order, and every failure is a
//! [`DataError`] whose message names the file and the problem. Nothing here panics on bad input.
//! Submodules (all re-exported here): `idx`, `cifar`, `folder` (readers) and `resolve`.

mod cifar;
mod folder;
mod idx;
mod resolve;

pub use cifar::{CifarKind, detect_cifar, load_cifar_dir, read_cifar_batch};
pub use folder::load_image_folder;
pub use idx::{
    find_idx_pair, idx_pair_from_bytes, load_fashion_mnist, load_idx_dir, load_idx_pair,
    read_idx_images, read_idx_labels,
};
pub use resolve::{
    DataSource, DatasetChoice, bundled_fashion_mnist_candidates, resolve_dataset,
    resolve_dataset_from,
};

use std::io::Read;
use std::path::{Path, PathBuf};

use thiserror::Error;

/// Class names of Fashion-MNIST, in label order.
pub const FASHION_MNIST_CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];
/// Class names of MNIST (the digits), in label order.
pub const MNIST_CLASSES: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
/// Where Debian's `dataset-fashion-mnist` installs the full Fashion-MNIST (60k train + 10k test).
pub const SYSTEM_FASHION_MNIST_DIR: &str = "/usr/share/datasets/fashion-mnist";
/// The bundled Fashion-MNIST test split, relative to the crate root (or the executable, or `.`).
pub const BUNDLED_FASHION_MNIST_DIR: &str = "assets/fashion-mnist";
/// Side length image folders are resized to unless the caller says otherwise.
pub const DEFAULT_IMAGE_SIZE: usize = 32;

/// A labelled set of images stored as one contiguous `u8` buffer.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageSet {
    /// `len * channels * height * width` bytes; each image is CHW.
    pub images: Vec<u8>,
    /// One label per image, each `< class_names.len()`.
    pub labels: Vec<u16>,
    pub len: usize,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub class_names: Vec<String>,
    /// Human-readable origin (paths), for logs.
    pub source: String,
}

impl ImageSet {
    /// Bytes per image: `channels * height * width`.
    pub fn pixels_per_image(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// The CHW bytes of image `i`. Panics if `i >= len`, like slice indexing.
    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.pixels_per_image();
        &self.images[i * n..(i + 1) * n]
    }

    /// Number of classes (the length of `class_names`).
    pub fn num_classes(&self) -> usize {
        self.class_names.len()
    }

    /// How many images each class has, indexed by label.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.num_classes()];
        for &label in &self.labels {
            if let Some(count) = counts.get_mut(label as usize) {
                *count += 1;
            }
        }
        counts
    }

    /// A new set holding the given images in the given order. Panics on an out-of-range index.
    pub fn subset(&self, indices: &[usize]) -> ImageSet {
        ImageSet {
            images: indices
                .iter()
                .flat_map(|&i| self.image(i))
                .copied()
                .collect(),
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            len: indices.len(),
            channels: self.channels,
            height: self.height,
            width: self.width,
            class_names: self.class_names.clone(),
            source: format!("{} images of {}", indices.len(), self.source),
        }
    }

    /// Image `i` as floats in [0, 1] (byte / 255), CHW.
    pub fn to_f32(&self, i: usize) -> Vec<f32> {
        self.image(i).iter().map(|&p| p as f32 / 255.0).collect()
    }
}

/// Everything that can go wrong while finding or reading a dataset.
#[derive(Debug, Error)]
pub enum DataError {
    #[error("{}: I/O error: {source}", .path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: corrupt gzip stream: {source}", .path.display())]
    Gzip {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: bad magic number {found:#010x}, expected {expected:#010x} ({what})", .path.display())]
    BadMagic {
        path: PathBuf,
        found: u32,
        expected: u32,
        what: &'static str,
    },
    #[error("{}: truncated {what}: expected {expected} bytes, found {found}", .path.display())]
    Truncated {
        path: PathBuf,
        what: String,
        expected: u64,
        found: u64,
    },
    #[error("image and label counts differ: {} has {images} images but {} has {labels} labels",
        .images_path.display(), .labels_path.display())]
    CountMismatch {
        images_path: PathBuf,
        labels_path: PathBuf,
        images: usize,
        labels: usize,
    },
    #[error("{}: unreadable image: {reason}", .path.display())]
    UnreadableImage { path: PathBuf, reason: String },
    #[error("{}: empty folder: {reason}", .path.display())]
    EmptyFolder { path: PathBuf, reason: String },
    #[error("{}: missing file: expected {expected}", .path.display())]
    MissingFile { path: PathBuf, expected: String },
    #[error("{}: invalid data: {reason}", .path.display())]
    Invalid { path: PathBuf, reason: String },
    #[error(
        "unknown dataset name '{name}': not a directory, and not one of fashion-mnist, toy, toy:DIR"
    )]
    UnknownDataset { name: String },
    #[error(
        "no dataset found (tried {tried}); install Debian's dataset-fashion-mnist or pass --data DIR"
    )]
    NotFound { tried: String },
}

pub(crate) type Result<T> = std::result::Result<T, DataError>;

pub(crate) fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> DataError + '_ {
    move |source| DataError::Io {
        path: path.to_path_buf(),
        source,
    }
}

pub(crate) fn invalid(path: &Path, reason: impl Into<String>) -> DataError {
    DataError::Invalid {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Reads a whole file, gunzipping it when it starts with the gzip magic (1f 8b), whatever its name.
/// Most bytes a gzip dataset file may decompress to (Fashion-MNIST's training images are 47 MB,
/// EMNIST's largest file 550 MB).
pub const MAX_DECOMPRESSED_BYTES: u64 = 1 << 30;

pub(crate) fn read_maybe_gz(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).map_err(io_error(path))?;
    maybe_gunzip(path, raw)
}

/// `raw` itself, or what it decompresses to when it is gzip; `path` names it in errors.
pub(crate) fn maybe_gunzip(path: &Path, raw: Vec<u8>) -> Result<Vec<u8>> {
    if !raw.starts_with(&[0x1f, 0x8b]) {
        return Ok(raw);
    }
    let mut out = Vec::with_capacity(raw.len() * 4);
    // A few bytes of gzip can claim gigabytes: stop reading past any real dataset's size.
    flate2::read::MultiGzDecoder::new(&raw[..])
        .take(MAX_DECOMPRESSED_BYTES + 1)
        .read_to_end(&mut out)
        .map_err(|source| DataError::Gzip {
            path: path.to_path_buf(),
            source,
        })?;
    if out.len() as u64 > MAX_DECOMPRESSED_BYTES {
        return Err(invalid(
            path,
            format!(
                "decompresses to more than {} GiB, more than any dataset file this reads",
                MAX_DECOMPRESSED_BYTES >> 30
            ),
        ));
    }
    Ok(out)
}

/// Which half of a dataset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    Train,
    Test,
}

/// The toy set of the reference: the first image of each class (in class order), so one image
/// per class. Train it with noise-only views ([`crate::augment::AugmentConfig::noise_only`]).
pub fn toy_dataset(base: &ImageSet) -> ImageSet {
    let firsts: Vec<usize> = (0..base.num_classes())
        .filter_map(|class| base.labels.iter().position(|&l| l as usize == class))
        .collect();
    let mut toy = base.subset(&firsts);
    toy.source = format!("toy: first image of each class of {}", base.source);
    toy
}
