//! The burn CLAMP loss and its read-out against the float64 loop reference, the gradient against
//! finite differences, and cases checked by hand.

mod common;

use burn::backend::{Autodiff, Flex};
use burn::tensor::{Tensor, TensorData};
use clamp::loss::{Packing, PackingParams, clamp_loss};
use common::{clustered_embeddings, reference};

type Cpu = Flex;

fn tensor<B: burn::tensor::backend::Backend>(
    p: &[f64],
    m: usize,
    b: usize,
    d: usize,
) -> Tensor<B, 3> {
    let values: Vec<f32> = p.iter().map(|&x| x as f32).collect();
    Tensor::from_data(TensorData::new(values, [m, b, d]), &Default::default())
}

fn relative_error(got: f64, want: f64) -> f64 {
    (got - want).abs() / want.abs().max(1e-12)
}

#[test]
fn loss_and_readout_match_the_float64_reference() {
    let alphas = [1.5, 2.0, 2.5, 3.0];
    let mut worst = 0.0f64;
    let mut worst_case = String::new();
    let mut case = 0;
    let mut overlapping_cases = 0;
    for &m in &[2usize, 4, 16] {
        for &b in &[2usize, 64, 257] {
            for &d in &[3usize, 32, 256] {
                for &rs in &[0.5, 7.0, 20.0] {
                    let alpha = alphas[case % alphas.len()];
                    let log = case % 5 != 4;
                    case += 1;
                    let p = clustered_embeddings(m, b, d, 0.4, case as u64);
                    let want = reference(&p, m, b, d, alpha, rs, log);
                    let params = PackingParams {
                        alpha,
                        radius_scale: rs,
                        log_energy: log,
                    };
                    let got = Packing::new(tensor::<Cpu>(&p, m, b, d), &params).readout();
                    let g = &got.metrics;
                    let label = format!("m={m} B={b} d={d} alpha={alpha} r_s={rs} log={log}");

                    let mut check = |name: &str, got: f64, want: f64, floor: f64| {
                        let err = (got - want).abs() / want.abs().max(floor);
                        assert!(
                            err <= 1e-4,
                            "{label}: {name} = {got}, reference {want} (rel err {err:.2e})"
                        );
                        if err > worst {
                            worst = err;
                            worst_case = format!("{name} at {label}");
                        }
                    };
                    check("loss", g.loss, want.loss, 1e-12);
                    // A pair barely inside the contact range adds ~(1e-4)^alpha: its f32 rounding is
                    // measured against the energy scale of one full overlap, not against zero.
                    check("energy", g.energy, want.energy, 1e-3);
                    check("virial", g.virial, want.virial, 1e-3);
                    check("mean_radius", g.mean_radius, want.mean_radius, 1e-12);
                    // The std of nearly equal radii is a difference of f32 numbers: its error is bounded by
                    // the radii's own, so it is measured against the mean radius.
                    check(
                        "radius_std",
                        g.radius_std,
                        want.radius_std,
                        1e-3 * want.mean_radius,
                    );
                    check(
                        "mean_center_distance",
                        g.mean_center_distance,
                        want.mean_center_distance,
                        1e-12,
                    );
                    check(
                        "singular_value_ratio",
                        g.singular_value_ratio,
                        want.singular_value_ratio,
                        1e-3,
                    );
                    for i in 0..b {
                        check("radius", got.radii[i] as f64, want.radii[i], 1e-12);
                    }

                    let contact_diff: usize = got
                        .contacts
                        .iter()
                        .zip(&want.contacts)
                        .map(|(&a, &w)| (a as i64 - w as i64).unsigned_abs() as usize)
                        .sum();
                    assert!(
                        contact_diff <= want.ambiguous_contacts,
                        "{label}: contacts differ by {contact_diff}"
                    );
                    let mean_contacts = want.contacts.iter().sum::<usize>() as f64 / b as f64;
                    assert!(
                        (g.mean_contacts - mean_contacts).abs()
                            <= want.ambiguous_contacts as f64 / b as f64 + 1e-12
                    );
                    let active = want.contacts.iter().filter(|&&c| c > 0).count() as f64 / b as f64;
                    assert!(
                        (g.activity - active).abs()
                            <= want.ambiguous_contacts as f64 / b as f64 + 1e-12,
                        "{label}: activity"
                    );
                    assert!(
                        (g.rattler_fraction - (1.0 - active)).abs()
                            <= want.ambiguous_contacts as f64 / b as f64 + 1e-12
                    );
                    assert!(
                        (g.overlapping_pairs as i64 - want.overlapping_pairs as i64).unsigned_abs()
                            as usize
                            <= want.ambiguous_overlaps,
                        "{label}: overlapping pairs {} vs {}",
                        g.overlapping_pairs,
                        want.overlapping_pairs
                    );
                    assert!(
                        (g.nearest_centroid_acc - want.nearest_centroid_acc).abs()
                            <= want.ambiguous_views as f64 / (m * b) as f64 + 1e-12,
                        "{label}: nearest-centroid accuracy {} vs {}",
                        g.nearest_centroid_acc,
                        want.nearest_centroid_acc
                    );
                    if want.overlapping_pairs > 0 {
                        overlapping_cases += 1;
                    }
                }
            }
        }
    }
    // The sweep must exercise both regimes, or it would test little.
    assert!(
        overlapping_cases >= 30 && overlapping_cases < case,
        "{overlapping_cases} of {case} cases overlap"
    );
    println!("worst relative error over {case} cases: {worst:.2e} ({worst_case})");
}

