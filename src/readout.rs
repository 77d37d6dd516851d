//! The jamming read-out of a packing: the quantities the reference logs, computed from the very
//! tensors the loss used, then read back to the host in one transaction.

use burn::tensor::{Int, Tensor, Transaction, backend::Backend};
use nalgebra::DMatrix;
use serde::{Deserialize, Serialize};

use crate::loss::Packing;

/// `j` is a contact of `i` when `d_ij < 0.99 (r_i + r_j)`.
pub const CONTACT_FACTOR: f64 = 0.99;

/// Scalar summary of one packing, the numbers `clamp analyze` prints and the app plots.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PackingMetrics {
    /// The training objective: `ln(E + 1e-6)`, or `E` with the plain-energy variant.
    pub loss: f64,
    /// Soft-sphere energy `E = 0.5 sum_{i != j} (1 - d_ij / s_ij)^alpha`.
    pub energy: f64,
    /// Mean number of contacts per sphere.
    pub mean_contacts: f64,
    /// Fraction of spheres with at least one contact.
    pub activity: f64,
    /// Fraction of spheres with no contact (`1 - activity`).
    pub rattler_fraction: f64,
    /// Mean radius without the radius scale.
    pub mean_radius: f64,
    /// Standard deviation (n - 1) of the radius without the radius scale.
    pub radius_std: f64,
    /// Mean distance between two distinct centers.
    pub mean_center_distance: f64,
    /// Unordered pairs inside the energy mask.
    pub overlapping_pairs: u64,
    /// Pressure-like virial `sum over overlapping unordered pairs of (1 - d/s)^(alpha-1) d/s`.
    pub virial: f64,
    /// Fraction of views whose nearest center is their own image's.
    pub nearest_centroid_acc: f64,
    /// std/mean (n - 1) of the singular values of the center matrix: large when collapsing.
    pub singular_value_ratio: f64,
}

/// The metrics plus the per-sphere geometry, on the host.
#[derive(Clone, Debug, Default)]
pub struct PackingReadout {
    pub metrics: PackingMetrics,
    /// Centers, row-major `[B, d]`.
    pub centers: Vec<f32>,
    /// Radii with the radius scale, `[B]`.
    pub radii: Vec<f32>,
    /// Contact number of each sphere, `[B]`.
    pub contacts: Vec<u32>,
    pub dim: usize,
}

impl<B: Backend> Packing<B> {
    /// Computes the read-out on the device and reads it back with one synchronisation.
    pub fn readout(&self) -> PackingReadout {
        let [views, batch, dim] = self.unit_views.dims();
        let device = self.centers.device();
        let params = &self.params;
        let not_overlapping = self.overlapping.clone().bool_not();

        let ratio = self.distances.clone() / self.contact_range.clone();
        let gap = ratio
            .clone()
            .neg()
            .add_scalar(1.0)
            .mask_fill(not_overlapping.clone(), 0.0);
        let virial = (gap.powf_scalar(params.alpha - 1.0) * ratio)
            .mask_fill(not_overlapping, 0.0)
            .sum()
            .mul_scalar(0.5);
        let overlapping_pairs = self.overlapping.clone().int().sum();

        let off_diagonal =
            Tensor::<B, 2, burn::tensor::Bool>::diag_mask([batch, batch], 0, &device);
        let distance_sum = self
            .distances
            .clone()
            .mask_fill(off_diagonal.bool_not(), 0.0)
            .sum();

        // Nearest center by distance: |z - c|^2 = 1 + |c|^2 - 2 z.c for a unit view z.
        let flat_views = self.unit_views.clone().reshape([views * batch, dim]);
        let center_norms = self.centers.clone().square().sum_dim(1).reshape([1, batch]);
        let scores = flat_views
            .matmul(self.centers.clone().transpose())
            .mul_scalar(2.0)
            - center_norms;
        let nearest = scores.argmax(1).reshape([views * batch]);
        let own = Tensor::<B, 1, Int>::arange(0..batch as i64, &device)
            .unsqueeze_dim::<2>(0)
            .repeat_dim(0, views)
            .reshape([views * batch]);
        let nearest_hits = nearest.equal(own).int().sum();

        let data = Transaction::default()
            .register(self.loss.clone())
            .register(self.energy.clone())
            .register(virial)
            .register(overlapping_pairs)
            .register(distance_sum)
            .register(nearest_hits)
            .register(self.contact_counts())
            .register(self.radii.clone())
            .register(self.centers.clone())
            .execute();
        let scalar = |k: usize| data[k].iter::<f64>().next().unwrap_or(f64::NAN);
        let contacts: Vec<u32> = data[6].iter::<i64>().map(|c| c as u32).collect();
        let radii: Vec<f32> = data[7].iter::<f32>().collect();
        let centers: Vec<f32> = data[8].iter::<f32>().collect();

        let touching = contacts.iter().filter(|&&c| c > 0).count() as f64 / batch as f64;
        let unscaled: Vec<f64> = radii
            .iter()
            .map(|&r| r as f64 / params.radius_scale)
            .collect();
        let (mean_radius, radius_std) = mean_and_std(&unscaled);
        let metrics = PackingMetrics {
            loss: scalar(0),
            energy: scalar(1),
            mean_contacts: contacts.iter().map(|&c| c as f64).sum::<f64>() / batch as f64,
            activity: touching,
            rattler_fraction: 1.0 - touching,
            mean_radius,
            radius_std,
            mean_center_distance: scalar(4) / (batch * (batch - 1)) as f64,
            overlapping_pairs: (scalar(3) / 2.0).round() as u64,
            virial: scalar(2),
            nearest_centroid_acc: scalar(5) / (views * batch) as f64,
            singular_value_ratio: singular_value_ratio(&centers, batch, dim),
        };
        PackingReadout {
            metrics,
            centers,
            radii,
            contacts,
            dim,
        }
    }
}

/// Mean and sample standard deviation (n - 1, as torch's `std`).
pub fn mean_and_std(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    if values.len() < 2 {
        return (mean, 0.0);
    }
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var.sqrt())
}

/// std/mean of the singular values of the `[rows, cols]` matrix, from the eigenvalues of its
/// smaller Gram matrix. Near 0 for an isotropic cloud, large when the centers collapse onto a few
/// directions.
pub fn singular_value_ratio(matrix: &[f32], rows: usize, cols: usize) -> f64 {
    let m = DMatrix::from_row_iterator(rows, cols, matrix.iter().map(|&x| x as f64));
    let gram = if rows <= cols {
        &m * m.transpose()
    } else {
        m.transpose() * &m
    };
    let singular: Vec<f64> = gram
        .symmetric_eigenvalues()
        .iter()
        .map(|&e| e.max(0.0).sqrt())
        .collect();
    let (mean, std) = mean_and_std(&singular);
    if mean > 0.0 { std / mean } else { 0.0 }
}
