//! A [`Trainer`] on its own thread. The owner sends [`Command`]s; the thread answers with small
//! [`Event`]s on a bounded channel and publishes the latest [`Snapshot`] in a one-slot mailbox.
//! Neither side ever waits on the other: step reports go through a bounded channel and are
//! dropped when it is full, and an unread snapshot is overwritten, so a slow viewer cannot
//! stall training and a slow step cannot stall the viewer. Everything else the thread says
//! (errors, pauses, saves, probes, parameters in force) is rare and must not be lost: it has an
//! unbounded channel of its own, and a sequence number puts both streams back in order.
//!
//! In a browser's page, which has one thread, the same loop is a task of the page's
//! ([`crate::pace::Pace`]): it awaits the GPU's read-backs instead of blocking on them.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use web_time::Instant;

use burn::tensor::backend::AutodiffBackend;

use super::{ProbeReport, Snapshot, StepReport, Trainer, checkpoint};
use crate::loss::PackingParams;
use crate::mailbox::Latest;
use crate::pace::Pace;

/// What the owner can ask of the training thread; each applies before the next step.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Command {
    SetAlpha(f64),
    SetRadiusScale(f64),
    SetLearningRate(f64),
    SetWeightDecay(f64),
    Pause,
    Resume,
    /// One step, then paused.
    Step,
    /// Back to the initial weights (same seed), paused state kept.
    Reset,
    /// Run the kNN and linear probes now.
    Probe,
    /// Save a checkpoint into this run directory (its `checkpoints/step-N`).
    SaveCheckpoint(PathBuf),
    /// How the training threads compete for cores from now on.
    SetPriority(TrainingPriority),
    /// The pause after each step from now on (a page sharing two cores with its drawing).
    SetStepDelay(Duration),
    Stop,
}

/// What the training thread reports.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub enum Event {
    Step(StepReport),
    Probe(ProbeReport),
    /// A command was applied: the parameters now in force.
    Params {
        params: PackingParams,
        lr: f64,
        weight_decay: f64,
    },
    Paused(bool),
    Saved(PathBuf),
    /// A step whose loss or gradient was not finite was skipped and the learning rate halved;
    /// training goes on.
    Skipped(String),
    /// A rejected command, or a run that kept producing non-finite steps (training pauses).
    Error(String),
}

/// Pacing of the training thread.
#[derive(Clone, Debug)]
pub struct SessionOptions {
    /// Start paused (a teaching demo may want to explain first).
    pub start_paused: bool,
    /// At most this many snapshots per second (they cost a forward pass of the spheres).
    pub snapshots_per_sec: f64,
    /// Optional pause after each step, to leave cores to a renderer.
    pub step_delay: Duration,
    /// Probe every this many steps (0: only on request).
    pub probe_every: usize,
    /// Worker threads for the training math (None: all cores). A viewer leaves a core to the
    /// renderer by asking for fewer.
    pub threads: Option<usize>,
    /// Scheduling priority of the training threads. A viewer asks for less than normal so that
    /// drawing wins when both want a core.
    pub priority: TrainingPriority,
    /// Step reports kept for a consumer that has not read them (older ones are dropped).
    pub step_events: usize,
    /// A fault to inject on purpose (`CLAMP_FAULT`), kept across resets.
    pub fault: Option<super::Fault>,
    /// Turns at the training cores shared with other sessions (runs side by side): a step
    /// (and its snapshot) is taken only in this session's turn.
    pub turns: Option<Arc<Turns>>,
}

/// Turns at the training cores for sessions side by side: at most `permits` of them step at
/// once, first come first served, so several runs together use the cores one run would (and
/// leave the renderer what one run leaves it). A paused session takes no turn.
#[derive(Debug)]
pub struct Turns {
    permits: u64,
    /// (tickets handed out, turns finished).
    count: std::sync::Mutex<(u64, u64)>,
    finished: std::sync::Condvar,
}

impl Turns {
    pub fn new(permits: usize) -> Arc<Self> {
        Arc::new(Self {
            permits: permits.max(1) as u64,
            count: std::sync::Mutex::new((0, 0)),
            finished: std::sync::Condvar::new(),
        })
    }

    /// Waits for this caller's turn (tickets are served in the order taken); the turn lasts
    /// until the returned guard is dropped.
    pub fn take(&self) -> Turn<'_> {
        let mut count = self.count.lock().unwrap_or_else(|e| e.into_inner());
        let ticket = count.0;
        count.0 += 1;
        while ticket >= count.1 + self.permits {
            count = self.finished.wait(count).unwrap_or_else(|e| e.into_inner());
        }
        Turn(self)
    }
}

