//! The jamming protocol of O'Hern, Silbert, Liu & Nagel (PRE 68, 011306, 2003) and the read-out
//! above jamming (`E ~ delta^alpha`, `p ~ delta^(alpha-1)`, `delta = phi - phi_J`).

use web_time::Instant;

use crate::physics::{BIDISPERSE_RATIO, Geometry, MinimizeStatus, Packing};

/// Everything that defines one jamming run; [`JamConfig::new`] gives sensible defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct JamConfig {
    pub geometry: Geometry,
    /// 2 or 3 in a box; 2 on the sphere.
    pub dim: usize,
    /// Number of particles (at least 2; a box also needs room for twice the largest diameter).
    pub n: usize,
    /// 50:50 mixture of diameters 1 and 1.4 instead of all 1.
    pub bidisperse: bool,
    /// Pair-potential exponent (> 1): 2 harmonic, 2.5 Hertzian.
    pub alpha: f64,
    pub seed: u64,
    /// Packing fraction of the random initial state.
    pub phi_start: f64,
    /// First compression/decompression step; halved at each crossing of the jamming boundary.
    pub phi_step: f64,
    /// Stop once the step is below this (resolution of `phi_J`).
    pub phi_tolerance: f64,
    /// Energy per particle below which a state counts as unjammed ("zero"; O'Hern: 1e-16).
    pub energy_zero: f64,
    /// RMS force per particle, relative to the mean contact force, at which a jammed state
    /// counts as minimized.
    pub force_tolerance: f64,
    /// FIRE iterations allowed per minimization.
    pub max_fire_iterations: usize,
    /// Compress/decompress steps allowed in all.
    pub max_minimizations: usize,
    /// FIRE's initial time step in units of `sigma_min sqrt(m/eps)`; `None` picks
    /// [`JamConfig::default_dt_factor`] for `alpha`.
    pub dt_factor: Option<f64>,
}

impl JamConfig {
    /// Defaults for `n` monodisperse harmonic spheres in a periodic box of dimension `dim`.
    pub fn new(dim: usize, n: usize) -> Self {
        Self {
            geometry: Geometry::PeriodicBox,
            dim,
            n,
            bidisperse: false,
            alpha: 2.0,
            seed: 0,
            phi_start: if dim == 3 { 0.60 } else { 0.80 },
            phi_step: 1e-2,
            phi_tolerance: 1e-5,
            energy_zero: 1e-16,
            force_tolerance: 1e-6,
            max_fire_iterations: 200_000,
            max_minimizations: 500,
            dt_factor: None,
        }
    }

    /// The standard glass-forming system: a 50:50 mixture of diameters 1 and 1.4 (no
    /// crystallisation), with the given exponent and seed.
    pub fn bidisperse(dim: usize, n: usize, alpha: f64, seed: u64) -> Self {
        Self {
            bidisperse: true,
            alpha,
            seed,
            ..Self::new(dim, n)
        }
    }

    /// FIRE time step for `alpha` (`dt_max` = 10x this): 0.05 for harmonic springs, larger for
    /// softer contacts. Measured here: for alpha = 2, 0.05 jams 10-30x faster than 0.1, whose
    /// `dt_max` = 1 exceeds the stability limit `2/omega_max`; for alpha = 2.5, whose contacts
    /// soften as `overlap^(1/2)` near jamming, 0.2 is about 5x faster than 0.05.
    pub fn default_dt_factor(alpha: f64) -> f64 {
        (0.05 * 16f64.powf(alpha - 2.0)).clamp(0.005, 0.3)
    }

    /// The FIRE time-step factor in use (explicit or the default for `alpha`).
    pub fn effective_dt_factor(&self) -> f64 {
        self.dt_factor
            .unwrap_or_else(|| Self::default_dt_factor(self.alpha))
    }

