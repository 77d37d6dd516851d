//! Image folders: one subfolder per class of PNG/JPEG files, resized and converted to RGB.

use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::{DataError, ImageSet, Result, invalid, io_error};

/// Sorted subdirectories (or files with the given extensions) of `dir`, hidden ones skipped.
fn sorted_entries(dir: &Path, want_dirs: bool, extensions: &[&str]) -> Result<Vec<PathBuf>> {
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_error(dir))? {
        let path = entry.map_err(io_error(dir))?.path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        if name.starts_with('.') {
            continue;
        }
        let ext = path
            .extension()
            .map(|e| e.to_string_lossy().to_lowercase())
            .unwrap_or_default();
        if want_dirs {
            if path.is_dir() {
                entries.push(path);
            }
        } else if extensions.contains(&ext.as_str()) && !path.is_dir() {
            // Named like an image but not a readable file (a dangling link, say): reading it
            // reports the problem instead of leaving the image out unnoticed.
            entries.push(path);
        }
    }
    entries.sort();
    Ok(entries)
}

/// Widest or tallest image a folder may hold, in pixels.
pub const MAX_IMAGE_SIDE: u32 = 16_384;
/// Most memory one image may take while it is decoded.
pub const MAX_IMAGE_BYTES: u64 = 512 << 20;

/// Decodes an image (format judged by content), converts it to RGB, resizes it bilinearly, CHW.
fn decode_rgb_chw(path: &Path, height: usize, width: usize) -> Result<Vec<u8>> {
    let unreadable = |reason: String| DataError::UnreadableImage {
        path: path.to_path_buf(),
        reason,
    };
    let mut reader = image::ImageReader::open(path).map_err(io_error(path))?;
    // A header may claim any size: refuse before allocating for it.
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    limits.max_alloc = Some(MAX_IMAGE_BYTES);
    reader.limits(limits);
    let reader = reader.with_guessed_format().map_err(io_error(path))?;
    let mut rgb = reader
        .decode()
        .map_err(|e| unreadable(e.to_string()))?
        .to_rgb8();
    if (rgb.width() as usize, rgb.height() as usize) != (width, height) {
        let filter = image::imageops::FilterType::Triangle; // bilinear
        rgb = image::imageops::resize(&rgb, width as u32, height as u32, filter);
    }
    let plane = height * width;
    let mut chw = vec![0u8; 3 * plane];
    for (p, pixel) in rgb.pixels().enumerate() {
        for c in 0..3 {
            chw[c * plane + p] = pixel[c];
        }
    }
    Ok(chw)
}

/// Loads a folder with one subfolder per class (sorted names = class names) of PNG/JPEG files,
/// each converted to RGB and resized to `height` x `width`.
pub fn load_image_folder(dir: impl AsRef<Path>, height: usize, width: usize) -> Result<ImageSet> {
    let dir = dir.as_ref();
    if height == 0 || width == 0 {
        return Err(invalid(
            dir,
            format!("cannot resize images to {height}x{width}"),
        ));
    }
    let class_dirs = sorted_entries(dir, true, &[])?;
    if class_dirs.is_empty() {
        return Err(DataError::EmptyFolder {
            path: dir.to_path_buf(),
            reason: "no class subfolders".into(),
        });
    }
    let mut files = Vec::new();
    for (label, class_dir) in class_dirs.iter().enumerate() {
        let images = sorted_entries(class_dir, false, &["png", "jpg", "jpeg"])?;
        if images.is_empty() {
            return Err(DataError::EmptyFolder {
                path: class_dir.clone(),
                reason: "no PNG or JPEG files in this class folder".into(),
            });
        }
        files.extend(images.into_iter().map(|f| (f, label as u16)));
    }
    if class_dirs.len() > u16::MAX as usize {
        return Err(invalid(dir, "more than 65535 classes"));
    }
    let decoded: Vec<Vec<u8>> = files
        .par_iter()
        .map(|(path, _)| decode_rgb_chw(path, height, width))
        .collect::<Result<_>>()?;
    Ok(ImageSet {
        images: decoded.concat(),
        labels: files.iter().map(|(_, label)| *label).collect(),
        len: files.len(),
        channels: 3,
        height,
        width,
        class_names: class_dirs
            .iter()
            .map(|d| {
                d.file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .to_string()
            })
            .collect(),
        source: dir.display().to_string(),
    })
}
