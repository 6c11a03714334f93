//! The HTTP surface: `/metrics`, `/healthz`, `/readyz`, the status page `/`, the consistency
//! report `/report`, `/api/v1/paths`, `/api/v1/probes`, `/api/v1/contracts`, `/api/v1/conflicts`,
//! `/api/v1/reconciliations`, `/api/v1/discrepancies`, the alerts' runbooks
//! `/docs/runbooks/<AlertName>.md` and `POST /-/reload` (only with `--web.enable-lifecycle`).
//! Handlers only read engine and reconciliation state; nothing probes or reconciles on request.
//! They read the monitor in force per request ([`Live::current`]), so a configuration reload
//! swaps what they see without restarting the server.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Json, Response};
use axum::routing::{get, post};
use chrono::{SecondsFormat, Utc};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::metrics::Format;
use crate::probe::trace::ProbeView;
use crate::probe::{Engine, Outcome};
use crate::reconcile::diff::Kind;
use crate::reconcile::{DiscrepancyView, Reconciler};
use crate::status::{self, PathView, ReconcileView};
use crate::supervisor::{HttpReload, Live, ReloadRequest};
use crate::web::WebSecurity;
use crate::web::tls::TlsListener;

#[derive(Clone)]
struct AppState {
    live: Live,
}

/// The router, for tests that want to call it without a socket.
pub fn router(engine: Arc<Engine>, reconciler: Arc<Reconciler>, instance: &str) -> Router {
    router_live(Live::fixed(engine, reconciler, instance))
}

/// The router over a monitor that a configuration reload may replace.
pub fn router_live(live: Live) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/api/v1/paths", get(paths))
        .route("/api/v1/probes", get(probes))
        .route("/api/v1/pairs", get(pairs))
        .route("/api/v1/contracts", get(contracts))
        .route("/api/v1/conflicts", get(conflicts))
        .route("/report", get(report))
        .route("/paths/{source}/{target}", get(path_page))
        .route("/api/v1/reconciliations", get(reconciliations))
        .route("/api/v1/discrepancies", get(discrepancies))
        .route("/docs/runbooks/{page}", get(runbook))
        .route("/-/reload", post(reload).put(reload))
        .with_state(AppState { live })
}

/// Serves on an already-bound listener until `shutdown` is cancelled: plain HTTP without a
/// web-config file, otherwise with its TLS, basic auth and headers (see [`crate::web`]).
///
/// # Errors
/// I/O errors of the listener.
pub async fn serve(
    listener: TcpListener,
    engine: Arc<Engine>,
    reconciler: Arc<Reconciler>,
    instance: &str,
    web: Option<Arc<WebSecurity>>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    serve_live(
        listener,
        Live::fixed(engine, reconciler, instance),
        web,
        shutdown,
    )
    .await
}

/// As [`serve`], over a monitor that a configuration reload may replace.
///
/// # Errors
/// I/O errors of the listener.
pub async fn serve_live(
    listener: TcpListener,
    live: Live,
    web: Option<Arc<WebSecurity>>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let app = router_live(live);
    let stop = async move { shutdown.cancelled().await };
    match web {
        None => {
            axum::serve(listener, app)
                .with_graceful_shutdown(stop)
                .await
        }
        Some(web) => {
            let app = app.layer(axum::middleware::from_fn_with_state(
                web.clone(),
                crate::web::basic_auth::layer,
            ));
            if web.tls() {
                let listener = TlsListener::new(listener, web)?;
                axum::serve(listener, app)
                    .with_graceful_shutdown(stop)
                    .await
            } else {
                axum::serve(listener, app)
                    .with_graceful_shutdown(stop)
                    .await
            }
        }
    }
}

async fn metrics(State(s): State<AppState>, headers: axum::http::HeaderMap) -> Response {
    // OpenMetrics (with exemplars) only for a scraper that asks for it; the text format 0.0.4
    // otherwise, as before.
    let format = Format::negotiate(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()));
    // Rendering thousands of series is CPU work of milliseconds: keep it off the runtime's
    // workers, whose timers time the probes.
    let engine = s.live.current().engine.clone();
    let rendered = tokio::task::spawn_blocking(move || {
        engine.refresh();
        engine.metrics().render_as(format)
    })
    .await;
    match rendered {
        Ok(body) => ([(header::CONTENT_TYPE, format.content_type())], body).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "Rendering metrics failed.");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "rendering metrics failed\n",
            )
                .into_response()
        }
    }
}

