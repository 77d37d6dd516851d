//! Draws every sphere with one mesh of camera-facing quads and our impostor shader
//! (`shaders/spheres.wgsl`): one entity and one draw call however many spheres there are. The
//! quads are re-sorted back to front every frame so the translucent shells blend in order.
//! Contact lines and the unit-sphere wireframe are gizmos.

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

use super::camera::{OrbitCamera, OrbitUpdate};
use super::palette;
use super::picking::Selection;
use super::scene::{Scene, SceneSettings, SceneUpdate};
use crate::projection::ProjectionMode;

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

/// The one entity that carries all spheres.
#[derive(Component)]
pub struct SphereCloud;

#[derive(Resource)]
pub(super) struct SphereAssets {
    mesh: Handle<Mesh>,
    /// Shared by every cloud (a comparison's second one too), so the style is set once.
    pub(super) material: Handle<SphereMaterial>,
}

/// Lines drawn at most, so a fully jammed 10,000-sphere packing stays interactive.
pub const MAX_CONTACT_LINES: usize = 40_000;

pub struct SphereRenderPlugin;

impl Plugin for SphereRenderPlugin {
    fn build(&self, app: &mut App) {
        load_internal_asset!(
            app,
            SPHERE_SHADER,
            "../../shaders/spheres.wgsl",
            Shader::from_wgsl
        );
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
            .add_systems(Startup, spawn_cloud)
            .add_systems(
                Update,
                (update_cloud, draw_contacts, draw_wireframe)
                    .after(SceneUpdate)
                    .after(OrbitUpdate),
            );
    }
}

fn spawn_cloud(
    mut commands: Commands,
    mut gizmo_store: ResMut<GizmoConfigStore>,
    mut meshes: ResMut<Assets<Mesh>>,
    mut materials: ResMut<Assets<SphereMaterial>>,
    settings: Res<SceneSettings>,
) {
    // Contact lines run inside the shells; draw them on top so they can be seen.
    let (gizmos, _) = gizmo_store.config_mut::<DefaultGizmoConfigGroup>();
    gizmos.depth_bias = -1.0;
    let mesh = meshes.add(build_mesh(SphereBuffers::default()));
    let material = materials.add(SphereMaterial {
        style: Vec4::new(settings.opacity, 2.5, 1.6, 0.0),
    });
    commands.spawn((
        SphereCloud,
        Mesh3d(mesh.clone()),
        MeshMaterial3d(material.clone()),
        Transform::IDENTITY,
        // The quads move every frame; the mesh's stored bounds would go stale.
        NoFrustumCulling,
    ));
    commands.insert_resource(SphereAssets { mesh, material });
}

/// Vertex data of the sphere quads.
#[derive(Default)]
pub struct SphereBuffers {
    pub centers: Vec<[f32; 3]>,
    pub corners: Vec<[f32; 2]>,
    pub colors: Vec<[f32; 4]>,
    pub spheres: Vec<[f32; 2]>,
    pub indices: Vec<u32>,
}

const CORNERS: [[f32; 2]; 4] = [[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]];

