//! Writes to F&O entities and dual-write back into Dataverse, in-process under paused tokio
//! time: the OData answers F&O gives (201 with `Location`, Infolog errors, 204, 404), written
//! rows read back beside dual-written ones, and an F&O change reaching Dataverse after its
//! lag, with the truth matching what reads observe and nothing echoed back.

use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use serde_json::{Value, json};
use tokio::time::{Instant, advance};

use crate::{Emulator, EmulatorError, Scenario};

const SCENARIO: &str = r#"
seed: 3
credentials:
  - { tenant: contoso, client_id: app-1, client_secret: s3cret }
dataverse:
  crm:
    tables:
      accounts:
        id: accountid
        columns: { name: string, accountnumber: string, customertypecode: int, description: string }
fno:
  fin:
    default_company: dat
    entities:
      CustomersV3:
        key: CustomerAccount
        mandatory: [OrganizationName, CustomerGroupId]
        number_sequence: DW
        fields: [SalesCurrencyCode]
  fin_held:
    entities:
      CustomersV3: { key: CustomerAccount, mandatory: [OrganizationName] }
replicas:
  fno:
    source: crm/accounts
    target: { kind: fno, env: fin, entity: CustomersV3, company: usmf }
    key: name
    map: { accountnumber: CustomerAccount, name: OrganizationName }
    lag: { distribution: fixed, value: 1s }
    outages:
      - { start: 500s, duration: 10s, mode: unavailable }
  vendors:
    source: crm/accounts
    target: { kind: fno, env: fin, entity: VendorsV2, company: usmf }
    key: name
    map: { accountnumber: VendorAccount, name: VendorName }
    lag: { distribution: fixed, value: 1s }
  fno_back:
    source: fno:fin/CustomersV3
    target: { kind: dataverse, env: crm, table: accounts }
    key: OrganizationName
    map: { OrganizationName: name, CustomerAccount: accountnumber, SalesCurrencyCode: description }
    lag: { distribution: fixed, value: 2s }
  held_back:
    source: fno:fin_held/CustomersV3
    target: { kind: dataverse, env: crm, table: accounts }
    key: OrganizationName
    map: { OrganizationName: name, CustomerAccount: accountnumber }
    lag: { distribution: fixed, value: 1s }
    paused: [ { start: 0s, duration: 30s } ]
  stopped_back:
    source: fno:fin_held/CustomersV3
    target: { kind: dataverse, env: crm, table: accounts }
    key: OrganizationName
    map: { OrganizationName: name }
    lag: { distribution: fixed, value: 1s }
    state: stopped
"#;

const CUSTOMERS: &str = "/fno/fin/data/CustomersV3";

struct Reply {
    status: u16,
    headers: axum::http::HeaderMap,
    body: Value,
}

impl Reply {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }
}

fn request(method: &str, uri: &str, headers: &[(&str, &str)], body: &str) -> Request<Body> {
    let mut b = Request::builder()
        .method(method)
        .uri(uri)
        .header("host", "emulator.test");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Body::from(body.to_string()))
        .unwrap_or_else(|e| panic!("{e}"))
}

