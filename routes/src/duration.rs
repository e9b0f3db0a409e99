//! Go-style durations (`100ms`, `1.5s`, `1m30s`, `1h`), as Skipper writes them.

use std::time::Duration;

/// Parses a sequence of `<number><unit>` terms, unit one of `ms`, `s`, `m`, `h`.
/// A bare number is refused: `10` could mean seconds or milliseconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = |why: &str| Err(format!("invalid duration {text:?}: {why}"));
    let s = text.trim();
    if s.is_empty() {
        return bad("empty");
    }
    if s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return bad("a unit is required (ms, s, m, h), e.g. \"10s\"");
    }
    let mut rest = s;
    let mut nanos: u128 = 0;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, tail) = rest.split_at(digits);
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return bad("expected a number before each unit");
        }
        let (unit_nanos, unit_len) = if tail.starts_with("ms") {
            (1_000_000u128, 2)
        } else if tail.starts_with('s') {
            (1_000_000_000, 1)
        } else if tail.starts_with('m') {
            (60_000_000_000, 1)
        } else if tail.starts_with('h') {
            (3_600_000_000_000, 1)
        } else {
            return bad("units are ms, s, m, h");
        };
        nanos = nanos.saturating_add(scaled(number, unit_nanos));
        rest = &tail[unit_len..];
    }
    match u64::try_from(nanos) {
        Ok(n) => Ok(Duration::from_nanos(n)),
        Err(_) => bad("too long"),
    }
}

/// `number` (digits with at most one '.') times `unit` nanoseconds, exactly
/// for up to nine fractional digits (finer fractions are dropped).
fn scaled(number: &str, unit: u128) -> u128 {
    let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
    let whole: u128 = whole.parse().unwrap_or(0);
    let mut total = whole.saturating_mul(unit);
    let mut scale = unit;
    for digit in frac.bytes().take(18) {
        scale /= 10;
        total += u128::from(digit - b'0') * scale;
    }
    total
}

/// Formats like Go's `time.Duration.String` for the units above: `1s`,
/// `100ms`, `1m30s`, `1.5s`, `1h0m0s` is shortened to `1h`.
pub fn format_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".to_owned();
    }
    if nanos < 1_000_000_000 {
        return format!("{}ms", trim_fraction(nanos, 1_000_000));
    }
    let hours = nanos / 3_600_000_000_000;
    let minutes = nanos / 60_000_000_000 % 60;
    let seconds = nanos % 60_000_000_000;
    let mut out = String::new();
    if hours > 0 {
        out.push_str(&format!("{hours}h"));
    }
    if minutes > 0 {
        out.push_str(&format!("{minutes}m"));
    }
    if seconds > 0 {
        out.push_str(&format!("{}s", trim_fraction(seconds, 1_000_000_000)));
    }
    out
}

/// `value / unit` as a decimal without trailing zeros.
fn trim_fraction(value: u128, unit: u128) -> String {
    let whole = value / unit;
    let frac = value % unit;
    if frac == 0 {
        return whole.to_string();
    }
    let width = unit.ilog10() as usize;
    let digits = format!("{frac:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_style_durations() {
        let ms = Duration::from_millis;
        assert_eq!(parse_duration("100ms"), Ok(ms(100)));
        assert_eq!(parse_duration("10s"), Ok(ms(10_000)));
        assert_eq!(parse_duration("1.5s"), Ok(ms(1_500)));
        assert_eq!(parse_duration("1m"), Ok(ms(60_000)));
        assert_eq!(parse_duration("1m30s"), Ok(ms(90_000)));
        assert_eq!(parse_duration("1h"), Ok(ms(3_600_000)));
        assert_eq!(parse_duration("0.25ms"), Ok(Duration::from_micros(250)));
    }

    #[test]
    fn refuses_bad_durations() {
        for bad in [
            "", "10", "1.5", "s", "10x", "1.2.3s", "-1s", "10 s", "ms", ".s",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be refused");
        }
        assert_eq!(
            parse_duration("10").unwrap_err(),
            "invalid duration \"10\": a unit is required (ms, s, m, h), e.g. \"10s\""
        );
    }

    #[test]
    fn formats_round_trip() {
        for text in [
            "100ms", "1s", "1.5s", "1m30s", "1h", "2h5m", "0.25ms", "10s",
        ] {
            let d = parse_duration(text).unwrap();
            assert_eq!(format_duration(d), text);
        }
        assert_eq!(format_duration(Duration::ZERO), "0s");
    }
}
