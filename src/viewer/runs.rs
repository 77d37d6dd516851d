//! The viewer's unit: a run. A [`Run`] carries its trainer's link, what the trainer reported
//! (status, plot history), its live controls, its projected scene, its timeline of snapshots
//! and where it is shown (its [`RunView`]); [`Runs`] is the list of them, one alone or two to
//! four side by side ([`crate::compare::Comparison`]), none special. Every system here and every
//! panel iterates over the runs.
//!
//! Each frame [`RunsPlugin`]'s systems send every run's changed controls, hand the panel's
//! [`TrainingAction`]s to every run, fold each trainer's events into its status and history,
//! store its snapshots in its timeline, and give its scene the frame to show: the newest
//! snapshot while live, or the one at the step the timeline's cursor shows (the cursor moves
//! over the first run's snapshots; every run shows its own snapshot of that moment).
//! [`SceneUpdate`] then projects and eases every run's scene.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use bevy::prelude::*;

use super::follow::FollowLink;
use super::scene::{EaseInRealTime, Scene, SceneFrame, SceneSettings, SceneUpdate, ViewerMode};
use super::timeline::Timeline;
use super::training::{
    Controls, History, TrainingLink, TrainingStatus, absorb_events, frame_of, send_changes,
};
use crate::backend::{AdapterSummary, ResolvedBackend};
use crate::compare::Comparison;
use crate::config::TrainConfig;
use crate::projection::ProjectionMode;
use crate::train::TrainingData;
use crate::train::session::{Command, TrainingPriority};

pub use crate::compare::MAX_RUNS;

/// Memory a followed run's timeline may take.
pub const FOLLOWED_TIMELINE_BYTES: usize = 64 << 20;

/// Where a run is shown: its cell of the picture. The scene camera draws every run, each into
/// its cell ([`super::camera::view_cells`]).
#[derive(Clone, Debug, Default)]
pub struct RunView {
    /// Where the panel shows the cell, in logical window pixels.
    pub rect: Option<Rect>,
    /// The pointer is over the cell (or dragging from it).
    pub hovered: bool,
}

/// One run: its trainer (if it is trained here), what it reported, and its own picture.
pub struct Run {
    /// The trainer (None: a run drawn from the frames given to it, as the recorder's).
    pub link: Option<TrainingLink>,
    /// A run trained elsewhere, read from its folder as it trains (`--follow`).
    pub followed: Option<FollowLink>,
    pub status: TrainingStatus,
    pub history: History,
    /// Its live settings, as the sliders set them.
    pub controls: Controls,
    /// The controls as last sent, to send only what changed.
    sent: Option<Controls>,
    pub scene: Scene,
    pub timeline: Timeline,
    /// What sets it apart in a comparison ("alpha = 2.5"); empty alone.
    pub caption: String,
    pub view: RunView,
    /// The next frame its scene takes.
    pub incoming: Option<SceneFrame>,
    /// Its newest live frame, shown again back at the live end or back from the sandbox.
    last_frame: Option<SceneFrame>,
    /// The timeline step shown last (None: live).
    shown_step: Option<usize>,
}

impl Run {
    /// A run trained by `link`.
    pub fn trained(link: TrainingLink, caption: String) -> Self {
        let mut controls = Controls::from_config(&link.config);
        controls.running = !link.started_paused();
        controls.priority = link.priority;
        Self {
            link: Some(link),
            controls,
            caption,
            ..Self::drawn()
        }
    }

    /// A run trained elsewhere, read from `dir` as its trainer writes it. Its timeline keeps
    /// every picture up to 64 MB (a picture of 200 spheres in 128 dimensions is 100 KB).
    pub fn followed(dir: PathBuf, caption: String) -> Self {
        Self {
            followed: Some(FollowLink::start(dir)),
            caption,
            timeline: Timeline::with_budget(FOLLOWED_TIMELINE_BYTES),
            ..Self::drawn()
        }
    }

    /// A run with no trainer: its frames are given to it ([`Run::incoming`]).
    pub fn drawn() -> Self {
        Self {
            link: None,
            followed: None,
            status: TrainingStatus::default(),
            history: History::default(),
            controls: Controls::from_config(&TrainConfig::default()),
            sent: None,
            scene: Scene::default(),
            timeline: Timeline::default(),
            caption: String::new(),
            view: RunView::default(),
            incoming: None,
            last_frame: None,
            shown_step: None,
        }
    }

