//! A convolution's three products as implicit GEMMs: the column matrix is never laid out; each
//! thread reads the patch values it needs where they lie in the image and keeps a tile of
//! outputs in registers, so that it makes many multiply-adds for each value it loads.
//!
//! - forward, `Y[n, o, p] = Σ_{c, tap} W[o, c, tap] X[n, c, p + tap]`: a thread per block of
//!   filters and tile of output pixels (pixels of the whole batch taken in turn, so no thread
//!   idles at the end of an image); a workgroup shares its filter block, hence every weight it
//!   reads;
//! - input gradient, `dX[n, c, q] = Σ_{o, tap} W[o, c, tap] dY[n, o, q - tap]`: the same with
//!   channels for filters, over the taps whose window covers the pixel;
//! - weight gradient, `dW[o, c, tap] = Σ_{n, p} dY[n, o, p] X[n, c, p + tap]`: a workgroup per
//!   (chunk of the batch's output pixels, filter block, channel), each thread summing a share
//!   of the chunk's pixels for every filter of the block and every tap, the threads' sums then
//!   added in shared memory; the chunks' sums are added afterwards. Splitting the long sum over
//!   the batch's pixels keeps every loop short (a software adapter ends loops after 65,532
//!   iterations) and the GPU's threads busy.
//!
//! Kernel size, stride and tile sizes are compile-time constants of each kernel (a few shaders a
//! model); shapes and padding are read at run time. The tiles are larger on a device whose
//! subgroups are narrow (8 lanes: a CPU's software Vulkan, where every load costs a loop over
//! the lanes and registers spill cheaply to the stack) than on a GPU, where a thread's registers
//! are few: measured with `examples/conv_bench.rs` (docs/gpu.md).

use burn::backend::wgpu::{CubeTensor, WgpuRuntime};
use burn::tensor::{DType, Shape};
use cubecl::prelude::*;
use cubecl::{CubeLaunch, CubeType};

use crate::kernels::shape::ConvShape;

/// The sizes the kernels read at run time.
#[derive(CubeLaunch, CubeType)]
pub struct Geometry {
    batch: usize,
    channels: usize,
    height: usize,
    width: usize,
    filters: usize,
    out_height: usize,
    out_width: usize,
    pad_h: usize,
    pad_w: usize,
}

/// Threads a workgroup.
const WORKGROUP: usize = 64;

/// Floats of a workgroup's shared memory the weight gradient's reduction uses at a time:
/// 16 KiB, WebGPU's smallest guaranteed.
const SHARED_FLOATS: usize = 4096;

/// Output pixels of the batch (images times pixels) a weight-gradient workgroup sums.
const PIXELS_PER_CHUNK: usize = 2048;

fn geometry(shape: &ConvShape) -> GeometryLaunch<WgpuRuntime> {
    GeometryLaunch::new(
        shape.batch,
        shape.channels,
        shape.height,
        shape.width,
        shape.filters,
        shape.out_height(),
        shape.out_width(),
        shape.padding[0],
        shape.padding[1],
    )
}

/// Register tiles for one device class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tiles {
    /// Filters (or channels, for the input gradient) a thread computes at once: at most this.
    pub block: usize,
    /// Pixels a thread computes at once.
    pub pixels: usize,
    /// Channels a weight-gradient thread sums at once (for `block` filters and every tap).
    pub channels: usize,
}

impl Tiles {
    /// A GPU's: 64 sums in registers a thread.
    pub const GPU: Self = Self {
        block: 8,
        pixels: 8,
        channels: 1,
    };
    /// A CPU's software Vulkan's: 256 sums (576 in the weight gradient), which spill to the
    /// stack cheaply, for half the loads a multiply-add or fewer.
    pub const SOFTWARE: Self = Self {
        block: 16,
        pixels: 16,
        channels: 4,
    };

    /// Large tiles where subgroups are 8 lanes or fewer (a CPU's software Vulkan), GPU-sized
    /// ones elsewhere.
    pub fn for_device(tensor: &CubeTensor<WgpuRuntime>) -> Self {
        if tensor.client.properties().hardware.plane_size_max <= 8 {
            Self::SOFTWARE
        } else {
            Self::GPU
        }
    }
}

/// The largest power of two up to `most` that divides `count`.
fn block_of(count: usize, most: usize) -> usize {
    let mut block = most.max(1).next_power_of_two();
    while block > 1 && (block > most || !count.is_multiple_of(block)) {
        block /= 2;
    }
    block
}

