//! The physics sandbox's controls.

use bevy_egui::egui::{self, RichText};

use super::super::physics_mode::{PhysicsControls, PhysicsStatus};
use super::super::ranges;

pub(super) fn physics_controls(
    ui: &mut egui::Ui,
    physics: &mut PhysicsControls,
    status: &PhysicsStatus,
) {
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
