//! One orbit camera for every run's view: left-drag turns, right-drag (or shift + left-drag)
//! pans, the wheel zooms, and auto-rotate turns the scene slowly for demos and recordings. Input
//! over the egui panels is left to egui.
//!
//! One camera draws every run into one picture ([`SceneView`]): each run has a cell of it
//! ([`view_cells`]: the whole, a half, or a quarter of a 2 x 2 grid), and the sphere and line
//! shaders move the run's clip-space positions into its cell and cut what strays out. A cell
//! shows what a camera of its own aspect would, so the runs look as if each had its own camera,
//! at the cost of one camera (on a software rasterizer each camera costs milliseconds a frame
//! whatever it draws).

use bevy::camera::RenderTarget;
use bevy::input::mouse::{AccumulatedMouseMotion, AccumulatedMouseScroll, MouseScrollUnit};
use bevy::mesh::MeshVertexAttribute;
use bevy::prelude::*;
use bevy::render::render_resource::{Extent3d, TextureFormat, TextureUsages, VertexFormat};
use bevy::window::PrimaryWindow;
use bevy_egui::{EguiGlobalSettings, PrimaryEguiContext};

use super::palette;
use super::runs::Runs;

/// Where every view's camera looks from, in spherical coordinates around `focus`.
#[derive(Resource, Clone, Debug, PartialEq)]
pub struct OrbitCamera {
    pub focus: Vec3,
    pub distance: f32,
    /// Radians around the vertical axis.
    pub yaw: f32,
    /// Radians above the horizon.
    pub pitch: f32,
    /// Degrees per second of automatic turning (0: off).
    pub auto_rotate: f32,
    /// Extra step back, at least 1, so that spheres larger than the usual view (a large r_s)
    /// stay in the picture instead of swallowing the camera.
    pub framing: f32,
}

impl Default for OrbitCamera {
    fn default() -> Self {
        Self {
            focus: Vec3::ZERO,
            distance: 3.2,
            yaw: 0.6,
            pitch: 0.35,
            auto_rotate: 6.0,
            framing: 1.0,
        }
    }
}

/// Reach from the origin (centers plus radii) that the default camera frames: a ball of this
/// radius fills the 45-degree view from the default distance 3.2 (3.2 x sin 22.5 degrees).
const FRAMED_REACH: f32 = 1.25;

/// The camera's step back for a view of `size` (logical pixels): none for one at least as wide
/// as tall; for a narrower one, as much as keeps the usual ball inside its width (the vertical
/// field of view is fixed, so the horizontal one shrinks with the width).
pub fn narrow_view_framing(size: Vec2) -> f32 {
    if size.x > 0.0 && size.y > 0.0 && size.x < size.y {
        size.y / size.x
    } else {
        1.0
    }
}

/// The camera's step back for spheres reaching `reach` from the origin: none up to
/// [`FRAMED_REACH`], then in proportion.
pub fn framing_for(reach: f32) -> f32 {
    if reach.is_finite() {
        (reach / FRAMED_REACH).max(1.0)
    } else {
        1.0
    }
}

impl OrbitCamera {
    pub fn transform(&self) -> Transform {
        let rotation = Quat::from_euler(EulerRot::YXZ, self.yaw, -self.pitch, 0.0);
        let eye = self.focus + rotation * Vec3::new(0.0, 0.0, self.distance * self.framing);
        Transform::from_translation(eye).looking_at(self.focus, Vec3::Y)
    }
}

/// The picture every run is drawn into, shown by the panel in the middle of the window.
/// Drawing the spheres at a fraction of the window's resolution is what keeps a software
/// rasterizer interactive: their cost is per covered pixel.
#[derive(Resource, Clone, Debug)]
pub struct SceneView {
    pub image: Handle<Image>,
    /// Where the panel shows it, in logical window pixels.
    pub rect: Option<Rect>,
    /// Rendered pixels per physical window pixel, as drawn now (the panel's render scale times
    /// the frame pacing's factor).
    pub render_scale: f32,
}

/// The camera that draws the runs into the picture.
#[derive(Component, Clone, Copy, Debug)]
pub struct SceneCamera;

/// Per-vertex map of the run's cell of the picture (see [`view_cells`]), for the sphere
/// and line shaders.
pub const ATTRIBUTE_CELL: MeshVertexAttribute =
    MeshVertexAttribute::new("ViewCell", 0x5EED_C1A3_0002, VertexFormat::Float32x4);

