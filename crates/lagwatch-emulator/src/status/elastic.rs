//! Elasticsearch index statistics (fact sheet §1.6): `GET /es/{cluster}/{index}/_stats`
//! (also `/_stats/refresh`, `/_stats/indexing`, `/_stats/refresh,indexing`), with the
//! cluster's authentication, `503` during an `unavailable` outage like the index's other routes.
//!
//! Refreshes tick every `refresh_interval` from the emulator's start, as `_search` sees them.
//! `refresh.external_total` counts the ticks so far **that made something new searchable**
//! (a document indexed, or a delete applied, since the tick before), so "did a search-visible
//! refresh happen since the sentinel was indexed" is answered truthfully; `refresh.total`
//! equals it (the emulator makes no internal refreshes), `listeners` is 0. `indexing`:
//! `index_total` documents indexed so far (seeded copies included), `index_current` records
//! committed and not yet indexed (they pile up during a stall), `delete_total`,
//! `delete_current` alike. `primaries` and `total` are equal (no replica shards).

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap};
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Map, Value, json};
use tokio::time::Instant;

use super::super::replication::{ReplicaDef, next_tick};
use super::super::scenario::LieKind;
use super::super::{Emulator, Req, json_response};
use super::{Claim, History, LOG_CAPACITY};

/// Refresh ticks and indexing operations of one replica.
#[derive(Default)]
pub(crate) struct EsLog {
    /// Ticks to come that publish something.
    ticks: BTreeSet<Instant>,
    published: u64,
    last_tick: Option<Instant>,
    /// Published ticks and the count after each.
    history: History<u64>,
    index_pending: BinaryHeap<Reverse<Instant>>,
    indexed: u64,
    delete_pending: BinaryHeap<Reverse<Instant>>,
    deleted: u64,
}

impl EsLog {
    /// A document indexed (or, `delete`, removed) at `at`, searchable at refresh `tick`.
    pub fn note(&mut self, at: Instant, tick: Instant, delete: bool) {
        if self.ticks.len() < LOG_CAPACITY {
            self.ticks.insert(tick);
        }
        let pending = if delete {
            &mut self.delete_pending
        } else {
            &mut self.index_pending
        };
        if pending.len() < LOG_CAPACITY {
            pending.push(Reverse(at));
        }
    }

    pub fn advance(&mut self, now: Instant) {
        while let Some(&t) = self.ticks.first() {
            if t > now {
                break;
            }
            self.ticks.pop_first();
            self.published += 1;
            self.last_tick = Some(t);
            self.history.push(t, self.published);
        }
        for (pending, done) in [
            (&mut self.index_pending, &mut self.indexed),
            (&mut self.delete_pending, &mut self.deleted),
        ] {
            while pending.peek().is_some_and(|Reverse(a)| *a <= now) {
                pending.pop();
                *done += 1;
            }
        }
    }
}

/// Refresh ticks in `(after, upto]`, every `step` from `origin`.
fn ticks_between(origin: Instant, step: Duration, after: Instant, upto: Instant) -> u64 {
    let n = |t: Instant| t.saturating_duration_since(origin).as_nanos() / step.as_nanos().max(1);
    u64::try_from(n(upto).saturating_sub(n(after))).unwrap_or(u64::MAX)
}

impl Emulator {
    /// The refresh tick at which a change of Elasticsearch replica `r` at `at` is searchable.
    pub(crate) fn es_tick(&self, r: &ReplicaDef, at: Instant) -> Instant {
        let refresh = self.es_refresh(r).unwrap_or(Duration::from_secs(1));
        next_tick(self.started, at, refresh)
    }

    /// The claim of Elasticsearch replica `r`: its statistics as `raw` (`refresh`,
    /// `indexing`, `shards_failed`), `external_total` as the counter, the last publishing
    /// refresh as `last_sync`.
    pub(crate) fn es_claim(&self, r: &ReplicaDef, now: Instant, honest: bool) -> Claim {
        let lie = self.lie_for(&r.name, now, honest);
        let refresh = self.es_refresh(r).unwrap_or(Duration::from_secs(1));
        let seeded = self.replica_view(r).map_or(0, |v| v.held_count());
        let (mut external, mut last, indexed, index_current, deleted, delete_current, at_lie) = {
            let mut book = self.book();
            let log = book.es.entry(r.name.clone()).or_default();
            log.advance(now);
            let at_lie = lie.map(|l| log.history.value_at(l.since));
            (
                log.published,
                log.last_tick,
                log.indexed,
                log.index_pending.len() as u64,
                log.deleted,
                log.delete_pending.len() as u64,
                at_lie,
            )
        };
        let mut claim = Claim::new("healthy");
        match (lie, at_lie) {
            (Some(l), Some(then)) if l.kind == LieKind::HealthyWhileStuck => {
                // Every tick since the lie began counts, as if each published something.
                let base = then.map_or(0, |p| p.1);
                let counted = base + ticks_between(self.started, refresh, l.since, now);
                if counted > external {
                    external = counted;
                    let back = now.saturating_duration_since(self.started).as_nanos()
                        % refresh.as_nanos().max(1);
                    last = Some(now - Duration::from_nanos(u64::try_from(back).unwrap_or(0)));
                }
            }
            (Some(l), Some(then)) if l.kind == LieKind::StaleWhileFlowing => {
                external = then.map_or(0, |p| p.1);
                last = then.map(|p| p.0);
            }
            (Some(l), _) if l.kind == LieKind::ErrorWhileFlowing => claim.state = "error",
            _ => {}
        }
        claim.counter = Some(external);
        claim.last_sync = last;
        let millis = |n: u64| n.saturating_mul(2);
        let mut raw = Map::new();
        raw.insert(
            "refresh".into(),
            json!({
                "total": external,
                "total_time_in_millis": millis(external),
                "external_total": external,
                "external_total_time_in_millis": millis(external),
                "listeners": 0,
            }),
        );
        raw.insert(
            "indexing".into(),
            json!({
                "index_total": seeded + indexed,
                "index_time_in_millis": millis(indexed),
                "index_current": index_current,
                "index_failed": 0,
                "delete_total": deleted,
                "delete_time_in_millis": millis(deleted),
                "delete_current": delete_current,
                "noop_update_total": 0,
                "is_throttled": false,
                "throttle_time_in_millis": 0,
            }),
        );
        raw.insert("shards_failed".into(), json!(claim.state == "error"));
        claim.raw = raw;
        claim
    }

