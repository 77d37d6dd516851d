//! Contact lines and the unit-sphere wireframe of every run, as one mesh of line segments a run
//! (`shaders/lines.wgsl`), drawn over the spheres by the scene camera and moved into the run's
//! cell of the picture as its spheres are. The pinned sphere's contacts are always drawn, every
//! contact on demand.

use bevy::asset::{RenderAssetUsages, load_internal_asset, uuid_handle};
use bevy::camera::visibility::NoFrustumCulling;
use bevy::mesh::{MeshVertexBufferLayoutRef, PrimitiveTopology};
use bevy::pbr::{MaterialPipeline, MaterialPipelineKey};
use bevy::prelude::*;
use bevy::render::render_resource::{
    AsBindGroup, CompareFunction, RenderPipelineDescriptor, SpecializedMeshPipelineError,
};
use bevy::shader::ShaderRef;

use super::camera::{ATTRIBUTE_CELL, OrbitUpdate, WHOLE_PICTURE, shown_runs, view_cells};
use super::picking::Selection;
use super::runs::{Runs, one_entity_a_run};
use super::scene::{Scene, SceneSettings, SceneUpdate, ViewerMode};
use crate::projection::ProjectionMode;

const LINE_SHADER: Handle<Shader> = uuid_handle!("2b7d9c41-6e83-4f15-a0c2-9d4e1f7b3a66");

/// Lines drawn at most a run, so a fully jammed 10,000-sphere packing stays interactive.
pub const MAX_CONTACT_LINES: usize = 40_000;

#[derive(Asset, TypePath, AsBindGroup, Debug, Clone, Default)]
pub struct LineMaterial {}

impl Material for LineMaterial {
    fn vertex_shader() -> ShaderRef {
        ShaderRef::Handle(LINE_SHADER)
    }

    fn fragment_shader() -> ShaderRef {
        ShaderRef::Handle(LINE_SHADER)
    }

    fn alpha_mode(&self) -> AlphaMode {
        AlphaMode::Blend
    }

    fn enable_prepass() -> bool {
        false
    }

    fn enable_shadows() -> bool {
        false
    }

    fn specialize(
        _pipeline: &MaterialPipeline,
        descriptor: &mut RenderPipelineDescriptor,
        layout: &MeshVertexBufferLayoutRef,
        _key: MaterialPipelineKey<Self>,
    ) -> Result<(), SpecializedMeshPipelineError> {
        let vertex_layout = layout.0.get_layout(&[
            Mesh::ATTRIBUTE_POSITION.at_shader_location(0),
            Mesh::ATTRIBUTE_COLOR.at_shader_location(1),
            ATTRIBUTE_CELL.at_shader_location(2),
        ])?;
        descriptor.vertex.buffers = vec![vertex_layout];
        // Contact lines run inside the shells: drawn over them, so they can be seen.
        if let Some(depth) = descriptor.depth_stencil.as_mut() {
            depth.depth_write_enabled = Some(false);
            depth.depth_compare = Some(CompareFunction::Always);
        }
        descriptor.primitive.cull_mode = None;
        Ok(())
    }
}

/// The entity that carries run `run`'s lines.
#[derive(Component)]
pub struct RunLines {
    pub run: usize,
}

#[derive(Resource)]
struct LineAssets {
    material: Handle<LineMaterial>,
}

pub struct LinesPlugin;

impl Plugin for LinesPlugin {
    fn build(&self, app: &mut App) {
        load_internal_asset!(
            app,
            LINE_SHADER,
            "../../shaders/lines.wgsl",
            Shader::from_wgsl
        );
        super::camera::load_cells_shader(app);
        app.add_plugins(MaterialPlugin::<LineMaterial>::default())
            .add_systems(Startup, setup_lines)
            .add_systems(
                Update,
                (sync_lines, update_lines)
                    .chain()
                    .after(SceneUpdate)
                    .after(OrbitUpdate),
            );
    }
}

fn setup_lines(mut commands: Commands, mut materials: ResMut<Assets<LineMaterial>>) {
    let material = materials.add(LineMaterial::default());
    commands.insert_resource(LineAssets { material });
}

/// A line mesh for every run, made as runs come and removed as they go.
fn sync_lines(
    mut commands: Commands,
    runs: Res<Runs>,
    assets: Option<Res<LineAssets>>,
    mut meshes: ResMut<Assets<Mesh>>,
    lines: Query<(Entity, &RunLines)>,
) {
    let Some(assets) = assets else { return };
    let existing = lines.iter().map(|(entity, line)| (entity, line.run));
    one_entity_a_run(&mut commands, runs.len(), existing, |commands, run| {
        commands.spawn((
            RunLines { run },
            Mesh3d(meshes.add(line_mesh(LineBuffers::default()))),
            MeshMaterial3d(assets.material.clone()),
            Transform::IDENTITY,
            NoFrustumCulling,
        ));
    });
}

