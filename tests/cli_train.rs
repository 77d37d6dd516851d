//! `clamp train` end to end on the toy dataset, and its refusals of bad configuration.

mod common;

use common::run_clamp as clamp;

#[test]
fn train_writes_metrics_a_checkpoint_and_a_summary() {
    let out = std::env::temp_dir().join(format!("clamp-cli-train-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let (code, stdout, stderr) = clamp(&[
        "train",
        "--dataset",
        "toy",
        "--backend",
        "cpu",
        "--steps",
        "6",
        "--views",
        "4",
        "--dim",
        "3",
        "--width",
        "4",
        "--radius-scale",
        "2",
        "--eval-every",
        "3",
        "--probe-train-images",
        "10",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("data: toy"),
        "the log names the data: {stderr}"
    );
    assert!(
        stderr.contains("backend: cpu"),
        "the log names the backend: {stderr}"
    );
    let summary: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    for key in [
        "steps",
        "loss",
        "mean_contacts",
        "activity",
        "knn_acc",
        "linear_acc",
        "nearest_centroid_acc",
        "images_per_sec",
        "seconds",
    ] {
        assert!(summary[key].is_number(), "summary lacks {key}: {stdout}");
    }
    assert_eq!(summary["steps"], 6);
    // The toy set probes on the images it trains on (one per class, the same ten in both
    // splits): each test image's features are a training image's own, so a working kNN and a
    // working linear probe both score exactly 1.
    assert_eq!(summary["knn_acc"], 1.0, "{stdout}");
    assert_eq!(summary["linear_acc"], 1.0, "{stdout}");
    let centroid = summary["nearest_centroid_acc"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&centroid), "{stdout}");

    let metrics = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = metrics
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let steps: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l.get("packing").is_some())
        .collect();
    let probes: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l.get("knn_acc").is_some())
        .collect();
    assert_eq!(steps.len(), 6);
    assert_eq!(steps[5]["loss"], summary["loss"]);
    // At initialisation, after step 3, at the end.
    assert_eq!(
        probes
            .iter()
            .map(|p| p["step"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        vec![0, 3, 6]
    );
    for file in ["model.mpk", "optimizer.mpk", "config.toml", "state.json"] {
        assert!(
            out.join("checkpoint").join(file).is_file(),
            "checkpoint lacks {file}"
        );
    }
}

#[test]
fn train_refuses_bad_configuration_before_training() {
    let (code, _, stderr) = clamp(&["train", "--views", "1"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("--views") && stderr.contains("2 to 64"),
        "{stderr}"
    );

    let (code, _, stderr) = clamp(&["train", "--blur-prob", "1.5"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("--blur-prob = 1.5") && stderr.contains("allowed 0 to 1"),
        "{stderr}"
    );

    let (code, _, stderr) = clamp(&["train", "--backend", "tpu"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("--backend") && stderr.contains("tpu"),
        "{stderr}"
    );

    let (code, _, stderr) = clamp(&["train", "--dataset", "/nonexistent/cifar"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("/nonexistent/cifar"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn each_command_explains_its_own_flags_with_help() {
    let (code, stdout, stderr) = clamp(&["train", "--help"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.starts_with("  clamp train "), "{stdout}");
    assert!(stdout.contains("--radius-scale") && stdout.contains("summary JSON"));
    assert!(!stdout.contains("clamp eval") && !stdout.contains("clamp jam"));
    let (code, stdout, _) = clamp(&["jam", "-h"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("--bidisperse") && !stdout.contains("clamp train"));
    // --help anywhere on the line wins over the other flags: nothing runs.
    let (code, stdout, _) = clamp(&["jam", "--dim", "9", "--help"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("jamming point"));
    let (code, _, stderr) = clamp(&["fly", "--help"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("unknown command 'fly'"), "{stderr}");
}
