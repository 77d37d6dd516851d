//! The network: an encoder (backbone) whose features are probed, and a projector MLP whose
//! outputs are packed by the CLAMP loss. As the reference: the projector is Linear + ReLU with no
//! batch norm; the encoder is a CIFAR-style ResNet-18 (3x3 stem, no max-pool) or, for the live
//! demo, a small CNN of conv / batch-norm / ReLU blocks; the live viewer's default on a CPU is a
//! one-layer MLP on the pixels, cheap enough to train ten times a second beside a renderer.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::Tensor;
use burn::tensor::activation::relu;
use burn::tensor::backend::Backend;
use serde::{Deserialize, Serialize};

use crate::kernels::{
    adaptive_avg_pool, batch_norm_relu_training, batch_norm_training, conv_pool_relu, conv2d,
    max_pool_2x2,
};

/// Which backbone to build.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum EncoderKind {
    /// Three conv blocks (width, 2x width, 4x width), max-pooling between them: fast on a CPU.
    SmallCnn,
    /// CIFAR-style ResNet-18: 3x3 stem, no max-pool, four stages of two basic blocks.
    Resnet18,
    /// The pixels flattened into one hidden layer of `width` units (Linear + ReLU): with the
    /// projector, an MLP pixels -> width -> projector_hidden -> d. Made for watching: a step
    /// costs a few GEMMs.
    Mlp,
}

/// Shape of the network.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    pub encoder: EncoderKind,
    /// Input channels (1 for Fashion-MNIST, 3 for CIFAR).
    pub channels: usize,
    /// Input pixels per channel (height x width; the MLP's input is channels x pixels).
    pub pixels: usize,
    /// Channels of the first conv block (small CNN) or stage (ResNet-18: 64 in the reference).
    pub width: usize,
    /// Hidden width of the projector MLP.
    pub projector_hidden: usize,
    /// Embedding dimension d, the space the spheres are packed in.
    pub embedding_dim: usize,
}

/// Batch normalisation of `[N, C, H, W]` maps with the parameters and semantics of burn's
/// `BatchNorm` (batch statistics and a running-average update while autodiff is on, the running
/// statistics otherwise), so checkpoints keep burn's record layout. Training on the CPU backend
/// goes through [`crate::kernels::norm::batch_norm_training`] (one recorded op, statistics in
/// f64). Elsewhere it differs from burn's in how it broadcasts: burn's broadcasts
/// `[1, C, 1, 1]` tensors over all four axes, about 8x slower on the CPU than a broadcast along
/// one axis; here the maps are viewed as `[N * C, H * W]` rows and every per-channel value as
/// an `[N * C, 1]` column.
pub fn batch_norm<B: Backend>(norm: &BatchNorm<B>, maps: Tensor<B, 4>) -> Tensor<B, 4> {
    let device = maps.device();
    let [n, c, h, w] = maps.dims();
    let column = |per_channel: Tensor<B, 1>| {
        per_channel
            .reshape([1, c])
            .expand([n, c])
            .reshape([n * c, 1])
    };
    let channel_mean = |rows: Tensor<B, 2>| {
        rows.sum_dim(1)
            .reshape([n, c])
            .sum_dim(0)
            .reshape([c])
            .div_scalar((n * h * w) as f64)
    };
    let normalize = |centered: Tensor<B, 2>, var: Tensor<B, 1>| {
        let scale = norm.gamma.val() / var.add_scalar(norm.epsilon).sqrt();
        (centered * column(scale) + column(norm.beta.val())).reshape([n, c, h, w])
    };
    if B::ad_enabled(&device) {
        // The CPU training backend has a kernel of its own (src/kernels/norm.rs).
        let maps = match batch_norm_training(maps, norm.gamma.val(), norm.beta.val(), norm.epsilon)
        {
            Ok((normalized, mean, var)) => {
                update_running_statistics(norm, mean, var);
                return normalized;
            }
            Err(maps) => maps,
        };
        let rows = maps.reshape([n * c, h * w]);
        let mean = channel_mean(rows.clone());
        let centered = rows - column(mean.clone());
        let var = channel_mean(centered.clone().square());
        update_running_statistics(norm, mean, var.clone());
        return normalize(centered, var);
    }
    let rows = maps.reshape([n * c, h * w]);
    let mean = norm.running_mean.value().to_device(&device);
    normalize(
        rows - column(mean),
        norm.running_var.value().to_device(&device),
    )
}

