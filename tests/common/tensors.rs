//! Test tensors and their comparison, shared by the kernel tests.

use burn::module::Param;
use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::tensor::TensorData;
use burn::tensor::backend::Backend;

/// A convolution: (batch, channels, height, width, filters, kernel, stride, padding, bias).
pub type Case = (usize, usize, usize, usize, usize, usize, usize, usize, bool);

/// `case`'s convolution layer with random weights (and bias), the same for every backend.
pub fn layer<B: Backend>(case: Case, device: &B::Device) -> Conv2d<B> {
    let (_, channels, _, _, filters, kernel, stride, padding, bias) = case;
    let mut conv = Conv2dConfig::new([channels, filters], [kernel, kernel])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(
            padding, padding, padding, padding,
        ))
        .with_bias(bias)
        .init::<B>(device);
    conv.weight = Param::from_data(random([filters, channels, kernel, kernel], 7), device);
    if bias {
        conv.bias = Some(Param::from_data(random([filters], 8), device));
    }
    conv
}

/// `dims` values uniform in [-1, 1), the same for the same seed (xorshift).
pub fn random<const D: usize>(dims: [usize; D], seed: u64) -> TensorData {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let count = dims.iter().product();
    let values: Vec<f32> = (0..count)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
        })
        .collect();
    TensorData::new(values, dims)
}

/// The largest difference between `ours` and `reference`, as a share of the reference's largest
/// value (a NaN anywhere counts as infinite).
pub fn relative_difference(what: &str, ours: &[f32], reference: &[f32]) -> f32 {
    assert_eq!(ours.len(), reference.len(), "{what}: length");
    let scale = super::max_abs(reference.iter().copied()) as f32;
    // A wrong answer of the right size (zeros, a transposed kernel) must be told from the
    // reference: it must not be trivially zero itself.
    assert!(scale > 1e-3, "{what}: the reference is all zeros");
    ours.iter()
        .zip(reference)
        .map(|(a, b)| {
            let d = (a - b).abs();
            if d.is_nan() { f32::INFINITY } else { d }
        })
        .fold(0.0f32, f32::max)
        / scale
}

/// `ours` within `1e-4` of the reference's largest value, everywhere.
pub fn assert_close(what: &str, ours: &[f32], reference: &[f32]) {
    let worst = relative_difference(what, ours, reference);
    assert!(
        worst <= 1e-4,
        "{what}: worst difference {worst:e} of the largest value"
    );
}