    /// Whether it has frames of its own coming (a trainer here, or a followed run).
    pub fn has_source(&self) -> bool {
        self.link.is_some() || self.followed.is_some()
    }

    /// The embedding's dimension.
    pub fn dim(&self) -> usize {
        if let Some(link) = &self.link {
            return link.config.dim;
        }
        match self.followed.as_ref().and_then(|f| f.header.as_ref()) {
            Some(header) => header.dim,
            None => self.scene.frame.dim,
        }
    }

    /// The class names of its held-out images (empty when unknown).
    pub fn class_names(&self) -> &[String] {
        if let Some(link) = &self.link {
            return &link.data.test.class_names;
        }
        self.followed
            .as_ref()
            .and_then(|f| f.header.as_ref())
            .map_or(&[], |h| h.classes.as_slice())
    }

    /// The class purity of a random arrangement (None: the classes are unknown).
    pub fn chance_purity(&self) -> Option<f64> {
        let classes = match &self.link {
            Some(link) => link.data.test.num_classes(),
            None => self.class_names().len().max(
                self.scene
                    .frame
                    .labels
                    .iter()
                    .map(|&l| l as usize + 1)
                    .max()
                    .unwrap_or(0),
            ),
        };
        (classes > 0).then(|| 1.0 / classes as f64)
    }

    /// The configuration it runs, with the sliders' live values.
    pub fn current_config(&self) -> Option<TrainConfig> {
        let mut config = self.link.as_ref()?.config.clone();
        config.alpha = self.controls.alpha;
        config.radius_scale = self.controls.radius_scale;
        config.lr = self.controls.lr;
        config.weight_decay = self.controls.weight_decay;
        Some(config)
    }

    fn send(&self, command: Command) {
        if let Some(link) = &self.link {
            link.send(command);
        }
    }

    /// Forgets what the run showed and reported (a reset or a restart).
    fn forget(&mut self) {
        self.history.clear();
        self.timeline.clear();
        self.last_frame = None;
    }
}

/// Which runs the packing sliders move.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SliderTarget {
    /// A slider moved sets that setting in every run; settings left alone keep their
    /// differences.
    #[default]
    All,
    /// Only this run.
    One(usize),
}

/// Every run the viewer shows, in order: the picture splits among them.
#[derive(Resource, Default)]
pub struct Runs {
    pub list: Vec<Run>,
    /// The comparison the runs make (None: a single run).
    pub comparison: Option<Comparison>,
    pub sliders: SliderTarget,
}

/// One-off requests from the panel, for every run.
#[derive(Message, Clone, Debug)]
pub enum TrainingAction {
    Step,
    Reset,
    Probe,
    /// Checkpoints into this run folder (a comparison's runs into `run-1`, `run-2`, ...
    /// inside it).
    SaveCheckpoint(PathBuf),
    /// Start over with a new configuration (views, batch, dimension, dataset, seed); in a
    /// comparison the other runs take it too, each with its own values of the compared
    /// settings.
    Restart(Box<TrainConfig>),
    /// Start the comparison's runs from fresh weights, the first with its first configuration.
    Compare(Box<Comparison>),
    /// Back to the first run alone.
    EndComparison,
}

