//! Medians, percentiles and spreads: what the custom loops report. A figure
//! from a shared, noisy machine is its median with the spread beside it;
//! a single number would hide how much the neighbours moved it.

/// The `q`-quantile (0.0..=1.0) of `samples`, nearest rank. Sorts in place.
pub fn quantile(samples: &mut [f64], q: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    samples.sort_by(f64::total_cmp);
    let rank = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
    samples[rank - 1]
}

pub fn median(samples: &mut [f64]) -> f64 {
    quantile(samples, 0.5)
}

/// Median, minimum and maximum, as "m (min..max)".
pub fn spread(samples: &mut [f64], digits: usize) -> String {
    let m = median(samples);
    let (lo, hi) = (samples[0], samples[samples.len() - 1]);
    format!("{m:.digits$} ({lo:.digits$}..{hi:.digits$})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_quantiles_of_one_to_a_hundred_are_the_ranks() {
        let mut samples: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        assert_eq!(quantile(&mut samples, 0.5), 50.0);
        assert_eq!(quantile(&mut samples, 0.99), 99.0);
        assert_eq!(quantile(&mut samples, 1.0), 100.0);
        assert_eq!(quantile(&mut samples, 0.0), 1.0);
    }

    #[test]
    fn the_spread_shows_the_median_between_the_extremes() {
        let mut samples = vec![3.0, 1.0, 2.0];
        assert_eq!(spread(&mut samples, 1), "2.0 (1.0..3.0)");
    }
}
