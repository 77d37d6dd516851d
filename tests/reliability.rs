//! Nothing lost: `clamp train` saves checkpoints while it runs and on Ctrl-C, `--resume`
//! continues bit for bit (past a damaged newest checkpoint too), and non-finite steps are
//! skipped, logged, and after three in a row stop the run with a checkpoint.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::run_clamp_with_env as clamp;
use serde_json::Value;

const STEPS: usize = 40;

fn run_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("clamp-reliability-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// The arguments of a short CPU run on the bundled Fashion-MNIST split (10,000 images), batch
/// 64, writing to `out`.
fn train_args(out: &Path) -> Vec<String> {
    let data = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/fashion-mnist");
    let steps = STEPS.to_string();
    [
        "train",
        "--data",
        data,
        "--backend",
        "cpu",
        "--steps",
        &steps,
        "--batch",
        "64",
        "--views",
        "4",
        "--dim",
        "8",
        "--width",
        "8",
        "--radius-scale",
        "2",
        "--eval-every",
        "0",
        "--probe-train-images",
        "200",
        "--checkpoint-every",
        "10",
        "--picture-every",
        "5",
        "--out",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([out.to_str().unwrap().to_string()])
    .collect()
}

/// That run, waited for.
fn train(out: &Path, extra: &[&str], fault: Option<&str>) -> (i32, String, String) {
    let mut args = train_args(out);
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let env: Vec<(&str, &str)> = fault.map(|f| ("CLAMP_FAULT", f)).into_iter().collect();
    clamp(&args, &env)
}

/// That run, not waited for.
fn spawn_train(out: &Path, fault: &str) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_clamp"))
        .args(train_args(out))
        .env("CLAMP_FAULT", fault)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the clamp binary runs")
}

/// Waits (up to five minutes: however slow the machine) until `out`'s log has `step`.
fn wait_for_step(out: &Path, step: u64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    loop {
        let text = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap_or_default();
        let reached = text.lines().any(|line| {
            serde_json::from_str::<Value>(line)
                .is_ok_and(|v| v.get("packing").is_some() && v["step"].as_u64() == Some(step))
        });
        if reached {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "step {step} not logged in 300 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

fn signal(child: &std::process::Child, signal: i32) {
    // SAFETY: kill only sends a signal to our own child.
    assert_eq!(unsafe { libc::kill(child.id() as i32, signal) }, 0);
}

fn metrics(out: &Path) -> Vec<Value> {
    std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}")))
        .collect()
}

/// Loss of every step line, by step; panics if a step appears twice.
fn losses(lines: &[Value]) -> BTreeMap<u64, f64> {
    let mut by_step = BTreeMap::new();
    for line in lines.iter().filter(|l| l.get("packing").is_some()) {
        let step = line["step"].as_u64().unwrap();
        let loss = line["loss"].as_f64().unwrap();
        assert!(
            by_step.insert(step, loss).is_none(),
            "step {step} logged twice"
        );
    }
    by_step
}

fn events<'a>(lines: &'a [Value], kind: &str) -> Vec<&'a Value> {
    lines.iter().filter(|l| l["event"] == kind).collect()
}

#[test]
fn an_interrupted_run_resumes_with_every_loss_bit_for_bit() {
    let whole = run_dir("whole");
    let (code, stdout, stderr) = train(&whole, &[], None);
    assert_eq!(code, 0, "{stderr}");
    let reference = losses(&metrics(&whole));
    assert_eq!(
        reference.keys().copied().collect::<Vec<_>>(),
        (1..=STEPS as u64).collect::<Vec<_>>()
    );
    let summary: Value = serde_json::from_str(stdout.trim()).unwrap();

    // Ctrl-C after step 23: a checkpoint of step 23 is saved beside the periodic one of step 20
    // (step 10's is gone: two are kept), and the exit code says SIGINT.
    let cut = run_dir("cut");
    let (code, _, stderr) = train(&cut, &[], Some("interrupt@23"));
    assert_eq!(code, 130, "{stderr}");
    assert!(
        stderr.contains("at step 23") && stderr.contains("clamp train --resume"),
        "{stderr}"
    );
    let kept: Vec<String> = std::fs::read_dir(cut.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(kept, ["step-00000020", "step-00000023"]);
    assert_eq!(losses(&metrics(&cut)).len(), 23);

    // The pictures written after the checkpoint (as if the run had gone on before a crash)
    // and a picture torn by the crash are cut back on resume.
    let pictures_file = cut.join(clamp::pictures::PICTURES_FILE);
    let kept_pictures = std::fs::read(&pictures_file).unwrap();
    let header = clamp::pictures::PictureHeader::read(&cut).unwrap();
    let later = clamp::pictures::encode_record(&clamp::pictures::Picture {
        step: 25,
        centers: vec![0.5; header.spheres * header.dim],
        radii: vec![0.1; header.spheres],
    });
    let mut crashed = kept_pictures.clone();
    crashed.extend_from_slice(&later);
    crashed.extend_from_slice(&later[..later.len() / 3]);
    std::fs::write(&pictures_file, &crashed).unwrap();

    // (The spacing of pictures, like that of checkpoints, is the resumed command's.)
    let (code, stdout, stderr) = clamp(
        &[
            "train",
            "--resume",
            cut.to_str().unwrap(),
            "--picture-every",
            "5",
        ],
        &[],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("resuming at step 23"), "{stderr}");
    let lines = metrics(&cut);
    assert_eq!(losses(&lines), reference, "every step's loss, bit for bit");
    // Every picture too: the resumed run's file is the uninterrupted run's, byte for byte.
    let whole_pictures = clamp::pictures::read_pictures(&whole).unwrap();
    let steps: Vec<u64> = whole_pictures.pictures.iter().map(|p| p.step).collect();
    assert_eq!(
        steps,
        (0..=STEPS as u64).step_by(5).collect::<Vec<_>>(),
        "a picture at the start, every 5 steps and at the last"
    );
    assert_eq!(
        std::fs::read(&pictures_file).unwrap(),
        std::fs::read(whole.join(clamp::pictures::PICTURES_FILE)).unwrap(),
        "the resumed run's pictures"
    );
    assert_eq!(events(&lines, "resumed").len(), 1);
    let resumed: Value = serde_json::from_str(stdout.trim()).unwrap();
    for key in ["loss", "knn_acc", "linear_acc", "nearest_centroid_acc"] {
        assert_eq!(resumed[key], summary[key], "{key}");
    }

    // The same cut with its newest checkpoint torn (as by a crash while copying): resume says
    // so, goes back to step 20, drops the log lines of steps 21-23 and runs them again.
    let torn = run_dir("torn");
    let (code, _, stderr) = train(&torn, &[], Some("interrupt@23"));
    assert_eq!(code, 130, "{stderr}");
    let model = torn.join("checkpoints/step-00000023/model.mpk");
    let bytes = std::fs::read(&model).unwrap();
    std::fs::write(&model, &bytes[..bytes.len() - 100]).unwrap();
    let (code, _, stderr) = clamp(&["train", "--resume", torn.to_str().unwrap()], &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains(&model.display().to_string()) && stderr.contains("truncated"),
        "the warning names the damaged file: {stderr}"
    );
    assert!(stderr.contains("resuming at step 20"), "{stderr}");
    assert_eq!(losses(&metrics(&torn)), reference);

    // --resume keeps the run's own configuration.
    let (code, _, stderr) = clamp(
        &["train", "--resume", torn.to_str().unwrap(), "--lr", "0.1"],
        &[],
    );
    assert_eq!(code, 2);
    assert!(
        stderr.contains("--lr cannot be given with --resume"),
        "{stderr}"
    );
    for dir in [whole, cut, torn] {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// The reference: the whole run's loss at every step.
fn reference_losses(name: &str) -> BTreeMap<u64, f64> {
    let whole = run_dir(name);
    let (code, _, stderr) = train(&whole, &[], None);
    assert_eq!(code, 0, "{stderr}");
    let reference = losses(&metrics(&whole));
    let _ = std::fs::remove_dir_all(whole);
    reference
}

fn resume(out: &Path) -> String {
    let (code, _, stderr) = clamp(&["train", "--resume", out.to_str().unwrap()], &[]);
    assert_eq!(code, 0, "{stderr}");
    stderr
}

#[test]
fn sigterm_saves_and_a_second_signal_quits_and_either_resumes_bit_for_bit() {
    let reference = reference_losses("term-whole");

    // One SIGTERM while the run stands at step 13: it saves there and exits with 128 + 15.
    let once = run_dir("term-once");
    let child = spawn_train(&once, "stall@13");
    wait_for_step(&once, 13);
    signal(&child, libc::SIGTERM);
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(143), "{stderr}");
    assert!(
        stderr.contains("terminated (SIGTERM) at step 13"),
        "{stderr}"
    );
    assert!(once.join("checkpoints/step-00000013").is_dir());
    let stderr = resume(&once);
    assert!(stderr.contains("resuming at step 13"), "{stderr}");
    assert_eq!(
        losses(&metrics(&once)),
        reference,
        "every step's loss, bit for bit"
    );

    // Two signals: the second quits at once, wherever the save of the first had got to (it
    // may leave a staging directory). The resume starts from the last whole checkpoint.
    let twice = run_dir("term-twice");
    let mut child = spawn_train(&twice, "stall@13");
    wait_for_step(&twice, 13);
    signal(&child, libc::SIGTERM);
    signal(&child, libc::SIGTERM);
    let status = child.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert!(
        status.signal() == Some(libc::SIGTERM) || status.code() == Some(143),
        "{status:?}"
    );
    let stderr = resume(&twice);
    assert!(
        stderr.contains("resuming at step 13") || stderr.contains("resuming at step 10"),
        "{stderr}"
    );
    assert_eq!(
        losses(&metrics(&twice)),
        reference,
        "every step's loss, bit for bit"
    );
    let leftovers: Vec<String> = std::fs::read_dir(twice.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    for dir in [once, twice] {
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[test]
fn what_a_crash_mid_save_leaves_is_put_right_and_the_run_resumes_bit_for_bit() {
    let reference = reference_losses("crash-whole");
    let checkpoints = |run: &Path| run.join("checkpoints");
    // Each case starts from a run interrupted at step 23 (checkpoints 20 and 23).
    let cut = |name: &str| {
        let run = run_dir(name);
        let (code, _, stderr) = train(&run, &[], Some("interrupt@23"));
        assert_eq!(code, 130, "{stderr}");
        run
    };

    // 1. A crash while a save was writing its staging directory: a torn copy of step 23's
    // files under `.step-00000030.partial-PID`, never to be trusted, and a torn last line in
    // the log. The run resumes at 23 and the leftovers are gone.
    let staged = cut("crash-staged");
    let staging = checkpoints(&staged).join(".step-00000030.partial-4242");
    std::fs::create_dir(&staging).unwrap();
    let model = std::fs::read(checkpoints(&staged).join("step-00000023/model.mpk")).unwrap();
    std::fs::write(staging.join("model.mpk"), &model[..model.len() / 2]).unwrap();
    let mut log = std::fs::OpenOptions::new()
        .append(true)
        .open(staged.join("metrics.jsonl"))
        .unwrap();
    std::io::Write::write_all(&mut log, b"{\"step\": 24, \"loss\": 4.2, \"pack").unwrap();
    drop(log);
    let stderr = resume(&staged);
    assert!(
        stderr.contains("removed") && stderr.contains(".step-00000030.partial-4242"),
        "{stderr}"
    );
    assert!(stderr.contains("resuming at step 23"), "{stderr}");
    assert!(!staging.exists());
    assert_eq!(
        losses(&metrics(&staged)),
        reference,
        "every step's loss, bit for bit"
    );

    // 2. A crash between moving the old step 23 aside and renaming its replacement into
    // place (a second save of the same step): only `.step-00000023.old-PID` holds it.
    let aside = cut("crash-aside");
    let moved = checkpoints(&aside).join(".step-00000023.old-4242");
    std::fs::rename(checkpoints(&aside).join("step-00000023"), &moved).unwrap();
    let stderr = resume(&aside);
    assert!(
        stderr.contains("recovered") && stderr.contains("step-00000023"),
        "{stderr}"
    );
    assert!(stderr.contains("resuming at step 23"), "{stderr}");
    assert_eq!(
        losses(&metrics(&aside)),
        reference,
        "every step's loss, bit for bit"
    );

    // 3. An aside copy that is damaged, or whose replacement did arrive, is removed; a name
    // that only looks like one is left alone.
    let both = cut("crash-both");
    let copy = checkpoints(&both).join(".step-00000023.old-7");
    std::fs::create_dir(&copy).unwrap();
    std::fs::write(copy.join("model.mpk"), b"torn").unwrap();
    let stranger = checkpoints(&both).join(".step-00000023.older-7");
    std::fs::create_dir(&stranger).unwrap();
    let stderr = resume(&both);
    assert!(!copy.exists(), "{stderr}");
    assert!(stranger.exists(), "{stderr}");
    assert_eq!(losses(&metrics(&both)), reference);
    for dir in [staged, aside, both] {
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[test]
fn a_nan_loss_is_skipped_logged_and_the_rate_halved() {
    let clean = run_dir("clean");
    let (code, _, stderr) = train(&clean, &[], None);
    assert_eq!(code, 0, "{stderr}");
    let clean_lines = metrics(&clean);

    let once = run_dir("nan-once");
    let (code, _, stderr) = train(&once, &[], Some("nan-loss@12"));
    assert_eq!(code, 0, "one NaN step does not stop the run: {stderr}");
    assert!(
        stderr.contains("step 12: the loss was NaN or infinite"),
        "{stderr}"
    );
    let lines = metrics(&once);
    let non_finite = events(&lines, "non_finite");
    assert_eq!(non_finite.len(), 1);
    assert_eq!(non_finite[0]["step"], 12);
    assert_eq!(non_finite[0]["what"], "the loss");
    let by_step = |lines: &[Value], step: u64| {
        lines
            .iter()
            .find(|l| l.get("packing").is_some() && l["step"] == step)
            .cloned()
    };
    assert!(
        by_step(&lines, 12).is_none(),
        "the skipped step has no step line"
    );
    for step in 1..12 {
        let (a, b) = (
            by_step(&lines, step).unwrap(),
            by_step(&clean_lines, step).unwrap(),
        );
        assert_eq!(
            (&a["loss"], &a["lr"], &a["packing"]),
            (&b["loss"], &b["lr"], &b["packing"]),
            "step {step} is as in the clean run"
        );
    }
    // The schedule is linear in the base rate: every later step runs at exactly half.
    for step in 13..=STEPS as u64 {
        let faulty = by_step(&lines, step).unwrap()["lr"].as_f64().unwrap();
        let reference = by_step(&clean_lines, step).unwrap()["lr"].as_f64().unwrap();
        assert!(
            (faulty - reference / 2.0).abs() <= 1e-12 * reference,
            "step {step}: {faulty} vs half of {reference}"
        );
        assert!(
            by_step(&lines, step).unwrap()["loss"]
                .as_f64()
                .unwrap()
                .is_finite()
        );
    }
    let _ = std::fs::remove_dir_all(&once);
    let _ = std::fs::remove_dir_all(&clean);
}

#[test]
fn three_nan_steps_in_a_row_stop_with_a_checkpoint_that_resumes() {
    let out = run_dir("nan-forever");
    let (code, _, stderr) = train(&out, &[], Some("nan-loss@12.."));
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.contains("the loss was NaN or infinite at 3 steps in a row (steps 12-14)"),
        "{stderr}"
    );
    let lines = metrics(&out);
    let in_a_row: Vec<u64> = events(&lines, "non_finite")
        .iter()
        .map(|e| e["in_a_row"].as_u64().unwrap())
        .collect();
    assert_eq!(in_a_row, [1, 2, 3]);
    let stopped = events(&lines, "stopped");
    assert_eq!(stopped.len(), 1);
    let dir = PathBuf::from(stopped[0]["checkpoint"].as_str().unwrap());
    assert!(dir.ends_with("checkpoints/step-00000014"), "{dir:?}");
    assert!(stderr.contains(&dir.display().to_string()), "{stderr}");

    // Without the fault the run goes on from there, at an eighth of the rate.
    let (code, stdout, stderr) = clamp(&["train", "--resume", out.to_str().unwrap()], &[]);
    assert_eq!(code, 0, "{stderr}");
    let summary: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert!(summary["loss"].as_f64().unwrap().is_finite(), "{stdout}");
    assert_eq!(summary["steps"], STEPS);
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn a_malformed_fault_is_refused_before_training() {
    let out = run_dir("bad-fault");
    for spec in ["nan-loss", "nan-loss@0", "boom@3", "nan-loss@x.."] {
        let (code, _, stderr) = train(&out, &[], Some(spec));
        assert_eq!(code, 2, "{spec}");
        assert!(
            stderr.contains("CLAMP_FAULT") && stderr.contains(spec.split('@').next().unwrap()),
            "{spec}: {stderr}"
        );
        assert!(!out.join("metrics.jsonl").exists(), "{spec}: nothing ran");
    }
}
