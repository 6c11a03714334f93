//! Fault injection: the emulator misbehaving on purpose, switched at run time over HTTP.
//!
//! Why: lagwatch promises that a target that is down, slow, failing, throttling, answering
//! garbage or cutting connections never crashes it, never yields a lag figure, shows in
//! `/metrics`, and recovers by itself. Those promises are only worth something if they are
//! tested against a server that really does these things over a socket, while replication and
//! ground truth keep running underneath. A fault changes *how* a matching request is
//! answered, never the estate: replication goes on, so when the fault clears the truth is
//! still the truth.
//!
//! Control (no authentication, like `/_truth`: a loopback test tool):
//!
//! - `POST /_faults` with one fault as JSON adds it (`201` and the list), a JSON array adds
//!   several;
//! - `GET /_faults` lists the active faults and the clock offset;
//! - `DELETE /_faults` clears every fault and the clock offset;
//! - `DELETE /_faults?prefix=/fno/` clears the faults of one prefix.
//!
//! A fault is `{"prefix": "/fno/", "mode": "…", …parameters, "probability": 1.0}`. It applies
//! to requests whose path starts with `prefix` (`/entra/`, `/fno/`, `/search/`, `/es/`, or a
//! Dataverse environment such as `/crm2/`), with `probability` (default 1: always), and, with
//! `"methods": ["DELETE"]`, only to those methods (default: every method; a principal allowed
//! to create records but not to delete them is `status` 403 on DELETE). The first matching
//! fault wins. `/_truth` and `/_faults` are never faulted. Modes:
//!
//! | mode | parameters | the client sees |
//! |---|---|---|
//! | `down` | — | the connection closed, no response |
//! | `slow` | `delay_seconds` | the real answer, `delay_seconds` later |
//! | `status` | `status` (400–599 but 429, default 503) | that status with an OData error body |
//! | `throttle` | `retry_after_seconds` (default 120) | 429 with that `Retry-After` |
//! | `garbage` | `body`: `html` (default) or `wrong_shape` | 200 with a non-JSON page, or JSON of the wrong shape |
//! | `reset` | — | the real status and headers and part of the body, then the connection dropped (an answer without a body: handled, then the connection dropped with no answer) |
//! | `truncated` | — | 200 and the real JSON body cut in half, with a matching `Content-Length` |
//! | `huge` | `bytes` (default 64 MiB) | 200 with a JSON-looking body of that size, chunked, generated while sent |
//! | `clock` | `offset_seconds` (no prefix) | every wall-clock value (`Date`, `createdon`, truth timestamps) moved by the offset |
//!
//! `clock` is not per prefix: the emulator has one wall clock (start wall time plus tokio time
//! elapsed, see [`super::Emulator::wall_time`]); the fault steps it forwards or backwards, and
//! clearing steps it back. Replication and truth instants are tokio instants, so a clock step
//! changes no true lag, exactly as a stepped server clock changes no real replication delay.
//!
//! **Invariant:** a bad `/_faults` request is a 400 with the reason, never a panic.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::json_response;

/// Largest `huge` body: big enough to overrun any sane cap, small enough to stream in seconds.
const MAX_HUGE: u64 = 1 << 32;
/// Default `huge` body: 16 times lagwatch's default response cap.
const DEFAULT_HUGE: u64 = 64 * 1024 * 1024;
/// Longest `slow` delay and `Retry-After`: a day.
const MAX_SECONDS: f64 = 86_400.0;
/// Largest clock step: ten years either way (chrono's range is far wider).
const MAX_CLOCK_STEP: i64 = 10 * 366 * 86_400;

/// How a faulted request is answered.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum Mode {
    Down,
    Slow { delay_seconds: f64 },
    Status { status: u16 },
    Throttle { retry_after_seconds: u64 },
    Garbage { body: GarbageBody },
    Reset,
    Truncated,
    Huge { bytes: u64 },
}

/// The body of a `garbage` answer.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GarbageBody {
    /// An HTML error page, as a proxy or load balancer sends.
    Html,
    /// Valid JSON that no service of the estate would send.
    WrongShape,
}

/// One active fault.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Fault {
    pub prefix: String,
    /// Upper-case HTTP methods the fault applies to; empty: every method.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
    #[serde(flatten)]
    pub mode: Mode,
    pub probability: f64,
}

/// A fault as posted: every parameter optional, checked by [`FaultSpec::check`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultSpec {
    prefix: Option<String>,
    methods: Option<Vec<String>>,
    mode: String,
    probability: Option<f64>,
    delay_seconds: Option<f64>,
    status: Option<u16>,
    retry_after_seconds: Option<u64>,
    body: Option<GarbageBody>,
    bytes: Option<u64>,
    offset_seconds: Option<i64>,
}

