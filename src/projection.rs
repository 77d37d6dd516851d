//! From d-dimensional sphere centers to 3-D positions that a viewer can draw.
//!
//! PCA (linfa-reduction) finds the three directions of largest spread; every refit is then
//! rotated onto the previous basis by orthogonal Procrustes (nalgebra's SVD), so that as training
//! moves the picture turns smoothly instead of flipping sign or swapping axes. The projection is
//! orthonormal, so a radius in the embedding is the same length in the picture.

use linfa::DatasetBase;
use linfa::traits::Fit;
use linfa_reduction::Pca;
use nalgebra::{DMatrix, Matrix3};
use ndarray::Array2;
use serde::{Deserialize, Serialize};

/// How centers become 3-D positions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProjectionMode {
    /// The three principal directions of the current centers, aligned to the previous fit.
    #[default]
    Pca,
    /// The first three coordinates as they are: the true embedding when d = 3 (the centers lie
    /// inside the unit sphere on which the views live).
    Raw,
}

impl ProjectionMode {
    pub const ALL: [ProjectionMode; 2] = [ProjectionMode::Pca, ProjectionMode::Raw];

    pub fn label(self) -> &'static str {
        match self {
            ProjectionMode::Pca => "PCA (aligned)",
            ProjectionMode::Raw => "first 3 coordinates",
        }
    }
}

/// A d x 3 orthonormal basis and the origin it projects around.
#[derive(Clone, Debug, PartialEq)]
pub struct Projector {
    pub mode: ProjectionMode,
    dim: usize,
    /// Columns: the three drawn directions.
    basis: DMatrix<f64>,
    origin: Vec<f64>,
    /// Share of the centers' variance along each drawn direction (PCA only).
    pub explained: [f64; 3],
}

impl Projector {
    /// The identity on the first three coordinates of a `dim`-dimensional space.
    pub fn raw(dim: usize) -> Self {
        let mut basis = DMatrix::zeros(dim, 3);
        for k in 0..dim.min(3) {
            basis[(k, k)] = 1.0;
        }
        Self {
            mode: ProjectionMode::Raw,
            dim,
            basis,
            origin: vec![0.0; dim],
            explained: [f64::NAN; 3],
        }
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The drawn direction `k` (0, 1, 2) as a d-vector.
    pub fn axis(&self, k: usize) -> Vec<f64> {
        self.basis.column(k).iter().copied().collect()
    }

    /// A projector for `centers` (`[n, dim]`, row-major) in `mode`, aligned to `previous` when
    /// that projected the same dimension.
    pub fn fit(
        centers: &[f32],
        dim: usize,
        mode: ProjectionMode,
        previous: Option<&Projector>,
    ) -> Result<Self, String> {
        let n = centers.len() / dim.max(1);
        if dim == 0 || n * dim != centers.len() {
            return Err(format!(
                "projection: {} values are not rows of {dim} coordinates",
                centers.len()
            ));
        }
        if mode == ProjectionMode::Raw || dim <= 3 || n < 4 {
            return Ok(Self::raw(dim));
        }
        let records = Array2::from_shape_fn((n, dim), |(i, k)| centers[i * dim + k] as f64);
        if records.iter().any(|x| !x.is_finite()) {
            return Err("projection: the centers contain NaN or infinite values".into());
        }
        let pca = Pca::params(3)
            .fit(&DatasetBase::from(records))
            .map_err(|e| format!("projection: PCA failed: {e}"))?;
        let components = pca.components(); // [3, dim]
        let mut basis = DMatrix::from_fn(dim, 3, |k, j| components[(j, k)]);
        orthonormalize(&mut basis);
        let ratio = pca.explained_variance_ratio();
        let total_variance = total_variance(centers, n, dim);
        let explained = {
            let sigma = pca.singular_values();
            let mut out = [0.0; 3];
            for (k, slot) in out.iter_mut().enumerate() {
                let variance = sigma[k] * sigma[k] / (n as f64 - 1.0);
                *slot = if total_variance > 0.0 {
                    variance / total_variance
                } else {
                    ratio[k]
                };
            }
            out
        };
        if let Some(previous) = previous.filter(|p| p.dim == dim && p.mode == mode) {
            basis = align_basis(&basis, &previous.basis);
        }
        Ok(Self {
            mode,
            dim,
            basis,
            origin: pca.mean().to_vec(),
            explained,
        })
    }

    /// 3-D positions of `centers` (`[n, dim]`).
    pub fn project(&self, centers: &[f32]) -> Vec<[f32; 3]> {
        centers
            .chunks(self.dim)
            .map(|row| {
                let mut out = [0.0f32; 3];
                for (k, slot) in out.iter_mut().enumerate() {
                    *slot = row
                        .iter()
                        .zip(&self.origin)
                        .enumerate()
                        .map(|(i, (&x, o))| (x as f64 - o) * self.basis[(i, k)])
                        .sum::<f64>() as f32;
                }
                out
            })
            .collect()
    }
}

/// The rotation (or reflection) of `fresh`'s columns closest to `previous`: orthogonal
/// Procrustes, `R = U V^T` for `fresh^T previous = U S V^T`.
pub fn align_basis(fresh: &DMatrix<f64>, previous: &DMatrix<f64>) -> DMatrix<f64> {
    let cross: Matrix3<f64> =
        Matrix3::from_iterator((fresh.transpose() * previous).iter().copied());
    let svd = cross.svd(true, true);
    match (svd.u, svd.v_t) {
        (Some(u), Some(v_t)) => {
            let rotation = u * v_t;
            fresh * DMatrix::from_iterator(3, 3, rotation.iter().copied())
        }
        _ => fresh.clone(),
    }
}

/// Gram-Schmidt on the columns, so rounding in the PCA cannot shear the picture.
fn orthonormalize(basis: &mut DMatrix<f64>) {
    for j in 0..basis.ncols() {
        for k in 0..j {
            let dot = basis.column(j).dot(&basis.column(k));
            let previous = basis.column(k).clone_owned();
            basis.column_mut(j).axpy(-dot, &previous, 1.0);
        }
        let norm = basis.column(j).norm();
        if norm > 0.0 {
            basis.column_mut(j).scale_mut(1.0 / norm);
        }
    }
}

fn total_variance(centers: &[f32], n: usize, dim: usize) -> f64 {
    let mut mean = vec![0.0f64; dim];
    for row in centers.chunks(dim) {
        for (m, &x) in mean.iter_mut().zip(row) {
            *m += x as f64 / n as f64;
        }
    }
    centers
        .chunks(dim)
        .map(|row| {
            row.iter()
                .zip(&mean)
                .map(|(&x, m)| (x as f64 - m).powi(2))
                .sum::<f64>()
        })
        .sum::<f64>()
        / (n as f64 - 1.0)
}
