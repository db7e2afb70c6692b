//! Rotary position embedding (RoPE): the one computation of the rotation
//! angles that every backend uses. Output invariance across backends
//! (docs/backends.md) only means something if candle, libtorch and the ONNX
//! export rotate by the same angles to the bit, so they all call these
//! functions (same libm calls, same f32 rounding) instead of each keeping a
//! copy.

/// The inverse frequencies `1 / theta^(2i / head_dim)` for
/// `i in 0..head_dim / 2`, rounded to f32.
pub fn inverse_frequencies(head_dim: usize, theta: f64) -> Vec<f32> {
    (0..head_dim / 2)
        .map(|i| 1.0 / libm::pow(theta, (2 * i) as f64 / head_dim as f64) as f32)
        .collect()
}

/// Row-major `cos` and `sin` tables of shape `[positions, head_dim / 2]`:
/// the angle of position `p` and frequency `i` is `p * inverse_frequencies[i]`
/// in f32.
pub fn tables(head_dim: usize, positions: usize, theta: f64) -> (Vec<f32>, Vec<f32>) {
    let inv_freq = inverse_frequencies(head_dim, theta);
    let mut cos = Vec::with_capacity(positions * inv_freq.len());
    let mut sin = Vec::with_capacity(positions * inv_freq.len());
    for p in 0..positions {
        for f in &inv_freq {
            let angle = p as f32 * f;
            cos.push(libm::cosf(angle));
            sin.push(libm::sinf(angle));
        }
    }
    (cos, sin)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frequencies_follow_theta_and_head_dim() {
        // head_dim 4, theta 10,000: 1 and 1 / 10,000^(2/4) = 0.01.
        assert_eq!(inverse_frequencies(4, 10_000.0), vec![1.0, 0.01]);
        assert!(inverse_frequencies(1, 10_000.0).is_empty());
    }

    #[test]
    fn tables_hold_the_angles_of_every_position() {
        let (cos, sin) = tables(4, 3, 10_000.0);
        assert_eq!(cos.len(), 6);
        // Position 0 does not rotate.
        assert_eq!((cos[0], sin[0], cos[1], sin[1]), (1.0, 0.0, 1.0, 0.0));
        // Position 2, frequency 1: the angle is 2 radians.
        assert_eq!((cos[4], sin[4]), (libm::cosf(2.0), libm::sinf(2.0)));
        assert_eq!((cos[5], sin[5]), (libm::cosf(0.02), libm::sinf(0.02)));
    }
}