async fn reply(resp: axum::response::Response) -> Reply {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
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

struct Estate {
    emu: std::sync::Arc<Emulator>,
    fin: String,
    held: String,
    crm: String,
}

impl Estate {
    async fn new() -> Estate {
        let emu = Emulator::new(Scenario::from_yaml(SCENARIO).unwrap_or_else(|e| panic!("{e}")));
        let mut e = Estate {
            emu,
            fin: String::new(),
            held: String::new(),
            crm: String::new(),
        };
        e.held = e
            .token("https://fin_held.operations.dynamics.com/.default")
            .await;
        e.fin = e
            .token("https://fin.operations.dynamics.com/.default")
            .await;
        e.crm = e.token("https://crm.crm.dynamics.com/.default").await;
        e
    }

    async fn token(&self, scope: &str) -> String {
        let r = self
            .raw(
                "POST",
                "/entra/contoso/oauth2/v2.0/token",
                &[("content-type", "application/x-www-form-urlencoded")],
                &format!(
                    "grant_type=client_credentials&client_id=app-1&client_secret=s3cret&scope={scope}"
                ),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        r.body["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no token: {}", r.body))
            .to_string()
    }

    async fn raw(&self, method: &str, uri: &str, headers: &[(&str, &str)], body: &str) -> Reply {
        reply(self.emu.handle(request(method, uri, headers, body)).await).await
    }

    async fn fno(&self, method: &str, uri: &str, body: &str) -> Reply {
        let auth = format!("Bearer {}", self.fin);
        self.raw(
            method,
            uri,
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
            body,
        )
        .await
    }

    /// A create in `fin_held`, whose tokens are its own.
    async fn create_held(&self, body: Value) -> Reply {
        let auth = format!("Bearer {}", self.held);
        self.raw(
            "POST",
            "/fno/fin_held/data/CustomersV3",
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
            &body.to_string(),
        )
        .await
    }

    async fn crm(&self, uri: &str) -> Reply {
        let auth = format!("Bearer {}", self.crm);
        self.raw("GET", uri, &[("authorization", &auth)], "").await
    }

    async fn create(&self, body: Value) -> Reply {
        self.fno("POST", CUSTOMERS, &body.to_string()).await
    }

    /// The Dataverse accounts named `name`.
    async fn accounts_named(&self, name: &str) -> Vec<Value> {
        let r = self
            .crm(&format!(
                "/crm/api/data/v9.2/accounts?$filter=name%20eq%20'{}'",
                name.replace(' ', "%20")
            ))
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        r.body["value"].as_array().cloned().unwrap_or_default()
    }

    /// The F&O customers (any company) named `name`.
    /// Creates a Dataverse account in `crm` (dual-write copies it into F&O).
    async fn create_account(&self, name: &str, number: &str) {
        let auth = format!("Bearer {}", self.crm);
        let r = self
            .raw(
                "POST",
                "/crm/api/data/v9.2/accounts",
                &[
                    ("authorization", &auth),
                    ("content-type", "application/json"),
                ],
                &json!({"name": name, "accountnumber": number}).to_string(),
            )
            .await;
        assert_eq!(r.status, 204, "{}", r.body);
    }

    async fn customers_named(&self, name: &str) -> Vec<Value> {
        let r = self
            .fno(
                "GET",
                &format!(
                    "{CUSTOMERS}?cross-company=true&$filter=OrganizationName%20eq%20'{}'",
                    name.replace(' ', "%20")
                ),
                "",
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        r.body["value"].as_array().cloned().unwrap_or_default()
    }
}

fn customer(name: &str) -> Value {
    json!({"OrganizationName": name, "CustomerGroupId": "10"})
}

#[tokio::test(start_paused = true)]
async fn a_create_answers_201_with_the_numbered_key_and_its_location() {
    let e = Estate::new().await;
    let r = e.create(customer("Sentinel A")).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.header("odata-version"), "4.0");
    assert_eq!(r.body["CustomerAccount"], "DW-000001");
    assert_eq!(r.body["dataAreaId"], "dat", "the default company");
    assert_eq!(r.body["OrganizationName"], "Sentinel A");
    assert_eq!(r.body["CustomerGroupId"], "10");
    assert!(
        r.body["@odata.etag"]
            .as_str()
            .is_some_and(|t| t.starts_with("W/\"")),
        "{}",
        r.body
    );
    assert_eq!(
        r.body["@odata.context"],
        "http://emulator.test/fno/fin/data/$metadata#CustomersV3/$entity"
    );
    assert_eq!(
        r.header("location"),
        "http://emulator.test/fno/fin/data/CustomersV3(dataAreaId='dat',CustomerAccount='DW-000001')"
    );
    // The Location is the row's URL.
    let loc = r
        .header("location")
        .trim_start_matches("http://emulator.test");
    let got = e.fno("GET", loc, "").await;
    assert_eq!(got.status, 200, "{}", got.body);
    assert_eq!(got.body["OrganizationName"], "Sentinel A");

    let r = e.create(customer("Sentinel B")).await;
    assert_eq!(
        r.body["CustomerAccount"], "DW-000002",
        "the sequence goes on"
    );
    // A company of its own, named in any case; a key given is kept.
    let mut body = customer("Sentinel C");
    body["dataAreaId"] = json!("USMF");
    body["CustomerAccount"] = json!("O'Brien 1");
    body["@odata.type"] = json!("#Microsoft.Dynamics.DataEntities.CustomersV3");
    let r = e.create(body).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["dataAreaId"], "usmf");
    assert_eq!(r.body["CustomerAccount"], "O'Brien 1");
    assert_eq!(
        r.header("location"),
        "http://emulator.test/fno/fin/data/CustomersV3(dataAreaId='usmf',CustomerAccount='O%27%27Brien%201')"
    );
    let loc = r
        .header("location")
        .trim_start_matches("http://emulator.test");
    assert_eq!(e.fno("GET", loc, "").await.status, 200);
    // usmf has a sequence of its own.
    let mut body = customer("Sentinel D");
    body["dataAreaId"] = json!("usmf");
    assert_eq!(e.create(body).await.body["CustomerAccount"], "DW-000001");
}

