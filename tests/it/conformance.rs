//! The contract every target kind meets, run against a fake of each kind's documented API.
//!
//! For each state of the world — the sentinel absent, present, present with other content, the
//! system throttling, refusing the credentials, answering garbage, or answering too slowly —
//! every kind must give the same answer to the engine: `Absent`, `Present` with content that
//! matches (or not), `Throttled` with the Retry-After, `Auth`, `BadResponse`, and a call that
//! the engine's deadline can abandon without harm. A kind that does not read content back
//! (`compares_content() == false`) answers `Present` without a payload in both content states:
//! it can say that the sentinel arrived, never that it arrived changed.
//!
//! Each fake answers only on the kind's documented route (method and path); any other request
//! gets a `418`, so a connector cannot pass a state by asking the wrong question. Every call is
//! exactly one request, authenticated the way the real service wants it (bearer, API-key header
//! or basic), except a `401` to a bearer token, which is retried once with a fresh token: static
//! credentials cannot be refreshed, so their `401` is final.
//!
//! Sources (`dataverse`, `fo_odata`, `http`) meet a smaller contract: a write is `Ok` on the documented
//! success, `Throttled` on 429 and `Auth` on 401.
//!
//! A new kind adds one `Backend` (and a `SourceBackend` if it can be written) here.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use common::{fakes, shapes};
use lagwatch::auth::Auth;
use lagwatch::connector::{ConnectorError, Lookup, Source, Target};
use lagwatch::net::HttpSystem;
use lagwatch::sentinel::Sentinel;
use lagwatch::systems::azure_search::{AzureSearch, DEFAULT_API_VERSION, SearchIndex, SearchMode};
use lagwatch::systems::dataverse::{CreateMode, Dataverse, TableMap};
use lagwatch::systems::dataverse_search::{DataverseSearch, SearchTable};
use lagwatch::systems::elasticsearch::{Elasticsearch, EsIndex, EsMode};
use lagwatch::systems::fo_odata::{EntityMap, FoOdata, Writes};
use lagwatch::systems::http::{HttpKind, HttpMap, HttpRead, HttpRequest};
use reqwest::Method;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

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

/// Seconds of `Retry-After` every throttling fake sends.
const RETRY_AFTER: u64 = 12;

/// How a kind's real service authenticates its callers.
#[derive(Debug, Clone, Copy)]
enum Creds {
    /// An Entra bearer token (from `fakes::FakeTokens`: `t1`, then `t2` after a rejection).
    Bearer,
    /// A static key in a header: (header name, value).
    Header(&'static str, &'static str),
    /// Basic credentials: (user, password, the `Authorization` value they make).
    Basic(&'static str, &'static str, &'static str),
}

impl Creds {
    fn auth(self) -> Auth {
        match self {
            Creds::Bearer => fakes::bearer(),
            Creds::Header(name, value) => fakes::key_header(name, value),
            Creds::Basic(user, password, _) => fakes::basic(user, password),
        }
    }

    /// The header (name, value) request number `attempt` (from 0) must carry.
    fn sent(self, attempt: usize) -> (&'static str, String) {
        match self {
            Creds::Bearer => ("authorization", format!("Bearer t{}", attempt + 1)),
            Creds::Header(name, value) => (name, value.to_string()),
            Creds::Basic(_, _, header) => ("authorization", header.to_string()),
        }
    }

