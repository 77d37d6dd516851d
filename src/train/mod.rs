//! The training loop, written by hand (not burn's `Learner`) so that it can pause, take a single
//! step, and change the packing hyperparameters, the learning rate or the weight decay between
//! two steps. [`Trainer`] owns the model, the optimizer and the device; [`session`] runs one on
//! its own thread behind a command channel.

#[cfg(all(not(target_arch = "wasm32"), feature = "gpu"))]
pub mod agreement;
pub mod checkpoint;
#[cfg(all(not(target_arch = "wasm32"), feature = "gpu"))]
pub mod choose;
pub mod inputs;
pub mod session;

pub use inputs::TrainingData;

/// What every run starts from: its data and the backend it will train on, plus the lines that
/// say which (the caller logs them its own way: stderr for the CLI, the log for the viewer).
pub struct RunStart {
    pub data: Arc<TrainingData>,
    pub backend: crate::backend::ResolvedBackend,
    /// A fallback the user should know about (no GPU adapter, say).
    pub warning: Option<String>,
    /// "data: ..." and "backend: ...".
    pub notes: Vec<String>,
}

impl RunStart {
    /// Loads the configured dataset and resolves the configured backend.
    pub fn prepare(config: &TrainConfig) -> Result<Self, String> {
        Self::prepare_with(config, crate::backend::resolve(config.backend))
    }

    /// Loads the configured dataset; training runs on `backend`.
    pub fn prepare_with(
        config: &TrainConfig,
        backend: crate::backend::ResolvedBackend,
    ) -> Result<Self, String> {
        let data = Arc::new(TrainingData::load(config)?);
        Ok(Self {
            notes: vec![
                format!("data: {}", data.description),
                format!("backend: {}", backend.description),
            ],
            warning: backend.warning.clone(),
            data,
            backend,
        })
    }

    /// This start, for training `config`: with `auto` and a hardware GPU, on the faster backend
    /// by a few steps timed on each ([`choose`]); refused on a software adapter when a step's
    /// longest sum would loop more than it safely can
    /// ([`crate::backend::SOFTWARE_ADAPTER_SAFE_ITERATIONS`]; evaluation makes no such sums).
    // `mut` is used only where a GPU backend can be chosen by timing.
    #[cfg_attr(any(target_arch = "wasm32", not(feature = "gpu")), allow(unused_mut))]
    pub fn for_training(mut self, config: &TrainConfig) -> Result<Self, String> {
        #[cfg(all(not(target_arch = "wasm32"), feature = "gpu"))]
        if self.backend.time_both {
            let (backend, _) = choose::faster_backend(self.backend, config, &self.data)?;
            self.notes.retain(|note| !note.starts_with("backend: "));
            self.notes.push(format!("backend: {}", backend.description));
            self.backend = backend;
        }
        if self.backend.software_adapter {
            refuse_sums_too_long_for_software(config, &self.data)?;
        }
        Ok(self)
    }

    /// Writes the notes and the warning to stderr.
    pub fn report_to_stderr(&self) {
        if let Some(warning) = &self.warning {
            eprintln!("warning: {warning}");
        }
        for note in &self.notes {
            eprintln!("{note}");
        }
    }
}

/// Refuses a run whose step would make a sum longer than a software adapter computes
/// ([`crate::backend::SOFTWARE_ADAPTER_SAFE_ITERATIONS`]), naming the batch that fits. The
/// longest loop of a WGPU step is a batch-norm statistic's: a workgroup of
/// `kernels::gpu::norm_pool::CHANNEL_THREADS` threads adds a channel's values over the batch,
/// each thread `images × pixels / threads` of them (every other sum of the step is split
/// into loops of a few thousand iterations at most, or runs over the batch's images).
fn refuse_sums_too_long_for_software(
    config: &TrainConfig,
    data: &TrainingData,
) -> Result<(), String> {
    use crate::backend::{SOFTWARE_ADAPTER_LOOP_LIMIT, SOFTWARE_ADAPTER_SAFE_ITERATIONS as LIMIT};
    #[cfg(feature = "gpu")]
    use crate::kernels::gpu::norm_pool::CHANNEL_THREADS as THREADS;
    #[cfg(not(feature = "gpu"))]
    const THREADS: usize = 1;
    let model = config.model(data.train.channels, data.train.height * data.train.width);
    let per_image = model.longest_sum_per_image();
    let iterations = |batch: usize| {
        let images = batch * config.views;
        (images * per_image).div_ceil(THREADS).max(images)
    };
    if iterations(config.batch) <= LIMIT {
        return Ok(());
    }
    let fits = (1..config.batch)
        .rev()
        .find(|&b| iterations(b) <= LIMIT)
        .map_or("Train on fewer views".to_string(), |b| {
            format!("Use --batch {b} or less")
        });
    Err(format!(
        "--backend wgpu on a software rasterizer cannot train this run correctly: a sum of its \
         step adds {} values (batch {} x {} views x {per_image}), {} in each thread's loop, and \
         the software adapter ends every shader loop after {SOFTWARE_ADAPTER_LOOP_LIMIT}, so \
         the sum would come out short. {fits}, or train on the CPU (--backend auto or cpu, \
         faster here anyway)",
        config.batch * config.views * per_image,
        config.batch,
        config.views,
        iterations(config.batch),
    ))
}

