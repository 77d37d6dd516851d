//! clamp's CPU kernels (src/kernels/) against burn's own layers and their gradients (other
//! implementations: burn's convolution with its convolution and transposed-convolution
//! gradients, its windowed max-pool, its BatchNorm module built from tensor operations), and
//! the convolution against finite differences of its definition in f64. The fused blocks
//! (convolution-pool-ReLU, batch norm-pool-ReLU) against burn's layers run one after another.

use burn::backend::autodiff::grads::Gradients;
use burn::backend::{Autodiff, Flex};
use burn::module::{Module, Param};
use burn::nn::{BatchNorm, BatchNormConfig};
use burn::tensor::activation::relu;
use burn::tensor::module::adaptive_avg_pool2d;
use burn::tensor::module::max_pool2d;
use burn::tensor::{Tensor, TensorData};
use clamp::backend::CpuBackend;
use clamp::kernels::conv::{ConvShape, backward, forward};
use clamp::kernels::conv_pool::{self, BlockShape};
use clamp::kernels::{adaptive_avg_pool, conv_pool_relu, conv2d, max_pool_2x2, pairwise_distances};
use clamp::model::{batch_norm, batch_norm_relu};

mod common;
use common::tensors::{Case, assert_close, layer, random};

const CASES: &[Case] = &[
    (5, 1, 28, 28, 16, 3, 1, 1, true),   // the small CNN's first block
    (6, 16, 14, 14, 32, 3, 1, 1, false), // its second
    (4, 32, 7, 7, 64, 3, 1, 1, false),   // its third
    (3, 8, 9, 11, 12, 3, 2, 1, false),   // ResNet's strided 3x3, odd sizes
    (3, 8, 9, 11, 12, 1, 2, 0, false),   // ResNet's projection shortcut
    (2, 3, 6, 5, 4, 3, 1, 0, true),      // no padding
    (2, 2, 5, 5, 3, 5, 1, 2, true),      // a 5x5 kernel
];

#[test]
fn forward_and_gradients_match_burns_convolution() {
    let device = Default::default();
    for &case in CASES {
        let (batch, channels, height, width, ..) = case;
        let x = random([batch, channels, height, width], 3);
        let ours_layer = layer::<CpuBackend>(case, &device);
        // burn's own path: the same weights on Autodiff<Flex> through Conv2d::forward.
        let burns_layer = layer::<CpuBackend>(case, &device);

        let x_ours = Tensor::<CpuBackend, 4>::from_data(x.clone(), &device).require_grad();
        let x_burn = Tensor::<CpuBackend, 4>::from_data(x.clone(), &device).require_grad();
        let y_ours = conv2d(&ours_layer, x_ours.clone());
        let y_burn = burns_layer.forward(x_burn.clone());
        assert_eq!(y_ours.dims(), y_burn.dims(), "{case:?}: output shape");
        let values = |t: Tensor<Flex, 4>| t.into_data().to_vec::<f32>().unwrap();
        assert_close(
            &format!("{case:?} forward"),
            &values(y_ours.clone().inner()),
            &values(y_burn.clone().inner()),
        );

        // A loss whose output gradient is a random tensor.
        let weights = Tensor::<CpuBackend, 4>::from_data(random(y_ours.dims(), 11), &device);
        let grads_ours = (y_ours * weights.clone()).sum().backward();
        let grads_burn = (y_burn * weights).sum().backward();
        let grad = |t: &Tensor<CpuBackend, 4>, g| t.grad(g).unwrap().into_data().to_vec::<f32>();
        assert_close(
            &format!("{case:?} input gradient"),
            &grad(&x_ours, &grads_ours).unwrap(),
            &grad(&x_burn, &grads_burn).unwrap(),
        );
        assert_close(
            &format!("{case:?} weight gradient"),
            &grad(&ours_layer.weight.val(), &grads_ours).unwrap(),
            &grad(&burns_layer.weight.val(), &grads_burn).unwrap(),
        );
        if let (Some(a), Some(b)) = (&ours_layer.bias, &burns_layer.bias) {
            let g = |t: Tensor<CpuBackend, 1>, grads| {
                t.grad(grads).unwrap().into_data().to_vec::<f32>().unwrap()
            };
            assert_close(
                &format!("{case:?} bias gradient"),
                &g(a.val(), &grads_ours),
                &g(b.val(), &grads_burn),
            );
        }
    }
}

