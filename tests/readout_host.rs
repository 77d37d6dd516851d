//! The host read-out (used for large evaluation sets) against the device read-out and the
//! float64 reference, and its contact pairs against the contact counts.

mod common;

use burn::backend::Flex;
use burn::tensor::{Tensor, TensorData};
use clamp::loss::{Packing, PackingParams};
use clamp::readout::{contact_pairs, host_readout};
use common::{clustered_embeddings, reference};

fn relative(got: f64, want: f64) -> f64 {
    (got - want).abs() / want.abs().max(1e-9)
}

#[test]
fn host_readout_matches_the_device_readout_and_the_reference() {
    for (m, b, d, rs, alpha) in [
        (4, 300, 16, 3.0, 2.0),
        (2, 129, 3, 1.0, 2.5),
        (8, 64, 32, 6.0, 3.0),
    ] {
        let p = clustered_embeddings(m, b, d, 0.4, 11 + b as u64);
        let values: Vec<f32> = p.iter().map(|&x| x as f32).collect();
        let params = PackingParams {
            alpha,
            radius_scale: rs,
            log_energy: true,
        };
        let projections: Tensor<Flex, 3> = Tensor::from_data(
            TensorData::new(values.clone(), [m, b, d]),
            &Default::default(),
        );
        let device = Packing::new(projections, &params).readout();
        let (host, pairs) = host_readout(&values, m, b, d, &params);
        let truth = reference(&p, m, b, d, alpha, rs, true);
        let case = format!("m={m} B={b} d={d} r_s={rs} alpha={alpha}");

        assert!(
            relative(host.metrics.energy, truth.energy) < 1e-6,
            "{case}: energy {} vs {}",
            host.metrics.energy,
            truth.energy
        );
        assert!(
            relative(host.metrics.loss, truth.loss) < 1e-6,
            "{case}: loss"
        );
        let m_ = &host.metrics;
        let dm = &device.metrics;
        for (name, h, g) in [
            ("energy", m_.energy, dm.energy),
            ("virial", m_.virial, dm.virial),
            ("mean_radius", m_.mean_radius, dm.mean_radius),
            ("radius_std", m_.radius_std, dm.radius_std),
            (
                "mean_center_distance",
                m_.mean_center_distance,
                dm.mean_center_distance,
            ),
            ("mean_contacts", m_.mean_contacts, dm.mean_contacts),
            (
                "singular_value_ratio",
                m_.singular_value_ratio,
                dm.singular_value_ratio,
            ),
            (
                "nearest_centroid_acc",
                m_.nearest_centroid_acc,
                dm.nearest_centroid_acc,
            ),
        ] {
            assert!(
                relative(h, g) < 2e-3,
                "{case}: {name} host {h} vs device {g}"
            );
        }
        // Integer counts may differ only by pairs within float32 rounding of a threshold.
        assert!(
            m_.overlapping_pairs.abs_diff(dm.overlapping_pairs) <= 2,
            "{case}: overlapping pairs {} vs {}",
            m_.overlapping_pairs,
            dm.overlapping_pairs
        );
        for i in 0..b {
            assert!(
                (host.radii[i] - device.radii[i]).abs() < 1e-5,
                "{case}: radius {i}"
            );
        }
        // Every pair counts once for each of its two spheres.
        let mut from_pairs = vec![0u32; b];
        for [i, j] in &pairs {
            assert!(i < j);
            from_pairs[*i as usize] += 1;
            from_pairs[*j as usize] += 1;
        }
        assert_eq!(from_pairs, host.contacts, "{case}: pairs vs contact counts");
        let again = contact_pairs(&host.centers, &host.radii, d);
        let differing = again.iter().filter(|p| !pairs.contains(p)).count()
            + pairs.iter().filter(|p| !again.contains(p)).count();
        assert!(
            differing <= 2,
            "{case}: contact_pairs differs in {differing} pairs"
        );
        assert!(!pairs.is_empty(), "{case}: the case should have contacts");
    }
}
