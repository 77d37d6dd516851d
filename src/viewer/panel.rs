//! The egui side panel (controls, legend, presets), the strip of plots along the bottom, and the
//! card of the hovered sphere. It edits [`Controls`] and [`SceneSettings`] and sends
//! [`TrainingAction`]s; it never touches the trainer itself.

use std::path::PathBuf;

use bevy::ecs::system::SystemParam;
use bevy::prelude::*;
use bevy_egui::egui::{self, Color32, RichText};
use bevy_egui::{EguiContexts, EguiPrimaryContextPass};
use egui_plot::{Corner, HLine, Legend, Line, Plot, PlotPoints, Points, VLine};

use super::ViewerMode;
use super::camera::{OrbitCamera, SceneView};
use super::capture::{CaptureRequest, Recording};
use super::pacing::FramePacing;
use super::palette;
use super::physics_mode::{PhysicsControls, PhysicsStatus};
use super::picking::Selection;
use super::preset::{self, Lesson, ViewPreset};
use super::ranges;
use super::scene::{Scene, SceneSettings};
use super::timeline::Timeline;
use super::training::{Controls, History, TrainingAction, TrainingLink, TrainingStatus};
use crate::config::TrainConfig;
use crate::projection::ProjectionMode;
use crate::train::session::TrainingPriority;

/// Panel state that is not a training or scene setting.
#[derive(Resource)]
pub struct PanelState {
    /// Hide the advanced controls (for teaching).
    pub teaching: bool,
    /// Restart fields, applied by the Restart button.
    pub views: usize,
    pub batch: usize,
    pub dim: usize,
    pub dataset: String,
    pub seed: u64,
    pub spheres: usize,
    pub preset_path: String,
    pub message: Option<(String, bool)>,
    /// The lesson running, shown at the top of the panel.
    pub lesson: Option<Lesson>,
    hover_texture: Option<(usize, egui::TextureHandle)>,
}

impl PanelState {
    /// The restart fields of `config`, ready for the Restart button.
    fn take_restart_fields(&mut self, config: &TrainConfig) {
        self.views = config.views;
        self.batch = config.batch;
        self.dim = config.dim;
        self.dataset = config.dataset.clone();
        self.seed = config.seed;
        self.spheres = config.snapshot_images;
    }
}

pub struct PanelPlugin {
    pub teaching: bool,
    pub lesson: Option<Lesson>,
}

impl Plugin for PanelPlugin {
    fn build(&self, app: &mut App) {
        let teaching = self.teaching;
        let lesson = self.lesson.clone();
        app.add_systems(
            Startup,
            move |mut commands: Commands, link: Res<TrainingLink>| {
                let config = &link.config;
                commands.insert_resource(PanelState {
                    teaching,
                    views: config.views,
                    batch: config.batch,
                    dim: config.dim,
                    dataset: config.dataset.clone(),
                    seed: config.seed,
                    spheres: config.snapshot_images,
                    preset_path: "presets/my-run.toml".into(),
                    message: None,
                    lesson: lesson.clone(),
                    hover_texture: None,
                });
            },
        )
        .add_systems(EguiPrimaryContextPass, draw_ui);
    }
}

/// What the panel only reads.
#[derive(SystemParam)]
struct PanelReads<'w> {
    physics_status: Res<'w, PhysicsStatus>,
    recording: Res<'w, Recording>,
    status: Res<'w, TrainingStatus>,
    history: Res<'w, History>,
    link: Res<'w, TrainingLink>,
    scene: Res<'w, Scene>,
    selection: Res<'w, Selection>,
}

