//! Conflict probes (`conflicts:` in YAML): two systems linked both ways, written on both sides
//! at once, and read until they agree.
//!
//! ```yaml
//! conflicts:
//!   - between: [crm, fno]          # two sources linked both ways (dual-write, a sync, …)
//!     policy: last_writer_wins     # | { source_wins: crm } | manual
//!     interval: 15m                # between probes (default 15m)
//!     spread: 0s                   # from the first update to the second (0s: together)
//!     timeout: 5m                  # how long the sides may take to agree (default 5m)
//! ```

use std::collections::HashSet;

use serde::Deserialize;

use super::system::Systems;
use super::{Dur, Issue};

/// Defaults of a conflict probe.
pub mod default {
    use crate::config::Dur;
    /// One probe every 15 minutes: four updates an hour on a row of each side.
    pub const INTERVAL: Dur = Dur::secs(900);
    pub const SPREAD: Dur = Dur::secs(0);
    /// Dual-write agrees in seconds; five minutes leaves room for a queue to drain.
    pub const TIMEOUT: Dur = Dur::secs(300);
}

/// Which of two concurrent updates the link is declared to keep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Policy {
    /// The update made later wins, on both sides. Judged on lagwatch's clock: the true order.
    LastWriterWins,
    /// The named system's update wins, whichever came later.
    SourceWins(String),
    /// Nothing is resolved automatically: any agreement is fine, a divergence is not.
    Manual,
}

impl Policy {
    /// The policy as the API and logs name it.
    pub fn describe(&self) -> String {
        match self {
            Policy::LastWriterWins => "last_writer_wins".to_string(),
            Policy::SourceWins(s) => format!("source_wins: {s}"),
            Policy::Manual => "manual".to_string(),
        }
    }
}

/// One validated conflict probe.
#[derive(Debug, Clone, PartialEq)]
pub struct ConflictSpec {
    /// The first system of `between`: the canary row is created here.
    pub a: String,
    pub b: String,
    pub policy: Policy,
    pub interval: Dur,
    pub spread: Dur,
    pub timeout: Dur,
    /// Deadline of one request to either side.
    pub request_timeout: Dur,
}

/// A `conflicts[i]` entry as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConflict {
    between: Vec<String>,
    /// A name, or `{ source_wins: <system> }`: read by [`policy`] for messages in YAML words.
    policy: serde_json::Value,
    #[serde(default)]
    interval: Option<Dur>,
    #[serde(default)]
    spread: Option<Dur>,
    #[serde(default)]
    timeout: Option<Dur>,
    #[serde(default)]
    request_timeout: Option<Dur>,
}

const POLICIES: &str = "last_writer_wins, manual, or source_wins: <one of the two systems>";

/// Checks every entry against the declared systems.
pub(super) fn resolve(
    raw: Vec<RawConflict>,
    systems: &Systems,
) -> Result<Vec<ConflictSpec>, Issue> {
    let mut out = Vec::with_capacity(raw.len());
    let mut pairs = HashSet::new();
    for (i, r) in raw.into_iter().enumerate() {
        let key = format!("conflicts[{i}]");
        let [a, b] = <[String; 2]>::try_from(r.between).map_err(|given| {
            Issue::new(
                format!("{key}.between"),
                format!(
                    "name exactly two systems linked both ways, such as [crm, fno] (found {})",
                    given.len()
                ),
            )
        })?;
        if a == b {
            return Err(Issue::new(
                format!("{key}.between"),
                format!("\"{a}\" is named twice: a conflict needs two different systems"),
            ));
        }
        let mut pair = [a.clone(), b.clone()];
        pair.sort();
        if !pairs.insert(pair) {
            return Err(Issue::new(
                format!("{key}.between"),
                format!("{a} and {b} already have a conflict probe: one per pair"),
            ));
        }
        for name in [&a, &b] {
            let Some(spec) = systems.get(name) else {
                let known: Vec<&str> = systems.keys().map(String::as_str).collect();
                return Err(Issue::new(
                    format!("{key}.between"),
                    format!(
                        "unknown system \"{name}\"; the systems are: {}",
                        known.join(", ")
                    ),
                ));
            };
            if let Err(why) = spec.can_write().and_then(|()| spec.can_update()) {
                return Err(Issue::new(
                    format!("{key}.between"),
                    format!(
                        "system \"{name}\" (kind {}) cannot take part in a conflict probe, which updates one row on both sides: {why}",
                        spec.kind()
                    ),
                ));
            }
        }
        if let Some(spec) = systems.get(&b)
            && let Err(why) = spec.updates_copies()
        {
            return Err(Issue::new(
                format!("{key}.between"),
                format!(
                    "system \"{b}\" (kind {}) cannot be the second system of a conflict probe, which finds the canary row the link copied there: {why}",
                    spec.kind()
                ),
            ));
        }
        let policy = policy(&key, r.policy, &a, &b)?;
        let interval = r.interval.unwrap_or(default::INTERVAL);
        let spread = r.spread.unwrap_or(default::SPREAD);
        let timeout = r.timeout.unwrap_or(default::TIMEOUT);
        let request_timeout = r.request_timeout.unwrap_or(super::default::REQUEST_TIMEOUT);
        if interval.get().is_zero() {
            return Err(Issue::new(
                format!("{key}.interval"),
                "must be longer than 0s (leave the entry out to run no conflict probe)",
            ));
        }
        if spread.get() >= timeout.get() {
            return Err(Issue::new(
                format!("{key}.spread"),
                format!(
                    "{spread} is not shorter than the timeout ({timeout}): the second update would come after the probe gave up"
                ),
            ));
        }
        if timeout.get() + spread.get() > interval.get() {
            return Err(Issue::new(
                format!("{key}.timeout"),
                format!(
                    "spread plus timeout ({spread} + {timeout}) is longer than the interval ({interval}): a probe must end before the next one writes the same row"
                ),
            ));
        }
        out.push(ConflictSpec {
            a,
            b,
            policy,
            interval,
            spread,
            timeout,
            request_timeout,
        });
    }
    Ok(out)
}

/// `last_writer_wins`, `manual` or `{ source_wins: <a or b> }`.
fn policy(key: &str, v: serde_json::Value, a: &str, b: &str) -> Result<Policy, Issue> {
    let unknown =
        |what: String| Issue::new(format!("{key}.policy"), format!("{what}; write {POLICIES}"));
    match v {
        serde_json::Value::String(n) if n == "last_writer_wins" => Ok(Policy::LastWriterWins),
        serde_json::Value::String(n) if n == "manual" => Ok(Policy::Manual),
        serde_json::Value::String(n) if n == "source_wins" => Err(unknown(
            "source_wins needs the system whose update wins".to_string(),
        )),
        serde_json::Value::String(n) => Err(unknown(format!("unknown policy \"{n}\""))),
        serde_json::Value::Object(m) => {
            let mut entries = m.into_iter();
            match (entries.next(), entries.next()) {
                (Some((k, serde_json::Value::String(s))), None) if k == "source_wins" => {
                    if s == a || s == b {
                        Ok(Policy::SourceWins(s))
                    } else {
                        Err(Issue::new(
                            format!("{key}.policy.source_wins"),
                            format!("\"{s}\" is not one of the two systems ({a}, {b})"),
                        ))
                    }
                }
                (Some((k, _)), None) if k == "source_wins" => Err(Issue::new(
                    format!("{key}.policy.source_wins"),
                    "expected the name of one of the two systems",
                )),
                _ => Err(unknown("unknown policy".to_string())),
            }
        }
        _ => Err(unknown(
            "expected a policy name or source_wins: <system>".to_string(),
        )),
    }
}
