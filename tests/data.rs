//! Dataset readers: exact round trips through hand-written files, every corrupt case, and the
//! bundled Fashion-MNIST test split checked against independently computed values.

use std::path::{Path, PathBuf};

use clamp::data::*;

mod common;
use common::files::{gzip, temp_dir};

/// IDX image file bytes, built by hand: magic 0x00000803, count, rows, cols (big-endian), pixels.
fn idx_images(count: u32, rows: u32, cols: u32, pixels: &[u8]) -> Vec<u8> {
    let mut bytes = vec![0, 0, 8, 3];
    for dim in [count, rows, cols] {
        bytes.extend_from_slice(&dim.to_be_bytes());
    }
    bytes.extend_from_slice(pixels);
    bytes
}

/// IDX label file bytes: magic 0x00000801, count, labels.
fn idx_labels(labels: &[u8]) -> Vec<u8> {
    let mut bytes = vec![0, 0, 8, 1];
    bytes.extend_from_slice(&(labels.len() as u32).to_be_bytes());
    bytes.extend_from_slice(labels);
    bytes
}

fn write(path: &Path, bytes: &[u8]) -> PathBuf {
    std::fs::write(path, bytes).unwrap();
    path.to_path_buf()
}

/// 3 images of 2x3: pixel value = 10 * image + position, so any shift or transpose shows.
fn three_images() -> Vec<u8> {
    (0..3u8)
        .flat_map(|i| (0..6u8).map(move |p| 10 * i + p))
        .collect()
}

fn err_text<T: std::fmt::Debug>(result: Result<T, DataError>) -> String {
    result.expect_err("expected an error").to_string()
}

#[test]
fn idx_round_trip_raw_and_gzip() {
    let dir = temp_dir("idx-round-trip");
    let pixels = three_images();
    let labels = [2u8, 0, 1];
    for gz in [false, true] {
        let pack = |b: Vec<u8>| if gz { gzip(&b) } else { b };
        let suffix = if gz { ".gz" } else { "" };
        let images_path = write(
            &dir.join(format!("img{suffix}")),
            &pack(idx_images(3, 2, 3, &pixels)),
        );
        let labels_path = write(
            &dir.join(format!("lab{suffix}")),
            &pack(idx_labels(&labels)),
        );

        let (count, rows, cols, read) = read_idx_images(&images_path).unwrap();
        assert_eq!((count, rows, cols), (3, 2, 3));
        assert_eq!(read, pixels);
        assert_eq!(read_idx_labels(&labels_path).unwrap(), labels);

        let set = load_idx_pair(&images_path, &labels_path, &["a", "b", "c"]).unwrap();
        assert_eq!((set.len, set.channels, set.height, set.width), (3, 1, 2, 3));
        assert_eq!(set.image(1), &[10, 11, 12, 13, 14, 15]);
        assert_eq!(set.labels, vec![2, 0, 1]);
        assert_eq!(set.class_names, vec!["a", "b", "c"]);
        assert_eq!(set.class_counts(), vec![1, 1, 1]);
        assert_eq!(set.to_f32(2)[5], 25.0 / 255.0);
        let sub = set.subset(&[2, 0]);
        assert_eq!(sub.images, [&pixels[12..18], &pixels[0..6]].concat());
        assert_eq!(sub.labels, vec![1, 2]);
    }
}

#[test]
fn gzip_is_detected_by_content_not_by_name() {
    let dir = temp_dir("idx-magic-detect");
    let pixels = three_images();
    let gz_without_extension = write(
        &dir.join("images.bin"),
        &gzip(&idx_images(3, 2, 3, &pixels)),
    );
    let raw_with_gz_extension = write(&dir.join("images.gz"), &idx_images(3, 2, 3, &pixels));
    assert_eq!(read_idx_images(gz_without_extension).unwrap().3, pixels);
    assert_eq!(read_idx_images(raw_with_gz_extension).unwrap().3, pixels);
}

