//! The small CNN's first block as one operation: a 3x3 convolution (padding 1, stride 1, with
//! bias) of an image of few channels, 2x2 max-pooling, ReLU.
//!
//! Run as three layers, the block writes its full-resolution maps (16 x 28 x 28 per image, the
//! largest tensor of the step), reads them back to pool them, and in the backward pass scatters
//! the pooled gradient into maps of that size again for the convolution's weight gradient. Here
//! each image's maps are computed two rows at a time in registers and pooled at once, and the
//! backward pass rebuilds one map's gradient at a time in a buffer that stays in cache: no
//! full-resolution tensor is ever stored.
//!
//! A row of up to [`LANES`] output pixels is one SIMD accumulator; every value is summed in a
//! fixed order (taps in `(c, ky, kx)` order then the bias; the weight gradient lane by lane,
//! images in order, tasks in order, then the lanes in order), so the same inputs give the same
//! bits on every run, whatever the vector width of the CPU (each product and sum is one
//! fused multiply-add on x86-64, as in the GEMM this replaces).

use std::sync::Arc;

use burn::backend::Flex;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::tensor::Tensor;
use burn::tensor::activation::relu;
use burn::tensor::backend::Backend;
use rayon::prelude::*;

use super::pool::{max_pool_2x2, windows_max};
use super::{
    conv2d, flex_tensor, from_cpu, from_flex, images_per_task, multiply_add, on_cpu_inference,
    on_cpu_training, to_cpu, to_flex, values,
};

/// Output pixels of one row computed together: the widest image row this kernel takes.
pub const LANES: usize = 32;
/// A padded input row: the lanes and the two columns a 3x3 window reaches beyond them.
const ROW: usize = LANES + 2;
/// Set in a window's byte when its maximum passed the ReLU (the low two bits name the cell).
pub const PASSED: u8 = 4;

/// The sizes of one block: `[N, C, H, W]` images, `O` filters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockShape {
    pub batch: usize,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub filters: usize,
}

impl BlockShape {
    fn pooled(&self) -> (usize, usize) {
        (self.height / 2, self.width / 2)
    }

    fn image_len(&self) -> usize {
        self.channels * self.height * self.width
    }

    fn pooled_len(&self) -> usize {
        let (ph, pw) = self.pooled();
        self.filters * ph * pw
    }

    /// One padded channel plane: a zero row above and below, a zero column left, zeros right.
    fn padded_plane(&self) -> usize {
        (self.height + 2) * ROW
    }

    /// Whether this kernel takes the shape: rows no wider than [`LANES`], room for a window.
    pub fn supported(&self) -> bool {
        self.width <= LANES && self.height >= 2 && self.width >= 2
    }

    /// Copies one image into `padded` (zero borders; `padded` is zeroed once per task and only
    /// its interior is ever written).
    fn pad(&self, image: &[f32], padded: &mut [f32]) {
        let (h, w) = (self.height, self.width);
        for c in 0..self.channels {
            for y in 0..h {
                padded[c * self.padded_plane() + (y + 1) * ROW + 1..][..w]
                    .copy_from_slice(&image[(c * h + y) * w..][..w]);
            }
        }
    }
}

/// The block's output `relu(maxpool(conv(x) + b))`, `[N, O, H/2, W/2]`, and each window's
/// byte (winning cell, and [`PASSED`]).
pub fn forward(shape: &BlockShape, x: &[f32], weight: &[f32], bias: &[f32]) -> (Vec<f32>, Vec<u8>) {
    assert!(shape.supported(), "conv_pool: unsupported shape {shape:?}");
    let per_image = shape.pooled_len();
    let mut out = vec![0.0f32; shape.batch * per_image];
    let mut bytes = vec![0u8; out.len()];
    out.par_chunks_mut(per_image)
        .zip(bytes.par_chunks_mut(per_image))
        .zip(x.par_chunks(shape.image_len()))
        .for_each_init(
            || vec![0.0f32; shape.channels * shape.padded_plane()],
            |padded, ((out, bytes), image)| {
                shape.pad(image, padded);
                image_forward(shape, padded, weight, bias, out, bytes);
            },
        );
    (out, bytes)
}

