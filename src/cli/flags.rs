//! The training flags that `clamp train`, `clamp view` and `clamp record` share, each one the
//! override of one configuration key, and what `--help` says about them.

use std::path::PathBuf;

use crate::backend::BackendChoice;
use crate::config::{LossKind, TrainConfig};
use crate::limits::ConfigError;
use crate::model::EncoderKind;

/// Flags that override the training configuration (the `--config` file's, or the command's
/// defaults). Their `--help` lines end with the command's default and the allowed range.
#[derive(clap::Args, Debug, Clone, Default, PartialEq)]
pub struct TrainingFlags {
    /// A TOML file of training keys (the flags' names, with `_`); `view` and `record` also
    /// read the [view] and [lesson] tables of the lessons in assets/lessons/.
    #[arg(long, value_name = "FILE.toml")]
    pub config: Option<PathBuf>,
    /// `fashion-mnist` (looked for in --data, CLAMP_DATA, the Debian package, then the bundled
    /// test split), `toy`, or a directory (IDX, CIFAR binary, or one folder per class).
    #[arg(long, value_name = "NAME|DIR")]
    pub dataset: Option<String>,
    /// A directory holding the data set (the same as --dataset DIR).
    #[arg(long, value_name = "DIR")]
    pub data: Option<String>,
    /// Where training runs: `auto` picks WGPU on a hardware GPU and the CPU backend beside a
    /// software rasterizer.
    #[arg(long, value_enum)]
    pub backend: Option<BackendChoice>,
    /// Optimisation steps.
    #[arg(long, value_name = "N")]
    pub steps: Option<usize>,
    /// Images per step.
    #[arg(long, value_name = "B")]
    pub batch: Option<usize>,
    /// Augmented views m of each image: the points whose spread is its sphere.
    #[arg(long, value_name = "M")]
    pub views: Option<usize>,
    /// Embedding dimension d.
    #[arg(long, value_name = "D")]
    pub dim: Option<usize>,
    /// Exponent alpha of the pair energy (1 - d/(r_i + r_j))^alpha: 2 harmonic, 2.5 Hertzian.
    #[arg(long, value_name = "A")]
    pub alpha: Option<f64>,
    /// Radius scale r_s: a sphere's radius is r_s times the RMS spread of its views.
    #[arg(long, value_name = "RS")]
    pub radius_scale: Option<f64>,
    /// Base learning rate for a batch of 256 (scaled by batch / 256).
    #[arg(long, value_name = "LR")]
    pub lr: Option<f64>,
    /// Weight decay.
    #[arg(long, value_name = "WD")]
    pub weight_decay: Option<f64>,
    /// Seed of the weights, the batches and the augmentations.
    #[arg(long, value_name = "S")]
    pub seed: Option<u64>,
    /// The objective: CLAMP's packing loss, or SimCLR's NT-Xent for comparison.
    #[arg(long, value_enum)]
    pub loss: Option<LossKind>,
    /// The encoder: the small CNN (`clamp train`'s), a CIFAR-style ResNet-18, or an MLP on the
    /// pixels (the viewer's: a step costs a few matrix products).
    #[arg(long, value_enum)]
    pub encoder: Option<EncoderKind>,
    /// Channels of the encoder's first stage (hidden units of the MLP).
    #[arg(long, value_name = "W")]
    pub width: Option<usize>,
    /// Smallest area fraction a random crop keeps.
    #[arg(long, value_name = "S")]
    pub crop_min: Option<f32>,
    /// Probability of a 3x3 Gaussian blur per view.
    #[arg(long, value_name = "P")]
    pub blur_prob: Option<f32>,
}

impl TrainingFlags {
    /// `config` with every flag given put in its place (not yet validated).
    pub fn apply(&self, mut config: TrainConfig) -> TrainConfig {
        set(&mut config.dataset, &self.dataset);
        set(&mut config.dataset, &self.data);
        set(&mut config.backend, &self.backend);
        set(&mut config.steps, &self.steps);
        set(&mut config.batch, &self.batch);
        set(&mut config.views, &self.views);
        set(&mut config.dim, &self.dim);
        set(&mut config.alpha, &self.alpha);
        set(&mut config.radius_scale, &self.radius_scale);
        set(&mut config.lr, &self.lr);
        set(&mut config.weight_decay, &self.weight_decay);
        set(&mut config.seed, &self.seed);
        set(&mut config.loss, &self.loss);
        set(&mut config.encoder, &self.encoder);
        set(&mut config.width, &self.width);
        set(&mut config.crop_min, &self.crop_min);
        set(&mut config.blur_prob, &self.blur_prob);
        config
    }
}

/// Puts a flag's value in its configuration field when the flag was given.
pub fn set<T: Clone>(field: &mut T, flag: &Option<T>) {
    if let Some(value) = flag {
        *field = value.clone();
    }
}

/// The flag that sets a configuration key.
pub fn flag_for_key(key: &str) -> String {
    match key {
        "snapshot_images" => "spheres".to_string(),
        key => key.replace('_', "-"),
    }
}

