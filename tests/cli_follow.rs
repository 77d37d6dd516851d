#![cfg(feature = "viewer")]
//! Runs trained elsewhere: `clamp view --follow` draws a `clamp train` run while it trains, to its
//! last step; `clamp record --from` films a run written by python/clamp_follow.py (the way a
//! PyTorch run writes one), the same bytes twice; missing or damaged runs are refused by name.
//! Needs xvfb-run, a Vulkan driver, and python3 with numpy (scripts/test.sh installs them).

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use clamp::pictures::{PICTURES_FILE, read_pictures};
use common::files::{frames_in, temp_dir};
use common::run_clamp as clamp;
use common::under_xvfb;

fn stats_lines(stdout: &str) -> Vec<serde_json::Value> {
    stdout
        .lines()
        .filter(|line| line.starts_with('{'))
        .map(|line| serde_json::from_str(line).expect("a stats line is JSON"))
        .collect()
}

#[test]
fn a_run_training_in_the_background_is_followed_to_its_last_step() {
    let run = temp_dir("follow-train").join("run");
    let run_arg = run.display().to_string();
    let train = Command::new(env!("CARGO_BIN_EXE_clamp"))
        .args([
            "train",
            "--encoder",
            "mlp",
            "--steps",
            "600",
            "--eval-every",
            "0",
            "--probe-train-images",
            "2000",
            "--picture-every",
            "40",
            "--backend",
            "cpu",
            "--out",
            &run_arg,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("clamp train starts");
    // The folder holds a run once the trainer has opened its metrics file.
    let started = std::time::Instant::now();
    while !run.join("metrics.jsonl").exists() {
        assert!(
            started.elapsed().as_secs() < 120,
            "clamp train wrote nothing"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let output = under_xvfb(
        &[
            "view",
            "--follow",
            &run_arg,
            "--seconds",
            "60",
            "--stats",
            "--stats-every",
            "2",
        ],
        &[],
    );
    let trained = train.wait_with_output().expect("clamp train ends");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        trained.status.success(),
        "{}",
        String::from_utf8_lossy(&trained.stderr)
    );
    assert!(output.status.success(), "{stderr}");
    let lines = stats_lines(&stdout);
    assert!(
        lines.len() >= 10,
        "a line every 2 s and one at exit: {stdout}"
    );
    let steps: Vec<u64> = lines
        .iter()
        .map(|l| l["followed_step"].as_u64().expect("followed_step"))
        .collect();
    assert!(
        steps.windows(2).all(|w| w[0] <= w[1]),
        "the picture drawn only moves forward: {steps:?}"
    );
    let mut distinct = steps.clone();
    distinct.dedup();
    assert!(
        distinct.len() >= 3 && distinct[0] < 600,
        "followed through the run, not only its end: {steps:?}"
    );
    assert_eq!(*steps.last().unwrap(), 600, "ends at the run's last step");
    // Every picture of the run was read: 0, every 40th step, 600.
    let written = read_pictures(&run).unwrap();
    assert!(written.damage.is_none());
    let file_steps: Vec<u64> = written.pictures.iter().map(|p| p.step).collect();
    assert_eq!(file_steps, (0..=600).step_by(40).collect::<Vec<u64>>());
    let last = lines.last().unwrap();
    assert_eq!(last["pictures"].as_u64(), Some(16), "{last}");
    assert_eq!(last["spheres"].as_u64(), Some(200));
    let purity = last["class_purity"].as_f64().unwrap();
    let chance = last["chance_purity"].as_f64().unwrap();
    assert!(
        purity > chance + 0.1,
        "600 steps gather classes: purity {purity}, chance {chance}"
    );
    assert!(last["fps"].as_f64().unwrap() > 5.0, "{last}");
}

/// A python3 with numpy: the first of `python3` and `/usr/bin/python3` that imports it.
fn python_with_numpy() -> String {
    for candidate in ["python3", "/usr/bin/python3"] {
        let found = Command::new(candidate)
            .args(["-c", "import numpy"])
            .output()
            .is_ok_and(|o| o.status.success());
        if found {
            return candidate.to_string();
        }
    }
    panic!("this test needs python3 with numpy (Debian: apt install python3-numpy)")
}

/// A run written the way a PyTorch training script writes one: through `python/clamp_follow.py`,
/// with its spheres computed by the module's `spheres` from [m, N, d] "projector outputs" (here
/// three classes whose views drift apart over 12 steps). Prints the sum of the last radii.
const PYTORCH_LIKE_RUN: &str = r#"
import sys
import numpy as np
sys.path.insert(0, sys.argv[1])
from clamp_follow import Writer, spheres, read

run = sys.argv[2]
rng = np.random.default_rng(7)
n, d, m = 90, 16, 4
labels = np.arange(n) % 3
directions = rng.normal(size=(3, d))
noise = rng.normal(size=(m, n, d))
writer = Writer(run, labels, classes=["cat", "dog", "fish"])
for k in range(12):
    pull = 0.15 * k
    views = noise * (1.0 - 0.03 * k) + pull * directions[labels][None, :, :]
    centers, radii = spheres(views, 0.5)
    writer.write(10 * k, centers, radii)
writer.close()
header, records = read(run)
assert len(records) == 12 and header["dim"] == d, (len(records), header)
print(float(records["radii"][-1].astype(np.float64).sum()))
"#;

/// Pixels that are not the background below the caption band.
fn drawn_pixels(image: &image::RgbaImage) -> usize {
    let top = image.height() / 4;
    image
        .enumerate_pixels()
        .filter(|(_, y, p)| *y >= top && p.0[..3] != [14, 16, 21])
        .count()
}

fn record_from(run: &Path, out: &Path) -> (i32, String, String) {
    let out = format!("{}/", out.display());
    let run = run.display().to_string();
    clamp(&[
        "record", "--from", &run, "--out", &out, "--size", "320x240", "--orbit", "0",
    ])
}

#[test]
fn a_run_written_by_clamp_follow_py_is_filmed_and_refilmed_byte_for_byte() {
    let dir = temp_dir("follow-python");
    let run = dir.join("pytorch-run");
    let python = python_with_numpy();
    let module = concat!(env!("CARGO_MANIFEST_DIR"), "/python");
    let written = Command::new(&python)
        .args(["-c", PYTORCH_LIKE_RUN, module, &run.display().to_string()])
        .output()
        .expect("python runs");
    assert!(
        written.status.success(),
        "{}",
        String::from_utf8_lossy(&written.stderr)
    );
    // clamp reads what numpy wrote: the same radii.
    let numpy_sum: f64 = String::from_utf8_lossy(&written.stdout)
        .trim()
        .parse()
        .unwrap();
    let read = read_pictures(&run).unwrap();
    assert_eq!(read.pictures.len(), 12);
    let rust_sum: f64 = read.pictures[11].radii.iter().map(|&r| r as f64).sum();
    assert!((rust_sum - numpy_sum).abs() < 1e-9 * numpy_sum.abs().max(1.0));

    let frames_dir = dir.join("frames");
    let (code, stdout, stderr) = record_from(&run, &frames_dir);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("\"frames\":12"), "{stdout}");
    let frames = frames_in(&frames_dir);
    assert_eq!(frames.len(), 12, "a frame a picture");
    let first = image::open(&frames[0]).unwrap().to_rgba8();
    let last = image::open(&frames[11]).unwrap().to_rgba8();
    for (name, frame) in [("first", &first), ("last", &last)] {
        let drawn = drawn_pixels(frame);
        assert!(
            drawn > 1_500,
            "the {name} frame shows spheres ({drawn} pixels)"
        );
    }
    let changed = first
        .pixels()
        .zip(last.pixels())
        .filter(|(a, b)| a != b)
        .count();
    assert!(
        changed > 5_000,
        "the classes drift apart: {changed} pixels differ"
    );
    let again = dir.join("again");
    let (code, _, stderr) = record_from(&run, &again);
    assert_eq!(code, 0, "{stderr}");
    for (a, b) in frames_in(&again).iter().zip(&frames) {
        assert_eq!(std::fs::read(a).unwrap(), std::fs::read(b).unwrap());
    }

    // Damage: cut in the middle of the eighth picture, then a flipped byte in the fourth.
    let path = run.join(PICTURES_FILE);
    let bytes = std::fs::read(&path).unwrap();
    let size = bytes.len() / 12;
    std::fs::write(&path, &bytes[..7 * size + size / 2]).unwrap();
    let cut = dir.join("cut");
    let (code, stdout, stderr) = record_from(&run, &cut);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("\"frames\":7"), "{stdout}");
    assert!(
        stderr.contains("cut short") && stderr.contains("pictures.bin"),
        "{stderr}"
    );
    let mut flipped = bytes.clone();
    flipped[3 * size + 100] ^= 0x20;
    std::fs::write(&path, &flipped).unwrap();
    let (code, stdout, stderr) = record_from(&run, &dir.join("flipped"));
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("\"frames\":3"), "{stdout}");
    assert!(
        stderr.contains("picture 4") && stderr.contains("checksum"),
        "{stderr}"
    );
    flipped[50] ^= 0x01;
    std::fs::write(&path, &flipped).unwrap();
    let (code, _, stderr) = record_from(&run, &dir.join("none"));
    assert_eq!(code, 2, "no whole picture: {stderr}");
    assert!(stderr.contains("no whole picture"), "{stderr}");
}

