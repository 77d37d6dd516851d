//! Multi-view augmentation: every image of a batch becomes `views` random views, as CLAMP needs
//! (each image a small "sub-manifold" of views).
//!
//! The pipeline follows the reference's CIFAR recipe, in this order: random resized crop (resampled
//! bilinearly back to the full size), horizontal flip, colour jitter (brightness, contrast,
//! saturation in random order; no hue), grayscale (RGB only), 3x3 Gaussian blur, additive
//! Gaussian noise. Every step but the noise keeps values in [0, 1]. The noise is added last and
//! **not clamped**, so it stays zero-mean with exactly the requested std (clamping would brighten
//! black pixels); outputs may therefore leave [0, 1] when `noise_std > 0`.
//!
//! Views are reproducible: view `v` of batch position `i` draws from its own RNG seeded from
//! `(seed, i, v)`, so the result does not depend on how rayon schedules the work.

use rand::Rng;
use rand::seq::SliceRandom;
use rand_distr::StandardNormal;
use rayon::prelude::*;

use crate::data::ImageSet;
use crate::seed::{SeededRng, seeded_rng, splitmix64};

/// The blur's sigma is drawn uniformly from this range (as the reference).
pub const BLUR_SIGMA_RANGE: (f32, f32) = (0.1, 2.0);
/// Attempts at drawing a crop inside the image before falling back to a centre crop.
const CROP_ATTEMPTS: usize = 10;

/// Parameters of the view pipeline. Probabilities are per view.
#[derive(Clone, Debug, PartialEq)]
pub struct AugmentConfig {
    /// Crop area as a fraction of the image, drawn uniformly. `(1, 1)` disables cropping.
    pub crop_scale: (f32, f32),
    /// Crop aspect ratio (width / height), drawn log-uniformly.
    pub crop_ratio: (f32, f32),
    /// Probability of a horizontal flip.
    pub flip_prob: f32,
    /// Probability of applying colour jitter.
    pub jitter_prob: f32,
    /// Jitter strengths: each factor is drawn from `[max(0, 1 - s), 1 + s]`.
    pub brightness: f32,
    pub contrast: f32,
    pub saturation: f32,
    /// Probability of converting an RGB view to gray (ignored for one channel).
    pub grayscale_prob: f32,
    /// Probability of a 3x3 Gaussian blur with sigma in [`BLUR_SIGMA_RANGE`].
    pub blur_prob: f32,
    /// Std of additive Gaussian noise (in [0, 1] pixel units), applied to every pixel, unclamped.
    pub noise_std: f32,
}

impl Default for AugmentConfig {
    /// The reference recipe with jitter strengths 0.4 (gentler than CIFAR's 0.8; suits 28x28 gray).
    fn default() -> Self {
        AugmentConfig {
            crop_scale: (0.08, 1.0),
            crop_ratio: (3.0 / 4.0, 4.0 / 3.0),
            flip_prob: 0.5,
            jitter_prob: 0.8,
            brightness: 0.4,
            contrast: 0.4,
            saturation: 0.4,
            grayscale_prob: 0.2,
            blur_prob: 0.5,
            noise_std: 0.0,
        }
    }
}

impl AugmentConfig {
    /// Every augmentation off: each view is the original image.
    pub fn none() -> Self {
        AugmentConfig {
            crop_scale: (1.0, 1.0),
            crop_ratio: (1.0, 1.0),
            flip_prob: 0.0,
            jitter_prob: 0.0,
            brightness: 0.0,
            contrast: 0.0,
            saturation: 0.0,
            grayscale_prob: 0.0,
            blur_prob: 0.0,
            noise_std: 0.0,
        }
    }

    /// Gaussian noise of the given std and nothing else (the toy set's views).
    pub fn noise_only(std: f32) -> Self {
        AugmentConfig {
            noise_std: std,
            ..Self::none()
        }
    }

    /// The reference CIFAR-10 recipe (jitter strengths 0.8).
    pub fn cifar_reference() -> Self {
        AugmentConfig {
            brightness: 0.8,
            contrast: 0.8,
            saturation: 0.8,
            ..Self::default()
        }
    }

