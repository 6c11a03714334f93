//! The inventories of the HTTP kinds (`dataverse`, `fo_odata`, `azure_search`,
//! `elasticsearch`) against wiremock: systems built from YAML as `lagwatch run` builds them,
//! Entra tokens from a fake token endpoint, the exact request of every page, paging to the end,
//! next links that would leave the configured origin, throttling, garbage, and the request
//! metrics under the operation `inventory`.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use common::fakes::{ExactQuery, secret_file};
use lagwatch::config::Config;
use lagwatch::connector::ConnectorError;
use lagwatch::connector::inventory::{Inventory, InventoryPage, InventoryQuery, InventoryShape};
use lagwatch::metrics::Metrics;
use lagwatch::systems::BuildContext;
use serde_json::{Value, json};
use wiremock::matchers::{any, body_json, header, method, path};
use wiremock::{Match, Mock, MockServer, Request, ResponseTemplate};

const TENANT: &str = "contoso";
/// The access token the fake Entra endpoint hands out.
const TOKEN: &str = "tok-inventory-1";
/// `lagwatch:s3cret` in base64, the basic credential of the Elasticsearch system.
const BASIC: &str = "Basic bGFnd2F0Y2g6czNjcmV0";

/// One wiremock server playing Entra ID, Dataverse (`/crm`), F&O (`/fno`), Azure AI Search
/// (`/search`) and Elasticsearch (`/es`), and the systems built from YAML against it.
struct Estate {
    server: MockServer,
    metrics: Metrics,
    yaml: String,
    cx: BuildContext,
    config: Config,
}

async fn mount_token(server: &MockServer) {
    common::fakes::mount_entra_token(server, TENANT, TOKEN).await;
}

async fn estate() -> Estate {
    let server = MockServer::start().await;
    mount_token(&server).await;
    let uri = server.uri();
    let entra = format!(
        "{{ method: client_secret, tenant_id: {TENANT}, client_id: lagwatch-app, client_secret: '{}', authority: '{uri}' }}",
        secret_file("client-secret", "s3cret-for-tests")
    );
    let yaml = format!(
        r#"
instance: inv
systems:
  src:
    kind: simulated
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
  es:
    kind: elasticsearch
    url: {uri}/es
    index: accounts
    payload_field: payload
    auth: {{ method: basic, username: lagwatch, password: '{}' }}
paths:
  - {{ source: src, target: crm, timeout: 2h, objective: 30m }}
  - {{ source: src, target: fno, timeout: 2h, objective: 30m }}
  - {{ source: src, target: search, timeout: 2h, objective: 30m }}
  - {{ source: src, target: es, timeout: 2h, objective: 30m }}
"#,
        secret_file("es-password", "s3cret")
    );
    let config = lagwatch_emulator::REGISTRY
        .from_yaml("inventory.yaml", &yaml)
        .unwrap_or_else(|e| panic!("{e}"));
    let metrics = Metrics::new();
    Estate {
        server,
        cx: BuildContext::new(metrics.clone()),
        metrics,
        yaml,
        config,
    }
}

impl Estate {
    /// The inventory of system `name`, built as `lagwatch run` builds it.
    fn inventory(&self, name: &str) -> Arc<dyn Inventory> {
        let gate = self.cx.gate(name, self.config.limits[name]);
        let system = self.config.systems[name]
            .build(name, &self.cx, gate)
            .unwrap_or_else(|e| panic!("{}: {}", e.key, e.reason));
        system
            .inventory
            .unwrap_or_else(|| panic!("{name} has an inventory"))
    }

    /// `lagwatch_requests_total{system=name, operation="inventory", status}`.
    fn requests(&self, name: &str, status: &str) -> u64 {
        self.metrics.requests(name, "inventory", status)
    }

    /// Data requests the server received (token requests left out).
    async fn data_requests(&self) -> Vec<Request> {
        self.server
            .received_requests()
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|r| !r.url.path().ends_with("/oauth2/v2.0/token"))
            .collect()
    }

    /// Forgets every mock and request, keeping the token endpoint.
    async fn reset(&self) {
        self.server.reset().await;
        mount_token(&self.server).await;
    }
}

