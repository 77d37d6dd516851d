//! The viewer's scene drawn into an image instead of a window: the same plugins and the same
//! sphere shader, with no window and no X server, read back after every frame. `clamp record`
//! renders its video with it.

use std::sync::{Arc, Mutex};

use bevy::app::PluginsState;
use bevy::prelude::*;
use bevy::render::RenderPlugin;
use bevy::render::view::screenshot::{Screenshot, ScreenshotCaptured};
use bevy::window::ExitCondition;

use super::camera::{OrbitCamera, apply_orbit, scene_camera, scene_target};
use super::lines::LinesPlugin;
use super::palette;
use super::runs::{Run, Runs, ScenePlugin};
use super::scene::{SceneSettings, SceneUpdate};
use super::spheres::SphereRenderPlugin;

/// The viewer's scene rendered into an image, one frame per call.
pub struct OffscreenRenderer {
    app: App,
    target: Handle<Image>,
    /// Frames already drawn (the first one waits for the GPU resources to be ready).
    rendered: usize,
}

impl OffscreenRenderer {
    pub fn new((width, height): (u32, u32)) -> Result<Self, String> {
        let mut app = App::new();
        app.add_plugins(
            DefaultPlugins
                .build()
                .disable::<bevy::winit::WinitPlugin>()
                .set(WindowPlugin {
                    primary_window: None,
                    exit_condition: ExitCondition::DontExit,
                    close_when_requested: false,
                    ..default()
                })
                .set(RenderPlugin {
                    // Every pipeline ready on the first frame: no frame without spheres.
                    synchronous_pipeline_compilation: true,
                    ..default()
                })
                .set(bevy::log::LogPlugin {
                    filter: "warn,wgpu=error,naga=warn".into(),
                    ..default()
                }),
        )
        .insert_resource(ClearColor(palette::BACKGROUND))
        .add_plugins((
            ScenePlugin {
                ease_in_real_time: false,
                ..default()
            },
            SphereRenderPlugin,
            LinesPlugin,
        ))
        .insert_resource(OrbitCamera {
            auto_rotate: 0.0,
            ..default()
        })
        .add_systems(Update, apply_orbit.before(SceneUpdate));
        // One run, given its frames; its camera draws into the target.
        app.world_mut().resource_mut::<Runs>().list = vec![Run::drawn()];

        let target = app
            .world_mut()
            .resource_mut::<Assets<Image>>()
            .add(scene_target(UVec2::new(width, height)));
        let place = app.world().resource::<OrbitCamera>().transform();
        app.world_mut()
            .spawn(scene_camera(target.clone(), place, 0));
        while app.plugins_state() == PluginsState::Adding {
            bevy::tasks::tick_global_task_pools_on_main_thread();
        }
        app.finish();
        app.cleanup();
        Ok(Self {
            app,
            target,
            rendered: 0,
        })
    }

    /// Draws the spheres `size` times their radius ([`SceneSettings::sphere_size`]).
    pub fn set_sphere_size(&mut self, size: f32) {
        self.app
            .world_mut()
            .resource_mut::<SceneSettings>()
            .sphere_size = size;
    }

    /// Class purity of the spheres last rendered, in their drawn positions.
    pub fn purity(&self) -> Option<f64> {
        self.app.world().resource::<Runs>().list[0].scene.purity
    }

    /// Shows `frame` from orbit angle `yaw` and reads the picture back.
    pub fn render(
        &mut self,
        frame: super::scene::SceneFrame,
        yaw: f32,
    ) -> Result<image::RgbaImage, String> {
        self.render_framed(frame, yaw, 1.0)
    }

    /// [`OffscreenRenderer::render`] with the camera stepped back by `framing` (at least 1,
    /// as [`OrbitCamera::framing`]).
    pub fn render_framed(
        &mut self,
        frame: super::scene::SceneFrame,
        yaw: f32,
        framing: f32,
    ) -> Result<image::RgbaImage, String> {
        let world = self.app.world_mut();
        world.resource_mut::<Runs>().list[0].incoming = Some(frame);
        world.resource_mut::<SceneSettings>().show_wireframe = true;
        let mut orbit = world.resource_mut::<OrbitCamera>();
        orbit.yaw = yaw;
        orbit.framing = framing.max(1.0);
        // One update applies the frame to the scene and the mesh; the capture is read back a
        // frame or two later. Before the very first capture, a few more updates let the mesh,
        // the material and its pipeline reach the GPU, so frame 0 is not an empty picture.
        let updates = if self.rendered == 0 { 4 } else { 1 };
        for _ in 0..updates {
            self.app.update();
        }
        self.rendered += 1;
        let slot: Arc<Mutex<Option<Image>>> = Arc::new(Mutex::new(None));
        let sink = slot.clone();
        self.app
            .world_mut()
            .spawn(Screenshot::image(self.target.clone()))
            .observe(move |captured: On<ScreenshotCaptured>| {
                if let Ok(mut slot) = sink.lock() {
                    *slot = Some(captured.image.clone());
                }
            });
        for _ in 0..200 {
            self.app.update();
            if let Some(image) = slot.lock().ok().and_then(|mut s| s.take()) {
                return image
                    .try_into_dynamic()
                    .map(|d| d.to_rgba8())
                    .map_err(|e| format!("cannot read the rendered frame back: {e:?}"));
            }
        }
        Err("the offscreen frame was never read back (is a Vulkan driver installed?)".into())
    }
}
