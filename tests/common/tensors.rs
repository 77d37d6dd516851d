//! Test tensors and their comparison, shared by the kernel tests.

use burn::tensor::TensorData;

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

pub fn max_abs(values: &[f32]) -> f32 {
    values.iter().fold(0.0f32, |m, v| m.max(v.abs()))
}

/// The largest difference between `ours` and `reference`, as a share of the reference's largest
/// value (a NaN anywhere counts as infinite).
pub fn relative_difference(what: &str, ours: &[f32], reference: &[f32]) -> f32 {
    assert_eq!(ours.len(), reference.len(), "{what}: length");
    let scale = max_abs(reference);
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
