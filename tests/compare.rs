//! Comparisons: the second run differs from the first in exactly the named settings, the
//! captions name the difference, and anything that would not make a fair comparison is refused
//! with the setting named.

use clamp::compare::{Comparison, SHARED_KEYS, differing_keys, parse_settings, setting};
use clamp::config::{KEYS, LossKind, TrainConfig};

mod common;

fn base() -> TrainConfig {
    TrainConfig::viewer_default()
}

#[test]
fn the_second_run_differs_in_exactly_the_named_settings() {
    let base = base();
    let harmonic_hertzian = Comparison::from_spec(&base, "alpha=2.5").unwrap();
    assert_eq!(harmonic_hertzian.keys, ["alpha"]);
    assert_eq!(harmonic_hertzian.configs[0], base);
    assert_eq!(harmonic_hertzian.configs[1].alpha, 2.5);
    assert_eq!(
        TrainConfig {
            alpha: base.alpha,
            ..harmonic_hertzian.configs[1].clone()
        },
        base,
        "nothing but alpha changed"
    );
    assert_eq!(harmonic_hertzian.legend(), "alpha = 2 | alpha = 2.5");

    // Two settings, listed in the configuration's order whatever the order typed.
    let two = Comparison::from_spec(&base, " radius_scale = 4 , views=8").unwrap();
    assert_eq!(two.keys, ["views", "radius_scale"]);
    assert_eq!(two.caption(0), "views = 4, radius_scale = 0.75");
    assert_eq!(two.caption(1), "views = 8, radius_scale = 4");
    assert_eq!(
        (two.configs[1].views, two.configs[1].radius_scale),
        (8, 4.0)
    );

    // Its settings as --compare takes them give the same comparison again.
    assert_eq!(two.spec(1), "views=8,radius_scale=4");
    assert_eq!(Comparison::from_spec(&base, &two.spec(1)).unwrap(), two);

    let simclr = Comparison::from_spec(&base, "loss=simclr").unwrap();
    assert_eq!(simclr.configs[1].loss, LossKind::Simclr);
    assert_eq!(simclr.legend(), "loss = clamp | loss = simclr");
}

#[test]
fn every_single_setting_change_differs_in_that_key_alone() {
    let base = base();
    // One allowed other value for each setting a comparison may change.
    let changes = [
        ("loss", "simclr"),
        ("steps", "777"),
        ("epochs", "3"),
        ("batch", "64"),
        ("views", "8"),
        ("dim", "16"),
        ("alpha", "2.5"),
        ("radius_scale", "4"),
        ("log_energy", "false"),
        ("temperature", "0.2"),
        ("optimizer", "lars"),
        ("lr", "0.0005"),
        ("weight_decay", "0.001"),
        ("warmup_steps", "11"),
        ("encoder", "resnet18"),
        ("width", "64"),
        ("projector_hidden", "128"),
        ("crop_min", "0.5"),
        ("crop_max", "0.9"),
        ("blur_prob", "0.25"),
        ("toy_noise", "0.5"),
        ("snapshot_images", "300"),
        ("eval_every", "50"),
        ("probe_train_images", "500"),
        ("probe_test_images", "300"),
    ];
    let mut covered: Vec<&str> = changes.iter().map(|(k, _)| *k).collect();
    covered.extend(SHARED_KEYS);
    covered.sort_unstable();
    let mut all = KEYS.to_vec();
    all.sort_unstable();
    assert_eq!(
        covered, all,
        "each setting is either changed here or shared"
    );
    for (key, value) in changes {
        let spec = format!("{key}={value}");
        let comparison = match Comparison::from_spec(&base, &spec) {
            Ok(c) => c,
            // The base already has this value for a few keys: then another one must work.
            Err(e) => panic!("{spec}: {e}"),
        };
        assert_eq!(comparison.keys, [key], "{spec}");
        assert_eq!(setting(&comparison.configs[1], key), value, "{spec}");
        assert_eq!(
            differing_keys(&comparison.configs[0], &comparison.configs[1]),
            [key]
        );
    }
}

