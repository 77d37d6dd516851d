//! The CPU page's training thread: a Web Worker running the app's own WebAssembly module (the
//! page's compiled `WebAssembly.Module`, handed over, not downloaded again), with the same
//! [`Session`] as the desktop's training thread. The page draws on its thread while the worker
//! trains on another core, as `clamp view` does with its training thread.
//!
//! The two sides talk in postcard-encoded messages: the page sends [`Command`]s; the worker
//! sends the session's events and its newest snapshot. [`WorkerSession`] is the page's side,
//! with the three calls the viewer makes of a [`Session`]: `send`, `events`, `take_snapshot`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;

use crate::backend::CpuBackend;
use crate::config::TrainConfig;
use crate::data::{FASHION_MNIST_CLASSES, idx_pair_from_bytes};
use crate::train::session::{Command, Event, Session, SessionOptions};
use crate::train::{Snapshot, Trainer, TrainingData};

/// What starts a worker's training.
#[derive(Serialize, Deserialize)]
struct Start {
    /// The run, as a config file says it.
    config: String,
    start_paused: bool,
    snapshots_per_sec: f64,
    probe_every: usize,
    step_delay_ms: u64,
    /// The dataset's two files, as absolute addresses (the worker's own address is another).
    images_url: String,
    labels_url: String,
}

/// What a worker says.
#[derive(Serialize, Deserialize)]
enum FromWorker {
    Events(Vec<Event>),
    Snapshot(Box<Snapshot>),
    /// It could not start, or it stopped (a panic): the reason.
    Failed(String),
}

/// What the page has received from a worker and not yet taken.
#[derive(Default)]
struct Inbox {
    events: Vec<Event>,
    snapshot: Option<Snapshot>,
}

thread_local! {
    /// The page's workers and their message handlers, by id: JavaScript objects stay on the
    /// page's thread, so the session handle itself can be a Bevy resource.
    static WORKERS: RefCell<HashMap<u64, (web_sys::Worker, Closure<dyn FnMut(web_sys::MessageEvent)>, Closure<dyn FnMut(web_sys::ErrorEvent)>)>> =
        RefCell::new(HashMap::new());
    static NEXT_ID: RefCell<u64> = const { RefCell::new(0) };
}

/// The page's side of a training worker.
pub struct WorkerSession {
    id: u64,
    inbox: Arc<Mutex<Inbox>>,
}

fn js_error(what: &str, error: JsValue) -> String {
    format!(
        "{what}: {}",
        error.as_string().unwrap_or_else(|| format!("{error:?}"))
    )
}

/// An address relative to the page, made absolute.
fn absolute(relative: &str) -> Result<String, String> {
    let base = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.base_uri().ok().flatten())
        .ok_or("the page has no address")?;
    web_sys::Url::new_with_base(relative, &base)
        .map(|u| u.href())
        .map_err(|e| js_error(relative, e))
}

impl WorkerSession {
    /// Starts a worker (`DIR/worker.js` beside the page's module) training `config` on the
    /// dataset files next to the page.
    pub fn spawn(
        config: &TrainConfig,
        options: &SessionOptions,
        worker_script: &str,
        images: &str,
        labels: &str,
    ) -> Result<Self, String> {
        let window = web_sys::window().ok_or("no window")?;
        let module = js_sys::Reflect::get(&window, &"clampModule".into())
            .ok()
            .filter(|m| m.is_instance_of::<js_sys::WebAssembly::Module>())
            .ok_or("the page's loader left no compiled module (window.clampModule)")?;
        let start = Start {
            config: config.to_toml(),
            start_paused: options.start_paused,
            snapshots_per_sec: options.snapshots_per_sec,
            probe_every: options.probe_every,
            step_delay_ms: options.step_delay.as_millis() as u64,
            images_url: absolute(images)?,
            labels_url: absolute(labels)?,
        };
        let start = postcard::to_allocvec(&start).map_err(|e| e.to_string())?;

        let worker_options = web_sys::WorkerOptions::new();
        worker_options.set_type(web_sys::WorkerType::Module);
        let worker = web_sys::Worker::new_with_options(worker_script, &worker_options)
            .map_err(|e| js_error(worker_script, e))?;
        let inbox = Arc::new(Mutex::new(Inbox::default()));
        let received = inbox.clone();
        let on_message = Closure::<dyn FnMut(web_sys::MessageEvent)>::new(
            move |message: web_sys::MessageEvent| {
                let bytes = js_sys::Uint8Array::new(&message.data()).to_vec();
                let Ok(mut inbox) = received.lock() else {
                    return;
                };
                match postcard::from_bytes::<FromWorker>(&bytes) {
                    Ok(FromWorker::Events(events)) => inbox.events.extend(events),
                    Ok(FromWorker::Snapshot(snapshot)) => inbox.snapshot = Some(*snapshot),
                    Ok(FromWorker::Failed(why)) => inbox
                        .events
                        .push(Event::Error(format!("training stopped: {why}"))),
                    Err(e) => inbox
                        .events
                        .push(Event::Error(format!("a message from training: {e}"))),
                }
            },
        );
        let failed = inbox.clone();
        let on_error =
            Closure::<dyn FnMut(web_sys::ErrorEvent)>::new(move |error: web_sys::ErrorEvent| {
                if let Ok(mut inbox) = failed.lock() {
                    inbox.events.push(Event::Error(format!(
                        "training stopped: {}",
                        error.message()
                    )));
                }
            });
        worker.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        worker.set_onerror(Some(on_error.as_ref().unchecked_ref()));

        let first = js_sys::Object::new();
        let _ = js_sys::Reflect::set(&first, &"module".into(), &module);
        let _ = js_sys::Reflect::set(
            &first,
            &"start".into(),
            &js_sys::Uint8Array::from(start.as_slice()),
        );
        worker
            .post_message(&first)
            .map_err(|e| js_error("starting the training worker", e))?;
        let id = NEXT_ID.with(|n| {
            let mut n = n.borrow_mut();
            *n += 1;
            *n
        });
        WORKERS.with(|w| w.borrow_mut().insert(id, (worker, on_message, on_error)));
        Ok(Self { id, inbox })
    }
}