widest_simd! {
fn image_forward(
    shape: &BlockShape,
    padded: &[f32],
    weight: &[f32],
    bias: &[f32],
    out: &mut [f32],
    bytes: &mut [u8],
) {
    let (ph, pw) = shape.pooled();
    let taps = shape.channels * 9;
    for o in 0..shape.filters {
        let filter = &weight[o * taps..][..taps];
        for py in 0..ph {
            let mut top = [0.0f32; LANES];
            let mut bottom = [0.0f32; LANES];
            for c in 0..shape.channels {
                for ky in 0..3 {
                    let at = c * shape.padded_plane() + (2 * py + ky) * ROW;
                    for kx in 0..3 {
                        let w = filter[(c * 3 + ky) * 3 + kx];
                        let upper: &[f32; LANES] = padded[at + kx..][..LANES].try_into().unwrap();
                        let lower: &[f32; LANES] =
                            padded[at + ROW + kx..][..LANES].try_into().unwrap();
                        for l in 0..LANES {
                            top[l] = multiply_add(w, upper[l], top[l]);
                            bottom[l] = multiply_add(w, lower[l], bottom[l]);
                        }
                    }
                }
            }
            let b = bias[o];
            for l in 0..LANES {
                top[l] += b;
                bottom[l] += b;
            }
            // The row pair's windows, cell by cell, then pooled and rectified lane-wise.
            let mut cells = [[0.0f32; LANES / 2]; 4];
            for i in 0..LANES / 2 {
                cells[0][i] = top[2 * i];
                cells[1][i] = top[2 * i + 1];
                cells[2][i] = bottom[2 * i];
                cells[3][i] = bottom[2 * i + 1];
            }
            let mut max = [0.0f32; LANES / 2];
            let mut winner = [0u8; LANES / 2];
            windows_max(cells.each_ref().map(|c| &c[..]), &mut max, &mut winner);
            let at = (o * ph + py) * pw;
            // All lanes, a fixed count the compiler vectorises; only the first `pw` are kept.
            relu_with_bytes(&mut max, &mut winner);
            out[at..at + pw].copy_from_slice(&max[..pw]);
            bytes[at..at + pw].copy_from_slice(&winner[..pw]);
        }
    }
}
}

/// The ReLU of a window's maximum and the window's byte. A NaN stays NaN (it reaches the loss,
/// which then rolls the step back); the gradient passes where the output is positive.
#[inline(always)]
pub fn relu_with_byte(value: f32, cell: usize) -> (f32, u8) {
    let passed = value > 0.0;
    let value = if passed || value.is_nan() { value } else { 0.0 };
    (value, cell as u8 | if passed { PASSED } else { 0 })
}

/// [`relu_with_byte`] over many windows in place: maxima to outputs, winners to bytes.
#[inline(always)]
pub fn relu_with_bytes(max: &mut [f32], winner: &mut [u8]) {
    for (m, w) in max.iter_mut().zip(winner.iter_mut()) {
        (*m, *w) = relu_with_byte(*m, *w as usize);
    }
}

/// The weight `[O, C, 3, 3]` and bias `[O]` gradients, given the output's gradient.
pub fn backward(shape: &BlockShape, x: &[f32], bytes: &[u8], grad: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let (o, taps) = (shape.filters, shape.channels * 9);
    // Per task: a lane-wise sum for each weight, then for each bias.
    let sums_len = (o * taps + o) * LANES;
    let group = images_per_task(shape.batch);
    let per_image = shape.pooled_len();
    let partial: Vec<Vec<f32>> = x
        .par_chunks(group * shape.image_len())
        .zip(grad.par_chunks(group * per_image))
        .zip(bytes.par_chunks(group * per_image))
        .map(|((images, grads), bytes)| {
            let mut sums = vec![0.0f32; sums_len];
            let mut padded = vec![0.0f32; shape.channels * shape.padded_plane()];
            let mut map = vec![0.0f32; 2 * shape.pooled().0 * LANES];
            for ((image, grad), bytes) in images
                .chunks(shape.image_len())
                .zip(grads.chunks(per_image))
                .zip(bytes.chunks(per_image))
            {
                shape.pad(image, &mut padded);
                image_backward(shape, &padded, grad, bytes, &mut map, &mut sums);
            }
            sums
        })
        .collect();
    // Tasks in order, then each weight's lanes in order: the same bits on every run.
    let mut total = vec![0.0f32; sums_len];
    for sums in &partial {
        total.iter_mut().zip(sums).for_each(|(t, s)| *t += s);
    }
    let mut reduced: Vec<f32> = total
        .chunks(LANES)
        .map(|lanes| lanes.iter().fold(0.0f32, |a, v| a + v))
        .collect();
    let bias = reduced.split_off(o * taps);
    (reduced, bias)
}