/// A runbook page embedded in the binary ([`crate::web::runbooks`]), as Markdown text.
async fn runbook(axum::extract::Path(page): axum::extract::Path<String>) -> Response {
    match crate::web::runbooks::page(&page) {
        Some(text) => ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            "no such runbook: the pages are /docs/runbooks/<AlertName>.md\n",
        )
            .into_response(),
    }
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(s): State<AppState>) -> Response {
    let current = s.live.current();
    let paths = current.engine.paths();
    let started = paths.iter().filter(|p| p.state().started).count();
    // The ledger never makes lagwatch unready (scrapes matter more than resume), but a
    // probe of readiness is where an operator looks first, so it says what is degraded.
    let ledger = match current.engine.ledger().map(|l| l.health()) {
        Some(crate::ledger::Health::Down(reason)) => {
            format!("ledger: unavailable, probing without resume ({reason})\n")
        }
        Some(crate::ledger::Health::Up) => "ledger: ok\n".to_string(),
        Some(crate::ledger::Health::Disabled) => {
            "ledger: disabled (no state_dir): a restart loses the probes in flight\n".to_string()
        }
        None => String::new(),
    };
    if current.ready() {
        (
            StatusCode::OK,
            format!(
                "ready: config loaded, {started} of {} paths probing\n{ledger}",
                paths.len()
            ),
        )
            .into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "not ready: {started} of {} paths have started their first probe\n{ledger}",
                paths.len()
            ),
        )
            .into_response()
    }
}

async fn index(State(s): State<AppState>) -> Html<String> {
    let current = s.live.current();
    Html(status::render_html(
        &current.instance,
        &status::views(&current.engine),
        &status::reconcile_views(&current.reconciler),
        &status::conflict_views(&current.engine),
        current.engine.shard(),
        current.engine.unowned(),
    ))
}

#[derive(Serialize)]
struct PathsResponse {
    instance: String,
    generated_at: String,
    /// This process's shard, `{index, total}`.
    shard: ShardView,
    paths: Vec<PathView>,
    /// Paths of the configuration that other shards measure (not probed here).
    other_shards: Vec<OtherShardPath>,
}

#[derive(Serialize)]
struct ShardView {
    index: u32,
    total: u32,
}

#[derive(Serialize)]
struct OtherShardPath {
    source: String,
    target: String,
    /// The index of the shard that owns it.
    owned_by_shard: u32,
}

async fn paths(State(s): State<AppState>) -> Json<PathsResponse> {
    let current = s.live.current();
    Json(PathsResponse {
        instance: current.instance.to_string(),
        generated_at: Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
        shard: ShardView {
            index: current.engine.shard().index,
            total: current.engine.shard().total,
        },
        paths: status::views(&current.engine),
        other_shards: current
            .engine
            .unowned()
            .iter()
            .map(|(source, target, shard)| OtherShardPath {
                source: source.clone(),
                target: target.clone(),
                owned_by_shard: *shard,
            })
            .collect(),
    })
}

#[derive(Serialize)]
struct ConflictsResponse {
    instance: String,
    generated_at: String,
    conflicts: Vec<status::ConflictView>,
}

