//! The egui side panel (controls, legend, presets), the strip of plots along the bottom, the
//! runs' pictures in the middle, and the card of the hovered sphere. It edits the runs'
//! controls and [`SceneSettings`] and sends [`TrainingAction`]s; it never touches a trainer
//! itself. One file per part of the panel: `status` (the top), `run` (training controls),
//! `physics`, `view` (drawing, capture, presets), `plots` (the bottom strip), `hover` (the
//! card).

mod hover;
mod physics;
mod plots;
mod run;
mod status;
mod view;

use bevy::ecs::system::SystemParam;
use bevy::prelude::*;
use bevy_egui::egui::{self, Color32};
use bevy_egui::{EguiContexts, EguiPrimaryContextPass};

use super::camera::{OrbitCamera, SceneView, cell_rect, shown_runs, view_cells};
use super::capture::{CaptureRequest, Recording};
use super::pacing::FramePacing;
use super::physics_mode::{PhysicsControls, PhysicsStatus};
use super::picking::Selection;
use super::preset::Lesson;
use super::runs::{RunView, Runs, TrainingAction};
use super::scene::{SceneSettings, ViewerMode};
use crate::config::TrainConfig;

/// Panel state that is not a training or scene setting.
#[derive(Resource)]
pub struct PanelState {
    /// Hide the advanced controls (for teaching).
    pub teaching: bool,
    /// The next restart's configuration, edited by the run section and sent by its Restart
    /// button (the live values, alpha, r_s, learning rate and weight decay, come from the
    /// controls at that moment).
    pub draft: TrainConfig,
    pub preset_path: String,
    pub message: Option<(String, bool)>,
    /// The lesson running, shown at the top of the panel.
    pub lesson: Option<Lesson>,
    /// The compare control's text: each run's settings, runs separated by `;`
    /// (`alpha=2.5; alpha=3`).
    pub compare_draft: String,
    hover_texture: Option<(usize, egui::TextureHandle)>,
}

/// The side panel, the plots and the hover card.
pub struct PanelPlugin {
    /// Open with the advanced controls hidden.
    pub teaching: bool,
    /// The lesson to show at the top of the panel.
    pub lesson: Option<Lesson>,
}

impl Plugin for PanelPlugin {
    fn build(&self, app: &mut App) {
        let teaching = self.teaching;
        let lesson = self.lesson.clone();
        app.add_systems(Startup, move |mut commands: Commands, runs: Res<Runs>| {
            commands.insert_resource(PanelState {
                teaching,
                draft: runs
                    .first_link()
                    .map_or_else(TrainConfig::viewer_default, |l| l.config.clone()),
                preset_path: "presets/my-run.toml".into(),
                message: None,
                lesson: lesson.clone(),
                compare_draft: "alpha=2.5".into(),
                hover_texture: None,
            });
        })
        .add_systems(EguiPrimaryContextPass, draw_ui);
    }
}

/// What the panel only reads.
#[derive(SystemParam)]
struct PanelReads<'w> {
    physics_status: Res<'w, PhysicsStatus>,
    recording: Res<'w, Recording>,
    selection: Res<'w, Selection>,
}

