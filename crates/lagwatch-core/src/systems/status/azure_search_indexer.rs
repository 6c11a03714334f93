//! `azure_search_indexer`: an Azure AI Search indexer's status and execution history (fact
//! sheet §1.1, §1.5). One request, with the system's `api-version` and credentials:
//!
//! ```http
//! GET {endpoint}/indexers/{name}/status?api-version=2025-09-01
//! api-key: <admin key>          (or Authorization: Bearer <token>)
//! → 200 {"status":"running","lastResult":{…},"executionHistory":[{…},…],"limits":{…}}
//! ```
//!
//! Why it needs more than the target's reads: the status is a management read, allowed to an
//! admin key or the Search Service Contributor role; a query key or a data reader role finds
//! documents but gets 403 here, so the error says what to grant.
//!
//! | answer | claim |
//! |---|---|
//! | top-level `status` error | error |
//! | no `lastResult` and no history | not running (never ran) |
//! | `lastResult.status` success | healthy |
//! | `lastResult.status` inProgress | as the newest run in `executionHistory` that ended (healthy when none has) |
//! | `lastResult.status` transientFailure, persistentFailure | error, `detail` its `errorMessage` or first `errors[].errorMessage` |
//! | `lastResult.status` reset, other | unknown |
//!
//! The top-level `running` only means "configured and able to run", never that a run is under
//! way, so it decides nothing. `last_sync` is the `startTime` of the newest *successful*
//! execution (`lastResult` or `executionHistory`, up to 50 runs): a run picks up what was
//! written before it started (change detection reads from its high-water mark), so a success
//! that started after a sentinel's write should carry it; an in-progress run is judged by the
//! newest run that ended, not by its own start.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use reqwest::Client;
use serde_json::{Map, Value};

use super::{Access, Field, claim, get, instant, text};
use crate::connector::ConnectorError;
use crate::connector::status::{Claim, ClaimState, StatusReader};
use crate::net::{HttpSystem, excerpt};
use crate::percent;
use crate::systems::wire::odata_error;

/// What reading an indexer's status needs.
pub const ACCESS: Access = Access {
    grant: "an admin api-key, or the Search Service Contributor role to the Entra identity \
            (a query key or Search Index Data Reader is not enough for indexer status)",
    missing: "no indexer of that name on this search service?",
};

/// The reader: one indexer of one search service.
pub struct AzureSearchIndexer {
    http: HttpSystem,
    endpoint: String,
    api_version: String,
    indexer: String,
}

impl AzureSearchIndexer {
    /// `endpoint` is the service's (no trailing slash), `api_version` the data-plane version the
    /// system speaks, `indexer` the indexer's name.
    pub fn new(http: HttpSystem, endpoint: String, api_version: String, indexer: String) -> Self {
        AzureSearchIndexer {
            http,
            endpoint,
            api_version,
            indexer,
        }
    }
}

/// An execution's `status`; `None` when absent.
fn run_status(run: &Map<String, Value>) -> Field<Option<&str>> {
    text(run, "status")
}

/// The error message of a failed run: its `errorMessage`, else the first of its `errors`.
fn run_error(run: &Map<String, Value>) -> Option<String> {
    let first = || {
        run.get("errors")?
            .as_array()?
            .iter()
            .find_map(|e| e.get("errorMessage")?.as_str())
    };
    text(run, "errorMessage")
        .ok()
        .flatten()
        .or_else(first)
        .map(|m| excerpt(m.as_bytes()))
}

