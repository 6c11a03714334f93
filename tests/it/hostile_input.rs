//! Hostile input: every parser of what a remote system (or a lake) sends, and the config
//! loader, must never panic, never allocate without bound, and answer garbage with its typed
//! error. Property tests with generated input; `docs/fuzzing.md` says how to run longer
//! campaigns (`PROPTEST_CASES=100000 cargo test --release --test it hostile_input::`).
//!
//! Inputs: random bytes, random and deeply nested JSON, valid documents with a field of the
//! wrong type, huge numbers (`1e400`, `18446744073709551616`, …), invalid UTF-8, and mutations
//! of a valid example (truncated at a random point, a byte flipped, random bytes inserted, a key
//! duplicated).
//!
//! Cases per test (`PROPTEST_CASES` overrides all of them):
//! - `net_helpers` 2048: `Reply::json`, `excerpt`, `retry_after`, `clock::parse_http_date`;
//! - `http_connectors` 256 (each case is ~15 HTTP round trips to one wiremock server): the
//!   lookups of Dataverse, F&O, Azure AI Search (both modes), Elasticsearch (both modes),
//!   Dataverse search and the generic `http` kind, the sources' read-your-write `read` and
//!   `list_own` (Dataverse, `http`), and the inventory page of Dataverse, F&O, Azure AI Search
//!   and Elasticsearch;
//! - `cdm_model_json` 2048, `synapse_incremental` 1024, `table_layout` 1024,
//!   `csv_inventory` 1024;
//! - `delta_log` 1024, `delta_inventory` 1024 (commits, `_last_checkpoint`, checkpoints and
//!   data files: mutated valid Parquet and random bytes);
//! - `blob_xml` 2048: the Azure Blob store's List Blobs and error bodies;
//! - `config_yaml` 1024 (random YAML-ish text and mutations of `examples/demo.yaml`).
//!
//! The Entra token response parser is private; its property test is beside it
//! (`src/auth/response.rs`, 512 cases). Deterministic tests below cover the body cap
//! (`net::DEFAULT_MAX_BODY`): a declared length over the cap and an endless chunked body are
//! both refused without being read.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::fakes::secret_file;
use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use lagwatch::config::platform::Surface;
use lagwatch::config::{Config, ConfigError};
use lagwatch::connector::ConnectorError;
use lagwatch::connector::inventory::{Inventory, InventoryQuery};
use lagwatch::connector::status::ClaimState;
use lagwatch::lake::delta::{DeltaCursor, DeltaSpec};
use lagwatch::lake::delta_inventory::DeltaInventory;
use lagwatch::lake::inventory::{CsvInventory, CsvLayout};
use lagwatch::lake::synapse::{Cursor, TableSpec};
use lagwatch::lake::table::TableCursor;
use lagwatch::lake::{FileEntry, LakeError, LakeStore, Listing, cdm};
use lagwatch::metrics::Metrics;
use lagwatch::net::{self, Reply};
use lagwatch::sentinel::SentinelId;
use lagwatch::systems::BuildContext;
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};
use serde_json::{Value, json};
use wiremock::matchers;
use wiremock::{Mock, MockServer, ResponseTemplate};

// ------------------------------------------------------------------ generators

/// Raw number texts no `f64`/`u64` holds exactly (or at all).
const HUGE: &[&str] = &[
    "1e400",
    "-1e400",
    "18446744073709551616",
    "-9223372036854775809",
    "123456789012345678901234567890123456789",
    "4294967296",
    "-0",
    "1.7976931348623157e308",
    "5e-324",
];

