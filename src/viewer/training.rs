//! A run's link to its trainer, and what the viewer keeps of what the trainer says: the
//! [`TrainingLink`] starts, restarts and commands a session (on a thread of this process, as a
//! page's task, or wherever the page's platform starts it: [`start_sessions_elsewhere`]);
//! [`absorb_events`] folds its events into [`TrainingStatus`] and [`History`]; [`send_changes`]
//! turns the changes of [`Controls`] into commands. Nothing here waits: a slow step only means
//! fewer events this frame. The runs plugin ([`super::runs`]) calls these for every run.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use web_time::Instant;

use bevy::prelude::*;

use super::scene::{Scene, SceneFrame};
use crate::backend::{AdapterSummary, BackendKind, ResolvedBackend};
use crate::config::TrainConfig;
use crate::train::session::{
    Command, Event, Session, SessionOptions, TrainingPriority, Turns, spawn_session,
};
use crate::train::{ProbeReport, Snapshot, StepReport, TrainingData};

/// A session that a page's platform runs outside the page's own thread (its worker).
pub trait SessionElsewhere: Send + Sync {
    /// Sends a command; false when the session has gone.
    fn send(&self, command: Command) -> bool;
    /// Events since the last call, in the order they were sent.
    fn events(&self) -> Vec<Event>;
    /// The newest snapshot not yet taken.
    fn take_snapshot(&self) -> Option<Snapshot>;
}

/// How a platform starts a CPU session elsewhere: None where it does not (then training runs
/// here), or the session, or why it could not start one.
pub type StartElsewhere =
    fn(&TrainConfig, &SessionOptions) -> Option<Result<Box<dyn SessionElsewhere>, String>>;

static START_ELSEWHERE: std::sync::OnceLock<StartElsewhere> = std::sync::OnceLock::new();

/// Has every later CPU session started by `start` where it can (a page's worker). Set once, at
/// the platform's start.
pub fn start_sessions_elsewhere(start: StartElsewhere) {
    let _ = START_ELSEWHERE.set(start);
}

/// A training session: on a thread of this process (the desktop), as a task of the page's (the
/// WebGPU page), or where the platform started it (the CPU page's worker).
enum Running {
    Here(Session),
    Elsewhere(Box<dyn SessionElsewhere>),
}

impl Running {
    fn send(&self, command: Command) -> bool {
        match self {
            Running::Here(session) => session.send(command),
            Running::Elsewhere(session) => session.send(command),
        }
    }

    fn events(&self) -> Vec<Event> {
        match self {
            Running::Here(session) => session.events(),
            Running::Elsewhere(session) => session.events(),
        }
    }

    fn take_snapshot(&self) -> Option<Snapshot> {
        match self {
            Running::Here(session) => session.take_snapshot(),
            Running::Elsewhere(session) => session.take_snapshot(),
        }
    }
}

/// Starts `config` on `backend`: CPU training where the platform starts it, if it does (a
/// page's worker, so the page's thread draws); everything else as [`spawn_session`] does.
fn start_running(
    backend: &ResolvedBackend,
    config: TrainConfig,
    data: Arc<TrainingData>,
    options: SessionOptions,
) -> Running {
    if backend.kind == BackendKind::Cpu
        && let Some(started) = START_ELSEWHERE
            .get()
            .and_then(|start| start(&config, &options))
    {
        match started {
            Ok(session) => return Running::Elsewhere(session),
            // Without it (a browser that refuses a worker), training shares this thread.
            Err(why) => warn!("training on the page's own thread: {why}"),
        }
    }
    Running::Here(spawn_session(backend, config, data, options))
}

/// The running session and what it was started from.
pub struct TrainingLink {
    session: Option<Running>,
    pub data: Arc<TrainingData>,
    /// The configuration the current session started from (live changes are in [`Controls`]).
    pub config: TrainConfig,
    pub backend: ResolvedBackend,
    pub threads: Option<usize>,
    pub priority: TrainingPriority,
    /// Class purity of the drawn images' raw pixels projected by PCA to 3-D: the baseline a
    /// learned picture has to beat (None when it could not be computed).
    pub pixel_purity: Option<f64>,
    started_paused: bool,
    /// A pause after every step, leaving cores to drawing (a page on a software rasterizer).
    pub step_delay: Duration,
    /// Turns at the training cores, shared with the runs started beside this one.
    turns: Option<Arc<Turns>>,
}

