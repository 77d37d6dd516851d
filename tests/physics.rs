//! Checks of the jamming simulator against exact identities and published jamming numbers
//! (O'Hern, Silbert, Liu & Nagel, PRE 68, 011306, 2003).

use clamp::physics::{
    Advance, Geometry, JamConfig, JammingProtocol, MinimizeStatus, Packing, PairSearch,
    find_jammed_packing, find_jamming, fit_power_law, log_grid, sweep_above_jamming,
};

mod common;
use common::max_abs;

#[test]
fn forces_are_the_negative_energy_gradient() {
    for (dim, phi) in [(2, 1.0), (3, 0.9)] {
        // 2 and 2.5 have their own code; 3 goes through the general powf branch.
        for alpha in [2.0, 2.5, 3.0] {
            let packing = Packing::random(&JamConfig::bidisperse(dim, 40, alpha, 7), phi).unwrap();
            assert!(
                packing.contacts().len() > 40,
                "configuration must overlap a lot"
            );
            let x0 = packing.positions().to_vec();
            let forces = packing.forces().to_vec();
            let h = 1e-6;
            let mut worst: f64 = 0.0;
            let mut probe = packing.clone();
            for k in 0..x0.len() {
                let mut energy_at = |shift: f64| {
                    let mut x = x0.clone();
                    x[k] += shift;
                    probe.set_positions(&x).unwrap();
                    probe.energy()
                };
                let gradient = (energy_at(h) - energy_at(-h)) / (2.0 * h);
                worst = worst.max((gradient + forces[k]).abs());
            }
            let scale = max_abs(forces.iter().cloned());
            assert!(
                worst / scale < 1e-6,
                "dim {dim} alpha {alpha}: |F + dE/dx| / max|F| = {:e}",
                worst / scale
            );
        }
    }
}

#[test]
fn sphere_forces_are_the_tangential_negative_gradient() {
    let mut cfg = JamConfig::bidisperse(2, 60, 2.5, 3);
    cfg.geometry = Geometry::UnitSphere;
    let packing = Packing::random(&cfg, 1.0).unwrap();
    let (x0, forces) = (packing.positions().to_vec(), packing.forces().to_vec());
    let mut probe = packing.clone();
    let h = 1e-6;
    for i in 0..60 {
        let x = &x0[3 * i..3 * i + 3];
        // A tangent direction at x: x cross the axis (0.8, 0.6, 0), normalized.
        let t = [-x[2] * 0.6, x[2] * 0.8, x[0] * 0.6 - x[1] * 0.8];
        let norm = t.iter().map(|a| a * a).sum::<f64>().sqrt();
        let mut energy_at = |s: f64| {
            let mut moved = x0.clone();
            (0..3).for_each(|k| moved[3 * i + k] += s * t[k] / norm);
            probe.set_positions(&moved).unwrap();
            probe.energy()
        };
        let slope = (energy_at(h) - energy_at(-h)) / (2.0 * h);
        let along: f64 = (0..3).map(|k| forces[3 * i + k] * t[k] / norm).sum();
        assert!(
            (slope + along).abs() < 1e-7,
            "particle {i}: slope {slope}, F.t {along}"
        );
        let radial: f64 = (0..3).map(|k| forces[3 * i + k] * x[k]).sum();
        assert!(radial.abs() < 1e-12, "force must be tangent to the sphere");
    }
}

