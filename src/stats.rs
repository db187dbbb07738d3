//! Small-sample statistics for comparing runs across seeds: means with Student-t 95%
//! confidence intervals, and paired differences over the same seeds.
//!
//! With `n` seeds the interval is `mean ± t_{0.975, n−1} · s / √n`, `s` the sample standard
//! deviation (Bessel-corrected). A paired difference takes, for each seed both runs share,
//! `x_A − x_B` and gives that sample's mean and interval: seeds share the base policy, the
//! data order and the sampling streams, so pairing removes their common noise.

/// The two-sided 95% Student-t quantile `t_{0.975, df}` (scipy `t.ppf(0.975, df)`, 3
/// decimals), exact for `df ≤ 30` and at 40, 60, 120; linear in `1/df` between those, and the
/// normal quantile 1.96 beyond 120. `NaN` for `df = 0`.
pub fn t95(df: usize) -> f64 {
    const SMALL: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    // (df, quantile) knots beyond the table; the quantile is close to linear in 1/df there.
    const KNOTS: [(f64, f64); 4] = [(30.0, 2.042), (40.0, 2.021), (60.0, 2.000), (120.0, 1.980)];
    match df {
        0 => f64::NAN,
        1..=30 => SMALL[df - 1],
        121.. => 1.96,
        _ => {
            let x = 1.0 / df as f64;
            let k = KNOTS
                .windows(2)
                .find(|w| df as f64 <= w[1].0)
                .unwrap_or(&KNOTS[2..]);
            let ((d0, q0), (d1, q1)) = (k[0], k[1]);
            let (x0, x1) = (1.0 / d0, 1.0 / d1);
            q0 + (q1 - q0) * (x - x0) / (x1 - x0)
        }
    }
}

/// A sample's mean and 95% confidence interval.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Estimate {
    /// The sample mean.
    pub mean: f64,
    /// The lower end of the 95% interval (the mean itself for one value).
    pub low: f64,
    /// The upper end.
    pub high: f64,
    /// The number of values.
    pub n: usize,
}

impl Estimate {
    /// Whether the interval excludes 0 (a difference is significant at 5%); never for fewer
    /// than two values, nor for values that are all equal: a zero-width interval measured no
    /// spread, it did not find none (two seeds of 300 problems tie by chance often enough).
    pub fn excludes_zero(&self) -> bool {
        self.n >= 2 && self.has_spread() && (self.low > 0.0 || self.high < 0.0)
    }

    /// Whether the values differ at all: equal values (up to rounding, as in 0.200 − 0.163
    /// and 0.177 − 0.140) give an interval of no width.
    pub fn has_spread(&self) -> bool {
        self.high - self.low > 1e-9 * self.mean.abs().max(1.0)
    }
}

/// The mean and Student-t 95% interval of `values`; `None` when there are none.
pub fn mean_ci(values: &[f64]) -> Option<Estimate> {
    let n = values.len();
    if n == 0 {
        return None;
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    if n < 2 {
        return Some(Estimate {
            mean,
            low: mean,
            high: mean,
            n,
        });
    }
    let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    let half = t95(n - 1) * variance.sqrt() / (n as f64).sqrt();
    Some(Estimate {
        mean,
        low: mean - half,
        high: mean + half,
        n,
    })
}

/// The paired difference `a − b` over the keys (seeds) both have, with its interval; `None`
/// when they share none.
pub fn paired_difference(a: &[(u64, f64)], b: &[(u64, f64)]) -> Option<Estimate> {
    let differences: Vec<f64> = a
        .iter()
        .filter_map(|(seed, x)| b.iter().find(|(s, _)| s == seed).map(|(_, y)| x - y))
        .collect();
    mean_ci(&differences)
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_relative_eq;

    #[test]
    fn t_quantiles_match_scipy() {
        // scipy.stats.t.ppf(0.975, df) to 4 decimals.
        for (df, q) in [
            (1, 12.7062),
            (2, 4.3027),
            (4, 2.7764),
            (9, 2.2622),
            (29, 2.0452),
            (35, 2.0301),
            (50, 2.0086),
            (100, 1.9840),
            (1000, 1.9623),
        ] {
            assert!((t95(df) - q).abs() < 3e-3, "df {df}: {} vs {q}", t95(df));
        }
        assert!(t95(0).is_nan());
    }

    #[test]
    fn intervals_match_a_hand_computed_table() {
        // Values 0.50, 0.55, 0.60, 0.65, 0.70: mean 0.6, s = 0.0790569, t_{0.975,4} = 2.776,
        // half-width 2.776 · 0.0790569 / √5 = 0.0981467.
        let e = mean_ci(&[0.5, 0.55, 0.6, 0.65, 0.7]).unwrap();
        assert_relative_eq!(e.mean, 0.6, epsilon = 1e-12);
        assert_relative_eq!(e.high - e.mean, 0.0981467, epsilon = 1e-6);
        assert_relative_eq!(e.mean - e.low, 0.0981467, epsilon = 1e-6);
        assert_eq!(e.n, 5);
        // One value: a point, never significant.
        let one = mean_ci(&[0.3]).unwrap();
        assert_eq!((one.low, one.high), (0.3, 0.3));
        assert!(!one.excludes_zero());
        assert!(mean_ci(&[]).is_none());
    }

    #[test]
    fn paired_differences_use_only_shared_seeds_and_remove_the_common_noise() {
        // Seed effects ±0.2 shared by both runs: unpaired intervals overlap, the paired one
        // (differences 0.05, 0.06, 0.04: s = 0.01, half-width 4.303·s/√3) excludes 0.
        let a = [(1, 0.75), (2, 0.36), (3, 0.54), (9, 0.99)];
        let b = [(1, 0.70), (2, 0.30), (3, 0.50), (4, 0.10)];
        let d = paired_difference(&a, &b).unwrap();
        assert_eq!(d.n, 3);
        assert_relative_eq!(d.mean, 0.05, epsilon = 1e-12);
        assert_relative_eq!(d.low, 0.05 - 4.303 * 0.01 / 3f64.sqrt(), epsilon = 1e-6);
        assert!(d.excludes_zero());
        // Every difference equal: a zero-width interval, no evidence of anything.
        let tie = paired_difference(&[(1, 0.200), (2, 0.177)], &[(1, 0.163), (2, 0.140)]).unwrap();
        assert_relative_eq!(tie.high - tie.low, 0.0, epsilon = 1e-9);
        assert!(!tie.has_spread() && !tie.excludes_zero());
        assert!(d.has_spread());
        // Differences 0.1, −0.05, 0.02: mean 0.0233, s = 0.0750555, half-width 4.303·s/√3.
        let d = paired_difference(
            &[(1, 0.6), (2, 0.45), (3, 0.52)],
            &[(1, 0.5), (2, 0.5), (3, 0.5)],
        )
        .unwrap();
        assert_relative_eq!(d.mean, 0.0233333, epsilon = 1e-6);
        assert_relative_eq!(
            d.high - d.mean,
            4.303 * 0.0750555 / 3f64.sqrt(),
            epsilon = 1e-6
        );
        assert!(!d.excludes_zero());
        assert!(paired_difference(&[(1, 0.5)], &[(2, 0.5)]).is_none());
    }
}
