//! Side by side: a second run that differs from the first only in named settings
//! ([`crate::compare::Comparison`]), trained beside it on the same data, seed and device, and
//! drawn in a second view that the one orbit camera turns with the first.
//!
//! The second run keeps its own status, plot history, controls and projected scene in
//! [`SecondRun`]; its spheres are a second cloud on render layer [`SECOND_LAYER`], seen only by
//! a second camera that copies the first one's place every frame. The panel splits the picture
//! and captions each half with its settings; the packing sliders move both runs or one
//! ([`SliderTarget`]). Hover and pin mark the same image in both views (both runs draw the
//! same held-out images in the same order).

use bevy::camera::visibility::{NoFrustumCulling, RenderLayers};
use bevy::prelude::*;

use super::camera::{OrbitCamera, OrbitUpdate, scene_target, scene_view_camera};
use super::picking::Selection;
use super::scene::{EaseInRealTime, Scene, SceneSettings, SceneUpdate};
use super::spheres::{SphereAssets, SphereBuffers, build_mesh, refill_cloud};
use super::timeline::Timeline;
use super::training::{
    Controls, History, SentControls, TrainingAction, TrainingLink, TrainingStatus, absorb_events,
    frame_of, send_changes,
};
use super::{SceneFrame, ViewerMode};
use crate::compare::Comparison;
use crate::train::session::Command;

/// The render layer of the second run's spheres and camera (the first run's are on layer 0).
pub const SECOND_LAYER: usize = 1;

/// Which run the packing sliders move.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SliderTarget {
    /// A slider moved sets that setting in both runs; settings left alone keep their
    /// difference.
    #[default]
    Both,
    First,
    Second,
}

/// The second run of a comparison: its trainer, what it reported, and its own picture.
#[derive(Resource)]
pub struct SecondRun {
    pub comparison: Comparison,
    pub link: TrainingLink,
    pub status: TrainingStatus,
    pub history: History,
    /// Its live settings (the panel edits them when the sliders act on it).
    pub controls: Controls,
    sent: SentControls,
    pub scene: Scene,
    pub sliders: SliderTarget,
    /// The first run's controls as last seen, to tell which slider moved.
    first_seen: Option<Controls>,
    /// Its newest frame, shown again when the picture goes back to training or live.
    last_frame: Option<SceneFrame>,
    /// Its snapshots, scrubbed with the first run's: the entry at the step the first run's
    /// timeline shows.
    pub timeline: Timeline,
    /// The step of the first run's timeline shown last (None: live).
    shown_step: Option<usize>,
}

impl SecondRun {
    pub fn caption(&self, run: usize) -> String {
        self.comparison.caption(run)
    }
}

/// Where the second run's picture is drawn and shown.
#[derive(Resource, Clone, Debug)]
pub struct SecondView {
    pub image: Handle<Image>,
    /// Its half of the central area, in logical window pixels.
    pub rect: Option<Rect>,
    pub hovered: bool,
}

#[derive(Component)]
pub struct SecondCamera;

#[derive(Component)]
pub struct SecondCloud;

/// Everything the second view is made of (its camera and its cloud), removed with it.
#[derive(Component)]
struct SecondViewPart;

#[derive(Resource)]
struct SecondCloudAssets {
    mesh: Handle<Mesh>,
}

/// Starts or ends a comparison (the panel's compare control, a comparison lesson).
#[derive(Message, Clone, Debug)]
pub enum ComparisonAction {
    /// Train `configs[1]` beside the first run, from the start. The first run is restarted
    /// with `configs[0]` in the same frame (a [`TrainingAction::Restart`]), so both begin
    /// together from the same weights.
    Start(Box<Comparison>),
    Stop,
}

impl SecondRun {
    /// The second run of `comparison`, started beside `first`.
    pub fn start(
        comparison: Comparison,
        first: &TrainingLink,
        paused: bool,
    ) -> Result<Self, String> {
        let link = first.start_beside(&comparison.configs[1], paused)?;
        let mut controls = Controls::from_config(&link.config);
        controls.priority = link.priority;
        controls.running = !paused;
        Ok(Self {
            comparison,
            link,
            status: TrainingStatus::default(),
            history: History::default(),
            controls,
            sent: SentControls::default(),
            scene: Scene::default(),
            sliders: SliderTarget::Both,
            first_seen: None,
            last_frame: None,
            timeline: Timeline::default(),
            shown_step: None,
        })
    }
}

/// Trains and draws a comparison's second run when there is one: from the start (`initial`,
/// from `--compare`), or once the panel or a lesson starts one. Add it after the training
/// plugin.
#[derive(Default)]
pub struct ComparisonPlugin {
    pub initial: Option<Comparison>,
}

