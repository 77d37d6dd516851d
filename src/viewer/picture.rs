//! The scene picture in the window, drawn inside egui's pass by a paint callback that fetches
//! one texel per pixel (`shaders/picture.wgsl`). egui's own image path multiplies in gamma space,
//! converting every pixel to gamma and back (six `pow` per pixel): over a picture that fills
//! most of the window, a software rasterizer spent as much on that as on drawing the spheres.

use bevy::asset::{load_internal_asset, uuid_handle};
use bevy::core_pipeline::FullscreenShader;
use bevy::prelude::*;
use bevy::render::render_asset::RenderAssets;
use bevy::render::render_phase::TrackedRenderPass;
use bevy::render::render_resource::binding_types::{sampler, texture_2d};
use bevy::render::render_resource::{
    BindGroup, BindGroupEntries, BindGroupLayoutDescriptor, BindGroupLayoutEntries,
    CachedRenderPipelineId, ColorTargetState, ColorWrites, FragmentState, PipelineCache,
    RenderPipelineDescriptor, SamplerBindingType, ShaderStages, SpecializedRenderPipeline,
    SpecializedRenderPipelines, TextureSampleType,
};
use bevy::render::renderer::RenderDevice;
use bevy::render::sync_world::RenderEntity;
use bevy::render::texture::GpuImage;
use bevy::render::{RenderApp, RenderStartup};
use bevy_egui::egui;
use bevy_egui::render::{EguiBevyPaintCallback, EguiBevyPaintCallbackImpl, EguiPipelineKey};

const PICTURE_SHADER: Handle<Shader> = uuid_handle!("8d2e41c7-5a90-4b3f-a6e1-0c9b7d3f2e58");

pub struct PicturePlugin;

impl Plugin for PicturePlugin {
    fn build(&self, app: &mut App) {
        load_internal_asset!(
            app,
            PICTURE_SHADER,
            "../../shaders/picture.wgsl",
            Shader::from_wgsl
        );
        let Some(render_app) = app.get_sub_app_mut(RenderApp) else {
            return;
        };
        render_app
            .init_resource::<SpecializedRenderPipelines<PicturePipeline>>()
            .add_systems(RenderStartup, init_picture_pipeline);
    }
}

/// The paint command for the picture: egui places it (its rect becomes the viewport).
pub fn paint(image: AssetId<Image>, rect: egui::Rect) -> egui::epaint::PaintCallback {
    EguiBevyPaintCallback::new_paint_callback(rect, PictureCallback { image })
}

#[derive(Resource)]
pub struct PicturePipeline {
    layout: BindGroupLayoutDescriptor,
    fullscreen: FullscreenShader,
}

fn init_picture_pipeline(mut commands: Commands, fullscreen: Res<FullscreenShader>) {
    let layout = BindGroupLayoutDescriptor::new(
        "scene_picture_layout",
        &BindGroupLayoutEntries::sequential(
            ShaderStages::FRAGMENT,
            (
                texture_2d(TextureSampleType::Float { filterable: true }),
                sampler(SamplerBindingType::Filtering),
            ),
        ),
    );
    commands.insert_resource(PicturePipeline {
        layout,
        fullscreen: fullscreen.clone(),
    });
}

impl SpecializedRenderPipeline for PicturePipeline {
    type Key = EguiPipelineKey;

    fn specialize(&self, key: Self::Key) -> RenderPipelineDescriptor {
        RenderPipelineDescriptor {
            label: Some("scene picture".into()),
            layout: vec![self.layout.clone()],
            vertex: self.fullscreen.to_vertex_state(),
            fragment: Some(FragmentState {
                shader: PICTURE_SHADER,
                entry_point: Some("fragment".into()),
                // The picture is opaque: written, not blended.
                targets: vec![Some(ColorTargetState {
                    format: key.target_format,
                    blend: None,
                    write_mask: ColorWrites::ALL,
                })],
                ..default()
            }),
            ..default()
        }
    }
}

struct PictureCallback {
    image: AssetId<Image>,
}

/// What the egui pass needs to draw a picture this frame.
struct PictureDraw {
    pipeline: CachedRenderPipelineId,
    bind_group: BindGroup,
}

/// The pictures of one egui view, by image: every paint callback of a context is handed the
/// same render entity, and a comparison shows two pictures.
#[derive(Component, Default)]
struct PictureDraws(std::collections::HashMap<AssetId<Image>, PictureDraw>);

impl EguiBevyPaintCallbackImpl for PictureCallback {
    fn update(
        &self,
        _info: egui::PaintCallbackInfo,
        render_entity: RenderEntity,
        key: EguiPipelineKey,
        world: &mut World,
    ) {
        let pipeline = world.resource_scope(
            |world, mut pipelines: Mut<SpecializedRenderPipelines<PicturePipeline>>| {
                pipelines.specialize(
                    world.resource::<PipelineCache>(),
                    world.resource::<PicturePipeline>(),
                    key,
                )
            },
        );
        // The picture is reallocated when the panel or the render scale changes size, so the
        // bind group is made anew each frame (one small object).
        let bind_group = world
            .resource::<RenderAssets<GpuImage>>()
            .get(self.image)
            .map(|image| {
                let layout = world
                    .resource::<PipelineCache>()
                    .get_bind_group_layout(&world.resource::<PicturePipeline>().layout);
                world.resource::<RenderDevice>().create_bind_group(
                    "scene_picture",
                    &layout,
                    &BindGroupEntries::sequential((&image.texture_view, &image.sampler)),
                )
            });
        // (A picture whose image is gone, a comparison's that ended, lets its texture go.)
        let gone: Vec<AssetId<Image>> = world
            .get_entity(render_entity.id())
            .ok()
            .and_then(|entity| entity.get::<PictureDraws>())
            .map(|draws| {
                let images = world.resource::<RenderAssets<GpuImage>>();
                draws
                    .0
                    .keys()
                    .filter(|id| images.get(**id).is_none())
                    .copied()
                    .collect()
            })
            .unwrap_or_default();
        let Ok(mut entity) = world.get_entity_mut(render_entity.id()) else {
            return;
        };
        if !entity.contains::<PictureDraws>() {
            entity.insert(PictureDraws::default());
        }
        let Some(mut draws) = entity.get_mut::<PictureDraws>() else {
            return;
        };
        for id in gone {
            draws.0.remove(&id);
        }
        match bind_group {
            Some(bind_group) => {
                draws.0.insert(
                    self.image,
                    PictureDraw {
                        pipeline,
                        bind_group,
                    },
                );
            }
            None => {
                draws.0.remove(&self.image);
            }
        }
    }

    fn render<'pass>(
        &self,
        _info: egui::PaintCallbackInfo,
        render_pass: &mut TrackedRenderPass<'pass>,
        render_entity: RenderEntity,
        _key: EguiPipelineKey,
        world: &'pass World,
    ) {
        let Some(draw) = world
            .get_entity(render_entity.id())
            .ok()
            .and_then(|entity| entity.get::<PictureDraws>())
            .and_then(|draws| draws.0.get(&self.image))
        else {
            return;
        };
        // Until the pipeline has compiled (the first frames), the panel color shows.
        let Some(pipeline) = world
            .resource::<PipelineCache>()
            .get_render_pipeline(draw.pipeline)
        else {
            return;
        };
        render_pass.set_render_pipeline(pipeline);
        render_pass.set_bind_group(0, &draw.bind_group, &[]);
        render_pass.draw(0..3, 0..1);
    }
}