/// `GET /api/v1/conflicts`: every conflict probe pair with the probes behind its metrics.
async fn conflicts(State(s): State<AppState>) -> Json<ConflictsResponse> {
    let current = s.live.current();
    let conflicts = status::conflict_views(&current.engine);
    Json(ConflictsResponse {
        instance: current.instance.to_string(),
        generated_at: Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
        conflicts,
    })
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ProbesQuery {
    source: Option<String>,
    target: Option<String>,
    outcome: Option<String>,
    /// A sentinel key (as an exemplar of `lagwatch_lag_seconds` names it).
    sentinel: Option<String>,
    limit: Option<usize>,
}

#[derive(Serialize)]
struct ProbesResponse {
    instance: String,
    generated_at: String,
    probes: Vec<ProbeView>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PairsQuery {
    source: Option<String>,
    target: Option<String>,
    /// The parent's or the child's key (as evidence and WARN logs name them).
    sentinel: Option<String>,
    limit: Option<usize>,
}

#[derive(Serialize)]
struct PairsResponse {
    instance: String,
    generated_at: String,
    pairs: Vec<crate::probe::causal::PairView>,
}

/// `GET /api/v1/pairs`: the most recent causal pairs read at each target, newest first, so
/// every count of `lagwatch_causal_pairs_total` and `lagwatch_causal_violations_total` can be
/// traced to the pair behind it.
async fn pairs(
    State(s): State<AppState>,
    query: Result<axum::extract::Query<PairsQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(axum::extract::Query(q)) = query else {
        return bad_query(
            "unknown or malformed parameter; accepted: source, target, sentinel, limit",
        );
    };
    let limit = q.limit.unwrap_or(PROBES_DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return bad_query("limit must be between 1 and 1000");
    }
    let current = s.live.current();
    let mut found = Vec::new();
    for path in current.engine.paths() {
        let spec = &path.spec;
        if q.source.as_deref().is_some_and(|v| spec.source != v)
            || q.target.as_deref().is_some_and(|v| spec.target != v)
        {
            continue;
        }
        let state = path.state();
        found.extend(
            state
                .pairs
                .iter()
                .rev()
                .filter(|t| {
                    q.sentinel
                        .as_deref()
                        .is_none_or(|k| t.parent.key() == k || t.child.key() == k)
                })
                .take(limit)
                .map(|t| (t.acked_at, t.view(&spec.source, &spec.target))),
        );
    }
    found.sort_by_key(|(at, _)| std::cmp::Reverse(*at));
    found.truncate(limit);
    Json(PairsResponse {
        instance: current.instance.to_string(),
        generated_at: Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
        pairs: found.into_iter().map(|(_, v)| v).collect(),
    })
    .into_response()
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ContractsQuery {
    since: Option<String>,
}

type ContractsParams =
    Result<axum::extract::Query<ContractsQuery>, axum::extract::rejection::QueryRejection>;

/// The window a contracts query (`/api/v1/contracts`, `/report`) asks for, or why it was
/// refused.
fn contracts_window(query: ContractsParams) -> Result<std::time::Duration, String> {
    let Ok(axum::extract::Query(q)) = query else {
        return Err("unknown or malformed parameter; accepted: since".to_string());
    };
    crate::contracts::window(q.since.as_deref()).map_err(|why| format!("since: {why}"))
}

/// `GET /api/v1/contracts?since=24h`: each path's guarantees, declared and measured over the
/// window, with the sentinels that broke them.
async fn contracts(State(s): State<AppState>, query: ContractsParams) -> Response {
    let window = match contracts_window(query) {
        Ok(w) => w,
        Err(why) => return bad_query(&why),
    };
    let current = s.live.current();
    Json(crate::contracts::report(
        &current.engine,
        &current.instance,
        window,
    ))
    .into_response()
}

/// `GET /report?since=24h`: the same as a page to attach to a design review (see
/// [`crate::report`]); a refused query answers in text, as the other pages do.
async fn report(State(s): State<AppState>, query: ContractsParams) -> Response {
    let window = match contracts_window(query) {
        Ok(w) => w,
        Err(why) => return (StatusCode::BAD_REQUEST, format!("{why}\n")).into_response(),
    };
    let current = s.live.current();
    let report = crate::contracts::report(&current.engine, &current.instance, window);
    Html(crate::report::html(&report)).into_response()
}

/// Probes in one page of `/api/v1/probes` unless `limit` says otherwise.
const PROBES_DEFAULT_LIMIT: usize = 100;

/// `GET /api/v1/probes`: the most recent resolved probes, newest first, each with every read,
/// so any metric can be traced back to the probes behind it.
async fn probes(
    State(s): State<AppState>,
    query: Result<axum::extract::Query<ProbesQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(axum::extract::Query(q)) = query else {
        return bad_query(
            "unknown or malformed parameter; accepted: source, target, outcome, sentinel, limit",
        );
    };
    let outcome = match q.outcome.as_deref() {
        None => None,
        Some(o) => match Outcome::parse(o) {
            Some(o) => Some(o),
            None => {
                return bad_query(
                    "outcome must be one of converged, timeout, mismatch, error, halted",
                );
            }
        },
    };
    let limit = q.limit.unwrap_or(PROBES_DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return bad_query("limit must be between 1 and 1000");
    }
    let current = s.live.current();
    let probes = probe_views(
        &current.engine,
        &current.instance,
        |source, target| {
            q.source.as_deref().is_none_or(|v| source == v)
                && q.target.as_deref().is_none_or(|v| target == v)
        },
        outcome,
        q.sentinel.as_deref(),
        limit,
    );
    Json(ProbesResponse {
        instance: current.instance.to_string(),
        generated_at: Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
        probes,
    })
    .into_response()
}

/// The most recent `limit` probes of the paths `wanted` accepts, newest (resolved) first.
fn probe_views(
    engine: &Engine,
    instance: &str,
    wanted: impl Fn(&str, &str) -> bool,
    outcome: Option<Outcome>,
    sentinel: Option<&str>,
    limit: usize,
) -> Vec<ProbeView> {
    let mut found: Vec<(chrono::DateTime<Utc>, ProbeView)> = Vec::new();
    for path in engine.paths() {
        let spec = &path.spec;
        if !wanted(&spec.source, &spec.target) {
            continue;
        }
        let rules = path.rules();
        let state = path.state();
        // Newest first within the path; at most `limit` of each can make the page.
        found.extend(
            state
                .traces
                .iter()
                .rev()
                .filter(|t| outcome.is_none_or(|o| t.outcome == o))
                .filter(|t| sentinel.is_none_or(|k| t.sentinel(instance).key() == k))
                .take(limit)
                .map(|t| {
                    let mut view = t.view(&spec.source, &spec.target, instance, rules);
                    view.delete = state
                        .deletes
                        .iter()
                        .rev()
                        .find(|d| d.seq == t.seq)
                        .map(|d| d.view());
                    (t.resolved_at(), view)
                }),
        );
    }
    found.sort_by_key(|(at, _)| std::cmp::Reverse(*at));
    found.truncate(limit);
    found.into_iter().map(|(_, v)| v).collect()
}

/// `GET /paths/{source}/{target}`: the page of one path (404 for a path not configured).
async fn path_page(
    State(s): State<AppState>,
    axum::extract::Path((source, target)): axum::extract::Path<(String, String)>,
) -> Response {
    let current = s.live.current();
    let Some(view) = status::views(&current.engine)
        .into_iter()
        .find(|v| v.source == source && v.target == target)
    else {
        return (StatusCode::NOT_FOUND, "no such path\n").into_response();
    };
    let mut probes = probe_views(
        &current.engine,
        &current.instance,
        |s, t| s == source && t == target,
        None,
        None,
        crate::probe::trace::RING,
    );
    // The page reads as a log of writes: newest write first.
    probes.sort_by_key(|p| std::cmp::Reverse(p.seq));
    let claims = current
        .engine
        .platform()
        .iter()
        .find(|w| w.path.spec.source == source && w.path.spec.target == target)
        .map(|w| w.claims())
        .unwrap_or_default();
    Html(crate::path_page::render(
        &current.instance,
        &view,
        &probes,
        &claims,
        Utc::now(),
    ))
    .into_response()
}

#[derive(Serialize)]
struct ReconciliationsResponse {
    instance: String,
    generated_at: String,
    reconciliations: Vec<ReconcileView>,
}

async fn reconciliations(State(s): State<AppState>) -> Json<ReconciliationsResponse> {
    let current = s.live.current();
    Json(ReconciliationsResponse {
        instance: current.instance.to_string(),
        generated_at: Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
        reconciliations: status::reconcile_views(&current.reconciler),
    })
}

/// `POST /-/reload` (and `PUT`, as Prometheus accepts): re-reads the configuration file and
/// answers once the new one runs (200) or was rejected (500 with the `ConfigError` text that
/// `check-config` prints, as Prometheus answers a failed reload). Behind basic auth when a
/// web-config file sets it, like every endpoint but the probes.
///
/// Opt-in with `--web.enable-lifecycle`, as in Prometheus: basic auth is optional, and a reload
/// stops every probe in flight, so reaching the port should not be enough. Refusals answer 403
/// before anything is asked of the supervisor: they are not reloads, so
/// `lagwatch_config_last_reload_successful` does not change.
async fn reload(State(s): State<AppState>) -> Response {
    let tx = match s.live.reloader() {
        HttpReload::Enabled(tx) => tx,
        HttpReload::Disabled => {
            return (
                StatusCode::FORBIDDEN,
                "the lifecycle API is not enabled: start `lagwatch run` with --web.enable-lifecycle to reload over HTTP (SIGHUP reloads regardless)\n",
            )
                .into_response();
        }
        HttpReload::Unavailable => {
            return (
                StatusCode::FORBIDDEN,
                "nothing to reload: this configuration was generated at start-up (as by `lagwatch demo`), not read from a file; restart to change it (reloading is for `lagwatch run --config FILE --web.enable-lifecycle`)\n",
            )
                .into_response();
        }
    };
    let (reply, outcome) = tokio::sync::oneshot::channel();
    if tx.send(ReloadRequest { reply: Some(reply) }).await.is_err() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "lagwatch is shutting down\n",
        )
            .into_response();
    }
    match outcome.await {
        Ok(Ok(text)) => (StatusCode::OK, text).into_response(),
        Ok(Err(text)) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("reload rejected, the running configuration stays in force: {text}\n"),
        )
            .into_response(),
        // The supervisor stopped (shutdown) before answering.
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "lagwatch is shutting down\n",
        )
            .into_response(),
    }
}