/// The convolution written out as its definition, in f64.
fn direct(shape: &ConvShape, x: &[f64], w: &[f64], b: &[f64]) -> Vec<f64> {
    let (oh, ow) = (shape.out_height(), shape.out_width());
    let [kh, kw] = shape.kernel;
    let mut y = vec![0.0; shape.batch * shape.filters * oh * ow];
    for n in 0..shape.batch {
        for o in 0..shape.filters {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut sum = b[o];
                    for c in 0..shape.channels {
                        for ky in 0..kh {
                            for kx in 0..kw {
                                let iy = (oy * shape.stride[0] + ky) as isize
                                    - shape.padding[0] as isize;
                                let ix = (ox * shape.stride[1] + kx) as isize
                                    - shape.padding[1] as isize;
                                if iy < 0
                                    || ix < 0
                                    || iy >= shape.height as isize
                                    || ix >= shape.width as isize
                                {
                                    continue;
                                }
                                let xi = ((n * shape.channels + c) * shape.height + iy as usize)
                                    * shape.width
                                    + ix as usize;
                                sum += x[xi] * w[((o * shape.channels + c) * kh + ky) * kw + kx];
                            }
                        }
                    }
                    y[((n * shape.filters + o) * oh + oy) * ow + ox] = sum;
                }
            }
        }
    }
    y
}

#[test]
fn gradients_match_finite_differences_of_the_definition() {
    let shape = |kernel: usize, stride: [usize; 2], padding: usize| ConvShape {
        batch: 2,
        channels: 2,
        height: 5,
        width: 4,
        filters: 3,
        kernel: [kernel, kernel],
        stride,
        padding: [padding, padding],
    };
    // Strided (the general path) and size-keeping (the shifted-plane path) convolutions.
    for shape in [
        shape(3, [2, 1], 1),
        shape(3, [1, 1], 1),
        shape(5, [1, 1], 2),
    ] {
        check_against_definition(&shape);
    }
}

/// Enough images that every task of the CPU kernels holds two or three of them and the last
/// one fewer (a task is a quarter of one thread's share of the batch), on any core count.
fn batch_of_full_tasks() -> usize {
    8 * rayon::current_num_threads().max(1) + 3
}