/// `Y` for the `block` filters from `CUBE_POS_Y · block` and the `tile` pixels of the batch
/// `first + q · CUBE_DIM_X`, `first` this thread's place in its workgroup's run.
#[cube(launch_unchecked)]
fn forward_kernel<F: Float>(
    x: &Tensor<F>,
    weight: &Tensor<F>,
    bias: &Tensor<F>,
    y: &mut Tensor<F>,
    g: &Geometry,
    #[comptime] block: usize,
    #[comptime] tile: usize,
    #[comptime] kernel_h: usize,
    #[comptime] kernel_w: usize,
    #[comptime] stride_h: usize,
    #[comptime] stride_w: usize,
    #[comptime] has_bias: bool,
) {
    let o0 = CUBE_POS_Y as usize * block;
    let threads = CUBE_DIM_X as usize;
    let first = CUBE_POS_X as usize * threads * tile + UNIT_POS_X as usize;
    let pixels = g.out_height * g.out_width;
    let total = g.batch * pixels;
    // Strides read once: a read of the launch's metadata in the inner loop costs as much as
    // the multiply-adds.
    let (xs0, xs1, xs2, xs3) = (x.stride(0), x.stride(1), x.stride(2), x.stride(3));
    let (ws0, ws1, ws2, ws3) = (
        weight.stride(0),
        weight.stride(1),
        weight.stride(2),
        weight.stride(3),
    );

    // Each pixel's image and its patch's top-left corner in the padded image. A thread's
    // pixels past the batch's last compute the first pixel's values and store nothing, so no
    // load sits behind a branch.
    let mut image = Array::<usize>::new(tile);
    let mut top = Array::<usize>::new(tile);
    let mut left = Array::<usize>::new(tile);
    #[unroll]
    for q in 0..tile {
        let flat = first + q * threads;
        let at = select(flat < total, flat, 0usize);
        let pixel = at % pixels;
        image[q] = (at / pixels) * xs0;
        top[q] = (pixel / g.out_width) * stride_h;
        left[q] = (pixel % g.out_width) * stride_w;
    }
    let mut acc = Array::<F>::new(block * tile);
    #[unroll]
    for k in 0..block * tile {
        acc[k] = F::new(0.0);
    }
    #[unroll]
    for ky in 0..kernel_h {
        #[unroll]
        for kx in 0..kernel_w {
            // Where each pixel's tap reads, and whether it reads the image or the padding.
            let mut at = Array::<usize>::new(tile);
            let mut inside = Array::<bool>::new(tile);
            #[unroll]
            for q in 0..tile {
                let y_in = top[q] + ky;
                let x_in = left[q] + kx;
                let within = y_in >= g.pad_h
                    && y_in < g.height + g.pad_h
                    && x_in >= g.pad_w
                    && x_in < g.width + g.pad_w;
                inside[q] = within;
                at[q] = image[q]
                    + select(
                        within,
                        (y_in - g.pad_h) * xs2 + (x_in - g.pad_w) * xs3,
                        0usize,
                    );
            }
            let tap = o0 * ws0 + ky * ws2 + kx * ws3;
            for c in 0..g.channels {
                let mut value = Array::<F>::new(tile);
                #[unroll]
                for q in 0..tile {
                    value[q] = select(inside[q], x[at[q] + c * xs1], F::new(0.0));
                }
                let w = tap + c * ws1;
                #[unroll]
                for j in 0..block {
                    let wj = weight[w + j * ws0];
                    #[unroll]
                    for q in 0..tile {
                        acc[j * tile + q] += wj * value[q];
                    }
                }
            }
        }
    }
    let bias_stride = bias.stride(0);
    #[unroll]
    for q in 0..tile {
        let flat = first + q * threads;
        if flat < total {
            let out = ((flat / pixels) * g.filters + o0) * pixels + flat % pixels;
            #[unroll]
            for j in 0..block {
                let mut value = acc[j * tile + q];
                if has_bias {
                    value += bias[(o0 + j) * bias_stride];
                }
                y[out + j * pixels] = value;
            }
        }
    }
}

