//! A run's history of training snapshots, kept in bounded memory, and the scrubber that replays
//! it. Each entry keeps what cannot be recomputed (step, centers, radii); contacts and touching
//! pairs are recomputed with the read-out's rule when an entry is shown. While the cursor (on
//! the first run's timeline) is on an entry, the runs plugin stops feeding live frames to the
//! scenes and every run shows its entry at that step; back at the live end, training resumes
//! from where it stopped.

use std::collections::VecDeque;
use std::sync::Arc;

use super::scene::SceneFrame;
use crate::readout::contact_pairs;

/// Memory the stored snapshots may take: at 16 bytes a sphere (three coordinates and a radius),
/// about 640 snapshots of the default 200 spheres (two and a half minutes at four a second),
/// 128 of 1,000. When it is full every other snapshot is dropped, so the timeline always
/// reaches back to the run's first picture, at coarser spacing, and memory stays bounded (a
/// scrubber a few hundred pixels wide shows no finer steps).
pub const TIMELINE_BYTES: usize = 2 << 20;
/// Fewest snapshots kept, whatever their size.
pub const TIMELINE_MIN_ENTRIES: usize = 100;

/// One stored snapshot.
#[derive(Clone, Debug, PartialEq)]
pub struct TimelineEntry {
    pub step: usize,
    pub centers: Vec<f32>,
    pub radii: Vec<f32>,
}

/// Snapshots of a run, oldest first, and where the scrubber stands.
#[derive(Default)]
pub struct Timeline {
    entries: VecDeque<TimelineEntry>,
    dim: usize,
    /// Constant over a run: shared by every replayed frame.
    labels: Arc<Vec<u16>>,
    images: Arc<Vec<usize>>,
    /// `None`: following training live; `Some(k)`: showing entry `k`.
    cursor: Option<usize>,
    /// Playing the history forward, up to the live end.
    pub replaying: bool,
    /// Entries a second the replay moves on (0: one a frame).
    pub replay_speed: f32,
    /// The part of an entry the replay has moved on since its last step.
    replay_owed: f32,
    /// Memory budget in bytes (0: [`TIMELINE_BYTES`]).
    budget: usize,
}

impl Timeline {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// A timeline that keeps at most `bytes` of snapshots.
    pub fn with_budget(bytes: usize) -> Self {
        Self {
            budget: bytes,
            ..Self::default()
        }
    }

    /// Most entries of this run's size kept in the budget ([`TIMELINE_BYTES`]).
    pub fn capacity(&self) -> usize {
        let per_entry = self
            .entries
            .front()
            .map_or(1, |e| 4 * (e.centers.len() + e.radii.len()) + 64);
        let budget = if self.budget == 0 {
            TIMELINE_BYTES
        } else {
            self.budget
        };
        (budget / per_entry).max(TIMELINE_MIN_ENTRIES)
    }

    pub fn entry(&self, k: usize) -> Option<&TimelineEntry> {
        self.entries.get(k)
    }

    pub fn cursor(&self) -> Option<usize> {
        self.cursor
    }

    pub fn is_live(&self) -> bool {
        self.cursor.is_none()
    }

    /// Stores a live frame. A frame of another shape (a restart) starts a new history.
    pub fn record(&mut self, frame: &SceneFrame) {
        let same_run = self.dim == frame.dim
            && self.labels.as_slice() == frame.labels.as_slice()
            && self.images.as_slice() == frame.images.as_slice();
        if !same_run {
            self.clear();
            self.dim = frame.dim;
            self.labels = Arc::new(frame.labels.clone());
            self.images = Arc::new(frame.images.clone());
        }
        // A reset starts the steps again: the history before it belongs to another run.
        if self.entries.back().is_some_and(|e| e.step > frame.step) {
            self.clear();
        }
        if self.entries.back().is_some_and(|e| e.step == frame.step) {
            // The same step again (a changed r_s while paused): keep the newest radii.
            self.entries.pop_back();
        }
        self.entries.push_back(TimelineEntry {
            step: frame.step,
            centers: frame.centers.clone(),
            radii: frame.radii.clone(),
        });
        if self.entries.len() > self.capacity() {
            self.thin();
        }
    }

    /// Drops every other entry, keeping the newest, and moves the cursor to the kept entry at
    /// or after the one it was on.
    fn thin(&mut self) {
        let newest = self.entries.len() - 1;
        let first_kept = newest % 2;
        if let Some(k) = self.cursor.as_mut() {
            let on_kept = (*k).max(first_kept) + ((*k).max(first_kept) - first_kept) % 2;
            *k = (on_kept.min(newest) - first_kept) / 2;
        }
        self.entries = std::mem::take(&mut self.entries)
            .into_iter()
            .enumerate()
            .filter(|(k, _)| (newest - k).is_multiple_of(2))
            .map(|(_, entry)| entry)
            .collect();
    }

    pub fn clear(&mut self) {
        self.entries.clear();
        self.cursor = None;
        self.replaying = false;
    }

    /// Shows entry `k` (clamped to the history).
    pub fn scrub_to(&mut self, k: usize) {
        if self.entries.is_empty() {
            return;
        }
        let k = k.min(self.entries.len() - 1);
        self.cursor = Some(k);
    }

    /// Back to following training.
    pub fn go_live(&mut self) {
        self.cursor = None;
        self.replaying = false;
    }

    /// Step shown by the cursor, if it is on an entry.
    pub fn cursor_step(&self) -> Option<usize> {
        self.cursor
            .and_then(|k| self.entries.get(k))
            .map(|e| e.step)
    }