/// The claim of an indexer status answer.
///
/// # Errors
/// An answer that is not the documented shape.
pub fn status_claim(answer: &Value) -> Field<Claim> {
    let answer = answer.as_object().ok_or_else(|| {
        format!(
            "expected an indexer status object, got {}",
            excerpt(answer.to_string().as_bytes())
        )
    })?;
    let top = text(answer, "status")?.ok_or("the indexer status has no status")?;
    let last = match answer.get("lastResult") {
        None | Some(Value::Null) => None,
        Some(Value::Object(o)) => Some(o),
        Some(other) => {
            return Err(format!(
                "lastResult is not an object: {}",
                excerpt(other.to_string().as_bytes())
            ));
        }
    };
    let history: Vec<&Map<String, Value>> = match answer.get("executionHistory") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(runs)) => runs
            .iter()
            .map(|r| {
                r.as_object()
                    .ok_or("an executionHistory entry is not an object")
            })
            .collect::<Result<_, _>>()?,
        Some(other) => {
            return Err(format!(
                "executionHistory is not a list: {}",
                excerpt(other.to_string().as_bytes())
            ));
        }
    };
    let mut last_success: Option<DateTime<Utc>> = None;
    for run in last.into_iter().chain(history.iter().copied()) {
        if run_status(run)? == Some("success")
            && let Some(t) = instant(run, "startTime")?
        {
            last_success = Some(last_success.map_or(t, |s| s.max(t)));
        }
    }
    let mut raw = vec![format!("status={top}")];
    let last_status = last.map(run_status).transpose()?.flatten();
    if let Some(s) = last_status {
        raw.push(format!("lastResult.status={s}"));
    }
    if let Some(run) = last {
        for count in ["itemsProcessed", "itemsFailed"] {
            if let Some(n) = run.get(count).and_then(Value::as_i64) {
                raw.push(format!("{count}={n}"));
            }
        }
    }
    let (state, detail) = if top == "error" {
        (ClaimState::Error, last.and_then(run_error))
    } else {
        match (last, last_status) {
            (None, _) if history.is_empty() => {
                raw.push("never ran".to_string());
                (ClaimState::NotRunning, None)
            }
            (_, Some("success")) => (ClaimState::Healthy, None),
            (Some(run), Some("transientFailure" | "persistentFailure")) => {
                (ClaimState::Error, run_error(run))
            }
            // A run under way says nothing yet: the newest run that ended does.
            (_, Some("inProgress")) => {
                let mut ended = None;
                for run in &history {
                    match run_status(run)? {
                        Some("inProgress") | None => {}
                        Some(s) => {
                            ended = Some((s, *run));
                            break;
                        }
                    }
                }
                if let Some((status, _)) = ended {
                    raw.push(format!("last ended run={status}"));
                }
                match ended {
                    Some(("transientFailure" | "persistentFailure", run)) => {
                        (ClaimState::Error, run_error(run))
                    }
                    Some(("success", _)) | None => (ClaimState::Healthy, None),
                    Some(_) => (ClaimState::Unknown, None),
                }
            }
            _ => (ClaimState::Unknown, None),
        }
    };
    Ok(Claim {
        last_sync: last_success,
        detail,
        ..claim(state, raw.join(", "))
    })
}

