//! Zero-temperature jamming of soft repulsive spheres (no Bevy, no dependencies).
//!
//! Particles `i`, `j` with diameters `d_i`, `d_j` interact through
//! `V(r) = (eps/alpha) (1 - r/sigma_ij)^alpha` for `r < sigma_ij = (d_i + d_j)/2`, zero beyond
//! (alpha = 2 harmonic, 2.5 Hertzian; eps = 1, mass = 1, the small diameter is the unit of length).
//! Energy minima are found with FIRE (Bitzek et al., PRL 97, 170201, 2006) and the jamming point
//! with the compress/decompress bisection of O'Hern, Silbert, Liu & Nagel (PRE 68, 011306, 2003):
//! `phi_J` ~ 0.842 (2D 50:50 bidisperse 1:1.4), ~0.648 (3D bidisperse), ~0.639 (3D monodisperse).
//! At `phi_J` the non-rattlers are isostatic, `Z = 2 dim`; above it `E ~ (phi - phi_J)^alpha`,
//! `p ~ (phi - phi_J)^(alpha - 1)`. Measured with [`find_jamming`]'s defaults, N = 1024, seeds
//! 1-5 (`examples/jamming_bench.rs`): 0.6459 +- 0.0010 (3D) and 0.8406 +- 0.0018 (2D).
//!
//! Two geometries:
//! - [`Geometry::PeriodicBox`]: a cubic periodic box in 2 or 3 dimensions; diameters stay fixed
//!   and the box (with the positions, affinely) is rescaled to change `phi`. Pairs come from a
//!   cell list, so one force evaluation costs O(N).
//! - [`Geometry::UnitSphere`]: centers on S^2 (embedded in R^3) as in CLAMP's embedding, with the
//!   *chordal* distance `|x_i - x_j|`, which is what the CLAMP loss uses. Diameters are chords;
//!   `phi = sum_i pi (d_i/2)^2 / (4 pi)` (a cap of chordal radius `a` has area exactly `pi a^2`).
//!   Pairs are found by brute force (O(N^2)); forces are projected on the tangent planes.
//!   The isostatic count there is `Z = 4 - 6/N` (three global rotations), tending to 4.

mod cells;
mod fire;
mod jamming;

pub use fire::{FireParams, FireState};
pub use jamming::{
    Advance, JamConfig, JamProgress, JamResult, JammingProtocol, PowerLawFit, SweepResult,
    SweepRow, find_jammed_packing, find_jamming, fit_power_law, log_grid, sweep_above_jamming,
};

pub use crate::seed::SplitMix64;
use cells::CellList;

/// Diameter of the small (or only) species: the unit of length.
pub const SMALL_DIAMETER: f64 = 1.0;
/// Large-to-small diameter ratio of the 50:50 bidisperse mixture (O'Hern et al. 2003).
pub const BIDISPERSE_RATIO: f64 = 1.4;

/// Where the sphere centers live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Geometry {
    /// Cubic periodic box in `dim` = 2 or 3 dimensions.
    PeriodicBox,
    /// The unit sphere S^2 in R^3 (`dim` = 2), chordal distances.
    UnitSphere,
}

/// How pairs are enumerated; `AllPairs` is the O(N^2) reference used by tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PairSearch {
    /// Cell list when the box holds at least 3 cells per side, else all pairs.
    Auto,
    /// Every pair (i < j), with the minimum-image convention in the box.
    AllPairs,
}

/// Why a minimization stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MinimizeStatus {
    /// Energy per particle fell below the "zero" threshold: an unjammed state.
    ZeroEnergy,
    /// RMS force per particle fell below the force tolerance at non-zero energy.
    ForceBalanced,
    /// The iteration budget ran out first.
    MaxIterations,
}

/// Outcome of [`Packing::minimize`].
#[derive(Clone, Copy, Debug)]
pub struct MinimizeReport {
    pub status: MinimizeStatus,
    pub iterations: usize,
    pub energy_per_particle: f64,
}

/// Contact read-out with rattlers removed.
#[derive(Clone, Debug)]
pub struct ContactStats {
    /// Mean contacts per particle over all particles.
    pub mean_contacts_all: f64,
    /// Mean contact number `Z` of the non-rattlers (the isostatic count is `2 dim`).
    pub mean_contacts: f64,
    /// Fraction of particles removed as rattlers (fewer than `dim + 1` contacts, iteratively).
    pub rattler_fraction: f64,
    /// `true` for each rattler.
    pub rattlers: Vec<bool>,
}

