//! The CLAMP packing loss (Zhang, Heeger & Martiniani, "Contrastive Learning As Manifold
//! Packing", NeurIPS 2025), written on burn tensors so it runs on any backend and differentiates
//! through the centers *and* the radii.
//!
//! Input: projector outputs `p[v, i, :]` for `m` views of `B` images in `d` dimensions.
//! 1. center globally, 2. project every view onto the unit sphere, 3. the views of image `i` form a
//!    sub-manifold with center `c_i` (mean view) and radius `r_i` (r_s times the RMS semi-axis),
//! 4. overlapping sub-manifolds repel with the soft-sphere energy `(1 - d_ij / s_ij)^alpha`,
//! 5. the loss is `ln(E + 1e-6)` (or `E` itself).

use burn::tensor::{Bool, Tensor, backend::Backend};
use serde::{Deserialize, Serialize};

use crate::kernels::pairwise_distances;
use crate::limits::{ConfigError, check_range};

/// Contact distances are capped here, so very large spheres do not see the whole batch.
pub const MAX_RANGE: f64 = 1.5;
/// Pairs whose centers nearly coincide are ignored: their direction of repulsion is undefined.
pub const MIN_MARGIN: f64 = 1e-3;
/// Keeps the square roots differentiable at zero.
pub const SQRT_EPS: f64 = 1e-12;
/// Added to `r_i + r_j` before the cap, as the reference does.
pub const RANGE_EPS: f64 = 1e-6;
/// Keeps `ln(E)` finite when no pair overlaps.
pub const LOG_EPS: f64 = 1e-6;

/// Allowed range of the pair-potential exponent.
pub const ALPHA_RANGE: (f64, f64) = (1.0, 10.0);
/// Allowed range of the radius scale r_s.
pub const RADIUS_SCALE_RANGE: (f64, f64) = (1e-3, 1e3);

/// The geometric hyperparameters of the packing loss. Runtime values: a slider may change them
/// between two training steps.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackingParams {
    /// Exponent of the pair potential: 2 is harmonic, 2.5 Hertzian.
    pub alpha: f64,
    /// r_s: multiplies the RMS spread of the views to give the sphere radius.
    pub radius_scale: f64,
    /// Minimise `ln(E + 1e-6)` (the paper's loss) rather than the plain energy `E`.
    pub log_energy: bool,
}

impl Default for PackingParams {
    fn default() -> Self {
        Self {
            alpha: 2.0,
            radius_scale: 1.0,
            log_energy: true,
        }
    }
}

impl PackingParams {
    /// Checks every field; the error names the field and its allowed range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_range("alpha", self.alpha, ALPHA_RANGE)?;
        check_range("radius_scale", self.radius_scale, RADIUS_SCALE_RANGE)
    }
}

/// Everything the loss computes on the way, kept as tensors so the read-out uses the very same
/// numbers as the gradient.
pub struct Packing<B: Backend> {
    /// Views projected onto the unit sphere, `[m, B, d]`.
    pub unit_views: Tensor<B, 3>,
    /// Sub-manifold centers `c_i`, `[B, d]`.
    pub centers: Tensor<B, 2>,
    /// Sub-manifold radii `r_i`, radius scale included, `[B]`.
    pub radii: Tensor<B, 1>,
    /// Center distances `d_ij`, `[B, B]`.
    pub distances: Tensor<B, 2>,
    /// Contact distances `s_ij = min(r_i + r_j + 1e-6, 1.5)`, `[B, B]`.
    pub contact_range: Tensor<B, 2>,
    /// Pairs that enter the energy: overlapping, not coincident, `i != j`.
    pub overlapping: Tensor<B, 2, Bool>,
    /// Packing energy `E`, shape `[1]`.
    pub energy: Tensor<B, 1>,
    /// The training objective, shape `[1]`: `ln(E + 1e-6)` or `E`.
    pub loss: Tensor<B, 1>,
    pub params: PackingParams,
}

impl<B: Backend> Packing<B> {
    /// Builds the packing of `projections` (`[m, B, d]`, views first) and its loss.
    pub fn new(projections: Tensor<B, 3>, params: &PackingParams) -> Self {
        let [views, batch, dim] = projections.dims();
        let device = projections.device();

        // 1. One global center for the whole batch.
        let global_mean = projections.clone().mean_dim(0).mean_dim(1);
        let centered = projections - global_mean;

        // 2. Unit sphere (the clamp only guards an exactly-zero vector).
        let norms = centered.clone().square().sum_dim(2).sqrt().clamp_min(1e-12);
        let unit_views = centered / norms;

        // 3. Sub-manifold centers and radii.
        let centers_3d = unit_views.clone().mean_dim(0);
        let spread = (unit_views.clone() - centers_3d.clone())
            .square()
            .sum_dim(2)
            .sum_dim(0)
            .reshape([batch]);
        let rank_bound = ((views - 1) * dim.min(views)) as f64;
        let radii = (spread / rank_bound + SQRT_EPS).sqrt() * params.radius_scale;
        let centers = centers_3d.reshape([batch, dim]);

        // 4. Pair distances from explicit differences: exact in f32 even for close centers.
        let distances = pairwise_distances(centers.clone(), SQRT_EPS);
        let radius_sums = radii.clone().unsqueeze_dim::<2>(1) + radii.clone().unsqueeze_dim(0);
        let contact_range = (radius_sums + RANGE_EPS).clamp_max(MAX_RANGE);

        let off_diagonal = Tensor::<B, 2, Bool>::diag_mask([batch, batch], 0, &device);
        let overlapping = distances
            .clone()
            .lower(contact_range.clone())
            .bool_and(distances.clone().greater_elem(MIN_MARGIN))
            .bool_and(off_diagonal);

        // 5. Soft-sphere energy over ordered pairs, halved. Non-overlapping gaps are zeroed before
        //    the power so a fractional alpha never sees a negative base.
        let gap = (distances.clone() / contact_range.clone())
            .neg()
            .add_scalar(1.0)
            .mask_fill(overlapping.clone().bool_not(), 0.0);
        let energy = gap.powf_scalar(params.alpha).sum().mul_scalar(0.5);
        let loss = if params.log_energy {
            energy.clone().add_scalar(LOG_EPS).log()
        } else {
            energy.clone()
        };

        Self {
            unit_views,
            centers,
            radii,
            distances,
            contact_range,
            overlapping,
            energy,
            loss,
            params: *params,
        }
    }

    /// Number of images (spheres) in the batch.
    pub fn batch(&self) -> usize {
        self.centers.dims()[0]
    }
}

/// The CLAMP loss of `projections` (`[m, B, d]`): a scalar tensor of shape `[1]`.
pub fn clamp_loss<B: Backend>(projections: Tensor<B, 3>, params: &PackingParams) -> Tensor<B, 1> {
    Packing::new(projections, params).loss
}