/// What a posted spec turns into.
enum Parsed {
    Fault(Fault),
    Clock(i64),
}

impl FaultSpec {
    fn check(self) -> Result<Parsed, String> {
        if self.mode == "clock" {
            if self.prefix.is_some() {
                return Err("clock: the emulator has one clock; give no prefix".into());
            }
            if self.methods.is_some() {
                return Err("clock: the emulator has one clock; give no methods".into());
            }
            let offset = self
                .offset_seconds
                .ok_or("clock: offset_seconds is required")?;
            if offset.abs() > MAX_CLOCK_STEP {
                return Err(format!("clock: offset_seconds beyond ±{MAX_CLOCK_STEP}"));
            }
            return Ok(Parsed::Clock(offset));
        }
        let prefix = self.prefix.ok_or("prefix is required (such as /fno/)")?;
        if !prefix.starts_with('/') {
            return Err("prefix: a path prefix such as /fno/ (`/` is every service)".into());
        }
        if prefix.starts_with("/_truth") || prefix.starts_with("/_faults") {
            return Err("prefix: /_truth and /_faults are never faulted".into());
        }
        let probability = self.probability.unwrap_or(1.0);
        if !(probability > 0.0 && probability <= 1.0) {
            return Err("probability: in (0, 1]".into());
        }
        let mode = match self.mode.as_str() {
            "down" => Mode::Down,
            "slow" => {
                let d = self
                    .delay_seconds
                    .ok_or("slow: delay_seconds is required")?;
                if !(d.is_finite() && (0.0..=MAX_SECONDS).contains(&d)) {
                    return Err(format!("slow: delay_seconds in [0, {MAX_SECONDS}]"));
                }
                Mode::Slow { delay_seconds: d }
            }
            "status" => {
                let status = self.status.unwrap_or(503);
                if !(400..=599).contains(&status) || status == 429 {
                    return Err("status: a 4xx or 5xx status (429 is mode throttle)".into());
                }
                Mode::Status { status }
            }
            "throttle" => {
                let s = self.retry_after_seconds.unwrap_or(120);
                if s as f64 > MAX_SECONDS {
                    return Err(format!(
                        "throttle: retry_after_seconds at most {MAX_SECONDS}"
                    ));
                }
                Mode::Throttle {
                    retry_after_seconds: s,
                }
            }
            "garbage" => Mode::Garbage {
                body: self.body.unwrap_or(GarbageBody::Html),
            },
            "reset" => Mode::Reset,
            "truncated" => Mode::Truncated,
            "huge" => {
                let bytes = self.bytes.unwrap_or(DEFAULT_HUGE);
                if !(1..=MAX_HUGE).contains(&bytes) {
                    return Err(format!("huge: bytes in [1, {MAX_HUGE}]"));
                }
                Mode::Huge { bytes }
            }
            other => return Err(format!("mode: unknown mode {other:?}")),
        };
        let mut methods = Vec::new();
        for m in self.methods.unwrap_or_default() {
            let m = m.to_ascii_uppercase();
            if !["GET", "POST", "PATCH", "PUT", "DELETE"].contains(&m.as_str()) {
                return Err(format!(
                    "methods: {m:?} is not one of GET, POST, PATCH, PUT, DELETE"
                ));
            }
            methods.push(m);
        }
        Ok(Parsed::Fault(Fault {
            prefix,
            methods,
            mode,
            probability,
        }))
    }
}

/// The active faults and the clock offset of one emulator.
#[derive(Debug, Default)]
pub struct Faults {
    active: Mutex<Vec<Fault>>,
    clock_offset_seconds: AtomicI64,
    huge: Arc<HugeStats>,
}

/// What `huge` answers really sent: a client that stops reading at its cap leaves most of
/// each body unsent, and tests check that from here.
#[derive(Debug, Default)]
struct HugeStats {
    responses: AtomicU64,
    bytes_sent: AtomicU64,
}

impl Faults {
    fn active(&self) -> std::sync::MutexGuard<'_, Vec<Fault>> {
        // Plain data: a poisoned lock still holds a usable list.
        self.active.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The wall-clock step in force (seconds, signed).
    pub fn clock_offset(&self) -> chrono::Duration {
        chrono::Duration::seconds(self.clock_offset_seconds.load(Ordering::Relaxed))
    }