impl SphereBuffers {
    /// Quads for the scene, indexed back to front as seen from `eye`.
    pub fn build(scene: &Scene, selection: &Selection, eye: Vec3) -> Self {
        let n = scene.len();
        let mut out = Self {
            centers: Vec::with_capacity(4 * n),
            corners: Vec::with_capacity(4 * n),
            colors: Vec::with_capacity(4 * n),
            spheres: Vec::with_capacity(4 * n),
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
        mesh.insert_indices(Indices::U32(vec![0, 1, 2, 0, 2, 3]));
        return;
    }
    mesh.insert_attribute(Mesh::ATTRIBUTE_POSITION, buffers.centers);
    mesh.insert_attribute(Mesh::ATTRIBUTE_UV_0, buffers.corners);
    mesh.insert_attribute(Mesh::ATTRIBUTE_COLOR, buffers.colors);
    mesh.insert_attribute(ATTRIBUTE_SPHERE, buffers.spheres);
    mesh.insert_indices(Indices::U32(buffers.indices));
}

/// Rebuilds a cloud's quads for `scene` (none: an empty cloud), sorted back to front as seen
/// by the camera the cloud is drawn for.
pub fn refill_cloud<F: bevy::ecs::query::QueryFilter>(
    meshes: &mut Assets<Mesh>,
    mesh: &Handle<Mesh>,
    scene: Option<&Scene>,
    selection: &Selection,
    camera: &Query<&Transform, F>,
) {
    let eye = camera
        .iter()
        .next()
        .map(|t| t.translation)
        .unwrap_or(Vec3::Z);
    let buffers = scene.map_or_else(SphereBuffers::default, |scene| {
        SphereBuffers::build(scene, selection, eye)
    });
    if let Some(mut mesh) = meshes.get_mut(mesh) {
        fill_mesh(&mut mesh, buffers);
    }
}

fn update_cloud(
    scene: Res<Scene>,
    settings: Res<SceneSettings>,
    selection: Res<Selection>,
    assets: Option<Res<SphereAssets>>,
    camera: Query<&Transform, With<OrbitCamera>>,
    mut meshes: ResMut<Assets<Mesh>>,
    mut materials: ResMut<Assets<SphereMaterial>>,
) {
    let Some(assets) = assets else { return };
    refill_cloud(&mut meshes, &assets.mesh, Some(&scene), &selection, &camera);
    if settings.is_changed()
        && let Some(mut material) = materials.get_mut(&assets.material)
    {
        material.style.x = settings.opacity;
    }
}

fn draw_contacts(
    scene: Res<Scene>,
    settings: Res<SceneSettings>,
    selection: Res<Selection>,
    mut gizmos: Gizmos,
) {
    let n = scene.len();
    let line = Color::srgba(0.85, 0.88, 0.95, 0.22);
    let pinned_line = Color::srgb(1.0, 0.6, 0.15);
    for pair in &scene.frame.pairs {
        let (i, j) = (pair[0] as usize, pair[1] as usize);
        if i >= n || j >= n {
            continue;
        }
        let involves_pinned = selection.pinned.is_some_and(|p| p == i || p == j);
        if involves_pinned {
            gizmos.line(scene.drawn[i], scene.drawn[j], pinned_line);
        }
    }
    if !settings.show_contacts {
        return;
    }
    for pair in scene.frame.pairs.iter().take(MAX_CONTACT_LINES) {
        let (i, j) = (pair[0] as usize, pair[1] as usize);
        if i < n && j < n {
            gizmos.line(scene.drawn[i], scene.drawn[j], line);
        }
    }
}

/// The unit sphere on which CLAMP's views live, when the true 3-D embedding is drawn.
fn draw_wireframe(scene: Res<Scene>, settings: Res<SceneSettings>, mut gizmos: Gizmos) {
    let raw = scene
        .projector
        .as_ref()
        .is_some_and(|p| p.mode == ProjectionMode::Raw || p.dim() <= 3);
    if !settings.show_wireframe || !raw || !scene.frame.unit_sphere {
        return;
    }
    let color = Color::srgba(0.6, 0.65, 0.75, 0.18);
    const SEGMENTS: usize = 64;
    for k in 1..6 {
        // Parallels.
        let polar = std::f32::consts::PI * k as f32 / 6.0;
        let (ring, height) = (polar.sin(), polar.cos());
        gizmos.linestrip(
            (0..=SEGMENTS).map(|s| {
                let a = std::f32::consts::TAU * s as f32 / SEGMENTS as f32;
                Vec3::new(ring * a.cos(), height, ring * a.sin())
            }),
            color,
        );
    }
    for k in 0..6 {
        // Meridians.
        let a = std::f32::consts::PI * k as f32 / 6.0;
        gizmos.linestrip(
            (0..=SEGMENTS).map(|s| {
                let polar = std::f32::consts::TAU * s as f32 / SEGMENTS as f32;
                Vec3::new(polar.sin() * a.cos(), polar.cos(), polar.sin() * a.sin())
            }),
            color,
        );
    }
}