impl Runs {
    /// One run trained by `link`.
    pub fn single(link: TrainingLink) -> Self {
        Self {
            list: vec![Run::trained(link, String::new())],
            ..Self::default()
        }
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The first run's link: the data, backend and options every run shares.
    pub fn first_link(&self) -> Option<&TrainingLink> {
        self.list.first().and_then(|run| run.link.as_ref())
    }

    /// Whether the runs are followed from their folders (nothing is trained here).
    pub fn following(&self) -> bool {
        self.list.first().is_some_and(|run| run.followed.is_some())
    }

    /// The step the timeline's cursor shows (None: live), on the first run's snapshots.
    pub fn cursor_step(&self) -> Option<usize> {
        self.list.first().and_then(|run| run.timeline.cursor_step())
    }

    pub fn is_live(&self) -> bool {
        self.list.first().is_none_or(|run| run.timeline.is_live())
    }

    /// Plays or pauses every run (they share one clock).
    pub fn set_running(&mut self, running: bool) {
        for run in &mut self.list {
            run.controls.running = running;
        }
    }

    /// Whether any run is playing.
    pub fn running(&self) -> bool {
        self.list.iter().any(|run| run.controls.running)
    }

    /// The controls the sliders show: those of the run they act on (the first for all).
    pub fn slider_controls(&self) -> Option<Controls> {
        let index = match self.sliders {
            SliderTarget::All => 0,
            SliderTarget::One(k) => k,
        };
        self.list
            .get(index)
            .or(self.list.first())
            .map(|run| run.controls.clone())
    }

    /// Applies the panel's edit of [`Runs::slider_controls`] (`before` to `after`): each
    /// setting that moved, to the runs the sliders act on; play, pause and the training
    /// priority to every run.
    pub fn apply_controls(&mut self, before: &Controls, after: &Controls) {
        let target = self.sliders;
        for (k, run) in self.list.iter_mut().enumerate() {
            let c = &mut run.controls;
            if after.running != before.running {
                c.running = after.running;
            }
            if after.priority != before.priority {
                c.priority = after.priority;
            }
            if !(target == SliderTarget::All || target == SliderTarget::One(k)) {
                continue;
            }
            if after.alpha != before.alpha {
                c.alpha = after.alpha;
            }
            if after.radius_scale != before.radius_scale {
                c.radius_scale = after.radius_scale;
            }
            if after.lr != before.lr {
                c.lr = after.lr;
            }
            if after.weight_decay != before.weight_decay {
                c.weight_decay = after.weight_decay;
            }
        }
    }

    /// The configuration of the runs as they stand (each with its live values): a comparison
    /// for several runs.
    pub fn current_comparison(&self) -> Option<Comparison> {
        let mut configs = self.list.iter().filter_map(Run::current_config);
        let first = configs.next()?;
        Comparison::of_runs(&first, configs.collect()).ok()
    }

    /// Starts `comparison`: the first run restarts with its first configuration, and a run
    /// beside it for each other one (on the same data, backend, device and options); runs
    /// beyond them end.
    pub fn start_comparison(&mut self, comparison: Comparison) -> Result<(), String> {
        let paused = !self.running();
        let first = self.list.first_mut().ok_or("no first run")?;
        let priority = first.controls.priority;
        let link = first
            .link
            .as_mut()
            .ok_or("the first run is not trained here")?;
        link.restart(comparison.configs[0].clone())?;
        let mut others = Vec::new();
        for (k, config) in comparison.configs.iter().enumerate().skip(1) {
            let mut run = Run::trained(link.start_beside(config, false)?, comparison.caption(k));
            run.controls.priority = priority;
            others.push(run);
        }
        first.forget();
        first.status = TrainingStatus::default();
        first.controls = Controls {
            running: true,
            priority,
            ..Controls::from_config(&comparison.configs[0])
        };
        first.sent = None;
        first.caption = comparison.caption(0);
        self.end_others();
        self.list.extend(others);
        self.comparison = Some(comparison);
        self.sliders = SliderTarget::All;
        if paused {
            self.set_running(false);
        }
        Ok(())
    }

    /// Ends every run but the first (their threads end on their own).
    pub fn end_comparison(&mut self) {
        self.end_others();
        self.comparison = None;
        self.sliders = SliderTarget::All;
        if let Some(first) = self.list.first_mut() {
            first.caption.clear();
        }
    }

    fn end_others(&mut self) {
        for run in self.list.drain(1.min(self.list.len())..) {
            if let Some(link) = run.link {
                link.stop_in_background();
            }
        }
    }

    /// Applies one of the panel's requests to every run.
    fn act(&mut self, action: &TrainingAction) {
        match action {
            TrainingAction::Step => {
                for run in &mut self.list {
                    run.controls.running = false;
                    run.sent = Some(run.controls.clone());
                    run.send(Command::Step);
                }
            }
            TrainingAction::Reset => {
                for run in &mut self.list {
                    run.send(Command::Reset);
                    run.forget();
                    run.status.notice = Some("reset to the initial weights (same seed)".into());
                }
            }
            TrainingAction::Probe => {
                for run in &mut self.list {
                    run.send(Command::Probe);
                    run.status.notice =
                        Some("probing the frozen encoder (kNN and linear)...".into());
                }
            }
            TrainingAction::SaveCheckpoint(dir) => {
                let several = self.list.len() > 1;
                for (k, run) in self.list.iter().enumerate() {
                    let dir = if several {
                        dir.join(format!("run-{}", k + 1))
                    } else {
                        dir.clone()
                    };
                    run.send(Command::SaveCheckpoint(dir));
                }
            }
            TrainingAction::Restart(config) => self.restart(config),
            TrainingAction::Compare(comparison) => {
                if let Err(e) = self.start_comparison((**comparison).clone())
                    && let Some(first) = self.list.first_mut()
                {
                    first.status.error = Some(format!("the comparison could not start: {e}"));
                }
            }
            TrainingAction::EndComparison => self.end_comparison(),
        }
    }

    /// Restarts every run with `config` (the first run's live values of the packing settings);
    /// in a comparison each other run keeps its own values of the compared settings.
    fn restart(&mut self, config: &TrainConfig) {
        let keys = self
            .comparison
            .as_ref()
            .map(|c| c.keys.clone())
            .unwrap_or_default();
        let mut first_config = None;
        for (k, run) in self.list.iter_mut().enumerate() {
            let Some(link) = run.link.as_mut() else {
                continue;
            };
            let mut wanted = config.clone();
            if k == 0 {
                wanted.alpha = run.controls.alpha;
                wanted.radius_scale = run.controls.radius_scale;
                wanted.lr = run.controls.lr;
                wanted.weight_decay = run.controls.weight_decay;
                first_config = Some(wanted.clone());
            } else {
                // The first run's new configuration with this run's own compared values.
                let base = first_config.clone().unwrap_or(wanted);
                let own: Vec<(&str, String)> = keys
                    .iter()
                    .map(|key| (*key, crate::compare::setting(&link.config, key)))
                    .collect();
                match base.with_settings(own.iter().map(|(k, v)| (*k, v.as_str()))) {
                    Ok(config) => wanted = config,
                    Err(e) => {
                        run.status.error = Some(format!("restart refused: {e}"));
                        continue;
                    }
                }
            }
            match link.restart(wanted) {
                Ok(()) => {
                    let notice = format!(
                        "restarted: m = {}, batch = {}, d = {}, data: {}",
                        link.config.views,
                        link.config.batch,
                        link.config.dim,
                        link.data.description
                    );
                    run.forget();
                    run.status = TrainingStatus::default();
                    run.status.notice = Some(notice);
                    // The new session starts running with the config's values: resend all.
                    run.controls.running = true;
                    run.sent = None;
                }
                Err(e) => run.status.error = Some(format!("restart refused: {e}")),
            }
        }
        if self.list.len() > 1 {
            let configs: Vec<TrainConfig> = self
                .list
                .iter()
                .filter_map(|run| run.link.as_ref().map(|l| l.config.clone()))
                .collect();
            if let Some((first, others)) = configs.split_first()
                && let Ok(comparison) = Comparison::of_runs(first, others.to_vec())
            {
                for (k, run) in self.list.iter_mut().enumerate() {
                    run.caption = comparison.caption(k);
                }
                self.comparison = Some(comparison);
            }
        }
    }
}

/// Trains the runs: the first from its link, and a comparison's others beside it. Add it
/// after Bevy's plugins, with the scene plugin.
pub struct RunsPlugin {
    first: Mutex<Option<TrainingLink>>,
    /// Or runs trained elsewhere, followed from their folders.
    followed: Vec<PathBuf>,
    /// Runs beside the first from the start (`--compare`).
    pub comparison: Option<Comparison>,
}

impl RunsPlugin {
    /// Starts training for `config`; an unreadable dataset or a bad value is an error here,
    /// before any window opens.
    pub fn start(
        config: &TrainConfig,
        threads: Option<usize>,
        priority: TrainingPriority,
        paused: bool,
    ) -> Result<Self, String> {
        Ok(Self::with_link(TrainingLink::start(
            config, threads, priority, paused, false, None,
        )?))
    }