#[async_trait]
impl StatusReader for AzureSearchIndexer {
    fn surface(&self) -> &'static str {
        "azure_search_indexer"
    }

    async fn read(&self) -> Result<Claim, ConnectorError> {
        let url = format!(
            "{}/indexers/{}/status",
            self.endpoint,
            percent::component(&self.indexer)
        );
        let version = self.api_version.as_str();
        let reply = get(
            &self.http,
            &ACCESS,
            |c: &Client| {
                c.get(&url)
                    .header("Accept", "application/json")
                    .query(&[("api-version", version)])
            },
            odata_error,
        )
        .await?;
        let answer: Value = reply.json()?;
        status_claim(&answer).map_err(|e| reply.bad_response(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(status: &str, start: &str) -> Value {
        json!({"status": status, "errorMessage": null, "startTime": start,
            "endTime": start, "errors": [], "warnings": [], "itemsProcessed": 3, "itemsFailed": 0,
            "initialTrackingState": null, "finalTrackingState": null})
    }

    fn answer(top: &str, last: Value, history: Vec<Value>) -> Value {
        json!({"status": top, "lastResult": last, "executionHistory": history,
            "limits": {"maxRunTime": "PT2H", "maxDocumentExtractionSize": 16_777_216, "maxDocumentContentCharactersToExtract": 32768}})
    }

    #[test]
    fn a_successful_run_is_healthy_and_dates_the_sync() {
        let last = run("success", "2026-11-02T10:20:00.123Z");
        let older = run("success", "2026-11-02T10:15:00Z");
        let c = status_claim(&answer("running", last.clone(), vec![last, older])).unwrap();
        assert_eq!(c.state, ClaimState::Healthy);
        assert_eq!(
            c.last_sync.unwrap().to_rfc3339(),
            "2026-11-02T10:20:00.123+00:00"
        );
        assert_eq!(
            c.raw,
            "status=running, lastResult.status=success, itemsProcessed=3, itemsFailed=0"
        );
    }

    #[test]
    fn a_run_in_progress_is_judged_by_the_newest_run_that_ended() {
        let now = run("inProgress", "2026-11-02T10:25:00Z");
        let failed = run("transientFailure", "2026-11-02T10:20:00Z");
        let ok = run("success", "2026-11-02T10:15:00Z");
        let c = status_claim(&answer(
            "running",
            now.clone(),
            vec![now.clone(), failed.clone(), ok.clone()],
        ))
        .unwrap();
        assert_eq!(c.state, ClaimState::Error);
        assert_eq!(
            c.last_sync.unwrap().to_rfc3339(),
            "2026-11-02T10:15:00+00:00"
        );
        let ok = run("success", "2026-11-02T10:22:00Z");
        let c = status_claim(&answer(
            "running",
            now.clone(),
            vec![now.clone(), ok, failed],
        ))
        .unwrap();
        assert_eq!(c.state, ClaimState::Healthy);
        assert_eq!(
            c.last_sync.unwrap().to_rfc3339(),
            "2026-11-02T10:22:00+00:00"
        );
        // The first run, still under way: nothing has failed.
        let c = status_claim(&answer("running", now.clone(), vec![now])).unwrap();
        assert_eq!(c.state, ClaimState::Healthy);
        assert_eq!(c.last_sync, None);
    }

    #[test]
    fn failures_are_errors_with_their_message() {
        let mut failed = run("transientFailure", "2026-11-02T10:20:00Z");
        failed["errorMessage"] = json!("Data source credentials expired");
        let c = status_claim(&answer("running", failed, vec![])).unwrap();
        assert_eq!(c.state, ClaimState::Error);
        assert_eq!(c.detail.as_deref(), Some("Data source credentials expired"));
        let mut failed = run("persistentFailure", "2026-11-02T10:20:00Z");
        failed["errors"] =
            json!([{"key": "k", "errorMessage": "Document is too large", "statusCode": 400}]);
        let c = status_claim(&answer("running", failed, vec![])).unwrap();
        assert_eq!(c.state, ClaimState::Error);
        assert_eq!(c.detail.as_deref(), Some("Document is too large"));
        assert_eq!(c.last_sync, None);
        // The indexer itself in error, whatever its last run.
        let c = status_claim(&answer(
            "error",
            run("success", "2026-11-02T10:20:00Z"),
            vec![],
        ))
        .unwrap();
        assert_eq!(c.state, ClaimState::Error);
    }

    #[test]
    fn an_indexer_that_never_ran_is_not_running_and_a_reset_is_unknown() {
        let c = status_claim(&answer("running", Value::Null, vec![])).unwrap();
        assert_eq!(c.state, ClaimState::NotRunning);
        let c = status_claim(&json!({"status": "unknown"})).unwrap();
        assert_eq!(c.state, ClaimState::NotRunning);
        let c = status_claim(&answer(
            "running",
            run("reset", "2026-11-02T10:20:00Z"),
            vec![],
        ))
        .unwrap();
        assert_eq!(c.state, ClaimState::Unknown);
        assert!(c.raw.contains("lastResult.status=reset"), "{}", c.raw);
    }

    #[test]
    fn other_shapes_are_errors() {
        for garbage in [
            json!([]),
            json!({"lastResult": null}),
            json!({"status": "running", "lastResult": "success"}),
            json!({"status": "running", "executionHistory": {}}),
            json!({"status": "running", "lastResult": {"status": "success", "startTime": "noon"}}),
        ] {
            assert!(status_claim(&garbage).is_err(), "{garbage}");
        }
    }
}