    /// Checks every field; the error names the field, its value and the allowed range.
    pub fn validate(&self) -> Result<(), String> {
        let (lo, hi) = self.crop_scale;
        if !(lo > 0.0 && lo <= hi && hi <= 1.0) {
            return Err(format!(
                "crop_scale = ({lo}, {hi}): need 0 < min <= max <= 1"
            ));
        }
        let (lo, hi) = self.crop_ratio;
        if !(lo > 0.0 && lo <= hi && hi.is_finite()) {
            return Err(format!(
                "crop_ratio = ({lo}, {hi}): need 0 < min <= max, finite"
            ));
        }
        let probabilities = [
            ("flip_prob", self.flip_prob),
            ("jitter_prob", self.jitter_prob),
            ("grayscale_prob", self.grayscale_prob),
            ("blur_prob", self.blur_prob),
        ];
        for (name, p) in probabilities {
            if !(0.0..=1.0).contains(&p) {
                return Err(format!("{name} = {p}: a probability must be in [0, 1]"));
            }
        }
        let strengths = [
            ("brightness", self.brightness),
            ("contrast", self.contrast),
            ("saturation", self.saturation),
            ("noise_std", self.noise_std),
        ];
        for (name, s) in strengths {
            if !(s >= 0.0 && s.is_finite()) {
                return Err(format!("{name} = {s}: must be finite and >= 0"));
            }
        }
        Ok(())
    }
}

/// Random views of the images `indices` of `set`, as floats laid out
/// `[views, indices.len(), channels, height, width]` (view-major: view `v` of image `indices[i]`
/// starts at `(v * indices.len() + i) * pixels_per_image`). Values are in [0, 1] except for the
/// unclamped noise. Runs in parallel; the same `seed` gives the same output.
/// An invalid `cfg` does not panic but gives unspecified views: call [`AugmentConfig::validate`].
/// Panics if an index is out of range, like slice indexing.
pub fn make_views(
    set: &ImageSet,
    indices: &[usize],
    views: usize,
    cfg: &AugmentConfig,
    seed: u64,
) -> Vec<f32> {
    let pixels = set.pixels_per_image();
    let batch = indices.len();
    let mut out = vec![0.0f32; views * batch * pixels];
    if pixels == 0 {
        return out;
    }
    out.par_chunks_mut(pixels).enumerate().for_each_init(
        || vec![0.0f32; pixels],
        |scratch, (slot, view)| {
            let (v, i) = (slot / batch, slot % batch);
            let mut rng = view_rng(seed, i, v);
            augment_into(set, set.image(indices[i]), cfg, &mut rng, view, scratch);
        },
    );
    out
}

/// The images `indices` as floats in [0, 1], `[n, channels, height, width]`, unaugmented.
pub fn plain_batch(set: &ImageSet, indices: &[usize]) -> Vec<f32> {
    indices
        .iter()
        .flat_map(|&i| set.image(i))
        .map(|&p| p as f32 / 255.0)
        .collect()
}

fn view_rng(seed: u64, position: usize, view: usize) -> SeededRng {
    let key = splitmix64(splitmix64(splitmix64(seed) ^ position as u64) ^ view as u64);
    seeded_rng(key)
}

/// Uniform in `[lo, hi)`; never panics, even on an empty or reversed range.
fn uniform(rng: &mut SeededRng, (lo, hi): (f32, f32)) -> f32 {
    lo + (hi - lo) * rng.random::<f32>()
}

fn chance(rng: &mut SeededRng, probability: f32) -> bool {
    rng.random::<f32>() < probability
}

/// One view of `image` (CHW bytes) written into `out` (CHW floats).
fn augment_into(
    set: &ImageSet,
    image: &[u8],
    cfg: &AugmentConfig,
    rng: &mut SeededRng,
    out: &mut [f32],
    scratch: &mut [f32],
) {
    let (channels, height, width) = (set.channels, set.height, set.width);
    let crop = sample_crop(height, width, cfg, rng);
    let flip = chance(rng, cfg.flip_prob);
    resample_crop(image, (channels, height, width), crop, flip, out, scratch);
    if chance(rng, cfg.jitter_prob) {
        color_jitter(out, channels, cfg, rng);
    }
    if channels == 3 && chance(rng, cfg.grayscale_prob) {
        to_grayscale(out);
    }
    if chance(rng, cfg.blur_prob) {
        let sigma = uniform(rng, BLUR_SIGMA_RANGE);
        blur3x3(out, scratch, channels, height, width, sigma);
    }
    if cfg.noise_std > 0.0 {
        for x in out.iter_mut() {
            *x += cfg.noise_std * rng.sample::<f32, _>(StandardNormal);
        }
    }
}

