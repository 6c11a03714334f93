//! Replication through the emulator, in-process under paused tokio time: records appear in
//! each target after their lag and not before, paused maps hold them back, flapping and
//! outages show, and the ground truth matches what reads observe.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use lagwatch_emulator::{Emulator, Scenario};
use serde_json::{Value, json};
use tokio::time::{Instant, advance};

const SCENARIO: &str = r#"
seed: 11
credentials:
  - { tenant: contoso, client_id: app-1, client_secret: s3cret, expires_in: 600 }
dataverse:
  crm:
    tables:
      accounts:
        id: accountid
        columns: { name: string, accountnumber: string, customertypecode: int, description: string }
  crm2:
    tables:
      accounts:
        columns: { name: string, accountnumber: string, customertypecode: int, description: string }
fno:
  fin: {}
  fin_paused: {}
  fin_window: {}
  fin_stopped: {}
search:
  srch: { api_keys: [k1] }
elasticsearch:
  logs: { refresh_interval: 2s }
replicas:
  fno:
    source: crm/accounts
    target: { kind: fno, env: fin, entity: CustomersV3, company: usmf }
    key: accountnumber
    filter: customertypecode eq 3
    map: { accountnumber: CustomerAccount, name: OrganizationName }
    transform: { OrganizationName: uppercase }
    lag: { distribution: fixed, value: 2s }
  fno_paused:
    source: crm/accounts
    target: { kind: fno, env: fin_paused, entity: CustomersV3 }
    key: accountnumber
    map: { accountnumber: CustomerAccount, name: OrganizationName }
    lag: { distribution: fixed, value: 1s }
    state: paused
  fno_window:
    source: crm/accounts
    target: { kind: fno, env: fin_window, entity: CustomersV3 }
    key: accountnumber
    map: { accountnumber: CustomerAccount, name: OrganizationName }
    lag: { distribution: fixed, value: 1s }
    paused: [ { start: 0s, duration: 30s } ]
  fno_stopped:
    source: crm/accounts
    target: { kind: fno, env: fin_stopped, entity: CustomersV3 }
    key: accountnumber
    map: { accountnumber: CustomerAccount, name: OrganizationName }
    lag: { distribution: fixed, value: 1s }
    state: stopped
  search:
    source: crm/accounts
    target: { kind: search, service: srch, index: sentinels }
    key: accountnumber
    lag: { distribution: fixed, value: 10s }
    flap_probability: 1.0
    outages:
      - { start: 100s, duration: 10s, mode: unavailable }
  es:
    source: crm/accounts
    target: { kind: elasticsearch, cluster: logs, index: sentinels }
    key: accountnumber
    lag: { distribution: fixed, value: 1500ms }
  dvsearch:
    source: crm/accounts
    target: { kind: dataverse_search, env: crm, table: accounts }
    key: accountnumber
    lag: { distribution: fixed, value: 4s }
  crm2:
    source: crm/accounts
    target: { kind: dataverse, env: crm2, table: accounts }
    key: accountnumber
    lag: { distribution: fixed, value: 3s }
    mismatch_probability: 1.0
"#;

struct Reply {
    status: u16,
    headers: axum::http::HeaderMap,
    body: Value,
}

async fn send(
    emu: &Emulator,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Reply {
    let mut b = Request::builder()
        .method(method)
        .uri(uri)
        .header("host", "emulator.test");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let req = b.body(Body::from(body.to_string())).expect("request");
    let resp = emu.handle(req).await;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .expect("body");
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
    };
    Reply {
        status,
        headers,
        body,
    }
}

