//! Strict human durations (`250ms`, `30s`, `15m`, `1h30m`).
//!
//! humantime alone accepts `5 mins` and `1h 30m`; config files are reviewed by people and
//! diffed in Git, so we accept one spelling per unit and no spaces, the way Prometheus does.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// A configured duration. Deserialises from the strict grammar `(<number><unit>)+` with units
/// `ms`, `s`, `m`, `h`, `d`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Dur(pub Duration);

impl Dur {
    pub const fn secs(s: u64) -> Self {
        Dur(Duration::from_secs(s))
    }
    pub const fn millis(ms: u64) -> Self {
        Dur(Duration::from_millis(ms))
    }
    pub fn get(self) -> Duration {
        self.0
    }
}

impl fmt::Debug for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

const UNITS: [(&str, f64); 5] = [
    ("ms", 0.001),
    ("s", 1.0),
    ("m", 60.0),
    ("h", 3600.0),
    ("d", 86400.0),
];

/// Parses the strict duration grammar.
///
/// # Errors
/// A sentence naming the input and the accepted form.
pub fn parse(input: &str) -> Result<Duration, String> {
    let bad = || {
        format!(
            "invalid duration \"{input}\": write a number and a unit (ms, s, m, h, d) with no spaces, such as 30s, 15m or 1h30m"
        )
    };
    if input.is_empty() {
        return Err(bad());
    }
    let mut total = 0f64;
    let mut rest = input;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return Err(bad());
        }
        let number: f64 = rest[..num_len].parse().map_err(|_| bad())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        let scale = UNITS
            .iter()
            .find(|(u, _)| *u == unit)
            .map(|(_, s)| *s)
            .ok_or_else(bad)?;
        total += number * scale;
        rest = &rest[unit_len..];
    }
    if !total.is_finite() || total > 366.0 * 86400.0 {
        return Err(format!("duration \"{input}\" is longer than a year"));
    }
    Ok(Duration::from_secs_f64(total))
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(DurVisitor)
    }
}

/// Accepts strings in the strict grammar; a bare number (`timeout: 30`) gets a message saying
/// the unit is missing rather than "expected a string".
struct DurVisitor;

impl DurVisitor {
    fn no_unit<E: serde::de::Error>(number: impl fmt::Display) -> E {
        E::custom(format!(
            "the duration {number} has no unit: write a number and a unit (ms, s, m, h, d) with no spaces, such as {number}s"
        ))
    }
}

impl serde::de::Visitor<'_> for DurVisitor {
    type Value = Dur;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration such as 30s, 15m or 1h30m")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Dur, E> {
        parse(v).map(Dur).map_err(E::custom)
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Dur, E> {
        Err(Self::no_unit(v))
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Dur, E> {
        if v < 0 {
            return Err(E::custom(format!("a duration cannot be negative, not {v}")));
        }
        Err(Self::no_unit(v))
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Dur, E> {
        if v < 0.0 {
            return Err(E::custom(format!("a duration cannot be negative, not {v}")));
        }
        Err(Self::no_unit(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_strict_grammar() {
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse("2d"), Ok(Duration::from_secs(172_800)));
        assert_eq!(parse("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn rejects_loose_spellings() {
        for bad in [
            "5 mins", "1h 30m", "30", "s", "5mins", "", "-5s", "1.2.3s", "10 s",
        ] {
            let err = parse(bad).expect_err(bad);
            assert!(err.contains(&format!("\"{bad}\"")), "{err}");
        }
        assert!(parse("1000d").unwrap_err().contains("longer than a year"));
    }

    #[test]
    fn a_bare_number_is_told_it_lacks_a_unit() {
        let err = serde_json::from_str::<Dur>("30").unwrap_err().to_string();
        assert!(err.contains("the duration 30 has no unit"), "{err}");
        assert!(err.contains("such as 30s"), "{err}");
        let err = serde_json::from_str::<Dur>("true").unwrap_err().to_string();
        assert!(err.contains("expected a duration such as 30s"), "{err}");
        assert_eq!(
            serde_json::from_str::<Dur>("\"1h30m\"").unwrap(),
            Dur::secs(5400)
        );
    }
}
