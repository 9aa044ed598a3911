//! Which thresholds a change of spend crossed. Pure arithmetic, in whole percent of the limit.

/// Thresholds used when the operator names none: warn at 80 %, tell at 100 %.
pub const DEFAULT_THRESHOLDS: [u8; 2] = [80, 100];

/// The thresholds (percent of `limit`) that `spent` reached going from `before` to `after`:
/// those `t` with `before < t% of limit <= after`, in ascending order. Nothing for a zero
/// limit or a spend that did not grow. Exact (no floating point): `spent * 100 >= t * limit`.
pub fn crossed(thresholds: &[u8], limit: u64, before: u64, after: u64) -> Vec<u8> {
    if limit == 0 || after <= before {
        return Vec::new();
    }
    let reached = |spent: u64, t: u8| u128::from(spent) * 100 >= u128::from(t) * u128::from(limit);
    let mut out: Vec<u8> = thresholds
        .iter()
        .copied()
        .filter(|&t| t > 0 && reached(after, t) && !reached(before, t))
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// Parses `80,100` (percentages 1 to 100, comma-separated, spaces allowed) into a sorted,
/// de-duplicated list; an error names the bad entry.
pub fn parse_thresholds(text: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    for part in text.split(',').map(str::trim) {
        match part.parse::<u8>() {
            Ok(t) if (1..=100).contains(&t) => out.push(t),
            _ => {
                return Err(format!(
                    "budget notification threshold {part:?} is not a whole percentage from 1 to 100"
                ))
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    if out.is_empty() {
        return Err("no budget notification threshold given".to_owned());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn crossings_are_exact_at_the_edges() {
        let t = DEFAULT_THRESHOLDS;
        assert_eq!(crossed(&t, 1000, 0, 799), Vec::<u8>::new());
        assert_eq!(crossed(&t, 1000, 0, 800), vec![80]);
        assert_eq!(crossed(&t, 1000, 799, 1000), vec![80, 100]);
        assert_eq!(
            crossed(&t, 1000, 800, 999),
            Vec::<u8>::new(),
            "80 already reached"
        );
        assert_eq!(
            crossed(&t, 1000, 999, 5000),
            vec![100],
            "overshoot still tells once"
        );
        assert_eq!(crossed(&t, 1000, 1000, 5000), Vec::<u8>::new());
        // 80 % of 3 is 2.4: reached at 3 (3 * 100 >= 80 * 3), not at 2.
        assert_eq!(crossed(&t, 3, 0, 2), Vec::<u8>::new());
        assert_eq!(crossed(&t, 3, 2, 3), vec![80, 100]);
        assert_eq!(crossed(&t, 0, 0, 10), Vec::<u8>::new(), "no limit");
        assert_eq!(crossed(&t, 10, 5, 5), Vec::<u8>::new(), "no growth");
        assert_eq!(
            crossed(&t, u64::MAX, 0, u64::MAX),
            vec![80, 100],
            "no overflow"
        );
    }

    #[test]
    fn every_threshold_is_crossed_exactly_once_over_any_path() {
        // Whatever steps the spend takes from 0 to past the limit, each threshold fires once.
        let thresholds = [1, 25, 50, 80, 99, 100];
        for limit in [1u64, 3, 7, 100, 1001] {
            for step in 1..=limit.min(13) {
                let mut fired = Vec::new();
                let mut spent = 0;
                while spent <= limit {
                    fired.extend(crossed(&thresholds, limit, spent, spent + step));
                    spent += step;
                }
                assert_eq!(fired, thresholds, "limit {limit} step {step}");
            }
        }
    }

    #[test]
    fn thresholds_parse_strictly() {
        assert_eq!(parse_thresholds("100, 80,80").unwrap(), vec![80, 100]);
        assert_eq!(parse_thresholds("50").unwrap(), vec![50]);
        for bad in ["", "0", "101", "80,", "eighty", "-5", "80.5"] {
            assert!(parse_thresholds(bad).is_err(), "{bad:?}");
        }
    }
}
