//! The training controls: play and pause, the timeline, the lessons, the live packing values,
//! and the draft of the next restart.

use std::path::PathBuf;

use bevy::prelude::*;
use bevy_egui::egui::{self, Color32, RichText};

use super::super::camera::OrbitCamera;
use super::super::preset;
use super::super::ranges;
use super::super::runs::{Runs, SliderTarget, TrainingAction};
use super::super::scene::SceneSettings;
use super::super::training::Controls;
use super::PanelState;
use crate::compare::{Comparison, MAX_RUNS};
use crate::config::TrainConfig;
use crate::train::session::TrainingPriority;

/// Not in a browser's page: checkpoints, videos, presets read from files, the priority of
/// training threads (a page's screenshots and presets are downloads).
pub(super) const DESKTOP: bool = !cfg!(target_arch = "wasm32");

/// Edits the controls the sliders show and applies what moved to the runs they act on.
fn edit_controls(runs: &mut Runs, edit: impl FnOnce(&mut Controls)) {
    let Some(before) = runs.slider_controls() else {
        return;
    };
    let mut after = before.clone();
    edit(&mut after);
    if after != before {
        runs.apply_controls(&before, &after);
    }
}

pub(super) fn run_controls(
    ui: &mut egui::Ui,
    runs: &mut Runs,
    actions: &mut MessageWriter<TrainingAction>,
) {
    ui.horizontal(|ui| {
        let running = runs.running();
        let label = if running { "Pause" } else { "Play" };
        if ui.button(label).clicked() {
            runs.set_running(!running);
        }
        if ui.button("Step").clicked() {
            actions.write(TrainingAction::Step);
        }
        if ui.button("Reset").clicked() {
            actions.write(TrainingAction::Reset);
        }
        if ui
            .button("Probe now")
            .on_hover_text("kNN and linear probe of the frozen encoder (also every 1,000 steps)")
            .clicked()
        {
            actions.write(TrainingAction::Probe);
        }
    });
    for (k, run) in runs.list.iter().enumerate() {
        if let Some(probe) = &run.status.last_probe {
            let which = if runs.len() > 1 {
                format!("run {}: ", k + 1)
            } else {
                String::new()
            };
            ui.label(format!(
                "{which}probe at step {}: kNN {:.3}, linear {:.3}",
                probe.step, probe.knn_acc, probe.linear_acc
            ));
        }
    }
    // A page has no files to save into and one thread to share with training.
    if !DESKTOP {
        return;
    }
    if ui
        .button("Save checkpoint")
        .on_hover_text(
            "model, optimizer, config and step, written atomically under runs/ (each run of a \
             comparison in a folder of its own)",
        )
        .clicked()
    {
        let stamp = crate::progress::unix_time();
        actions.write(TrainingAction::SaveCheckpoint(PathBuf::from(format!(
            "runs/view-{stamp}"
        ))));
    }
    let Some(mut priority) = runs.slider_controls().map(|c| c.priority) else {
        return;
    };
    egui::ComboBox::from_label("training priority")
        .selected_text(priority_label(priority))
        .show_ui(ui, |ui| {
            for choice in [
                TrainingPriority::Background,
                TrainingPriority::Shared,
                TrainingPriority::Normal,
            ] {
                ui.selectable_value(&mut priority, choice, priority_label(choice));
            }
        })
        .response
        .on_hover_text(
            "frames first: training only uses cycles the renderer leaves; shared: a contested \
             core goes mostly to drawing; equal: training competes like any program",
        );
    edit_controls(runs, |c| c.priority = priority);
}

/// Replay speeds offered, in snapshots a second (0: one a frame).
const REPLAY_SPEEDS: [f32; 6] = [0.0, 2.0, 5.0, 10.0, 30.0, 60.0];

