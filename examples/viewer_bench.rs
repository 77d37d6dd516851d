//! Frame rate of the viewer while it trains: runs `clamp view --frames N --stats` under a
//! virtual display for each sphere count and window size and prints one table row per run.
//!
//!     cargo build --release && cargo run --release --example viewer_bench [-- FRAMES]
//!
//! Needs xvfb-run and a Vulkan driver. The frames count from the first picture with spheres.

use std::process::Command;

fn main() {
    let frames: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(300);
    let exe = std::env::current_exe().expect("own path");
    let clamp = exe
        .parent()
        .and_then(|examples| examples.parent())
        .map(|release| release.join("clamp"))
        .expect("target/release/clamp");
    assert!(clamp.exists(), "build the app first: cargo build --release");
    println!(
        "| spheres | r_s | window | resolution | training priority | fps | mean frame ms | p99 frame ms | mean render scale | training steps during run |"
    );
    println!("| ---: | ---: | ---: | --- | --- | ---: | ---: | ---: | ---: | ---: |");
    // r_s = 0.5 is the viewer's default: a jammed start where every sphere overlaps dozens of
    // others; r_s = 1 is twice as jammed (the worst case for a renderer that shades every
    // shell). "adaptive" is the default on a software adapter (the picture's resolution drops,
    // down to half the render scale, to hold 30 fps); "fixed" keeps the render scale, 0.5.
    let scale = "0.5";
    // "background" (the default) trains only on cycles the renderer leaves; "shared" is nice 5.
    for (spheres, radius_scale, size, adaptive, priority) in [
        (1000, "0.5", "960x540", true, "background"),
        (1000, "0.5", "960x540", false, "background"),
        (1000, "0.5", "960x540", true, "shared"),
        (1000, "1", "960x540", true, "background"),
        (1000, "0.5", "1280x720", true, "background"),
        (1000, "0.5", "1280x720", false, "background"),
        (10000, "0.5", "960x540", true, "background"),
        (10000, "0.5", "960x540", false, "background"),
    ] {
        let mut command = Command::new("xvfb-run");
        command
            .args(["-a", "-s", "-screen 0 1920x1080x24"])
            .arg(&clamp)
            .args(["view", "--stats", "--frames", &frames.to_string()])
            .args([
                "--spheres",
                &spheres.to_string(),
                "--size",
                size,
                "--render-scale",
                scale,
            ])
            .args(["--radius-scale", radius_scale])
            .args(["--train-priority", priority]);
        if !adaptive {
            command.arg("--fixed-resolution");
        }
        let output = command.output().expect("xvfb-run is installed");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let Some(line) = stdout.lines().find(|l| l.starts_with('{')) else {
            eprintln!(
                "{spheres} spheres at {size}: no statistics\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
            continue;
        };
        let stats: serde_json::Value = serde_json::from_str(line).expect("JSON statistics");
        let number = |key: &str| stats[key].as_f64().unwrap_or(f64::NAN);
        println!(
            "| {spheres} | {radius_scale} | {size} | {} | {priority} | {:.1} | {:.1} | {:.1} | {:.2} | {} |",
            if adaptive { "adaptive" } else { "fixed" },
            number("fps"),
            number("mean_frame_ms"),
            number("p99_frame_ms"),
            number("mean_render_scale"),
            stats["train_step"]
        );
    }
}
