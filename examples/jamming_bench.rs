//! Jamming benchmark: phi_J and Z over seeds, exponents above jamming, and the cost of one force
//! evaluation against N. Run with `cargo run --release --example jamming_bench`.
//! Targets (O'Hern et al. 2003): phi_J = 0.648 (3D) and 0.842 (2D) for the 50:50 1:1.4 mixture,
//! Z = 2d at jamming, E ~ delta^alpha, p ~ delta^(alpha-1), Z - Z_J ~ delta^(1/2).

use std::time::Instant;

use clamp::physics::{
    JamConfig, JamResult, Packing, find_jammed_packing, log_grid, sweep_above_jamming,
};

const N: usize = 1024;
const SEEDS: [u64; 5] = [1, 2, 3, 4, 5];

fn mean_std(xs: &[f64]) -> (f64, f64) {
    let mean = xs.iter().sum::<f64>() / xs.len() as f64;
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (xs.len() - 1).max(1) as f64;
    (mean, var.sqrt())
}

fn jam(cfg: &JamConfig) -> (JamResult, Packing) {
    find_jammed_packing(cfg, &mut |_| {}).unwrap_or_else(|e| panic!("jamming failed: {e}"))
}

fn main() {
    let mut jammed_seed_one = Vec::new();
    println!("(a) Jamming point, N = {N}, 50:50 bidisperse 1:1.4, harmonic (alpha = 2)");
    println!("dim seed  phi_J     Z_nr    2d  rattlers  E/N       minims  FIRE iters  seconds");
    for (dim, target) in [(3, 0.648), (2, 0.842)] {
        let (mut phis, mut zs) = (Vec::new(), Vec::new());
        for seed in SEEDS {
            let (r, packing) = jam(&JamConfig::bidisperse(dim, N, 2.0, seed));
            println!(
                "{dim}   {seed:<4}  {:.5}  {:.3}  {:>2}  {:.4}    {:.2e}  {:>6}  {:>10}  {:>7.1}",
                r.phi_j,
                r.contacts,
                2 * dim,
                r.rattler_fraction,
                r.energy_per_particle,
                r.minimizations,
                r.fire_iterations,
                r.seconds
            );
            phis.push(r.phi_j);
            zs.push(r.contacts);
            if seed == SEEDS[0] {
                jammed_seed_one.push((dim, r, packing));
            }
        }
        let ((phi, phi_sd), (z, z_sd)) = (mean_std(&phis), mean_std(&zs));
        println!(
            "dim {dim}: phi_J = {phi:.4} +- {phi_sd:.4} (target {target} +- 0.006), \
             Z_nr = {z:.3} +- {z_sd:.3} vs 2d = {}",
            2 * dim
        );
    }

    println!();
    println!("(b) Above jamming, N = {N}, seed 1, delta = phi - phi_J in 7 log steps 1e-4..1e-1");
    println!("alpha dim  phi_J     E exp (want)   p exp (want)   Z-Z_J exp (want 0.5)  seconds");
    let deltas = log_grid(1e-4, 1e-1, 7);
    for alpha in [2.0, 2.5] {
        for dim in [3, 2] {
            let clock = Instant::now();
            let (result, packing) = if alpha == 2.0 {
                let (_, r, p) = jammed_seed_one.iter().find(|(d, ..)| *d == dim).unwrap();
                (r.clone(), p.clone())
            } else {
                jam(&JamConfig::bidisperse(dim, N, alpha, 1))
            };
            let sweep = sweep_above_jamming(&packing, result.phi_j, &deltas, 200_000, &mut |_| {})
                .unwrap_or_else(|e| panic!("sweep failed: {e}"));
            let exponent = |fit: Option<clamp::physics::PowerLawFit>| {
                fit.map_or("   n/a".to_string(), |f| format!("{:6.3}", f.exponent))
            };
            let seconds =
                clock.elapsed().as_secs_f64() + if alpha == 2.0 { result.seconds } else { 0.0 };
            println!(
                "{alpha:<5} {dim}    {:.5}   {} ({alpha:.1})   {} ({:.1})   {}                {seconds:>7.1}",
                result.phi_j,
                exponent(sweep.energy),
                exponent(sweep.pressure),
                alpha - 1.0,
                exponent(sweep.contacts),
            );
        }
    }

    println!();
    println!("(c) One force evaluation, 3D bidisperse, random centers at phi = 0.64 (min of reps)");
    println!("N        box side  cells/side  ms/eval    ns/particle");
    for n in [1_000, 10_000, 100_000] {
        let mut packing = Packing::random(&JamConfig::bidisperse(3, n, 2.0, 1), 0.64).unwrap();
        let reps = (3_000_000 / n).max(5);
        let mut best = f64::INFINITY;
        for _ in 0..reps {
            let clock = Instant::now();
            packing.evaluate_forces();
            best = best.min(clock.elapsed().as_secs_f64());
        }
        let side = packing.box_len().unwrap();
        println!(
            "{n:<8} {side:>8.2}  {:>10}  {:>8.3}   {:>8.1}",
            (side / 1.4).floor(),
            best * 1e3,
            best * 1e9 / n as f64
        );
    }
}