#[tokio::test(start_paused = true)]
async fn a_create_missing_a_mandatory_field_or_repeating_a_key_fails_as_f_and_o_does() {
    let e = Estate::new().await;
    let r = e.create(json!({"OrganizationName": "No group"})).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.header("odata-version"), "4.0");
    assert_eq!(r.body["error"]["code"], "");
    assert_eq!(
        r.body["error"]["message"],
        "Write failed for table row of type 'CustomersV3'. Infolog: Error: Field 'CustomerGroupId' must be filled in."
    );
    // Empty counts as missing.
    let r = e
        .create(json!({"OrganizationName": " ", "CustomerGroupId": "10"}))
        .await;
    assert_eq!(r.status, 400);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("Field 'OrganizationName' must be filled in.")),
        "{}",
        r.body
    );
    // Without a number sequence the key is mandatory.
    let held = e.create_held(json!({"OrganizationName": "x"})).await;
    assert_eq!(held.status, 400);
    assert!(
        held.body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("Field 'CustomerAccount' must be filled in.")),
        "{}",
        held.body
    );

    let mut body = customer("Dup");
    body["CustomerAccount"] = json!("C-1");
    assert_eq!(e.create(body.clone()).await.status, 201);
    body["CustomerAccount"] = json!("c-1");
    let r = e.create(body.clone()).await;
    assert_eq!(r.status, 400, "keys compare without case");
    let m = r.body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        m.starts_with("Write failed for table row of type 'CustomersV3'.")
            && m.contains("The record already exists."),
        "{m}"
    );
    // The same key in another company is another record.
    body["dataAreaId"] = json!("usmf");
    assert_eq!(e.create(body).await.status, 201);

    // A property the entity does not have, and a body that is not an object.
    let r = e
        .create(json!({"OrganizationName": "x", "CustomerGroupId": "1", "Colour": "red"}))
        .await;
    assert_eq!(r.status, 400);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("The property 'Colour' does not exist")),
        "{}",
        r.body
    );
    assert_eq!(e.fno("POST", CUSTOMERS, "[1]").await.status, 400);
    assert_eq!(e.fno("POST", CUSTOMERS, "{").await.status, 400);
}

