//! The WGPU convolution as implicit GEMMs (src/kernels/gpu/) against clamp's CPU convolution
//! (which tests/kernels.rs holds against burn's and against finite differences of the
//! definition): values and every gradient, on shapes that fit no tile (odd batches, 7 x 7 maps,
//! 1 x 1 and strided kernels, no padding, 5 x 5, seven filters), through burn's autodiff and
//! with each device class's register tiles. On Mesa's lavapipe in CI.

use burn::backend::Wgpu;
use burn::backend::wgpu::{CubeTensor, WgpuRuntime};
use burn::module::Param;
use burn::nn::BatchNormConfig;

use burn::tensor::activation::relu;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Tensor, TensorData, TensorPrimitive};
use clamp::backend::{CpuBackend, WgpuBackend, probe_adapter};
use clamp::kernels::conv::{self as cpu_conv, ConvShape};
use clamp::kernels::conv2d;
use clamp::kernels::gpu::conv as gpu_conv;
use clamp::kernels::gpu::implicit::{self as gpu_conv_kernels, Tiles};
use clamp::kernels::gpu::norm_pool::{self as gpu_norm_pool, Layers};
use clamp::kernels::max_pool_2x2;
use clamp::model::{batch_norm, batch_norm_relu};

mod common;
use common::tensors::{Case, assert_close, layer, random};

const CASES: &[Case] = &[
    (5, 1, 28, 28, 16, 3, 1, 1, true), // the small CNN's first block, an odd batch
    (3, 16, 14, 14, 32, 3, 1, 1, false), // its second
    (7, 32, 7, 7, 64, 3, 1, 1, false), // its third: 7 x 7 maps
    (3, 8, 9, 11, 12, 3, 2, 1, false), // ResNet's strided 3x3, odd sizes
    (3, 8, 9, 11, 12, 1, 2, 0, false), // ResNet's projection shortcut
    (1, 5, 8, 8, 7, 1, 1, 0, true),    // 1 x 1, stride 1, seven filters
    (2, 3, 6, 5, 4, 3, 1, 0, true),    // no padding
    (2, 2, 5, 5, 3, 5, 1, 2, true),    // a 5x5 kernel
];

/// The output, then the input, weight and bias gradients of `sum(conv(x) * r)` for a random
/// `r`, on backend `B`.
fn run<B: burn::tensor::backend::AutodiffBackend>(case: Case) -> Vec<Vec<f32>> {
    let device = Default::default();
    let (batch, channels, height, width, ..) = case;
    let conv = layer::<B>(case, &device);
    let x = Tensor::<B, 4>::from_data(random([batch, channels, height, width], 3), &device)
        .require_grad();
    let y = conv2d(&conv, x.clone());
    let r = Tensor::<B, 4>::from_data(random(y.dims(), 11), &device);
    let grads = (y.clone() * r).sum().backward();
    let values = |d: TensorData| d.to_vec::<f32>().unwrap();
    let mut out = vec![
        values(y.into_data()),
        values(x.grad(&grads).unwrap().into_data()),
        values(conv.weight.val().grad(&grads).unwrap().into_data()),
    ];
    if let Some(bias) = &conv.bias {
        out.push(values(bias.val().grad(&grads).unwrap().into_data()));
    }
    out
}

fn require_adapter() {
    probe_adapter()
        .expect("no WGPU adapter: install mesa-vulkan-drivers (lavapipe) to run the WGPU backend");
}

#[test]
fn wgpu_convolution_matches_the_cpu_values_and_every_gradient() {
    require_adapter();
    for &case in CASES {
        let wgpu = run::<WgpuBackend>(case);
        let cpu = run::<CpuBackend>(case);
        assert_eq!(wgpu.len(), cpu.len());
        for (what, (ours, reference)) in [
            "output",
            "input gradient",
            "weight gradient",
            "bias gradient",
        ]
        .iter()
        .zip(wgpu.iter().zip(&cpu))
        {
            assert_close(&format!("{case:?} {what}"), ours, reference);
        }
    }
}