/// Segment ends, two vertices a segment.
#[derive(Default)]
struct LineBuffers {
    positions: Vec<[f32; 3]>,
    colors: Vec<[f32; 4]>,
}

impl LineBuffers {
    fn segment(&mut self, a: Vec3, b: Vec3, color: Color) {
        let color = LinearRgba::from(color).to_f32_array();
        self.positions.extend([a.to_array(), b.to_array()]);
        self.colors.extend([color, color]);
    }

    /// The scene's lines: the pinned sphere's contacts always, every contact when asked, and
    /// the unit sphere when the true 3-D embedding is drawn.
    fn of_scene(scene: &Scene, settings: &SceneSettings, selection: &Selection) -> Self {
        let mut out = Self::default();
        let n = scene.len();
        let line = Color::srgba(0.85, 0.88, 0.95, 0.22);
        let pinned_line = Color::srgb(1.0, 0.6, 0.15);
        for pair in &scene.frame.pairs {
            let (i, j) = (pair[0] as usize, pair[1] as usize);
            if i < n && j < n && selection.pinned.is_some_and(|p| p == i || p == j) {
                out.segment(scene.drawn[i], scene.drawn[j], pinned_line);
            }
        }
        if settings.show_contacts {
            for pair in scene.frame.pairs.iter().take(MAX_CONTACT_LINES) {
                let (i, j) = (pair[0] as usize, pair[1] as usize);
                if i < n && j < n {
                    out.segment(scene.drawn[i], scene.drawn[j], line);
                }
            }
        }
        let raw = scene
            .projector
            .as_ref()
            .is_some_and(|p| p.mode == ProjectionMode::Raw || p.dim() <= 3);
        if settings.show_wireframe && raw && scene.frame.unit_sphere {
            out.unit_sphere();
        }
        out
    }

    /// The unit sphere on which CLAMP's views live: five parallels and six meridians.
    fn unit_sphere(&mut self) {
        let color = Color::srgba(0.6, 0.65, 0.75, 0.18);
        const SEGMENTS: usize = 64;
        let step = std::f32::consts::TAU / SEGMENTS as f32;
        for k in 1..6 {
            let polar = std::f32::consts::PI * k as f32 / 6.0;
            let (ring, height) = (polar.sin(), polar.cos());
            let at = |s: usize| {
                let a = step * s as f32;
                Vec3::new(ring * a.cos(), height, ring * a.sin())
            };
            for s in 0..SEGMENTS {
                self.segment(at(s), at(s + 1), color);
            }
        }
        for k in 0..6 {
            let a = std::f32::consts::PI * k as f32 / 6.0;
            let at = |s: usize| {
                let polar = step * s as f32;
                Vec3::new(polar.sin() * a.cos(), polar.cos(), polar.sin() * a.sin())
            };
            for s in 0..SEGMENTS {
                self.segment(at(s), at(s + 1), color);
            }
        }
    }
}

/// A line-list mesh of `buffers` in the whole picture (one zero-length segment when there is nothing to
/// draw: an empty vertex buffer is not a valid draw).
fn line_mesh(buffers: LineBuffers) -> Mesh {
    let mut mesh = Mesh::new(
        PrimitiveTopology::LineList,
        RenderAssetUsages::MAIN_WORLD | RenderAssetUsages::RENDER_WORLD,
    );
    fill_lines(&mut mesh, buffers, WHOLE_PICTURE);
    mesh
}

fn fill_lines(mesh: &mut Mesh, mut buffers: LineBuffers, cell: Vec4) {
    if buffers.positions.is_empty() {
        buffers.segment(Vec3::ZERO, Vec3::ZERO, Color::NONE);
    }
    let cells = vec![cell.to_array(); buffers.positions.len()];
    mesh.insert_attribute(Mesh::ATTRIBUTE_POSITION, buffers.positions);
    mesh.insert_attribute(Mesh::ATTRIBUTE_COLOR, buffers.colors);
    mesh.insert_attribute(ATTRIBUTE_CELL, cells);
}

/// Rebuilds each run's lines in its cell (in the physics sandbox, the first run's only).
fn update_lines(
    runs: Res<Runs>,
    settings: Res<SceneSettings>,
    selection: Res<Selection>,
    mode: Option<Res<ViewerMode>>,
    lines: Query<(&RunLines, &Mesh3d)>,
    mut meshes: ResMut<Assets<Mesh>>,
) {
    let cells = view_cells(shown_runs(&runs, mode.as_deref()));
    for (line, mesh) in &lines {
        let drawn = runs.list.get(line.run).zip(cells.get(line.run));
        let (buffers, cell) = drawn.map_or_else(
            || (LineBuffers::default(), WHOLE_PICTURE),
            |(run, &cell)| {
                (
                    LineBuffers::of_scene(&run.scene, &settings, &selection),
                    cell,
                )
            },
        );
        if let Some(mut mesh) = meshes.get_mut(&mesh.0) {
            fill_lines(&mut mesh, buffers, cell);
        }
    }
}