impl Plugin for ComparisonPlugin {
    fn build(&self, app: &mut App) {
        app.add_message::<ComparisonAction>();
        if let Some(comparison) = self.initial.clone() {
            let started = app
                .world()
                .get_resource::<TrainingLink>()
                .ok_or_else(|| "no first run".to_string())
                .and_then(|first| SecondRun::start(comparison, first, first.started_paused()));
            match started {
                Ok(run) => {
                    app.insert_resource(run);
                }
                Err(e) => error!("the comparison could not start: {e}"),
            }
        }
        let comparing = resource_exists::<SecondRun>;
        app.add_systems(
            Update,
            (
                start_or_stop.in_set(SecondRunUpdate).before(SceneUpdate),
                drive_second_run
                    .in_set(SecondRunUpdate)
                    .after(start_or_stop)
                    .before(SceneUpdate)
                    .run_if(comparing),
                ease_second_scene
                    .in_set(SecondRunUpdate)
                    .after(SceneUpdate)
                    .run_if(comparing),
            ),
        );
    }
}

/// Systems that bring the second run up to date; its view is drawn after them.
#[derive(SystemSet, Debug, Clone, PartialEq, Eq, Hash)]
pub struct SecondRunUpdate;

/// Draws the second run, when there is one, in a view of its own: its camera, cloud and
/// picture. Add it with [`ComparisonPlugin`].
pub struct SecondViewPlugin;

impl Plugin for SecondViewPlugin {
    fn build(&self, app: &mut App) {
        let comparing = resource_exists::<SecondRun>;
        app.add_systems(
            Update,
            (
                spawn_second_view
                    .after(SecondRunUpdate)
                    .run_if(comparing.and_then(not(resource_exists::<SecondView>))),
                despawn_second_view
                    .after(SecondRunUpdate)
                    .run_if(not(comparing).and_then(resource_exists::<SecondView>)),
                (follow_first_camera, fit_second_image)
                    .after(SecondRunUpdate)
                    .after(OrbitUpdate)
                    .run_if(comparing),
                update_second_cloud
                    .after(SecondRunUpdate)
                    .after(follow_first_camera)
                    .run_if(comparing),
            ),
        );
    }
}

fn start_or_stop(
    mut commands: Commands,
    mut actions: MessageReader<ComparisonAction>,
    first: Res<TrainingLink>,
    controls: Res<Controls>,
    mut second: Option<ResMut<SecondRun>>,
) {
    for action in actions.read() {
        match action {
            ComparisonAction::Start(comparison) => {
                match SecondRun::start((**comparison).clone(), &first, !controls.running) {
                    Ok(run) => {
                        if let Some(old) = second.as_deref_mut() {
                            // The new run takes the old one's place; the old one's thread ends
                            // on its own.
                            std::mem::replace(old, run).link.stop_in_background();
                        } else {
                            commands.insert_resource(run);
                        }
                    }
                    Err(e) => error!("the comparison could not start: {e}"),
                }
            }
            ComparisonAction::Stop => {
                commands.remove_resource::<SecondRun>();
            }
        }
    }
}

/// The second view's camera, cloud and picture, made when a comparison starts.
fn spawn_second_view(
    mut commands: Commands,
    mut images: ResMut<Assets<Image>>,
    mut meshes: ResMut<Assets<Mesh>>,
    first_cloud: Res<SphereAssets>,
    first: Query<&OrbitCamera>,
) {
    let image = images.add(scene_target(UVec2::new(640, 480)));
    let place = first
        .iter()
        .next()
        .map(OrbitCamera::transform)
        .unwrap_or_default();
    commands.spawn((
        scene_view_camera(image.clone(), place, -2),
        SecondCamera,
        SecondViewPart,
        RenderLayers::layer(SECOND_LAYER),
    ));
    let mesh = meshes.add(build_mesh(SphereBuffers::default()));
    commands.spawn((
        SecondCloud,
        Mesh3d(mesh.clone()),
        MeshMaterial3d(first_cloud.material.clone()),
        Transform::IDENTITY,
        NoFrustumCulling,
        SecondViewPart,
        RenderLayers::layer(SECOND_LAYER),
    ));
    commands.insert_resource(SecondCloudAssets { mesh });
    commands.insert_resource(SecondView {
        image,
        rect: None,
        hovered: false,
    });
}

/// Ends the second view when the comparison ends (the picture is whole again).
fn despawn_second_view(mut commands: Commands, parts: Query<Entity, With<SecondViewPart>>) {
    for entity in &parts {
        commands.entity(entity).despawn();
    }
    commands.remove_resource::<SecondView>();
    commands.remove_resource::<SecondCloudAssets>();
}