#[test]
fn missing_or_empty_runs_are_refused_naming_the_folder() {
    let dir = temp_dir("follow-missing");
    let missing = dir.join("missing");
    let missing_arg = missing.display().to_string();
    let (code, _, stderr) = clamp(&["view", "--follow", &missing_arg]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains(&missing_arg) && stderr.contains("no such folder"),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let empty_arg = empty.display().to_string();
    let (code, _, stderr) = clamp(&["view", "--follow", &empty_arg]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains(&empty_arg) && stderr.contains("holds no run"),
        "{stderr}"
    );
    let (code, _, stderr) = clamp(&["record", "--from", &missing_arg, "--out", "x.gif"]);
    assert_eq!(code, 2);
    assert!(stderr.contains(&missing_arg), "{stderr}");
    std::fs::write(empty.join("pictures.json"), "{\"format\": 1").unwrap();
    let (code, _, stderr) = clamp(&["view", "--follow", &empty_arg]);
    assert_eq!(code, 2);
    assert!(stderr.contains("pictures.json"), "{stderr}");
    let runs: Vec<String> = (0..5).map(|_| empty_arg.clone()).collect();
    let mut args = vec!["view"];
    for run in &runs {
        args.extend(["--follow", run.as_str()]);
    }
    let (code, _, stderr) = clamp(&args);
    assert_eq!(code, 2);
    assert!(stderr.contains("at most 4"), "{stderr}");
}