widest_simd! {
fn image_backward(
    shape: &BlockShape,
    padded: &[f32],
    grad: &[f32],
    bytes: &[u8],
    map: &mut [f32],
    sums: &mut [f32],
) {
    let (ph, pw) = shape.pooled();
    let taps = shape.channels * 9;
    let rows = 2 * ph;
    for o in 0..shape.filters {
        // The gradient of this filter's full-resolution map: each window's gradient at its
        // winning cell, zero where the ReLU stopped it.
        // Built a row pair at a time from the windows' values and cells, every lane written
        // (selects over whole rows, which vectorise, instead of clearing the map and scattering
        // one window at a time).
        for py in 0..ph {
            let at = (o * ph + py) * pw;
            let mut value = [0.0f32; LANES / 2];
            let mut byte = [0u8; LANES / 2];
            value[..pw].copy_from_slice(&grad[at..at + pw]);
            byte[..pw].copy_from_slice(&bytes[at..at + pw]);
            let mut cell = [0u32; LANES / 2];
            for q in 0..LANES / 2 {
                value[q] = if byte[q] & PASSED != 0 { value[q] } else { 0.0 };
                cell[q] = (byte[q] & 3) as u32;
            }
            let (top, bottom) = map[2 * py * LANES..][..2 * LANES].split_at_mut(LANES);
            // The four cells of every window as four half-rows, then interleaved.
            let mut cells = [[0.0f32; LANES / 2]; 4];
            for (k, half) in cells.iter_mut().enumerate() {
                for q in 0..LANES / 2 {
                    half[q] = if cell[q] == k as u32 { value[q] } else { 0.0 };
                }
            }
            for q in 0..LANES / 2 {
                top[2 * q] = cells[0][q];
                top[2 * q + 1] = cells[1][q];
                bottom[2 * q] = cells[2][q];
                bottom[2 * q + 1] = cells[3][q];
            }
        }
        // Summed in registers over the rows (in memory, each row's sum waited on the store
        // of the one before).
        let bias_slot = (shape.filters * taps + o) * LANES;
        let mut bias_lanes: [f32; LANES] = sums[bias_slot..][..LANES].try_into().unwrap();
        for y in 0..rows {
            let g: &[f32; LANES] = map[y * LANES..][..LANES].try_into().unwrap();
            for l in 0..LANES {
                bias_lanes[l] += g[l];
            }
        }
        sums[bias_slot..][..LANES].copy_from_slice(&bias_lanes);
        // A channel's nine taps at once, their lane sums held in registers over the rows:
        // nine independent chains of fused multiply-adds instead of one tap's chain at a time
        // (each sum still runs over the rows in order, so the bits are the same).
        for c in 0..shape.channels {
            let slot = (o * taps + c * 9) * LANES;
            let mut acc = [[0.0f32; LANES]; 9];
            for (tap, acc) in acc.iter_mut().enumerate() {
                *acc = sums[slot + tap * LANES..][..LANES].try_into().unwrap();
            }
            for y in 0..rows {
                let g: &[f32; LANES] = map[y * LANES..][..LANES].try_into().unwrap();
                for ky in 0..3 {
                    for kx in 0..3 {
                        let at = c * shape.padded_plane() + (y + ky) * ROW + kx;
                        let input: &[f32; LANES] = padded[at..][..LANES].try_into().unwrap();
                        let acc = &mut acc[ky * 3 + kx];
                        for l in 0..LANES {
                            acc[l] = multiply_add(g[l], input[l], acc[l]);
                        }
                    }
                }
            }
            for (tap, acc) in acc.iter().enumerate() {
                sums[slot + tap * LANES..][..LANES].copy_from_slice(acc);
            }
        }
    }
}
}

