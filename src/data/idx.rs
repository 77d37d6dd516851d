//! IDX files (MNIST, Fashion-MNIST): a big-endian header (magic, sizes) and raw bytes.

use std::path::{Path, PathBuf};

use super::{
    DataError, FASHION_MNIST_CLASSES, ImageSet, MNIST_CLASSES, Result, Split, invalid,
    maybe_gunzip, read_maybe_gz,
};

const IDX_IMAGES_MAGIC: u32 = 0x0000_0803; // unsigned bytes, 3 dimensions
const IDX_LABELS_MAGIC: u32 = 0x0000_0801; // unsigned bytes, 1 dimension

fn be_u32(bytes: &[u8], offset: usize) -> u32 {
    u32::from_be_bytes([
        bytes[offset],
        bytes[offset + 1],
        bytes[offset + 2],
        bytes[offset + 3],
    ])
}

/// Checks an IDX header (magic + `dims` big-endian sizes) and returns the sizes.
fn idx_header(
    path: &Path,
    bytes: &[u8],
    magic: u32,
    dims: usize,
    what: &'static str,
) -> Result<Vec<usize>> {
    let header_len = 4 + 4 * dims;
    let truncated = || DataError::Truncated {
        path: path.to_path_buf(),
        what: "IDX header".into(),
        expected: header_len as u64,
        found: bytes.len() as u64,
    };
    if bytes.len() < 4 {
        return Err(truncated());
    }
    let found = be_u32(bytes, 0);
    if found != magic {
        return Err(DataError::BadMagic {
            path: path.to_path_buf(),
            found,
            expected: magic,
            what,
        });
    }
    if bytes.len() < header_len {
        return Err(truncated());
    }
    Ok((0..dims)
        .map(|d| be_u32(bytes, 4 + 4 * d) as usize)
        .collect())
}

/// Strips the header after checking the payload has exactly `payload_len` bytes.
fn idx_payload(
    path: &Path,
    mut bytes: Vec<u8>,
    header_len: usize,
    payload_len: u64,
    what: &str,
) -> Result<Vec<u8>> {
    let expected = header_len as u64 + payload_len;
    let found = bytes.len() as u64;
    if found < expected {
        return Err(DataError::Truncated {
            path: path.to_path_buf(),
            what: what.into(),
            expected,
            found,
        });
    }
    if found > expected {
        return Err(invalid(
            path,
            format!(
                "{} bytes after the {what}, expected exactly {expected}",
                found - expected
            ),
        ));
    }
    bytes.drain(..header_len);
    Ok(bytes)
}

/// Reads an IDX image file (raw or gzip): `(count, rows, cols, pixels)`, pixels row-major.
pub fn read_idx_images(path: impl AsRef<Path>) -> Result<(usize, usize, usize, Vec<u8>)> {
    let path = path.as_ref();
    parse_idx_images(path, read_maybe_gz(path)?)
}

/// The bytes of an IDX image file (already decompressed); `path` names it in errors.
fn parse_idx_images(path: &Path, bytes: Vec<u8>) -> Result<(usize, usize, usize, Vec<u8>)> {
    let dims = idx_header(
        path,
        &bytes,
        IDX_IMAGES_MAGIC,
        3,
        "IDX image file: u8, 3 dimensions",
    )?;
    let (count, rows, cols) = (dims[0], dims[1], dims[2]);
    if rows == 0 || cols == 0 {
        return Err(invalid(path, format!("images of {rows}x{cols} pixels")));
    }
    let payload = (count as u64).saturating_mul(rows as u64 * cols as u64);
    let pixels = idx_payload(path, bytes, 16, payload, "image data")?;
    Ok((count, rows, cols, pixels))
}

/// Reads an IDX label file (raw or gzip): one byte per label.
pub fn read_idx_labels(path: impl AsRef<Path>) -> Result<Vec<u8>> {
    let path = path.as_ref();
    parse_idx_labels(path, read_maybe_gz(path)?)
}

/// The bytes of an IDX label file (already decompressed); `path` names it in errors.
fn parse_idx_labels(path: &Path, bytes: Vec<u8>) -> Result<Vec<u8>> {
    let dims = idx_header(
        path,
        &bytes,
        IDX_LABELS_MAGIC,
        1,
        "IDX label file: u8, 1 dimension",
    )?;
    idx_payload(path, bytes, 8, dims[0] as u64, "label data")
}

