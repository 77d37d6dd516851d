//! From frames to drawable spheres: the projection to 3-D (refit on every frame, aligned to the
//! previous one) and the easing of positions between frames, so the picture moves smoothly at
//! the frame rate while snapshots arrive a few times per second.

use bevy::prelude::*;

use crate::projection::{ProjectionMode, Projector};

/// One picture's worth of spheres, from the trainer or from the physics sandbox.
#[derive(Clone, Debug, Default)]
pub struct SceneFrame {
    /// Training step (or minimisation step in physics mode).
    pub step: usize,
    /// Coordinates per center.
    pub dim: usize,
    /// Centers `[n, dim]`, row-major.
    pub centers: Vec<f32>,
    pub radii: Vec<f32>,
    pub labels: Vec<u16>,
    pub contacts: Vec<u32>,
    /// Touching pairs `(i, j)`, `i < j`.
    pub pairs: Vec<[u32; 2]>,
    /// Index of each sphere's image in the test split (empty in physics mode).
    pub images: Vec<usize>,
    /// The centers live inside the unit sphere (CLAMP's embedding), so `Raw` mode draws it.
    pub unit_sphere: bool,
}

impl SceneFrame {
    /// The mean contact number of the drawn spheres (0 when there are none).
    pub fn mean_contacts(&self) -> f64 {
        self.contacts.iter().map(|&c| c as f64).sum::<f64>() / self.contacts.len().max(1) as f64
    }

    /// The mean radius of the drawn spheres, r_s included (0 when there are none).
    pub fn mean_radius(&self) -> f64 {
        self.radii.iter().map(|&r| r as f64).sum::<f64>() / self.radii.len().max(1) as f64
    }
}

/// What fills the picture.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Resource)]
pub enum ViewerMode {
    #[default]
    Training,
    Physics,
}

/// How the scene is drawn; the panel edits it.
#[derive(Resource, Clone, Debug, PartialEq)]
pub struct SceneSettings {
    pub projection: ProjectionMode,
    /// Per second: how fast drawn positions catch up with the newest frame.
    pub ease_rate: f32,
    pub show_contacts: bool,
    pub show_wireframe: bool,
    pub opacity: f32,
    /// Rendered pixels per window pixel (below 1 on software rasterizers).
    pub render_scale: f32,
    /// Drawn radii over true radii: a drawing aid for high-dimensional runs, whose spheres
    /// overlap in any 3-D projection; the numbers (contacts, purity) never change with it.
    pub sphere_size: f32,
}

impl Default for SceneSettings {
    fn default() -> Self {
        Self {
            projection: ProjectionMode::Pca,
            ease_rate: 6.0,
            // A jammed start has hundreds of contacts per sphere: lines on demand.
            show_contacts: false,
            show_wireframe: true,
            // Solid spheres: class colors stay distinct where spheres overlap.
            opacity: 1.0,
            render_scale: 1.0,
            sphere_size: 1.0,
        }
    }
}

impl SceneSettings {
    /// The defaults, with a preset's choices where it has them.
    pub fn from_preset(view: Option<&super::preset::ViewPreset>) -> Self {
        let mut settings = Self::default();
        if let Some(view) = view {
            settings.projection = view.projection;
            settings.show_contacts = view.show_contacts;
            settings.opacity = view.opacity;
        }
        settings
    }
}

/// A run's spheres as drawn this frame.
#[derive(Default)]
pub struct Scene {
    /// The newest frame (its geometry in the embedding).
    pub frame: SceneFrame,
    pub projector: Option<Projector>,
    /// Where each sphere is heading (projection of the newest frame).
    pub target: Vec<Vec3>,
    /// Where each sphere is drawn now.
    pub drawn: Vec<Vec3>,
    pub target_radii: Vec<f32>,
    pub radii: Vec<f32>,
    /// Number of classes for the palette.
    pub classes: usize,
    /// Bumped on every new frame.
    pub version: u64,
    /// A projection failure (shown in the panel; the previous picture stays).
    pub error: Option<String>,
    /// Class purity of the newest frame's projected positions (training frames only).
    pub purity: Option<f64>,
    /// Drawn radii over true ones ([`SceneSettings::sphere_size`]; 0 counts as 1).
    pub sphere_size: f32,
}

