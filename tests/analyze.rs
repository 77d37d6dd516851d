//! `clamp analyze`: its JSON against the float64 reference, and every kind of bad input giving one
//! clear line on stderr with exit code 2, never a panic.

mod common;

use std::path::Path;

use common::files::temp_dir;
use common::{clustered_embeddings, reference};

/// A `.npy` written by hand (independent of the crate's writer): `descr`, shape text, payload.
fn write_npy(path: &Path, descr: &str, fortran: bool, shape: &str, payload: &[u8]) {
    let order = if fortran { "True" } else { "False" };
    let mut header =
        format!("{{'descr': '{descr}', 'fortran_order': {order}, 'shape': {shape}, }}");
    while (10 + header.len() + 1) % 16 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(payload);
    std::fs::write(path, bytes).unwrap();
}

fn f64_bytes(values: &[f64]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn f32_bytes(values: &[f64]) -> Vec<u8> {
    values
        .iter()
        .flat_map(|&v| (v as f32).to_le_bytes())
        .collect()
}

fn analyze(args: &[&str]) -> (i32, String, String) {
    let mut words = vec!["analyze"];
    words.extend_from_slice(args);
    common::run_clamp(&words)
}

fn json(stdout: &str) -> serde_json::Value {
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

#[test]
fn analyze_prints_the_reference_packing() {
    let dir = temp_dir("analyze-ok");
    let (m, b, d) = (4, 40, 16);
    let p = clustered_embeddings(m, b, d, 0.4, 11);
    let shape = format!("({m}, {b}, {d})");
    let f64_path = dir.join("emb64.npy");
    let f32_path = dir.join("emb32.npy");
    write_npy(&f64_path, "<f8", false, &shape, &f64_bytes(&p));
    write_npy(&f32_path, "<f4", false, &shape, &f32_bytes(&p));

    // A Fortran-ordered copy of the same array: element (v, i, k) at v + m (i + b k).
    let mut fortran = vec![0.0; p.len()];
    for v in 0..m {
        for i in 0..b {
            for k in 0..d {
                fortran[v + m * (i + b * k)] = p[(v * b + i) * d + k];
            }
        }
    }
    let fortran_path = dir.join("emb_fortran.npy");
    write_npy(&fortran_path, "<f8", true, &shape, &f64_bytes(&fortran));

    let want = reference(&p, m, b, d, 2.5, 3.0, true);
    assert!(want.overlapping_pairs > 0);
    let mut outputs = Vec::new();
    for path in [&f64_path, &f32_path, &fortran_path] {
        let (code, stdout, stderr) = analyze(&[
            "--embeddings",
            path.to_str().unwrap(),
            "--alpha",
            "2.5",
            "--radius-scale",
            "3",
        ]);
        assert_eq!(code, 0, "{stderr}");
        let v = json(&stdout);
        for key in [
            "loss",
            "energy",
            "mean_contacts",
            "activity",
            "rattler_fraction",
            "mean_radius",
            "radius_std",
            "mean_center_distance",
            "overlapping_pairs",
            "virial",
            "nearest_centroid_acc",
            "singular_value_ratio",
        ] {
            assert!(v[key].is_number(), "missing {key} in {stdout}");
        }
        let close = |key: &str, want: f64| {
            let got = v[key].as_f64().unwrap();
            assert!(
                (got - want).abs() <= 1e-4 * want.abs().max(1e-3),
                "{key}: {got} vs {want}"
            );
        };
        close("loss", want.loss);
        close("energy", want.energy);
        close("mean_radius", want.mean_radius);
        close("mean_center_distance", want.mean_center_distance);
        assert_eq!(
            v["overlapping_pairs"].as_u64().unwrap(),
            want.overlapping_pairs as u64
        );
        outputs.push(v);
    }
    assert_eq!(
        outputs[0], outputs[2],
        "Fortran order must read as the same array"
    );

    // --no-log: the loss is the energy itself.
    let (_, stdout, _) = analyze(&[
        "--embeddings",
        f64_path.to_str().unwrap(),
        "--alpha",
        "2.5",
        "--radius-scale",
        "3",
        "--no-log",
    ]);
    let v = json(&stdout);
    assert_eq!(v["loss"], v["energy"]);
}

/// Runs analyze on a bad input and checks the one-line error.
fn rejects(args: &[&str], expected: &[&str]) {
    let (code, stdout, stderr) = analyze(args);
    assert_eq!(code, 2, "exit code for {args:?}; stderr {stderr}");
    assert!(stdout.is_empty(), "nothing on stdout: {stdout}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    for word in expected {
        assert!(stderr.contains(word), "'{word}' missing from: {stderr}");
    }
}

#[test]
fn analyze_rejects_bad_files() {
    let dir = temp_dir("analyze-bad");
    let path = |name: &str| dir.join(name).to_str().unwrap().to_string();

    rejects(
        &["--embeddings", &path("missing.npy")],
        &["missing.npy", "cannot read"],
    );

    std::fs::write(path("text.npy"), "just some text, not numpy").unwrap();
    rejects(
        &["--embeddings", &path("text.npy")],
        &["text.npy", "not a .npy file"],
    );

    let good = f32_bytes(&clustered_embeddings(2, 3, 4, 0.3, 1));
    write_npy(
        Path::new(&path("short.npy")),
        "<f4",
        false,
        "(2, 3, 4)",
        &good[..good.len() - 5],
    );
    rejects(
        &["--embeddings", &path("short.npy")],
        &["short.npy", "truncated", "96 bytes"],
    );

    write_npy(
        Path::new(&path("ints.npy")),
        "<i4",
        false,
        "(2, 3, 4)",
        &good,
    );
    rejects(
        &["--embeddings", &path("ints.npy")],
        &["ints.npy", "unsupported dtype '<i4'"],
    );

    write_npy(Path::new(&path("rank2.npy")), "<f4", false, "(6, 4)", &good);
    rejects(
        &["--embeddings", &path("rank2.npy")],
        &["rank2.npy", "[m, B, d]", "[6, 4]"],
    );

    write_npy(
        Path::new(&path("oneview.npy")),
        "<f4",
        false,
        "(1, 6, 4)",
        &good,
    );
    rejects(
        &["--embeddings", &path("oneview.npy")],
        &["oneview.npy", "at least 2 views", "m = 1"],
    );

    write_npy(
        Path::new(&path("oneimage.npy")),
        "<f4",
        false,
        "(6, 1, 4)",
        &good,
    );
    rejects(
        &["--embeddings", &path("oneimage.npy")],
        &["oneimage.npy", "at least 2 images", "B = 1"],
    );

    write_npy(
        Path::new(&path("huge.npy")),
        "<f4",
        false,
        "(4294967296, 4294967296, 16)",
        &good,
    );
    rejects(
        &["--embeddings", &path("huge.npy")],
        &["huge.npy", "too large"],
    );

    write_npy(
        Path::new(&path("big.npy")),
        "<f4",
        false,
        "(2, 20000, 1)",
        &vec![0u8; 2 * 20000 * 4],
    );
    rejects(
        &["--embeddings", &path("big.npy")],
        &["big.npy", "B = 20000", "subset"],
    );

    for (name, bad) in [("nan.npy", f64::NAN), ("inf.npy", f64::INFINITY)] {
        let mut values = clustered_embeddings(2, 3, 4, 0.3, 1);
        values[17] = bad; // view 1, image 1, component 1
        write_npy(
            Path::new(&path(name)),
            "<f8",
            false,
            "(2, 3, 4)",
            &f64_bytes(&values),
        );
        rejects(
            &["--embeddings", &path(name)],
            &[name, "NaN or infinite", "view 1, image 1, component 1"],
        );
    }
}

#[test]
fn analyze_rejects_bad_flags() {
    rejects(&[], &["--embeddings"]);
    rejects(
        &["--embeddings", "x.npy", "--alpha", "two"],
        &["--alpha", "two"],
    );
    rejects(
        &["--embeddings", "x.npy", "--alpha", "0.5"],
        &["alpha", "out of range"],
    );
    rejects(
        &["--embeddings", "x.npy", "--radius-scale", "-1"],
        &["radius-scale", "out of range"],
    );
    rejects(
        &["--embeddings", "x.npy", "--alhpa", "2"],
        &["unknown flag --alhpa"],
    );
}