/// The second run's share of what `training` does for the first: controls out, events and
/// snapshots in, and the panel's one-off actions.
#[allow(clippy::too_many_arguments)]
fn drive_second_run(
    mut second: ResMut<SecondRun>,
    first_controls: Res<Controls>,
    first_link: Res<TrainingLink>,
    settings: Res<SceneSettings>,
    mode: Res<ViewerMode>,
    timeline: Res<Timeline>,
    mut actions: MessageReader<TrainingAction>,
    mut comparisons: MessageReader<ComparisonAction>,
    mut last_mode: Local<Option<ViewerMode>>,
) {
    let started_now = comparisons
        .read()
        .any(|action| matches!(action, ComparisonAction::Start(_)));
    let second = &mut *second;
    mirror_first_controls(
        second.sliders,
        &mut second.first_seen,
        &mut second.controls,
        &first_controls,
    );
    send_changes(&second.link, &second.controls, &mut second.sent);
    for action in actions.read() {
        match action {
            TrainingAction::Step => {
                second.controls.running = false;
                second.sent.0 = Some(second.controls.clone());
                second.link.send(Command::Step);
            }
            TrainingAction::Reset => {
                second.link.send(Command::Reset);
                second.history.clear();
                second.timeline.clear();
            }
            TrainingAction::Probe => {
                second.link.send(Command::Probe);
            }
            // A checkpoint is the first run's.
            TrainingAction::SaveCheckpoint(_) => {}
            // (A comparison started this frame sets the second run's configuration itself.)
            TrainingAction::Restart(_) if started_now => {}
            TrainingAction::Restart(_) => {
                // The first run has restarted with a new configuration (its link holds it): the
                // second takes it too, with its own values of the compared settings.
                let settings: Vec<(&str, String)> = second
                    .comparison
                    .keys
                    .iter()
                    .map(|key| (*key, crate::compare::setting(&second.link.config, key)))
                    .collect();
                let config = first_link
                    .config
                    .with_settings(settings.iter().map(|(k, v)| (*k, v.as_str())))
                    .and_then(|config| {
                        Comparison::from_configs(&first_link.config, &config)
                            .map(|comparison| (config, comparison))
                    });
                match config.and_then(|(config, comparison)| {
                    second.link.restart(config).map(|()| comparison)
                }) {
                    Ok(comparison) => {
                        second.comparison = comparison;
                        second.history.clear();
                        second.timeline.clear();
                        second.status = TrainingStatus::default();
                        second.controls = Controls::from_config(&second.link.config);
                        second.sent.0 = None;
                    }
                    Err(e) => second.status.error = Some(format!("restart refused: {e}")),
                }
            }
        }
    }
    absorb_events(
        &second.link,
        &mut second.status,
        &mut second.history,
        &mut second.controls,
        &mut second.sent,
        "second run: ",
    );
    let back_to_training = *last_mode != Some(*mode) && *mode == ViewerMode::Training;
    *last_mode = Some(*mode);
    let training = *mode == ViewerMode::Training;
    // The first run's timeline sets the moment both views show.
    let scrubbed = timeline.cursor_step();
    let moved = scrubbed != second.shown_step;
    second.shown_step = scrubbed;
    if let Some(snapshot) = second.link.take_snapshot() {
        let frame = frame_of(snapshot);
        second.timeline.record(&frame);
        if training && scrubbed.is_none() {
            second.scene.take(frame.clone(), settings.projection);
            second.history.push_picture(&second.scene);
        }
        second.last_frame = Some(frame);
    }
    let shown = match scrubbed {
        Some(step) if training && (moved || back_to_training) => second
            .timeline
            .entry_at_step(step)
            .and_then(|k| second.timeline.frame(k)),
        // Back at the live end, or back from the sandbox: the newest picture at once.
        None if training && (moved || back_to_training) => second.last_frame.clone(),
        _ => None,
    };
    if let Some(frame) = shown {
        second.scene.take(frame, settings.projection);
    }
}

/// Applies the first run's slider moves to the second run, as [`SliderTarget`] says: the
/// settings that moved this frame, never the ones left alone (they keep their difference).
/// Play, pause and the training priority are always shared.
fn mirror_first_controls(
    sliders: SliderTarget,
    first_seen: &mut Option<Controls>,
    second: &mut Controls,
    first: &Controls,
) {
    let previous = first_seen.replace(first.clone());
    second.running = first.running;
    second.priority = first.priority;
    let Some(previous) = previous else { return };
    if sliders != SliderTarget::Both {
        return;
    }
    if first.alpha != previous.alpha {
        second.alpha = first.alpha;
    }
    if first.radius_scale != previous.radius_scale {
        second.radius_scale = first.radius_scale;
    }
    if first.lr != previous.lr {
        second.lr = first.lr;
    }
    if first.weight_decay != previous.weight_decay {
        second.weight_decay = first.weight_decay;
    }
}