#[allow(clippy::too_many_arguments)]
fn draw_ui(
    mut contexts: EguiContexts,
    mut panel: ResMut<PanelState>,
    mut controls: ResMut<Controls>,
    mut settings: ResMut<SceneSettings>,
    mut view: ResMut<SceneView>,
    mut actions: MessageWriter<TrainingAction>,
    mut capture: MessageWriter<CaptureRequest>,
    mut mode: ResMut<ViewerMode>,
    mut physics: ResMut<PhysicsControls>,
    reads: PanelReads,
    mut pacing: ResMut<FramePacing>,
    mut cameras: Query<&mut OrbitCamera>,
    mut timeline: ResMut<Timeline>,
) -> Result {
    let PanelReads {
        physics_status,
        recording,
        status,
        history,
        link,
        scene,
        selection,
    } = reads;
    let (status, history, link, scene, selection) =
        (&*status, &*history, &*link, &*scene, &*selection);
    let (physics_status, recording) = (&*physics_status, &*recording);
    let ctx = contexts.ctx_mut()?.clone();
    let mut root = egui::Ui::new(
        ctx.clone(),
        "clamp-root".into(),
        egui::UiBuilder::new()
            .layer_id(egui::LayerId::background())
            .max_rect(ctx.viewport_rect()),
    );

    // Panels are not filled: the window is cleared to the panel color instead, which spares a
    // software rasterizer shading a third of the window once more every frame.
    let panel_frame = egui::Frame::side_top_panel(&ctx.global_style()).fill(Color32::TRANSPARENT);
    egui::Panel::left("controls")
        .frame(panel_frame)
        .default_size(300.0)
        .resizable(true)
        .show(&mut root, |ui| {
            egui::ScrollArea::vertical().show(ui, |ui| {
                header(ui, status, link, scene, &mode, physics_status, &timeline);
                ui.separator();
                mode_switch(ui, &mut mode);
                ui.separator();
                if *mode == ViewerMode::Training {
                    lesson_controls(
                        ui,
                        &mut panel,
                        &mut controls,
                        &mut settings,
                        &mut cameras,
                        &mut actions,
                    );
                    ui.separator();
                    run_controls(ui, &mut controls, status, &mut actions);
                    timeline_controls(ui, &mut timeline, &mut controls);
                    ui.separator();
                    packing_controls(ui, &mut controls, panel.teaching);
                    if !panel.teaching {
                        ui.separator();
                        restart_controls(ui, &mut panel, link, &mut actions);
                    }
                } else {
                    physics_controls(ui, &mut physics, physics_status);
                }
                ui.separator();
                view_controls(ui, &mut settings, &mut pacing, &mut panel, &mut cameras);
                ui.separator();
                legend(ui, link, scene, &mode);
                ui.separator();
                capture_controls(ui, recording, &mut capture);
                if !panel.teaching {
                    ui.separator();
                    preset_controls(ui, &mut panel, link, &controls, &settings, &cameras);
                }
            });
        });

    // The plots size themselves to the strip, so the strip needs a floor of its own: a quarter
    // of the window, enough to read a curve, and the user can drag it taller.
    let window_height = ctx.viewport_rect().height();
    egui::Panel::bottom("plots")
        .frame(panel_frame)
        .default_size(window_height * 0.27)
        .min_size((window_height * 0.22).min(200.0))
        .resizable(true)
        .show(&mut root, |ui| {
            if *mode == ViewerMode::Training {
                training_plots(ui, history, link, timeline.cursor_step());
            } else {
                physics_plots(ui, physics_status);
            }
        });

    egui::CentralPanel::default()
        .frame(egui::Frame::NONE)
        .show(&mut root, |ui| {
            let rect = ui.available_rect_before_wrap();
            let response = ui.allocate_rect(rect, egui::Sense::click_and_drag());
            ui.painter()
                .add(super::picture::paint(view.image.id(), rect));
            let new_rect = Rect::new(rect.min.x, rect.min.y, rect.max.x, rect.max.y);
            if view.rect != Some(new_rect) {
                view.rect = Some(new_rect);
            }
            let hovered = response.hovered() || response.dragged();
            if view.hovered != hovered {
                view.hovered = hovered;
            }
        });

    hover_card(&ctx, &mut panel, selection, scene, link);

    Ok(())
}