fn query(columns: &[&str], page_size: u32) -> InventoryQuery {
    InventoryQuery {
        table: None,
        columns: columns.iter().map(|c| c.to_string()).collect(),
        changed_since: None,
        page_size,
    }
}

/// Reads pages until the continuation runs out, at most `limit`; returns every page.
async fn all_pages(inv: &dyn Inventory, q: &InventoryQuery, limit: usize) -> Vec<InventoryPage> {
    let mut pages = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let page = inv
            .page(q, next.as_deref())
            .await
            .unwrap_or_else(|e| panic!("page {}: {e}", pages.len() + 1));
        next = page.next.clone();
        pages.push(page);
        if next.is_none() {
            return pages;
        }
        assert!(pages.len() < limit, "more than {limit} pages");
    }
}

fn values(pages: &[InventoryPage]) -> Vec<Vec<Option<String>>> {
    pages
        .iter()
        .flat_map(|p| p.rows.iter())
        .inspect(|r| assert!(!r.deleted))
        .map(|r| r.values.clone())
        .collect()
}

fn text(v: &[Option<&str>]) -> Vec<Option<String>> {
    v.iter().map(|s| s.map(str::to_string)).collect()
}

/// The raw (still percent-encoded) query string is exactly this.
struct RawQuery(String);

impl Match for RawQuery {
    fn matches(&self, request: &Request) -> bool {
        request.url.query() == Some(self.0.as_str())
    }
}

fn collection(rows: Value, next: Option<String>) -> ResponseTemplate {
    let mut body = json!({"@odata.context": "https://x/$metadata#accounts", "value": rows});
    if let (Some(link), Some(b)) = (next, body.as_object_mut()) {
        b.insert("@odata.nextLink".into(), json!(link));
    }
    ResponseTemplate::new(200).set_body_json(body)
}

fn expect_bad_response<T: std::fmt::Debug>(r: Result<T, ConnectorError>) -> (u16, String) {
    match r {
        Err(ConnectorError::BadResponse { status, detail }) => (status, detail),
        other => panic!("expected BadResponse, got {other:?}"),
    }
}

// ---------------------------------------------------------------- Dataverse

/// A skiptoken as Dataverse writes it: an XML paging cookie, percent-encoded.
const SKIPTOKEN_2: &str = "%3Ccookie%20pagenumber=%222%22%20pagingcookie=%22%253ccookie%2520page%253d%25221%2522%253e%22%20/%3E";
const SKIPTOKEN_3: &str = "%3Ccookie%20pagenumber=%223%22%20/%3E";

#[tokio::test]
async fn dataverse_pages_follow_next_links_exactly_with_the_token_and_page_size() {
    let e = estate().await;
    let inv = e.inventory("crm");
    let base = format!("{}/crm/api/data/v9.2/accounts", e.server.uri());
    let select = "$select=accountid,accountnumber,versionnumber";
    let link = |token: &str| format!("{base}?{select}&$skiptoken={token}");
    let odata = |m: wiremock::MockBuilder| {
        m.and(header("Authorization", format!("Bearer {TOKEN}").as_str()))
            .and(header("Accept", "application/json"))
            .and(header("OData-MaxVersion", "4.0"))
            .and(header("OData-Version", "4.0"))
            .and(header("If-None-Match", "null"))
            .and(header("Prefer", "odata.maxpagesize=2"))
    };
    odata(Mock::given(method("GET")))
        .and(path("/crm/api/data/v9.2/accounts"))
        .and(ExactQuery::of(&[(
            "$select",
            "accountid,accountnumber,versionnumber",
        )]))
        .respond_with(collection(
            json!([
                {"@odata.etag": "W/\"9123456\"", "accountid": "a1", "accountnumber": "N-1", "versionnumber": 9123456},
                {"@odata.etag": "W/\"9123457\"", "accountid": "a2", "accountnumber": null, "versionnumber": 9123457}
            ]),
            Some(link(SKIPTOKEN_2)),
        ))
        .expect(1)
        .mount(&e.server)
        .await;
    odata(Mock::given(method("GET")))
        .and(path("/crm/api/data/v9.2/accounts"))
        .and(RawQuery(format!("{select}&$skiptoken={SKIPTOKEN_2}")))
        .respond_with(collection(
            json!([{"accountid": "a3", "accountnumber": "N-3", "versionnumber": 12}]),
            Some(link(SKIPTOKEN_3)),
        ))
        .expect(1)
        .mount(&e.server)
        .await;
    odata(Mock::given(method("GET")))
        .and(path("/crm/api/data/v9.2/accounts"))
        .and(RawQuery(format!("{select}&$skiptoken={SKIPTOKEN_3}")))
        .respond_with(collection(
            json!([{"accountid": "a4", "accountnumber": "N-4", "versionnumber": 13}]),
            None,
        ))
        .expect(1)
        .mount(&e.server)
        .await;

    assert_eq!(inv.shape(), InventoryShape::Current);
    let q = query(&["accountid", "accountnumber", "versionnumber"], 2);
    assert_eq!(inv.check(&q), Ok(()));
    let pages = all_pages(&*inv, &q, 5).await;
    assert_eq!(pages.len(), 3);
    // The continuation is the next link as the server wrote it.
    assert_eq!(pages[0].next.as_deref(), Some(link(SKIPTOKEN_2).as_str()));
    assert_eq!(
        values(&pages),
        vec![
            text(&[Some("a1"), Some("N-1"), Some("9123456")]),
            text(&[Some("a2"), None, Some("9123457")]),
            text(&[Some("a3"), Some("N-3"), Some("12")]),
            text(&[Some("a4"), Some("N-4"), Some("13")]),
        ]
    );
    assert_eq!(e.requests("crm", "2xx"), 3);
}