#[test]
fn both_tilings_match_the_cpu_values_and_every_gradient() {
    // The device picks one tiling (a software adapter's in CI); the other must be right too.
    require_adapter();
    let device = Default::default();
    let inner = |data: TensorData| -> CubeTensor<WgpuRuntime> {
        Tensor::<Wgpu, 4>::from_data(data, &device)
            .into_primitive()
            .tensor()
    };
    let inner_1 = |data: TensorData| -> CubeTensor<WgpuRuntime> {
        Tensor::<Wgpu, 1>::from_data(data, &device)
            .into_primitive()
            .tensor()
    };
    let values = |t: CubeTensor<WgpuRuntime>| {
        Tensor::<Wgpu, 1>::from_primitive(TensorPrimitive::Float(t))
            .into_data()
            .to_vec::<f32>()
            .unwrap()
    };
    for &case in CASES {
        let (batch, channels, height, width, filters, kernel, stride, padding, bias) = case;
        let shape = ConvShape {
            batch,
            channels,
            height,
            width,
            filters,
            kernel: [kernel, kernel],
            stride: [stride, stride],
            padding: [padding, padding],
        };
        let x = random([batch, channels, height, width], 3);
        let w = random([filters, channels, kernel, kernel], 7);
        let b = random([filters], 8);
        let dy = random([batch, filters, shape.out_height(), shape.out_width()], 11);
        let slice = |d: &TensorData| d.to_vec::<f32>().unwrap();
        let cpu_y = cpu_conv::forward(
            &shape,
            &slice(&x),
            &slice(&w),
            bias.then(|| slice(&b)).as_deref(),
        );
        let cpu = cpu_conv::backward(&shape, &slice(&x), &slice(&w), &slice(&dy), true, bias);
        for tiles in [Tiles::GPU, Tiles::SOFTWARE] {
            let what = |part: &str| format!("{case:?} {tiles:?} {part}");
            let y = gpu_conv_kernels::forward(
                &shape,
                inner(x.clone()),
                inner(w.clone()),
                bias.then(|| inner_1(b.clone())),
                tiles,
            );
            assert_close(&what("output"), &values(y), &cpu_y);
            let g = gpu_conv::backward(
                &shape,
                inner(x.clone()),
                inner(w.clone()),
                inner(dy.clone()),
                (true, bias),
                tiles,
            );
            assert_close(
                &what("input gradient"),
                &values(g.x.unwrap()),
                cpu.x.as_ref().unwrap(),
            );
            assert_close(&what("weight gradient"), &values(g.weight), &cpu.weight);
            if bias {
                assert_close(&what("bias gradient"), &values(g.bias.unwrap()), &cpu.bias);
            }
        }
    }
}