/// The tasks reuse their buffers from image to image and sum the weight gradient over their
/// images: with several images a task, each image's output and input gradient must be the
/// bits it gets alone (nothing left over from the image before), the weight and bias gradients
/// the sum of every image's own, and a second run the same bits.
#[test]
fn tasks_of_several_images_give_each_image_its_own_bits() {
    let batch = batch_of_full_tasks();
    let shape = |channels, size: [usize; 2], filters, kernel: usize, stride, padding| ConvShape {
        batch,
        channels,
        height: size[0],
        width: size[1],
        filters,
        kernel: [kernel, kernel],
        stride: [stride, stride],
        padding: [padding, padding],
    };
    for shape in [
        shape(16, [14, 14], 32, 3, 1, 1), // the small CNN's second block (shifted planes)
        shape(32, [7, 7], 64, 3, 1, 1),   // its third (two products of 32 filters)
        shape(8, [9, 11], 12, 3, 2, 1),   // ResNet's strided 3x3 (the general path)
        shape(8, [9, 11], 12, 1, 2, 0),   // its projection shortcut
    ] {
        let one = ConvShape { batch: 1, ..shape };
        let image_len = shape.channels * shape.height * shape.width;
        let out_len = shape.filters * shape.out_height() * shape.out_width();
        let [kh, kw] = shape.kernel;
        let x = random([batch, shape.channels, shape.height, shape.width], 71)
            .to_vec::<f32>()
            .unwrap();
        let w = random([shape.filters, shape.channels, kh, kw], 72)
            .to_vec::<f32>()
            .unwrap();
        let b = random([shape.filters], 73).to_vec::<f32>().unwrap();
        let r = random([batch * out_len], 74).to_vec::<f32>().unwrap();

        let y = forward(&shape, &x, &w, Some(&b));
        let grads = backward(&shape, &x, &w, &r, true, true);
        let dx = grads.x.as_ref().unwrap();
        let mut weight_sum = vec![0.0f64; w.len()];
        let mut bias_sum = vec![0.0f64; b.len()];
        for n in 0..batch {
            let image = &x[n * image_len..(n + 1) * image_len];
            let upstream = &r[n * out_len..(n + 1) * out_len];
            assert_eq!(
                &y[n * out_len..(n + 1) * out_len],
                &forward(&one, image, &w, Some(&b))[..],
                "{shape:?}: image {n}'s output"
            );
            let alone = backward(&one, image, &w, upstream, true, true);
            assert_eq!(
                &dx[n * image_len..(n + 1) * image_len],
                &alone.x.unwrap()[..],
                "{shape:?}: image {n}'s input gradient"
            );
            for (sum, g) in weight_sum.iter_mut().zip(&alone.weight) {
                *sum += *g as f64;
            }
            for (sum, g) in bias_sum.iter_mut().zip(&alone.bias) {
                *sum += *g as f64;
            }
        }
        let narrow = |v: Vec<f64>| v.into_iter().map(|v| v as f32).collect::<Vec<_>>();
        assert_close(
            &format!("{shape:?} weight gradient"),
            &grads.weight,
            &narrow(weight_sum),
        );
        assert_close(
            &format!("{shape:?} bias gradient"),
            &grads.bias,
            &narrow(bias_sum),
        );
        // The tasks' sums are added in the tasks' order, not as they finish: the same bits on
        // every run (what lets a resumed run repeat the uninterrupted one).
        let again = backward(&shape, &x, &w, &r, true, true);
        assert_eq!(
            again.weight, grads.weight,
            "{shape:?}: weight gradient rerun"
        );
        assert_eq!(again.bias, grads.bias, "{shape:?}: bias gradient rerun");
        assert_eq!(again.x, grads.x, "{shape:?}: input gradient rerun");
    }
}

fn check_against_definition(shape: &ConvShape) {
    let shape = *shape;
    let [kh, kw] = shape.kernel;
    let x = random([shape.batch, shape.channels, shape.height, shape.width], 21)
        .to_vec::<f32>()
        .unwrap();
    let w = random([shape.filters, shape.channels, kh, kw], 22)
        .to_vec::<f32>()
        .unwrap();
    let b = random([shape.filters], 23).to_vec::<f32>().unwrap();
    let out_len = shape.batch * shape.filters * shape.out_height() * shape.out_width();
    let r = random([out_len], 24).to_vec::<f32>().unwrap();
    let wide = |v: &[f32]| v.iter().map(|&v| v as f64).collect::<Vec<_>>();
    let (x64, w64, b64, r64) = (wide(&x), wide(&w), wide(&b), wide(&r));
    let loss = |x: &[f64], w: &[f64], b: &[f64]| -> f64 {
        direct(&shape, x, w, b)
            .iter()
            .zip(&r64)
            .map(|(y, r)| y * r)
            .sum()
    };

    let y = forward(&shape, &x, &w, Some(&b));
    let y_direct = direct(&shape, &x64, &w64, &b64);
    for (a, e) in y.iter().zip(&y_direct) {
        assert!((*a as f64 - e).abs() < 1e-5, "forward {a} vs {e}");
    }

    let grads = backward(&shape, &x, &w, &r, true, true);
    let h = 1e-6;
    let check = |what: &str, analytic: &[f32], perturb: &dyn Fn(usize, f64) -> f64| {
        for (i, &g) in analytic.iter().enumerate() {
            let numeric = (perturb(i, h) - perturb(i, -h)) / (2.0 * h);
            assert!(
                (g as f64 - numeric).abs() < 1e-4,
                "{what}[{i}]: {g} vs finite difference {numeric}"
            );
        }
    };
    check("dx", grads.x.as_ref().unwrap(), &|i, d| {
        let mut x = x64.clone();
        x[i] += d;
        loss(&x, &w64, &b64)
    });
    check("dw", &grads.weight, &|i, d| {
        let mut w = w64.clone();
        w[i] += d;
        loss(&x64, &w, &b64)
    });
    check("db", &grads.bias, &|i, d| {
        let mut b = b64.clone();
        b[i] += d;
        loss(&x64, &w64, &b)
    });
    // The stride-2 rows that read only padding, and the corners, are in the checked set: a
    // gradient that ignores the padding offset would differ at the borders.
    assert!(grads.x.unwrap().iter().any(|g| *g != 0.0));
}