/// The configuration key a flag sets, where the flag's name is not the key's.
fn key_for_flag(id: &str) -> Option<&str> {
    match id {
        "spheres" => Some("snapshot_images"),
        // --data is another way to give --dataset; --no-log is log_energy = false.
        "data" | "no_log" => None,
        id => Some(id),
    }
}

/// A range error as the command line says it: `--views = 1 is out of range: allowed 2 to 64`.
pub fn flag_error(error: &ConfigError) -> String {
    format!(
        "--{} = {} is out of range: allowed {}",
        flag_for_key(&error.key),
        error.value,
        error.allowed
    )
}

/// `config`, validated, with a range error named by its flag.
pub fn validated(config: TrainConfig) -> Result<TrainConfig, String> {
    config.validate().map_err(|e| flag_error(&e))?;
    Ok(config)
}

/// Ends the help of every flag that sets a configuration key with the command's default for
/// that key and its allowed range, both read from the configuration itself.
pub fn annotate(command: clap::Command, defaults: &TrainConfig) -> clap::Command {
    let table = toml::Table::try_from(defaults).unwrap_or_default();
    command.mut_args(|arg| {
        let Some(key) = key_for_flag(arg.get_id().as_str()) else {
            return arg;
        };
        let mut notes = Vec::new();
        match table.get(key) {
            Some(toml::Value::String(text)) => notes.push(format!("default: {text}")),
            // An f32 key (crop_min = 0.3) shows the decimal it was written as.
            Some(toml::Value::Float(x)) if (*x as f32) as f64 == *x => {
                notes.push(format!("default: {}", *x as f32))
            }
            Some(toml::Value::Float(x)) => notes.push(format!("default: {x}")),
            Some(value) => notes.push(format!("default: {value}")),
            None => {}
        }
        if let Some(allowed) = crate::config::allowed(key) {
            notes.push(format!("allowed: {allowed}"));
        }
        if notes.is_empty() {
            return arg;
        }
        let notes = format!(" [{}]", notes.join("; "));
        let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
        let long = arg.get_long_help().map(|h| h.to_string());
        let arg = arg.help(format!("{help}{notes}"));
        match long {
            Some(long) => arg.long_help(format!("{long}{notes}")),
            None => arg,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `clamp COMMAND --help`, as it prints.
    fn long_help(command: &str) -> String {
        crate::cli::command()
            .find_subcommand_mut(command)
            .unwrap()
            .render_long_help()
            .to_string()
    }

    #[test]
    fn help_shows_each_commands_default_and_range_from_the_config() {
        let help = long_help("train");
        let defaults = TrainConfig::default();
        assert!(
            help.contains(&format!("[default: {}; allowed: 2 to 64]", defaults.views)),
            "{help}"
        );
        assert!(help.contains(&format!(
            "[default: {}; allowed: 0.001 to 1000]",
            defaults.radius_scale
        )));
        assert!(help.contains("[default: fashion-mnist]"), "{help}");
        #[cfg(feature = "viewer")]
        {
            let help = long_help("view");
            let watching = TrainConfig::viewer_default();
            assert_ne!(watching.views, defaults.views);
            assert!(help.contains(&format!("[default: {}; allowed: 2 to 64]", watching.views)));
            assert!(help.contains(&format!(
                "[default: {}; allowed: 2 to 100000]",
                watching.snapshot_images
            )));
        }
    }

    #[test]
    fn the_encoder_flag_sets_the_encoder_and_shows_each_commands_default() {
        use clap::FromArgMatches;
        let parse = |line: &[&str]| {
            let matches = crate::cli::command().try_get_matches_from(line).unwrap();
            crate::cli::Cli::from_arg_matches(&matches).unwrap()
        };
        let cli = parse(&["clamp", "train", "--encoder", "mlp", "--width", "64"]);
        let Some(crate::cli::Command::Train(args)) = cli.command else {
            panic!("clamp train");
        };
        let config = args.training.apply(TrainConfig::default());
        assert_eq!(TrainConfig::default().encoder, EncoderKind::SmallCnn);
        assert_eq!((config.encoder, config.width), (EncoderKind::Mlp, 64));
        assert!(
            crate::cli::command()
                .try_get_matches_from(["clamp", "train", "--encoder", "vgg"])
                .is_err()
        );
        let help = long_help("train");
        assert!(help.contains("[default: small-cnn]"), "{help}");
        #[cfg(feature = "viewer")]
        {
            let help = long_help("view");
            assert!(help.contains("[default: mlp]"), "{help}");
            let cli = parse(&["clamp", "view", "--encoder", "small-cnn", "--width", "16"]);
            let Some(crate::cli::Command::View(args)) = cli.command else {
                panic!("clamp view");
            };
            let config = args.training.apply(TrainConfig::viewer_default());
            assert_eq!(config.encoder, EncoderKind::SmallCnn);
        }
    }

    #[test]
    fn every_flag_of_every_command_has_a_help_sentence() {
        for command in crate::cli::command().get_subcommands() {
            for arg in command.get_arguments() {
                let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
                let generated = ["help", "version"].contains(&arg.get_id().as_str());
                assert!(
                    generated || help.len() > 10,
                    "clamp {} --{}: no help sentence",
                    command.get_name(),
                    arg.get_id()
                );
            }
        }
    }
}
