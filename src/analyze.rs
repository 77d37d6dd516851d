//! `clamp analyze`: the packing read-out of embeddings made anywhere, from a `[m, B, d]` array.

use burn::backend::Flex;
use burn::tensor::{Tensor, TensorData};

use crate::loss::{Packing, PackingParams};
use crate::npy::NpyArray;
use crate::readout::PackingMetrics;

/// Largest `B * B * d` analysed at once (1 GiB of f32 differences).
pub const MAX_PAIR_ELEMENTS: usize = 1 << 28;

/// Checks that `array` is a usable `[m, B, d]` embedding array and measures its packing.
/// The error says what is wrong with the array (the caller adds the file name).
pub fn analyze_embeddings(
    array: &NpyArray,
    params: &PackingParams,
) -> Result<PackingMetrics, String> {
    params.validate()?;
    let [views, batch, dim] = match array.shape[..] {
        [m, b, d] => [m, b, d],
        _ => {
            return Err(format!(
                "expected an array shaped [m, B, d] (views, images, dimension), found {} dimension(s) {:?}",
                array.shape.len(),
                array.shape
            ));
        }
    };
    if views < 2 {
        return Err(format!("needs at least 2 views per image (m = {views})"));
    }
    if batch < 2 {
        return Err(format!("needs at least 2 images to pack (B = {batch})"));
    }
    if dim < 1 {
        return Err("the embedding dimension d is 0".into());
    }
    // The pair distances are built from a [B, B, d] difference tensor.
    let pair_elements = batch.saturating_mul(batch).saturating_mul(dim);
    if pair_elements > MAX_PAIR_ELEMENTS {
        return Err(format!(
            "B = {batch} images in d = {dim} needs {pair_elements} pair elements (limit {MAX_PAIR_ELEMENTS}): analyze a subset of the images"
        ));
    }
    if let Some(at) = array.data.iter().position(|x| !x.is_finite()) {
        return Err(format!(
            "contains a NaN or infinite value (first at view {}, image {}, component {})",
            at / (batch * dim),
            at / dim % batch,
            at % dim
        ));
    }
    let values: Vec<f32> = array.data.iter().map(|&x| x as f32).collect();
    let device = Default::default();
    let projections =
        Tensor::<Flex, 3>::from_data(TensorData::new(values, [views, batch, dim]), &device);
    Ok(Packing::new(projections, params).readout().metrics)
}
