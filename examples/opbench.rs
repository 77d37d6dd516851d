use burn::nn::BatchNormConfig;
use burn::tensor::module::{conv2d, max_pool2d};
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Distribution, Tensor};
use std::time::Instant;
type A = burn::backend::Autodiff<burn::backend::Flex>;
fn t<F: FnMut()>(name: &str, mut f: F) {
    f();
    let s = Instant::now();
    for _ in 0..3 {
        f();
    }
    println!("{name}: {:.1} ms", s.elapsed().as_secs_f64() * 1000.0 / 3.0);
}
fn main() {
    let d = Default::default();
    let x = Tensor::<A, 4>::random([512, 1, 28, 28], Distribution::Default, &d);
    let w1 = Tensor::<A, 4>::random([16, 1, 3, 3], Distribution::Default, &d).require_grad();
    let x2 = Tensor::<A, 4>::random([512, 16, 28, 28], Distribution::Default, &d).require_grad();
    let w2 = Tensor::<A, 4>::random([32, 16, 3, 3], Distribution::Default, &d).require_grad();
    let x3 = Tensor::<A, 4>::random([512, 16, 14, 14], Distribution::Default, &d).require_grad();
    let o = ConvOptions::new([1, 1], [1, 1], [1, 1], 1);
    t("conv1 1->16 @28 fwd", || {
        let _ = conv2d(x.clone(), w1.clone(), None, o.clone()).into_data();
    });
    t("conv1 1->16 @28 fwd+bwd", || {
        let y = conv2d(x.clone(), w1.clone(), None, o.clone());
        let _ = y.sum().backward();
    });
    t("conv 16->32 @14 fwd", || {
        let _ = conv2d(x3.clone(), w2.clone(), None, o.clone()).into_data();
    });
    t("conv 16->32 @14 fwd+bwd", || {
        let y = conv2d(x3.clone(), w2.clone(), None, o.clone());
        let _ = y.sum().backward();
    });
    let g = Tensor::<A, 4>::ones([1, 16, 1, 1], &d).require_grad();
    t("own bn mean_dim fwd+bwd", || {
        let mean = x2.clone().mean_dim(0).mean_dim(2).mean_dim(3);
        let centered = x2.clone() - mean;
        let var = centered
            .clone()
            .square()
            .mean_dim(0)
            .mean_dim(2)
            .mean_dim(3);
        let y = centered / (var + 1e-5).sqrt() * g.clone();
        let _ = y.sum().backward();
    });
    t("own bn reshape fwd+bwd", || {
        let [n, c, h, w] = x2.dims();
        let flat = x2.clone().reshape([n, c, h * w]);
        let mean = flat.clone().mean_dim(2).mean_dim(0);
        let centered = flat - mean;
        let var = centered.clone().square().mean_dim(2).mean_dim(0);
        let y = (centered / (var + 1e-5).sqrt()).reshape([n, c, h, w]) * g.clone();
        let _ = y.sum().backward();
    });
    let bn = BatchNormConfig::new(16).init::<A>(&d);
    t("bn 16 @28 fwd+bwd", || {
        let y = bn.forward(x2.clone());
        let _ = y.sum().backward();
    });
    t("relu 16 @28 fwd+bwd", || {
        let y = burn::tensor::activation::relu(x2.clone());
        let _ = y.sum().backward();
    });
    t("maxpool 16 @28 fwd+bwd", || {
        let y = max_pool2d(x2.clone(), [2, 2], [2, 2], [0, 0], [1, 1], false);
        let _ = y.sum().backward();
    });
}
