//! Rollups beside the per-minute rows: a range is read as the whole days inside it (where a
//! table keeps days), the whole hours at the days' edges and the minutes at the hours' edges,
//! so a month costs 30 daily rows per key instead of 43,200 minute rows.

/// A minute, milliseconds.
pub const MINUTE_MS: i64 = 60_000;
/// An hour, milliseconds.
pub const HOUR_MS: i64 = 3_600_000;
/// A day (UTC), milliseconds.
pub const DAY_MS: i64 = 86_400_000;

/// The start of the `span` holding `t`.
pub fn start_of(t: i64, span: i64) -> i64 {
    t.div_euclid(span) * span
}

/// The start of the hour holding `t`.
pub fn hour_of(t: i64) -> i64 {
    start_of(t, HOUR_MS)
}

/// One stretch of a range and the span its rows are kept at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Part {
    /// [`MINUTE_MS`] (the raw rows), [`HOUR_MS`] or [`DAY_MS`] (rollups).
    pub span: i64,
    pub from: i64,
    pub to: i64,
}

/// Splits `[from, to)` into stretches of whole units, in time order: the coarsest span up to
/// `coarsest` in the middle, finer ones at the edges down to minutes.
pub fn split(from: i64, to: i64, coarsest: i64) -> Vec<Part> {
    let mut parts = Vec::new();
    push(&mut parts, from, to, coarsest);
    parts
}

fn push(parts: &mut Vec<Part>, from: i64, to: i64, span: i64) {
    if from >= to {
        return;
    }
    let finer = match span {
        DAY_MS => HOUR_MS,
        HOUR_MS => MINUTE_MS,
        _ => {
            parts.push(Part {
                span: MINUTE_MS,
                from,
                to,
            });
            return;
        }
    };
    let first = if from % span == 0 {
        from
    } else {
        start_of(from, span) + span
    };
    let last = start_of(to, span);
    if first >= last {
        return push(parts, from, to, finer);
    }
    push(parts, from, first, finer);
    parts.push(Part {
        span,
        from: first,
        to: last,
    });
    push(parts, last, to, finer);
}

/// The coarsest span whose rows each fall in one time bucket of `bucket_ms` on the epoch grid.
pub fn span_for_bucket(bucket_ms: i64) -> i64 {
    [DAY_MS, HOUR_MS]
        .into_iter()
        .find(|span| bucket_ms % span == 0)
        .unwrap_or(MINUTE_MS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(span: i64, from: i64, to: i64) -> Part {
        Part { span, from, to }
    }

    #[test]
    fn whole_units_and_their_edges() {
        let (m, h, d) = (MINUTE_MS, HOUR_MS, DAY_MS);
        assert_eq!(split(0, 3 * h, h), vec![p(h, 0, 3 * h)]);
        assert_eq!(
            split(h / 2, 3 * h + m, h),
            vec![p(m, h / 2, h), p(h, h, 3 * h), p(m, 3 * h, 3 * h + m)]
        );
        assert_eq!(split(h / 2, h + h / 2, h), vec![p(m, h / 2, h + h / 2)]);
        assert!(split(5, 5, h).is_empty());
        assert_eq!(
            split(d - h - m, 3 * d + h + m, d),
            vec![
                p(m, d - h - m, d - h),
                p(h, d - h, d),
                p(d, d, 3 * d),
                p(h, 3 * d, 3 * d + h),
                p(m, 3 * d + h, 3 * d + h + m),
            ]
        );
        assert_eq!(split(0, 2 * d, h), vec![p(h, 0, 2 * d)], "no coarser than asked");
        assert_eq!(split(0, 2 * d, m), vec![p(m, 0, 2 * d)]);
    }

    #[test]
    fn every_millisecond_once() {
        for (from, to) in [(17, 5 * DAY_MS + 3), (HOUR_MS - 1, DAY_MS + 1), (0, MINUTE_MS)] {
            let parts = split(from, to, DAY_MS);
            assert_eq!(parts.first().map(|x| x.from), Some(from));
            assert_eq!(parts.last().map(|x| x.to), Some(to));
            assert!(parts.windows(2).all(|w| w[0].to == w[1].from));
            assert!(parts.iter().all(|x| x.from % x.span == 0 || x.span == MINUTE_MS));
        }
    }

    #[test]
    fn spans_for_time_buckets() {
        assert_eq!(span_for_bucket(DAY_MS), DAY_MS);
        assert_eq!(span_for_bucket(7 * DAY_MS), DAY_MS);
        assert_eq!(span_for_bucket(12 * HOUR_MS), HOUR_MS);
        assert_eq!(span_for_bucket(5 * MINUTE_MS), MINUTE_MS);
    }
}
