//! Presets: a training configuration (seed included, so the run is reproduced) plus how it was
//! shown, as one TOML file. The training keys sit at the top level exactly as in a
//! `clamp train --config` file, and the view settings in a `[view]` table, so every preset is
//! also a valid training config once that table is dropped.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::config::TrainConfig;
use crate::projection::ProjectionMode;
use crate::train::checkpoint::write_atomically;

/// How a preset shows its run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ViewPreset {
    pub projection: ProjectionMode,
    pub show_contacts: bool,
    pub opacity: f32,
    /// Degrees per second.
    pub auto_rotate: f32,
    pub teaching: bool,
}

impl Default for ViewPreset {
    fn default() -> Self {
        Self {
            projection: ProjectionMode::Pca,
            show_contacts: false,
            opacity: 0.55,
            auto_rotate: 6.0,
            teaching: false,
        }
    }
}

impl ViewPreset {
    pub fn validate(&self) -> Result<(), String> {
        crate::loss::check_range("view.opacity", self.opacity as f64, (0.0, 1.0))?;
        crate::loss::check_range("view.auto_rotate", self.auto_rotate as f64, (-360.0, 360.0))
    }
}

/// Reads a preset or a plain training config; errors name the file and the key.
pub fn load(path: &Path) -> Result<(TrainConfig, Option<ViewPreset>), String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut table: toml::Table = toml::from_str(&text)
        .map_err(|e| format!("{}: {}", path.display(), e.to_string().trim()))?;
    let view = match table.remove("view") {
        Some(value) => {
            let view: ViewPreset = value.try_into().map_err(|e: toml::de::Error| {
                format!("{}: [view]: {}", path.display(), e.to_string().trim())
            })?;
            view.validate()
                .map_err(|e| format!("{}: {e}", path.display()))?;
            Some(view)
        }
        None => None,
    };
    let config: TrainConfig = toml::Value::Table(table)
        .try_into()
        .map_err(|e: toml::de::Error| format!("{}: {}", path.display(), e.to_string().trim()))?;
    config
        .validate()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok((config, view))
}

/// Writes a preset atomically (a crash mid-write leaves the previous file intact).
pub fn save(path: &Path, config: &TrainConfig, view: &ViewPreset) -> Result<(), String> {
    #[derive(Serialize)]
    struct Preset<'a> {
        #[serde(flatten)]
        train: &'a TrainConfig,
        view: &'a ViewPreset,
    }
    let text = toml::to_string(&Preset {
        train: config,
        view,
    })
    .map_err(|e| format!("cannot encode the preset: {e}"))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    write_atomically(path, text.as_bytes())
}