fn header(
    ui: &mut egui::Ui,
    status: &TrainingStatus,
    link: &TrainingLink,
    scene: &Scene,
    mode: &ViewerMode,
    physics: &PhysicsStatus,
    timeline: &Timeline,
) {
    ui.heading("CLAMP");
    ui.label(RichText::new("contrastive learning as manifold packing").italics());
    if *mode == ViewerMode::Physics {
        ui.label(format!(
            "physics: {} soft spheres, phi = {:.4}, Z = {:.2}",
            physics.n, physics.phi, physics.contacts
        ));
        ui.label(&physics.stage);
        return;
    }
    ui.label(format!("data: {}", link.data.description));
    ui.label(format!("backend: {}", link.backend.description));
    let state = if status.paused { "paused" } else { "training" };
    ui.label(format!(
        "{state} - step {} - {:.1} steps/s",
        status.step, status.steps_per_sec
    ));
    match status.first_step_seconds {
        None if status.paused => {
            ui.label("paused before the first step: press Play");
        }
        None => {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label(match link.backend.kind {
                    crate::backend::BackendKind::Wgpu => {
                        "warming up: first step (kernels compile on WGPU)..."
                    }
                    crate::backend::BackendKind::Cpu => "warming up: first step...",
                });
            });
        }
        Some(seconds) => {
            ui.label(format!("first step (warm-up) took {seconds:.2} s"));
        }
    }
    if let Some(report) = &status.last {
        ui.label(format!(
            "batch of {}: loss {:.3}, Z {:.2} - {:.0} images/s",
            link.config.batch, report.loss, report.packing.mean_contacts, report.images_per_sec
        ));
    }
    let frame = &scene.frame;
    let drawn_z =
        frame.contacts.iter().map(|&c| c as f64).sum::<f64>() / frame.contacts.len().max(1) as f64;
    let when = match timeline.cursor_step() {
        Some(step) => format!("replaying step {step}"),
        None => format!("step {}", frame.step),
    };
    ui.label(format!(
        "{} spheres drawn ({when}): Z {drawn_z:.2} (2d = {})",
        scene.len(),
        2 * frame.dim
    ))
    .on_hover_text(format!(
        "The loss packs each batch of {batch}; the drawn spheres are {drawn} held-out images, \
         {ratio:.1} times as many on the same sphere, so at the same radii they touch about \
         {ratio:.1} times as many neighbours. Both Z are plotted.",
        batch = link.config.batch,
        drawn = scene.len(),
        ratio = scene.len().max(1) as f64 / link.config.batch.max(1) as f64,
    ));
    if let Some(purity) = scene.purity {
        let classes = link.data.test.num_classes().max(1);
        let baseline = link
            .pixel_purity
            .map_or(String::new(), |p| format!("raw pixels by PCA {p:.2}, "));
        ui.label(RichText::new(format!("class purity {purity:.3}")).strong())
            .on_hover_text(
                "for each drawn sphere, the share of its 10 nearest drawn spheres (in the \
                 picture's 3-D positions) that show the same class, averaged",
            );
        ui.label(RichText::new(format!("({baseline}chance {:.2})", 1.0 / classes as f64)).small());
    }
    if let Some(error) = status.error.as_ref().or(scene.error.as_ref()) {
        ui.colored_label(Color32::from_rgb(255, 110, 100), format!("error: {error}"));
    }
    if let Some(notice) = &status.notice {
        ui.colored_label(Color32::from_rgb(150, 200, 255), notice);
    }
}

fn mode_switch(ui: &mut egui::Ui, mode: &mut ViewerMode) {
    ui.horizontal(|ui| {
        ui.label("show:");
        ui.selectable_value(mode, ViewerMode::Training, "CLAMP training");
        ui.selectable_value(mode, ViewerMode::Physics, "physics: jamming");
    });
}

fn run_controls(
    ui: &mut egui::Ui,
    controls: &mut Controls,
    status: &TrainingStatus,
    actions: &mut MessageWriter<TrainingAction>,
) {
    ui.horizontal(|ui| {
        let label = if controls.running { "Pause" } else { "Play" };
        if ui.button(label).clicked() {
            controls.running = !controls.running;
        }
        if ui.button("Step").clicked() {
            actions.write(TrainingAction::Step);
        }
        if ui.button("Reset").clicked() {
            actions.write(TrainingAction::Reset);
        }
        if ui.button("Probe now").clicked() {
            actions.write(TrainingAction::Probe);
        }
    });
    if ui
        .button("Save checkpoint")
        .on_hover_text("model, optimizer, config and step, written atomically under runs/")
        .clicked()
    {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        actions.write(TrainingAction::SaveCheckpoint(PathBuf::from(format!(
            "runs/view-{stamp}"
        ))));
    }
    egui::ComboBox::from_label("training priority")
        .selected_text(priority_label(controls.priority))
        .show_ui(ui, |ui| {
            for priority in [
                TrainingPriority::Background,
                TrainingPriority::Shared,
                TrainingPriority::Normal,
            ] {
                ui.selectable_value(&mut controls.priority, priority, priority_label(priority));
            }
        })
        .response
        .on_hover_text(
            "frames first: training only uses cycles the renderer leaves; shared: a contested \
             core goes mostly to drawing; equal: training competes like any program",
        );
    if let Some(probe) = &status.last_probe {
        ui.label(format!(
            "probe at step {}: kNN {:.3}, linear {:.3}",
            probe.step, probe.knn_acc, probe.linear_acc
        ));
    }
}

/// The scrubber over the stored snapshots: dragging it pauses training and shows the past;
/// Live returns to the newest picture and resumes; Replay plays the history forward (the
/// Record button captures it).
fn timeline_controls(ui: &mut egui::Ui, timeline: &mut Timeline, controls: &mut Controls) {
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
    // Dragging within the live end stays live; anywhere else shows that snapshot.
    if response.changed() && !(position == last && timeline.is_live()) {
        timeline.scrub_to(position);
        timeline.replaying = false;
        controls.running = false;
    }
    ui.horizontal(|ui| {
        let live = timeline.is_live();
        if ui
            .add_enabled(!live, egui::Button::new("Live"))
            .on_hover_text("back to the newest picture; training resumes")
            .clicked()
        {
            timeline.go_live();
            controls.running = true;
        }
        let replay_label = if timeline.replaying {
            "Stop replay"
        } else {
            "Replay"
        };
        if ui
            .button(replay_label)
            .on_hover_text("play the history from the slider's position, one snapshot a frame")
            .clicked()
        {
            if timeline.replaying {
                timeline.replaying = false;
            } else {
                if live {
                    timeline.scrub_to(0);
                }
                timeline.replaying = true;
                controls.running = false;
            }
        }
    });
}

