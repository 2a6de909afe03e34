//! A tiny deterministic PRNG for tests (xorshift64*), so that tests need no `rand` crate.

/// xorshift64* generator; the same seed always yields the same sequence.
pub(crate) struct Rng(u64);

impl Rng {
    /// A generator from a seed (0 is remapped, since xorshift would stay at 0).
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    /// The next 64 random bits.
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in [0, n) (n > 0; the modulo bias is irrelevant for tests).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next_u64() >> 11) as usize % n
    }

    /// Uniform integer in [lo, hi].
    pub(crate) fn int(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next_u64() % (hi - lo + 1) as u64) as i64
    }

    /// Uniform f32 in [lo, hi) with 24 random bits.
    pub(crate) fn f32_in(&mut self, lo: f32, hi: f32) -> f32 {
        let u = (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
        lo + (hi - lo) * u
    }

    /// `len` values from [lo, hi] as i8.
    pub(crate) fn i8s(&mut self, len: usize, lo: i8, hi: i8) -> Vec<i8> {
        (0..len).map(|_| self.int(i64::from(lo), i64::from(hi)) as i8).collect()
    }

    /// `len` values from [lo, hi) as f32.
    pub(crate) fn f32s(&mut self, len: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..len).map(|_| self.f32_in(lo, hi)).collect()
    }

    /// Fisher-Yates shuffle.
    pub(crate) fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i + 1);
            v.swap(i, j);
        }
    }
}