/// [`crate::eval::pixel_pca_purity`] of the images a run draws (of those the picture's purity
/// counts, when there are more).
fn pixel_purity_of(data: &TrainingData) -> Option<f64> {
    let counted = data
        .snapshot_images
        .len()
        .min(super::scene::PURITY_MAX_SPHERES);
    crate::eval::pixel_pca_purity(&data.test, &data.snapshot_images[..counted])
        .map_err(|e| warn!("no pixel baseline for the class purity: {e}"))
        .ok()
}

impl TrainingLink {
    /// Loads the data, picks the backend and starts training. With `await_renderer_device`
    /// and the WGPU backend, training waits for the renderer's device
    /// ([`TrainingLink::share_renderer_device`]) instead of opening a second one.
    pub fn start(
        config: &TrainConfig,
        threads: Option<usize>,
        priority: TrainingPriority,
        paused: bool,
        await_renderer_device: bool,
        adapter: Option<Option<AdapterSummary>>,
    ) -> Result<Self, String> {
        config.validate()?;
        let mut backend = match adapter {
            Some(adapter) => crate::backend::resolve_with(config.backend, adapter),
            None => crate::backend::resolve(config.backend),
        };
        // The viewer trains on the renderer's device, which it has only once the window is up:
        // `auto` takes the GPU there without timing the two (the viewer's model is small
        // enough for either).
        if await_renderer_device {
            backend.time_both = false;
        }
        let start = crate::train::RunStart::prepare_with(config, backend)?.for_training(config)?;
        if let Some(warning) = &start.warning {
            warn!("{warning}");
        }
        let crate::train::RunStart { data, backend, .. } = start;
        Self::with_data(
            config,
            data,
            backend,
            threads,
            priority,
            paused,
            await_renderer_device,
            Duration::ZERO,
        )
    }

    /// [`TrainingLink::start`] on data already loaded (a page fetches it) and a backend already
    /// chosen. (Each argument is a choice of the caller's: the page's, the window's.)
    #[allow(clippy::too_many_arguments)]
    pub fn with_data(
        config: &TrainConfig,
        data: Arc<TrainingData>,
        backend: crate::backend::ResolvedBackend,
        threads: Option<usize>,
        priority: TrainingPriority,
        paused: bool,
        await_renderer_device: bool,
        step_delay: Duration,
    ) -> Result<Self, String> {
        // Runs side by side take turns at the training cores (a page's sessions are tasks of
        // one thread, or workers of their own: nothing to share there).
        let turns = (!cfg!(target_arch = "wasm32")).then(|| Turns::new(1));
        Self::sharing_turns(
            config,
            data,
            backend,
            (threads, priority, step_delay),
            paused,
            await_renderer_device,
            turns,
        )
    }

    /// [`TrainingLink::with_data`] taking `turns` with other runs.
    fn sharing_turns(
        config: &TrainConfig,
        data: Arc<TrainingData>,
        backend: crate::backend::ResolvedBackend,
        (threads, priority, step_delay): (Option<usize>, TrainingPriority, Duration),
        paused: bool,
        await_renderer_device: bool,
        turns: Option<Arc<Turns>>,
    ) -> Result<Self, String> {
        config.validate()?;
        info!("data: {}", data.description);
        let wait = await_renderer_device && backend.kind == BackendKind::Wgpu;
        let session = (!wait).then(|| {
            info!("backend: {}", backend.description);
            start_running(
                &backend,
                config.clone(),
                data.clone(),
                options(threads, paused, priority, step_delay, turns.clone()),
            )
        });
        Ok(Self {
            session,
            pixel_purity: pixel_purity_of(&data),
            data,
            config: config.clone(),
            backend,
            threads,
            priority,
            started_paused: paused,
            step_delay,
            turns,
        })
    }