/// The shaders' functions for a run's cell (`shaders/cells.wgsl`, imported as `clamp::cells`).
pub const CELLS_SHADER: Handle<Shader> =
    bevy::asset::uuid_handle!("7c1e5a93-2f4d-4b86-9e07-3a5d8c6f1b24");

/// Makes `clamp::cells` importable by the sphere and line shaders (each plugin that draws
/// cells calls it; loading it twice is harmless).
pub fn load_cells_shader(app: &mut App) {
    bevy::asset::load_internal_asset!(
        app,
        CELLS_SHADER,
        "../../shaders/cells.wgsl",
        Shader::from_wgsl
    );
}

/// The cell of a view alone: the whole picture.
pub const WHOLE_PICTURE: Vec4 = Vec4::new(1.0, 0.0, 0.0, 1.0);

/// Where each of `n` views goes in the picture: `(s, ox, oy, hx)` moves a point at clip
/// `(x, y, w)` of the whole picture to `(x s + ox w, y s + oy w)`, and the cell spans
/// `ox - hx ..= ox + hx` across and `oy - s ..= oy + s` down, in normalized device coordinates.
/// One view fills the picture; two split it left and right; three or four make a 2 x 2 grid,
/// row by row. The scale is one over the rows (a cell is as tall as the picture over the rows,
/// with the same vertical field of view), so each cell shows what a camera of the cell's own
/// aspect would.
pub fn view_cells(n: usize) -> Vec<Vec4> {
    match n {
        0 => Vec::new(),
        1 => vec![WHOLE_PICTURE],
        2 => vec![
            Vec4::new(1.0, -0.5, 0.0, 0.5),
            Vec4::new(1.0, 0.5, 0.0, 0.5),
        ],
        _ => [
            Vec4::new(0.5, -0.5, 0.5, 0.5),
            Vec4::new(0.5, 0.5, 0.5, 0.5),
            Vec4::new(0.5, -0.5, -0.5, 0.5),
            Vec4::new(0.5, 0.5, -0.5, 0.5),
        ]
        .into_iter()
        .take(n.min(4))
        .collect(),
    }
}

/// How many runs the picture shows: every run, or in the physics sandbox the first.
pub fn shown_runs(runs: &Runs, mode: Option<&super::scene::ViewerMode>) -> usize {
    if mode.is_some_and(|m| *m == super::scene::ViewerMode::Physics) {
        runs.len().min(1)
    } else {
        runs.len()
    }
}

/// A cell's part of the picture as `(left, top, right, bottom)` fractions (y down): what the
/// shaders keep of the run's drawing.
pub fn cell_bounds(cell: Vec4) -> Vec4 {
    let (s, ox, oy, hx) = (cell.x, cell.y, cell.z, cell.w);
    Vec4::new(
        (ox - hx + 1.0) / 2.0,
        (1.0 - (oy + s)) / 2.0,
        (ox + hx + 1.0) / 2.0,
        (1.0 - (oy - s)) / 2.0,
    )
}

/// The part of `whole` that `cell` covers.
pub fn cell_rect(whole: Rect, cell: Vec4) -> Rect {
    let b = cell_bounds(cell);
    let at = |u: f32, v: f32| whole.min + Vec2::new(u, v) * whole.size();
    Rect::from_corners(at(b.x, b.y), at(b.z, b.w))
}

/// Where a point at normalized device coordinates `ndc` of the whole picture is drawn in
/// `cell`, in pixels of a picture of `size`.
pub fn cell_pixel(ndc: Vec2, cell: Vec4, size: Vec2) -> Vec2 {
    let moved = ndc * cell.x + Vec2::new(cell.y, cell.z);
    Vec2::new((moved.x + 1.0) / 2.0, (1.0 - moved.y) / 2.0) * size
}

/// A cursor position in the window to pixels of an image of `image_size` shown in `rect`.
pub fn image_point(rect: Rect, cursor: Vec2, image_size: UVec2) -> Option<Vec2> {
    if !rect.contains(cursor) || rect.width() <= 0.0 || rect.height() <= 0.0 {
        return None;
    }
    let uv = (cursor - rect.min) / rect.size();
    Some(uv * image_size.as_vec2())
}

