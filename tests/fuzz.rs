//! Every reader against arbitrary and mutated bytes: npy, IDX (raw and gzip, from files and as
//! a page fetches them), CIFAR-10 and CIFAR-100 binary with its class-name file, image folders
//! (noise, and damaged PNG, JPEG and GIF files under a `.png` name), TOML configs and presets,
//! checkpoints and their folder names, a resumed run's metrics log. Each returns an error that names the
//! file, or (for a harmless mutation) data; none panics. The commands exit with code 2 on the
//! same inputs. Bounded for CI (64 cases a reader); `PROPTEST_CASES=N` runs more.

mod common;
use common::files::gzip;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clamp::augment::AugmentConfig;
use clamp::backend::CpuBackend;
use clamp::config::TrainConfig;
use clamp::data::{
    CifarKind, FASHION_MNIST_CLASSES, Split, idx_pair_from_bytes, load_cifar_dir,
    load_fashion_mnist, load_image_folder, read_cifar_batch, read_idx_images, read_idx_labels,
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
    common::files::temp_dir(&format!(
        "fuzz-{name}-{}",
        NEXT.fetch_add(1, Ordering::Relaxed)
    ))
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

/// Four CIFAR-100 records: coarse label, fine label (below 100), 3,072 pixel bytes.
fn valid_cifar100() -> Vec<u8> {
    (0..4)
        .flat_map(|record| {
            [(record * 3) as u8, (record * 31 % 100) as u8]
                .into_iter()
                .chain((0..3072).map(move |i| ((i * 3 + record) % 253) as u8))
        })
        .collect()
}

/// An image in `format`, as its file's bytes.
fn encoded(width: u32, height: u32, format: image::ImageFormat) -> Vec<u8> {
    let image = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([x as u8 * 20, y as u8 * 30, 99])
    });
    let mut bytes = std::io::Cursor::new(Vec::new());
    image.write_to(&mut bytes, format).unwrap();
    bytes.into_inner()
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
            match read_npy(&path) {
                Err(e) => prop_assert!(names(&e, &path), "{e}"),
                // What is accepted is whole: as many values as its shape says.
                Ok(array) => prop_assert_eq!(array.data.len(), array.shape.iter().product::<usize>()),
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
    type Damage = fn(&Path);
    let cases: [(&str, Damage); 4] = [
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
    let error = read_idx_images(&path).expect_err("refused").to_string();
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

proptest! {
    #![proptest_config(settings())]

    #[test]
    fn cifar100_reader_and_its_class_names(
        mutation in mutation(),
        class_names in prop::collection::vec("[a-z_ ]{0,12}", 0..120),
    ) {
        let dir = scratch("cifar100");
        let valid = valid_cifar100();
        let mutated = mutation.apply(&valid);
        let path = dir.join("mutated.bin");
        std::fs::write(&path, &mutated).unwrap();
        match read_cifar_batch(&path, CifarKind::Cifar100) {
            Err(e) => {
                let e = e.to_string();
                prop_assert!(names(&e, &path), "{e}");
            }
            Ok(set) => {
                // Whole records only, and every fine label one of the hundred classes.
                prop_assert_eq!(mutated.len() % 3074, 0);
                prop_assert_eq!(set.len, mutated.len() / 3074);
                prop_assert_eq!(set.images.len(), set.len * 3072);
                prop_assert!(set.labels.iter().all(|&l| l < 100));
            }
        }
        // A directory: a valid test split beside a class-name file of any lines.
        std::fs::write(dir.join("test.bin"), &valid).unwrap();
        let meta = dir.join("fine_label_names.txt");
        std::fs::write(&meta, class_names.join("\n")).unwrap();
        let counted = class_names.iter().filter(|n| !n.trim().is_empty()).count();
        match load_cifar_dir(&dir, Split::Test) {
            Ok(set) => {
                prop_assert_eq!(counted, 100);
                prop_assert_eq!(set.class_names.len(), 100);
                prop_assert_eq!(set.len, 4);
            }
            Err(e) => {
                let e = e.to_string();
                prop_assert!(counted != 100 && names(&e, &meta), "{e}");
            }
        }
        let _ = std::fs::remove_dir_all(dir);
    }

    /// The page's reader: the two files as bytes, named by their addresses.
    #[test]
    fn idx_pair_from_bytes_as_a_page_fetches_them(
        images_mutation in mutation(),
        labels_mutation in mutation(),
        gzipped in any::<bool>(),
    ) {
        let (images, labels) = (valid_idx_images(), valid_idx_labels());
        let pack = |bytes: Vec<u8>| if gzipped { gzip(&bytes) } else { bytes };
        let (images, labels) = (
            images_mutation.apply(&pack(images)),
            labels_mutation.apply(&pack(labels)),
        );
        let result = idx_pair_from_bytes(
            "https://example.org/images.gz",
            images,
            "https://example.org/labels.gz",
            labels,
            &FASHION_MNIST_CLASSES,
        );
        match result {
            Ok(set) => {
                prop_assert_eq!(set.images.len(), set.len * set.height * set.width);
                prop_assert_eq!(set.labels.len(), set.len);
                prop_assert!(set.labels.iter().all(|&l| (l as usize) < FASHION_MNIST_CLASSES.len()));
            }
            Err(e) => {
                let e = e.to_string();
                prop_assert!(
                    e.contains("https://example.org/images.gz") || e.contains("https://example.org/labels.gz"),
                    "{e}"
                );
            }
        }
    }

    /// Real image formats damaged, and a GIF (or a JPEG) under a `.png` name.
    #[test]
    fn image_folder_reader_on_damaged_real_formats(
        mutation in mutation(),
        format in prop::sample::select(&[image::ImageFormat::Png, image::ImageFormat::Jpeg, image::ImageFormat::Gif][..]),
    ) {
        let dir = scratch("formats");
        std::fs::create_dir_all(dir.join("a")).unwrap();
        std::fs::create_dir_all(dir.join("b")).unwrap();
        std::fs::write(dir.join("a").join("good.png"), png(6, 5)).unwrap();
        // Whatever its real format, it is named .png.
        let damaged = dir.join("b").join("odd.png");
        std::fs::write(&damaged, mutation.apply(&encoded(7, 9, format))).unwrap();
        match load_image_folder(&dir, 8, 8) {
            Ok(set) => {
                prop_assert_eq!(set.len, 2);
                prop_assert_eq!(set.images.len(), 2 * set.channels * 8 * 8);
                prop_assert_eq!(set.labels.clone(), vec![0, 1]);
            }
            Err(e) => {
                let e = e.to_string();
                prop_assert!(names(&e, &damaged), "{e}");
            }
        }
        let _ = std::fs::remove_dir_all(dir);
    }

    /// A resumed run's log, whatever it holds: the lines kept are whole JSON of steps up to the
    /// checkpoint's, in their order, and nothing else.
    #[test]
    fn metrics_log_cut_back_on_resume(lines in prop::collection::vec(prop_oneof![
        (0u64..20).prop_map(|s| format!("{{\"step\": {s}, \"loss\": 1.5}}")),
        ".{0,30}",
        (0u64..20).prop_map(|s| format!("{{\"step\": {s}, \"los")),
    ], 0..30), keep in 0usize..20) {
        let dir = scratch("metrics");
        let path = dir.join("metrics.jsonl");
        std::fs::write(&path, lines.join("\n")).unwrap();
        clamp::cli::train::keep_metrics_up_to(&path, keep).map_err(TestCaseError::fail)?;
        let kept = std::fs::read_to_string(&path).unwrap();
        let expected: Vec<&String> = lines
            .iter()
            .filter(|l| {
                serde_json::from_str::<serde_json::Value>(l)
                    .ok()
                    .and_then(|v| v.get("step").and_then(|s| s.as_u64()))
                    .is_some_and(|s| s as usize <= keep)
            })
            .collect();
        prop_assert_eq!(kept.lines().collect::<Vec<_>>(), expected.iter().map(|s| s.as_str()).collect::<Vec<_>>());
        let _ = std::fs::remove_dir_all(dir);
    }

    /// Checkpoint folder names: only `step-N` (N a number) is a checkpoint, newest first.
    #[test]
    fn checkpoint_folder_names(folders in prop::collection::vec("(step-)?[0-9a-z.-]{0,10}", 0..12)) {
        let run = scratch("names");
        let dir = run.join("checkpoints");
        std::fs::create_dir_all(&dir).unwrap();
        for name in &folders {
            if !name.is_empty() {
                let _ = std::fs::create_dir(dir.join(name));
            }
        }
        let listed = checkpoint::list(&run);
        let mut expected: Vec<(usize, String)> = folders
            .iter()
            .filter(|n| dir.join(n).is_dir())
            .filter_map(|n| n.strip_prefix("step-").and_then(|k| k.parse().ok()).map(|k| (k, n.clone())))
            .collect();
        expected.sort();
        expected.dedup();
        expected.reverse();
        let mut got: Vec<(usize, String)> = listed
            .iter()
            .map(|(k, p)| (*k, p.file_name().unwrap().to_string_lossy().into_owned()))
            .collect();
        // (Two names can parse to the same step, "step-1" and "step-01": both listed.)
        got.sort();
        got.reverse();
        prop_assert_eq!(got, expected);
        prop_assert!(listed.windows(2).all(|w| w[0].0 >= w[1].0));
        // None of these names is an interrupted save's (too short for `.step-N.old-PID`):
        // recovering interrupted saves leaves every one of them.
        let entries = |dir: &Path| -> Vec<String> {
            let mut all: Vec<String> = std::fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            all.sort();
            all
        };
        let before = entries(&dir);
        let _ = checkpoint::recover_interrupted_saves(&run);
        prop_assert_eq!(entries(&dir), before);
        let _ = std::fs::remove_dir_all(run);
    }
}
