//! The rest of a conv block after its convolution, on the WGPU training backend, as the CPU
//! path has it (`kernels::norm_pool`, `kernels::conv_pool`): batch normalisation with batch
//! statistics (optional), 2x2 max-pooling (optional) and ReLU (optional), as one operation of
//! four shader kernels instead of burn's dozens of element-wise passes:
//!
//! - statistics: a workgroup per channel sums its values, then their squared distances from
//!   the mean (two passes: the variance of values far from zero loses nothing);
//! - forward: a thread per output value normalises its window's cells, takes their maximum
//!   (the first of equals; a NaN wins its window) and rectifies it (a NaN stays);
//! - backward, sums: a workgroup per channel adds `Σ dy` and `Σ dy·x̂` over the values that
//!   reached the output (each window's winner, where the ReLU passed it);
//! - backward, gradient: a thread per input value, `dx = γ/σ (dy − mean(dy) − x̂ mean(dy x̂))`
//!   (`dx = dy` without normalisation), `dy` being the output's gradient at the winners where
//!   the ReLU passed, zero elsewhere.
//!
//! Nothing but the input and the statistics is kept for the backward pass: which cell won and
//! whether the ReLU passed it are found again from them.

use burn::backend::Wgpu;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::wgpu::{CubeTensor, WgpuRuntime};
use burn::tensor::ops::FloatTensor;
use burn::tensor::{DType, Shape, Tensor as BurnTensor, TensorPrimitive};
use burn_cubecl::kernel::into_contiguous;
use cubecl::prelude::*;
use cubecl::{CubeLaunch, CubeType, calculate_cube_count_elemwise};

use crate::backend::WgpuBackend;

/// The maps' sizes, as the shaders see them.
#[derive(CubeLaunch, CubeType)]
pub struct Maps {
    batch: usize,
    channels: usize,
    height: usize,
    width: usize,
    out_height: usize,
    out_width: usize,
    epsilon: f32,
}

/// Threads of a per-channel workgroup: `2^CHANNEL_ROUNDS`, added in that many rounds.
const CHANNEL_ROUNDS: usize = 8;
pub const CHANNEL_THREADS: usize = 1 << CHANNEL_ROUNDS;

/// What follows the convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layers {
    /// Batch normalisation with the batch's statistics.
    pub normalize: bool,
    /// 2x2 max-pooling, stride 2 (an odd last row or column is dropped).
    pub pool: bool,
    /// ReLU.
    pub rectify: bool,
}

impl Layers {
    fn output_dims(&self, [n, c, h, w]: [usize; 4]) -> [usize; 4] {
        if self.pool {
            [n, c, h / 2, w / 2]
        } else {
            [n, c, h, w]
        }
    }
}

/// `(x − μ) · s + b` for the normalisation's `scale = γ/σ` and `shift = β − μ γ/σ`, or `x`.
#[cube]
fn normalized<F: Float>(value: F, scale: F, shift: F, #[comptime] normalize: bool) -> F {
    if normalize {
        value * scale + shift
    } else {
        value
    }
}

/// The normalisation's scale and shift for channel `c`, from `stats[0, c]` (mean) and
/// `stats[1, c]` (variance).
#[cube]
fn scale_shift<F: Float>(
    stats: &Tensor<F>,
    gamma: &Tensor<F>,
    beta: &Tensor<F>,
    c: usize,
    channels: usize,
    epsilon: F,
    #[comptime] normalize: bool,
) -> (F, F) {
    let mut scale = F::new(1.0);
    let mut shift = F::new(0.0);
    if normalize {
        let mean = stats[c];
        let inv_std = F::new(1.0) / F::sqrt(stats[channels + c] + epsilon);
        scale = gamma[c] * inv_std;
        shift = beta[c] - mean * scale;
    }
    (scale, shift)
}

