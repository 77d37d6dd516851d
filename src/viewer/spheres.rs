//! Draws every run's spheres with one mesh of camera-facing quads and our impostor shader
//! (`shaders/spheres.wgsl`): one entity and one draw call per run however many spheres it has,
//! all seen by the one scene camera, each run moved into its cell of the picture by the shader.
//! The quads are re-sorted back to front every frame so the translucent shells blend in order.
//! Contact lines and the unit-sphere wireframe are [`super::lines`].

use bevy::asset::{RenderAssetUsages, load_internal_asset, uuid_handle};
use bevy::camera::visibility::NoFrustumCulling;
use bevy::mesh::{Indices, MeshVertexAttribute, MeshVertexBufferLayoutRef, PrimitiveTopology};
use bevy::pbr::{MaterialPipeline, MaterialPipelineKey};
use bevy::prelude::*;
use bevy::render::mesh::allocator::MeshAllocatorSettings;
use bevy::render::render_resource::{
    AsBindGroup, RenderPipelineDescriptor, SpecializedMeshPipelineError, VertexFormat,
};
use bevy::render::slab_allocator::SlabAllocatorSettings;
use bevy::shader::ShaderRef;

use super::camera::{
    ATTRIBUTE_CELL, OrbitUpdate, SceneCamera, WHOLE_PICTURE, shown_runs, view_cells,
};
use super::palette;
use super::picking::Selection;
use super::runs::{Runs, one_entity_a_run};
use super::scene::{Scene, SceneSettings, SceneUpdate, ViewerMode};

/// The impostor shader, compiled into the binary so the app runs from any directory.
pub const SPHERE_SHADER: Handle<Shader> = uuid_handle!("5f0b6a4e-3c1d-4e0a-9b8f-2d7c6e5a4b31");

/// Per-vertex radius and highlight state.
pub const ATTRIBUTE_SPHERE: MeshVertexAttribute = MeshVertexAttribute::new(
    "SphereRadiusHighlight",
    0x5EED_C1A3_0001,
    VertexFormat::Float32x2,
);

/// Highlight codes the shader understands.
pub mod highlight {
    pub const PLAIN: f32 = 0.0;
    pub const HOVERED: f32 = 1.0;
    pub const PINNED: f32 = 2.0;
    pub const TOUCHING_PINNED: f32 = 3.0;
    pub const DIMMED: f32 = 4.0;
}

#[derive(Asset, TypePath, AsBindGroup, Debug, Clone)]
pub struct SphereMaterial {
    /// x: shell opacity, y: rim sharpness, z: contact highlight strength.
    #[uniform(0)]
    pub style: Vec4,
}

impl Material for SphereMaterial {
    fn vertex_shader() -> ShaderRef {
        ShaderRef::Handle(SPHERE_SHADER)
    }

    fn fragment_shader() -> ShaderRef {
        ShaderRef::Handle(SPHERE_SHADER)
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
            Mesh::ATTRIBUTE_UV_0.at_shader_location(1),
            Mesh::ATTRIBUTE_COLOR.at_shader_location(2),
            ATTRIBUTE_SPHERE.at_shader_location(3),
            ATTRIBUTE_CELL.at_shader_location(4),
        ])?;
        descriptor.vertex.buffers = vec![vertex_layout];
        // Shells sorted back to front also write depth, so overlapping spheres cut each other
        // along their true intersection instead of blending through.
        if let Some(depth) = descriptor.depth_stencil.as_mut() {
            depth.depth_write_enabled = Some(true);
        }
        descriptor.primitive.cull_mode = None;
        Ok(())
    }
}

/// The entity that carries all of run `run`'s spheres.
#[derive(Component)]
pub struct SphereCloud {
    pub run: usize,
}

/// The material every cloud shares, so the style is set once.
#[derive(Resource)]
struct SphereAssets {
    material: Handle<SphereMaterial>,
}

pub struct SphereRenderPlugin;