/// Systems that move the camera; drawing runs after them.
#[derive(SystemSet, Debug, Clone, PartialEq, Eq, Hash)]
pub struct OrbitUpdate;

/// The window's camera (egui), the orbit, and the camera that draws the runs.
pub struct OrbitCameraPlugin {
    /// Auto-rotation at start, in degrees per second.
    pub auto_rotate: f32,
    /// Rendered pixels per window pixel at start.
    pub render_scale: f32,
}

impl Default for OrbitCameraPlugin {
    fn default() -> Self {
        Self {
            auto_rotate: 6.0,
            render_scale: 1.0,
        }
    }
}

impl Plugin for OrbitCameraPlugin {
    fn build(&self, app: &mut App) {
        app.insert_resource(OrbitCamera {
            auto_rotate: self.auto_rotate,
            ..default()
        })
        .insert_resource(StartScale(self.render_scale))
        .init_resource::<Runs>()
        .add_systems(Startup, spawn_cameras)
        .add_systems(
            Update,
            (
                orbit_input,
                auto_rotate,
                frame_scene,
                apply_orbit,
                fit_scene_image,
            )
                .chain()
                .in_set(OrbitUpdate),
        );
    }
}

/// The render target of the scene camera, sized for `size` physical pixels.
pub fn scene_target(size: UVec2) -> Image {
    let mut image = Image::new_target_texture(
        size.x.max(1),
        size.y.max(1),
        TextureFormat::Rgba8UnormSrgb,
        None,
    );
    image.texture_descriptor.usage = TextureUsages::TEXTURE_BINDING
        | TextureUsages::COPY_DST
        | TextureUsages::COPY_SRC
        | TextureUsages::RENDER_ATTACHMENT;
    // Smooth when shown larger than rendered (render scale below 1).
    image.sampler = bevy::image::ImageSampler::linear();
    image
}

/// The render scale at start (from the plugin).
#[derive(Resource, Clone, Copy, Debug)]
struct StartScale(f32);

fn spawn_cameras(
    mut commands: Commands,
    start: Res<StartScale>,
    orbit: Res<OrbitCamera>,
    mut images: ResMut<Assets<Image>>,
    mut egui_settings: ResMut<EguiGlobalSettings>,
) {
    // The window camera draws only egui (which shows the picture); the scene camera draws the
    // runs into the picture.
    egui_settings.auto_create_primary_context = false;
    commands.spawn((
        Camera2d,
        Camera {
            clear_color: ClearColorConfig::Custom(palette::PANEL),
            ..default()
        },
        PrimaryEguiContext,
        Msaa::Off,
        bevy::core_pipeline::tonemapping::Tonemapping::None,
        bevy::core_pipeline::tonemapping::DebandDither::Disabled,
    ));
    let image = images.add(scene_target(UVec2::new(640, 480)));
    commands.spawn(scene_camera(image.clone(), orbit.transform(), -1));
    commands.insert_resource(SceneView {
        image,
        rect: None,
        render_scale: start.0,
    });
}

/// The camera that draws the runs into `image` from `place` (shared by the viewer and the
/// recorder).
pub fn scene_camera(image: Handle<Image>, place: Transform, order: isize) -> impl Bundle {
    (scene_view_camera(image, place, order), SceneCamera)
}

/// A camera that draws spheres into `image` from `place` (the orbit's).
pub fn scene_view_camera(image: Handle<Image>, place: Transform, order: isize) -> impl Bundle {
    (
        Camera3d::default(),
        Camera {
            order,
            clear_color: ClearColorConfig::Custom(palette::BACKGROUND),
            ..default()
        },
        RenderTarget::Image(image.into()),
        // Software rasterizers pay per sample and per full-screen pass: no MSAA, and no
        // tone-mapping lookup (the colors are already in display range).
        Msaa::Off,
        bevy::core_pipeline::tonemapping::Tonemapping::None,
        bevy::core_pipeline::tonemapping::DebandDither::Disabled,
        place,
    )
}