    /// Checks every field; the error names the field at fault.
    pub fn validate(&self) -> Result<(), String> {
        let fail =
            |field: &str, rule: &str, got: String| Err(format!("{field}: {rule}, got {got}"));
        match (self.geometry, self.dim) {
            (Geometry::PeriodicBox, 2 | 3) | (Geometry::UnitSphere, 2) => {}
            (_, d) => return fail("dim", "must be 2 or 3 in a box, 2 on S^2", d.to_string()),
        }
        if self.n < 2 {
            return fail("n", "need at least 2 particles", self.n.to_string());
        }
        if !(self.alpha.is_finite() && self.alpha > 1.0) {
            return fail("alpha", "must be finite and > 1", self.alpha.to_string());
        }
        if !(self.phi_start > 0.0 && self.phi_start < 1.0) {
            return fail(
                "phi_start",
                "must lie in (0, 1)",
                self.phi_start.to_string(),
            );
        }
        let dt = self.dt_factor.unwrap_or(1.0);
        for (field, x) in [
            ("phi_step", self.phi_step),
            ("phi_tolerance", self.phi_tolerance),
            ("energy_zero", self.energy_zero),
            ("force_tolerance", self.force_tolerance),
            ("dt_factor", dt),
            ("max_fire_iterations", self.max_fire_iterations as f64),
            ("max_minimizations", self.max_minimizations as f64),
        ] {
            if !(x.is_finite() && x > 0.0) {
                return fail(field, "must be positive and finite", x.to_string());
            }
        }
        // Room check at phi = 1: the box side must exceed twice the largest diameter (minimum
        // image), and on S^2 the largest chordal diameter must stay below 2.
        let (large, n_large) = match self.bidisperse {
            true => (BIDISPERSE_RATIO, self.n - self.n / 2),
            false => (1.0, 0),
        };
        let sum_powers = |p: i32| (self.n - n_large) as f64 + n_large as f64 * large.powi(p);
        use std::f64::consts::PI;
        let fits = match (self.geometry, self.dim) {
            (Geometry::UnitSphere, _) => (16.0 / sum_powers(2)).sqrt() * large < 2.0,
            (_, 2) => (PI / 4.0 * sum_powers(2)).sqrt() > 2.0 * large,
            _ => (PI / 6.0 * sum_powers(3)).cbrt() > 2.0 * large,
        };
        match fits {
            true => Ok(()),
            false => fail(
                "n",
                "too few particles for this geometry",
                self.n.to_string(),
            ),
        }
    }
}

/// Reported after each minimization of the protocol.
#[derive(Clone, Copy, Debug)]
pub struct JamProgress {
    pub minimization: usize,
    pub phi: f64,
    pub phi_step: f64,
    pub energy_per_particle: f64,
    pub pressure: f64,
    pub jammed: bool,
    /// Mean contact number of the non-rattlers at the minimized state.
    pub contacts: f64,
    pub fire_iterations: usize,
}

/// The jammed state found by [`find_jamming`].
#[derive(Clone, Debug, PartialEq)]
pub struct JamResult {
    /// Packing fraction at jamming: that of the final jammed state, with unjammed states seen
    /// within a few `phi_resolution` below it.
    pub phi_j: f64,
    /// Mean contact number of the non-rattlers at jamming.
    pub contacts: f64,
    /// The isostatic value `2 dim` that `contacts` approaches for large N.
    pub isostatic_contacts: f64,
    pub rattler_fraction: f64,
    pub n: usize,
    pub dim: usize,
    pub seconds: f64,
    pub energy_per_particle: f64,
    pub pressure: f64,
    /// Final compression step: `phi_j` is known to within about this.
    pub phi_resolution: f64,
    pub minimizations: usize,
    pub fire_iterations: usize,
}

/// One state above jamming.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SweepRow {
    /// `phi - phi_J`.
    pub delta: f64,
    pub phi: f64,
    pub energy_per_particle: f64,
    pub pressure: f64,
    /// Mean contact number of the non-rattlers.
    pub contacts: f64,
    pub rattler_fraction: f64,
    pub fire_iterations: usize,
}