#[test]
fn other_backends_and_untracked_inputs_keep_working() {
    // Without autodiff (inference on the CPU: probes, snapshots, a run's pictures) the same
    // forward kernel runs, bit for bit the training path's, and agrees with burn's layer.
    let device = Default::default();
    let case = CASES[1];
    let plain = layer::<Flex>(case, &device);
    let x = random([2, 16, 14, 14], 5);
    let y = conv2d(&plain, Tensor::<Flex, 4>::from_data(x.clone(), &device));
    let tracked = layer::<Autodiff<Flex>>(case, &device);
    let y_tracked = conv2d(&tracked, Tensor::from_data(x.clone(), &device)).inner();
    let y = y.into_data().to_vec::<f32>().unwrap();
    assert_eq!(
        y,
        y_tracked.into_data().to_vec::<f32>().unwrap(),
        "inference vs training path"
    );
    let burns = plain.forward(Tensor::<Flex, 4>::from_data(x, &device));
    assert_close(
        "inference vs burn's convolution",
        &y,
        &burns.into_data().to_vec::<f32>().unwrap(),
    );
    // The first block in inference: the fused kernel's own forward, and burn's three layers'
    // values.
    let block = (3, 1, 28, 28, 16, 3, 1, 1, true);
    let first = layer::<Flex>(block, &device);
    let x = random([3, 1, 28, 28], 9);
    let fused = conv_pool_relu(&first, Tensor::<Flex, 4>::from_data(x.clone(), &device))
        .into_data()
        .to_vec::<f32>()
        .unwrap();
    let shape = BlockShape {
        batch: 3,
        channels: 1,
        height: 28,
        width: 28,
        filters: 16,
    };
    let weight = first.weight.val().into_data().to_vec::<f32>().unwrap();
    let bias = first
        .bias
        .as_ref()
        .unwrap()
        .val()
        .into_data()
        .to_vec::<f32>();
    let (direct, _) = conv_pool::forward(
        &shape,
        &Tensor::<Flex, 4>::from_data(x.clone(), &device)
            .into_data()
            .to_vec::<f32>()
            .unwrap(),
        &weight,
        &bias.unwrap(),
    );
    assert_eq!(fused, direct, "the fused kernel in inference");
    let layers = relu(max_pool2d(
        first.forward(Tensor::<Flex, 4>::from_data(x, &device)),
        [2, 2],
        [2, 2],
        [0, 0],
        [1, 1],
        false,
    ));
    assert_close(
        "inference block vs burn's layers",
        &fused,
        &layers.into_data().to_vec::<f32>().unwrap(),
    );
    // A model without tracked parameters (no_grad) still runs through the training path.
    let frozen = layer::<CpuBackend>(case, &device).no_grad();
    let z = conv2d(
        &frozen,
        Tensor::from_data(random([2, 16, 14, 14], 5), &device),
    );
    assert_eq!(z.dims(), [2, 32, 14, 14]);
}

