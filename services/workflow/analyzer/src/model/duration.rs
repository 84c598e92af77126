//! ISO-8601 durations (`P1D`, `PT2H`), as wait steps and timeouts give them.

/// Checks an ISO-8601 duration (`P1D`, `PT2H`, `P1Y2M3W4DT5H6M7.5S`); `Some(nonzero)` when valid.
pub(super) fn duration_is_nonzero(text: &str) -> Option<bool> {
    let rest = text.strip_prefix('P')?;
    let (date, time) = match rest.split_once('T') {
        Some((date, time)) => (date, Some(time)),
        None => (rest, None),
    };
    let mut nonzero = false;
    let date_parts = duration_parts(date, &['Y', 'M', 'W', 'D'], &mut nonzero)?;
    let time_parts = match time {
        // A bare "T" with nothing after it is malformed.
        Some(time) => Some(duration_parts(time, &['H', 'M', 'S'], &mut nonzero)?).filter(|&n| n > 0)?,
        None => 0,
    };
    (date_parts + time_parts > 0).then_some(nonzero)
}

/// Counts `<number><unit>` pairs, units in the given order, each at most once.
fn duration_parts(text: &str, units: &[char], nonzero: &mut bool) -> Option<usize> {
    let mut allowed = units;
    let mut count = 0;
    let mut number_start = 0;
    for (at, c) in text.char_indices() {
        if c.is_ascii_digit() || c == '.' || c == ',' {
            continue;
        }
        let position = allowed.iter().position(|&u| u == c)?;
        allowed = allowed.get(position + 1..)?;
        let number = text.get(number_start..at)?;
        if !is_decimal(number) {
            return None;
        }
        *nonzero |= number.bytes().any(|b| (b'1'..=b'9').contains(&b));
        count += 1;
        number_start = at + c.len_utf8();
    }
    (number_start == text.len()).then_some(count)
}

/// `\d+([.,]\d+)?`, the number syntax ISO-8601 durations allow.
fn is_decimal(text: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    match text.split_once(['.', ',']) {
        Some((whole, fraction)) => digits(whole) && digits(fraction),
        None => digits(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_durations() {
        for ok in ["P1D", "PT2H", "P1Y2M3W4DT5H6M7.5S", "PT0,5S", "P0D"] {
            assert!(duration_is_nonzero(ok).is_some(), "{ok}");
        }
        for bad in [
            "", "P", "PT", "1D", "P1", "PD", "P1H", "PT1D", "P1D2Y", "P1DT", "p1d", "P1.D", "P-1D", "P1DD",
        ] {
            assert_eq!(duration_is_nonzero(bad), None, "{bad}");
        }
        assert_eq!(duration_is_nonzero("PT0S"), Some(false));
        assert_eq!(duration_is_nonzero("PT0.5S"), Some(true));
    }
}
