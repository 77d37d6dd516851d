//! Hover and pin: the sphere under the cursor is the nearest one whose projected disc contains
//! it; a click (without dragging) pins it and highlights its contacts, Escape or a click on empty
//! space unpins.

use bevy::prelude::*;
use bevy::window::PrimaryWindow;

use super::camera::{OrbitCamera, OrbitUpdate, SceneView, image_point};
use super::compare::{SecondCamera, SecondRun, SecondView};
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

/// A comparison's second view: its run, where it is shown, and its camera.
type SecondViewReads<'w, 's> = (
    Option<Res<'w, SecondRun>>,
    Option<Res<'w, SecondView>>,
    Query<'w, 's, (&'static Camera, &'static GlobalTransform), With<SecondCamera>>,
);

#[allow(clippy::too_many_arguments)]
fn pick(
    scene: Res<Scene>,
    mouse: Res<ButtonInput<MouseButton>>,
    keys: Res<ButtonInput<KeyCode>>,
    windows: Query<&Window, With<PrimaryWindow>>,
    cameras: Query<(&Camera, &GlobalTransform), With<OrbitCamera>>,
    view: Option<Res<SceneView>>,
    images: Res<Assets<Image>>,
    mut selection: ResMut<Selection>,
    mut press: Local<Option<Vec2>>,
    (second, second_view, second_camera): SecondViewReads,
) {
    if selection.pinned.is_some_and(|p| p >= scene.len()) {
        selection.pinned = None;
    }
    if keys.just_pressed(KeyCode::Escape) {
        selection.pinned = None;
    }
    let cursor = windows.single().ok().and_then(|w| w.cursor_position());
    // The view under the pointer: the first run's, or in a comparison the second's (the same
    // images in the same order, so an index marks the same image in both).
    let first = view
        .as_ref()
        .filter(|v| v.hovered)
        .map(|v| (&*scene, v.image.clone(), v.rect, cameras.single().ok()));
    let other = second_view
        .as_ref()
        .filter(|v| v.hovered)
        .zip(second.as_ref())
        .map(|(v, run)| {
            (
                &run.scene,
                v.image.clone(),
                v.rect,
                second_camera.single().ok(),
            )
        });
    let hovered = first.or(other);
    let local = match (&hovered, cursor) {
        (Some((_, image, Some(rect), _)), Some(cursor)) => images
            .get(image)
            .and_then(|image| image_point(*rect, cursor, image.size())),
        _ => None,
    };
    let (Some(cursor), Some(local), Some((scene, _, _, Some((camera, camera_transform))))) =
        (cursor, local, hovered)
    else {
        selection.hovered = None;
        selection.cursor = None;
        return;
    };
    let right = camera_transform.right().as_vec3();
    let eye = camera_transform.translation();
    let mut best: Option<(f32, usize)> = None;
    for (i, &position) in scene.drawn.iter().enumerate() {
        let Ok(center) = camera.world_to_viewport(camera_transform, position) else {
            continue;
        };
        let radius = scene.radii.get(i).copied().unwrap_or(0.0);
        let Ok(edge) = camera.world_to_viewport(camera_transform, position + right * radius) else {
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
