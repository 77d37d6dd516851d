//! Hover and pin: the sphere under the cursor is the nearest one whose projected disc contains
//! it, in whichever run's view the pointer is over; a click (without dragging) pins it and
//! highlights its contacts, Escape or a click on empty space unpins. Every run draws the same
//! held-out images in the same order, so a sphere's index marks the same image in every view.

use bevy::prelude::*;
use bevy::window::PrimaryWindow;

use super::camera::{
    OrbitUpdate, SceneCamera, SceneView, cell_pixel, image_point, shown_runs, view_cells,
};
use super::runs::Runs;
use super::scene::ViewerMode;
use super::scene::{Scene, SceneUpdate};

#[derive(Resource, Clone, Debug, Default, PartialEq)]
pub struct Selection {
    pub hovered: Option<usize>,
    pub pinned: Option<usize>,
    /// Cursor position (logical window pixels) when hovering.
    pub cursor: Option<Vec2>,
}

impl Selection {
    /// Marks, per sphere, whether it touches the pinned one.
    pub fn pinned_contacts(&self, scene: &Scene) -> Vec<bool> {
        let mut touching = vec![false; scene.len()];
        if let Some(p) = self.pinned {
            for pair in &scene.frame.pairs {
                let (i, j) = (pair[0] as usize, pair[1] as usize);
                let other = if i == p {
                    j
                } else if j == p {
                    i
                } else {
                    continue;
                };
                if let Some(slot) = touching.get_mut(other) {
                    *slot = true;
                }
            }
        }
        touching
    }
}

pub struct PickingPlugin;

impl Plugin for PickingPlugin {
    fn build(&self, app: &mut App) {
        app.init_resource::<Selection>()
            .add_systems(Update, pick.after(SceneUpdate).after(OrbitUpdate));
    }
}

#[allow(clippy::too_many_arguments)]
fn pick(
    runs: Res<Runs>,
    mouse: Res<ButtonInput<MouseButton>>,
    keys: Res<ButtonInput<KeyCode>>,
    windows: Query<&Window, With<PrimaryWindow>>,
    camera: Query<(&Camera, &GlobalTransform), With<SceneCamera>>,
    view: Option<Res<SceneView>>,
    images: Res<Assets<Image>>,
    mode: Option<Res<ViewerMode>>,
    mut selection: ResMut<Selection>,
    mut press: Local<Option<Vec2>>,
) {
    let spheres = runs.list.first().map_or(0, |run| run.scene.len());
    if selection.pinned.is_some_and(|p| p >= spheres) {
        selection.pinned = None;
    }
    if keys.just_pressed(KeyCode::Escape) {
        selection.pinned = None;
    }
    let cursor = windows.single().ok().and_then(|w| w.cursor_position());
    // The run whose cell is under the pointer, and the pointer in pixels of the picture.
    let cells = view_cells(shown_runs(&runs, mode.as_deref()));
    let hovered = (|| {
        let (k, run) = runs
            .list
            .iter()
            .enumerate()
            .find(|(_, run)| run.view.hovered)?;
        let view = view.as_ref()?;
        let size = images.get(&view.image)?.size();
        let local = image_point(view.rect?, cursor?, size)?;
        Some((&run.scene, *cells.get(k)?, size.as_vec2(), local))
    })();
    let (Some(cursor), Some((scene, cell, size, local)), Ok((camera, camera_transform))) =
        (cursor, hovered, camera.single())
    else {
        selection.hovered = None;
        selection.cursor = None;
        return;
    };
    let to_pixels = |position: Vec3| {
        camera
            .world_to_ndc(camera_transform, position)
            .filter(|ndc| ndc.z > 0.0)
            .map(|ndc| cell_pixel(ndc.truncate(), cell, size))
    };
    let right = camera_transform.right().as_vec3();
    let eye = camera_transform.translation();
    let mut best: Option<(f32, usize)> = None;
    for (i, &position) in scene.drawn.iter().enumerate() {
        let radius = scene.radii.get(i).copied().unwrap_or(0.0);
        let (Some(center), Some(edge)) =
            (to_pixels(position), to_pixels(position + right * radius))
        else {
            continue;
        };
        let screen_radius = center.distance(edge).max(3.0);
        if center.distance(local) <= screen_radius {
            let depth = position.distance_squared(eye);
            if best.is_none_or(|(d, _)| depth < d) {
                best = Some((depth, i));
            }
        }
    }
    selection.hovered = best.map(|(_, i)| i);
    selection.cursor = Some(cursor);

    if mouse.just_pressed(MouseButton::Left) {
        *press = Some(cursor);
    }
    if mouse.just_released(MouseButton::Left) {
        let clicked = press.take().is_some_and(|p| p.distance(cursor) < 4.0);
        if clicked {
            selection.pinned = selection.hovered;
        }
    }
}