    /// The entry that shows `step`: the last one at or before it (the first one when all are
    /// later). None when empty.
    pub fn entry_at_step(&self, step: usize) -> Option<usize> {
        if self.entries.is_empty() {
            return None;
        }
        let after = self.entries.partition_point(|e| e.step <= step);
        Some(after.saturating_sub(1))
    }

    /// The frame of entry `k`, contacts and pairs recomputed.
    pub fn frame(&self, k: usize) -> Option<SceneFrame> {
        let entry = self.entries.get(k)?;
        let pairs = contact_pairs(&entry.centers, &entry.radii, self.dim);
        let mut contacts = vec![0u32; entry.radii.len()];
        for &[i, j] in &pairs {
            contacts[i as usize] += 1;
            contacts[j as usize] += 1;
        }
        Some(SceneFrame {
            step: entry.step,
            dim: self.dim,
            centers: entry.centers.clone(),
            radii: entry.radii.clone(),
            labels: self.labels.as_ref().clone(),
            contacts,
            pairs,
            images: self.images.as_ref().clone(),
            unit_sphere: true,
        })
    }

    /// Advances a replay by `seconds` of play: one entry a frame, or [`Timeline::replay_speed`]
    /// entries a second; at the end of the history it stops there.
    pub fn advance_replay(&mut self, seconds: f32) {
        if !self.replaying {
            self.replay_owed = 0.0;
            return;
        }
        let entries = if self.replay_speed > 0.0 {
            self.replay_owed += self.replay_speed * seconds.max(0.0);
            let whole = self.replay_owed.floor();
            self.replay_owed -= whole;
            whole as usize
        } else {
            1
        };
        match self.cursor {
            Some(k) if k + 1 < self.entries.len() => self.scrub_to(k + entries),
            _ => self.replaying = false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(step: usize) -> SceneFrame {
        SceneFrame {
            step,
            dim: 3,
            centers: vec![step as f32; 3 * 10],
            radii: vec![0.1; 10],
            labels: vec![0; 10],
            images: (0..10).collect(),
            ..SceneFrame::default()
        }
    }

    #[test]
    fn the_entry_at_a_step_is_the_last_one_not_after_it() {
        let mut timeline = Timeline::default();
        assert_eq!(timeline.entry_at_step(5), None);
        for step in [3, 6, 9] {
            timeline.record(&frame(step));
        }
        let at = |step| timeline.entry_at_step(step);
        assert_eq!(
            [at(0), at(3), at(5), at(6), at(8), at(9), at(100)],
            [
                Some(0),
                Some(0),
                Some(0),
                Some(1),
                Some(1),
                Some(2),
                Some(2)
            ]
        );
    }

    #[test]
    fn a_full_timeline_keeps_every_other_snapshot_back_to_the_first() {
        // Ten spheres: 4 * 40 + 64 = 224 bytes an entry; room for 100 (the least kept).
        let mut timeline = Timeline::with_budget(1);
        assert_eq!(timeline.capacity(), TIMELINE_MIN_ENTRIES);
        for step in 0..=100 {
            timeline.record(&frame(step));
        }
        // The 101st entry overflowed: 0, 2, ..., 100 remain, the first and the newest included.
        assert_eq!(timeline.len(), 51);
        let steps: Vec<usize> = (0..timeline.len())
            .map(|k| timeline.entry(k).unwrap().step)
            .collect();
        assert_eq!(steps, (0..=100).step_by(2).collect::<Vec<_>>());
        // Memory stays bounded however long the run.
        for step in 101..2_000 {
            timeline.record(&frame(step));
        }
        assert!(timeline.len() <= TIMELINE_MIN_ENTRIES);
        assert_eq!(
            timeline.entry(0).unwrap().step,
            0,
            "still reaches back to the start"
        );
        assert_eq!(timeline.entry(timeline.len() - 1).unwrap().step, 1_999);
    }

    #[test]
    fn a_replay_moves_at_its_speed_and_stops_at_the_end() {
        let mut timeline = Timeline::default();
        for step in 0..10 {
            timeline.record(&frame(step));
        }
        timeline.scrub_to(0);
        timeline.replaying = true;
        // One entry a frame by default.
        timeline.advance_replay(0.5);
        assert_eq!(timeline.cursor(), Some(1));
        // Four a second: a quarter second is one, an eighth none, the next eighth one more.
        timeline.replay_speed = 4.0;
        timeline.advance_replay(0.25);
        assert_eq!(timeline.cursor(), Some(2));
        timeline.advance_replay(0.125);
        assert_eq!(timeline.cursor(), Some(2));
        timeline.advance_replay(0.125);
        assert_eq!(timeline.cursor(), Some(3));
        timeline.advance_replay(100.0);
        assert_eq!(timeline.cursor(), Some(9), "clamped to the last entry");
        timeline.advance_replay(1.0);
        assert!(!timeline.replaying, "stops at the end");
        assert_eq!(timeline.cursor(), Some(9));
    }

    #[test]
    fn thinning_keeps_the_cursor_on_the_same_moment() {
        let mut timeline = Timeline::with_budget(1);
        for step in 0..100 {
            timeline.record(&frame(step));
        }
        timeline.scrub_to(41);
        timeline.record(&frame(100));
        // Entry 41 (step 41) was dropped: the cursor moves to the next kept one, step 42.
        assert_eq!(timeline.cursor_step(), Some(42));
    }
}
