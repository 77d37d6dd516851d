//! Presets: a training configuration (seed included, so the run is reproduced) plus how it was
//! shown, as one TOML file. The training keys sit at the top level exactly as in a
//! `clamp train --config` file, and the view settings in a `[view]` table, so every preset is
//! also a valid training config once that table is dropped. A lesson is a preset with a
//! `[lesson]` table: a title and a sentence or two that the panel shows while it runs. The
//! lessons in `assets/lessons/` are compiled in, so the panel offers them wherever it runs.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::atomic::write_atomically;
use crate::config::TrainConfig;
use crate::projection::ProjectionMode;

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
            opacity: 1.0,
            auto_rotate: 6.0,
            teaching: false,
        }
    }
}

impl ViewPreset {
    pub fn validate(&self) -> Result<(), String> {
        crate::limits::check_range("view.opacity", self.opacity as f64, (0.0, 1.0))?;
        crate::limits::check_range("view.auto_rotate", self.auto_rotate as f64, (-360.0, 360.0))?;
        Ok(())
    }
}

/// What a lesson tells the viewer's user.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lesson {
    pub title: String,
    pub text: String,
}

/// A run beside the preset's (`[[compare]]`, one table a run): the settings in which it differs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComparePreset {
    /// `KEY=VALUE[,KEY=VALUE...]`, as `clamp view --compare` takes them.
    pub settings: String,
}

/// A preset as read: the training config, and the view, lesson and comparison when it has them.
#[derive(Clone, Debug, PartialEq)]
pub struct Preset {
    pub config: TrainConfig,
    pub view: Option<ViewPreset>,
    pub lesson: Option<Lesson>,
    /// The comparison it runs (its config, and a run for each `[[compare]]`), checked.
    pub compare: Option<crate::compare::Comparison>,
}

/// The lessons shipped in `assets/lessons/`: (file name, text).
pub const LESSONS: [(&str, &str); 8] = [
    (
        "1-unjamming.toml",
        include_str!("../../assets/lessons/1-unjamming.toml"),
    ),
    (
        "2-jammed.toml",
        include_str!("../../assets/lessons/2-jammed.toml"),
    ),
    (
        "3-hertzian.toml",
        include_str!("../../assets/lessons/3-hertzian.toml"),
    ),
    (
        "4-collapse.toml",
        include_str!("../../assets/lessons/4-collapse.toml"),
    ),
    (
        "5-harmonic-vs-hertzian.toml",
        include_str!("../../assets/lessons/5-harmonic-vs-hertzian.toml"),
    ),
    (
        "6-jammed-vs-unjamming.toml",
        include_str!("../../assets/lessons/6-jammed-vs-unjamming.toml"),
    ),
    (
        "7-clamp-vs-simclr.toml",
        include_str!("../../assets/lessons/7-clamp-vs-simclr.toml"),
    ),
    (
        "8-radius-sweep.toml",
        include_str!("../../assets/lessons/8-radius-sweep.toml"),
    ),
];

/// Reads a preset, a lesson or a plain training config; keys it does not set come from
/// `base`. Errors name the file and the key.
pub fn load(path: &Path, base: &TrainConfig) -> Result<Preset, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    parse(&text, base).map_err(|e| format!("{}: {e}", path.display()))
}

/// [`load`] of a text already read.
pub fn parse(text: &str, base: &TrainConfig) -> Result<Preset, String> {
    let mut table: toml::Table =
        toml::from_str(text).map_err(|e| e.to_string().trim().to_string())?;
    let view = match table.remove("view") {
        Some(value) => {
            let view: ViewPreset = value
                .try_into()
                .map_err(|e: toml::de::Error| format!("[view]: {}", e.to_string().trim()))?;
            view.validate()?;
            Some(view)
        }
        None => None,
    };
    let lesson = match table.remove("lesson") {
        Some(value) => Some(
            value
                .try_into()
                .map_err(|e: toml::de::Error| format!("[lesson]: {}", e.to_string().trim()))?,
        ),
        None => None,
    };
    // `[[compare]]`, a table a run; a single `[compare]` table is one run.
    let compare: Vec<ComparePreset> = match table.remove("compare") {
        Some(toml::Value::Array(runs)) => runs
            .into_iter()
            .map(|value| {
                value
                    .try_into()
                    .map_err(|e: toml::de::Error| format!("[[compare]]: {}", e.to_string().trim()))
            })
            .collect::<Result<_, _>>()?,
        Some(value) => vec![
            value
                .try_into()
                .map_err(|e: toml::de::Error| format!("[compare]: {}", e.to_string().trim()))?,
        ],
        None => Vec::new(),
    };
    let mut merged: toml::Table =
        toml::from_str(&base.to_toml()).map_err(|e| format!("the base config: {e}"))?;
    merged.extend(table);
    let config: TrainConfig = toml::Value::Table(merged)
        .try_into()
        .map_err(|e: toml::de::Error| e.to_string().trim().to_string())?;
    config.validate()?;
    let specs: Vec<&str> = compare.iter().map(|c| c.settings.as_str()).collect();
    let compare = (!specs.is_empty())
        .then(|| crate::compare::Comparison::from_specs(&config, &specs))
        .transpose()
        .map_err(|e| format!("[[compare]]: {e}"))?;
    Ok(Preset {
        config,
        view,
        lesson,
        compare,
    })
}

/// Writes a preset atomically (a crash mid-write leaves the previous file intact).
pub fn save(
    path: &Path,
    config: &TrainConfig,
    view: &ViewPreset,
    compare: Option<&crate::compare::Comparison>,
) -> Result<(), String> {
    let text = to_toml(config, view, compare)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    write_atomically(path, text.as_bytes())
}

/// The preset file's text: the config's keys, then a `[view]` table, and a `[[compare]]` table
/// for each run beside the first.
pub fn to_toml(
    config: &TrainConfig,
    view: &ViewPreset,
    compare: Option<&crate::compare::Comparison>,
) -> Result<String, String> {
    #[derive(Serialize)]
    struct Preset<'a> {
        #[serde(flatten)]
        train: &'a TrainConfig,
        view: &'a ViewPreset,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        compare: Vec<ComparePreset>,
    }
    toml::to_string(&Preset {
        train: config,
        view,
        compare: compare
            .map(|c| c.specs())
            .unwrap_or_default()
            .into_iter()
            .map(|settings| ComparePreset { settings })
            .collect(),
    })
    .map_err(|e| format!("cannot encode the preset: {e}"))
}