#[test]
fn cell_list_matches_all_pairs() {
    // Boxes with exactly 3 cells per side (the smallest the cell list accepts) and larger ones.
    for (dim, n, phi, seed) in [
        (2, 12, 0.75, 1),
        (3, 48, 0.6, 2),
        (3, 60, 0.7, 3),
        (3, 2000, 0.7, 4),
        (2, 3000, 0.9, 5),
    ] {
        let packing = Packing::random(&JamConfig::bidisperse(dim, n, 2.0, seed), phi).unwrap();
        assert!(
            packing.uses_cell_list(),
            "dim {dim} n {n}: cell list not in use"
        );
        let len = packing.box_len().unwrap();
        let cells = (len / 1.4).floor();
        if n < 100 {
            assert_eq!(cells, 3.0, "dim {dim} n {n}: want the 3-cell limit");
        }
        let (e_cells, f_cells) = packing.energy_and_forces(PairSearch::Auto);
        let (e_all, f_all) = packing.energy_and_forces(PairSearch::AllPairs);
        assert!(e_all > 0.0);
        assert!(
            (e_cells - e_all).abs() <= 1e-12 * e_all,
            "energy {e_cells} vs {e_all}"
        );
        let diff = max_abs(f_cells.iter().zip(&f_all).map(|(a, b)| a - b));
        assert!(
            diff <= 1e-12 * max_abs(f_all.iter().cloned()),
            "forces differ by {diff:e}"
        );
        // Some contact must reach across the periodic boundary, so the wrap is exercised.
        let x = packing.positions();
        let wraps = packing
            .contacts()
            .iter()
            .any(|&(i, j)| (0..dim).any(|k| (x[i * dim + k] - x[j * dim + k]).abs() > 0.5 * len));
        assert!(wraps, "dim {dim} n {n}: no contact across the boundary");
    }
}

/// The squared distance of particles i and j by the minimum image in the periodic box, computed
/// here from the positions alone.
fn squared_distance(packing: &Packing, i: usize, j: usize) -> f64 {
    let (x, dim) = (packing.positions(), packing.dim());
    let box_len = packing.box_len().expect("a periodic box");
    (0..dim)
        .map(|k| {
            let mut d = x[i * dim + k] - x[j * dim + k];
            d -= box_len * (d / box_len).round();
            d * d
        })
        .sum()
}

/// Largest overlap 1 - d / sigma_ij over all pairs (minimum image).
fn worst_overlap(packing: &Packing) -> f64 {
    let (n, sigma) = (packing.n(), packing.diameters());
    let mut worst: f64 = 0.0;
    for i in 0..n {
        for j in i + 1..n {
            let d2 = squared_distance(packing, i, j);
            worst = worst.max(1.0 - d2.sqrt() / (0.5 * (sigma[i] + sigma[j])));
        }
    }
    worst
}

#[test]
fn fire_reaches_zero_energy_below_jamming() {
    let mut packing = Packing::random(&JamConfig::bidisperse(3, 256, 2.0, 11), 0.5).unwrap();
    let start = packing.energy_per_particle();
    assert!(start > 1e-3, "random start should overlap (E/N = {start})");
    let report = packing.minimize(100_000);
    assert_eq!(report.status, MinimizeStatus::ZeroEnergy);
    // "Zero" means E/N < 1e-16; with E = sum of overlap^2 / 2 no pair can then overlap by more
    // than sqrt(2 N 1e-16). Checked on the positions, counted here, not by the simulator.
    let worst = worst_overlap(&packing);
    let bound = (2.0 * 256.0 * 1e-16f64).sqrt();
    assert!(
        worst < bound,
        "largest relative overlap {worst:e}, bound {bound:e}"
    );
    // What overlap is left is at the 1e-8 level, so the pressure all but vanishes.
    assert!(packing.pressure() < 1e-7, "p = {}", packing.pressure());
}

/// Mean contact number of the non-rattlers, counted here from positions and diameters alone
/// (minimum image in the periodic box; rattlers, with fewer than d + 1 contacts, removed until
/// none is left): an independent count to hold the simulator's against.
fn non_rattler_contacts(packing: &Packing) -> f64 {
    let (n, dim, sigma) = (packing.n(), packing.dim(), packing.diameters());
    let mut neighbours = vec![Vec::new(); n];
    for i in 0..n {
        for j in i + 1..n {
            let d2 = squared_distance(packing, i, j);
            let touch = 0.5 * (sigma[i] + sigma[j]);
            if d2 < touch * touch {
                neighbours[i].push(j);
                neighbours[j].push(i);
            }
        }
    }
    let mut alive = vec![true; n];
    loop {
        let count = |i: usize, alive: &[bool]| neighbours[i].iter().filter(|&&j| alive[j]).count();
        let rattlers: Vec<usize> = (0..n)
            .filter(|&i| alive[i] && count(i, &alive) < dim + 1)
            .collect();
        if rattlers.is_empty() {
            let kept: Vec<usize> = (0..n).filter(|&i| alive[i]).collect();
            let total: usize = kept.iter().map(|&i| count(i, &alive)).sum();
            return total as f64 / kept.len() as f64;
        }
        for i in rattlers {
            alive[i] = false;
        }
    }
}