/// The window's winning cell (0 to 3, row-major; the first of equals, a NaN over any number)
/// and its value, of the normalised cells at `at`, `at + 1`, `at + width`, `at + width + 1`.
#[cube]
fn window<F: Float>(
    x: &Tensor<F>,
    at: usize,
    width: usize,
    scale: F,
    shift: F,
    #[comptime] normalize: bool,
) -> (u32, F) {
    let mut best: F = normalized::<F>(x[at], scale, shift, normalize);
    let mut winner = 0u32;
    #[unroll]
    for k in 1..4u32 {
        let cell = at + (k / 2) as usize * width + (k % 2) as usize;
        let v: F = normalized::<F>(x[cell], scale, shift, normalize);
        // `v != v`: v is a NaN.
        let wins = v > best || (v != v && best == best);
        best = select(wins, v, best);
        winner = select(wins, k, winner);
    }
    (winner, best)
}

/// Per channel (`CUBE_POS_X`), the batch mean and biased variance, to `stats[0, c]` and
/// `stats[1, c]`. The values are summed less the channel's first one: the mean of a channel
/// whose values are all equal is then that value exactly (a plain f32 sum rounds it), so that
/// such a channel normalises to exactly β, as it does in the CPU's f64.
#[cube(launch_unchecked)]
fn statistics_kernel<F: Float>(x: &Tensor<F>, stats: &mut Tensor<F>, m: &Maps) {
    let c = CUBE_POS_X as usize;
    let lane = UNIT_POS_X as usize;
    let threads = CUBE_DIM_X as usize;
    let plane = m.height * m.width;
    let count = m.batch * plane;
    let mut shared = SharedMemory::<F>::new(CHANNEL_THREADS);
    let first = x[c * plane];

    let mut sum = F::new(0.0);
    let mut k = lane;
    while k < count {
        sum += x[((k / plane) * m.channels + c) * plane + k % plane] - first;
        k += threads;
    }
    shared[lane] = sum;
    sync_cube();
    let mean = first + tree_sum::<F>(&mut shared, lane) / F::cast_from(count as u32);

    let mut squares = F::new(0.0);
    let mut k = lane;
    while k < count {
        let d = x[((k / plane) * m.channels + c) * plane + k % plane] - mean;
        squares += d * d;
        k += threads;
    }
    shared[lane] = squares;
    sync_cube();
    let var = tree_sum::<F>(&mut shared, lane) / F::cast_from(count as u32);
    if lane == 0 {
        stats[c] = mean;
        stats[m.channels + c] = var;
    }
}

/// The sum of `shared[0..CHANNEL_THREADS]`, the same in every thread, halving the span each
/// round; leaves the shared memory free for reuse.
#[cube]
fn tree_sum<F: Float>(shared: &mut SharedMemory<F>, lane: usize) -> F {
    #[unroll]
    for round in 0..CHANNEL_ROUNDS {
        let span = CHANNEL_THREADS >> (round + 1);
        if lane < span {
            shared[lane] = shared[lane] + shared[lane + span];
        }
        sync_cube();
    }
    let total = shared[0];
    sync_cube();
    total
}

/// A ReLU that keeps a NaN (to reach the loss), or the value as it is.
#[cube]
fn rectified<F: Float>(value: F, #[comptime] rectify: bool) -> F {
    if rectify {
        select(value > F::new(0.0) || value != value, value, F::new(0.0))
    } else {
        value
    }
}

/// Which 2x2 block of cells thread `ABSOLUTE_POS` takes: its plane (image and channel) and
/// the block's row and column. Blocks cover the maps, odd last row and column included, so
/// that a thread reads its channel's parameters once for four values (with pooling, a block is
/// a window).
#[cube]
fn block_of_cells(m: &Maps) -> (usize, usize, usize) {
    let blocks_w = (m.width + 1) / 2;
    let per_plane = ((m.height + 1) / 2) * blocks_w;
    let within = ABSOLUTE_POS % per_plane;
    (
        ABSOLUTE_POS / per_plane,
        within / blocks_w,
        within % blocks_w,
    )
}

