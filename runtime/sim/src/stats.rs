//! Summary statistics: means with confidence intervals, quantiles, knees.

/// Two-sided 95% quantiles of Student's t for 1..=30 degrees of freedom.
const T95: [f64; 30] = [
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
    2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
    2.052, 2.048, 2.045, 2.042,
];

/// A mean and its 95% confidence interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    /// The sample mean.
    pub mean: f64,
    /// Lower end of the 95% interval.
    pub low: f64,
    /// Upper end of the 95% interval.
    pub high: f64,
}

/// The mean of `xs` with a Student-t 95% interval (zero width for one sample).
pub fn estimate(xs: &[f64]) -> Estimate {
    let n = xs.len();
    if n == 0 {
        return Estimate {
            mean: f64::NAN,
            low: f64::NAN,
            high: f64::NAN,
        };
    }
    let mean = xs.iter().sum::<f64>() / n as f64;
    if n == 1 {
        return Estimate {
            mean,
            low: mean,
            high: mean,
        };
    }
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    let t = T95.get(n - 2).copied().unwrap_or(1.96);
    let half = t * (var / n as f64).sqrt();
    Estimate {
        mean,
        low: mean - half,
        high: mean + half,
    }
}

/// The `p` quantile (0..=1) of `xs` (nearest rank); NaN when empty.
pub fn quantile(xs: &[f64], p: f64) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let i = ((v.len() - 1) as f64 * p).round() as usize;
    v[i.min(v.len() - 1)]
}

/// The knee of a decreasing convex curve (Kneedle): after normalising both
/// axes to 0..1, the point furthest below the chord from first to last.
/// Returns its index.
pub fn knee_decreasing(xs: &[f64], ys: &[f64]) -> Option<usize> {
    if xs.len() < 3 || xs.len() != ys.len() {
        return None;
    }
    let (x0, x1) = (xs[0], xs[xs.len() - 1]);
    let (ymin, ymax) = ys
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), y| {
            (a.min(*y), b.max(*y))
        });
    if x1 <= x0 || ymax <= ymin {
        return None;
    }
    let mut best = (0usize, f64::NEG_INFINITY);
    for (i, (x, y)) in xs.iter().zip(ys).enumerate() {
        let xn = (x - x0) / (x1 - x0);
        let yn = (y - ymin) / (ymax - ymin);
        // Chord from (0, 1) to (1, 0): y = 1 - x. Distance below it.
        let d = (1.0 - xn) - yn;
        if d > best.1 {
            best = (i, d);
        }
    }
    Some(best.0)
}

/// The index minimising the sum of two costs, each normalised to 0..1.
pub fn balance(a: &[f64], b: &[f64]) -> Option<usize> {
    let norm = |v: &[f64]| {
        let (lo, hi) = v
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), x| {
                (l.min(*x), h.max(*x))
            });
        v.iter()
            .map(|x| if hi > lo { (x - lo) / (hi - lo) } else { 0.0 })
            .collect::<Vec<f64>>()
    };
    let (na, nb) = (norm(a), norm(b));
    (0..a.len().min(b.len())).min_by(|i, j| (na[*i] + nb[*i]).total_cmp(&(na[*j] + nb[*j])))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimate_uses_the_t_distribution() {
        let e = estimate(&[1.0, 2.0, 3.0]);
        assert!((e.mean - 2.0).abs() < 1e-12);
        // sd = 1, n = 3, t(2) = 4.303: half width 4.303/sqrt(3).
        assert!((e.high - e.mean - 4.303 / 3f64.sqrt()).abs() < 1e-9);
        assert_eq!(estimate(&[5.0]).low, 5.0);
    }

    #[test]
    fn knee_of_a_hyperbola() {
        let xs: Vec<f64> = (1..=20).map(f64::from).collect();
        let ys: Vec<f64> = xs.iter().map(|x| 1.0 / x).collect();
        let k = knee_decreasing(&xs, &ys).unwrap();
        assert!((2..=5).contains(&k), "{k}");
    }

    #[test]
    fn balance_picks_the_middle_of_opposing_costs() {
        let up = [0.0, 1.0, 4.0, 9.0, 16.0];
        let down = [16.0, 9.0, 4.0, 1.0, 0.0];
        assert_eq!(balance(&up, &down), Some(2));
    }
}
