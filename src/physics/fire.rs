//! FIRE, the Fast Inertial Relaxation Engine (Bitzek, Koskinen, Gähler, Moseler & Gumbsch,
//! PRL 97, 170201, 2006): damped dynamics that steers the velocity toward the force and speeds
//! up while going downhill, and stops dead as soon as it goes uphill.

/// FIRE parameters; [`FireParams::lammps_defaults`] gives the published/LAMMPS values.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FireParams {
    /// Initial time step.
    pub dt_start: f64,
    /// Largest time step (LAMMPS: 10 `dt_start`).
    pub dt_max: f64,
    /// Downhill steps before the time step may grow (N_min = 5).
    pub n_min: usize,
    /// Time-step growth factor (1.1).
    pub f_inc: f64,
    /// Time-step cut when going uphill (0.5).
    pub f_dec: f64,
    /// Initial velocity-mixing weight (0.1).
    pub alpha_start: f64,
    /// Mixing decay per accelerated step (0.99).
    pub f_alpha: f64,
}

impl FireParams {
    /// Bitzek et al. 2006 / LAMMPS defaults for a given starting time step.
    pub fn lammps_defaults(dt_start: f64) -> Self {
        Self {
            dt_start,
            dt_max: 10.0 * dt_start,
            n_min: 5,
            f_inc: 1.1,
            f_dec: 0.5,
            alpha_start: 0.1,
            f_alpha: 0.99,
        }
    }
}

/// The adaptive part of FIRE: time step, mixing weight, downhill streak.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FireState {
    pub params: FireParams,
    pub dt: f64,
    pub alpha: f64,
    pub downhill_steps: usize,
}

impl FireState {
    pub fn new(params: &FireParams) -> Self {
        Self {
            params: *params,
            dt: params.dt_start,
            alpha: params.alpha_start,
            downhill_steps: 0,
        }
    }

    /// Adapts `dt` and `alpha` from the power `P = F . v`, then does the velocity half of a
    /// semi-implicit Euler step (unit masses) with FIRE's mixing
    /// `v <- (1 - alpha) v + alpha |v| F/|F|`. Returns the `dt` to move positions with
    /// (`x += dt v`). Zero power (a standing start) counts as neither up- nor downhill.
    pub fn mix_velocities(&mut self, velocities: &mut [f64], forces: &[f64]) -> f64 {
        let p = self.params;
        let power: f64 = velocities.iter().zip(forces).map(|(v, f)| v * f).sum();
        if power > 0.0 {
            self.downhill_steps += 1;
            if self.downhill_steps > p.n_min {
                self.dt = (self.dt * p.f_inc).min(p.dt_max);
                self.alpha *= p.f_alpha;
            }
        } else if power < 0.0 {
            // Uphill: freeze, shrink the step, and start mixing afresh.
            self.downhill_steps = 0;
            self.dt *= p.f_dec;
            self.alpha = p.alpha_start;
            velocities.iter_mut().for_each(|v| *v = 0.0);
        }
        let dt = self.dt;
        velocities
            .iter_mut()
            .zip(forces)
            .for_each(|(v, f)| *v += dt * f);
        let v_norm = velocities.iter().map(|v| v * v).sum::<f64>().sqrt();
        let f_norm = forces.iter().map(|f| f * f).sum::<f64>().sqrt();
        if f_norm > 0.0 {
            let (keep, steer) = (1.0 - self.alpha, self.alpha * v_norm / f_norm);
            velocities
                .iter_mut()
                .zip(forces)
                .for_each(|(v, f)| *v = keep * *v + steer * f);
        }
        dt
    }
}