/// `dX` for the `block` channels from `CUBE_POS_Y · block` and a tile of the batch's input
/// pixels, as the forward kernel lays them out.
#[cube(launch_unchecked)]
fn input_gradient_kernel<F: Float>(
    grad_out: &Tensor<F>,
    weight: &Tensor<F>,
    dx: &mut Tensor<F>,
    g: &Geometry,
    #[comptime] block: usize,
    #[comptime] tile: usize,
    #[comptime] kernel_h: usize,
    #[comptime] kernel_w: usize,
    #[comptime] stride_h: usize,
    #[comptime] stride_w: usize,
) {
    let c0 = CUBE_POS_Y as usize * block;
    let threads = CUBE_DIM_X as usize;
    let first = CUBE_POS_X as usize * threads * tile + UNIT_POS_X as usize;
    let plane = g.height * g.width;
    let total = g.batch * plane;
    let (gs0, gs1, gs2, gs3) = (
        grad_out.stride(0),
        grad_out.stride(1),
        grad_out.stride(2),
        grad_out.stride(3),
    );
    let (ws0, ws1, ws2, ws3) = (
        weight.stride(0),
        weight.stride(1),
        weight.stride(2),
        weight.stride(3),
    );

    // Each pixel's image and its place in the padded image.
    let mut image = Array::<usize>::new(tile);
    let mut row = Array::<usize>::new(tile);
    let mut column = Array::<usize>::new(tile);
    #[unroll]
    for q in 0..tile {
        let flat = first + q * threads;
        let at = select(flat < total, flat, 0usize);
        let pixel = at % plane;
        image[q] = (at / plane) * gs0;
        row[q] = pixel / g.width + g.pad_h;
        column[q] = pixel % g.width + g.pad_w;
    }
    let mut acc = Array::<F>::new(block * tile);
    #[unroll]
    for k in 0..block * tile {
        acc[k] = F::new(0.0);
    }
    #[unroll]
    for ky in 0..kernel_h {
        #[unroll]
        for kx in 0..kernel_w {
            // The output pixel whose window puts tap (ky, kx) on each pixel, if any.
            let mut at = Array::<usize>::new(tile);
            let mut reached = Array::<bool>::new(tile);
            #[unroll]
            for q in 0..tile {
                let dy = row[q] - ky;
                let dxx = column[q] - kx;
                let oy = dy / stride_h;
                let ox = dxx / stride_w;
                let hit = row[q] >= ky
                    && column[q] >= kx
                    && dy % stride_h == 0
                    && dxx % stride_w == 0
                    && oy < g.out_height
                    && ox < g.out_width;
                reached[q] = hit;
                at[q] = image[q] + select(hit, oy * gs2 + ox * gs3, 0usize);
            }
            let tap = c0 * ws1 + ky * ws2 + kx * ws3;
            for o in 0..g.filters {
                let mut value = Array::<F>::new(tile);
                #[unroll]
                for q in 0..tile {
                    value[q] = select(reached[q], grad_out[at[q] + o * gs1], F::new(0.0));
                }
                let w = tap + o * ws0;
                #[unroll]
                for j in 0..block {
                    let wj = weight[w + j * ws1];
                    #[unroll]
                    for q in 0..tile {
                        acc[j * tile + q] += wj * value[q];
                    }
                }
            }
        }
    }
    #[unroll]
    for q in 0..tile {
        let flat = first + q * threads;
        if flat < total {
            let out = ((flat / plane) * g.channels + c0) * plane + flat % plane;
            #[unroll]
            for j in 0..block {
                dx[out + j * plane] = acc[j * tile + q];
            }
        }
    }
}