/// As the first run's scene: eased in real time, or jumping to each frame (the scene plugin's
/// choice).
fn ease_second_scene(
    mut second: ResMut<SecondRun>,
    settings: Res<SceneSettings>,
    time: Res<Time>,
    real_time: Option<Res<EaseInRealTime>>,
    mut last_projection: Local<Option<crate::projection::ProjectionMode>>,
) {
    if last_projection.is_some_and(|p| p != settings.projection) {
        second.scene.reproject(settings.projection);
    }
    *last_projection = Some(settings.projection);
    if real_time.is_some_and(|r| !r.0) {
        second.scene.snap();
    } else {
        second.scene.ease(settings.ease_rate, time.delta_secs());
    }
}

/// One camera for both views: the second copies the first one's place.
fn follow_first_camera(
    first: Query<&Transform, (With<OrbitCamera>, Without<SecondCamera>)>,
    mut second: Query<&mut Transform, With<SecondCamera>>,
) {
    let (Some(first), Ok(mut second)) = (first.iter().next(), second.single_mut()) else {
        return;
    };
    if *second != *first {
        *second = *first;
    }
}

/// Keeps the second picture at its half's size times the render scale (as the first).
fn fit_second_image(
    view: Option<Res<SecondView>>,
    first: Option<Res<super::camera::SceneView>>,
    windows: Query<&Window, With<bevy::window::PrimaryWindow>>,
    mut images: ResMut<Assets<Image>>,
) {
    let (Some(view), Some(first)) = (view, first) else {
        return;
    };
    let (Some(rect), Ok(window)) = (view.rect, windows.single()) else {
        return;
    };
    let scale = window.scale_factor() * first.render_scale.clamp(0.1, 2.0);
    super::camera::resize_target(&mut images, &view.image, rect, scale);
}

fn update_second_cloud(
    second: Res<SecondRun>,
    selection: Res<Selection>,
    mode: Res<ViewerMode>,
    assets: Option<Res<SecondCloudAssets>>,
    camera: Query<&Transform, With<SecondCamera>>,
    mut meshes: ResMut<Assets<Mesh>>,
) {
    let Some(assets) = assets else { return };
    // In the physics sandbox only the first view is shown: nothing to draw here.
    let scene = (*mode == ViewerMode::Training).then_some(&second.scene);
    refill_cloud(&mut meshes, &assets.mesh, scene, &selection, &camera);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first run's controls and the second's, for `alpha = 2 | alpha = 2.5`.
    fn controls() -> (Controls, Controls) {
        let base = crate::config::TrainConfig::viewer_default();
        let comparison = Comparison::from_spec(&base, "alpha=2.5").unwrap();
        (
            Controls::from_config(&comparison.configs[0]),
            Controls::from_config(&comparison.configs[1]),
        )
    }

    #[test]
    fn sliders_moved_on_both_keep_the_compared_difference() {
        let (mut first, mut second) = controls();
        let mut seen = None;
        let mirror = |seen: &mut _, second: &mut _, first: &_| {
            mirror_first_controls(SliderTarget::Both, seen, second, first)
        };
        mirror(&mut seen, &mut second, &first);
        assert_eq!(second.alpha, 2.5, "the compared value stays");
        first.radius_scale = 1.5;
        mirror(&mut seen, &mut second, &first);
        assert_eq!(second.radius_scale, 1.5, "a moved slider moves both");
        assert_eq!(second.alpha, 2.5, "alpha was not moved");
        first.alpha = 3.0;
        mirror(&mut seen, &mut second, &first);
        assert_eq!(second.alpha, 3.0, "moved on both: both take it");
        first.running = false;
        mirror(&mut seen, &mut second, &first);
        assert!(!second.running, "pause is shared");
    }

    #[test]
    fn sliders_on_one_run_leave_the_other_alone() {
        let (mut first, mut second) = controls();
        let (radius_scale, lr) = (second.radius_scale, second.lr);
        let mut seen = None;
        for target in [SliderTarget::First, SliderTarget::Second] {
            mirror_first_controls(target, &mut seen, &mut second, &first);
            first.radius_scale += 0.5;
            first.lr *= 2.0;
            mirror_first_controls(target, &mut seen, &mut second, &first);
            assert_eq!((second.radius_scale, second.lr), (radius_scale, lr));
        }
        first.running = false;
        mirror_first_controls(SliderTarget::First, &mut seen, &mut second, &first);
        assert!(!second.running, "pause is still shared");
    }
}