/// A thread per 2x2 block of cells (a window when pooling).
#[cube(launch_unchecked)]
fn tail_forward_kernel<F: Float>(
    x: &Tensor<F>,
    stats: &Tensor<F>,
    gamma: &Tensor<F>,
    beta: &Tensor<F>,
    y: &mut Tensor<F>,
    m: &Maps,
    #[comptime] normalize: bool,
    #[comptime] pool: bool,
    #[comptime] rectify: bool,
) {
    let blocks = m.batch * m.channels * ((m.height + 1) / 2) * ((m.width + 1) / 2);
    if ABSOLUTE_POS >= blocks {
        terminate!();
    }
    let (plane_index, by, bx) = block_of_cells(m);
    let c = plane_index % m.channels;
    let (scale, shift) = scale_shift::<F>(
        stats,
        gamma,
        beta,
        c,
        m.channels,
        F::cast_from(m.epsilon),
        normalize,
    );
    let at = plane_index * m.height * m.width + 2 * by * m.width + 2 * bx;
    if pool {
        if by < m.out_height && bx < m.out_width {
            let (_, best) = window::<F>(x, at, m.width, scale, shift, normalize);
            y[(plane_index * m.out_height + by) * m.out_width + bx] = rectified::<F>(best, rectify);
        }
    } else {
        #[unroll]
        for k in 0..4usize {
            let row = 2 * by + k / 2;
            let column = 2 * bx + k % 2;
            if row < m.height && column < m.width {
                let cell = at + (k / 2) * m.width + k % 2;
                y[cell] =
                    rectified::<F>(normalized::<F>(x[cell], scale, shift, normalize), rectify);
            }
        }
    }
}

/// The gradient reaching output value `k` (of plane `plane_index`, pixel `pixel`) and where it
/// goes: the input index of the window's winner (or of the value itself) and that cell's
/// normalised value; the gradient is zero where the ReLU stopped the value.
#[cube]
fn routed<F: Float>(
    x: &Tensor<F>,
    grad: &Tensor<F>,
    k: usize,
    m: &Maps,
    scale: F,
    shift: F,
    #[comptime] normalize: bool,
    #[comptime] pool: bool,
    #[comptime] rectify: bool,
) -> (F, usize) {
    let out_plane = m.out_height * m.out_width;
    let plane_index = k / out_plane;
    let pixel = k % out_plane;
    let plane = plane_index * m.height * m.width;
    let mut target = plane + pixel;
    let mut value = F::new(0.0);
    if pool {
        let at = plane + 2 * (pixel / m.out_width) * m.width + 2 * (pixel % m.out_width);
        let (winner, best) = window::<F>(x, at, m.width, scale, shift, normalize);
        target = at + (winner / 2) as usize * m.width + (winner % 2) as usize;
        value = best;
    }
    if !pool {
        value = normalized::<F>(x[target], scale, shift, normalize);
    }
    let mut g = grad[k];
    if rectify {
        g = select(value > F::new(0.0), g, F::new(0.0));
    }
    (g, target)
}