/// The shipped lessons, one click each: the lesson's run restarts from fresh weights with its
/// settings, and its text stays at the top of the panel.
fn lesson_controls(
    ui: &mut egui::Ui,
    panel: &mut PanelState,
    controls: &mut Controls,
    settings: &mut SceneSettings,
    cameras: &mut Query<&mut OrbitCamera>,
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
                apply_preset(preset, panel, controls, settings, cameras, actions);
            }
        }
    });
}

/// Runs a preset: its live values into the controls, its view into the scene, and a restart
/// with its config.
fn apply_preset(
    preset: preset::Preset,
    panel: &mut PanelState,
    controls: &mut Controls,
    settings: &mut SceneSettings,
    cameras: &mut Query<&mut OrbitCamera>,
    actions: &mut MessageWriter<TrainingAction>,
) {
    let config = preset.config;
    controls.alpha = config.alpha;
    controls.radius_scale = config.radius_scale;
    controls.lr = config.lr;
    controls.weight_decay = config.weight_decay;
    controls.running = true;
    if let Some(view) = &preset.view {
        settings.projection = view.projection;
        settings.show_contacts = view.show_contacts;
        settings.opacity = view.opacity;
        panel.teaching = view.teaching;
        if let Ok(mut orbit) = cameras.single_mut() {
            orbit.auto_rotate = view.auto_rotate;
        }
    }
    panel.take_restart_fields(&config);
    panel.lesson = preset.lesson;
    actions.write(TrainingAction::Restart(Box::new(config)));
}

fn priority_label(priority: TrainingPriority) -> &'static str {
    match priority {
        TrainingPriority::Background => "frames first",
        TrainingPriority::Shared => "shared",
        TrainingPriority::Normal => "equal",
    }
}

fn packing_controls(ui: &mut egui::Ui, controls: &mut Controls, teaching: bool) {
    ui.label(RichText::new("packing (applied at the next step)").strong());
    ui.add(
        egui::Slider::new(
            &mut controls.radius_scale,
            ranges::RADIUS_SCALE.0..=ranges::RADIUS_SCALE.1,
        )
        .logarithmic(true)
        .text("radius scale r_s"),
    );
    ui.add(
        egui::Slider::new(&mut controls.alpha, ranges::ALPHA.0..=ranges::ALPHA.1)
            .step_by(0.05)
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
        .text("learning rate"),
    );
    if !teaching {
        ui.add(
            egui::Slider::new(
                &mut controls.weight_decay,
                ranges::WEIGHT_DECAY.0..=ranges::WEIGHT_DECAY.1,
            )
            .logarithmic(true)
            .text("weight decay"),
        );
    }
}

fn restart_controls(
    ui: &mut egui::Ui,
    panel: &mut PanelState,
    link: &TrainingLink,
    actions: &mut MessageWriter<TrainingAction>,
) {
    ui.label(RichText::new("run (applied by a restart)").strong());
    ui.add(egui::Slider::new(&mut panel.views, ranges::VIEWS.0..=ranges::VIEWS.1).text("views m"));
    ui.add(
        egui::Slider::new(&mut panel.batch, ranges::BATCH.0..=ranges::BATCH.1)
            .logarithmic(true)
            .text("batch"),
    );
    ui.add(
        egui::Slider::new(&mut panel.dim, ranges::DIM.0..=ranges::DIM.1)
            .logarithmic(true)
            .text("embedding dim d"),
    );
    ui.add(
        egui::Slider::new(&mut panel.spheres, ranges::SPHERES.0..=ranges::SPHERES.1)
            .logarithmic(true)
            .text("spheres shown"),
    );
    ui.horizontal(|ui| {
        ui.label("dataset");
        ui.text_edit_singleline(&mut panel.dataset);
    });
    ui.horizontal(|ui| {
        ui.label("seed");
        ui.add(egui::DragValue::new(&mut panel.seed));
    });
    let config = &link.config;
    let pending = panel.views != config.views
        || panel.batch != config.batch
        || panel.dim != config.dim
        || panel.dataset != config.dataset
        || panel.seed != config.seed
        || panel.spheres != config.snapshot_images;
    let text = if pending {
        "Restart training with these"
    } else {
        "Restart training"
    };
    if ui.button(text).clicked() {
        let mut next = config.clone();
        next.views = panel.views;
        next.batch = panel.batch;
        next.dim = panel.dim;
        next.dataset = panel.dataset.trim().to_string();
        next.seed = panel.seed;
        next.snapshot_images = panel.spheres;
        actions.write(TrainingAction::Restart(Box::new(next)));
    }
    if pending {
        ui.colored_label(
            Color32::from_rgb(240, 200, 90),
            "changed: takes effect when training restarts",
        );
    }
}

