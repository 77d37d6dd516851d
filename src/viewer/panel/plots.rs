//! The strip of plots under the picture: training curves (or the sandbox's), each line thinned
//! to what a plot can show.

use bevy_egui::egui::{self, Color32, RichText};
use egui_plot::{Corner, HLine, Legend, Line, LineStyle, Plot, PlotPoints, Points, VLine};

use super::super::physics_mode::PhysicsStatus;
use super::super::runs::{Run, Runs};
use super::super::training::{History, PictureSample};

/// Most points a plotted line gets: a plot a few hundred pixels wide shows no more, and a line
/// that grew with the run would make every frame's tessellation and vertex buffers grow with it.
pub(super) const MAX_PLOT_POINTS: usize = 1024;

/// Indices `0..len` thinned to at most about [`MAX_PLOT_POINTS`], evenly, the last one kept.
pub(super) fn plotted(len: usize) -> impl Iterator<Item = usize> {
    let stride = len.div_ceil(MAX_PLOT_POINTS).max(1);
    (0..len)
        .step_by(stride)
        .chain((len > 0 && !(len - 1).is_multiple_of(stride)).then(|| len - 1))
}

pub(super) fn series<'a>(steps: &[f64], values: &[f64]) -> PlotPoints<'a> {
    plotted(steps.len().min(values.len()))
        .map(|k| [steps[k], values[k]])
        .filter(|p| p[1].is_finite())
        .collect()
}

