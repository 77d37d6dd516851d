//! Comparisons: the second run differs from the first in exactly the named settings, the
//! captions name the difference, and anything that would not make a fair comparison is refused
//! with the setting named.

use clamp::compare::{Comparison, SHARED_KEYS, differing_keys, parse_settings, setting};
use clamp::config::{KEYS, LossKind, TrainConfig};

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
    assert_eq!(two.spec(), "views=8,radius_scale=4");
    assert_eq!(Comparison::from_spec(&base, &two.spec()).unwrap(), two);

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

/// A small run on the bundled Fashion-MNIST: 512 training and 128 test images.
fn small_config() -> TrainConfig {
    TrainConfig {
        batch: 32,
        views: 4,
        dim: 8,
        width: 8,
        projector_hidden: 32,
        radius_scale: 3.0,
        snapshot_images: 64,
        steps: 20,
        warmup_steps: 2,
        backend: clamp::backend::BackendChoice::Cpu,
        ..TrainConfig::default()
    }
}

fn small_data(config: &TrainConfig) -> std::sync::Arc<clamp::train::TrainingData> {
    use clamp::data::{Split, load_fashion_mnist};
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/fashion-mnist");
    let all = load_fashion_mnist(&dir, Split::Test).expect("bundled Fashion-MNIST");
    let train = all.subset(&(0..512).collect::<Vec<_>>());
    let test = all.subset(&(9000..9128).collect::<Vec<_>>());
    let augment = clamp::augment::AugmentConfig {
        crop_scale: (config.crop_min, config.crop_max),
        ..Default::default()
    };
    std::sync::Arc::new(
        clamp::train::TrainingData::new(train, test, "test subset".into(), augment, config)
            .unwrap(),
    )
}

/// Trains `configs` side by side on `data` (a session each, all stepping at once, as the
/// viewer's comparison runs them), `steps` steps; each run's losses and final snapshot.
fn train_side_by_side(
    configs: &[TrainConfig],
    data: &std::sync::Arc<clamp::train::TrainingData>,
    steps: usize,
) -> Vec<(Vec<f64>, clamp::train::Snapshot)> {
    use clamp::train::session::{Command, Event, SessionOptions, spawn_session};
    use std::time::{Duration, Instant};
    let backend = clamp::backend::resolve(clamp::backend::BackendChoice::Cpu);
    let sessions: Vec<_> = configs
        .iter()
        .map(|config| {
            let options = SessionOptions {
                start_paused: true,
                threads: Some(1),
                ..Default::default()
            };
            spawn_session(&backend, config.clone(), data.clone(), options)
        })
        .collect();
    let mut losses = vec![Vec::new(); configs.len()];
    for _ in 0..steps {
        for session in &sessions {
            session.send(Command::Step);
        }
        for (session, losses) in sessions.iter().zip(&mut losses) {
            loop {
                match session.next_event(Duration::from_secs(120)) {
                    Some(Event::Step(report)) => {
                        losses.push(report.loss);
                        break;
                    }
                    Some(Event::Error(e)) => panic!("training error: {e}"),
                    Some(_) => continue,
                    None => panic!("no step report within 120 s"),
                }
            }
        }
    }
    sessions
        .iter()
        .zip(losses)
        .map(|(session, losses)| {
            // A paused session's single step ends with a snapshot, put after its report.
            let started = Instant::now();
            loop {
                if let Some(snapshot) = session.take_snapshot()
                    && snapshot.step == steps
                {
                    return (losses, snapshot);
                }
                assert!(started.elapsed() < Duration::from_secs(60), "no snapshot");
                std::thread::sleep(Duration::from_millis(5));
            }
        })
        .collect()
}

#[test]
fn a_run_inside_a_comparison_is_bit_identical_to_the_same_run_alone() {
    let config = small_config();
    let data = small_data(&config);
    let comparison = Comparison::from_spec(&config, "alpha=2.5,radius_scale=2").unwrap();
    let steps = 4;
    let (alone_losses, alone) =
        train_side_by_side(&comparison.configs[..1], &data, steps).remove(0);
    let mut pair = train_side_by_side(&comparison.configs, &data, steps);
    let (second_losses, second) = pair.pop().unwrap();
    let (first_losses, first) = pair.pop().unwrap();
    let bits = |values: &[f32]| values.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert_eq!(
        first_losses.iter().map(|l| l.to_bits()).collect::<Vec<_>>(),
        alone_losses.iter().map(|l| l.to_bits()).collect::<Vec<_>>()
    );
    assert_eq!(bits(&first.readout.centers), bits(&alone.readout.centers));
    assert_eq!(bits(&first.readout.radii), bits(&alone.readout.radii));
    assert_eq!(first.pairs, alone.pairs);
    assert_eq!(
        (first.labels.clone(), first.images.clone()),
        (alone.labels, alone.images)
    );
    // The second run shares the images and their order, and its own settings show: the first
    // step is the same network on the same batch, so only the loss's parameters differ.
    assert_eq!(
        (&second.labels, &second.images),
        (&first.labels, &first.images)
    );
    assert_eq!(second.params.alpha, 2.5);
    assert_ne!(second_losses[0], first_losses[0]);
    assert_ne!(bits(&second.readout.centers), bits(&first.readout.centers));
}
