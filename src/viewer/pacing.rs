//! Dynamic resolution: holds a frame-rate target by drawing the spheres at fewer pixels when
//! frames run long, and at more again when there is time to spare. On a software rasterizer
//! the spheres cost per covered pixel, so the picture's resolution is the knob that moves the
//! frame rate most; the user's render scale is the ceiling, never exceeded.

use bevy::prelude::*;
use bevy::time::Real;

/// The lowest fraction of the chosen render scale that pacing goes down to.
pub const MIN_RESOLUTION: f32 = 0.5;
/// Seconds between adjustments (a resize reallocates the scene picture).
const ADJUST_EVERY: f32 = 0.5;

#[derive(Resource, Clone, Debug)]
pub struct FramePacing {
    /// Adjust the resolution to hold `target_fps` (off: always the chosen render scale).
    pub enabled: bool,
    pub target_fps: f32,
    /// Fraction of the chosen render scale drawn now, in `[MIN_RESOLUTION, 1]`.
    pub resolution: f32,
    /// Smoothed seconds per frame.
    pub frame_seconds: f32,
    since_adjust: f32,
}

impl FramePacing {
    pub fn new(enabled: bool) -> Self {
        Self {
            enabled,
            target_fps: 30.0,
            resolution: 1.0,
            frame_seconds: 0.0,
            since_adjust: 0.0,
        }
    }

    /// The resolution factor that applies now.
    pub fn factor(&self) -> f32 {
        if self.enabled { self.resolution } else { 1.0 }
    }
}

/// Frames are aimed at this share of the budget, so that the jitter of a busy machine (a
/// training step, the display server) stays inside the budget instead of dropping below the
/// target rate half of the time.
const AIM: f32 = 0.8;
/// Frames between these shares of the budget leave the resolution alone (no oscillation).
const HOLD: (f32, f32) = (0.7, 0.9);

/// One adjustment step. Frame time is roughly a fixed part plus a part proportional to the
/// drawn pixels (resolution squared), so a slow frame shrinks the resolution by the square root
/// of its excess over the aim, damped; a fast one grows it gently.
pub fn next_resolution(resolution: f32, frame_seconds: f32, target_fps: f32) -> f32 {
    if frame_seconds <= 0.0 || target_fps <= 0.0 {
        return resolution;
    }
    let budget = 1.0 / target_fps;
    let ratio = frame_seconds / budget;
    let next = if ratio > HOLD.1 {
        resolution * (AIM / ratio).sqrt().max(0.8)
    } else if ratio < HOLD.0 {
        resolution * 1.08
    } else {
        resolution
    };
    next.clamp(MIN_RESOLUTION, 1.0)
}

/// On a page without a GPU, drawing and training share two cores, and the pause after each
/// training step decides how they split them. The page aims at [`FRAMES_AIM`] frames/s while
/// training keeps at least [`STEPS_FLOOR`] steps/s; it pauses longer when frames are short of
/// the aim and shorter when they have room or training falls behind.
pub const FRAMES_AIM: f64 = 22.0;
pub const FRAMES_ROOM: f64 = 27.0;
pub const STEPS_FLOOR: f64 = 10.5;
/// The longest pause after a step, and the change per adjustment (once a second).
pub const MAX_STEP_DELAY_MS: u64 = 40;
const STEP_DELAY_CHANGE_MS: u64 = 3;

/// The next pause after each step, from the last second's frames and steps per second.
pub fn next_step_delay(delay_ms: u64, frames_per_sec: f64, steps_per_sec: f64) -> u64 {
    // No step this second: paused, or a probe runs; the pause says nothing about that.
    if steps_per_sec == 0.0 {
        return delay_ms;
    }
    if steps_per_sec < STEPS_FLOOR || frames_per_sec > FRAMES_ROOM {
        delay_ms.saturating_sub(STEP_DELAY_CHANGE_MS)
    } else if frames_per_sec < FRAMES_AIM {
        (delay_ms + STEP_DELAY_CHANGE_MS).min(MAX_STEP_DELAY_MS)
    } else {
        delay_ms
    }
}