/// One small plot of the strip under the picture.
pub(super) struct PlotSpec<'a> {
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
pub(super) fn plot_grid(ui: &mut egui::Ui, plots: Vec<PlotSpec>) {
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

pub(super) fn training_plots(ui: &mut egui::Ui, runs: &Runs) {
    let cursor = runs.cursor_step();
    if runs.len() > 1 {
        return compared_plots(ui, runs, cursor);
    }
    let Some(run) = runs.list.first() else {
        return;
    };
    let link = run.link.as_ref();
    let history = &run.history;
    let steps = &history.steps;
    let dim = run.dim();
    // (A followed run's batch is its trainer's: not known here.)
    let batch_line = match link {
        Some(link) => format!("batch of {}", link.config.batch),
        None => "batch".to_string(),
    };
    let picture_series = |value: fn(&PictureSample) -> f64| picture_series(history, value);
    let baseline = link.and_then(|l| l.pixel_purity);
    let chance = run.chance_purity();
    // While the timeline is scrubbed, every plot marks the step shown.
    let mark = move |p: &mut egui_plot::PlotUi| mark_step(p, cursor);
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
                    if let Some(chance) = chance {
                        p.hline(HLine::new("chance", chance));
                    }
                    mark(p);
                },
            ),
            PlotSpec::new("contacts", "mean contacts Z", true, move |p| {
                p.line(Line::new("drawn spheres", picture_series(|s| s.contacts)));
                p.line(Line::new(batch_line, series(steps, &history.contacts)));
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

/// The drawn spheres' samples as a line.
fn picture_series<'a>(history: &History, value: fn(&PictureSample) -> f64) -> PlotPoints<'a> {
    let pictures = &history.pictures;
    plotted(pictures.len())
        .map(|k| [pictures[k].step as f64, value(&pictures[k])])
        .filter(|p| p[1].is_finite())
        .collect()
}

fn mark_step(p: &mut egui_plot::PlotUi, cursor: Option<usize>) {
    if let Some(step) = cursor {
        p.vline(VLine::new("shown", step as f64).color(Color32::from_rgb(240, 200, 90)));
    }
}

/// Run `k`'s line style beside its color, so runs stay apart in print and for any eye.
fn run_style(k: usize) -> LineStyle {
    match k % 4 {
        0 => LineStyle::Solid,
        1 => LineStyle::dashed_dense(),
        2 => LineStyle::dotted_dense(),
        _ => LineStyle::dashed_loose(),
    }
}

/// The same plots with every run overlaid, one color and line style per run, the legend
/// naming what sets each apart.
fn compared_plots(ui: &mut egui::Ui, runs: &Runs, cursor: Option<usize>) {
    let Some(first) = runs.list.first() else {
        return;
    };
    let lines: Vec<(&Run, String, Color32, LineStyle)> = runs
        .list
        .iter()
        .enumerate()
        .map(|(k, run)| {
            (
                run,
                format!("{}: {}", k + 1, run.caption),
                super::run_color(k),
                run_style(k),
            )
        })
        .collect();
    let lines = &lines;
    let mut dims: Vec<usize> = runs
        .list
        .iter()
        .filter(|run| run.has_source())
        .map(Run::dim)
        .collect();
    dims.sort_unstable();
    dims.dedup();
    let baseline = first.link.as_ref().and_then(|l| l.pixel_purity);
    let chance = first.chance_purity();
    let pictures = move |p: &mut egui_plot::PlotUi, value: fn(&PictureSample) -> f64| {
        for (run, caption, color, style) in lines {
            p.line(
                Line::new(caption.clone(), picture_series(&run.history, value))
                    .color(*color)
                    .style(*style),
            );
        }
    };
    // One legend for every plot: the runs' colors and line styles, then the plots without
    // legends of their own (four runs would cover a small plot).
    ui.horizontal_wrapped(|ui| {
        for (_, caption, color, style) in lines {
            let (rect, _) = ui.allocate_exact_size(egui::vec2(22.0, 10.0), egui::Sense::hover());
            let y = rect.center().y;
            let stroke = egui::Stroke::new(2.0, *color);
            let dash = match style {
                LineStyle::Solid => rect.width(),
                LineStyle::Dashed { length } => *length,
                LineStyle::Dotted { .. } => 2.0,
            };
            let mut x = rect.left();
            while x < rect.right() {
                let end = (x + dash).min(rect.right());
                ui.painter()
                    .line_segment([egui::pos2(x, y), egui::pos2(end, y)], stroke);
                x = end + dash.min(4.0);
            }
            ui.label(RichText::new(caption).small().color(*color));
        }
        ui.label(RichText::new("(dots: kNN and linear probes)").small());
    });
    plot_grid(
        ui,
        vec![
            PlotSpec::new(
                "purity",
                "class purity (lines: raw pixels, chance)",
                false,
                move |p| {
                    pictures(p, |s| s.purity);
                    for (run, caption, color, _) in lines {
                        let probes: PlotPoints = run
                            .history
                            .probes
                            .iter()
                            .flat_map(|r| [[r[0], r[1]], [r[0], r[2]]])
                            .collect();
                        p.points(
                            Points::new(caption.clone(), probes)
                                .radius(3.0)
                                .color(*color),
                        );
                    }
                    if let Some(baseline) = baseline {
                        p.hline(HLine::new("raw pixels by PCA", baseline));
                    }
                    if let Some(chance) = chance {
                        p.hline(HLine::new("chance", chance));
                    }
                    mark_step(p, cursor);
                },
            ),
            PlotSpec::new(
                "contacts",
                "contacts Z of the drawn spheres (line: 2d)",
                false,
                move |p| {
                    pictures(p, |s| s.contacts);
                    for dim in &dims {
                        p.hline(HLine::new(format!("2d = {}", 2 * dim), (2 * dim) as f64));
                    }
                    mark_step(p, cursor);
                },
            ),
            PlotSpec::new("radius", "mean radius of drawn spheres", false, move |p| {
                pictures(p, |s| s.radius);
                mark_step(p, cursor);
            }),
            PlotSpec::new("loss", "batch loss", false, move |p| {
                for (run, caption, color, style) in lines {
                    let history = &run.history;
                    p.line(
                        Line::new(caption.clone(), series(&history.steps, &history.loss))
                            .color(*color)
                            .style(*style),
                    );
                }
                mark_step(p, cursor);
            }),
        ],
    );
}

/// Base-10 logarithms, with zeros (an unjammed packing) floored at 1e-30.
pub(super) fn log10(values: &[f64]) -> Vec<f64> {
    values.iter().map(|v| v.max(1e-30).log10()).collect()
}

pub(super) fn physics_plots(ui: &mut egui::Ui, status: &PhysicsStatus) {
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