#[test]
fn corrupt_idx_files_are_errors_that_name_the_file_and_the_problem() {
    let dir = temp_dir("idx-corrupt");
    let pixels = three_images();
    let good_images = write(&dir.join("good-images"), &idx_images(3, 2, 3, &pixels));
    let good_labels = write(&dir.join("good-labels"), &idx_labels(&[0, 1, 2]));

    let bad_magic = write(&dir.join("bad-magic-images"), &idx_labels(&[0, 1, 2]));
    let text = err_text(read_idx_images(&bad_magic));
    assert!(
        text.contains("bad-magic-images") && text.contains("bad magic"),
        "{text}"
    );
    assert!(
        text.contains("0x00000801") && text.contains("0x00000803"),
        "{text}"
    );

    // One pixel short: 16-byte header + 18 pixels expected, 16 + 17 found.
    let short_images = write(
        &dir.join("short-images"),
        &idx_images(3, 2, 3, &pixels[..17]),
    );
    let text = err_text(read_idx_images(&short_images));
    assert!(
        text.contains("short-images") && text.contains("truncated"),
        "{text}"
    );
    assert!(text.contains("expected 34 bytes, found 33"), "{text}");

    let mut short = idx_labels(&[0, 1, 2]);
    short.pop();
    let short_labels = write(&dir.join("short-labels"), &short);
    let text = err_text(read_idx_labels(&short_labels));
    assert!(
        text.contains("short-labels") && text.contains("expected 11 bytes, found 10"),
        "{text}"
    );

    let header_only = write(&dir.join("tiny-images"), &[0, 0, 8, 3, 0, 0]);
    let text = err_text(read_idx_images(&header_only));
    assert!(
        text.contains("tiny-images") && text.contains("truncated IDX header"),
        "{text}"
    );

    let two_labels = write(&dir.join("two-labels"), &idx_labels(&[0, 1]));
    let text = err_text(load_idx_pair(&good_images, &two_labels, &["a", "b", "c"]));
    assert!(
        text.contains("good-images") && text.contains("two-labels"),
        "{text}"
    );
    assert!(
        text.contains("3 images") && text.contains("2 labels"),
        "{text}"
    );

    let text = err_text(load_idx_pair(&good_images, &good_labels, &["a", "b"]));
    assert!(
        text.contains("good-labels") && text.contains("label 2 at index 2"),
        "{text}"
    );

    let mut garbage = vec![0x1f, 0x8b];
    garbage.extend_from_slice(b"this is not deflate data at all");
    let garbage_gz = write(&dir.join("garbage.gz"), &garbage);
    let text = err_text(read_idx_images(&garbage_gz));
    assert!(
        text.contains("garbage.gz") && text.contains("gzip"),
        "{text}"
    );

    let text = err_text(read_idx_labels(dir.join("no-such-file")));
    assert!(
        text.contains("no-such-file") && text.contains("I/O error"),
        "{text}"
    );
}

fn bundled_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(BUNDLED_FASHION_MNIST_DIR)
}

#[test]
fn bundled_fashion_mnist_test_split() {
    let set = load_fashion_mnist(bundled_dir(), Split::Test).unwrap();
    assert_eq!(
        (set.len, set.channels, set.height, set.width),
        (10_000, 1, 28, 28)
    );
    assert_eq!(set.images.len(), 10_000 * 784);
    assert_eq!(set.class_counts(), vec![1000; 10]);
    assert_eq!(set.class_names[0], "T-shirt/top");
    assert_eq!(set.class_names[9], "Ankle boot");
    // Reference values computed independently with Python (gzip + struct), not with this crate:
    //   d = gzip.open('t10k-images-idx3-ubyte.gz').read(); sum(d[16:16+784])  -> 33456
    //   sum(d[16+9999*784:])  -> 24390;  sum(d[16:])  -> 573469082
    //   l = gzip.open('t10k-labels-idx1-ubyte.gz').read(); list(l[8:18]) -> [9,2,1,1,6,1,4,6,5,7]
    let sum = |bytes: &[u8]| bytes.iter().map(|&p| p as u64).sum::<u64>();
    assert_eq!(sum(set.image(0)), 33456);
    assert_eq!(sum(set.image(9999)), 24390);
    assert_eq!(sum(&set.images), 573_469_082);
    assert_eq!(set.labels[..10], [9, 2, 1, 1, 6, 1, 4, 6, 5, 7]);

    // The bundle has no train split: the error names the directory and the missing files.
    let text = err_text(load_fashion_mnist(bundled_dir(), Split::Train));
    assert!(
        text.contains("fashion-mnist") && text.contains("train-images-idx3-ubyte"),
        "{text}"
    );
}

