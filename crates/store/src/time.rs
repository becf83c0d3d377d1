//! Times in the store are Unix milliseconds (UTC). This module formats them as RFC 3339 and parses
//! the forms users type in `since=`/`until=`: RFC 3339 (`2026-11-21T18:00:00Z`), a date
//! (`2026-11-21`), Unix seconds (`1763748000`), or an age relative to now (`90m`, `24h`, `7d`).

use std::time::{SystemTime, UNIX_EPOCH};

/// Now, in Unix milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

// Howard Hinnant's civil-from-days / days-from-civil (public domain algorithms).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `1763748000123` -> `2025-11-21T18:00:00.123Z`.
pub fn format_rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let milli = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{milli:03}Z",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    )
}

fn num(s: &str) -> Option<i64> {
    if s.is_empty() || s.len() > 18 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Parse a user-supplied time (see the module doc). `now` is used for relative ages.
pub fn parse_time(s: &str, now: i64) -> Option<i64> {
    let s = s.trim();
    if let Some(n) = num(s) {
        // Unix seconds; a 13-digit number is taken as milliseconds.
        return Some(if s.len() >= 13 {
            n
        } else {
            n.checked_mul(1000)?
        });
    }
    if let Some(unit) = s.chars().last() {
        let mult = match unit {
            's' => Some(1000),
            'm' => Some(60_000),
            'h' => Some(3_600_000),
            'd' => Some(86_400_000),
            'w' => Some(7 * 86_400_000),
            _ => None,
        };
        if let (Some(mult), Some(n)) = (mult, s.strip_suffix(unit).and_then(num)) {
            return now.checked_sub(n.checked_mul(mult)?);
        }
    }
    // YYYY-MM-DD[THH:MM[:SS[.fff]]][Z|+HH:MM]
    let b = s.as_bytes();
    if !s.is_ascii() || b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let y = num(&s[0..4])?;
    let mo = u32::try_from(num(&s[5..7])?).ok()?;
    let d = u32::try_from(num(&s[8..10])?).ok()?;
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return None;
    }
    let mut ms = days_from_civil(y, mo, d) * 86_400_000;
    let rest = &s[10..];
    if rest.is_empty() {
        return Some(ms);
    }
    let rest = rest.strip_prefix(['T', 't', ' '])?;
    let (clock, tz) = match rest.find(['Z', 'z', '+', '-']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let mut parts = clock.splitn(3, ':');
    let h = num(parts.next()?)?;
    let mi = num(parts.next()?)?;
    let (sec, frac) = match parts.next() {
        Some(sec) => match sec.split_once('.') {
            Some((s, f)) => (num(s)?, f),
            None => (num(sec)?, ""),
        },
        None => (0, ""),
    };
    if h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    ms += (h * 3600 + mi * 60 + sec) * 1000;
    if !frac.is_empty() {
        let f: String = frac.chars().chain("000".chars()).take(3).collect();
        ms += num(&f)?;
    }
    match tz {
        "" | "Z" | "z" => {}
        tz => {
            let sign = if tz.starts_with('-') { -1 } else { 1 };
            let (th, tm) = tz[1..].split_once(':').unwrap_or((&tz[1..], "0"));
            if th.len() > 2 || tm.len() > 2 {
                return None;
            }
            ms -= sign * (num(th)? * 3600 + num(tm)? * 60) * 1000;
        }
    }
    Some(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip() {
        let t = parse_time("2026-11-21T18:00:00.123Z", 0).unwrap();
        assert_eq!(format_rfc3339(t), "2026-11-21T18:00:00.123Z");
        assert_eq!(parse_time("1970-01-02", 0), Some(86_400_000));
        assert_eq!(parse_time("86400", 0), Some(86_400_000));
        assert_eq!(parse_time("2h", 10_000_000), Some(10_000_000 - 7_200_000));
        assert_eq!(
            parse_time("2026-11-21T19:00:00+01:00", 0),
            parse_time("2026-11-21T18:00:00Z", 0)
        );
        assert_eq!(parse_time("'; DROP TABLE reports; --", 0), None);
        assert_eq!(parse_time("2026-13-01", 0), None);
        assert_eq!(parse_time("2026-01-01T00:00+999999999999999999", 0), None);
        assert_eq!(parse_time("2026-01-0\u{e9}", 0), None);
    }
}