use std::sync::Arc;
use web_time::Instant;

use burn::module::{AutodiffModule, Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{ElementConversion, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::augment::make_views;
use crate::config::{LossKind, TrainConfig};
use crate::eval::{Features, KNN_K, LinearProbeFit, ProbeSettings, knn_accuracy_async};
use crate::loss::{Packing, PackingParams};
use crate::model::ClampModel;
use crate::optim::{ModelOptimizer, scheduled_lr};
use crate::readout::{
    DEVICE_READOUT_MAX_BATCH, PackingMetrics, PackingReadout, contact_pairs, host_readout,
};
use crate::simclr::nt_xent;

/// What one optimisation step did.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StepReport {
    /// Steps completed, this one included.
    pub step: usize,
    /// The objective that was minimised (CLAMP or SimCLR).
    pub loss: f64,
    /// Packing read-out of this batch (always CLAMP's, whatever the objective).
    pub packing: PackingMetrics,
    pub alpha: f64,
    pub radius_scale: f64,
    pub lr: f64,
    pub weight_decay: f64,
    pub seconds: f64,
    pub images_per_sec: f64,
}

/// Accuracy of the frozen features.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ProbeReport {
    pub step: usize,
    pub knn_acc: f64,
    pub linear_acc: f64,
    pub seconds: f64,
}

/// The state of the fixed evaluation spheres at one step, for the viewer and the recorder.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Snapshot {
    pub step: usize,
    pub params: PackingParams,
    pub readout: PackingReadout,
    /// Class of each sphere.
    pub labels: Vec<u16>,
    /// Index of each sphere's image in the evaluation set.
    pub images: Vec<usize>,
    /// Touching spheres `(i, j)`, `i < j` (the read-out's contact rule).
    pub pairs: Vec<[u32; 2]>,
}

/// Non-finite steps in a row after which a run stops: by then halving the learning rate has not
/// helped, and something else (the data, the configuration) is wrong.
pub const MAX_NON_FINITE_IN_A_ROW: usize = 3;

/// A step whose loss or gradient was NaN or infinite. Its update was not applied (the weights and
/// the optimizer state in force are those of the last finite step), its batch was skipped, and
/// the learning rate was halved.
#[derive(Clone, Debug, PartialEq)]
pub struct NonFiniteStep {
    /// The step that went wrong (1-based, as in step reports).
    pub step: usize,
    /// "the loss" or "the gradient".
    pub what: &'static str,
    /// The base learning rate now in force (halved).
    pub lr: f64,
    /// Non-finite steps in a row, this one included.
    pub in_a_row: usize,
}

impl NonFiniteStep {
    /// Three in a row: the run should stop.
    pub fn is_fatal(&self) -> bool {
        self.in_a_row >= MAX_NON_FINITE_IN_A_ROW
    }
}

impl std::fmt::Display for NonFiniteStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_fatal() {
            write!(
                f,
                "{} was NaN or infinite at {} steps in a row (steps {}-{}) although the learning \
                 rate was halved each time (now {:.3e}): stopped with the weights of the last \
                 finite step; lower --lr, or check the data and the configuration",
                self.what,
                self.in_a_row,
                self.step + 1 - self.in_a_row,
                self.step,
                self.lr
            )
        } else {
            write!(
                f,
                "step {}: {} was NaN or infinite; its update was not applied (weights and \
                 optimizer of the last finite step kept) and the learning rate was halved to {:.3e}",
                self.step, self.what, self.lr
            )
        }
    }
}

/// The error a training step can end with.
pub type TrainError = NonFiniteStep;

/// What a fault injected on purpose does (`CLAMP_FAULT`, see [`Fault`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// The step's loss becomes NaN.
    NanLoss,
    /// The step's loss stays finite but its gradient becomes infinite.
    NanGrad,
    /// The process sends itself SIGINT after the step (as if Ctrl-C were pressed).
    Interrupt,
    /// `clamp train` stalls after the step (up to two minutes, as a hung step would), until a
    /// signal arrives: a window in which to send it SIGTERM, or two signals.
    Stall,
}

