//! Physics mode: plain soft spheres in a periodic box with CLAMP's pair energy
//! `(1 - r/sigma)^alpha`, relaxed by FIRE on a thread of their own and compressed step by step to
//! jamming (O'Hern et al.), drawn by the same renderer. Watching Z climb to 2d at phi_J is the
//! physics the loss borrows.

use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::time::Duration;

use bevy::prelude::*;

use super::runs::Runs;
use super::scene::{SceneFrame, ViewerMode};
use crate::mailbox::Latest;
use crate::pace::Pace;
use crate::physics::{Advance, JamConfig, JamProgress, JammingProtocol, MinimizeStatus};

/// What the panel sets for the sandbox.
#[derive(Resource, Clone, Debug, PartialEq)]
pub struct PhysicsControls {
    pub alpha: f64,
    /// Multiplies every diameter (changes phi by `scale^dim`) while not compressing.
    pub radius_scale: f64,
    pub n: usize,
    pub dim: usize,
    pub bidisperse: bool,
    /// Run the compression protocol to jamming.
    pub compressing: bool,
    /// Bumped by "New packing": a fresh random state.
    pub generation: u64,
}

impl Default for PhysicsControls {
    fn default() -> Self {
        Self {
            alpha: 2.0,
            radius_scale: 1.0,
            n: 512,
            dim: 3,
            bidisperse: true,
            compressing: true,
            generation: 0,
        }
    }
}

/// The sandbox's read-out for the panel and plots.
#[derive(Resource, Clone, Debug, Default)]
pub struct PhysicsStatus {
    pub n: usize,
    pub dim: usize,
    pub phi: f64,
    pub contacts: f64,
    pub energy_per_particle: f64,
    pub pressure: f64,
    pub rattler_fraction: f64,
    pub phi_j: Option<f64>,
    pub stage: String,
    /// One point per finished minimization of the protocol.
    pub history_phi: Vec<f64>,
    pub history_contacts: Vec<f64>,
    pub history_energy: Vec<f64>,
    pub history_pressure: Vec<f64>,
}

struct PhysicsThread {
    controls: Sender<(PhysicsControls, bool)>,
    latest: Arc<Latest<(SceneFrame, PhysicsStatus)>>,
}

#[derive(Resource, Default)]
struct PhysicsLink(Option<PhysicsThread>);

/// The physics sandbox, and the switch between it and training.
#[derive(Default)]
pub struct PhysicsModePlugin {
    /// What the viewer shows at start.
    pub mode: ViewerMode,
}

impl Plugin for PhysicsModePlugin {
    fn build(&self, app: &mut App) {
        app.init_resource::<PhysicsControls>()
            .init_resource::<PhysicsStatus>()
            .init_resource::<PhysicsLink>()
            .insert_resource(self.mode)
            .init_resource::<Runs>()
            .add_systems(Update, drive_physics);
    }
}

fn drive_physics(
    mode: Res<ViewerMode>,
    controls: Res<PhysicsControls>,
    mut link: ResMut<PhysicsLink>,
    mut status: ResMut<PhysicsStatus>,
    mut runs: ResMut<Runs>,
    mut sent: Local<Option<(PhysicsControls, bool)>>,
) {
    let active = *mode == ViewerMode::Physics;
    if link.0.is_none() {
        if !active {
            return;
        }
        link.0 = Some(spawn(controls.clone()));
    }
    let Some(thread) = link.0.as_ref() else {
        return;
    };
    let wanted = (controls.clone(), active);
    if sent.as_ref() != Some(&wanted) {
        let _ = thread.controls.send(wanted.clone());
        *sent = Some(wanted);
    }
    if let Some((frame, new_status)) = thread.latest.take()
        && active
    {
        *status = new_status;
        // The sandbox is drawn in the first view (the others rest while it runs).
        if let Some(first) = runs.list.first_mut() {
            first.incoming = Some(frame);
        }
    }
}

