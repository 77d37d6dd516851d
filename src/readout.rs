//! The jamming read-out of a packing: the quantities the reference logs, computed from the very
//! tensors the loss used, then read back to the host in one transaction.

use burn::tensor::{Bool, Int, Tensor, Transaction, backend::Backend};
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
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
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
    /// Per-sphere contact numbers: `j` touches `i` when `d_ij < 0.99 (r_i + r_j)` (no cap).
    pub fn contact_counts(&self) -> Tensor<B, 1, Int> {
        let batch = self.batch();
        let device = self.centers.device();
        let radius_sums =
            self.radii.clone().unsqueeze_dim::<2>(1) + self.radii.clone().unsqueeze_dim(0);
        let off_diagonal = Tensor::<B, 2, Bool>::diag_mask([batch, batch], 0, &device);
        self.distances
            .clone()
            .lower(radius_sums.mul_scalar(CONTACT_FACTOR))
            .bool_and(off_diagonal)
            .int()
            .sum_dim(1)
            .reshape([batch])
    }

    /// Computes the read-out on the device and reads it back with one synchronisation.
    pub fn readout(&self) -> PackingReadout {
        burn::tensor::read_sync(self.readout_async())
    }

    /// [`Packing::readout`] without blocking: the one read-back is awaited (a browser cannot
    /// wait for the GPU, it can only be told when the data is there).
    pub async fn readout_async(&self) -> PackingReadout {
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
            .execute_async()
            .await
            .expect("reading the packing read-out back from the device");
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

/// Largest batch whose read-out runs on the device: the pair tensors grow as `B^2 d`, so a
/// larger evaluation set (the viewer allows 10,000 spheres) is read out on the host instead.
pub const DEVICE_READOUT_MAX_BATCH: usize = 2048;

/// Views that the host read-out checks for nearest-centroid accuracy: evenly strided, so the
/// cost stays `O(VIEWS x B x d)` however large the batch.
pub const HOST_NEAREST_VIEWS: usize = 4096;

/// The same read-out as [`Packing::readout`], computed on the host in float64 from the
/// projector outputs `[m, B, d]` (row-major), in `O(B^2 d)` time but only `O(B d)` memory. Also
/// returns the contact pairs `(i, j)`, `i < j`, with the read-out's contact rule.
pub fn host_readout(
    projections: &[f32],
    views: usize,
    batch: usize,
    dim: usize,
    params: &crate::loss::PackingParams,
) -> (PackingReadout, Vec<[u32; 2]>) {
    use crate::loss::{LOG_EPS, MAX_RANGE, MIN_MARGIN, RANGE_EPS, SQRT_EPS};
    use rayon::prelude::*;
    assert_eq!(
        projections.len(),
        views * batch * dim,
        "projections must be [m, B, d]"
    );

    // 1-2. Global center, then every view onto the unit sphere.
    let mut mean = vec![0.0f64; dim];
    for view in projections.chunks(dim) {
        for (acc, &x) in mean.iter_mut().zip(view) {
            *acc += x as f64;
        }
    }
    mean.iter_mut().for_each(|x| *x /= (views * batch) as f64);
    let unit: Vec<f64> = projections
        .chunks(dim)
        .flat_map(|view| {
            let centered: Vec<f64> = view.iter().zip(&mean).map(|(&x, m)| x as f64 - m).collect();
            let norm = centered
                .iter()
                .map(|x| x * x)
                .sum::<f64>()
                .sqrt()
                .max(1e-12);
            centered.into_iter().map(move |x| x / norm)
        })
        .collect();

    // 3. Centers and radii.
    let mut centers = vec![0.0f64; batch * dim];
    for v in 0..views {
        for (acc, x) in centers
            .iter_mut()
            .zip(&unit[v * batch * dim..(v + 1) * batch * dim])
        {
            *acc += x / views as f64;
        }
    }
    let rank_bound = ((views - 1) * dim.min(views)) as f64;
    let radii: Vec<f64> = (0..batch)
        .map(|i| {
            let c = &centers[i * dim..(i + 1) * dim];
            let spread: f64 = (0..views)
                .map(|v| {
                    let z = &unit[(v * batch + i) * dim..(v * batch + i + 1) * dim];
                    z.iter().zip(c).map(|(a, b)| (a - b).powi(2)).sum::<f64>()
                })
                .sum();
            (spread / rank_bound + SQRT_EPS).sqrt() * params.radius_scale
        })
        .collect();

    // 4-5. Pairs: energy, virial, overlaps, distances and contacts, one row per task.
    struct Row {
        energy: f64,
        virial: f64,
        overlapping: u64,
        distance_sum: f64,
        contacts: u32,
        pairs: Vec<[u32; 2]>,
    }
    let rows: Vec<Row> = (0..batch)
        .into_par_iter()
        .map(|i| {
            let ci = &centers[i * dim..(i + 1) * dim];
            let mut row = Row {
                energy: 0.0,
                virial: 0.0,
                overlapping: 0,
                distance_sum: 0.0,
                contacts: 0,
                pairs: Vec::new(),
            };
            for j in 0..batch {
                if j == i {
                    continue;
                }
                let cj = &centers[j * dim..(j + 1) * dim];
                let squared: f64 = ci.iter().zip(cj).map(|(a, b)| (a - b).powi(2)).sum();
                let distance = (squared + SQRT_EPS).sqrt();
                row.distance_sum += distance;
                let sum = radii[i] + radii[j];
                let range = (sum + RANGE_EPS).min(MAX_RANGE);
                if distance < range && distance > MIN_MARGIN {
                    let ratio = distance / range;
                    row.energy += (1.0 - ratio).powf(params.alpha);
                    row.virial += (1.0 - ratio).powf(params.alpha - 1.0) * ratio;
                    row.overlapping += 1;
                }
                if distance < CONTACT_FACTOR * sum {
                    row.contacts += 1;
                    if i < j {
                        row.pairs.push([i as u32, j as u32]);
                    }
                }
            }
            row
        })
        .collect();
    let energy = 0.5 * rows.iter().map(|r| r.energy).sum::<f64>();
    let virial = 0.5 * rows.iter().map(|r| r.virial).sum::<f64>();
    let overlapping: u64 = rows.iter().map(|r| r.overlapping).sum();
    let distance_sum: f64 = rows.iter().map(|r| r.distance_sum).sum();
    let contacts: Vec<u32> = rows.iter().map(|r| r.contacts).collect();
    let pairs: Vec<[u32; 2]> = rows.into_iter().flat_map(|r| r.pairs).collect();

    // Nearest center of (a stride of) the views: argmax of 2 z.c - |c|^2.
    let total_views = views * batch;
    let stride = total_views.div_ceil(HOST_NEAREST_VIEWS).max(1);
    let center_norms: Vec<f64> = centers
        .chunks(dim)
        .map(|c| c.iter().map(|x| x * x).sum())
        .collect();
    let checked: Vec<usize> = (0..total_views).step_by(stride).collect();
    let hits = checked
        .par_iter()
        .filter(|&&k| {
            let z = &unit[k * dim..(k + 1) * dim];
            let mut best = (f64::NEG_INFINITY, 0usize);
            for (j, c) in centers.chunks(dim).enumerate() {
                let score =
                    2.0 * z.iter().zip(c).map(|(a, b)| a * b).sum::<f64>() - center_norms[j];
                if score > best.0 {
                    best = (score, j);
                }
            }
            best.1 == k % batch
        })
        .count();

    let centers_f32: Vec<f32> = centers.iter().map(|&x| x as f32).collect();
    let touching = contacts.iter().filter(|&&c| c > 0).count() as f64 / batch as f64;
    let unscaled: Vec<f64> = radii.iter().map(|r| r / params.radius_scale).collect();
    let (mean_radius, radius_std) = mean_and_std(&unscaled);
    let metrics = PackingMetrics {
        loss: if params.log_energy {
            (energy + LOG_EPS).ln()
        } else {
            energy
        },
        energy,
        mean_contacts: contacts.iter().map(|&c| c as f64).sum::<f64>() / batch as f64,
        activity: touching,
        rattler_fraction: 1.0 - touching,
        mean_radius,
        radius_std,
        mean_center_distance: distance_sum / (batch * (batch - 1)).max(1) as f64,
        overlapping_pairs: overlapping / 2,
        virial,
        nearest_centroid_acc: hits as f64 / checked.len().max(1) as f64,
        singular_value_ratio: singular_value_ratio(&centers_f32, batch, dim),
    };
    let readout = PackingReadout {
        metrics,
        centers: centers_f32,
        radii: radii.iter().map(|&r| r as f32).collect(),
        contacts,
        dim,
    };
    (readout, pairs)
}

/// Contact pairs `(i, j)`, `i < j`, of spheres given by centers `[B, d]` and radii, with the
/// read-out's rule `d_ij < 0.99 (r_i + r_j)`.
pub fn contact_pairs(centers: &[f32], radii: &[f32], dim: usize) -> Vec<[u32; 2]> {
    use rayon::prelude::*;
    let batch = radii.len();
    (0..batch)
        .into_par_iter()
        .flat_map_iter(|i| {
            let ci = &centers[i * dim..(i + 1) * dim];
            (i + 1..batch).filter_map(move |j| {
                let cj = &centers[j * dim..(j + 1) * dim];
                let squared: f64 = ci
                    .iter()
                    .zip(cj)
                    .map(|(a, b)| (*a as f64 - *b as f64).powi(2))
                    .sum();
                let reach = CONTACT_FACTOR * (radii[i] as f64 + radii[j] as f64);
                ((squared + crate::loss::SQRT_EPS).sqrt() < reach).then_some([i as u32, j as u32])
            })
        })
        .collect()
}