/// A fault injected on purpose, to check what a run does when a step goes wrong:
/// `nan-loss@K` (step K only), `nan-loss@K..` (every step from K), likewise `nan-grad@K`,
/// `interrupt@K` and `stall@K`. Read from the `CLAMP_FAULT` environment variable by the commands that train.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    pub kind: FaultKind,
    pub step: usize,
    /// `K..`: every step from K on, not only K.
    pub onwards: bool,
}

impl std::str::FromStr for Fault {
    type Err = String;

    fn from_str(spec: &str) -> Result<Self, String> {
        let usage =
            "expected KIND@STEP or KIND@STEP.. with KIND nan-loss, nan-grad, interrupt or stall";
        let (kind, at) = spec
            .split_once('@')
            .ok_or_else(|| format!("'{spec}': {usage}"))?;
        let kind = match kind {
            "nan-loss" => FaultKind::NanLoss,
            "nan-grad" => FaultKind::NanGrad,
            "interrupt" => FaultKind::Interrupt,
            "stall" => FaultKind::Stall,
            other => return Err(format!("unknown fault '{other}': {usage}")),
        };
        let (step, onwards) = match at.strip_suffix("..") {
            Some(step) => (step, true),
            None => (at, false),
        };
        let step: usize =
            step.parse().ok().filter(|&s| s >= 1).ok_or_else(|| {
                format!("'{spec}': the step must be a whole number from 1; {usage}")
            })?;
        Ok(Self {
            kind,
            step,
            onwards,
        })
    }
}

impl Fault {
    /// The fault named by `CLAMP_FAULT`, if set.
    pub fn from_env() -> Result<Option<Self>, String> {
        match std::env::var("CLAMP_FAULT") {
            Ok(spec) if !spec.trim().is_empty() => spec
                .trim()
                .parse()
                .map(Some)
                .map_err(|e| format!("CLAMP_FAULT: {e}")),
            _ => Ok(None),
        }
    }

    /// Whether the fault strikes step `step` (1-based).
    pub fn strikes(&self, step: usize) -> bool {
        if self.onwards {
            step >= self.step
        } else {
            step == self.step
        }
    }
}

pub use crate::seed::{mix_seed, permutation};

/// Hands control back to a page every [`YIELD_EVERY`] of work (on a thread of its own,
/// [`crate::pace::Blocking`], that costs nothing): long work (a probe) keeps the page drawing.
struct Yields<'a, P: crate::pace::Pace> {
    pace: &'a P,
    since: Instant,
}

/// Work between two hand-backs of [`Yields`].
const YIELD_EVERY: std::time::Duration = std::time::Duration::from_millis(30);

impl<'a, P: crate::pace::Pace> Yields<'a, P> {
    fn to(pace: &'a P) -> Self {
        Self {
            pace,
            since: Instant::now(),
        }
    }

    async fn now_and_then(&mut self) {
        if self.since.elapsed() >= YIELD_EVERY {
            self.pace.pause(std::time::Duration::ZERO).await;
            self.since = Instant::now();
        }
    }
}

/// An epoch's order of the training images, keyed by (image count, the epoch's seed).
type EpochOrder = ((usize, u64), Arc<Vec<usize>>);

/// Model, optimizer, data and the live hyperparameters.
pub struct Trainer<B: AutodiffBackend> {
    pub config: TrainConfig,
    pub data: Arc<TrainingData>,
    pub device: B::Device,
    model: ClampModel<B>,
    optimizer: ModelOptimizer<ClampModel<B>, B>,
    step: usize,
    total_steps: usize,
    params: PackingParams,
    base_lr: f64,
    weight_decay: f64,
    fault: Option<Fault>,
    non_finite_in_a_row: usize,
    /// The epoch's order of the training images: a step reads its slice instead of shuffling
    /// all of them again.
    epoch_order: std::sync::Mutex<Option<EpochOrder>>,
    /// The snapshot images' views as the model's input, on the device: the same views every
    /// time, so they are augmented and uploaded once and a snapshot costs one forward pass
    /// (with 10,000 spheres, 125 MB of pixels a frame otherwise).
    snapshot_input: std::sync::OnceLock<Tensor<B::InnerBackend, 4>>,
    /// The same for the images of [`Trainer::picture`] (the images they are of, and them).
    picture_input: std::sync::Mutex<Option<(Vec<usize>, Tensor<B::InnerBackend, 4>)>>,
}