/// Per channel (`CUBE_POS_X`): `Σ dy` and `Σ dy·x̂` over the values that reached the output,
/// to `sums[0, c]` and `sums[1, c]`.
#[cube(launch_unchecked)]
fn sums_kernel<F: Float>(
    x: &Tensor<F>,
    stats: &Tensor<F>,
    gamma: &Tensor<F>,
    beta: &Tensor<F>,
    grad: &Tensor<F>,
    sums: &mut Tensor<F>,
    m: &Maps,
    #[comptime] normalize: bool,
    #[comptime] pool: bool,
    #[comptime] rectify: bool,
) {
    let c = CUBE_POS_X as usize;
    let lane = UNIT_POS_X as usize;
    let threads = CUBE_DIM_X as usize;
    let out_plane = m.out_height * m.out_width;
    let count = m.batch * out_plane;
    let (scale, shift) = scale_shift::<F>(
        stats,
        gamma,
        beta,
        c,
        m.channels,
        F::cast_from(m.epsilon),
        true,
    );
    let mean = stats[c];
    let inv_std = F::new(1.0) / F::sqrt(stats[m.channels + c] + F::cast_from(m.epsilon));
    let mut shared = SharedMemory::<F>::new(CHANNEL_THREADS);

    let mut dy = F::new(0.0);
    let mut dy_xhat = F::new(0.0);
    let mut i = lane;
    while i < count {
        let k = ((i / out_plane) * m.channels + c) * out_plane + i % out_plane;
        let (g, target) = routed::<F>(x, grad, k, m, scale, shift, normalize, pool, rectify);
        dy += g;
        dy_xhat += g * (x[target] - mean) * inv_std;
        i += threads;
    }
    shared[lane] = dy;
    sync_cube();
    let total_dy = tree_sum::<F>(&mut shared, lane);
    shared[lane] = dy_xhat;
    sync_cube();
    let total_dy_xhat = tree_sum::<F>(&mut shared, lane);
    if lane == 0 {
        sums[c] = total_dy;
        sums[m.channels + c] = total_dy_xhat;
    }
}

/// A thread per 2x2 block of cells (a window when pooling): each cell's share of the output's
/// gradient (zero unless it won its window and the ReLU passed it), through the normalisation
/// when there is one: `dx = γ/σ (dy − mean(dy) − x̂ mean(dy x̂))`.
#[cube(launch_unchecked)]
fn tail_input_gradient_kernel<F: Float>(
    x: &Tensor<F>,
    stats: &Tensor<F>,
    gamma: &Tensor<F>,
    beta: &Tensor<F>,
    grad: &Tensor<F>,
    sums: &Tensor<F>,
    dx: &mut Tensor<F>,
    m: &Maps,
    #[comptime] normalize: bool,
    #[comptime] pool: bool,
    #[comptime] rectify: bool,
) {
    let blocks = m.batch * m.channels * ((m.height + 1) / 2) * ((m.width + 1) / 2);
    if ABSOLUTE_POS >= blocks {
        terminate!();
    }
    let (plane_index, by, bx) = block_of_cells(m);
    let c = plane_index % m.channels;
    let (scale, shift) = scale_shift::<F>(
        stats,
        gamma,
        beta,
        c,
        m.channels,
        F::cast_from(m.epsilon),
        normalize,
    );
    // The normalisation's backward, a (dy − mean(dy) − (x − μ) σ⁻¹ mean(dy x̂)), as
    // `a dy + b + d (x − μ)` with per-channel a, b, d (the identity without normalisation).
    let mut a = F::new(1.0);
    let mut b = F::new(0.0);
    let mut d = F::new(0.0);
    let mut mean = F::new(0.0);
    if normalize {
        let count = F::cast_from((m.batch * m.height * m.width) as u32);
        let inv_std = F::new(1.0) / F::sqrt(stats[m.channels + c] + F::cast_from(m.epsilon));
        mean = stats[c];
        a = gamma[c] * inv_std;
        b = -a * sums[c] / count;
        d = -a * inv_std * sums[m.channels + c] / count;
    }
    let at = plane_index * m.height * m.width + 2 * by * m.width + 2 * bx;
    let mut winner = 4u32;
    let mut g = F::new(0.0);
    if pool {
        // Cells of an odd last row or column belong to no window: their dy is zero.
        if by < m.out_height && bx < m.out_width {
            let (won, best) = window::<F>(x, at, m.width, scale, shift, normalize);
            winner = won;
            g = grad[(plane_index * m.out_height + by) * m.out_width + bx];
            if rectify {
                g = select(best > F::new(0.0), g, F::new(0.0));
            }
        }
    }
    #[unroll]
    for k in 0..4usize {
        let row = 2 * by + k / 2;
        let column = 2 * bx + k % 2;
        if row < m.height && column < m.width {
            let cell = at + (k / 2) * m.width + k % 2;
            let value = x[cell];
            let mut dy = select(winner == k as u32, g, F::new(0.0));
            if !pool {
                dy = grad[cell];
                if rectify {
                    let out = normalized::<F>(value, scale, shift, normalize);
                    dy = select(out > F::new(0.0), dy, F::new(0.0));
                }
            }
            dx[cell] = a * dy + b + d * (value - mean);
        }
    }
}