#[tokio::test]
async fn dataverse_renders_a_changed_since_filter_and_caps_the_page_at_5000() {
    let e = estate().await;
    let inv = e.inventory("crm");
    Mock::given(method("GET"))
        .and(path("/crm/api/data/v9.2/contacts"))
        .and(ExactQuery::of(&[
            ("$select", "contactid,modifiedon"),
            ("$filter", "modifiedon ge 2026-03-01T12:00:00Z"),
        ]))
        .and(header("Prefer", "odata.maxpagesize=5000"))
        .respond_with(collection(json!([]), None))
        .expect(1)
        .mount(&e.server)
        .await;
    Mock::given(method("GET"))
        .and(path("/crm/api/data/v9.2/contacts"))
        .and(ExactQuery::of(&[
            ("$select", "contactid,modifiedon"),
            ("$filter", "modifiedon ge 2026-03-01T12:00:00.250Z"),
        ]))
        .and(header("Prefer", "odata.maxpagesize=1"))
        .respond_with(collection(json!([]), None))
        .expect(1)
        .mount(&e.server)
        .await;
    let since = Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap();
    let mut q = query(&["contactid", "modifiedon"], 20_000);
    q.table = Some("contacts".into());
    q.changed_since = Some(("modifiedon".into(), since));
    let page = inv.page(&q, None).await.unwrap();
    assert_eq!(page, InventoryPage::default());
    q.changed_since = Some((
        "modifiedon".into(),
        since + chrono::Duration::microseconds(250_400),
    ));
    q.page_size = 0;
    assert_eq!(inv.page(&q, None).await.unwrap(), InventoryPage::default());
}

#[tokio::test]
async fn a_next_link_to_another_origin_is_refused_and_gets_no_token() {
    let e = estate().await;
    let elsewhere = MockServer::start().await;
    Mock::given(any())
        .respond_with(collection(json!([]), None))
        .expect(0)
        .mount(&elsewhere)
        .await;
    let inv = e.inventory("crm");
    let foreign = format!(
        "{}/crm/api/data/v9.2/accounts?$skiptoken=2",
        elsewhere.uri()
    );
    Mock::given(method("GET"))
        .and(path("/crm/api/data/v9.2/accounts"))
        .respond_with(collection(
            json!([{"accountid": "a1"}]),
            Some(foreign.clone()),
        ))
        .mount(&e.server)
        .await;
    let q = query(&["accountid"], 10);
    let (status, detail) = expect_bad_response(inv.page(&q, None).await);
    assert_eq!(status, 200);
    assert!(detail.contains(&elsewhere.uri()), "{detail}");
    assert!(!detail.contains(TOKEN), "{detail}");

    // Nor is such a continuation followed when it is handed back in: nothing is sent at all.
    let before = e.data_requests().await.len();
    let (status, _) = expect_bad_response(inv.page(&q, Some(&foreign)).await);
    assert_eq!(status, 0);
    assert_eq!(e.data_requests().await.len(), before);
    assert!(elsewhere.received_requests().await.unwrap().is_empty());

    // The same for F&O.
    let fno = e.inventory("fno");
    Mock::given(method("GET"))
        .and(path("/fno/data/CustomersV3"))
        .respond_with(collection(
            json!([{"CustomerAccount": "C-1"}]),
            Some(format!(
                "{}/fno/data/CustomersV3?$skiptoken=2",
                elsewhere.uri()
            )),
        ))
        .mount(&e.server)
        .await;
    let q = query(&["CustomerAccount"], 10);
    let (status, _) = expect_bad_response(fno.page(&q, None).await);
    assert_eq!(status, 200);
    assert!(elsewhere.received_requests().await.unwrap().is_empty());
}

