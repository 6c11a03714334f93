//! `elasticsearch_refresh`: the refresh count of the target's index (fact sheet §1.1, §1.6).
//! One request, with the system's credentials:
//!
//! ```http
//! GET {base}/{index}/_stats/refresh,indexing
//! → 200 {"_shards":{…},"_all":{"primaries":{"refresh":{"total":…,"external_total":…},"indexing":{…}},"total":{…}},"indices":{…}}
//! ```
//!
//! Why a count and no state: Elasticsearch has no sync status. What decides whether an indexed
//! document is searchable is a refresh after it, and `refresh.external_total` counts the
//! refreshes that made changes visible to search (internal refreshes are not counted). The
//! engine turns an increase between two reads into "a refresh happened in between"; fetching
//! the statistics does not itself mark a shard as searched (elastic/elasticsearch#40458), so
//! reading them cannot hide an idle shard.
//!
//! `syncs` is `_all.primaries.refresh.external_total`: the primaries' count grows once per
//! refresh of each primary shard, not again per replica. When an answer has no `primaries`
//! (a restricted `filter_path`, a proxy), `_all.total` is read instead and `raw` says so. The
//! state is healthy whenever the count is there: the statistics answer, nothing more. An
//! answer without `external_total` (versions before it was added) is unknown; `last_sync` is
//! never given. Errors come as Elasticsearch's `{"error":{"type","reason"}}`.

use async_trait::async_trait;
use reqwest::Client;
use serde_json::Value;

use super::{Access, Field, claim, get};
use crate::connector::ConnectorError;
use crate::connector::status::{Claim, ClaimState, StatusReader};
use crate::net::{HttpSystem, excerpt};
use crate::percent;
use crate::systems::wire::es_error;

/// What reading index statistics needs.
pub const ACCESS: Access = Access {
    grant: "the monitor (or manage) index privilege on the index to the user or API key",
    missing: "no index of that name on this cluster?",
};

/// The reader: one index (or alias) of one cluster.
pub struct ElasticsearchRefresh {
    http: HttpSystem,
    base: String,
    index: String,
}

impl ElasticsearchRefresh {
    /// `base` is the cluster URL (no trailing slash), `index` the index or alias the target
    /// reads.
    pub fn new(http: HttpSystem, base: String, index: String) -> Self {
        ElasticsearchRefresh { http, base, index }
    }
}

/// The claim of an `_stats/refresh,indexing` answer.
///
/// # Errors
/// An answer without the refresh statistics.
pub fn stats_claim(answer: &Value) -> Field<Claim> {
    let all = answer
        .get("_all")
        .filter(|a| a.is_object())
        .ok_or_else(|| {
            format!(
                "expected _all statistics, got {}",
                excerpt(answer.to_string().as_bytes())
            )
        })?;
    let (scope, stats) = match all.get("primaries").filter(|p| p.get("refresh").is_some()) {
        Some(p) => ("primaries", p),
        None => (
            "total",
            all.get("total")
                .ok_or("_all has neither primaries nor total")?,
        ),
    };
    let refresh = stats
        .get("refresh")
        .filter(|r| r.is_object())
        .ok_or_else(|| format!("_all.{scope} has no refresh statistics"))?;
    let number = |v: &Value, field: &str| -> Field<Option<u64>> {
        match v.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(n) => n.as_u64().map(Some).ok_or_else(|| {
                format!(
                    "{field} is not a count: {}",
                    excerpt(n.to_string().as_bytes())
                )
            }),
        }
    };
    let external = number(refresh, "external_total")?;
    let mut raw = vec![match (external, number(refresh, "total")?) {
        (Some(n), _) => format!("_all.{scope}.refresh.external_total={n}"),
        (None, Some(total)) => format!("_all.{scope}.refresh.total={total}, no external_total"),
        (None, None) => format!("_all.{scope}.refresh has no counts"),
    }];
    if let Some(n) = stats
        .get("indexing")
        .map(|i| number(i, "index_total"))
        .transpose()?
        .flatten()
    {
        raw.push(format!("indexing.index_total={n}"));
    }
    let state = match external {
        Some(_) => ClaimState::Healthy,
        None => ClaimState::Unknown,
    };
    Ok(Claim {
        syncs: external,
        ..claim(state, raw.join(", "))
    })
}

#[async_trait]
impl StatusReader for ElasticsearchRefresh {
    fn surface(&self) -> &'static str {
        "elasticsearch_refresh"
    }

    async fn read(&self) -> Result<Claim, ConnectorError> {
        let url = format!(
            "{}/{}/_stats/refresh,indexing",
            self.base,
            percent::component(&self.index)
        );
        let reply = get(
            &self.http,
            &ACCESS,
            |c: &Client| c.get(&url).header("Accept", "application/json"),
            es_error,
        )
        .await?;
        let answer: Value = reply.json()?;
        stats_claim(&answer).map_err(|e| reply.bad_response(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn stats(scope: &str, refresh: Value) -> Value {
        let mut all = json!({});
        all[scope] =
            json!({"refresh": refresh, "indexing": {"index_total": 12, "index_current": 0}});
        json!({"_shards": {"total": 2, "successful": 2, "failed": 0}, "_all": all, "indices": {}})
    }

    #[test]
    fn the_primaries_external_refreshes_are_the_count() {
        let refresh = json!({"total": 40, "total_time_in_millis": 100, "external_total": 31,
            "external_total_time_in_millis": 90, "listeners": 0});
        let c = stats_claim(&stats("primaries", refresh.clone())).unwrap();
        assert_eq!(c.state, ClaimState::Healthy);
        assert_eq!(c.syncs, Some(31));
        assert_eq!(c.last_sync, None);
        assert_eq!(
            c.raw,
            "_all.primaries.refresh.external_total=31, indexing.index_total=12"
        );
        // Without primaries, the total.
        let c = stats_claim(&stats("total", refresh)).unwrap();
        assert_eq!(c.syncs, Some(31));
        assert!(c.raw.starts_with("_all.total."), "{}", c.raw);
    }

    #[test]
    fn no_external_count_is_unknown_and_other_shapes_are_errors() {
        let c = stats_claim(&stats("primaries", json!({"total": 40}))).unwrap();
        assert_eq!(c.state, ClaimState::Unknown);
        assert_eq!(c.syncs, None);
        for garbage in [
            json!({"error": "x"}),
            json!({"_all": {}}),
            json!({"_all": {"primaries": {"refresh": 3}}}),
            stats("primaries", json!({"external_total": -1})),
        ] {
            assert!(stats_claim(&garbage).is_err(), "{garbage}");
        }
    }
}