impl<B: AutodiffBackend> Trainer<B> {
    /// A fresh model initialised from the config's seed.
    pub fn new(config: TrainConfig, data: Arc<TrainingData>, device: B::Device) -> Self {
        let model = config
            .model(data.train.channels, data.train.height * data.train.width)
            .init::<B>(config.seed, &device);
        let optimizer = ModelOptimizer::new(config.optimizer, config.weight_decay);
        let total_steps = config.total_steps(data.train.len);
        Self {
            params: config.packing(),
            base_lr: config.lr,
            weight_decay: config.weight_decay,
            total_steps,
            config,
            data,
            device,
            model,
            optimizer,
            step: 0,
            fault: None,
            non_finite_in_a_row: 0,
            epoch_order: Default::default(),
            snapshot_input: Default::default(),
            picture_input: Default::default(),
        }
    }

    /// Injects `fault` into the steps it names (see [`Fault`]); `None` removes it.
    pub fn set_fault(&mut self, fault: Option<Fault>) {
        self.fault = fault;
    }

    pub fn fault(&self) -> Option<Fault> {
        self.fault
    }

    pub fn step_count(&self) -> usize {
        self.step
    }

    pub fn total_steps(&self) -> usize {
        self.total_steps
    }

    pub fn params(&self) -> PackingParams {
        self.params
    }

    pub fn model(&self) -> &ClampModel<B> {
        &self.model
    }

    /// Images per step as the network sees them (views included).
    fn batch_size(&self) -> usize {
        self.config.batch.min(self.data.train.len)
    }

    /// The images of step `step`: consecutive slices of a fresh permutation every epoch, a pure
    /// function of (seed, step) so a resumed run sees the same batches.
    pub fn batch_indices(&self, step: usize) -> Vec<usize> {
        let n = self.data.train.len;
        let batch = self.batch_size();
        let per_epoch = (n / batch).max(1);
        let key = (n, mix_seed(self.config.seed, (step / per_epoch) as u64));
        let order = {
            let mut cached = self.epoch_order.lock().unwrap_or_else(|e| e.into_inner());
            match cached.as_ref() {
                Some((k, order)) if *k == key => Arc::clone(order),
                _ => {
                    let order = Arc::new(permutation(key.0, key.1));
                    *cached = Some((key, Arc::clone(&order)));
                    order
                }
            }
        };
        let start = (step % per_epoch) * batch;
        order[start..start + batch].to_vec()
    }

    /// Normalised network input `[count, C, H, W]` from `[0, 1]` pixels.
    fn input_tensor<K: Backend>(
        &self,
        pixels: Vec<f32>,
        count: usize,
        device: &K::Device,
    ) -> Tensor<K, 4> {
        let set = &self.data.train;
        let (c, h, w) = (set.channels, set.height, set.width);
        let mut pixels = pixels;
        // A plane at a time: one channel's statistics for each, no index arithmetic per pixel.
        for (k, plane) in pixels.chunks_exact_mut((h * w).max(1)).enumerate() {
            let (mean, std) = (self.data.channel_mean[k % c], self.data.channel_std[k % c]);
            plane
                .iter_mut()
                .for_each(|value| *value = (*value - mean) / std);
        }
        Tensor::from_data(TensorData::new(pixels, [count, c, h, w]), device)
    }

    /// Projector outputs `[m, B, d]` of the augmented views of step `step`.
    fn step_projections(&self, step: usize) -> Tensor<B, 3> {
        let indices = self.batch_indices(step);
        let views = self.config.views;
        let pixels = make_views(
            &self.data.train,
            &indices,
            views,
            &self.data.augment,
            mix_seed(self.config.seed ^ 0xA5A5, step as u64),
        );
        let input = self.input_tensor::<B>(pixels, views * indices.len(), &self.device);
        self.model.project_views(input, views)
    }

    fn objective(
        &self,
        projections: Tensor<B, 3>,
        params: &PackingParams,
    ) -> (Tensor<B, 1>, Packing<B>) {
        let packing = Packing::new(projections.clone(), params);
        let loss = match self.config.loss {
            LossKind::Clamp => packing.loss.clone(),
            LossKind::Simclr => nt_xent(projections, self.config.temperature),
        };
        (loss, packing)
    }

    /// The loss the next step would report with `params`, without changing anything.
    pub fn preview_loss(&self, params: &PackingParams) -> f64 {
        let (loss, _) = self.objective(self.step_projections(self.step), params);
        loss.into_scalar().elem::<f64>()
    }

    /// Learning rate of the next step (schedule included).
    pub fn current_lr(&self) -> f64 {
        scheduled_lr(
            self.base_lr,
            self.batch_size(),
            self.step,
            self.config.warmup_steps,
            self.total_steps,
        )
    }