    /// Requests one call sends when every answer is `401`: a bearer token is refreshed and
    /// retried once; a static credential is not, since sending it again cannot help.
    fn attempts_on_401(self) -> usize {
        match self {
            Creds::Bearer => 2,
            Creds::Header(..) | Creds::Basic(..) => 1,
        }
    }
}

/// Where a fake answers: an HTTP method and a path.
struct Route(&'static str, String);

/// What every fake API has: a name, credentials, and the error bodies its service sends.
trait Api: Send + Sync {
    /// `kind` or `kind/mode`, for messages and the system name.
    fn name(&self) -> &'static str;
    /// How the real service authenticates; Entra bearer tokens unless overridden.
    fn creds(&self) -> Creds {
        Creds::Bearer
    }
    /// The answer with error status `status` (429 or 401) as the service sends it, without
    /// `Retry-After` (added by the harness). The OData `{"error":{"code","message"}}` shape of
    /// Dataverse, F&O and Azure AI Search unless overridden.
    fn error(&self, status: u16) -> ResponseTemplate {
        odata_error(status, "", "request refused")
    }
}

/// One target kind's fake: how its API answers in each state, and how to build the target.
trait Backend: Api {
    /// The documented request of a lookup of `sentinel`.
    fn route(&self, sentinel: &Sentinel) -> Route;
    /// The success answer for a lookup of `sentinel` whose stored payload is `payload`
    /// (`None`: the record does not exist).
    fn found(&self, sentinel: &Sentinel, payload: Option<&str>) -> ResponseTemplate;
    /// A success status with a body that cannot be understood.
    fn malformed(&self, _sentinel: &Sentinel) -> ResponseTemplate {
        fakes::truncated_json()
    }
    /// Whether the kind reads the stored content back (and so can tell a changed sentinel).
    fn compares_content(&self) -> bool {
        true
    }
    /// The target, reading from `base` (the fake's URI) through `http`.
    fn target(&self, base: &str, http: HttpSystem) -> Arc<dyn Target>;
}

/// One source kind's fake for writes.
trait SourceBackend: Api {
    /// The documented request of a write of `sentinel`.
    fn write_route(&self, sentinel: &Sentinel) -> Route;
    /// The documented success answer of that write.
    fn written(&self) -> ResponseTemplate;
    /// The source, writing to `base` (the fake's URI) through `http`.
    fn source(&self, base: &str, http: HttpSystem) -> Arc<dyn Source>;
}

/// An OData error answer; a `401` carries the bearer challenge Entra-protected services send.
fn odata_error(status: u16, code: &str, message: &str) -> ResponseTemplate {
    let t = shapes::odata_error(status, code, message);
    if status == 401 {
        t.insert_header("WWW-Authenticate", "Bearer")
    } else {
        t
    }
}

/// A fake service answering `template` on `route` and `418` to anything else.
struct Fake {
    server: MockServer,
    http: HttpSystem,
    creds: Creds,
}

impl Fake {
    async fn start(api: &dyn Api, route: Route, template: ResponseTemplate) -> Fake {
        let server = MockServer::start().await;
        Mock::given(method(route.0))
            .and(path(route.1))
            .respond_with(template)
            .mount(&server)
            .await;
        Mock::given(wiremock::matchers::any())
            .respond_with(ResponseTemplate::new(418).set_body_string("not the documented request"))
            .with_priority(u8::MAX)
            .mount(&server)
            .await;
        let creds = api.creds();
        let http = fakes::http_system(api.name(), creds.auth());
        Fake {
            server,
            http,
            creds,
        }
    }

    /// Asserts that `attempts` requests came, each with the credentials for its attempt.
    async fn assert_requests(&self, who: &str, attempts: usize) {
        let received: Vec<Request> = self.server.received_requests().await.unwrap();
        let seen: Vec<String> = received
            .iter()
            .map(|r| format!("{} {}", r.method, r.url.path()))
            .collect();
        assert_eq!(
            received.len(),
            attempts,
            "{who}: expected {attempts} request(s), got {seen:?}"
        );
        for (n, r) in received.iter().enumerate() {
            let (name, value) = self.creds.sent(n);
            let got = r.headers.get(name).and_then(|v| v.to_str().ok());
            assert_eq!(
                got,
                Some(value.as_str()),
                "{who}: header {name} of request {n}"
            );
        }
    }
}

/// The answer of the service in an error state, as the kind's service sends it.
fn refusal(api: &dyn Api, state: State) -> ResponseTemplate {
    match state {
        State::Throttled => api
            .error(429)
            .insert_header("Retry-After", RETRY_AFTER.to_string().as_str()),
        State::Unauthorized => api.error(401),
        other => unreachable!("{other:?} is not a refusal"),
    }
}

/// Whether `result` is the error the contract asks for in `state`.
fn refused_as_expected<T>(state: State, result: &Result<T, ConnectorError>) -> bool {
    match (state, result) {
        (State::Throttled, Err(ConnectorError::Throttled { retry_after })) => {
            *retry_after == Some(Duration::from_secs(RETRY_AFTER))
        }
        (State::Unauthorized, Err(ConnectorError::Auth(_))) => true,
        _ => false,
    }
}

async fn conformance(backend: &dyn Backend) {
    let name = backend.name();
    for state in STATES {
        let s = Sentinel::new("conf", 1, Utc::now());
        let template = match state {
            State::Absent => backend.found(&s, None),
            State::Present => backend.found(&s, Some(&s.payload)),
            State::Mismatch => backend.found(&s, Some(&s.payload.to_uppercase())),
            State::Throttled | State::Unauthorized => refusal(backend, state),
            State::Malformed => backend.malformed(&s),
            State::Slow => backend
                .found(&s, Some(&s.payload))
                .set_delay(Duration::from_secs(3)),
        };
        let fake = Fake::start(backend, backend.route(&s), template).await;
        let target = backend.target(&fake.server.uri(), fake.http.clone());
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
        let content = backend.compares_content();
        let ok = match (state, &result) {
            (State::Absent, Ok(Lookup::Absent)) => true,
            (State::Present, Ok(Lookup::Present { payload: Some(p) })) => content && s.matches(p),
            (State::Mismatch, Ok(Lookup::Present { payload: Some(p) })) => content && !s.matches(p),
            // Without content, arrival is all there is to say, changed or not.
            (State::Present | State::Mismatch, Ok(Lookup::Present { payload: None })) => !content,
            (State::Throttled | State::Unauthorized, r) => refused_as_expected(state, r),
            (State::Malformed, Err(ConnectorError::BadResponse { .. })) => true,
            (State::Slow, Err(ConnectorError::Timeout)) => true,
            _ => false,
        };
        assert!(ok, "{name} in state {state:?} answered {result:?}");
        // One call is one request (a bearer 401 excepted), with the kind's credentials.
        let attempts = match state {
            State::Unauthorized => fake.creds.attempts_on_401(),
            _ => 1,
        };
        if state != State::Slow {
            fake.assert_requests(&format!("{name} in state {state:?}"), attempts)
                .await;
        }
    }
}

async fn source_conformance(backend: &dyn SourceBackend) {
    let name = backend.name();
    for state in [State::Present, State::Throttled, State::Unauthorized] {
        let s = Sentinel::new("conf", 1, Utc::now());
        let template = match state {
            State::Present => backend.written(),
            _ => refusal(backend, state),
        };
        let fake = Fake::start(backend, backend.write_route(&s), template).await;
        let source = backend.source(&fake.server.uri(), fake.http.clone());
        let result = source.write(&s).await;
        let ok = match state {
            State::Present => result.is_ok(),
            _ => refused_as_expected(state, &result),
        };
        assert!(ok, "{name} writing in state {state:?} answered {result:?}");
        let attempts = match state {
            State::Unauthorized => fake.creds.attempts_on_401(),
            _ => 1,
        };
        fake.assert_requests(&format!("{name} writing in state {state:?}"), attempts)
            .await;
    }
}

// ---------------------------------------------------------------- dataverse

/// Dataverse Web API: key-column lookups in another environment, upsert or POST writes.
struct DataverseBackend {
    create: CreateMode,
}

impl Api for DataverseBackend {
    fn name(&self) -> &'static str {
        match self.create {
            CreateMode::Upsert => "dataverse",
            CreateMode::Post => "dataverse/post",
        }
    }
    fn error(&self, status: u16) -> ResponseTemplate {
        match status {
            429 => odata_error(
                429,
                "0x80072322",
                "Number of requests exceeded the limit of 6000 over time window of 300 seconds.",
            ),
            _ => odata_error(status, "", "ExpiredAuthTicket"),
        }
    }
}

impl DataverseBackend {
    fn connector(&self, base: &str, http: HttpSystem) -> Arc<Dataverse> {
        Arc::new(Dataverse::new(
            http,
            TableMap {
                base: format!("{base}/api/data/v9.2"),
                table: "accounts".into(),
                id_column: "accountid".into(),
                key_column: "accountnumber".into(),
                payload_column: "description".into(),
                fields: serde_json::Map::new(),
                create: self.create,
                parent_column: Some("parentaccountid".into()),
            },
        ))
    }
}

impl Backend for DataverseBackend {
    fn route(&self, _s: &Sentinel) -> Route {
        Route("GET", "/api/data/v9.2/accounts".into())
    }
    fn found(&self, s: &Sentinel, payload: Option<&str>) -> ResponseTemplate {
        let rows: Vec<Value> = payload
            .map(|p| json!({"@odata.etag": "W/\"1\"", "accountnumber": s.id.key(), "description": p}))
            .into_iter()
            .collect();
        ResponseTemplate::new(200).set_body_json(json!({"@odata.context": "…", "value": rows}))
    }
    fn target(&self, base: &str, http: HttpSystem) -> Arc<dyn Target> {
        self.connector(base, http)
    }
}

impl SourceBackend for DataverseBackend {
    fn write_route(&self, s: &Sentinel) -> Route {
        match self.create {
            CreateMode::Upsert => {
                Route("PATCH", format!("/api/data/v9.2/accounts({})", s.id.uuid()))
            }
            CreateMode::Post => Route("POST", "/api/data/v9.2/accounts".into()),
        }
    }
    fn written(&self) -> ResponseTemplate {
        match self.create {
            // An upsert without `Prefer: return=representation` answers 204 No Content.
            CreateMode::Upsert => ResponseTemplate::new(204),
            CreateMode::Post => ResponseTemplate::new(201)
                .set_body_json(json!({"@odata.etag": "W/\"1\"", "accountid": "…"})),
        }
    }
    fn source(&self, base: &str, http: HttpSystem) -> Arc<dyn Source> {
        self.connector(base, http)
    }
}

#[tokio::test]
async fn dataverse_filter_meets_the_target_contract() {
    conformance(&DataverseBackend {
        create: CreateMode::Upsert,
    })
    .await;
}

#[tokio::test]
async fn dataverse_upsert_meets_the_source_contract() {
    source_conformance(&DataverseBackend {
        create: CreateMode::Upsert,
    })
    .await;
}

#[tokio::test]
async fn dataverse_post_meets_the_source_contract() {
    source_conformance(&DataverseBackend {
        create: CreateMode::Post,
    })
    .await;
}

// ---------------------------------------------------------------- fo_odata

/// F&O OData entity set `CustomersV3`, with or without the payload field mapped.
struct FoOdataBackend {
    payload_field: bool,
}

impl Api for FoOdataBackend {
    fn name(&self) -> &'static str {
        if self.payload_field {
            "fo_odata/payload"
        } else {
            "fo_odata/presence"
        }
    }
    fn error(&self, status: u16) -> ResponseTemplate {
        match status {
            // Priority-based throttling (fact sheet §4.2): a 429 with Retry-After.
            429 => ResponseTemplate::new(429).set_body_string("Too many requests"),
            // F&O answers a rejected token with an empty 401.
            _ => ResponseTemplate::new(status).insert_header("WWW-Authenticate", "Bearer"),
        }
    }
}