// ---------------------------------------------------------------- F&O

#[tokio::test]
async fn fo_odata_pages_cross_company_in_the_configured_company() {
    let e = estate().await;
    let inv = e.inventory("fno");
    let base = format!("{}/fno/data/CustomersV3", e.server.uri());
    let odata = |m: wiremock::MockBuilder| {
        m.and(path("/fno/data/CustomersV3"))
            .and(header("Authorization", format!("Bearer {TOKEN}").as_str()))
            .and(header("Accept", "application/json"))
            .and(header("OData-MaxVersion", "4.0"))
            .and(header("OData-Version", "4.0"))
            .and(header("Prefer", "odata.maxpagesize=1000"))
    };
    odata(Mock::given(method("GET")))
        .and(ExactQuery::of(&[
            ("cross-company", "true"),
            ("$select", "dataAreaId,CustomerAccount,OrganizationName"),
            ("$filter", "dataAreaId eq 'usmf'"),
        ]))
        .respond_with(collection(
            json!([
                {"@odata.etag": "W/\"1\"", "dataAreaId": "usmf", "CustomerAccount": "C-1", "OrganizationName": "Contoso"},
                {"dataAreaId": "usmf", "CustomerAccount": "C-2", "OrganizationName": "O'Bryan"}
            ]),
            Some(format!("{base}?cross-company=true&$skiptoken=2")),
        ))
        .expect(1)
        .mount(&e.server)
        .await;
    odata(Mock::given(method("GET")))
        .and(RawQuery("cross-company=true&$skiptoken=2".into()))
        .respond_with(collection(
            json!([{"dataAreaId": "usmf", "CustomerAccount": "C-3"}]),
            Some(format!("{base}?cross-company=true&$skiptoken=3")),
        ))
        .expect(1)
        .mount(&e.server)
        .await;
    odata(Mock::given(method("GET")))
        .and(RawQuery("cross-company=true&$skiptoken=3".into()))
        .respond_with(collection(json!([]), None))
        .expect(1)
        .mount(&e.server)
        .await;
    let q = query(&["dataAreaId", "CustomerAccount", "OrganizationName"], 1000);
    let pages = all_pages(&*inv, &q, 5).await;
    assert_eq!(pages.len(), 3);
    assert_eq!(
        values(&pages),
        vec![
            text(&[Some("usmf"), Some("C-1"), Some("Contoso")]),
            text(&[Some("usmf"), Some("C-2"), Some("O'Bryan")]),
            text(&[Some("usmf"), Some("C-3"), None]),
        ]
    );
    assert_eq!(e.requests("fno", "2xx"), 3);
}

#[tokio::test]
async fn fo_odata_reads_another_entity_and_caps_the_page_at_10000() {
    let e = estate().await;
    let inv = e.inventory("fno");
    Mock::given(method("GET"))
        .and(path("/fno/data/VendorsV2"))
        .and(ExactQuery::of(&[
            ("cross-company", "true"),
            ("$select", "VendorAccount"),
            ("$filter", "dataAreaId eq 'usmf'"),
        ]))
        .and(header("Prefer", "odata.maxpagesize=10000"))
        .respond_with(collection(json!([{"VendorAccount": "V-1"}]), None))
        .expect(1)
        .mount(&e.server)
        .await;
    let mut q = query(&["VendorAccount"], 50_000);
    q.table = Some("VendorsV2".into());
    let page = inv.page(&q, None).await.unwrap();
    assert_eq!(page.rows.len(), 1);
    assert_eq!(page.next, None);
}