fn spawn(initial: PhysicsControls) -> PhysicsThread {
    let (tx, rx) = mpsc::channel();
    let latest = Arc::new(Latest::default());
    let mailbox = latest.clone();
    #[cfg(not(target_arch = "wasm32"))]
    std::thread::Builder::new()
        .name("clamp-physics".into())
        .spawn(move || burn::tensor::read_sync(run(initial, rx, mailbox, crate::pace::Blocking)))
        .expect("spawning the physics thread");
    // A page has one thread: the loop is a task of the page's, run between frames.
    #[cfg(target_arch = "wasm32")]
    wasm_bindgen_futures::spawn_local(run(initial, rx, mailbox, crate::pace::Yielding));
    PhysicsThread {
        controls: tx,
        latest,
    }
}

/// FIRE iterations between two published frames.
const ITERATIONS_PER_FRAME: usize = 150;
/// The demo resolves phi_J to this (the `clamp jam` benchmark goes to 1e-5).
const PHI_TOLERANCE: f64 = 1e-4;

/// The packing on screen and the jamming protocol that compresses it: the very state machine
/// `clamp jam` runs, driven one slice of FIRE iterations per frame.
struct Sandbox {
    protocol: JammingProtocol,
    status: PhysicsStatus,
}

impl Sandbox {
    fn new(controls: &PhysicsControls) -> Result<Self, String> {
        let mut cfg = JamConfig::new(controls.dim, controls.n);
        cfg.bidisperse = controls.bidisperse;
        cfg.alpha = controls.alpha;
        cfg.seed = controls.generation;
        // Well below jamming, so that the compression is there to watch.
        cfg.phi_start = if controls.dim == 3 { 0.50 } else { 0.72 };
        cfg.phi_tolerance = PHI_TOLERANCE;
        let protocol = JammingProtocol::new(&cfg)?;
        Ok(Self {
            status: PhysicsStatus {
                n: cfg.n,
                dim: cfg.dim,
                phi: cfg.phi_start,
                stage: "relaxing a random packing".into(),
                ..default()
            },
            protocol,
        })
    }

    /// One slice of the protocol; its decisions go to the stage line and the plots.
    fn compress(&mut self) {
        let done = match self.protocol.advance(ITERATIONS_PER_FRAME) {
            Ok(Advance::Minimizing) => return,
            Ok(Advance::Minimized(done)) => done,
            Ok(Advance::Jammed(done)) => {
                self.record(&done);
                self.status.phi_j = Some(done.phi);
                self.status.stage = format!("jammed: phi_J = {:.4}", done.phi);
                return;
            }
            Err(e) => {
                self.status.stage = format!("error: {e}");
                return;
            }
        };
        self.record(&done);
        self.status.stage = format!(
            "{} to phi = {:.4} (step {:.1e})",
            match self.protocol.direction() {
                Some(false) => "decompressing",
                _ => "compressing",
            },
            self.protocol.phi(),
            self.protocol.step()
        );
    }

    fn frame(&mut self, step: usize) -> (SceneFrame, PhysicsStatus) {
        let packing = self.protocol.packing();
        let (dim, n) = (self.protocol.config().dim, self.protocol.config().n);
        let length = packing.box_len().unwrap_or(1.0);
        let to_view = |x: f64| ((x / length) - 0.5) as f32 * 2.0;
        let positions = packing.positions();
        let mut centers = Vec::with_capacity(3 * n);
        for p in positions.chunks(dim) {
            centers.push(to_view(p[0]));
            centers.push(to_view(p[1]));
            centers.push(if dim == 3 { to_view(p[2]) } else { 0.0 });
        }
        let diameters = packing.diameters();
        let radii: Vec<f32> = diameters.iter().map(|d| (d / length) as f32).collect();
        let smallest = diameters.iter().cloned().fold(f64::INFINITY, f64::min);
        let labels = diameters
            .iter()
            .map(|&d| u16::from(d > smallest * 1.2))
            .collect();
        let pairs = packing.contacts();
        let mut contacts = vec![0u32; n];
        let mut drawn_pairs = Vec::with_capacity(pairs.len());
        for &(i, j) in &pairs {
            contacts[i] += 1;
            contacts[j] += 1;
            // A pair across the periodic boundary would be drawn across the whole box.
            let span: f32 = (0..3)
                .map(|k| (centers[3 * i + k] - centers[3 * j + k]).powi(2))
                .sum::<f32>()
                .sqrt();
            if span < 1.5 * (radii[i] + radii[j]) {
                drawn_pairs.push([i as u32, j as u32]);
            }
        }
        let stats = packing.contact_stats();
        self.status.phi = self.protocol.phi();
        self.status.contacts = stats.mean_contacts;
        self.status.rattler_fraction = stats.rattler_fraction;
        self.status.energy_per_particle = packing.energy_per_particle();
        self.status.pressure = packing.pressure();
        let frame = SceneFrame {
            step,
            dim: 3,
            centers,
            radii,
            labels,
            contacts,
            pairs: drawn_pairs,
            images: Vec::new(),
            unit_sphere: false,
        };
        (frame, self.status.clone())
    }

