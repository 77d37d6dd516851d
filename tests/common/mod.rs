//! An independent float64 reference of the CLAMP loss and its read-out, written as plain loops
//! straight from the formula (docs/loss.md, term by term), for the tests to compare against.
#![allow(dead_code)]
// Index loops, so that each line reads like its formula.
#![allow(clippy::needless_range_loop)]

#[cfg(feature = "viewer")]
pub mod app;
pub mod files;
pub mod runs;
pub mod tensors;

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, Normal};

pub struct Reference {
    pub loss: f64,
    pub energy: f64,
    pub contacts: Vec<usize>,
    /// Pairs within 1e-5 (relative) of the contact threshold: f32 may legitimately decide them
    /// either way.
    pub ambiguous_contacts: usize,
    pub overlapping_pairs: usize,
    pub ambiguous_overlaps: usize,
    pub mean_radius: f64,
    pub radius_std: f64,
    pub mean_center_distance: f64,
    pub virial: f64,
    pub nearest_centroid_acc: f64,
    pub ambiguous_views: usize,
    pub singular_value_ratio: f64,
    pub radii: Vec<f64>,
    pub centers: Vec<Vec<f64>>,
}

/// `p` is `[m][B][d]` flattened view-major.
pub fn reference(
    p: &[f64],
    m: usize,
    b: usize,
    d: usize,
    alpha: f64,
    rs: f64,
    log: bool,
) -> Reference {
    let at = |v: usize, i: usize, k: usize| p[(v * b + i) * d + k];
    let mut mean = vec![0.0; d];
    for v in 0..m {
        for i in 0..b {
            for k in 0..d {
                mean[k] += at(v, i, k) / (m * b) as f64;
            }
        }
    }
    let mut z = vec![vec![vec![0.0; d]; b]; m];
    for v in 0..m {
        for i in 0..b {
            let x: Vec<f64> = (0..d).map(|k| at(v, i, k) - mean[k]).collect();
            let norm = x.iter().map(|a| a * a).sum::<f64>().sqrt();
            for k in 0..d {
                z[v][i][k] = x[k] / norm;
            }
        }
    }
    let mut centers = vec![vec![0.0; d]; b];
    for i in 0..b {
        for k in 0..d {
            centers[i][k] = (0..m).map(|v| z[v][i][k]).sum::<f64>() / m as f64;
        }
    }
    let mut unscaled = vec![0.0; b];
    for i in 0..b {
        let mut spread = 0.0;
        for v in 0..m {
            for k in 0..d {
                spread += (z[v][i][k] - centers[i][k]).powi(2);
            }
        }
        unscaled[i] = (spread / ((m - 1) * d.min(m)) as f64 + 1e-12).sqrt();
    }
    let radii: Vec<f64> = unscaled.iter().map(|r| r * rs).collect();
    let dist = |i: usize, j: usize| {
        ((0..d)
            .map(|k| (centers[i][k] - centers[j][k]).powi(2))
            .sum::<f64>()
            + 1e-12)
            .sqrt()
    };

    let mut energy = 0.0;
    let mut virial = 0.0;
    let mut overlapping_pairs = 0;
    let mut ambiguous_overlaps = 0;
    let mut contacts = vec![0; b];
    let mut ambiguous_contacts = 0;
    let mut distance_sum = 0.0;
    for i in 0..b {
        for j in 0..b {
            if i == j {
                continue;
            }
            let dij = dist(i, j);
            distance_sum += dij;
            let s = (radii[i] + radii[j] + 1e-6).min(1.5);
            if dij < s && dij > 1e-3 {
                energy += 0.5 * (1.0 - dij / s).powf(alpha);
                virial += 0.5 * (1.0 - dij / s).powf(alpha - 1.0) * dij / s;
                if i < j {
                    overlapping_pairs += 1;
                }
            }
            if i < j && ((dij - s).abs() < 1e-5 * s || (dij - 1e-3).abs() < 1e-5) {
                ambiguous_overlaps += 1;
            }
            let contact_range = 0.99 * (radii[i] + radii[j]);
            if dij < contact_range {
                contacts[i] += 1;
            }
            if (dij - contact_range).abs() < 1e-5 * contact_range {
                ambiguous_contacts += 1;
            }
        }
    }

    let mut hits = 0;
    let mut ambiguous_views = 0;
    for v in 0..m {
        for i in 0..b {
            let mut order: Vec<(f64, usize)> = (0..b)
                .map(|j| {
                    let d2 = (0..d)
                        .map(|k| (z[v][i][k] - centers[j][k]).powi(2))
                        .sum::<f64>();
                    (d2, j)
                })
                .collect();
            order.sort_by(|a, b| a.0.total_cmp(&b.0));
            if order[0].1 == i {
                hits += 1;
            }
            if b > 1 && order[1].0 - order[0].0 < 1e-5 {
                ambiguous_views += 1;
            }
        }
    }

    let (mean_radius, radius_std) = mean_std(&unscaled);
    let matrix = nalgebra::DMatrix::from_fn(b, d, |i, k| centers[i][k]);
    let singular: Vec<f64> = matrix
        .svd(false, false)
        .singular_values
        .iter()
        .copied()
        .collect();
    let (sv_mean, sv_std) = mean_std(&singular);

    Reference {
        loss: if log { (energy + 1e-6).ln() } else { energy },
        energy,
        contacts,
        ambiguous_contacts,
        overlapping_pairs,
        ambiguous_overlaps,
        mean_radius,
        radius_std,
        mean_center_distance: distance_sum / (b * (b - 1)) as f64,
        virial,
        nearest_centroid_acc: hits as f64 / (m * b) as f64,
        ambiguous_views,
        singular_value_ratio: sv_std / sv_mean,
        radii,
        centers,
    }
}