fn orbit_input(
    mouse: Res<ButtonInput<MouseButton>>,
    keys: Res<ButtonInput<KeyCode>>,
    motion: Res<AccumulatedMouseMotion>,
    scroll: Res<AccumulatedMouseScroll>,
    runs: Res<Runs>,
    mut orbit: ResMut<OrbitCamera>,
    mut dragging: Local<bool>,
) {
    // Drags that start on a picture keep turning it even if the pointer leaves it.
    let hovered = runs.list.iter().any(|run| run.view.hovered);
    if mouse.just_pressed(MouseButton::Left) || mouse.just_pressed(MouseButton::Right) {
        *dragging = hovered;
    }
    if !mouse.pressed(MouseButton::Left) && !mouse.pressed(MouseButton::Right) {
        *dragging = false;
    }
    if !hovered && !*dragging {
        return;
    }
    let delta = motion.delta;
    let shift = keys.pressed(KeyCode::ShiftLeft) || keys.pressed(KeyCode::ShiftRight);
    let panning = mouse.pressed(MouseButton::Right) || (shift && mouse.pressed(MouseButton::Left));
    if panning {
        let rotation = Quat::from_euler(EulerRot::YXZ, orbit.yaw, -orbit.pitch, 0.0);
        let scale = orbit.distance * 0.0015;
        orbit.focus += rotation * Vec3::new(-delta.x * scale, delta.y * scale, 0.0);
    } else if mouse.pressed(MouseButton::Left) {
        orbit.yaw -= delta.x * 0.008;
        orbit.pitch = (orbit.pitch + delta.y * 0.008).clamp(-1.5, 1.5);
    }
    let lines = match scroll.unit {
        MouseScrollUnit::Line => scroll.delta.y,
        MouseScrollUnit::Pixel => scroll.delta.y / 40.0,
    };
    if lines != 0.0 {
        orbit.distance = (orbit.distance * 0.9f32.powf(lines)).clamp(0.2, 50.0);
    }
    if keys.just_pressed(KeyCode::KeyR) {
        let auto_rotate = orbit.auto_rotate;
        *orbit = OrbitCamera {
            auto_rotate,
            ..default()
        };
    }
}

fn auto_rotate(time: Res<Time>, mut orbit: ResMut<OrbitCamera>) {
    if orbit.auto_rotate != 0.0 {
        orbit.yaw += orbit.auto_rotate.to_radians() * time.delta_secs();
    }
}

/// Steps the camera back while the drawn spheres reach beyond the usual view, or while the
/// views are narrower than tall (side by side), where the sides would cut them. One camera
/// frames every run: the same scale in every view.
fn frame_scene(runs: Res<Runs>, mut orbit: ResMut<OrbitCamera>) {
    let narrow = runs
        .list
        .iter()
        .find_map(|run| run.view.rect)
        .map_or(1.0, |rect| narrow_view_framing(rect.size()));
    let Some(reach) = runs
        .list
        .iter()
        .filter_map(|run| scene_reach(&run.scene))
        .reduce(f32::max)
    else {
        return;
    };
    let framing = framing_for(reach) * narrow;
    // Only real changes count, so the cameras are not moved every frame.
    if (orbit.framing - framing).abs() > 0.005 * orbit.framing {
        orbit.framing = framing;
    }
}

/// How far from the origin the drawn spheres reach (centers plus radii), for all but the
/// largest 2%: a few outliers should not zoom out. None without spheres.
fn scene_reach(scene: &super::scene::Scene) -> Option<f32> {
    let mut reach: Vec<f32> = scene
        .drawn
        .iter()
        .zip(&scene.radii)
        .map(|(p, r)| p.length() + r)
        .collect();
    if reach.is_empty() {
        return None;
    }
    let k = ((reach.len() as f32 * 0.98) as usize).min(reach.len() - 1);
    Some(*reach.select_nth_unstable_by(k, f32::total_cmp).1)
}

/// The scene camera where the orbit says.
pub fn apply_orbit(orbit: Res<OrbitCamera>, mut cameras: Query<&mut Transform, With<SceneCamera>>) {
    let place = orbit.transform();
    for mut transform in &mut cameras {
        if *transform != place {
            *transform = place;
        }
    }
}