#[test]
fn toy_takes_the_first_image_of_each_class() {
    let set = ImageSet {
        images: vec![10, 20, 30, 40, 50],
        labels: vec![1, 0, 1, 2, 0],
        len: 5,
        channels: 1,
        height: 1,
        width: 1,
        class_names: vec!["a".into(), "b".into(), "c".into()],
        source: "test".into(),
    };
    let toy = toy_dataset(&set);
    assert_eq!(toy.len, 3);
    assert_eq!(toy.images, vec![20, 10, 40]);
    assert_eq!(toy.labels, vec![0, 1, 2]);
}

/// A CIFAR record: label byte(s) then 3072 pixels, value (seed + position) mod 256.
fn cifar_record(labels: &[u8], seed: u8) -> Vec<u8> {
    let mut record = labels.to_vec();
    record.extend((0..3072usize).map(|p| seed.wrapping_add(p as u8)));
    record
}

#[test]
fn cifar_round_trip_and_truncation() {
    let dir = temp_dir("cifar");
    let bytes = [cifar_record(&[7], 1), cifar_record(&[3], 100)].concat();
    let batch = write(&dir.join("data_batch_1.bin"), &bytes);
    let set = read_cifar_batch(&batch, CifarKind::Cifar10).unwrap();
    assert_eq!(
        (set.len, set.channels, set.height, set.width),
        (2, 3, 32, 32)
    );
    assert_eq!(set.labels, vec![7, 3]);
    assert_eq!(set.image(1), &cifar_record(&[3], 100)[1..]);
    assert_eq!(set.image(0)[1024], 1u8.wrapping_add(1024usize as u8)); // first green pixel
    assert_eq!(set.class_names[7], "class 7");

    // CIFAR-100: coarse label first, fine label second; the fine one is used.
    let hundred = write(
        &dir.join("c100.bin"),
        &[cifar_record(&[4, 42], 0), cifar_record(&[19, 99], 5)].concat(),
    );
    let set = read_cifar_batch(&hundred, CifarKind::Cifar100).unwrap();
    assert_eq!(set.labels, vec![42, 99]);
    assert_eq!(set.num_classes(), 100);

    let short = write(&dir.join("short_batch.bin"), &bytes[..bytes.len() - 10]);
    let text = err_text(read_cifar_batch(&short, CifarKind::Cifar10));
    assert!(
        text.contains("short_batch.bin") && text.contains("record 1"),
        "{text}"
    );
    assert!(text.contains("expected 3073 bytes, found 3063"), "{text}");

    let bad_label = write(&dir.join("bad_label.bin"), &cifar_record(&[10], 0));
    let text = err_text(read_cifar_batch(&bad_label, CifarKind::Cifar10));
    assert!(
        text.contains("bad_label.bin") && text.contains("label 10"),
        "{text}"
    );

    // A directory: train batches, test batch and class names.
    write(&dir.join("data_batch_2.bin"), &cifar_record(&[5], 9));
    write(&dir.join("test_batch.bin"), &cifar_record(&[0], 0));
    let names: String = (0..10).map(|i| format!("name{i}\n")).collect();
    write(
        &dir.join("batches.meta.txt"),
        format!("{names}\n").as_bytes(),
    );
    std::fs::remove_file(&short).unwrap();
    std::fs::remove_file(&bad_label).unwrap();
    std::fs::remove_file(&hundred).unwrap();
    let train = load_cifar_dir(&dir, Split::Train).unwrap();
    assert_eq!(train.labels, vec![7, 3, 5]);
    assert_eq!(train.class_names[5], "name5");
    assert_eq!(load_cifar_dir(&dir, Split::Test).unwrap().len, 1);
    let choice = resolve_dataset_from(Some(dir.to_str().unwrap()), None).unwrap();
    assert_eq!(
        choice.train,
        DataSource::Cifar {
            dir: dir.clone(),
            split: Split::Train
        }
    );
    assert_eq!(
        choice.test,
        DataSource::Cifar {
            dir: dir.clone(),
            split: Split::Test
        }
    );
}

