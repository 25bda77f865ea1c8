//! The demo's market: a mid price on a seeded random walk and the takers that trade against
//! the book, both drawn from (seed, tick) alone so a resumed run sees the same prices.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rust_decimal::Decimal;

/// What the market does in one tick.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// The new mid price (cents).
    pub mid: Decimal,
    /// A taker selling this size down to `mid - reach`, if one comes.
    pub sell: Option<Decimal>,
    /// A taker buying this size up to `mid + reach`, if one comes.
    pub buy: Option<Decimal>,
}

/// The generator of tick `tick` of the run seeded `seed`.
fn rng(seed: u64, tick: u64) -> StdRng {
    StdRng::seed_from_u64(seed ^ tick.wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// Moves the mid one step (volatility `vol` per tick, a fraction) and draws the takers.
pub fn step(seed: u64, tick: u64, mid: Decimal, vol: f64) -> Step {
    let mut r = rng(seed, tick);
    // A sum of uniforms: near-normal, bounded, and cheap.
    let z: f64 = (0..6).map(|_| r.random::<f64>() - 0.5).sum::<f64>() * 2.0;
    let factor = Decimal::from_f64_retain(1.0 + vol * z).unwrap_or(Decimal::ONE);
    let mid = (mid * factor).round_dp(2).max(Decimal::ONE);
    let size = |r: &mut StdRng| Decimal::new(r.random_range(5..=40), 2);
    let sell = r.random_bool(0.45).then(|| size(&mut r));
    let buy = r.random_bool(0.45).then(|| size(&mut r));
    Step { mid, sell, buy }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_tick_gives_the_same_market() {
        let mid = Decimal::new(250_000, 2);
        assert_eq!(step(7, 12, mid, 0.001), step(7, 12, mid, 0.001));
        assert_ne!(step(7, 12, mid, 0.001), step(7, 13, mid, 0.001));
        let s = step(7, 12, mid, 0.001);
        assert!(s.mid > Decimal::new(240_000, 2) && s.mid < Decimal::new(260_000, 2));
    }
}