/// A rectangle of the source image, in pixels.
#[derive(Clone, Copy, Debug)]
struct Crop {
    top: usize,
    left: usize,
    height: usize,
    width: usize,
}

/// torchvision's RandomResizedCrop rule: area fraction uniform in `crop_scale`, log-uniform aspect
/// ratio; after 10 misses, a centre crop at the nearest allowed ratio.
fn sample_crop(height: usize, width: usize, cfg: &AugmentConfig, rng: &mut SeededRng) -> Crop {
    let centred = |h: usize, w: usize| Crop {
        top: (height - h) / 2,
        left: (width - w) / 2,
        height: h,
        width: w,
    };
    if cfg.crop_scale.0 >= 1.0 {
        return centred(height, width); // scale 1 means the whole image, whatever the ratio
    }
    let area = (height * width) as f32;
    let log_ratio = (cfg.crop_ratio.0.ln(), cfg.crop_ratio.1.ln());
    for _ in 0..CROP_ATTEMPTS {
        let target_area = area * uniform(rng, cfg.crop_scale);
        let aspect = uniform(rng, log_ratio).exp();
        // `as usize` maps NaN and negatives to 0, which the bounds check rejects.
        let w = (target_area * aspect).sqrt().round() as usize;
        let h = (target_area / aspect).sqrt().round() as usize;
        if (1..=width).contains(&w) && (1..=height).contains(&h) {
            let top = rng.random_range(0..=height - h);
            let left = rng.random_range(0..=width - w);
            return Crop {
                top,
                left,
                height: h,
                width: w,
            };
        }
    }
    let image_ratio = width as f32 / height as f32;
    if image_ratio < cfg.crop_ratio.0 {
        centred(
            ((width as f32 / cfg.crop_ratio.0).round() as usize).clamp(1, height),
            width,
        )
    } else if image_ratio > cfg.crop_ratio.1 {
        centred(
            height,
            ((height as f32 * cfg.crop_ratio.1).round() as usize).clamp(1, width),
        )
    } else {
        centred(height, width)
    }
}

/// Bilinear sample positions (half-pixel centres, edge-clamped) mapping `dst_len` output pixels
/// onto `src_len` source pixels starting at `offset`: (first index, second index, weight of second).
fn sample_positions(
    dst_len: usize,
    src_len: usize,
    offset: usize,
    mirror: bool,
) -> Vec<(usize, usize, f32)> {
    let scale = src_len as f32 / dst_len as f32;
    (0..dst_len)
        .map(|d| {
            let d = if mirror { dst_len - 1 - d } else { d };
            let s = ((d as f32 + 0.5) * scale - 0.5).clamp(0.0, (src_len - 1) as f32);
            let i0 = s.floor() as usize;
            let i1 = (i0 + 1).min(src_len - 1);
            (offset + i0, offset + i1, s - i0 as f32)
        })
        .collect()
}

/// Resizes the crop back to the full size (bilinear), optionally mirrored, bytes -> [0, 1].
/// With the whole image and no flip every weight is 0, so the copy is exact.
fn resample_crop(
    image: &[u8],
    (channels, height, width): (usize, usize, usize),
    crop: Crop,
    flip: bool,
    out: &mut [f32],
    scratch: &mut [f32],
) {
    let columns = sample_positions(width, crop.width, crop.left, flip);
    let rows = sample_positions(height, crop.height, crop.top, false);
    let plane = height * width;
    // Each source row the output reads, interpolated along x once (a crop is at most as tall as
    // the image, so output rows share source rows); then each output row is a blend of two.
    let first_row = crop.top;
    let across = &mut scratch[..crop.height * width];
    for c in 0..channels {
        let src = &image[c * plane..(c + 1) * plane];
        let dst = &mut out[c * plane..(c + 1) * plane];
        for (r, line) in across.chunks_exact_mut(width).enumerate() {
            let row = &src[(first_row + r) * width..(first_row + r + 1) * width];
            for (value, &(x0, x1, fx)) in line.iter_mut().zip(&columns) {
                *value = row[x0] as f32 * (1.0 - fx) + row[x1] as f32 * fx;
            }
        }
        for (line, &(y0, y1, fy)) in dst.chunks_exact_mut(width).zip(&rows) {
            let top = &across[(y0 - first_row) * width..(y0 - first_row + 1) * width];
            let bottom = &across[(y1 - first_row) * width..(y1 - first_row + 1) * width];
            for ((value, &t), &b) in line.iter_mut().zip(top).zip(bottom) {
                *value = (t * (1.0 - fy) + b * fy) / 255.0;
            }
        }
    }
}

