//! Convolution on burn's CPU backend with its gradients, as im2col + GEMM.
//!
//! burn's CPU backend (`flex`) runs a convolution's forward pass as im2col + GEMM, but its two
//! gradients through burn's generic fallbacks: the weight gradient as a convolution whose batch
//! is the input's channels and whose kernel is a whole output map, the input gradient as a
//! transposed convolution. In the training step of the small CNN these took most of the time
//! (docs/cpu-step.md has the profile). Here each image's patches are laid out once as a column
//! matrix `[C kh kw, OH OW]` and all three products are GEMMs against it:
//!
//! - forward: `Y[n] = W · col(X[n]) (+ b)`, `W` as `[O, C kh kw]`;
//! - weight gradient: `dW = Σ_n dY[n] · col(X[n])ᵀ`, summed per task of images, then over the
//!   tasks in a fixed order (the same bits on every run);
//! - input gradient: `dX[n] = col⁻¹(Wᵀ · dY[n])`, the column matrix scattered back (col2im);
//! - bias gradient: `db = Σ_n Σ_pixels dY[n]`, in the same tasks.
//!
//! [`conv2d`] takes this path on the CPU training backend and burn's own convolution everywhere
//! else; dilation, groups other than 1 and one-sided padding also keep burn's.

use burn::backend::Flex;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::backend::flex::FlexTensor;
use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;
use rayon::prelude::*;

use super::{
    flex_tensor, from_cpu, from_flex, images_per_task, on_cpu_inference, on_cpu_training,
    record_conv, to_cpu, to_flex, values,
};
use crate::backend::CpuBackend;

pub use super::shape::ConvShape;

// The CPU path's layout of a convolution: the column matrix and its padding.
impl ConvShape {
    /// Rows of the column matrix: one per weight of a filter (`C kh kw`).
    fn patch(&self) -> usize {
        self.channels * self.kernel[0] * self.kernel[1]
    }

    /// Columns of the column matrix: one per output pixel.
    fn pixels_out(&self) -> usize {
        self.out_height() * self.out_width()
    }

    /// The column matrix's row stride: the output pixels rounded up to a whole number of
    /// 16-lane vectors. gemm then reads the matrix where it lies (a row count that is not a
    /// multiple of 16 makes it copy the whole matrix into a packed buffer first, on every
    /// call); the cells past the pixels are zero and only ever reach discarded outputs.
    fn col_stride(&self) -> usize {
        self.pixels_out().next_multiple_of(16)
    }

    /// Cells of one column matrix, padding included.
    fn col_len(&self) -> usize {
        self.patch() * self.col_stride()
    }

