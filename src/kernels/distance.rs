//! Distances between all pairs of sphere centers, from explicit differences, forward and
//! backward, on the CPU training backend.
//!
//! The loss takes `d_ij = sqrt(|c_i − c_j|² + ε)` from the differences themselves rather
//! than from `|c_i|² + |c_j|² − 2 c_i·c_j`, which loses close pairs to cancellation in f32. As
//! tensors that is a `[B, B, d]` broadcast, its square and its sum, and their gradients; here
//! it is one pass over the pairs each way, `∂L/∂c_i = Σ_j (G_ij + G_ji) (c_i − c_j) / d_ij`.

use burn::backend::Flex;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use rayon::prelude::*;

use super::{flex_tensor, from_cpu, on_cpu_training, to_cpu, values};

/// `[B, B]` distances `sqrt(|c_i − c_j|² + epsilon)` between the rows of `centers` (`[B, d]`).
pub fn pairwise_distances<B: Backend>(centers: Tensor<B, 2>, epsilon: f64) -> Tensor<B, 2> {
    if !on_cpu_training::<B>() {
        let [batch, _] = centers.dims();
        let differences = centers.clone().unsqueeze_dim::<3>(1) - centers.unsqueeze_dim(0);
        return (differences.square().sum_dim(2).reshape([batch, batch]) + epsilon).sqrt();
    }
    let [batch, dim] = centers.dims();
    let centers = to_cpu(centers);
    let distances = forward([batch, dim], &values(&centers.primitive), epsilon);
    let output = flex_tensor(distances.clone(), [batch, batch]);
    let state = (
        centers.primitive.clone(),
        flex_tensor(distances, [batch, batch]),
    );
    let tracked = match (DistanceBackward { dims: [batch, dim] })
        .prepare::<NoCheckpointing>([centers.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish(state, output),
        OpsKind::UnTracked(prep) => prep.finish(output),
    };
    from_cpu(tracked)
}

pub fn forward([batch, dim]: [usize; 2], centers: &[f32], epsilon: f64) -> Vec<f32> {
    let mut distances = vec![0.0f32; batch * batch];
    distances
        .par_chunks_mut(batch)
        .enumerate()
        .for_each(|(i, row)| {
            let ci = &centers[i * dim..][..dim];
            for (j, d) in row.iter_mut().enumerate() {
                let cj = &centers[j * dim..][..dim];
                let squared: f64 = ci
                    .iter()
                    .zip(cj)
                    .map(|(a, b)| ((a - b) as f64).powi(2))
                    .sum();
                *d = (squared + epsilon).sqrt() as f32;
            }
        });
    distances
}

/// The gradient of the centers given the gradient `grad` of the distances.
pub fn backward(
    [batch, dim]: [usize; 2],
    centers: &[f32],
    distances: &[f32],
    grad: &[f32],
) -> Vec<f32> {
    let mut dc = vec![0.0f32; batch * dim];
    dc.par_chunks_mut(dim).enumerate().for_each(|(i, out)| {
        let ci = &centers[i * dim..][..dim];
        let mut sum = vec![0.0f64; dim];
        for j in 0..batch {
            let weight = (grad[i * batch + j] + grad[j * batch + i]) as f64
                / distances[i * batch + j] as f64;
            if j == i || weight == 0.0 {
                continue;
            }
            let cj = &centers[j * dim..][..dim];
            for ((s, a), b) in sum.iter_mut().zip(ci).zip(cj) {
                *s += weight * (a - b) as f64;
            }
        }
        out.iter_mut().zip(&sum).for_each(|(o, s)| *o = *s as f32);
    });
    dc
}

#[derive(Debug)]
struct DistanceBackward {
    dims: [usize; 2],
}

impl Backward<Flex, 1> for DistanceBackward {
    /// The centers and their distances.
    type State = (FlexTensor, FlexTensor);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<Flex>(&ops.node);
        if let Some(node) = &ops.parents[0] {
            let (centers, distances) = &ops.state;
            let dc = backward(
                self.dims,
                &values(centers),
                &values(distances),
                &values(&grad),
            );
            grads.register::<Flex>(node.id, flex_tensor(dc, self.dims));
        }
    }
}