/// Stand-in for a huge number inside a generated `Value`; replaced in its text.
const HUGE_MARK: &str = "\u{1}huge";

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        "[a-zA-Z0-9 _.:/-]{0,24}".prop_map(Value::String),
        any::<String>().prop_map(Value::String),
        (0..HUGE.len()).prop_map(|i| Value::String(format!("{HUGE_MARK}{i}"))),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(5, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec(("[a-z@._]{0,12}", inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// A value's JSON text with huge-number marks turned into the raw numbers.
fn text_of(v: &Value) -> Vec<u8> {
    let mut s = v.to_string();
    for (i, n) in HUGE.iter().enumerate().rev() {
        s = s.replace(&format!("\"\\u0001huge{i}\""), n);
    }
    s.into_bytes()
}

/// JSON nested `depth` deep, closed or not.
fn deep(depth: usize, closed: bool, object: bool) -> Vec<u8> {
    let (open, close) = if object { ("{\"a\":", "}") } else { ("[", "]") };
    let mut s = open.repeat(depth);
    s.push('1');
    if closed {
        s.push_str(&close.repeat(depth));
    }
    s.into_bytes()
}

/// Mutations of a valid example: truncation, byte flips, inserted bytes, a duplicated slice.
fn mutate(base: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    let n = base.len().max(1);
    let b1 = base.clone();
    let b2 = base.clone();
    let b3 = base.clone();
    let b4 = base;
    prop_oneof![
        (0..n).prop_map(move |at| b1[..at.min(b1.len())].to_vec()),
        prop::collection::vec((0..n, 1u8..=255), 1..4).prop_map(move |flips| {
            let mut b = b2.clone();
            for (at, mask) in flips {
                if let Some(x) = b.get_mut(at) {
                    *x ^= mask;
                }
            }
            b
        }),
        (0..n, prop::collection::vec(any::<u8>(), 1..16)).prop_map(move |(at, junk)| {
            let mut b = b3.clone();
            let at = at.min(b.len());
            b.splice(at..at, junk);
            b
        }),
        (0..n, 0..n).prop_map(move |(a, z)| {
            let (a, z) = (a.min(z), a.max(z).min(b4.len()));
            let mut b = b4.clone();
            let copy = b[a..z].to_vec();
            b.splice(z..z, copy);
            b
        }),
    ]
}

/// A valid object with one field (top level or one below) replaced by any value, and the
/// same object with a key given twice (the second time with any value).
fn wrong_types(base: Value) -> impl Strategy<Value = Vec<u8>> {
    let b1 = base.clone();
    let b2 = base;
    prop_oneof![
        (
            any::<prop::sample::Index>(),
            any::<prop::sample::Index>(),
            value()
        )
            .prop_map(move |(i, j, v)| {
                let mut b = b1.clone();
                if let Value::Object(m) = &mut b
                    && !m.is_empty()
                {
                    let k = m.keys().nth(i.index(m.len())).cloned().unwrap_or_default();
                    let slot = m.get_mut(&k).expect("key just listed");
                    match slot {
                        Value::Object(inner) if !inner.is_empty() && j.index(2) == 0 => {
                            let k2 = inner
                                .keys()
                                .nth(j.index(inner.len()))
                                .cloned()
                                .unwrap_or_default();
                            inner.insert(k2, v);
                        }
                        _ => *slot = v,
                    }
                }
                text_of(&b)
            }),
        (any::<prop::sample::Index>(), value()).prop_map(move |(i, v)| {
            let Value::Object(m) = &b2 else {
                return text_of(&b2);
            };
            let mut entries: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{}:{}", Value::from(k.as_str()), v))
                .collect();
            if let Some(k) = m.keys().nth(i.index(m.len().max(1))) {
                let twice = format!(
                    "{}:{}",
                    Value::from(k.as_str()),
                    String::from_utf8_lossy(&text_of(&v))
                );
                entries.insert(i.index(entries.len() + 1), twice);
            }
            format!("{{{}}}", entries.join(",")).into_bytes()
        }),
    ]
}

/// Any hostile body, with `examples` as the valid documents to mutate.
fn body(examples: Vec<Value>) -> impl Strategy<Value = Vec<u8>> {
    let texts: Vec<Vec<u8>> = examples.iter().map(text_of).collect();
    let ex = prop::sample::select(examples);
    let tx = prop::sample::select(texts);
    prop_oneof![
        1 => prop::collection::vec(any::<u8>(), 0..256),
        1 => value().prop_map(|v| text_of(&v)),
        1 => (1usize..4000, any::<bool>(), any::<bool>()).prop_map(|(d, c, o)| deep(d, c, o)),
        3 => ex.prop_flat_map(wrong_types),
        3 => tx.prop_flat_map(mutate),
        // Invalid UTF-8 inside a JSON string.
        1 => Just(b"{\"value\":[{\"name\":\"\xff\xfe\xc3\"}]}".to_vec()),
    ]
}

fn cases(n: u32) -> ProptestConfig {
    let n = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(n);
    ProptestConfig {
        cases: n,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

// ------------------------------------------------------------------ net helpers

#[test]
fn net_helpers() {
    let mut runner = TestRunner::new(cases(2048));
    let strategy = (
        body(vec![json!({"value": [{"a": 1}]})]),
        "[ -~]{0,40}",
        any::<String>(),
    );
    runner
        .run(&strategy, |(bytes, header, text)| {
            let reply = Reply {
                status: reqwest::StatusCode::OK,
                headers: Default::default(),
                body: bytes.clone(),
                request: "GET example.com/api".to_string(),
            };
            match reply.json::<Value>() {
                Ok(_) => {}
                // Garbage names the request it answered.
                Err(ConnectorError::BadResponse {
                    status: 200,
                    detail,
                }) => prop_assert!(detail.starts_with("GET example.com/api: "), "{detail}"),
                Err(e) => panic!("not BadResponse: {e:?}"),
            }
            let e = net::excerpt(&bytes);
            prop_assert!(e.chars().count() <= 201);
            let mut h = reqwest::header::HeaderMap::new();
            if let Ok(v) = reqwest::header::HeaderValue::from_str(&header) {
                h.insert("retry-after", v);
            }
            if let Some(d) = net::retry_after(&h) {
                prop_assert!(d <= Duration::from_secs(86_400) || header.contains(','));
            }
            let _ = lagwatch::clock::parse_http_date(&header);
            let _ = lagwatch::clock::parse_http_date(&text);
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn retry_after_edge_values() {
    for v in [
        "-0",
        "-0.0",
        "NaN",
        "inf",
        "1e400",
        "18446744073709551616",
        "-1",
        "0.0000000001",
    ] {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert(
            "retry-after",
            reqwest::header::HeaderValue::from_str(v).unwrap(),
        );
        let _ = net::retry_after(&h);
    }
}

// ------------------------------------------------------------------ HTTP connectors

const TENANT: &str = "contoso";

async fn mount_token(server: &MockServer) {
    crate::common::fakes::mount_entra_token(server, TENANT, "tok-hostile").await;
}

/// Dataverse, F&O, Azure AI Search (lookup and search modes) and Elasticsearch (doc and
/// search modes) against one server, built from YAML as `lagwatch run` builds them.
struct Estate {
    server: MockServer,
    config: Config,
    cx: BuildContext,
}

async fn estate() -> Estate {
    let server = MockServer::start().await;
    let uri = server.uri();
    let entra = format!(
        "{{ method: client_secret, tenant_id: {TENANT}, client_id: app, client_secret: '{}', authority: '{uri}' }}",
        secret_file("client-secret", "s3cret")
    );
    let basic = format!(
        "{{ method: basic, username: u, password: '{}' }}",
        secret_file("es-password", "pw")
    );
    let yaml = format!(
        r#"
instance: hostile
systems:
  src: {{ kind: simulated }}
  crm:
    kind: dataverse
    url: {uri}/crm
    table: accounts
    id_column: accountid
    key_column: accountnumber
    payload_column: description
    scope: https://crm.crm.dynamics.com/.default
    auth: {entra}
  fno:
    kind: fo_odata
    url: {uri}/fno
    entity_set: CustomersV3
    key_field: CustomerAccount
    payload_field: OrganizationName
    data_area_id: usmf
    scope: https://fin.operations.dynamics.com/.default
    auth: {entra}
  search:
    kind: azure_search
    endpoint: {uri}/search
    index: accounts
    key_field: sentinel_key
    payload_field: payload
    auth: {entra}
  searchq:
    kind: azure_search
    endpoint: {uri}/searchq
    index: accounts
    mode: filter
    key_field: sentinel_key
    payload_field: payload
    auth: {entra}
  es:
    kind: elasticsearch
    url: {uri}/es
    index: accounts
    payload_field: payload
    auth: {basic}
  esq:
    kind: elasticsearch
    url: {uri}/esq
    index: accounts
    mode: searchable
    key_field: sentinel_key
    payload_field: payload
    auth: {basic}
  dvsearch:
    kind: dataverse_search
    url: {uri}/dvsearch
    entity: lw_sentinel
    key_column: lw_key
    payload_column: lw_payload
    auth: {entra}
  api:
    kind: http
    write:
      method: PUT
      url: {uri}/api/records/{{id}}
      body: '{{"key":"{{id}}","payload":"{{payload}}"}}'
    read:
      url: {uri}/api/records/{{id}}
      payload_pointer: /payload
    list:
      url: {uri}/api/records?keyPrefix={{prefix}}&createdBefore={{before}}
      items_pointer: /items
      key_pointer: /key
    auth: {basic}
  orders:
    kind: http
    lookup:
      url: {uri}/orders?externalId={{id}}
      payload_pointer: /value/0/note
      present_when: {{ pointer: /value/0/status, equals: active }}
    auth: {basic}
paths:
  - {{ source: crm, target: fno, timeout: 2h, objective: 30m }}
  - {{ source: src, target: dvsearch, timeout: 2h, objective: 30m }}
  - {{ source: api, target: orders, timeout: 2h, objective: 30m }}
  - {{ source: src, target: search, timeout: 2h, objective: 30m }}
  - {{ source: src, target: searchq, timeout: 2h, objective: 30m }}
  - {{ source: src, target: es, timeout: 2h, objective: 30m }}
  - {{ source: src, target: esq, timeout: 2h, objective: 30m }}
"#
    );
    let config = lagwatch_emulator::REGISTRY
        .from_yaml("hostile.yaml", &yaml)
        .unwrap_or_else(|e| panic!("{e}"));
    Estate {
        server,
        config,
        cx: BuildContext::new(Metrics::new()),
    }
}

impl Estate {
    fn system(&self, name: &str) -> lagwatch::systems::System {
        let gate = self.cx.gate(name, self.config.limits[name]);
        self.config.systems[name]
            .build(name, &self.cx, gate)
            .unwrap_or_else(|e| panic!("{}: {}", e.key, e.reason))
    }

    /// Every request answered with `status` and `body`, the token endpoint excepted.
    async fn answer(&self, template: ResponseTemplate) {
        self.server.reset().await;
        mount_token(&self.server).await;
        Mock::given(matchers::any())
            .respond_with(template)
            .mount(&self.server)
            .await;
    }
}

/// Valid answers of the four APIs, the documents the mutations start from.
fn http_examples() -> Vec<Value> {
    let key = "lagwatch-hostile-0193a0b4-7e3c-7c3e-9f1e-2b8d9c0a1b2c";
    vec![
        json!({"@odata.context": "x", "value": [{"accountid": "0193a0b4-7e3c-7c3e-9f1e-2b8d9c0a1b2c",
            "accountnumber": key, "description": "{\"seq\":1}", "modifiedon": "2026-11-02T10:15:07Z"}],
            "@odata.nextLink": "http://127.0.0.1:1/crm/accounts?$skiptoken=x"}),
        json!({"accountid": "0193a0b4-7e3c-7c3e-9f1e-2b8d9c0a1b2c", "accountnumber": key,
            "description": "{\"seq\":1}"}),
        json!({"error": {"code": "0x80040217", "message": "Does Not Exist"}}),
        json!({"sentinel_key": key, "payload": "p", "@search.score": 1.0}),
        json!({"_index": "accounts", "_id": key, "found": true, "_source": {"payload": "p"}}),
        json!({"hits": {"total": {"value": 1}, "hits": [{"_id": key, "_source": {"payload": "p"},
            "sort": [key]}]}}),
        json!({"error": {"type": "index_not_found_exception", "reason": "no such index"}, "status": 404}),
        json!({"response": json!({"Value": [{"Id": "x", "Attributes": {"lw_key": key, "lw_payload": "p"}}],
            "Count": 1}).to_string()}),
        json!({"key": key, "payload": "p", "items": [{"key": key}]}),
        json!({"value": [{"status": "active", "note": "p"}]}),
        // The platform status surfaces' answers (systems::status).
        json!({"value": [{"synapselinkprofileid": "p1", "name": "lake", "profilestate": 1,
            "entityname": "account", "syncstate": 2, "lastsynceddatatime": "2026-11-02T10:15:07Z",
            "lastsynceddataversion": "9123456", "_profile_value": "p1", "tablestate": 1,
            "lastsyncstate": 1, "lastsynchronizedon": "2026-11-02T10:15:07Z",
            "maxrecordversion": 9_123_456, "ProjectName": "p", "Status": 1}]}),
        json!({"response": json!({"value": {"status": "provisioned", "entitystatusresults": [
            {"entitylogicalname": "account", "lastdatasynctimestamp": "73630169!09/12/2022 14:26:14",
             "entitystatus": "EntitySyncComplete"}]}}).to_string()}),
        json!({"status": "running", "lastResult": {"status": "success", "startTime": "2026-11-02T10:15:07Z",
            "errors": [{"errorMessage": "m"}]}, "executionHistory": [{"status": "success",
            "startTime": "2026-11-02T10:15:07Z"}]}),
        json!({"_all": {"primaries": {"refresh": {"total": 4, "external_total": 3},
            "indexing": {"index_total": 9}}}}),
    ]
}

/// Whether `bytes` is JSON as far as a typed parse is concerned: fields a parser ignores are
/// skipped without checking their numbers' range or their strings' UTF-8, so `{"x": 1e400}`
/// is a valid answer to a parser that does not read `x`.
/// A hostile body for the HTTP connectors; a fifth of them is Dataverse search's answer, whose
/// `response` is itself JSON in a string, with that inner JSON hostile.
fn http_body() -> impl Strategy<Value = Vec<u8>> {
    let inner = json!({"Value": [{"Id": "x", "Attributes": {"lw_key": "k", "lw_payload": "p"}}],
        "Count": 1, "Error": null});
    prop_oneof![
        4 => body(http_examples()),
        1 => body(vec![inner]).prop_map(|b| {
            json!({"response": String::from_utf8_lossy(&b)}).to_string().into_bytes()
        }),
    ]
}

fn is_json(bytes: &[u8]) -> bool {
    serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok()
}

fn check(op: &str, status: u16, body: &[u8], r: Result<impl std::fmt::Debug, ConnectorError>) {
    if let Err(e) = &r {
        // Every failure is a classified ConnectorError; garbage with a success status is
        // BadResponse (never Transport, which would be retried as a network problem).
        if (200..300).contains(&status) && !is_json(body) && !body.is_empty() {
            assert!(
                matches!(e, ConnectorError::BadResponse { .. }),
                "{op}: HTTP {status} with a non-JSON body gave {e:?}"
            );
        }
        assert!(
            !matches!(e, ConnectorError::Transport(_)),
            "{op}: a complete response is not a transport error: {e:?}"
        );
    }
}

#[test]
fn http_connectors() {
    let rt = runtime();
    let e = rt.block_on(estate());
    let names = [
        "crm", "fno", "search", "searchq", "es", "esq", "dvsearch", "api", "orders",
    ];
    let systems: Vec<_> = names.iter().map(|n| (*n, e.system(n))).collect();
    // Every status reader every system offers (systems::status).
    let surfaces = [
        Surface::SynapseLink {
            table: "account".into(),
            profile: None,
        },
        Surface::SynapseLink {
            table: "account".into(),
            profile: Some("lake".into()),
        },
        Surface::FabricLink {
            table: "account".into(),
        },
        Surface::DataverseSearch {
            table: "account".into(),
        },
        Surface::AzureSearchIndexer {
            indexer: "accounts-indexer".into(),
        },
        Surface::ElasticsearchRefresh {},
        Surface::DualWrite {
            internal_entity: "Customers V3".into(),
            external_entity: "accounts".into(),
            status_values: [("1".to_string(), ClaimState::Healthy)].into(),
        },
    ];
    let readers: Vec<_> = systems
        .iter()
        .filter_map(|(name, system)| Some((*name, system.status.clone()?)))
        .flat_map(|(name, status)| {
            surfaces
                .iter()
                .filter_map(move |s| Some((name, status.reader(s).ok()?)))
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(readers.len() >= 7, "{}", readers.len());
    let id = SentinelId::new("hostile");
    let query = InventoryQuery {
        table: None,
        columns: vec!["accountnumber".into()],
        changed_since: None,
        page_size: 100,
    };
    let es_query = InventoryQuery {
        columns: vec!["_id".into()],
        ..query.clone()
    };
    let mut runner = TestRunner::new(cases(256));
    let status = prop_oneof![
        6 => Just(200u16),
        1 => Just(404u16),
        1 => Just(400u16),
        1 => Just(412u16),
        1 => 200u16..600,
    ];
    runner
        .run(&(status, http_body()), |(status, body)| {
            rt.block_on(async {
                e.answer(ResponseTemplate::new(status).set_body_bytes(body.clone()))
                    .await;
                for (name, system) in &systems {
                    if let Some(t) = &system.target {
                        check(name, status, &body, t.lookup(&id).await);
                    }
                    if let Some(s) = &system.source {
                        check(name, status, &body, s.read(&id).await);
                        check(name, status, &body, s.list_own("hostile", Utc::now()).await);
                    }
                    for (_, reader) in readers.iter().filter(|(n, _)| n == name) {
                        check(name, status, &body, reader.read().await);
                    }
                    if let Some(inv) = &system.inventory {
                        let q = if name.starts_with("es") {
                            &es_query
                        } else {
                            &query
                        };
                        if inv.check(q).is_ok() {
                            check(name, status, &body, inv.page(q, None).await);
                        }
                    }
                }
            });
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
}

/// A body over the cap is refused: with a declared length before any of it is read.
#[test]
fn declared_length_over_the_cap_is_refused_unread() {
    let rt = runtime();
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            loop {
                let (mut sock, _) = listener.accept().await.unwrap();
                let mut buf = [0u8; 4096];
                let _ = sock.read(&mut buf).await;
                let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1099511627776\r\n\r\n{\"value\":[";
                let _ = sock.write_all(head.as_bytes()).await;
                // Then nothing: a client that read on would wait for a terabyte.
                tokio::time::sleep(Duration::from_secs(30)).await;
            }
        });
        let e = estate_at(&format!("http://{addr}")).await;
        let sys = e.system_at();
        let r = tokio::time::timeout(Duration::from_secs(10), sys.lookup(&SentinelId::new("hostile")))
            .await
            .expect("refused without waiting for the body");
        match r {
            Err(ConnectorError::BadResponse { detail, .. }) => {
                assert!(detail.contains("larger than"), "{detail}");
            }
            other => panic!("{other:?}"),
        }
        server.abort();
    });
}

/// An endless chunked body is read only up to the cap.
#[test]
fn endless_chunked_body_stops_at_the_cap() {
    let rt = runtime();
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let sent = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = sent.clone();
        let server = tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 4096];
            let _ = sock.read(&mut buf).await;
            let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
            if sock.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            let chunk = vec![b' '; 64 * 1024];
            let framed = [format!("{:x}\r\n", chunk.len()).into_bytes(), chunk, b"\r\n".to_vec()].concat();
            while sock.write_all(&framed).await.is_ok() {
                counter.fetch_add(64 * 1024, std::sync::atomic::Ordering::SeqCst);
                if counter.load(std::sync::atomic::Ordering::SeqCst) > 64 * net::DEFAULT_MAX_BODY {
                    return;
                }
            }
        });
        let e = estate_at(&format!("http://{addr}")).await;
        let sys = e.system_at();
        let r = tokio::time::timeout(Duration::from_secs(30), sys.lookup(&SentinelId::new("hostile")))
            .await
            .expect("stops reading at the cap");
        match r {
            Err(ConnectorError::BadResponse { detail, .. }) => {
                assert!(detail.contains("larger than"), "{detail}");
            }
            other => panic!("{other:?}"),
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
        let sent = sent.load(std::sync::atomic::Ordering::SeqCst);
        // What the server got into the socket: the cap plus what kernel buffers hold.
        assert!(sent < 4 * net::DEFAULT_MAX_BODY, "server wrote {sent} bytes");
    });
}

/// An Elasticsearch system (basic auth: no token endpoint needed) at `origin`.
struct Plain {
    config: Config,
    cx: BuildContext,
}

async fn estate_at(origin: &str) -> Plain {
    let yaml = format!(
        r#"
instance: hostile
systems:
  src: {{ kind: simulated }}
  es:
    kind: elasticsearch
    url: {origin}/es
    index: accounts
    payload_field: payload
    auth: {{ method: basic, username: u, password: '{}' }}
paths:
  - {{ source: src, target: es, timeout: 2h, objective: 30m }}
"#,
        secret_file("es-password-plain", "pw")
    );
    Plain {
        config: lagwatch_emulator::REGISTRY
            .from_yaml("cap.yaml", &yaml)
            .unwrap_or_else(|e| panic!("{e}")),
        cx: BuildContext::new(Metrics::new()),
    }
}

impl Plain {
    fn system_at(&self) -> Arc<dyn lagwatch::connector::Target> {
        let gate = self.cx.gate("es", self.config.limits["es"]);
        self.config.systems["es"]
            .build("es", &self.cx, gate)
            .unwrap_or_else(|e| panic!("{}: {}", e.key, e.reason))
            .target
            .expect("a target")
    }
}

// ------------------------------------------------------------------ lake

/// A lake in memory: paths to bytes; folders are what the paths imply.
#[derive(Default)]
struct MemStore(Mutex<BTreeMap<String, Vec<u8>>>);

impl MemStore {
    fn put(&self, path: &str, bytes: impl Into<Vec<u8>>) {
        self.0
            .lock()
            .unwrap()
            .insert(path.to_string(), bytes.into());
    }
}

fn when() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 2, 10, 0, 0).unwrap()
}

#[async_trait]
impl LakeStore for MemStore {
    async fn list(&self, dir: &str) -> Result<Listing, LakeError> {
        let prefix = if dir.is_empty() {
            String::new()
        } else {
            format!("{dir}/")
        };
        let mut out = Listing::default();
        for (p, b) in self.0.lock().unwrap().iter() {
            let Some(rest) = p.strip_prefix(&prefix) else {
                continue;
            };
            match rest.split_once('/') {
                Some((d, _)) => {
                    if !out.dirs.iter().any(|x| x == d) {
                        out.dirs.push(d.to_string());
                    }
                }
                None => out.files.push(FileEntry {
                    name: rest.to_string(),
                    size: b.len() as u64,
                    version: Some(format!("{:x}", fnv(b))),
                    modified: Some(when()),
                }),
            }
        }
        Ok(out)
    }

    async fn get(&self, path: &str) -> Result<Option<Vec<u8>>, LakeError> {
        Ok(self.0.lock().unwrap().get(path).cloned())
    }

    async fn get_range(&self, path: &str, start: u64) -> Result<Option<Vec<u8>>, LakeError> {
        Ok(self.0.lock().unwrap().get(path).map(|b| {
            let at = usize::try_from(start).unwrap_or(usize::MAX).min(b.len());
            b[at..].to_vec()
        }))
    }
}

fn fnv(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325, |h, x| {
        (h ^ u64::from(*x)).wrapping_mul(0x100_0000_01b3)
    })
}

const F1: &str = "2026-11-02T10.15.00.000Z";
const F2: &str = "2026-11-02T10.20.00.000Z";

fn model() -> Value {
    json!({"name": "cdm", "version": "1.0", "entities": [
        {"$type": "LocalEntity", "name": "account", "attributes": [
            {"name": "Id", "dataType": "guid"},
            {"name": "SinkCreatedOn", "dataType": "dateTime"},
            {"name": "SinkModifiedOn", "dataType": "dateTime"},
            {"name": "name", "dataType": "string"},
            {"name": "description", "dataType": "string"},
            {"name": "versionnumber", "dataType": "int64"},
            {"name": "IsDelete", "dataType": "boolean"}]}]})
}

const CSV: &str = "0193a0b4-7e3c-7c3e-9f1e-2b8d9c0a1b2c,2026-11-02T10:15:07.1234567Z,11/02/2026 10:15:07 AM,\"lagwatch-hostile-1\",\"a \"\"quoted\"\", multi\nline payload\",1000001,False\n\
0193a0b4-7e3c-7c3e-9f1e-2b8d9c0a1b2d,,,business-row,x,1000002,True\n";

fn csv_body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        1 => prop::collection::vec(any::<u8>(), 0..256),
        3 => mutate(CSV.as_bytes().to_vec()),
        // Random fields from a CSV-ish alphabet, any count per record.
        1 => "[a-z0-9,\"\r\n ]{0,200}".prop_map(String::into_bytes),
        // An open quote that never closes.
        1 => Just(b"x,\"never closed\nand on\n".to_vec()),
    ]
}