// ---------------------------------------------------------------- Azure AI Search

#[tokio::test]
async fn azure_search_pages_by_key_with_escaped_keyset_filters() {
    let e = estate().await;
    let inv = e.inventory("search");
    let docs = |m: wiremock::MockBuilder| {
        m.and(path("/search/indexes/accounts/docs"))
            .and(header("Authorization", format!("Bearer {TOKEN}").as_str()))
            .and(header("Accept", "application/json"))
    };
    let params = |filter: Option<&'static str>| {
        let mut p = vec![
            ("api-version", "2025-09-01"),
            ("search", "*"),
            ("$select", "id,name,version"),
            ("$top", "2"),
            ("$orderby", "id asc"),
        ];
        p.extend(filter.map(|f| ("$filter", f)));
        ExactQuery::of(&p)
    };
    let doc = |id: &str, v: Value| json!({"@search.score": 1.0, "id": id, "name": format!("n-{id}"), "version": v});
    docs(Mock::given(method("GET")))
        .and(params(None))
        .respond_with(collection(
            json!([doc("a-1", json!(1)), doc("a'2", json!(2))]),
            None,
        ))
        .expect(1)
        .mount(&e.server)
        .await;
    // A page the service cut short says so with a next-page link: listing goes on after it.
    docs(Mock::given(method("GET")))
        .and(params(Some("id gt 'a''2'")))
        .respond_with(collection(
            json!([doc("b-3", json!(3))]),
            Some(format!(
                "{}/search/indexes/accounts/docs?skip=1",
                e.server.uri()
            )),
        ))
        .expect(1)
        .mount(&e.server)
        .await;
    docs(Mock::given(method("GET")))
        .and(params(Some("id gt 'b-3'")))
        .respond_with(collection(json!([doc("c-4", Value::Null)]), None))
        .expect(1)
        .mount(&e.server)
        .await;
    let q = query(&["id", "name", "version"], 2);
    let pages = all_pages(&*inv, &q, 5).await;
    assert_eq!(pages.len(), 3);
    assert_eq!(pages[0].next.as_deref(), Some("\"a'2\""));
    assert_eq!(
        values(&pages),
        vec![
            text(&[Some("a-1"), Some("n-a-1"), Some("1")]),
            text(&[Some("a'2"), Some("n-a'2"), Some("2")]),
            text(&[Some("b-3"), Some("n-b-3"), Some("3")]),
            text(&[Some("c-4"), Some("n-c-4"), None]),
        ]
    );
    assert_eq!(e.requests("search", "2xx"), 3);
}

#[tokio::test]
async fn azure_search_caps_top_at_1000_and_needs_the_key_to_go_on() {
    let e = estate().await;
    let inv = e.inventory("search");
    let many: Vec<Value> = (0..1000)
        .map(|i| json!({"id": format!("k{i:04}")}))
        .collect();
    Mock::given(method("GET"))
        .and(path("/search/indexes/other/docs"))
        .and(wiremock::matchers::query_param("$top", "1000"))
        .respond_with(collection(Value::Array(many), None))
        .up_to_n_times(1)
        .mount(&e.server)
        .await;
    let mut q = query(&["id"], 5000);
    q.table = Some("other".into());
    let page = inv.page(&q, None).await.unwrap();
    assert_eq!(page.rows.len(), 1000);
    assert_eq!(page.next.as_deref(), Some("\"k0999\""));

    // A full page whose last document has no key cannot be continued.
    Mock::given(method("GET"))
        .and(path("/search/indexes/accounts/docs"))
        .respond_with(collection(json!([{"id": "x"}, {"name": "no key"}]), None))
        .mount(&e.server)
        .await;
    let (status, detail) = expect_bad_response(inv.page(&query(&["id", "name"], 2), None).await);
    assert_eq!(status, 200);
    assert!(detail.contains("id"), "{detail}");
    // A continuation that is not a key it returned is refused before any request.
    let before = e.data_requests().await.len();
    let (status, _) = expect_bad_response(inv.page(&query(&["id"], 2), Some("k' or 1")).await);
    assert_eq!(status, 0);
    assert_eq!(e.data_requests().await.len(), before);
}

