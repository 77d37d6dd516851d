//! clamp's own kernels, where burn's would be several times slower than the arithmetic needs:
//! for the CPU training backend (`Autodiff<Flex>`) the layers of the small CNN and the loss's
//! pair distances, which burn runs there through generic fallbacks or broadcasts
//! (docs/cpu-step.md has the profile); for WGPU ([`gpu`], with the `gpu` feature) the
//! convolutions as implicit GEMMs and the block tails (batch norm, pool, ReLU), which burn runs
//! with direct kernels (docs/gpu.md). Each public function is generic over the backend: on a
//! backend with kernels of its own it records its own forward and backward in burn's autodiff
//! graph; for inference on the CPU (`Flex`) the convolution and the first block run their
//! forward kernels with nothing recorded; on every other backend it is burn's own layer.

/// Wraps a kernel's inner function so that it runs compiled for the widest vector unit the CPU
/// has (AVX-512, AVX2, or the target's baseline), chosen at run time. The arithmetic is the
/// same value by value on each (fused multiply-adds only where asked for, through
/// [`multiply_add`]: Rust never fuses on its own), so the results are the same bits.
macro_rules! widest_simd {
    (
        $(#[$meta:meta])*
        fn $name:ident($($arg:ident : $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block
    ) => {
        $(#[$meta])*
        #[allow(clippy::too_many_arguments)]
        fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn body($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,fma")]
                fn avx512($($arg: $ty),*) $(-> $ret)? {
                    body($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                fn avx2($($arg: $ty),*) $(-> $ret)? {
                    body($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    // SAFETY: the CPU has AVX-512F and FMA (checked above).
                    return unsafe { avx512($($arg),*) };
                }
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    // SAFETY: the CPU has AVX2 and FMA (checked above).
                    return unsafe { avx2($($arg),*) };
                }
            }
            body($($arg),*)
        }
    };
}

/// Images handed to one task of a kernel that sums over a batch: four tasks per thread, so
/// that the threads stay busy while each task still amortises its scratch buffers.
fn images_per_task(batch: usize) -> usize {
    batch
        .div_ceil(4 * rayon::current_num_threads().max(1))
        .max(1)
}

/// `a · b + c`: rounded once (a fused multiply-add, as the GEMM and the GPU's kernels compute
/// their sums) on x86-64, whose CPUs with a wide vector unit all have FMA; twice elsewhere (a
/// browser's WebAssembly has no FMA, and a software one would be far slower).
#[inline(always)]
fn multiply_add(a: f32, b: f32, c: f32) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        a.mul_add(b, c)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        a * b + c
    }
}

pub mod avg_pool;
pub mod conv;
pub mod conv_pool;
pub mod distance;
#[cfg(feature = "gpu")]
pub mod gpu;
pub mod norm;
pub mod norm_pool;
pub mod pool;
pub mod shape;

use std::any::{Any, TypeId};
use std::borrow::Cow;

use burn::backend::Autodiff;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::ops::{Backward, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{Shape, Tensor, TensorData, TensorPrimitive};

pub use avg_pool::adaptive_avg_pool;
pub use conv::conv2d;
pub use conv_pool::conv_pool_relu;
pub use distance::pairwise_distances;
pub use norm::batch_norm_training;
pub use norm_pool::batch_norm_relu_training;
pub use pool::max_pool_2x2;

use crate::backend::CpuBackend;

/// Whether `B` is the CPU training backend, whose tensors these kernels take.
fn on_cpu_training<B: Backend>() -> bool {
    TypeId::of::<B>() == TypeId::of::<CpuBackend>()
}

/// Whether `B` is the CPU backend without autodiff: inference (probes, snapshots, pictures),
/// where the forward kernels serve as they are.
fn on_cpu_inference<B: Backend>() -> bool {
    TypeId::of::<B>() == TypeId::of::<burn::backend::Flex>()
}

/// The CPU inference tensor under a tensor of `B` (callers have checked [`on_cpu_inference`]).
fn to_flex<B: Backend, const D: usize>(tensor: Tensor<B, D>) -> FlexTensor {
    same_type::<_, Tensor<burn::backend::Flex, D>>(tensor)
        .into_primitive()
        .tensor()
}

/// A CPU inference tensor as a tensor of `B` (which is that backend).
fn from_flex<B: Backend, const D: usize>(tensor: FlexTensor) -> Tensor<B, D> {
    same_type(Tensor::<burn::backend::Flex, D>::from_primitive(
        TensorPrimitive::Float(tensor),
    ))
}

/// `value` as the type it is; callers have checked [`on_cpu_training`].
fn same_type<T: 'static, U: 'static>(value: T) -> U {
    let boxed: Box<dyn Any> = Box::new(value);
    *boxed
        .downcast::<U>()
        .expect("the caller checked that the backend is the CPU training backend")
}

/// The autodiff tensor under a tensor of the CPU training backend.
fn to_cpu<B: Backend, const D: usize>(tensor: Tensor<B, D>) -> FloatTensor<CpuBackend> {
    same_type::<_, Tensor<CpuBackend, D>>(tensor)
        .into_primitive()
        .tensor()
}

/// An autodiff tensor of the CPU training backend as a tensor of `B` (which is that backend).
fn from_cpu<B: Backend, const D: usize>(tensor: FloatTensor<CpuBackend>) -> Tensor<B, D> {
    same_type(Tensor::<CpuBackend, D>::from_primitive(
        TensorPrimitive::Float(tensor),
    ))
}

/// The contiguous f32 values of a CPU tensor (copied only when it is a strided view).
fn values(tensor: &FlexTensor) -> Cow<'_, [f32]> {
    match tensor.as_slice::<f32>() {
        Some(slice) => Cow::Borrowed(slice),
        None => Cow::Owned(
            tensor
                .to_contiguous()
                .as_slice::<f32>()
                .expect("the CPU backend trains in f32")
                .to_vec(),
        ),
    }
}

fn flex_tensor(values: Vec<f32>, shape: impl Into<Shape>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}

/// Records a convolution's `output` in burn's autodiff graph with `op` as its backward: the
/// input, the weight and (when there is one) the bias as its parents, the input and the weight
/// kept for the backward step. Untracked inputs record nothing.
pub(crate) fn record_conv<B, O>(
    op: O,
    x: &FloatTensor<Autodiff<B>>,
    weight: &FloatTensor<Autodiff<B>>,
    bias: Option<&FloatTensor<Autodiff<B>>>,
    output: B::FloatTensorPrimitive,
) -> FloatTensor<Autodiff<B>>
where
    B: Backend,
    O: Backward<B, 2, State = (B::FloatTensorPrimitive, B::FloatTensorPrimitive)>
        + Backward<B, 3, State = (B::FloatTensorPrimitive, B::FloatTensorPrimitive)>,
{
    let state = (x.primitive.clone(), weight.primitive.clone());
    let parents = (x.node.clone(), weight.node.clone());
    match bias {
        Some(bias) => match Backward::<B, 3>::prepare::<NoCheckpointing>(
            op,
            [parents.0, parents.1, bias.node.clone()],
        )
        .compute_bound()
        .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish(state, output),
            OpsKind::UnTracked(prep) => prep.finish(output),
        },
        None => match Backward::<B, 2>::prepare::<NoCheckpointing>(op, [parents.0, parents.1])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish(state, output),
            OpsKind::UnTracked(prep) => prep.finish(output),
        },
    }
}