#[tokio::test(start_paused = true)]
async fn written_rows_read_back_by_filter_and_by_key_beside_dual_written_ones() {
    let e = Estate::new().await;
    let mut body = customer("Reader");
    body["CustomerAccount"] = json!("R-1");
    body["SalesCurrencyCode"] = json!("EUR");
    assert_eq!(e.create(body).await.status, 201);
    // A Dataverse account dual-written into F&O (company usmf).
    e.create_account("From CRM", "R-2").await;
    advance(Duration::from_secs(1)).await;

    // Without cross-company, only the default company (dat): the written row.
    let r = e.fno("GET", &format!("{CUSTOMERS}?$count=true"), "").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["@odata.count"], 1);
    assert_eq!(r.body["value"][0]["CustomerAccount"], "R-1");
    let r = e
        .fno(
            "GET",
            &format!("{CUSTOMERS}?cross-company=true&$filter=CustomerAccount%20eq%20'R-*'&$select=CustomerAccount,SalesCurrencyCode"),
            "",
        )
        .await;
    let accounts: Vec<&str> = r.body["value"]
        .as_array()
        .map(|v| {
            v.iter()
                .filter_map(|r| r["CustomerAccount"].as_str())
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(accounts, ["R-2", "R-1"], "{}", r.body);
    assert_eq!(r.body["value"][1]["SalesCurrencyCode"], "EUR");
    assert!(r.body["value"][1].get("OrganizationName").is_none());

    let r = e
        .fno(
            "GET",
            &format!("{CUSTOMERS}(dataAreaId='DAT',CustomerAccount='r-1')"),
            "",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["OrganizationName"], "Reader");
    let r = e
        .fno(
            "GET",
            &format!("{CUSTOMERS}(dataAreaId='usmf',CustomerAccount='R-2')"),
            "",
        )
        .await;
    assert_eq!(r.body["OrganizationName"], "From CRM", "{}", r.body);
    let r = e
        .fno(
            "GET",
            &format!("{CUSTOMERS}(dataAreaId='usmf',CustomerAccount='R-1')"),
            "",
        )
        .await;
    assert_eq!(r.status, 404, "another company");

    // A dual-written row is taken: creating its key in its company fails, changing it is
    // refused.
    let mut body = customer("Again");
    body["dataAreaId"] = json!("usmf");
    body["CustomerAccount"] = json!("R-2");
    assert_eq!(e.create(body).await.status, 400);
    let r = e
        .fno(
            "DELETE",
            &format!("{CUSTOMERS}(dataAreaId='usmf',CustomerAccount='R-2')"),
            "",
        )
        .await;
    assert_eq!(r.status, 405, "{}", r.body);
}

#[tokio::test(start_paused = true)]
async fn patch_and_delete_answer_204_then_404() {
    let e = Estate::new().await;
    let created = e.create(customer("Patched")).await;
    let url = format!("{CUSTOMERS}(dataAreaId='dat',CustomerAccount='DW-000001')");
    let etag = created.body["@odata.etag"].as_str().unwrap_or_default();

    let r = e
        .fno(
            "PATCH",
            &url,
            &json!({"SalesCurrencyCode": "USD"}).to_string(),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(r.body, Value::Null);
    let got = e.fno("GET", &url, "").await;
    assert_eq!(got.body["SalesCurrencyCode"], "USD");
    assert_eq!(got.body["OrganizationName"], "Patched");
    assert_ne!(
        got.body["@odata.etag"], etag,
        "the ETag changes with the row"
    );
    // A stale ETag, an emptied mandatory field, a changed key: refused.
    let auth = format!("Bearer {}", e.fin);
    let r = e
        .raw(
            "PATCH",
            &url,
            &[("authorization", &auth), ("if-match", etag)],
            &json!({"SalesCurrencyCode": "GBP"}).to_string(),
        )
        .await;
    assert_eq!(r.status, 412, "{}", r.body);
    let r = e
        .fno("PATCH", &url, &json!({"CustomerGroupId": ""}).to_string())
        .await;
    assert_eq!(r.status, 400);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("Field 'CustomerGroupId' must be filled in.")),
        "{}",
        r.body
    );
    let r = e
        .fno("PATCH", &url, &json!({"CustomerAccount": "X"}).to_string())
        .await;
    assert_eq!(r.status, 400);
    // The whole key, no less.
    let r = e
        .fno(
            "PATCH",
            &format!("{CUSTOMERS}(CustomerAccount='DW-000001')"),
            "{}",
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    let missing = format!("{CUSTOMERS}(dataAreaId='dat',CustomerAccount='NOPE')");
    assert_eq!(e.fno("PATCH", &missing, "{}").await.status, 404);

    let r = e.fno("DELETE", &url, "").await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(r.header("odata-version"), "4.0");
    assert_eq!(e.fno("GET", &url, "").await.status, 404);
    assert_eq!(e.fno("DELETE", &url, "").await.status, 404);
    assert_eq!(e.fno("PATCH", &url, "{}").await.status, 404);
}

#[tokio::test(start_paused = true)]
async fn writes_need_a_token_a_known_entity_and_a_writable_one() {
    let e = Estate::new().await;
    let url = format!("{CUSTOMERS}(dataAreaId='dat',CustomerAccount='DW-000001')");
    for (method, uri) in [
        ("POST", CUSTOMERS),
        ("PATCH", url.as_str()),
        ("DELETE", url.as_str()),
    ] {
        let r = e
            .raw(
                method,
                uri,
                &[("content-type", "application/json")],
                &customer("x").to_string(),
            )
            .await;
        assert_eq!(r.status, 401, "{method}");
        assert_eq!(r.header("www-authenticate"), "Bearer");
    }
    assert_eq!(
        e.fno("POST", "/fno/fin/data/NoSuchEntity", "{}")
            .await
            .status,
        404
    );
    // Dual-written only: read-only, as before.
    let r = e.fno("POST", "/fno/fin/data/VendorsV2", "{}").await;
    assert_eq!(r.status, 405, "{}", r.body);
    // A writable entity is an entity set of the service even with no dual-write into it.
    let auth = format!("Bearer {}", e.held);
    let r = e
        .raw(
            "GET",
            "/fno/fin_held/data/",
            &[("authorization", &auth)],
            "",
        )
        .await;
    assert_eq!(r.body["value"][0]["name"], "CustomersV3", "{}", r.body);
    // POST to a row, PATCH to the set.
    assert_eq!(e.fno("POST", &url, "{}").await.status, 405);
    assert_eq!(e.fno("PATCH", CUSTOMERS, "{}").await.status, 405);
}

#[tokio::test(start_paused = true)]
async fn outages_and_faults_answer_writes_as_they_answer_reads() {
    let e = Estate::new().await;
    advance(Duration::from_secs(502)).await;
    let r = e.create(customer("During the outage")).await;
    assert_eq!(r.status, 503, "{}", r.body);
    advance(Duration::from_secs(10)).await;
    assert_eq!(e.create(customer("After it")).await.status, 201);

    e.emu
        .faults()
        .add(br#"{"prefix": "/fno/", "methods": ["POST"], "mode": "throttle", "retry_after_seconds": 7}"#)
        .unwrap_or_else(|m| panic!("{m}"));
    let auth = format!("Bearer {}", e.fin);
    let send = |method: &str, uri: &str, body: String| {
        request(
            method,
            uri,
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
            &body,
        )
    };
    let r = reply(
        e.emu
            .handle_faulted(send("POST", CUSTOMERS, customer("Throttled").to_string()))
            .await,
    )
    .await;
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), "7");
    let r = reply(
        e.emu
            .handle_faulted(send("GET", CUSTOMERS, String::new()))
            .await,
    )
    .await;
    assert_eq!(r.status, 200, "reads are not throttled: {}", r.body);
    e.emu.faults().clear(None);
    e.emu
        .faults()
        .add(br#"{"prefix": "/fno/fin/", "methods": ["PATCH", "DELETE"], "mode": "status", "status": 503}"#)
        .unwrap_or_else(|m| panic!("{m}"));
    let url = format!("{CUSTOMERS}(dataAreaId='dat',CustomerAccount='DW-000001')");
    let r = reply(
        e.emu
            .handle_faulted(send("DELETE", &url, String::new()))
            .await,
    )
    .await;
    assert_eq!(r.status, 503);
}

#[tokio::test(start_paused = true)]
async fn an_f_and_o_row_reaches_dataverse_after_its_lag_and_leaves_after_its_delete() {
    let e = Estate::new().await;
    let at = Instant::now();
    let r = e
        .create(json!({"OrganizationName": "Back 1", "CustomerGroupId": "10", "SalesCurrencyCode": "EUR"}))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    advance(Duration::from_millis(1999)).await;
    assert!(
        e.accounts_named("Back 1").await.is_empty(),
        "not before the lag"
    );
    advance(Duration::from_millis(1)).await;
    let rows = e.accounts_named("Back 1").await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["accountnumber"], "DW-000001");
    assert_eq!(rows[0]["description"], "EUR");

    let t = e
        .emu
        .truth("fno_back", "Back 1")
        .unwrap_or_else(|| panic!("no truth"));
    assert_eq!(t.committed_at, at);
    assert_eq!(t.visible_at, Some(at + Duration::from_secs(2)));
    assert!(!t.dropped && !t.queued);
    let id = t.record_id.to_string();
    assert_eq!(
        rows[0]["accountid"],
        id.as_str(),
        "a Dataverse row of its own"
    );
    // By id, in the listing, and on the truth endpoint.
    let r = e.crm(&format!("/crm/api/data/v9.2/accounts({id})")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["name"], "Back 1");
    let r = e.crm("/crm/api/data/v9.2/accounts?$count=true").await;
    assert_eq!(r.body["@odata.count"], 1, "{}", r.body);
    let r = e.raw("GET", "/_truth/fno_back/Back%201", &[], "").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["lag_seconds"], 2.0);
    assert_eq!(r.body["record_id"], id.as_str());

    // An update travels too: until it arrives Dataverse shows the version before.
    let url = format!("{CUSTOMERS}(dataAreaId='dat',CustomerAccount='DW-000001')");
    let r = e
        .fno(
            "PATCH",
            &url,
            &json!({"SalesCurrencyCode": "NOK"}).to_string(),
        )
        .await;
    assert_eq!(r.status, 204);
    advance(Duration::from_secs(1)).await;
    assert_eq!(e.accounts_named("Back 1").await[0]["description"], "EUR");
    advance(Duration::from_secs(1)).await;
    assert_eq!(e.accounts_named("Back 1").await[0]["description"], "NOK");

    // The delete: the row stays until its lag has passed, then is gone.
    let deleted = Instant::now();
    assert_eq!(e.fno("DELETE", &url, "").await.status, 204);
    advance(Duration::from_millis(1999)).await;
    assert_eq!(e.accounts_named("Back 1").await.len(), 1, "not gone yet");
    advance(Duration::from_millis(1)).await;
    assert!(e.accounts_named("Back 1").await.is_empty());
    let r = e.crm(&format!("/crm/api/data/v9.2/accounts({id})")).await;
    assert_eq!(r.status, 404);
    let t = e
        .emu
        .truth("fno_back", "Back 1")
        .unwrap_or_else(|| panic!("no truth"));
    assert_eq!(t.deleted_at, Some(deleted));
    assert_eq!(t.gone_at, Some(deleted + Duration::from_secs(2)));
    assert!(!t.visible(Instant::now()));
}