/// The scrubber over the stored snapshots: dragging it pauses training and shows the past;
/// Live returns to the newest picture and resumes; Replay plays the history forward (the
/// Record button captures it).
pub(super) fn timeline_controls(ui: &mut egui::Ui, runs: &mut Runs) {
    let mut resume = false;
    let mut pause = false;
    let Some(first) = runs.list.first_mut() else {
        return;
    };
    let timeline = &mut first.timeline;
    if timeline.is_empty() {
        return;
    }
    let last = timeline.len() - 1;
    let mut position = timeline.cursor().unwrap_or(last);
    let first_step = timeline.entry(0).map_or(0, |e| e.step);
    let last_step = timeline.entry(last).map_or(0, |e| e.step);
    ui.label(
        RichText::new(format!(
            "timeline: {} snapshots, steps {first_step}-{last_step}",
            timeline.len()
        ))
        .small(),
    );
    let response = ui.add(
        egui::Slider::new(&mut position, 0..=last)
            .show_value(false)
            .text(match timeline.cursor_step() {
                Some(step) => format!("step {step}"),
                None => "live".into(),
            }),
    );
    // Dragging within the live end stays live; anywhere else shows that snapshot (and
    // training pauses: the training plugin sees the timeline leave its live end).
    if response.changed() && !(position == last && timeline.is_live()) {
        timeline.scrub_to(position);
        timeline.replaying = false;
    }
    ui.horizontal(|ui| {
        let live = timeline.is_live();
        if ui
            .add_enabled(!live, egui::Button::new("Live"))
            .on_hover_text("back to the newest picture; training resumes")
            .clicked()
        {
            timeline.go_live();
            resume = true;
        }
        let replay_label = if timeline.replaying {
            "Pause replay"
        } else {
            "Replay"
        };
        if ui
            .button(replay_label)
            .on_hover_text("play the history from the slider's position, at the speed beside")
            .clicked()
        {
            if timeline.replaying {
                timeline.replaying = false;
            } else {
                if live {
                    timeline.scrub_to(0);
                }
                timeline.replaying = true;
                pause = true;
            }
        }
        let speed_label = |speed: f32| {
            if speed > 0.0 {
                format!("{speed} / s")
            } else {
                "1 a frame".to_string()
            }
        };
        egui::ComboBox::from_id_salt("replay speed")
            .selected_text(speed_label(timeline.replay_speed))
            .show_ui(ui, |ui| {
                for speed in REPLAY_SPEEDS {
                    ui.selectable_value(&mut timeline.replay_speed, speed, speed_label(speed));
                }
            })
            .response
            .on_hover_text("snapshots a second the replay shows");
    });
    if resume || pause {
        runs.set_running(resume);
    }
}

/// The shipped lessons, one click each: the lesson's runs restart from fresh weights with its
/// settings, and its text stays at the top of the panel.
pub(super) fn lesson_controls(
    ui: &mut egui::Ui,
    panel: &mut PanelState,
    runs: &mut Runs,
    settings: &mut SceneSettings,
    orbit: &mut OrbitCamera,
    actions: &mut MessageWriter<TrainingAction>,
) {
    if let Some(lesson) = &panel.lesson {
        ui.label(
            RichText::new(&lesson.title)
                .strong()
                .color(Color32::from_rgb(150, 200, 255)),
        );
        ui.label(&lesson.text);
    }
    ui.collapsing("lessons", |ui| {
        for (name, text) in preset::LESSONS {
            let preset = match preset::parse(text, &TrainConfig::viewer_default()) {
                Ok(preset) => preset,
                Err(e) => {
                    ui.colored_label(Color32::from_rgb(255, 110, 100), format!("{name}: {e}"));
                    continue;
                }
            };
            let title = preset
                .lesson
                .as_ref()
                .map_or(name.to_string(), |l| l.title.clone());
            if ui
                .button(title)
                .on_hover_text(format!("assets/lessons/{name}"))
                .clicked()
            {
                apply_preset(preset, panel, runs, settings, orbit, actions);
            }
        }
    });
}

