//! Runs side by side (two to four): each run's configuration, which settings differ, and the
//! captions that name the difference ("alpha = 2 | alpha = 2.5").
//!
//! All runs share what makes them comparable: the data, the seed (hence the initial weights
//! and the order of batches and views), the device and the output folder. They differ only in
//! the settings the user names.

use crate::config::{KEYS, TrainConfig};

/// Settings that every run of a comparison shares.
pub const SHARED_KEYS: &[&str] = &["dataset", "seed", "backend", "out"];

/// Most runs side by side: the picture splits into a 2 x 2 grid at most.
pub const MAX_RUNS: usize = 4;

/// The runs of a comparison (2 to [`MAX_RUNS`]) and the settings in which they differ.
#[derive(Clone, Debug, PartialEq)]
pub struct Comparison {
    /// The runs' configurations, the base run's first.
    pub configs: Vec<TrainConfig>,
    /// The settings in which some run differs from the first, in the configuration's order.
    pub keys: Vec<&'static str>,
}

impl Comparison {
    /// `base` against `base` with `spec`'s settings (`alpha=2.5,radius_scale=4`): two runs.
    pub fn from_spec(base: &TrainConfig, spec: &str) -> Result<Self, String> {
        Self::of_runs(base, vec![other_from_spec(base, spec)?])
    }

