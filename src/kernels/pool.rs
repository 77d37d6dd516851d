//! 2x2 max-pooling with stride 2, forward and backward, on the CPU training backend.
//!
//! burn's CPU backend pools through a general 3-D windowed kernel that returns its indices as
//! an i64 tensor; here each window is four comparisons and its winner is kept as one byte.

use std::sync::Arc;

use burn::backend::Flex;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use burn::tensor::module::max_pool2d;
use rayon::prelude::*;

use super::{flex_tensor, from_cpu, on_cpu_training, to_cpu, values};

/// Max over each 2x2 window, stride 2 (an odd last row or column is dropped, as burn's).
pub fn max_pool_2x2<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 4> {
    if !on_cpu_training::<B>() {
        return max_pool2d(x, [2, 2], [2, 2], [0, 0], [1, 1], false);
    }
    let dims = x.dims();
    let x = to_cpu(x);
    let (pooled, winners) = forward(dims, &values(&x.primitive));
    let [n, c, h, w] = dims;
    let output = flex_tensor(pooled, [n, c, h / 2, w / 2]);
    let tracked = match (PoolBackward { dims })
        .prepare::<NoCheckpointing>([x.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish(Arc::new(winners), output),
        OpsKind::UnTracked(prep) => prep.finish(output),
    };
    from_cpu(tracked)
}

/// The pooled maps and, for each window, which of its four cells won (row-major, first of
/// equals). A NaN wins its window, so that it reaches the loss.
pub fn forward([n, c, h, w]: [usize; 4], x: &[f32]) -> (Vec<f32>, Vec<u8>) {
    let (oh, ow) = (h / 2, w / 2);
    let mut pooled = vec![0.0f32; n * c * oh * ow];
    let mut winners = vec![0u8; pooled.len()];
    pooled
        .par_chunks_mut(oh * ow)
        .zip(winners.par_chunks_mut(oh * ow))
        .zip(x.par_chunks(h * w))
        .for_each(|((out, win), plane)| {
            for oy in 0..oh {
                let top = &plane[2 * oy * w..][..w];
                let bottom = &plane[(2 * oy + 1) * w..][..w];
                for ox in 0..ow {
                    let cells = [
                        top[2 * ox],
                        top[2 * ox + 1],
                        bottom[2 * ox],
                        bottom[2 * ox + 1],
                    ];
                    let (max, cell) = window_max(&cells);
                    out[oy * ow + ox] = max;
                    win[oy * ow + ox] = cell as u8;
                }
            }
        });
    (pooled, winners)
}

/// A window's maximum and which of its four cells holds it: the first of equals, and a NaN
/// over any number. Written as selects, without branches: the winner is data, not control.
#[inline(always)]
pub fn window_max(cells: &[f32; 4]) -> (f32, usize) {
    let (mut max, mut cell) = (cells[0], 0);
    for (k, &v) in cells.iter().enumerate().skip(1) {
        let wins = v > max || (v.is_nan() && !max.is_nan());
        max = if wins { v } else { max };
        cell = if wins { k } else { cell };
    }
    (max, cell)
}

/// The maxima of many windows at once, each given by its four cells (`cells[k][q]` is cell `k`
/// of window `q`): `max[q]`, and `winner[q]` by the rule of [`window_max`]. The loops carry no
/// branch, so the compiler runs them a vector of windows at a time.
#[inline(always)]
pub fn windows_max(cells: [&[f32]; 4], max: &mut [f32], winner: &mut [u8]) {
    let n = max.len();
    let [first, second, third, fourth] = cells.map(|c| &c[..n]);
    // Ordered comparisons only, which vectorise; a NaN (a diverging step) is rare enough to be
    // handled after, window by window.
    let mut any_nan = false;
    for q in 0..n {
        let (mut m, mut k) = (first[q], 0u32);
        for (i, v) in [(1, second[q]), (2, third[q]), (3, fourth[q])] {
            let wins = v > m;
            m = if wins { v } else { m };
            k = if wins { i } else { k };
        }
        max[q] = m;
        winner[q] = k as u8;
        any_nan |= first[q].is_nan() | second[q].is_nan() | third[q].is_nan() | fourth[q].is_nan();
    }
    if any_nan {
        for q in 0..n {
            let (m, k) = window_max(&[first[q], second[q], third[q], fourth[q]]);
            (max[q], winner[q]) = (m, k as u8);
        }
    }
}

/// The gradient of the input: each window's output gradient goes to its winning cell.
pub fn backward([n, c, h, w]: [usize; 4], winners: &[u8], grad: &[f32]) -> Vec<f32> {
    let (oh, ow) = (h / 2, w / 2);
    let mut dx = vec![0.0f32; n * c * h * w];
    dx.par_chunks_mut(h * w)
        .zip(grad.par_chunks(oh * ow))
        .zip(winners.par_chunks(oh * ow))
        .for_each(|((plane, g), win)| {
            for oy in 0..oh {
                for ox in 0..ow {
                    let k = win[oy * ow + ox] as usize;
                    plane[(2 * oy + k / 2) * w + 2 * ox + k % 2] = g[oy * ow + ox];
                }
            }
        });
    dx
}

#[derive(Debug)]
struct PoolBackward {
    dims: [usize; 4],
}

impl Backward<Flex, 1> for PoolBackward {
    /// Each window's winner.
    type State = Arc<Vec<u8>>;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<Flex>(&ops.node);
        if let Some(node) = &ops.parents[0] {
            let dx = backward(self.dims, &ops.state, &values(&grad));
            grads.register::<Flex>(node.id, flex_tensor(dx, self.dims));
        }
    }
}