/// N soft spheres plus a FIRE minimizer, steppable frame by frame (e.g. by a viewer).
///
/// Energy, forces and virial are kept up to date after every change.
#[derive(Clone, Debug)]
pub struct Packing {
    geometry: Geometry,
    dim: usize,
    coords: usize,
    alpha: f64,
    box_len: f64,
    positions: Vec<f64>,
    velocities: Vec<f64>,
    forces: Vec<f64>,
    diameters: Vec<f64>,
    energy: f64,
    virial: f64,
    force_norm_sq: f64,
    contact_force_sum: f64,
    contact_count: usize,
    cells: CellList,
    fire: FireState,
    dt_factor: f64,
    energy_zero: f64,
    force_tolerance: f64,
}

impl Packing {
    /// Uniformly random centers (seeded by `cfg.seed`) at packing fraction `phi`, using the
    /// geometry, dimension, size mix, alpha and tolerances of `cfg`.
    pub fn random(cfg: &JamConfig, phi: f64) -> Result<Self, String> {
        cfg.validate()?;
        let n = cfg.n;
        let coords = match cfg.geometry {
            Geometry::PeriodicBox => cfg.dim,
            Geometry::UnitSphere => 3,
        };
        let diameters = (0..n)
            .map(|i| {
                if cfg.bidisperse && i >= n / 2 {
                    SMALL_DIAMETER * BIDISPERSE_RATIO
                } else {
                    SMALL_DIAMETER
                }
            })
            .collect();
        let mut rng = SplitMix64::new(cfg.seed);
        let mut positions = vec![0.0; n * coords];
        for p in positions.chunks_mut(coords) {
            match cfg.geometry {
                Geometry::PeriodicBox => p.iter_mut().for_each(|x| *x = rng.next_f64()),
                Geometry::UnitSphere => loop {
                    // Uniform in the ball, then projected: uniform on the sphere.
                    p.iter_mut().for_each(|x| *x = 2.0 * rng.next_f64() - 1.0);
                    let r2: f64 = p.iter().map(|x| x * x).sum();
                    if r2 > 1e-6 && r2 <= 1.0 {
                        p.iter_mut().for_each(|x| *x /= r2.sqrt());
                        break;
                    }
                },
            }
        }
        let mut packing = Self {
            geometry: cfg.geometry,
            dim: cfg.dim,
            coords,
            alpha: cfg.alpha,
            box_len: 1.0,
            velocities: vec![0.0; n * coords],
            forces: vec![0.0; n * coords],
            positions,
            diameters,
            energy: 0.0,
            virial: 0.0,
            force_norm_sq: 0.0,
            contact_force_sum: 0.0,
            contact_count: 0,
            cells: CellList::default(),
            fire: FireState::new(&FireParams::lammps_defaults(cfg.effective_dt_factor())),
            dt_factor: cfg.effective_dt_factor(),
            energy_zero: cfg.energy_zero,
            force_tolerance: cfg.force_tolerance,
        };
        // Positions were drawn in the unit cube: scaling the box scales them with it.
        packing.set_packing_fraction(phi)?;
        Ok(packing)
    }

