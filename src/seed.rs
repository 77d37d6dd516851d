//! Every random number of a run follows from its seed, on any machine and with any build:
//! [`SplitMix64`] (written here, so its stream cannot change under us) derives seeds and drives
//! the permutations and the physics sandbox, and [`SeededRng`] (ChaCha8, whose stream
//! rand_chacha keeps fixed for a given version) draws the augmentations.

use rand::SeedableRng;

/// The generator of the augmentations.
pub type SeededRng = rand_chacha::ChaCha8Rng;

/// A [`SeededRng`] started from `seed`.
pub fn seeded_rng(seed: u64) -> SeededRng {
    SeededRng::seed_from_u64(seed)
}

/// The increment of SplitMix64's state (2^64 divided by the golden ratio).
const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64's output function: spreads nearby inputs over unrelated outputs.
fn finalize(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// SplitMix64 (Steele, Lea & Flood 2014): a tiny, fast, seedable generator.
#[derive(Clone, Debug)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GOLDEN_GAMMA);
        finalize(self.state)
    }

    /// Uniform in [0, 1) with 53 random bits.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// The first output of a SplitMix64 seeded with `x`: a seed for `x` unrelated to `x + 1`'s.
pub fn splitmix64(x: u64) -> u64 {
    SplitMix64::new(x).next_u64()
}

/// Independent seed number `stream` of the run seed `seed`.
pub fn mix_seed(seed: u64, stream: u64) -> u64 {
    finalize(seed ^ stream.wrapping_mul(GOLDEN_GAMMA))
}

/// A deterministic permutation of `0..n` (Fisher-Yates, one mixed seed per position).
pub fn permutation(n: usize, seed: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = (mix_seed(seed, i as u64) % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix64_gives_the_published_reference_stream() {
        // The reference outputs for seed 1234567 (Vigna's splitmix64.c).
        let mut rng = SplitMix64::new(1_234_567);
        let first: Vec<u64> = (0..5).map(|_| rng.next_u64()).collect();
        assert_eq!(
            first,
            [
                6_457_827_717_110_365_317,
                3_203_168_211_198_807_973,
                9_817_491_932_198_370_423,
                4_593_380_528_125_082_431,
                16_408_922_859_458_223_821,
            ]
        );
        assert_eq!(splitmix64(1_234_567), first[0]);
    }

    #[test]
    fn permutations_hold_every_index_once_and_follow_the_seed() {
        let order = permutation(1000, 7);
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..1000).collect::<Vec<_>>());
        assert_eq!(order, permutation(1000, 7));
        assert_ne!(order, permutation(1000, 8));
        // Not the identity, nor close to it.
        assert!(order.iter().enumerate().filter(|(i, j)| i == *j).count() < 10);
    }
}