async fn token(emu: &Emulator, scope: &str) -> String {
    let r = send(
        emu,
        "POST",
        "/entra/contoso/oauth2/v2.0/token",
        &[("content-type", "application/x-www-form-urlencoded")],
        &format!(
            "grant_type=client_credentials&client_id=app-1&client_secret=s3cret&scope={scope}"
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["access_token"].as_str().expect("token").to_string()
}

struct Estate {
    emu: Arc<Emulator>,
    crm: String,
    crm2: String,
}

impl Estate {
    async fn new() -> Estate {
        let emu = Emulator::new(Scenario::from_yaml(SCENARIO).unwrap_or_else(|e| panic!("{e}")));
        let crm = token(&emu, "https://crm.crm.dynamics.com/.default").await;
        let crm2 = token(&emu, "https://crm2.crm.dynamics.com/.default").await;
        Estate { emu, crm, crm2 }
    }

    /// Creates an account; returns its id and the commit instant (the request is handled
    /// without time passing under paused time).
    async fn create(&self, number: &str, kind: i64) -> (String, Instant) {
        let at = Instant::now();
        let r = send(
            &self.emu,
            "POST",
            "/crm/api/data/v9.2/accounts",
            &[
                ("authorization", &format!("Bearer {}", self.crm)),
                ("content-type", "application/json"),
                ("prefer", "return=representation"),
            ],
            &json!({"name": format!("Sentinel {number}"), "accountnumber": number, "customertypecode": kind, "description": "payload"}).to_string(),
        )
        .await;
        assert_eq!(r.status, 201, "{}", r.body);
        (r.body["accountid"].as_str().expect("id").to_string(), at)
    }

    async fn fno(&self, env: &str, number: &str) -> Reply {
        let scope = format!("https://{env}.operations.dynamics.com/.default");
        let t = token(&self.emu, &scope).await;
        send(
            &self.emu,
            "GET",
            &format!(
                "/fno/{env}/data/CustomersV3?cross-company=true&$filter=CustomerAccount%20eq%20'{number}'&$select=dataAreaId,CustomerAccount,OrganizationName&$top=1"
            ),
            &[("authorization", &format!("Bearer {t}"))],
            "",
        )
        .await
    }

    async fn fno_rows(&self, env: &str, number: &str) -> usize {
        let r = self.fno(env, number).await;
        assert_eq!(r.status, 200, "{}", r.body);
        r.body["value"].as_array().map_or(0, Vec::len)
    }
}

#[tokio::test(start_paused = true)]
async fn fno_row_appears_after_the_lag_and_not_before() {
    let e = Estate::new().await;
    let (id, at) = e.create("SENT-FNO-1", 3).await;
    advance(Duration::from_millis(1999)).await;
    assert_eq!(
        e.fno_rows("fin", "SENT-FNO-1").await,
        0,
        "not before the lag"
    );
    advance(Duration::from_millis(1)).await;
    let r = e.fno("fin", "SENT-FNO-1").await;
    let row = &r.body["value"][0];
    assert_eq!(row["dataAreaId"], "usmf");
    assert_eq!(row["CustomerAccount"], "SENT-FNO-1");
    assert_eq!(
        row["OrganizationName"], "SENTINEL SENT-FNO-1",
        "uppercase transform"
    );
    assert!(
        row["@odata.etag"]
            .as_str()
            .is_some_and(|t| t.starts_with("W/"))
    );
    assert!(
        r.body["@odata.context"]
            .as_str()
            .is_some_and(|c| c.contains("$metadata#CustomersV3"))
    );

    let t = e.emu.truth("fno", "SENT-FNO-1").expect("truth");
    assert_eq!(t.committed_at, at);
    assert_eq!(t.visible_at, Some(at + Duration::from_secs(2)));
    assert_eq!(t.record_id.to_string(), id);
    assert_eq!(e.emu.truth("fno", &id), Some(t.clone()), "by record id too");

    // Without cross-company only the default company (dat) is searched (§4.1).
    let tok = token(&e.emu, "https://fin.operations.dynamics.com/.default").await;
    let r = send(
        &e.emu,
        "GET",
        "/fno/fin/data/CustomersV3?$filter=CustomerAccount%20eq%20'SENT-FNO-1'",
        &[("authorization", &format!("Bearer {tok}"))],
        "",
    )
    .await;
    assert_eq!(r.body["value"], json!([]));
    // By key, and by wildcard.
    let r = send(
        &e.emu,
        "GET",
        "/fno/fin/data/CustomersV3(dataAreaId='usmf',CustomerAccount='SENT-FNO-1')",
        &[("authorization", &format!("Bearer {tok}"))],
        "",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["CustomerAccount"], "SENT-FNO-1");
    let r = send(
        &e.emu,
        "GET",
        "/fno/fin/data/CustomersV3?cross-company=true&$filter=CustomerAccount%20eq%20'*FNO*'",
        &[("authorization", &format!("Bearer {tok}"))],
        "",
    )
    .await;
    assert_eq!(r.body["value"].as_array().map(Vec::len), Some(1));

    // The map filter (customertypecode eq 3) keeps other rows out of F&O.
    e.create("SENT-FNO-OTHER", 1).await;
    advance(Duration::from_secs(60)).await;
    assert_eq!(e.fno_rows("fin", "SENT-FNO-OTHER").await, 0);
    assert!(e.emu.truth("fno", "SENT-FNO-OTHER").is_none());
}

#[tokio::test(start_paused = true)]
async fn paused_map_never_shows_the_row_and_stopped_map_drops_it() {
    let e = Estate::new().await;
    e.create("SENT-P-1", 3).await;
    for _ in 0..12 {
        advance(Duration::from_secs(300)).await;
        assert_eq!(e.fno_rows("fin_paused", "SENT-P-1").await, 0);
        assert_eq!(e.fno_rows("fin_stopped", "SENT-P-1").await, 0);
    }
    let t = e.emu.truth("fno_paused", "SENT-P-1").expect("truth");
    assert!(t.queued && t.visible_at.is_none() && !t.dropped);
    let t = e.emu.truth("fno_stopped", "SENT-P-1").expect("truth");
    assert!(t.dropped && t.visible_at.is_none() && !t.queued);
}

#[tokio::test(start_paused = true)]
async fn a_pause_window_queues_rows_until_it_ends() {
    let e = Estate::new().await;
    let start = Instant::now();
    advance(Duration::from_secs(5)).await;
    e.create("SENT-W-1", 3).await;
    advance(Duration::from_secs(24)).await;
    assert_eq!(
        e.fno_rows("fin_window", "SENT-W-1").await,
        0,
        "still paused"
    );
    advance(Duration::from_secs(1)).await;
    assert_eq!(
        e.fno_rows("fin_window", "SENT-W-1").await,
        1,
        "caught up at the end"
    );
    let t = e.emu.truth("fno_window", "SENT-W-1").expect("truth");
    assert_eq!(t.visible_at, Some(start + Duration::from_secs(30)));
}

#[tokio::test(start_paused = true)]
async fn search_lookup_is_404_then_200_with_a_flap_and_outages_answer_503() {
    let e = Estate::new().await;
    let (_, at) = e.create("SENT-S-1", 3).await;
    let get = |emu: Arc<Emulator>| async move {
        send(
            &emu,
            "GET",
            "/search/srch/indexes/sentinels/docs/SENT-S-1?api-version=2025-09-01",
            &[("api-key", "k1")],
            "",
        )
        .await
    };
    // Flap probability 1: visible from 40 % to 70 % of the 10 s lag, then lost until 10 s.
    let mut seen = Vec::new();
    for step in 0..=24 {
        let r = get(e.emu.clone()).await;
        assert!(r.status == 200 || r.status == 404, "{}", r.status);
        seen.push((step, r.status));
        if step == 24 {
            assert_eq!(r.body["accountnumber"], "SENT-S-1");
            assert_eq!(r.body["name"], "Sentinel SENT-S-1");
        }
        advance(Duration::from_millis(500)).await;
    }
    let status_at = |half_seconds: usize| seen[half_seconds].1;
    assert_eq!(status_at(7), 404, "3.5 s");
    assert_eq!(status_at(8), 200, "4.0 s: the flap");
    assert_eq!(status_at(13), 200, "6.5 s");
    assert_eq!(status_at(14), 404, "7.0 s: lost again");
    assert_eq!(status_at(19), 404, "9.5 s");
    assert_eq!(status_at(20), 200, "10 s: settled");
    let t = e.emu.truth("search", "SENT-S-1").expect("truth");
    assert_eq!(t.visible_at, Some(at + Duration::from_secs(10)));
    assert_eq!(
        t.flap,
        Some((at + Duration::from_secs(4), at + Duration::from_secs(7)))
    );

    let r = send(
        &e.emu,
        "POST",
        "/search/srch/indexes/sentinels/docs/search?api-version=2025-09-01",
        &[("api-key", "k1"), ("content-type", "application/json")],
        r#"{"filter":"accountnumber eq 'SENT-S-1'","select":"accountnumber,name","top":1}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["value"][0]["accountnumber"], "SENT-S-1");
    assert!(
        r.body["value"][0].get("description").is_none(),
        "select applies"
    );

    advance(Duration::from_secs(100) - (Instant::now() - at)).await;
    let r = get(e.emu.clone()).await;
    assert_eq!(r.status, 503, "unavailable outage");
    advance(Duration::from_secs(10)).await;
    assert_eq!(get(e.emu.clone()).await.status, 200);
}

#[tokio::test(start_paused = true)]
async fn elasticsearch_get_sees_a_document_before_search_does() {
    let e = Estate::new().await;
    let start = Instant::now();
    let (_, at) = e.create("SENT-E-1", 3).await;
    let mut first_doc = None;
    let mut first_search = None;
    for _ in 0..40 {
        let now = Instant::now();
        let d = send(&e.emu, "GET", "/es/logs/sentinels/_doc/SENT-E-1", &[], "").await;
        match d.status {
            200 => {
                assert_eq!(d.body["found"], true);
                assert_eq!(d.body["_source"]["accountnumber"], "SENT-E-1");
                first_doc.get_or_insert(now);
            }
            404 => assert_eq!(d.body["found"], false),
            s => panic!("status {s}"),
        }
        let s = send(
            &e.emu,
            "POST",
            "/es/logs/sentinels/_search",
            &[("content-type", "application/json")],
            r#"{"query":{"term":{"accountnumber":"SENT-E-1"}}}"#,
        )
        .await;
        assert_eq!(s.status, 200, "{}", s.body);
        if s.body["hits"]["total"]["value"] == 1 {
            assert_eq!(s.body["hits"]["hits"][0]["_id"], "SENT-E-1");
            first_search.get_or_insert(now);
        }
        advance(Duration::from_millis(100)).await;
    }
    let t = e.emu.truth("es", "SENT-E-1").expect("truth");
    assert_eq!(t.visible_at, Some(at + Duration::from_millis(1500)));
    assert_eq!(
        t.searchable_at,
        Some(start + Duration::from_secs(2)),
        "next refresh"
    );
    assert_eq!(first_doc, t.visible_at);
    assert_eq!(first_search, t.searchable_at);
    assert!(first_doc < first_search);
}

#[tokio::test(start_paused = true)]
async fn second_environment_receives_changed_copies_and_tokens_expire() {
    let e = Estate::new().await;
    let (id, at) = e.create("SENT-D-1", 3).await;
    let get = |emu: Arc<Emulator>, tok: String, id: String| async move {
        send(
            &emu,
            "GET",
            &format!("/crm2/api/data/v9.2/accounts({id})?$select=name,accountnumber,description"),
            &[("authorization", &format!("Bearer {tok}"))],
            "",
        )
        .await
    };
    advance(Duration::from_millis(2900)).await;
    assert_eq!(
        get(e.emu.clone(), e.crm2.clone(), id.clone()).await.status,
        404
    );
    advance(Duration::from_millis(100)).await;
    let r = get(e.emu.clone(), e.crm2.clone(), id.clone()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body["accountnumber"], "SENT-D-1",
        "the key is never changed"
    );
    assert_eq!(r.body["description"], "payload~", "mismatch probability 1");
    let t = e.emu.truth("crm2", &id).expect("truth");
    assert!(t.mismatched);
    assert_eq!(t.lag(), Some(Duration::from_secs(3)));
    assert_eq!(t.committed_at, at);

    // Tokens were issued with expires_in 600.
    advance(Duration::from_secs(600)).await;
    let r = get(e.emu.clone(), e.crm2.clone(), id).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.body["error"]["code"], "ExpiredAuthTicket");
}

#[tokio::test(start_paused = true)]
async fn truth_endpoint_reports_the_instants_reads_observe() {
    let e = Estate::new().await;
    let (id, _) = e.create("SENT-T-1", 3).await;
    let r = send(&e.emu, "GET", "/_truth/fno/SENT-T-1", &[], "").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["record_id"], id);
    assert_eq!(r.body["visible_now"], false);
    let committed = r.body["committed_at_unix"].as_f64().expect("unix");
    let visible = r.body["visible_at_unix"].as_f64().expect("unix");
    assert!((visible - committed - 2.0).abs() < 1e-6, "{}", r.body);
    assert!((r.body["lag_seconds"].as_f64().unwrap_or(0.0) - 2.0).abs() < 1e-9);
    assert!(
        chrono::DateTime::parse_from_rfc3339(r.body["visible_at"].as_str().unwrap_or("")).is_ok()
    );
    advance(Duration::from_secs(2)).await;
    let r = send(&e.emu, "GET", "/_truth/fno/SENT-T-1", &[], "").await;
    assert_eq!(r.body["visible_now"], true);
    assert_eq!(e.fno_rows("fin", "SENT-T-1").await, 1);
    let r = send(&e.emu, "GET", "/_truth/es/SENT-T-1", &[], "").await;
    assert!(r.body["searchable_at_unix"].as_f64() >= r.body["visible_at_unix"].as_f64());
    assert_eq!(
        send(&e.emu, "GET", "/_truth/fno/nope", &[], "")
            .await
            .status,
        404
    );
    assert_eq!(
        send(&e.emu, "GET", "/_truth/nope/SENT-T-1", &[], "")
            .await
            .status,
        404
    );

    // A deleted record leaves a replica after the replica's lag; its truth stays.
    let r = send(
        &e.emu,
        "DELETE",
        &format!("/crm/api/data/v9.2/accounts({id})"),
        &[("authorization", &format!("Bearer {}", e.crm))],
        "",
    )
    .await;
    assert_eq!(r.status, 204);
    assert_eq!(e.fno_rows("fin", "SENT-T-1").await, 1);
    advance(Duration::from_secs(2)).await;
    assert_eq!(e.fno_rows("fin", "SENT-T-1").await, 0);
    let t = send(&e.emu, "GET", "/_truth/fno/SENT-T-1", &[], "").await;
    assert_eq!(t.status, 200);
    assert_eq!(t.body["delete_lag_seconds"], 2.0, "{}", t.body);
    assert!(r.headers.get("odata-version").is_some());
}

#[tokio::test(start_paused = true)]
async fn an_update_keeps_the_old_version_visible_until_the_new_one_arrives() {
    let e = Estate::new().await;
    let (id, _) = e.create("SENT-U-1", 3).await;
    advance(Duration::from_secs(3)).await;
    let name = |r: Reply| r.body["value"][0]["OrganizationName"].clone();
    assert_eq!(name(e.fno("fin", "SENT-U-1").await), "SENTINEL SENT-U-1");
    let r = send(
        &e.emu,
        "PATCH",
        &format!("/crm/api/data/v9.2/accounts({id})"),
        &[
            ("authorization", &format!("Bearer {}", e.crm)),
            ("content-type", "application/json"),
            ("if-match", "*"),
        ],
        r#"{"name":"renamed"}"#,
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.body);
    advance(Duration::from_millis(1999)).await;
    assert_eq!(name(e.fno("fin", "SENT-U-1").await), "SENTINEL SENT-U-1");
    advance(Duration::from_millis(1)).await;
    assert_eq!(name(e.fno("fin", "SENT-U-1").await), "RENAMED");
}

#[tokio::test(start_paused = true)]
async fn dataverse_search_finds_each_version_after_its_lag_and_loses_a_deleted_record() {
    let e = Estate::new().await;
    let bearer = format!("Bearer {}", e.crm);
    let auth = ("authorization", bearer.as_str());
    // The description of the record the index finds by its account number, if any.
    let found = async |number: &str| {
        let entities = json!([{"Name": "account", "SelectColumns": ["description"],
            "SearchColumns": ["accountnumber"]}]);
        let body = json!({"search": format!("\"{number}\""), "entities": entities.to_string(), "count": true});
        let r = send(
            &e.emu,
            "POST",
            "/crm/api/data/v9.2/searchquery",
            &[auth, ("content-type", "application/json")],
            &body.to_string(),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.body);
        let inner: Value = serde_json::from_str(r.body["response"].as_str().expect("a response"))
            .expect("JSON inside");
        inner["Value"][0]["Attributes"]["description"]
            .as_str()
            .map(str::to_string)
    };
    // The watermark the index's status claims, and its truth's.
    let watermark = async || {
        let r = send(&e.emu, "GET", "/_truth/status/dvsearch", &[], "").await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["claims"], {
            let mut t = r.body["truth"].clone();
            t.as_object_mut().map(|m| m.remove("replication"));
            t
        });
        r.body["claims"]["watermark"].as_u64()
    };
    let version = async |id: &str| {
        let r = send(
            &e.emu,
            "GET",
            &format!("/crm/api/data/v9.2/accounts({id})?$select=versionnumber"),
            &[auth],
            "",
        )
        .await;
        r.body["versionnumber"].as_u64().expect("a versionnumber")
    };
    let (id, at) = e.create("DVS-7", 1).await;
    let first = version(&id).await;
    advance(Duration::from_millis(3999)).await;
    assert_eq!(found("DVS-7").await, None);
    assert_eq!(watermark().await, Some(1_000_000), "the initial sync's");
    advance(Duration::from_millis(1)).await;
    assert_eq!(found("DVS-7").await.as_deref(), Some("payload"));
    assert_eq!(watermark().await, Some(first));
    let t = send(&e.emu, "GET", "/_truth/dvsearch/DVS-7", &[], "").await;
    assert_eq!(t.body["lag_seconds"], 4.0, "{}", t.body);
    assert_eq!(Instant::now() - at, Duration::from_secs(4));

    // An update: the index keeps the version before until the new one is findable.
    let r = send(
        &e.emu,
        "PATCH",
        &format!("/crm/api/data/v9.2/accounts({id})"),
        &[
            auth,
            ("content-type", "application/json"),
            ("if-match", "*"),
        ],
        r#"{"description":"second"}"#,
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.body);
    let second = version(&id).await;
    assert!(second > first);
    advance(Duration::from_millis(3999)).await;
    assert_eq!(found("DVS-7").await.as_deref(), Some("payload"));
    assert_eq!(watermark().await, Some(first));
    advance(Duration::from_millis(1)).await;
    assert_eq!(found("DVS-7").await.as_deref(), Some("second"));
    assert_eq!(watermark().await, Some(second));

    // A delete: found until the lag has passed, then not.
    let r = send(
        &e.emu,
        "DELETE",
        &format!("/crm/api/data/v9.2/accounts({id})"),
        &[auth],
        "",
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.body);
    advance(Duration::from_millis(3999)).await;
    assert_eq!(found("DVS-7").await.as_deref(), Some("second"));
    advance(Duration::from_millis(1)).await;
    assert_eq!(found("DVS-7").await, None);
}