/// What follows a convolution in a block, run through the model's own functions (which pick
/// each backend's kernels): values, gradients of the maps, γ and β, and the running averages.
fn block_tail<B: AutodiffBackend>(dims: [usize; 4], variant: &str) -> Vec<(String, Vec<f32>)> {
    let device = Default::default();
    let [_, c, _, _] = dims;
    let mut norm = BatchNormConfig::new(c).init::<B>(&device);
    // γ in [0.5, 1.5): every channel lets some values through the ReLU.
    norm.gamma = Param::from_tensor(
        Tensor::<B, 1>::from_data(random([c], 21), &device)
            .mul_scalar(0.5)
            .add_scalar(1.0),
    );
    norm.beta = Param::from_data(random([c], 22), &device);
    // Channel 0 far from zero: the variance and the gradient must not lose it. Channel 1
    // constant with β = 0: it normalises to exactly 0 on both backends, where the ReLU stops
    // it (a rounded mean would let half of it through).
    let per_channel = |first: f32, second: f32| {
        let values: Vec<f32> = (0..c).map(|k| [first, second, 1.0][k.min(2)]).collect();
        Tensor::<B, 1>::from_data(TensorData::new(values, [c]), &device).reshape([1, c, 1, 1])
    };
    let maps = (Tensor::<B, 4>::from_data(random(dims, 23), &device) * per_channel(1.0, 0.0)
        + per_channel(40.0, 0.3))
    .detach()
    .require_grad();
    let mut beta = norm.beta.val().into_data().to_vec::<f32>().unwrap();
    beta[1] = 0.0;
    norm.beta = Param::from_data(TensorData::new(beta, [c]), &device);
    let y = match variant {
        "norm" => batch_norm(&norm, maps.clone()),
        "norm-relu" => batch_norm_relu(&norm, maps.clone(), false),
        "norm-pool-relu" => batch_norm_relu(&norm, maps.clone(), true),
        "pool-relu" => match gpu_norm_pool::block_tail(
            maps.clone(),
            None,
            Layers {
                normalize: false,
                pool: true,
                rectify: true,
            },
        ) {
            Ok((y, _)) => y,
            // The CPU's own pool, then burn's ReLU.
            Err(maps) => relu(max_pool_2x2(maps)),
        },
        _ => unreachable!(),
    };
    // The output's gradient arrives strided (through a transpose), as the model's can.
    let r = Tensor::<B, 4>::from_data(random(y.dims(), 24), &device);
    let grads = (y.clone().swap_dims(2, 3) * r.swap_dims(2, 3))
        .sum()
        .backward();
    let values = |d: TensorData| d.to_vec::<f32>().unwrap();
    let mut out = vec![
        ("output".to_string(), values(y.into_data())),
        (
            "maps gradient".into(),
            values(maps.grad(&grads).unwrap().into_data()),
        ),
    ];
    if variant != "pool-relu" {
        out.push((
            "gamma gradient".into(),
            values(norm.gamma.val().grad(&grads).unwrap().into_data()),
        ));
        out.push((
            "beta gradient".into(),
            values(norm.beta.val().grad(&grads).unwrap().into_data()),
        ));
        out.push((
            "running mean".into(),
            values(norm.running_mean.value_sync().into_data()),
        ));
        out.push((
            "running variance".into(),
            values(norm.running_var.value_sync().into_data()),
        ));
    }
    out
}

#[test]
fn block_tails_match_the_cpu_values_gradients_and_running_statistics() {
    require_adapter();
    // Odd sides drop a row and a column when pooling; a channel of values far from zero
    // checks the variance's two passes.
    for dims in [
        [5, 3, 6, 7],
        [4, 2, 5, 5],
        [3, 4, 7, 7],
        [2, 16, 14, 14],
        [40, 8, 14, 14],
    ] {
        for variant in ["norm", "norm-relu", "norm-pool-relu", "pool-relu"] {
            let wgpu = block_tail::<WgpuBackend>(dims, variant);
            let cpu = block_tail::<CpuBackend>(dims, variant);
            for ((what, ours), (_, reference)) in wgpu.iter().zip(&cpu) {
                assert_close(&format!("{dims:?} {variant} {what}"), ours, reference);
            }
        }
    }
}

#[test]
fn a_constant_channel_has_exactly_its_value_as_mean_and_no_variance() {
    // A channel whose values are all equal (a dead filter's, say) normalises to exactly β only
    // when its mean is exactly that value: a plain f32 sum of 20,000 copies of 0.1 rounds.
    require_adapter();
    let device = Default::default();
    let value = 0.1f32;
    let maps = Tensor::<WgpuBackend, 4>::full([100, 1, 10, 20], value, &device).require_grad();
    let gamma = Tensor::<WgpuBackend, 1>::ones([1], &device);
    let beta = Tensor::<WgpuBackend, 1>::zeros([1], &device);
    let layers = Layers {
        normalize: true,
        pool: false,
        rectify: true,
    };
    let Ok((y, Some((mean, var)))) =
        gpu_norm_pool::block_tail(maps, Some((gamma, beta, 1e-5)), layers)
    else {
        panic!("the WGPU training backend takes the block");
    };
    assert_eq!(mean.into_data().to_vec::<f32>().unwrap(), vec![value]);
    assert_eq!(var.into_data().to_vec::<f32>().unwrap(), vec![0.0]);
    let y = y.into_data().to_vec::<f32>().unwrap();
    assert!(
        y.iter().all(|&v| v == 0.0),
        "normalised to exactly β = 0, then rectified"
    );
}