/// Blends a training batch's statistics into the running ones, as burn's `BatchNorm` does.
fn update_running_statistics<B: Backend>(
    norm: &BatchNorm<B>,
    mean: Tensor<B, 1>,
    var: Tensor<B, 1>,
) {
    for (state, batch) in [(&norm.running_mean, mean), (&norm.running_var, var)] {
        let blended = state
            .value_sync()
            .to_device(&batch.device())
            .mul_scalar(1.0 - norm.momentum)
            .add(batch.detach().mul_scalar(norm.momentum));
        state.update(blended.detach());
    }
}

/// `relu(batch_norm(maps))`, 2x2 max-pooled before the ReLU when `pool`: one operation while
/// training on the CPU backend (src/kernels/norm_pool.rs), the layers one by one elsewhere.
pub fn batch_norm_relu<B: Backend>(
    norm: &BatchNorm<B>,
    maps: Tensor<B, 4>,
    pool: bool,
) -> Tensor<B, 4> {
    let maps = if B::ad_enabled(&maps.device()) {
        match batch_norm_relu_training(maps, norm.gamma.val(), norm.beta.val(), norm.epsilon, pool)
        {
            Ok((output, mean, var)) => {
                update_running_statistics(norm, mean, var);
                return output;
            }
            Err(maps) => maps,
        }
    } else {
        maps
    };
    let normalized = batch_norm(norm, maps);
    relu(if pool {
        max_pool_2x2(normalized)
    } else {
        normalized
    })
}

/// conv 3x3 -> batch norm (optional) -> ReLU.
#[derive(Module, Debug)]
pub struct ConvBlock<B: Backend> {
    conv: Conv2d<B>,
    norm: Option<BatchNorm<B>>,
}

impl<B: Backend> ConvBlock<B> {
    fn new(input: usize, output: usize, stride: usize, device: &B::Device) -> Self {
        Self::with_norm(input, output, stride, true, device)
    }

    fn with_norm(
        input: usize,
        output: usize,
        stride: usize,
        norm: bool,
        device: &B::Device,
    ) -> Self {
        Self {
            conv: Conv2dConfig::new([input, output], [3, 3])
                .with_stride([stride, stride])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .with_bias(!norm)
                .init(device),
            norm: norm.then(|| BatchNormConfig::new(output).init(device)),
        }
    }

    fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        self.forward_pooled(x, false)
    }

    /// The block, 2x2 max-pooled when `pool`. The pooling comes before the ReLU: both are
    /// monotone, so the values and gradients are those of pooling after it, for a quarter of
    /// the ReLU's work.
    fn forward_pooled(&self, x: Tensor<B, 4>, pool: bool) -> Tensor<B, 4> {
        match (&self.norm, pool) {
            (Some(norm), _) => batch_norm_relu(norm, conv2d(&self.conv, x), pool),
            (None, true) => conv_pool_relu(&self.conv, x),
            (None, false) => relu(conv2d(&self.conv, x)),
        }
    }
}

/// The small CNN: three conv blocks, 2x2 max-pooling after the first two. The first block, at
/// full resolution, has no batch norm: it would normalise more values than the other two blocks
/// together, and a single-channel input needs little normalising.
#[derive(Module, Debug)]
pub struct SmallCnn<B: Backend> {
    blocks: Vec<ConvBlock<B>>,
}

impl<B: Backend> SmallCnn<B> {
    fn new(channels: usize, width: usize, device: &B::Device) -> Self {
        let widths = [channels, width, 2 * width, 4 * width];
        let blocks = widths
            .windows(2)
            .enumerate()
            .map(|(i, w)| ConvBlock::with_norm(w[0], w[1], 1, i > 0, device))
            .collect();
        Self { blocks }
    }

    fn forward(&self, mut x: Tensor<B, 4>) -> Tensor<B, 4> {
        let last = self.blocks.len() - 1;
        for (i, block) in self.blocks.iter().enumerate() {
            x = block.forward_pooled(x, i < last);
        }
        x
    }
}