/// ITU-R 601 luma, as torchvision's grayscale.
fn luma(r: f32, g: f32, b: f32) -> f32 {
    0.299 * r + 0.587 * g + 0.114 * b
}

/// Brightness, contrast and saturation (RGB only) in random order, each a blend clamped to [0, 1].
fn color_jitter(img: &mut [f32], channels: usize, cfg: &AugmentConfig, rng: &mut SeededRng) {
    let plane = img.len() / channels;
    let factor = |rng: &mut SeededRng, strength: f32| {
        uniform(rng, ((1.0 - strength).max(0.0), 1.0 + strength))
    };
    let mut order = [0u8, 1, 2];
    order.shuffle(rng);
    for step in order {
        match step {
            0 if cfg.brightness > 0.0 => {
                let f = factor(rng, cfg.brightness);
                img.iter_mut().for_each(|x| *x = (*x * f).clamp(0.0, 1.0));
            }
            1 if cfg.contrast > 0.0 => {
                let f = factor(rng, cfg.contrast);
                let mean = if channels == 3 {
                    (0..plane)
                        .map(|p| luma(img[p], img[plane + p], img[2 * plane + p]))
                        .sum::<f32>()
                        / plane as f32
                } else {
                    img.iter().sum::<f32>() / img.len() as f32
                };
                img.iter_mut()
                    .for_each(|x| *x = (mean + (*x - mean) * f).clamp(0.0, 1.0));
            }
            2 if cfg.saturation > 0.0 && channels == 3 => {
                let f = factor(rng, cfg.saturation);
                for p in 0..plane {
                    let gray = luma(img[p], img[plane + p], img[2 * plane + p]);
                    for c in 0..3 {
                        let x = &mut img[c * plane + p];
                        *x = (gray + (*x - gray) * f).clamp(0.0, 1.0);
                    }
                }
            }
            _ => {}
        }
    }
}

/// Replaces R, G and B with the luma.
fn to_grayscale(img: &mut [f32]) {
    let plane = img.len() / 3;
    for p in 0..plane {
        let gray = luma(img[p], img[plane + p], img[2 * plane + p]);
        for c in 0..3 {
            img[c * plane + p] = gray;
        }
    }
}

/// Mirror index at the borders (`-1 -> 1`, `n -> n - 2`), like torchvision's reflect padding.
fn reflect(i: isize, n: usize) -> usize {
    let last = n as isize - 1;
    let r = if i < 0 {
        -i
    } else if i > last {
        2 * last - i
    } else {
        i
    };
    r.clamp(0, last) as usize
}

