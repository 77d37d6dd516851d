//! The small CNN's three convolutions, forward and forward + backward, on each path: clamp's
//! GEMM convolution on WGPU (src/kernels/gpu/), burn's own WGPU convolution (direct kernels),
//! and clamp's CPU convolution. Medians of timed repeats after a warm-up, the GPU synchronised
//! after each.
//!
//!     cargo run --release --example conv_bench [-- BATCH [REPEATS [WIDTH]]] [--no-burn]
//!
//! BATCH counts images, views included (a training step of batch 64 x 2 views is 128).
//! `--no-burn` leaves burn's direct kernels out (seconds a layer on a software adapter).

use std::time::Instant;

use burn::module::Param;
use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Distribution, Tensor};
use clamp::backend::{CpuBackend, WgpuBackend, probe_adapter};
use clamp::kernels::conv2d;

/// (input channels, output channels, side) of the small CNN's convolutions at `width`.
fn layers(width: usize) -> [(usize, usize, usize); 3] {
    [
        (1, width, 28),
        (width, 2 * width, 14),
        (2 * width, 4 * width, 7),
    ]
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Median forward and forward + backward milliseconds of `layer` on batch `batch`.
fn time<B: AutodiffBackend>(
    (channels, filters, side): (usize, usize, usize),
    batch: usize,
    repeats: usize,
    ours: bool,
) -> (f64, f64) {
    let device = B::Device::default();
    let mut conv: Conv2d<B> = Conv2dConfig::new([channels, filters], [3, 3])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .init(&device);
    conv.weight = Param::from_tensor(Tensor::random(
        [filters, channels, 3, 3],
        Distribution::Uniform(-0.5, 0.5),
        &device,
    ));
    let x = Tensor::<B, 4>::random(
        [batch, channels, side, side],
        Distribution::Uniform(-1.0, 1.0),
        &device,
    )
    .require_grad();
    let r = Tensor::<B, 4>::random(
        [batch, filters, side, side],
        Distribution::Uniform(-1.0, 1.0),
        &device,
    );
    let run = |backward: bool| {
        let y = if ours {
            conv2d(&conv, x.clone())
        } else {
            conv.forward(x.clone())
        };
        if backward {
            let grads = (y * r.clone()).sum().backward();
            let _ = conv.weight.val().grad(&grads);
        }
        B::sync(&device).expect("the device finishes");
    };
    let timed = |backward: bool| {
        run(backward);
        median(
            (0..repeats)
                .map(|_| {
                    let started = Instant::now();
                    run(backward);
                    started.elapsed().as_secs_f64() * 1e3
                })
                .collect(),
        )
    };
    (timed(false), timed(true))
}

fn main() {
    let numbers: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let batch = numbers.first().copied().unwrap_or(128);
    let repeats = numbers.get(1).copied().unwrap_or(5).max(1);
    let width = numbers.get(2).copied().unwrap_or(16);
    let with_burn = !std::env::args().any(|a| a == "--no-burn");
    let adapter = probe_adapter().map_or("none".into(), |a| a.name);
    println!(
        "adapter: {adapter}; batch {batch} images, small CNN width {width}, medians of {repeats}\n"
    );
    println!("| layer | path | forward (ms) | forward + backward (ms) |");
    println!("| --- | --- | ---: | ---: |");
    for layer in layers(width) {
        let (c, o, s) = layer;
        let name = format!("{c} -> {o}, {s}x{s}");
        let row = |path: &str, (f, fb): (f64, f64)| {
            println!("| {name} | {path} | {f:.2} | {fb:.2} |");
        };
        row(
            "wgpu, clamp's implicit GEMM",
            time::<WgpuBackend>(layer, batch, repeats, true),
        );
        if with_burn {
            row(
                "wgpu, burn's direct",
                time::<WgpuBackend>(layer, batch, repeats, false),
            );
        }
        row(
            "cpu, clamp's",
            time::<CpuBackend>(layer, batch, repeats, true),
        );
    }
}
