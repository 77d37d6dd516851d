//! The browser page's address: which of its two builds runs (WebGPU, or WebGL2 with training on
//! the CPU) and the run's settings (`?radius_scale=4&alpha=2.5&seed=3`). Plain Rust with no
//! browser in it, so the host's tests hold it: any address gives a configuration or an error
//! that names the key, never a panic.

use std::fmt;

use crate::backend::BackendChoice;
use crate::config::TrainConfig;

/// How a page trains and draws: one build each, chosen by the page's loader at load time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PagePath {
    /// WebGPU for drawing and training (a hardware adapter).
    Gpu,
    /// WebGL2 for drawing, burn's CPU backend (wasm32 + SIMD128) for training.
    Cpu,
}

impl PagePath {
    /// The path's name, as `?backend=` and `window.clampStats.path` spell it.
    pub fn name(self) -> &'static str {
        match self {
            PagePath::Gpu => "wgpu",
            PagePath::Cpu => "cpu",
        }
    }

    /// The backend the path trains on.
    pub fn backend(self) -> BackendChoice {
        match self {
            PagePath::Gpu => BackendChoice::Wgpu,
            PagePath::Cpu => BackendChoice::Cpu,
        }
    }

    /// The run a page opens on: the desktop viewer's (the pixel MLP, d = 3, r_s = 0.75, 200
    /// spheres) on this path's backend, with probes sized for a page.
    pub fn default_config(self) -> TrainConfig {
        TrainConfig {
            backend: self.backend(),
            // The page has one split (10,000 images): the probes fit on 4,000 of them and are
            // scored on 1,000 others, so a probe takes a second or two, not a frozen page.
            probe_train_images: 4_000,
            probe_test_images: 1_000,
            ..TrainConfig::viewer_default()
        }
    }
}

/// An address the page cannot open, naming the key at fault.
#[derive(Clone, Debug, PartialEq)]
pub struct AddressError {
    pub key: String,
    pub message: String,
}

impl fmt::Display for AddressError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the page's address, `{}`: {}", self.key, self.message)
    }
}

impl std::error::Error for AddressError {}

/// What the address asks for.
#[derive(Clone, Debug, PartialEq)]
pub struct PageAddress {
    pub config: TrainConfig,
    /// The CPU page trains in a worker (another core); `worker=false` keeps training on the
    /// page's own thread, between frames (to compare, or where workers are refused).
    pub worker: bool,
    /// Runs beside the first, one a `compare=` (`compare=alpha=2.5&compare=alpha=3`, settings
    /// as `--compare` takes them).
    pub compare: Option<crate::compare::Comparison>,
}

/// Keys a page takes that are not configuration keys.
const PAGE_KEYS: &[&str] = &["backend", "worker", "compare"];

/// Keys of a configuration file that mean nothing in a page.
const DESKTOP_ONLY: &[(&str, &str)] = &[
    (
        "dataset",
        "the page trains on the Fashion-MNIST test split it ships with; the desktop app \
         (`clamp view --dataset DIR`) reads other datasets",
    ),
    (
        "out",
        "a page writes no run directory; the desktop app does",
    ),
];

/// Reads `query` (the part of the address after `?`, with or without the `?`) for a page
/// running `path`. Every `key=value` is applied in order over the path's default run; a key
/// alone means `key=true`. `backend` must name this path (or `auto`): the loader opens the
/// other build for the other path, so a mismatch here is an address this build cannot run.
pub fn parse_address(query: &str, path: PagePath) -> Result<PageAddress, AddressError> {
    let mut config = path.default_config();
    let mut worker = true;
    let mut compare: Vec<String> = Vec::new();
    let query = query.strip_prefix('?').unwrap_or(query);
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (raw_key, raw_value) = pair.split_once('=').unwrap_or((pair, "true"));
        let key = decode_component(raw_key).map_err(|message| AddressError {
            key: raw_key.to_string(),
            message,
        })?;
        let error = |message: String| AddressError {
            key: key.clone(),
            message,
        };
        let value = decode_component(raw_value).map_err(error)?;
        if let Some((_, why)) = DESKTOP_ONLY.iter().find(|(k, _)| *k == key) {
            return Err(error((*why).to_string()));
        }
        if key == "backend" {
            match value.as_str() {
                "auto" => {}
                name if name == path.name() => {}
                "cpu" | "wgpu" => {
                    return Err(error(format!(
                        "this is the page's {} build, which cannot train with backend={value} \
                         (open the page's own address, whose loader picks the build for it)",
                        path.name()
                    )));
                }
                other => {
                    return Err(error(format!(
                        "`{other}` is not a backend: use cpu, wgpu or auto"
                    )));
                }
            }
            continue;
        }
        if key == "compare" {
            // (Checked against the whole run, once every setting is read.)
            compare.push(value);
            continue;
        }
        if key == "worker" {
            worker = match value.as_str() {
                "true" => true,
                "false" => false,
                other => return Err(error(format!("`{other}` is not true or false"))),
            };
            continue;
        }
        config = config
            .with_settings([(key.as_str(), value.as_str())])
            .map_err(|message| {
                // (The setting's own key is named in the prefix; TOML's message may repeat it.)
                let known = crate::config::KEYS.contains(&key.as_str());
                if known || PAGE_KEYS.contains(&key.as_str()) {
                    error(message)
                } else {
                    error(format!("not a setting of the page ({message})"))
                }
            })?;
    }
    config.backend = path.backend();
    let compare = (!compare.is_empty())
        .then(|| crate::compare::Comparison::from_specs(&config, &compare))
        .transpose()
        .map_err(|message| AddressError {
            key: "compare".into(),
            message,
        })?;
    Ok(PageAddress {
        config,
        worker,
        compare,
    })
}

/// Settings a link always carries, so that it reads as what it is (a teacher's r_s and alpha).
const ALWAYS_LINKED: &[&str] = &["alpha", "radius_scale", "seed"];

/// `?key=value&...` for `config`: the keys whose values differ from `path`'s default run and
/// those of [`ALWAYS_LINKED`], in the configuration's own order (what the page's "copy link"
/// button puts in the clipboard).
pub fn settings_query(config: &TrainConfig, path: PagePath) -> String {
    let ours = toml::Table::try_from(config).unwrap_or_default();
    let defaults = toml::Table::try_from(path.default_config()).unwrap_or_default();
    let mut pairs = Vec::new();
    for &key in crate::config::KEYS {
        let Some(value) = ours.get(key) else { continue };
        let unchanged = defaults.get(key) == Some(value) && !ALWAYS_LINKED.contains(&key);
        if key == "backend" || unchanged {
            continue;
        }
        let text = match value {
            toml::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        pairs.push(format!(
            "{}={}",
            encode_component(key),
            encode_component(&text)
        ));
    }
    if pairs.is_empty() {
        String::new()
    } else {
        format!("?{}", pairs.join("&"))
    }
}

/// Decodes one `application/x-www-form-urlencoded` component: `+` is a space, `%XX` a byte;
/// the bytes must be UTF-8.
pub fn decode_component(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut k = 0;
    while k < bytes.len() {
        match bytes[k] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(k + 1..k + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| {
                        format!("`%` at byte {k} is not followed by two hexadecimal digits")
                    })?;
                out.push(hex);
                k += 2;
            }
            byte => out.push(byte),
        }
        k += 1;
    }
    String::from_utf8(out).map_err(|_| "the escaped bytes are not UTF-8 text".to_string())
}

/// Encodes one component so that [`decode_component`] gives `text` back: unreserved
/// characters stay, everything else is `%XX`.
pub fn encode_component(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for &byte in text.as_bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}