/// Spheres whose neighbours [`picture_purity`] looks through (the first ones when there are
/// more): a brute-force search, kept to a few milliseconds a frame.
pub const PURITY_MAX_SPHERES: usize = 2000;

/// Class purity of drawn positions (see [`crate::eval::class_purity`]).
pub fn picture_purity(positions: &[Vec3], labels: &[u16]) -> f64 {
    let n = positions.len().min(labels.len()).min(PURITY_MAX_SPHERES);
    let flat: Vec<f32> = positions[..n].iter().flat_map(|p| p.to_array()).collect();
    crate::eval::class_purity(&flat, 3, &labels[..n], crate::eval::PURITY_K)
}

impl Scene {
    pub fn len(&self) -> usize {
        self.drawn.len()
    }

    pub fn is_empty(&self) -> bool {
        self.drawn.is_empty()
    }

    /// Projects the stored frame with the current projector settings.
    fn refit(&mut self, mode: ProjectionMode) {
        let frame = &self.frame;
        if frame.radii.is_empty() {
            return;
        }
        match Projector::fit(&frame.centers, frame.dim, mode, self.projector.as_ref()) {
            Ok(projector) => {
                self.target = projector
                    .project(&frame.centers)
                    .into_iter()
                    .map(Vec3::from_array)
                    .collect();
                self.projector = Some(projector);
                self.error = None;
                // Physics frames label particle sizes, not classes (and live in a box, not on
                // the unit sphere).
                self.purity = frame
                    .unit_sphere
                    .then(|| picture_purity(&self.target, &frame.labels));
            }
            Err(e) => {
                self.error = Some(e);
                return;
            }
        }
        let size = if self.sphere_size > 0.0 {
            self.sphere_size
        } else {
            1.0
        };
        self.target_radii = frame.radii.iter().map(|r| r * size).collect();
        if self.drawn.len() != self.target.len() {
            self.drawn = self.target.clone();
            self.radii = self.target_radii.clone();
        }
    }

    /// Moves drawn positions and radii a step `dt` towards the target.
    pub fn ease(&mut self, rate: f32, dt: f32) {
        let blend = if rate <= 0.0 {
            1.0
        } else {
            1.0 - (-rate * dt).exp()
        };
        for (drawn, target) in self.drawn.iter_mut().zip(&self.target) {
            *drawn += (*target - *drawn) * blend;
        }
        for (r, target) in self.radii.iter_mut().zip(&self.target_radii) {
            *r += (*target - *r) * blend;
        }
    }

    /// Jumps to the target (recordings, where every frame must be the same on every run).
    pub fn snap(&mut self) {
        self.drawn = self.target.clone();
        self.radii = self.target_radii.clone();
    }
}

/// Systems that bring the runs' scenes up to date; drawing runs after them.
#[derive(SystemSet, Debug, Clone, PartialEq, Eq, Hash)]
pub struct SceneUpdate;

/// Whether positions ease in real time (viewer) or jump to each frame (recorder, tests).
#[derive(Resource, Clone, Copy, Debug, PartialEq, Eq)]
pub struct EaseInRealTime(pub bool);

impl Scene {
    /// Takes a new frame and projects it (`mode`), aligned to the previous picture.
    pub fn take(&mut self, frame: SceneFrame, mode: ProjectionMode) {
        let classes = frame
            .labels
            .iter()
            .map(|&l| l as usize + 1)
            .max()
            .unwrap_or(1);
        self.classes = self.classes.max(classes);
        if frame.radii.len() != self.frame.radii.len() || frame.dim != self.frame.dim {
            // A restart or a mode switch: start the alignment afresh.
            self.projector = None;
            self.drawn.clear();
            self.classes = classes;
        }
        self.frame = frame;
        self.version += 1;
        self.refit(mode);
    }

    /// Projects the same frame afresh in another `mode`.
    pub fn reproject(&mut self, mode: ProjectionMode) {
        self.projector = None;
        self.refit(mode);
    }
}