#[test]
fn gradient_matches_finite_differences_of_the_reference() {
    type Grad = Autodiff<Cpu>;
    for (case, &(m, b, d, alpha)) in [
        (2usize, 5usize, 3usize, 2.0),
        (4, 5, 4, 2.5),
        (3, 4, 6, 1.5),
        (2, 6, 3, 3.0),
    ]
    .iter()
    .enumerate()
    {
        let p = clustered_embeddings(m, b, d, 0.5, 100 + case as u64);
        // The smallest radius scale that makes spheres overlap: then most pairs are uncapped and
        // the radius term carries gradient.
        let rs = (1..200)
            .map(|k| k as f64 * 0.25)
            .find(|&rs| reference(&p, m, b, d, alpha, rs, true).overlapping_pairs > 0)
            .expect("some radius scale overlaps");
        let params = PackingParams {
            alpha,
            radius_scale: rs,
            log_energy: true,
        };
        let want = reference(&p, m, b, d, alpha, rs, true);
        assert!(
            want.radii.iter().any(|&r| 2.0 * r < 1.5),
            "case {case} must not be fully capped"
        );

        let x = tensor::<Grad>(&p, m, b, d).require_grad();
        let loss = clamp_loss(x.clone(), &params);
        let grads = loss.backward();
        let grad: Vec<f64> = x.grad(&grads).unwrap().into_data().iter::<f64>().collect();

        let h = 1e-6;
        let mut numeric = vec![0.0; p.len()];
        for k in 0..p.len() {
            let mut plus = p.clone();
            let mut minus = p.clone();
            plus[k] += h;
            minus[k] -= h;
            numeric[k] = (reference(&plus, m, b, d, alpha, rs, true).loss
                - reference(&minus, m, b, d, alpha, rs, true).loss)
                / (2.0 * h);
        }
        let diff: f64 = grad
            .iter()
            .zip(&numeric)
            .map(|(a, b)| (a - b).powi(2))
            .sum::<f64>()
            .sqrt();
        let norm: f64 = numeric.iter().map(|a| a * a).sum::<f64>().sqrt();
        assert!(norm > 1e-3, "case {case}: gradient too small to test");
        assert!(
            diff / norm < 2e-3,
            "case {case}: gradient rel err {:.2e}",
            diff / norm
        );
    }
}

