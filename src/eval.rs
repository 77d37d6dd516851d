//! Evaluation of learned features, solo-learn style: a weighted kNN classifier (k = 20, cosine)
//! and a linear probe (multinomial logistic regression on frozen features), plus the
//! nearest-centroid accuracy that comes with the packing read-out.

use burn::tensor::{Tensor, TensorData, backend::Backend};
use rayon::prelude::*;

/// Neighbours voting in the kNN classifier.
pub const KNN_K: usize = 20;
/// Votes are weighted by exp(similarity / T), as in instance-discrimination kNN monitors.
pub const KNN_TEMPERATURE: f32 = 0.07;

/// Labelled feature vectors, row-major `[len, dim]`.
#[derive(Clone, Debug, Default)]
pub struct Features {
    pub values: Vec<f32>,
    pub labels: Vec<u16>,
    pub dim: usize,
}

impl Features {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    fn row(&self, i: usize) -> &[f32] {
        &self.values[i * self.dim..(i + 1) * self.dim]
    }

    /// Rows scaled to unit length (zero rows stay zero).
    fn normalized(&self) -> Vec<f32> {
        let mut out = self.values.clone();
        out.par_chunks_mut(self.dim.max(1)).for_each(|row| {
            let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt();
            if norm > 0.0 {
                row.iter_mut().for_each(|x| *x /= norm);
            }
        });
        out
    }
}

/// Accuracy of a cosine kNN classifier (k neighbours, exp(sim/T)-weighted votes) that looks up
/// every `test` row among the `train` rows. The similarity matrix is computed in chunks on `B`.
pub fn knn_accuracy<B: Backend>(
    train: &Features,
    test: &Features,
    classes: usize,
    k: usize,
    device: &B::Device,
) -> f64 {
    burn::tensor::read_sync(knn_accuracy_async::<B>(train, test, classes, k, device))
}

/// [`knn_accuracy`] with its read-backs awaited (a browser's page cannot block on its GPU).
pub async fn knn_accuracy_async<B: Backend>(
    train: &Features,
    test: &Features,
    classes: usize,
    k: usize,
    device: &B::Device,
) -> f64 {
    if train.is_empty() || test.is_empty() {
        return 0.0;
    }
    let k = k.min(train.len());
    let dim = train.dim;
    let bank = Tensor::<B, 2>::from_data(
        TensorData::new(train.normalized(), [train.len(), dim]),
        device,
    )
    .transpose();
    let queries = test.normalized();
    // 256 queries at a time: the similarity block of a viewer's probe (5,000 training images)
    // stays near 5 MiB, so a long session's heap keeps no probe-sized hole.
    let chunk = 256;
    let mut correct = 0usize;
    for start in (0..test.len()).step_by(chunk) {
        let rows = chunk.min(test.len() - start);
        let query = Tensor::<B, 2>::from_data(
            TensorData::new(
                queries[start * dim..(start + rows) * dim].to_vec(),
                [rows, dim],
            ),
            device,
        );
        let (similarities, neighbours) = query.matmul(bank.clone()).topk_with_indices(k, 1);
        const READ: &str = "reading the kNN's neighbours back from the device";
        let similarities = similarities.into_data_async().await.expect(READ);
        let neighbours = neighbours.into_data_async().await.expect(READ);
        let similarities: Vec<f32> = similarities.iter::<f32>().collect();
        let neighbours: Vec<i64> = neighbours.iter::<i64>().collect();
        for r in 0..rows {
            let mut votes = vec![0f32; classes];
            for j in 0..k {
                let label = train.labels[neighbours[r * k + j] as usize] as usize;
                votes[label] += (similarities[r * k + j] / KNN_TEMPERATURE).exp();
            }
            if argmax(&votes) == test.labels[start + r] as usize {
                correct += 1;
            }
        }
    }
    correct as f64 / test.len() as f64
}

fn argmax(values: &[f32]) -> usize {
    values
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map(|(i, _)| i)
        .unwrap_or(0)
}

/// Rows per partial gradient of the linear probe.
const PROBE_CHUNK: usize = 2048;

/// Settings of the linear probe.
#[derive(Clone, Debug)]
pub struct ProbeSettings {
    pub epochs: usize,
    pub learning_rate: f32,
    pub l2: f32,
}

impl Default for ProbeSettings {
    fn default() -> Self {
        Self {
            epochs: 300,
            learning_rate: 0.05,
            l2: 1e-4,
        }
    }
}

/// A trained multinomial logistic regression on standardised features.
pub struct LinearProbe {
    mean: Vec<f32>,
    scale: Vec<f32>,
    /// `[classes, dim + 1]`, bias last.
    weights: Vec<f32>,
    dim: usize,
    classes: usize,
}