/// Runs a preset: its view into the scene, and its runs from fresh weights (its comparison's,
/// or its one run, ending any comparison).
pub(super) fn apply_preset(
    preset: preset::Preset,
    panel: &mut PanelState,
    runs: &mut Runs,
    settings: &mut SceneSettings,
    orbit: &mut OrbitCamera,
    actions: &mut MessageWriter<TrainingAction>,
) {
    let config = preset.config;
    // The restart takes the first run's live values: the preset's.
    if let Some(first) = runs.list.first_mut() {
        let c = &mut first.controls;
        c.alpha = config.alpha;
        c.radius_scale = config.radius_scale;
        c.lr = config.lr;
        c.weight_decay = config.weight_decay;
    }
    runs.set_running(true);
    if let Some(view) = &preset.view {
        settings.projection = view.projection;
        settings.show_contacts = view.show_contacts;
        settings.opacity = view.opacity;
        panel.teaching = view.teaching;
        orbit.auto_rotate = view.auto_rotate;
    }
    panel.draft = config.clone();
    panel.lesson = preset.lesson;
    match preset.compare {
        Some(comparison) => {
            actions.write(TrainingAction::Compare(Box::new(comparison)));
        }
        None => {
            actions.write(TrainingAction::EndComparison);
            actions.write(TrainingAction::Restart(Box::new(config)));
        }
    }
}

pub(super) fn priority_label(priority: TrainingPriority) -> &'static str {
    match priority {
        TrainingPriority::Background => "frames first",
        TrainingPriority::Shared => "shared",
        TrainingPriority::Normal => "equal",
    }
}

pub(super) fn packing_controls(ui: &mut egui::Ui, runs: &mut Runs, teaching: bool) {
    ui.label(RichText::new("packing (applied at the next step)").strong());
    if runs.len() > 1 {
        slider_target(ui, runs);
    }
    edit_controls(runs, |controls| packing_sliders(ui, controls, teaching));
}

fn packing_sliders(ui: &mut egui::Ui, controls: &mut Controls, teaching: bool) {
    // The sliders span what is worth dragging through; a run's config may hold a value beyond
    // them (`--lr 1e-7`, `--alpha 5`), which must stay as it is until the slider is moved.
    let keep = egui::SliderClamping::Edits;
    ui.add(
        egui::Slider::new(
            &mut controls.radius_scale,
            ranges::RADIUS_SCALE.0..=ranges::RADIUS_SCALE.1,
        )
        .logarithmic(true)
        .clamping(keep)
        .text("radius scale r_s"),
    );
    ui.add(
        egui::Slider::new(&mut controls.alpha, ranges::ALPHA.0..=ranges::ALPHA.1)
            .step_by(0.05)
            .clamping(keep)
            .text("exponent alpha"),
    );
    ui.horizontal(|ui| {
        ui.label("marks:");
        if ui.small_button("2 harmonic").clicked() {
            controls.alpha = 2.0;
        }
        if ui.small_button("2.5 Hertzian").clicked() {
            controls.alpha = 2.5;
        }
    });
    ui.add(
        egui::Slider::new(
            &mut controls.lr,
            ranges::LEARNING_RATE.0..=ranges::LEARNING_RATE.1,
        )
        .logarithmic(true)
        .clamping(keep)
        .text("learning rate"),
    );
    if !teaching {
        ui.add(
            egui::Slider::new(
                &mut controls.weight_decay,
                ranges::WEIGHT_DECAY.0..=ranges::WEIGHT_DECAY.1,
            )
            .logarithmic(true)
            .clamping(keep)
            .text("weight decay"),
        );
    }
}

pub(super) fn restart_controls(
    ui: &mut egui::Ui,
    panel: &mut PanelState,
    runs: &Runs,
    actions: &mut MessageWriter<TrainingAction>,
) {
    let Some(link) = runs.first_link() else {
        return;
    };
    ui.label(RichText::new("run (applied by a restart)").strong());
    let draft = &mut panel.draft;
    ui.add(egui::Slider::new(&mut draft.views, ranges::VIEWS.0..=ranges::VIEWS.1).text("views m"));
    ui.add(
        egui::Slider::new(&mut draft.batch, ranges::BATCH.0..=ranges::BATCH.1)
            .logarithmic(true)
            .text("batch"),
    );
    ui.add(
        egui::Slider::new(&mut draft.dim, ranges::DIM.0..=ranges::DIM.1)
            .logarithmic(true)
            .text("embedding dim d"),
    );
    ui.add(
        egui::Slider::new(
            &mut draft.snapshot_images,
            ranges::SPHERES.0..=ranges::SPHERES.1,
        )
        .logarithmic(true)
        .text("spheres shown"),
    );
    ui.horizontal(|ui| {
        ui.label("dataset");
        ui.text_edit_singleline(&mut draft.dataset);
    });
    ui.horizontal(|ui| {
        ui.label("seed");
        ui.add(egui::DragValue::new(&mut draft.seed));
    });
    let mut next = draft.clone();
    next.dataset = next.dataset.trim().to_string();
    let changed = restart_changes(&next, &link.config);
    let text = if changed.is_empty() {
        "Restart training"
    } else {
        "Restart training with these"
    };
    if ui.button(text).clicked() {
        actions.write(TrainingAction::Restart(Box::new(next)));
    }
    if !changed.is_empty() {
        ui.colored_label(
            Color32::from_rgb(240, 200, 90),
            format!(
                "changed ({}): takes effect when training restarts",
                changed.join(", ")
            ),
        );
    }
}

