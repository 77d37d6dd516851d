//! The browser page's address (`clamp::page`), the page's probes on its one split, and the
//! linear probe fitted a few epochs at a time as a page fits it.

use std::sync::Arc;

use proptest::prelude::*;

use clamp::backend::BackendChoice;
use clamp::config::TrainConfig;
use clamp::eval::{Features, LinearProbe, LinearProbeFit, ProbeSettings};
use clamp::page::{PagePath, decode_component, encode_component, parse_address, settings_query};

fn parse(query: &str, path: PagePath) -> Result<TrainConfig, String> {
    parse_address(query, path)
        .map(|a| a.config)
        .map_err(|e| e.to_string())
}

#[test]
fn an_empty_address_opens_the_viewers_run_on_the_paths_backend() {
    for (path, backend) in [
        (PagePath::Cpu, BackendChoice::Cpu),
        (PagePath::Gpu, BackendChoice::Wgpu),
    ] {
        for query in ["", "?", "?&&"] {
            let config = parse(query, path).unwrap();
            assert_eq!(config.backend, backend);
            // The desktop viewer's run: the pixel MLP, d = 3, r_s = 0.75, 128 x 4 views.
            let desktop = TrainConfig::viewer_default();
            assert_eq!(
                (
                    config.dim,
                    config.radius_scale,
                    config.batch,
                    config.views,
                    config.encoder
                ),
                (3, 0.75, 128, 4, desktop.encoder)
            );
        }
    }
}

#[test]
fn settings_in_the_address_are_applied_in_order_and_decoded() {
    let config = parse(
        "?radius_scale=4&alpha=2.5&seed=3&alpha=2.25&loss=simclr&log_energy",
        PagePath::Cpu,
    )
    .unwrap();
    assert_eq!(config.radius_scale, 4.0);
    // The later of two values wins.
    assert_eq!(config.alpha, 2.25);
    assert_eq!(config.seed, 3);
    assert_eq!(config.loss, clamp::config::LossKind::Simclr);
    assert!(config.log_energy);
    // Escapes: %32%2E5 is "2.5"; '+' is a space (TOML ignores it around a number).
    let config = parse("?alpha=%32%2E5&radius_scale=+1.5", PagePath::Gpu).unwrap();
    assert_eq!((config.alpha, config.radius_scale), (2.5, 1.5));
    // Training in a worker unless the address says otherwise.
    assert!(parse_address("", PagePath::Cpu).unwrap().worker);
    assert!(
        !parse_address("?worker=false", PagePath::Cpu)
            .unwrap()
            .worker
    );
    // A comparison: its settings over the whole run (r_s of the address, alpha of the
    // comparison), with commas escaped or not.
    for query in [
        "?radius_scale=1.5&compare=alpha=2.5,views=2",
        "?compare=alpha%3D2.5%2Cviews%3D2&radius_scale=1.5",
    ] {
        let address = parse_address(query, PagePath::Cpu).unwrap();
        let comparison = address.compare.expect("a comparison");
        assert_eq!(comparison.keys, ["views", "alpha"], "{query}");
        assert_eq!(comparison.configs[0], address.config, "{query}");
        assert_eq!(comparison.configs[1].radius_scale, 1.5, "{query}");
        assert_eq!(
            comparison.legend(),
            "views = 4, alpha = 2 | views = 2, alpha = 2.5"
        );
    }
    assert_eq!(
        parse_address("?alpha=3", PagePath::Cpu).unwrap().compare,
        None
    );
    // `compare=` repeated: a run beside the first for each, in order, up to three.
    let three = parse_address(
        "?compare=radius_scale=1.5&compare=radius_scale=4",
        PagePath::Cpu,
    )
    .unwrap()
    .compare
    .expect("a comparison of three runs");
    let radii: Vec<f64> = three.configs.iter().map(|c| c.radius_scale).collect();
    assert_eq!(radii, [0.75, 1.5, 4.0]);
    let five = parse_address(
        "?compare=alpha=2.5&compare=alpha=3&compare=alpha=3.5&compare=alpha=4",
        PagePath::Cpu,
    )
    .unwrap_err()
    .to_string();
    assert!(
        five.contains("`compare`") && five.contains("at most 4"),
        "{five}"
    );
    // backend=auto or the page's own path is accepted and leaves the path's backend.
    assert_eq!(
        parse("?backend=auto", PagePath::Cpu).unwrap().backend,
        BackendChoice::Cpu
    );
    assert_eq!(
        parse("?backend=cpu", PagePath::Cpu).unwrap().backend,
        BackendChoice::Cpu
    );
    assert_eq!(
        parse("?backend=wgpu", PagePath::Gpu).unwrap().backend,
        BackendChoice::Wgpu
    );
}

