//! The training engine: commands apply at the very next step, checkpoints resume the exact loss
//! trajectory, WGPU and CPU agree on a step, and the probes and SimCLR loss against references.

use std::sync::Arc;
use std::time::Duration;

use burn::tensor::{Tensor, TensorData};
use clamp::backend::{CpuBackend, probe_adapter};
use clamp::config::TrainConfig;
use clamp::eval::{Features, LinearProbe, ProbeSettings, knn_accuracy, linear_probe_accuracy};
use clamp::loss::PackingParams;
use clamp::optim::{OptimizerKind, scheduled_lr};
use clamp::simclr::nt_xent;
use clamp::train::agreement::compare_one_step;
use clamp::train::session::{Command, Event, Session, SessionOptions};
use clamp::train::{Trainer, TrainingData, checkpoint};

mod common;
use common::runs::{bundled_data, small_config, small_data};

fn next_step(session: &Session) -> clamp::train::StepReport {
    loop {
        match session.next_event(Duration::from_secs(120)) {
            Some(Event::Step(report)) => return report,
            Some(Event::Error(e)) => panic!("training error: {e}"),
            Some(_) => continue,
            None => panic!("no step report within 120 s"),
        }
    }
}

/// The session's next picture of `step` (older ones are skipped).
fn snapshot_at(session: &Session, step: usize) -> clamp::train::Snapshot {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(snapshot) = session.take_snapshot().filter(|s| s.step == step) {
            return snapshot;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no snapshot within 120 s"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn alpha_command_changes_the_loss_at_the_next_step() {
    let config = small_config();
    let data = small_data(&config);

    // The expected losses, computed directly: step 1 at alpha 2, then step 2's batch at alpha 3.
    let mut direct = Trainer::<CpuBackend>::new(config.clone(), data.clone(), Default::default());
    let first = direct.step().unwrap();
    let at_alpha_3 = direct.preview_loss(&PackingParams {
        alpha: 3.0,
        ..config.packing()
    });
    let at_alpha_2 = direct.preview_loss(&config.packing());
    assert!(
        (at_alpha_3 - at_alpha_2).abs() > 1e-3,
        "alpha must matter: {at_alpha_2} vs {at_alpha_3}"
    );

    let (c, d) = (config.clone(), data.clone());
    let options = SessionOptions {
        start_paused: true,
        ..Default::default()
    };
    let session = Session::spawn(
        move || Trainer::<CpuBackend>::new(c, d, Default::default()),
        options,
    );
    session.send(Command::Step);
    let report = next_step(&session);
    assert_eq!(report.loss, first.loss);
    session.send(Command::SetAlpha(3.0));
    session.send(Command::Step);
    let report = next_step(&session);
    assert_eq!(report.alpha, 3.0);
    assert_eq!(report.step, 2);
    assert!(
        (report.loss - at_alpha_3).abs() <= 1e-9 * at_alpha_3.abs(),
        "step 2 reported {} but alpha 3 gives {at_alpha_3} (alpha 2: {at_alpha_2})",
        report.loss
    );

    // Paused, a new r_s redraws the spheres at once: a picture of the same step, every radius
    // scaled by the ratio of the radius scales (r_i = r_s x the views' RMS spread).
    let before = snapshot_at(&session, 2);
    session.send(Command::SetRadiusScale(2.5 * config.radius_scale));
    // (Taken while paused: no step comes between the two pictures.)
    let after = snapshot_at(&session, 2);
    for (r_before, r_after) in before.readout.radii.iter().zip(&after.readout.radii) {
        assert!(
            (r_after / r_before - 2.5).abs() < 1e-5,
            "{r_before} -> {r_after}"
        );
    }

    // r_s too, and a bad value is refused with a message naming it.
    session.send(Command::SetRadiusScale(-1.0));
    let mut refused = false;
    while let Some(event) = session.next_event(Duration::from_secs(120)) {
        if let Event::Error(message) = event {
            assert!(message.contains("radius_scale"), "{message}");
            refused = true;
            break;
        }
    }
    assert!(refused, "a negative r_s must be refused");
    // The refused value left the radii as they were.
    let snapshot = snapshot_at(&session, 2);
    assert_eq!(snapshot.readout.radii, after.readout.radii);
}

#[test]
fn errors_reach_an_owner_that_stopped_reading_step_reports() {
    let config = small_config();
    let data = small_data(&config);
    let options = SessionOptions {
        // Room for three step reports: the owner below reads nothing while ten or more run.
        step_events: 3,
        ..Default::default()
    };
    let (c, d) = (config.clone(), data.clone());
    let session = Session::spawn(
        move || Trainer::<CpuBackend>::new(c, d, Default::default()),
        options,
    );
    // Wait, reading no event, until the trainer is well past the channel's room (the
    // snapshots say how far it got), then ask for something it refuses, and pause.
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    let mut done = 0;
    while done < 10 {
        assert!(
            std::time::Instant::now() < deadline,
            "fewer than 10 steps in 300 s"
        );
        if let Some(snapshot) = session.take_snapshot() {
            done = snapshot.step;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    session.send(Command::SetRadiusScale(-1.0));
    session.send(Command::Pause);
    let mut events = Vec::new();
    while !events.iter().any(|e| matches!(e, Event::Paused(true))) {
        match session.next_event(Duration::from_secs(120)) {
            Some(event) => events.push(event),
            None => panic!("no pause within 120 s of asking: {events:?}"),
        }
    }
    let steps: Vec<usize> = events
        .iter()
        .filter_map(|e| match e {
            Event::Step(report) => Some(report.step),
            _ => None,
        })
        .collect();
    // The first three reports filled the room; those of steps 4 to 10 at least were dropped.
    // (Once reading began, the report of the step in progress may have found room.)
    assert_eq!(steps[..3], [1, 2, 3], "{done} steps were done");
    assert!(
        steps.len() <= 4 && steps.get(3).is_none_or(|&s| s > done),
        "{steps:?}, {done} done"
    );
    let error = events.iter().find_map(|e| match e {
        Event::Error(message) => Some(message.clone()),
        _ => None,
    });
    assert!(
        error.as_deref().is_some_and(|m| m.contains("radius_scale")),
        "the refusal arrives although the step channel was full: {events:?}"
    );
    // In sending order: the refusal comes before the pause it preceded.
    let position = |wanted: fn(&Event) -> bool| events.iter().position(wanted).unwrap();
    assert!(
        position(|e| matches!(e, Event::Error(_))) < position(|e| matches!(e, Event::Paused(true)))
    );
}

#[test]
fn resuming_a_checkpoint_continues_the_loss_trajectory_exactly() {
    let config = TrainConfig {
        optimizer: OptimizerKind::Adam,
        ..small_config()
    };
    let data = small_data(&config);
    let dir = std::env::temp_dir().join(format!("clamp-resume-{}", std::process::id()));

    let mut trainer = Trainer::<CpuBackend>::new(config.clone(), data.clone(), Default::default());
    for _ in 0..3 {
        trainer.step().unwrap();
    }
    trainer
        .set_params(PackingParams {
            alpha: 2.5,
            ..config.packing()
        })
        .unwrap();
    checkpoint::save(&trainer, &dir).unwrap();
    let continued: Vec<f64> = (0..4).map(|_| trainer.step().unwrap().loss).collect();

    let mut resumed =
        checkpoint::load::<CpuBackend>(&dir, data.clone(), Default::default()).unwrap();
    assert_eq!(resumed.step_count(), 3);
    assert_eq!(resumed.params().alpha, 2.5);
    let replayed: Vec<f64> = (0..4).map(|_| resumed.step().unwrap().loss).collect();
    assert_eq!(
        continued, replayed,
        "resumed losses must equal the uninterrupted run's"
    );

    // LARS moments survive the checkpoint as well.
    let config = TrainConfig {
        optimizer: OptimizerKind::Lars,
        lr: 0.5,
        ..small_config()
    };
    let mut trainer = Trainer::<CpuBackend>::new(config, data.clone(), Default::default());
    trainer.step().unwrap();
    trainer.step().unwrap();
    checkpoint::save(&trainer, &dir).unwrap();
    let continued: Vec<f64> = (0..2).map(|_| trainer.step().unwrap().loss).collect();
    let mut resumed = checkpoint::load::<CpuBackend>(&dir, data, Default::default()).unwrap();
    let replayed: Vec<f64> = (0..2).map(|_| resumed.step().unwrap().loss).collect();
    assert_eq!(continued, replayed);
}

/// A run directory with checkpoints at steps 1 and 2 of `small_config`.
fn run_with_two_checkpoints(name: &str) -> (std::path::PathBuf, Arc<TrainingData>) {
    let config = small_config();
    let data = small_data(&config);
    let run = std::env::temp_dir().join(format!("clamp-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&run);
    let mut trainer = Trainer::<CpuBackend>::new(config, data.clone(), Default::default());
    for _ in 0..2 {
        trainer.step().unwrap();
        checkpoint::save_in_run(&trainer, &run).unwrap();
    }
    (run, data)
}

#[test]
fn every_kind_of_damage_to_the_newest_checkpoint_falls_back_to_the_one_before() {
    type Damage = fn(&std::path::Path);
    let truncate: Damage = |path| {
        let bytes = std::fs::read(path).unwrap();
        std::fs::write(path, &bytes[..bytes.len() / 2]).unwrap();
    };
    let remove: Damage = |path| std::fs::remove_file(path).unwrap();
    // Same length, different bytes: only the hash can tell.
    let garble: Damage = |path| {
        let mut bytes = std::fs::read(path).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x5a;
        std::fs::write(path, bytes).unwrap();
    };
    let cases: [(&str, &str, Damage, &str); 11] = [
        ("model.mpk", "truncated", truncate, "truncated"),
        ("model.mpk", "missing", remove, "missing"),
        ("model.mpk", "garbled", garble, "not what was written"),
        ("optimizer.mpk", "truncated", truncate, "truncated"),
        ("optimizer.mpk", "garbled", garble, "not what was written"),
        ("config.toml", "missing", remove, "missing"),
        ("config.toml", "garbled", garble, "not what was written"),
        ("state.json", "truncated", truncate, "truncated"),
        ("state.json", "garbled", garble, "not what was written"),
        ("manifest.json", "missing", remove, "cut short"),
        (
            "manifest.json",
            "truncated",
            truncate,
            "not a checkpoint manifest",
        ),
    ];
    for (file, how, damage, expected) in cases {
        let (run, data) = run_with_two_checkpoints(&format!("damage-{file}-{how}"));
        let newest = checkpoint::step_dir(&run, 2);
        damage(&newest.join(file));

        let refused = checkpoint::verify(&newest).expect_err(&format!("{file} {how} accepted"));
        assert!(
            refused.contains(&newest.join(file).display().to_string())
                && refused.contains(expected),
            "{file} {how}: {refused}"
        );
        let (trainer, dir, passed_over) =
            checkpoint::load_newest::<CpuBackend>(&run, Ok, data, Default::default())
                .unwrap_or_else(|e| panic!("{file} {how}: step 1 should load: {e}"));
        assert_eq!(dir, checkpoint::step_dir(&run, 1), "{file} {how}");
        assert_eq!(trainer.step_count(), 1, "{file} {how}");
        assert_eq!(passed_over.len(), 1, "{file} {how}: {passed_over:?}");
        assert!(
            passed_over[0].contains(file),
            "{file} {how}: {passed_over:?}"
        );
        let _ = std::fs::remove_dir_all(&run);
    }

    // Both damaged: nothing loads, and the error lists both.
    let (run, data) = run_with_two_checkpoints("damage-both");
    for step in [1, 2] {
        truncate(&checkpoint::step_dir(&run, step).join("model.mpk"));
    }
    let error = checkpoint::load_newest::<CpuBackend>(&run, Ok, data, Default::default())
        .err()
        .expect("no whole checkpoint");
    assert!(
        error.contains("step-00000001") && error.contains("step-00000002"),
        "{error}"
    );
    let _ = std::fs::remove_dir_all(&run);
}

#[test]
fn a_model_of_another_shape_is_refused_by_name() {
    let (run, data) = run_with_two_checkpoints("other-shape");
    let dir = checkpoint::step_dir(&run, 2);
    let wider = TrainConfig {
        width: 16,
        ..small_config()
    };
    let error = checkpoint::load_with_config::<CpuBackend>(&dir, wider, data, Default::default())
        .err()
        .expect("width 8 weights must not load into a width 16 model");
    assert!(
        error.contains(&dir.join("model.mpk").display().to_string())
            && error.contains("another shape"),
        "{error}"
    );
    let _ = std::fs::remove_dir_all(&run);
}

#[test]
fn saving_keeps_the_two_newest_checkpoints_and_replaces_in_one_rename() {
    let config = small_config();
    let data = small_data(&config);
    let run = std::env::temp_dir().join(format!("clamp-keep-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&run);
    let mut trainer = Trainer::<CpuBackend>::new(config, data, Default::default());
    for _ in 0..4 {
        trainer.step().unwrap();
        checkpoint::save_in_run(&trainer, &run).unwrap();
    }
    let steps: Vec<usize> = checkpoint::list(&run).into_iter().map(|(s, _)| s).collect();
    assert_eq!(steps, vec![4, 3]);
    // Nothing but whole checkpoints is left behind: no staging or set-aside directories.
    let names: Vec<String> = std::fs::read_dir(run.join(checkpoint::CHECKPOINTS_DIR))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    // Saving the same step again replaces the directory whole.
    checkpoint::save_in_run(&trainer, &run).unwrap();
    assert_eq!(
        checkpoint::verify(&checkpoint::step_dir(&run, 4))
            .unwrap()
            .step,
        4
    );
    let _ = std::fs::remove_dir_all(&run);
}

#[test]
fn a_non_finite_step_changes_neither_weights_nor_optimizer_and_halves_the_rate() {
    use clamp::optim::ModelOptimizer;
    use clamp::train::{Fault, FaultKind};
    for kind in [FaultKind::NanLoss, FaultKind::NanGrad] {
        let config = TrainConfig {
            optimizer: OptimizerKind::Adam,
            ..small_config()
        };
        let data = small_data(&config);
        let mut faulty =
            Trainer::<CpuBackend>::new(config.clone(), data.clone(), Default::default());
        faulty.set_fault(Some(Fault {
            kind,
            step: 3,
            onwards: false,
        }));
        let mut clean = Trainer::<CpuBackend>::new(config.clone(), data, Default::default());
        for _ in 0..2 {
            assert_eq!(faulty.step().unwrap().loss, clean.step().unwrap().loss);
        }
        let skipped = faulty.step().expect_err("step 3 is faulty");
        assert_eq!(skipped.step, 3);
        assert_eq!(skipped.in_a_row, 1);
        assert!(!skipped.is_fatal());
        assert_eq!(skipped.lr, config.lr / 2.0);
        assert_eq!(faulty.base_lr(), config.lr / 2.0);
        assert_eq!(faulty.step_count(), 3, "the faulty batch is skipped");

        // The clean run's state after step 2, moved to step 3 at half the rate, must behave
        // exactly as the faulty run: same weights and same optimizer moments.
        let optimizer = ModelOptimizer::new(config.optimizer, config.weight_decay)
            .load(clean.optimizer().record());
        clean.restore(
            clean.model().clone(),
            optimizer,
            3,
            clean.params(),
            config.lr / 2.0,
            config.weight_decay,
        );
        for _ in 0..2 {
            let (a, b) = (faulty.step().unwrap(), clean.step().unwrap());
            assert_eq!((a.step, a.loss, a.lr), (b.step, b.loss, b.lr), "{kind:?}");
        }
    }
}

#[test]
fn three_non_finite_steps_in_a_row_are_fatal_and_the_session_reports_each() {
    use clamp::train::{Fault, FaultKind};
    let config = small_config();
    let data = small_data(&config);
    let options = SessionOptions {
        fault: Some(Fault {
            kind: FaultKind::NanLoss,
            step: 4,
            onwards: true,
        }),
        ..Default::default()
    };
    let (c, d) = (config.clone(), data.clone());
    let session = Session::spawn(
        move || Trainer::<CpuBackend>::new(c, d, Default::default()),
        options,
    );
    let mut skipped = Vec::new();
    let mut steps = Vec::new();
    let error = loop {
        match session.next_event(Duration::from_secs(120)) {
            Some(Event::Step(report)) => steps.push(report.step),
            Some(Event::Skipped(message)) => skipped.push(message),
            Some(Event::Error(message)) => break message,
            Some(_) => continue,
            None => panic!("no error within 120 s"),
        }
    };
    assert_eq!(steps, vec![1, 2, 3]);
    assert_eq!(skipped.len(), 2, "{skipped:?}");
    assert!(
        skipped[0].starts_with("step 4: the loss") && skipped[0].contains("halved"),
        "{skipped:?}"
    );
    assert!(error.contains("3 steps in a row (steps 4-6)"), "{error}");
    let paused = std::iter::from_fn(|| session.next_event(Duration::from_secs(120)))
        .any(|e| matches!(e, Event::Paused(true)));
    assert!(paused, "a fatal run pauses");
}

#[test]
fn wgpu_and_cpu_agree_on_a_training_step() {
    let adapter = probe_adapter()
        .expect("no WGPU adapter: install mesa-vulkan-drivers (lavapipe) to run the WGPU backend");
    let config = small_config();
    let data = small_data(&config);
    let scratch = std::env::temp_dir().join(format!("clamp-wgpu-{}", std::process::id()));
    let agreement = compare_one_step(config, data, &scratch).expect("both backends step");
    println!("adapter {}: {}", adapter.name, agreement.summary());
    assert!(!scratch.exists(), "the scratch checkpoint is removed");
    let relative = agreement.loss_relative_difference();
    assert!(relative <= 1e-3, "{}", agreement.summary());
    // Every parameter, on its own scale: the gradients within 1e-3 of its largest entry, and
    // the weights the step wrote within 1e-3 learning rates of each other.
    let names: Vec<&str> = agreement
        .parameters
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    assert!(names.len() >= 6, "{names:?}");
    let largest = agreement.largest_gradient();
    for p in &agreement.parameters {
        println!("  {:<28} scale {:.2e}", p.name, p.gradient_scale / largest);
        if agreement.vanishes(p) {
            // Only the projector's output bias: the loss subtracts the batch mean first, so
            // its gradient is zero in exact arithmetic; on both backends it is rounding.
            assert_eq!(p.name, "projector.output.bias");
            assert!(p.worst_gradient_difference <= 1e-5 * largest, "{p:?}");
            continue;
        }
        assert!(
            p.gradient_relative_difference() <= 1e-3,
            "{}: {p:?}",
            p.name
        );
        assert!(p.worst_update_difference <= 1e-3, "{}: {p:?}", p.name);
        assert!(p.ambiguous_updates < p.entries, "{}: {p:?}", p.name);
    }
    assert!(agreement.holds_within(1e-3));
    // A hand-made disagreement is seen as one: the loss, one small parameter's gradient
    // (the smallest-scaled, which a whole-model scale would hide), or one update.
    let off = clamp::train::agreement::StepAgreement {
        wgpu_loss: agreement.cpu_loss * 1.01,
        ..agreement.clone()
    };
    assert!(!off.holds_within(1e-3));
    let smallest = (0..agreement.parameters.len())
        .filter(|&k| !agreement.vanishes(&agreement.parameters[k]))
        .min_by(|&a, &b| {
            agreement.parameters[a]
                .gradient_scale
                .total_cmp(&agreement.parameters[b].gradient_scale)
        })
        .unwrap();
    let largest_scale = agreement.largest_gradient();
    let mut zeroed = agreement.clone();
    // As if WGPU gave zeros there: off by the parameter's whole scale, yet under 1e-3 of the
    // model's largest gradient whenever that parameter is 1,000 times smaller.
    zeroed.parameters[smallest].worst_gradient_difference =
        zeroed.parameters[smallest].gradient_scale;
    println!(
        "smallest-scaled parameter {}: {:.2e} of the largest scale",
        zeroed.parameters[smallest].name,
        zeroed.parameters[smallest].gradient_scale / largest_scale
    );
    assert!(!zeroed.holds_within(1e-3));
    let mut moved = agreement.clone();
    moved.parameters[smallest].worst_update_difference = 0.01;
    assert!(!moved.holds_within(1e-3));
    assert!(
        (agreement.stepped_loss - agreement.wgpu_loss).abs() <= 1e-9 * agreement.wgpu_loss.abs(),
        "the step reports the previewed loss"
    );
}

#[test]
fn the_default_model_agrees_on_wgpu_at_the_default_batch() {
    // Batch 256 x 2 views: the first layer's weight gradient sums 401,408 products, which
    // burn's own convolution could not sum on a software adapter (its loop ran past the
    // adapter's cut); clamp's kernels split it into loops of a few thousand.
    let config = TrainConfig::default();
    assert_eq!((config.batch, config.views), (256, 2));
    let data = Arc::new(TrainingData::load(&config).expect("Fashion-MNIST"));
    let scratch = std::env::temp_dir().join(format!("clamp-wgpu-default-{}", std::process::id()));
    let agreement = compare_one_step(config, data, &scratch).expect("both backends step");
    println!("{}", agreement.summary());
    assert!(agreement.holds_within(1e-3), "{}", agreement.summary());
}

#[test]
fn resnet18_agrees_on_wgpu() {
    // Strided and 1 x 1 convolutions, batch norm without ReLU, residual sums: a narrow
    // ResNet-18 on a small batch, the loss and every parameter's gradient.
    let config = TrainConfig {
        encoder: clamp::model::EncoderKind::Resnet18,
        width: 8,
        batch: 8,
        ..TrainConfig::default()
    };
    let data = Arc::new(TrainingData::load(&config).expect("Fashion-MNIST"));
    let scratch = std::env::temp_dir().join(format!("clamp-wgpu-resnet-{}", std::process::id()));
    let agreement = compare_one_step(config, data, &scratch).expect("both backends step");
    println!("{}", agreement.summary());
    assert_eq!(
        agreement.parameters.len(),
        64,
        "every parameter of ResNet-18 and the projector"
    );
    assert!(agreement.holds_within(1e-3), "{}", agreement.summary());
}

#[test]
fn a_software_adapter_cuts_long_sums_short_and_training_that_needs_one_is_refused() {
    use burn::backend::Wgpu;
    use clamp::backend::BackendChoice;
    use clamp::backend::SOFTWARE_ADAPTER_LOOP_LIMIT as LIMIT;
    use clamp::train::RunStart;
    let adapter = probe_adapter()
        .expect("no WGPU adapter: install mesa-vulkan-drivers (lavapipe) to run the WGPU backend");
    let sum_of_ones = |n: usize| {
        Tensor::<Wgpu, 2>::ones([1, n], &Default::default())
            .sum_dim(1)
            .into_scalar()
    };
    // The cut is Mesa's llvmpipe's (lavapipe): measured there, on its shader loops. Exact in
    // f32 up to 2^24, so a short sum is a loop that stopped, not rounding. Four values an
    // iteration when the count divides by four, one otherwise.
    if adapter.name.contains("llvmpipe") || adapter.name.contains("lavapipe") {
        assert_eq!(sum_of_ones(4 * LIMIT), (4 * LIMIT) as f32);
        assert_eq!(sum_of_ones(300_000), (4 * LIMIT) as f32);
        assert_eq!(sum_of_ones(LIMIT), LIMIT as f32);
        assert_eq!(sum_of_ones(100_001), LIMIT as f32);
    } else if !adapter.software {
        // A GPU driver sums them all.
        assert_eq!(sum_of_ones(300_001), 300_001.0);
    }

    // The rule, on whatever adapter this is. The longest loop of a step is a batch-norm
    // statistic's: a channel's values over the batch, shared by 256 threads. The default run
    // (batch 256 x 2 views of 28 x 28: 1,568 values a thread) trains anywhere; batch 4,898 x 4
    // views (60,001 a thread) is refused on a software adapter with the batch that fits,
    // 4,897 (59,989) accepted.
    let config = TrainConfig {
        backend: BackendChoice::Wgpu,
        ..TrainConfig::default()
    };
    let start = RunStart::prepare(&config).expect("Fashion-MNIST");
    assert_eq!(start.backend.software_adapter, adapter.software);
    assert!(start.for_training(&config).is_ok());
    let with_batch = |batch| {
        let config = TrainConfig {
            batch,
            views: 4,
            ..config.clone()
        };
        RunStart::prepare(&config).unwrap().for_training(&config)
    };
    if adapter.software {
        let error = with_batch(8192).err().expect("refused");
        assert!(error.contains("adds 25690112 values"), "{error}");
        assert!(error.contains("Use --batch 4897 or less"), "{error}");
        assert!(with_batch(4898).is_err());
        assert!(with_batch(4897).is_ok());
    } else {
        assert!(with_batch(8192).is_ok());
    }
    // The CPU backend has no such limit.
    let cpu = TrainConfig {
        backend: BackendChoice::Cpu,
        batch: 8192,
        views: 4,
        ..TrainConfig::default()
    };
    assert!(RunStart::prepare(&cpu).unwrap().for_training(&cpu).is_ok());
}

#[test]
fn simclr_matches_a_hand_written_nt_xent() {
    let (m, b, d, t) = (3usize, 5usize, 4usize, 0.5f64);
    let values: Vec<f64> = (0..m * b * d)
        .map(|k| ((k * 37 % 17) as f64 - 8.0) / 5.0)
        .collect();
    let z: Vec<Vec<f64>> = (0..m * b)
        .map(|r| {
            let row = &values[r * d..(r + 1) * d];
            let norm = row.iter().map(|x| x * x).sum::<f64>().sqrt();
            row.iter().map(|x| x / norm).collect()
        })
        .collect();
    let n = m * b;
    let mut total = 0.0;
    for a in 0..n {
        let logits: Vec<f64> = (0..n)
            .map(|k| z[a].iter().zip(&z[k]).map(|(x, y)| x * y).sum::<f64>() / t)
            .collect();
        let norm: f64 = (0..n)
            .filter(|&k| k != a)
            .map(|k| logits[k].exp())
            .sum::<f64>()
            .ln();
        for p in (0..n).filter(|&p| p != a && p % b == a % b) {
            total -= logits[p] - norm;
        }
    }
    let want = total / (n * (m - 1)) as f64;
    let x = Tensor::<clamp::backend::CpuBackend, 3>::from_data(
        TensorData::new(
            values.iter().map(|&v| v as f32).collect::<Vec<_>>(),
            [m, b, d],
        ),
        &Default::default(),
    );
    let got = nt_xent(x, t).into_scalar() as f64;
    assert!((got - want).abs() < 1e-5 * want.abs(), "{got} vs {want}");
}

fn clusters(per_class: usize, dim: usize, offset: usize) -> Features {
    // Class c lives around axis c; a little deterministic jitter.
    let mut values = Vec::new();
    let mut labels = Vec::new();
    for c in 0..3 {
        for i in 0..per_class {
            for k in 0..dim {
                let jitter = (((i + offset) * 31 + k * 7) % 13) as f32 / 13.0 - 0.5;
                values.push(if k == c { 2.0 } else { 0.0 } + 0.6 * jitter);
            }
            labels.push(c as u16);
        }
    }
    Features {
        values,
        labels,
        dim,
    }
}

#[test]
fn probes_classify_separable_clusters_and_fail_on_shuffled_labels() {
    let device = Default::default();
    let train = clusters(40, 5, 0);
    let test = clusters(20, 5, 100);
    assert_eq!(
        knn_accuracy::<burn::backend::Flex>(&train, &test, 3, 20, &device),
        1.0
    );
    let settings = ProbeSettings::default();
    assert_eq!(linear_probe_accuracy(&train, &test, 3, &settings), 1.0);

    // Labels unrelated to the features: both probes fall to chance on held-out data. Each
    // cluster gets every label equally often (42 points, labels cycling), so not even a
    // majority ties a label to a cluster.
    let mut shuffled = clusters(42, 5, 0);
    for (i, label) in shuffled.labels.iter_mut().enumerate() {
        *label = ((i % 42) % 3) as u16;
    }
    let knn = knn_accuracy::<burn::backend::Flex>(&shuffled, &test, 3, 20, &device);
    assert!(knn < 0.6, "kNN on shuffled labels {knn}");
    let linear = linear_probe_accuracy(&shuffled, &test, 3, &settings);
    assert!(linear < 0.6, "linear probe on shuffled labels {linear}");
}

#[test]
fn the_linear_probe_is_the_same_every_time() {
    // Noisy, overlapping classes in 16-d, several gradient chunks: a full-batch sum whose order
    // followed the thread schedule would round differently from run to run.
    let (n, dim, classes) = (9000usize, 16usize, 4usize);
    let mut state = 12345u64;
    let mut noise = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 40) as f32 / (1u64 << 24) as f32) - 0.5
    };
    let labels: Vec<u16> = (0..n).map(|i| (i % classes) as u16).collect();
    let values: Vec<f32> = (0..n * dim)
        .map(|k| {
            let (i, j) = (k / dim, k % dim);
            let signal = if j == labels[i] as usize { 0.4 } else { 0.0 };
            signal + 2.0 * noise()
        })
        .collect();
    let features = Features {
        values,
        labels,
        dim,
    };
    let settings = ProbeSettings {
        epochs: 40,
        ..ProbeSettings::default()
    };
    let first = LinearProbe::fit(&features, classes, &settings);
    for _ in 0..3 {
        let again = LinearProbe::fit(&features, classes, &settings);
        assert_eq!(first.weights(), again.weights());
    }
    // And it learned something: well above chance (0.25) on its own training set.
    assert!(
        first.accuracy(&features) > 0.4,
        "{}",
        first.accuracy(&features)
    );
}

#[test]
fn learning_rate_schedule_warms_up_then_decays() {
    // batch 512 doubles the base rate; warm-up is linear; the cosine ends at zero.
    assert!((scheduled_lr(0.1, 512, 0, 10, 110) - 0.02).abs() < 1e-12);
    assert!((scheduled_lr(0.1, 512, 9, 10, 110) - 0.2).abs() < 1e-12);
    assert!((scheduled_lr(0.1, 512, 60, 10, 110) - 0.1).abs() < 1e-12);
    assert!(scheduled_lr(0.1, 512, 110, 10, 110).abs() < 1e-12);
}

#[test]
fn config_errors_name_the_key() {
    let dir = std::env::temp_dir().join(format!("clamp-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("run.toml");
    std::fs::write(&path, "batch = 64\nradius_scael = 3.0\n").unwrap();
    let error = TrainConfig::from_toml_file(&path).unwrap_err();
    assert!(
        error.contains("radius_scael") && error.contains("run.toml"),
        "{error}"
    );
    std::fs::write(&path, "views = 1\n").unwrap();
    let error = TrainConfig::from_toml_file(&path).unwrap_err();
    assert!(
        error.contains("views") && error.contains("2 to 64"),
        "{error}"
    );
    std::fs::write(&path, "alpha = 2.5\nseed = 9\n").unwrap();
    let config = TrainConfig::from_toml_file(&path).unwrap();
    assert_eq!(
        (config.alpha, config.seed, config.batch),
        (2.5, 9, TrainConfig::default().batch)
    );
    // The shipped configs are valid.
    for name in ["toy.toml", "lars-reference.toml"] {
        let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("assets/configs")
            .join(name);
        TrainConfig::from_toml_file(&shipped).unwrap_or_else(|e| panic!("{e}"));
    }
    // A saved config reads back as the same run.
    std::fs::write(&path, config.to_toml()).unwrap();
    assert_eq!(TrainConfig::from_toml_file(&path).unwrap(), config);
}

#[test]
fn a_seed_gives_the_same_weights_while_other_threads_build_models() {
    use clamp::model::{EncoderKind, ModelConfig};
    type F = burn::backend::Flex;
    let config = ModelConfig {
        encoder: EncoderKind::SmallCnn,
        channels: 1,
        pixels: 28 * 28,
        width: 4,
        projector_hidden: 16,
        embedding_dim: 6,
    };
    let device = Default::default();
    let probe = || Tensor::<F, 4>::ones([2, 1, 28, 28], &device);
    let alone = config.init::<F>(7, &device).embed(probe()).into_data();
    // Eight threads build seed-7 and seed-8 models at once: each seed-7 model must be the one
    // built alone (burn's generator is process-wide, so unguarded draws would interleave).
    let config = &config;
    let built: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|i| scope.spawn(move || config.init::<F>(7 + (i % 2), &Default::default())))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (i, model) in built.into_iter().enumerate() {
        let out = model.embed(probe()).into_data();
        if i % 2 == 0 {
            assert_eq!(out, alone, "thread {i} drew different seed-7 weights");
        } else {
            assert_ne!(out, alone, "seed 8 must differ from seed 7");
        }
    }
}

#[test]
fn batch_norm_matches_burns_batch_norm() {
    use burn::module::{AutodiffModule, Param};
    use burn::nn::{BatchNorm, BatchNormConfig};
    use clamp::model::batch_norm;
    type F = burn::backend::Flex;
    type A = burn::backend::Autodiff<F>;
    let device = Default::default();
    // Deterministic, uneven values (not drawn from burn's generator, which other tests seed).
    let wave = |len: usize, k: f32| -> Vec<f32> {
        (0..len)
            .map(|i| 1.5 + 2.0 * (i as f32 * k).sin() + (i % 7) as f32 * 0.3)
            .collect()
    };
    let shape = [6, 5, 4, 3];
    let len = shape.iter().product::<usize>();
    let input = Tensor::<A, 4>::from_data(TensorData::new(wave(len, 0.37), shape), &device);
    let weight = Tensor::<A, 4>::from_data(TensorData::new(wave(len, 1.13), shape), &device);
    // A fresh module per run: clones of a module share its running statistics.
    let fresh_norm = || {
        let mut norm: BatchNorm<A> = BatchNormConfig::new(5).init(&device);
        norm.gamma = Param::from_tensor(Tensor::from_data(
            TensorData::new(wave(5, 0.9), [5]),
            &device,
        ));
        norm.beta = Param::from_tensor(Tensor::from_data(
            TensorData::new(wave(5, 2.1), [5]),
            &device,
        ));
        norm
    };
    let close = |a: TensorData, b: TensorData, what: &str| {
        let (a, b) = (a.to_vec::<f32>().unwrap(), b.to_vec::<f32>().unwrap());
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(&b) {
            assert!(
                (x - y).abs() <= 1e-4 * (1.0 + y.abs()),
                "{what}: {x} vs {y}"
            );
        }
    };

    // Training mode: output, gradients of input, gamma and beta, running statistics.
    let run = |ours: bool| {
        let norm = fresh_norm();
        let x = input.clone().require_grad();
        let y = if ours {
            batch_norm(&norm, x.clone())
        } else {
            norm.forward(x.clone())
        };
        let grads = (y.clone() * weight.clone()).sum().backward();
        let grad_x = x.grad(&grads).unwrap().into_data();
        let grad_gamma = norm.gamma.grad(&grads).unwrap().into_data();
        let grad_beta = norm.beta.grad(&grads).unwrap().into_data();
        (y.into_data(), grad_x, grad_gamma, grad_beta, norm)
    };
    let (y_ours, gx_ours, gg_ours, gb_ours, after_ours) = run(true);
    let (y_burn, gx_burn, gg_burn, gb_burn, after_burn) = run(false);
    close(y_ours, y_burn, "output");
    close(gx_ours, gx_burn, "input gradient");
    close(gg_ours, gg_burn, "gamma gradient");
    close(gb_ours, gb_burn, "beta gradient");
    for (ours, burn, what) in [
        (
            &after_ours.running_mean,
            &after_burn.running_mean,
            "running mean",
        ),
        (
            &after_ours.running_var,
            &after_burn.running_var,
            "running variance",
        ),
    ] {
        // value_sync: an update is kept per thread until the value is synchronised.
        close(
            ours.value_sync().into_data(),
            burn.value_sync().into_data(),
            what,
        );
    }
    // The update moved the running mean off its initial zeros.
    let moved = after_ours
        .running_mean
        .value_sync()
        .abs()
        .sum()
        .into_scalar();
    assert!(moved > 0.1, "running mean did not move: {moved}");

    // Inference (no autodiff): the running statistics (synchronised above), as burn.
    let valid = after_burn.valid();
    let x = input.inner();
    close(
        batch_norm(&valid, x.clone()).into_data(),
        valid.forward(x).into_data(),
        "inference output",
    );
}

#[test]
fn resnet18_encoder_shapes() {
    use clamp::model::{EncoderKind, ModelConfig};
    let config = ModelConfig {
        encoder: EncoderKind::Resnet18,
        channels: 3,
        pixels: 32 * 32,
        width: 4,
        projector_hidden: 16,
        embedding_dim: 5,
    };
    let device = Default::default();
    let model = config.init::<burn::backend::Flex>(0, &device);
    let images = Tensor::<burn::backend::Flex, 4>::zeros([2, 3, 32, 32], &device);
    // Four stages ending at 8x width channels, globally pooled.
    assert_eq!(model.encoder.forward(images.clone()).dims(), [2, 32]);
    assert_eq!(config.feature_dim(), 32);
    assert_eq!(model.embed(images).dims(), [2, 5]);
}

#[test]
fn lars_step_matches_the_hand_computed_update() {
    use burn::optim::SimpleOptimizer;
    use clamp::optim::Lars;
    type F = burn::backend::Flex;
    let device = Default::default();
    let lars = Lars {
        momentum: 0.9,
        trust: 0.001,
        weight_decay: 0.01,
    };
    let weights = [3.0f64, 4.0, 0.0, 0.0]; // |w| = 5
    let grad = [0.0f64, 0.0, 1.0, 0.0];
    let tensor = |v: &[f64]| {
        Tensor::<F, 2>::from_data(
            TensorData::new(v.iter().map(|&x| x as f32).collect::<Vec<_>>(), [2, 2]),
            &device,
        )
    };
    // update = g + wd w = (0.03, 0.04, 1, 0); |update| = sqrt(1.0025); trust = eta |w| / |update|.
    let update: Vec<f64> = grad
        .iter()
        .zip(&weights)
        .map(|(g, w)| g + 0.01 * w)
        .collect();
    let norm = update.iter().map(|u| u * u).sum::<f64>().sqrt();
    let trust = 0.001 * 5.0 / norm;
    let lr = 0.5;
    let (after, state) = lars.step(lr, tensor(&weights), tensor(&grad), None);
    let after: Vec<f64> = after.into_data().iter::<f64>().collect();
    for k in 0..4 {
        let want = weights[k] - lr * trust * update[k];
        assert!(
            (after[k] - want).abs() < 1e-6,
            "w[{k}] = {} vs {want}",
            after[k]
        );
    }
    // Second step: velocity = 0.9 v + new scaled update.
    let (again, _) = lars.step(lr, tensor(&after), tensor(&grad), state);
    let again: Vec<f64> = again.into_data().iter::<f64>().collect();
    let update2: Vec<f64> = grad.iter().zip(&after).map(|(g, w)| g + 0.01 * w).collect();
    let norm_w = after.iter().map(|w| w * w).sum::<f64>().sqrt();
    let norm_u = update2.iter().map(|u| u * u).sum::<f64>().sqrt();
    for k in 0..4 {
        let velocity = 0.9 * trust * update[k] + 0.001 * norm_w / norm_u * update2[k];
        let want = after[k] - lr * velocity;
        assert!(
            (again[k] - want).abs() < 1e-6,
            "second step w[{k}] = {} vs {want}",
            again[k]
        );
    }

    // A 1-D parameter (bias, norm scale) gets plain momentum SGD: no decay, no trust ratio.
    let bias = Tensor::<F, 1>::from_data(TensorData::new(vec![1.0f32, 2.0], [2]), &device);
    let bias_grad = Tensor::<F, 1>::from_data(TensorData::new(vec![0.5f32, -1.0], [2]), &device);
    let (bias, _) = lars.step(0.1, bias, bias_grad, None);
    let bias: Vec<f32> = bias.into_data().iter::<f32>().collect();
    assert!(
        (bias[0] - 0.95).abs() < 1e-6 && (bias[1] - 2.1).abs() < 1e-6,
        "{bias:?}"
    );
}

/// Trains `config` on 4,000 bundled images and probes on 1,000 others (2,000 training
/// features): (mean loss of the first ten steps, of the last ten, probe at initialisation,
/// probe at the end).
fn learn(
    config: TrainConfig,
) -> (
    f64,
    f64,
    clamp::train::ProbeReport,
    clamp::train::ProbeReport,
) {
    let data = bundled_data(&config, 4000, 1000);
    let mut trainer = Trainer::<CpuBackend>::new(config, data, Default::default());
    let initial = trainer.probe();
    let losses: Vec<f64> = (0..trainer.total_steps())
        .map(|_| trainer.step().unwrap().loss)
        .collect();
    let mean = |xs: &[f64]| xs.iter().sum::<f64>() / xs.len() as f64;
    let (first, last) = (mean(&losses[..10]), mean(&losses[losses.len() - 10..]));
    let trained = trainer.probe();
    println!(
        "loss {first:.4} -> {last:.4}; kNN {:.3} -> {:.3}; linear {:.3} -> {:.3}",
        initial.knn_acc, trained.knn_acc, initial.linear_acc, trained.linear_acc
    );
    (first, last, initial, trained)
}

fn learning_config(loss: clamp::config::LossKind) -> TrainConfig {
    TrainConfig {
        loss,
        batch: 128,
        views: 2,
        dim: 32,
        width: 16,
        steps: LEARNING_STEPS,
        warmup_steps: 10,
        probe_train_images: 2000,
        probe_test_images: 1000,
        snapshot_images: 64,
        ..TrainConfig::default()
    }
}

const LEARNING_STEPS: usize = 300;

/// A short run of `loss` lowers its loss by `fall` and raises the probes by these gains.
fn assert_learns(loss: clamp::config::LossKind, fall: f64, knn_gain: f64, linear_gain: f64) {
    let (first, last, initial, trained) = learn(learning_config(loss));
    assert!(last < first - fall, "{loss:?}: loss {first} -> {last}");
    let gains = [
        ("kNN", initial.knn_acc, trained.knn_acc, knn_gain),
        (
            "linear",
            initial.linear_acc,
            trained.linear_acc,
            linear_gain,
        ),
    ];
    for (probe, before, after, gain) in gains {
        assert!(
            after >= before + gain,
            "{loss:?}: {probe} {before} -> {after}"
        );
    }
}

#[test]
fn a_short_clamp_run_lowers_its_loss_and_beats_its_initial_encoder() {
    // Measured here: loss 6.54 -> 5.37, kNN 0.713 -> 0.754 (+0.041), linear 0.769 -> 0.793
    // (+0.024) on 1,000 held-out images; asked: about three quarters of each gain.
    assert_learns(clamp::config::LossKind::Clamp, 0.8, 0.03, 0.015);
}

#[test]
fn a_short_simclr_run_lowers_its_loss_and_beats_its_initial_encoder() {
    // Measured here: loss 5.10 -> 4.16, kNN 0.713 -> 0.738 (+0.025), linear 0.769 -> 0.787
    // (+0.018); asked: about three quarters of each gain.
    assert_learns(clamp::config::LossKind::Simclr, 0.7, 0.018, 0.013);
}

#[test]
fn auto_times_a_few_steps_on_each_backend_and_trains_on_the_faster() {
    use clamp::backend::{AdapterSummary, BackendChoice, BackendKind, resolve_with};
    use clamp::train::choose::{Choice, StepTiming, TIME_BOX, faster_backend};
    let adapter = probe_adapter()
        .expect("no WGPU adapter: install mesa-vulkan-drivers (lavapipe) to run the WGPU backend");
    // `auto` times both only with a hardware GPU; a software adapter is taken as one here, to
    // run the timing on the adapter CI has.
    let hardware = AdapterSummary {
        software: false,
        ..adapter
    };
    let backend = resolve_with(BackendChoice::Auto, Some(hardware.clone()));
    assert!(backend.time_both && backend.kind == BackendKind::Wgpu);
    let software = resolve_with(
        BackendChoice::Auto,
        Some(AdapterSummary {
            software: true,
            ..hardware
        }),
    );
    assert!(
        !software.time_both && software.kind == BackendKind::Cpu,
        "a software adapter: the CPU, untimed"
    );

    let config = small_config();
    let data = small_data(&config);
    let (chosen, line) = faster_backend(backend, &config, &data).expect("both backends step");
    println!("{line}");
    // "auto timed both: wgpu 61.2 ms a step (15 steps), cpu 2.1 ms (15 steps): training on …"
    let number_after = |word: &str| -> f64 {
        let rest = &line[line.find(word).expect(word) + word.len()..];
        rest.split_whitespace().next().unwrap().parse().unwrap()
    };
    let (wgpu_ms, cpu_ms) = (number_after("wgpu "), number_after("cpu "));
    let faster = if cpu_ms < wgpu_ms {
        BackendKind::Cpu
    } else {
        BackendKind::Wgpu
    };
    assert_eq!(chosen.kind, faster, "{line}");
    assert!(!chosen.time_both, "timed once");
    assert!(
        chosen.description.contains(&line),
        "the backend says both numbers"
    );
    // Each backend's timed steps fit its time box, give or take the step that crosses it.
    let steps = |word: &str| -> f64 {
        let rest = &line[line.find(word).expect(word)..];
        let at = rest.find('(').unwrap() + 1;
        rest[at..]
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    for (ms, n) in [(wgpu_ms, steps("wgpu ")), (cpu_ms, steps("cpu "))] {
        assert!(n >= 1.0 && n <= 15.0, "{line}");
        assert!(
            ms * (n - 1.0) <= TIME_BOX.as_secs_f64() * 1e3 * 1.5 + ms,
            "{line}"
        );
    }
    // The rule itself: the smaller median wins, WGPU on a tie.
    let t = |median_seconds| StepTiming {
        median_seconds,
        steps: 3,
    };
    assert_eq!(Choice::of(t(0.010), t(0.020)).chosen, BackendKind::Wgpu);
    assert_eq!(Choice::of(t(0.020), t(0.010)).chosen, BackendKind::Cpu);
    assert_eq!(Choice::of(t(0.010), t(0.010)).chosen, BackendKind::Wgpu);
}

#[test]
fn runs_side_by_side_take_turns_at_the_training_cores() {
    use clamp::train::session::Turns;
    use std::sync::atomic::{AtomicUsize, Ordering};
    for permits in [1usize, 2] {
        let turns = Turns::new(permits);
        let inside = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let done: Vec<_> = (0..4)
            .map(|_| {
                let (turns, inside, most) = (turns.clone(), inside.clone(), most.clone());
                std::thread::spawn(move || {
                    for _ in 0..50 {
                        let _turn = turns.take();
                        let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_micros(200));
                        inside.fetch_sub(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for thread in done {
            thread.join().expect("every run gets its turns");
        }
        // Never more at the cores than the permits; with several waiting, all of them used.
        assert_eq!(most.load(Ordering::SeqCst), permits, "{permits} permits");
    }
}
