//! The `clamp` command line. Every flag is defined once (clap's derive), with its help sentence;
//! the training flags are one struct shared by `train`, `view` and `record`, and `--help` adds
//! each one's default and allowed range read from the configuration itself. A problem is one
//! line on stderr and exit code 2.

pub mod flags;
pub mod jam;
pub mod signals;
pub mod train;
#[cfg(feature = "viewer")]
pub mod view;

use std::path::PathBuf;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{ArgAction, CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::analyze::analyze_embeddings;
use crate::loss::PackingParams;
use crate::npy::read_npy;

/// Exit code for bad input or usage.
pub const EXIT_BAD_INPUT: i32 = 2;

/// Contrastive Learning As Manifold Packing: train, watch, steer and record representation
/// learning as the packing of soft spheres.
#[derive(Parser, Debug)]
#[command(
    name = "clamp",
    version,
    after_help = "With no command, clamp opens the live viewer (clamp view)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Train with a progress bar: metrics.jsonl and checkpoints in --out (every five minutes,
    /// on Ctrl-C, at the end), the summary JSON on stdout.
    Train(train::TrainArgs),
    /// Linear probe and kNN of a checkpoint's frozen encoder on the test split, beside a
    /// raw-pixel kNN baseline.
    Eval(train::EvalArgs),
    /// Projector outputs of a checkpoint's images in augmented views: the float32 [M, N, d]
    /// .npy that `clamp analyze` reads.
    Embed(train::EmbedArgs),
    /// Packing read-out (JSON) of a [m, B, d] float32/float64 .npy of m views of B images.
    Analyze(AnalyzeArgs),
    /// The live viewer: training drawn as soft spheres, steered from the panel.
    #[cfg(feature = "viewer")]
    View(view::ViewArgs),
    /// Train and render offscreen (no window, no X server): PNG frames, a GIF, or an MP4 via
    /// ffmpeg.
    #[cfg(feature = "viewer")]
    Record(view::RecordArgs),
    /// The jamming point of N soft spheres with the CLAMP pair energy (O'Hern et al.
    /// protocol); --sweep adds energy and pressure against phi - phi_J above it.
    Jam(jam::JamArgs),
    /// Shell completions on stdout, e.g. `clamp completions bash >
    /// ~/.local/share/bash-completion/completions/clamp`.
    Completions {
        /// The shell to complete for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// `clamp analyze`.
#[derive(clap::Args, Debug)]
pub struct AnalyzeArgs {
    /// A [m, B, d] float32 or float64 .npy: m views of B images in d dimensions.
    #[arg(long, value_name = "FILE.npy")]
    pub embeddings: PathBuf,
    /// Exponent alpha of the pair energy (1 - d/(r_i + r_j))^alpha [default: 2].
    #[arg(long, value_name = "A")]
    pub alpha: Option<f64>,
    /// Radius scale r_s: a sphere's radius is r_s times the RMS spread of its views
    /// [default: 1].
    #[arg(long, value_name = "RS")]
    pub radius_scale: Option<f64>,
    /// Report the energy E itself instead of ln(E + 1e-6).
    #[arg(long)]
    pub no_log: bool,
}

/// The whole command line, with every command's settings applied: repeated flags override
/// (the last wins), values may be negative (so that a range error can name them), and the
/// training flags' help shows their defaults and ranges.
pub fn command() -> clap::Command {
    let command = Cli::command().mut_subcommands(|sub| {
        sub.args_override_self(true).mut_args(|arg| {
            if matches!(arg.get_action(), ArgAction::Set) {
                arg.allow_negative_numbers(true)
            } else {
                arg
            }
        })
    });
    let command = command.mut_subcommand("train", |train| {
        flags::annotate(train, &crate::config::TrainConfig::default())
    });
    #[cfg(feature = "viewer")]
    let command = {
        let watching = crate::config::TrainConfig::viewer_default();
        command
            .mut_subcommand("view", |view| flags::annotate(view, &watching))
            .mut_subcommand("record", |record| flags::annotate(record, &watching))
    };
    command
}

/// Runs the command line `words` (without the program name) and returns the exit code.
pub fn run(words: &[String]) -> i32 {
    let line = std::iter::once("clamp".to_string()).chain(words.iter().cloned());
    let parsed = command()
        .try_get_matches_from(line)
        .and_then(|matches| Ok((Cli::from_arg_matches(&matches)?, matches)));
    let (cli, matches) = match parsed {
        Ok(parsed) => parsed,
        Err(error) => return usage_error(&error, words),
    };
    let Some(chosen) = cli.command else {
        // `cargo run --release` with no command opens the viewer.
        #[cfg(feature = "viewer")]
        return run(&["view".to_string()]);
        #[cfg(not(feature = "viewer"))]
        {
            eprintln!("{}", command().render_help());
            return EXIT_BAD_INPUT;
        }
    };
    let given = given_flags(&matches);
    let name = matches.subcommand_name().unwrap_or_default().to_string();
    let result = match chosen {
        Command::Train(args) => match train::train(args, &given) {
            Ok(code) => return code,
            Err(message) => Err(message),
        },
        Command::Eval(args) => train::eval(args),
        Command::Embed(args) => train::embed(args),
        Command::Analyze(args) => analyze(args),
        #[cfg(feature = "viewer")]
        Command::View(args) => view::view(args),
        #[cfg(feature = "viewer")]
        Command::Record(args) => view::record(args),
        Command::Jam(args) => jam::jam(args),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut command(), "clamp", &mut std::io::stdout());
            Ok(())
        }
    };
    match result {
        Ok(()) => 0,
        Err(message) => {
            eprintln!("clamp {name}: {message}");
            EXIT_BAD_INPUT
        }
    }
}