impl LinearProbe {
    /// Full-batch Adam on the cross-entropy of `train` (features standardised first, as the
    /// usual frozen-backbone protocol's batch norm on features would).
    pub fn fit(train: &Features, classes: usize, settings: &ProbeSettings) -> Self {
        let mut fit = LinearProbeFit::new(train, classes, settings);
        fit.run_epochs(settings.epochs);
        fit.finish()
    }

    fn standardize(&self, row: &[f32]) -> Vec<f32> {
        row.iter()
            .zip(self.mean.iter().zip(&self.scale))
            .map(|(x, (m, s))| (x - m) * s)
            .collect()
    }

    /// `[classes, dim + 1]` weights on standardised features, bias last.
    pub fn weights(&self) -> &[f32] {
        &self.weights
    }

    /// The predicted class of one feature row.
    pub fn predict(&self, row: &[f32]) -> usize {
        let x = self.standardize(row);
        argmax(&softmax_logits(
            &self.weights,
            &x,
            self.classes,
            self.dim + 1,
        ))
    }

    /// Top-1 accuracy on `test`.
    pub fn accuracy(&self, test: &Features) -> f64 {
        let correct = (0..test.len())
            .into_par_iter()
            .filter(|&i| self.predict(test.row(i)) == test.labels[i] as usize)
            .count();
        correct as f64 / test.len().max(1) as f64
    }
}

/// A linear probe being fitted, a few epochs at a time (a page fits one between frames).
pub struct LinearProbeFit {
    probe: LinearProbe,
    /// The standardised training rows, `[n, dim]`.
    inputs: Vec<f32>,
    labels: Vec<u16>,
    settings: ProbeSettings,
    /// Adam's moment estimates.
    first: Vec<f32>,
    second: Vec<f32>,
    epochs_done: usize,
}

impl LinearProbeFit {
    /// Standardises `train` and starts from zero weights.
    pub fn new(train: &Features, classes: usize, settings: &ProbeSettings) -> Self {
        let (n, dim) = (train.len(), train.dim);
        let mut mean = vec![0f32; dim];
        let mut var = vec![0f32; dim];
        for i in 0..n {
            for (k, x) in train.row(i).iter().enumerate() {
                mean[k] += x / n as f32;
            }
        }
        for i in 0..n {
            for (k, x) in train.row(i).iter().enumerate() {
                var[k] += (x - mean[k]).powi(2) / n as f32;
            }
        }
        let scale: Vec<f32> = var.iter().map(|v| 1.0 / (v.sqrt() + 1e-6)).collect();
        let probe = LinearProbe {
            mean,
            scale,
            weights: vec![0f32; classes * (dim + 1)],
            dim,
            classes,
        };
        let inputs: Vec<f32> = (0..n)
            .flat_map(|i| probe.standardize(train.row(i)))
            .collect();
        let parameters = probe.weights.len();
        Self {
            probe,
            inputs,
            labels: train.labels.clone(),
            settings: settings.clone(),
            first: vec![0f32; parameters],
            second: vec![0f32; parameters],
            epochs_done: 0,
        }
    }

    /// Runs up to `count` more epochs; true once all the settings' epochs are done.
    pub fn run_epochs(&mut self, count: usize) -> bool {
        let (dim, classes) = (self.probe.dim, self.probe.classes);
        let n = self.labels.len();
        let width = dim + 1;
        let (beta1, beta2, eps) = (0.9f32, 0.999f32, 1e-8f32);
        let last = (self.epochs_done + count).min(self.settings.epochs);
        for epoch in self.epochs_done + 1..=last {
            let weights = &self.probe.weights;
            let (inputs, labels) = (&self.inputs, &self.labels);
            // Partial gradients over fixed chunks, summed in chunk order: the same sum however
            // the threads are scheduled, so a probe gives the same accuracy every time.
            let partials: Vec<Vec<f32>> = (0..n.div_ceil(PROBE_CHUNK))
                .into_par_iter()
                .map(|chunk| {
                    let mut grad = vec![0f32; weights.len()];
                    for i in chunk * PROBE_CHUNK..((chunk + 1) * PROBE_CHUNK).min(n) {
                        let x = &inputs[i * dim..(i + 1) * dim];
                        let probs = softmax_logits(weights, x, classes, width);
                        for (c, p) in probs.iter().enumerate() {
                            let err = p - (c == labels[i] as usize) as u8 as f32;
                            let row = &mut grad[c * width..(c + 1) * width];
                            for (g, xi) in row.iter_mut().zip(x) {
                                *g += err * xi;
                            }
                            row[dim] += err;
                        }
                    }
                    grad
                })
                .collect();
            let mut grad = vec![0f32; weights.len()];
            for partial in &partials {
                grad.iter_mut().zip(partial).for_each(|(g, p)| *g += p);
            }
            let correction1 = 1.0 - beta1.powi(epoch as i32);
            let correction2 = 1.0 - beta2.powi(epoch as i32);
            let (first, second) = (&mut self.first, &mut self.second);
            for (j, w) in self.probe.weights.iter_mut().enumerate() {
                let g = grad[j] / n as f32 + self.settings.l2 * *w;
                first[j] = beta1 * first[j] + (1.0 - beta1) * g;
                second[j] = beta2 * second[j] + (1.0 - beta2) * g * g;
                *w -= self.settings.learning_rate * (first[j] / correction1)
                    / ((second[j] / correction2).sqrt() + eps);
            }
        }
        self.epochs_done = last;
        self.epochs_done >= self.settings.epochs
    }