impl Plugin for SphereRenderPlugin {
    fn build(&self, app: &mut App) {
        load_internal_asset!(
            app,
            SPHERE_SHADER,
            "../../shaders/spheres.wgsl",
            Shader::from_wgsl
        );
        super::camera::load_cells_shader(app);
        // The sphere mesh is rebuilt every frame (re-sorted back to front). In a general slab
        // each re-upload empties the slab and creates a new one with an offset allocator of
        // 128 Ki nodes (megabytes allocated and cleared per frame); above this threshold a
        // mesh gets a buffer of its own instead.
        if let Some(render_app) = app.get_sub_app_mut(bevy::render::RenderApp) {
            render_app.insert_resource(MeshAllocatorSettings {
                slab_allocator_settings: SlabAllocatorSettings {
                    large_threshold: 16 * 1024,
                    ..default()
                },
                ..default()
            });
        }
        app.add_plugins(MaterialPlugin::<SphereMaterial>::default())
            .init_resource::<Runs>()
            .init_resource::<Selection>()
            .add_systems(Startup, setup_spheres)
            .add_systems(
                Update,
                (sync_clouds, update_clouds)
                    .chain()
                    .after(SceneUpdate)
                    .after(OrbitUpdate),
            );
    }
}

fn setup_spheres(
    mut commands: Commands,
    mut materials: ResMut<Assets<SphereMaterial>>,
    settings: Res<SceneSettings>,
) {
    let material = materials.add(SphereMaterial {
        style: Vec4::new(settings.opacity, 2.5, 1.6, 0.0),
    });
    commands.insert_resource(SphereAssets { material });
}

/// A cloud for every run, made as runs come and removed as they go.
fn sync_clouds(
    mut commands: Commands,
    runs: Res<Runs>,
    assets: Option<Res<SphereAssets>>,
    mut meshes: ResMut<Assets<Mesh>>,
    clouds: Query<(Entity, &SphereCloud)>,
) {
    let Some(assets) = assets else { return };
    let existing = clouds.iter().map(|(entity, cloud)| (entity, cloud.run));
    one_entity_a_run(&mut commands, runs.len(), existing, |commands, run| {
        commands.spawn((
            SphereCloud { run },
            Mesh3d(meshes.add(build_mesh(SphereBuffers::default()))),
            MeshMaterial3d(assets.material.clone()),
            Transform::IDENTITY,
            // The quads move every frame; the mesh's stored bounds would go stale.
            NoFrustumCulling,
        ));
    });
}

/// Vertex data of the sphere quads.
#[derive(Default)]
pub struct SphereBuffers {
    pub centers: Vec<[f32; 3]>,
    pub corners: Vec<[f32; 2]>,
    pub colors: Vec<[f32; 4]>,
    pub spheres: Vec<[f32; 2]>,
    pub cells: Vec<[f32; 4]>,
    pub indices: Vec<u32>,
}

const CORNERS: [[f32; 2]; 4] = [[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]];

impl SphereBuffers {
    /// Quads for the scene, drawn into `cell` of the picture, indexed back to front as seen
    /// from `eye`.
    pub fn build(scene: &Scene, selection: &Selection, eye: Vec3, cell: Vec4) -> Self {
        let n = scene.len();
        let mut out = Self {
            centers: Vec::with_capacity(4 * n),
            corners: Vec::with_capacity(4 * n),
            colors: Vec::with_capacity(4 * n),
            spheres: Vec::with_capacity(4 * n),
            cells: vec![cell.to_array(); 4 * n],
            indices: Vec::with_capacity(6 * n),
        };
        let touching = selection.pinned_contacts(scene);
        for i in 0..n {
            let label = scene.frame.labels.get(i).copied().unwrap_or(0);
            let color = palette::class_color_linear(label, scene.classes);
            let state = if selection.pinned == Some(i) {
                highlight::PINNED
            } else if selection.hovered == Some(i) {
                highlight::HOVERED
            } else if touching.get(i).copied().unwrap_or(false) {
                highlight::TOUCHING_PINNED
            } else if selection.pinned.is_some() {
                highlight::DIMMED
            } else {
                highlight::PLAIN
            };
            let center = scene.drawn[i].to_array();
            let radius = scene.radii.get(i).copied().unwrap_or(0.0).max(0.0);
            for corner in CORNERS {
                out.centers.push(center);
                out.corners.push(corner);
                out.colors.push(color);
                out.spheres.push([radius, state]);
            }
        }
        let mut order: Vec<(f32, u32)> = scene
            .drawn
            .iter()
            .enumerate()
            .map(|(i, p)| (p.distance_squared(eye), i as u32))
            .collect();
        order.sort_unstable_by(|a, b| b.0.total_cmp(&a.0));
        for (_, i) in order {
            let base = 4 * i;
            out.indices
                .extend_from_slice(&[base, base + 1, base + 2, base, base + 2, base + 3]);
        }
        out
    }
}