    /// [`RunsPlugin::start`] with the adapter the viewer found; on the WGPU backend training
    /// waits for the renderer's device, which [`super::gpu::SharedDevicePlugin`] hands over
    /// once the renderer exists.
    pub fn start_on_renderer_device(
        config: &TrainConfig,
        threads: Option<usize>,
        priority: TrainingPriority,
        paused: bool,
        adapter: Option<AdapterSummary>,
    ) -> Result<Self, String> {
        Ok(Self::with_link(TrainingLink::start(
            config,
            threads,
            priority,
            paused,
            true,
            Some(adapter),
        )?))
    }

    /// Training on `data` (a browser's page fetched it) with `backend`: on WGPU, on the
    /// renderer's device; on the CPU, where the page's platform puts it.
    pub fn start_in_page(
        config: &TrainConfig,
        data: std::sync::Arc<TrainingData>,
        backend: ResolvedBackend,
        paused: bool,
        step_delay: Duration,
    ) -> Result<Self, String> {
        Ok(Self::with_link(TrainingLink::with_data(
            config,
            data,
            backend,
            None,
            TrainingPriority::Normal,
            paused,
            true,
            step_delay,
        )?))
    }

    fn with_link(link: TrainingLink) -> Self {
        Self {
            first: Mutex::new(Some(link)),
            followed: Vec::new(),
            comparison: None,
        }
    }