    pub fn n(&self) -> usize {
        self.diameters.len()
    }
    /// Dimension of the space the spheres pack (2 or 3; 2 on S^2).
    pub fn dim(&self) -> usize {
        self.dim
    }
    /// Coordinates per particle in [`Packing::positions`] (3 on S^2).
    pub fn coords_per_particle(&self) -> usize {
        self.coords
    }
    pub fn geometry(&self) -> Geometry {
        self.geometry
    }
    pub fn alpha(&self) -> f64 {
        self.alpha
    }
    /// Flat `[x0, y0, (z0), x1, ...]`; in the box each coordinate lies in `[0, box_len)`.
    pub fn positions(&self) -> &[f64] {
        &self.positions
    }
    pub fn diameters(&self) -> &[f64] {
        &self.diameters
    }
    /// Forces `-dE/dx` (tangential on S^2), laid out like the positions.
    pub fn forces(&self) -> &[f64] {
        &self.forces
    }
    /// Box side, or `None` on the sphere.
    pub fn box_len(&self) -> Option<f64> {
        (self.geometry == Geometry::PeriodicBox).then_some(self.box_len)
    }
    /// Box volume (area in 2D), or `4 pi` on the sphere.
    pub fn volume(&self) -> f64 {
        match self.geometry {
            Geometry::PeriodicBox => self.box_len.powi(self.dim as i32),
            Geometry::UnitSphere => 4.0 * std::f64::consts::PI,
        }
    }
    /// Sum of particle volumes over the box volume (cap areas over `4 pi` on S^2).
    pub fn packing_fraction(&self) -> f64 {
        self.diameters
            .iter()
            .map(|&d| self.particle_volume(d))
            .sum::<f64>()
            / self.volume()
    }
    pub fn energy(&self) -> f64 {
        self.energy
    }
    pub fn energy_per_particle(&self) -> f64 {
        self.energy / self.n() as f64
    }
    /// Virial pressure `p = (1/(dim V)) sum_pairs r_ij . f_ij`, which equals `-dE/dV` under an
    /// affine rescale (on S^2: `V = 4 pi`, conjugate to a rescale of the diameters).
    pub fn pressure(&self) -> f64 {
        self.virial / (self.dim as f64 * self.volume())
    }
    /// Root mean square of the per-particle force.
    pub fn rms_force(&self) -> f64 {
        (self.force_norm_sq / self.n() as f64).sqrt()
    }
    /// Mean magnitude of the pair forces (0 without overlaps): the force scale of the packing.
    pub fn mean_contact_force(&self) -> f64 {
        self.contact_force_sum / self.contact_count.max(1) as f64
    }
    /// Whether force evaluations use the cell list (box at least 3 cells of `max d` per side).
    pub fn uses_cell_list(&self) -> bool {
        self.geometry == Geometry::PeriodicBox
            && CellList::cells_per_side(self.box_len, self.max_diameter()) >= 3
    }

    /// Replaces the positions (wrapped into the box, or normalized onto S^2), stops all motion
    /// and restarts FIRE.
    pub fn set_positions(&mut self, positions: &[f64]) -> Result<(), String> {
        if positions.len() != self.positions.len() {
            return Err(format!(
                "positions: expected {} values, got {}",
                self.positions.len(),
                positions.len()
            ));
        }
        if positions.iter().any(|x| !x.is_finite()) {
            return Err("positions: values must be finite".into());
        }
        if self.geometry == Geometry::UnitSphere && positions.chunks(3).any(|p| p == [0.0; 3]) {
            return Err("positions: a point at the origin cannot be put on the sphere".into());
        }
        self.positions.copy_from_slice(positions);
        self.constrain_positions();
        self.restart_fire();
        Ok(())
    }

    /// Sets the packing fraction: rescales the box and positions affinely (box), or the
    /// diameters (sphere). Stops all motion and restarts FIRE.
    pub fn set_packing_fraction(&mut self, phi: f64) -> Result<(), String> {
        if !(phi.is_finite() && phi > 0.0) {
            return Err(format!("phi: must be positive and finite, got {phi}"));
        }
        let scale = (self.packing_fraction() / phi).powf(1.0 / self.dim as f64);
        match self.geometry {
            Geometry::PeriodicBox => {
                let new_len = self.box_len * scale;
                // Minimum image needs every interaction range below half the box.
                if new_len <= 2.0 * self.max_diameter() {
                    return Err(format!(
                        "phi: {phi} makes the box ({new_len:.3}) shorter than twice the largest \
                         diameter; use more particles"
                    ));
                }
                self.positions.iter_mut().for_each(|x| *x *= scale);
                self.box_len = new_len;
            }
            Geometry::UnitSphere => {
                let largest = self.max_diameter() / scale;
                if largest >= 2.0 {
                    return Err(format!(
                        "phi: {phi} needs chordal diameters above 2; use more particles"
                    ));
                }
                self.diameters.iter_mut().for_each(|d| *d /= scale);
            }
        }
        self.constrain_positions();
        self.restart_fire();
        Ok(())
    }

    /// Zeroes velocities and resets FIRE's time step and mixing (after a discontinuous change).
    pub fn restart_fire(&mut self) {
        self.velocities.iter_mut().for_each(|v| *v = 0.0);
        let smallest = self.diameters.iter().cloned().fold(f64::INFINITY, f64::min);
        self.fire = FireState::new(&FireParams::lammps_defaults(self.dt_factor * smallest));
        self.evaluate_forces();
    }