#[allow(clippy::too_many_arguments)]
fn draw_ui(
    mut contexts: EguiContexts,
    mut panel: ResMut<PanelState>,
    mut runs: ResMut<Runs>,
    mut settings: ResMut<SceneSettings>,
    mut actions: MessageWriter<TrainingAction>,
    mut capture: MessageWriter<CaptureRequest>,
    mut mode: ResMut<ViewerMode>,
    mut physics: ResMut<PhysicsControls>,
    reads: PanelReads,
    mut pacing: ResMut<FramePacing>,
    mut orbit: ResMut<OrbitCamera>,
    mut view: ResMut<SceneView>,
) -> Result {
    let PanelReads {
        physics_status,
        recording,
        selection,
    } = reads;
    let (physics_status, recording, selection) = (&*physics_status, &*recording, &*selection);
    let ctx = contexts.ctx_mut()?.clone();
    let mut root = egui::Ui::new(
        ctx.clone(),
        "clamp-root".into(),
        egui::UiBuilder::new()
            .layer_id(egui::LayerId::background())
            .max_rect(ctx.viewport_rect()),
    );
    let runs = &mut *runs;
    let training = *mode == ViewerMode::Training;

    // Panels are not filled: the window is cleared to the panel color instead, which spares a
    // software rasterizer shading a third of the window once more every frame.
    let panel_frame = egui::Frame::side_top_panel(&ctx.global_style()).fill(Color32::TRANSPARENT);
    egui::Panel::left("controls")
        .frame(panel_frame)
        .default_size(300.0)
        .resizable(true)
        .show(&mut root, |ui| {
            egui::ScrollArea::vertical().show(ui, |ui| {
                status::header(ui, runs, &mode, physics_status);
                ui.separator();
                status::mode_switch(ui, &mut mode);
                ui.separator();
                if training && runs.following() {
                    // Nothing trains here: the timeline replays what was read.
                    run::timeline_controls(ui, runs);
                } else if training {
                    run::lesson_controls(
                        ui,
                        &mut panel,
                        runs,
                        &mut settings,
                        &mut orbit,
                        &mut actions,
                    );
                    ui.separator();
                    run::run_controls(ui, runs, &mut actions);
                    run::timeline_controls(ui, runs);
                    ui.separator();
                    run::packing_controls(ui, runs, panel.teaching);
                    ui.separator();
                    run::compare_controls(ui, &mut panel, runs, &mut actions);
                    if !panel.teaching {
                        ui.separator();
                        run::restart_controls(ui, &mut panel, runs, &mut actions);
                    }
                } else {
                    physics::physics_controls(ui, &mut physics, physics_status);
                }
                ui.separator();
                view::view_controls(ui, &mut settings, &mut pacing, &mut panel, &mut orbit);
                ui.separator();
                status::legend(ui, runs, &mode);
                ui.separator();
                view::capture_controls(ui, recording, &mut capture);
                if !panel.teaching {
                    ui.separator();
                    view::preset_controls(ui, &mut panel, runs, &settings, &orbit);
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
            if training {
                plots::training_plots(ui, runs);
            } else {
                plots::physics_plots(ui, physics_status);
            }
        });

    egui::CentralPanel::default()
        .frame(egui::Frame::NONE)
        .show(&mut root, |ui| {
            let whole = ui.available_rect_before_wrap();
            // One picture; each run in its cell (the sandbox fills it, the other runs rest).
            let response = ui.allocate_rect(whole, egui::Sense::click_and_drag());
            ui.painter()
                .add(super::picture::paint(view.image.id(), whole));
            let whole_rect = to_rect(whole);
            if view.rect != Some(whole_rect) {
                view.rect = Some(whole_rect);
            }
            let pointer = (response.hovered() || response.dragged())
                .then(|| response.hover_pos().or(response.interact_pointer_pos()))
                .flatten();
            let shown = shown_runs(runs, Some(&*mode));
            let cells: Vec<egui::Rect> = view_cells(shown)
                .into_iter()
                .map(|cell| to_egui(cell_rect(whole_rect, cell)))
                .collect();
            for (k, run) in runs.list.iter_mut().enumerate() {
                match cells.get(k) {
                    Some(&cell) => set_view(
                        &mut run.view,
                        cell,
                        pointer.is_some_and(|p| cell.contains(p)),
                    ),
                    None => rest(&mut run.view),
                }
                if shown > 1
                    && let Some(&cell) = cells.get(k)
                {
                    caption(ui, cell, &run.caption, run_color(k));
                }
            }
            // Thin lines between the cells.
            let line = egui::Stroke::new(2.0, Color32::from_gray(60));
            for cell in &cells {
                if cell.right() < whole.right() - 1.0 {
                    ui.painter().vline(cell.right(), cell.y_range(), line);
                }
                if cell.bottom() < whole.bottom() - 1.0 {
                    ui.painter().hline(cell.x_range(), cell.bottom(), line);
                }
            }
        });

    // The card describes the sphere in the view under the pointer (its run's radius and
    // contacts; the image is the same in every view).
    if let Some(run) = runs
        .list
        .iter()
        .find(|run| run.view.hovered)
        .or(runs.list.first())
    {
        hover::hover_card(&ctx, &mut panel, selection, run);
    }
    Ok(())
}

fn to_rect(rect: egui::Rect) -> Rect {
    Rect::new(rect.min.x, rect.min.y, rect.max.x, rect.max.y)
}

fn to_egui(rect: Rect) -> egui::Rect {
    egui::Rect::from_min_max(
        egui::pos2(rect.min.x, rect.min.y),
        egui::pos2(rect.max.x, rect.max.y),
    )
}

/// Records where a run's cell is shown (changed only when it moved, so nothing re-runs
/// needlessly).
fn set_view(view: &mut RunView, rect: egui::Rect, hovered: bool) {
    let rect = to_rect(rect);
    if view.rect != Some(rect) {
        view.rect = Some(rect);
    }
    if view.hovered != hovered {
        view.hovered = hovered;
    }
}

/// A view that is not shown (the others while the sandbox runs).
fn rest(view: &mut RunView) {
    if view.rect.is_some() || view.hovered {
        view.rect = None;
        view.hovered = false;
    }
}

/// A run's caption across the top of its view.
fn caption(ui: &egui::Ui, rect: egui::Rect, text: &str, color: Color32) {
    // On a layer above the picture's: a paint callback may be drawn after the shapes of its
    // own layer, and spheres reaching the top of a cell would cover the caption.
    let painter = ui.ctx().layer_painter(egui::LayerId::new(
        egui::Order::Foreground,
        egui::Id::new("run captions"),
    ));
    let font = egui::FontId::proportional(15.0);
    let galley = painter.layout_no_wrap(text.to_string(), font, color);
    let at = egui::pos2(rect.center().x - galley.size().x / 2.0, rect.top() + 6.0);
    let backing = egui::Rect::from_min_size(at, galley.size()).expand2(egui::vec2(6.0, 3.0));
    painter.rect_filled(backing, 4.0, Color32::from_black_alpha(210));
    painter.galley(at, galley, color);
}

/// Run `k`'s color in captions, plot lines and the legend.
pub(super) fn run_color(k: usize) -> Color32 {
    color32(super::palette::run_color(k))
}

/// An sRGB egui color from the palette's.
pub(super) fn color32(color: Color) -> Color32 {
    let c = color.to_srgba();
    Color32::from_rgb(
        (c.red * 255.0).round() as u8,
        (c.green * 255.0).round() as u8,
        (c.blue * 255.0).round() as u8,
    )
}