#[test]
fn radius_gradient_shrinks_spheres() {
    // Moving every view towards its own center lowers the loss: the radius term is differentiable.
    type Grad = Autodiff<Cpu>;
    let (m, b, d) = (4, 6, 5);
    let p = clustered_embeddings(m, b, d, 0.5, 7);
    let params = PackingParams {
        alpha: 2.0,
        radius_scale: 2.0,
        log_energy: true,
    };
    let x = tensor::<Grad>(&p, m, b, d).require_grad();
    let grads = clamp_loss(x.clone(), &params).backward();
    let grad: Vec<f64> = x.grad(&grads).unwrap().into_data().iter::<f64>().collect();
    // Directional derivative along "views towards their image mean" must be negative.
    let mut direction = vec![0.0; p.len()];
    for i in 0..b {
        for k in 0..d {
            let mean = (0..m).map(|v| p[(v * b + i) * d + k]).sum::<f64>() / m as f64;
            for v in 0..m {
                direction[(v * b + i) * d + k] = mean - p[(v * b + i) * d + k];
            }
        }
    }
    let slope: f64 = grad.iter().zip(&direction).map(|(g, u)| g * u).sum();
    assert!(
        slope < 0.0,
        "pulling views together should lower the loss, slope {slope}"
    );
}

/// Four images whose two views sit on the unit circle at angle `phi_k +- delta`, arranged
/// point-symmetrically so the global center is exactly 0 and the views are already unit length:
/// centers are `cos(delta) (cos phi_k, sin phi_k, 0)`, radii `r_s sin(delta)` (m = 2, d = 3).
fn circle_views(angles: [f64; 4], delta: f64) -> Vec<f64> {
    let mut p = vec![0.0; 2 * 4 * 3];
    for (v, sign) in [(0usize, 1.0), (1, -1.0)] {
        for (i, phi) in angles.iter().enumerate() {
            let theta = phi + sign * delta;
            p[(v * 4 + i) * 3] = theta.cos();
            p[(v * 4 + i) * 3 + 1] = theta.sin();
        }
    }
    p
}

fn packing(p: &[f64], alpha: f64, rs: f64, log: bool) -> clamp::readout::PackingReadout {
    let params = PackingParams {
        alpha,
        radius_scale: rs,
        log_energy: log,
    };
    Packing::new(tensor::<Cpu>(p, 2, 4, 3), &params).readout()
}

#[test]
fn spheres_far_apart_have_zero_energy() {
    use std::f64::consts::PI;
    let (phi, delta) = (0.7, 0.02);
    let p = circle_views([phi, -phi, PI - phi, PI + phi], delta);
    let got = packing(&p, 2.0, 1.0, true);
    assert_eq!(got.metrics.energy, 0.0);
    assert!(relative_error(got.metrics.loss, (1e-6f64).ln()) < 1e-6);
    assert_eq!(got.metrics.overlapping_pairs, 0);
    let radius = (delta.sin().powi(2) + 1e-12).sqrt();
    for r in &got.radii {
        assert!(
            relative_error(*r as f64, radius) < 1e-5,
            "radius {r} vs {radius}"
        );
    }
}