    /// The fitted probe.
    pub fn finish(self) -> LinearProbe {
        self.probe
    }
}

fn softmax_logits(weights: &[f32], x: &[f32], classes: usize, width: usize) -> Vec<f32> {
    let mut logits: Vec<f32> = (0..classes)
        .map(|c| {
            let row = &weights[c * width..(c + 1) * width];
            row[..x.len()]
                .iter()
                .zip(x)
                .map(|(w, v)| w * v)
                .sum::<f32>()
                + row[x.len()]
        })
        .collect();
    let max = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    let mut total = 0.0;
    for l in logits.iter_mut() {
        *l = (*l - max).exp();
        total += *l;
    }
    logits.iter_mut().for_each(|l| *l /= total);
    logits
}

/// Train a linear probe on `train` and report its top-1 accuracy on `test`.
pub fn linear_probe_accuracy(
    train: &Features,
    test: &Features,
    classes: usize,
    settings: &ProbeSettings,
) -> f64 {
    LinearProbe::fit(train, classes, settings).accuracy(test)
}

/// Neighbours counted by [`class_purity`].
pub const PURITY_K: usize = 10;

/// How plainly classes show in a picture: for each point, the fraction of its `k` nearest other
/// points (Euclidean, in the given coordinates) that share its class, averaged over the points.
/// Chance is about 1 / classes; a picture of separated class regions approaches 1.
pub fn class_purity(points: &[f32], dim: usize, labels: &[u16], k: usize) -> f64 {
    let n = labels.len();
    if n < 2 || dim == 0 || points.len() != n * dim {
        return f64::NAN;
    }
    let k = k.min(n - 1);
    let shared: usize = (0..n)
        .into_par_iter()
        .map(|i| {
            let here = &points[i * dim..(i + 1) * dim];
            // The k smallest distances, kept sorted (k is small).
            let mut nearest: Vec<(f32, u16)> = Vec::with_capacity(k + 1);
            for j in (0..n).filter(|&j| j != i) {
                let there = &points[j * dim..(j + 1) * dim];
                let d2: f32 = here.iter().zip(there).map(|(a, b)| (a - b) * (a - b)).sum();
                if nearest.len() == k && d2 >= nearest[k - 1].0 {
                    continue;
                }
                let at = nearest.partition_point(|&(d, _)| d <= d2);
                nearest.insert(at, (d2, labels[j]));
                nearest.truncate(k);
            }
            nearest.iter().filter(|&&(_, l)| l == labels[i]).count()
        })
        .sum();
    shared as f64 / (n * k) as f64
}

/// The baseline a learned picture has to beat: [`class_purity`] of the raw pixels of
/// `indices` projected by PCA to three dimensions (the viewer's projection).
#[cfg(feature = "viewer")]
pub fn pixel_pca_purity(set: &crate::data::ImageSet, indices: &[usize]) -> Result<f64, String> {
    let pixels: Vec<f32> = indices
        .iter()
        .flat_map(|&i| set.image(i).iter().map(|&p| p as f32 / 255.0))
        .collect();
    let dim = set.channels * set.height * set.width;
    let projector = crate::projection::Projector::fit(
        &pixels,
        dim,
        crate::projection::ProjectionMode::Pca,
        None,
    )?;
    let flat: Vec<f32> = projector.project(&pixels).into_iter().flatten().collect();
    let labels: Vec<u16> = indices.iter().map(|&i| set.labels[i]).collect();
    Ok(class_purity(&flat, 3, &labels, PURITY_K))
}
