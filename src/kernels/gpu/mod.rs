//! clamp's own kernels for burn's WGPU backend: the convolutions as implicit GEMMs (burn's WGPU
//! path runs them with direct kernels, docs/gpu.md), for training (`Autodiff<Wgpu>`, with its own
//! backward) and for inference (`Wgpu`).

pub mod conv;
pub mod implicit;
pub mod norm_pool;

use std::any::TypeId;

use burn::backend::Wgpu;
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

use super::same_type;
use crate::backend::WgpuBackend;
use crate::kernels::shape::ConvShape;

/// `conv(x, weight) + bias` when `B` is a WGPU backend (training or inference), as GEMMs; `x`
/// handed back (`Err`) on every other backend, or for a shape the kernels do not take, so the
/// caller runs burn's own layer.
pub fn conv2d<B: Backend>(
    shape: ConvShape,
    x: Tensor<B, 4>,
    weight: Tensor<B, 4>,
    bias: Option<Tensor<B, 1>>,
) -> Result<Tensor<B, 4>, Tensor<B, 4>> {
    if !implicit::fits(&shape) {
        return Err(x);
    }
    let primitive = |t: Tensor<WgpuBackend, 4>| t.into_primitive().tensor();
    if TypeId::of::<B>() == TypeId::of::<WgpuBackend>() {
        let output = conv::tracked_conv(
            shape,
            primitive(same_type(x)),
            primitive(same_type(weight)),
            bias.map(|b| {
                same_type::<_, Tensor<WgpuBackend, 1>>(b)
                    .into_primitive()
                    .tensor()
            }),
        );
        return Ok(same_type(Tensor::<WgpuBackend, 4>::from_primitive(
            burn::tensor::TensorPrimitive::Float(output),
        )));
    }
    if TypeId::of::<B>() == TypeId::of::<Wgpu>() {
        let inner = |t: Tensor<Wgpu, 4>| t.into_primitive().tensor();
        let output = conv::forward(
            &shape,
            inner(same_type(x)),
            inner(same_type(weight)),
            bias.map(|b| same_type::<_, Tensor<Wgpu, 1>>(b).into_primitive().tensor()),
        );
        return Ok(same_type(Tensor::<Wgpu, 4>::from_primitive(
            burn::tensor::TensorPrimitive::Float(output),
        )));
    }
    Err(x)
}
