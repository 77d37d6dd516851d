//! One training step on the WGPU backend against the same step on the CPU backend, from the
//! same weights and the same batch: the check that a GPU computes what the CPU computes, used
//! by the tests on software Vulkan and by `scripts/gpu-check.sh` on a real GPU.
//!
//! Each parameter is held to its own scale: a bias whose gradients are ten thousand times
//! smaller than the first layer's must still agree to the same share of its own largest
//! entry, and so must the weights the optimizer step then writes.

use std::path::Path;
use std::sync::Arc;

use crate::backend::{CpuBackend, WgpuBackend};
use crate::config::TrainConfig;
use crate::train::{Trainer, TrainingData, checkpoint};

/// The share of a parameter's scale above which a gradient entry's update is compared. Adam's
/// step is `g / (|g| + 1e-5)` learning rates, steep in `g` where `|g|` is near its epsilon:
/// there a gradient difference far inside the tolerance moves the update by more (measured:
/// entries at 1.4e-3 of the scale, whose gradients agree to 6e-5 of it, step 3e-3 learning
/// rates apart). From 1e-2 of the scale on, the update is as close as the gradient.
pub const SETTLED: f32 = 1e-2;

/// One parameter's agreement.
#[derive(Debug, Clone, PartialEq)]
pub struct ParameterAgreement {
    /// Its path in the model (`encoder.conv1.weight`).
    pub name: String,
    pub entries: usize,
    /// The largest gradient entry on the CPU, in absolute value: this parameter's scale.
    pub gradient_scale: f32,
    /// The largest difference between the backends' gradient entries (NaN counts as infinite).
    pub worst_gradient_difference: f32,
    /// The largest difference between the backends' updated weights, less the last place of
    /// an f32, in units of the step's learning rate.
    pub worst_update_difference: f32,
    /// Entries left out of the update comparison: gradients under [`SETTLED`] of the scale.
    pub ambiguous_updates: usize,
}

impl ParameterAgreement {
    /// The worst gradient difference as a share of this parameter's own scale (0 when both
    /// backends give exactly zero everywhere, infinite when only one does).
    pub fn gradient_relative_difference(&self) -> f32 {
        if self.worst_gradient_difference == 0.0 {
            0.0
        } else {
            self.worst_gradient_difference / self.gradient_scale
        }
    }
}

/// The two backends' numbers for one step.
#[derive(Debug, Clone)]
pub struct StepAgreement {
    pub cpu_loss: f64,
    pub wgpu_loss: f64,
    /// The loss the WGPU step reported when it then took the step.
    pub stepped_loss: f64,
    /// The learning rate of the compared step.
    pub learning_rate: f64,
    /// Every parameter, in the model's order.
    pub parameters: Vec<ParameterAgreement>,
}

/// A parameter whose largest gradient is below this share of the model's largest has a
/// gradient that vanishes in exact arithmetic, and what the backends give is rounding: the
/// projector's output bias, since the loss first subtracts the batch's mean (a shift of every
/// output changes nothing).
pub const VANISHING: f32 = 1e-5;

impl StepAgreement {
    /// The largest gradient entry of the whole model.
    pub fn largest_gradient(&self) -> f32 {
        self.parameters
            .iter()
            .map(|p| p.gradient_scale)
            .fold(0.0, f32::max)
    }

    /// Whether `parameter`'s gradient vanishes (see [`VANISHING`]).
    pub fn vanishes(&self, parameter: &ParameterAgreement) -> bool {
        parameter.gradient_scale <= VANISHING * self.largest_gradient()
    }

    pub fn loss_relative_difference(&self) -> f64 {
        (self.cpu_loss - self.wgpu_loss).abs() / self.cpu_loss.abs().max(f64::MIN_POSITIVE)
    }

    /// Gradient entries compared (every parameter's, flattened).
    pub fn gradient_entries(&self) -> usize {
        self.parameters.iter().map(|p| p.entries).sum()
    }

    /// The parameter whose gradients differ most for their own scale (of those whose
    /// gradient does not vanish).
    pub fn worst_gradient(&self) -> Option<&ParameterAgreement> {
        self.parameters
            .iter()
            .filter(|p| !self.vanishes(p))
            .max_by(|a, b| {
                a.gradient_relative_difference()
                    .total_cmp(&b.gradient_relative_difference())
            })
    }

    /// The parameter whose updates differ most (of those whose gradient does not vanish:
    /// Adam turns rounding into a step of a whole learning rate, either way).
    pub fn worst_update(&self) -> Option<&ParameterAgreement> {
        self.parameters
            .iter()
            .filter(|p| !self.vanishes(p))
            .max_by(|a, b| {
                a.worst_update_difference
                    .total_cmp(&b.worst_update_difference)
            })
    }

    /// Within `tolerance` on the loss, on every parameter's gradients (for its own scale) and
    /// on every update (in learning rates); a vanishing gradient must vanish on both backends
    /// (its differences under [`VANISHING`] of the largest gradient); some gradient must be
    /// non-zero, or nothing was compared.
    pub fn holds_within(&self, tolerance: f64) -> bool {
        let largest = self.largest_gradient();
        largest > 0.0
            && self.loss_relative_difference() <= tolerance
            && self.parameters.iter().all(|p| {
                if self.vanishes(p) {
                    p.worst_gradient_difference <= VANISHING * largest
                } else {
                    f64::from(p.gradient_relative_difference()) <= tolerance
                        && f64::from(p.worst_update_difference) <= tolerance
                }
            })
    }