    /// The fault a `method` request to `path` gets, if any (a probability is rolled per
    /// request).
    pub fn pick(&self, method: &str, path: &str) -> Option<Mode> {
        if is_exempt(path) {
            return None;
        }
        let active = self.active();
        let fault = active.iter().find(|f| {
            path.starts_with(&f.prefix)
                && (f.methods.is_empty() || f.methods.iter().any(|m| m == method))
        })?;
        (fault.probability >= 1.0 || rand::random::<f64>() < fault.probability)
            .then(|| fault.mode.clone())
    }

    /// Adds faults (one JSON object or an array of them); all or nothing.
    ///
    /// # Errors
    /// The reason the body is not a valid fault, for a 400.
    pub fn add(&self, body: &[u8]) -> Result<(), String> {
        let value: Value =
            serde_json::from_slice(body).map_err(|e| format!("body is not JSON: {e}"))?;
        let items = match value {
            Value::Array(items) => items,
            one => vec![one],
        };
        let mut parsed = Vec::with_capacity(items.len());
        for (i, item) in items.into_iter().enumerate() {
            let spec: FaultSpec =
                serde_json::from_value(item).map_err(|e| format!("fault {i}: {e}"))?;
            parsed.push(spec.check().map_err(|e| format!("fault {i}: {e}"))?);
        }
        let mut active = self.active();
        for p in parsed {
            match p {
                Parsed::Fault(f) => active.push(f),
                Parsed::Clock(s) => self.clock_offset_seconds.store(s, Ordering::Relaxed),
            }
        }
        Ok(())
    }

    /// Clears the faults of `prefix`, or every fault and the clock step.
    pub fn clear(&self, prefix: Option<&str>) {
        match prefix {
            Some(p) => self.active().retain(|f| f.prefix != p),
            None => {
                self.active().clear();
                self.clock_offset_seconds.store(0, Ordering::Relaxed);
            }
        }
    }

    /// The list `GET /_faults` answers.
    pub fn describe(&self) -> Value {
        json!({
            "faults": *self.active(),
            "clock_offset_seconds": self.clock_offset_seconds.load(Ordering::Relaxed),
            "huge": {
                "responses": self.huge.responses.load(Ordering::Relaxed),
                "bytes_sent": self.huge.bytes_sent.load(Ordering::Relaxed),
            },
        })
    }

    /// The answer of a fault that needs no real response (`None` for `slow`, `reset` and
    /// `truncated`, which transform the real one).
    pub fn immediate(&self, mode: &Mode) -> Option<Response> {
        match mode {
            Mode::Huge { bytes } => Some(huge(*bytes, self.huge.clone())),
            other => immediate(other),
        }
    }
}

/// Paths no fault touches: the test's own view of the estate.
pub fn is_exempt(path: &str) -> bool {
    ["/_truth", "/_faults"]
        .iter()
        .any(|p| path == *p || path.starts_with(&format!("{p}/")))
}

/// The error body of a faulted answer (the OData shape every service here uses).
fn error_json(status: StatusCode, message: &str) -> Response {
    json_response(
        status,
        &json!({"error": {"code": "EmulatedFault", "message": message}}),
    )
}

/// An I/O error ending a body stream: hyper then drops the connection.
fn cut() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::ConnectionReset, "emulated fault")
}

/// [`Faults::immediate`] for the modes that need no counting.
fn immediate(mode: &Mode) -> Option<Response> {
    match mode {
        // A body that fails before its first byte: hyper drops the connection before the
        // buffered head is flushed, so the client sees the connection closed, no status.
        Mode::Down => {
            let body = Body::from_stream(futures::stream::once(async { Err::<Bytes, _>(cut()) }));
            Some(Response::new(body))
        }
        Mode::Status { status } => Some(error_json(
            StatusCode::from_u16(*status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
            if *status < 500 {
                "emulated refusal"
            } else {
                "emulated server error"
            },
        )),
        Mode::Throttle {
            retry_after_seconds,
        } => {
            let mut r = error_json(
                StatusCode::TOO_MANY_REQUESTS,
                "emulated throttling: too many requests",
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_seconds));
            Some(r)
        }
        Mode::Garbage { body } => {
            let (text, ctype) = match body {
                GarbageBody::Html => (
                    "<html><head><title>502 Bad Gateway</title></head><body><h1>Bad Gateway</h1></body></html>",
                    "text/html",
                ),
                GarbageBody::WrongShape => (
                    r#"{"unexpected":{"shape":[1,2,3]},"value":"not a list","access_token":17}"#,
                    "application/json; charset=utf-8",
                ),
            };
            let mut r = Response::new(Body::from(text));
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
            Some(r)
        }
        Mode::Huge { .. } | Mode::Slow { .. } | Mode::Reset | Mode::Truncated => None,
    }
}

