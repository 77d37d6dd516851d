//! CIFAR-10/100 binary batches: fixed-size records of label byte(s) and 32x32 RGB pixels (CHW).

use std::path::{Path, PathBuf};

use super::{DataError, ImageSet, Result, Split, invalid, io_error, read_maybe_gz};

const CIFAR_IMAGE_BYTES: usize = 3 * 32 * 32;

/// CIFAR binary flavours: they differ in label bytes per record and class count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CifarKind {
    /// 1 label byte + 3072 pixel bytes per record, 10 classes.
    Cifar10,
    /// coarse + fine label bytes + 3072 pixel bytes per record; the fine label (100 classes) is used.
    Cifar100,
}

impl CifarKind {
    fn label_bytes(self) -> usize {
        match self {
            CifarKind::Cifar10 => 1,
            CifarKind::Cifar100 => 2,
        }
    }
    fn num_classes(self) -> usize {
        match self {
            CifarKind::Cifar10 => 10,
            CifarKind::Cifar100 => 100,
        }
    }
    pub(super) fn files(self, split: Split) -> Vec<&'static str> {
        match (self, split) {
            (CifarKind::Cifar10, Split::Train) => {
                vec![
                    "data_batch_1.bin",
                    "data_batch_2.bin",
                    "data_batch_3.bin",
                    "data_batch_4.bin",
                    "data_batch_5.bin",
                ]
            }
            (CifarKind::Cifar10, Split::Test) => vec!["test_batch.bin"],
            (CifarKind::Cifar100, Split::Train) => vec!["train.bin"],
            (CifarKind::Cifar100, Split::Test) => vec!["test.bin"],
        }
    }
    fn names_file(self) -> &'static str {
        match self {
            CifarKind::Cifar10 => "batches.meta.txt",
            CifarKind::Cifar100 => "fine_label_names.txt",
        }
    }
}

/// Reads one CIFAR binary batch file (32x32 RGB, CHW as stored). Classes are named "class N".
pub fn read_cifar_batch(path: impl AsRef<Path>, kind: CifarKind) -> Result<ImageSet> {
    let path = path.as_ref();
    let bytes = read_maybe_gz(path)?;
    let label_bytes = kind.label_bytes();
    let record_len = label_bytes + CIFAR_IMAGE_BYTES;
    if bytes.is_empty() {
        return Err(invalid(path, "no records"));
    }
    let (records, rest) = (bytes.len() / record_len, bytes.len() % record_len);
    if rest != 0 {
        return Err(DataError::Truncated {
            path: path.to_path_buf(),
            what: format!("record {records} (0-based)"),
            expected: record_len as u64,
            found: rest as u64,
        });
    }
    let mut images = Vec::with_capacity(records * CIFAR_IMAGE_BYTES);
    let mut labels = Vec::with_capacity(records);
    for (r, record) in bytes.chunks_exact(record_len).enumerate() {
        let label = record[label_bytes - 1]; // the fine label is the last label byte
        if label as usize >= kind.num_classes() {
            let reason = format!(
                "record {r} has label {label}, but {kind:?} has {} classes",
                kind.num_classes()
            );
            return Err(invalid(path, reason));
        }
        labels.push(label as u16);
        images.extend_from_slice(&record[label_bytes..]);
    }
    Ok(ImageSet {
        images,
        labels,
        len: records,
        channels: 3,
        height: 32,
        width: 32,
        class_names: (0..kind.num_classes())
            .map(|c| format!("class {c}"))
            .collect(),
        source: path.display().to_string(),
    })
}

/// Which CIFAR flavour a directory holds, judged by its file names.
pub fn detect_cifar(dir: &Path) -> Option<CifarKind> {
    [CifarKind::Cifar10, CifarKind::Cifar100]
        .into_iter()
        .find(|kind| {
            [Split::Train, Split::Test]
                .iter()
                .any(|&s| dir.join(kind.files(s)[0]).is_file())
        })
}

/// Loads a split of a CIFAR-10 (`data_batch_1..5.bin`, `test_batch.bin`) or CIFAR-100
/// (`train.bin`, `test.bin`) directory; class names from `batches.meta.txt` /
/// `fine_label_names.txt` when present.
pub fn load_cifar_dir(dir: impl AsRef<Path>, split: Split) -> Result<ImageSet> {
    let dir = dir.as_ref();
    let kind = detect_cifar(dir).ok_or_else(|| DataError::MissingFile {
        path: dir.to_path_buf(),
        expected:
            "data_batch_N.bin / test_batch.bin (CIFAR-10) or train.bin / test.bin (CIFAR-100)"
                .into(),
    })?;
    let files: Vec<PathBuf> = kind
        .files(split)
        .iter()
        .map(|f| dir.join(f))
        .filter(|p| p.is_file())
        .collect();
    if files.is_empty() {
        return Err(DataError::MissingFile {
            path: dir.to_path_buf(),
            expected: kind.files(split).join(", "),
        });
    }
    let mut set = read_cifar_batch(&files[0], kind)?;
    for file in &files[1..] {
        let more = read_cifar_batch(file, kind)?;
        set.images.extend(more.images);
        set.labels.extend(more.labels);
        set.len += more.len;
    }
    set.source = files
        .iter()
        .map(|f| f.display().to_string())
        .collect::<Vec<_>>()
        .join(" + ");
    let names_path = dir.join(kind.names_file());
    if names_path.is_file() {
        let text = std::fs::read_to_string(&names_path).map_err(io_error(&names_path))?;
        let names: Vec<String> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect();
        if names.len() != kind.num_classes() {
            let reason = format!(
                "{} class names, expected {}",
                names.len(),
                kind.num_classes()
            );
            return Err(invalid(&names_path, reason));
        }
        set.class_names = names;
    }
    Ok(set)
}