fn model_body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        1 => body(vec![model()]),
        3 => Just(text_of(&model())),
    ]
}

fn spec() -> TableSpec {
    TableSpec {
        table: "account".into(),
        key_column: "name".into(),
        payload_column: Some("description".into()),
        key_prefix: "lagwatch-".into(),
    }
}

#[test]
fn cdm_model_json() {
    let mut runner = TestRunner::new(cases(2048));
    runner
        .run(&body(vec![model()]), |bytes| {
            let _ = cdm::columns(&bytes, "model.json", "account");
            let _ = cdm::typed_columns(&bytes, "model.json", "account");
            if !is_json(&bytes) {
                prop_assert!(cdm::columns(&bytes, "model.json", "account").is_err());
            }
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
}

fn lake_error_is_typed(r: &Result<impl std::fmt::Debug, LakeError>) {
    if let Err(e) = r {
        // Nothing here fails to reach the store; garbage is Malformed.
        assert!(matches!(e, LakeError::Malformed { .. }), "{e:?}");
    }
}

#[test]
fn synapse_incremental() {
    let rt = runtime();
    let mut runner = TestRunner::new(cases(1024));
    let changelog = prop_oneof![
        3 => Just(F2.as_bytes().to_vec()),
        1 => mutate(F2.as_bytes().to_vec()),
        1 => prop::collection::vec(any::<u8>(), 0..64),
        1 => "[0-9T.:Z-]{0,40}".prop_map(String::into_bytes),
    ];
    runner
        .run(
            &(changelog, model_body(), csv_body()),
            |(log, model, csv)| {
                let store = MemStore::default();
                store.put("Changelog/changelog.info", log);
                store.put(&format!("{F1}/model.json"), model);
                store.put(&format!("{F1}/account/2026-11.csv"), csv);
                store.put(&format!("{F2}/account/2026-11.csv"), CSV);
                let mut cursor = Cursor::new(spec(), when(), Duration::from_secs(3600));
                rt.block_on(async {
                    lake_error_is_typed(&cursor.scan(&store).await);
                    let _ = synapse_found(&cursor);
                });
                Ok(())
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
}

fn synapse_found(c: &Cursor) -> bool {
    c.found("lagwatch-hostile-1").is_some()
}

#[test]
fn table_layout() {
    let rt = runtime();
    let mut runner = TestRunner::new(cases(1024));
    runner
        .run(
            &(model_body(), csv_body(), csv_body(), any::<bool>()),
            |(model, first, more, rewrite)| {
                let store = MemStore::default();
                store.put("model.json", model);
                store.put("account/2026.csv", CSV);
                let mut cursor = TableCursor::new(spec(), Duration::from_secs(3600));
                rt.block_on(async {
                    // The first scan starts at the end of what is there; later ones read.
                    lake_error_is_typed(&cursor.scan(&store).await);
                    store.put("account/new.csv", first);
                    lake_error_is_typed(&cursor.scan(&store).await);
                    let grown = if rewrite {
                        more
                    } else {
                        [CSV.as_bytes(), &more].concat()
                    };
                    store.put("account/2026.csv", grown);
                    lake_error_is_typed(&cursor.scan(&store).await);
                });
                Ok(())
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn csv_inventory() {
    let rt = runtime();
    let mut runner = TestRunner::new(cases(1024));
    let q = InventoryQuery {
        table: None,
        columns: vec![
            "name".into(),
            "versionnumber".into(),
            "SinkModifiedOn".into(),
        ],
        changed_since: None,
        page_size: 1000,
    };
    let continuation = prop_oneof![
        4 => Just(None),
        1 => body(vec![json!({"folders": [F1], "file": "x.csv", "offset": 0})])
            .prop_map(|b| Some(String::from_utf8_lossy(&b).into_owned())),
    ];
    runner
        .run(
            &(
                model_body(),
                csv_body(),
                any::<bool>(),
                continuation,
                1u64..512,
            ),
            |(model, csv, table, next, page)| {
                let store = Arc::new(MemStore::default());
                let layout = if table {
                    store.put("model.json", model);
                    store.put("account/2026.csv", csv);
                    CsvLayout::Table
                } else {
                    store.put("Changelog/changelog.info", F2);
                    store.put(&format!("{F1}/model.json"), model);
                    store.put(&format!("{F1}/account/2026-11.csv"), csv);
                    CsvLayout::Incremental
                };
                let inv = CsvInventory::new(store, "account", layout).with_page_bytes(page);
                rt.block_on(async {
                    // A few pages: each is one store call.
                    let mut next = next;
                    for _ in 0..8 {
                        match inv.page(&q, next.as_deref()).await {
                            Ok(p) if p.next.is_some() => next = p.next,
                            Ok(_) => break,
                            Err(e) => {
                                assert!(matches!(e, ConnectorError::BadResponse { .. }), "{e:?}");
                                break;
                            }
                        }
                    }
                });
                Ok(())
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
}

fn delta_commit0() -> Vec<Value> {
    let schema = json!({"type": "struct", "fields": [
        {"name": "name", "type": "string", "nullable": true, "metadata": {}},
        {"name": "description", "type": "string", "nullable": true, "metadata": {}}]});
    vec![
        json!({"protocol": {"minReaderVersion": 1, "minWriterVersion": 2}}),
        json!({"metaData": {"id": "t", "format": {"provider": "parquet", "options": {}},
            "schemaString": schema.to_string(), "partitionColumns": [], "configuration": {},
            "createdTime": 1}}),
        json!({"add": {"path": "part-0.parquet", "partitionValues": {}, "size": 10,
            "modificationTime": 1_800_000_000_000_i64, "dataChange": true,
            "stats": "{\"numRecords\":1,\"minValues\":{\"name\":\"lagwatch-a\"},\"maxValues\":{\"name\":\"lagwatch-z\"}}"}}),
        json!({"remove": {"path": "part-0.parquet", "dataChange": true}}),
        json!({"commitInfo": {"operation": "WRITE"}}),
    ]
}

fn lines(v: &[Value]) -> Vec<u8> {
    v.iter()
        .map(|l| String::from_utf8_lossy(&text_of(l)).into_owned())
        .collect::<Vec<_>>()
        .join("\n")
        .into_bytes()
}

/// A commit: valid lines around one hostile line, a mutated whole commit, or garbage.
fn commit_body() -> impl Strategy<Value = Vec<u8>> {
    let valid = delta_commit0();
    let head = lines(&valid[..3]);
    prop_oneof![
        2 => (body(valid.clone()), 0..4usize).prop_map(move |(bad, at)| {
            let mut ls: Vec<Vec<u8>> = valid[..3].iter().map(text_of).collect();
            ls.insert(at.min(ls.len()), bad);
            ls.join(&b'\n')
        }),
        2 => mutate(head),
        1 => prop::collection::vec(any::<u8>(), 0..256),
    ]
}

fn hint_body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        body(vec![
            json!({"version": 0, "size": 3}),
            json!({"version": 0, "parts": 2})
        ]),
        (any::<u64>(), prop::option::of(any::<u32>()))
            .prop_map(|(v, p)| text_of(&json!({"version": v, "parts": p}))),
    ]
}

fn delta_spec() -> DeltaSpec {
    DeltaSpec {
        key_column: "name".into(),
        payload_column: Some("description".into()),
        key_prefix: "lagwatch-".into(),
    }
}

/// A valid snappy Parquet data file of the table in [`delta_commit0`] (two rows), what the
/// Parquet mutations start from.
fn parquet_example() -> Vec<u8> {
    parquet_example_with(parquet::basic::Compression::SNAPPY)
}

fn parquet_example_with(codec: parquet::basic::Compression) -> Vec<u8> {
    use parquet::data_type::{ByteArray, ByteArrayType};
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    let schema = Arc::new(
        parquet::schema::parser::parse_message_type(
            "message spark_schema { optional binary name (STRING); optional binary description (STRING); }",
        )
        .unwrap(),
    );
    let props = Arc::new(WriterProperties::builder().set_compression(codec).build());
    let mut w = SerializedFileWriter::new(Vec::new(), schema, props).unwrap();
    let mut rg = w.next_row_group().unwrap();
    for values in [
        ["lagwatch-hostile-1", "lagwatch-hostile-2"],
        ["{\"seq\":1}", "p"],
    ] {
        let values: Vec<ByteArray> = values.iter().map(|v| ByteArray::from(*v)).collect();
        let mut c = rg.next_column().unwrap().unwrap();
        c.typed::<ByteArrayType>()
            .write_batch(&values, Some(&[1, 1]), None)
            .unwrap();
        c.close().unwrap();
    }
    rg.close().unwrap();
    w.into_inner().unwrap()
}

/// A Parquet file: a mutated valid one (most of the time), or random bytes with or without
/// Parquet's magic at both ends.
fn parquet_body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => mutate(parquet_example()),
        1 => prop::collection::vec(any::<u8>(), 0..512),
        1 => prop::collection::vec(any::<u8>(), 0..512)
            .prop_map(|b| [b"PAR1".as_slice(), &b, b"PAR1"].concat()),
    ]
}

/// A table whose commit 0 (or checkpoint hint, or both) is hostile, whose data file is random
/// bytes or a mutated Parquet file, and whose later commit is hostile too.
fn delta_table() -> impl Strategy<Value = MemStoreSeed> {
    (
        commit_body(),
        prop::option::of(hint_body()),
        parquet_body(),
        commit_body(),
    )
        .prop_map(|(c0, hint, parquet, c1)| MemStoreSeed {
            c0,
            hint,
            parquet,
            c1,
        })
}

#[derive(Debug, Clone)]
struct MemStoreSeed {
    c0: Vec<u8>,
    hint: Option<Vec<u8>>,
    parquet: Vec<u8>,
    c1: Vec<u8>,
}

impl MemStoreSeed {
    fn store(&self) -> MemStore {
        let s = MemStore::default();
        s.put("_delta_log/00000000000000000000.json", self.c0.clone());
        if let Some(h) = &self.hint {
            s.put("_delta_log/_last_checkpoint", h.clone());
            s.put(
                "_delta_log/00000000000000000000.checkpoint.parquet",
                self.parquet.clone(),
            );
        }
        s.put("part-0.parquet", self.parquet.clone());
        s
    }
}

#[test]
fn delta_log() {
    let rt = runtime();
    let mut runner = TestRunner::new(cases(1024));
    runner
        .run(&delta_table(), |seed| {
            let store = seed.store();
            let mut cursor = DeltaCursor::new(delta_spec(), when(), Duration::from_secs(3600));
            rt.block_on(async {
                let r = tokio::time::timeout(Duration::from_secs(10), cursor.scan(&store))
                    .await
                    .expect("a scan of a tiny table ends");
                lake_error_is_typed(&r);
                store.put("_delta_log/00000000000000000001.json", seed.c1.clone());
                let r = tokio::time::timeout(Duration::from_secs(10), cursor.scan(&store))
                    .await
                    .expect("a scan of a tiny table ends");
                lake_error_is_typed(&r);
            });
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn delta_inventory() {
    let rt = runtime();
    let mut runner = TestRunner::new(cases(1024));
    let q = InventoryQuery {
        table: None,
        columns: vec!["name".into(), "description".into()],
        changed_since: None,
        page_size: 1000,
    };
    runner
        .run(&delta_table(), |seed| {
            let store = Arc::new(seed.store());
            store.put("_delta_log/00000000000000000001.json", seed.c1.clone());
            let inv = DeltaInventory::new(store, "lake");
            rt.block_on(async {
                let mut next: Option<String> = None;
                for _ in 0..8 {
                    let r = tokio::time::timeout(
                        Duration::from_secs(10),
                        inv.page(&q, next.as_deref()),
                    )
                    .await
                    .expect("a page of a tiny table ends");
                    match r {
                        Ok(p) if p.next.is_some() => next = p.next,
                        Ok(_) => break,
                        Err(e) => {
                            assert!(matches!(e, ConnectorError::BadResponse { .. }), "{e:?}");
                            break;
                        }
                    }
                }
            });
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
}

// ------------------------------------------------------------------ config

#[test]
fn config_yaml() {
    let demo = std::fs::read("examples/demo.yaml").expect("examples/demo.yaml");
    let mut runner = TestRunner::new(cases(1024));
    let yamlish = prop_oneof![
        1 => prop::collection::vec(any::<u8>(), 0..256)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        1 => "([a-z_]{1,8}: ?|- |  |\\{|\\}|\\[|\\]|&a |\\*a|!!str |'|\"|#|\n|[0-9]{1,3}|1e999|~|: |,){0,60}",
        4 => mutate(demo).prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        1 => (1usize..3000).prop_map(|d| "[".repeat(d)),
        1 => (1usize..3000).prop_map(|d| format!("{}x", "- ".repeat(d))),
    ];
    runner
        .run(&yamlish, |text| {
            match lagwatch_emulator::REGISTRY.from_yaml("fuzz.yaml", &text) {
                Ok(_) => {}
                Err(ConfigError::Syntax { message, .. }) => prop_assert!(!message.is_empty()),
                Err(ConfigError::Invalid { key, reason, .. }) => {
                    prop_assert!(!reason.is_empty(), "no reason for {key}")
                }
                Err(e @ ConfigError::Read { .. }) => panic!("not reading a file: {e}"),
            }
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn config_alias_bomb_is_refused() {
    let mut text = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 0..12 {
        let prev = if i == 0 {
            "a".to_string()
        } else {
            format!("b{}", i - 1)
        };
        text.push_str(&format!(
            "b{i}: &b{i} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
        ));
    }
    assert!(
        lagwatch_emulator::REGISTRY
            .from_yaml("bomb.yaml", &text)
            .is_err()
    );
}

/// Regression: `_last_checkpoint` naming a checkpoint in 4,294,967,295 parts made a path for
/// every part before reading the first (tens of gigabytes), in the cursor and the inventory.
#[test]
fn checkpoint_hint_with_billions_of_parts_is_refused() {
    let rt = runtime();
    rt.block_on(async {
        let store = Arc::new(MemStore::default());
        store.put(
            "_delta_log/_last_checkpoint",
            r#"{"version":3,"parts":4294967295}"#,
        );
        let mut cursor = DeltaCursor::new(delta_spec(), when(), Duration::from_secs(3600));
        match cursor.scan(store.as_ref()).await {
            Err(LakeError::Malformed { reason, .. }) => {
                assert!(reason.contains("parts"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
        let inv = DeltaInventory::new(store.clone(), "lake");
        let q = InventoryQuery {
            table: None,
            columns: vec!["name".into()],
            changed_since: None,
            page_size: 10,
        };
        let mut next = None;
        let mut refused = false;
        for _ in 0..4 {
            match inv.page(&q, next.as_deref()).await {
                Ok(p) => next = p.next,
                Err(ConnectorError::BadResponse { detail, .. }) => {
                    assert!(detail.contains("parts"), "{detail}");
                    refused = true;
                    break;
                }
                Err(e) => panic!("{e:?}"),
            }
        }
        assert!(refused);
        // The same from a checkpoint file's name when there is no hint.
        store.0.lock().unwrap().clear();
        store.put(
            "_delta_log/00000000000000000003.checkpoint.0000000001.4294967295.parquet",
            "x",
        );
        let mut cursor = DeltaCursor::new(delta_spec(), when(), Duration::from_secs(3600));
        assert!(matches!(
            cursor.scan(store.as_ref()).await,
            Err(LakeError::Malformed { .. })
        ));
    });
}

// ------------------------------------------------------------------ Azure Blob XML

const LISTING: &str = "\u{feff}<?xml version=\"1.0\" encoding=\"utf-8\"?><EnumerationResults ServiceEndpoint=\"https://a.blob.core.windows.net/\" ContainerName=\"c\"><Prefix>2026</Prefix><Delimiter>/</Delimiter><Blobs><BlobPrefix><Name>2026-11-02T10.15.00.000Z/</Name></BlobPrefix><Blob><Name Encoded=\"true\">a%20b.csv</Name><Properties><Last-Modified>Mon, 02 Nov 2026 10:15:07 GMT</Last-Modified><Etag>0x8DC</Etag><Content-Length>123</Content-Length><ResourceType>file</ResourceType></Properties></Blob></Blobs><NextMarker>m&amp;x&#65;</NextMarker></EnumerationResults>";

const STORAGE_ERROR: &str = "<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>BlobNotFound</Code><Message>The specified blob does not exist.\nRequestId:x</Message></Error>";

/// The List Blobs and storage error bodies of the Azure Blob lake store.
#[test]
fn blob_xml() {
    let mut runner = TestRunner::new(cases(2048));
    let xmlish = prop_oneof![
        1 => prop::collection::vec(any::<u8>(), 0..256),
        3 => mutate(LISTING.as_bytes().to_vec()),
        2 => mutate(STORAGE_ERROR.as_bytes().to_vec()),
        1 => "(<[A-Za-z:]{1,8}( [a-z]{1,4}=\"[^\"]{0,6}\")?/?>|</[A-Za-z]{1,8}>|&[a-z#0-9]{0,6};|<!\\[CDATA\\[|\\]\\]>|[a-z ]{0,6}){0,40}"
            .prop_map(String::into_bytes),
        1 => (1usize..5000).prop_map(|d| "<a>".repeat(d).into_bytes()),
    ];
    runner
        .run(&xmlish, |bytes| {
            let _ = lagwatch::lake::blob::parse_list_page(&bytes);
            let _ = lagwatch::lake::blob::parse_error(&bytes);
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(lagwatch::lake::blob::parse_list_page(LISTING.as_bytes()).is_ok());
    assert!(lagwatch::lake::blob::parse_error(STORAGE_ERROR.as_bytes()).is_some());
}

/// The examples the Delta mutations start from are a table the cursor reads: the generated
/// cases reach the Parquet reader, not just the first check.
#[test]
fn delta_examples_are_valid() {
    let rt = runtime();
    rt.block_on(async {
        let store = MemStore::default();
        store.put(
            "_delta_log/00000000000000000000.json",
            lines(&delta_commit0()[..3]),
        );
        store.put("part-0.parquet", parquet_example());
        let mut cursor = DeltaCursor::new(delta_spec(), when(), Duration::from_secs(3600));
        let scan = cursor.scan(&store).await.unwrap();
        assert_eq!(scan.files_read, 1);
        assert_eq!(
            cursor
                .found("lagwatch-hostile-1")
                .and_then(|f| f.payload.as_deref()),
            Some("{\"seq\":1}")
        );
    });
}

/// Likewise for the CSV examples: the model and the record the mutations start from are read.
#[test]
fn csv_examples_are_valid() {
    let rt = runtime();
    rt.block_on(async {
        let store = MemStore::default();
        store.put("Changelog/changelog.info", F2);
        store.put(&format!("{F1}/model.json"), text_of(&model()));
        store.put(&format!("{F1}/account/2026-11.csv"), CSV);
        let mut cursor = Cursor::new(spec(), when(), Duration::from_secs(3600));
        assert_eq!(cursor.scan(&store).await.unwrap().folders_read, 1);
        assert!(synapse_found(&cursor));
    });
}

/// The peak resident memory of this process, in bytes (Linux).
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Was open (docs/fuzzing.md): a 584-byte data file whose first page header claims an
/// uncompressed size of 2^31 - 1 bytes made the `parquet` crate's snappy codec zero-fill a
/// 2 GiB buffer before it found the page invalid (peak RSS 2.1 GB, then `Malformed`).
/// `lake::pages` now walks the page headers first and refuses it unread. The peak is per
/// process, so the RSS assertion is only meaningful as the first big allocation; run alone:
/// `cargo test --test it hostile_input:: parquet_page_size`.
#[test]
fn parquet_page_size_claims_are_bounded() {
    let mut b = parquet_example();
    // The first page header: field 1 (type), field 2 (uncompressed_page_size, zigzag 44).
    assert_eq!(&b[4..9], &[21, 4, 21, 88, 21]);
    b.splice(7..8, [0xfe, 0xff, 0xff, 0xff, 0x0f]);
    let rt = runtime();
    rt.block_on(async {
        let before = peak_rss().unwrap_or(0);
        let r = scan_data_file(b).await;
        let grown = peak_rss().unwrap_or(0).saturating_sub(before);
        assert!(is_malformed_because(&r, "uncompressed"), "{r:?}");
        assert!(
            grown < 16 << 20,
            "reading 588 bytes raised the peak by {grown} bytes"
        );
    });
}

/// A data file read through the Delta cursor as the table's only file.
async fn scan_data_file(b: Vec<u8>) -> Result<(), LakeError> {
    let store = MemStore::default();
    store.put(
        "_delta_log/00000000000000000000.json",
        lines(&delta_commit0()[..3]),
    );
    store.put("part-0.parquet", b);
    let mut cursor = DeltaCursor::new(delta_spec(), when(), Duration::from_secs(3600));
    cursor.scan(&store).await.map(drop)
}

fn is_malformed_because(r: &Result<(), LakeError>, why: &str) -> bool {
    matches!(r, Err(LakeError::Malformed { reason, .. }) if reason.contains(why))
}

/// Page headers claiming more than the file holds are refused by the page walk, a valid file
/// (every codec lagwatch builds with) is still read, and a gzip page inflating past its
/// declared size is refused without the crate's unbounded `read_to_end`.
#[test]
fn parquet_page_headers_are_checked_before_decoding() {
    let rt = runtime();
    rt.block_on(async {
        // A page claiming a compressed body of 1,000,000 bytes in a 580-byte file.
        let mut b = parquet_example();
        assert_eq!(&b[7..9], &[88, 21]);
        let big = [0x80, 0x89, 0x7a]; // zigzag varint of 1,000,000
        b.splice(9..10, big);
        let r = scan_data_file(b).await;
        assert!(
            is_malformed_because(&r, "larger than its column chunk"),
            "{r:?}"
        );

        // An uncompressed size of 200 MiB, over any page (the compressed size unchanged).
        let mut b = parquet_example();
        b.splice(7..8, [0x80, 0x80, 0x80, 0xc8, 0x01]);
        let r = scan_data_file(b).await;
        assert!(is_malformed_because(&r, "uncompressed"), "{r:?}");

        // A dictionary page claiming 2^30 values in 44 bytes (the crate sizes the dictionary
        // by the claim: 2^30 byte arrays). Its header's field 7, then num_values (zigzag 4).
        let mut b = parquet_example();
        let at = (10..20)
            .find(|&i| b[i..i + 3] == [0x4c, 0x15, 0x04])
            .unwrap()
            + 2;
        b.splice(at..at + 1, [0x80, 0x80, 0x80, 0x80, 0x08]); // zigzag varint of 2^30
        let r = scan_data_file(b).await;
        assert!(
            is_malformed_because(&r, "dictionary page claiming"),
            "{r:?}"
        );

        // Valid files are read, with every codec.
        for codec in [
            parquet::basic::Compression::UNCOMPRESSED,
            parquet::basic::Compression::SNAPPY,
            parquet::basic::Compression::GZIP(Default::default()),
            parquet::basic::Compression::ZSTD(Default::default()),
        ] {
            let r = scan_data_file(parquet_example_with(codec)).await;
            assert!(r.is_ok(), "{codec:?}: {r:?}");
        }

        // A gzip page whose header declares fewer bytes than its body inflates to (as a
        // gzip bomb does): the first page's uncompressed size, 44, made 10.
        let mut b = parquet_example_with(parquet::basic::Compression::GZIP(Default::default()));
        let at = (4..b.len() - 1).find(|&i| b[i..i + 2] == [21, 88]).unwrap();
        b[at + 1] = 20;
        let r = scan_data_file(b).await;
        assert!(is_malformed_because(&r, "gzip page inflating"), "{r:?}");
    });
}

/// A data file holding none of the inventory's columns is all-null rows; their number was
/// taken from the footer's `num_rows`, a claim: 2^40 rows sized a page of terabytes. They are
/// now counted by reading a column, so the claim is only a claim.
#[test]
fn inventory_row_counts_are_read_not_claimed() {
    use parquet::data_type::{ByteArray, ByteArrayType};
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    let schema = Arc::new(
        parquet::schema::parser::parse_message_type(
            "message spark_schema { optional binary other (STRING); }",
        )
        .unwrap(),
    );
    let mut w =
        SerializedFileWriter::new(Vec::new(), schema, Arc::new(WriterProperties::new())).unwrap();
    let mut rg = w.next_row_group().unwrap();
    let mut c = rg.next_column().unwrap().unwrap();
    c.typed::<ByteArrayType>()
        .write_batch(&[ByteArray::from("x")], Some(&[1, 0]), None)
        .unwrap();
    c.close().unwrap();
    rg.close().unwrap();
    let mut b = w.into_inner().unwrap();
    // FileMetaData field 3 (num_rows, i64 zigzag 4) follows the last schema element's end.
    let footer_len = u32::from_le_bytes(b[b.len() - 8..b.len() - 4].try_into().unwrap());
    let footer = b.len() - 8 - footer_len as usize;
    let at = footer
        + b[footer..]
            .windows(3)
            .position(|w| w == [0x00, 0x16, 0x04])
            .unwrap()
        + 2;
    let claim = [0x80, 0x80, 0x80, 0x80, 0x80, 0x40]; // zigzag varint of 2^40
    b.splice(at..at + 1, claim);
    let n = b.len() - 8;
    b[n..n + 4].copy_from_slice(&(footer_len + 5).to_le_bytes());
    let rt = runtime();
    rt.block_on(async {
        let store = Arc::new(MemStore::default());
        store.put(
            "_delta_log/00000000000000000000.json",
            lines(&delta_commit0()[..3]),
        );
        store.put("part-0.parquet", b);
        let q = InventoryQuery {
            table: None,
            columns: vec!["name".into()],
            changed_since: None,
            page_size: 10,
        };
        let inv = DeltaInventory::new(store, "lake");
        let before = peak_rss().unwrap_or(0);
        let mut rows = 0;
        let mut next = None;
        for _ in 0..4 {
            let p = inv.page(&q, next.as_deref()).await.unwrap();
            rows += p.rows.len();
            next = p.next;
            if next.is_none() {
                break;
            }
        }
        assert_eq!(rows, 2);
        let grown = peak_rss().unwrap_or(0).saturating_sub(before);
        assert!(grown < 16 << 20, "the peak grew by {grown} bytes");
    });
}

/// Regression (found by `PROPTEST_CASES=20000`): a data file whose footer gives a column chunk a
/// negative offset or size made the `parquet` crate panic ("column start and length should not
/// be negative"); `delta::open_parquet` now refuses it as `Malformed`. The shrunk case, in hex.
#[test]
fn parquet_footer_with_a_negative_column_chunk_is_malformed() {
    let hex: String = [
        "5041523115041558153a4c150415001200002c54120000006c616777617463682d686f7374696c652d31521600003215",
        "00151215162c1504151015061506000009200200000004010103021504152415284c150415001200001244090000007b",
        "22736571223a317d01000000701500151215162c1504151015061506000009200200000004010103021912021918126c",
        "616777617463682d686f7374696c652d311918126c616777617463682d686f7374696c652d3215021916002926000400",
        "191202191801701918097b22736571223a317d15021916002926000400191c165e153816000019164800191c16da0115",
        "38160000191614001502193c480c737061726b5f736368656d61150400150c250218046e616d6525004c1c000000150c",
        "2502180b6465736372697074696f6e25004c1c0000001604191c192c26001c150c19350006101918046e616d65150216",
        "0416a801168301265e26081c360028126c616777617463682d686f7374696c652d3218126c616777617463682d686f73",
        "74696c652d31111100192c15041500150200150015101502003c164829260004000016ba03151a169202156e0026001c",
        "150c193500061019180b6465736372697074696f6e150216041674167c26da012696011c360028097b22736571223a31",
        "7d180170111100192c15041500150200150015101502003c161429260004000016d403151c168003153a00169c021604",
        "2608168a021400002819706172717565742d72732076657273696f6e2036302e312e30192c1c00001c00000044010000",
        "50415231",
    ]
    .concat();
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    let rt = runtime();
    rt.block_on(async {
        let store = Arc::new(MemStore::default());
        store.put(
            "_delta_log/00000000000000000000.json",
            lines(&delta_commit0()[..3]),
        );
        store.put("part-0.parquet", bytes);
        let mut cursor = DeltaCursor::new(delta_spec(), when(), Duration::from_secs(3600));
        let r = cursor.scan(store.as_ref()).await;
        assert!(matches!(r, Err(LakeError::Malformed { .. })), "{r:?}");
        let q = InventoryQuery {
            table: None,
            columns: vec!["name".into()],
            changed_since: None,
            page_size: 10,
        };
        let inv = DeltaInventory::new(store, "lake");
        let mut next = None;
        for _ in 0..4 {
            match inv.page(&q, next.as_deref()).await {
                Ok(p) if p.next.is_some() => next = p.next,
                Ok(_) => break,
                Err(e) => {
                    assert!(matches!(e, ConnectorError::BadResponse { .. }), "{e:?}");
                    break;
                }
            }
        }
    });
}
