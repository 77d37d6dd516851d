//! clamp: Contrastive Learning As Manifold Packing (Zhang, Heeger & Martiniani, NeurIPS 2025),
//! as a library that reads like the paper, a command line, and (feature `viewer`) a live viewer.
//!
//! The core (everything but `viewer`) has no Bevy in it: `loss` and `readout` (the packing and
//! its jamming read-out), `model`, `data` and `augment`, `train` (the steerable loop), `eval`
//! (probes), `simclr` (the comparison loss) and `physics` (jamming of plain soft spheres).

pub mod analyze;
pub mod atomic;
pub mod augment;
pub mod backend;
#[cfg(not(target_arch = "wasm32"))]
pub mod cli;
pub mod compare;
pub mod config;
pub mod data;
pub mod eval;
pub mod kernels;
pub mod limits;
pub mod loss;
pub mod mailbox;
pub mod model;
pub mod npy;
pub mod optim;
pub mod pace;
pub mod page;
pub mod physics;
pub mod pictures;
pub mod progress;
#[cfg(feature = "viewer")]
pub mod projection;
pub mod readout;
pub mod seed;
pub mod simclr;
pub mod train;
#[cfg(feature = "viewer")]
pub mod video;
#[cfg(feature = "viewer")]
pub mod viewer;
