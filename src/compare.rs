//! Two runs side by side: the second run's configuration, which settings differ, and the
//! captions that name the difference ("alpha = 2 | alpha = 2.5").
//!
//! Both runs share what makes them comparable: the data, the seed (hence the initial weights
//! and the order of batches and views), the device and the output folder. They differ only in
//! the settings the user names.

use crate::config::{KEYS, TrainConfig};

/// Settings that both runs of a comparison share.
pub const SHARED_KEYS: &[&str] = &["dataset", "seed", "backend", "out"];

/// The two configurations of a comparison and the settings in which they differ.
#[derive(Clone, Debug, PartialEq)]
pub struct Comparison {
    pub configs: [TrainConfig; 2],
    /// The differing settings, in the configuration's order.
    pub keys: Vec<&'static str>,
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

impl Comparison {
    /// `base` against `base` with `spec`'s settings (`alpha=2.5,radius_scale=4`). Refused, with
    /// the key named: an unknown key, a value out of range, a shared setting, and a setting
    /// that leaves the second run equal to the first.
    pub fn from_spec(base: &TrainConfig, spec: &str) -> Result<Self, String> {
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
        Self::new(base.clone(), other)
    }

    /// `base` against another whole configuration (`--compare-config B.toml`): it may differ in
    /// anything but the shared settings.
    pub fn from_configs(base: &TrainConfig, other: &TrainConfig) -> Result<Self, String> {
        Self::new(base.clone(), other.clone())
    }

    fn new(first: TrainConfig, second: TrainConfig) -> Result<Self, String> {
        let keys = differing_keys(&first, &second);
        if let Some(shared) = keys.iter().find(|k| SHARED_KEYS.contains(k)) {
            refuse_shared(shared)?;
        }
        if keys.is_empty() {
            return Err("the two configurations are the same: nothing to compare".into());
        }
        Ok(Self {
            configs: [first, second],
            keys,
        })
    }

    /// What sets run `run` (0 or 1) apart: "alpha = 2.5, radius_scale = 4".
    pub fn caption(&self, run: usize) -> String {
        self.keys
            .iter()
            .map(|key| format!("{key} = {}", setting(&self.configs[run], key)))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The second run's settings as `--compare` takes them (`alpha=2.5,radius_scale=4`): the
    /// same comparison over another first run.
    pub fn spec(&self) -> String {
        self.keys
            .iter()
            .map(|key| format!("{key}={}", setting(&self.configs[1], key)))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Both captions: "alpha = 2 | alpha = 2.5".
    pub fn legend(&self) -> String {
        format!("{} | {}", self.caption(0), self.caption(1))
    }
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
