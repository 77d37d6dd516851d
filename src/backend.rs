//! Where training runs: burn's WGPU backend or its pure-Rust CPU backend (`flex`), chosen at
//! start-up. `auto` times a few steps of each on a hardware GPU and takes the faster (a laptop's
//! integrated GPU can lose to its own CPU; `crate::train::choose`), and takes the CPU backend
//! when the only adapter is a software rasterizer (lavapipe, llvmpipe): there the CPU backend is
//! several times faster per step and leaves the rasterizer its cores. It always says which it
//! picked, and why.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

#[cfg(feature = "gpu")]
use burn::backend::Wgpu;
#[cfg(feature = "gpu")]
use burn::backend::wgpu::WgpuDevice;
use burn::backend::{Autodiff, Flex};
use burn::tensor::backend::AutodiffBackend;

use serde::{Deserialize, Serialize};

/// Where training runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum BackendChoice {
    /// With a hardware GPU, the faster of WGPU and the CPU backend, timed over a few steps
    /// when training starts; the CPU backend when the only adapter is a software rasterizer
    /// (there the CPU backend is several times faster and leaves the rasterizer its cores).
    Auto,
    /// burn's WGPU backend on whatever adapter there is (software Vulkan counts).
    Wgpu,
    /// burn's pure-Rust CPU backend (`flex`).
    Cpu,
}

/// The CPU training backend.
pub type CpuBackend = Autodiff<Flex>;
/// The GPU training backend.
#[cfg(feature = "gpu")]
pub type WgpuBackend = Autodiff<Wgpu>;

/// The device handle of the GPU backend (nothing in a build without it).
#[cfg(feature = "gpu")]
pub type GpuDevice = WgpuDevice;
#[cfg(not(feature = "gpu"))]
pub type GpuDevice = ();

/// What `resolve` decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BackendKind {
    Cpu,
    Wgpu,
}

/// The backend to use, the adapter it found, and a line for the log.
#[derive(Clone, Debug)]
pub struct ResolvedBackend {
    pub kind: BackendKind,
    /// e.g. "wgpu (llvmpipe (LLVM 15.0.7, 256 bits), Vulkan, Cpu)".
    pub description: String,
    /// Set when the request could not be honoured (no adapter: CPU instead).
    pub warning: Option<String>,
    /// The WGPU device to train on: the viewer's renderer's own, once shared
    /// ([`ResolvedBackend::share`]); `None` lets burn open a device of its own.
    pub wgpu_device: Option<GpuDevice>,
    /// WGPU on a software rasterizer, whose loops are cut short ([`SOFTWARE_ADAPTER_LOOP_LIMIT`]).
    pub software_adapter: bool,
    /// `auto` with a hardware GPU: a training run times a few steps on each backend before it
    /// starts and trains on the faster (`crate::train::choose`).
    pub time_both: bool,
}

/// The most iterations a shader loop runs on a software Vulkan adapter: Mesa's lavapipe ends
/// every loop there (its guard against runaway shaders). burn's sums loop along the summed
/// values, up to four an iteration, so a longer sum comes out short, silently (300,000 ones
/// sum to 262,128 there); clamp's own kernels split their sums into short loops
/// (`kernels::gpu`). GPU drivers have no such limit.
pub const SOFTWARE_ADAPTER_LOOP_LIMIT: usize = 65_532;

/// The most loop iterations a training run may ask of a software adapter's sums: under
/// [`SOFTWARE_ADAPTER_LOOP_LIMIT`] with a margin.
pub const SOFTWARE_ADAPTER_SAFE_ITERATIONS: usize = 60_000;

impl ResolvedBackend {
    /// Trains on `device`, the renderer's, described by `adapter` (as the renderer found it).
    pub fn share(&mut self, device: GpuDevice, adapter: &str) {
        self.description = format!("wgpu ({adapter}, shared with the renderer)");
        self.wgpu_device = Some(device);
    }
}

/// Information about the best wgpu adapter, if there is one.
#[derive(Clone, Debug)]
pub struct AdapterSummary {
    pub name: String,
    pub backend: String,
    pub software: bool,
}

/// Looks for a wgpu adapter without creating a device.
pub fn probe_adapter() -> Option<AdapterSummary> {
    let instance =
        wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let adapter = block_on(instance.request_adapter(&wgpu::RequestAdapterOptions {
        power_preference: wgpu::PowerPreference::HighPerformance,
        ..Default::default()
    }))
    .ok()?;
    let info = adapter.get_info();
    Some(AdapterSummary {
        name: info.name,
        backend: format!("{:?}", info.backend),
        software: info.device_type == wgpu::DeviceType::Cpu,
    })
}

/// Decides the backend for `choice`, looking for an adapter unless the CPU is asked for.
pub fn resolve(choice: BackendChoice) -> ResolvedBackend {
    let adapter = match choice {
        BackendChoice::Cpu => None,
        _ => probe_adapter(),
    };
    resolve_with(choice, adapter)
}

/// Decides the backend for `choice` given the adapter already found (the viewer looks once,
/// for drawing and training).
pub fn resolve_with(choice: BackendChoice, adapter: Option<AdapterSummary>) -> ResolvedBackend {
    let cpu = |description: String, warning: Option<String>| ResolvedBackend {
        kind: BackendKind::Cpu,
        description,
        warning,
        wgpu_device: None,
        software_adapter: false,
        time_both: false,
    };
    if choice == BackendChoice::Cpu {
        return cpu("cpu (burn flex, as asked)".into(), None);
    }
    if !cfg!(feature = "gpu") {
        return cpu(
            "cpu (burn flex: this build trains on the CPU only)".into(),
            (choice == BackendChoice::Wgpu).then(|| {
                "this build has no GPU training (feature `gpu`): training on the CPU".into()
            }),
        );
    }
    let Some(adapter) = adapter else {
        return cpu(
            "cpu (burn flex)".into(),
            Some("no WGPU adapter found (install a Vulkan driver, e.g. mesa-vulkan-drivers): training on the CPU".into()),
        );
    };
    let label = format!(
        "{} on {}{}",
        adapter.name,
        adapter.backend,
        if adapter.software { ", software" } else { "" }
    );
    if choice == BackendChoice::Auto && adapter.software {
        return cpu(
            format!("cpu (burn flex): auto chose it over the software adapter {label}"),
            None,
        );
    }
    ResolvedBackend {
        kind: BackendKind::Wgpu,
        description: format!("wgpu ({label})"),
        warning: None,
        wgpu_device: None,
        software_adapter: adapter.software,
        time_both: choice == BackendChoice::Auto,
    }
}

/// Code generic over the training backend, run on the one `resolve` chose.
pub trait BackendTask {
    type Output;
    fn run<B: AutodiffBackend>(self, device: B::Device) -> Self::Output;
}

/// Runs `task` on the resolved backend.
pub fn run_on<T: BackendTask>(backend: &ResolvedBackend, task: T) -> T::Output {
    match backend.kind {
        BackendKind::Cpu => task.run::<CpuBackend>(Default::default()),
        #[cfg(feature = "gpu")]
        BackendKind::Wgpu => {
            task.run::<WgpuBackend>(backend.wgpu_device.clone().unwrap_or_default())
        }
        // `resolve_with` never picks WGPU in a build without it.
        #[cfg(not(feature = "gpu"))]
        BackendKind::Wgpu => task.run::<CpuBackend>(Default::default()),
    }
}

/// Drives a future that completes without a reactor (wgpu's native futures do).
fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut context = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(value) = future.as_mut().poll(&mut context) {
            return value;
        }
        std::thread::yield_now();
    }
}