/// Reads an IDX image file and its label file into a one-channel [`ImageSet`].
pub fn load_idx_pair(
    images_path: impl AsRef<Path>,
    labels_path: impl AsRef<Path>,
    class_names: &[&str],
) -> Result<ImageSet> {
    let (images_path, labels_path) = (images_path.as_ref(), labels_path.as_ref());
    let (count, rows, cols, pixels) = read_idx_images(images_path)?;
    let labels = read_idx_labels(labels_path)?;
    image_set(
        images_path,
        (count, rows, cols, pixels),
        labels_path,
        labels,
        class_names,
    )
}

/// An IDX image file and its label file given as bytes (raw or gzip), as a page fetches them;
/// the names (their addresses) stand for paths in errors.
pub fn idx_pair_from_bytes(
    images_name: &str,
    images: Vec<u8>,
    labels_name: &str,
    labels: Vec<u8>,
    class_names: &[&str],
) -> Result<ImageSet> {
    let (images_path, labels_path) = (Path::new(images_name), Path::new(labels_name));
    let pixels = parse_idx_images(images_path, maybe_gunzip(images_path, images)?)?;
    let labels = parse_idx_labels(labels_path, maybe_gunzip(labels_path, labels)?)?;
    image_set(images_path, pixels, labels_path, labels, class_names)
}

/// Checks that images and labels belong together and builds the set.
fn image_set(
    images_path: &Path,
    (count, rows, cols, pixels): (usize, usize, usize, Vec<u8>),
    labels_path: &Path,
    labels: Vec<u8>,
    class_names: &[&str],
) -> Result<ImageSet> {
    if labels.len() != count {
        return Err(DataError::CountMismatch {
            images_path: images_path.to_path_buf(),
            labels_path: labels_path.to_path_buf(),
            images: count,
            labels: labels.len(),
        });
    }
    if let Some(at) = labels.iter().position(|&l| l as usize >= class_names.len()) {
        let reason = format!(
            "label {} at index {at}, but there are {} classes",
            labels[at],
            class_names.len()
        );
        return Err(invalid(labels_path, reason));
    }
    Ok(ImageSet {
        images: pixels,
        labels: labels.into_iter().map(u16::from).collect(),
        len: count,
        channels: 1,
        height: rows,
        width: cols,
        class_names: class_names.iter().map(|s| s.to_string()).collect(),
        source: format!("{} + {}", images_path.display(), labels_path.display()),
    })
}

/// The standard IDX file stems for a split (images, labels).
fn idx_stems(split: Split) -> (&'static str, &'static str) {
    match split {
        Split::Train => ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
        Split::Test => ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
    }
}

/// Finds `stem.gz`, `stem`, or the `stem` spelled with a dot (`t10k-images.idx3-ubyte`).
fn find_idx_file(dir: &Path, stem: &str) -> Option<PathBuf> {
    let dotted = stem.replacen("-idx", ".idx", 1);
    [
        format!("{stem}.gz"),
        stem.to_string(),
        format!("{dotted}.gz"),
        dotted,
    ]
    .iter()
    .map(|name| dir.join(name))
    .find(|p| p.is_file())
}

/// The (images, labels) files of a split in `dir`, when both exist.
pub fn find_idx_pair(dir: &Path, split: Split) -> Option<(PathBuf, PathBuf)> {
    let (images, labels) = idx_stems(split);
    Some((find_idx_file(dir, images)?, find_idx_file(dir, labels)?))
}

/// Loads one split of an MNIST-style IDX directory with the given class names.
pub fn load_idx_dir(dir: impl AsRef<Path>, split: Split, class_names: &[&str]) -> Result<ImageSet> {
    let dir = dir.as_ref();
    let (images, labels) = find_idx_pair(dir, split).ok_or_else(|| {
        let (images, labels) = idx_stems(split);
        DataError::MissingFile {
            path: dir.to_path_buf(),
            expected: format!("{images}(.gz) and {labels}(.gz)"),
        }
    })?;
    load_idx_pair(images, labels, class_names)
}

/// Loads one split of Fashion-MNIST from a directory with the standard file names.
pub fn load_fashion_mnist(dir: impl AsRef<Path>, split: Split) -> Result<ImageSet> {
    load_idx_dir(dir, split, &FASHION_MNIST_CLASSES)
}

/// Digit names when the path says MNIST but not Fashion; Fashion-MNIST names otherwise.
pub(super) fn guess_idx_classes(dir: &Path) -> (&'static str, [&'static str; 10]) {
    let lower = dir.to_string_lossy().to_lowercase();
    if lower.contains("mnist") && !lower.contains("fashion") {
        ("MNIST", MNIST_CLASSES)
    } else {
        ("Fashion-MNIST", FASHION_MNIST_CLASSES)
    }
}
