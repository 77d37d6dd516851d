//! `--backend auto` with a hardware GPU: a few steps of the run on each backend, timed, and the
//! faster chosen. A data-centre GPU wins by far; a laptop's integrated GPU, sharing memory and
//! power with its CPU, can lose to the CPU on a small model, which only a measurement tells.

use std::sync::Arc;
use std::time::Duration;

use burn::tensor::backend::AutodiffBackend;
use web_time::Instant;

use crate::backend::{BackendKind, BackendTask, CpuBackend, ResolvedBackend, WgpuBackend};
use crate::config::TrainConfig;
use crate::train::{Trainer, TrainingData};

/// The time each backend is given, after its first step (which compiles the GPU's kernels and
/// is not timed there): two seconds for both.
pub const TIME_BOX: Duration = Duration::from_secs(1);

/// Timed steps at most, per backend: enough for a median.
const MOST_STEPS: usize = 15;

/// One backend's steps.
#[derive(Clone, Debug)]
pub struct StepTiming {
    /// The median of the timed steps.
    pub median_seconds: f64,
    pub steps: usize,
}

/// Both backends' timings and the choice.
#[derive(Clone, Debug)]
pub struct Choice {
    pub wgpu: StepTiming,
    pub cpu: StepTiming,
    pub chosen: BackendKind,
}

impl Choice {
    /// The faster by the median step (WGPU on a tie).
    pub fn of(wgpu: StepTiming, cpu: StepTiming) -> Self {
        let chosen = if cpu.median_seconds < wgpu.median_seconds {
            BackendKind::Cpu
        } else {
            BackendKind::Wgpu
        };
        Self { wgpu, cpu, chosen }
    }

    /// "auto timed both: wgpu 4.1 ms a step (15 steps), cpu 68.2 ms (2 steps): training on
    /// wgpu".
    pub fn summary(&self) -> String {
        let ms = |t: &StepTiming| t.median_seconds * 1e3;
        format!(
            "auto timed both: wgpu {:.1} ms a step ({} steps), cpu {:.1} ms ({} steps): \
             training on {}",
            ms(&self.wgpu),
            self.wgpu.steps,
            ms(&self.cpu),
            self.cpu.steps,
            match self.chosen {
                BackendKind::Wgpu => "wgpu",
                BackendKind::Cpu => "the cpu",
            }
        )
    }
}

/// Times steps of `config` on a fresh trainer: one untimed first step when `warm_up`, then
/// steps until [`TIME_BOX`] has passed (at least one) or, once the median is slower than
/// `give_up_above` seconds, at once.
struct TimeSteps {
    config: TrainConfig,
    data: Arc<TrainingData>,
    warm_up: bool,
    give_up_above: f64,
}

impl BackendTask for TimeSteps {
    type Output = Result<StepTiming, String>;

    fn run<B: AutodiffBackend>(self, device: B::Device) -> Self::Output {
        let mut trainer = Trainer::<B>::new(self.config, self.data, device);
        if self.warm_up {
            trainer.step().map_err(|e| e.to_string())?;
        }
        let started = Instant::now();
        let mut times = Vec::new();
        while times.is_empty() || (started.elapsed() < TIME_BOX && times.len() < MOST_STEPS) {
            let step = Instant::now();
            trainer.step().map_err(|e| e.to_string())?;
            times.push(step.elapsed().as_secs_f64());
            if median(&mut times.clone()) > self.give_up_above {
                break;
            }
        }
        Ok(StepTiming {
            median_seconds: median(&mut times),
            steps: times.len(),
        })
    }
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        0.5 * (values[n / 2 - 1] + values[n / 2])
    }
}

/// Times `config` on WGPU (`backend`'s device) and on the CPU, and returns `backend` set to the
/// faster, with a line saying both numbers. The CPU stops early once it is clearly the slower
/// (its median step over twice WGPU's).
pub fn faster_backend(
    mut backend: ResolvedBackend,
    config: &TrainConfig,
    data: &Arc<TrainingData>,
) -> Result<(ResolvedBackend, String), String> {
    let task = |warm_up, give_up_above| TimeSteps {
        config: config.clone(),
        data: data.clone(),
        warm_up,
        give_up_above,
    };
    let gpu_device = backend.wgpu_device.clone().unwrap_or_default();
    let wgpu = task(true, f64::INFINITY).run::<WgpuBackend>(gpu_device)?;
    // The CPU has no kernels to compile: its first step is timed.
    let cpu = task(false, 2.0 * wgpu.median_seconds).run::<CpuBackend>(Default::default())?;
    let choice = Choice::of(wgpu, cpu);
    let line = choice.summary();
    if choice.chosen == BackendKind::Cpu {
        backend.kind = BackendKind::Cpu;
        backend.description = format!("cpu (burn flex; {}): {line}", backend.description);
        backend.wgpu_device = None;
        backend.software_adapter = false;
    } else {
        backend.description = format!("{}; {line}", backend.description);
    }
    backend.time_both = false;
    Ok((backend, line))
}