#[test]
fn unfair_or_malformed_comparisons_are_refused_naming_the_setting() {
    let base = base();
    let refused = |spec: &str| Comparison::from_spec(&base, spec).unwrap_err();
    let unknown = refused("alhpa=2.5");
    assert!(unknown.contains("alhpa"), "{unknown}");
    let range = refused("alpha=99");
    assert!(
        range.contains("alpha") && range.contains("out of range"),
        "{range}"
    );
    let negative = refused("radius_scale=-1");
    assert!(negative.contains("radius_scale"), "{negative}");
    for shared in SHARED_KEYS {
        let message = refused(&format!("{shared}=1"));
        assert!(
            message.contains(shared) && message.contains("cannot differ"),
            "{message}"
        );
    }
    let same = refused("alpha=2");
    assert!(
        same.contains("alpha") && same.contains("would not differ"),
        "{same}"
    );
    assert!(refused("alpha").contains("KEY=VALUE"));
    assert!(refused("=2").contains("KEY=VALUE"));
    assert!(refused("").contains("at least one"));
    assert!(refused("alpha=2.5,alpha=3").contains("alpha is given twice"));

    // A second configuration file may differ in anything but the shared settings.
    let other_seed = TrainConfig {
        seed: base.seed + 1,
        alpha: 2.5,
        ..base.clone()
    };
    let message = Comparison::from_configs(&base, &other_seed).unwrap_err();
    assert!(message.contains("seed"), "{message}");
    assert!(Comparison::from_configs(&base, &base).is_err());
}

#[test]
fn settings_parse_in_order_and_keep_their_text() {
    assert_eq!(
        parse_settings("alpha=2.5,loss=simclr").unwrap(),
        [
            ("alpha".to_string(), "2.5".to_string()),
            ("loss".to_string(), "simclr".to_string())
        ]
    );
    assert_eq!(parse_settings(",alpha=3,").unwrap().len(), 1);
}

/// What a run drawn by the viewer shows after its steps: each step's loss, the newest
/// snapshot's step, centers and radii, as bits, and the contacts of the picture drawn.
#[cfg(feature = "viewer")]
#[derive(Debug, PartialEq)]
struct Drawn {
    losses: Vec<u64>,
    step: usize,
    centers: Vec<u32>,
    radii: Vec<u32>,
    /// The drawn picture's contact numbers.
    contacts: Vec<u32>,
}

/// Opens the viewer's training (paused, one thread a run), with `comparison`'s other runs
/// beside it when given, and presses Step `steps` times, as the panel's button does; what each
/// run drew.
#[cfg(feature = "viewer")]
fn step_in_the_viewer(
    config: &TrainConfig,
    comparison: Option<Comparison>,
    steps: usize,
) -> Vec<Drawn> {
    use bevy::prelude::*;
    use clamp::viewer::runs::{Run, TrainingAction};
    use common::app::{runs, training_app, update_until};
    use std::time::Duration;

    let expected = comparison.as_ref().map_or(1, Comparison::len);
    let mut app = training_app(config, Some(1), true, comparison);
    assert_eq!(runs(app.world()).len(), expected, "every run started");
    let steps_taken = |w: &World| {
        runs(w)
            .list
            .iter()
            .map(|run| run.status.step)
            .min()
            .unwrap_or(0)
    };
    for step in 1..=steps {
        app.world_mut().write_message(TrainingAction::Step);
        update_until(
            &mut app,
            "a step of each run",
            Duration::from_secs(120),
            |w| steps_taken(w) >= step,
        );
    }
    // A single step's snapshot comes after its report.
    let newest = |run: &Run| {
        let timeline = &run.timeline;
        timeline
            .entry(timeline.len().wrapping_sub(1))
            .map(|e| e.step)
    };
    update_until(
        &mut app,
        "each run's snapshot",
        Duration::from_secs(60),
        |w| runs(w).list.iter().all(|run| newest(run) == Some(steps)),
    );
    runs(app.world())
        .list
        .iter()
        .map(|run| {
            let timeline = &run.timeline;
            let entry = timeline.entry(timeline.len() - 1).unwrap();
            Drawn {
                losses: run.history.loss.iter().map(|l| l.to_bits()).collect(),
                step: entry.step,
                centers: entry.centers.iter().map(|v| v.to_bits()).collect(),
                radii: entry.radii.iter().map(|v| v.to_bits()).collect(),
                contacts: run.scene.frame.contacts.clone(),
            }
        })
        .collect()
}

