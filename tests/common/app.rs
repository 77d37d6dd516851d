//! Driving the viewer's Bevy schedule headlessly.

use std::time::{Duration, Instant};

use bevy::prelude::*;
use clamp::viewer::runs::{Run, Runs};

/// Runs the app's schedule until `done` holds (or fails after `limit`), leaving the training
/// threads a moment between updates.
pub fn update_until(app: &mut App, what: &str, limit: Duration, done: impl Fn(&World) -> bool) {
    let started = Instant::now();
    while !done(app.world()) {
        assert!(started.elapsed() < limit, "timed out waiting for {what}");
        app.update();
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The viewer's runs and scenes plugins on Bevy's minimal plugins (no window): `config`'s run
/// on `threads` (paused at the start if asked), with `comparison`'s other runs beside it when
/// given.
pub fn training_app(
    config: &clamp::config::TrainConfig,
    threads: Option<usize>,
    paused: bool,
    comparison: Option<clamp::compare::Comparison>,
) -> App {
    use clamp::train::session::TrainingPriority;
    use clamp::viewer::runs::{RunsPlugin, ScenePlugin};
    let mut app = App::new();
    app.add_plugins(MinimalPlugins)
        .add_plugins(
            RunsPlugin::start(config, threads, TrainingPriority::Normal, paused)
                .expect("Fashion-MNIST loads")
                .comparing(comparison),
        )
        .add_plugins(
            // Drawn positions jump to each frame, so they can be compared exactly.
            ScenePlugin {
                ease_in_real_time: false,
                ..Default::default()
            },
        );
    app
}

/// The app's runs.
pub fn runs(world: &World) -> &Runs {
    world.resource::<Runs>()
}

/// Run `k` of the app.
pub fn run(world: &World, k: usize) -> &Run {
    &world.resource::<Runs>().list[k]
}

/// Run `k` of the app, to change.
pub fn run_mut(app: &mut App, k: usize) -> Mut<'_, Run> {
    app.world_mut()
        .resource_mut::<Runs>()
        .map_unchanged(|runs| &mut runs.list[k])
}