fn save_png(path: &Path, width: u32, height: u32, rgb: [u8; 3]) {
    image::RgbImage::from_pixel(width, height, image::Rgb(rgb))
        .save(path)
        .unwrap();
}

#[test]
fn image_folder_two_classes() {
    let dir = temp_dir("folder");
    // Created in reverse order: class names and labels must follow the sorted folder names.
    for (class, colour) in [("zebra", [200, 100, 0]), ("ant", [1, 2, 3])] {
        std::fs::create_dir_all(dir.join(class)).unwrap();
        save_png(&dir.join(class).join("b.png"), 4, 4, colour);
        save_png(&dir.join(class).join("a.PNG"), 6, 2, colour);
    }
    // A grayscale PNG becomes three equal channels.
    image::GrayImage::from_pixel(4, 4, image::Luma([77]))
        .save(dir.join("ant").join("c.png"))
        .unwrap();
    std::fs::write(dir.join("ant").join("notes.txt"), "ignored").unwrap();

    let set = load_image_folder(&dir, 4, 4).unwrap();
    assert_eq!(set.class_names, vec!["ant", "zebra"]);
    assert_eq!(set.labels, vec![0, 0, 0, 1, 1]);
    assert_eq!((set.len, set.channels, set.height, set.width), (5, 3, 4, 4));
    // CHW: the red plane (16 bytes) comes first, then green, then blue.
    let zebra = set.image(4);
    assert!(zebra[..16].iter().all(|&p| p == 200) && zebra[16..32].iter().all(|&p| p == 100));
    assert!(zebra[32..].iter().all(|&p| p == 0));
    assert!(
        set.image(0)[..16].iter().all(|&p| p == 1),
        "resized solid colour stays solid"
    );
    assert!(set.image(2).iter().all(|&p| p == 77));

    std::fs::write(dir.join("zebra").join("broken.png"), b"not a png").unwrap();
    let text = err_text(load_image_folder(&dir, 4, 4));
    assert!(
        text.contains("broken.png") && text.contains("unreadable image"),
        "{text}"
    );

    let empty = temp_dir("folder-empty");
    let text = err_text(load_image_folder(&empty, 32, 32));
    assert!(
        text.contains("folder-empty") && text.contains("empty folder"),
        "{text}"
    );
}