/// Each run of a four-run comparison, trained by the viewer's own plugins beside the others,
/// is bit for bit the same run trained alone: losses, drawn centers, radii and contacts.
#[cfg(feature = "viewer")]
#[test]
fn each_run_inside_a_comparison_is_bit_identical_to_the_same_run_alone() {
    let config = common::runs::small_config();
    let comparison = Comparison::from_specs(
        &config,
        &["alpha=2.5,radius_scale=2", "radius_scale=4", "loss=simclr"],
    )
    .unwrap();
    assert_eq!(comparison.len(), 4);
    let steps = 3;
    let together = step_in_the_viewer(&config, Some(comparison.clone()), steps);
    assert_eq!(together.len(), 4);
    for (k, config) in comparison.configs.iter().enumerate() {
        let alone = step_in_the_viewer(config, None, steps);
        assert_eq!(together[k].losses.len(), steps);
        assert!(!together[k].contacts.is_empty(), "run {k} drew a picture");
        assert_eq!(together[k], alone[0], "run {k}: {}", comparison.caption(k));
    }
    // And they are four runs: each one's settings change its loss from the first step on.
    for a in 0..4 {
        for b in a + 1..4 {
            assert_ne!(
                together[a].losses[0], together[b].losses[0],
                "runs {a} and {b}"
            );
        }
    }
    assert_ne!(together[0].radii, together[2].radii);
}

#[test]
fn up_to_four_runs_each_with_its_caption_and_spec() {
    let base = base();
    let sweep = Comparison::from_specs(
        &base,
        &["radius_scale=1.5", "radius_scale=2.5", "radius_scale=4"],
    )
    .unwrap();
    assert_eq!(sweep.len(), 4);
    assert_eq!(sweep.keys, ["radius_scale"]);
    assert_eq!(
        sweep.legend(),
        "radius_scale = 0.75 | radius_scale = 1.5 | radius_scale = 2.5 | radius_scale = 4"
    );
    let radii: Vec<f64> = sweep.configs.iter().map(|c| c.radius_scale).collect();
    assert_eq!(radii, [0.75, 1.5, 2.5, 4.0]);
    // Each run's spec gives it back over the same first run.
    assert_eq!(
        Comparison::from_specs(&base, &sweep.specs()).unwrap(),
        sweep
    );

    // Runs that differ in different settings: every caption names them all, each spec only
    // its own difference.
    let mixed = Comparison::from_specs(&base, &["alpha=2.5", "radius_scale=4"]).unwrap();
    assert_eq!(mixed.keys, ["alpha", "radius_scale"]);
    assert_eq!(mixed.caption(0), "alpha = 2, radius_scale = 0.75");
    assert_eq!(mixed.caption(1), "alpha = 2.5, radius_scale = 0.75");
    assert_eq!(mixed.caption(2), "alpha = 2, radius_scale = 4");
    assert_eq!(mixed.specs(), ["alpha=2.5", "radius_scale=4"]);

    // A fifth run, a run repeated, and a bad spec among good ones are refused by name.
    let five = Comparison::from_specs(&base, &["alpha=2.5", "alpha=3", "alpha=3.5", "alpha=4"])
        .unwrap_err();
    assert!(
        five.contains("5 runs") && five.contains("at most 4"),
        "{five}"
    );
    let repeated = Comparison::from_specs(&base, &["alpha=2.5", "alpha=2.5"]).unwrap_err();
    assert!(
        repeated.contains("run 3 is the same as run 2"),
        "{repeated}"
    );
    let bad = Comparison::from_specs(&base, &["alpha=2.5", "alpha=99"]).unwrap_err();
    assert!(
        bad.starts_with("alpha=99") && bad.contains("out of range"),
        "{bad}"
    );
}