pub struct PacingPlugin {
    pub enabled: bool,
}

impl Plugin for PacingPlugin {
    fn build(&self, app: &mut App) {
        app.insert_resource(FramePacing::new(self.enabled))
            .add_systems(First, measure_and_adjust);
    }
}

fn measure_and_adjust(time: Res<Time<Real>>, mut pacing: ResMut<FramePacing>) {
    let dt = time.delta_secs();
    if dt <= 0.0 {
        return;
    }
    // An exponential average over about ten frames.
    pacing.frame_seconds = if pacing.frame_seconds == 0.0 {
        dt
    } else {
        0.9 * pacing.frame_seconds + 0.1 * dt
    };
    pacing.since_adjust += dt;
    if pacing.since_adjust < ADJUST_EVERY || !pacing.enabled {
        return;
    }
    pacing.since_adjust = 0.0;
    let next = next_resolution(pacing.resolution, pacing.frame_seconds, pacing.target_fps);
    if next != pacing.resolution {
        pacing.resolution = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_frames_shrink_by_the_root_of_the_excess_over_the_aim() {
        // 30 fps target, frames of 1/25 s: 1.2 budgets, 1.5 times the aim of 0.8 budgets;
        // pixels scale with the square of the resolution, so the side shrinks by 1 / sqrt(1.5).
        let next = next_resolution(1.0, 1.0 / 25.0, 30.0);
        assert!((next - (1.0f32 / 1.5).sqrt()).abs() < 1e-6, "{next}");
        // Exactly on budget is already too slow: 1.25 times the aim.
        let next = next_resolution(0.7, 1.0 / 30.0, 30.0);
        assert!((next - 0.7 * 0.8f32.sqrt()).abs() < 1e-6, "{next}");
        // Much too slow: at most 20% per step, and never below the floor.
        assert_eq!(next_resolution(1.0, 1.0, 30.0), 0.8);
        assert_eq!(next_resolution(0.55, 1.0, 30.0), MIN_RESOLUTION);
    }

    #[test]
    fn training_pauses_longer_while_frames_are_short_and_never_starves() {
        // Frames short of the aim, training with steps to spare: pause 3 ms longer.
        assert_eq!(next_step_delay(10, 18.0, 14.0), 13);
        assert_eq!(next_step_delay(39, 18.0, 14.0), MAX_STEP_DELAY_MS);
        // Training at its floor wins over frames: pause less.
        assert_eq!(next_step_delay(10, 18.0, 10.0), 7);
        assert_eq!(next_step_delay(1, 18.0, 10.0), 0);
        // Frames with room to spare give training its time back; inside the band, hold.
        assert_eq!(next_step_delay(10, 30.0, 14.0), 7);
        assert_eq!(next_step_delay(10, 24.0, 14.0), 10);
        // A second without steps (paused, or a probe running) leaves the pause as it is.
        assert_eq!(next_step_delay(20, 18.0, 0.0), 20);
        assert_eq!(next_step_delay(20, 30.0, 0.0), 20);
    }

    #[test]
    fn fast_frames_grow_gently_and_frames_near_the_aim_hold() {
        assert!((next_resolution(0.5, 1.0 / 60.0, 30.0) - 0.54).abs() < 1e-6);
        assert_eq!(next_resolution(0.98, 1.0 / 60.0, 30.0), 1.0);
        // 0.8 and 0.75 budgets: inside the hold band.
        assert_eq!(next_resolution(0.7, 0.8 / 30.0, 30.0), 0.7);
        assert_eq!(next_resolution(0.7, 0.75 / 30.0, 30.0), 0.7);
        assert_eq!(next_resolution(0.7, 0.0, 30.0), 0.7);
    }
}