fn physics_controls(ui: &mut egui::Ui, physics: &mut PhysicsControls, status: &PhysicsStatus) {
    ui.label(RichText::new("soft spheres in a periodic box").strong());
    ui.add(
        egui::Slider::new(
            &mut physics.alpha,
            ranges::PHYSICS_ALPHA.0..=ranges::PHYSICS_ALPHA.1,
        )
        .step_by(0.05)
        .text("exponent alpha"),
    );
    ui.add(egui::Slider::new(&mut physics.radius_scale, 0.5..=1.5).text("radius scale (phi)"));
    ui.add(
        egui::Slider::new(
            &mut physics.n,
            ranges::PHYSICS_PARTICLES.0..=ranges::PHYSICS_PARTICLES.1,
        )
        .logarithmic(true)
        .text("particles"),
    );
    ui.horizontal(|ui| {
        ui.selectable_value(&mut physics.dim, 3, "3-D");
        ui.selectable_value(&mut physics.dim, 2, "2-D");
        ui.checkbox(&mut physics.bidisperse, "bidisperse 1:1.4");
    });
    ui.horizontal(|ui| {
        if ui
            .button(if physics.compressing {
                "Stop"
            } else {
                "Compress to jamming"
            })
            .clicked()
        {
            physics.compressing = !physics.compressing;
        }
        if ui.button("New packing").clicked() {
            physics.generation += 1;
        }
    });
    if let Some(phi_j) = status.phi_j {
        ui.label(format!("jammed at phi_J = {phi_j:.4}"));
    }
    ui.label(format!(
        "E/N = {:.3e}, p = {:.3e}, rattlers {:.1}%",
        status.energy_per_particle,
        status.pressure,
        100.0 * status.rattler_fraction
    ));
}

fn view_controls(
    ui: &mut egui::Ui,
    settings: &mut SceneSettings,
    pacing: &mut FramePacing,
    panel: &mut PanelState,
    cameras: &mut Query<&mut OrbitCamera>,
) {
    ui.label(RichText::new("view").strong());
    egui::ComboBox::from_label("projection")
        .selected_text(settings.projection.label())
        .show_ui(ui, |ui| {
            for mode in ProjectionMode::ALL {
                ui.selectable_value(&mut settings.projection, mode, mode.label());
            }
        });
    ui.checkbox(&mut settings.show_contacts, "contact lines");
    ui.checkbox(
        &mut settings.show_wireframe,
        "unit sphere (true 3-D embedding)",
    );
    ui.add(
        egui::Slider::new(&mut settings.opacity, ranges::OPACITY.0..=ranges::OPACITY.1)
            .text("opacity (1: solid)"),
    );
    ui.add(egui::Slider::new(&mut settings.render_scale, 0.25..=1.0).text("render scale"));
    let target = pacing.target_fps;
    ui.checkbox(
        &mut pacing.enabled,
        format!("hold {target:.0} fps (fewer pixels when slow)"),
    );
    let fps = if pacing.frame_seconds > 0.0 {
        1.0 / pacing.frame_seconds
    } else {
        0.0
    };
    ui.label(
        RichText::new(format!(
            "{fps:.0} fps, spheres drawn at {:.2}x the window's resolution",
            settings.render_scale * pacing.factor()
        ))
        .small(),
    );
    if let Ok(mut orbit) = cameras.single_mut() {
        let mut rotate = orbit.auto_rotate;
        ui.add(
            egui::Slider::new(&mut rotate, ranges::AUTO_ROTATE.0..=ranges::AUTO_ROTATE.1)
                .text("auto-rotate deg/s"),
        );
        if rotate != orbit.auto_rotate {
            orbit.auto_rotate = rotate;
        }
    }
    ui.checkbox(&mut panel.teaching, "teaching layout (hide advanced)");
    ui.label(
        RichText::new("drag: turn - right-drag: pan - wheel: zoom - R: reset view - click: pin")
            .small(),
    );
}