/// A chunk's share of `dW[o0 + j, c0 + i, tap]` for the workgroup's channel block `CUBE_POS_X`,
/// filter block `CUBE_POS_Y` and chunk `CUBE_POS_Z` of the batch's output pixels, written to
/// `partial[chunk, o, c, tap]`.
#[cube(launch_unchecked)]
fn weight_gradient_kernel<F: Float>(
    x: &Tensor<F>,
    grad_out: &Tensor<F>,
    partial: &mut Tensor<F>,
    g: &Geometry,
    rounds: usize,
    #[comptime] block: usize,
    #[comptime] channel_block: usize,
    #[comptime] kernel_h: usize,
    #[comptime] kernel_w: usize,
    #[comptime] stride_h: usize,
    #[comptime] stride_w: usize,
    #[comptime] threads: usize,
    #[comptime] rows_at_once: usize,
) {
    let c0 = CUBE_POS_X as usize * channel_block;
    let o0 = CUBE_POS_Y as usize * block;
    let chunk = CUBE_POS_Z as usize;
    let lane = UNIT_POS_X as usize;
    let taps = kernel_h * kernel_w;
    let sums = block * channel_block * taps;
    let pixels = g.out_height * g.out_width;
    let total = g.batch * pixels;
    let (xs0, xs1, xs2, xs3) = (x.stride(0), x.stride(1), x.stride(2), x.stride(3));
    let (gs0, gs1, gs2, gs3) = (
        grad_out.stride(0),
        grad_out.stride(1),
        grad_out.stride(2),
        grad_out.stride(3),
    );

    let mut acc = Array::<F>::new(sums);
    #[unroll]
    for s in 0..sums {
        acc[s] = F::new(0.0);
    }
    // Every thread runs the same rounds (one past the batch's last pixel adds zeros), so no
    // load sits behind a branch.
    for round in 0..rounds {
        let flat = (chunk * rounds + round) * threads + lane;
        let active = flat < total;
        let at = select(active, flat, 0usize);
        let n = at / pixels;
        let pixel = at % pixels;
        let out_row = pixel / g.out_width;
        let out_column = pixel % g.out_width;
        let grads = n * gs0 + o0 * gs1 + out_row * gs2 + out_column * gs3;
        let mut d = Array::<F>::new(block);
        #[unroll]
        for j in 0..block {
            d[j] = select(active, grad_out[grads + j * gs1], F::new(0.0));
        }
        let image = n * xs0 + c0 * xs1;
        let top = out_row * stride_h;
        let left = out_column * stride_w;
        #[unroll]
        for ky in 0..kernel_h {
            #[unroll]
            for kx in 0..kernel_w {
                let y_in = top + ky;
                let x_in = left + kx;
                let inside = y_in >= g.pad_h
                    && y_in < g.height + g.pad_h
                    && x_in >= g.pad_w
                    && x_in < g.width + g.pad_w;
                let offset = select(
                    inside,
                    (y_in - g.pad_h) * xs2 + (x_in - g.pad_w) * xs3,
                    0usize,
                );
                #[unroll]
                for i in 0..channel_block {
                    let value = select(inside, x[image + i * xs1 + offset], F::new(0.0));
                    #[unroll]
                    for j in 0..block {
                        acc[(j * channel_block + i) * taps + ky * kernel_w + kx] += d[j] * value;
                    }
                }
            }
        }
    }

    // The threads' sums added, `rows_at_once` sums at a time (what shared memory holds).
    let patch = g.channels * taps;
    let base = chunk * g.filters * patch + o0 * patch + c0 * taps;
    let mut shared = SharedMemory::<F>::new(rows_at_once * threads);
    let reduction_rounds = (sums + rows_at_once - 1) / rows_at_once;
    #[unroll]
    for reduction in 0..reduction_rounds {
        let start = reduction * rows_at_once;
        #[unroll]
        for r in 0..rows_at_once {
            if start + r < sums {
                shared[r * threads + lane] = acc[start + r];
            }
        }
        sync_cube();
        let s = start + lane;
        if lane < rows_at_once && s < sums {
            let mut total_sum = F::new(0.0);
            for t in 0..threads {
                total_sum += shared[lane * threads + t];
            }
            // Sum s is filter j's, of channel c0 + s % (channel_block taps) / taps.
            let j = s / (channel_block * taps);
            partial[base + j * patch + s % (channel_block * taps)] = total_sum;
        }
        sync_cube();
    }
}

/// A new contiguous f32 tensor of `shape` on `like`'s device, its values not yet written.
fn empty_like(like: &CubeTensor<WgpuRuntime>, shape: Shape) -> CubeTensor<WgpuRuntime> {
    let bytes = shape.num_elements() * std::mem::size_of::<f32>();
    CubeTensor::new_contiguous(
        like.client.clone(),
        like.device.clone(),
        shape,
        like.client.empty(bytes),
        DType::F32,
    )
}

/// Whether a convolution's pixels fit the kernels' grids (at most 65,535 workgroups along
/// each side).
pub fn fits(shape: &ConvShape) -> bool {
    let widest = Tiles::GPU.pixels.min(Tiles::SOFTWARE.pixels) * WORKGROUP;
    let pixels =
        shape.batch * (shape.height * shape.width).max(shape.out_height() * shape.out_width());
    pixels.div_ceil(widest) <= 65_535 && pixels.div_ceil(PIXELS_PER_CHUNK) <= 65_535
}

/// Workgroups over `count` pixels of the batch, `tile` a thread, one row of them per block.
fn pixel_launch(count: usize, tile: usize, blocks: usize) -> (CubeCount, CubeDim) {
    (
        CubeCount::Static(count.div_ceil(WORKGROUP * tile) as u32, blocks as u32, 1),
        CubeDim::new_1d(WORKGROUP as u32),
    )
}