    pub fn summary(&self) -> String {
        let gradient = self.worst_gradient();
        let update = self.worst_update();
        format!(
            "cpu loss {:.6}, wgpu loss {:.6}, relative difference {:.1e}; gradients of {} \
             parameters ({} entries, {} vanishing): worst {:.1e} of its own scale, in {}; \
             updates: worst {:.1e} learning rates, in {} ({} near-zero gradients left out)",
            self.cpu_loss,
            self.wgpu_loss,
            self.loss_relative_difference(),
            self.parameters.len(),
            self.gradient_entries(),
            self.parameters.iter().filter(|p| self.vanishes(p)).count(),
            gradient.map_or(0.0, |p| p.gradient_relative_difference()),
            gradient.map_or("-", |p| p.name.as_str()),
            update.map_or(0.0, |p| p.worst_update_difference),
            update.map_or("-", |p| p.name.as_str()),
            self.parameters
                .iter()
                .map(|p| p.ambiguous_updates)
                .sum::<usize>(),
        )
    }
}

/// The largest `|a - b|`, NaN on either side counting as infinite.
fn worst_difference(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| {
            let d = (x - y).abs();
            if d.is_nan() { f32::INFINITY } else { d }
        })
        .fold(0.0, f32::max)
}

/// Builds the trainer on the CPU, carries its weights to the WGPU backend through a checkpoint
/// in `scratch` (removed afterwards), compares the loss and gradients of the next step, then
/// takes that step on both and compares the weights it writes.
pub fn compare_one_step(
    config: TrainConfig,
    data: Arc<TrainingData>,
    scratch: &Path,
) -> Result<StepAgreement, String> {
    let mut cpu = Trainer::<CpuBackend>::new(config, data.clone(), Default::default());
    checkpoint::save(&cpu, scratch)?;
    let loaded = checkpoint::load::<WgpuBackend>(scratch, data, Default::default());
    // The weights are in memory now; the scratch copy has served.
    let _ = std::fs::remove_dir_all(scratch);
    let mut gpu = loaded?;

    let cpu_loss = cpu.preview_loss(&cpu.params());
    let wgpu_loss = gpu.preview_loss(&gpu.params());
    let (cpu_gradients, gpu_gradients) = (cpu.gradients(), gpu.gradients());
    let shapes = |blocks: &[(String, Vec<f32>)]| -> Vec<(String, usize)> {
        blocks
            .iter()
            .map(|(name, g)| (name.clone(), g.len()))
            .collect()
    };
    if shapes(&cpu_gradients) != shapes(&gpu_gradients) {
        return Err(format!(
            "the backends' models differ: {:?} on the CPU, {:?} on WGPU",
            shapes(&cpu_gradients),
            shapes(&gpu_gradients)
        ));
    }
    let learning_rate = cpu.current_lr();
    // Every parameter with a gradient, in the same order as the gradients (the model may hold
    // parameters that get none, e.g. frozen statistics).
    let with_gradients = |weights: Vec<(String, Vec<f32>)>| -> Result<Vec<Vec<f32>>, String> {
        let mut rest = weights.into_iter();
        cpu_gradients
            .iter()
            .map(|(name, g)| {
                rest.find(|(n, w)| n == name && w.len() == g.len())
                    .map(|(_, w)| w)
                    .ok_or_else(|| format!("no weights for the gradient of {name}"))
            })
            .collect()
    };
    let before = with_gradients(cpu.weights())?;
    cpu.step().map_err(|e| format!("the CPU step: {e}"))?;
    let stepped_loss = gpu.step().map_err(|e| format!("the WGPU step: {e}"))?.loss;
    let (cpu_after, gpu_after) = (
        with_gradients(cpu.weights())?,
        with_gradients(gpu.weights())?,
    );
    // The update the step queued must finish before the caller exits: a software Vulkan
    // driver torn down under running work crashes at exit.
    <WgpuBackend as burn::tensor::backend::Backend>::sync(&gpu.device)
        .map_err(|e| format!("the WGPU device did not finish the step: {e:?}"))?;

    let mut parameters = Vec::new();
    for (k, (name, cpu_grad)) in cpu_gradients.iter().enumerate() {
        let gpu_grad = &gpu_gradients[k].1;
        let gradient_scale = cpu_grad.iter().fold(0f32, |m, g| m.max(g.abs()));
        let (w0, wc, wg) = (&before[k], &cpu_after[k], &gpu_after[k]);
        let mut worst_update = 0f32;
        let mut ambiguous_updates = 0;
        for j in 0..w0.len() {
            if cpu_grad[j].abs() < SETTLED * gradient_scale {
                ambiguous_updates += 1;
                continue;
            }
            // Both backends round w - update to f32: a last-place difference is not theirs.
            let last_place = f32::EPSILON * wc[j].abs().max(wg[j].abs());
            let apart = (wc[j] - wg[j]).abs();
            let difference = if apart.is_nan() {
                f32::INFINITY
            } else {
                (apart - last_place).max(0.0) / learning_rate as f32
            };
            worst_update = worst_update.max(difference);
        }
        parameters.push(ParameterAgreement {
            name: name.clone(),
            entries: cpu_grad.len(),
            gradient_scale,
            worst_gradient_difference: worst_difference(cpu_grad, gpu_grad),
            worst_update_difference: worst_update,
            ambiguous_updates,
        });
    }
    Ok(StepAgreement {
        cpu_loss,
        wgpu_loss,
        stepped_loss,
        learning_rate,
        parameters,
    })
}