    /// One point of the plots per finished minimization.
    fn record(&mut self, done: &JamProgress) {
        self.status.history_phi.push(done.phi);
        self.status.history_contacts.push(done.contacts);
        self.status.history_energy.push(done.energy_per_particle);
        self.status.history_pressure.push(done.pressure);
    }
}

async fn run(
    initial: PhysicsControls,
    commands: Receiver<(PhysicsControls, bool)>,
    latest: Arc<Latest<(SceneFrame, PhysicsStatus)>>,
    pace: impl Pace,
) {
    let mut controls = initial;
    let mut active = true;
    let mut sandbox = match Sandbox::new(&controls) {
        Ok(s) => s,
        Err(e) => {
            latest.put((
                SceneFrame::default(),
                PhysicsStatus {
                    stage: format!("error: {e}"),
                    ..default()
                },
            ));
            return;
        }
    };
    let mut base_phi = sandbox.protocol.phi();
    let mut step = 0usize;
    loop {
        // Newest controls win; while hidden, wait for the viewer to come back.
        let mut next = None;
        loop {
            let block = !(active || next.is_some());
            match pace.receive(&commands, block).await {
                Ok(message) => {
                    active = message.1;
                    next = Some(message.0);
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return,
            }
        }
        if let Some(wanted) = next {
            let rebuild = wanted.n != controls.n
                || wanted.dim != controls.dim
                || wanted.bidisperse != controls.bidisperse
                || wanted.generation != controls.generation;
            let result = if rebuild {
                Sandbox::new(&wanted).map(|s| {
                    sandbox = s;
                    base_phi = sandbox.protocol.phi();
                })
            } else {
                let mut r = Ok(());
                if wanted.alpha != controls.alpha {
                    r = sandbox.protocol.set_alpha(wanted.alpha);
                }
                if r.is_ok() && wanted.radius_scale != controls.radius_scale && !wanted.compressing
                {
                    r = sandbox.protocol.set_packing_fraction(
                        base_phi * wanted.radius_scale.powi(wanted.dim as i32),
                    );
                }
                if wanted.compressing && !controls.compressing {
                    sandbox.protocol.restart();
                    sandbox.status.phi_j = None;
                }
                r
            };
            if let Err(e) = result {
                sandbox.status.stage = format!("error: {e}");
            }
            controls = wanted;
        }
        if !active {
            continue;
        }
        if controls.compressing && sandbox.status.phi_j.is_none() {
            sandbox.compress();
        } else {
            // At a fixed packing fraction: relax, then rest.
            let report = sandbox
                .protocol
                .packing_mut()
                .minimize(ITERATIONS_PER_FRAME);
            if report.status != MinimizeStatus::MaxIterations {
                if sandbox.status.phi_j.is_none() {
                    sandbox.status.stage =
                        format!("at rest at phi = {:.4}", sandbox.protocol.phi());
                }
                pace.pause(Duration::from_millis(30)).await;
            }
        }
        // Frames published so far: the scene eases toward each new one.
        step += 1;
        latest.put(sandbox.frame(step));
        pace.pause(Duration::ZERO).await;
    }
}
