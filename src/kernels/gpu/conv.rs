//! Convolution on burn's WGPU backend as implicit GEMMs ([`super::implicit`]), with both
//! gradients, recorded in burn's autodiff graph as one operation.
//!
//! burn 0.21 runs a WGPU convolution and both its gradients with direct kernels (its GEMM
//! variants need cooperative-matrix units that its WGSL path never has); the weight gradient
//! becomes a direct convolution whose kernel is a whole output map, and took most of a training
//! step (docs/gpu.md). Here the three products are the GEMMs of the CPU path
//! (`kernels::conv`), their column matrices read in place:
//!
//! - forward: `Y[n] = W · col(X[n]) (+ b)`;
//! - weight gradient: `dW = Σ_n dY[n] · col(X[n])ᵀ`, summed per chunk of the batch's pixels on
//!   the GPU, then over the chunks;
//! - input gradient: `dX[n] = col⁻¹(Wᵀ · dY[n])`;
//! - bias gradient: `db = Σ_n Σ_pixels dY[n]`.

use burn::backend::Wgpu;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::backend::wgpu::{CubeTensor, WgpuRuntime};
use burn::tensor::ops::FloatTensor;
use burn::tensor::{Tensor, TensorPrimitive};

use super::implicit::{self, Tiles};
use crate::backend::WgpuBackend;
use crate::kernels::record_conv;
use crate::kernels::shape::ConvShape;

type Raw = CubeTensor<WgpuRuntime>;

fn tensor<const D: usize>(raw: Raw) -> Tensor<Wgpu, D> {
    Tensor::from_primitive(TensorPrimitive::Float(raw))
}

fn raw<const D: usize>(tensor: Tensor<Wgpu, D>) -> Raw {
    tensor.into_primitive().tensor()
}

/// `conv(x, W) + b` on the inner WGPU backend, `[N, O, OH, OW]`, with the device's tiles.
pub fn forward(shape: &ConvShape, x: Raw, weight: Raw, bias: Option<Raw>) -> Raw {
    let tiles = Tiles::for_device(&x);
    implicit::forward(shape, x, weight, bias, tiles)
}

/// The gradients of a convolution, given its output's.
pub struct Gradient {
    /// `[N, C, H, W]`, when asked for.
    pub x: Option<Raw>,
    /// `[O, C, kh, kw]`.
    pub weight: Raw,
    /// `[O]`, when asked for.
    pub bias: Option<Raw>,
}

/// The gradients with respect to the input (if `want_x`), the weight, and the bias (if
/// `want_bias`), with `tiles`.
pub fn backward(
    shape: &ConvShape,
    x: Raw,
    weight: Raw,
    grad_out: Raw,
    (want_x, want_bias): (bool, bool),
    tiles: Tiles,
) -> Gradient {
    let x_grad = want_x.then(|| implicit::input_gradient(shape, grad_out.clone(), weight, tiles));
    let chunks = implicit::weight_gradient_chunks(shape, x, grad_out.clone(), tiles);
    let weight_grad = tensor::<5>(chunks).sum_dim(0).reshape([
        shape.filters,
        shape.channels,
        shape.kernel[0],
        shape.kernel[1],
    ]);
    let bias = want_bias.then(|| {
        let pixels = shape.out_height() * shape.out_width();
        raw(tensor::<4>(grad_out)
            .reshape([shape.batch, shape.filters, pixels])
            .sum_dim(2)
            .sum_dim(0)
            .reshape([shape.filters]))
    });
    Gradient {
        x: x_grad,
        weight: raw(weight_grad),
        bias,
    }
}

/// The backward step recorded for one convolution; its state is the input and the weight.
#[derive(Debug)]
struct ConvBackward {
    shape: ConvShape,
}

impl<const N: usize> Backward<Wgpu, N> for ConvBackward {
    type State = (Raw, Raw);

    fn backward(self, ops: Ops<Self::State, N>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad_out = grads.consume::<Wgpu>(&ops.node);
        let (x, weight) = ops.state;
        let want_bias = matches!(ops.parents.get(2), Some(Some(_)));
        let tiles = Tiles::for_device(&x);
        let gradient = backward(
            &self.shape,
            x,
            weight,
            grad_out,
            (ops.parents[0].is_some(), want_bias),
            tiles,
        );
        if let (Some(node), Some(dx)) = (&ops.parents[0], gradient.x) {
            grads.register::<Wgpu>(node.id, dx);
        }
        if let Some(node) = &ops.parents[1] {
            grads.register::<Wgpu>(node.id, gradient.weight);
        }
        if let (Some(Some(node)), Some(db)) = (ops.parents.get(2), gradient.bias) {
            grads.register::<Wgpu>(node.id, db);
        }
    }
}

/// The forward pass on the inner tensors, recorded for backward when any input is tracked.
pub fn tracked_conv(
    shape: ConvShape,
    x: FloatTensor<WgpuBackend>,
    weight: FloatTensor<WgpuBackend>,
    bias: Option<FloatTensor<WgpuBackend>>,
) -> FloatTensor<WgpuBackend> {
    let output = forward(
        &shape,
        x.primitive.clone(),
        weight.primitive.clone(),
        bias.as_ref().map(|b| b.primitive.clone()),
    );
    record_conv(ConvBackward { shape }, &x, &weight, bias.as_ref(), output)
}