/// A session's turn at the training cores; it ends when dropped.
pub struct Turn<'a>(&'a Turns);

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        let mut count = self.0.count.lock().unwrap_or_else(|e| e.into_inner());
        count.1 += 1;
        self.0.finished.notify_all();
    }
}

impl Default for SessionOptions {
    fn default() -> Self {
        Self {
            start_paused: false,
            snapshots_per_sec: 10.0,
            step_delay: Duration::ZERO,
            probe_every: 0,
            threads: None,
            priority: TrainingPriority::Normal,
            step_events: 1024,
            fault: None,
            turns: None,
        }
    }
}

/// The thread's side of the two event streams.
struct Outbox {
    steps: SyncSender<(u64, Event)>,
    others: Sender<(u64, Event)>,
    sequence: AtomicU64,
}

impl Outbox {
    /// Sends `event`: a step report is dropped when the consumer is behind (better than
    /// blocking training on a consumer that stopped reading); anything else is always
    /// delivered.
    fn emit(&self, event: Event) {
        let number = self.sequence.fetch_add(1, Ordering::Relaxed);
        match event {
            Event::Step(_) => {
                let _ = self.steps.try_send((number, event));
            }
            _ => {
                let _ = self.others.send((number, event));
            }
        }
    }
}

/// The owner's side of the two event streams.
struct Inbox {
    steps: Receiver<(u64, Event)>,
    others: Receiver<(u64, Event)>,
    /// Received, not yet handed out, in sending order.
    pending: std::collections::VecDeque<(u64, Event)>,
}

impl Inbox {
    /// Moves everything that has arrived into `pending`, in sending order. (Whatever was
    /// pending was sent before anything that arrives after it was collected.)
    fn collect(&mut self) {
        let mut arrived: Vec<(u64, Event)> = self.steps.try_iter().collect();
        arrived.extend(self.others.try_iter());
        arrived.sort_by_key(|(number, _)| *number);
        self.pending.extend(arrived);
    }
}

/// The owner's side of a training thread.
pub struct Session {
    commands: Sender<Command>,
    // Behind a mutex so a Session can be shared (e.g. held in an ECS resource).
    events: Mutex<Inbox>,
    snapshots: Arc<Latest<Snapshot>>,
    thread: Option<JoinHandle<()>>,
}

impl Session {
    /// Starts `make_trainer()` on a new thread (the trainer is built there, so a GPU device is
    /// created on the thread that uses it); in a browser, as a task of the page's.
    pub fn spawn<B, F>(make_trainer: F, options: SessionOptions) -> Self
    where
        B: AutodiffBackend,
        F: FnOnce() -> Trainer<B> + Send + 'static,
    {
        let (command_tx, command_rx) = mpsc::channel();
        let (step_tx, step_rx) = mpsc::sync_channel(options.step_events.max(1));
        let (other_tx, other_rx) = mpsc::channel();
        let event_tx = Outbox {
            steps: step_tx,
            others: other_tx,
            sequence: AtomicU64::new(0),
        };
        let snapshots = Arc::new(Latest::default());
        let mailbox = snapshots.clone();
        #[cfg(not(target_arch = "wasm32"))]
        let (threads, priority) = (options.threads, options.priority);
        let work = move |pace| async move {
            let mut trainer = make_trainer();
            trainer.set_fault(options.fault);
            run(trainer, command_rx, event_tx, mailbox, options, pace).await;
        };
        #[cfg(not(target_arch = "wasm32"))]
        let thread = {
            let thread = std::thread::Builder::new()
                .name("clamp-trainer".into())
                .spawn(move || {
                    set_priority(priority);
                    let work = move || burn::tensor::read_sync(work(crate::pace::Blocking));
                    match options_pool(&threads) {
                        Some(pool) => pool.install(work),
                        None => work(),
                    }
                })
                .expect("spawning the training thread");
            Some(thread)
        };
        // A page has one thread: the loop is a task of the browser's, which runs whenever the
        // page waits (for the GPU, for the next frame).
        #[cfg(target_arch = "wasm32")]
        let thread = {
            wasm_bindgen_futures::spawn_local(work(crate::pace::Yielding));
            None
        };
        Self {
            commands: command_tx,
            events: Mutex::new(Inbox {
                steps: step_rx,
                others: other_rx,
                pending: Default::default(),
            }),
            snapshots,
            thread,
        }
    }

    /// Sends a command; false when the thread has ended.
    pub fn send(&self, command: Command) -> bool {
        self.commands.send(command).is_ok()
    }