    /// A run beside this one (a comparison): `config` on the same data and backend (on WGPU the
    /// same device, or the one this run still waits for), with the same threads, priority and
    /// pause after each step, taking turns with it at the training cores, paused or not as
    /// asked.
    pub fn start_beside(&self, config: &TrainConfig, paused: bool) -> Result<TrainingLink, String> {
        TrainingLink::sharing_turns(
            config,
            self.data.clone(),
            self.backend.clone(),
            (self.threads, self.priority, self.step_delay),
            paused,
            self.awaits_renderer_device(),
            self.turns.clone(),
        )
    }

    /// Whether this run was started paused.
    pub fn started_paused(&self) -> bool {
        self.started_paused
    }

    /// Stops the session on a thread of its own, so the frame does not wait for its step.
    pub fn stop_in_background(mut self) {
        if let Some(old) = self.session.take() {
            #[cfg(not(target_arch = "wasm32"))]
            std::thread::spawn(move || drop(old));
            #[cfg(target_arch = "wasm32")]
            drop(old);
        }
    }

    /// Whether training waits for the renderer's device.
    pub fn awaits_renderer_device(&self) -> bool {
        self.session.is_none() && self.backend.kind == BackendKind::Wgpu
    }

    /// Starts training on the renderer's own WGPU device (`adapter` names it).
    pub fn share_renderer_device(&mut self, device: crate::backend::GpuDevice, adapter: &str) {
        self.backend.share(device, adapter);
        info!("backend: {}", self.backend.description);
        self.session = Some(start_running(
            &self.backend,
            self.config.clone(),
            self.data.clone(),
            options(
                self.threads,
                self.started_paused,
                self.priority,
                self.step_delay,
                self.turns.clone(),
            ),
        ));
    }

    /// Sends a command; false when the thread has ended.
    pub fn send(&self, command: Command) -> bool {
        self.session.as_ref().is_some_and(|s| s.send(command))
    }

    /// Replaces the session by one for `config` (views, batch, dimension or dataset changed).
    /// The old thread is stopped on a thread of its own, so the frame does not wait for its step.
    pub fn restart(&mut self, config: TrainConfig) -> Result<(), String> {
        config.validate()?;
        let data = if config.dataset != self.config.dataset {
            Arc::new(TrainingData::load(&config)?)
        } else if config.snapshot_images != self.config.snapshot_images
            || config.seed != self.config.seed
        {
            // The same images (a page's came over the network), other drawn spheres.
            Arc::new(TrainingData::new(
                self.data.train.clone(),
                self.data.test.clone(),
                self.data.description.clone(),
                self.data.augment.clone(),
                &config,
            )?)
        } else {
            self.data.clone()
        };
        if !Arc::ptr_eq(&data, &self.data) {
            self.pixel_purity = pixel_purity_of(&data);
        }
        if let Some(old) = self.session.take() {
            // (A page's session is a task that ends at its next command: nothing to wait for.)
            #[cfg(not(target_arch = "wasm32"))]
            std::thread::spawn(move || drop(old));
            #[cfg(target_arch = "wasm32")]
            drop(old);
        }
        self.session = Some(start_running(
            &self.backend,
            config.clone(),
            data.clone(),
            options(
                self.threads,
                false,
                self.priority,
                self.step_delay,
                self.turns.clone(),
            ),
        ));
        self.data = data;
        self.config = config;
        Ok(())
    }

    pub fn events(&self) -> Vec<Event> {
        self.session
            .as_ref()
            .map(|s| s.events())
            .unwrap_or_default()
    }

    pub fn take_snapshot(&self) -> Option<Snapshot> {
        self.session.as_ref().and_then(|s| s.take_snapshot())
    }
}

fn options(
    threads: Option<usize>,
    paused: bool,
    priority: TrainingPriority,
    step_delay: Duration,
    turns: Option<Arc<Turns>>,
) -> SessionOptions {
    SessionOptions {
        start_paused: paused,
        // A snapshot costs a forward pass of every sphere's views: a few per second is smooth
        // once positions are eased, and each one is a point of the drawn spheres' plots.
        snapshots_per_sec: SNAPSHOTS_PER_SEC,
        step_delay,
        // A probe stops training for seconds (features of 7,000 images, a fitted classifier).
        probe_every: 1000,
        threads,
        priority,
        // `clamp view` and `clamp record` refused a malformed CLAMP_FAULT before starting.
        fault: crate::train::Fault::from_env().ok().flatten(),
        turns,
        ..SessionOptions::default()
    }
}