#[test]
fn max_pool_matches_burns_values_and_gradients() {
    let device = Default::default();
    for dims in [[4, 16, 28, 28], [3, 5, 7, 9]] {
        let x = random(dims, 31);
        let x_ours = Tensor::<CpuBackend, 4>::from_data(x.clone(), &device).require_grad();
        let x_burn = Tensor::<CpuBackend, 4>::from_data(x, &device).require_grad();
        let y_ours = max_pool_2x2(x_ours.clone());
        let y_burn = max_pool2d(x_burn.clone(), [2, 2], [2, 2], [0, 0], [1, 1], false);
        assert_eq!(y_ours.dims(), y_burn.dims());
        let values = |t: Tensor<CpuBackend, 4>| t.into_data().to_vec::<f32>().unwrap();
        assert_eq!(values(y_ours.clone()), values(y_burn.clone()), "{dims:?}");
        let r = Tensor::<CpuBackend, 4>::from_data(random(y_ours.dims(), 32), &device);
        let g_ours = (y_ours * r.clone()).sum().backward();
        let g_burn = (y_burn * r).sum().backward();
        let grad = |t: &Tensor<CpuBackend, 4>, g| t.grad(g).unwrap().into_data().to_vec::<f32>();
        assert_eq!(
            grad(&x_ours, &g_ours).unwrap(),
            grad(&x_burn, &g_burn).unwrap(),
            "{dims:?} gradient"
        );
    }
    // A NaN in a window reaches the output (and so the loss, which then rolls the step back).
    let mut v = vec![1.0f32; 16];
    v[5] = f32::NAN;
    let y = max_pool_2x2(Tensor::<CpuBackend, 4>::from_data(
        TensorData::new(v, [1, 1, 4, 4]),
        &device,
    ));
    let y = y.into_data().to_vec::<f32>().unwrap();
    assert!(y[0].is_nan() && y[1..].iter().all(|v| *v == 1.0), "{y:?}");
}

/// γ's and β's gradients and the running statistics of two batch norms, each with the
/// gradients of its own backward pass.
fn assert_norm_parameters_match(
    what: &str,
    (ours, g_ours): (&BatchNorm<CpuBackend>, &Gradients),
    (burns, g_burn): (&BatchNorm<CpuBackend>, &Gradients),
) {
    let grad =
        |t: Tensor<CpuBackend, 1>, g| t.grad(g).unwrap().into_data().to_vec::<f32>().unwrap();
    let running = |s: &burn::module::RunningState<Tensor<CpuBackend, 1>>| {
        s.value_sync().into_data().to_vec::<f32>().unwrap()
    };
    assert_close(
        &format!("{what} gamma gradient"),
        &grad(ours.gamma.val(), g_ours),
        &grad(burns.gamma.val(), g_burn),
    );
    assert_close(
        &format!("{what} beta gradient"),
        &grad(ours.beta.val(), g_ours),
        &grad(burns.beta.val(), g_burn),
    );
    assert_close(
        &format!("{what} running mean"),
        &running(&ours.running_mean),
        &running(&burns.running_mean),
    );
    assert_close(
        &format!("{what} running variance"),
        &running(&ours.running_var),
        &running(&burns.running_var),
    );
}