/// `relu(max_pool_2x2(conv(x)))` for a block whose convolution is 3x3, padding 1, stride 1,
/// with bias: as one operation on the CPU training backend when the input is not tracked (the
/// network's first layer), as the three layers otherwise.
pub fn conv_pool_relu<B: Backend>(conv: &Conv2d<B>, x: Tensor<B, 4>) -> Tensor<B, 4> {
    let [batch, channels, height, width] = x.dims();
    let shape = BlockShape {
        batch,
        channels,
        height,
        width,
        filters: conv.weight.val().dims()[0],
    };
    let fits = conv.kernel_size == [3, 3]
        && conv.stride == [1, 1]
        && conv.dilation == [1, 1]
        && conv.groups == 1
        && matches!(conv.padding, PaddingConfig2d::Explicit(1, 1, 1, 1))
        && shape.supported();
    let Some(bias) = conv.bias.as_ref().filter(|_| fits) else {
        return relu(max_pool_2x2(conv2d(conv, x)));
    };
    if on_cpu_inference::<B>() {
        // Inference on the CPU: the block's forward kernel, nothing recorded.
        let (out, _) = forward(
            &shape,
            &values(&to_flex(x)),
            &values(&to_flex(conv.weight.val())),
            &values(&to_flex(bias.val())),
        );
        let (ph, pw) = shape.pooled();
        return from_flex(flex_tensor(out, [batch, shape.filters, ph, pw]));
    }
    if !on_cpu_training::<B>() || x.is_require_grad() {
        let maps = conv2d(conv, x);
        // On WGPU, pooling and ReLU as one operation (`kernels::gpu::norm_pool`).
        #[cfg(feature = "gpu")]
        let maps = {
            use super::gpu::norm_pool::{Layers, block_tail};
            let layers = Layers {
                normalize: false,
                pool: true,
                rectify: true,
            };
            match block_tail(maps, None, layers) {
                Ok((y, _)) => return y,
                Err(maps) => maps,
            }
        };
        return relu(max_pool_2x2(maps));
    }
    let (x, weight, bias) = (to_cpu(x), to_cpu(conv.weight.val()), to_cpu(bias.val()));
    let (out, bytes) = forward(
        &shape,
        &values(&x.primitive),
        &values(&weight.primitive),
        &values(&bias.primitive),
    );
    let (ph, pw) = shape.pooled();
    let output = flex_tensor(out, [batch, shape.filters, ph, pw]);
    let tracked = match (BlockBackward { shape })
        .prepare::<NoCheckpointing>([weight.node.clone(), bias.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish((x.primitive.clone(), Arc::new(bytes)), output),
        OpsKind::UnTracked(prep) => prep.finish(output),
    };
    from_cpu(tracked)
}

#[derive(Debug)]
struct BlockBackward {
    shape: BlockShape,
}

impl Backward<Flex, 2> for BlockBackward {
    /// The input images and each window's byte.
    type State = (FlexTensor, Arc<Vec<u8>>);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<Flex>(&ops.node);
        let (x, bytes) = ops.state;
        let shape = self.shape;
        let (weight, bias) = backward(&shape, &values(&x), &bytes, &values(&grad));
        let [weight_node, bias_node] = &ops.parents;
        if let Some(node) = weight_node {
            let dims = [shape.filters, shape.channels, 3, 3];
            grads.register::<Flex>(node.id, flex_tensor(weight, dims));
        }
        if let Some(node) = bias_node {
            grads.register::<Flex>(node.id, flex_tensor(bias, [shape.filters]));
        }
    }
}
