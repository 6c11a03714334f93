//! The contract every target kind meets, run against a fake of each kind's documented API.
//!
//! For each state of the world — the sentinel absent, present, present with other content, the
//! system throttling, refusing the credentials, answering garbage, or answering too slowly —
//! every kind must give the same answer to the engine: `Absent`, `Present` with content that
//! matches (or not), `Throttled` with the Retry-After, `Auth`, `BadResponse`, and a call that
//! the engine's deadline can abandon without harm. A new kind adds one `Backend` here.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use lagwatch::config::Secret;
use lagwatch::connector::{ConnectorError, Lookup, Target};
use lagwatch::gate::Gate;
use lagwatch::metrics::Metrics;
use lagwatch::net::{Auth, BearerTokens, HttpSystem};
use lagwatch::sentinel::Sentinel;
use serde_json::{Value, json};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// What the fake system is doing when the target is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Absent,
    Present,
    Mismatch,
    Throttled,
    Unauthorized,
    Malformed,
    Slow,
}

const STATES: [State; 7] = [
    State::Absent,
    State::Present,
    State::Mismatch,
    State::Throttled,
    State::Unauthorized,
    State::Malformed,
    State::Slow,
];

/// One kind's fake: how its API answers in each state, and how to build the target.
#[async_trait]
trait Backend: Send + Sync {
    fn kind(&self) -> &'static str;
    /// The success answer for a lookup of `sentinel` whose stored payload is `payload`
    /// (`None`: the record does not exist).
    fn found(&self, sentinel: &Sentinel, payload: Option<&str>) -> ResponseTemplate;
    /// The target, reading from `base` (the fake's URI), authenticated by `auth`.
    fn target(&self, base: &str, http: HttpSystem) -> Arc<dyn Target>;
}

#[derive(Default)]
struct Tokens(AtomicUsize);

#[async_trait]
impl BearerTokens for Tokens {
    async fn bearer(&self) -> Result<Secret, ConnectorError> {
        let n = self.0.fetch_add(1, Ordering::SeqCst);
        Ok(Secret::runtime(format!("token-{n}"), "test"))
    }
    fn rejected(&self, _token: &Secret) {}
}

async fn answer(backend: &dyn Backend, state: State) -> (Result<Lookup, ConnectorError>, Sentinel) {
    let server = MockServer::start().await;
    let s = Sentinel::new("conf", 1, Utc::now());
    let template = match state {
        State::Absent => backend.found(&s, None),
        State::Present => backend.found(&s, Some(&s.payload)),
        State::Mismatch => backend.found(&s, Some(&s.payload.to_uppercase())),
        State::Throttled => ResponseTemplate::new(429)
            .insert_header("Retry-After", "12")
            .set_body_json(json!({"error": {"code": "429", "message": "Too many requests"}})),
        State::Unauthorized => ResponseTemplate::new(401)
            .set_body_json(json!({"error": {"code": "", "message": "unauthorized"}})),
        State::Malformed => ResponseTemplate::new(200)
            .insert_header("content-type", "application/json")
            .set_body_string("{\"value\": [ {\"truncated"),
        State::Slow => backend
            .found(&s, Some(&s.payload))
            .set_delay(Duration::from_secs(3)),
    };
    Mock::given(wiremock::matchers::any())
        .respond_with(template)
        .mount(&server)
        .await;
    let http = HttpSystem::new(
        backend.kind(),
        lagwatch::net::client().unwrap(),
        Arc::new(Gate::unlimited_for_tests()),
        Metrics::new(),
        Auth::Bearer(Arc::new(Tokens::default())),
    );
    let target = backend.target(&server.uri(), http);
    let result = match state {
        // The engine bounds every call by the path's request timeout; a slow system must be
        // abandonable mid-call without harm.
        State::Slow => {
            match tokio::time::timeout(Duration::from_millis(300), target.lookup(&s.id)).await {
                Ok(r) => r,
                Err(_) => Err(ConnectorError::Timeout),
            }
        }
        _ => target.lookup(&s.id).await,
    };
    (result, s)
}

async fn conformance(backend: &dyn Backend) {
    for state in STATES {
        let (result, s) = answer(backend, state).await;
        let kind = backend.kind();
        match (state, &result) {
            (State::Absent, Ok(Lookup::Absent)) => {}
            (State::Present, Ok(Lookup::Present { payload: Some(p) })) if s.matches(p) => {}
            (State::Mismatch, Ok(Lookup::Present { payload: Some(p) })) if !s.matches(p) => {}
            (
                State::Throttled,
                Err(ConnectorError::Throttled {
                    retry_after: Some(d),
                }),
            ) if *d == Duration::from_secs(12) => {}
            (State::Unauthorized, Err(ConnectorError::Auth(_))) => {}
            (State::Malformed, Err(ConnectorError::BadResponse { .. })) => {}
            (State::Slow, Err(ConnectorError::Timeout)) => {}
            _ => panic!("{kind} in state {state:?} answered {result:?}"),
        }
    }
}

struct DataverseBackend;

#[async_trait]
impl Backend for DataverseBackend {
    fn kind(&self) -> &'static str {
        "dataverse"
    }
    fn found(&self, s: &Sentinel, payload: Option<&str>) -> ResponseTemplate {
        let rows: Vec<Value> = payload
            .map(|p| json!({"accountnumber": s.id.key(), "description": p}))
            .into_iter()
            .collect();
        ResponseTemplate::new(200).set_body_json(json!({"@odata.context": "…", "value": rows}))
    }
    fn target(&self, base: &str, http: HttpSystem) -> Arc<dyn Target> {
        use lagwatch::systems::dataverse::{CreateMode, Dataverse, TableMap};
        Arc::new(Dataverse::new(
            http,
            TableMap {
                base: format!("{base}/api/data/v9.2"),
                table: "accounts".into(),
                id_column: "accountid".into(),
                key_column: "accountnumber".into(),
                payload_column: "description".into(),
                fields: serde_json::Map::new(),
                create: CreateMode::Upsert,
            },
        ))
    }
}

#[tokio::test]
async fn dataverse_meets_the_target_contract() {
    conformance(&DataverseBackend).await;
}