/// `conv(x, W) (+ b)`, `[N, O, OH, OW]`.
pub fn forward(
    shape: &ConvShape,
    x: CubeTensor<WgpuRuntime>,
    weight: CubeTensor<WgpuRuntime>,
    bias: Option<CubeTensor<WgpuRuntime>>,
    tiles: Tiles,
) -> CubeTensor<WgpuRuntime> {
    let y = empty_like(
        &x,
        Shape::new([
            shape.batch,
            shape.filters,
            shape.out_height(),
            shape.out_width(),
        ]),
    );
    let client = x.client.clone();
    let block = block_of(shape.filters, tiles.block);
    let (cubes, cube_dim) = pixel_launch(
        shape.batch * shape.out_height() * shape.out_width(),
        tiles.pixels,
        shape.filters / block,
    );
    let has_bias = bias.is_some();
    // SAFETY: every read lies inside its tensor (the images' pixels and padding checked, the
    // filter blocks dividing the filters) and every write below the output's size.
    unsafe {
        forward_kernel::launch_unchecked::<f32, WgpuRuntime>(
            &client,
            cubes,
            cube_dim,
            x.into_tensor_arg(),
            weight.clone().into_tensor_arg(),
            // Never read without a bias: the weight stands in for the argument.
            bias.unwrap_or(weight).into_tensor_arg(),
            y.clone().into_tensor_arg(),
            geometry(shape),
            block,
            tiles.pixels,
            shape.kernel[0],
            shape.kernel[1],
            shape.stride[0],
            shape.stride[1],
            has_bias,
        )
    };
    y
}

/// `dX`, `[N, C, H, W]`, from the output's gradient.
pub fn input_gradient(
    shape: &ConvShape,
    grad_out: CubeTensor<WgpuRuntime>,
    weight: CubeTensor<WgpuRuntime>,
    tiles: Tiles,
) -> CubeTensor<WgpuRuntime> {
    let dx = empty_like(
        &grad_out,
        Shape::new([shape.batch, shape.channels, shape.height, shape.width]),
    );
    let client = grad_out.client.clone();
    let block = block_of(shape.channels, tiles.block);
    let (cubes, cube_dim) = pixel_launch(
        shape.batch * shape.height * shape.width,
        tiles.pixels,
        shape.channels / block,
    );
    // SAFETY: as `forward`'s.
    unsafe {
        input_gradient_kernel::launch_unchecked::<f32, WgpuRuntime>(
            &client,
            cubes,
            cube_dim,
            grad_out.into_tensor_arg(),
            weight.into_tensor_arg(),
            dx.clone().into_tensor_arg(),
            geometry(shape),
            block,
            tiles.pixels,
            shape.kernel[0],
            shape.kernel[1],
            shape.stride[0],
            shape.stride[1],
        )
    };
    dx
}

/// The per-chunk sums of `dW`, `[chunks, O, C, kh, kw]`, from the input and the output's
/// gradient; their sum over the chunks is the weight gradient.
pub fn weight_gradient_chunks(
    shape: &ConvShape,
    x: CubeTensor<WgpuRuntime>,
    grad_out: CubeTensor<WgpuRuntime>,
    tiles: Tiles,
) -> CubeTensor<WgpuRuntime> {
    let taps = shape.kernel[0] * shape.kernel[1];
    let client = x.client.clone();
    // As many sums a thread as a 3x3 kernel's tile holds, whatever the kernel's size.
    let most = tiles.block * tiles.channels * 9;
    let channel_block = block_of(shape.channels, tiles.channels.min(most / taps).max(1));
    let block = block_of(
        shape.filters,
        tiles.block.min(most / (taps * channel_block)).max(1),
    );
    // About PIXELS_PER_CHUNK pixels a chunk, shared out evenly (a last chunk of a few pixels
    // would run its threads' rounds on nothing).
    let total = shape.batch * shape.out_height() * shape.out_width();
    let chunks = total.div_ceil(PIXELS_PER_CHUNK).max(1);
    let rounds = total.div_ceil(chunks * WORKGROUP);
    let rows_at_once = (SHARED_FLOATS / WORKGROUP).min(block * channel_block * taps);
    let partial = empty_like(
        &x,
        Shape::new([
            chunks,
            shape.filters,
            shape.channels,
            shape.kernel[0],
            shape.kernel[1],
        ]),
    );
    // SAFETY: every read lies inside its tensor (pixels past the batch's last read its first),
    // and each workgroup writes its own chunk's, block's and channel's sums.
    unsafe {
        weight_gradient_kernel::launch_unchecked::<f32, WgpuRuntime>(
            &client,
            CubeCount::Static(
                (shape.channels / channel_block) as u32,
                (shape.filters / block) as u32,
                chunks as u32,
            ),
            CubeDim::new_1d(WORKGROUP as u32),
            x.into_tensor_arg(),
            grad_out.into_tensor_arg(),
            partial.clone().into_tensor_arg(),
            geometry(shape),
            rounds,
            block,
            channel_block,
            shape.kernel[0],
            shape.kernel[1],
            shape.stride[0],
            shape.stride[1],
            WORKGROUP,
            rows_at_once,
        )
    };
    partial
}