/// Separable 3x3 Gaussian blur of every channel, reflect-padded.
fn blur3x3(
    img: &mut [f32],
    scratch: &mut [f32],
    channels: usize,
    height: usize,
    width: usize,
    sigma: f32,
) {
    let edge = (-1.0 / (2.0 * sigma * sigma)).exp();
    let (side, centre) = (edge / (1.0 + 2.0 * edge), 1.0 / (1.0 + 2.0 * edge));
    let plane = height * width;
    let blend = |before: f32, at: f32, after: f32| side * (before + after) + centre * at;
    for c in 0..channels {
        let range = c * plane..(c + 1) * plane;
        let (src, tmp) = (&mut img[range.clone()], &mut scratch[range]);
        // Along x: the two border pixels reflect, the interior reads its neighbours directly.
        for (row, out) in src.chunks_exact(width).zip(tmp.chunks_exact_mut(width)) {
            let at = |x: isize| row[reflect(x, width)];
            out[0] = blend(at(-1), at(0), at(1));
            if width > 1 {
                let last = width as isize - 1;
                out[width - 1] = blend(at(last - 1), at(last), at(last + 1));
            }
            for x in 1..width.saturating_sub(1) {
                out[x] = blend(row[x - 1], row[x], row[x + 1]);
            }
        }
        // Along y, a row at a time; the clamp only absorbs rounding: the weights sum to 1.
        for y in 0..height {
            let line = |dy: isize| {
                let r = reflect(y as isize + dy, height);
                &tmp[r * width..(r + 1) * width]
            };
            let (above, here, below) = (line(-1), line(0), line(1));
            let out = &mut src[y * width..(y + 1) * width];
            for x in 0..width {
                out[x] = blend(above[x], here[x], below[x]).clamp(0.0, 1.0);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The resampling written pixel by pixel, each output pixel from its four source pixels.
    fn resample_pixelwise(image: &[u8], side: usize, crop: Crop, flip: bool) -> Vec<f32> {
        let columns = sample_positions(side, crop.width, crop.left, flip);
        let rows = sample_positions(side, crop.height, crop.top, false);
        let mut out = vec![0.0; side * side];
        for (y, &(y0, y1, fy)) in rows.iter().enumerate() {
            for (x, &(x0, x1, fx)) in columns.iter().enumerate() {
                let p = |r: usize, c: usize| image[r * side + c] as f32;
                let top = p(y0, x0) * (1.0 - fx) + p(y0, x1) * fx;
                let bottom = p(y1, x0) * (1.0 - fx) + p(y1, x1) * fx;
                out[y * side + x] = (top * (1.0 - fy) + bottom * fy) / 255.0;
            }
        }
        out
    }

    /// The blur written pixel by pixel, every neighbour through `reflect`.
    fn blur_pixelwise(img: &[f32], side: usize, sigma: f32) -> Vec<f32> {
        let edge = (-1.0 / (2.0 * sigma * sigma)).exp();
        let (w_side, w_centre) = (edge / (1.0 + 2.0 * edge), 1.0 / (1.0 + 2.0 * edge));
        let at = |v: &[f32], y: isize, x: isize| v[reflect(y, side) * side + reflect(x, side)];
        let mut across = vec![0.0; side * side];
        for y in 0..side as isize {
            for x in 0..side as isize {
                across[y as usize * side + x as usize] =
                    w_side * (at(img, y, x - 1) + at(img, y, x + 1)) + w_centre * at(img, y, x);
            }
        }
        let mut out = vec![0.0; side * side];
        for y in 0..side as isize {
            for x in 0..side as isize {
                out[y as usize * side + x as usize] = (w_side
                    * (at(&across, y - 1, x) + at(&across, y + 1, x))
                    + w_centre * at(&across, y, x))
                .clamp(0.0, 1.0);
            }
        }
        out
    }

    #[test]
    fn row_wise_resampling_and_blur_give_the_pixelwise_bits() {
        let mut rng = seeded_rng(7);
        for side in [1usize, 2, 3, 5, 28] {
            let image: Vec<u8> = (0..side * side).map(|_| rng.random()).collect();
            let cfg = AugmentConfig::default();
            for trial in 0..50 {
                let crop = sample_crop(side, side, &cfg, &mut rng);
                let flip = trial % 2 == 1;
                let mut out = vec![0.0; side * side];
                let mut scratch = vec![0.0; side * side];
                resample_crop(&image, (1, side, side), crop, flip, &mut out, &mut scratch);
                let expected = resample_pixelwise(&image, side, crop, flip);
                let same = out
                    .iter()
                    .zip(&expected)
                    .all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(same, "side {side}, {crop:?}, flip {flip}");

                let sigma = uniform(&mut rng, BLUR_SIGMA_RANGE);
                let expected = blur_pixelwise(&out, side, sigma);
                blur3x3(&mut out, &mut scratch, 1, side, side, sigma);
                let same = out
                    .iter()
                    .zip(&expected)
                    .all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(same, "side {side}, sigma {sigma}");
            }
        }
    }
}