#[tokio::test(start_paused = true)]
async fn a_paused_map_holds_f_and_o_rows_until_it_resumes_and_a_stopped_one_drops_them() {
    let e = Estate::new().await;
    let start = Instant::now();
    advance(Duration::from_secs(5)).await;
    let r = e
        .create_held(json!({"OrganizationName": "Held 1", "CustomerAccount": "H-1"}))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    advance(Duration::from_secs(24)).await;
    assert!(e.accounts_named("Held 1").await.is_empty(), "still paused");
    let t = e
        .emu
        .truth("held_back", "Held 1")
        .unwrap_or_else(|| panic!("no truth"));
    assert_eq!(t.visible_at, Some(start + Duration::from_secs(30)));
    advance(Duration::from_secs(1)).await;
    assert_eq!(e.accounts_named("Held 1").await.len(), 1, "caught up");
    // The stopped map never copies it: one account, and the truth says dropped.
    advance(Duration::from_secs(600)).await;
    assert_eq!(e.accounts_named("Held 1").await.len(), 1);
    let t = e
        .emu
        .truth("stopped_back", "Held 1")
        .unwrap_or_else(|| panic!("no truth"));
    assert!(t.dropped && t.visible_at.is_none() && !t.queued, "{t:?}");
}

#[tokio::test(start_paused = true)]
async fn nothing_echoes_back_to_the_side_it_came_from() {
    let e = Estate::new().await;
    // F&O → Dataverse: the copy in crm/accounts is not sent on to F&O by `fno`.
    assert_eq!(e.create(customer("Echo F")).await.status, 201);
    advance(Duration::from_secs(60)).await;
    assert_eq!(e.accounts_named("Echo F").await.len(), 1);
    let rows = e.customers_named("Echo F").await;
    assert_eq!(rows.len(), 1, "only the written row: {rows:?}");
    assert_eq!(rows[0]["dataAreaId"], "dat");
    assert!(e.emu.truth("fno", "Echo F").is_none());

    // Dataverse → F&O: the copy in CustomersV3 is not sent back by `fno_back`.
    e.create_account("Echo D", "E-1").await;
    advance(Duration::from_secs(60)).await;
    let rows = e.customers_named("Echo D").await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["dataAreaId"], "usmf");
    assert_eq!(
        e.accounts_named("Echo D").await.len(),
        1,
        "no second account"
    );
    assert!(e.emu.truth("fno_back", "Echo D").is_none());
}