impl Backend for FoOdataBackend {
    fn route(&self, _s: &Sentinel) -> Route {
        Route("GET", "/data/CustomersV3".into())
    }
    fn found(&self, s: &Sentinel, payload: Option<&str>) -> ResponseTemplate {
        // `$select` names the payload field only when it is mapped.
        let rows: Vec<Value> = payload
            .map(|p| shapes::fo_row(s.id.key(), Some(p).filter(|_| self.payload_field)))
            .into_iter()
            .collect();
        shapes::fo_page(rows)
    }
    fn compares_content(&self) -> bool {
        self.payload_field
    }
    fn target(&self, base: &str, http: HttpSystem) -> Arc<dyn Target> {
        Arc::new(FoOdata::new(
            http,
            EntityMap {
                base: base.to_string(),
                entity_set: "CustomersV3".into(),
                key_field: "CustomerAccount".into(),
                payload_field: self.payload_field.then(|| "OrganizationName".into()),
                data_area_id: Some("usmf".into()),
                writes: None,
            },
        ))
    }
}

/// F&O as a source: `CustomersV3` rows created with a POST (dual-write carries them to
/// Dataverse), the key in `OrganizationName`.
struct FoOdataSourceBackend;

impl Api for FoOdataSourceBackend {
    fn name(&self) -> &'static str {
        "fo_odata/source"
    }
    fn error(&self, status: u16) -> ResponseTemplate {
        FoOdataBackend {
            payload_field: true,
        }
        .error(status)
    }
}