    /// One optimisation step. A NaN or infinite loss or gradient is caught before the update is
    /// applied: the step's batch is skipped, the weights and optimizer state stay those of the
    /// last finite step, the learning rate is halved, and the error says so (see
    /// [`NonFiniteStep::is_fatal`] for when to give up).
    pub fn step(&mut self) -> Result<StepReport, TrainError> {
        burn::tensor::read_sync(self.step_async())
    }

    /// [`Trainer::step`] without blocking: its two read-backs (the read-out, the gradient check)
    /// are awaited, so a browser's page keeps drawing while the GPU works.
    pub async fn step_async(&mut self) -> Result<StepReport, TrainError> {
        let started = Instant::now();
        let number = self.step + 1;
        let fault = self.fault.filter(|f| f.strikes(number)).map(|f| f.kind);
        let projections = self.step_projections(self.step);
        let (mut loss, packing) = self.objective(projections.clone(), &self.params);
        // Read out before backward: the packing tensors belong to the graph backward consumes.
        let readout = packing.readout_async().await;
        let mut loss_value = match self.config.loss {
            LossKind::Clamp => readout.metrics.loss,
            LossKind::Simclr => read_scalar(loss.clone()).await,
        };
        match fault {
            Some(FaultKind::NanLoss) => {
                loss = loss.mul_scalar(f64::NAN);
                loss_value = f64::NAN;
            }
            Some(FaultKind::NanGrad) => {
                // Adds zero to the loss, but d sqrt(x)/dx at x = 0 is infinite.
                let zero = projections.clone() - projections.detach();
                loss = loss + zero.sqrt().sum();
            }
            Some(FaultKind::Interrupt | FaultKind::Stall) | None => {}
        }
        if !loss_value.is_finite() {
            return Err(self.skip_step("the loss"));
        }
        let lr = self.current_lr();
        let grads = GradientsParams::from_grads(loss.backward(), &self.model);
        if !gradients_are_finite(&self.model, &grads).await {
            return Err(self.skip_step("the gradient"));
        }
        self.model = self.optimizer.step(lr, self.model.clone(), grads);
        self.step += 1;
        self.non_finite_in_a_row = 0;
        let seconds = started.elapsed().as_secs_f64();
        Ok(StepReport {
            step: self.step,
            loss: loss_value,
            packing: readout.metrics,
            alpha: self.params.alpha,
            radius_scale: self.params.radius_scale,
            lr,
            weight_decay: self.weight_decay,
            seconds,
            images_per_sec: (self.batch_size() * self.config.views) as f64 / seconds.max(1e-9),
        })
    }