/// phi_J and Z at jamming for `seeds`, N particles, against the spread measured at this N:
/// `clamp jam --n 256 --bidisperse` over seeds 1-12 (docs/physics.md) gave phi_J 0.6418 with a
/// seed-to-seed standard deviation of 0.0040 in 3D, 0.8397 and 0.0027 in 2D (below the
/// infinite-N 0.648 and 0.842: a finite packing jams earlier). Each seed must fall within 3.5
/// deviations, their mean within 3 deviations of a mean of that many seeds.
fn check_jamming(dim: usize, n: usize, seeds: &[u64], phi_measured: f64, spread: f64) {
    let mut phis = Vec::new();
    for &seed in seeds {
        let (result, packing) =
            find_jammed_packing(&JamConfig::bidisperse(dim, n, 2.0, seed), &mut |_| {}).unwrap();
        let isostatic = 2.0 * dim as f64;
        let counted = non_rattler_contacts(&packing);
        assert!(
            (counted - result.contacts).abs() < 1e-9,
            "dim {dim} seed {seed}: Z counted here {counted}, reported {}",
            result.contacts
        );
        // Isostatic: a periodic jammed packing has d (N - 1) + 1 contacts at least, and at the
        // jamming point only a few more.
        let kept = (n as f64 * (1.0 - result.rattler_fraction)).round();
        println!(
            "dim {dim} seed {seed}: phi_J {}, Z = {counted}, {kept} non-rattlers",
            result.phi_j
        );
        assert!(
            (counted - isostatic).abs() <= 6.0 / kept,
            "dim {dim} seed {seed}: Z = {counted} vs {isostatic} ({kept} non-rattlers)"
        );
        assert!(
            (result.phi_j - phi_measured).abs() < 3.5 * spread,
            "dim {dim} seed {seed}: phi_J {} vs {phi_measured} +- {}",
            result.phi_j,
            3.5 * spread
        );
        phis.push(result.phi_j);
    }
    let mean = phis.iter().sum::<f64>() / phis.len() as f64;
    let allowed = 3.0 * spread / (seeds.len() as f64).sqrt();
    println!(
        "dim {dim} N {n}: phi_J {phis:?}, mean {mean:.5} (allowed {phi_measured} +- {allowed:.4})"
    );
    assert!(
        (mean - phi_measured).abs() < allowed,
        "dim {dim}: mean phi_J {mean} ({phis:?}) vs {phi_measured} +- {allowed}"
    );
}

/// The jamming point is where rigidity sets in: a little below it the packing relaxes to zero
/// energy, a little above it cannot.
fn check_rigidity_sets_in_at_phi_j(dim: usize, n: usize) {
    let (result, packing) =
        find_jammed_packing(&JamConfig::bidisperse(dim, n, 2.0, 1), &mut |_| {}).unwrap();
    let relaxed_at = |phi: f64| {
        let mut p = packing.clone();
        p.set_packing_fraction(phi).unwrap();
        p.minimize(1_000_000);
        p.energy_per_particle()
    };
    let below = relaxed_at(result.phi_j * (1.0 - 1e-3));
    let above = relaxed_at(result.phi_j * (1.0 + 1e-3));
    assert!(below < 1e-20, "dim {dim}: E/N {below:e} just below phi_J");
    // Harmonic: E/N ~ (phi - phi_J)^2, about 1e-7 at 1e-3 above.
    assert!(above > 1e-9, "dim {dim}: E/N {above:e} just above phi_J");
}

#[test]
fn jamming_2d_bidisperse() {
    check_jamming(2, 256, &[1, 2, 3, 4], 0.8397, 0.0027);
    check_rigidity_sets_in_at_phi_j(2, 256);
}

