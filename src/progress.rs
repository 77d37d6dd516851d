//! A progress bar on stderr: position, rate, ETA and a message, redrawn at most 10 times a
//! second; plain lines instead when stderr is not a terminal (logs, CI).

use std::io::{IsTerminal, Write};
use std::time::Duration;

use web_time::Instant;

pub struct Progress {
    label: String,
    total: usize,
    position: usize,
    message: String,
    started: Instant,
    last_draw: Option<Instant>,
    interactive: bool,
}

impl Progress {
    pub fn new(label: &str, total: usize) -> Self {
        Self {
            label: label.into(),
            total: total.max(1),
            position: 0,
            message: String::new(),
            started: Instant::now(),
            last_draw: None,
            interactive: std::io::stderr().is_terminal(),
        }
    }

    pub fn set_message(&mut self, message: &str) {
        self.message = message.into();
        self.draw(false);
    }

    pub fn set(&mut self, position: usize) {
        self.position = position.min(self.total);
        self.draw(false);
    }

    /// Prints a line above the bar.
    pub fn note(&mut self, line: &str) {
        if self.interactive {
            eprint!("\r\x1b[2K");
        }
        eprintln!("{line}");
        self.draw(true);
    }

    pub fn finish(&mut self) {
        self.draw(true);
        if self.interactive {
            eprintln!();
        }
    }

    fn draw(&mut self, force: bool) {
        // Non-interactive output gets a line every 10 s (or at the end) instead of redraws.
        let gap = if self.interactive {
            Duration::from_millis(100)
        } else {
            Duration::from_secs(10)
        };
        let at_end = self.position == self.total;
        if !force && !at_end && self.last_draw.is_some_and(|t| t.elapsed() < gap) {
            return;
        }
        self.last_draw = Some(Instant::now());
        let elapsed = self.started.elapsed().as_secs_f64();
        let eta = if self.position > 0 {
            elapsed / self.position as f64 * (self.total - self.position) as f64
        } else {
            f64::NAN
        };
        let width = 24;
        let filled = width * self.position / self.total;
        let bar: String = "#".repeat(filled) + &"-".repeat(width - filled);
        let line = format!(
            "{} [{bar}] {}/{} {} elapsed {} ETA {}",
            self.label,
            self.position,
            self.total,
            self.message,
            clock(elapsed),
            clock(eta)
        );
        if self.interactive {
            eprint!("\r\x1b[2K{line}");
            let _ = std::io::stderr().flush();
        } else {
            eprintln!("{line}");
        }
    }
}

fn clock(seconds: f64) -> String {
    if !seconds.is_finite() {
        return "--:--".into();
    }
    let s = seconds.round() as u64;
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{:02}:{:02}", s / 60, s % 60)
    }
}

/// Seconds since 1970: the default names of runs, screenshots and presets.
pub fn unix_time() -> u64 {
    // (web-time's clock is std's, except in a browser, where std's has none.)
    web_time::SystemTime::now()
        .duration_since(web_time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
