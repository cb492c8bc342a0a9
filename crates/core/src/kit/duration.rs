//! Durations: read from config as humantime writes them (`"5s"`,
//! `"15min"`, `"1h 30m"`), and written for people in one format
//! everywhere: `850 ms`, `4.2 s`, `3 min 20 s`, `2 h 5 min`, `3 d 4 h`.
//! Under a minute a duration is said in seconds.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// Parses a duration as written in config: `"5s"`, `"15min"`, `"1h 30m"`.
pub fn parse(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim()).map_err(|e| {
        format!("invalid duration {text:?} ({e}); write it like \"5s\", \"15min\" or \"1h\"")
    })
}

/// A duration for people: the two largest units that are not zero, and
/// milliseconds only below a second.
pub fn human(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 10 {
        // Latencies under 10 ms keep a tenth of a millisecond.
        let tenths = (d.as_secs_f64() * 10_000.0).round() / 10.0;
        return if tenths.fract() == 0.0 {
            format!("{} ms", tenths as u64)
        } else {
            format!("{tenths:.1} ms")
        };
    }
    if ms < 1000 {
        return format!("{ms} ms");
    }
    let secs = d.as_secs_f64();
    if secs < 60.0 {
        let tenths = (secs * 10.0).round() / 10.0;
        return if tenths.fract() == 0.0 {
            format!("{} s", tenths as u64)
        } else {
            format!("{tenths:.1} s")
        };
    }
    let s = d.as_secs() + u64::from(d.subsec_millis() >= 500);
    let (big, small, names) = match s {
        0..=3599 => (s / 60, s % 60, ("min", "s")),
        3600..=86_399 => (s / 3600, (s % 3600) / 60, ("h", "min")),
        _ => (s / 86_400, (s % 86_400) / 3600, ("d", "h")),
    };
    if small == 0 {
        format!("{big} {}", names.0)
    } else {
        format!("{big} {} {small} {}", names.0, names.1)
    }
}

/// An age (time since something) for people, never negative.
pub fn age(age: chrono::Duration) -> String {
    human(age.to_std().unwrap_or_default())
}

/// Serde: a duration written as text in config.
pub fn de<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    parse(&text).map_err(serde::de::Error::custom)
}

/// Serde: an optional duration written as text in config.
pub fn de_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let text = Option::<String>::deserialize(d)?;
    text.map(|t| parse(&t)).transpose().map_err(serde::de::Error::custom)
}

/// The smallest guard PostgreSQL can hold: its timeouts are whole
/// milliseconds, and `0` means no limit.
pub const GUARD_MIN: Duration = Duration::from_millis(1);

/// The largest: PostgreSQL keeps timeouts in a 32-bit count of milliseconds.
pub const GUARD_MAX: Duration = Duration::from_millis(i32::MAX as u64);

/// A timeout that guards a migration. Zero would turn the guard off
/// without anyone meaning to (`"0s"` reads like "no waiting"), so no limit
/// is written `"off"`, on purpose; a value PostgreSQL cannot hold as whole
/// milliseconds (under 1 ms, or over 24 days) is refused rather than sent
/// rounded, since `'0ms'` would mean no limit at all.
pub fn parse_guard(text: &str) -> Result<Duration, String> {
    if text.trim().eq_ignore_ascii_case("off") {
        return Ok(Duration::ZERO);
    }
    let value = humantime::parse_duration(text.trim()).map_err(|e| {
        format!("invalid duration {text:?} ({e}); write it like \"5s\" or \"15min\", or \"off\"")
    })?;
    if value.is_zero() {
        return Err(format!(
            "{text:?} turns this guard off (PostgreSQL reads 0 as no limit); give a limit like \"5s\", \
             or write \"off\" if no limit is meant"
        ));
    }
    if value < GUARD_MIN {
        return Err(format!(
            "{text:?} is under 1ms, the smallest timeout PostgreSQL holds (it would be sent as 0, \
             which means no limit); give at least \"1ms\""
        ));
    }
    if value > GUARD_MAX {
        return Err(format!(
            "{text:?} is longer than PostgreSQL can hold (about 24 days); give a shorter limit or \"off\""
        ));
    }
    Ok(value)
}

/// Serde: a guard timeout (see [`parse_guard`]).
pub fn de_guard<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    parse_guard(&text).map_err(serde::de::Error::custom)
}

/// A guard timeout as PostgreSQL's `SET` takes it: whole milliseconds.
pub fn guard_setting(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}

/// The pauses of a wait for something that is usually done at once (a
/// session ended by `pg_terminate_backend` leaves within a millisecond or
/// two): short at first, each twice the last, never more than `most`.
pub struct Backoff {
    next: Duration,
    most: Duration,
}

impl Backoff {
    /// Pauses from 2 ms up to `most`.
    pub fn up_to(most: Duration) -> Backoff {
        Backoff { next: Duration::from_millis(2).min(most), most }
    }

    /// Sleeps the next pause.
    pub fn pause(&mut self) {
        std::thread::sleep(self.next);
        self.next = (self.next * 2).min(self.most);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn people_read_two_units_at_most_and_seconds_under_a_minute() {
        assert_eq!(human(Duration::from_millis(35)), "35 ms");
        assert_eq!(human(Duration::from_micros(340)), "0.3 ms");
        assert_eq!(human(Duration::from_millis(4)), "4 ms");
        assert_eq!(human(Duration::from_millis(1234)), "1.2 s");
        assert_eq!(human(Duration::from_secs(42)), "42 s");
        assert_eq!(human(Duration::from_secs(59)), "59 s");
        assert_eq!(human(Duration::from_secs(120)), "2 min");
        assert_eq!(human(Duration::from_secs(200)), "3 min 20 s");
        assert_eq!(human(Duration::from_secs(5400)), "1 h 30 min");
        assert_eq!(human(Duration::from_secs(3 * 86_400 + 7200)), "3 d 2 h");
        assert_eq!(age(chrono::Duration::seconds(-5)), "0 ms");
    }

    #[test]
    fn guards_refuse_what_postgres_would_read_as_no_limit() {
        assert_eq!(parse_guard("off"), Ok(Duration::ZERO));
        assert!(parse_guard("0s").unwrap_err().contains("\"off\""));
        assert!(parse_guard("900us").unwrap_err().contains("1ms"), "under a millisecond");
        assert_eq!(parse_guard("1ms"), Ok(Duration::from_millis(1)));
        assert!(parse_guard("30days").unwrap_err().contains("24 days"));
        assert_eq!(guard_setting(Duration::from_millis(1500)), "1500ms");
        assert!(parse("5 parsecs").unwrap_err().contains("invalid duration"));
    }

    #[test]
    fn a_backoff_doubles_its_pauses_up_to_its_most() {
        let mut b = Backoff::up_to(Duration::from_millis(10));
        let mut seen = Vec::new();
        for _ in 0..5 {
            seen.push(b.next.as_millis());
            b.pause();
        }
        assert_eq!(seen, [2, 4, 8, 10, 10]);
        assert_eq!(Backoff::up_to(Duration::from_millis(1)).next, Duration::from_millis(1));
    }
}