fn refused(yaml: &str) -> (String, String) {
    match Scenario::from_yaml(yaml) {
        Err(EmulatorError::Invalid { key, reason }) => (key, reason),
        other => panic!("not refused for a key: {other:?}"),
    }
}

#[test]
fn f_and_o_sources_are_checked() {
    let back = |source: &str, target: &str, key: &str, map: &str| {
        SCENARIO.replace(
            "    source: fno:fin/CustomersV3\n    target: { kind: dataverse, env: crm, table: accounts }\n    key: OrganizationName\n    map: { OrganizationName: name, CustomerAccount: accountnumber, SalesCurrencyCode: description }",
            &format!("    source: {source}\n    target: {target}\n    {key}\n    map: {map}"),
        )
    };
    let dv = "{ kind: dataverse, env: crm, table: accounts }";
    let map = "{ OrganizationName: name }";
    for (source, target, key, map, want_key, want) in [
        (
            "fno:fin/VendorsV2",
            dv,
            "",
            map,
            "replicas.fno_back.source",
            "entity VendorsV2 is not declared writable",
        ),
        (
            "fno:nowhere/CustomersV3",
            dv,
            "",
            map,
            "replicas.fno_back.source",
            "unknown F&O environment",
        ),
        (
            "fno:fin/CustomersV3",
            dv,
            "key: OrganizationName",
            "{ OrganizationName: name, CustomerGroupId: colour }",
            "replicas.fno_back.map.CustomerGroupId",
            "\"colour\" is not a writable column of crm/accounts",
        ),
        (
            "fno:fin/CustomersV3",
            dv,
            "key: CustomerGroupId",
            map,
            "replicas.fno_back.key",
            "\"CustomerGroupId\" is not mapped",
        ),
        (
            "fno:fin/CustomersV3",
            dv,
            "",
            map,
            "replicas.fno_back.key",
            "the entity's key \"CustomerAccount\" (the default key) is not mapped",
        ),
        (
            "fno:fin/CustomersV3",
            "{ kind: search, service: s, index: i }",
            "key: OrganizationName",
            map,
            "replicas.fno_back.target",
            "Dataverse table only",
        ),
    ] {
        let (k, reason) = refused(&back(source, target, key, map));
        assert_eq!(k, want_key, "{reason}");
        assert!(reason.contains(want), "{reason}");
    }
    // The default key is the entity's.
    Scenario::from_yaml(&back(
        "fno:fin/CustomersV3",
        dv,
        "",
        "{ CustomerAccount: accountnumber }",
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    let (k, reason) = refused(&SCENARIO.replace(
        "key: CustomerAccount\n        mandatory",
        "key: dataAreaId\n        mandatory",
    ));
    assert_eq!(k, "fno.fin.entities.CustomersV3.key", "{reason}");
}