#[test]
fn resolution_order_and_directory_detection() {
    let idx_dir = temp_dir("resolve-mnist");
    write(
        &idx_dir.join("t10k-images-idx3-ubyte.gz"),
        &gzip(&idx_images(3, 2, 3, &three_images())),
    );
    write(
        &idx_dir.join("t10k-labels-idx1-ubyte"),
        &idx_labels(&[0, 1, 2]),
    );
    let other_dir = temp_dir("resolve-other");
    std::fs::create_dir_all(other_dir.join("only")).unwrap();
    save_png(&other_dir.join("only").join("x.png"), 2, 2, [9, 9, 9]);

    // A test-only IDX directory: train and evaluate on the same split, and say so.
    let choice = resolve_dataset_from(Some(idx_dir.to_str().unwrap()), None).unwrap();
    assert_eq!(choice.train, choice.test);
    assert!(
        choice.description.contains("same images"),
        "{}",
        choice.description
    );
    // The path says MNIST (not Fashion): digit class names.
    let (train, _) = choice.load().unwrap();
    assert_eq!(train.class_names[1], "1");
    assert_eq!(train.image(2), &[20, 21, 22, 23, 24, 25]);

    // The explicit spec beats CLAMP_DATA; CLAMP_DATA beats the default.
    let other = other_dir.to_str().unwrap();
    let choice = resolve_dataset_from(Some(idx_dir.to_str().unwrap()), Some(other)).unwrap();
    assert!(matches!(choice.train, DataSource::Idx { .. }));
    let choice = resolve_dataset_from(None, Some(other)).unwrap();
    assert!(matches!(choice.train, DataSource::ImageFolder { .. }));
    assert!(
        choice.description.contains("CLAMP_DATA"),
        "{}",
        choice.description
    );

    let toy = resolve_dataset_from(Some(&format!("toy:{}", idx_dir.display())), None).unwrap();
    assert!(toy.is_toy());
    assert_eq!(toy.load().unwrap().0.len, 3);

    let text = err_text(resolve_dataset_from(Some("imagenet-21k"), None));
    assert!(
        text.contains("unknown dataset name 'imagenet-21k'"),
        "{text}"
    );

    // No spec, no CLAMP_DATA: the system Fashion-MNIST if installed, else the bundled test split.
    let choice = resolve_dataset_from(None, None).unwrap();
    if find_idx_pair(Path::new(SYSTEM_FASHION_MNIST_DIR), Split::Train).is_some() {
        assert!(matches!(
            choice.train,
            DataSource::Idx {
                split: Split::Train,
                ..
            }
        ));
        assert!(matches!(
            choice.test,
            DataSource::Idx {
                split: Split::Test,
                ..
            }
        ));
    } else {
        assert_eq!(choice.train, choice.test);
        assert!(
            choice.description.contains("bundled"),
            "{}",
            choice.description
        );
    }
    assert_eq!(
        resolve_dataset_from(Some("fashion-mnist"), Some(other)).unwrap(),
        choice
    );
}

#[test]
fn idx_bytes_as_a_page_fetches_them_read_like_the_files() {
    // The bundled split read from its files and from its bytes (gzip) is the same set.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/fashion-mnist");
    let (images, labels) = (
        dir.join("t10k-images-idx3-ubyte.gz"),
        dir.join("t10k-labels-idx1-ubyte.gz"),
    );
    let from_files = load_idx_pair(&images, &labels, &FASHION_MNIST_CLASSES).unwrap();
    let from_bytes = idx_pair_from_bytes(
        "t10k-images-idx3-ubyte.gz",
        std::fs::read(&images).unwrap(),
        "t10k-labels-idx1-ubyte.gz",
        std::fs::read(&labels).unwrap(),
        &FASHION_MNIST_CLASSES,
    )
    .unwrap();
    assert_eq!(from_bytes.len, 10_000);
    assert_eq!(from_bytes.images, from_files.images);
    assert_eq!(from_bytes.labels, from_files.labels);
    assert_eq!((from_bytes.height, from_bytes.width), (28, 28));

    // Raw bytes too, pixel for pixel.
    let pixels = three_images();
    let set = idx_pair_from_bytes(
        "i",
        idx_images(3, 2, 3, &pixels),
        "l",
        idx_labels(&[2, 0, 1]),
        &MNIST_CLASSES,
    )
    .unwrap();
    assert_eq!(set.images, pixels);
    assert_eq!(set.labels, vec![2, 0, 1]);

    // A truncated download and a label file of another set are errors naming the address.
    let mut cut = gzip(&idx_images(3, 2, 3, &pixels));
    cut.truncate(cut.len() / 2);
    let error = idx_pair_from_bytes("img.gz", cut, "l", idx_labels(&[2, 0, 1]), &MNIST_CLASSES)
        .expect_err("a truncated download");
    assert!(error.to_string().contains("img.gz"), "{error}");
    let error = idx_pair_from_bytes(
        "i",
        idx_images(3, 2, 3, &pixels),
        "labels.gz",
        idx_labels(&[2, 0]),
        &MNIST_CLASSES,
    )
    .expect_err("3 images, 2 labels");
    assert!(error.to_string().contains("labels.gz"), "{error}");
}
