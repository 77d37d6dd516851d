//! The card of the hovered (or pinned) sphere.

use bevy_egui::egui::{self, RichText};

use super::super::picking::Selection;
use super::super::runs::Run;
use super::PanelState;

/// The hovered (or pinned) sphere in `run`'s view: its image, class, radius and contacts.
pub(super) fn hover_card(
    ctx: &egui::Context,
    panel: &mut PanelState,
    selection: &Selection,
    run: &Run,
) {
    let scene = &run.scene;
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
    let link = run.link.as_ref();
    let texture = image.zip(link).and_then(|(image, link)| {
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
                    link.and_then(|l| l.data.test.class_names.get(label as usize).cloned())
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
pub(super) fn image_of(set: &crate::data::ImageSet, index: usize) -> egui::ColorImage {
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