#[test]
fn jamming_3d_bidisperse() {
    check_jamming(3, 256, &[1, 2, 3, 4], 0.6418, 0.0040);
    check_rigidity_sets_in_at_phi_j(3, 256);
}

#[test]
fn jamming_on_the_sphere_is_isostatic() {
    let mut cfg = JamConfig::bidisperse(2, 128, 2.0, 1);
    cfg.geometry = Geometry::UnitSphere;
    let (result, packing) = find_jammed_packing(&cfg, &mut |_| {}).unwrap();
    assert!(
        (result.contacts - 4.0).abs() < 0.2,
        "Z = {}",
        result.contacts
    );
    assert!(
        result.phi_j > 0.75 && result.phi_j < 0.9,
        "phi_J = {}",
        result.phi_j
    );
    let off_sphere = max_abs(
        packing
            .positions()
            .chunks(3)
            .map(|p| p.iter().map(|a| a * a).sum::<f64>() - 1.0),
    );
    assert!(off_sphere < 1e-12);
}

fn check_exponents(dim: usize, n: usize, alpha: f64) {
    let (result, packing) =
        find_jammed_packing(&JamConfig::bidisperse(dim, n, alpha, 1), &mut |_| {}).unwrap();
    let deltas = log_grid(1e-4, 1e-1, 7);
    let sweep = sweep_above_jamming(&packing, result.phi_j, &deltas, 200_000, &mut |_| {}).unwrap();
    assert_eq!(sweep.rows.len(), 7);
    let (energy, pressure) = (sweep.energy.unwrap(), sweep.pressure.unwrap());
    assert_eq!(energy.points, 7);
    assert!(
        (energy.exponent - alpha).abs() < 0.15,
        "E exponent {energy:?}"
    );
    assert!(
        (pressure.exponent - (alpha - 1.0)).abs() < 0.15,
        "p exponent {pressure:?}"
    );
    // Compression adds contacts: Z rises above isostatic.
    assert!(sweep.rows.last().unwrap().contacts > 2.0 * dim as f64 + 0.5);
}

#[test]
fn exponents_above_jamming_harmonic() {
    check_exponents(3, 256, 2.0);
}

#[test]
fn exponents_above_jamming_hertzian() {
    check_exponents(2, 256, 2.5);
}

#[test]
fn pressure_is_minus_energy_derivative_in_volume() {
    for (dim, phi) in [(2, 0.9), (3, 0.7)] {
        for alpha in [2.0, 2.5] {
            let mut packing =
                Packing::random(&JamConfig::bidisperse(dim, 64, alpha, 5), phi).unwrap();
            packing.minimize(2_000);
            let p = packing.pressure();
            assert!(p > 0.0);
            let h = 1e-5;
            let at = |factor: f64| {
                let mut probe = packing.clone();
                probe.set_packing_fraction(phi * factor).unwrap();
                (probe.energy(), probe.volume())
            };
            let ((e_plus, v_plus), (e_minus, v_minus)) = (at(1.0 - h), at(1.0 + h));
            let minus_de_dv = -(e_plus - e_minus) / (v_plus - v_minus);
            assert!(
                ((minus_de_dv - p) / p).abs() < 1e-6,
                "dim {dim} alpha {alpha}: -dE/dV {minus_de_dv} vs p {p}"
            );
        }
    }
}

#[test]
fn same_seed_same_result_and_seeds_differ() {
    let run = |seed| find_jamming(&JamConfig::bidisperse(2, 64, 2.0, seed), &mut |_| {}).unwrap();
    let (a, b, c) = (run(9), run(9), run(10));
    assert_eq!(a.phi_j, b.phi_j);
    assert_eq!(a.contacts, b.contacts);
    assert_eq!(a.fire_iterations, b.fire_iterations);
    assert_ne!(a.phi_j, c.phi_j);
}