    /// One FIRE iteration (Bitzek et al. 2006, semi-implicit Euler); returns energy per particle.
    pub fn fire_step(&mut self) -> f64 {
        let dt = self.fire.mix_velocities(&mut self.velocities, &self.forces);
        for (x, v) in self.positions.iter_mut().zip(&self.velocities) {
            *x += dt * v;
        }
        self.constrain_positions();
        self.evaluate_forces();
        self.energy_per_particle()
    }

    /// Runs FIRE (continuing its current state) until the energy per particle is below the
    /// "zero" threshold, the RMS force is below the tolerance times the mean contact force (a
    /// relative test, since forces near jamming are tiny), or `max_iters` steps are done.
    pub fn minimize(&mut self, max_iters: usize) -> MinimizeReport {
        let mut iterations = 0;
        let status = loop {
            if self.energy_per_particle() < self.energy_zero {
                break MinimizeStatus::ZeroEnergy;
            }
            if self.rms_force() < self.force_tolerance * self.mean_contact_force() {
                break MinimizeStatus::ForceBalanced;
            }
            if iterations == max_iters {
                break MinimizeStatus::MaxIterations;
            }
            self.fire_step();
            iterations += 1;
        };
        MinimizeReport {
            status,
            iterations,
            energy_per_particle: self.energy_per_particle(),
        }
    }

    /// Overlapping pairs `(i, j)`, `i < j` (the contacts that carry force).
    pub fn contacts(&self) -> Vec<(usize, usize)> {
        let mut pairs = Vec::new();
        self.for_each_overlap(PairSearch::Auto, |i, j, _, _, _| {
            pairs.push((i.min(j), i.max(j)))
        });
        pairs.sort_unstable();
        pairs
    }

    /// Contact numbers with rattlers (fewer than `dim + 1` contacts) removed iteratively,
    /// as in O'Hern et al. 2003.
    pub fn contact_stats(&self) -> ContactStats {
        let n = self.n();
        let pairs = self.contacts();
        let mut rattlers = vec![false; n];
        loop {
            let mut counts = vec![0usize; n];
            for &(i, j) in &pairs {
                if !rattlers[i] && !rattlers[j] {
                    counts[i] += 1;
                    counts[j] += 1;
                }
            }
            let mut changed = false;
            for i in 0..n {
                if !rattlers[i] && counts[i] < self.dim + 1 {
                    rattlers[i] = true;
                    changed = true;
                }
            }
            if !changed {
                let kept = rattlers.iter().filter(|&&r| !r).count();
                return ContactStats {
                    mean_contacts_all: 2.0 * pairs.len() as f64 / n as f64,
                    mean_contacts: counts.iter().sum::<usize>() as f64 / kept.max(1) as f64,
                    rattler_fraction: (n - kept) as f64 / n as f64,
                    rattlers,
                };
            }
        }
    }

    /// One force evaluation: recomputes energy, forces and virial (O(N) with the cell list).
    pub fn evaluate_forces(&mut self) {
        if self.uses_cell_list() {
            let cutoff = self.max_diameter();
            let (pos, diam) = (&self.positions, &self.diameters);
            self.cells
                .rebuild(pos, diam, self.coords, self.box_len, cutoff);
        }
        let mut forces = std::mem::take(&mut self.forces);
        let (energy, virial, force_sum, count) = self.accumulate(PairSearch::Auto, &mut forces);
        self.forces = forces;
        self.contact_force_sum = force_sum;
        self.contact_count = count;
        self.energy = energy;
        self.virial = virial;
        if self.geometry == Geometry::UnitSphere {
            // Only the tangential part moves a point on the sphere.
            for (f, x) in self.forces.chunks_mut(3).zip(self.positions.chunks(3)) {
                make_tangent(f, x);
            }
        }
        self.force_norm_sq = self.forces.iter().map(|f| f * f).sum();
    }

    /// Energy and (unprojected) forces by the chosen pair search, without changing the packing:
    /// the reference for checking the cell list.
    pub fn energy_and_forces(&self, search: PairSearch) -> (f64, Vec<f64>) {
        // The cell list is rebuilt by every evaluation, so it matches the current positions.
        let mut forces = vec![0.0; self.positions.len()];
        let (energy, ..) = self.accumulate(search, &mut forces);
        (energy, forces)
    }