/// The live hyperparameters, as the panel's sliders hold them.
#[derive(Clone, Debug, PartialEq)]
pub struct Controls {
    pub alpha: f64,
    pub radius_scale: f64,
    pub lr: f64,
    pub weight_decay: f64,
    pub running: bool,
    pub priority: TrainingPriority,
}

impl Controls {
    pub fn from_config(config: &TrainConfig) -> Self {
        Self {
            alpha: config.alpha,
            radius_scale: config.radius_scale,
            lr: config.lr,
            weight_decay: config.weight_decay,
            running: true,
            priority: TrainingPriority::Background,
        }
    }
}

/// What the trainer last reported.
#[derive(Default)]
pub struct TrainingStatus {
    pub step: usize,
    pub paused: bool,
    pub last: Option<StepReport>,
    pub last_probe: Option<ProbeReport>,
    /// Seconds of the first step (shader compilation on WGPU shows here).
    pub first_step_seconds: Option<f64>,
    pub steps_per_sec: f64,
    pub error: Option<String>,
    pub notice: Option<String>,
    recent: VecDeque<Instant>,
}

/// Plot series against the step.
#[derive(Default)]
pub struct History {
    pub steps: Vec<f64>,
    pub loss: Vec<f64>,
    pub energy: Vec<f64>,
    pub contacts: Vec<f64>,
    pub activity: Vec<f64>,
    pub rattlers: Vec<f64>,
    pub radius: Vec<f64>,
    /// (step, kNN accuracy, linear-probe accuracy).
    pub probes: Vec<[f64; 3]>,
    /// The drawn spheres, one sample per live snapshot.
    pub pictures: Vec<PictureSample>,
}

/// Seconds over which steps per second are counted.
const STEP_RATE_WINDOW: u64 = 5;

/// Snapshots of the drawn spheres per second, at most.
pub const SNAPSHOTS_PER_SEC: f64 = 4.0;

/// The drawn spheres at one snapshot: what the picture shows, in numbers.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PictureSample {
    pub step: usize,
    /// Class purity of the drawn 3-D positions (see [`crate::eval::class_purity`]).
    pub purity: f64,
    /// Mean contact number among the drawn spheres.
    pub contacts: f64,
    /// Mean radius of the drawn spheres, r_s included (as drawn).
    pub radius: f64,
}

impl PictureSample {
    /// `frame` in numbers, with the purity of its drawn positions.
    pub fn of(frame: &super::scene::SceneFrame, purity: f64) -> Self {
        Self {
            step: frame.step,
            purity,
            contacts: frame.mean_contacts(),
            radius: frame.mean_radius(),
        }
    }
}

/// Longest series kept; older points are thinned to every other one beyond it. Four times the
/// points a plot draws (the panel thins each line to 1,024), so the thinning never shows.
const HISTORY_LIMIT: usize = 4_096;

impl History {
    pub(super) fn push(&mut self, report: &StepReport) {
        let m = &report.packing;
        self.steps.push(report.step as f64);
        self.loss.push(report.loss);
        self.energy.push(m.energy);
        self.contacts.push(m.mean_contacts);
        self.activity.push(m.activity);
        self.rattlers.push(m.rattler_fraction);
        self.radius.push(m.mean_radius);
        if self.pictures.len() > HISTORY_LIMIT {
            self.pictures = self.pictures.iter().step_by(2).copied().collect();
        }
        if self.steps.len() > HISTORY_LIMIT {
            for series in [
                &mut self.steps,
                &mut self.loss,
                &mut self.energy,
                &mut self.contacts,
                &mut self.activity,
                &mut self.rattlers,
                &mut self.radius,
            ] {
                let thinned: Vec<f64> = series.iter().step_by(2).copied().collect();
                *series = thinned;
            }
        }
    }

    pub fn clear(&mut self) {
        *self = Self::default();
    }
}

