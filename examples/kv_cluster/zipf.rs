//! A Zipf-distributed sampler over a key space, for the load generator.
//!
//! Rank `i` (0-based) is drawn with probability proportional to
//! `1 / (i + 1)^s`: with `s = 0` every key is equally likely, with `s = 1`
//! (classic Zipf) the most popular key is drawn twice as often as the second
//! and ten times as often as the tenth. Real key-value traffic sits around
//! `s = 0.9..1.2`, which is what makes a cache in front of a fleet pay off.
//!
//! The sampler precomputes the cumulative distribution once (8 bytes per key)
//! and draws by binary search, so a draw costs `O(log n)` and is exact.

use rand::Rng;

/// The largest key space the sampler accepts (80 MB of table).
pub const MAX_KEYS: u64 = 10_000_000;

/// Why a Zipf sampler could not be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ZipfError {
    /// The key space was empty or larger than [`MAX_KEYS`].
    #[error("the key space must hold 1 to {MAX_KEYS} keys, got {0}")]
    Keys(u64),
    /// The exponent was negative, infinite or not a number.
    #[error("the Zipf exponent must be a finite number >= 0, got {0}")]
    Exponent(f64),
}

/// Draws ranks `0..n` with Zipf probabilities. Cheap to share (`Arc` it).
#[derive(Debug, Clone)]
pub struct Zipf {
    /// `cdf[i]` = P(rank <= i), nondecreasing, last element exactly 1.
    cdf: Vec<f64>,
    exponent: f64,
}

impl Zipf {
    /// A sampler over `n` ranks with exponent `s` (`0` = uniform).
    pub fn new(n: u64, s: f64) -> Result<Zipf, ZipfError> {
        if n == 0 || n > MAX_KEYS {
            return Err(ZipfError::Keys(n));
        }
        if !s.is_finite() || s < 0.0 {
            return Err(ZipfError::Exponent(s));
        }
        let mut cdf = Vec::with_capacity(n as usize);
        let mut total = 0.0f64;
        for i in 0..n {
            total += ((i + 1) as f64).powf(-s);
            cdf.push(total);
        }
        for c in &mut cdf {
            *c /= total;
        }
        // Rounding may leave the last element a hair under 1; a draw of
        // u in [0, 1) must always land inside the table.
        if let Some(last) = cdf.last_mut() {
            *last = 1.0;
        }
        Ok(Zipf { cdf, exponent: s })
    }

    /// The number of ranks.
    pub fn len(&self) -> u64 {
        self.cdf.len() as u64
    }

    /// The exponent the sampler was built with.
    pub fn exponent(&self) -> f64 {
        self.exponent
    }

    /// The probability of drawing `rank` (0 outside the key space).
    pub fn probability(&self, rank: u64) -> f64 {
        let Some(&c) = self.cdf.get(rank as usize) else {
            return 0.0;
        };
        let below = if rank == 0 {
            0.0
        } else {
            self.cdf[rank as usize - 1]
        };
        c - below
    }

    /// Draws one rank in `0..len()`.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> u64 {
        let u: f64 = rng.random();
        // The first rank whose cumulative probability exceeds u.
        let i = self.cdf.partition_point(|&c| c <= u);
        i.min(self.cdf.len() - 1) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn histogram(z: &Zipf, draws: usize, seed: u64) -> Vec<u64> {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut counts = vec![0u64; z.len() as usize];
        for _ in 0..draws {
            counts[z.sample(&mut rng) as usize] += 1;
        }
        counts
    }

    #[test]
    fn probabilities_follow_the_power_law_and_sum_to_one() {
        let z = Zipf::new(10, 1.0).unwrap();
        let harmonic: f64 = (1..=10).map(|i| 1.0 / i as f64).sum();
        for rank in 0..10 {
            let expected = 1.0 / (rank as f64 + 1.0) / harmonic;
            assert!(
                (z.probability(rank) - expected).abs() < 1e-12,
                "rank {rank}"
            );
        }
        let sum: f64 = (0..10).map(|r| z.probability(r)).sum();
        assert!((sum - 1.0).abs() < 1e-12);
        assert_eq!(z.probability(10), 0.0);
    }

    #[test]
    fn draws_match_the_probabilities() {
        let z = Zipf::new(20, 1.1).unwrap();
        let draws = 200_000;
        let counts = histogram(&z, draws, 7);
        for (rank, &n) in counts.iter().enumerate() {
            let expected = z.probability(rank as u64) * draws as f64;
            // Five standard deviations of a binomial count.
            let sd = (expected * (1.0 - z.probability(rank as u64))).sqrt();
            assert!(
                (n as f64 - expected).abs() < 5.0 * sd + 1.0,
                "rank {rank}: drew {n}, expected {expected:.0}"
            );
        }
        assert!(counts[0] > counts[1] && counts[1] > counts[5] && counts[5] > counts[19]);
    }

    #[test]
    fn exponent_zero_is_uniform() {
        let z = Zipf::new(8, 0.0).unwrap();
        for rank in 0..8 {
            assert!((z.probability(rank) - 0.125).abs() < 1e-12);
        }
        let counts = histogram(&z, 80_000, 3);
        for &n in &counts {
            assert!((9_000..11_000).contains(&n), "{counts:?}");
        }
    }

    #[test]
    fn every_draw_is_inside_the_key_space() {
        let one = Zipf::new(1, 1.0).unwrap();
        let mut rng = StdRng::seed_from_u64(1);
        assert!((0..1000).all(|_| one.sample(&mut rng) == 0));
        let steep = Zipf::new(1000, 3.0).unwrap();
        assert!((0..10_000).all(|_| steep.sample(&mut rng) < 1000));
    }

    #[test]
    fn bad_parameters_are_typed_errors() {
        assert_eq!(Zipf::new(0, 1.0).unwrap_err(), ZipfError::Keys(0));
        assert_eq!(
            Zipf::new(MAX_KEYS + 1, 1.0).unwrap_err(),
            ZipfError::Keys(MAX_KEYS + 1)
        );
        assert!(matches!(Zipf::new(10, -0.5), Err(ZipfError::Exponent(_))));
        assert!(matches!(
            Zipf::new(10, f64::NAN),
            Err(ZipfError::Exponent(_))
        ));
    }
}
