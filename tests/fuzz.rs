//! Every reader against arbitrary and mutated bytes: npy, IDX (raw and gzip), CIFAR binary,
//! image folders, TOML configs and presets, checkpoints. Each returns an error that names the
//! file, or (for a harmless mutation) data; none panics. The commands exit with code 2 on the
//! same inputs. Bounded for CI (64 cases a reader); `PROPTEST_CASES=N` runs more.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clamp::augment::AugmentConfig;
use clamp::backend::CpuBackend;
use clamp::config::TrainConfig;
use clamp::data::{
    CifarKind, Split, load_fashion_mnist, load_image_folder, read_cifar_batch, read_idx_images,
    read_idx_labels,
};
use clamp::npy::{encode_npy_f32, read_npy};
use clamp::train::{Trainer, TrainingData, checkpoint};
use proptest::prelude::*;
use proptest::sample::Index;

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(64)
}

fn settings() -> ProptestConfig {
    ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// A fresh scratch directory per case.
fn scratch(name: &str) -> PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "clamp-fuzz-{name}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Damage to a valid file: bytes replaced at chosen places, then perhaps a cut.
#[derive(Debug, Clone)]
struct Mutation {
    changes: Vec<(Index, u8)>,
    cut: Option<Index>,
}

fn mutation() -> impl Strategy<Value = Mutation> {
    (
        prop::collection::vec((any::<Index>(), any::<u8>()), 0..8),
        prop::option::of(any::<Index>()),
    )
        .prop_map(|(changes, cut)| Mutation { changes, cut })
}

impl Mutation {
    fn apply(&self, valid: &[u8]) -> Vec<u8> {
        let mut bytes = valid.to_vec();
        if bytes.is_empty() {
            return bytes;
        }
        for (at, value) in &self.changes {
            let i = at.index(bytes.len());
            bytes[i] = *value;
        }
        if let Some(cut) = &self.cut {
            bytes.truncate(cut.index(bytes.len()));
        }
        bytes
    }

    /// Whether the result differs from `valid` (a replaced byte may equal the original).
    fn changes_anything(&self, valid: &[u8]) -> bool {
        self.apply(valid) != valid
    }
}

fn arbitrary_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..4096)
}