    /// The gradient the next step would apply (its batch, its loss), parameter by parameter in
    /// visiting order, each named by its path in the model (`encoder.conv1.weight`): what two
    /// backends are compared on. Weights and optimizer stay as they are (batch norm's running
    /// statistics see the batch, as in any forward).
    pub fn gradients(&self) -> Vec<(String, Vec<f32>)> {
        let projections = self.step_projections(self.step);
        let (loss, _) = self.objective(projections, &self.params);
        let grads = GradientsParams::from_grads(loss.backward(), &self.model);
        struct Collect<'a> {
            grads: &'a GradientsParams,
            path: Vec<String>,
            blocks: Vec<(String, Vec<f32>)>,
        }
        impl<B: AutodiffBackend> ModuleVisitor<B> for Collect<'_> {
            fn enter_module(&mut self, name: &str, _container_type: &str) {
                self.path.push(name.to_string());
            }
            fn exit_module(&mut self, _name: &str, _container_type: &str) {
                self.path.pop();
            }
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
                if let Some(grad) = self.grads.get::<B::InnerBackend, D>(param.id) {
                    let values = grad.into_data().iter::<f32>().collect();
                    self.blocks.push((self.path.join("."), values));
                }
            }
        }
        let mut visitor = Collect {
            grads: &grads,
            path: Vec::new(),
            blocks: Vec::new(),
        };
        self.model.visit(&mut visitor);
        visitor.blocks
    }

    /// Every parameter's values, flattened, in the model's visiting order and named as in
    /// [`Trainer::gradients`].
    pub fn weights(&self) -> Vec<(String, Vec<f32>)> {
        struct Collect {
            path: Vec<String>,
            blocks: Vec<(String, Vec<f32>)>,
        }
        impl<B: AutodiffBackend> ModuleVisitor<B> for Collect {
            fn enter_module(&mut self, name: &str, _container_type: &str) {
                self.path.push(name.to_string());
            }
            fn exit_module(&mut self, _name: &str, _container_type: &str) {
                self.path.pop();
            }
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
                let values = param.val().into_data().iter::<f32>().collect();
                self.blocks.push((self.path.join("."), values));
            }
        }
        let mut visitor = Collect {
            path: Vec::new(),
            blocks: Vec::new(),
        };
        self.model.visit(&mut visitor);
        visitor.blocks
    }

    /// Skips the current step's batch without touching weights or optimizer, and halves the
    /// learning rate.
    fn skip_step(&mut self, what: &'static str) -> NonFiniteStep {
        self.step += 1;
        self.non_finite_in_a_row += 1;
        self.base_lr /= 2.0;
        NonFiniteStep {
            step: self.step,
            what,
            lr: self.base_lr,
            in_a_row: self.non_finite_in_a_row,
        }
    }

    /// Changes alpha / r_s / the energy form for the next step.
    pub fn set_params(&mut self, params: PackingParams) -> Result<(), String> {
        params.validate()?;
        self.params = params;
        Ok(())
    }

    /// Changes the base learning rate (for a batch of 256) for the next step.
    pub fn set_lr(&mut self, lr: f64) -> Result<(), String> {
        crate::limits::check_range("lr", lr, crate::config::LR_RANGE)?;
        self.base_lr = lr;
        Ok(())
    }

    /// Changes the weight decay for the next step, keeping the optimizer's moments.
    pub fn set_weight_decay(&mut self, weight_decay: f64) -> Result<(), String> {
        crate::limits::check_range(
            "weight_decay",
            weight_decay,
            crate::config::WEIGHT_DECAY_RANGE,
        )?;
        let kind = self.optimizer.kind();
        let old = std::mem::replace(&mut self.optimizer, ModelOptimizer::new(kind, 0.0));
        self.optimizer = old.with_weight_decay(weight_decay);
        self.weight_decay = weight_decay;
        Ok(())
    }

    /// The seed of the views the snapshots (and `clamp embed`, by default) embed.
    pub fn snapshot_view_seed(&self) -> u64 {
        mix_seed(self.config.seed, u64::MAX)
    }

    /// Projector outputs `[views, indices.len(), d]` of `views` augmented views of `indices`
    /// of the train (`test = false`) or test split, in inference mode; `seed` picks the views.
    pub fn embed_views(
        &self,
        test: bool,
        indices: &[usize],
        views: usize,
        seed: u64,
    ) -> Tensor<B::InnerBackend, 3> {
        let set = if test {
            &self.data.test
        } else {
            &self.data.train
        };
        let pixels = make_views(set, indices, views, &self.data.augment, seed);
        let input =
            self.input_tensor::<B::InnerBackend>(pixels, views * indices.len(), &self.device);
        embed_in_chunks(&self.model.valid(), input, 1024).reshape([
            views,
            indices.len(),
            self.config.dim,
        ])
    }

    /// The spheres of `images` of the test split as a run's folder keeps them
    /// ([`crate::pictures`]): centers and radii (r_s included) of the snapshot views, in
    /// inference mode; only these two are read back. The views are augmented and uploaded once.
    pub fn picture(&self, images: &[usize]) -> crate::pictures::Picture {
        let views = self.config.views;
        let input = {
            let mut cached = self.picture_input.lock().unwrap_or_else(|e| e.into_inner());
            match cached.as_ref() {
                Some((kept, input)) if kept == images => input.clone(),
                _ => {
                    let pixels = make_views(
                        &self.data.test,
                        images,
                        views,
                        &self.data.augment,
                        self.snapshot_view_seed(),
                    );
                    let input = self.input_tensor::<B::InnerBackend>(
                        pixels,
                        views * images.len(),
                        &self.device,
                    );
                    *cached = Some((images.to_vec(), input.clone()));
                    input
                }
            }
        };
        let projections = embed_in_chunks(&self.model.valid(), input, 1024).reshape([
            views,
            images.len(),
            self.config.dim,
        ]);
        let packing = Packing::new(projections, &self.params);
        let data = burn::tensor::Transaction::default()
            .register(packing.centers)
            .register(packing.radii)
            .execute();
        let values = |k: usize| -> Vec<f32> {
            data.get(k)
                .map(|d| d.iter::<f32>().collect())
                .unwrap_or_default()
        };
        crate::pictures::Picture {
            step: self.step as u64,
            centers: values(0),
            radii: values(1),
        }
    }

    /// The fixed evaluation spheres: `views` augmented views (always the same ones) of the
    /// snapshot images, embedded in inference mode.
    pub fn snapshot(&self) -> Snapshot {
        burn::tensor::read_sync(self.snapshot_async())
    }

    /// [`Trainer::snapshot`] without blocking (see [`Trainer::step_async`]).
    pub async fn snapshot_async(&self) -> Snapshot {
        let set = &self.data.test;
        let images = self.data.snapshot_images.clone();
        let views = self.config.views;
        let input = self
            .snapshot_input
            .get_or_init(|| {
                let pixels = make_views(
                    set,
                    &images,
                    views,
                    &self.data.augment,
                    self.snapshot_view_seed(),
                );
                self.input_tensor::<B::InnerBackend>(pixels, views * images.len(), &self.device)
            })
            .clone();
        let projections = embed_in_chunks(&self.model.valid(), input, 1024).reshape([
            views,
            images.len(),
            self.config.dim,
        ]);
        let (readout, pairs) = if images.len() <= DEVICE_READOUT_MAX_BATCH {
            let readout = Packing::new(projections, &self.params)
                .readout_async()
                .await;
            let pairs = contact_pairs(&readout.centers, &readout.radii, readout.dim);
            (readout, pairs)
        } else {
            let host: Vec<f32> = projections
                .into_data_async()
                .await
                .expect("reading the snapshot's embeddings back from the device")
                .iter::<f32>()
                .collect();
            host_readout(&host, views, images.len(), self.config.dim, &self.params)
        };
        Snapshot {
            step: self.step,
            params: self.params,
            readout,
            labels: images.iter().map(|&i| set.labels[i]).collect(),
            images,
            pairs,
        }
    }

    /// Encoder features of `indices` of the train (`test = false`) or test split.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn features(&self, test: bool, indices: &[usize]) -> Features {
        let mut yields = Yields::to(&crate::pace::Blocking);
        burn::tensor::read_sync(self.features_async(test, indices, &mut yields))
    }

    /// [`Trainer::features`] with its read-backs awaited, handing control to `yields` now and
    /// then (a page draws meanwhile).
    async fn features_async<P: crate::pace::Pace>(
        &self,
        test: bool,
        indices: &[usize],
        yields: &mut Yields<'_, P>,
    ) -> Features {
        let set = if test {
            &self.data.test
        } else {
            &self.data.train
        };
        let encoder = self.model.valid().encoder;
        let mut values = Vec::new();
        // Small chunks: a probe's activations (16 x 28 x 28 floats an image per layer) stay a
        // few MiB, so a long session's heap does not keep a probe-sized hole.
        for chunk in indices.chunks(128) {
            let pixels = crate::augment::plain_batch(set, chunk);
            let input = self.input_tensor::<B::InnerBackend>(pixels, chunk.len(), &self.device);
            let rows: Vec<f32> = encoder
                .forward(input)
                .into_data_async()
                .await
                .expect("reading a probe's features back from the device")
                .iter::<f32>()
                .collect();
            if values.is_empty() {
                // One allocation of the final size, not a doubling series.
                values.reserve_exact(rows.len() / chunk.len() * indices.len());
            }
            values.extend(rows);
            yields.now_and_then().await;
        }
        Features {
            dim: values.len() / indices.len().max(1),
            values,
            labels: indices.iter().map(|&i| set.labels[i]).collect(),
        }
    }

    /// The probes' images: (training, test) indices. A fixed random subset of the training
    /// split and the first test images; when both splits are the same images (the bundled
    /// test split alone, a page's), disjoint subsets of one permutation instead, so the kNN
    /// never finds a test image itself. (A set of fewer than 1,000 images, like the toy set's
    /// one image per class, has nothing to spare: there the probes fit and score on all.)
    pub fn probe_indices(&self) -> (Vec<usize>, Vec<usize>) {
        let (train, test) = (&self.data.train, &self.data.test);
        let train_n = self.config.probe_train_images.min(train.len);
        let test_n = self.config.probe_test_images.min(test.len);
        let same_images =
            train.len == test.len && train.labels == test.labels && train.images == test.images;
        if same_images && train.len >= 1000 {
            let order = permutation(train.len, mix_seed(self.config.seed, 7));
            let test_n = test_n.min(train.len / 2);
            let train_n = train_n.min(train.len - test_n);
            let mut test_idx = order[..test_n].to_vec();
            test_idx.sort_unstable();
            return (order[test_n..test_n + train_n].to_vec(), test_idx);
        }
        // All training images in order (the offline protocol, the same number `clamp eval`
        // gives), or a fixed random subset of them.
        let train_idx: Vec<usize> = if train_n == train.len {
            (0..train_n).collect()
        } else {
            permutation(train.len, mix_seed(self.config.seed, 7))[..train_n].to_vec()
        };
        (train_idx, (0..test_n).collect())
    }

    /// kNN and linear-probe accuracy of the frozen encoder (probe subsets from the config).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn probe(&self) -> ProbeReport {
        burn::tensor::read_sync(self.probe_async(&crate::pace::Blocking))
    }

    /// [`Trainer::probe`] with every read-back awaited; on a page it hands control back to the
    /// page every few tens of milliseconds, so frames go on while it runs.
    pub async fn probe_async(&self, pace: &impl crate::pace::Pace) -> ProbeReport {
        let started = Instant::now();
        let mut yields = Yields::to(pace);
        let (train_idx, test_idx) = self.probe_indices();
        let train = self.features_async(false, &train_idx, &mut yields).await;
        let test = self.features_async(true, &test_idx, &mut yields).await;
        let classes = self.data.train.num_classes();
        let inner_device = self.device.clone();
        let knn_acc =
            knn_accuracy_async::<B::InnerBackend>(&train, &test, classes, KNN_K, &inner_device)
                .await;
        yields.now_and_then().await;
        let mut fit = LinearProbeFit::new(&train, classes, &ProbeSettings::default());
        while !fit.run_epochs(10) {
            yields.now_and_then().await;
        }
        ProbeReport {
            step: self.step,
            knn_acc,
            linear_acc: fit.finish().accuracy(&test),
            seconds: started.elapsed().as_secs_f64(),
        }
    }

    /// Replaces model and optimizer state (used by checkpoints and tests).
    pub fn restore(
        &mut self,
        model: ClampModel<B>,
        optimizer: ModelOptimizer<ClampModel<B>, B>,
        step: usize,
        params: PackingParams,
        base_lr: f64,
        weight_decay: f64,
    ) {
        self.model = model;
        self.optimizer = optimizer;
        self.step = step;
        self.params = params;
        self.base_lr = base_lr;
        self.weight_decay = weight_decay;
        self.non_finite_in_a_row = 0;
    }

    pub fn base_lr(&self) -> f64 {
        self.base_lr
    }

    pub fn weight_decay(&self) -> f64 {
        self.weight_decay
    }

    pub fn optimizer(&self) -> &ModelOptimizer<ClampModel<B>, B> {
        &self.optimizer
    }
}