#[test]
fn batch_norm_matches_burns_module_values_gradients_and_running_statistics() {
    let device = Default::default();
    for dims in [[6, 32, 14, 14], [5, 3, 7, 7]] {
        let channels = dims[1];
        let make = || {
            let mut norm = BatchNormConfig::new(channels).init::<CpuBackend>(&device);
            norm.gamma = Param::from_data(random([channels], 41), &device);
            norm.beta = Param::from_data(random([channels], 42), &device);
            norm
        };
        let (ours, burns) = (make(), make());
        // Shifted and scaled maps: a mean far from zero tests the centring.
        let x = Tensor::<CpuBackend, 4>::from_data(random(dims, 43), &device)
            .mul_scalar(3.0)
            .add_scalar(2.0);
        let x_ours = x.clone().detach().require_grad();
        let x_burn = x.detach().require_grad();
        let y_ours = batch_norm(&ours, x_ours.clone());
        let y_burn = burns.forward(x_burn.clone());
        let values = |t: Tensor<CpuBackend, 4>| t.into_data().to_vec::<f32>().unwrap();
        assert_close(
            &format!("{dims:?} normalised"),
            &values(y_ours.clone()),
            &values(y_burn.clone()),
        );
        let r = Tensor::<CpuBackend, 4>::from_data(random(dims, 44), &device);
        let g_ours = (y_ours * r.clone()).sum().backward();
        let g_burn = (y_burn * r).sum().backward();
        let grad4 =
            |t: &Tensor<CpuBackend, 4>, g| t.grad(g).unwrap().into_data().to_vec::<f32>().unwrap();
        assert_close(
            &format!("{dims:?} input gradient"),
            &grad4(&x_ours, &g_ours),
            &grad4(&x_burn, &g_burn),
        );
        assert_norm_parameters_match(&format!("{dims:?}"), (&ours, &g_ours), (&burns, &g_burn));
    }
}

#[test]
fn pair_distances_match_burns_broadcast_and_its_gradient() {
    let device = Default::default();
    let (batch, dim) = (37, 8);
    let c = random([batch, dim], 51);
    let ours = Tensor::<CpuBackend, 2>::from_data(c.clone(), &device).require_grad();
    let theirs = Tensor::<CpuBackend, 2>::from_data(c, &device).require_grad();
    let d_ours = pairwise_distances(ours.clone(), 1e-12);
    // The loss's formula written with burn's tensor operations.
    let differences = theirs.clone().unsqueeze_dim::<3>(1) - theirs.clone().unsqueeze_dim(0);
    let d_theirs = (differences.square().sum_dim(2).reshape([batch, batch]) + 1e-12).sqrt();
    let values = |t: Tensor<CpuBackend, 2>| t.into_data().to_vec::<f32>().unwrap();
    assert_close(
        "distances",
        &values(d_ours.clone()),
        &values(d_theirs.clone()),
    );
    // An asymmetric output gradient: both G_ij and G_ji must reach c_i.
    let r = Tensor::<CpuBackend, 2>::from_data(random([batch, batch], 52), &device);
    let g_ours = (d_ours * r.clone()).sum().backward();
    let g_theirs = (d_theirs * r).sum().backward();
    let grad =
        |t: &Tensor<CpuBackend, 2>, g| t.grad(g).unwrap().into_data().to_vec::<f32>().unwrap();
    assert_close(
        "center gradient",
        &grad(&ours, &g_ours),
        &grad(&theirs, &g_theirs),
    );
}