/// Keeps the picture at the panel's size times the render scale.
fn fit_scene_image(
    view: Option<ResMut<SceneView>>,
    settings: Res<super::scene::SceneSettings>,
    pacing: Option<Res<super::pacing::FramePacing>>,
    windows: Query<&Window, With<PrimaryWindow>>,
    mut images: ResMut<Assets<Image>>,
) {
    let Some(mut view) = view else { return };
    let render_scale = settings.render_scale * pacing.map(|p| p.factor()).unwrap_or(1.0);
    if view.render_scale != render_scale {
        view.render_scale = render_scale;
    }
    let (Some(rect), Ok(window)) = (view.rect, windows.single()) else {
        return;
    };
    let scale = window.scale_factor() * view.render_scale.clamp(0.1, 2.0);
    resize_target(&mut images, &view.image, rect, scale);
}

/// Sizes the picture `image` for `rect` (logical pixels) at `scale` physical pixels each.
pub fn resize_target(images: &mut Assets<Image>, image: &Handle<Image>, rect: Rect, scale: f32) {
    let wanted = UVec2::new(
        ((rect.width() * scale).round() as u32).clamp(16, 8192),
        ((rect.height() * scale).round() as u32).clamp(16, 8192),
    );
    let current = images.get(image).map(|i| i.size());
    if current != Some(wanted)
        && let Some(mut target) = images.get_mut(image)
    {
        target.resize(Extent3d {
            width: wanted.x,
            height: wanted.y,
            depth_or_array_layers: 1,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::framing_for;

    #[test]
    fn the_camera_steps_back_only_for_spheres_beyond_the_usual_view() {
        assert_eq!(framing_for(0.0), 1.0);
        assert_eq!(framing_for(1.25), 1.0);
        assert_eq!(framing_for(2.5), 2.0);
        assert_eq!(framing_for(f32::NAN), 1.0);
        assert_eq!(framing_for(f32::INFINITY), 1.0);
    }

    #[test]
    fn the_cells_tile_the_picture_and_show_what_a_camera_of_their_own_would() {
        use super::{cell_bounds, cell_pixel, view_cells};
        use bevy::math::{Vec2, Vec4};
        // Bounds (left, top, right, bottom) tile the picture: whole, halves, quarters.
        let bounds = |n| -> Vec<Vec4> { view_cells(n).into_iter().map(cell_bounds).collect() };
        assert_eq!(bounds(1), [Vec4::new(0.0, 0.0, 1.0, 1.0)]);
        assert_eq!(
            bounds(2),
            [Vec4::new(0.0, 0.0, 0.5, 1.0), Vec4::new(0.5, 0.0, 1.0, 1.0)]
        );
        assert_eq!(
            bounds(4),
            [
                Vec4::new(0.0, 0.0, 0.5, 0.5),
                Vec4::new(0.5, 0.0, 1.0, 0.5),
                Vec4::new(0.0, 0.5, 0.5, 1.0),
                Vec4::new(0.5, 0.5, 1.0, 1.0),
            ]
        );
        assert_eq!(bounds(3).len(), 3);
        // The picture's center goes to each cell's center; in a 2 x 2 grid a point at the
        // whole picture's corner lands at the cell's corner (the cell has the same aspect), and
        // beside another a half keeps the scale: a point 0.25 of the width right of center is
        // 0.25 of the width right of its half's center.
        let size = Vec2::new(800.0, 400.0);
        let quarters = view_cells(4);
        assert_eq!(
            cell_pixel(Vec2::ZERO, quarters[3], size),
            Vec2::new(600.0, 300.0)
        );
        assert_eq!(
            cell_pixel(Vec2::new(1.0, 1.0), quarters[0], size),
            Vec2::new(400.0, 0.0)
        );
        let halves = view_cells(2);
        assert_eq!(
            cell_pixel(Vec2::new(0.5, 0.0), halves[0], size),
            Vec2::new(400.0, 200.0)
        );
        assert_eq!(
            cell_pixel(Vec2::ZERO, halves[1], size),
            Vec2::new(600.0, 200.0)
        );
    }

    #[test]
    fn a_view_narrower_than_tall_steps_back_by_its_aspect() {
        use super::narrow_view_framing;
        use bevy::math::Vec2;
        assert_eq!(narrow_view_framing(Vec2::new(1280.0, 720.0)), 1.0);
        assert_eq!(narrow_view_framing(Vec2::new(400.0, 400.0)), 1.0);
        assert_eq!(narrow_view_framing(Vec2::new(300.0, 450.0)), 1.5);
        assert_eq!(narrow_view_framing(Vec2::ZERO), 1.0);
    }
}