/// The long names of the flags given on the command line (not defaults).
fn given_flags(matches: &clap::ArgMatches) -> Vec<String> {
    let Some((_, sub)) = matches.subcommand() else {
        return Vec::new();
    };
    sub.ids()
        .filter(|id| sub.value_source(id.as_str()) == Some(clap::parser::ValueSource::CommandLine))
        .map(|id| id.as_str().replace('_', "-"))
        .collect()
}

/// Help and version go to stdout with exit code 0; anything else is one line (two with a
/// hint) on stderr and exit code 2.
fn usage_error(error: &clap::Error, words: &[String]) -> i32 {
    if matches!(
        error.kind(),
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
    ) {
        print!("{}", error.render());
        return 0;
    }
    let context = |kind| match error.get(kind) {
        Some(ContextValue::String(text)) => Some(text.clone()),
        Some(ContextValue::Strings(texts)) => texts.first().cloned(),
        _ => None,
    };
    let message = match error.kind() {
        ErrorKind::UnknownArgument => {
            let flag = context(ContextKind::InvalidArg).unwrap_or_default();
            match context(ContextKind::SuggestedArg) {
                Some(similar) => format!("unknown flag {flag} (a similar flag exists: {similar})"),
                None => format!("unknown flag {flag} (see --help for the accepted ones)"),
            }
        }
        ErrorKind::InvalidSubcommand => {
            let name = context(ContextKind::InvalidSubcommand).unwrap_or_default();
            match context(ContextKind::SuggestedSubcommand) {
                Some(similar) => format!("unknown command '{name}' (did you mean '{similar}'?)"),
                None => format!("unknown command '{name}' (run clamp --help for the commands)"),
            }
        }
        _ => {
            // clap's own sentence, without its "error: " prefix and usage block.
            let text = error.render().to_string();
            let first = text.split("\n\n").next().unwrap_or_default();
            first
                .trim()
                .trim_start_matches("error: ")
                .replace('\n', " ")
        }
    };
    match words.first().filter(|word| !word.starts_with('-')) {
        Some(command) if error.kind() != ErrorKind::InvalidSubcommand => {
            eprintln!("clamp {command}: {message}")
        }
        _ => eprintln!("clamp: {message}"),
    }
    EXIT_BAD_INPUT
}

fn analyze(args: AnalyzeArgs) -> Result<(), String> {
    let defaults = PackingParams::default();
    let params = PackingParams {
        alpha: args.alpha.unwrap_or(defaults.alpha),
        radius_scale: args.radius_scale.unwrap_or(defaults.radius_scale),
        log_energy: !args.no_log,
    };
    params.validate().map_err(|e| flags::flag_error(&e))?;
    let path = &args.embeddings;
    let array = read_npy(path)?;
    let metrics =
        analyze_embeddings(&array, &params).map_err(|e| format!("{}: {e}", path.display()))?;
    println!(
        "{}",
        serde_json::to_string(&metrics).map_err(|e| e.to_string())?
    );
    Ok(())
}