#[test]
fn hand_computed_energy_and_the_range_cap() {
    use std::f64::consts::PI;
    let (phi, delta, alpha) = (0.3, 0.1, 2.5);
    let p = circle_views([phi, -phi, PI - phi, PI + phi], delta);
    // Pair (0,1) and pair (2,3) are 2 cos(delta) sin(phi) apart; (0,2) are 2 cos(delta) cos(phi).
    let near = 2.0 * delta.cos() * phi.sin();
    let far = 2.0 * delta.cos() * phi.cos();

    // r_s = 4: radii 4 sin(0.1) = 0.399, so only the near pairs overlap.
    let s = 2.0 * 4.0 * delta.sin() + 1e-6;
    let want = 2.0 * (1.0 - near / s).powf(alpha);
    let got = packing(&p, alpha, 4.0, true);
    assert!(
        relative_error(got.metrics.energy, want) < 1e-4,
        "{} vs {want}",
        got.metrics.energy
    );
    assert!(relative_error(got.metrics.loss, (want + 1e-6).ln()) < 1e-4);
    assert_eq!(got.metrics.overlapping_pairs, 2);
    let virial = 2.0 * (1.0 - near / s).powf(alpha - 1.0) * near / s;
    assert!(relative_error(got.metrics.virial, virial) < 1e-4);

    // r_s = 10: r_i + r_j = 2.0 > 1.5, so the contact distance is capped at 1.5 and the pairs
    // (0,2), 1.90 apart, stay out. Without the cap they would overlap and add energy.
    let want = 2.0 * (1.0 - near / 1.5).powf(alpha);
    let got = packing(&p, alpha, 10.0, false);
    assert!(far > 1.5 && far < 2.0 * 10.0 * delta.sin());
    assert!(
        relative_error(got.metrics.energy, want) < 1e-4,
        "{} vs {want}",
        got.metrics.energy
    );
    assert!(
        relative_error(got.metrics.loss, want) < 1e-4,
        "plain energy variant"
    );
    assert_eq!(got.metrics.overlapping_pairs, 2);
    // Contacts ignore the cap: the pairs 1.90 apart touch (0.99 * 2.0 = 1.98), the opposite
    // spheres, 2 cos(delta) = 1.99 apart, do not.
    assert_eq!(got.contacts, vec![2, 2, 2, 2]);
}

#[test]
fn coincident_centers_contribute_nothing() {
    use std::f64::consts::PI;
    // Images 0 and 1 are identical (distance 1e-6 < 1e-3); 2 and 3 too, opposite them.
    let p = circle_views([0.4, 0.4, PI + 0.4, PI + 0.4], 0.2);
    let got = packing(&p, 2.0, 10.0, true);
    assert_eq!(
        got.metrics.energy, 0.0,
        "coincident pairs are excluded by the 1e-3 margin"
    );
    assert!(relative_error(got.metrics.loss, (1e-6f64).ln()) < 1e-6);
    assert_eq!(got.metrics.overlapping_pairs, 0);
    // ...but they still count as contacts, which have no margin (and no cap: the opposite
    // spheres, 1.96 apart, touch with 0.99 (r_i + r_j) = 3.93).
    assert_eq!(got.contacts, vec![3, 3, 3, 3]);

    // Control: separate the twins by 0.01 rad and they repel.
    let p = circle_views([0.4, 0.41, PI + 0.4, PI + 0.41], 0.2);
    let got = packing(&p, 2.0, 10.0, true);
    assert!(
        got.metrics.energy > 1.0,
        "twins 0.01 apart overlap almost fully: {}",
        got.metrics.energy
    );
    assert_eq!(got.metrics.overlapping_pairs, 2);
}

#[test]
fn alpha_and_radius_scale_are_runtime_values() {
    let (m, b, d) = (4, 32, 8);
    let p = clustered_embeddings(m, b, d, 0.4, 3);
    for (alpha, rs) in [(2.0, 3.0), (2.5, 3.0), (2.0, 5.0)] {
        let params = PackingParams {
            alpha,
            radius_scale: rs,
            log_energy: true,
        };
        let got = clamp_loss(tensor::<Cpu>(&p, m, b, d), &params).into_scalar() as f64;
        let want = reference(&p, m, b, d, alpha, rs, true).loss;
        assert!(
            relative_error(got, want) < 1e-4,
            "alpha {alpha} r_s {rs}: {got} vs {want}"
        );
    }
}

#[test]
fn params_validation_names_the_field() {
    let bad = PackingParams {
        alpha: 0.5,
        ..Default::default()
    };
    let error = bad.validate().unwrap_err();
    assert_eq!((error.key.as_str(), error.value.as_str()), ("alpha", "0.5"));
    assert_eq!(error.allowed, "1 to 10");
    let bad = PackingParams {
        radius_scale: f64::NAN,
        ..Default::default()
    };
    assert_eq!(bad.validate().unwrap_err().key, "radius_scale");
    assert!(PackingParams::default().validate().is_ok());
}