/// Sends `link` the commands for what changed in `controls` since `sent`.
pub fn send_changes(link: &TrainingLink, controls: &Controls, sent: &mut Option<Controls>) {
    let previous = sent.clone();
    if previous.as_ref() == Some(controls) {
        return;
    }
    let changed = |f: fn(&Controls) -> f64| previous.as_ref().is_none_or(|p| f(p) != f(controls));
    let mut commands = Vec::new();
    if changed(|c| c.alpha) {
        commands.push(Command::SetAlpha(controls.alpha));
    }
    if changed(|c| c.radius_scale) {
        commands.push(Command::SetRadiusScale(controls.radius_scale));
    }
    if changed(|c| c.lr) {
        commands.push(Command::SetLearningRate(controls.lr));
    }
    if changed(|c| c.weight_decay) {
        commands.push(Command::SetWeightDecay(controls.weight_decay));
    }
    if previous
        .as_ref()
        .is_none_or(|p| p.running != controls.running)
    {
        commands.push(if controls.running {
            Command::Resume
        } else {
            Command::Pause
        });
    }
    if previous
        .as_ref()
        .is_some_and(|p| p.priority != controls.priority)
    {
        commands.push(Command::SetPriority(controls.priority));
    }
    for command in commands {
        link.send(command);
    }
    *sent = Some(controls.clone());
}

/// Folds the trainer's events into its status and plot history (`run` names it in the log
/// when there are two).
pub fn absorb_events(
    link: &TrainingLink,
    status: &mut TrainingStatus,
    history: &mut History,
    controls: &mut Controls,
    sent: &mut Option<Controls>,
    run: &str,
) {
    let now = Instant::now();
    for event in link.events() {
        match event {
            Event::Step(report) => {
                if status.first_step_seconds.is_none() {
                    status.first_step_seconds = Some(report.seconds);
                    info!(
                        "{run}first step took {:.2} s (warm-up: kernels compiled, buffers \
                         allocated)",
                        report.seconds
                    );
                }
                status.step = report.step;
                status.recent.push_back(now);
                history.push(&report);
                status.last = Some(report);
                status.error = None;
            }
            Event::Probe(probe) => {
                history
                    .probes
                    .push([probe.step as f64, probe.knn_acc, probe.linear_acc]);
                status.notice = Some(format!(
                    "probe at step {}: kNN {:.3}, linear {:.3} ({:.1} s)",
                    probe.step, probe.knn_acc, probe.linear_acc, probe.seconds
                ));
                status.last_probe = Some(probe);
            }
            Event::Params { .. } => {}
            Event::Paused(paused) => {
                status.paused = paused;
                // A failed step pauses the trainer: mirror it so Play resumes it.
                if paused && controls.running {
                    controls.running = false;
                    *sent = Some(controls.clone());
                }
            }
            Event::Saved(dir) => {
                status.notice = Some(format!("checkpoint saved to {}", dir.display()));
            }
            Event::Skipped(message) => {
                warn!("{run}{message}");
                status.notice = Some(message);
            }
            Event::Error(message) => {
                error!("{run}{message}");
                status.error = Some(message);
            }
        }
    }
    while status
        .recent
        .front()
        .is_some_and(|t| now.duration_since(*t) > Duration::from_secs(STEP_RATE_WINDOW))
    {
        status.recent.pop_front();
    }
    status.steps_per_sec = status.recent.len() as f64 / STEP_RATE_WINDOW as f64;
}

impl History {
    /// One sample of the scene's newest training picture (replacing one of the same step).
    pub(super) fn push_picture(&mut self, scene: &Scene) {
        let frame = &scene.frame;
        let (Some(purity), false) = (scene.purity, frame.radii.is_empty()) else {
            return;
        };
        if self.pictures.last().is_some_and(|p| p.step == frame.step) {
            self.pictures.pop();
        }
        self.pictures.push(PictureSample::of(frame, purity));
    }
}

/// The spheres of a training snapshot.
pub fn frame_of(snapshot: Snapshot) -> SceneFrame {
    let readout = snapshot.readout;
    SceneFrame {
        step: snapshot.step,
        dim: readout.dim,
        centers: readout.centers,
        radii: readout.radii,
        labels: snapshot.labels,
        contacts: readout.contacts,
        pairs: snapshot.pairs,
        images: snapshot.images,
        unit_sphere: true,
    }
}
