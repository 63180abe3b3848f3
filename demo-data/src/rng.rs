//! A small deterministic PRNG (`SplitMix64`), so that a seed gives the same tiles whatever crate versions
//! the workspace resolves: the demo data and the tests built on it must not drift when `rand` changes.

/// `SplitMix64` (Steele, Lea, Flood 2014): one 64-bit state, good enough statistics for pictures.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix64(self.state)
    }

    /// Uniform in `[0, 1)`, with the 24 bits an `f32` mantissa holds.
    pub fn unit(&mut self) -> f32 {
        let bits = u32::try_from(self.next_u64() >> 40).unwrap_or(0);
        #[expect(clippy::cast_precision_loss, reason = "a 24-bit integer is exact in f32")]
        let value = bits as f32;
        value / 16_777_216.0
    }

    /// Uniform in `[lo, hi)`.
    pub fn range(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.unit()
    }

    /// Uniform in `[-amplitude, amplitude)`.
    pub fn jitter(&mut self, amplitude: f32) -> f32 {
        self.range(-amplitude, amplitude)
    }

    /// Uniform in `0..n` (`n > 0`); the modulo bias is irrelevant at the sizes used here.
    pub fn below(&mut self, n: usize) -> usize {
        let n = u64::try_from(n.max(1)).unwrap_or(u64::MAX);
        usize::try_from(self.next_u64() % n).unwrap_or(0)
    }

    pub fn chance(&mut self, probability: f32) -> bool {
        self.unit() < probability
    }

    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }

    /// A fresh generator for a sub-task, so that adding a draw in one part of a scene does not shift the others.
    pub fn fork(&mut self) -> Self {
        Self::new(self.next_u64())
    }
}

/// The `SplitMix64` finaliser: also used as a stateless hash for per-pixel grain.
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sequence_is_the_published_splitmix64_one() {
        // First outputs of SplitMix64 seeded with 0, as given by the reference implementation.
        let mut rng = SplitMix64::new(0);
        assert_eq!(rng.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(rng.next_u64(), 0x6E78_9E6A_A1B9_65F4);
    }

    #[test]
    fn unit_stays_in_the_half_open_interval() {
        let mut rng = SplitMix64::new(42);
        for _ in 0..10_000 {
            let x = rng.unit();
            assert!((0.0..1.0).contains(&x), "{x}");
        }
    }
}
