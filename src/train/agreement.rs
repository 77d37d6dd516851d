//! One training step on the WGPU backend against the same step on the CPU backend, from the
//! same weights and the same batch: the check that a GPU computes what the CPU computes, used
//! by the tests on software Vulkan and by `scripts/gpu-check.sh` on a real GPU.

use std::path::Path;
use std::sync::Arc;

use crate::backend::{CpuBackend, WgpuBackend};
use crate::config::TrainConfig;
use crate::train::{Trainer, TrainingData, checkpoint};

/// The two backends' numbers for one step.
#[derive(Debug, Clone)]
pub struct StepAgreement {
    pub cpu_loss: f64,
    pub wgpu_loss: f64,
    /// The loss the WGPU step reported when it then took the step.
    pub stepped_loss: f64,
    /// Gradient entries compared (every parameter's, flattened).
    pub gradient_entries: usize,
    /// The largest gradient entry on the CPU, in absolute value: the scale differences are
    /// measured against.
    pub largest_gradient: f32,
    /// The largest difference between the two backends' gradient entries.
    pub worst_gradient_difference: f32,
    /// The parameter that entry belongs to (`encoder.conv1.weight`).
    pub worst_parameter: String,
}

impl StepAgreement {
    pub fn loss_relative_difference(&self) -> f64 {
        (self.cpu_loss - self.wgpu_loss).abs() / self.cpu_loss.abs().max(f64::MIN_POSITIVE)
    }

    /// The worst gradient difference as a share of the largest gradient entry.
    pub fn gradient_relative_difference(&self) -> f32 {
        self.worst_gradient_difference / self.largest_gradient.max(f32::MIN_POSITIVE)
    }

    /// Within `tolerance` on the loss and on the gradients (relative, as above), with a
    /// gradient that is not zero everywhere (which would compare nothing).
    pub fn holds_within(&self, tolerance: f64) -> bool {
        self.largest_gradient > 0.0
            && self.loss_relative_difference() <= tolerance
            && f64::from(self.gradient_relative_difference()) <= tolerance
    }

    pub fn summary(&self) -> String {
        format!(
            "cpu loss {:.6}, wgpu loss {:.6}, relative difference {:.1e}; gradients: {} entries, \
             largest {:.3e}, worst difference {:.3e} ({:.1e} of the largest, in {})",
            self.cpu_loss,
            self.wgpu_loss,
            self.loss_relative_difference(),
            self.gradient_entries,
            self.largest_gradient,
            self.worst_gradient_difference,
            self.gradient_relative_difference(),
            self.worst_parameter
        )
    }
}

/// Builds the trainer on the CPU, carries its weights to the WGPU backend through a checkpoint
/// in `scratch` (removed afterwards), compares the loss and gradients of the next step, then
/// takes that step on WGPU.
pub fn compare_one_step(
    config: TrainConfig,
    data: Arc<TrainingData>,
    scratch: &Path,
) -> Result<StepAgreement, String> {
    let cpu = Trainer::<CpuBackend>::new(config, data.clone(), Default::default());
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
    let mut largest_gradient = 0f32;
    let (mut worst_gradient_difference, mut worst_parameter) = (0f32, String::new());
    for ((name, cpu_block), (_, gpu_block)) in cpu_gradients.iter().zip(&gpu_gradients) {
        for (a, b) in cpu_block.iter().zip(gpu_block) {
            largest_gradient = largest_gradient.max(a.abs());
            // NaN on either side counts as the largest difference there is.
            let difference = if (a - b).is_nan() {
                f32::INFINITY
            } else {
                (a - b).abs()
            };
            if difference > worst_gradient_difference {
                worst_gradient_difference = difference;
                worst_parameter = name.clone();
            }
        }
    }
    let stepped_loss = gpu.step().map_err(|e| e.to_string())?.loss;
    // The update the step queued must finish before the caller exits: a software Vulkan
    // driver torn down under running work crashes at exit.
    <WgpuBackend as burn::tensor::backend::Backend>::sync(&gpu.device)
        .map_err(|e| format!("the WGPU device did not finish the step: {e:?}"))?;
    Ok(StepAgreement {
        cpu_loss,
        wgpu_loss,
        stepped_loss,
        gradient_entries: cpu_gradients.iter().map(|(_, g)| g.len()).sum(),
        largest_gradient,
        worst_gradient_difference,
        worst_parameter,
    })
}
