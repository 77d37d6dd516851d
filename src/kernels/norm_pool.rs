//! The rest of a conv block after its convolution, as one operation on the CPU training
//! backend: batch normalisation with batch statistics, optionally 2x2 max-pooling, and ReLU.
//!
//! As three layers this writes the normalised maps, reads them to pool, writes and reads the
//! pooled maps for the ReLU, and in the backward pass builds a full-size gradient of the
//! normalised maps that is three quarters zeros. Here the forward pass reads the maps twice
//! (statistics, then normalise-pool-ReLU in one sweep) and writes only the block's output; the
//! backward pass gathers `Σ dy` and `Σ dy·x̂` from the windows' winners alone and writes the
//! maps' gradient once, `dx = γ/σ (dy − mean(dy) − x̂ mean(dy x̂))`.

use std::mem::MaybeUninit;
use std::sync::Arc;

use burn::backend::Flex;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use rayon::prelude::*;

use super::conv_pool::{PASSED, relu_with_byte, relu_with_bytes};
use super::norm::{Statistics, register_gradients};
use super::pool::windows_max;
use super::{flex_tensor, from_cpu, on_cpu_training, to_cpu, values};

/// `relu(maxpool(bn(x)))` (or `relu(bn(x))` without `pool`) with the batch mean and (biased)
/// variance of each channel, detached; or the maps back when `B` is neither the CPU nor the
/// WGPU training backend (`kernels::gpu::norm_pool` on WGPU).
#[allow(clippy::type_complexity)]
pub fn batch_norm_relu_training<B: Backend>(
    maps: Tensor<B, 4>,
    gamma: Tensor<B, 1>,
    beta: Tensor<B, 1>,
    epsilon: f64,
    pool: bool,
) -> Result<(Tensor<B, 4>, Tensor<B, 1>, Tensor<B, 1>), Tensor<B, 4>> {
    if !on_cpu_training::<B>() {
        #[cfg(feature = "gpu")]
        {
            use super::gpu::norm_pool::{Layers, block_tail};
            let layers = Layers {
                normalize: true,
                pool,
                rectify: true,
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
    let (y, bytes) = forward(
        dims,
        pool,
        &values(&x.primitive),
        &stats,
        &values(&gamma.primitive),
        &values(&beta.primitive),
    );
    let (mean, var) = stats.detached();
    let output = flex_tensor(y, output_dims(dims, pool));
    let state = (
        x.primitive.clone(),
        gamma.primitive.clone(),
        Arc::new((stats, bytes)),
    );
    let tracked = match (NormReluBackward { dims, pool })
        .prepare::<NoCheckpointing>([x.node.clone(), gamma.node.clone(), beta.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish(state, output),
        OpsKind::UnTracked(prep) => prep.finish(output),
    };
    Ok((from_cpu(tracked), mean, var))
}

fn output_dims([n, c, h, w]: [usize; 4], pool: bool) -> [usize; 4] {
    if pool {
        [n, c, h / 2, w / 2]
    } else {
        [n, c, h, w]
    }
}

/// The block's output and a byte per output value: the window's winning cell (when pooling)
/// and [`PASSED`] where the ReLU let the value through.
pub fn forward(
    dims: [usize; 4],
    pool: bool,
    x: &[f32],
    stats: &Statistics,
    gamma: &[f32],
    beta: &[f32],
) -> (Vec<f32>, Vec<u8>) {
    let [_, c, h, w] = dims;
    let [_, _, oh, ow] = output_dims(dims, pool);
    let mut y = vec![0.0f32; x.len() / (h * w) * oh * ow];
    let mut bytes = vec![0u8; y.len()];
    y.par_chunks_mut(oh * ow)
        .zip(bytes.par_chunks_mut(oh * ow))
        .zip(x.par_chunks(h * w))
        .enumerate()
        .for_each_init(
            || vec![0.0f32; 4 * oh * ow],
            |cells, (i, ((out, bytes), plane))| {
                let ch = i % c;
                let scale = gamma[ch] * stats.inv_std[ch];
                let shift = beta[ch] - stats.mean[ch] * scale;
                plane_forward(pool, w, scale, shift, plane, out, bytes, cells);
            },
        );
    (y, bytes)
}

widest_simd! {
/// One plane of the block: normalised (`x · scale + shift`), pooled, rectified.
fn plane_forward(
    pool: bool,
    w: usize,
    scale: f32,
    shift: f32,
    plane: &[f32],
    out: &mut [f32],
    bytes: &mut [u8],
    cells: &mut [f32],
) {
    let norm = |v: f32| v * scale + shift;
    if !pool {
        for ((y, b), &v) in out.iter_mut().zip(bytes.iter_mut()).zip(plane) {
            (*y, *b) = relu_with_byte(norm(v), 0);
        }
        return;
    }
    // Each window's four cells normalised into four arrays, then pooled window-wise.
    let windows = out.len();
    let ow = w / 2;
    let (first, rest) = cells.split_at_mut(windows);
    let (second, rest) = rest.split_at_mut(windows);
    let (third, fourth) = rest.split_at_mut(windows);
    for oy in 0..windows / ow {
        for ox in 0..ow {
            let (q, at) = (oy * ow + ox, 2 * oy * w + 2 * ox);
            first[q] = norm(plane[at]);
            second[q] = norm(plane[at + 1]);
            third[q] = norm(plane[at + w]);
            fourth[q] = norm(plane[at + w + 1]);
        }
    }
    windows_max([&*first, &*second, &*third, &*fourth], out, bytes);
    relu_with_bytes(out, bytes);
}
}

/// For each output value `k` of a plane: its gradient where the ReLU passed it (zero where it
/// stopped it) into `passed[k]`, and `source[k]`, where in the `w`-wide input plane it came from
/// (its window's winner when pooling). Selects, not branches: half the values pass, at random.
#[inline(always)]
fn gather(
    pool: bool,
    w: usize,
    grad: &[f32],
    bytes: &[u8],
    passed: &mut [f32],
    source: &mut [u32],
) {
    for ((p, &g), &byte) in passed.iter_mut().zip(grad).zip(bytes) {
        *p = if byte & PASSED != 0 { g } else { 0.0 };
    }
    if !pool {
        for (k, s) in source.iter_mut().enumerate() {
            *s = k as u32;
        }
        return;
    }
    let ow = w / 2;
    for oy in 0..bytes.len() / ow {
        for ox in 0..ow {
            let k = oy * ow + ox;
            let cell = (bytes[k] & 3) as usize;
            source[k] = ((2 * oy + cell / 2) * w + 2 * ox + cell % 2) as u32;
        }
    }
}

widest_simd! {
/// `Σ dy` and `Σ dy·x̂` over one plane, as eight interleaved partial sums in f64 added in a
/// fixed order.
fn plane_sums(
    pool: bool,
    w: usize,
    constants: [f32; 2],
    xs: &[f32],
    grad: &[f32],
    bytes: &[u8],
    scratch: &mut (Vec<f32>, Vec<u32>),
) -> (f64, f64) {
    let [mean, inv_std] = constants;
    let (passed, source) = scratch;
    passed.resize(grad.len(), 0.0);
    source.resize(grad.len(), 0);
    gather(pool, w, grad, bytes, passed, source);
    let (mut sum_g, mut sum_gx) = ([0.0f64; 8], [0.0f64; 8]);
    let mut add = |lane: usize, g: f32, at: u32| {
        sum_g[lane] += g as f64;
        sum_gx[lane] += (g * (xs[at as usize] - mean) * inv_std) as f64;
    };
    let (mut grads, mut sources) = (passed.chunks_exact(8), source.chunks_exact(8));
    for (g, at) in (&mut grads).zip(&mut sources) {
        for lane in 0..8 {
            add(lane, g[lane], at[lane]);
        }
    }
    for (lane, (&g, &at)) in grads
        .remainder()
        .iter()
        .zip(sources.remainder())
        .enumerate()
    {
        add(lane, g, at);
    }
    (sum_g.iter().sum(), sum_gx.iter().sum())
}
}

/// The gradients of the maps, γ and β, given the gradient of the block's output.
pub fn backward(
    dims: [usize; 4],
    pool: bool,
    x: &[f32],
    stats: &Statistics,
    bytes: &[u8],
    gamma: &[f32],
    grad: &[f32],
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let [n, c, h, w] = dims;
    let [_, _, oh, ow] = output_dims(dims, pool);
    let (plane, out_plane) = (h * w, oh * ow);
    let count = (n * plane) as f64;
    // Σ dy and Σ dy·x̂ per channel, over the values that reached the output: tasks of whole
    // images, read in memory order, their partial sums added in the tasks' order.
    const IMAGES_PER_TASK: usize = 16;
    let (image, out_image) = (c * plane, c * out_plane);
    let partial: Vec<Vec<(f64, f64)>> = x
        .par_chunks(IMAGES_PER_TASK * image)
        .zip(grad.par_chunks(IMAGES_PER_TASK * out_image))
        .zip(bytes.par_chunks(IMAGES_PER_TASK * out_image))
        .map(|((xs, gs), bs)| {
            let mut scratch = (Vec::new(), Vec::new());
            let mut sums = vec![(0.0f64, 0.0f64); c];
            for ((xs, gs), bs) in xs
                .chunks(image)
                .zip(gs.chunks(out_image))
                .zip(bs.chunks(out_image))
            {
                for (ch, sum) in sums.iter_mut().enumerate() {
                    let (a, s) = plane_sums(
                        pool,
                        w,
                        [stats.mean[ch], stats.inv_std[ch]],
                        &xs[ch * plane..][..plane],
                        &gs[ch * out_plane..][..out_plane],
                        &bs[ch * out_plane..][..out_plane],
                        &mut scratch,
                    );
                    sum.0 += a;
                    sum.1 += s;
                }
            }
            sums
        })
        .collect();
    let mut sums = vec![(0.0f64, 0.0f64); c];
    for task in &partial {
        for (sum, part) in sums.iter_mut().zip(task) {
            sum.0 += part.0;
            sum.1 += part.1;
        }
    }
    // Every value of dx is written below: the storage is not zeroed first.
    let mut dx = Vec::with_capacity(x.len());
    dx.spare_capacity_mut()[..x.len()]
        .par_chunks_mut(plane)
        .zip(x.par_chunks(plane))
        .zip(grad.par_chunks(out_plane).zip(bytes.par_chunks(out_plane)))
        .enumerate()
        .for_each_init(
            || (Vec::new(), Vec::new()),
            |scratch, (i, ((out, xs), (g, b)))| {
                let ch = i % c;
                let coefficients = [
                    stats.mean[ch],
                    stats.inv_std[ch],
                    (sums[ch].0 / count) as f32,
                    (sums[ch].1 / count) as f32,
                    gamma[ch] * stats.inv_std[ch],
                ];
                plane_backward(pool, w, coefficients, xs, g, b, out, scratch);
            },
        );
    // SAFETY: the planes cover all of dx, and plane_backward writes every value of its plane.
    unsafe { dx.set_len(x.len()) };
    let dgamma = sums.iter().map(|s| s.1 as f32).collect();
    let dbeta = sums.iter().map(|s| s.0 as f32).collect();
    (dx, dgamma, dbeta)
}

widest_simd! {
/// One plane's `dx = γ/σ (dy − mean(dy) − x̂ mean(dy x̂))`; `coefficients` are μ, 1/σ,
/// mean(dy), mean(dy x̂) and γ/σ of its channel.
fn plane_backward(
    pool: bool,
    w: usize,
    coefficients: [f32; 5],
    xs: &[f32],
    grad: &[f32],
    bytes: &[u8],
    out: &mut [MaybeUninit<f32>],
    scratch: &mut (Vec<f32>, Vec<u32>),
) {
    let [mean, inv_std, mean_g, mean_gx, scale] = coefficients;
    let (passed, source) = scratch;
    assert_eq!(out.len(), xs.len());
    passed.resize(grad.len(), 0.0);
    source.resize(grad.len(), 0);
    gather(pool, w, grad, bytes, passed, source);
    let d = |g: f32, x: f32| scale * (g - mean_g - (x - mean) * inv_std * mean_gx);
    if !pool {
        for ((o, &x), &g) in out.iter_mut().zip(xs).zip(passed.iter()) {
            o.write(d(g, x));
        }
        return;
    }
    // Every value as if its gradient were zero, then the windows' winners.
    for (o, &x) in out.iter_mut().zip(xs) {
        o.write(d(0.0, x));
    }
    for (&g, &at) in passed.iter().zip(source.iter()) {
        out[at as usize].write(d(g, xs[at as usize]));
    }
}
}

#[derive(Debug)]
struct NormReluBackward {
    dims: [usize; 4],
    pool: bool,
}

impl Backward<Flex, 3> for NormReluBackward {
    /// The maps, γ, their statistics and each output value's byte.
    type State = (FlexTensor, FlexTensor, Arc<(Statistics, Vec<u8>)>);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<Flex>(&ops.node);
        let (x, gamma, saved) = ops.state;
        let (stats, bytes) = &*saved;
        let (dx, dgamma, dbeta) = backward(
            self.dims,
            self.pool,
            &values(&x),
            stats,
            bytes,
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
