//! SimCLR's InfoNCE loss (NT-Xent, Chen et al. 2020) for side-by-side comparison with CLAMP in
//! the same harness. With m views, every other view of the same image is a positive (the
//! multi-positive form; for m = 2 it is exactly NT-Xent).

use burn::tensor::{Bool, Tensor, TensorData, backend::Backend};

/// Mean NT-Xent loss of projections `[m, B, d]` at the given temperature; shape `[1]`.
pub fn nt_xent<B: Backend>(projections: Tensor<B, 3>, temperature: f64) -> Tensor<B, 1> {
    let [views, batch, dim] = projections.dims();
    let n = views * batch;
    let device = projections.device();
    let z = projections.reshape([n, dim]);
    let z = z.clone() / z.square().sum_dim(1).sqrt().clamp_min(1e-12);
    let self_pairs = Tensor::<B, 2, Bool>::diag_mask([n, n], 0, &device).bool_not();
    let logits = z
        .clone()
        .matmul(z.transpose())
        .div_scalar(temperature)
        .mask_fill(self_pairs, -1e9);
    // log-softmax over each row, stabilised by the row maximum.
    let row_max = logits.clone().max_dim(1).detach();
    let log_norm = (logits.clone() - row_max.clone()).exp().sum_dim(1).log() + row_max;
    let log_prob = logits - log_norm;

    // Row a = (view, image): positives are the other views of the same image.
    let positives: Vec<f32> = (0..n * n)
        .map(|k| {
            let (a, b) = (k / n, k % n);
            (a != b && a % batch == b % batch) as u8 as f32
        })
        .collect();
    let positives = Tensor::<B, 2>::from_data(TensorData::new(positives, [n, n]), &device);
    (log_prob * positives)
        .sum()
        .div_scalar(-((n * (views - 1)) as f64))
}
