//! Fade-in: a new endpoint takes its share of traffic gradually, so a pod
//! with a cold cache is not handed ~1/N of the keys at full rate at once.
//!
//! An endpoint that became ready at `ready_since_ms` accepts a request with
//! probability `ramp = (age / duration) ^ exponent`. Whether a given request
//! is among those accepted is decided by a number in [0, 1) drawn from the
//! request: on a consistent-hash route the key's own hash, so a key is either
//! below the ramp or not and, as the ramp rises, moves to the new pod once and
//! stays; on the other algorithms a fresh random number per request.
//!
//! A declined endpoint is excluded from that pick, so on the ring the key goes
//! to the next distinct endpoint clockwise: the owner it had before the new pod
//! came. Endpoints that all fade in together decline the same requests, and a
//! pick that finds nothing falls back to ignoring fade-in: a fleet that starts
//! at once is not starved.
/// A route's fade-in setting (Skipper's `fadeIn` filter).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FadeIn {
    /// Time from ready to full share, in milliseconds (> 0).
    pub duration_ms: u64,
    /// Shape of the ramp: 1 linear, > 1 slow start then faster, < 1 the reverse.
    pub exponent: f64,
}

impl FadeIn {
    /// The share an endpoint ready since `ready_since_ms` takes at `now_ms`,
    /// in [0, 1]; 1 once faded in. `ready_since_ms == 0` means an endpoint
    /// that was there before anything could be compared with (always 1).
    #[inline]
    pub fn ramp(&self, ready_since_ms: u64, now_ms: u64) -> f64 {
        if ready_since_ms == 0 {
            return 1.0;
        }
        let age = now_ms.saturating_sub(ready_since_ms);
        if age >= self.duration_ms {
            return 1.0;
        }
        (age as f64 / self.duration_ms as f64).powf(self.exponent)
    }

    /// Whether an endpoint ready since `ready_since_ms` is still fading at `now_ms`.
    #[inline]
    pub fn fading(&self, ready_since_ms: u64, now_ms: u64) -> bool {
        ready_since_ms != 0 && now_ms.saturating_sub(ready_since_ms) < self.duration_ms
    }

    /// Whether a request drawing `draw` is turned away from an endpoint ready
    /// since `ready_since_ms`.
    #[inline]
    pub fn declines(&self, draw: f64, ready_since_ms: u64, now_ms: u64) -> bool {
        self.fading(ready_since_ms, now_ms) && draw >= self.ramp(ready_since_ms, now_ms)
    }
}

/// A number in [0, 1) for the fade-in decision: fixed per key on consistent-hash
/// routes (`ctx.key_hash`), fresh per request on the others (`ctx.random`).
/// Mixed first so it is independent of where the key sits on the ring.
#[inline]
pub fn fade_draw(value: u64) -> f64 {
    let mut z = value ^ 0x5851_f42d_4c95_7f2d;
    z = (z ^ (z >> 33)).wrapping_mul(0xff51_afd7_ed55_8ccd);
    z = (z ^ (z >> 33)).wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    z ^= z >> 33;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    const FADE: FadeIn = FadeIn {
        duration_ms: 10_000,
        exponent: 1.0,
    };

    #[test]
    fn the_ramp_rises_from_zero_to_one_over_the_duration() {
        assert_eq!(FADE.ramp(1_000, 1_000), 0.0);
        assert_eq!(FADE.ramp(1_000, 6_000), 0.5);
        assert_eq!(FADE.ramp(1_000, 11_000), 1.0);
        assert_eq!(FADE.ramp(1_000, 500), 0.0, "a clock read before ready");
        assert_eq!(FADE.ramp(0, 5), 1.0, "established endpoints");
        let squared = FadeIn {
            exponent: 2.0,
            ..FADE
        };
        assert_eq!(squared.ramp(1, 5_001), 0.25);
        assert!(!FADE.fading(1_000, 11_000) && FADE.fading(1_000, 10_999));
    }

    #[test]
    fn draws_are_uniform_enough() {
        let n = 100_000;
        let below = (0..n)
            .filter(|&i| fade_draw(crate::hash_key(format!("k{i}").as_bytes())) < 0.3)
            .count();
        let share = below as f64 / n as f64;
        assert!((share - 0.3).abs() < 0.01, "{share}");
        assert!((0..1000u64).all(|i| (0.0..1.0).contains(&fade_draw(i))));
    }
}
