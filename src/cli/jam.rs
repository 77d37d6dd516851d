//! `clamp jam`: the jamming point of soft repulsive spheres (O'Hern et al. 2003) with the same
//! pair energy as the CLAMP loss, and with `--sweep` the power laws above it.

use serde_json::{Value, json};

use super::args::{Args, FlagSpec};
use super::progress::Progress;
use crate::physics::{
    Geometry, JamConfig, PowerLawFit, find_jammed_packing, log_grid, sweep_above_jamming,
};

pub fn jam(words: &[String]) -> Result<(), String> {
    let spec = FlagSpec {
        shared_options: &[],
        options: &["dim", "n", "alpha", "seed"],
        switches: &["bidisperse", "json", "sweep", "sphere"],
    };
    let args = Args::parse(words, &spec)?;
    let dim: usize = args.get("dim")?.ok_or("--dim 2|3 is required")?;
    let n: usize = args.get("n")?.ok_or("--n N is required")?;
    let mut config = JamConfig::new(dim, n);
    config.bidisperse = args.switch("bidisperse");
    if args.switch("sphere") {
        config.geometry = Geometry::UnitSphere;
    }
    if let Some(alpha) = args.get("alpha")? {
        config.alpha = alpha;
    }
    if let Some(seed) = args.get("seed")? {
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
    if args.switch("sweep") {
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

    if args.switch("json") {
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
