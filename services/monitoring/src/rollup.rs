//! Hourly rollups beside the per-minute rows: a range is read as the whole hours inside it
//! (from the hourly tables) plus the minutes at its two edges (from the minute tables), so a
//! month costs 720 hourly rows per key instead of 43,200 minute rows.

/// An hour, milliseconds.
pub const HOUR_MS: i64 = 3_600_000;

/// The start of the hour holding `t`.
pub fn hour_of(t: i64) -> i64 {
    t.div_euclid(HOUR_MS) * HOUR_MS
}

/// How `[from, to)` is read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Split {
    /// Whole hours `[start, end)`, read from the hourly tables.
    pub hours: Option<(i64, i64)>,
    /// The rest, read from the minute tables.
    pub minutes: Vec<(i64, i64)>,
}

/// Splits `[from, to)` into its whole hours and the edges around them.
pub fn split(from: i64, to: i64) -> Split {
    if from >= to {
        return Split::default();
    }
    let first = if from % HOUR_MS == 0 {
        from
    } else {
        hour_of(from) + HOUR_MS
    };
    let last = hour_of(to);
    if first >= last {
        return Split {
            hours: None,
            minutes: vec![(from, to)],
        };
    }
    let minutes = [(from, first), (last, to)].into_iter().filter(|(a, b)| a < b).collect();
    Split {
        hours: Some((first, last)),
        minutes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_hours_and_their_edges() {
        let h = HOUR_MS;
        assert_eq!(
            split(0, 3 * h),
            Split {
                hours: Some((0, 3 * h)),
                minutes: vec![]
            }
        );
        assert_eq!(
            split(h / 2, 3 * h + 60_000),
            Split {
                hours: Some((h, 3 * h)),
                minutes: vec![(h / 2, h), (3 * h, 3 * h + 60_000)]
            }
        );
        assert_eq!(
            split(h / 2, h + h / 2),
            Split {
                hours: None,
                minutes: vec![(h / 2, h + h / 2)]
            }
        );
        assert_eq!(split(5, 5), Split::default());
    }
}
