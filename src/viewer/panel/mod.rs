//! The egui side panel (controls, legend, presets), the strip of plots along the bottom, and the
//! card of the hovered sphere. It edits [`Controls`] and [`SceneSettings`] and sends
//! [`TrainingAction`]s; it never touches the trainer itself. One file per part of the panel:
//! `status` (the top), `run` (training controls), `physics`, `view` (drawing, capture,
//! presets), `plots` (the bottom strip), `hover` (the card).

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

use super::ViewerMode;
use super::camera::{OrbitCamera, SceneView};
use super::capture::{CaptureRequest, Recording};
use super::compare::{ComparisonAction, SecondRun, SecondView, SliderTarget};
use super::pacing::FramePacing;
use super::physics_mode::{PhysicsControls, PhysicsStatus};
use super::picking::Selection;
use super::preset::Lesson;
use super::scene::{Scene, SceneSettings};
use super::timeline::Timeline;
use super::training::{Controls, History, TrainingAction, TrainingLink, TrainingStatus};
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
    /// The compare control's text (`alpha=2.5`).
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
        app.add_systems(
            Startup,
            move |mut commands: Commands, link: Res<TrainingLink>| {
                commands.insert_resource(PanelState {
                    teaching,
                    draft: link.config.clone(),
                    preset_path: "presets/my-run.toml".into(),
                    message: None,
                    lesson: lesson.clone(),
                    compare_draft: "alpha=2.5".into(),
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
    (mut second, mut second_view, mut comparisons): (
        Option<ResMut<SecondRun>>,
        Option<ResMut<SecondView>>,
        MessageWriter<ComparisonAction>,
    ),
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
                status::header(ui, status, link, scene, &mode, physics_status, &timeline);
                if let Some(second) = second.as_deref()
                    && *mode == ViewerMode::Training
                {
                    ui.separator();
                    status::second_run(ui, second);
                }
                ui.separator();
                status::mode_switch(ui, &mut mode);
                ui.separator();
                if *mode == ViewerMode::Training {
                    run::lesson_controls(
                        ui,
                        &mut panel,
                        &mut controls,
                        &mut settings,
                        &mut cameras,
                        &mut actions,
                        &mut comparisons,
                    );
                    ui.separator();
                    run::run_controls(ui, &mut controls, status, &mut actions);
                    run::timeline_controls(ui, &mut timeline, &mut controls);
                    ui.separator();
                    match second.as_deref_mut() {
                        Some(second) => {
                            run::slider_target(ui, second);
                            let moved = if second.sliders == SliderTarget::Second {
                                &mut second.controls
                            } else {
                                &mut *controls
                            };
                            run::packing_controls(ui, moved, panel.teaching);
                        }
                        None => run::packing_controls(ui, &mut controls, panel.teaching),
                    }
                    ui.separator();
                    let base = view::current_config(link, &controls);
                    run::compare_controls(
                        ui,
                        &mut panel,
                        &base,
                        second.as_deref(),
                        &mut actions,
                        &mut comparisons,
                    );
                    if !panel.teaching {
                        ui.separator();
                        run::restart_controls(ui, &mut panel, link, &mut actions);
                    }
                } else {
                    physics::physics_controls(ui, &mut physics, physics_status);
                }
                ui.separator();
                view::view_controls(ui, &mut settings, &mut pacing, &mut panel, &mut cameras);
                ui.separator();
                status::legend(ui, link, scene, &mode);
                ui.separator();
                view::capture_controls(ui, recording, &mut capture);
                if !panel.teaching {
                    ui.separator();
                    view::preset_controls(
                        ui,
                        &mut panel,
                        link,
                        &controls,
                        &settings,
                        &cameras,
                        second.as_deref().map(|s| &s.comparison),
                    );
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
                plots::training_plots(ui, history, link, timeline.cursor_step(), second.as_deref());
            } else {
                plots::physics_plots(ui, physics_status);
            }
        });

    egui::CentralPanel::default()
        .frame(egui::Frame::NONE)
        .show(&mut root, |ui| {
            let whole = ui.available_rect_before_wrap();
            let comparing = *mode == ViewerMode::Training;
            let view = &mut *view;
            match (second.as_deref(), second_view.as_deref_mut()) {
                (Some(second), Some(second_view)) if comparing => {
                    // Two views of one camera, each captioned with what sets its run apart.
                    let (left, right) = whole.split_left_right_at_fraction(0.5);
                    let first_hovered = show_picture(ui, view.image.id(), left);
                    let second_hovered = show_picture(ui, second_view.image.id(), right);
                    set_view(&mut view.rect, &mut view.hovered, left, first_hovered);
                    set_view(
                        &mut second_view.rect,
                        &mut second_view.hovered,
                        right,
                        second_hovered,
                    );
                    caption(ui, left, &second.caption(0), palette_first());
                    caption(ui, right, &second.caption(1), palette_second());
                    ui.painter().vline(
                        left.right(),
                        whole.y_range(),
                        egui::Stroke::new(2.0, Color32::from_gray(60)),
                    );
                }
                (_, second_view) => {
                    let hovered = show_picture(ui, view.image.id(), whole);
                    set_view(&mut view.rect, &mut view.hovered, whole, hovered);
                    // (In the physics sandbox the second view rests.)
                    if let Some(second_view) = second_view
                        && (second_view.rect.is_some() || second_view.hovered)
                    {
                        second_view.rect = None;
                        second_view.hovered = false;
                    }
                }
            }
        });

    // The card describes the sphere in the view under the pointer (its run's radius and
    // contacts; the image is the same in both).
    let hovered_second = second_view.as_deref().is_some_and(|v| v.hovered);
    let card_scene = match second.as_deref() {
        Some(second) if hovered_second => &second.scene,
        _ => scene,
    };
    hover::hover_card(&ctx, &mut panel, selection, card_scene, link);

    Ok(())
}

/// Paints a scene picture into `rect`; whether the pointer is on it (or dragging from it).
fn show_picture(ui: &mut egui::Ui, image: AssetId<Image>, rect: egui::Rect) -> bool {
    let response = ui.allocate_rect(rect, egui::Sense::click_and_drag());
    ui.painter().add(super::picture::paint(image, rect));
    response.hovered() || response.dragged()
}

/// Records where a picture is shown (changed only when it moved, so nothing re-runs needlessly).
fn set_view(stored: &mut Option<Rect>, hovered: &mut bool, rect: egui::Rect, now_hovered: bool) {
    let rect = Rect::new(rect.min.x, rect.min.y, rect.max.x, rect.max.y);
    if *stored != Some(rect) {
        *stored = Some(rect);
    }
    if *hovered != now_hovered {
        *hovered = now_hovered;
    }
}

/// A run's caption across the top of its view.
fn caption(ui: &egui::Ui, rect: egui::Rect, text: &str, color: Color32) {
    let font = egui::FontId::proportional(15.0);
    let galley = ui.painter().layout_no_wrap(text.to_string(), font, color);
    let at = egui::pos2(rect.center().x - galley.size().x / 2.0, rect.top() + 6.0);
    let backing = egui::Rect::from_min_size(at, galley.size()).expand2(egui::vec2(6.0, 3.0));
    ui.painter()
        .rect_filled(backing, 4.0, Color32::from_black_alpha(150));
    ui.painter().galley(at, galley, color);
}

fn palette_first() -> Color32 {
    color32(super::palette::FIRST_RUN)
}

fn palette_second() -> Color32 {
    color32(super::palette::SECOND_RUN)
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
