//! Driving the viewer's Bevy schedule headlessly.

use std::time::{Duration, Instant};

use bevy::prelude::*;

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

/// The viewer's training, timeline, scene and comparison plugins on Bevy's minimal plugins (no
/// window): `config`'s run on `threads` (paused at the start if asked), with `comparison`'s
/// second run beside it when given.
pub fn training_app(
    config: &clamp::config::TrainConfig,
    threads: Option<usize>,
    paused: bool,
    comparison: Option<clamp::compare::Comparison>,
) -> App {
    use clamp::train::session::TrainingPriority;
    use clamp::viewer::compare::ComparisonPlugin;
    use clamp::viewer::scene::ScenePlugin;
    use clamp::viewer::timeline::TimelinePlugin;
    use clamp::viewer::training::TrainingPlugin;
    let mut app = App::new();
    app.add_plugins(MinimalPlugins)
        .add_plugins(
            TrainingPlugin::start(config, threads, TrainingPriority::Normal, paused)
                .expect("Fashion-MNIST loads"),
        )
        .add_plugins((
            TimelinePlugin,
            // Drawn positions jump to each frame, so they can be compared exactly.
            ScenePlugin {
                ease_in_real_time: false,
                ..Default::default()
            },
            ComparisonPlugin {
                initial: comparison,
            },
        ));
    app
}
