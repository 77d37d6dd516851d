//! A small command-line parser: `--name value` options and `--name` switches, with errors that
//! name the flag. Every subcommand declares the flags it accepts, so a typo is an error.

use std::collections::BTreeMap;
use std::str::FromStr;

/// The flags one subcommand accepts.
pub struct FlagSpec {
    /// Flags that take a value (`--steps 100`), declared once for several commands.
    pub shared_options: &'static [&'static str],
    /// Flags that take a value, this command's own.
    pub options: &'static [&'static str],
    /// Flags that stand alone (`--json`).
    pub switches: &'static [&'static str],
}

/// Parsed flags of one subcommand.
#[derive(Debug, Default)]
pub struct Args {
    values: BTreeMap<String, String>,
    switches: Vec<String>,
}

impl Args {
    pub fn parse(words: &[String], spec: &FlagSpec) -> Result<Self, String> {
        let mut args = Args::default();
        let mut words = words.iter();
        while let Some(word) = words.next() {
            let name = word
                .strip_prefix("--")
                .ok_or_else(|| format!("unexpected argument '{word}' (flags start with --)"))?;
            let (name, inline) = match name.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (name, None),
            };
            if spec.switches.contains(&name) {
                if inline.is_some() {
                    return Err(format!("--{name} takes no value"));
                }
                args.switches.push(name.to_string());
            } else if spec.options.contains(&name) || spec.shared_options.contains(&name) {
                let value = match inline {
                    Some(v) => v,
                    None => words
                        .next()
                        .cloned()
                        .ok_or_else(|| format!("--{name} needs a value"))?,
                };
                args.values.insert(name.to_string(), value);
            } else {
                let mut known: Vec<String> = spec
                    .shared_options
                    .iter()
                    .chain(spec.options)
                    .chain(spec.switches)
                    .map(|f| format!("--{f}"))
                    .collect();
                known.sort();
                return Err(format!(
                    "unknown flag --{name} (accepted: {})",
                    known.join(" ")
                ));
            }
        }
        Ok(args)
    }

    /// The value of `--name`, parsed; `None` when absent.
    pub fn get<T: FromStr>(&self, name: &str) -> Result<Option<T>, String>
    where
        T::Err: std::fmt::Display,
    {
        self.values
            .get(name)
            .map(|text| {
                text.parse::<T>()
                    .map_err(|e| format!("--{name}: cannot read '{text}': {e}"))
            })
            .transpose()
    }

    pub fn text(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// The names of the flags given, options and switches.
    pub fn given(&self) -> impl Iterator<Item = &str> {
        self.values
            .keys()
            .map(String::as_str)
            .chain(self.switches.iter().map(String::as_str))
    }

    pub fn switch(&self, name: &str) -> bool {
        self.switches.iter().any(|s| s == name)
    }
}
