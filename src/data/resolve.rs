//! Which dataset a run uses: `--data`, then `$CLAMP_DATA`, then the system Fashion-MNIST, then
//! the bundled test split; names `fashion-mnist`, `toy` and `toy:DIR`.

use std::path::{Path, PathBuf};

use super::idx::guess_idx_classes;
use super::{
    BUNDLED_FASHION_MNIST_DIR, CifarKind, DEFAULT_IMAGE_SIZE, DataError, FASHION_MNIST_CLASSES,
    ImageSet, Result, SYSTEM_FASHION_MNIST_DIR, Split, detect_cifar, find_idx_pair, invalid,
    load_cifar_dir, load_idx_dir, load_image_folder, toy_dataset,
};

/// Where one split of a dataset comes from; [`DataSource::load`] reads it.
#[derive(Clone, Debug, PartialEq)]
pub enum DataSource {
    Idx {
        dir: PathBuf,
        split: Split,
        class_names: Vec<String>,
    },
    Cifar {
        dir: PathBuf,
        split: Split,
    },
    ImageFolder {
        dir: PathBuf,
        height: usize,
        width: usize,
    },
    /// One image per class of the inner source.
    Toy(Box<DataSource>),
}

impl DataSource {
    /// Reads the images.
    pub fn load(&self) -> Result<ImageSet> {
        match self {
            DataSource::Idx {
                dir,
                split,
                class_names,
            } => {
                let names: Vec<&str> = class_names.iter().map(String::as_str).collect();
                load_idx_dir(dir, *split, &names)
            }
            DataSource::Cifar { dir, split } => load_cifar_dir(dir, *split),
            DataSource::ImageFolder { dir, height, width } => {
                load_image_folder(dir, *height, *width)
            }
            DataSource::Toy(base) => Ok(toy_dataset(&base.load()?)),
        }
    }
}

/// The train and test sources a run uses, with one line for the log.
#[derive(Clone, Debug, PartialEq)]
pub struct DatasetChoice {
    pub train: DataSource,
    pub test: DataSource,
    pub description: String,
}

impl DatasetChoice {
    /// True for the toy set, whose views should be Gaussian noise only.
    pub fn is_toy(&self) -> bool {
        matches!(self.train, DataSource::Toy(_))
    }

    /// Loads (train, test); reads the data once when both are the same source.
    pub fn load(&self) -> Result<(ImageSet, ImageSet)> {
        let train = self.train.load()?;
        let test = if self.test == self.train {
            train.clone()
        } else {
            self.test.load()?
        };
        Ok((train, test))
    }
}

/// Picks the dataset: `spec` (a directory or a name), else `$CLAMP_DATA`, else the system
/// Fashion-MNIST (`/usr/share/datasets/fashion-mnist`), else the bundled 10k test split.
pub fn resolve_dataset(spec: Option<&str>) -> Result<DatasetChoice> {
    resolve_dataset_from(spec, std::env::var("CLAMP_DATA").ok().as_deref())
}

/// [`resolve_dataset`] with the value of `CLAMP_DATA` passed in (so tests need not set it).
pub fn resolve_dataset_from(spec: Option<&str>, clamp_data: Option<&str>) -> Result<DatasetChoice> {
    match (nonempty(spec), nonempty(clamp_data)) {
        (Some(spec), _) => resolve_spec(spec, "--data"),
        (None, Some(env)) => resolve_spec(env, "CLAMP_DATA"),
        (None, None) => default_fashion_mnist(),
    }
}

fn nonempty(s: Option<&str>) -> Option<&str> {
    s.map(str::trim).filter(|s| !s.is_empty())
}

fn resolve_spec(spec: &str, origin: &str) -> Result<DatasetChoice> {
    if spec == "fashion-mnist" {
        return default_fashion_mnist();
    }
    if spec == "toy" || spec.starts_with("toy:") {
        let base = match spec.strip_prefix("toy:") {
            Some(inner) => resolve_spec(inner, origin)?,
            None => default_fashion_mnist()?,
        };
        let toy = DataSource::Toy(Box::new(base.train));
        let description = format!(
            "toy: first image of each class, noise-only views; base {}",
            base.description
        );
        return Ok(DatasetChoice {
            train: toy.clone(),
            test: toy,
            description,
        });
    }
    let path = Path::new(spec);
    if path.is_dir() {
        return choose_from_dir(path, origin);
    }
    if path.exists() || spec.contains(std::path::MAIN_SEPARATOR) || spec.starts_with('.') {
        let problem = if path.exists() {
            "not a directory"
        } else {
            "no such directory"
        };
        let reason =
            format!("{problem} (--data and CLAMP_DATA take a dataset directory or a name)");
        return Err(invalid(path, reason));
    }
    Err(DataError::UnknownDataset {
        name: spec.to_string(),
    })
}