#[test]
fn first_block_matches_burns_convolution_pool_and_relu() {
    let device = Default::default();
    // The small CNN's first block (28x28, one channel), and odd sizes with three channels (the
    // last row and column dropped by the pooling, as burn's).
    for (batch, channels, height, width, filters) in [(5, 1, 28, 28, 16), (3, 3, 9, 11, 4)] {
        let case = (batch, channels, height, width, filters, 3, 1, 1, true);
        let (ours, burns) = (
            layer::<CpuBackend>(case, &device),
            layer::<CpuBackend>(case, &device),
        );
        let x = Tensor::<CpuBackend, 4>::from_data(
            random([batch, channels, height, width], 61),
            &device,
        );
        let y_ours = conv_pool_relu(&ours, x.clone());
        let y_burn = relu(max_pool2d(
            burns.forward(x.clone()),
            [2, 2],
            [2, 2],
            [0, 0],
            [1, 1],
            false,
        ));
        assert_eq!(y_ours.dims(), y_burn.dims());
        let values = |t: Tensor<CpuBackend, 4>| t.into_data().to_vec::<f32>().unwrap();
        let fused = values(y_ours.clone());
        assert_close(&format!("{case:?} output"), &fused, &values(y_burn.clone()));
        // The fused kernel computed it (not the three layers): its own forward, bit for bit.
        let shape = BlockShape {
            batch,
            channels,
            height,
            width,
            filters,
        };
        let plain = |t: Tensor<CpuBackend, 1>| t.into_data().to_vec::<f32>().unwrap();
        let weight = ours.weight.val().into_data().to_vec::<f32>().unwrap();
        let bias = plain(ours.bias.as_ref().unwrap().val());
        let (direct, _) = conv_pool::forward(&shape, &values(x), &weight, &bias);
        assert_eq!(fused, direct, "{case:?}: the fused path");
        assert!(fused.contains(&0.0) && fused.iter().any(|v| *v > 0.0));

        let r = Tensor::<CpuBackend, 4>::from_data(random(y_ours.dims(), 62), &device);
        let g_ours = (y_ours * r.clone()).sum().backward();
        let g_burn = (y_burn * r).sum().backward();
        let grad4 =
            |t: Tensor<CpuBackend, 4>, g| t.grad(g).unwrap().into_data().to_vec::<f32>().unwrap();
        let grad1 =
            |t: Tensor<CpuBackend, 1>, g| t.grad(g).unwrap().into_data().to_vec::<f32>().unwrap();
        assert_close(
            &format!("{case:?} weight gradient"),
            &grad4(ours.weight.val(), &g_ours),
            &grad4(burns.weight.val(), &g_burn),
        );
        assert_close(
            &format!("{case:?} bias gradient"),
            &grad1(ours.bias.as_ref().unwrap().val(), &g_ours),
            &grad1(burns.bias.as_ref().unwrap().val(), &g_burn),
        );
    }
}

#[test]
fn first_block_keeps_a_nan_and_tracked_inputs_get_their_gradient() {
    let device = Default::default();
    let conv = layer::<CpuBackend>((1, 1, 6, 6, 2, 3, 1, 1, true), &device);
    // A NaN pixel reaches every window whose 3x3 neighbourhood holds it (the step then rolls
    // back) instead of vanishing in a max or a ReLU.
    let mut v = vec![0.5f32; 36];
    v[0] = f32::NAN;
    let x = Tensor::<CpuBackend, 4>::from_data(TensorData::new(v, [1, 1, 6, 6]), &device);
    let y = conv_pool_relu(&conv, x)
        .into_data()
        .to_vec::<f32>()
        .unwrap();
    // Window (0, 0) of each filter reads the pixel; window (2, 2) does not.
    assert!(y[0].is_nan() && y[9].is_nan(), "{y:?}");
    assert!(!y[8].is_nan() && !y[17].is_nan(), "{y:?}");
    // An input that asks for its gradient takes the three layers and gets burn's gradient.
    let data = random([2, 1, 6, 6], 63);
    let x = Tensor::<CpuBackend, 4>::from_data(data.clone(), &device).require_grad();
    let g = conv_pool_relu(&conv, x.clone()).sum().backward();
    let dx = x.grad(&g).unwrap().into_data().to_vec::<f32>().unwrap();
    let x_burn = Tensor::<CpuBackend, 4>::from_data(data, &device).require_grad();
    let pooled = max_pool2d(
        conv.forward(x_burn.clone()),
        [2, 2],
        [2, 2],
        [0, 0],
        [1, 1],
        false,
    );
    let g_burn = relu(pooled).sum().backward();
    let dx_burn = x_burn
        .grad(&g_burn)
        .unwrap()
        .into_data()
        .to_vec::<f32>()
        .unwrap();
    assert_close("tracked input gradient", &dx, &dx_burn);
}

