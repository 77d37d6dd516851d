//! Class colors: ten hand-picked, well separated hues for the usual ten classes, then golden-angle
//! hues for larger label sets (CIFAR-100, image folders).

use bevy::color::{Color, Hsla, LinearRgba, Srgba};

/// Behind the spheres: dark enough for translucent colors to read.
pub const BACKGROUND: Color = Color::srgb(0.055, 0.063, 0.082);
/// egui's panel color (dark theme), to which the window is cleared under unfilled panels.
pub const PANEL: Color = Color::srgb_u8(27, 27, 27);
/// The runs side by side, in captions, plot lines and legends: Okabe and Ito's palette (sky
/// blue, orange, bluish green, reddish purple), told apart with each kind of color blindness
/// and readable on the dark panel.
pub const RUNS: [Color; 4] = [
    Color::srgb_u8(0x56, 0xb4, 0xe9),
    Color::srgb_u8(0xe6, 0x9f, 0x00),
    Color::srgb_u8(0x00, 0x9e, 0x73),
    Color::srgb_u8(0xcc, 0x79, 0xa7),
];

/// Run `k`'s color.
pub fn run_color(k: usize) -> Color {
    RUNS[k % RUNS.len()]
}

const TEN: [(u8, u8, u8); 10] = [
    (0x4e, 0x8f, 0xd6), // blue
    (0xf2, 0x8e, 0x2b), // orange
    (0xe1, 0x4b, 0x4f), // red
    (0x5c, 0xc8, 0xc0), // teal
    (0x6c, 0xbf, 0x4f), // green
    (0xee, 0xd0, 0x45), // yellow
    (0xb9, 0x7c, 0xd6), // violet
    (0xff, 0x9d, 0xb5), // pink
    (0xa8, 0x7a, 0x5a), // brown
    (0xc8, 0xc8, 0xc8), // grey
];

/// Color of class `label` out of `classes`.
pub fn class_color(label: u16, classes: usize) -> Color {
    if classes <= TEN.len() {
        let (r, g, b) = TEN[label as usize % TEN.len()];
        return Color::Srgba(Srgba::rgb_u8(r, g, b));
    }
    let hue = (label as f32 * 137.507_77) % 360.0;
    let lightness = if label.is_multiple_of(2) { 0.62 } else { 0.5 };
    Color::Hsla(Hsla::new(hue, 0.7, lightness, 1.0))
}

/// The same color as linear RGBA floats, for vertex data.
pub fn class_color_linear(label: u16, classes: usize) -> [f32; 4] {
    let c: LinearRgba = class_color(label, classes).into();
    [c.red, c.green, c.blue, 1.0]
}

/// The same color for egui.
pub fn class_color_egui(label: u16, classes: usize) -> bevy_egui::egui::Color32 {
    let c: Srgba = class_color(label, classes).into();
    bevy_egui::egui::Color32::from_rgb(
        (c.red * 255.0).round() as u8,
        (c.green * 255.0).round() as u8,
        (c.blue * 255.0).round() as u8,
    )
}