/// Train on the train split and test on the test split; when only one exists, use it for both.
fn split_sources(
    dir: &Path,
    name: &str,
    origin: &str,
    make: impl Fn(Split) -> DataSource,
    has: impl Fn(Split) -> bool,
) -> DatasetChoice {
    let (has_train, has_test) = (has(Split::Train), has(Split::Test));
    let (train, test, note) = match (has_train, has_test) {
        (true, true) => (
            Split::Train,
            Split::Test,
            "train and test splits".to_string(),
        ),
        (true, false) => (
            Split::Train,
            Split::Train,
            "train split only: evaluating on the training images".into(),
        ),
        _ => (
            Split::Test,
            Split::Test,
            "test split only: training and evaluating on the same images".into(),
        ),
    };
    DatasetChoice {
        train: make(train),
        test: make(test),
        description: format!("{name} from {} (via {origin}): {note}", dir.display()),
    }
}

/// Recognises an IDX, CIFAR or image-folder dataset directory.
fn choose_from_dir(dir: &Path, origin: &str) -> Result<DatasetChoice> {
    let has_idx = |s| find_idx_pair(dir, s).is_some();
    if has_idx(Split::Train) || has_idx(Split::Test) {
        let (name, classes) = guess_idx_classes(dir);
        let class_names: Vec<String> = classes.iter().map(|s| s.to_string()).collect();
        let make = |split| DataSource::Idx {
            dir: dir.to_path_buf(),
            split,
            class_names: class_names.clone(),
        };
        return Ok(split_sources(dir, name, origin, make, has_idx));
    }
    if let Some(kind) = detect_cifar(dir) {
        let has = |s: Split| kind.files(s).iter().any(|f| dir.join(f).is_file());
        let make = |split| DataSource::Cifar {
            dir: dir.to_path_buf(),
            split,
        };
        let name = if kind == CifarKind::Cifar10 {
            "CIFAR-10"
        } else {
            "CIFAR-100"
        };
        return Ok(split_sources(dir, name, origin, make, has));
    }
    let size = DEFAULT_IMAGE_SIZE;
    let folder = |d: PathBuf| DataSource::ImageFolder {
        dir: d,
        height: size,
        width: size,
    };
    let (train_dir, test_dir) = (dir.join("train"), dir.join("test"));
    if train_dir.is_dir() && test_dir.is_dir() {
        return Ok(DatasetChoice {
            train: folder(train_dir),
            test: folder(test_dir),
            description: format!(
                "image folder {} (via {origin}): train/ and test/, {size}x{size} RGB",
                dir.display()
            ),
        });
    }
    let source = folder(dir.to_path_buf());
    Ok(DatasetChoice {
        train: source.clone(),
        test: source,
        description: format!(
            "image folder {} (via {origin}), {size}x{size} RGB: no train/test split, evaluating on the training images",
            dir.display()
        ),
    })
}

/// Places the bundled Fashion-MNIST may be: the crate root, next to the executable, `./`.
pub fn bundled_fashion_mnist_candidates() -> Vec<PathBuf> {
    let mut dirs = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join(BUNDLED_FASHION_MNIST_DIR)];
    if let Some(exe_dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        dirs.push(exe_dir.join(BUNDLED_FASHION_MNIST_DIR));
    }
    dirs.push(PathBuf::from(BUNDLED_FASHION_MNIST_DIR));
    dirs
}

/// The system Fashion-MNIST (full train + test) if installed, else the bundled test split.
fn default_fashion_mnist() -> Result<DatasetChoice> {
    let class_names: Vec<String> = FASHION_MNIST_CLASSES
        .iter()
        .map(|s| s.to_string())
        .collect();
    let idx = |dir: &Path, split| DataSource::Idx {
        dir: dir.to_path_buf(),
        split,
        class_names: class_names.clone(),
    };
    let system = Path::new(SYSTEM_FASHION_MNIST_DIR);
    if find_idx_pair(system, Split::Train).is_some() && find_idx_pair(system, Split::Test).is_some()
    {
        return Ok(DatasetChoice {
            train: idx(system, Split::Train),
            test: idx(system, Split::Test),
            description: format!(
                "Fashion-MNIST from {SYSTEM_FASHION_MNIST_DIR}: 60,000 train, 10,000 test"
            ),
        });
    }
    let candidates = bundled_fashion_mnist_candidates();
    if let Some(dir) = candidates
        .iter()
        .find(|d| find_idx_pair(d, Split::Test).is_some())
    {
        return Ok(DatasetChoice {
            train: idx(dir, Split::Test),
            test: idx(dir, Split::Test),
            description: format!(
                "bundled Fashion-MNIST test split from {} (10,000 images): training and evaluating on the same \
                 images (install dataset-fashion-mnist or pass --data DIR for the 60k train split)",
                dir.display()
            ),
        });
    }
    let tried: Vec<String> = std::iter::once(system.to_path_buf())
        .chain(candidates)
        .map(|p| p.display().to_string())
        .collect();
    Err(DataError::NotFound {
        tried: tried.join(", "),
    })
}