impl SourceBackend for FoOdataSourceBackend {
    fn write_route(&self, _s: &Sentinel) -> Route {
        Route("POST", "/data/CustomersV3".into())
    }
    fn written(&self) -> ResponseTemplate {
        // The created row, its key assigned by the number sequence.
        ResponseTemplate::new(201).set_body_json(json!({
            "@odata.etag": "W/\"JzEsNTYzNzE0NDU3Nic=\"",
            "dataAreaId": "usmf",
            "CustomerAccount": "DW-000001",
        }))
    }
    fn source(&self, base: &str, http: HttpSystem) -> Arc<dyn Source> {
        Arc::new(FoOdata::new(
            http,
            EntityMap {
                base: base.to_string(),
                entity_set: "CustomersV3".into(),
                key_field: "OrganizationName".into(),
                payload_field: Some("AddressDescription".into()),
                data_area_id: Some("usmf".into()),
                writes: Some(Writes {
                    fields: serde_json::Map::from_iter([(
                        "CustomerGroupId".to_string(),
                        json!("30"),
                    )]),
                    entity_key: vec!["CustomerAccount".into()],
                }),
            },
        ))
    }
}

#[tokio::test]
async fn fo_odata_meets_the_source_contract() {
    source_conformance(&FoOdataSourceBackend).await;
}