    /// `GET /{index}/_stats[/{metrics}]` of the index `replicas` fill (authenticated and
    /// checked for outages by the caller).
    pub(crate) fn es_stats(
        &self,
        req: &Req,
        index: &str,
        replicas: &[&ReplicaDef],
        metrics: Option<&str>,
    ) -> Response {
        let wanted: Vec<&str> = metrics
            .map(|m| m.split(',').map(str::trim).collect())
            .unwrap_or_else(|| vec!["_all"]);
        let all = wanted.iter().any(|m| *m == "_all" || *m == "*");
        if let Some(bad) = wanted
            .iter()
            .find(|m| !matches!(**m, "_all" | "*" | "refresh" | "indexing"))
        {
            return json_response(
                StatusCode::BAD_REQUEST,
                &json!({"error": {"type": "illegal_argument_exception",
                    "reason": format!("request [{}] contains unrecognized metric: [{bad}]", req.path)},
                    "status": 400}),
            );
        }
        let now = Instant::now();
        let claims: Vec<Claim> = replicas
            .iter()
            .map(|r| self.es_claim(r, now, false))
            .collect();
        let sum = |group: &str| {
            let mut out = Map::new();
            for c in &claims {
                let Some(Value::Object(m)) = c.raw.get(group) else {
                    continue;
                };
                for (k, v) in m {
                    let merged = match (out.get(k), v) {
                        (Some(Value::Number(a)), Value::Number(b)) => {
                            json!(a.as_u64().unwrap_or(0) + b.as_u64().unwrap_or(0))
                        }
                        (Some(Value::Bool(a)), Value::Bool(b)) => json!(*a || *b),
                        _ => v.clone(),
                    };
                    out.insert(k.clone(), merged);
                }
            }
            Value::Object(out)
        };
        let mut stats = Map::new();
        for group in ["refresh", "indexing"] {
            if all || wanted.contains(&group) {
                stats.insert(group.into(), sum(group));
            }
        }
        let stats = Value::Object(stats);
        let failed = claims.iter().any(|c| c.state == "error");
        let shards = if failed {
            json!({"total": 1, "successful": 0, "failed": 1, "failures": [{
                "shard": 0, "index": index, "status": "INTERNAL_SERVER_ERROR",
                "reason": {"type": "exception", "reason": "shard statistics unavailable (emulated)"},
            }]})
        } else {
            json!({"total": 1, "successful": 1, "failed": 0})
        };
        let both = json!({"primaries": stats, "total": stats});
        let mut one = json!({"uuid": super::row_id("es-index", index).simple().to_string(),
            "health": "green", "status": "open"});
        if let (Some(o), Some(b)) = (one.as_object_mut(), both.as_object()) {
            o.extend(b.clone());
        }
        json_response(
            StatusCode::OK,
            &json!({"_shards": shards, "_all": both, "indices": {index: one}}),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn external_refreshes_count_ticks_that_published_something() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut log = EsLog::default();
        // Two documents searchable at the 3 s tick, one at 5 s.
        log.note(t0 + s * 2, t0 + s * 3, false);
        log.note(t0 + s * 3, t0 + s * 3, false);
        log.note(t0 + s * 4 + s / 2, t0 + s * 5, true);
        log.advance(t0 + s * 4);
        assert_eq!(
            (log.published, log.indexed, log.index_pending.len()),
            (1, 2, 0)
        );
        assert_eq!(log.delete_pending.len(), 1);
        log.advance(t0 + s * 9);
        assert_eq!((log.published, log.deleted), (2, 1));
        assert_eq!(log.last_tick, Some(t0 + s * 5));
        assert_eq!(log.history.value_at(t0 + s * 4).map(|p| p.1), Some(1));
    }

    #[test]
    fn ticks_between_counts_half_open() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        assert_eq!(ticks_between(t0, s, t0 + s, t0 + s * 4), 3);
        assert_eq!(ticks_between(t0, s, t0 + s / 2, t0 + s), 1);
        assert_eq!(ticks_between(t0, s * 10, t0, t0 + s * 9), 0);
    }
}
