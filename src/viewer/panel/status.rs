//! The top of the panel: what is running and how it is going, the mode switch, and the legend.

use bevy_egui::egui::{self, Color32, RichText};

use super::super::palette;
use super::super::physics_mode::PhysicsStatus;
use super::super::runs::{Run, Runs};
use super::super::scene::{Scene, ViewerMode};

/// The title, then what is running: the run alone in full, or a few lines a run side by side.
pub(super) fn header(ui: &mut egui::Ui, runs: &Runs, mode: &ViewerMode, physics: &PhysicsStatus) {
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
    let Some(first) = runs.list.first() else {
        return;
    };
    if runs.len() == 1 {
        run_header(ui, first, runs.cursor_step());
        return;
    }
    if let Some(link) = &first.link {
        ui.label(format!("data: {}", link.data.description));
        ui.label(format!("backend: {}", link.backend.description));
    }
    ui.label(RichText::new(format!("{} runs side by side", runs.len())).strong())
        .on_hover_text(
            "the same data, seed, initial weights and batches, differing only in the settings \
         each caption names",
        );
    for (k, run) in runs.list.iter().enumerate() {
        run_lines(ui, k, run);
    }
}

/// A run of several in two lines: its settings, its pace and its picture.
fn run_lines(ui: &mut egui::Ui, k: usize, run: &Run) {
    let status = &run.status;
    ui.label(
        RichText::new(format!("{}: {}", k + 1, run.caption))
            .strong()
            .color(super::run_color(k)),
    );
    let state = if run.followed.is_some() {
        "following"
    } else if status.paused {
        "paused"
    } else {
        "training"
    };
    let purity = run
        .scene
        .purity
        .map_or(String::new(), |p| format!(", class purity {p:.3}"));
    // A followed run's pace is its trainer's, elsewhere: say what was read instead.
    let pace = match &run.followed {
        Some(followed) => format!("{} pictures", followed.pictures),
        None => format!("{:.1} steps/s", status.steps_per_sec),
    };
    ui.label(format!("{state} - step {} - {pace}{purity}", status.step));
    if let Some(error) = status.error.as_ref().or(run.scene.error.as_ref()) {
        ui.colored_label(Color32::from_rgb(255, 110, 100), format!("error: {error}"));
    }
}

/// A run trained elsewhere: its folder, how far its pictures reach and how fresh they are.
fn followed_header(ui: &mut egui::Ui, run: &Run, cursor: Option<usize>) {
    let Some(followed) = &run.followed else {
        return;
    };
    ui.label(format!("following {}", followed.dir.display()));
    if let Some(header) = &followed.header
        && !header.writer.is_empty()
    {
        ui.label(format!("written by {}", header.writer));
    }
    match followed.newest_at {
        None => {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label("waiting for the run's first picture...");
            });
        }
        Some(at) => {
            ui.label(format!(
                "{} pictures, newest of step {} ({:.0} s ago)",
                followed.pictures,
                run.status.step,
                at.elapsed().as_secs_f64()
            ));
        }
    }
    if let Some(report) = &run.status.last {
        ui.label(format!(
            "batch loss {:.3} at step {}",
            report.loss, report.step
        ));
    }
    drawn_spheres_label(ui, &run.scene, cursor);
    if let Some(problem) = &followed.problem {
        ui.colored_label(Color32::from_rgb(255, 110, 100), problem);
    }
}

/// How many spheres are drawn, of which step (or the replayed one), and their mean contacts
/// against the isostatic 2d.
fn drawn_spheres_label(ui: &mut egui::Ui, scene: &Scene, cursor: Option<usize>) -> egui::Response {
    let frame = &scene.frame;
    let when = match cursor {
        Some(step) => format!("replaying step {step}"),
        None => format!("step {}", frame.step),
    };
    ui.label(format!(
        "{} spheres drawn ({when}): Z {:.2} (2d = {})",
        scene.len(),
        frame.mean_contacts(),
        2 * frame.dim
    ))
}

/// The run alone: its data, backend, pace, batch and picture.
fn run_header(ui: &mut egui::Ui, run: &Run, cursor: Option<usize>) {
    let (status, scene) = (&run.status, &run.scene);
    let Some(link) = &run.link else {
        followed_header(ui, run, cursor);
        return;
    };
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
    drawn_spheres_label(ui, scene, cursor).on_hover_text(format!(
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

pub(super) fn mode_switch(ui: &mut egui::Ui, mode: &mut ViewerMode) {
    ui.horizontal(|ui| {
        ui.label("show:");
        ui.selectable_value(mode, ViewerMode::Training, "CLAMP training");
        ui.selectable_value(mode, ViewerMode::Physics, "physics: jamming");
    });
}

pub(super) fn legend(ui: &mut egui::Ui, runs: &Runs, mode: &ViewerMode) {
    if *mode == ViewerMode::Physics {
        ui.label("color: particle size (small / large)");
        return;
    }
    let Some(run) = runs.list.first() else {
        return;
    };
    let scene = &run.scene;
    let names = run.class_names();
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