// ---------------------------------------------------------------- Elasticsearch

#[tokio::test]
async fn elasticsearch_pages_with_search_after_on_the_first_column() {
    let e = estate().await;
    let inv = e.inventory("es");
    let body = |after: Option<Value>| {
        let mut b = json!({
            "size": 2,
            "sort": [{"id": "asc"}],
            "_source": ["id", "name", "version"],
            "query": {"match_all": {}},
            "track_total_hits": false
        });
        if let (Some(a), Some(o)) = (after, b.as_object_mut()) {
            o.insert("search_after".into(), a);
        }
        body_json(b)
    };
    let search = |m: wiremock::MockBuilder| {
        m.and(path("/es/accounts/_search"))
            .and(header("Authorization", BASIC))
            .and(header("Accept", "application/json"))
            .and(header("Content-Type", "application/json"))
    };
    let hit = |id: &str, version: Value| {
        json!({"_index": "accounts", "_id": id, "_score": null,
               "_source": {"id": id, "name": format!("n-{id}"), "version": version},
               "sort": [id]})
    };
    let hits = |h: Vec<Value>| {
        ResponseTemplate::new(200).set_body_json(json!({
            "took": 1, "timed_out": false, "hits": {"max_score": null, "hits": h}
        }))
    };
    search(Mock::given(method("POST")))
        .and(body(None))
        .respond_with(hits(vec![hit("a-1", json!(1)), hit("a-2", json!(2.5))]))
        .expect(1)
        .mount(&e.server)
        .await;
    search(Mock::given(method("POST")))
        .and(body(Some(json!(["a-2"]))))
        .respond_with(hits(vec![hit("b-3", json!(true)), hit("b-4", json!(4))]))
        .expect(1)
        .mount(&e.server)
        .await;
    search(Mock::given(method("POST")))
        .and(body(Some(json!(["b-4"]))))
        .respond_with(hits(vec![hit("c-5", Value::Null)]))
        .expect(1)
        .mount(&e.server)
        .await;
    let q = query(&["id", "name", "version"], 2);
    let pages = all_pages(&*inv, &q, 5).await;
    assert_eq!(pages.len(), 3);
    assert_eq!(pages[0].next.as_deref(), Some("[\"a-2\"]"));
    assert_eq!(
        values(&pages),
        vec![
            text(&[Some("a-1"), Some("n-a-1"), Some("1")]),
            text(&[Some("a-2"), Some("n-a-2"), Some("2.5")]),
            text(&[Some("b-3"), Some("n-b-3"), Some("true")]),
            text(&[Some("b-4"), Some("n-b-4"), Some("4")]),
            text(&[Some("c-5"), Some("n-c-5"), None]),
        ]
    );
    assert_eq!(e.requests("es", "2xx"), 3);
}

#[tokio::test]
async fn elasticsearch_wants_hits_with_sources_and_sort_values() {
    let e = estate().await;
    let inv = e.inventory("es");
    let q = query(&["id"], 1);
    for (body, what) in [
        (json!({"took": 1}), "hits.hits"),
        (
            json!({"hits": {"hits": [{"_id": "a", "sort": ["a"]}]}}),
            "_source",
        ),
        (
            json!({"hits": {"hits": [{"_id": "a", "_source": {"id": "a"}}]}}),
            "sort values",
        ),
    ] {
        e.reset().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200).set_body_json(body))
            .mount(&e.server)
            .await;
        let (status, detail) = expect_bad_response(inv.page(&q, None).await);
        assert_eq!(status, 200);
        assert!(detail.contains(what), "{what}: {detail}");
    }
    let (status, _) = expect_bad_response(inv.page(&q, Some("\"a\"")).await);
    assert_eq!(status, 0);
}

// ---------------------------------------------------------------- every kind

const KINDS: [&str; 4] = ["crm", "fno", "search", "es"];