    /// Events since the last call, in the order the thread sent them.
    pub fn events(&self) -> Vec<Event> {
        let Ok(mut inbox) = self.events.lock() else {
            return Vec::new();
        };
        inbox.collect();
        inbox.pending.drain(..).map(|(_, event)| event).collect()
    }

    /// Waits up to `timeout` for the next event (of either stream).
    pub fn next_event(&self, timeout: Duration) -> Option<Event> {
        let deadline = Instant::now() + timeout;
        loop {
            {
                let mut inbox = self.events.lock().ok()?;
                inbox.collect();
                if let Some((_, event)) = inbox.pending.pop_front() {
                    return Some(event);
                }
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// The newest snapshot not yet taken.
    pub fn take_snapshot(&self) -> Option<Snapshot> {
        self.snapshots.take()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.commands.send(Command::Stop);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// How the training threads compete for cores with everything else on the machine.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
pub enum TrainingPriority {
    /// Like any other thread.
    #[default]
    Normal,
    /// Niceness 5: a contested core goes mostly to others, but training keeps a share of it.
    Shared,
    /// Only cycles nobody else wants (Linux `SCHED_IDLE`; elsewhere the lowest niceness):
    /// drawing never waits for training, which still runs whenever the renderer pauses.
    Background,
}

/// Applies `priority` to the calling thread; threads it starts afterwards inherit it.
pub fn set_priority(priority: TrainingPriority) {
    #[cfg(target_os = "linux")]
    // SAFETY: both calls only change scheduling attributes; on Linux, pid/who 0 names the
    // calling thread.
    unsafe {
        let param = libc::sched_param { sched_priority: 0 };
        let (policy, nice) = match priority {
            TrainingPriority::Normal => (libc::SCHED_OTHER, 0),
            TrainingPriority::Shared => (libc::SCHED_OTHER, 5),
            TrainingPriority::Background => (libc::SCHED_IDLE, 19),
        };
        libc::sched_setscheduler(0, policy, &param);
        libc::setpriority(libc::PRIO_PROCESS, 0, nice);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = priority;
}

/// A private rayon pool of `threads` workers, so the trainer's parallel math stays on them.
#[cfg(not(target_arch = "wasm32"))]
fn options_pool(threads: &Option<usize>) -> Option<rayon::ThreadPool> {
    let threads = (*threads)?;
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .thread_name(|k| format!("clamp-train-{k}"))
        .build()
        .ok()
}

/// Starts a training session for `config` on the backend `resolve` chose.
pub fn spawn_session(
    backend: &crate::backend::ResolvedBackend,
    config: crate::config::TrainConfig,
    data: Arc<super::TrainingData>,
    options: SessionOptions,
) -> Session {
    struct Start {
        config: crate::config::TrainConfig,
        data: Arc<super::TrainingData>,
        options: SessionOptions,
    }
    impl crate::backend::BackendTask for Start {
        type Output = Session;
        fn run<B: AutodiffBackend>(self, device: B::Device) -> Session {
            let Start {
                config,
                data,
                options,
            } = self;
            Session::spawn(move || Trainer::<B>::new(config, data, device), options)
        }
    }
    crate::backend::run_on(
        backend,
        Start {
            config,
            data,
            options,
        },
    )
}

fn emit(events: &Outbox, event: Event) {
    events.emit(event);
}

async fn run<B: AutodiffBackend>(
    mut trainer: Trainer<B>,
    commands: Receiver<Command>,
    events: Outbox,
    snapshots: Arc<Latest<Snapshot>>,
    options: SessionOptions,
    pace: impl Pace,
) {
    let mut paused = options.start_paused;
    let mut single_steps = 0usize;
    let mut step_delay = options.step_delay;
    let min_snapshot_gap = Duration::from_secs_f64(1.0 / options.snapshots_per_sec.max(0.01));
    let mut last_snapshot: Option<Instant> = None;
    snapshots.put(trainer.snapshot_async().await);
    emit(&events, Event::Paused(paused));

    // A paused run whose radius scale or exponent moved owes the viewer a picture with the new
    // radii (drawn once the pending commands are applied, so a dragged slider costs one).
    let mut picture_stale = false;
    loop {
        // Apply every pending command; when there is nothing to do, wait for one.
        let idle = paused && single_steps == 0 && !picture_stale;
        match pace.receive(&commands, idle).await {
            Ok(Command::SetStepDelay(delay)) => {
                step_delay = delay;
                continue;
            }
            Ok(command) => {
                picture_stale |=
                    matches!(command, Command::SetAlpha(_) | Command::SetRadiusScale(_));
                if !apply(
                    &mut trainer,
                    command,
                    &mut paused,
                    &mut single_steps,
                    &events,
                    &snapshots,
                    &pace,
                )
                .await
                {
                    return;
                }
                continue;
            }
            Err(TryRecvError::Disconnected) => return,
            Err(TryRecvError::Empty) => {}
        }
        if picture_stale {
            picture_stale = false;
            if paused && single_steps == 0 {
                snapshots.put(trainer.snapshot_async().await);
                continue;
            }
        }

        let mut turn = options.turns.as_ref().map(|turns| turns.take());
        match trainer.step_async().await {
            Ok(report) => {
                let step = report.step;
                emit(&events, Event::Step(report));
                single_steps = single_steps.saturating_sub(1);
                let due = last_snapshot.is_none_or(|t| t.elapsed() >= min_snapshot_gap);
                if due || single_steps == 0 && paused {
                    snapshots.put(trainer.snapshot_async().await);
                    last_snapshot = Some(Instant::now());
                }
                // (A probe takes seconds: the other runs step meanwhile.)
                drop(turn.take());
                if options.probe_every > 0 && step % options.probe_every == 0 {
                    emit(&events, probe(&trainer, &pace).await);
                }
            }
            Err(skipped) if !skipped.is_fatal() => {
                single_steps = single_steps.saturating_sub(1);
                emit(&events, Event::Skipped(skipped.to_string()));
            }
            Err(fatal) => {
                paused = true;
                single_steps = 0;
                emit(&events, Event::Error(fatal.to_string()));
                emit(&events, Event::Paused(true));
            }
        }
        drop(turn);
        pace.pause(step_delay).await;
    }
}

/// The probes' event (on a page, frames go on while the probe runs).
async fn probe<B: AutodiffBackend>(trainer: &Trainer<B>, pace: &impl Pace) -> Event {
    Event::Probe(trainer.probe_async(pace).await)
}

/// Applies one command; false means stop.
async fn apply<B: AutodiffBackend>(
    trainer: &mut Trainer<B>,
    command: Command,
    paused: &mut bool,
    single_steps: &mut usize,
    events: &Outbox,
    snapshots: &Latest<Snapshot>,
    pace: &impl Pace,
) -> bool {
    let params = trainer.params();
    let result = match command {
        Command::SetAlpha(alpha) => trainer.set_params(PackingParams { alpha, ..params }),
        Command::SetRadiusScale(radius_scale) => trainer.set_params(PackingParams {
            radius_scale,
            ..params
        }),
        Command::SetLearningRate(lr) => trainer.set_lr(lr),
        Command::SetWeightDecay(wd) => trainer.set_weight_decay(wd),
        Command::Pause | Command::Resume => {
            *paused = command == Command::Pause;
            emit(events, Event::Paused(*paused));
            return true;
        }
        Command::Step => {
            *paused = true;
            *single_steps += 1;
            return true;
        }
        Command::Reset => {
            // Fresh weights from the run's seed, but the hyperparameters the user has dialled in.
            let (lr, weight_decay, fault) =
                (trainer.base_lr(), trainer.weight_decay(), trainer.fault());
            *trainer = Trainer::new(
                trainer.config.clone(),
                trainer.data.clone(),
                trainer.device.clone(),
            );
            trainer.set_fault(fault);
            let restored = trainer
                .set_params(params)
                .and_then(|()| trainer.set_lr(lr))
                .and_then(|()| trainer.set_weight_decay(weight_decay));
            snapshots.put(trainer.snapshot_async().await);
            restored
        }
        Command::Probe => {
            emit(events, probe(trainer, pace).await);
            return true;
        }
        Command::SaveCheckpoint(dir) => {
            // `dir` is a run directory: the checkpoint goes to its checkpoints/step-N.
            match checkpoint::save_in_run(trainer, &dir) {
                Ok(saved) => emit(events, Event::Saved(saved)),
                Err(e) => emit(events, Event::Error(e)),
            }
            return true;
        }
        Command::SetPriority(priority) => {
            // The calling thread and every worker of the pool it runs in.
            set_priority(priority);
            #[cfg(not(target_arch = "wasm32"))]
            rayon::broadcast(|_| set_priority(priority));
            return true;
        }
        // (The loop owns the pause and takes this command before it gets here.)
        Command::SetStepDelay(_) => return true,
        Command::Stop => return false,
    };
    match result {
        Ok(()) => emit(
            events,
            Event::Params {
                params: trainer.params(),
                lr: trainer.base_lr(),
                weight_decay: trainer.weight_decay(),
            },
        ),
        Err(e) => emit(events, Event::Error(e)),
    }
    true
}
