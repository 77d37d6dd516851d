#![cfg(feature = "viewer")]
//! The 3-D projection of the viewer: PCA recovers a planted subspace exactly, and refits are
//! aligned to the previous basis (no sign flips, no jumps).

use clamp::projection::{ProjectionMode, Projector, align_basis};
use nalgebra::DMatrix;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// `n` points with 3-D coordinates of very different spreads, embedded in `dim` dimensions by a
/// random orthonormal map, plus an offset. Returns (embedded rows, the 3-D coordinates).
fn planted(n: usize, dim: usize, seed: u64) -> (Vec<f32>, Vec<[f64; 3]>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let raw = DMatrix::from_fn(dim, 3, |_, _| rng.random::<f64>() - 0.5);
    let q = raw.qr().q(); // dim x 3, orthonormal columns
    let offset: Vec<f64> = (0..dim).map(|_| rng.random::<f64>()).collect();
    let mut rows = Vec::with_capacity(n * dim);
    let mut local = Vec::with_capacity(n);
    for _ in 0..n {
        let p = [
            3.0 * (rng.random::<f64>() - 0.5),
            1.5 * (rng.random::<f64>() - 0.5),
            0.5 * (rng.random::<f64>() - 0.5),
        ];
        for k in 0..dim {
            let x = offset[k] + q[(k, 0)] * p[0] + q[(k, 1)] * p[1] + q[(k, 2)] * p[2];
            rows.push(x as f32);
        }
        local.push(p);
    }
    (rows, local)
}

fn distance(a: [f32; 3], b: [f32; 3]) -> f64 {
    (0..3)
        .map(|k| (a[k] as f64 - b[k] as f64).powi(2))
        .sum::<f64>()
        .sqrt()
}

#[test]
fn pca_of_a_planted_subspace_keeps_every_distance() {
    let (rows, local) = planted(400, 16, 1);
    let projector = Projector::fit(&rows, 16, ProjectionMode::Pca, None).unwrap();
    let positions = projector.project(&rows);
    let mut worst = 0.0f64;
    for i in 0..50 {
        for j in 0..50 {
            let truth = (0..3)
                .map(|k| (local[i][k] - local[j][k]).powi(2))
                .sum::<f64>()
                .sqrt();
            worst = worst.max((distance(positions[i], positions[j]) - truth).abs());
        }
    }
    assert!(worst < 1e-4, "distances changed by {worst}");
    // All the variance lies in the three drawn directions, largest first.
    let total: f64 = projector.explained.iter().sum();
    assert!(
        (total - 1.0).abs() < 1e-4,
        "explained {:?}",
        projector.explained
    );
    assert!(projector.explained[0] > projector.explained[1]);
    assert!(projector.explained[1] > projector.explained[2]);
    // The basis is orthonormal.
    for a in 0..3 {
        for b in 0..3 {
            let dot: f64 = projector
                .axis(a)
                .iter()
                .zip(projector.axis(b))
                .map(|(x, y)| x * y)
                .sum();
            let expected = if a == b { 1.0 } else { 0.0 };
            assert!((dot - expected).abs() < 1e-9, "axes {a}, {b}: {dot}");
        }
    }
}

#[test]
fn a_refit_is_rotated_onto_the_previous_basis() {
    let (rows, _) = planted(300, 12, 2);
    let first = Projector::fit(&rows, 12, ProjectionMode::Pca, None).unwrap();
    // The same data refit: PCA alone may flip signs; aligned, the picture is identical.
    let again = Projector::fit(&rows, 12, ProjectionMode::Pca, Some(&first)).unwrap();
    let (a, b) = (first.project(&rows), again.project(&rows));
    let moved = a
        .iter()
        .zip(&b)
        .map(|(p, q)| distance(*p, *q))
        .fold(0.0, f64::max);
    assert!(moved < 1e-5, "an identical refit moved a point by {moved}");

    // Slightly moved data: every point moves by about as much as the data did, never a flip.
    let mut rng = StdRng::seed_from_u64(3);
    let nudged: Vec<f32> = rows
        .iter()
        .map(|&x| x + 0.002 * (rng.random::<f32>() - 0.5))
        .collect();
    let next = Projector::fit(&nudged, 12, ProjectionMode::Pca, Some(&first)).unwrap();
    let c = next.project(&nudged);
    let moved = a
        .iter()
        .zip(&c)
        .map(|(p, q)| distance(*p, *q))
        .fold(0.0, f64::max);
    assert!(
        moved < 0.02,
        "a small change of the data moved a point by {moved}"
    );
}

#[test]
fn procrustes_undoes_a_known_rotation_and_reflection() {
    let mut rng = StdRng::seed_from_u64(4);
    let basis = DMatrix::from_fn(10, 3, |_, _| rng.random::<f64>() - 0.5)
        .qr()
        .q();
    // Rotate by 90 degrees in the first plane and mirror the third axis.
    let turn = DMatrix::from_row_slice(3, 3, &[0.0, -1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, -1.0]);
    let turned = &basis * &turn;
    let aligned = align_basis(&turned, &basis);
    let error = (&aligned - &basis).abs().max();
    assert!(error < 1e-12, "alignment left an error of {error}");
}

#[test]
fn raw_mode_draws_the_first_three_coordinates_as_they_are() {
    let rows: Vec<f32> = vec![0.1, -0.2, 0.3, 0.5, 0.5, -0.7];
    let projector = Projector::fit(&rows, 3, ProjectionMode::Pca, None).unwrap();
    assert_eq!(
        projector.mode,
        ProjectionMode::Raw,
        "d = 3 needs no projection"
    );
    assert_eq!(
        projector.project(&rows),
        vec![[0.1, -0.2, 0.3], [0.5, 0.5, -0.7]]
    );
    // Five rows of d = 4, one value of them NaN.
    let mut rows: Vec<f32> = (0..20).map(|i| (i % 10) as f32).collect();
    rows[1] = f32::NAN;
    let bad = Projector::fit(&rows, 4, ProjectionMode::Pca, None);
    assert!(bad.unwrap_err().contains("NaN"));
}