#[test]
fn a_bad_address_is_refused_with_the_key_named() {
    let cases: &[(&str, PagePath, &str, &str)] = &[
        (
            "?radius=2",
            PagePath::Cpu,
            "`radius`",
            "not a setting of the page",
        ),
        (
            "?alpha=11",
            PagePath::Cpu,
            "`alpha`",
            "alpha = 11 is out of range: allowed 1 to 10",
        ),
        ("?alpha=soft", PagePath::Gpu, "`alpha`", "invalid type"),
        (
            "?batch=1",
            PagePath::Cpu,
            "`batch`",
            "batch = 1 is out of range: allowed 2 to 8192",
        ),
        (
            "?seed=%zz",
            PagePath::Cpu,
            "`seed`",
            "`%` at byte 0 is not followed by two hexadecimal digits",
        ),
        ("?seed=%ff", PagePath::Cpu, "`seed`", "not UTF-8"),
        ("?dataset=/etc", PagePath::Cpu, "`dataset`", "ships with"),
        (
            "?out=runs",
            PagePath::Gpu,
            "`out`",
            "writes no run directory",
        ),
        (
            "?backend=cpu",
            PagePath::Gpu,
            "`backend`",
            "the page's wgpu build, which cannot train with backend=cpu",
        ),
        (
            "?backend=wgpu",
            PagePath::Cpu,
            "`backend`",
            "the page's cpu build, which cannot train with backend=wgpu",
        ),
        (
            "?backend=tpu",
            PagePath::Cpu,
            "`backend`",
            "`tpu` is not a backend",
        ),
        (
            "?worker=2",
            PagePath::Cpu,
            "`worker`",
            "`2` is not true or false",
        ),
        ("?compare=alhpa=3", PagePath::Cpu, "`compare`", "alhpa"),
        (
            "?compare=seed=3",
            PagePath::Gpu,
            "`compare`",
            "seed cannot differ",
        ),
        // The address's own alpha makes the comparison's the same.
        (
            "?alpha=2.5&compare=alpha=2.5",
            PagePath::Cpu,
            "`compare`",
            "would not differ",
        ),
        ("?compare", PagePath::Cpu, "`compare`", "KEY=VALUE"),
    ];
    for &(query, path, key, words) in cases {
        let error = parse(query, path).unwrap_err();
        assert!(
            error.starts_with(&format!("the page's address, {key}:")),
            "{query}: {error}"
        );
        assert!(error.contains(words), "{query}: {error}");
    }
}

#[test]
fn a_link_carries_the_settings_that_differ_and_opens_on_the_same_run() {
    let path = PagePath::Cpu;
    let default = path.default_config();
    // The default run's link still names the three settings a teacher changes.
    assert_eq!(
        settings_query(&default, path),
        "?alpha=2.0&radius_scale=0.75&seed=0"
    );
    let config = TrainConfig {
        radius_scale: 4.0,
        alpha: 2.5,
        seed: 7,
        batch: 64,
        crop_min: 0.25,
        ..default.clone()
    };
    let query = settings_query(&config, path);
    assert_eq!(
        query,
        "?batch=64&alpha=2.5&radius_scale=4.0&seed=7&crop_min=0.25"
    );
    assert_eq!(parse(&query, path).unwrap(), config);
}