impl super::training::SessionElsewhere for WorkerSession {
    /// Sends a command; false when the worker has gone.
    fn send(&self, command: Command) -> bool {
        let Ok(bytes) = postcard::to_allocvec(&command) else {
            return false;
        };
        WORKERS.with(|w| {
            w.borrow().get(&self.id).is_some_and(|(worker, _, _)| {
                worker
                    .post_message(&js_sys::Uint8Array::from(bytes.as_slice()))
                    .is_ok()
            })
        })
    }

    /// Events since the last call, in the order the worker sent them.
    fn events(&self) -> Vec<Event> {
        self.inbox
            .lock()
            .map(|mut inbox| std::mem::take(&mut inbox.events))
            .unwrap_or_default()
    }

    /// The newest snapshot not yet taken.
    fn take_snapshot(&self) -> Option<Snapshot> {
        self.inbox
            .lock()
            .ok()
            .and_then(|mut inbox| inbox.snapshot.take())
    }
}

impl Drop for WorkerSession {
    fn drop(&mut self) {
        if let Some((worker, _, _)) = WORKERS.with(|w| w.borrow_mut().remove(&self.id)) {
            worker.terminate();
        }
    }
}

// The worker's side.

thread_local! {
    /// The worker's session once it has started, and the commands that came before it.
    static SESSION: RefCell<Option<Session>> = const { RefCell::new(None) };
    static EARLY_COMMANDS: RefCell<Vec<Command>> = const { RefCell::new(Vec::new()) };
}

fn post(message: &FromWorker) {
    let Ok(bytes) = postcard::to_allocvec(message) else {
        return;
    };
    let scope: web_sys::DedicatedWorkerGlobalScope = js_sys::global().unchecked_into();
    let _ = scope.post_message(&js_sys::Uint8Array::from(bytes.as_slice()));
}

/// Whether this module runs in a worker (then the page's entry point does nothing).
pub fn in_worker() -> bool {
    js_sys::global().is_instance_of::<web_sys::DedicatedWorkerGlobalScope>()
}

/// The worker's entry point (`web/worker.js` calls it, through the binary's export, with the
/// page's first message).
pub fn worker_start(start: &[u8]) {
    std::panic::set_hook(Box::new(|info| {
        post(&FromWorker::Failed(info.to_string()));
        console_error_panic_hook::hook(info);
    }));
    let start: Start = match postcard::from_bytes(start) {
        Ok(start) => start,
        Err(e) => return post(&FromWorker::Failed(format!("the start message: {e}"))),
    };
    wasm_bindgen_futures::spawn_local(async move {
        if let Err(why) = train(start).await {
            post(&FromWorker::Failed(why));
        }
    });
}

/// A command from the page (`web/worker.js` passes each message on).
pub fn worker_command(bytes: &[u8]) {
    let Ok(command) = postcard::from_bytes::<Command>(bytes) else {
        return post(&FromWorker::Failed(
            "a command the worker cannot read".into(),
        ));
    };
    let sent = SESSION.with(|s| {
        s.borrow()
            .as_ref()
            .map(|session| session.send(command.clone()))
    });
    if sent.is_none() {
        EARLY_COMMANDS.with(|c| c.borrow_mut().push(command));
    }
}

async fn train(start: Start) -> Result<(), String> {
    let config: TrainConfig = toml::from_str(&start.config).map_err(|e| e.to_string())?;
    let images = super::files::fetch_bytes(&start.images_url).await?;
    let labels = super::files::fetch_bytes(&start.labels_url).await?;
    let set = idx_pair_from_bytes(
        &start.images_url,
        images,
        &start.labels_url,
        labels,
        &FASHION_MNIST_CLASSES,
    )
    .map_err(|e| e.to_string())?;
    let data = Arc::new(TrainingData::of_images(
        set.clone(),
        set,
        String::new(),
        &config,
    )?);
    let options = SessionOptions {
        start_paused: start.start_paused,
        snapshots_per_sec: start.snapshots_per_sec,
        probe_every: start.probe_every,
        step_delay: std::time::Duration::from_millis(start.step_delay_ms),
        ..SessionOptions::default()
    };
    let session = Session::spawn(
        move || Trainer::<CpuBackend>::new(config, data, Default::default()),
        options,
    );
    for command in EARLY_COMMANDS.with(|c| std::mem::take(&mut *c.borrow_mut())) {
        session.send(command);
    }
    SESSION.with(|s| *s.borrow_mut() = Some(session));
    // Pass on what the session says, as often as the training loop lets this task run (it
    // hands back control after every step).
    loop {
        let (events, snapshot) = SESSION.with(|s| {
            s.borrow()
                .as_ref()
                .map(|session| (session.events(), session.take_snapshot()))
                .unwrap_or_default()
        });
        if !events.is_empty() {
            post(&FromWorker::Events(events));
        }
        if let Some(snapshot) = snapshot {
            post(&FromWorker::Snapshot(Box::new(snapshot)));
        }
        use crate::pace::Pace;
        crate::pace::Yielding
            .pause(std::time::Duration::from_millis(5))
            .await;
    }
}
