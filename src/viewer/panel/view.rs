//! How the picture is drawn, captures and recordings, and presets.

use std::path::PathBuf;

use bevy::prelude::*;
use bevy_egui::egui::{self, Color32, RichText};

use super::super::camera::OrbitCamera;
use super::super::capture::{CaptureRequest, Recording};
use super::super::pacing::FramePacing;
use super::super::preset::{self, ViewPreset};
use super::super::ranges;
use super::super::runs::Runs;
use super::super::scene::SceneSettings;
use super::PanelState;
use crate::config::TrainConfig;
use crate::projection::ProjectionMode;

pub(super) fn view_controls(
    ui: &mut egui::Ui,
    settings: &mut SceneSettings,
    pacing: &mut FramePacing,
    panel: &mut PanelState,
    orbit: &mut OrbitCamera,
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
    ui.add(
        egui::Slider::new(
            &mut settings.sphere_size,
            ranges::SPHERE_SIZE.0..=ranges::SPHERE_SIZE.1,
        )
        .logarithmic(true)
        .text("sphere size (drawing only)"),
    )
    .on_hover_text(
        "draw the spheres smaller than they are: in many dimensions they overlap in any 3-D \
         picture; contacts and purity are the run's own",
    );
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
    let mut rotate = orbit.auto_rotate;
    ui.add(
        egui::Slider::new(&mut rotate, ranges::AUTO_ROTATE.0..=ranges::AUTO_ROTATE.1)
            .text("auto-rotate deg/s"),
    );
    if rotate != orbit.auto_rotate {
        orbit.auto_rotate = rotate;
    }
    ui.checkbox(&mut panel.teaching, "teaching layout (hide advanced)");
    ui.label(
        RichText::new("drag: turn - right-drag: pan - wheel: zoom - R: reset view - click: pin")
            .small(),
    );
}

pub(super) fn capture_controls(
    ui: &mut egui::Ui,
    recording: &Recording,
    capture: &mut MessageWriter<CaptureRequest>,
) {
    ui.horizontal(|ui| {
        if ui.button("Screenshot (F12)").clicked() {
            capture.write(CaptureRequest::Screenshot);
        }
        // (A page records no video: its frames would go to files it cannot write.)
        if !super::run::DESKTOP {
            return;
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

pub(super) fn preset_controls(
    ui: &mut egui::Ui,
    panel: &mut PanelState,
    runs: &Runs,
    settings: &SceneSettings,
    orbit: &OrbitCamera,
) {
    let Some(config) = runs.list.first().and_then(|run| run.current_config()) else {
        return;
    };
    // The runs as they stand, each with its live values.
    let comparison = (runs.len() > 1)
        .then(|| runs.current_comparison())
        .flatten();
    let compare = comparison.as_ref();
    ui.label(RichText::new("presets (TOML: config + seed + view)").strong());
    let desktop = super::run::DESKTOP;
    if desktop {
        ui.text_edit_singleline(&mut panel.preset_path);
    }
    ui.horizontal(|ui| {
        let save_label = if desktop { "Save preset" } else { "Save preset (download)" };
        if ui.button(save_label).clicked() {
            let view = ViewPreset {
                projection: settings.projection,
                show_contacts: settings.show_contacts,
                opacity: settings.opacity,
                auto_rotate: orbit.auto_rotate,
                teaching: panel.teaching,
            };
            let path = PathBuf::from(panel.preset_path.trim());
            let saved = preset::to_toml(&config, &view, compare).and_then(|text| {
                super::super::files::save(&path, text.as_bytes(), "application/toml")
            });
            panel.message = Some(match saved {
                Ok(line) => (line, true),
                Err(e) => (e, false),
            });
        }
        // A page reads no files, but its address carries the settings.
        #[cfg(target_arch = "wasm32")]
        if ui
            .button("Copy link")
            .on_hover_text("the page's address with these settings, for a class or a colleague")
            .clicked()
        {
            let link_text = super::super::files::settings_link(&config, compare);
            super::super::files::copy_to_clipboard(&link_text);
            panel.message = Some((format!("copied {link_text}"), true));
        }
        if desktop && ui.button("Load preset").clicked() {
            let path = PathBuf::from(panel.preset_path.trim());
            panel.message = Some(match preset::load(&path, &TrainConfig::viewer_default()) {
                Ok(preset::Preset { config, .. }) => {
                    panel.draft = config;
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