/// Delay of a `slow` fault.
pub fn delay(mode: &Mode) -> Option<Duration> {
    match mode {
        Mode::Slow { delay_seconds } => Some(Duration::from_secs_f64(*delay_seconds)),
        _ => None,
    }
}

/// `reset` and `truncated` applied to the real answer (whose body is in memory: the services
/// build whole bodies). Other modes return it unchanged.
pub async fn transform(mode: &Mode, response: Response) -> Response {
    if !matches!(mode, Mode::Reset | Mode::Truncated) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return error_json(StatusCode::INTERNAL_SERVER_ERROR, "emulated fault");
    };
    // Half the body, at least one byte short of it (an empty body stays empty).
    let keep = (bytes.len() / 2).min(bytes.len().saturating_sub(1));
    let head = bytes.slice(..keep);
    parts.headers.remove(header::TRANSFER_ENCODING);
    if matches!(mode, Mode::Truncated) {
        parts
            .headers
            .insert(header::CONTENT_LENGTH, HeaderValue::from(head.len()));
        return Response::from_parts(parts, Body::from(head));
    }
    // Reset of an answer without a body (a 204 to a write): nothing to cut, so the request
    // is handled (the write applied) and no answer at all comes back, the ambiguous failure.
    if bytes.is_empty() {
        return Response::new(Body::from_stream(futures::stream::once(async {
            Err::<Bytes, _>(cut())
        })));
    }
    // Reset: announce the full length, send half, pause so hyper flushes it, then fail.
    parts
        .headers
        .insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
    let stream = futures::stream::once(async move { Ok::<Bytes, std::io::Error>(head) }).chain(
        futures::stream::once(async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            Err(cut())
        }),
    );
    Response::from_parts(parts, Body::from_stream(stream))
}