#[tokio::test]
async fn fo_odata_payload_meets_the_target_contract() {
    conformance(&FoOdataBackend {
        payload_field: true,
    })
    .await;
}

#[tokio::test]
async fn fo_odata_presence_meets_the_target_contract() {
    conformance(&FoOdataBackend {
        payload_field: false,
    })
    .await;
}

// ---------------------------------------------------------------- azure_search

/// Azure AI Search index `sentinels`, read with a query key in the `api-key` header.
struct AzureSearchBackend {
    mode: SearchMode,
}

impl Api for AzureSearchBackend {
    fn name(&self) -> &'static str {
        match self.mode {
            SearchMode::Lookup => "azure_search/lookup",
            SearchMode::Filter => "azure_search/filter",
        }
    }
    fn creds(&self) -> Creds {
        Creds::Header("api-key", "query-key-1")
    }
}

impl Backend for AzureSearchBackend {
    fn route(&self, s: &Sentinel) -> Route {
        match self.mode {
            SearchMode::Lookup => Route("GET", format!("/indexes/sentinels/docs/{}", s.id.key())),
            SearchMode::Filter => Route("POST", "/indexes/sentinels/docs/search".into()),
        }
    }
    fn found(&self, s: &Sentinel, payload: Option<&str>) -> ResponseTemplate {
        let doc = payload.map(|p| shapes::search_doc(s.id.key(), p));
        match (self.mode, doc) {
            // A missing document is a 404; the fact sheet leaves its body unverified (§6.1).
            (SearchMode::Lookup, None) => ResponseTemplate::new(404),
            (SearchMode::Lookup, Some(d)) => ResponseTemplate::new(200).set_body_json(d),
            (SearchMode::Filter, doc) => shapes::search_results(doc.into_iter().collect()),
        }
    }
    fn target(&self, base: &str, http: HttpSystem) -> Arc<dyn Target> {
        Arc::new(AzureSearch::new(
            http,
            SearchIndex {
                endpoint: base.to_string(),
                index: "sentinels".into(),
                api_version: DEFAULT_API_VERSION.into(),
                mode: self.mode,
                key_field: "sentinel_key".into(),
                payload_field: "payload".into(),
            },
        ))
    }
}