type Raw = CubeTensor<WgpuRuntime>;

fn empty_like(like: &Raw, shape: Shape) -> Raw {
    let bytes = shape.num_elements() * std::mem::size_of::<f32>();
    CubeTensor::new_contiguous(
        like.client.clone(),
        like.device.clone(),
        shape,
        like.client.empty(bytes),
        DType::F32,
    )
}

fn maps(dims: [usize; 4], layers: Layers, epsilon: f64) -> MapsLaunch<WgpuRuntime> {
    let [n, c, oh, ow] = layers.output_dims(dims);
    MapsLaunch::new(n, c, dims[2], dims[3], oh, ow, epsilon as f32)
}

/// `[2, C]`: each channel's batch mean, then its biased variance.
fn statistics(x: &Raw, dims: [usize; 4], layers: Layers, epsilon: f64) -> Raw {
    let stats = empty_like(x, Shape::new([2, dims[1]]));
    // SAFETY: a workgroup per channel reads that channel's values and writes its two entries.
    unsafe {
        statistics_kernel::launch_unchecked::<f32, WgpuRuntime>(
            &x.client,
            CubeCount::Static(dims[1] as u32, 1, 1),
            CubeDim::new_1d(CHANNEL_THREADS as u32),
            x.clone().into_tensor_arg(),
            stats.clone().into_tensor_arg(),
            maps(dims, layers, epsilon),
        )
    };
    stats
}

/// The 2x2 blocks of cells covering the maps, odd last rows and columns included.
fn blocks_of_cells([n, c, h, w]: [usize; 4]) -> usize {
    n * c * h.div_ceil(2) * w.div_ceil(2)
}

fn elementwise(client: &ComputeClient<WgpuRuntime>, count: usize) -> (CubeCount, CubeDim) {
    let cube_dim = CubeDim::new_1d(256);
    (
        calculate_cube_count_elemwise(client, count, cube_dim),
        cube_dim,
    )
}

/// The normalisation's parameters and statistics, or stand-ins never read.
struct Normalization {
    gamma: Raw,
    beta: Raw,
    stats: Raw,
}

fn forward(x: &Raw, dims: [usize; 4], layers: Layers, epsilon: f64, norm: &Normalization) -> Raw {
    let y = empty_like(x, Shape::new(layers.output_dims(dims)));
    let (cubes, cube_dim) = elementwise(&x.client, blocks_of_cells(dims));
    // SAFETY: a thread per 2x2 block of cells, reading and writing only the block's cells
    // inside the maps (a window only when it is whole) and its channel's parameters.
    unsafe {
        tail_forward_kernel::launch_unchecked::<f32, WgpuRuntime>(
            &x.client,
            cubes,
            cube_dim,
            x.clone().into_tensor_arg(),
            norm.stats.clone().into_tensor_arg(),
            norm.gamma.clone().into_tensor_arg(),
            norm.beta.clone().into_tensor_arg(),
            y.clone().into_tensor_arg(),
            maps(dims, layers, epsilon),
            layers.normalize,
            layers.pool,
            layers.rectify,
        )
    };
    y
}