/// ResNet basic block: two 3x3 convs with a (projected when the shape changes) shortcut.
#[derive(Module, Debug)]
pub struct BasicBlock<B: Backend> {
    first: ConvBlock<B>,
    second_conv: Conv2d<B>,
    second_norm: BatchNorm<B>,
    shortcut: Option<(Conv2d<B>, BatchNorm<B>)>,
}

impl<B: Backend> BasicBlock<B> {
    fn new(input: usize, output: usize, stride: usize, device: &B::Device) -> Self {
        let shortcut = (stride != 1 || input != output).then(|| {
            (
                Conv2dConfig::new([input, output], [1, 1])
                    .with_stride([stride, stride])
                    .with_bias(false)
                    .init(device),
                BatchNormConfig::new(output).init(device),
            )
        });
        Self {
            first: ConvBlock::new(input, output, stride, device),
            second_conv: Conv2dConfig::new([output, output], [3, 3])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .with_bias(false)
                .init(device),
            second_norm: BatchNormConfig::new(output).init(device),
            shortcut,
        }
    }

    fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let residual = match &self.shortcut {
            Some((conv, norm)) => batch_norm(norm, conv2d(conv, x.clone())),
            None => x.clone(),
        };
        let y = batch_norm(
            &self.second_norm,
            conv2d(&self.second_conv, self.first.forward(x)),
        );
        relu(y + residual)
    }
}

/// CIFAR-style ResNet-18.
#[derive(Module, Debug)]
pub struct ResNet18<B: Backend> {
    stem: ConvBlock<B>,
    blocks: Vec<BasicBlock<B>>,
}

impl<B: Backend> ResNet18<B> {
    fn new(channels: usize, width: usize, device: &B::Device) -> Self {
        let mut blocks = Vec::new();
        let mut input = width;
        for (stage, multiplier) in [1, 2, 4, 8].into_iter().enumerate() {
            let output = width * multiplier;
            let stride = if stage == 0 { 1 } else { 2 };
            blocks.push(BasicBlock::new(input, output, stride, device));
            blocks.push(BasicBlock::new(output, output, 1, device));
            input = output;
        }
        Self {
            stem: ConvBlock::new(channels, width, 1, device),
            blocks,
        }
    }

    fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        self.blocks
            .iter()
            .fold(self.stem.forward(x), |x, block| block.forward(x))
    }
}

/// Side of the pooling grid of the small CNN's features.
const SMALL_CNN_GRID: usize = 2;

/// Backbone: exactly one of the three is present.
#[derive(Module, Debug)]
pub struct Encoder<B: Backend> {
    small_cnn: Option<SmallCnn<B>>,
    resnet18: Option<ResNet18<B>>,
    mlp: Option<Linear<B>>,
}

impl<B: Backend> Encoder<B> {
    /// Features `[N, feature_dim]`: the small CNN's last maps averaged onto a 2x2 grid (a
    /// little layout survives, which the linear probe uses), ResNet-18's globally averaged, the
    /// MLP's hidden units.
    pub fn forward(&self, images: Tensor<B, 4>) -> Tensor<B, 2> {
        if let Some(hidden) = &self.mlp {
            let [n, c, h, w] = images.dims();
            return relu(hidden.forward(images.reshape([n, c * h * w])));
        }
        let (maps, grid) = match (&self.small_cnn, &self.resnet18) {
            (Some(cnn), _) => (cnn.forward(images), SMALL_CNN_GRID),
            (None, Some(resnet)) => (resnet.forward(images), 1),
            (None, None) => unreachable!("an encoder always holds one backbone"),
        };
        let [n, c, _, _] = maps.dims();
        adaptive_avg_pool(maps, [grid, grid]).reshape([n, c * grid * grid])
    }
}

/// The projector: Linear -> ReLU -> Linear, no batch norm (as the reference).
#[derive(Module, Debug)]
pub struct Projector<B: Backend> {
    hidden: Linear<B>,
    output: Linear<B>,
}

impl<B: Backend> Projector<B> {
    pub fn forward(&self, features: Tensor<B, 2>) -> Tensor<B, 2> {
        self.output.forward(relu(self.hidden.forward(features)))
    }
}

