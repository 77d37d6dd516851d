#![cfg(feature = "viewer")]
//! `clamp view` renders under a virtual display and saves a screenshot with the class colors;
//! `clamp record` writes frames with no display at all, the same frames on every run, and
//! refuses bad outputs before training. Needs xvfb-run and a Vulkan driver (mesa lavapipe), which
//! `.ci/run` installs.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::files::{frames_in, temp_dir};
use common::run_clamp as clamp;
use common::under_xvfb;

/// The scene's background as sRGB bytes (the viewer's `palette::BACKGROUND`).
const BACKGROUND: [u8; 3] = [14, 16, 21];

/// Mean absolute deviation of the RGB values below the caption band (the top quarter): near 0
/// for a picture with no spheres.
fn spread(image: &image::RgbaImage) -> f64 {
    let top = image.height() / 4;
    let values: Vec<f64> = image
        .enumerate_pixels()
        .filter(|(_, y, _)| *y >= top)
        .flat_map(|(_, _, p)| p.0[..3].iter().map(|&v| v as f64))
        .collect();
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    values.iter().map(|v| (v - mean).abs()).sum::<f64>() / values.len() as f64
}

/// Hue bins (30 degrees wide) holding at least `share` of the saturated, lit pixels right of
/// `x0`.
fn hue_bins(image: &image::RgbaImage, x0: u32, share: f64) -> usize {
    hue_bins_between(image, x0, image.width(), share)
}

/// [`hue_bins`] of the columns `x0..x1`.
fn hue_bins_between(image: &image::RgbaImage, x0: u32, x1: u32, share: f64) -> usize {
    let mut bins = [0usize; 12];
    let mut colored = 0usize;
    for (x, _, p) in image.enumerate_pixels() {
        if x < x0 || x >= x1 {
            continue;
        }
        let [r, g, b] = [
            p.0[0] as f64 / 255.0,
            p.0[1] as f64 / 255.0,
            p.0[2] as f64 / 255.0,
        ];
        let max = r.max(g).max(b);
        let min = r.min(g).min(b);
        if max < 0.25 || (max - min) / max < 0.3 {
            continue;
        }
        let delta = max - min;
        let hue = if max == r {
            60.0 * (((g - b) / delta).rem_euclid(6.0))
        } else if max == g {
            60.0 * ((b - r) / delta + 2.0)
        } else {
            60.0 * ((r - g) / delta + 4.0)
        };
        bins[((hue / 30.0) as usize).min(11)] += 1;
        colored += 1;
    }
    bins.iter()
        .filter(|&&c| c as f64 >= share * colored.max(1) as f64)
        .count()
}

