//! `clamp jam` end to end: a small 2D bidisperse packing jams near phi_J = 0.84 with Z near 4,
//! and bad flags are refused with the field named.

mod common;

use common::run_clamp as clamp;

#[test]
fn jam_finds_the_2d_jamming_point_and_its_power_laws() {
    let (code, stdout, stderr) = clamp(&[
        "jam",
        "--dim",
        "2",
        "--n",
        "256",
        "--bidisperse",
        "--seed",
        "2",
        "--sweep",
        "--json",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("jam ["),
        "a progress bar on stderr: {stderr}"
    );
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    let phi_j = v["phi_j"].as_f64().unwrap();
    assert!((phi_j - 0.842).abs() < 0.02, "2D bidisperse phi_J {phi_j}");
    let z = v["contacts"].as_f64().unwrap();
    assert!(
        (z - 4.0).abs() < 0.2,
        "Z of non-rattlers at jamming {z} vs 2d = 4"
    );
    assert_eq!(v["n"], 256);
    assert_eq!(v["dim"], 2);
    let energy = v["energy_exponent"].as_f64().unwrap();
    let pressure = v["pressure_exponent"].as_f64().unwrap();
    assert!(
        (energy - 2.0).abs() < 0.15,
        "E ~ delta^{energy}, want alpha = 2"
    );
    assert!(
        (pressure - 1.0).abs() < 0.15,
        "p ~ delta^{pressure}, want alpha - 1 = 1"
    );
    assert_eq!(v["sweep"].as_array().unwrap().len(), 7);
}

#[test]
fn jam_refuses_bad_flags() {
    for (args, word) in [
        (
            &["jam", "--dim", "4", "--n", "64"][..],
            "--dim: must be 2 or 3 in a box, 2 on S^2, got 4",
        ),
        (
            &["jam", "--dim", "3", "--n", "1"][..],
            "--n: need at least 2 particles, got 1",
        ),
        (
            &["jam", "--dim", "2", "--n", "64", "--alpha", "0.5"][..],
            "--alpha: must be finite and > 1, got 0.5",
        ),
        (&["jam", "--n", "64"][..], "--dim"),
    ] {
        let (code, stdout, stderr) = clamp(args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(stdout.is_empty());
        assert!(
            stderr.contains(word) && !stderr.contains("panicked"),
            "{args:?}: {stderr}"
        );
    }
}