/// Encoder + projector.
#[derive(Module, Debug)]
pub struct ClampModel<B: Backend> {
    pub encoder: Encoder<B>,
    pub projector: Projector<B>,
}

static INIT_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl ModelConfig {
    /// How many values per image the longest sum of a WGPU training step adds up in one
    /// workgroup: a batch-norm statistic of a conv encoder (ResNet's stem normalises every
    /// pixel of every image); the MLP's sums run over the batch's rows, one per image.
    pub fn longest_sum_per_image(&self) -> usize {
        match self.encoder {
            EncoderKind::SmallCnn | EncoderKind::Resnet18 => self.pixels,
            EncoderKind::Mlp => 1,
        }
    }

    /// Dimension of the encoder features (what the probes see).
    pub fn feature_dim(&self) -> usize {
        match self.encoder {
            EncoderKind::SmallCnn => 4 * self.width * SMALL_CNN_GRID * SMALL_CNN_GRID,
            EncoderKind::Resnet18 => 8 * self.width,
            EncoderKind::Mlp => self.width,
        }
    }

    /// A model whose weights are drawn from `seed`, the same on every backend: they are drawn
    /// on the CPU backend and copied to `device` (each backend's own generator would draw
    /// others, and a run on the GPU would not start where the same run on the CPU does).
    pub fn init<B: Backend>(&self, seed: u64, device: &B::Device) -> ClampModel<B> {
        use burn::record::{FullPrecisionSettings, NamedMpkBytesRecorder, Recorder};
        // burn's initialisers share one process-wide generator per backend: it is held from
        // seeding to the last draw (the skeleton below included, whose layers may draw when
        // built), so models built on other threads at the same time cannot interleave their
        // draws and change these weights.
        let _guard = INIT_LOCK
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        type Host = burn::backend::Flex;
        let host_device = Default::default();
        Host::seed(&host_device, seed);
        let host = self.build::<Host>(&host_device);
        let recorder = NamedMpkBytesRecorder::<FullPrecisionSettings>::new();
        // Recording draws every lazily initialised parameter, under the lock.
        let bytes = recorder
            .record(host.into_record(), ())
            .expect("a model's record encodes");
        let record = recorder
            .load(bytes, device)
            .expect("a record just encoded decodes");
        self.build::<B>(device).load_record(record)
    }

    /// The model's structure, its parameters not yet drawn.
    fn build<B: Backend>(&self, device: &B::Device) -> ClampModel<B> {
        let encoder = match self.encoder {
            EncoderKind::SmallCnn => Encoder {
                small_cnn: Some(SmallCnn::new(self.channels, self.width, device)),
                resnet18: None,
                mlp: None,
            },
            EncoderKind::Resnet18 => Encoder {
                small_cnn: None,
                resnet18: Some(ResNet18::new(self.channels, self.width, device)),
                mlp: None,
            },
            EncoderKind::Mlp => Encoder {
                small_cnn: None,
                resnet18: None,
                mlp: Some(LinearConfig::new(self.channels * self.pixels, self.width).init(device)),
            },
        };
        let projector = Projector {
            hidden: LinearConfig::new(self.feature_dim(), self.projector_hidden).init(device),
            output: LinearConfig::new(self.projector_hidden, self.embedding_dim).init(device),
        };
        ClampModel { encoder, projector }
    }
}

impl<B: Backend> ClampModel<B> {
    /// Embeddings `[N, d]` of images `[N, C, H, W]`.
    pub fn embed(&self, images: Tensor<B, 4>) -> Tensor<B, 2> {
        self.projector.forward(self.encoder.forward(images))
    }

    /// Projector outputs of `views` (`[m, B, C, H, W]` flattened to `[m * B, C, H, W]`), shaped
    /// `[m, B, d]` for the loss.
    pub fn project_views(&self, views: Tensor<B, 4>, view_count: usize) -> Tensor<B, 3> {
        let n = views.dims()[0];
        let embeddings = self.embed(views);
        let d = embeddings.dims()[1];
        embeddings.reshape([view_count, n / view_count, d])
    }
}
