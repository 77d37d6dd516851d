#![cfg(feature = "viewer")]
//! The viewer's schedule, driven headlessly (no window, no GPU): moving the alpha control sends
//! a command that the training thread applies at the very next step.

use std::time::Duration;

use bevy::prelude::*;
use clamp::backend::BackendChoice;
use clamp::backend::CpuBackend;
use clamp::config::TrainConfig;
use clamp::loss::PackingParams;
use clamp::train::session::TrainingPriority;
use clamp::train::{Trainer, TrainingData};
use clamp::viewer::runs::{RunsPlugin, TrainingAction};

mod common;
use common::app::{run, run_mut, update_until};

const MINUTE: Duration = Duration::from_secs(60);

fn toy_config() -> TrainConfig {
    TrainConfig {
        dataset: "toy".into(),
        backend: BackendChoice::Cpu,
        views: 4,
        dim: 3,
        width: 4,
        batch: 10,
        radius_scale: 2.0,
        snapshot_images: 10,
        ..TrainConfig::default()
    }
}

#[test]
fn the_alpha_control_changes_the_loss_at_the_next_step() {
    let config = toy_config();
    let mut app = App::new();
    app.add_plugins(MinimalPlugins).add_plugins(
        RunsPlugin::start(&config, Some(1), TrainingPriority::Normal, true)
            .expect("toy data loads"),
    );

    app.world_mut().write_message(TrainingAction::Step);
    update_until(&mut app, "step 1", MINUTE, |w| run(w, 0).status.step >= 1);
    let first = run(app.world(), 0).status.last.clone().unwrap();
    assert_eq!(first.alpha, 2.0);

    // The panel's slider writes the control; the schedule sends it before the next step.
    run_mut(&mut app, 0).controls.alpha = 3.0;
    app.world_mut().write_message(TrainingAction::Step);
    update_until(&mut app, "step 2", MINUTE, |w| run(w, 0).status.step >= 2);
    let second = run(app.world(), 0).status.last.clone().unwrap();
    assert_eq!(
        second.alpha, 3.0,
        "the trainer reports the new alpha at the next step"
    );

    // Independent reference: the same run stepped by hand, alpha set to 3 after one step.
    let data = std::sync::Arc::new(TrainingData::load(&config).unwrap());
    let mut trainer = Trainer::<CpuBackend>::new(config.clone(), data, Default::default());
    let reference_first = trainer.step().unwrap();
    assert_eq!(
        reference_first.loss, first.loss,
        "the viewer's first step is the plain run's"
    );
    let at_alpha_2 = trainer.preview_loss(&trainer.params());
    trainer
        .set_params(PackingParams {
            alpha: 3.0,
            ..trainer.params()
        })
        .unwrap();
    let reference_second = trainer.step().unwrap();
    assert_eq!(second.loss, reference_second.loss, "step 2 used alpha = 3");
    assert_ne!(
        second.loss, at_alpha_2,
        "alpha = 3 gives another loss than alpha = 2"
    );
}