/// `y = prefactor * x^exponent`, fitted by least squares in log-log.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PowerLawFit {
    pub exponent: f64,
    pub prefactor: f64,
    /// Points used (those with `x > 0`, `y > 0`).
    pub points: usize,
}

/// A sweep above jamming and its fitted exponents (`energy` ~ alpha, `pressure` ~ alpha - 1,
/// `contacts` is the fit of `Z - Z_J` ~ 1/2 over rows where it is positive).
#[derive(Clone, Debug, PartialEq)]
pub struct SweepResult {
    pub rows: Vec<SweepRow>,
    pub energy: Option<PowerLawFit>,
    pub pressure: Option<PowerLawFit>,
    pub contacts: Option<PowerLawFit>,
}

/// Finds the jamming point of `cfg` (O'Hern et al. 2003): random centers at `phi_start`, then
/// FIRE-minimize, compress if the energy per particle is "zero" (below `energy_zero`) and
/// decompress if not (force balance or the iteration cap reached at non-zero energy), halving
/// the step at each change of direction, until the step is below `phi_tolerance` on a jammed
/// state. `progress` sees every minimization. The read-out is taken at that jammed state.
pub fn find_jamming(
    cfg: &JamConfig,
    progress: &mut dyn FnMut(JamProgress),
) -> Result<JamResult, String> {
    find_jammed_packing(cfg, progress).map(|(result, _)| result)
}

/// [`find_jamming`], also returning the jammed packing (the start of [`sweep_above_jamming`]).
pub fn find_jammed_packing(
    cfg: &JamConfig,
    progress: &mut dyn FnMut(JamProgress),
) -> Result<(JamResult, Packing), String> {
    let mut protocol = JammingProtocol::new(cfg)?;
    loop {
        match protocol.advance(cfg.max_fire_iterations)? {
            Advance::Minimizing => {}
            Advance::Minimized(step) => progress(step),
            Advance::Jammed(step) => {
                progress(step);
                break;
            }
        }
    }
    protocol.into_jammed()
}

/// What one [`JammingProtocol::advance`] did.
#[derive(Clone, Copy, Debug)]
pub enum Advance {
    /// The minimization in progress needs more iterations.
    Minimizing,
    /// A minimization finished and the packing was compressed or decompressed for the next.
    Minimized(JamProgress),
    /// A minimization finished jammed with the step below the tolerance: the result is in.
    Jammed(JamProgress),
}

/// The O'Hern protocol as a state machine, so that `clamp jam` can run it to the end and the
/// viewer's physics mode a slice per frame, with the same decisions: each [`advance`] runs at
/// most `budget` FIRE iterations of the minimization in progress (FIRE's state carries over
/// from one slice to the next, so the slices add up to the same minimization); when it ends,
/// the state is jammed if its energy per particle is not "zero", the packing is compressed if
/// unjammed and decompressed if jammed, and the step halves at each change of direction.
///
/// [`advance`]: JammingProtocol::advance
pub struct JammingProtocol {
    cfg: JamConfig,
    packing: Packing,
    phi: f64,
    step: f64,
    compressing: Option<bool>,
    minimizations: usize,
    iterations_in_minimization: usize,
    fire_iterations: usize,
    result: Option<JamResult>,
    clock: Instant,
}

impl JammingProtocol {
    /// Random centers at `cfg.phi_start`.
    pub fn new(cfg: &JamConfig) -> Result<Self, String> {
        let packing = Packing::random(cfg, cfg.phi_start)?;
        Ok(Self {
            cfg: cfg.clone(),
            packing,
            phi: cfg.phi_start,
            step: cfg.phi_step,
            compressing: None,
            minimizations: 0,
            iterations_in_minimization: 0,
            fire_iterations: 0,
            result: None,
            clock: Instant::now(),
        })
    }

    pub fn config(&self) -> &JamConfig {
        &self.cfg
    }

    pub fn packing(&self) -> &Packing {
        &self.packing
    }

    /// The packing to relax by hand (the viewer, while it is not compressing).
    pub fn packing_mut(&mut self) -> &mut Packing {
        &mut self.packing
    }