/// A mesh of the quads (one degenerate quad when there is nothing to draw: an empty vertex
/// buffer is not a valid draw).
pub fn build_mesh(buffers: SphereBuffers) -> Mesh {
    let mut mesh = Mesh::new(
        PrimitiveTopology::TriangleList,
        RenderAssetUsages::MAIN_WORLD | RenderAssetUsages::RENDER_WORLD,
    );
    fill_mesh(&mut mesh, buffers);
    mesh
}

/// Moves the buffers into the mesh (no copy: this runs every frame).
fn fill_mesh(mesh: &mut Mesh, buffers: SphereBuffers) {
    if buffers.indices.is_empty() {
        mesh.insert_attribute(Mesh::ATTRIBUTE_POSITION, vec![[0.0f32; 3]; 4]);
        mesh.insert_attribute(Mesh::ATTRIBUTE_UV_0, CORNERS.to_vec());
        mesh.insert_attribute(Mesh::ATTRIBUTE_COLOR, vec![[0.0f32; 4]; 4]);
        mesh.insert_attribute(ATTRIBUTE_SPHERE, vec![[0.0f32; 2]; 4]);
        mesh.insert_attribute(ATTRIBUTE_CELL, vec![WHOLE_PICTURE.to_array(); 4]);
        mesh.insert_indices(Indices::U32(vec![0, 1, 2, 0, 2, 3]));
        return;
    }
    mesh.insert_attribute(Mesh::ATTRIBUTE_POSITION, buffers.centers);
    mesh.insert_attribute(Mesh::ATTRIBUTE_UV_0, buffers.corners);
    mesh.insert_attribute(Mesh::ATTRIBUTE_COLOR, buffers.colors);
    mesh.insert_attribute(ATTRIBUTE_SPHERE, buffers.spheres);
    mesh.insert_attribute(ATTRIBUTE_CELL, buffers.cells);
    mesh.insert_indices(Indices::U32(buffers.indices));
}

/// Rebuilds each cloud's quads from its run's scene, in its cell, sorted back to front. In the
/// physics sandbox only the first run's cloud draws (the sandbox's spheres, the whole picture).
#[allow(clippy::too_many_arguments)]
fn update_clouds(
    runs: Res<Runs>,
    settings: Res<SceneSettings>,
    selection: Res<Selection>,
    mode: Option<Res<ViewerMode>>,
    assets: Option<Res<SphereAssets>>,
    clouds: Query<(&SphereCloud, &Mesh3d)>,
    camera: Query<&Transform, With<SceneCamera>>,
    mut meshes: ResMut<Assets<Mesh>>,
    mut materials: ResMut<Assets<SphereMaterial>>,
) {
    let cells = view_cells(shown_runs(&runs, mode.as_deref()));
    let eye = camera.iter().next().map_or(Vec3::Z, |t| t.translation);
    for (cloud, mesh) in &clouds {
        let drawn = runs.list.get(cloud.run).zip(cells.get(cloud.run));
        let buffers = drawn.map_or_else(SphereBuffers::default, |(run, &cell)| {
            SphereBuffers::build(&run.scene, &selection, eye, cell)
        });
        if let Some(mut mesh) = meshes.get_mut(&mesh.0) {
            fill_mesh(&mut mesh, buffers);
        }
    }
    if settings.is_changed()
        && let Some(assets) = assets
        && let Some(mut material) = materials.get_mut(&assets.material)
    {
        material.style.x = settings.opacity;
    }
}