/// The largest magnitude among `values` (0 for none).
pub fn max_abs<T: Into<f64>>(values: impl IntoIterator<Item = T>) -> f64 {
    values
        .into_iter()
        .fold(0.0f64, |m, v| m.max(v.into().abs()))
}

fn mean_std(x: &[f64]) -> (f64, f64) {
    let n = x.len() as f64;
    let mean = x.iter().sum::<f64>() / n;
    let var = x.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var.sqrt())
}

/// Clustered random embeddings: each image has a random direction, its views scatter around it,
/// so sphere sizes and overlaps vary with the radius scale instead of being all-or-nothing.
pub fn clustered_embeddings(m: usize, b: usize, d: usize, spread: f64, seed: u64) -> Vec<f64> {
    let mut rng = StdRng::seed_from_u64(seed);
    let normal = Normal::new(0.0, 1.0).unwrap();
    let anchors: Vec<f64> = (0..b * d).map(|_| normal.sample(&mut rng)).collect();
    let mut p = vec![0.0; m * b * d];
    for v in 0..m {
        for i in 0..b {
            for k in 0..d {
                p[(v * b + i) * d + k] = anchors[i * d + k] + spread * normal.sample(&mut rng);
            }
        }
    }
    p
}

/// Runs the `clamp` binary: (exit code, stdout, stderr).
pub fn run_clamp(args: &[&str]) -> (i32, String, String) {
    run_clamp_with_env(args, &[])
}

/// `clamp ARGS` in a window on a fresh Xvfb display, with `env` set. The tests of this file run
/// in parallel, and two `xvfb-run -a` started at once can pick the same display number; on a
/// loaded machine a display also now and then refuses the first connection. Both are the
/// harness, not the viewer: the window tests of a test binary take turns, and a run whose display failed is
/// tried again (three times at most).
pub fn under_xvfb(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    static DISPLAYS: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = DISPLAYS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let run = || {
        std::process::Command::new("xvfb-run")
            .args(["-a", "-s", "-screen 0 1280x720x24"])
            .arg(env!("CARGO_BIN_EXE_clamp"))
            .args(args)
            .envs(env.iter().copied())
            .output()
            .expect("xvfb-run must be installed (Debian package xvfb) for this test")
    };
    let display_failed = |output: &std::process::Output| {
        let stderr = String::from_utf8_lossy(&output.stderr);
        stderr.contains("XOpenDisplayFailed")
            || stderr.contains("Xvfb failed to start")
            || stderr.contains("Failed to open X display")
    };
    let mut output = run();
    for _ in 1..3 {
        if !display_failed(&output) {
            break;
        }
        output = run();
    }
    output
}

/// As [`run_clamp`], with environment variables set for the child (`CLAMP_FAULT`, say).
pub fn run_clamp_with_env(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_clamp"))
        .args(args)
        .env_remove("CLAMP_FAULT")
        .envs(env.iter().copied())
        .output()
        .expect("the clamp binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