fn legend(ui: &mut egui::Ui, link: &TrainingLink, scene: &Scene, mode: &ViewerMode) {
    if *mode == ViewerMode::Physics {
        ui.label("color: particle size (small / large)");
        return;
    }
    let names = &link.data.test.class_names;
    let mut counts = vec![0usize; names.len().max(scene.classes)];
    for &label in &scene.frame.labels {
        if let Some(c) = counts.get_mut(label as usize) {
            *c += 1;
        }
    }
    ui.label(RichText::new("classes").strong());
    egui::Grid::new("legend").num_columns(2).show(ui, |ui| {
        for (k, count) in counts.iter().enumerate().take(20) {
            let name = names
                .get(k)
                .cloned()
                .unwrap_or_else(|| format!("class {k}"));
            let color = palette::class_color_egui(k as u16, scene.classes.max(names.len()));
            ui.label(RichText::new("\u{25CF}").color(color).size(16.0));
            ui.label(format!("{name} ({count})"));
            ui.end_row();
        }
    });
    if counts.len() > 20 {
        ui.label(format!("... and {} more classes", counts.len() - 20));
    }
}

fn capture_controls(
    ui: &mut egui::Ui,
    recording: &Recording,
    capture: &mut MessageWriter<CaptureRequest>,
) {
    ui.horizontal(|ui| {
        if ui.button("Screenshot (F12)").clicked() {
            capture.write(CaptureRequest::Screenshot);
        }
        let label = if recording.active.is_some() {
            "Stop recording"
        } else {
            "Record"
        };
        if ui.button(label).clicked() {
            capture.write(CaptureRequest::ToggleRecording);
        }
    });
    if let Some(active) = &recording.active {
        ui.colored_label(
            Color32::from_rgb(255, 90, 90),
            format!("recording: {} frames", active.frames),
        );
    }
    if let Some(message) = &recording.message {
        ui.label(message);
    }
}

fn preset_controls(
    ui: &mut egui::Ui,
    panel: &mut PanelState,
    link: &TrainingLink,
    controls: &Controls,
    settings: &SceneSettings,
    cameras: &Query<&mut OrbitCamera>,
) {
    ui.label(RichText::new("presets (TOML: config + seed + view)").strong());
    ui.text_edit_singleline(&mut panel.preset_path);
    ui.horizontal(|ui| {
        if ui.button("Save preset").clicked() {
            let mut config = link.config.clone();
            config.alpha = controls.alpha;
            config.radius_scale = controls.radius_scale;
            config.lr = controls.lr;
            config.weight_decay = controls.weight_decay;
            let view = ViewPreset {
                projection: settings.projection,
                show_contacts: settings.show_contacts,
                opacity: settings.opacity,
                auto_rotate: cameras.iter().next().map(|o| o.auto_rotate).unwrap_or(0.0),
                teaching: panel.teaching,
            };
            let path = PathBuf::from(panel.preset_path.trim());
            panel.message = Some(match preset::save(&path, &config, &view) {
                Ok(()) => (format!("saved {}", path.display()), true),
                Err(e) => (e, false),
            });
        }
        if ui.button("Load preset").clicked() {
            let path = PathBuf::from(panel.preset_path.trim());
            panel.message = Some(match preset::load(&path, &TrainConfig::viewer_default()) {
                Ok(preset::Preset { config, .. }) => {
                    panel.take_restart_fields(&config);
                    (
                        format!(
                            "loaded {}: press Restart to run it (clamp view --config {} starts with it)",
                            path.display(),
                            path.display()
                        ),
                        true,
                    )
                }
                Err(e) => (e, false),
            });
        }
    });
    if let Some((message, ok)) = &panel.message {
        let color = if *ok {
            Color32::from_rgb(150, 220, 150)
        } else {
            Color32::from_rgb(255, 110, 100)
        };
        ui.colored_label(color, message);
    }
}

/// Most points a plotted line gets: a plot a few hundred pixels wide shows no more, and a line
/// that grew with the run would make every frame's tessellation and vertex buffers grow with it.
const MAX_PLOT_POINTS: usize = 1024;

/// Indices `0..len` thinned to at most about [`MAX_PLOT_POINTS`], evenly, the last one kept.
fn plotted(len: usize) -> impl Iterator<Item = usize> {
    let stride = len.div_ceil(MAX_PLOT_POINTS).max(1);
    (0..len)
        .step_by(stride)
        .chain((len > 0 && (len - 1) % stride != 0).then(|| len - 1))
}

fn series<'a>(steps: &[f64], values: &[f64]) -> PlotPoints<'a> {
    plotted(steps.len().min(values.len()))
        .map(|k| [steps[k], values[k]])
        .filter(|p| p[1].is_finite())
        .collect()
}

/// One small plot of the strip under the picture.
struct PlotSpec<'a> {
    id: &'static str,
    title: String,
    /// A legend only where a plot has more than one line; the title names a single one.
    legend: bool,
    fill: Box<dyn FnOnce(&mut egui_plot::PlotUi) + 'a>,
}