    pub fn phi(&self) -> f64 {
        self.phi
    }

    /// The compression step in use.
    pub fn step(&self) -> f64 {
        self.step
    }

    /// `Some(true)` while compressing, `Some(false)` while decompressing.
    pub fn direction(&self) -> Option<bool> {
        self.compressing
    }

    /// The jamming point, once found.
    pub fn result(&self) -> Option<&JamResult> {
        self.result.as_ref()
    }

    /// Starts the protocol over from the present packing and phi (first step, no direction).
    pub fn restart(&mut self) {
        self.step = self.cfg.phi_step;
        self.compressing = None;
        self.minimizations = 0;
        self.iterations_in_minimization = 0;
        self.fire_iterations = 0;
        self.result = None;
        self.clock = Instant::now();
    }

    /// Rescales the packing to `phi` (affinely); the minimization starts over.
    pub fn set_packing_fraction(&mut self, phi: f64) -> Result<(), String> {
        self.packing.set_packing_fraction(phi)?;
        self.phi = phi;
        self.iterations_in_minimization = 0;
        Ok(())
    }

    /// The same positions and packing fraction with another exponent.
    pub fn set_alpha(&mut self, alpha: f64) -> Result<(), String> {
        let mut cfg = self.cfg.clone();
        cfg.alpha = alpha;
        cfg.validate()?;
        let mut packing = Packing::random(&cfg, self.phi)?;
        packing.set_positions(self.packing.positions())?;
        self.cfg = cfg;
        self.packing = packing;
        self.iterations_in_minimization = 0;
        Ok(())
    }

    /// Runs at most `budget` FIRE iterations and, if the minimization ends, the protocol's
    /// move. Once jammed it runs nothing and answers `Minimizing`: [`Self::result`] holds the
    /// jamming point.
    pub fn advance(&mut self, budget: usize) -> Result<Advance, String> {
        let cfg = &self.cfg;
        if self.result.is_some() {
            return Ok(Advance::Minimizing);
        }
        let left = cfg.max_fire_iterations - self.iterations_in_minimization;
        let report = self.packing.minimize(budget.clamp(1, left.max(1)));
        self.iterations_in_minimization += report.iterations;
        self.fire_iterations += report.iterations;
        if report.status == MinimizeStatus::MaxIterations
            && self.iterations_in_minimization < cfg.max_fire_iterations
        {
            return Ok(Advance::Minimizing);
        }
        self.minimizations += 1;
        let jammed = report.status != MinimizeStatus::ZeroEnergy
            && self.packing.energy_per_particle() > cfg.energy_zero;
        let stats = self.packing.contact_stats();
        let progress = JamProgress {
            minimization: self.minimizations,
            phi: self.phi,
            phi_step: self.step,
            energy_per_particle: self.packing.energy_per_particle(),
            pressure: self.packing.pressure(),
            jammed,
            contacts: stats.mean_contacts,
            fire_iterations: std::mem::take(&mut self.iterations_in_minimization),
        };
        if jammed && self.step < cfg.phi_tolerance {
            self.result = Some(JamResult {
                phi_j: self.phi,
                contacts: stats.mean_contacts,
                isostatic_contacts: 2.0 * cfg.dim as f64,
                rattler_fraction: stats.rattler_fraction,
                n: cfg.n,
                dim: cfg.dim,
                seconds: self.clock.elapsed().as_secs_f64(),
                energy_per_particle: progress.energy_per_particle,
                pressure: progress.pressure,
                phi_resolution: self.step,
                minimizations: self.minimizations,
                fire_iterations: self.fire_iterations,
            });
            return Ok(Advance::Jammed(progress));
        }
        let compress = !jammed;
        if self.compressing.is_some_and(|c| c != compress) {
            self.step *= 0.5;
        }
        self.compressing = Some(compress);
        let next = if compress {
            self.phi + self.step
        } else {
            self.phi - self.step
        };
        if next <= 0.0 {
            return Err(format!(
                "phi_start: decompressed to phi <= 0 from {}",
                cfg.phi_start
            ));
        }
        let (max_minimizations, tolerance) = (cfg.max_minimizations, cfg.phi_tolerance);
        self.set_packing_fraction(next)?;
        if self.minimizations >= max_minimizations {
            return Err(format!(
                "max_minimizations: {max_minimizations} steps did not resolve phi_J to \
                 {tolerance} (last phi {next}, step {})",
                self.step
            ));
        }
        Ok(Advance::Minimized(progress))
    }