    fn image_len(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// Lays out one image's patches as the `[C kh kw, OH OW]` column matrix, rows
    /// [`col_stride`](Self::col_stride) apart (zeros where a patch reaches into the padding;
    /// the cells past each row's pixels are left as they are).
    fn im2col(&self, image: &[f32], col: &mut [f32], masks: &PaddingMasks) {
        if self.keeps_size() {
            let plane = self.height * self.width;
            return self.for_each_shifted_plane(col, masks, |row, c, shift, inside| {
                copy_shifted(row, &image[c * plane..][..plane], shift, inside);
            });
        }
        let sx = self.stride[1];
        self.for_each_patch_row(|row| {
            let out = &mut col[row.col_start..][..self.out_width()];
            out[..row.lo].fill(0.0);
            out[row.hi..].fill(0.0);
            let Some(first) = row.first_input else { return };
            let inside = &mut out[row.lo..row.hi];
            if sx == 1 {
                inside.copy_from_slice(&image[first..first + inside.len()]);
            } else {
                for (i, value) in inside.iter_mut().enumerate() {
                    *value = image[first + i * sx];
                }
            }
        });
    }

    /// Adds a column matrix back onto the image it was laid out from (im2col's adjoint); the
    /// column matrix may be used as scratch.
    fn col2im(&self, col: &mut [f32], image: &mut [f32], masks: &PaddingMasks) {
        if self.keeps_size() {
            let plane = self.height * self.width;
            return self.for_each_shifted_plane(col, masks, |row, c, shift, inside| {
                add_shifted(&mut image[c * plane..][..plane], row, shift, inside);
            });
        }
        let sx = self.stride[1];
        self.for_each_patch_row(|row| {
            let Some(first) = row.first_input else { return };
            let inside = &col[row.col_start + row.lo..row.col_start + row.hi];
            for (i, value) in inside.iter().enumerate() {
                image[first + i * sx] += value;
            }
        });
    }

    /// Stride 1 and as much padding as the kernel reaches (3x3 with padding 1): the output
    /// has the input's size, and a row of the column matrix is the input plane shifted.
    fn keeps_size(&self) -> bool {
        self.stride == [1, 1] && self.out_height() == self.height && self.out_width() == self.width
    }

    /// For [`keeps_size`](Self::keeps_size) shapes, one mask per kernel column `kx`: whether
    /// each output pixel's read `ox + kx − px` stays in the pixel's row (where it does not, the
    /// flat shift of [`for_each_shifted_plane`](Self::for_each_shifted_plane) wraps onto the
    /// neighbouring row while the patch reads padding). Empty for other shapes. Made once per
    /// pass over the batch, not per image.
    fn padding_masks(&self) -> PaddingMasks {
        if !self.keeps_size() {
            return Vec::new();
        }
        let width = self.width as isize;
        (0..self.kernel[1])
            .map(|kx| {
                let dx = kx as isize - self.padding[1] as isize;
                let row: Vec<bool> = (0..width)
                    .map(|ox| (0..width).contains(&(ox + dx)))
                    .collect();
                row.repeat(self.height)
            })
            .collect()
    }

    /// For [`keeps_size`](Self::keeps_size) shapes: visits each row of the column matrix (one
    /// channel and kernel offset) with its channel, the flat shift `(ky − py) W + (kx − px)` at
    /// which it reads the channel's plane, and its kernel column's mask of
    /// [`padding_masks`](Self::padding_masks).
    fn for_each_shifted_plane(
        &self,
        col: &mut [f32],
        masks: &PaddingMasks,
        mut visit: impl FnMut(&mut [f32], usize, isize, &[bool]),
    ) {
        let [kh, _] = self.kernel;
        let [py, px] = self.padding;
        let plane = self.height * self.width;
        let mut rows = col.chunks_mut(self.col_stride());
        for c in 0..self.channels {
            for ky in 0..kh {
                for (kx, inside) in masks.iter().enumerate() {
                    let Some(row) = rows.next() else { return };
                    let dx = kx as isize - px as isize;
                    let shift = (ky as isize - py as isize) * self.width as isize + dx;
                    visit(&mut row[..plane], c, shift, inside);
                }
            }
        }
    }

    /// Visits each row of output pixels of each row of the column matrix (one channel and
    /// kernel offset), with the output columns `lo..hi` that read inside the image.
    fn for_each_patch_row(&self, mut visit: impl FnMut(PatchRow)) {
        let [kh, kw] = self.kernel;
        let [sy, sx] = self.stride;
        let [py, px] = self.padding;
        let (out_h, out_w) = (self.out_height(), self.out_width());
        for c in 0..self.channels {
            for ky in 0..kh {
                for kx in 0..kw {
                    let matrix_row = (c * kh + ky) * kw + kx;
                    // Output columns ox whose input column ox sx + kx - px is in 0..width.
                    let lo = px.saturating_sub(kx).div_ceil(sx).min(out_w);
                    let hi = (self.width + px)
                        .saturating_sub(kx)
                        .div_ceil(sx)
                        .clamp(lo, out_w);
                    for oy in 0..out_h {
                        let iy = (oy * sy + ky)
                            .checked_sub(py)
                            .filter(|&iy| iy < self.height && lo < hi);
                        let (lo, hi) = if iy.is_some() { (lo, hi) } else { (0, 0) };
                        visit(PatchRow {
                            col_start: matrix_row * self.col_stride() + oy * out_w,
                            lo,
                            hi,
                            first_input: iy
                                .map(|iy| (c * self.height + iy) * self.width + lo * sx + kx - px),
                        });
                    }
                }
            }
        }
    }
}

/// Per kernel column, per output pixel: whether the pixel's read stays inside its row.
type PaddingMasks = Vec<Vec<bool>>;

/// One output row of one row of the column matrix, and where it reads in the image.
struct PatchRow {
    /// Index in the column matrix of its first output column.
    col_start: usize,
    /// Output columns `lo..hi` read inside the image (the rest is padding).
    lo: usize,
    hi: usize,
    /// Index in the image of what output column `lo` reads; `None` when the whole row reads
    /// padding (then `lo = hi = 0`).
    first_input: Option<usize>,
}

widest_simd! {
/// `row[i] = plane[i + shift]` where that is inside the plane and `inside[i]`, 0 elsewhere.
/// One pass of selects (a copy, then the edge columns zeroed, took two, the copy a library
/// call per row).
fn copy_shifted(row: &mut [f32], plane: &[f32], shift: isize, inside: &[bool]) {
    let (lo, hi) = shifted_range(row.len(), shift);
    row[..lo].fill(0.0);
    row[hi..].fill(0.0);
    let from = (lo as isize + shift) as usize;
    for ((r, &v), &keep) in row[lo..hi]
        .iter_mut()
        .zip(&plane[from..from + (hi - lo)])
        .zip(&inside[lo..hi])
    {
        *r = if keep { v } else { 0.0 };
    }
}
}

widest_simd! {
/// `plane[i + shift] += row[i]` where that is inside the plane, `row[i]` counted as 0 where
/// `inside[i]` is not set.
fn add_shifted(plane: &mut [f32], row: &[f32], shift: isize, inside: &[bool]) {
    let (lo, hi) = shifted_range(row.len(), shift);
    let from = (lo as isize + shift) as usize;
    for ((p, &r), &keep) in plane[from..from + (hi - lo)]
        .iter_mut()
        .zip(&row[lo..hi])
        .zip(&inside[lo..hi])
    {
        *p += if keep { r } else { 0.0 };
    }
}
}

/// The indices `lo..hi` of a plane of `len` cells whose `i + shift` is in the plane too.
fn shifted_range(len: usize, shift: isize) -> (usize, usize) {
    let lo = (-shift).clamp(0, len as isize) as usize;
    let hi = (len as isize - shift).clamp(lo as isize, len as isize) as usize;
    (lo, hi)
}

/// `dst (m x n) = [dst +] lhs (m x k) · rhs (k x n)`, each given by its row and column strides.
#[allow(clippy::too_many_arguments)]
fn matmul(
    (m, n, k): (usize, usize, usize),
    dst: &mut [f32],
    dst_strides: (usize, usize),
    accumulate: bool,
    lhs: &[f32],
    lhs_strides: (usize, usize),
    rhs: &[f32],
    rhs_strides: (usize, usize),
) {
    // The bounds gemm relies on.
    assert!(dst.len() >= extent((m, n), dst_strides));
    assert!(lhs.len() >= extent((m, k), lhs_strides));
    assert!(rhs.len() >= extent((k, n), rhs_strides));
    // SAFETY: the three slices hold every element the strides address (checked above), and dst
    // does not alias lhs or rhs (a &mut beside two &).
    unsafe {
        gemm_f32(
            (m, n, k),
            dst.as_mut_ptr(),
            dst_strides,
            accumulate,
            lhs,
            lhs_strides,
            rhs,
            rhs_strides,
        )
    }
}

/// How far into its slice a `rows x cols` matrix with these strides reaches.
fn extent((rows, cols): (usize, usize), (rs, cs): (usize, usize)) -> usize {
    if rows == 0 || cols == 0 {
        0
    } else {
        (rows - 1) * rs + (cols - 1) * cs + 1
    }
}

/// `dst (m x n) = [dst +] lhs (m x k) · rhs (k x n)` through gemm, single-threaded (the callers
/// run in parallel over images), each matrix given by its row and column strides.
///
/// # Safety
/// Every element the strides address lies inside its allocation, and `dst` aliases neither
/// `lhs` nor `rhs`. With `accumulate` false gemm only writes `dst`.
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_f32(
    (m, n, k): (usize, usize, usize),
    dst: *mut f32,
    dst_strides: (usize, usize),
    accumulate: bool,
    lhs: &[f32],
    lhs_strides: (usize, usize),
    rhs: &[f32],
    rhs_strides: (usize, usize),
) {
    // SAFETY: the caller's contract above; f32 is one of gemm's types.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            dst_strides.1 as isize,
            dst_strides.0 as isize,
            accumulate,
            lhs.as_ptr(),
            lhs_strides.1 as isize,
            lhs_strides.0 as isize,
            rhs.as_ptr(),
            rhs_strides.1 as isize,
            rhs_strides.0 as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// `Y = conv(X, W) + b`, `[N, O, OH, OW]`.
pub fn forward(shape: &ConvShape, x: &[f32], weight: &[f32], bias: Option<&[f32]>) -> Vec<f32> {
    let (o, k, p, stride) = (
        shape.filters,
        shape.patch(),
        shape.pixels_out(),
        shape.col_stride(),
    );
    let len = shape.batch * o * p;
    let masks = shape.padding_masks();
    // gemm copies the column matrix into a packed buffer before a product with more than 48
    // filters (its AVX-512 kernel's threshold); 49 to 96 filters go as two products that read
    // the matrix where it lies, with the same sums.
    let filters_per_product = if (49..=96).contains(&o) {
        o.div_ceil(2)
    } else {
        o.max(1)
    };
    // Every output is written below: the storage is not zeroed first.
    let mut out = Vec::with_capacity(len);
    let group = images_per_task(shape.batch);
    out.spare_capacity_mut()[..len]
        .par_chunks_mut(group * o * p)
        .zip(x.par_chunks(group * shape.image_len()))
        .for_each(|(outputs, images)| {
            // Zeroed once: the cells past each row's pixels are never written.
            let mut col = vec![0.0f32; shape.col_len()];
            let mut product = vec![0.0f32; o * stride];
            for (y, image) in outputs
                .chunks_mut(o * p)
                .zip(images.chunks(shape.image_len()))
            {
                shape.im2col(image, &mut col, &masks);
                // W · col over whole rows of the column matrix, then each row's pixels kept,
                // with the bias added on the way.
                for (product, weights) in product
                    .chunks_mut(filters_per_product * stride)
                    .zip(weight.chunks(filters_per_product * k))
                {
                    matmul(
                        (weights.len() / k, stride, k),
                        product,
                        (stride, 1),
                        false,
                        weights,
                        (k, 1),
                        &col,
                        (stride, 1),
                    );
                }
                for (f, (y, row)) in y.chunks_mut(p).zip(product.chunks(stride)).enumerate() {
                    let row = &row[..p];
                    match bias {
                        Some(bias) => y.iter_mut().zip(row).for_each(|(y, v)| {
                            y.write(v + bias[f]);
                        }),
                        None => y.iter_mut().zip(row).for_each(|(y, v)| {
                            y.write(*v);
                        }),
                    }
                }
            }
        });
    // SAFETY: the chunks cover all `len` slots and each was written above.
    unsafe { out.set_len(len) };
    out
}

/// The gradients of a convolution given the gradient of its output.
pub struct ConvGradients {
    /// `[N, C, H, W]`, when asked for.
    pub x: Option<Vec<f32>>,
    /// `[O, C, kh, kw]`.
    pub weight: Vec<f32>,
    /// `[O]`.
    pub bias: Vec<f32>,
}

/// The gradients with respect to the input (if `want_x`), the weight and the bias (zeros
/// unless `want_bias`).
pub fn backward(
    shape: &ConvShape,
    x: &[f32],
    weight: &[f32],
    grad_out: &[f32],
    want_x: bool,
    want_bias: bool,
) -> ConvGradients {
    let (o, k, p, stride) = (
        shape.filters,
        shape.patch(),
        shape.pixels_out(),
        shape.col_stride(),
    );
    let group = images_per_task(shape.batch);
    let masks = shape.padding_masks();
    // Wᵀ laid out once, `[C kh kw, O]`: the input gradient's product then reads it as it lies,
    // where from `W` gemm would copy it into a packed buffer for every image.
    let weight_t: Vec<f32> = (0..k * o).map(|i| weight[i % o * k + i / o]).collect();
    // One pass over the images: each task lays out an image's columns, adds its share of the
    // weight gradient, then reuses the buffer for the input gradient's columns.
    let task = |grads: &[f32], images: &[f32], mut dx: Option<&mut [f32]>| {
        // The weight gradient's share, stored transposed (`[C kh kw, O]`: gemm then reads the
        // column matrix where it lies instead of copying it transposed), then the bias
        // gradient's.
        let mut sum = vec![0.0f32; k * o + o];
        // Zeroed once: the cells past each row's pixels are never written.
        let mut col = vec![0.0f32; shape.col_len()];
        for (i, (g, image)) in grads
            .chunks(o * p)
            .zip(images.chunks(shape.image_len()))
            .enumerate()
        {
            shape.im2col(image, &mut col, &masks);
            // dW (o x k, column-major) += dY (o x p) · colᵀ (p x k)
            matmul(
                (o, k, p),
                &mut sum,
                (1, o),
                true,
                g,
                (p, 1),
                &col,
                (1, stride),
            );
            if want_bias {
                for (b, row) in sum[o * k..].iter_mut().zip(g.chunks(p)) {
                    *b += row.iter().sum::<f32>();
                }
            }
            if let Some(dx) = dx.as_deref_mut() {
                // col (k x p) = Wᵀ (k x o) · dY (o x p), scattered back onto the image.
                matmul(
                    (k, p, o),
                    &mut col,
                    (stride, 1),
                    false,
                    &weight_t,
                    (o, 1),
                    g,
                    (p, 1),
                );
                shape.col2im(
                    &mut col,
                    &mut dx[i * shape.image_len()..][..shape.image_len()],
                    &masks,
                );
            }
        }
        sum
    };
    let mut x_grad = want_x.then(|| vec![0.0f32; x.len()]);
    let partial_sums: Vec<Vec<f32>> = match x_grad.as_mut() {
        Some(dx) => dx
            .par_chunks_mut(group * shape.image_len())
            .zip(grad_out.par_chunks(group * o * p))
            .zip(x.par_chunks(group * shape.image_len()))
            .map(|((dx, grads), images)| task(grads, images, Some(dx)))
            .collect(),
        None => grad_out
            .par_chunks(group * o * p)
            .zip(x.par_chunks(group * shape.image_len()))
            .map(|(grads, images)| task(grads, images, None))
            .collect(),
    };
    // Summed in the tasks' order, not as they finish: the same bits on every run (resumed runs
    // are compared bit for bit).
    let mut transposed = partial_sums
        .into_iter()
        .reduce(|mut a, b| {
            a.iter_mut().zip(&b).for_each(|(a, b)| *a += b);
            a
        })
        .unwrap_or_else(|| vec![0.0f32; k * o + o]);
    let bias_grad = transposed.split_off(k * o);
    // `[O, C kh kw]`, the weight's layout.
    let weight_grad = (0..o * k).map(|i| transposed[i % k * o + i / k]).collect();
    ConvGradients {
        x: x_grad,
        weight: weight_grad,
        bias: bias_grad,
    }
}

/// The convolution `conv` applied to `x`: on `Autodiff<Flex>` with this module's forward and
/// backward, on WGPU as GEMMs (`kernels::gpu`), elsewhere (and for dilated or grouped
/// convolutions) with burn's.
pub fn conv2d<B: Backend>(conv: &Conv2d<B>, x: Tensor<B, 4>) -> Tensor<B, 4> {
    let plain = conv.dilation == [1, 1] && conv.groups == 1;
    let padding = match conv.padding {
        PaddingConfig2d::Valid => [0, 0],
        PaddingConfig2d::Explicit(top, left, bottom, right) if top == bottom && left == right => {
            [top, left]
        }
        // "same" and one-sided padding: burn's convolution.
        _ => return conv.forward(x),
    };
    if !plain {
        return conv.forward(x);
    }
    let [batch, channels, height, width] = x.dims();
    let shape = ConvShape {
        batch,
        channels,
        height,
        width,
        filters: conv.weight.val().dims()[0],
        kernel: conv.kernel_size,
        stride: conv.stride,
        padding,
    };
    if on_cpu_inference::<B>() {
        // Inference on the CPU: the same forward kernel, nothing recorded.
        let weight = to_flex(conv.weight.val());
        let bias = conv.bias.as_ref().map(|b| to_flex(b.val()));
        let output = forward(
            &shape,
            &values(&to_flex(x)),
            &values(&weight),
            bias.as_ref().map(|b| values(b)).as_deref(),
        );
        let dims = [batch, shape.filters, shape.out_height(), shape.out_width()];
        return from_flex(flex_tensor(output, dims));
    }
    if on_cpu_training::<B>() {
        return from_cpu(tracked_conv(
            shape,
            to_cpu(x),
            to_cpu(conv.weight.val()),
            conv.bias.as_ref().map(|b| to_cpu(b.val())),
        ));
    }
    #[cfg(feature = "gpu")]
    let x = match super::gpu::conv2d(
        shape,
        x,
        conv.weight.val(),
        conv.bias.as_ref().map(|b| b.val()),
    ) {
        Ok(y) => return y,
        Err(x) => x,
    };
    conv.forward(x)
}

/// The backward step recorded for one convolution; its state is the input and the weight.
#[derive(Debug)]
struct ConvBackward {
    shape: ConvShape,
}

impl<const N: usize> Backward<Flex, N> for ConvBackward {
    type State = (FlexTensor, FlexTensor);

    fn backward(self, ops: Ops<Self::State, N>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad_out = grads.consume::<Flex>(&ops.node);
        let (x, weight) = ops.state;
        let shape = self.shape;
        let gradients = backward(
            &shape,
            &values(&x),
            &values(&weight),
            &values(&grad_out),
            ops.parents[0].is_some(),
            matches!(ops.parents.get(2), Some(Some(_))),
        );
        if let (Some(node), Some(dx)) = (&ops.parents[0], gradients.x) {
            let dims = [shape.batch, shape.channels, shape.height, shape.width];
            grads.register::<Flex>(node.id, flex_tensor(dx, dims));
        }
        if let Some(node) = &ops.parents[1] {
            let dims = [
                shape.filters,
                shape.channels,
                shape.kernel[0],
                shape.kernel[1],
            ];
            grads.register::<Flex>(node.id, flex_tensor(gradients.weight, dims));
        }
        if let Some(Some(node)) = ops.parents.get(2) {
            grads.register::<Flex>(node.id, flex_tensor(gradients.bias, [shape.filters]));
        }
    }
}

/// The forward pass on the inner tensors, recorded for backward when any input is tracked.
fn tracked_conv(
    shape: ConvShape,
    x: FloatTensor<CpuBackend>,
    weight: FloatTensor<CpuBackend>,
    bias: Option<FloatTensor<CpuBackend>>,
) -> FloatTensor<CpuBackend> {
    let output = {
        let bias_values = bias.as_ref().map(|b| values(&b.primitive).into_owned());
        let y = forward(
            &shape,
            &values(&x.primitive),
            &values(&weight.primitive),
            bias_values.as_deref(),
        );
        flex_tensor(
            y,
            [
                shape.batch,
                shape.filters,
                shape.out_height(),
                shape.out_width(),
            ],
        )
    };
    record_conv(ConvBackward { shape }, &x, &weight, bias.as_ref(), output)
}