    /// Runs trained elsewhere, read from these folders (one to four) as they train; side by
    /// side, each captioned with its folder's name.
    pub fn follow(dirs: Vec<PathBuf>) -> Self {
        Self {
            first: Mutex::new(None),
            followed: dirs,
            comparison: None,
        }
    }

    /// With `comparison`'s other runs beside the first from the start.
    pub fn comparing(mut self, comparison: Option<Comparison>) -> Self {
        self.comparison = comparison;
        self
    }
}

impl Plugin for RunsPlugin {
    fn build(&self, app: &mut App) {
        app.init_resource::<ViewerMode>()
            .add_message::<TrainingAction>()
            .add_systems(Update, drive_runs.in_set(RunsUpdate).before(SceneUpdate));
        if !self.followed.is_empty() {
            let several = self.followed.len() > 1;
            let list = self
                .followed
                .iter()
                .map(|dir| {
                    let caption = if several {
                        folder_name(dir)
                    } else {
                        String::new()
                    };
                    Run::followed(dir.clone(), caption)
                })
                .collect();
            app.insert_resource(Runs {
                list,
                ..Runs::default()
            });
            return;
        }
        let link = self
            .first
            .lock()
            .ok()
            .and_then(|mut slot| slot.take())
            .expect("the runs plugin is added once");
        let paused = link.started_paused();
        let mut runs = Runs::single(link);
        if let Some(comparison) = &self.comparison {
            // Beside the first run, from the same start: only the others are started here.
            let started: Result<Vec<Run>, String> = comparison
                .configs
                .iter()
                .enumerate()
                .skip(1)
                .map(|(k, config)| {
                    let first = runs.first_link().ok_or("no first run")?;
                    Ok(Run::trained(
                        first.start_beside(config, paused)?,
                        comparison.caption(k),
                    ))
                })
                .collect();
            match started {
                Ok(others) => {
                    runs.list[0].caption = comparison.caption(0);
                    runs.list.extend(others);
                    runs.comparison = Some(comparison.clone());
                }
                Err(e) => error!("the comparison could not start: {e}"),
            }
        }
        app.insert_resource(runs);
    }
}

/// A folder's last name ("runs/resnet18" -> "resnet18").
pub fn folder_name(dir: &std::path::Path) -> String {
    dir.components()
        .next_back()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .unwrap_or_else(|| dir.display().to_string())
}

/// Keeps one entity a run (a cloud, a line mesh): despawns those of runs that are gone (and any
/// second one of a run), and calls `spawn` for each run that has none.
pub fn one_entity_a_run(
    commands: &mut Commands,
    runs: usize,
    existing: impl IntoIterator<Item = (Entity, usize)>,
    mut spawn: impl FnMut(&mut Commands, usize),
) {
    let mut have = vec![false; runs];
    for (entity, run) in existing {
        match have.get_mut(run) {
            Some(slot) if !*slot => *slot = true,
            _ => commands.entity(entity).despawn(),
        }
    }
    for (run, _) in have.iter().enumerate().filter(|(_, have)| !**have) {
        spawn(commands, run);
    }
}

/// Projects and eases every run's scene ([`SceneUpdate`]); the runs may have trainers
/// ([`RunsPlugin`]) or be given their frames (the recorder's).
pub struct ScenePlugin {
    /// How the scenes are drawn at start (the panel edits it afterwards).
    pub settings: SceneSettings,
    /// Ease drawn positions toward each new frame in real time (the viewer), or jump to it
    /// (the recorder and the tests, whose frames must not depend on the clock).
    pub ease_in_real_time: bool,
}

impl Default for ScenePlugin {
    fn default() -> Self {
        Self {
            settings: SceneSettings::default(),
            ease_in_real_time: true,
        }
    }
}

impl Plugin for ScenePlugin {
    fn build(&self, app: &mut App) {
        app.insert_resource(self.settings.clone())
            .insert_resource(EaseInRealTime(self.ease_in_real_time))
            .init_resource::<Runs>()
            .add_systems(Update, update_scenes.in_set(SceneUpdate));
    }
}

/// Systems that bring the runs up to date from their trainers; the scenes are updated after.
#[derive(SystemSet, Debug, Clone, PartialEq, Eq, Hash)]
pub struct RunsUpdate;

/// Every run's share of a frame: controls out, actions, events and snapshots in, and the frame
/// its scene shows next.
fn drive_runs(
    mut runs: ResMut<Runs>,
    mode: Res<ViewerMode>,
    mut actions: MessageReader<TrainingAction>,
    time: Option<Res<Time>>,
    mut last_mode: Local<Option<ViewerMode>>,
    mut was_live: Local<bool>,
) {
    let runs = &mut *runs;
    // What the sliders changed goes out before the panel's requests (a Step after a moved
    // slider steps with the new value).
    for run in &mut runs.list {
        if let Some(link) = &run.link {
            send_changes(link, &run.controls, &mut run.sent);
        }
    }
    for action in actions.read() {
        runs.act(action);
    }
    let training = *mode == ViewerMode::Training;
    // Back from the sandbox: every run shows its picture again at once, even if paused.
    let back_to_training = *last_mode != Some(*mode) && training;
    *last_mode = Some(*mode);
    if training && let Some(first) = runs.list.first_mut() {
        first
            .timeline
            .advance_replay(time.as_ref().map_or(0.0, |t| t.delta_secs()));
    }
    // Scrubbing back into the timeline pauses training, so the history shown stays put; Live
    // (or Play) resumes it.
    let live = runs.is_live();
    if *was_live && !live {
        runs.set_running(false);
    }
    *was_live = live;
    let cursor = runs.cursor_step();
    let several = runs.list.len() > 1;
    for (k, run) in runs.list.iter_mut().enumerate() {
        let mut frames = Vec::new();
        if let Some(link) = &run.link {
            // (Again: an action above may have changed the controls, a Reset or a comparison.)
            send_changes(link, &run.controls, &mut run.sent);
            let label = if several {
                format!("run {} ({}): ", k + 1, run.caption)
            } else {
                String::new()
            };
            absorb_events(
                link,
                &mut run.status,
                &mut run.history,
                &mut run.controls,
                &mut run.sent,
                &label,
            );
            frames.extend(link.take_snapshot().map(frame_of));
        } else if let Some(followed) = run.followed.as_mut() {
            let (new, rewound) = followed.absorb(&mut run.status, &mut run.history);
            if rewound {
                // (Its plots were cut back by the reader.)
                run.timeline.clear();
                run.last_frame = None;
            }
            frames = new;
        } else {
            continue;
        }
        // Every frame goes to the timeline; the scene takes the newest while live.
        if let Some(newest) = frames.pop() {
            for frame in &frames {
                run.timeline.record(frame);
            }
            run.timeline.record(&newest);
            if training && cursor.is_none() {
                run.incoming = Some(newest.clone());
            }
            run.last_frame = Some(newest);
        }
        let moved = cursor != run.shown_step;
        run.shown_step = cursor;
        if !(training && (moved || back_to_training)) {
            continue;
        }
        match cursor {
            // Each run's own snapshot of the moment the cursor shows.
            Some(step) => {
                if let Some(frame) = run
                    .timeline
                    .entry_at_step(step)
                    .and_then(|entry| run.timeline.frame(entry))
                {
                    run.incoming = Some(frame);
                }
            }
            // Back at the live end: the newest picture at once.
            None if run.incoming.is_none() => run.incoming = run.last_frame.clone(),
            None => {}
        }
    }
}

/// Takes each run's incoming frame into its scene (projected with `settings`), reprojects on a
/// change of projection, and eases (or snaps) positions; a live training picture is sampled
/// into its run's history.
fn update_scenes(
    mut runs: ResMut<Runs>,
    settings: Res<SceneSettings>,
    mode: Option<Res<ViewerMode>>,
    time: Res<Time>,
    real_time: Res<EaseInRealTime>,
    mut last_view: Local<Option<(ProjectionMode, f32)>>,
) {
    let view = (settings.projection, settings.sphere_size);
    let reproject = last_view.is_some_and(|v| v != view);
    *last_view = Some(view);
    let live_training = mode.is_none_or(|m| *m == ViewerMode::Training) && runs.is_live();
    for run in &mut runs.list {
        run.scene.sphere_size = settings.sphere_size;
        if let Some(frame) = run.incoming.take() {
            run.scene.take(frame, settings.projection);
            // (A followed run's reader samples every picture itself.)
            if live_training && run.link.is_some() {
                run.history.push_picture(&run.scene);
            }
        } else if reproject {
            run.scene.reproject(settings.projection);
        }
        if real_time.0 {
            run.scene.ease(settings.ease_rate, time.delta_secs());
        } else {
            run.scene.snap();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs with the given controls and no trainers.
    fn runs(alphas: &[f64]) -> Runs {
        Runs {
            list: alphas
                .iter()
                .map(|&alpha| {
                    let mut run = Run::drawn();
                    run.controls.alpha = alpha;
                    run
                })
                .collect(),
            ..Runs::default()
        }
    }

    #[test]
    fn sliders_moved_on_all_runs_keep_their_differences() {
        let mut runs = runs(&[2.0, 2.5, 3.0]);
        let before = runs.slider_controls().unwrap();
        let mut after = before.clone();
        after.radius_scale = 1.5;
        runs.apply_controls(&before, &after);
        for run in &runs.list {
            assert_eq!(
                run.controls.radius_scale, 1.5,
                "a moved slider moves every run"
            );
        }
        let alphas: Vec<f64> = runs.list.iter().map(|r| r.controls.alpha).collect();
        assert_eq!(alphas, [2.0, 2.5, 3.0], "alpha was not moved");
        let before = runs.slider_controls().unwrap();
        let mut after = before.clone();
        after.alpha = 2.2;
        runs.apply_controls(&before, &after);
        assert!(runs.list.iter().all(|r| r.controls.alpha == 2.2));
        let before = runs.slider_controls().unwrap();
        let mut after = before.clone();
        after.running = false;
        runs.apply_controls(&before, &after);
        assert!(
            runs.list.iter().all(|r| !r.controls.running),
            "pause is shared"
        );
    }

    #[test]
    fn sliders_on_one_run_leave_the_others_alone() {
        let mut runs = runs(&[2.0, 2.5, 3.0, 3.5]);
        runs.sliders = SliderTarget::One(2);
        let before = runs.slider_controls().unwrap();
        assert_eq!(before.alpha, 3.0, "the sliders show the run they act on");
        let mut after = before.clone();
        after.alpha = 4.0;
        after.lr *= 2.0;
        after.running = false;
        runs.apply_controls(&before, &after);
        let alphas: Vec<f64> = runs.list.iter().map(|r| r.controls.alpha).collect();
        assert_eq!(alphas, [2.0, 2.5, 4.0, 3.5]);
        let doubled: Vec<bool> = runs
            .list
            .iter()
            .map(|r| r.controls.lr == after.lr)
            .collect();
        assert_eq!(doubled, [false, false, true, false]);
        assert!(
            runs.list.iter().all(|r| !r.controls.running),
            "pause is still shared"
        );
    }
}