#[test]
fn batch_norm_pool_relu_matches_burns_layers_and_running_statistics() {
    let device = Default::default();
    for (dims, pool) in [
        ([6, 32, 14, 14], true),
        ([5, 3, 7, 9], true),
        ([4, 64, 7, 7], false),
    ] {
        let channels = dims[1];
        let make = || {
            let mut norm = BatchNormConfig::new(channels).init::<CpuBackend>(&device);
            norm.gamma = Param::from_data(random([channels], 71), &device);
            norm.beta = Param::from_data(random([channels], 72), &device);
            norm
        };
        let (ours, burns) = (make(), make());
        let x = Tensor::<CpuBackend, 4>::from_data(random(dims, 73), &device)
            .mul_scalar(3.0)
            .add_scalar(2.0);
        let x_ours = x.clone().detach().require_grad();
        let x_burn = x.detach().require_grad();
        let y_ours = batch_norm_relu(&ours, x_ours.clone(), pool);
        let normalized = burns.forward(x_burn.clone());
        let y_burn = relu(if pool {
            max_pool2d(normalized, [2, 2], [2, 2], [0, 0], [1, 1], false)
        } else {
            normalized
        });
        assert_eq!(y_ours.dims(), y_burn.dims(), "{dims:?}");
        let values = |t: Tensor<CpuBackend, 4>| t.into_data().to_vec::<f32>().unwrap();
        assert_close(
            &format!("{dims:?} pool {pool} output"),
            &values(y_ours.clone()),
            &values(y_burn.clone()),
        );
        let r = Tensor::<CpuBackend, 4>::from_data(random(y_ours.dims(), 74), &device);
        let g_ours = (y_ours * r.clone()).sum().backward();
        let g_burn = (y_burn * r).sum().backward();
        let grad4 =
            |t: &Tensor<CpuBackend, 4>, g| t.grad(g).unwrap().into_data().to_vec::<f32>().unwrap();
        assert_close(
            &format!("{dims:?} pool {pool} input gradient"),
            &grad4(&x_ours, &g_ours),
            &grad4(&x_burn, &g_burn),
        );
        assert_norm_parameters_match(&format!("{dims:?}"), (&ours, &g_ours), (&burns, &g_burn));
    }
}

#[test]
fn adaptive_average_pool_matches_burns_values_and_gradient() {
    let device = Default::default();
    // The small CNN's 7x7 -> 2x2 (overlapping windows), a grid that divides, and an odd one.
    for (dims, grid) in [
        ([4, 64, 7, 7], [2, 2]),
        ([3, 5, 8, 6], [4, 3]),
        ([2, 3, 9, 5], [4, 2]),
    ] {
        let x = random(dims, 81);
        let x_ours = Tensor::<CpuBackend, 4>::from_data(x.clone(), &device).require_grad();
        let x_burn = Tensor::<CpuBackend, 4>::from_data(x, &device).require_grad();
        let y_ours = adaptive_avg_pool(x_ours.clone(), grid);
        let y_burn = adaptive_avg_pool2d(x_burn.clone(), grid);
        assert_eq!(y_ours.dims(), y_burn.dims());
        let values = |t: Tensor<CpuBackend, 4>| t.into_data().to_vec::<f32>().unwrap();
        assert_close(
            &format!("{dims:?} pooled"),
            &values(y_ours.clone()),
            &values(y_burn.clone()),
        );
        let r = Tensor::<CpuBackend, 4>::from_data(random(y_ours.dims(), 82), &device);
        let g_ours = (y_ours * r.clone()).sum().backward();
        let g_burn = (y_burn * r).sum().backward();
        let grad =
            |t: &Tensor<CpuBackend, 4>, g| t.grad(g).unwrap().into_data().to_vec::<f32>().unwrap();
        assert_close(
            &format!("{dims:?} gradient"),
            &grad(&x_ours, &g_ours),
            &grad(&x_burn, &g_burn),
        );
    }
}
