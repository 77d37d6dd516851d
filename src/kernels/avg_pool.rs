//! Adaptive average pooling of `[N, C, H, W]` maps to a small grid, forward and backward, on
//! the CPU training backend: the small CNN's last layer before its projector (7x7 to 2x2).
//!
//! burn's CPU backend pools through a general 3-D kernel that walks strided indices for every
//! output and, backward, for every input cell; here each plane is a few sums of rows, and the
//! gradient a few additions into a plane written once. The windows are burn's: output `i` of
//! `out` covers input `floor(i·in/out) .. ceil((i+1)·in/out)`, so neighbouring windows overlap
//! when `out` does not divide `in`.

use burn::backend::Flex;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use burn::tensor::module::adaptive_avg_pool2d;
use rayon::prelude::*;

use super::{flex_tensor, from_cpu, on_cpu_training, to_cpu, values};

/// The input range `start..end` that output `i` of `out` pools over `len` cells.
fn window(i: usize, len: usize, out: usize) -> (usize, usize) {
    (i * len / out, ((i + 1) * len).div_ceil(out))
}

/// Average over each window of an `[oh, ow]` grid: burn's `adaptive_avg_pool2d`.
pub fn adaptive_avg_pool<B: Backend>(x: Tensor<B, 4>, grid: [usize; 2]) -> Tensor<B, 4> {
    if !on_cpu_training::<B>() {
        return adaptive_avg_pool2d(x, grid);
    }
    let dims = x.dims();
    let x = to_cpu(x);
    let pooled = forward(dims, grid, &values(&x.primitive));
    let output = flex_tensor(pooled, [dims[0], dims[1], grid[0], grid[1]]);
    from_cpu(
        (AvgPoolBackward { dims, grid })
            .prepare::<NoCheckpointing>([x.node.clone()])
            .compute_bound()
            .stateless(output),
    )
}

/// The pooled grids, `[N, C, oh, ow]`.
pub fn forward([_, _, h, w]: [usize; 4], [oh, ow]: [usize; 2], x: &[f32]) -> Vec<f32> {
    let mut out = vec![0.0f32; x.len() / (h * w) * oh * ow];
    out.par_chunks_mut(oh * ow)
        .zip(x.par_chunks(h * w))
        .for_each(|(grid, plane)| {
            for i in 0..oh {
                let (y0, y1) = window(i, h, oh);
                for j in 0..ow {
                    let (x0, x1) = window(j, w, ow);
                    let mut sum = 0.0f32;
                    for row in plane[y0 * w..y1 * w].chunks(w) {
                        sum += row[x0..x1].iter().sum::<f32>();
                    }
                    grid[i * ow + j] = sum / ((y1 - y0) * (x1 - x0)) as f32;
                }
            }
        });
    out
}

/// The maps' gradient: each window's gradient, divided by its size, added to each of its
/// cells (twice where windows overlap).
pub fn backward([_, _, h, w]: [usize; 4], [oh, ow]: [usize; 2], grad: &[f32]) -> Vec<f32> {
    let mut dx = vec![0.0f32; grad.len() / (oh * ow) * h * w];
    dx.par_chunks_mut(h * w)
        .zip(grad.par_chunks(oh * ow))
        .for_each(|(plane, g)| {
            for i in 0..oh {
                let (y0, y1) = window(i, h, oh);
                for j in 0..ow {
                    let (x0, x1) = window(j, w, ow);
                    let share = g[i * ow + j] / ((y1 - y0) * (x1 - x0)) as f32;
                    for row in plane[y0 * w..y1 * w].chunks_mut(w) {
                        row[x0..x1].iter_mut().for_each(|v| *v += share);
                    }
                }
            }
        });
    dx
}

#[derive(Debug)]
struct AvgPoolBackward {
    dims: [usize; 4],
    grid: [usize; 2],
}

impl Backward<Flex, 1> for AvgPoolBackward {
    type State = ();

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<Flex>(&ops.node);
        if let Some(node) = &ops.parents[0] {
            let dx = backward(self.dims, self.grid, &values(&grad));
            grads.register::<Flex>(node.id, flex_tensor(dx, self.dims));
        }
    }
}
