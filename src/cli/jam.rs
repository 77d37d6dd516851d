//! `clamp jam`: the jamming point of soft repulsive spheres (O'Hern et al. 2003) with the same
//! pair energy as the CLAMP loss, and with `--sweep` the power laws above it.

use serde_json::{Value, json};

use crate::physics::{
    Geometry, JamConfig, PowerLawFit, find_jammed_packing, log_grid, sweep_above_jamming,
};
use crate::progress::Progress;

/// `clamp jam`.
#[derive(clap::Args, Debug, Clone)]
pub struct JamArgs {
    /// Dimension: 2 or 3 in a periodic box, 2 on the unit sphere (--sphere).
    #[arg(long, value_name = "2|3")]
    pub dim: usize,
    /// Number of particles.
    #[arg(long, value_name = "N")]
    pub n: usize,
    /// Half the particles 1.4 times the others' diameter (the usual glass-former, which does
    /// not crystallise).
    #[arg(long)]
    pub bidisperse: bool,
    /// Exponent alpha of the pair energy (1 - d/(r_i + r_j))^alpha [default: 2].
    #[arg(long, value_name = "A")]
    pub alpha: Option<f64>,
    /// Seed of the initial positions [default: 0].
    #[arg(long, value_name = "S")]
    pub seed: Option<u64>,
    /// Particles on the unit sphere S^2, as CLAMP's embeddings are, instead of a periodic box.
    #[arg(long)]
    pub sphere: bool,
    /// Also compress above jamming and fit energy, pressure and contacts against phi - phi_J.
    #[arg(long)]
    pub sweep: bool,
    /// One JSON object on stdout instead of the table.
    #[arg(long)]
    pub json: bool,
}

pub fn jam(args: JamArgs) -> Result<(), String> {
    let mut config = JamConfig::new(args.dim, args.n);
    config.bidisperse = args.bidisperse;
    if args.sphere {
        config.geometry = Geometry::UnitSphere;
    }
    if let Some(alpha) = args.alpha {
        config.alpha = alpha;
    }
    if let Some(seed) = args.seed {
        config.seed = seed;
    }
    config.validate().map_err(|e| format!("--{e}"))?;

    // The bisection halves the step from phi_step to phi_tolerance: that many halvings is 100%.
    let halvings = (config.phi_step / config.phi_tolerance)
        .log2()
        .ceil()
        .max(1.0) as usize;
    let mut progress = Progress::new("jam", halvings);
    let first_step = config.phi_step;
    let (result, packing) = find_jammed_packing(&config, &mut |p| {
        progress.set_message(&format!(
            "phi {:.5}  step {:.1e}  E/N {:.1e}  {}",
            p.phi,
            p.phi_step,
            p.energy_per_particle,
            if p.jammed { "jammed" } else { "loose" }
        ));
        progress.set((first_step / p.phi_step).log2().round().max(0.0) as usize);
    })?;
    progress.finish();

    let mut report = json!({
        "phi_j": result.phi_j,
        "contacts": result.contacts,
        "isostatic_contacts": result.isostatic_contacts,
        "rattler_fraction": result.rattler_fraction,
        "n": result.n,
        "dim": result.dim,
        "alpha": config.alpha,
        "bidisperse": config.bidisperse,
        "geometry": if config.geometry == Geometry::UnitSphere { "sphere" } else { "periodic-box" },
        "seed": config.seed,
        "energy_per_particle": result.energy_per_particle,
        "pressure": result.pressure,
        "phi_resolution": result.phi_resolution,
        "seconds": result.seconds,
    });
    if args.sweep {
        let deltas = log_grid(1e-4, 1e-1, 7);
        let mut progress = Progress::new("sweep", deltas.len());
        let mut done = 0;
        let sweep = sweep_above_jamming(
            &packing,
            result.phi_j,
            &deltas,
            config.max_fire_iterations,
            &mut |row| {
                done += 1;
                progress.set_message(&format!("delta {:.1e}", row.delta));
                progress.set(done);
            },
        )?;
        progress.finish();
        let fit = |f: Option<PowerLawFit>| f.map_or(Value::Null, |f| json!(f.exponent));
        report["sweep"] = sweep
            .rows
            .iter()
            .map(|r| {
                json!({"delta": r.delta, "phi": r.phi, "energy_per_particle": r.energy_per_particle,
                       "pressure": r.pressure, "contacts": r.contacts, "rattler_fraction": r.rattler_fraction})
            })
            .collect();
        report["energy_exponent"] = fit(sweep.energy);
        report["pressure_exponent"] = fit(sweep.pressure);
        report["contacts_exponent"] = fit(sweep.contacts);
    }

    if args.json {
        println!("{report}");
    } else {
        println!(
            "phi_J = {:.5} (+- {:.0e})  Z = {:.3} (isostatic {:.0})  rattlers {:.1}%  N = {}  {:.1} s",
            result.phi_j,
            result.phi_resolution,
            result.contacts,
            result.isostatic_contacts,
            100.0 * result.rattler_fraction,
            result.n,
            result.seconds
        );
        if let Some(rows) = report["sweep"].as_array() {
            println!(
                "{:>10} {:>9} {:>12} {:>12} {:>7}",
                "delta", "phi", "E/N", "p", "Z"
            );
            for r in rows {
                println!(
                    "{:>10.1e} {:>9.5} {:>12.3e} {:>12.3e} {:>7.3}",
                    r["delta"].as_f64().unwrap_or(f64::NAN),
                    r["phi"].as_f64().unwrap_or(f64::NAN),
                    r["energy_per_particle"].as_f64().unwrap_or(f64::NAN),
                    r["pressure"].as_f64().unwrap_or(f64::NAN),
                    r["contacts"].as_f64().unwrap_or(f64::NAN),
                );
            }
            let exponent = |key: &str| {
                report[key]
                    .as_f64()
                    .map_or("-".into(), |x| format!("{x:.3}"))
            };
            println!(
                "fitted exponents: E ~ delta^{} (alpha = {}), p ~ delta^{} (alpha - 1 = {}), Z - Z_J ~ delta^{} (1/2)",
                exponent("energy_exponent"),
                config.alpha,
                exponent("pressure_exponent"),
                config.alpha - 1.0,
                exponent("contacts_exponent")
            );
        }
    }
    Ok(())
}