    /// Fills `forces`; returns energy, virial, sum of pair-force magnitudes and contact count.
    fn accumulate(&self, search: PairSearch, forces: &mut [f64]) -> (f64, f64, f64, usize) {
        forces.iter_mut().for_each(|f| *f = 0.0);
        let (mut energy, mut virial, mut force_sum, mut count) = (0.0, 0.0, 0.0, 0);
        let (alpha, c) = (self.alpha, self.coords);
        self.for_each_overlap(search, |i, j, delta, r, sigma| {
            let overlap = 1.0 - r / sigma;
            let (pow_minus_one, pow) = overlap_powers(overlap, alpha);
            energy += pow / alpha;
            // |F| = -dV/dr = (eps/sigma)(1 - r/sigma)^(alpha-1), along r_i - r_j.
            let magnitude = pow_minus_one / sigma;
            virial += magnitude * r;
            force_sum += magnitude;
            count += 1;
            let scale = magnitude / r;
            for k in 0..c {
                forces[i * c + k] += scale * delta[k];
                forces[j * c + k] -= scale * delta[k];
            }
        });
        (energy, virial, force_sum, count)
    }

    /// Calls `visit(i, j, r_i - r_j, r, sigma_ij)` for each overlapping pair once.
    fn for_each_overlap(
        &self,
        search: PairSearch,
        visit: impl FnMut(usize, usize, [f64; 3], f64, f64),
    ) {
        // Compile-time coordinate counts let the inner loops unroll.
        if self.coords == 2 {
            self.for_each_overlap_in::<2>(search, visit);
        } else {
            self.for_each_overlap_in::<3>(search, visit);
        }
    }

    fn for_each_overlap_in<const C: usize>(
        &self,
        search: PairSearch,
        mut visit: impl FnMut(usize, usize, [f64; 3], f64, f64),
    ) {
        if search == PairSearch::Auto && self.uses_cell_list() {
            return self.cells.for_each_overlap::<C>(visit);
        }
        let box_len = (self.geometry == Geometry::PeriodicBox).then_some(self.box_len);
        let (pos, diam) = (&self.positions, &self.diameters);
        for i in 0..self.n() {
            let a: &[f64; C] = pos[i * C..i * C + C].try_into().unwrap();
            for j in i + 1..self.n() {
                let b: &[f64; C] = pos[j * C..j * C + C].try_into().unwrap();
                let sigma = 0.5 * (diam[i] + diam[j]);
                if let Some((delta, r)) = cells::overlap(a, b, sigma, box_len) {
                    visit(i, j, delta, r, sigma);
                }
            }
        }
    }

    fn constrain_positions(&mut self) {
        match self.geometry {
            Geometry::PeriodicBox => {
                let len = self.box_len;
                for x in &mut self.positions {
                    if !(0.0..len).contains(x) {
                        *x = x.rem_euclid(len);
                        // rem_euclid of a tiny negative number can round up to len itself.
                        if *x >= len {
                            *x = 0.0;
                        }
                    }
                }
            }
            Geometry::UnitSphere => {
                let velocities = self.velocities.chunks_mut(3);
                for (x, v) in self.positions.chunks_mut(3).zip(velocities) {
                    let norm = x.iter().map(|a| a * a).sum::<f64>().sqrt();
                    x.iter_mut().for_each(|a| *a /= norm);
                    // Keep velocities tangent to the sphere at the new point.
                    make_tangent(v, x);
                }
            }
        }
    }

    fn particle_volume(&self, d: f64) -> f64 {
        use std::f64::consts::PI;
        match (self.geometry, self.dim) {
            (Geometry::UnitSphere, _) | (_, 2) => PI * d * d / 4.0,
            _ => PI * d * d * d / 6.0,
        }
    }

    fn max_diameter(&self) -> f64 {
        self.diameters.iter().cloned().fold(0.0, f64::max)
    }
}

/// `(x^(alpha-1), x^alpha)`, with the harmonic and Hertzian cases spared `powf`.
fn overlap_powers(x: f64, alpha: f64) -> (f64, f64) {
    if alpha == 2.0 {
        (x, x * x)
    } else if alpha == 2.5 {
        let s = x * x.sqrt();
        (s, s * x)
    } else {
        let p = x.powf(alpha - 1.0);
        (p, p * x)
    }
}

/// Removes from `v` its component along the unit vector `x`.
fn make_tangent(v: &mut [f64], x: &[f64]) {
    let radial: f64 = v.iter().zip(x).map(|(a, b)| a * b).sum();
    v.iter_mut().zip(x).for_each(|(a, b)| *a -= radial * b);
}