    /// The result and the jammed packing; an error if the protocol has not finished.
    pub fn into_jammed(self) -> Result<(JamResult, Packing), String> {
        match self.result {
            Some(result) => Ok((result, self.packing)),
            None => Err(format!(
                "not jammed yet (phi {}, step {})",
                self.phi, self.step
            )),
        }
    }
}

/// For each `delta`, compresses a copy of the jammed packing affinely to `phi_j + delta` and
/// minimizes (each from the jammed state, so a rearrangement at one `delta` does not carry over
/// to the next), then fits `E ~ delta^alpha`, `p ~ delta^(alpha-1)` and `Z - Z_J ~ delta^(1/2)`.
pub fn sweep_above_jamming(
    jammed: &Packing,
    phi_j: f64,
    deltas: &[f64],
    max_fire_iterations: usize,
    progress: &mut dyn FnMut(SweepRow),
) -> Result<SweepResult, String> {
    let z_jammed = jammed.contact_stats().mean_contacts;
    let mut rows = Vec::with_capacity(deltas.len());
    for &delta in deltas {
        let mut packing = jammed.clone();
        packing
            .set_packing_fraction(phi_j + delta)
            .map_err(|e| format!("deltas: {delta}: {e}"))?;
        let report = packing.minimize(max_fire_iterations);
        let stats = packing.contact_stats();
        let row = SweepRow {
            delta,
            phi: phi_j + delta,
            energy_per_particle: packing.energy_per_particle(),
            pressure: packing.pressure(),
            contacts: stats.mean_contacts,
            rattler_fraction: stats.rattler_fraction,
            fire_iterations: report.iterations,
        };
        progress(row);
        rows.push(row);
    }
    let fit = |y: &dyn Fn(&SweepRow) -> f64| {
        let (xs, ys): (Vec<f64>, Vec<f64>) = rows.iter().map(|r| (r.delta, y(r))).unzip();
        fit_power_law(&xs, &ys)
    };
    Ok(SweepResult {
        energy: fit(&|r| r.energy_per_particle),
        pressure: fit(&|r| r.pressure),
        contacts: fit(&|r| r.contacts - z_jammed),
        rows,
    })
}

/// `count` points spaced evenly in log between `lo` and `hi` (inclusive).
pub fn log_grid(lo: f64, hi: f64, count: usize) -> Vec<f64> {
    match count {
        0 => Vec::new(),
        1 => vec![lo],
        _ => (0..count)
            .map(|k| lo * (hi / lo).powf(k as f64 / (count - 1) as f64))
            .collect(),
    }
}

/// Least-squares line through `(ln x, ln y)` over the points with both positive; `None` with
/// fewer than two such points or all `x` equal.
pub fn fit_power_law(xs: &[f64], ys: &[f64]) -> Option<PowerLawFit> {
    let points: Vec<(f64, f64)> = xs
        .iter()
        .zip(ys)
        .filter(|(x, y)| **x > 0.0 && **y > 0.0 && x.is_finite() && y.is_finite())
        .map(|(x, y)| (x.ln(), y.ln()))
        .collect();
    let n = points.len() as f64;
    if points.len() < 2 {
        return None;
    }
    let mean_x = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mean_x).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mean_x) * (p.1 - mean_y)).sum();
    if sxx <= 0.0 {
        return None;
    }
    let exponent = sxy / sxx;
    Some(PowerLawFit {
        exponent,
        prefactor: (mean_y - exponent * mean_x).exp(),
        points: points.len(),
    })
}