#[tokio::test]
async fn throttling_is_throttled_with_its_retry_after_on_every_kind() {
    let e = estate().await;
    for name in KINDS {
        e.reset().await;
        Mock::given(any())
            .and(DataRequest)
            .respond_with(
                ResponseTemplate::new(429)
                    .insert_header("Retry-After", "7")
                    .set_body_json(
                        json!({"error": {"code": "429", "message": "Too many requests"}}),
                    ),
            )
            .expect(1)
            .mount(&e.server)
            .await;
        let r = e.inventory(name).page(&query(&["id"], 10), None).await;
        match r {
            Err(ConnectorError::Throttled { retry_after }) => {
                assert_eq!(retry_after, Some(Duration::from_secs(7)), "{name}")
            }
            other => panic!("{name}: {other:?}"),
        }
        assert_eq!(e.requests(name, "4xx"), 1, "{name}");
    }
}

#[tokio::test]
async fn garbage_and_shapeless_bodies_are_bad_responses_on_every_kind() {
    let e = estate().await;
    let bodies = [
        ResponseTemplate::new(200)
            .insert_header("content-type", "text/html")
            .set_body_string("<html>maintenance</html>"),
        ResponseTemplate::new(200)
            .insert_header("content-type", "application/json")
            .set_body_string("{\"value\": [ {\"truncated"),
        ResponseTemplate::new(200).set_body_json(json!({"values": []})),
        ResponseTemplate::new(200).set_body_json(json!({"value": [1, 2]})),
        ResponseTemplate::new(200).set_body_json(json!([])),
    ];
    for name in KINDS {
        for (i, body) in bodies.iter().enumerate() {
            e.reset().await;
            Mock::given(any())
                .and(DataRequest)
                .respond_with(body.clone())
                .mount(&e.server)
                .await;
            let (status, detail) =
                expect_bad_response(e.inventory(name).page(&query(&["id"], 10), None).await);
            assert_eq!(status, 200, "{name} body {i}");
            assert!(!detail.is_empty(), "{name} body {i}");
        }
    }
    // Named after what was missing.
    e.reset().await;
    Mock::given(any())
        .and(DataRequest)
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"values": []})))
        .mount(&e.server)
        .await;
    for name in ["crm", "fno", "search"] {
        let (_, detail) =
            expect_bad_response(e.inventory(name).page(&query(&["id"], 10), None).await);
        assert!(detail.contains("\"value\" array"), "{name}: {detail}");
    }
}

#[tokio::test]
async fn unsafe_names_are_refused_by_check_and_never_sent() {
    let e = estate().await;
    for name in KINDS {
        let inv = e.inventory(name);
        let mut q = query(&["id", "name eq 'x' or 1 eq 1"], 10);
        assert!(inv.check(&q).is_err(), "{name}");
        let (status, _) = expect_bad_response(inv.page(&q, None).await);
        assert_eq!(status, 0, "{name}");
        q = query(&["id"], 10);
        q.changed_since = Some(("modifiedon,x".into(), Utc::now()));
        assert!(inv.check(&q).is_err(), "{name}");
        q = query(&["id"], 10);
        q.table = Some("a/../b".into());
        assert!(inv.check(&q).is_err(), "{name}");
        assert!(inv.check(&query(&[], 10)).is_err(), "{name}");
        assert_eq!(
            inv.check(&query(&["id", "_owner_value"], 10)),
            Ok(()),
            "{name}"
        );
    }
    assert!(e.data_requests().await.is_empty());
}

#[tokio::test]
async fn inventory_request_series_appear_with_the_first_request() {
    let e = estate().await;
    let app = common::app(&e.yaml);
    // Nothing listed yet: no request series says anything (the counts after pages are checked
    // by the tests above, e.g. 3 pages → 3 requests).
    let text = app.engine.metrics().render();
    assert!(
        !text.contains("operation=\"inventory\""),
        "no inventory request series before the first request"
    );
    for name in KINDS {
        assert!(
            text.contains(&format!(
                "lagwatch_request_seconds_total{{system=\"{name}\"}} 0"
            )),
            "{name}: the time spent exists from start-up"
        );
    }
}

/// Any request but the token endpoint's.
struct DataRequest;

impl Match for DataRequest {
    fn matches(&self, request: &Request) -> bool {
        !request.url.path().ends_with("/oauth2/v2.0/token")
    }
}
