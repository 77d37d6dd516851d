//! Where the time of one CPU training step goes: each layer of the default small CNN on its own
//! shapes (batch 256 x 2 views = 512 inputs), forward and backward, then the loss with its
//! read-out, Adam, the augmentation, and the whole step for the total; then each of clamp's CPU
//! kernels (src/kernels/) beside the burn layers it replaces. Tables in milliseconds (median of
//! the repeats); docs/cpu-step.md puts them beside PyTorch's profile.
//!
//!     cargo run --release --example step_profile [-- REPEATS]
//!
//! A layer's backward is timed as `(y * r).sum().backward()` for a fixed random `r`, less the
//! same seed's cost on a fresh leaf of y's shape, so that only the layer's own gradient remains.

use std::sync::Arc;
use std::time::Instant;

use burn::nn::conv::Conv2dConfig;
use burn::nn::{BatchNormConfig, LinearConfig, PaddingConfig2d};
use burn::optim::GradientsParams;
use burn::tensor::activation::relu;
use burn::tensor::module::{adaptive_avg_pool2d, max_pool2d};
use burn::tensor::{Distribution, Tensor};
use clamp::augment::make_views;
use clamp::backend::CpuBackend;
use clamp::config::TrainConfig;
use clamp::kernels::{conv_pool_relu, conv2d, pairwise_distances};
use clamp::loss::Packing;
use clamp::model::batch_norm_relu;
use clamp::optim::ModelOptimizer;
use clamp::train::{Trainer, TrainingData};

type B = CpuBackend;

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1e3
}

struct Profile {
    repeats: usize,
    rows: Vec<(String, f64, f64)>,
}

impl Profile {
    /// Times `op` forward and backward on a random input of shape `dims`, as a row of the step.
    fn layer<const D: usize, const E: usize>(
        &mut self,
        name: &str,
        dims: [usize; D],
        input_grad: bool,
        op: impl Fn(Tensor<B, D>) -> Tensor<B, E>,
    ) {
        let (forward, backward) = self.measure(dims, input_grad, op);
        self.rows.push((name.to_string(), forward, backward));
    }

    /// (forward ms, backward ms) of `op` on a random input of shape `dims`.
    fn measure<const D: usize, const E: usize>(
        &self,
        dims: [usize; D],
        input_grad: bool,
        op: impl Fn(Tensor<B, D>) -> Tensor<B, E>,
    ) -> (f64, f64) {
        let device = Default::default();
        let (mut forward, mut backward, mut seed) = (vec![], vec![], vec![]);
        let mut r: Option<Tensor<B, E>> = None;
        for _ in 0..self.repeats + 1 {
            let mut x = Tensor::<B, D>::random(dims, Distribution::Normal(0.0, 1.0), &device);
            if input_grad {
                x = x.require_grad();
            }
            let started = Instant::now();
            let y = op(x);
            forward.push(ms(started));
            let r = r
                .get_or_insert_with(|| {
                    Tensor::random(y.dims(), Distribution::Normal(0.0, 1.0), &device)
                })
                .clone();
            let leaf = y.clone().detach().require_grad();
            let started = Instant::now();
            let _ = (y * r.clone()).sum().backward();
            backward.push(ms(started));
            let started = Instant::now();
            let _ = (leaf * r).sum().backward();
            seed.push(ms(started));
        }
        // The first repeat warms allocations up.
        let [forward, backward, seed] = [forward, backward, seed].map(|mut v| {
            v.remove(0);
            median(v)
        });
        (forward, (backward - seed).max(0.0))
    }

    fn row(&mut self, name: &str, forward: f64, backward: f64) {
        self.rows.push((name.to_string(), forward, backward));
    }

    fn timed(&self, mut f: impl FnMut() -> f64) -> f64 {
        f();
        median((0..self.repeats).map(|_| f()).collect())
    }
}