/// Whether every gradient of `model` is finite: one sum per parameter, one read-back in all (a
/// NaN or an infinity anywhere makes the total non-finite).
async fn gradients_are_finite<B: AutodiffBackend>(
    model: &ClampModel<B>,
    grads: &GradientsParams,
) -> bool {
    struct Sums<'a, B: AutodiffBackend> {
        grads: &'a GradientsParams,
        sums: Vec<Tensor<B::InnerBackend, 1>>,
    }
    impl<B: AutodiffBackend> ModuleVisitor<B> for Sums<'_, B> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            if let Some(grad) = self.grads.get::<B::InnerBackend, D>(param.id) {
                self.sums.push(grad.sum());
            }
        }
    }
    let mut visitor = Sums::<B> {
        grads,
        sums: Vec::new(),
    };
    model.visit(&mut visitor);
    if visitor.sums.is_empty() {
        return true;
    }
    read_scalar(Tensor::cat(visitor.sums, 0).sum())
        .await
        .is_finite()
}

/// The value of a one-element tensor, awaited.
async fn read_scalar<K: Backend>(tensor: Tensor<K, 1>) -> f64 {
    tensor
        .into_scalar_async()
        .await
        .expect("reading a scalar back from the device")
        .elem::<f64>()
}

/// The shape of every parameter of `model`, in visiting order: two models can exchange weights
/// only if these agree.
pub fn parameter_shapes<B: Backend, M: Module<B>>(model: &M) -> Vec<Vec<usize>> {
    struct Shapes(Vec<Vec<usize>>);
    impl<B: Backend> ModuleVisitor<B> for Shapes {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            self.0.push(param.val().dims().to_vec());
        }
    }
    let mut shapes = Shapes(Vec::new());
    model.visit(&mut shapes);
    shapes.0
}

/// Embeddings of a large input in chunks, so memory stays bounded.
fn embed_in_chunks<K: Backend>(
    model: &ClampModel<K>,
    input: Tensor<K, 4>,
    chunk: usize,
) -> Tensor<K, 2> {
    let n = input.dims()[0];
    let parts: Vec<Tensor<K, 2>> = (0..n)
        .step_by(chunk)
        .map(|start| model.embed(input.clone().slice(start..(start + chunk).min(n))))
        .collect();
    Tensor::cat(parts, 0)
}
