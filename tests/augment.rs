//! View generation: reproducibility, exact identity and mirror, crop geometry, noise statistics,
//! layout and config validation.

use clamp::augment::*;
use clamp::data::ImageSet;

fn image_set(
    images: Vec<u8>,
    len: usize,
    channels: usize,
    height: usize,
    width: usize,
) -> ImageSet {
    assert_eq!(images.len(), len * channels * height * width);
    ImageSet {
        images,
        labels: (0..len).map(|i| (i % 10) as u16).collect(),
        len,
        channels,
        height,
        width,
        class_names: (0..10).map(|c| format!("class {c}")).collect(),
        source: "synthetic".into(),
    }
}

/// Pseudo-random pixels from a fixed LCG, so tests need no RNG of their own.
fn noisy_set(len: usize, channels: usize, side: usize) -> ImageSet {
    let mut state = 12345u32;
    let pixels = (0..len * channels * side * side)
        .map(|_| {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (state >> 24) as u8
        })
        .collect();
    image_set(pixels, len, channels, side, side)
}

#[test]
fn same_seed_same_views_regardless_of_thread_count() {
    let set = noisy_set(6, 3, 16);
    let indices = [5, 0, 3, 3];
    let cfg = AugmentConfig {
        noise_std: 0.05,
        ..AugmentConfig::default()
    };
    let first = make_views(&set, &indices, 4, &cfg, 7);
    let again = make_views(&set, &indices, 4, &cfg, 7);
    let one_thread = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let serial = one_thread.install(|| make_views(&set, &indices, 4, &cfg, 7));
    assert_eq!(first, again);
    assert_eq!(first, serial);
    assert_ne!(first, make_views(&set, &indices, 4, &cfg, 8));

    // Every view has its own stream: the two copies of image 3 (positions 2, 3) and the views
    // of one image all differ.
    let pixels = set.pixels_per_image();
    let view = |v: usize, i: usize| &first[(v * indices.len() + i) * pixels..][..pixels];
    assert_ne!(view(0, 2), view(0, 3));
    assert_ne!(view(0, 0), view(1, 0));
    assert_ne!(view(1, 0), view(2, 0));
}

#[test]
fn all_augmentations_off_gives_the_original_exactly() {
    let set = noisy_set(4, 3, 12);
    let indices = [2, 0, 3];
    let views = make_views(&set, &indices, 3, &AugmentConfig::none(), 1);
    let plain = plain_batch(&set, &indices);
    assert_eq!(plain.len(), 3 * 3 * 12 * 12);
    assert_eq!(plain[..set.pixels_per_image()], set.to_f32(2)[..]);
    for v in 0..3 {
        assert_eq!(views[v * plain.len()..(v + 1) * plain.len()], plain[..]);
    }
}

#[test]
fn flip_only_gives_the_exact_mirror() {
    let (side, channels) = (10, 3);
    let set = noisy_set(2, channels, side);
    let cfg = AugmentConfig {
        flip_prob: 1.0,
        ..AugmentConfig::none()
    };
    let views = make_views(&set, &[1, 0], 2, &cfg, 3);
    let plain = plain_batch(&set, &[1, 0]);
    let per_view = plain.len();
    for v in 0..2 {
        for row in 0..2 * channels * side {
            for x in 0..side {
                let mirrored = plain[row * side + side - 1 - x];
                assert_eq!(views[v * per_view + row * side + x], mirrored);
            }
        }
    }
}

/// A 32x32 RGB ramp: red = 8 * x, green = 8 * y. Bilinear resampling reproduces a linear ramp,
/// so the red/green span of a view tells exactly which columns/rows the crop covered.
fn ramp_set() -> ImageSet {
    let side = 32;
    let mut pixels = vec![0u8; 3 * side * side];
    for y in 0..side {
        for x in 0..side {
            pixels[y * side + x] = (8 * x) as u8;
            pixels[side * side + y * side + x] = (8 * y) as u8;
            pixels[2 * side * side + y * side + x] = 128;
        }
    }
    image_set(pixels, 1, 3, side, side)
}