impl<'a> PlotSpec<'a> {
    fn new(
        id: &'static str,
        title: impl Into<String>,
        legend: bool,
        fill: impl FnOnce(&mut egui_plot::PlotUi) + 'a,
    ) -> Self {
        Self {
            id,
            title: title.into(),
            legend,
            fill: Box::new(fill),
        }
    }
}

/// Lays the plots out in as many columns as fit (at least 150 points wide each) and as many
/// rows as that takes, sharing the strip's height.
fn plot_grid(ui: &mut egui::Ui, plots: Vec<PlotSpec>) {
    let count = plots.len().max(1);
    let columns = ((ui.available_width() / 150.0).floor() as usize).clamp(1, count);
    let rows = count.div_ceil(columns);
    let spacing = ui.spacing().item_spacing;
    let width = (ui.available_width() - spacing.x * columns as f32) / columns as f32;
    // Each row also holds a title line.
    let height =
        ((ui.available_height() - rows as f32 * (18.0 + spacing.y)) / rows as f32).max(40.0);
    let mut plots = plots.into_iter();
    for _ in 0..rows {
        ui.horizontal(|ui| {
            for spec in plots.by_ref().take(columns) {
                ui.vertical(|ui| {
                    ui.label(RichText::new(&spec.title).small().strong());
                    let plot = Plot::new(spec.id)
                        .width(width)
                        .height(height)
                        .allow_scroll(false);
                    // Small legends in the top-left corner, where the curves start high and fall
                    // (Z, radius, loss) or start low and climb (purity) away from them.
                    let plot = if spec.legend {
                        plot.legend(
                            Legend::default()
                                .position(Corner::LeftTop)
                                .text_style(egui::TextStyle::Small)
                                .background_alpha(0.5),
                        )
                    } else {
                        plot
                    };
                    plot.show(ui, spec.fill);
                });
            }
        });
    }
}

fn training_plots(
    ui: &mut egui::Ui,
    history: &History,
    link: &TrainingLink,
    cursor: Option<usize>,
) {
    let steps = &history.steps;
    let dim = link.config.dim;
    let batch = link.config.batch;
    let pictures = &history.pictures;
    let picture_series = |value: fn(&super::training::PictureSample) -> f64| -> PlotPoints {
        plotted(pictures.len())
            .map(|k| [pictures[k].step as f64, value(&pictures[k])])
            .filter(|p| p[1].is_finite())
            .collect()
    };
    let baseline = link.pixel_purity;
    let chance = 1.0 / link.data.test.num_classes().max(1) as f64;
    // While the timeline is scrubbed, every plot marks the step shown.
    let mark = move |p: &mut egui_plot::PlotUi| {
        if let Some(step) = cursor {
            p.vline(VLine::new("shown", step as f64).color(Color32::from_rgb(240, 200, 90)));
        }
    };
    plot_grid(
        ui,
        vec![
            PlotSpec::new(
                "purity",
                "class purity of the drawn spheres / probes",
                true,
                move |p| {
                    p.line(Line::new("purity", picture_series(|s| s.purity)));
                    let knn: PlotPoints = history.probes.iter().map(|r| [r[0], r[1]]).collect();
                    let linear: PlotPoints = history.probes.iter().map(|r| [r[0], r[2]]).collect();
                    p.points(Points::new("kNN probe", knn).radius(3.0));
                    p.points(Points::new("linear probe", linear).radius(3.0));
                    if let Some(baseline) = baseline {
                        p.hline(HLine::new("raw pixels by PCA", baseline));
                    }
                    p.hline(HLine::new("chance", chance));
                    mark(p);
                },
            ),
            PlotSpec::new("contacts", "mean contacts Z", true, move |p| {
                p.line(Line::new("drawn spheres", picture_series(|s| s.contacts)));
                p.line(Line::new(
                    format!("batch of {batch}"),
                    series(steps, &history.contacts),
                ));
                p.hline(HLine::new(format!("2d = {}", 2 * dim), (2 * dim) as f64));
                mark(p);
            }),
            PlotSpec::new("radius", "mean radius of drawn spheres", false, move |p| {
                p.line(Line::new("radius", picture_series(|s| s.radius)));
                mark(p);
            }),
            PlotSpec::new("loss", "batch loss ln(E + 1e-6)", false, move |p| {
                p.line(Line::new("loss", series(steps, &history.loss)));
                mark(p);
            }),
        ],
    );
}

/// Base-10 logarithms, with zeros (an unjammed packing) floored at 1e-30.
fn log10(values: &[f64]) -> Vec<f64> {
    values.iter().map(|v| v.max(1e-30).log10()).collect()
}

