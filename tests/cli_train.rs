//! `clamp train` end to end on Fashion-MNIST (a few steps of a small encoder), and its refusals of
//! bad configuration.

mod common;

use common::run_clamp as clamp;

#[test]
fn train_writes_metrics_a_checkpoint_and_a_summary() {
    let out = std::env::temp_dir().join(format!("clamp-cli-train-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let (code, stdout, stderr) = clamp(&[
        "train",
        "--dataset",
        "fashion-mnist",
        "--backend",
        "cpu",
        "--steps",
        "6",
        "--batch",
        "10",
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
        "500",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("data: ") && stderr.contains("fashion-mnist"),
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
    // The probes are fit to 500 training images and score the 10,000 held-out test images:
    // whole numbers of them, well above chance (0.1) for the features of even a small encoder,
    // and well short of every one (a probe scored on the images it was fit to reaches 1).
    for key in ["knn_acc", "linear_acc"] {
        let right = summary[key].as_f64().unwrap() * 10_000.0;
        assert!((right - right.round()).abs() < 1e-3, "{key}: {stdout}");
        assert!((2_500.0..9_500.0).contains(&right), "{key}: {stdout}");
    }
    // The read-out's nearest-centroid accuracy counts the snapshot's views (1,000 held-out
    // images x 4) whose nearest sphere center is their own image's: a whole number of the
    // 4,000, above chance (one in 1,000) after six steps.
    let hits = summary["nearest_centroid_acc"].as_f64().unwrap() * 4000.0;
    assert!(
        (hits - hits.round()).abs() < 1e-6 && (8.0..=4000.0).contains(&hits),
        "{stdout}"
    );

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
    let checkpoint = out.join("checkpoints/step-00000006");
    assert_eq!(summary["checkpoint"], checkpoint.to_str().unwrap());
    for file in [
        "model.mpk",
        "optimizer.mpk",
        "config.toml",
        "state.json",
        "manifest.json",
    ] {
        assert!(checkpoint.join(file).is_file(), "checkpoint lacks {file}");
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
    assert!(stdout.contains("Usage: clamp train"), "{stdout}");
    // Every flag with its sentence, and the configuration's default and range where it has one.
    assert!(stdout.contains("--radius-scale <RS>"), "{stdout}");
    assert!(
        stdout.contains("Radius scale r_s: a sphere's radius is r_s times the RMS spread of its views [default: 2.5; allowed: 0.001 to 1000]"),
        "{stdout}"
    );
    assert!(stdout.contains("--resume <DIR>") && stdout.contains("newest whole checkpoint"));
    // Value enums list their values, each with its sentence.
    assert!(stdout.contains("- wgpu: burn's WGPU backend"), "{stdout}");
    assert!(!stdout.contains("clamp eval") && !stdout.contains("--bidisperse"));
    let (code, stdout, _) = clamp(&["jam", "-h"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("--bidisperse") && !stdout.contains("--radius-scale"));
    // --help anywhere on the line wins over the other flags: nothing runs.
    let (code, stdout, _) = clamp(&["jam", "--dim", "9", "--help"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("jamming point"));
    let (code, _, stderr) = clamp(&["fly", "--help"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("unknown command 'fly'"), "{stderr}");
    // The top-level help lists the commands.
    let (code, stdout, _) = clamp(&["--help"]);
    assert_eq!(code, 0);
    for command in ["train", "eval", "embed", "analyze", "jam", "completions"] {
        assert!(
            stdout.contains(&format!("  {command}")),
            "{command}: {stdout}"
        );
    }
}

#[test]
fn a_misspelt_flag_or_command_gets_a_suggestion_and_exit_code_2() {
    let (code, stdout, stderr) = clamp(&["train", "--radius-scael", "3"]);
    assert_eq!(code, 2);
    assert!(stdout.is_empty());
    assert!(
        stderr.contains("unknown flag --radius-scael (a similar flag exists: --radius-scale)"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    let (code, _, stderr) = clamp(&["trian"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("unknown command 'trian' (did you mean 'train'?)"),
        "{stderr}"
    );
    // A flag of another command is not this one's.
    let (code, _, stderr) = clamp(&["eval", "--checkpoint", "x", "--radius-scale", "2"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("unknown flag --radius-scale"), "{stderr}");
    // Missing values and wrong types name the flag.
    let (code, _, stderr) = clamp(&["train", "--steps"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("--steps"), "{stderr}");
    let (code, _, stderr) = clamp(&["train", "--steps", "many"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("--steps") && stderr.contains("many"),
        "{stderr}"
    );
}

#[test]
fn completions_cover_every_command_and_flag() {
    let (code, stdout, stderr) = clamp(&["completions", "bash"]);
    assert_eq!(code, 0, "{stderr}");
    for word in [
        "train",
        "embed",
        "--radius-scale",
        "--checkpoint-every",
        "--bidisperse",
    ] {
        assert!(stdout.contains(word), "bash completion lacks {word}");
    }
    for shell in ["zsh", "fish"] {
        let (code, stdout, _) = clamp(&["completions", shell]);
        assert_eq!(code, 0);
        assert!(stdout.contains("radius-scale"), "{shell}");
    }
    let (code, _, stderr) = clamp(&["completions", "tcsh"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("tcsh") && stderr.contains("bash"),
        "{stderr}"
    );
}

/// Writes an IDX split of 28 x 28 images: `patterns[k]` is true for a bright block top-left,
/// false for one bottom-right; `labels[k]` its label.
fn write_idx_split(dir: &std::path::Path, prefix: &str, patterns: &[bool], labels: &[u8]) {
    let mut images = vec![0, 0, 8, 3];
    for n in [patterns.len() as u32, 28, 28] {
        images.extend_from_slice(&n.to_be_bytes());
    }
    for &top_left in patterns {
        let (r0, c0) = if top_left { (2, 2) } else { (16, 16) };
        for r in 0..28 {
            for c in 0..28 {
                let inside = (r0..r0 + 10).contains(&r) && (c0..c0 + 10).contains(&c);
                images.push(if inside { 230 } else { 10 });
            }
        }
    }
    let mut label_bytes = vec![0, 0, 8, 1];
    label_bytes.extend_from_slice(&(labels.len() as u32).to_be_bytes());
    label_bytes.extend_from_slice(labels);
    std::fs::write(dir.join(format!("{prefix}-images-idx3-ubyte")), images).unwrap();
    std::fs::write(dir.join(format!("{prefix}-labels-idx1-ubyte")), label_bytes).unwrap();
}

#[test]
fn eval_scores_a_hand_checked_split_exactly() {
    let root = std::env::temp_dir().join(format!("clamp-cli-eval-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let data = root.join("two-blocks");
    std::fs::create_dir_all(&data).unwrap();
    // Training: 20 top-left blocks labelled 0, 20 bottom-right labelled 1.
    let train: Vec<bool> = (0..40).map(|k| k < 20).collect();
    let train_labels: Vec<u8> = train.iter().map(|&t| if t { 0 } else { 1 }).collect();
    write_idx_split(&data, "train", &train, &train_labels);
    // Test: 4 + 4 labelled as in training, and 2 top-left blocks labelled 1. Identical images
    // have identical features under any encoder, so every probe predicts the training label of
    // the pattern: exactly 8 of 10 right, for kNN, the linear probe and raw pixels alike.
    let test = [
        true, true, true, true, false, false, false, false, true, true,
    ];
    let test_labels = [0, 0, 0, 0, 1, 1, 1, 1, 1, 1];
    write_idx_split(&data, "t10k", &test, &test_labels);

    // Any checkpoint of a 28 x 28 grayscale model will do: two steps on the bundled images.
    let run = root.join("run");
    let bundled = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/fashion-mnist");
    let (code, _, stderr) = clamp(&[
        "train",
        "--data",
        bundled,
        "--backend",
        "cpu",
        "--steps",
        "2",
        "--batch",
        "32",
        "--width",
        "4",
        "--probe-train-images",
        "100",
        "--out",
        run.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let (code, stdout, stderr) = clamp(&[
        "eval",
        "--checkpoint",
        run.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--backend",
        "cpu",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let result: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(result["train_images"], 40, "{stdout}");
    assert_eq!(result["test_images"], 10, "{stdout}");
    assert_eq!(result["step"], 2, "{stdout}");
    for key in ["knn_acc", "linear_acc", "raw_pixel_knn_acc"] {
        assert_eq!(result[key], 0.8, "{key}: {stdout}");
    }
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn embed_writes_what_analyze_reads_and_the_trainer_computes() {
    use clamp::backend::CpuBackend;
    use clamp::train::{TrainingData, checkpoint};

    let root = std::env::temp_dir().join(format!("clamp-cli-embed-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let run = root.join("run");
    let bundled = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/fashion-mnist");
    // The pixel MLP, so that the test can compute the network itself (below).
    let (code, _, stderr) = clamp(&[
        "train",
        "--data",
        bundled,
        "--backend",
        "cpu",
        "--encoder",
        "mlp",
        "--steps",
        "3",
        "--batch",
        "32",
        "--width",
        "16",
        "--dim",
        "8",
        "--radius-scale",
        "3",
        "--probe-train-images",
        "100",
        "--out",
        run.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let npy = root.join("embedded.npy");
    let (code, stdout, stderr) = clamp(&[
        "embed",
        "--checkpoint",
        run.to_str().unwrap(),
        "--out",
        npy.to_str().unwrap(),
        "--images",
        "50",
        "--views",
        "3",
        "--backend",
        "cpu",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let summary: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(summary["shape"], serde_json::json!([3, 50, 8]), "{stdout}");
    assert_eq!(summary["step"], 3, "{stdout}");
    let array = clamp::npy::read_npy(&npy).unwrap();
    assert_eq!(array.shape, vec![3, 50, 8]);

    // The same views, pushed through the checkpoint's weights by a second implementation
    // written here in f64: normalise, Linear + ReLU, Linear + ReLU, Linear (burn's `Linear`
    // computes x W + b with W stored [in, out]).
    let dir = checkpoint::find(&run).unwrap().dir;
    let config = checkpoint::load_config(&dir).unwrap();
    let data = std::sync::Arc::new(TrainingData::load(&config).unwrap());
    let trainer = checkpoint::load::<CpuBackend>(&dir, data.clone(), Default::default()).unwrap();
    let weights = trainer.weights();
    let weight = |name: &str| -> &Vec<f32> {
        &weights
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| {
                panic!(
                    "no {name} among {:?}",
                    weights.iter().map(|w| &w.0).collect::<Vec<_>>()
                )
            })
            .1
    };
    let layer = |x: &[f64], w: &[f32], b: &[f32], relu: bool| -> Vec<f64> {
        let (inputs, outputs) = (x.len(), b.len());
        assert_eq!(w.len(), inputs * outputs);
        (0..outputs)
            .map(|o| {
                let y = b[o] as f64
                    + (0..inputs)
                        .map(|i| x[i] * w[i * outputs + o] as f64)
                        .sum::<f64>();
                if relu { y.max(0.0) } else { y }
            })
            .collect()
    };
    let indices: Vec<usize> = (0..50).collect();
    let pixels = clamp::augment::make_views(
        &data.test,
        &indices,
        3,
        &data.augment,
        trainer.snapshot_view_seed(),
    );
    let per_image = data.test.pixels_per_image();
    let mut expected = Vec::new();
    for view in pixels.chunks(per_image) {
        let x: Vec<f64> = view
            .iter()
            .map(|&p| ((p - data.channel_mean[0]) / data.channel_std[0]) as f64)
            .collect();
        let hidden = layer(
            &x,
            weight("encoder.mlp.weight"),
            weight("encoder.mlp.bias"),
            true,
        );
        let projected = layer(
            &hidden,
            weight("projector.hidden.weight"),
            weight("projector.hidden.bias"),
            true,
        );
        expected.extend(layer(
            &projected,
            weight("projector.output.weight"),
            weight("projector.output.bias"),
            false,
        ));
    }
    let scale = expected.iter().fold(0f64, |m, v| m.max(v.abs()));
    let worst = array
        .data
        .iter()
        .zip(&expected)
        .map(|(a, b)| (a - b).abs())
        .fold(0f64, f64::max);
    assert!(
        scale > 0.0 && worst <= 1e-5 * scale,
        "the file is {worst:e} from the network ({scale:e})"
    );

    // And `clamp analyze` on the file reports the read-out of the float64 reference loop
    // (tests/common), computed from the file's values.
    let (code, stdout, stderr) = clamp(&[
        "analyze",
        "--embeddings",
        npy.to_str().unwrap(),
        "--radius-scale",
        "3",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let analyzed: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    let reference = common::reference(&array.data, 3, 50, 8, config.alpha, 3.0, true);
    for (key, value) in [
        ("loss", reference.loss),
        ("mean_radius", reference.mean_radius),
        (
            "mean_contacts",
            reference.contacts.iter().sum::<usize>() as f64 / 50.0,
        ),
    ] {
        let got = analyzed[key].as_f64().unwrap();
        assert!(
            (got - value).abs() <= 1e-4 * value.abs().max(1.0),
            "{key}: analyze {got}, reference {value}"
        );
    }
    // Bad requests are refused by name before anything runs.
    let (code, _, stderr) = clamp(&[
        "embed",
        "--checkpoint",
        run.to_str().unwrap(),
        "--out",
        "x.txt",
    ]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("--out") && stderr.contains(".npy"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&root);
}