/// (left, width, top, height) of the crop behind a view of the ramp.
fn crop_extent(view: &[f32]) -> (f32, f32, f32, f32) {
    let plane = 32 * 32;
    let span = |values: &[f32]| {
        let min = values.iter().copied().fold(f32::MAX, f32::min) * 255.0 / 8.0;
        let max = values.iter().copied().fold(f32::MIN, f32::max) * 255.0 / 8.0;
        (min, max - min + 1.0)
    };
    let (left, width) = span(&view[..plane]);
    let (top, height) = span(&view[plane..2 * plane]);
    (left, width, top, height)
}

#[test]
fn crop_of_scale_s_covers_s_of_the_area() {
    let set = ramp_set();
    let pixels = set.pixels_per_image();
    for scale in [0.1f32, 0.25, 0.5, 0.8] {
        // Square crops: the side is round(sqrt(s * 1024)), exactly.
        let cfg = AugmentConfig {
            crop_scale: (scale, scale),
            ..AugmentConfig::none()
        };
        let views = make_views(&set, &[0; 8], 4, &cfg, 11);
        let side = (scale * 1024.0).sqrt().round();
        for view in views.chunks(pixels) {
            let (left, width, top, height) = crop_extent(view);
            assert!(
                (width - side).abs() < 0.01 && (height - side).abs() < 0.01,
                "{scale}: {width}x{height}"
            );
            assert!(left > -0.01 && left + width < 32.01 && top > -0.01 && top + height < 32.01);
            assert!(
                ((width * height / 1024.0) - scale).abs() < 0.03,
                "scale {scale}"
            );
        }
    }
    // Free aspect ratio: each crop still has about s of the area (rounding of each side).
    let cfg = AugmentConfig {
        crop_scale: (0.3, 0.3),
        crop_ratio: (0.75, 4.0 / 3.0),
        ..AugmentConfig::none()
    };
    let views = make_views(&set, &[0; 32], 2, &cfg, 5);
    let mut shapes = std::collections::HashSet::new();
    for view in views.chunks(pixels) {
        let (_, width, _, height) = crop_extent(view);
        let area = width * height / 1024.0;
        assert!((area - 0.3).abs() < 0.03, "area {area}");
        assert!(
            (0.6..=1.6).contains(&(width / height)),
            "ratio {}",
            width / height
        );
        shapes.insert((width.round() as i32, height.round() as i32));
    }
    assert!(shapes.len() > 3, "aspect ratios should vary: {shapes:?}");
}

#[test]
fn noise_has_the_requested_std_and_is_not_clamped() {
    let sigma = 0.1f32;
    let gray = image_set(vec![128; 16 * 28 * 28], 16, 1, 28, 28);
    let indices: Vec<usize> = (0..16).collect();
    let views = make_views(&gray, &indices, 8, &AugmentConfig::noise_only(sigma), 99);
    let base = 128.0 / 255.0;
    let n = views.len() as f64;
    let mean = views.iter().map(|&x| (x - base) as f64).sum::<f64>() / n;
    let std = (views
        .iter()
        .map(|&x| ((x - base) as f64 - mean).powi(2))
        .sum::<f64>()
        / n)
        .sqrt();
    assert!(mean.abs() < 0.002, "mean {mean}");
    assert!((std / sigma as f64 - 1.0).abs() < 0.05, "std {std}");

    // Black pixels get negative values: the noise is deliberately left unclamped.
    let black = image_set(vec![0; 28 * 28], 1, 1, 28, 28);
    let views = make_views(&black, &[0], 1, &AugmentConfig::noise_only(sigma), 1);
    assert!(views.iter().filter(|&&x| x < 0.0).count() > 300);
}

#[test]
fn layout_is_view_major() {
    // Image k is a constant k * 20; crop, flip and blur keep a constant image constant.
    let (len, side) = (5, 8);
    let pixels: Vec<u8> = (0..len)
        .flat_map(|k| vec![(k * 20) as u8; side * side])
        .collect();
    let set = image_set(pixels, len, 1, side, side);
    let indices = [3, 0, 4];
    let cfg = AugmentConfig {
        jitter_prob: 0.0,
        blur_prob: 1.0,
        ..AugmentConfig::default()
    };
    let views = make_views(&set, &indices, 2, &cfg, 4);
    assert_eq!(views.len(), 2 * 3 * side * side);
    for v in 0..2 {
        for (i, &index) in indices.iter().enumerate() {
            let start = (v * indices.len() + i) * side * side;
            let expected = (index * 20) as f32 / 255.0;
            assert!(
                views[start..start + side * side]
                    .iter()
                    .all(|&x| (x - expected).abs() < 1e-5)
            );
        }
    }
}