/// A 200 JSON-looking body of `bytes` bytes, generated chunk by chunk as it is sent (never held
/// whole), without `Content-Length` so a client cannot refuse it before reading.
fn huge(bytes: u64, stats: Arc<HugeStats>) -> Response {
    const CHUNK: usize = 64 * 1024;
    let filler: Bytes = {
        let mut v = Vec::with_capacity(CHUNK);
        v.extend_from_slice(br#"{"value":["#);
        while v.len() < CHUNK {
            v.extend_from_slice(br#"{"name":"padding-padding-padding"},"#);
        }
        v.truncate(CHUNK);
        Bytes::from(v)
    };
    stats.responses.fetch_add(1, Ordering::Relaxed);
    let stream = futures::stream::unfold(bytes, move |left| {
        let filler = filler.clone();
        let stats = stats.clone();
        async move {
            if left == 0 {
                return None;
            }
            let n = usize::try_from(left).map_or(CHUNK, |l| l.min(CHUNK));
            // Counted when handed to hyper, which asks for the next chunk only once this one
            // is on its way (plus the socket buffers).
            stats.bytes_sent.fetch_add(n as u64, Ordering::Relaxed);
            Some((
                Ok::<Bytes, std::io::Error>(filler.slice(..n)),
                left - n as u64,
            ))
        }
    });
    let mut r = Response::new(Body::from_stream(stream));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn faults(body: &str) -> Result<Faults, String> {
        let f = Faults::default();
        f.add(body.as_bytes())?;
        Ok(f)
    }

    #[test]
    fn specs_are_checked() {
        for bad in [
            "nonsense",
            r#"{"mode":"down"}"#,
            r#"{"prefix":"fno","mode":"down"}"#,
            r#"{"prefix":"","mode":"down"}"#,
            r#"{"prefix":"/_truth/","mode":"down"}"#,
            r#"{"prefix":"/fno/","mode":"melt"}"#,
            r#"{"prefix":"/fno/","mode":"status","status":429}"#,
            r#"{"prefix":"/fno/","mode":"status","status":302}"#,
            r#"{"prefix":"/fno/","methods":["BREW"],"mode":"down"}"#,
            r#"{"methods":["GET"],"mode":"clock","offset_seconds":5}"#,
            r#"{"prefix":"/fno/","mode":"slow"}"#,
            r#"{"prefix":"/fno/","mode":"slow","delay_seconds":-1}"#,
            r#"{"prefix":"/fno/","mode":"down","probability":0}"#,
            r#"{"prefix":"/fno/","mode":"down","probability":1.5}"#,
            r#"{"prefix":"/fno/","mode":"down","colour":"red"}"#,
            r#"{"prefix":"/fno/","mode":"clock","offset_seconds":5}"#,
            r#"{"mode":"clock","offset_seconds":9223372036854775807}"#,
            r#"{"prefix":"/fno/","mode":"huge","bytes":0}"#,
            r#"[{"prefix":"/fno/","mode":"down"},{"mode":"down"}]"#,
        ] {
            assert!(faults(bad).is_err(), "{bad}");
        }
        // All or nothing.
        let f = Faults::default();
        assert!(
            f.add(br#"[{"prefix":"/fno/","mode":"down"},{"mode":"x"}]"#)
                .is_err()
        );
        assert!(f.pick("GET", "/fno/fin/data/X").is_none());
    }

    #[test]
    fn faults_match_prefixes_and_spare_truth() {
        let f = faults(
            r#"[{"prefix":"/fno/","mode":"throttle","retry_after_seconds":120},
                {"prefix":"/","mode":"status"},{"mode":"clock","offset_seconds":-3600}]"#,
        )
        .unwrap();
        assert_eq!(
            f.pick("GET", "/fno/fin/data/CustomersV3"),
            Some(Mode::Throttle {
                retry_after_seconds: 120
            })
        );
        assert_eq!(
            f.pick("GET", "/crm/api"),
            Some(Mode::Status { status: 503 })
        );
        assert_eq!(f.pick("GET", "/_truth/fno/k"), None);
        assert_eq!(f.pick("GET", "/_faults"), None);
        assert_eq!(f.clock_offset(), chrono::Duration::seconds(-3600));
        let listed = f.describe();
        assert_eq!(listed["faults"][0]["mode"], "throttle");
        assert_eq!(listed["faults"][0]["prefix"], "/fno/");
        f.clear(Some("/fno/"));
        assert_eq!(f.pick("GET", "/fno/x"), Some(Mode::Status { status: 503 }));
        f.clear(None);
        assert_eq!(f.pick("GET", "/fno/x"), None);
        assert_eq!(f.clock_offset(), chrono::Duration::zero());
    }

    #[test]
    fn faults_may_be_limited_to_methods() {
        let f = faults(r#"{"prefix":"/crm/","methods":["delete"],"mode":"status","status":403}"#)
            .unwrap();
        assert_eq!(
            f.pick("DELETE", "/crm/api/data/v9.2/accounts(1)"),
            Some(Mode::Status { status: 403 })
        );
        assert_eq!(f.pick("GET", "/crm/api/data/v9.2/accounts(1)"), None);
        assert_eq!(f.pick("POST", "/crm/api/data/v9.2/accounts"), None);
        assert_eq!(f.describe()["faults"][0]["methods"], json!(["DELETE"]));
    }

    #[test]
    fn scenarios_may_start_with_faults() {
        let s = crate::Scenario::from_yaml(
            "faults:\n  - { prefix: /fno/, mode: throttle, retry_after_seconds: 120 }\n  \
             - { mode: clock, offset_seconds: -60 }\n",
        )
        .unwrap();
        let emu = crate::Emulator::new(s);
        assert_eq!(
            emu.faults().pick("GET", "/fno/fin/data/X"),
            Some(Mode::Throttle {
                retry_after_seconds: 120
            })
        );
        assert_eq!(emu.faults().clock_offset(), chrono::Duration::seconds(-60));
        let bad =
            crate::Scenario::from_yaml("faults:\n  - { prefix: /fno/, mode: melt }\n").unwrap_err();
        assert!(bad.to_string().contains("faults[0]"), "{bad}");
    }

    #[tokio::test]
    async fn truncated_bodies_are_cut_and_huge_ones_have_their_size() {
        let real = json_response(StatusCode::OK, &json!({"value": [{"a": "b"}]}));
        let cut = transform(&Mode::Truncated, real).await;
        let body = axum::body::to_bytes(cut.into_body(), usize::MAX)
            .await
            .unwrap();
        assert!(serde_json::from_slice::<Value>(&body).is_err());
        assert!(body.starts_with(b"{\"value\""));

        let f = Faults::default();
        let big = f.immediate(&Mode::Huge { bytes: 200_001 }).unwrap();
        let body = axum::body::to_bytes(big.into_body(), usize::MAX)
            .await
            .unwrap();
        assert_eq!(body.len(), 200_001);
        assert_eq!(f.describe()["huge"]["bytes_sent"], 200_001);
    }
}