fn main() {
    let repeats = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let device = Default::default();
    let config = TrainConfig::default();
    let n = config.batch * config.views;
    let w = config.width;
    let model_config = config.model(1, 28 * 28);
    let model = model_config.init::<B>(config.seed, &device);
    println!(
        "threads: {}; batch {} x {} views = {n} inputs, small CNN width {w}, d = {}; median of {repeats}\n",
        rayon::current_num_threads(),
        config.batch,
        config.views,
        config.dim
    );
    let mut p = Profile {
        repeats,
        rows: vec![],
    };

    // The encoder's layers, in order, built as src/model.rs builds them.
    let conv = |input: usize, output: usize, bias: bool| {
        Conv2dConfig::new([input, output], [3, 3])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .with_bias(bias)
            .init::<B>(&device)
    };
    let (conv1, conv2, conv3) = (
        conv(1, w, true),
        conv(w, 2 * w, false),
        conv(2 * w, 4 * w, false),
    );
    let norm2 = BatchNormConfig::new(2 * w).init::<B>(&device);
    let norm3 = BatchNormConfig::new(4 * w).init::<B>(&device);
    p.layer(
        "block 1: conv 1 -> 16 + bias, max pool, ReLU (fused; 28x28)",
        [n, 1, 28, 28],
        false,
        |x| conv_pool_relu(&conv1, x),
    );
    p.layer("conv 2 (16 -> 32, 14x14)", [n, w, 14, 14], true, |x| {
        conv2d(&conv2, x)
    });
    p.layer(
        "batch norm, max pool, ReLU (fused; 32 x 14x14)",
        [n, 2 * w, 14, 14],
        true,
        |x| batch_norm_relu(&norm2, x, true),
    );
    p.layer("conv 3 (32 -> 64, 7x7)", [n, 2 * w, 7, 7], true, |x| {
        conv2d(&conv3, x)
    });
    p.layer(
        "batch norm, ReLU (fused; 64 x 7x7)",
        [n, 4 * w, 7, 7],
        true,
        |x| batch_norm_relu(&norm3, x, false),
    );
    p.layer("adaptive avg pool -> 2x2", [n, 4 * w, 7, 7], true, |x| {
        adaptive_avg_pool2d(x, [2, 2]).reshape([n, 16 * w])
    });
    let hidden = LinearConfig::new(16 * w, config.projector_hidden).init::<B>(&device);
    let output = LinearConfig::new(config.projector_hidden, config.dim).init::<B>(&device);
    p.layer("projector (256 -> 256 -> 32)", [n, 16 * w], true, |x| {
        output.forward(relu(hidden.forward(x)))
    });

    // The loss with its read-out, from projections [m, B, d].
    let data = Arc::new(TrainingData::load(&config).expect("the bundled Fashion-MNIST"));
    let mut trainer = Trainer::<B>::new(config.clone(), data.clone(), device);
    let params = trainer.params();
    let (mut forward, mut backward) = (vec![], vec![]);
    for _ in 0..repeats + 1 {
        let projections = Tensor::<B, 3>::random(
            [config.views, config.batch, config.dim],
            Distribution::Normal(0.0, 1.0),
            &device,
        )
        .require_grad();
        let started = Instant::now();
        let packing = Packing::new(projections, &params);
        let readout = packing.readout();
        std::hint::black_box(readout);
        forward.push(ms(started));
        let started = Instant::now();
        let _ = packing.loss.backward();
        backward.push(ms(started));
    }
    forward.remove(0);
    backward.remove(0);
    p.row("CLAMP loss + read-out", median(forward), median(backward));

    // Adam on the whole model's gradients.
    let mut optimizer = ModelOptimizer::<_, B>::new(config.optimizer, config.weight_decay);
    let mut model = model.clone();
    let adam = p.timed(|| {
        let x = Tensor::<B, 4>::random([n, 1, 28, 28], Distribution::Default, &device);
        let grads = GradientsParams::from_grads(model.embed(x).sum().backward(), &model);
        let started = Instant::now();
        model = optimizer.step(1e-4, model.clone(), grads);
        ms(started)
    });
    p.row("Adam (97,408 parameters)", adam, 0.0);

    let indices: Vec<usize> = (0..config.batch).collect();
    let augment = p.timed(|| {
        let started = Instant::now();
        std::hint::black_box(make_views(
            &data.train,
            &indices,
            config.views,
            &data.augment,
            1,
        ));
        ms(started)
    });
    p.row("augmentation (2 views of 256)", augment, 0.0);

    let step = p.timed(|| trainer.step().expect("a finite step").seconds * 1e3);

    println!("| part | forward (ms) | backward (ms) | share of the step |");
    println!("| --- | ---: | ---: | ---: |");
    let mut total = 0.0;
    for (name, f, b) in &p.rows {
        total += f + b;
        println!(
            "| {name} | {f:.1} | {b:.1} | {:.0}% |",
            100.0 * (f + b) / step
        );
    }
    println!("| sum of the parts | | | {:.0}% |", 100.0 * total / step);
    println!(
        "| **one training step** (Trainer::step) | {step:.1} ms | | {:.0} views/s |",
        n as f64 / step * 1e3
    );

    // Each of clamp's kernels beside the burn layer it replaces on this backend.
    println!("\n| kernel (forward + backward) | clamp (ms) | burn's own (ms) | speed-up |");
    println!("| --- | ---: | ---: | ---: |");
    let compare = |name: &str, ours: (f64, f64), burns: (f64, f64)| {
        let (a, b) = (ours.0 + ours.1, burns.0 + burns.1);
        println!("| {name} | {a:.1} | {b:.1} | {:.1}x |", b / a);
    };
    let burn_pool = |x| max_pool2d(x, [2, 2], [2, 2], [0, 0], [1, 1], false);
    compare(
        "block 1: conv + bias, max pool, ReLU (1 -> 16, 28x28)",
        p.measure([n, 1, 28, 28], false, |x| conv_pool_relu(&conv1, x)),
        p.measure([n, 1, 28, 28], false, |x| relu(burn_pool(conv1.forward(x)))),
    );
    for (name, conv, dims) in [
        ("conv 2 (16 -> 32, 14x14)", &conv2, [n, w, 14, 14]),
        ("conv 3 (32 -> 64, 7x7)", &conv3, [n, 2 * w, 7, 7]),
    ] {
        compare(
            name,
            p.measure(dims, true, |x| conv2d(conv, x)),
            p.measure(dims, true, |x| conv.forward(x)),
        );
    }
    compare(
        "batch norm, max pool, ReLU (32 x 14x14)",
        p.measure([n, 2 * w, 14, 14], true, |x| {
            batch_norm_relu(&norm2, x, true)
        }),
        p.measure([n, 2 * w, 14, 14], true, |x| {
            relu(burn_pool(norm2.forward(x)))
        }),
    );
    compare(
        "batch norm, ReLU (64 x 7x7)",
        p.measure([n, 4 * w, 7, 7], true, |x| {
            batch_norm_relu(&norm3, x, false)
        }),
        p.measure([n, 4 * w, 7, 7], true, |x| relu(norm3.forward(x))),
    );
    let batch = config.batch;
    compare(
        "pair distances (256 centers, d = 32)",
        p.measure([batch, config.dim], true, |c| pairwise_distances(c, 1e-12)),
        p.measure([batch, config.dim], true, |c: Tensor<B, 2>| {
            let differences = c.clone().unsqueeze_dim::<3>(1) - c.unsqueeze_dim(0);
            (differences.square().sum_dim(2).reshape([batch, batch]) + 1e-12).sqrt()
        }),
    );
}