fn physics_plots(ui: &mut egui::Ui, status: &PhysicsStatus) {
    let phi = &status.history_phi;
    let dim = status.dim;
    plot_grid(
        ui,
        vec![
            PlotSpec::new("phys-z", "contacts Z (rattlers removed)", true, move |p| {
                p.line(Line::new("Z", series(phi, &status.history_contacts)));
                p.hline(HLine::new(format!("2d = {}", 2 * dim), (2 * dim) as f64));
            }),
            PlotSpec::new("phys-e", "log10 energy per particle", false, |p| {
                p.line(Line::new(
                    "log10 E/N",
                    series(phi, &log10(&status.history_energy)),
                ));
            }),
            PlotSpec::new("phys-p", "log10 pressure", false, |p| {
                p.line(Line::new(
                    "log10 p",
                    series(phi, &log10(&status.history_pressure)),
                ));
            }),
        ],
    );
}

/// The hovered (or pinned) sphere: its image, class, radius and contacts.
fn hover_card(
    ctx: &egui::Context,
    panel: &mut PanelState,
    selection: &Selection,
    scene: &Scene,
    link: &TrainingLink,
) {
    let Some(index) = selection.hovered.or(selection.pinned) else {
        return;
    };
    if index >= scene.len() {
        return;
    }
    let frame = &scene.frame;
    let position = selection
        .cursor
        .map(|c| egui::pos2(c.x + 18.0, c.y + 18.0))
        .unwrap_or(egui::pos2(320.0, 20.0));
    let image = frame.images.get(index).copied();
    let texture = image.and_then(|image| {
        if panel.hover_texture.as_ref().map(|(i, _)| *i) != Some(image) {
            let set = &link.data.test;
            if image < set.len {
                let color_image = image_of(set, image);
                let handle =
                    ctx.load_texture("hovered-image", color_image, egui::TextureOptions::NEAREST);
                panel.hover_texture = Some((image, handle));
            }
        }
        panel.hover_texture.as_ref().map(|(_, t)| t.clone())
    });
    egui::Area::new("hover-card".into())
        .fixed_pos(position)
        .order(egui::Order::Tooltip)
        .show(ctx, |ui| {
            egui::Frame::popup(ui.style()).show(ui, |ui| {
                if let Some(texture) = &texture {
                    ui.add(egui::Image::new(egui::load::SizedTexture::new(
                        texture.id(),
                        [84.0, 84.0],
                    )));
                }
                let label = frame.labels.get(index).copied().unwrap_or(0);
                let name = if frame.images.is_empty() {
                    // Physics mode: the label is the particle size.
                    if label == 0 {
                        "small particle"
                    } else {
                        "large particle"
                    }
                    .to_string()
                } else {
                    link.data
                        .test
                        .class_names
                        .get(label as usize)
                        .cloned()
                        .unwrap_or_else(|| format!("class {label}"))
                };
                let pinned = if selection.pinned == Some(index) {
                    " (pinned)"
                } else {
                    ""
                };
                ui.label(RichText::new(format!("{name}{pinned}")).strong());
                ui.label(format!(
                    "radius {:.4}",
                    frame.radii.get(index).copied().unwrap_or(f32::NAN)
                ));
                ui.label(format!(
                    "contacts {}",
                    frame.contacts.get(index).copied().unwrap_or(0)
                ));
                if let Some(image) = image {
                    ui.label(RichText::new(format!("test image #{image}")).small());
                }
            });
        });
}

/// An image of the set as egui pixels (grayscale or RGB planes).
fn image_of(set: &crate::data::ImageSet, index: usize) -> egui::ColorImage {
    let (c, h, w) = (set.channels, set.height, set.width);
    let plane = h * w;
    let start = index * set.pixels_per_image();
    let pixels = &set.images[start..start + set.pixels_per_image()];
    let rgb: Vec<u8> = (0..plane)
        .flat_map(|p| {
            if c >= 3 {
                [pixels[p], pixels[plane + p], pixels[2 * plane + p]]
            } else {
                [pixels[p]; 3]
            }
        })
        .collect();
    egui::ColorImage::from_rgb([w, h], &rgb)
}

#[cfg(test)]
mod tests {
    #[test]
    fn plotted_lines_keep_at_most_about_a_thousand_points_and_the_last() {
        for len in [0usize, 1, 5, 1024, 1025, 20_000, 20_001] {
            let kept: Vec<usize> = super::plotted(len).collect();
            assert!(
                kept.len() <= super::MAX_PLOT_POINTS + 1,
                "{len}: {}",
                kept.len()
            );
            assert_eq!(kept.last().copied(), len.checked_sub(1), "{len}");
            assert!(kept.windows(2).all(|w| w[0] < w[1]), "{len}");
            if len <= super::MAX_PLOT_POINTS {
                assert_eq!(kept.len(), len);
            }
        }
    }
}