#[test]
fn the_escapes_are_hand_checked() {
    assert_eq!(encode_component("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
    assert_eq!(decode_component("a+b%20c%C3%A9").unwrap(), "a b cé");
    assert!(decode_component("%4").is_err());
    assert!(decode_component("%").is_err());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Any text at all gives a run or an error naming a key that is in the address.
    #[test]
    fn any_address_gives_a_run_or_names_a_key(query in ".{0,80}", gpu in any::<bool>()) {
        let path = if gpu { PagePath::Gpu } else { PagePath::Cpu };
        match parse_address(&query, path) {
            Ok(address) => {
                prop_assert_eq!(address.config.backend, path.backend());
                prop_assert!(address.config.validate().is_ok());
            }
            Err(error) => {
                prop_assert!(!error.key.is_empty() || query.contains("&=") || query.starts_with('=') || query.starts_with("?="),
                    "an error without a key for {:?}: {}", query, error);
                let raw_or_decoded = query.contains(&error.key)
                    || query.split('&').any(|pair| {
                        let key = pair.trim_start_matches('?').split('=').next().unwrap_or("");
                        decode_component(key).is_ok_and(|k| k == error.key)
                    });
                prop_assert!(raw_or_decoded, "{:?} names {:?}", query, error.key);
            }
        }
    }

    /// Structured addresses: known keys with values of every kind.
    #[test]
    fn settings_of_every_kind_give_a_run_or_name_their_key(
        pairs in prop::collection::vec((
            prop::sample::select(clamp::config::KEYS),
            prop_oneof![
                Just("true".to_string()),
                any::<i64>().prop_map(|v| v.to_string()),
                any::<f64>().prop_map(|v| v.to_string()),
                "[a-z%+.0-9-]{0,6}",
            ],
        ), 0..6),
    ) {
        let query: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let query = format!("?{}", query.join("&"));
        if let Err(error) = parse_address(&query, PagePath::Cpu) {
            prop_assert!(pairs.iter().any(|(k, _)| *k == error.key), "{}: {}", query, error);
        }
    }

    /// What the copy-link button copies opens on the same run.
    #[test]
    fn a_copied_link_opens_on_the_same_run(
        alpha in 1.0f64..10.0,
        radius_scale in 0.01f64..10.0,
        seed in 0..=clamp::config::MAX_SEED,
        batch in 2usize..512,
        views in 2usize..16,
        lr in 1e-5f64..1.0,
    ) {
        let path = PagePath::Gpu;
        let config = TrainConfig { alpha, radius_scale, seed, batch, views, lr, ..path.default_config() };
        let query = settings_query(&config, path);
        prop_assert_eq!(parse(&query, path).unwrap(), config);
    }

    #[test]
    fn encoding_then_decoding_gives_the_text_back(text in "\\PC{0,40}") {
        prop_assert_eq!(decode_component(&encode_component(&text)).unwrap(), text);
    }
}

/// Features of `n` points in `dim` dimensions, three classes around three centers.
fn blobs(n: usize, dim: usize, seed: u64) -> Features {
    let mut state = seed;
    let mut next = || {
        state = clamp::seed::splitmix64(state);
        (state >> 11) as f32 / (1u64 << 53) as f32 - 0.5
    };
    let mut values = Vec::with_capacity(n * dim);
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let class = (i % 3) as u16;
        for k in 0..dim {
            let center = if k % 3 == class as usize { 1.0 } else { 0.0 };
            values.push(center + 0.8 * next());
        }
        labels.push(class);
    }
    Features {
        dim,
        values,
        labels,
    }
}

#[test]
fn a_probe_fitted_a_few_epochs_at_a_time_is_the_probe_fitted_at_once() {
    let train = blobs(300, 6, 1);
    let test = blobs(150, 6, 2);
    let settings = ProbeSettings {
        epochs: 95,
        ..ProbeSettings::default()
    };
    let at_once = LinearProbe::fit(&train, 3, &settings);
    let mut fit = LinearProbeFit::new(&train, 3, &settings);
    let mut calls = 0;
    while !fit.run_epochs(10) {
        calls += 1;
    }
    // 95 epochs in tens: nine calls that leave some, the tenth finishes; more do nothing.
    assert_eq!(calls, 9);
    assert!(fit.run_epochs(10));
    let stepped = fit.finish();
    assert_eq!(stepped.weights(), at_once.weights());
    // And the probe learned the blobs (chance is 1/3).
    assert!(stepped.accuracy(&test) > 0.9, "{}", stepped.accuracy(&test));
}

#[test]
fn on_one_split_the_probes_fit_and_score_on_disjoint_images() {
    let set = clamp::data::load_idx_pair(
        "assets/fashion-mnist/t10k-images-idx3-ubyte.gz",
        "assets/fashion-mnist/t10k-labels-idx1-ubyte.gz",
        &clamp::data::FASHION_MNIST_CLASSES,
    )
    .unwrap();
    let config = PagePath::Cpu.default_config();
    let data = clamp::train::TrainingData::of_images(
        set.clone(),
        set.clone(),
        "the page's split".into(),
        &config,
    )
    .unwrap();
    let trainer = clamp::train::Trainer::<clamp::backend::CpuBackend>::new(
        config.clone(),
        Arc::new(data),
        Default::default(),
    );
    let (train, test) = trainer.probe_indices();
    assert_eq!(
        (train.len(), test.len()),
        (config.probe_train_images, config.probe_test_images)
    );
    let mut seen = vec![0u8; set.len];
    for &i in train.iter().chain(&test) {
        seen[i] += 1;
    }
    assert!(
        seen.iter().all(|&count| count <= 1),
        "an image is in both subsets"
    );
    // Two splits of other images keep the offline protocol: the first test images.
    let other_test = set.subset(&(0..5000).collect::<Vec<_>>());
    let data = clamp::train::TrainingData::of_images(set, other_test, "two splits".into(), &config)
        .unwrap();
    let trainer = clamp::train::Trainer::<clamp::backend::CpuBackend>::new(
        config.clone(),
        Arc::new(data),
        Default::default(),
    );
    let (_, test) = trainer.probe_indices();
    assert_eq!(test, (0..config.probe_test_images).collect::<Vec<_>>());
}
