//! Throughput of `make_views` on the bundled Fashion-MNIST test split (28x28 gray):
//! `cargo run --release --example augment_bench`.

use std::time::Instant;

use clamp::augment::{AugmentConfig, make_views};
use clamp::data::{BUNDLED_FASHION_MNIST_DIR, Split, load_fashion_mnist};

const REPEATS: usize = 20;

fn main() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(BUNDLED_FASHION_MNIST_DIR);
    let set = match load_fashion_mnist(&dir, Split::Test) {
        Ok(set) => set,
        Err(e) => {
            eprintln!("augment_bench: {e}");
            std::process::exit(1);
        }
    };
    let cfg = AugmentConfig::default();
    println!(
        "{} images of {}x{}, default augmentation, {} rayon threads, {REPEATS} repeats",
        set.len,
        set.height,
        set.width,
        rayon::current_num_threads()
    );
    println!("| batch | views | ms/batch | views/s | batches/s |");
    println!("|------:|------:|---------:|--------:|----------:|");
    for (batch, views) in [(256usize, 4usize), (128, 16)] {
        let indices: Vec<usize> = (0..batch).map(|i| (i * 37) % set.len).collect();
        let _warm_up = make_views(&set, &indices, views, &cfg, 0);
        let start = Instant::now();
        let mut checksum = 0.0f32;
        for repeat in 0..REPEATS {
            let out = make_views(&set, &indices, views, &cfg, repeat as u64 + 1);
            checksum += out[out.len() / 2]; // keeps the work observable
        }
        let seconds = start.elapsed().as_secs_f64() / REPEATS as f64;
        let produced = (batch * views) as f64;
        println!(
            "| {batch} | {views} | {:.2} | {:.0} | {:.1} |",
            seconds * 1e3,
            produced / seconds,
            1.0 / seconds
        );
        std::hint::black_box(checksum);
    }
}