/// An error must say which file.
fn names(error: &str, path: &Path) -> bool {
    error.contains(&path.display().to_string())
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn valid_npy() -> Vec<u8> {
    let data: Vec<f32> = (0..2 * 3 * 4).map(|i| i as f32 * 0.25).collect();
    encode_npy_f32(&[2, 3, 4], &data)
}

fn valid_idx_images() -> Vec<u8> {
    let (count, rows, cols) = (5u32, 4u32, 4u32);
    let mut bytes = vec![0, 0, 8, 3];
    for n in [count, rows, cols] {
        bytes.extend_from_slice(&n.to_be_bytes());
    }
    bytes.extend((0..count * rows * cols).map(|i| (i * 7) as u8));
    bytes
}

fn valid_idx_labels() -> Vec<u8> {
    let mut bytes = vec![0, 0, 8, 1];
    bytes.extend_from_slice(&5u32.to_be_bytes());
    bytes.extend([0, 1, 2, 3, 4]);
    bytes
}

fn valid_cifar() -> Vec<u8> {
    (0..3)
        .flat_map(|record| {
            std::iter::once(record as u8).chain((0..3072).map(move |i| ((i + record) % 251) as u8))
        })
        .collect()
}

fn png(width: u32, height: u32) -> Vec<u8> {
    let image = image::RgbImage::from_fn(width, height, |x, y| image::Rgb([x as u8, y as u8, 99]));
    let mut bytes = std::io::Cursor::new(Vec::new());
    image.write_to(&mut bytes, image::ImageFormat::Png).unwrap();
    bytes.into_inner()
}

proptest! {
    #![proptest_config(settings())]

    #[test]
    fn npy_reader(mutation in mutation(), noise in arbitrary_bytes()) {
        let dir = scratch("npy");
        let valid = valid_npy();
        for (name, bytes) in [("mutated.npy", mutation.apply(&valid)), ("noise.npy", noise)] {
            let path = dir.join(name);
            std::fs::write(&path, &bytes).unwrap();
            if let Err(e) = read_npy(&path) {
                prop_assert!(names(&e, &path), "{e}");
            }
        }
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn idx_readers_raw_and_gzip(mutation in mutation(), noise in arbitrary_bytes()) {
        let dir = scratch("idx");
        for (valid, is_images) in [(valid_idx_images(), true), (valid_idx_labels(), false)] {
            let mutated = mutation.apply(&valid);
            let inputs = [
                ("raw", mutated.clone()),
                ("gzip-of-mutated", gzip(&mutated)),
                ("mutated-gzip", mutation.apply(&gzip(&valid))),
                ("noise", noise.clone()),
            ];
            for (name, bytes) in inputs {
                let path = dir.join(format!("{name}-{is_images}.idx"));
                std::fs::write(&path, &bytes).unwrap();
                let result = if is_images {
                    read_idx_images(&path).map(|_| ())
                } else {
                    read_idx_labels(&path).map(|_| ())
                };
                if let Err(e) = result {
                    let e = e.to_string();
                    prop_assert!(names(&e, &path), "{e}");
                } else if name == "raw" && mutation.changes.is_empty() && mutated.len() < valid.len() {
                    prop_assert!(false, "a cut IDX file was accepted ({} of {} bytes)", mutated.len(), valid.len());
                }
            }
        }
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn cifar_reader(mutation in mutation(), noise in arbitrary_bytes()) {
        let dir = scratch("cifar");
        let valid = valid_cifar();
        let mutated = mutation.apply(&valid);
        for (name, bytes) in [("mutated.bin", mutated.clone()), ("noise.bin", noise)] {
            let path = dir.join(name);
            std::fs::write(&path, &bytes).unwrap();
            match read_cifar_batch(&path, CifarKind::Cifar10) {
                Err(e) => {
                    let e = e.to_string();
                    prop_assert!(names(&e, &path), "{e}");
                }
                Ok(set) => {
                    // Accepted only when whole records of valid labels remain.
                    prop_assert_eq!(bytes.len() % 3073, 0);
                    prop_assert_eq!(set.len, bytes.len() / 3073);
                }
            }
        }
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn image_folder_reader(mutation in mutation(), noise in arbitrary_bytes()) {
        let dir = scratch("folder");
        let valid = png(6, 5);
        for class in ["boot", "shirt"] {
            std::fs::create_dir_all(dir.join(class)).unwrap();
            std::fs::write(dir.join(class).join("a.png"), &valid).unwrap();
        }
        let damaged = dir.join("shirt").join("b.png");
        std::fs::write(&damaged, mutation.apply(&valid)).unwrap();
        std::fs::write(dir.join("boot").join("noise.jpg"), &noise).unwrap();
        if let Err(e) = load_image_folder(&dir, 8, 8) {
            let e = e.to_string();
            prop_assert!(names(&e, &damaged) || names(&e, &dir.join("boot").join("noise.jpg")), "{e}");
        }
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn config_and_preset_readers(mutation in mutation(), text in ".{0,400}") {
        let dir = scratch("toml");
        let valid = TrainConfig::viewer_default().to_toml();
        let preset_text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/assets/lessons/1-unjamming.toml"
        ))
        .unwrap();
        let inputs = [
            ("config-mutated.toml", mutation.apply(valid.as_bytes())),
            ("preset-mutated.toml", mutation.apply(preset_text.as_bytes())),
            ("text.toml", text.into_bytes()),
        ];
        for (name, bytes) in inputs {
            let path = dir.join(name);
            std::fs::write(&path, &bytes).unwrap();
            if let Err(e) = TrainConfig::from_toml_file(&path) {
                prop_assert!(names(&e, &path), "config: {e}");
            }
            #[cfg(feature = "viewer")]
            if let Err(e) = clamp::viewer::preset::load(&path, &TrainConfig::viewer_default()) {
                prop_assert!(names(&e, &path), "preset: {e}");
            }
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// One checkpoint of a tiny model, made once.
fn checkpoint_fixture() -> &'static (PathBuf, Arc<TrainingData>) {
    static FIXTURE: std::sync::OnceLock<(PathBuf, Arc<TrainingData>)> = std::sync::OnceLock::new();
    FIXTURE.get_or_init(|| {
        let config = TrainConfig {
            batch: 16,
            dim: 4,
            width: 4,
            projector_hidden: 8,
            snapshot_images: 16,
            steps: 2,
            ..TrainConfig::default()
        };
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/fashion-mnist");
        let all = load_fashion_mnist(&dir, Split::Test).unwrap();
        let set = all.subset(&(0..64).collect::<Vec<_>>());
        let data = Arc::new(
            TrainingData::new(
                set.clone(),
                set,
                "fuzz".into(),
                AugmentConfig::default(),
                &config,
            )
            .unwrap(),
        );
        let mut trainer = Trainer::<CpuBackend>::new(config, data.clone(), Default::default());
        trainer.step().unwrap();
        let saved = scratch("checkpoint-fixture").join("step-1");
        checkpoint::save(&trainer, &saved).unwrap();
        (saved, data)
    })
}

proptest! {
    #![proptest_config(settings())]

    #[test]
    fn checkpoint_reader(file in prop::sample::select(&[
        "model.mpk", "optimizer.mpk", "config.toml", "state.json", "manifest.json",
    ][..]), mutation in mutation()) {
        let (valid_dir, data) = checkpoint_fixture();
        let valid = std::fs::read(valid_dir.join(file)).unwrap();
        let changed = mutation.changes_anything(&valid);
        let dir = scratch("checkpoint").join("step-1");
        std::fs::create_dir_all(&dir).unwrap();
        for entry in std::fs::read_dir(valid_dir).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
        }
        let damaged = dir.join(file);
        std::fs::write(&damaged, mutation.apply(&valid)).unwrap();
        // Any change to a file is caught; a manifest changed only in its spacing may still read.
        match checkpoint::verify(&dir) {
            Err(e) => prop_assert!(changed && names(&e, &dir), "{e}"),
            Ok(_) => prop_assert!(!changed || file == "manifest.json", "{file} changed, accepted"),
        }
        if let Err(e) = checkpoint::load::<CpuBackend>(&dir, data.clone(), Default::default()) {
            prop_assert!(names(&e, &dir), "{e}");
        }
        let _ = std::fs::remove_dir_all(dir.parent().unwrap());
    }
}

#[test]
fn image_folders_that_cannot_be_read_are_errors_naming_the_file() {
    let cases: [(&str, fn(&Path)); 4] = [
        ("empty class folder", |dir| {
            std::fs::create_dir_all(dir.join("empty")).unwrap();
        }),
        ("zero-byte image", |dir| {
            std::fs::write(dir.join("boot").join("zero.png"), b"").unwrap();
        }),
        ("image wider than any allowed", |dir| {
            std::fs::write(dir.join("boot").join("wide.png"), png(20_000, 1)).unwrap();
        }),
        ("unreadable file (a dangling link)", |dir| {
            std::os::unix::fs::symlink(dir.join("nowhere"), dir.join("boot").join("gone.png"))
                .unwrap();
        }),
    ];
    for (what, make) in cases {
        let dir = scratch("folder-case");
        std::fs::create_dir_all(dir.join("boot")).unwrap();
        std::fs::write(dir.join("boot").join("a.png"), png(4, 4)).unwrap();
        make(&dir);
        let error = load_image_folder(&dir, 8, 8)
            .err()
            .unwrap_or_else(|| panic!("{what}: accepted"))
            .to_string();
        assert!(names(&error, &dir), "{what}: {error}");
        if what.starts_with("image wider") {
            assert!(
                error.contains("wide.png") && error.contains("limit"),
                "{error}"
            );
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[test]
fn a_gzip_bomb_is_refused_before_it_fills_memory() {
    // 1.1 GiB of zeros compresses to about a megabyte.
    use std::io::Write;
    let dir = scratch("bomb");
    let path = dir.join("bomb-images-idx3-ubyte.gz");
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut header = vec![0, 0, 8, 3];
    for n in [1_500_000u32, 28, 28] {
        header.extend_from_slice(&n.to_be_bytes());
    }
    encoder.write_all(&header).unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..1100 {
        encoder.write_all(&zeros).unwrap();
    }
    std::fs::write(&path, encoder.finish().unwrap()).unwrap();
    let error = read_idx_images(&path).err().expect("refused").to_string();
    assert!(
        names(&error, &path) && error.contains("more than 1 GiB"),
        "{error}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn the_commands_exit_with_code_2_naming_the_damaged_file() {
    let dir = scratch("cli");
    let config = dir.join("bad.toml");
    std::fs::write(&config, "radius_scale = [").unwrap();
    let (code, _, stderr) = common::run_clamp(&["train", "--config", config.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(names(&stderr, &config), "{stderr}");

    let (valid, _) = checkpoint_fixture();
    let damaged = dir.join("step-1");
    std::fs::create_dir_all(&damaged).unwrap();
    for entry in std::fs::read_dir(valid).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), damaged.join(entry.file_name())).unwrap();
    }
    std::fs::write(damaged.join("optimizer.mpk"), b"garbage").unwrap();
    let (code, _, stderr) = common::run_clamp(&["eval", "--checkpoint", damaged.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(names(&stderr, &damaged.join("optimizer.mpk")), "{stderr}");

    let idx = dir.join("idx");
    std::fs::create_dir_all(&idx).unwrap();
    std::fs::write(
        idx.join("train-images-idx3-ubyte"),
        &valid_idx_images()[..30],
    )
    .unwrap();
    std::fs::write(idx.join("train-labels-idx1-ubyte"), valid_idx_labels()).unwrap();
    std::fs::write(idx.join("t10k-images-idx3-ubyte"), valid_idx_images()).unwrap();
    std::fs::write(idx.join("t10k-labels-idx1-ubyte"), valid_idx_labels()).unwrap();
    let (code, _, stderr) = common::run_clamp(&[
        "train",
        "--data",
        idx.to_str().unwrap(),
        "--backend",
        "cpu",
        "--steps",
        "1",
    ]);
    assert_eq!(code, 2);
    assert!(
        names(&stderr, &idx.join("train-images-idx3-ubyte")),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(dir);
}
