//! One GPU device for drawing and training: when training runs on WGPU, this plugin hands
//! burn the very device and queue Bevy renders with (`init_device` on a `WgpuSetup` built from
//! Bevy's render resources), so the adapter is the renderer's, tensors never cross devices,
//! and the panel names the adapter in use.

use bevy::prelude::*;
use bevy::render::RenderApp;
use bevy::render::renderer::{
    RenderAdapter, RenderAdapterInfo, RenderDevice, RenderInstance, RenderQueue,
};
use burn::backend::wgpu::{RuntimeOptions, WgpuDevice, WgpuSetup, init_device};

use super::runs::Runs;

/// Gives the training the renderer's device. Add it after `DefaultPlugins` and the training
/// plugin: it acts in `cleanup`, when every plugin has finished and the renderer exists.
pub struct SharedDevicePlugin;

impl Plugin for SharedDevicePlugin {
    fn build(&self, _app: &mut App) {}

    fn cleanup(&self, app: &mut App) {
        let awaiting = app.world().get_resource::<Runs>().is_some_and(|runs| {
            runs.list.iter().any(|run| {
                run.link
                    .as_ref()
                    .is_some_and(|l| l.awaits_renderer_device())
            })
        });
        if !awaiting {
            return;
        }
        // Without the renderer's device (a renderer that is not wgpu's, limits it cannot meet),
        // training opens a device of its own, as `clamp train` does.
        let (device, adapter) = renderer_device(app).unwrap_or_else(|reason| {
            warn!("training on a WGPU device of its own: {reason}");
            (WgpuDevice::default(), "its own device".into())
        });
        // Every run trains on the same device.
        if let Some(mut runs) = app.world_mut().get_resource_mut::<Runs>() {
            for run in &mut runs.list {
                if let Some(link) = run.link.as_mut().filter(|l| l.awaits_renderer_device()) {
                    link.share_renderer_device(device.clone(), &adapter);
                }
            }
        }
    }
}

/// burn's handle on the renderer's device, and a line naming the adapter.
fn renderer_device(app: &App) -> Result<(WgpuDevice, String), String> {
    let render = app.get_sub_app(RenderApp).ok_or("no render app")?.world();
    let (Some(device), Some(queue), Some(adapter), Some(info), Some(instance)) = (
        render.get_resource::<RenderDevice>(),
        render.get_resource::<RenderQueue>(),
        render.get_resource::<RenderAdapter>(),
        render.get_resource::<RenderAdapterInfo>(),
        render.get_resource::<RenderInstance>(),
    ) else {
        return Err("the renderer's device is not ready".into());
    };
    let setup = WgpuSetup {
        instance: (**instance.0).clone(),
        adapter: (**adapter.0).clone(),
        device: device.wgpu_device().clone(),
        queue: (**queue.0).clone(),
        backend: info.backend,
    };
    // burn sizes its kernels from the adapter's limits: the device must have them all (it does
    // unless the renderer was asked for fewer, e.g. WGPU_SETTINGS_PRIO=webgpu).
    if !setup.adapter.limits().check_limits(&setup.device.limits()) {
        return Err("the renderer's device has lower limits than its adapter".into());
    }
    // A browser does not name its adapter.
    if info.name.is_empty() {
        return Ok((
            init_device(setup, RuntimeOptions::default()),
            format!("the browser's WebGPU adapter ({:?})", info.backend),
        ));
    }
    let name = format!(
        "{} on {:?}{}",
        info.name,
        info.backend,
        if info.device_type == wgpu::DeviceType::Cpu {
            ", software"
        } else {
            ""
        }
    );
    Ok((init_device(setup, RuntimeOptions::default()), name))
}