#[tokio::test]
async fn azure_search_lookup_meets_the_target_contract() {
    conformance(&AzureSearchBackend {
        mode: SearchMode::Lookup,
    })
    .await;
}

#[tokio::test]
async fn azure_search_filter_meets_the_target_contract() {
    conformance(&AzureSearchBackend {
        mode: SearchMode::Filter,
    })
    .await;
}

// ---------------------------------------------------------------- dataverse_search

/// Dataverse search's `searchquery` action on `account`: results as escaped JSON inside
/// `response`.
struct DataverseSearchBackend;

impl Api for DataverseSearchBackend {
    fn name(&self) -> &'static str {
        "dataverse_search/searchquery"
    }
    fn error(&self, status: u16) -> ResponseTemplate {
        match status {
            429 => odata_error(
                429,
                "0x80072322",
                "Number of requests exceeded the limit of 1 over time window of 1 seconds.",
            ),
            _ => odata_error(status, "", "ExpiredAuthTicket"),
        }
    }
}

impl Backend for DataverseSearchBackend {
    fn route(&self, _s: &Sentinel) -> Route {
        Route("POST", "/api/data/v9.2/searchquery".into())
    }
    fn found(&self, s: &Sentinel, payload: Option<&str>) -> ResponseTemplate {
        let hits = payload
            .map(|p| shapes::searchquery_hit(s.id.key(), p))
            .into_iter()
            .collect();
        shapes::searchquery(Value::Null, hits)
    }
    /// The envelope is fine; the escaped JSON inside `response` is cut off.
    fn malformed(&self, _s: &Sentinel) -> ResponseTemplate {
        shapes::searchquery_text("{\"Error\":null,\"Value\":[{\"Id\":\"8b35")
    }
    fn target(&self, base: &str, http: HttpSystem) -> Arc<dyn Target> {
        Arc::new(DataverseSearch::new(
            http,
            SearchTable {
                base: format!("{base}/api/data/v9.2"),
                entity: "account".into(),
                key_column: "accountnumber".into(),
                payload_column: "description".into(),
            },
        ))
    }
}

#[tokio::test]
async fn dataverse_search_searchquery_meets_the_target_contract() {
    conformance(&DataverseSearchBackend).await;
}

// ---------------------------------------------------------------- elasticsearch

/// Elasticsearch index `crm-accounts`: `indexed` read with an API key, `searchable` with basic
/// credentials (the two static methods the kind accepts).
struct ElasticsearchBackend {
    mode: EsMode,
}

impl Api for ElasticsearchBackend {
    fn name(&self) -> &'static str {
        match self.mode {
            EsMode::Indexed => "elasticsearch/indexed",
            EsMode::Searchable => "elasticsearch/searchable",
        }
    }
    fn creds(&self) -> Creds {
        match self.mode {
            // The encoded key Elasticsearch returns, sent as `Authorization: ApiKey …`.
            EsMode::Indexed => Creds::Header("authorization", "ApiKey aWQ6a2V5"),
            // base64("lagwatch:s3cret")
            EsMode::Searchable => Creds::Basic("lagwatch", "s3cret", "Basic bGFnd2F0Y2g6czNjcmV0"),
        }
    }
    fn error(&self, status: u16) -> ResponseTemplate {
        match status {
            429 => shapes::es_error(
                429,
                "es_rejected_execution_exception",
                "rejected execution of coordinating operation",
            ),
            _ => shapes::es_error(
                status,
                "security_exception",
                "unable to authenticate user [lagwatch] for REST request",
            )
            .append_header(
                "WWW-Authenticate",
                "Basic realm=\"security\" charset=\"UTF-8\"",
            )
            .append_header("WWW-Authenticate", "ApiKey"),
        }
    }
}

