//! RFC 3339 timestamps (`2026-11-27T20:30:05.148841347Z`) without a date library.

use std::time::{SystemTime, UNIX_EPOCH};

/// Now, in UTC, with nanoseconds, as Docker prints `Created`.
pub(crate) fn now_rfc3339() -> String {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    format_rfc3339(d.as_secs(), d.subsec_nanos())
}

/// A stored timestamp as Go's `RFC3339Nano` prints it (Docker's `Created`): the fraction's
/// trailing zeros dropped, and the fraction with them when nothing is left
/// (`...05.148841300Z` is `...05.1488413Z`, `...05.000000000Z` is `...05Z`).
pub(crate) fn go_rfc3339(stored: &str) -> String {
    let Some((whole, rest)) = stored.split_once('.') else {
        return stored.to_owned();
    };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let (fraction, zone) = rest.split_at(digits);
    let fraction = fraction.trim_end_matches('0');
    if fraction.is_empty() {
        format!("{whole}{zone}")
    } else {
        format!("{whole}.{fraction}{zone}")
    }
}

pub(crate) fn format_rfc3339(secs: u64, nanos: u32) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_drops_trailing_zeros() {
        assert_eq!(
            go_rfc3339("2026-12-06T09:15:49.902042600Z"),
            "2026-12-06T09:15:49.9020426Z"
        );
        assert_eq!(
            go_rfc3339("2026-12-06T09:15:49.000000000Z"),
            "2026-12-06T09:15:49Z"
        );
        assert_eq!(
            go_rfc3339("2026-12-06T09:15:49.123456789Z"),
            "2026-12-06T09:15:49.123456789Z"
        );
        assert_eq!(go_rfc3339("2026-12-06T09:15:49Z"), "2026-12-06T09:15:49Z");
    }

    #[test]
    fn known_dates() {
        assert_eq!(format_rfc3339(0, 0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            format_rfc3339(1_795_811_405, 148_841_347),
            "2026-11-27T20:30:05.148841347Z"
        );
        assert_eq!(
            format_rfc3339(951_782_400, 0),
            "2000-02-29T00:00:00.000000000Z"
        );
    }
}