/// Runs `clamp view` with `DISPLAY` set to `display` (or unset) and returns its stderr, after
/// checking that it was refused as bad input, not by a panic.
fn view_refusal(display: Option<&str>) -> String {
    let mut command = Command::new(env!("CARGO_BIN_EXE_clamp"));
    command.args(["view", "--frames", "2"]);
    match display {
        Some(display) => command.env("DISPLAY", display),
        None => command.env_remove("DISPLAY"),
    };
    // Windows open through X11 only: a Wayland socket is no way out.
    let output = command
        .env("WAYLAND_DISPLAY", "wayland-0")
        .output()
        .expect("clamp runs");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

#[test]
fn view_without_a_display_is_a_clear_error() {
    let stderr = view_refusal(None);
    assert!(
        stderr.contains("no display") && stderr.contains("clamp record"),
        "{stderr}"
    );
}

#[test]
fn view_with_a_display_that_is_not_there_is_a_clear_error() {
    let stderr = view_refusal(Some(":4321"));
    assert!(
        stderr.contains("DISPLAY=:4321") && stderr.contains("xvfb-run"),
        "{stderr}"
    );
}

/// `clamp ARGS` with the Vulkan driver hidden from the loader (both the old and the new name of
/// the variable), under Xvfb so that the display is not what is missing.
fn without_vulkan(args: &[&str]) -> std::process::Output {
    under_xvfb(
        args,
        &[
            ("VK_ICD_FILENAMES", "/nonexistent/clamp-no-driver.json"),
            ("VK_DRIVER_FILES", "/nonexistent/clamp-no-driver.json"),
        ],
    )
}

#[test]
fn view_and_record_without_a_vulkan_driver_say_what_to_install() {
    let dir = temp_dir("no-vulkan");
    let out = format!("{}/", dir.display());
    for args in [
        vec!["view", "--frames", "2"],
        vec!["record", "--frames", "1", "--out", out.as_str()],
    ] {
        let output = without_vulkan(&args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(
            stderr.contains("mesa-vulkan-drivers")
                && (stderr.contains("no Vulkan driver") || stderr.contains("no graphics adapter")),
            "{args:?}: {stderr}"
        );
        // Refused before the data is read or a frame is drawn.
        assert!(!stderr.contains("data:"), "{args:?}: {stderr}");
    }
    assert!(frames_in(&dir).is_empty(), "no frame was written");
}

#[test]
fn view_renders_while_training_and_saves_a_screenshot_with_class_colors() {
    let dir = temp_dir("view");
    let shot = dir.join("view.png");
    let shot_arg = shot.to_str().expect("a UTF-8 temporary path");
    let output = under_xvfb(
        &[
            "view",
            "--frames",
            "20",
            // Training runs on the cycles drawing leaves: wait for its steps, not for a time.
            "--until-step",
            "3",
            "--seconds",
            "1800",
            "--spheres",
            "400",
            "--size",
            "960x540",
            "--backend",
            "cpu",
            "--stats",
            "--screenshot",
            shot_arg,
        ],
        &[],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "clamp view failed: {stderr}");
    let image = image::open(&shot)
        .expect("the screenshot is a PNG")
        .to_rgba8();
    assert_eq!(image.dimensions(), (960, 540));
    assert!(
        spread(&image) > 8.0,
        "the screenshot is blank (spread {})",
        spread(&image)
    );
    // The scene is right of the side panel: several class colors must show there.
    let classes = hue_bins(&image, 340, 0.02);
    assert!(
        classes >= 4,
        "only {classes} distinct class hues in the picture"
    );

    // --stats: one JSON line describing the frames and the picture's spheres.
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stats: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap_or(""))
        .unwrap_or_else(|e| panic!("--stats prints JSON ({e}): {stdout}"));
    let number = |key: &str| {
        stats[key]
            .as_f64()
            .unwrap_or_else(|| panic!("{key} is a number: {stats}"))
    };
    assert_eq!(number("spheres"), 400.0);
    assert_eq!(number("isostatic_contacts"), 6.0, "2d for d = 3");
    assert_eq!(number("chance_purity"), 0.1, "ten classes");
    assert!(number("frames") >= 18.0 && number("fps") > 0.0, "{stats}");
    assert!(number("train_step") >= 3.0, "{stats}");
    assert!(number("train_steps_per_sec") > 0.0, "{stats}");
    // The picture's own numbers: purity of 400 spheres is a share of 4,000 neighbour slots,
    // the pixel baseline of these images lies between chance and 1, and the drawn spheres
    // have contacts and a radius.
    let purity = number("class_purity");
    assert!((0.0..=1.0).contains(&purity), "{stats}");
    let slots = purity * 4000.0;
    assert!((slots - slots.round()).abs() < 1e-6, "{stats}");
    let baseline = number("pixel_pca_purity");
    assert!(baseline > 0.2 && baseline < 0.9, "{stats}");
    assert!(
        number("drawn_contacts") > 0.0,
        "the start is jammed: {stats}"
    );
    assert!(number("drawn_mean_radius") > 0.0, "{stats}");
}

#[test]
fn a_comparison_trains_and_draws_both_runs_side_by_side() {
    let dir = temp_dir("compare");
    let shot = dir.join("compare.png");
    let shot_arg = shot.to_str().expect("a UTF-8 temporary path");
    let output = under_xvfb(
        &[
            "view",
            "--compare",
            "radius_scale=4",
            // Both runs barely move from their common start (same seed, same weights), so
            // what tells their pictures apart is r_s alone.
            "--lr",
            "1e-7",
            "--frames",
            "20",
            "--until-step",
            "3",
            "--seconds",
            "1800",
            "--size",
            "960x540",
            "--backend",
            "cpu",
            "--stats",
            "--screenshot",
            shot_arg,
        ],
        &[],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "clamp view failed: {stderr}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stats: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap_or(""))
        .unwrap_or_else(|e| panic!("--stats prints JSON ({e}): {stdout}"));
    let runs = stats["runs"]
        .as_array()
        .unwrap_or_else(|| panic!("a comparison reports runs: {stats}"));
    assert_eq!(runs.len(), 2, "{stats}");
    for (run, settings) in runs.iter().zip(["radius_scale = 0.75", "radius_scale = 4"]) {
        assert_eq!(run["settings"], settings, "{stats}");
        // --until-step waits for both runs.
        assert!(run["train_step"].as_f64().unwrap() >= 3.0, "{stats}");
        assert!(
            run["train_steps_per_sec"].as_f64().unwrap() > 0.0,
            "{stats}"
        );
        assert_eq!(run["spheres"], 200, "{stats}");
        // Purity is a share of the 2,000 neighbour slots of 200 spheres.
        let slots = run["class_purity"].as_f64().unwrap() * 2000.0;
        assert!((slots - slots.round()).abs() < 1e-6, "{stats}");
    }
    assert!(stats["fps"].as_f64().unwrap() > 0.0, "{stats}");
    let number = |run: &serde_json::Value, key: &str| run[key].as_f64().unwrap();
    // The same centers, whatever the radii: the same neighbours. (The panel's sliders span
    // less than a config may hold; drawing them must leave --lr 1e-7 as it is.)
    assert!(
        (number(&runs[0], "class_purity") - number(&runs[1], "class_purity")).abs() <= 2.0 / 2000.0,
        "{stats}"
    );
    // Each run's spheres are its own: radii r_s times the same spreads, so 4 / 0.75 = 5.33
    // times as large; both pictures are jammed (Z above 2d = 6), the larger spheres more.
    let ratio = number(&runs[1], "drawn_mean_radius") / number(&runs[0], "drawn_mean_radius");
    assert!(
        (ratio / (4.0 / 0.75) - 1.0).abs() < 0.01,
        "radii {ratio} times as large: {stats}"
    );
    let contacts = |run| number(run, "drawn_contacts");
    assert!(
        contacts(&runs[0]) > 6.0 && contacts(&runs[1]) > 2.0 * contacts(&runs[0]),
        "{stats}"
    );

    // Spheres in both halves of the picture (right of the 300-point side panel, split at 630),
    // in class colors: several on the left; on the right the few large spheres in front.
    let image = image::open(&shot)
        .expect("the screenshot is a PNG")
        .to_rgba8();
    assert_eq!(image.dimensions(), (960, 540));
    for (x0, x1, least) in [(320, 620, 4), (640, 950, 2)] {
        let classes = hue_bins_between(&image, x0, x1, 0.02);
        assert!(
            classes >= least,
            "only {classes} class hues between x = {x0} and {x1}"
        );
    }
    // And each half shows its own run: at one camera, the spheres of r_s = 4 cover far more
    // of their half than those of r_s = 0.75 (below the captions, above the plots).
    let covered = |x0: u32| {
        let mut covered = 0usize;
        let mut all = 0usize;
        for y in 40..400 {
            for x in x0..x0 + 300 {
                let p = image.get_pixel(x, y).0;
                let far = (0..3).any(|c| p[c].abs_diff(BACKGROUND[c]) > 12);
                covered += far as usize;
                all += 1;
            }
        }
        covered as f64 / all as f64
    };
    let (left, right) = (covered(320), covered(645));
    assert!(
        right > left + 0.15,
        "the halves cover {left:.2} and {right:.2} of their area"
    );
}

#[test]
fn a_comparison_that_is_not_fair_or_not_known_is_refused_by_name() {
    for (spec, named) in [
        ("alhpa=2.5", "alhpa"),
        ("seed=7", "seed cannot differ"),
        ("alpha=2", "would not differ"),
        ("radius_scale=1e9", "radius_scale"),
    ] {
        let (code, _, stderr) = clamp(&["view", "--compare", spec]);
        assert_eq!(code, 2, "--compare {spec}: {stderr}");
        assert!(
            stderr.contains(named) && stderr.contains("--compare"),
            "--compare {spec}: {stderr}"
        );
    }
}

fn record(dir: &Path, frames: usize, extra: &[&str]) -> (i32, String, String) {
    let out = format!("{}/", dir.display());
    let frames = frames.to_string();
    let mut args = vec![
        "record",
        "--frames",
        &frames,
        "--steps-per-frame",
        "1",
        "--size",
        "160x120",
        "--spheres",
        "200",
        "--batch",
        "32",
        "--backend",
        "cpu",
        "--out",
        &out,
    ];
    args.extend_from_slice(extra);
    let output = Command::new(env!("CARGO_BIN_EXE_clamp"))
        .args(&args)
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .output()
        .expect("clamp runs");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Pixels that differ between two frames below the caption band (the top quarter), where only
/// the spheres are drawn.
fn changed_below_caption(a: &image::RgbaImage, b: &image::RgbaImage) -> usize {
    let top = a.height() / 4;
    a.enumerate_pixels()
        .zip(b.pixels())
        .filter(|((_, y, p), q)| *y >= top && p != q)
        .count()
}

/// Records three frames again with `extra` into a fresh folder: they must be there, and be the
/// bytes of the first three of `frames`.
fn rerun_writes_the_same_frames(name: &str, extra: &[&str], frames: &[PathBuf]) {
    let dir = temp_dir(name);
    let (code, _, stderr) = record(&dir, 3, extra);
    assert_eq!(code, 0, "{stderr}");
    let again = frames_in(&dir);
    assert_eq!(again.len(), 3, "the rerun writes its three frames");
    for (a, b) in again.iter().zip(frames) {
        assert_eq!(
            std::fs::read(a).unwrap(),
            std::fs::read(b).unwrap(),
            "{} differs",
            a.display()
        );
    }
}

#[test]
fn record_writes_moving_frames_without_a_display_and_repeats_them_exactly() {
    // The camera stands still: whatever moves between frames, training moved.
    let still = ["--orbit", "0", "--steps-per-frame", "3"];
    let first = temp_dir("record-a");
    let (code, stdout, stderr) = record(&first, 8, &still);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("\"frames\":8"), "{stdout}");
    let frames = frames_in(&first);
    assert_eq!(frames.len(), 8);
    let images: Vec<image::RgbaImage> = frames
        .iter()
        .map(|p| image::open(p).unwrap().to_rgba8())
        .collect();
    for (k, image) in images.iter().enumerate() {
        assert_eq!(image.dimensions(), (160, 120), "frame {k}");
        assert!(spread(image) > 5.0, "frame {k} is blank");
    }
    for k in 1..images.len() {
        let changed = changed_below_caption(&images[k], &images[k - 1]);
        assert!(
            changed > 50,
            "frames {} and {k} differ in only {changed} pixels below the caption",
            k - 1
        );
    }

    // Same config and seed on the CPU backend: the same frames, byte for byte.
    rerun_writes_the_same_frames("record-b", &still, &frames);
}

#[test]
fn record_compare_draws_four_runs_in_a_grid_and_repeats_them_exactly() {
    let args = [
        "--compare",
        "radius_scale=1.5",
        "--compare",
        "radius_scale=2.5",
        "--compare",
        "radius_scale=4",
        "--size",
        "320x240",
        "--orbit",
        "0",
    ];
    let first = temp_dir("record-compare-a");
    let (code, stdout, stderr) = record(&first, 3, &args);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("\"frames\":3"), "{stdout}");
    let frames = frames_in(&first);
    assert_eq!(frames.len(), 3);
    // The quarters, row by row: r_s = 0.75, 1.5, 2.5, 4.
    let quarters = [(0, 0), (160, 0), (0, 120), (160, 120)];
    for path in &frames {
        let image = image::open(path).unwrap().to_rgba8();
        assert_eq!(image.dimensions(), (320, 240));
        // Below the two-line captions, each quarter shows its run's spheres, at one scale:
        // the larger r_s, the more of its quarter they cover.
        let covered = |(x0, y0): (u32, u32)| {
            let mut covered = 0usize;
            for y in y0 + 45..y0 + 118 {
                for x in x0 + 3..x0 + 157 {
                    let p = image.get_pixel(x, y).0;
                    covered += (0..3).any(|c| p[c].abs_diff(BACKGROUND[c]) > 12) as usize;
                }
            }
            covered as f64 / (73.0 * 154.0)
        };
        let shares: Vec<f64> = quarters.iter().map(|&q| covered(q)).collect();
        assert!(
            shares[0] > 0.02 && shares.windows(2).all(|w| w[1] > w[0]),
            "{}: the quarters cover {shares:.2?}",
            path.display()
        );
        assert!(
            shares[3] > shares[0] + 0.15,
            "{}: {shares:.2?}",
            path.display()
        );
        // Each quarter is captioned: the band darkens its top-left corner.
        for (x0, y0) in quarters {
            assert!(
                image.get_pixel(x0 + 2, y0 + 2).0[..3]
                    .iter()
                    .all(|&v| v < BACKGROUND[2]),
                "{}: no caption band at ({x0}, {y0})",
                path.display()
            );
        }
    }
    // The same seed gives the same frames, byte for byte.
    rerun_writes_the_same_frames("record-compare-b", &args, &frames);
}

#[test]
fn more_than_four_runs_are_refused_by_name() {
    let (code, _, stderr) = clamp(&[
        "view",
        "--compare",
        "alpha=2.5",
        "--compare",
        "alpha=3",
        "--compare",
        "alpha=3.5",
        "--compare",
        "alpha=4",
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("--compare") && stderr.contains("at most 4"),
        "{stderr}"
    );
}

#[test]
fn record_writes_a_gif_with_every_frame() {
    let dir = temp_dir("record-gif");
    let record_to = |out: &Path| {
        let (code, _, stderr) = clamp(&[
            "record",
            "--frames",
            "3",
            "--steps-per-frame",
            "1",
            "--size",
            "96x64",
            "--spheres",
            "100",
            "--batch",
            "32",
            "--backend",
            "cpu",
            "--out",
            out.to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "{stderr}");
    };
    let gif = dir.join("packing.gif");
    record_to(&gif);
    // The same seed gives the same video, byte for byte: the GIF, and the MP4 where ffmpeg is
    // there to encode one.
    let again = dir.join("again.gif");
    record_to(&again);
    assert!(
        std::fs::read(&gif).unwrap() == std::fs::read(&again).unwrap(),
        "two GIFs differ"
    );
    if clamp::video::ffmpeg_available() {
        let (mp4, mp4_again) = (dir.join("a.mp4"), dir.join("b.mp4"));
        record_to(&mp4);
        record_to(&mp4_again);
        assert!(
            std::fs::read(&mp4).unwrap() == std::fs::read(&mp4_again).unwrap(),
            "two MP4s differ"
        );
    }
    let decoder = image::codecs::gif::GifDecoder::new(std::io::BufReader::new(
        std::fs::File::open(&gif).unwrap(),
    ))
    .unwrap();
    use image::AnimationDecoder;
    let frames = decoder.into_frames().collect_frames().unwrap();
    assert_eq!(frames.len(), 3);
    assert_eq!(frames[0].buffer().dimensions(), (96, 64));
    // Pictures, not black or blank frames.
    for (k, frame) in frames.iter().enumerate() {
        assert!(spread(frame.buffer()) > 5.0, "GIF frame {k} is blank");
    }
}

#[test]
fn bad_outputs_and_sizes_are_refused_before_any_training() {
    for (args, expected) in [
        (vec!["--out", "movie.avi"], "unknown extension '.avi'"),
        (vec!["--out", "movie"], "no extension"),
        (vec!["--size", "0x100", "--out", "x.gif"], "--size 0x100"),
        (vec!["--size", "big", "--out", "x.gif"], "WIDTHxHEIGHT"),
        (vec!["--fps", "0", "--out", "x.gif"], "--fps 0"),
        (
            vec!["--out", "/proc/clamp-cannot-write/"],
            "cannot create /proc/clamp-cannot-write",
        ),
    ] {
        let mut words = vec!["record"];
        words.extend(args.iter());
        let (code, _, stderr) = clamp(&words);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(
            !stderr.contains("data:"),
            "{args:?}: refused only after loading data: {stderr}"
        );
    }
    let (code, _, stderr) = clamp(&["view", "--screenshot", "shot.jpg"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("must end in .png"), "{stderr}");
}

/// With `--backend wgpu` the viewer trains on the renderer's own device (lavapipe here, a GPU
/// elsewhere): the panel and `--stats` say so, and its first step, from the same seed and the
/// same batch, has the CPU backend's loss.
#[test]
fn the_viewer_trains_on_the_renderers_device_with_the_cpu_backends_first_loss() {
    let output = under_xvfb(
        &[
            "view",
            "--backend",
            "wgpu",
            // However slow the software adapter is today: the first step, not a time.
            "--until-step",
            "1",
            "--seconds",
            "1800",
            "--size",
            "640x360",
            "--stats",
        ],
        &[],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "clamp view failed: {stderr}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stats: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap_or(""))
        .unwrap_or_else(|e| panic!("--stats prints JSON ({e}): {stdout}"));
    let backend = stats["backend"].as_str().unwrap_or_default();
    assert!(
        backend.starts_with("wgpu (") && backend.contains("shared with the renderer"),
        "{stats}"
    );
    assert!(
        stats["train_step"].as_f64().unwrap_or(0.0) >= 1.0,
        "no step before the viewer quit: {stats}"
    );
    assert_eq!(stats["first_step"].as_f64(), Some(1.0), "{stats}");
    let wgpu_loss = stats["first_step_loss"].as_f64().expect("a first loss");

    let config = clamp::config::TrainConfig::viewer_default();
    let data = std::sync::Arc::new(clamp::train::TrainingData::load(&config).unwrap());
    let mut cpu =
        clamp::train::Trainer::<clamp::backend::CpuBackend>::new(config, data, Default::default());
    let cpu_loss = cpu.step().unwrap().loss;
    println!("first step: wgpu (shared) {wgpu_loss}, cpu {cpu_loss}");
    assert!(
        (wgpu_loss - cpu_loss).abs() <= 1e-3 * cpu_loss.abs(),
        "first step: wgpu {wgpu_loss} vs cpu {cpu_loss}"
    );
}