#[test]
fn bad_input_is_an_error_naming_the_field() {
    type Spoil = fn(&mut JamConfig);
    let cases: [(&str, Spoil); 7] = [
        ("n:", |c| c.n = 1),
        ("n:", |c| c.n = 8),
        ("dim:", |c| c.dim = 4),
        ("dim:", |c| c.geometry = Geometry::UnitSphere),
        ("alpha:", |c| c.alpha = 1.0),
        ("phi_start:", |c| c.phi_start = 1.5),
        ("phi_tolerance:", |c| c.phi_tolerance = f64::NAN),
    ];
    for (field, spoil) in cases {
        let mut cfg = JamConfig::bidisperse(3, 64, 2.0, 0);
        spoil(&mut cfg);
        let err = cfg.validate().unwrap_err();
        assert!(err.starts_with(field), "{err}");
        assert!(find_jamming(&cfg, &mut |_| {}).is_err());
    }
    let mut packing = Packing::random(&JamConfig::bidisperse(3, 64, 2.0, 0), 0.5).unwrap();
    assert!(
        packing
            .set_packing_fraction(-0.1)
            .unwrap_err()
            .starts_with("phi:")
    );
    assert!(
        packing
            .set_positions(&[0.0; 5])
            .unwrap_err()
            .starts_with("positions:")
    );
}

#[test]
fn packing_steps_frame_by_frame() {
    let mut packing = Packing::random(&JamConfig::bidisperse(3, 100, 2.0, 2), 0.7).unwrap();
    let ratio = packing.diameters()[99] / packing.diameters()[0];
    assert!((ratio - 1.4).abs() < 1e-12);
    assert!((packing.packing_fraction() - 0.7).abs() < 1e-12);
    let start = packing.energy();
    for _ in 0..50 {
        packing.fire_step();
    }
    assert!(
        packing.energy() < 0.5 * start,
        "FIRE should relax: {start} -> {}",
        packing.energy()
    );
    let contacts = packing.contacts();
    assert!(contacts.iter().all(|&(i, j)| i < j && j < 100));
    let stats = packing.contact_stats();
    assert!((stats.mean_contacts_all - 2.0 * contacts.len() as f64 / 100.0).abs() < 1e-12);
}

#[test]
fn power_law_fit_recovers_exponent() {
    let xs = log_grid(1e-4, 1e-1, 5);
    let ys: Vec<f64> = xs.iter().map(|x| 3.0 * x.powf(1.7)).collect();
    let fit = fit_power_law(&xs, &ys).unwrap();
    assert!((fit.exponent - 1.7).abs() < 1e-12 && (fit.prefactor - 3.0).abs() < 1e-9);
    assert!((xs[0] - 1e-4).abs() < 1e-18 && (xs[4] - 1e-1).abs() < 1e-15);
    assert!(fit_power_law(&[1.0], &[2.0]).is_none());
}

/// The viewer's physics mode drives the same protocol as `clamp jam`, a slice of FIRE iterations
/// per frame: FIRE's state carries over between slices, so the slices add up to the very same
/// minimizations and the same decisions.
#[test]
fn the_protocol_in_slices_finds_the_same_jamming_point() {
    let cfg = JamConfig::bidisperse(2, 64, 2.0, 3);
    let mut seen = Vec::new();
    let whole = find_jamming(&cfg, &mut |p| seen.push((p.phi, p.jammed))).unwrap();
    let mut protocol = JammingProtocol::new(&cfg).unwrap();
    let mut sliced = Vec::new();
    let mut slices = 0;
    loop {
        slices += 1;
        match protocol.advance(150).unwrap() {
            Advance::Minimizing => {}
            Advance::Minimized(p) => sliced.push((p.phi, p.jammed)),
            Advance::Jammed(p) => {
                sliced.push((p.phi, p.jammed));
                break;
            }
        }
    }
    let result = protocol.result().unwrap();
    assert_eq!(sliced, seen, "the same compressions and decompressions");
    assert_eq!(result.phi_j, whole.phi_j);
    assert_eq!(result.contacts, whole.contacts);
    assert_eq!(result.fire_iterations, whole.fire_iterations);
    assert_eq!(result.minimizations, whole.minimizations);
    assert!(
        slices > whole.minimizations,
        "minimizations took several slices"
    );
    // Once jammed, advancing changes nothing.
    assert!(matches!(
        protocol.advance(150).unwrap(),
        Advance::Minimizing
    ));
    assert_eq!(protocol.result().unwrap().phi_j, whole.phi_j);
}
