//! The `clamp` command line. Each subcommand parses its flags, runs one piece of the core, and
//! reports problems as one line on stderr with exit code 2.

pub mod args;
pub mod jam;
pub mod progress;
pub mod signals;
pub mod train;
#[cfg(feature = "viewer")]
pub mod view;

use std::path::PathBuf;

use args::{Args, FlagSpec};

use crate::analyze::analyze_embeddings;
use crate::loss::PackingParams;
use crate::npy::read_npy;

const USAGE: &str = "\
clamp: Contrastive Learning As Manifold Packing

usage:
  clamp analyze --embeddings FILE.npy [--alpha A] [--radius-scale RS] [--no-log]
      packing read-out (JSON) of a [m, B, d] float32/float64 array of m views of B images

  clamp train [--config FILE.toml] [--dataset NAME|DIR] [--backend auto|wgpu|cpu]
              [--steps N | --epochs E] [--batch B] [--views M] [--dim D] [--alpha A]
              [--radius-scale RS] [--lr LR] [--weight-decay WD] [--seed S] [--out DIR]
              [--loss clamp|simclr] [--optimizer adam|lars] [--encoder small-cnn|resnet18|mlp]
              [--width W] [--eval-every N] [--probe-train-images N] [--temperature T]
              [--crop-min S] [--blur-prob P] [--warmup-steps N] [--data DIR] [--no-log]
              [--checkpoint-every STEPS]
      train with a progress bar; metrics.jsonl and checkpoints in DIR (every 5 minutes, on
      Ctrl-C, at the end); summary JSON on stdout
  clamp train --resume DIR [--steps N] [--backend auto|wgpu|cpu] [--checkpoint-every STEPS]
      continue the run in DIR from its newest whole checkpoint, as if never interrupted
  clamp eval --checkpoint DIR [--data DIR] [--backend auto|wgpu|cpu]
      frozen-backbone linear probe and kNN on the test split, beside a raw-pixel kNN baseline
  clamp embed --checkpoint DIR --out FILE.npy [--views M] [--images N] [--split test|train]
              [--data DIR] [--backend auto|wgpu|cpu]
      projector outputs of the first N images (default 1,000) in M augmented views (default:
      the run's), as the float32 [M, N, d] array that `clamp analyze` reads

  clamp view [--config FILE.toml] [training flags] [--spheres N] [--teaching] [--physics] [--paused]
             [--frames N | --seconds S] [--screenshot FILE.png] [--stats] [--size WxH]
             [--train-threads T]
             [--render-scale S] [--fixed-resolution] [--train-priority background|shared|normal]
      the live viewer (also what `clamp` with no command opens): training drawn as soft spheres
  clamp record [--config FILE.toml] [training flags] [--start-step S] [--frames N]
               [--steps-per-frame K]
               [--fps F] [--size WxH] [--orbit DEG_PER_SECOND] [--out FILE.mp4|FILE.gif|DIR/]
      trains and renders offscreen (no window, no X server); PNG frames, GIF, or MP4 via ffmpeg

  clamp jam --dim 2|3 --n N [--bidisperse] [--alpha A] [--seed S] [--sphere] [--sweep] [--json]
      jamming point of N soft spheres with the CLAMP pair energy (O'Hern et al. protocol);
      --sweep adds energy and pressure against phi - phi_J above jamming

run `clamp help` for this text, `clamp COMMAND --help` for one command";

/// Exit code for bad input or usage.
pub const EXIT_BAD_INPUT: i32 = 2;

/// Runs the command line `words` (without the program name) and returns the exit code.
pub fn run(words: &[String]) -> i32 {
    let Some((command, rest)) = words.split_first() else {
        // `cargo run --release` with no command opens the viewer.
        #[cfg(feature = "viewer")]
        return run(&["view".to_string()]);
        #[cfg(not(feature = "viewer"))]
        {
            eprintln!("{USAGE}");
            return EXIT_BAD_INPUT;
        }
    };
    if rest.iter().any(|w| w == "--help" || w == "-h")
        && let Some(usage) = command_usage(command)
    {
        println!("{usage}");
        return 0;
    }
    let result = match command.as_str() {
        "analyze" => analyze(rest),
        "train" => match train::train(rest) {
            Ok(code) => return code,
            Err(message) => Err(message),
        },
        "jam" => jam::jam(rest),
        "eval" => train::eval(rest),
        "embed" => train::embed(rest),
        #[cfg(feature = "viewer")]
        "view" => view::view(rest),
        #[cfg(feature = "viewer")]
        "record" => view::record(rest),
        "help" | "--help" | "-h" => {
            println!("{USAGE}");
            Ok(())
        }
        other => Err(format!("unknown command '{other}'\n{USAGE}")),
    };
    match result {
        Ok(()) => 0,
        Err(message) => {
            eprintln!("clamp {command}: {message}");
            EXIT_BAD_INPUT
        }
    }
}

/// The part of the usage text about one command (`clamp train --help`).
pub fn command_usage(command: &str) -> Option<String> {
    let head = format!("  clamp {command} ");
    let mut inside = false;
    let lines: Vec<&str> = USAGE
        .lines()
        .filter(|line| {
            // Every block of this command (`clamp train` has two: a run, and --resume).
            inside = line.starts_with(&head)
                || (inside && !line.trim().is_empty() && !line.starts_with("  clamp "));
            inside
        })
        .map(str::trim_end)
        .collect();
    (!lines.is_empty()).then(|| lines.join("\n"))
}

fn analyze(words: &[String]) -> Result<(), String> {
    let spec = FlagSpec {
        shared_options: &[],
        options: &["embeddings", "alpha", "radius-scale"],
        switches: &["no-log"],
    };
    let args = Args::parse(words, &spec)?;
    let path: PathBuf = args
        .get("embeddings")?
        .ok_or("--embeddings FILE.npy is required")?;
    let defaults = PackingParams::default();
    let params = PackingParams {
        alpha: args.get("alpha")?.unwrap_or(defaults.alpha),
        radius_scale: args.get("radius-scale")?.unwrap_or(defaults.radius_scale),
        log_energy: !args.switch("no-log"),
    };
    params
        .validate()
        .map_err(|e| format!("--{}", e.replace('_', "-")))?;
    let array = read_npy(&path)?;
    let metrics =
        analyze_embeddings(&array, &params).map_err(|e| format!("{}: {e}", path.display()))?;
    println!(
        "{}",
        serde_json::to_string(&metrics).map_err(|e| e.to_string())?
    );
    Ok(())
}