/// Most keys in one page of `/api/v1/discrepancies`, and the default.
const MAX_LIMIT: usize = 1000;
const DEFAULT_LIMIT: usize = 100;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct DiscrepancyQuery {
    source: Option<String>,
    target: Option<String>,
    table: Option<String>,
    kind: Option<String>,
    persistence: Option<String>,
    limit: Option<usize>,
    /// The `next` of the previous page.
    after: Option<String>,
}

#[derive(Serialize)]
struct DiscrepanciesResponse {
    generated_at: String,
    /// Matching keys in all (this page and the others).
    total: usize,
    discrepancies: Vec<DiscrepancyView>,
    /// Pass as `after=` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<String>,
    /// Some entry remembered fewer keys than it found (its `max_keys`): counts in the metrics
    /// are exact, this list is not complete.
    truncated: bool,
}

fn bad_query(reason: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(serde_json::json!({ "error": reason })),
    )
        .into_response()
}

/// Position of a key across entries: source, target, table, key.
fn cursor(d: &DiscrepancyView) -> String {
    let raw = format!(
        "{}\u{1f}{}\u{1f}{}\u{1f}{}",
        d.source, d.target, d.table, d.key
    );
    raw.bytes().map(|b| format!("{b:02x}")).collect()
}

async fn discrepancies(
    State(s): State<AppState>,
    query: Result<axum::extract::Query<DiscrepancyQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(axum::extract::Query(q)) = query else {
        return bad_query(
            "unknown or malformed parameter; accepted: source, target, table, kind, persistence, limit, after",
        );
    };
    let kind = match q.kind.as_deref() {
        None => None,
        Some(k) => match Kind::parse(k) {
            Some(k) => Some(k),
            None => return bad_query("kind must be one of missing, extra, stale, mismatched"),
        },
    };
    if let Some(p) = q.persistence.as_deref()
        && !matches!(p, "transient" | "persistent")
    {
        return bad_query("persistence must be transient or persistent");
    }
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return bad_query("limit must be between 1 and 1000");
    }
    let current = s.live.current();
    let entries: Vec<_> = current
        .reconciler
        .entries()
        .iter()
        .filter(|e| q.source.as_deref().is_none_or(|v| e.source == v))
        .filter(|e| q.target.as_deref().is_none_or(|v| e.target == v))
        .filter(|e| q.table.as_deref().is_none_or(|v| e.spec.name == v))
        .cloned()
        .collect();
    let truncated = entries
        .iter()
        .any(|e| e.last_run().is_some_and(|r| r.truncated));
    let mut all: Vec<(String, DiscrepancyView)> = entries
        .iter()
        .flat_map(|e| e.discrepancies())
        .filter(|d| kind.is_none_or(|k| d.kind == k))
        .filter(|d| q.persistence.as_deref().is_none_or(|p| d.persistence == p))
        .map(|d| (cursor(&d), d))
        .collect();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    let total = all.len();
    let start = match &q.after {
        None => 0,
        Some(after) => all.partition_point(|(c, _)| c <= after),
    };
    let page: Vec<(String, DiscrepancyView)> =
        all.into_iter().skip(start).take(limit + 1).collect();
    let more = page.len() > limit;
    let next = more.then(|| page[limit - 1].0.clone());
    Json(DiscrepanciesResponse {
        generated_at: Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
        total,
        discrepancies: page.into_iter().take(limit).map(|(_, d)| d).collect(),
        next,
        truncated,
    })
    .into_response()
}
