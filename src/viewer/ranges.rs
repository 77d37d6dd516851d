//! Every slider's range, defined once. Each lies inside what the validator guarding its value
//! accepts (the tests below walk both ends through it), so the panel never shows a value that
//! is not in force.

use crate::loss::ALPHA_RANGE;

/// Radius scale r_s (live).
pub const RADIUS_SCALE: (f64, f64) = (0.1, 50.0);
/// Exponent alpha of the training loss (live).
pub const ALPHA: (f64, f64) = (ALPHA_RANGE.0, 4.0);
/// Base learning rate (live).
pub const LEARNING_RATE: (f64, f64) = (1e-5, 1e-1);
/// Weight decay (live).
pub const WEIGHT_DECAY: (f64, f64) = (0.0, 1e-2);
/// Views m, batch, embedding dimension and drawn spheres (by a restart).
pub const VIEWS: (usize, usize) = (2, 16);
pub const BATCH: (usize, usize) = (16, 1024);
pub const DIM: (usize, usize) = (3, 256);
pub const SPHERES: (usize, usize) = (100, 10_000);
/// Exponent alpha of the physics sandbox: it needs alpha > 1 (at 1 the contact force would
/// jump from zero to its full value at first touch).
pub const PHYSICS_ALPHA: (f64, f64) = (1.05, 4.0);
/// Particles of the physics sandbox.
pub const PHYSICS_PARTICLES: (usize, usize) = (64, 2048);
/// Sphere opacity (1: solid) and auto-rotation in degrees per second.
pub const OPACITY: (f32, f32) = (0.05, 1.0);
/// Drawn radii over true radii.
pub const SPHERE_SIZE: (f32, f32) = (0.02, 1.0);
pub const AUTO_ROTATE: (f32, f32) = (-45.0, 45.0);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TrainConfig;
    use crate::physics::JamConfig;
    use crate::viewer::preset::ViewPreset;

    fn ends<T: Copy>(range: (T, T)) -> [T; 2] {
        [range.0, range.1]
    }

    #[test]
    fn every_training_slider_end_passes_the_config_check() {
        type Set = fn(&mut TrainConfig, f64);
        let live: [(&str, (f64, f64), Set); 4] = [
            ("radius scale", RADIUS_SCALE, |c, v| c.radius_scale = v),
            ("alpha", ALPHA, |c, v| c.alpha = v),
            ("learning rate", LEARNING_RATE, |c, v| c.lr = v),
            ("weight decay", WEIGHT_DECAY, |c, v| c.weight_decay = v),
        ];
        for (name, range, set) in live {
            for value in ends(range) {
                let mut config = TrainConfig::viewer_default();
                set(&mut config, value);
                config
                    .validate()
                    .unwrap_or_else(|e| panic!("{name} slider end {value}: {e}"));
                config
                    .packing()
                    .validate()
                    .unwrap_or_else(|e| panic!("{name} slider end {value}: {e}"));
            }
        }
        type SetCount = fn(&mut TrainConfig, usize);
        let restart: [(&str, (usize, usize), SetCount); 4] = [
            ("views", VIEWS, |c, v| c.views = v),
            ("batch", BATCH, |c, v| c.batch = v),
            ("dim", DIM, |c, v| c.dim = v),
            ("spheres", SPHERES, |c, v| c.snapshot_images = v),
        ];
        for (name, range, set) in restart {
            for value in ends(range) {
                let mut config = TrainConfig::viewer_default();
                set(&mut config, value);
                config
                    .validate()
                    .unwrap_or_else(|e| panic!("{name} slider end {value}: {e}"));
            }
        }
    }

    #[test]
    fn every_physics_slider_end_passes_the_sandbox_check() {
        for alpha in ends(PHYSICS_ALPHA) {
            for n in ends(PHYSICS_PARTICLES) {
                for dim in [2, 3] {
                    JamConfig::bidisperse(dim, n, alpha, 0)
                        .validate()
                        .unwrap_or_else(|e| panic!("alpha {alpha}, n {n}, dim {dim}: {e}"));
                }
            }
        }
        // The range the slider once had started where the sandbox refuses.
        assert!(JamConfig::bidisperse(3, 512, 1.0, 0).validate().is_err());
    }

    #[test]
    fn every_view_slider_end_passes_the_preset_check() {
        for opacity in ends(OPACITY) {
            for auto_rotate in ends(AUTO_ROTATE) {
                let view = ViewPreset {
                    opacity,
                    auto_rotate,
                    ..ViewPreset::default()
                };
                view.validate()
                    .unwrap_or_else(|e| panic!("opacity {opacity}, rotate {auto_rotate}: {e}"));
            }
        }
    }
}