impl Backend for ElasticsearchBackend {
    fn route(&self, s: &Sentinel) -> Route {
        match self.mode {
            EsMode::Indexed => Route("GET", format!("/crm-accounts/_doc/{}", s.id.key())),
            EsMode::Searchable => Route("POST", "/crm-accounts/_search".into()),
        }
    }
    fn found(&self, s: &Sentinel, payload: Option<&str>) -> ResponseTemplate {
        let key = s.id.key();
        match (self.mode, payload) {
            (EsMode::Indexed, None) => shapes::es_missing(key),
            (EsMode::Indexed, Some(p)) => shapes::es_document(key, p),
            (EsMode::Searchable, payload) => shapes::es_hits(
                payload
                    .map(|p| shapes::es_source(key, p))
                    .into_iter()
                    .collect(),
            ),
        }
    }
    fn target(&self, base: &str, http: HttpSystem) -> Arc<dyn Target> {
        Arc::new(Elasticsearch::new(
            http,
            EsIndex {
                base: base.to_string(),
                index: "crm-accounts".into(),
                mode: self.mode,
                key_field: "sentinel_key".into(),
                payload_field: "payload".into(),
            },
        ))
    }
}

#[tokio::test]
async fn elasticsearch_indexed_meets_the_target_contract() {
    conformance(&ElasticsearchBackend {
        mode: EsMode::Indexed,
    })
    .await;
}

#[tokio::test]
async fn elasticsearch_searchable_meets_the_target_contract() {
    conformance(&ElasticsearchBackend {
        mode: EsMode::Searchable,
    })
    .await;
}

// ---------------------------------------------------------------- http

/// A plain REST resource `PUT/GET /items/{id}` behind an API key header; the stored payload is
/// at `/record/data`.
struct HttpBackend;

impl Api for HttpBackend {
    fn name(&self) -> &'static str {
        "http"
    }
    fn creds(&self) -> Creds {
        Creds::Header("x-api-key", "k-123")
    }
    fn error(&self, status: u16) -> ResponseTemplate {
        match status {
            429 => ResponseTemplate::new(429).set_body_string("Too Many Requests"),
            _ => ResponseTemplate::new(status).set_body_json(json!({"message": "Invalid API key"})),
        }
    }
}

impl HttpBackend {
    fn connector(&self, base: &str, http: HttpSystem) -> Arc<HttpKind> {
        let mut write = HttpRequest::new(Method::PUT, format!("{base}/items/{{id}}"));
        write.body = Some(r#"{"key":"{id}","data":"{payload}"}"#.into());
        write.success = vec![200, 201];
        Arc::new(HttpKind::new(
            http,
            HttpMap {
                write: Some(write),
                lookup: Some(HttpRead {
                    request: HttpRequest::new(Method::GET, format!("{base}/items/{{id}}")),
                    payload_pointer: Some("/record/data".into()),
                    present_when: None,
                }),
                ..HttpMap::default()
            },
        ))
    }
}

impl Backend for HttpBackend {
    fn route(&self, s: &Sentinel) -> Route {
        Route("GET", format!("/items/{}", s.id.key()))
    }
    fn found(&self, s: &Sentinel, payload: Option<&str>) -> ResponseTemplate {
        match payload {
            None => ResponseTemplate::new(404).set_body_json(json!({"message": "no such item"})),
            Some(p) => ResponseTemplate::new(200)
                .set_body_json(json!({"record": {"key": s.id.key(), "data": p}})),
        }
    }
    fn target(&self, base: &str, http: HttpSystem) -> Arc<dyn Target> {
        self.connector(base, http)
    }
}

impl SourceBackend for HttpBackend {
    fn write_route(&self, s: &Sentinel) -> Route {
        Route("PUT", format!("/items/{}", s.id.key()))
    }
    fn written(&self) -> ResponseTemplate {
        ResponseTemplate::new(201).set_body_json(json!({"created": true}))
    }
    fn source(&self, base: &str, http: HttpSystem) -> Arc<dyn Source> {
        self.connector(base, http)
    }
}

#[tokio::test]
async fn http_lookup_meets_the_target_contract() {
    conformance(&HttpBackend).await;
}

#[tokio::test]
async fn http_write_meets_the_source_contract() {
    source_conformance(&HttpBackend).await;
}