#[test]
fn default_views_stay_in_unit_range_and_grayscale_equalises_channels() {
    let set = noisy_set(8, 3, 16);
    let indices: Vec<usize> = (0..8).collect();
    let views = make_views(&set, &indices, 4, &AugmentConfig::cifar_reference(), 2);
    assert!(views.iter().all(|&x| (0.0..=1.0).contains(&x)));

    let cfg = AugmentConfig {
        grayscale_prob: 1.0,
        ..AugmentConfig::none()
    };
    let views = make_views(&set, &[1], 1, &cfg, 2);
    let plane = 16 * 16;
    for p in 0..plane {
        assert_eq!(views[p], views[plane + p]);
        assert_eq!(views[p], views[2 * plane + p]);
    }
}

#[test]
fn blur_spreads_an_impulse_symmetrically_and_keeps_its_mass() {
    let mut pixels = vec![0u8; 9 * 9];
    pixels[4 * 9 + 4] = 255;
    let set = image_set(pixels, 1, 1, 9, 9);
    let cfg = AugmentConfig {
        blur_prob: 1.0,
        ..AugmentConfig::none()
    };
    let view = make_views(&set, &[0], 1, &cfg, 6);
    let at = |y: usize, x: usize| view[y * 9 + x];
    assert!((view.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    assert!(at(4, 4) < 1.0 && at(4, 3) > 0.0 && at(3, 3) > 0.0 && at(2, 4) == 0.0);
    assert!((at(4, 3) - at(4, 5)).abs() < 1e-7 && (at(3, 4) - at(4, 3)).abs() < 1e-7);
}

#[test]
fn validate_names_the_bad_field() {
    assert_eq!(AugmentConfig::default().validate(), Ok(()));
    assert_eq!(AugmentConfig::none().validate(), Ok(()));
    assert_eq!(AugmentConfig::noise_only(0.2).validate(), Ok(()));
    let cases: Vec<(&str, AugmentConfig)> = vec![
        (
            "crop_scale",
            AugmentConfig {
                crop_scale: (0.5, 0.2),
                ..Default::default()
            },
        ),
        (
            "crop_scale",
            AugmentConfig {
                crop_scale: (0.0, 1.0),
                ..Default::default()
            },
        ),
        (
            "crop_scale",
            AugmentConfig {
                crop_scale: (0.5, 1.5),
                ..Default::default()
            },
        ),
        (
            "crop_ratio",
            AugmentConfig {
                crop_ratio: (0.0, 1.0),
                ..Default::default()
            },
        ),
        (
            "crop_ratio",
            AugmentConfig {
                crop_ratio: (2.0, 1.0),
                ..Default::default()
            },
        ),
        (
            "flip_prob",
            AugmentConfig {
                flip_prob: 1.5,
                ..Default::default()
            },
        ),
        (
            "jitter_prob",
            AugmentConfig {
                jitter_prob: -0.1,
                ..Default::default()
            },
        ),
        (
            "grayscale_prob",
            AugmentConfig {
                grayscale_prob: f32::NAN,
                ..Default::default()
            },
        ),
        (
            "blur_prob",
            AugmentConfig {
                blur_prob: 2.0,
                ..Default::default()
            },
        ),
        (
            "brightness",
            AugmentConfig {
                brightness: -0.4,
                ..Default::default()
            },
        ),
        (
            "contrast",
            AugmentConfig {
                contrast: f32::INFINITY,
                ..Default::default()
            },
        ),
        (
            "saturation",
            AugmentConfig {
                saturation: -1.0,
                ..Default::default()
            },
        ),
        (
            "noise_std",
            AugmentConfig {
                noise_std: f32::NAN,
                ..Default::default()
            },
        ),
    ];
    for (field, cfg) in cases {
        let message = cfg.validate().expect_err(field);
        assert!(message.starts_with(field), "{field}: {message}");
    }
    // An invalid config must not panic make_views.
    let bad = AugmentConfig {
        crop_scale: (0.9, 0.1),
        crop_ratio: (-1.0, f32::NAN),
        ..Default::default()
    };
    let set = noisy_set(1, 1, 8);
    assert_eq!(make_views(&set, &[0], 2, &bad, 0).len(), 2 * 64);
}
