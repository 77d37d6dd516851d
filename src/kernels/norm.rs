//! Batch normalisation with batch statistics (training), forward and backward, on the CPU
//! training backend.
//!
//! Written with tensor operations, the forward pass is a dozen broadcasts and reductions and
//! the backward pass twice as many; here each pass reads the maps twice (statistics, then the
//! result), with the textbook gradient
//! `dx = γ/σ · (dy − mean(dy) − x̂ · mean(dy · x̂))` per channel, `x̂ = (x − μ)/σ`.

use std::sync::Arc;

use burn::backend::Flex;
use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use rayon::prelude::*;

use super::{flex_tensor, from_cpu, on_cpu_training, same_type, to_cpu, values};
use crate::backend::CpuBackend;

/// The normalised maps, with the batch mean and (biased) variance of each channel, detached;
/// or the input back when `B` is neither the CPU nor the WGPU training backend
/// (`kernels::gpu::norm_pool` on WGPU).
#[allow(clippy::type_complexity)]
pub fn batch_norm_training<B: Backend>(
    maps: Tensor<B, 4>,
    gamma: Tensor<B, 1>,
    beta: Tensor<B, 1>,
    epsilon: f64,
) -> Result<(Tensor<B, 4>, Tensor<B, 1>, Tensor<B, 1>), Tensor<B, 4>> {
    if !on_cpu_training::<B>() {
        #[cfg(feature = "gpu")]
        {
            use super::gpu::norm_pool::{Layers, block_tail};
            let layers = Layers {
                normalize: true,
                pool: false,
                rectify: false,
            };
            return match block_tail(maps, Some((gamma, beta, epsilon)), layers) {
                Ok((y, Some((mean, var)))) => Ok((y, mean, var)),
                Ok((y, None)) => unreachable!("a normalised block has statistics: {:?}", y.dims()),
                Err(maps) => Err(maps),
            };
        }
        #[cfg(not(feature = "gpu"))]
        return Err(maps);
    }
    let dims = maps.dims();
    let (x, gamma, beta) = (to_cpu(maps), to_cpu(gamma), to_cpu(beta));
    let stats = Statistics::of(dims, &values(&x.primitive), epsilon);
    let y = forward(
        dims,
        &values(&x.primitive),
        &stats,
        &values(&gamma.primitive),
        &values(&beta.primitive),
    );
    let (mean, var) = stats.detached();
    let output = flex_tensor(y, dims);
    let state = (
        x.primitive.clone(),
        gamma.primitive.clone(),
        Arc::new(stats),
    );
    let tracked = match (NormBackward { dims })
        .prepare::<NoCheckpointing>([x.node.clone(), gamma.node.clone(), beta.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish(state, output),
        OpsKind::UnTracked(prep) => prep.finish(output),
    };
    Ok((from_cpu(tracked), mean, var))
}

/// Per-channel mean, biased variance and 1/σ of `[N, C, H, W]` maps.
#[derive(Debug)]
pub struct Statistics {
    pub mean: Vec<f32>,
    pub var: Vec<f32>,
    pub inv_std: Vec<f32>,
}

impl Statistics {
    /// The batch mean and variance as untracked tensors of `B` (the CPU training backend), for
    /// the running averages.
    pub fn detached<B: Backend>(&self) -> (Tensor<B, 1>, Tensor<B, 1>) {
        let tensor = |v: &[f32]| -> Tensor<B, 1> {
            same_type(Tensor::<CpuBackend, 1>::from_data(
                TensorData::new(v.to_vec(), [v.len()]),
                &Default::default(),
            ))
        };
        (tensor(&self.mean), tensor(&self.var))
    }

    pub fn of([n, c, h, w]: [usize; 4], x: &[f32], epsilon: f64) -> Self {
        let plane = h * w;
        let count = (n * plane) as f64;
        let per_channel: Vec<(f32, f32, f32)> = (0..c)
            .into_par_iter()
            .map(|ch| {
                let planes = || (0..n).map(|i| &x[(i * c + ch) * plane..][..plane]);
                let mean = planes().map(|p| lane_sum(p, |v| v)).sum::<f64>() / count;
                let var = planes()
                    .map(|p| lane_sum(p, |v| (v - mean).powi(2)))
                    .sum::<f64>()
                    / count;
                (
                    mean as f32,
                    var as f32,
                    (1.0 / (var + epsilon).sqrt()) as f32,
                )
            })
            .collect();
        Self {
            mean: per_channel.iter().map(|s| s.0).collect(),
            var: per_channel.iter().map(|s| s.1).collect(),
            inv_std: per_channel.iter().map(|s| s.2).collect(),
        }
    }
}

/// `Σ f(v)` over a plane in f64, as eight interleaved partial sums added in a fixed order at
/// the end: one chain of dependent additions would wait out each addition's latency.
fn lane_sum(plane: &[f32], f: impl Fn(f64) -> f64) -> f64 {
    let mut lanes = [0.0f64; 8];
    let mut chunks = plane.chunks_exact(8);
    for chunk in &mut chunks {
        for (lane, &v) in lanes.iter_mut().zip(chunk) {
            *lane += f(v as f64);
        }
    }
    let tail = chunks.remainder().iter().map(|&v| f(v as f64)).sum::<f64>();
    lanes.iter().sum::<f64>() + tail
}

/// `y = γ (x − μ)/σ + β`.
pub fn forward(
    dims: [usize; 4],
    x: &[f32],
    stats: &Statistics,
    gamma: &[f32],
    beta: &[f32],
) -> Vec<f32> {
    let [_, c, h, w] = dims;
    let mut y = vec![0.0f32; x.len()];
    y.par_chunks_mut(h * w)
        .zip(x.par_chunks(h * w))
        .enumerate()
        .for_each(|(i, (out, plane))| {
            let ch = i % c;
            let scale = gamma[ch] * stats.inv_std[ch];
            let shift = beta[ch] - stats.mean[ch] * scale;
            out.iter_mut()
                .zip(plane)
                .for_each(|(y, &x)| *y = x * scale + shift);
        });
    y
}

/// The gradients of the maps, γ and β.
pub fn backward(
    dims: [usize; 4],
    x: &[f32],
    stats: &Statistics,
    gamma: &[f32],
    grad: &[f32],
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let [n, c, h, w] = dims;
    let plane = h * w;
    let count = (n * plane) as f64;
    // Σ dy and Σ dy·x̂ per channel.
    let sums: Vec<(f64, f64)> = (0..c)
        .into_par_iter()
        .map(|ch| {
            let (mean, inv_std) = (stats.mean[ch], stats.inv_std[ch]);
            (0..n).fold((0.0, 0.0), |(sum_g, sum_gx), i| {
                let at = (i * c + ch) * plane;
                let (g, xs) = (&grad[at..][..plane], &x[at..][..plane]);
                let (a, b) = g.iter().zip(xs).fold((0.0f64, 0.0f64), |(a, b), (&g, &x)| {
                    (a + g as f64, b + (g * (x - mean) * inv_std) as f64)
                });
                (sum_g + a, sum_gx + b)
            })
        })
        .collect();
    let mut dx = vec![0.0f32; x.len()];
    dx.par_chunks_mut(plane)
        .zip(grad.par_chunks(plane).zip(x.par_chunks(plane)))
        .enumerate()
        .for_each(|(i, (out, (g, xs)))| {
            let ch = i % c;
            let (mean, inv_std) = (stats.mean[ch], stats.inv_std[ch]);
            let mean_g = (sums[ch].0 / count) as f32;
            let mean_gx = (sums[ch].1 / count) as f32;
            let scale = gamma[ch] * inv_std;
            for ((d, &g), &x) in out.iter_mut().zip(g).zip(xs) {
                let x_hat = (x - mean) * inv_std;
                *d = scale * (g - mean_g - x_hat * mean_gx);
            }
        });
    let dgamma = sums.iter().map(|s| s.1 as f32).collect();
    let dbeta = sums.iter().map(|s| s.0 as f32).collect();
    (dx, dgamma, dbeta)
}

#[derive(Debug)]
struct NormBackward {
    dims: [usize; 4],
}

impl Backward<Flex, 3> for NormBackward {
    /// The maps, γ, and their statistics.
    type State = (FlexTensor, FlexTensor, Arc<Statistics>);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<Flex>(&ops.node);
        let (x, gamma, stats) = ops.state;
        let (dx, dgamma, dbeta) = backward(
            self.dims,
            &values(&x),
            &stats,
            &values(&gamma),
            &values(&grad),
        );
        let nodes = ops
            .parents
            .each_ref()
            .map(|p| p.as_ref().map(|node| node.id));
        register_gradients(grads, nodes, self.dims, (dx, dgamma, dbeta));
    }
}

/// Hands the gradients of the maps, γ and β to the nodes (maps, γ, β) that asked for them.
pub(super) fn register_gradients(
    grads: &mut Gradients,
    [x_node, gamma_node, beta_node]: [Option<NodeId>; 3],
    dims: [usize; 4],
    (dx, dgamma, dbeta): (Vec<f32>, Vec<f32>, Vec<f32>),
) {
    let channels = dims[1];
    if let Some(node) = x_node {
        grads.register::<Flex>(node, flex_tensor(dx, dims));
    }
    if let Some(node) = gamma_node {
        grads.register::<Flex>(node, flex_tensor(dgamma, [channels]));
    }
    if let Some(node) = beta_node {
        grads.register::<Flex>(node, flex_tensor(dbeta, [channels]));
    }
}