/// The input's gradient, and with normalisation `[2, C]` sums (`Σ dy`, then `Σ dy·x̂`): the
/// gradients of β and γ.
fn backward(
    x: &Raw,
    grad: Raw,
    dims: [usize; 4],
    layers: Layers,
    epsilon: f64,
    norm: &Normalization,
) -> (Raw, Option<Raw>) {
    let client = &x.client;
    let sums = layers.normalize.then(|| {
        let sums = empty_like(x, Shape::new([2, dims[1]]));
        // SAFETY: a workgroup per channel reads that channel's windows and gradients and
        // writes its two sums.
        unsafe {
            sums_kernel::launch_unchecked::<f32, WgpuRuntime>(
                client,
                CubeCount::Static(dims[1] as u32, 1, 1),
                CubeDim::new_1d(CHANNEL_THREADS as u32),
                x.clone().into_tensor_arg(),
                norm.stats.clone().into_tensor_arg(),
                norm.gamma.clone().into_tensor_arg(),
                norm.beta.clone().into_tensor_arg(),
                grad.clone().into_tensor_arg(),
                sums.clone().into_tensor_arg(),
                maps(dims, layers, epsilon),
                layers.normalize,
                layers.pool,
                layers.rectify,
            )
        };
        sums
    });
    let dx = empty_like(x, Shape::new(dims));
    let (cubes, cube_dim) = elementwise(client, blocks_of_cells(dims));
    // SAFETY: as the forward pass's, reading the block's output gradient (a window's only when
    // it is whole) and its channel's sums.
    unsafe {
        tail_input_gradient_kernel::launch_unchecked::<f32, WgpuRuntime>(
            client,
            cubes,
            cube_dim,
            x.clone().into_tensor_arg(),
            norm.stats.clone().into_tensor_arg(),
            norm.gamma.clone().into_tensor_arg(),
            norm.beta.clone().into_tensor_arg(),
            grad.into_tensor_arg(),
            sums.clone().unwrap_or_else(|| x.clone()).into_tensor_arg(),
            dx.clone().into_tensor_arg(),
            maps(dims, layers, epsilon),
            layers.normalize,
            layers.pool,
            layers.rectify,
        )
    };
    (dx, sums)
}

fn inner<const D: usize>(raw: Raw) -> BurnTensor<Wgpu, D> {
    BurnTensor::from_primitive(TensorPrimitive::Float(raw))
}

/// Row `row` of a `[2, C]` tensor, as `[C]`.
fn row(raw: Raw, row: usize) -> Raw {
    let [_, c] = inner::<2>(raw.clone()).dims();
    inner::<2>(raw)
        .slice([row..row + 1])
        .reshape([c])
        .into_primitive()
        .tensor()
}

/// The recorded step of a block with normalisation: parents maps, γ, β.
#[derive(Debug)]
struct NormBackward {
    dims: [usize; 4],
    layers: Layers,
    epsilon: f64,
}

impl Backward<Wgpu, 3> for NormBackward {
    /// The maps, γ and the batch statistics (β is needed only for which values passed).
    type State = (Raw, Raw, Raw, Raw);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        // The kernels read the output's gradient in storage order.
        let grad = into_contiguous(grads.consume::<Wgpu>(&ops.node));
        let (x, gamma, beta, stats) = ops.state;
        let norm = Normalization { gamma, beta, stats };
        let (dx, sums) = backward(&x, grad, self.dims, self.layers, self.epsilon, &norm);
        let sums = sums.expect("a normalised block has sums");
        let [x_node, gamma_node, beta_node] = &ops.parents;
        if let Some(node) = x_node {
            grads.register::<Wgpu>(node.id, dx);
        }
        if let Some(node) = gamma_node {
            grads.register::<Wgpu>(node.id, row(sums.clone(), 1));
        }
        if let Some(node) = beta_node {
            grads.register::<Wgpu>(node.id, row(sums, 0));
        }
    }
}

/// The recorded step of a block without normalisation: parent the maps.
#[derive(Debug)]
struct PoolBackward {
    dims: [usize; 4],
    layers: Layers,
}

impl Backward<Wgpu, 1> for PoolBackward {
    type State = Raw;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = into_contiguous(grads.consume::<Wgpu>(&ops.node));
        let x = ops.state;
        let unused = Normalization {
            gamma: x.clone(),
            beta: x.clone(),
            stats: x.clone(),
        };
        let (dx, _) = backward(&x, grad, self.dims, self.layers, 0.0, &unused);
        if let Some(node) = &ops.parents[0] {
            grads.register::<Wgpu>(node.id, dx);
        }
    }
}