    /// `base` and one more run for each spec (`--compare` repeated); an error names the spec.
    pub fn from_specs<S: AsRef<str>>(base: &TrainConfig, specs: &[S]) -> Result<Self, String> {
        let others = specs
            .iter()
            .map(|spec| {
                other_from_spec(base, spec.as_ref()).map_err(|e| format!("{}: {e}", spec.as_ref()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Self::of_runs(base, others)
    }

    /// `base` against another whole configuration (`--compare-config B.toml`): it may differ in
    /// anything but the shared settings.
    pub fn from_configs(base: &TrainConfig, other: &TrainConfig) -> Result<Self, String> {
        Self::of_runs(base, vec![other.clone()])
    }

    /// `base` and `others` beside it. Refused, naming why: fewer than one other run or more
    /// than [`MAX_RUNS`] in all, a shared setting that differs, a run equal to an earlier one.
    pub fn of_runs(base: &TrainConfig, others: Vec<TrainConfig>) -> Result<Self, String> {
        if others.is_empty() {
            return Err("a comparison needs a second run".into());
        }
        if others.len() + 1 > MAX_RUNS {
            return Err(format!(
                "{} runs asked for: at most {MAX_RUNS} side by side (three beside the first)",
                others.len() + 1
            ));
        }
        let mut configs = vec![base.clone()];
        for (k, other) in others.into_iter().enumerate() {
            if let Some(shared) = differing_keys(base, &other)
                .into_iter()
                .find(|key| SHARED_KEYS.contains(key))
            {
                refuse_shared(shared)?;
            }
            if let Some(same) = configs.iter().position(|c| *c == other) {
                return Err(if same == 0 {
                    "the configurations are the same: nothing to compare".to_string()
                } else {
                    format!("run {} is the same as run {}", k + 2, same + 1)
                });
            }
            configs.push(other);
        }
        let keys = KEYS
            .iter()
            .copied()
            .filter(|key| {
                configs[1..]
                    .iter()
                    .any(|c| setting(c, key) != setting(&configs[0], key))
            })
            .collect();
        Ok(Self { configs, keys })
    }

    /// How many runs side by side.
    pub fn len(&self) -> usize {
        self.configs.len()
    }

    /// Never: a comparison has two runs at least.
    pub fn is_empty(&self) -> bool {
        self.configs.is_empty()
    }

    /// What sets run `run` apart: "alpha = 2.5, radius_scale = 4".
    pub fn caption(&self, run: usize) -> String {
        self.keys
            .iter()
            .map(|key| format!("{key} = {}", setting(&self.configs[run], key)))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Run `run`'s settings as `--compare` takes them (`alpha=2.5,radius_scale=4`): those in
    /// which it differs from the first run.
    pub fn spec(&self, run: usize) -> String {
        self.keys
            .iter()
            .filter(|key| setting(&self.configs[run], key) != setting(&self.configs[0], key))
            .map(|key| format!("{key}={}", setting(&self.configs[run], key)))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Every run's spec but the first's: the `--compare` flags that give this comparison over
    /// another first run.
    pub fn specs(&self) -> Vec<String> {
        (1..self.len()).map(|run| self.spec(run)).collect()
    }

    /// Every caption: "alpha = 2 | alpha = 2.5".
    pub fn legend(&self) -> String {
        (0..self.len())
            .map(|run| self.caption(run))
            .collect::<Vec<_>>()
            .join(" | ")
    }
}

/// `base` with `spec`'s settings, refused (naming the key) where a key is unknown, a value out
/// of range, a setting shared by all runs, or a value that leaves the run equal to `base`.
pub fn other_from_spec(base: &TrainConfig, spec: &str) -> Result<TrainConfig, String> {
    let settings = parse_settings(spec)?;
    for (key, _) in &settings {
        refuse_shared(key)?;
    }
    let other = base.with_settings(settings.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
    for (key, _) in &settings {
        if let Some(key) = KEYS.iter().find(|k| **k == key)
            && setting(base, key) == setting(&other, key)
        {
            return Err(format!(
                "{key} = {} is already the first run's value: the runs would not differ \
                 in it",
                setting(base, key)
            ));
        }
    }
    Ok(other)
}

/// `KEY=VALUE[,KEY=VALUE...]` as (key, value) pairs, in order; a malformed item, an empty key
/// or a key given twice is an error that names it.
pub fn parse_settings(spec: &str) -> Result<Vec<(String, String)>, String> {
    let mut settings: Vec<(String, String)> = Vec::new();
    for item in spec
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
    {
        let Some((key, value)) = item.split_once('=') else {
            return Err(format!(
                "`{item}` is not a setting: write KEY=VALUE, e.g. alpha=2.5"
            ));
        };
        let (key, value) = (key.trim(), value.trim());
        if key.is_empty() || value.is_empty() {
            return Err(format!(
                "`{item}` is not a setting: write KEY=VALUE, e.g. alpha=2.5"
            ));
        }
        if settings.iter().any(|(k, _)| k == key) {
            return Err(format!("{key} is given twice"));
        }
        settings.push((key.to_string(), value.to_string()));
    }
    if settings.is_empty() {
        return Err("name at least one setting to compare, e.g. alpha=2.5".into());
    }
    Ok(settings)
}

fn refuse_shared(key: &str) -> Result<(), String> {
    if SHARED_KEYS.contains(&key) {
        return Err(format!(
            "{key} cannot differ between the runs: a comparison keeps the first run's data, \
             seed (initial weights, batches), backend and output folder"
        ));
    }
    Ok(())
}

/// The keys whose values differ between `a` and `b`, in the configuration's order.
pub fn differing_keys(a: &TrainConfig, b: &TrainConfig) -> Vec<&'static str> {
    KEYS.iter()
        .copied()
        .filter(|key| setting(a, key) != setting(b, key))
        .collect()
}

/// A setting's value as a reader writes it (`2.5`, `simclr`, `none` for an unset one).
pub fn setting(config: &TrainConfig, key: &str) -> String {
    let table = toml::Table::try_from(config).unwrap_or_default();
    match table.get(key) {
        None => "none".into(),
        Some(toml::Value::String(text)) => text.clone(),
        Some(toml::Value::Float(x)) => format_real(*x),
        Some(value) => value.to_string(),
    }
}

/// A real number without a spurious fraction or float noise: 2, 2.5, 0.0003.
fn format_real(x: f64) -> String {
    let text = format!("{x}");
    // f32 settings (crop_min) arrive widened: 0.08 as 0.07999999821186066.
    let short = format!("{}", x as f32);
    if short.len() < text.len() && (short.parse::<f64>().unwrap_or(f64::NAN) as f32) == x as f32 {
        short
    } else {
        text
    }
}
