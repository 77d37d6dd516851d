//! Optimizers and the learning-rate schedule. As the reference: LARS (momentum 0.9, trust
//! coefficient 0.001, biases and norm parameters excluded from adaptation and weight decay), a
//! linear warm-up then a cosine decay, and a base learning rate scaled by batch / 256. Adam is
//! the default for the live demo: it is less sensitive to the learning rate a user dials in.

use std::f64::consts::PI;

use burn::module::AutodiffModule;
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::{Adam, AdamConfig, GradientsParams, Optimizer, SimpleOptimizer};
use burn::record::Record;
use burn::tensor::Tensor;
use burn::tensor::backend::{AutodiffBackend, Backend};
use serde::{Deserialize, Serialize};

/// Which optimizer to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum OptimizerKind {
    Adam,
    Lars,
}

/// Learning rate at `step`: `base * batch / 256`, linear warm-up over `warmup` steps, then a
/// cosine decay to zero at `total` steps.
pub fn scheduled_lr(base: f64, batch: usize, step: usize, warmup: usize, total: usize) -> f64 {
    let peak = base * batch as f64 / 256.0;
    if step < warmup {
        return peak * (step + 1) as f64 / warmup as f64;
    }
    let span = total.saturating_sub(warmup).max(1);
    let progress = ((step - warmup) as f64 / span as f64).min(1.0);
    peak * 0.5 * (1.0 + (PI * progress).cos())
}

/// Layer-wise Adaptive Rate Scaling (You, Gitman & Ginsburg 2017) with heavy-ball momentum.
#[derive(Clone, Debug)]
pub struct Lars {
    pub momentum: f64,
    /// Trust coefficient eta.
    pub trust: f64,
    pub weight_decay: f64,
}

/// Momentum buffer of one parameter.
#[derive(Record, Clone)]
pub struct LarsState<B: Backend, const D: usize> {
    pub velocity: Tensor<B, D>,
}

impl<B: Backend> SimpleOptimizer<B> for Lars {
    type State<const D: usize> = LarsState<B, D>;

    fn step<const D: usize>(
        &self,
        lr: f64,
        weights: Tensor<B, D>,
        grad: Tensor<B, D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<B, D>, Option<Self::State<D>>) {
        // Biases and batch-norm scales/shifts are the 1-D parameters: plain momentum SGD for them.
        let update = if D > 1 {
            let update = grad + weights.clone().mul_scalar(self.weight_decay);
            let weight_norm = weights.clone().square().sum().sqrt();
            let update_norm = update.clone().square().sum().sqrt();
            let ratio = (weight_norm.clone() / update_norm.clone().add_scalar(1e-12))
                .mul_scalar(self.trust);
            // Trust ratio 1 when either norm vanishes (fresh zero weights, zero gradient).
            let degenerate = weight_norm
                .equal_elem(0.0)
                .bool_or(update_norm.equal_elem(0.0));
            let ratio = ratio.mask_fill(degenerate, 1.0).reshape([1; D]);
            update * ratio
        } else {
            grad
        };
        let velocity = match state {
            Some(state) => state.velocity.mul_scalar(self.momentum) + update,
            None => update,
        };
        let weights = weights - velocity.clone().mul_scalar(lr);
        (weights, Some(LarsState { velocity }))
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &B::Device) -> Self::State<D> {
        LarsState {
            velocity: state.velocity.to_device(device),
        }
    }
}

/// The optimizer of a model `M`, with a weight decay that can change between steps.
pub enum ModelOptimizer<M: AutodiffModule<B>, B: AutodiffBackend> {
    Adam(OptimizerAdaptor<Adam, M, B>),
    Lars(OptimizerAdaptor<Lars, M, B>),
}

/// Optimizer state as a record, for checkpoints.
pub enum OptimizerRecord<M: AutodiffModule<B>, B: AutodiffBackend> {
    Adam(<OptimizerAdaptor<Adam, M, B> as Optimizer<M, B>>::Record),
    Lars(<OptimizerAdaptor<Lars, M, B> as Optimizer<M, B>>::Record),
}

impl<M: AutodiffModule<B>, B: AutodiffBackend> ModelOptimizer<M, B> {
    pub fn new(kind: OptimizerKind, weight_decay: f64) -> Self {
        match kind {
            OptimizerKind::Adam => Self::Adam(
                AdamConfig::new()
                    .with_weight_decay(
                        (weight_decay > 0.0).then(|| WeightDecayConfig::new(weight_decay as f32)),
                    )
                    .init(),
            ),
            OptimizerKind::Lars => Self::Lars(OptimizerAdaptor::from(Lars {
                momentum: 0.9,
                trust: 1e-3,
                weight_decay,
            })),
        }
    }

    pub fn kind(&self) -> OptimizerKind {
        match self {
            Self::Adam(_) => OptimizerKind::Adam,
            Self::Lars(_) => OptimizerKind::Lars,
        }
    }

    pub fn step(&mut self, lr: f64, model: M, grads: GradientsParams) -> M {
        match self {
            Self::Adam(o) => o.step(lr, model, grads),
            Self::Lars(o) => o.step(lr, model, grads),
        }
    }

    pub fn record(&self) -> OptimizerRecord<M, B> {
        match self {
            Self::Adam(o) => OptimizerRecord::Adam(o.to_record()),
            Self::Lars(o) => OptimizerRecord::Lars(o.to_record()),
        }
    }

    /// Rebuilds the optimizer with a new weight decay, keeping its moments.
    pub fn with_weight_decay(self, weight_decay: f64) -> Self {
        let kind = self.kind();
        let record = self.record();
        Self::new(kind, weight_decay).load(record)
    }

    /// Restores moments saved by [`Self::record`]. A record of the other kind is ignored.
    pub fn load(self, record: OptimizerRecord<M, B>) -> Self {
        match (self, record) {
            (Self::Adam(o), OptimizerRecord::Adam(r)) => Self::Adam(o.load_record(r)),
            (Self::Lars(o), OptimizerRecord::Lars(r)) => Self::Lars(o.load_record(r)),
            (fresh, _) => fresh,
        }
    }
}