/// Whether the maps can go to these kernels: at least one window when pooling.
fn fits(x: &Raw, layers: Layers) -> bool {
    let dims = x.meta.shape();
    !layers.pool || (dims[2] >= 2 && dims[3] >= 2)
}

/// `layers` (with normalisation: γ, β, ε) applied to `maps` on the WGPU training backend, with
/// the batch mean and biased variance when normalising (detached, for the running averages);
/// the maps back on any other backend.
#[allow(clippy::type_complexity)]
pub fn block_tail<B: burn::tensor::backend::Backend>(
    maps: BurnTensor<B, 4>,
    normalization: Option<(BurnTensor<B, 1>, BurnTensor<B, 1>, f64)>,
    layers: Layers,
) -> Result<
    (
        BurnTensor<B, 4>,
        Option<(BurnTensor<B, 1>, BurnTensor<B, 1>)>,
    ),
    BurnTensor<B, 4>,
> {
    use super::super::same_type;
    use std::any::TypeId;
    if TypeId::of::<B>() != TypeId::of::<WgpuBackend>() {
        return Err(maps);
    }
    debug_assert_eq!(normalization.is_some(), layers.normalize);
    let primitive =
        |t: BurnTensor<WgpuBackend, 4>| -> FloatTensor<WgpuBackend> { t.into_primitive().tensor() };
    let mut x = primitive(same_type(maps.clone()));
    if !fits(&x.primitive, layers) {
        return Err(maps);
    }
    // The kernels read the maps in storage order (a copy only when they are strided).
    x.primitive = into_contiguous(x.primitive);
    let dims: [usize; 4] = maps.dims();
    let output = |raw: FloatTensor<WgpuBackend>| -> BurnTensor<B, 4> {
        same_type(BurnTensor::<WgpuBackend, 4>::from_primitive(
            TensorPrimitive::Float(raw),
        ))
    };
    let Some((gamma, beta, epsilon)) = normalization else {
        let unused = Normalization {
            gamma: x.primitive.clone(),
            beta: x.primitive.clone(),
            stats: x.primitive.clone(),
        };
        let y = forward(&x.primitive, dims, layers, 0.0, &unused);
        let tracked = match (PoolBackward { dims, layers })
            .prepare::<NoCheckpointing>([x.node.clone()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish(x.primitive.clone(), y),
            OpsKind::UnTracked(prep) => prep.finish(y),
        };
        return Ok((output(tracked), None));
    };
    let one = |t: BurnTensor<B, 1>| -> FloatTensor<WgpuBackend> {
        same_type::<_, BurnTensor<WgpuBackend, 1>>(t)
            .into_primitive()
            .tensor()
    };
    let (mut gamma, mut beta) = (one(gamma), one(beta));
    gamma.primitive = into_contiguous(gamma.primitive);
    beta.primitive = into_contiguous(beta.primitive);
    let stats = statistics(&x.primitive, dims, layers, epsilon);
    let norm = Normalization {
        gamma: gamma.primitive.clone(),
        beta: beta.primitive.clone(),
        stats: stats.clone(),
    };
    let y = forward(&x.primitive, dims, layers, epsilon, &norm);
    let state = (
        x.primitive.clone(),
        gamma.primitive.clone(),
        beta.primitive.clone(),
        stats.clone(),
    );
    let tracked = match (NormBackward {
        dims,
        layers,
        epsilon,
    })
    .prepare::<NoCheckpointing>([x.node.clone(), gamma.node.clone(), beta.node.clone()])
    .compute_bound()
    .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish(state, y),
        OpsKind::UnTracked(prep) => prep.finish(y),
    };
    let detached = |raw: Raw| -> BurnTensor<B, 1> {
        same_type(BurnTensor::<WgpuBackend, 1>::from_inner(inner::<1>(raw)))
    };
    Ok((
        output(tracked),
        Some((detached(row(stats.clone(), 0)), detached(row(stats, 1)))),
    ))
}
