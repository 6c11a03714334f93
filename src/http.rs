//! The HTTP surface: `/metrics`, `/healthz`, `/readyz`, the status page `/` and
//! `/api/v1/paths`. Handlers only read engine state; nothing probes on request.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Json, Response};
use axum::routing::get;
use chrono::{SecondsFormat, Utc};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::probe::Engine;
use crate::status::{self, PathView};

#[derive(Clone)]
struct AppState {
    engine: Arc<Engine>,
    instance: Arc<str>,
}

/// The router, for tests that want to call it without a socket.
pub fn router(engine: Arc<Engine>, instance: &str) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/api/v1/paths", get(paths))
        .with_state(AppState {
            engine,
            instance: Arc::from(instance),
        })
}

/// Serves on an already-bound listener until `shutdown` is cancelled.
///
/// # Errors
/// I/O errors of the listener.
pub async fn serve(
    listener: TcpListener,
    engine: Arc<Engine>,
    instance: &str,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router(engine, instance))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

async fn metrics(State(s): State<AppState>) -> Response {
    // Rendering thousands of series is CPU work of tens of milliseconds: keep it off the
    // runtime's workers, whose timers time the probes.
    let engine = s.engine.clone();
    let rendered = tokio::task::spawn_blocking(move || {
        engine.refresh();
        engine.metrics().render()
    })
    .await;
    match rendered {
        Ok(body) => ([(header::CONTENT_TYPE, Metrics::content_type())], body).into_response(),
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

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(s): State<AppState>) -> Response {
    let paths = s.engine.paths();
    let started = paths.iter().filter(|p| p.state().started).count();
    if s.engine.ready() {
        (
            StatusCode::OK,
            format!(
                "ready: config loaded, {started} of {} paths probing\n",
                paths.len()
            ),
        )
            .into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "not ready: {started} of {} paths have started their first probe\n",
                paths.len()
            ),
        )
            .into_response()
    }
}

async fn index(State(s): State<AppState>) -> Html<String> {
    Html(status::render_html(&s.instance, &status::views(&s.engine)))
}

#[derive(Serialize)]
struct PathsResponse {
    instance: String,
    generated_at: String,
    paths: Vec<PathView>,
}

async fn paths(State(s): State<AppState>) -> Json<PathsResponse> {
    Json(PathsResponse {
        instance: s.instance.to_string(),
        generated_at: Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
        paths: status::views(&s.engine),
    })
}