/// The settings of `draft` that only a restart applies and that differ from the run's.
fn restart_changes(draft: &TrainConfig, running: &TrainConfig) -> Vec<&'static str> {
    [
        ("views", draft.views != running.views),
        ("batch", draft.batch != running.batch),
        ("d", draft.dim != running.dim),
        ("spheres", draft.snapshot_images != running.snapshot_images),
        ("dataset", draft.dataset != running.dataset),
        ("seed", draft.seed != running.seed),
    ]
    .into_iter()
    .filter_map(|(name, changed)| changed.then_some(name))
    .collect()
}

/// Which runs the packing sliders move, side by side.
fn slider_target(ui: &mut egui::Ui, runs: &mut Runs) {
    let captions: Vec<String> = runs.list.iter().map(|run| run.caption.clone()).collect();
    ui.horizontal_wrapped(|ui| {
        ui.label("sliders act on:");
        ui.selectable_value(&mut runs.sliders, SliderTarget::All, "all")
            .on_hover_text("a slider moved sets its value in every run; the others keep theirs");
        for (k, caption) in captions.iter().enumerate() {
            let label = RichText::new(format!("{}", k + 1)).color(super::run_color(k));
            ui.selectable_value(&mut runs.sliders, SliderTarget::One(k), label)
                .on_hover_text(format!("only run {} ({caption})", k + 1));
        }
    });
}

/// The runs the compare box asks for: each run's settings (`KEY=VALUE[,KEY=VALUE]`), runs
/// separated by `;`.
pub fn compare_specs(text: &str) -> Vec<&str> {
    text.split(';')
        .map(str::trim)
        .filter(|spec| !spec.is_empty())
        .collect()
}

/// Starts runs beside this one (all from the start) or ends the comparison.
pub(super) fn compare_controls(
    ui: &mut egui::Ui,
    panel: &mut PanelState,
    runs: &Runs,
    actions: &mut MessageWriter<TrainingAction>,
) {
    ui.label(RichText::new("compare").strong())
        .on_hover_text(format!(
            "runs beside this one on the same data, seed, initial weights and batches, differing \
         only in the settings named: KEY=VALUE, several separated by commas; up to {} runs \
         beside it, separated by semicolons",
            MAX_RUNS - 1
        ));
    if let Some(comparison) = &runs.comparison {
        ui.horizontal_wrapped(|ui| {
            ui.label(comparison.legend());
            if ui.button("Stop").clicked() {
                actions.write(TrainingAction::EndComparison);
            }
        });
        return;
    }
    let Some(base) = runs.list.first().and_then(|run| run.current_config()) else {
        return;
    };
    ui.horizontal(|ui| {
        ui.add(egui::TextEdit::singleline(&mut panel.compare_draft).desired_width(150.0))
            .on_hover_text("e.g. alpha=2.5 or radius_scale=1.5; radius_scale=2.5; radius_scale=4");
        if ui
            .button("Compare")
            .on_hover_text("restarts this run and trains the others beside it")
            .clicked()
        {
            match Comparison::from_specs(&base, &compare_specs(&panel.compare_draft)) {
                Ok(comparison) => {
                    actions.write(TrainingAction::Compare(Box::new(comparison)));
                    panel.message = None;
                }
                Err(e) => panel.message = Some((format!("compare: {e}"), false)),
            }
        }
    });
    if let Some((message, false)) = &panel.message
        && message.starts_with("compare:")
    {
        ui.colored_label(Color32::from_rgb(255, 110, 100), message);
    }
}
