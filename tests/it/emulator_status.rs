//! The platforms' own status surfaces the emulator serves (issue 17, fact sheet
//! `platform-status.md`), over real HTTP: each surface's documented shape (field names, types,
//! integer enums), honest claims that track the replication (a row committed is covered by the
//! next folder's `lastsynceddatatime` and version watermark, by the next indexer run, by a
//! later external refresh), and each `status_lie`, told apart from the truth by
//! `/_truth/status/{replica}`.

use std::time::Duration;

use chrono::{DateTime, Timelike as _, Utc};
use serde_json::{Value, json};

use crate::common::entra::token;
use crate::common::twin::Served;

const CLIENT: &str = "status-app";
const SECRET: &str = "status-secret";

const SCENARIO: &str = r#"
credentials:
  - { tenant: contoso, client_id: status-app, client_secret: status-secret }
dataverse:
  crm:
    tables:
      accounts: { id: accountid, columns: { name: string, accountnumber: string } }
  bare: { tables: {} }              # no Dataverse search index: not provisioned
fno:
  fin: { default_company: dat }
search:
  srch: { api_keys: [admin-key] }
elasticsearch:
  logs: { users: { elastic: pw }, refresh_interval: 500ms }
lakes:
  dl: { container: dataverse-status-dl }
  fabric: { container: fabric-status, layout: delta }
  stuck: { container: dataverse-status-stuck }
  stale: { container: dataverse-status-stale }
  lossy: { container: dataverse-status-lossy }
replicas:
  dv_search:
    source: crm/accounts
    target: { kind: dataverse_search, env: crm, table: accounts }
    key: name
    lag: { distribution: fixed, value: 1s }
  lake:
    source: crm/accounts
    target: { kind: lake, lake: dl, table: account }
    key: name
    lag: { distribution: fixed, value: 1s }
    folder_interval: 1s
  fabric:
    source: crm/accounts
    target: { kind: lake, lake: fabric, table: account }
    key: name
    lag: { distribution: fixed, value: 1s }
    folder_interval: 1s
  lake_stuck:
    source: crm/accounts
    target: { kind: lake, lake: stuck, table: account }
    key: name
    lag: { distribution: fixed, value: 1s }
    folder_interval: 1s
    outages: [ { start: 0s, duration: 1h, mode: stall } ]
    status_lie: healthy_while_stuck
  lake_stale:
    source: crm/accounts
    target: { kind: lake, lake: stale, table: account }
    key: name
    lag: { distribution: fixed, value: 1s }
    folder_interval: 1s
    status_lie: { lie: stale_while_flowing, start: 3s }
  lake_lossy:
    source: crm/accounts
    target: { kind: lake, lake: lossy, table: account }
    key: name
    lag: { distribution: fixed, value: 1s }
    folder_interval: 1s
    drop_probability: 0.5
    status_lie: watermark_without_record
  search:
    source: crm/accounts
    target: { kind: search, service: srch, index: accounts }
    key: name
    lag: { distribution: fixed, value: 1500ms }
    indexer: { name: accounts-indexer, every: 1s }
  search_error:
    source: crm/accounts
    target: { kind: search, service: srch, index: accounts_err }
    key: name
    lag: { distribution: fixed, value: 300ms }
    indexer: { every: 1s }
    status_lie: error_while_flowing
  es:
    source: crm/accounts
    target: { kind: elasticsearch, cluster: logs, index: accounts }
    key: name
    lag: { distribution: fixed, value: 200ms }
  es_stale:
    source: crm/accounts
    target: { kind: elasticsearch, cluster: logs, index: frozen }
    key: name
    lag: { distribution: fixed, value: 200ms }
    status_lie: { lie: stale_while_flowing, start: 0s }
  fno:
    source: crm/accounts
    target: { kind: fno, env: fin, entity: CustomersV3, company: usmf }
    key: name
    filter: accountnumber ne 'skip'
    map: { name: OrganizationName, accountnumber: CustomerAccount }
    lag: { distribution: fixed, value: 200ms }
  vendors:
    source: crm/accounts
    target: { kind: fno, env: fin, entity: VendorsV2, company: usmf }
    key: name
    map: { name: VendorName }
    lag: { distribution: fixed, value: 200ms }
    paused: [ { start: 0s, duration: 1h } ]
  contacts:
    source: crm/accounts
    target: { kind: fno, env: fin, entity: ContactsV2, company: usmf }
    key: name
    map: { name: ContactName }
    lag: { distribution: fixed, value: 200ms }
    internal_entity_name: Contacts (dual-write)
    outages: [ { start: 0s, duration: 1h, mode: stall } ]
    status_lie: healthy_while_stuck
"#;

struct Estate {
    served: Served,
    http: reqwest::Client,
    crm: String,
    fin: String,
}

impl Estate {
    async fn start() -> Estate {
        let served = Served::start(SCENARIO, CLIENT, SECRET).await;
        let (http, crm, fin) = served.signed_in(CLIENT, SECRET).await;
        Estate {
            served,
            http,
            crm,
            fin,
        }
    }

    async fn get(&self, path: &str, auth: Option<(&str, &str)>) -> (u16, Value) {
        let mut req = self.http.get(format!("{}{path}", self.served.base));
        if let Some((name, value)) = auth {
            req = req.header(name, value);
        }
        let r = req.send().await.expect("request");
        let status = r.status().as_u16();
        let text = r.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn crm_get(&self, rest: &str) -> Value {
        let bearer = format!("Bearer {}", self.crm);
        let (s, v) = self
            .get(
                &format!("/crm/api/data/v9.2/{rest}"),
                Some(("authorization", &bearer)),
            )
            .await;
        assert_eq!(s, 200, "{rest}: {v}");
        v
    }

    async fn truth(&self, path: &str) -> Value {
        let (s, v) = self.get(&format!("/_truth/{path}"), None).await;
        assert_eq!(s, 200, "{path}: {v}");
        v
    }

    /// Creates an account named `name`; its `versionnumber`.
    async fn write(&self, name: &str) -> u64 {
        let r = self
            .http
            .post(format!("{}/crm/api/data/v9.2/accounts", self.served.base))
            .bearer_auth(&self.crm)
            .header("prefer", "return=representation")
            .json(&json!({"name": name, "accountnumber": name}))
            .send()
            .await
            .expect("create");
        assert_eq!(r.status().as_u16(), 201);
        let row: Value = r.json().await.expect("row");
        row["versionnumber"].as_u64().expect("a versionnumber")
    }

    /// `POST /{env}/api/data/v9.2/searchquery` with `body` (Dataverse search): the status
    /// and the answer, with the JSON inside a 200's `response` parsed in its place.
    async fn search(&self, env: &str, bearer: &str, body: &Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!(
                "{}/{env}/api/data/v9.2/searchquery",
                self.served.base
            ))
            .bearer_auth(bearer)
            .json(body)
            .send()
            .await
            .expect("searchquery");
        let status = r.status().as_u16();
        let mut v: Value = r.json().await.expect("a JSON answer");
        if status == 200 {
            v["response"] = string_wrapped(&v);
        }
        (status, v)
    }

    /// Waits until `f` answers `Some`, at most `limit`.
    async fn until<T>(
        &self,
        what: &str,
        limit: Duration,
        mut f: impl AsyncFnMut() -> Option<T>,
    ) -> T {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(v) = f().await {
                return v;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}"
            );
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }
}

fn time(v: &Value) -> DateTime<Utc> {
    v.as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| panic!("not a time: {v}"))
}

/// The JSON inside the string `response` of a Dataverse search answer.
fn string_wrapped(v: &Value) -> Value {
    let text = v["response"]
        .as_str()
        .unwrap_or_else(|| panic!("no response string: {v}"));
    serde_json::from_str(text).unwrap_or_else(|e| panic!("response is not JSON ({e}): {text}"))
}

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().expect("an object").keys().cloned().collect();
    k.sort();
    k
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synapse_link_tables_have_the_documented_shapes_and_track_the_export() {
    let e = Estate::start().await;
    let version = e.write("SL-1").await;
    let truth = e.truth("lake/SL-1").await;
    let committed = time(&truth["committed_at"]);

    let profiles = e.crm_get("synapselinkprofiles?$filter=name eq 'dl'").await;
    let p = &profiles["value"][0];
    assert_eq!(profiles["value"].as_array().map(Vec::len), Some(1));
    assert_eq!(p["profilestate"], 1, "Active");
    assert_eq!(p["destinationsyncstate"], 2);
    assert_eq!(p["profiletype"], 0);
    let profile = p["synapselinkprofileid"]
        .as_str()
        .expect("an id")
        .to_string();
    let schedules = e
        .crm_get(&format!(
            "synapselinkschedules?$filter=_profile_value eq {profile}"
        ))
        .await;
    assert_eq!(
        schedules["value"][0]["recurrenceinterval"], 1,
        "1 s rounds up to a minute"
    );

    // After the folder holding the row closes, the table's state covers it.
    let row = e
        .until("the lake's sync to cover the row", Duration::from_secs(10), async || {
            let v = e
                .crm_get(&format!(
                    "synapselinkprofileentitystates?$filter=entityname eq 'account' and _profile_value eq {profile}"
                ))
                .await;
            let row = v["value"][0].clone();
            let mark: u64 = row["lastsynceddataversion"].as_str()?.parse().ok()?;
            (mark >= version).then_some(row)
        })
        .await;
    assert_eq!(
        keys(&row),
        [
            "_profile_value",
            "crmrecordcount",
            "crmrecordcountmodifiedtime",
            "entityname",
            "entitysource",
            "initialsyncprocesscompletedtime",
            "initialsyncstate",
            "lakerecordcount",
            "lakerecordcountmodifiedtime",
            "lastsynceddatatime",
            "lastsynceddataversion",
            "synapselinkprofileentitystateid",
            "syncstate",
        ]
    );
    assert_eq!(row["syncstate"], 2, "InProgress: active and error-free");
    assert_eq!(row["initialsyncstate"], 4);
    assert!(row["lakerecordcount"].as_u64() >= Some(1));
    assert_eq!(row["crmrecordcount"], 1);
    let synced = time(&row["lastsynceddatatime"]);
    assert!(
        synced >= committed.with_nanosecond(0).expect("a time"),
        "{synced} < {committed}"
    );
    let visible = time(&e.truth("lake/SL-1").await["visible_at"]);
    assert!(
        synced <= visible,
        "the sync time is the folder's close: {synced} > {visible}"
    );

    let selected = e
        .crm_get("synapselinkprofileentitystates?$select=entityname,syncstate&$filter=entityname eq 'account'")
        .await;
    assert_eq!(
        keys(&selected["value"][0]),
        ["entityname", "synapselinkprofileentitystateid", "syncstate"]
    );
    let bearer = format!("Bearer {}", e.crm);
    let (status, body) = e
        .get(
            "/crm/api/data/v9.2/synapselinkprofileentitystates?$filter=nosuch eq 1",
            Some(("authorization", &bearer)),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = e.get("/crm/api/data/v9.2/synapselinkprofiles", None).await;
    assert_eq!(status, 401, "the Web API's authentication");

    // Link to Fabric: the Delta table's state.
    let fabric = e
        .until(
            "the Delta commit to carry the row",
            Duration::from_secs(10),
            async || {
                let v = e
                    .crm_get("synapselinkexternaltablestates?$filter=entityname eq 'account'")
                    .await;
                let row = v["value"][0].clone();
                (row["maxrecordversion"].as_u64()? >= version).then_some(row)
            },
        )
        .await;
    assert_eq!(fabric["tablestate"], 1, "Created");
    assert_eq!(fabric["lastsyncstate"], 1);
    assert_eq!(fabric["recordcount"], 1);
    let fabric_visible = time(&e.truth("fabric/SL-1").await["visible_at"]);
    assert!(time(&fabric["lastsynchronizedon"]) <= fabric_visible);

    // The truth agrees, and nothing lies.
    let t = e.truth("status/lake").await;
    assert_eq!(t["surface"], "synapse_link");
    assert_eq!(t["lying"], Value::Null);
    assert_eq!(t["claims"], {
        let mut honest = t["truth"].clone();
        honest.as_object_mut().map(|o| o.remove("replication"));
        honest
    });
    assert_eq!(t["truth"]["replication"], "flowing");
    e.served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lake_lies_are_told_and_named_by_the_truth() {
    let e = Estate::start().await;
    let mut versions = Vec::new();
    for i in 0..16 {
        versions.push((format!("LIE-{i}"), e.write(&format!("LIE-{i}")).await));
    }
    // The rows are readable within about 2 s, before the stale lie's start (3 s); one more
    // row after it.
    tokio::time::sleep(Duration::from_secs(3)).await;
    e.write("LATE").await;
    tokio::time::sleep(Duration::from_secs(3)).await;

    // healthy_while_stuck: stalled for the hour, claims InProgress and a moving sync time.
    let stuck = e.truth("status/lake_stuck").await;
    assert_eq!(stuck["truth"]["replication"], "stalled");
    assert_eq!(stuck["truth"]["state"], "paused");
    assert_eq!(stuck["truth"]["last_sync"], Value::Null);
    assert_eq!(stuck["claims"]["state"], "healthy");
    assert_eq!(stuck["claims"]["surface"]["syncstate"], 2);
    assert_eq!(stuck["lying"], "healthy_while_stuck");
    let first = time(&stuck["claims"]["last_sync"]);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let later = time(&e.truth("status/lake_stuck").await["claims"]["last_sync"]);
    assert!(
        later > first,
        "the claimed sync time moves: {first} → {later}"
    );
    let rows = e
        .crm_get("synapselinkprofiles?$filter=name eq 'stuck'")
        .await;
    assert_eq!(rows["value"][0]["profilestate"], 1, "claims Active");

    // stale_while_flowing: the sync time stops at the lie's start, data keeps arriving.
    let stale = e.truth("status/lake_stale").await;
    assert_eq!(stale["lying"], "stale_while_flowing");
    let since = time(&stale["lie_since"]);
    assert!(time(&stale["truth"]["last_sync"]) > since);
    assert!(stale["claims"]["last_sync"].is_null() || time(&stale["claims"]["last_sync"]) <= since);

    // watermark_without_record: the claim passes a dropped row, the honest watermark does not.
    let lossy = e.truth("status/lake_lossy").await;
    let honest = lossy["truth"]["watermark"].as_u64();
    let claimed = lossy["claims"]["watermark"]
        .as_u64()
        .expect("a claimed watermark");
    let mut passed = false;
    for (key, v) in &versions {
        let t = e.truth(&format!("lake_lossy/{key}")).await;
        if t["dropped"] == true {
            assert!(
                honest.is_none_or(|h| h < *v),
                "the honest watermark never passes a lost row"
            );
            passed |= claimed >= *v;
        }
    }
    assert!(
        passed,
        "the lie's watermark passed a dropped row ({claimed}, honest {honest:?})"
    );
    assert_eq!(lossy["lying"], "watermark_without_record");
    e.served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_indexer_runs_after_the_write_and_its_runs_hold_the_truth() {
    let e = Estate::start().await;
    let path = "/search/srch/indexers/accounts-indexer/status?api-version=2024-07-01";
    let (status, _) = e.get(path, None).await;
    assert_eq!(status, 401);
    let (status, _) = e.get(path, Some(("api-key", "wrong"))).await;
    assert_eq!(status, 403);
    let (status, _) = e
        .get(
            "/search/srch/indexers/nosuch/status?api-version=2024-07-01",
            Some(("api-key", "admin-key")),
        )
        .await;
    assert_eq!(status, 404);
    e.write("IX-1").await;
    let committed = time(&e.truth("search/IX-1").await["committed_at"]);
    let (run, doc) = e
        .until(
            "a successful run started after the write",
            Duration::from_secs(10),
            async || {
                let (s, doc) = e.get(path, Some(("api-key", "admin-key"))).await;
                assert_eq!(s, 200, "{doc}");
                let run = doc["executionHistory"]
                    .as_array()?
                    .iter()
                    .find(|r| r["status"] == "success" && time(&r["startTime"]) > committed)?
                    .clone();
                Some((run, doc))
            },
        )
        .await;
    assert_eq!(doc["name"], "accounts-indexer");
    assert_eq!(doc["status"], "running");
    assert_eq!(doc["lastResult"], doc["executionHistory"][0]);
    assert_eq!(
        keys(&run),
        [
            "endTime",
            "errorMessage",
            "errors",
            "finalTrackingState",
            "initialTrackingState",
            "itemsFailed",
            "itemsProcessed",
            "startTime",
            "status",
            "warnings",
        ]
    );
    let history = doc["executionHistory"].as_array().expect("history");
    assert!(history.len() <= 50);
    assert!(
        history
            .windows(2)
            .all(|w| time(&w[0]["startTime"]) >= time(&w[1]["startTime"])),
        "newest first"
    );
    // The run that processed the record ends once it is visible.
    let visible = time(&e.truth("search/IX-1").await["visible_at"]);
    let processed = history
        .iter()
        .find(|r| r["itemsProcessed"].as_u64() >= Some(1) && r["status"] == "success")
        .expect("the run that took the record");
    assert!(
        time(&processed["endTime"]) >= visible,
        "{processed} vs {visible}"
    );

    // error_while_flowing: the other index's runs fail while its records arrive.
    let t = e
        .until(
            "a failing run while the truth is healthy",
            Duration::from_secs(10),
            async || {
                let t = e.truth("status/search_error").await;
                (t["claims"]["state"] == "error" && t["truth"]["state"] == "healthy").then_some(t)
            },
        )
        .await;
    assert_eq!(t["lying"], "error_while_flowing");
    assert_eq!(t["truth"]["replication"], "flowing");
    let (_, doc) = e
        .get(
            "/search/srch/indexers/accounts_err-indexer/status?api-version=2024-07-01",
            Some(("api-key", "admin-key")),
        )
        .await;
    let failed = doc["executionHistory"]
        .as_array()
        .and_then(|h| h.iter().find(|r| r["status"] == "transientFailure"))
        .unwrap_or_else(|| panic!("no failed run: {doc}"));
    assert!(failed["errorMessage"].is_string());
    assert!(
        doc["executionHistory"]
            .as_array()
            .is_some_and(|h| h.iter().all(|r| r["status"] != "success")),
        "every run claims a failure: {doc}"
    );
    e.served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elasticsearch_counts_the_refreshes_that_made_something_searchable() {
    let e = Estate::start().await;
    // elastic:pw
    let auth = Some(("authorization", "Basic ZWxhc3RpYzpwdw=="));
    let (status, _) = e
        .get("/es/logs/accounts/_stats/refresh,indexing", None)
        .await;
    assert_eq!(status, 401);
    let (status, before) = e
        .get("/es/logs/accounts/_stats/refresh,indexing", auth)
        .await;
    assert_eq!(status, 200, "{before}");
    assert_eq!(keys(&before), ["_all", "_shards", "indices"]);
    assert_eq!(
        keys(&before["_all"]["primaries"]["refresh"]),
        [
            "external_total",
            "external_total_time_in_millis",
            "listeners",
            "total",
            "total_time_in_millis"
        ]
    );
    assert!(before["_all"]["total"]["indexing"]["index_current"].is_u64());
    assert_eq!(
        before["indices"]["accounts"]["primaries"],
        before["_all"]["primaries"]
    );
    let count = |v: &Value| {
        v["_all"]["primaries"]["refresh"]["external_total"]
            .as_u64()
            .expect("a count")
    };
    let start = count(&before);
    e.write("ES-1").await;
    let searchable = time(&e.truth("es/ES-1").await["searchable_at"]);
    let after = e
        .until(
            "a refresh after the indexing",
            Duration::from_secs(5),
            async || {
                if Utc::now() < searchable + chrono::Duration::milliseconds(50) {
                    return None;
                }
                Some(
                    e.get("/es/logs/accounts/_stats/refresh,indexing", auth)
                        .await
                        .1,
                )
            },
        )
        .await;
    assert_eq!(
        count(&after),
        start + 1,
        "one refresh published the document"
    );
    assert_eq!(after["_all"]["primaries"]["indexing"]["index_total"], 1);
    let (_, only) = e.get("/es/logs/accounts/_stats/refresh", auth).await;
    assert_eq!(keys(&only["_all"]["primaries"]), ["refresh"]);
    let (status, _) = e.get("/es/logs/accounts/_stats/nosuch", auth).await;
    assert_eq!(status, 400);

    // stale_while_flowing: the frozen index's counter stays where it was when the lie began.
    let t = e.truth("status/es_stale").await;
    assert_eq!(t["lying"], "stale_while_flowing", "{t}");
    assert_eq!(t["claims"]["counter"], 0);
    assert_eq!(t["truth"]["counter"], 1);
    e.served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dual_write_maps_show_their_status() {
    let e = Estate::start().await;
    let bearer = format!("Bearer {}", e.fin);
    let auth = Some(("authorization", bearer.as_str()));
    let (status, _) = e
        .get("/fno/fin/data/DualWriteProjectConfigurations", None)
        .await;
    assert_eq!(status, 401);
    let (status, all) = e
        .get(
            "/fno/fin/data/DualWriteProjectConfigurations?cross-company=true",
            auth,
        )
        .await;
    assert_eq!(status, 200, "{all}");
    assert_eq!(all["value"].as_array().map(Vec::len), Some(3));
    let (_, one) = e
        .get(
            "/fno/fin/data/DualWriteProjectConfigurations?$filter=InternalEntityName eq 'Customers V3' and ExternalEntityName eq 'accounts'",
            auth,
        )
        .await;
    let row = &one["value"][0];
    assert_eq!(one["value"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        keys(row),
        [
            "EnableFailureReconciliation",
            "ExternalEntityName",
            "ExternalEnvironmentUrl",
            "InternalEntityName",
            "IsDebugMode",
            "IsDelete",
            "ProjectName",
            "QueryFilterExpression",
            "Status",
        ]
    );
    assert_eq!(row["ProjectName"], "fno");
    assert_eq!(row["Status"], 1, "running");
    assert_eq!(row["QueryFilterExpression"], "accountnumber ne 'skip'");
    let (_, paused) = e
        .get("/fno/fin/data/DualWriteProjectConfigurations?$filter=ProjectName eq 'vendors'&$select=Status", auth)
        .await;
    assert_eq!(paused["value"], json!([{"Status": 2}]));
    let (_, lied) = e
        .get(
            "/fno/fin/data/DualWriteProjectConfigurations?$filter=InternalEntityName eq 'Contacts (dual-write)'",
            auth,
        )
        .await;
    assert_eq!(
        lied["value"][0]["Status"], 1,
        "claims running while stalled"
    );
    let t = e.truth("status/contacts").await;
    assert_eq!(t["truth"]["surface"]["Status"], 3);
    assert_eq!(t["truth"]["replication"], "stalled");
    assert_eq!(t["lying"], "healthy_while_stuck");
    let (status, _) = e.get("/_truth/status/nosuch", None).await;
    assert_eq!(status, 404);
    let list = e.truth("status").await;
    assert!(
        list["replicas"].as_array().is_some_and(|l| l.len() == 13),
        "{list}"
    );
    e.served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dataverse_search_finds_a_record_after_its_lag_and_its_status_holds_the_truth() {
    let e = Estate::start().await;
    // searchstatus: the documented shape, one entry per indexed table.
    let status = e.crm_get("searchstatus").await;
    assert!(
        status["@odata.context"]
            .as_str()
            .is_some_and(|c| c.ends_with("$metadata#Microsoft.Dynamics.CRM.searchstatusResponse")),
        "{status}"
    );
    let inner = string_wrapped(&status);
    let value = &inner["value"];
    assert_eq!(
        keys(value),
        [
            "cmkstatus",
            "entitystatusresults",
            "lockboxstatus",
            "manytomanyrelationshipsyncstatus",
            "status"
        ]
    );
    assert_eq!(value["status"], "provisioned");
    let entry = &value["entitystatusresults"][0];
    assert_eq!(
        value["entitystatusresults"].as_array().map(Vec::len),
        Some(1)
    );
    assert_eq!(
        keys(entry),
        [
            "entitylogicalname",
            "entitystatus",
            "lastdatasynctimestamp",
            "lastprincipalobjectaccesssynctimestamp",
            "objecttypecode",
            "primarynamefield",
            "searchableindexedfieldinfomap"
        ]
    );
    assert_eq!(
        (
            &entry["entitylogicalname"],
            &entry["objecttypecode"],
            &entry["primarynamefield"],
            &entry["entitystatus"]
        ),
        (
            &json!("account"),
            &json!(1),
            &json!("name"),
            &json!("EntitySyncComplete")
        )
    );
    assert_eq!(
        keys(&entry["searchableindexedfieldinfomap"]),
        [
            "accountid",
            "accountnumber",
            "createdon",
            "modifiedon",
            "name",
            "versionnumber"
        ]
    );
    let (_, services) = e.get("/", None).await;
    let indexed = |env: &str| {
        services["dataverse"]
            .as_array()
            .and_then(|l| l.iter().find(|d| d["env"] == env))
            .map(|d| d["search_indexed"].clone())
    };
    assert_eq!(indexed("crm"), Some(json!(["account"])), "{services}");
    assert_eq!(indexed("bare"), Some(json!([])), "{services}");
    // Nothing findable yet: the initial sync's version, the environment's first.
    assert!(
        entry["lastdatasynctimestamp"]
            .as_str()
            .is_some_and(|t| t.starts_with("1000000!")),
        "{entry}"
    );

    // A record is not findable until its lag has passed, then by its exact key.
    let version = e.write("DVS-1").await;
    let query = json!({
        "search": "\"DVS-1\"",
        "entities": "[{\"Name\":\"account\",\"SelectColumns\":[\"name\",\"accountnumber\"],\"SearchColumns\":[\"name\"]}]",
        "top": 1,
        "count": true,
    });
    let bearer = e.crm.clone();
    let mut last_miss = None;
    let (answered, hit) = e
        .until(
            "the record to be findable",
            Duration::from_secs(5),
            async || {
                let sent = Utc::now();
                let (s, r) = e.search("crm", &bearer, &query).await;
                assert_eq!(s, 200, "{r}");
                let inner = &r["response"];
                assert_eq!(
                    keys(inner),
                    ["Count", "Error", "Facets", "QueryContext", "Value"]
                );
                assert_eq!(inner["Error"], Value::Null);
                match inner["Value"].as_array().map(Vec::len) {
                    Some(0) => {
                        assert_eq!(inner["Count"], 0);
                        last_miss = Some(sent);
                        None
                    }
                    _ => Some((Utc::now(), inner.clone())),
                }
            },
        )
        .await;
    let truth = e.truth("dv_search/DVS-1").await;
    let visible = time(&truth["visible_at"]);
    let slack = chrono::Duration::milliseconds(5);
    assert!(
        last_miss.is_some_and(|m| m < visible + slack),
        "missed only before it was findable"
    );
    assert!(answered + slack >= visible, "found only once findable");
    assert_eq!(hit["Count"], 1);
    let doc = &hit["Value"][0];
    assert_eq!(
        keys(doc),
        [
            "Attributes",
            "EntityName",
            "Highlights",
            "Id",
            "ObjectTypeCode",
            "Score"
        ]
    );
    assert_eq!(doc["Id"], truth["record_id"]);
    assert_eq!(doc["EntityName"], "account");
    assert_eq!(
        doc["Attributes"],
        json!({"@search.objecttypecode": 1, "name": "DVS-1", "accountnumber": "DVS-1"})
    );
    assert_eq!(
        doc["Highlights"],
        json!({"name": ["{crmhit}DVS-1{/crmhit}"]})
    );
    // Without entities, the primary name is searched and returned; without count, -1.
    let (_, r) = e.search("crm", &bearer, &json!({"search": "dvs"})).await;
    assert_eq!(r["response"]["Count"], -1);
    assert_eq!(
        r["response"]["Value"][0]["Attributes"],
        json!({"@search.objecttypecode": 1, "name": "DVS-1"})
    );
    // Another key shares words, not the phrase.
    let other = json!({"search": "\"DVS-12\"", "count": true});
    assert_eq!(
        e.search("crm", &bearer, &other).await.1["response"]["Count"],
        0
    );

    // The status's watermark is the record's version, its time when it became findable.
    let status = string_wrapped(&e.crm_get("searchstatus").await);
    let stamp = format!("{version}!{}", visible.format("%m/%d/%Y %H:%M:%S"));
    assert_eq!(
        status["value"]["entitystatusresults"][0]["lastdatasynctimestamp"],
        stamp
    );
    let t = e.truth("status/dv_search").await;
    assert_eq!(t["surface"], "dataverse_search");
    assert_eq!(t["lying"], Value::Null);
    assert_eq!(t["claims"]["watermark"], version);
    assert_eq!(t["claims"]["surface"]["lastdatasynctimestamp"], stamp);
    assert_eq!(t["truth"]["replication"], "flowing");

    // Bad requests are the Web API's errors; what the index lacks, the search's own.
    for (body, code) in [
        (json!({"search": ""}), 400),
        (json!({"search": "x".repeat(101)}), 400),
        (json!({"search": "x", "top": 101}), 400),
        (json!({"search": "x", "nope": 1}), 400),
        (
            json!({"search": "x", "entities": [{"Name": "account"}]}),
            400,
        ),
        (
            json!({"search": "x", "entities": "[{\"Name\":\"account\",\"Columns\":[]}]"}),
            400,
        ),
        (json!({"top": 1}), 400),
    ] {
        let (s, r) = e.search("crm", &bearer, &body).await;
        assert_eq!(s, code, "{body}: {r}");
        assert!(r["error"]["message"].is_string(), "{body}: {r}");
    }
    for (entities, says) in [
        ("[{\"Name\":\"contact\"}]", "contact"),
        (
            "[{\"Name\":\"account\",\"SearchColumns\":[\"nosuch\"]}]",
            "nosuch",
        ),
    ] {
        let (s, r) = e
            .search(
                "crm",
                &bearer,
                &json!({"search": "x", "entities": entities}),
            )
            .await;
        assert_eq!(s, 200, "{r}");
        let message = r["response"]["Error"]["message"]
            .as_str()
            .unwrap_or_default();
        assert!(message.contains(says), "{entities}: {r}");
        assert_eq!(r["response"]["Value"], json!([]));
    }
    let (s, _) = e
        .get(
            "/crm/api/data/v9.2/searchquery",
            Some(("authorization", &format!("Bearer {bearer}"))),
        )
        .await;
    assert_eq!(s, 405, "an action");
    let (s, _) = e.search("crm", "not-a-token", &query).await;
    assert_eq!(s, 401);

    // An environment without an index is not provisioned, as documented.
    let bare = token(
        &e.http,
        &e.served.base,
        CLIENT,
        SECRET,
        "https://bare.crm.dynamics.com",
    )
    .await;
    let (s, v) = e
        .get(
            "/bare/api/data/v9.2/searchstatus",
            Some(("authorization", &format!("Bearer {bare}"))),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        string_wrapped(&v),
        json!({"value": {"status": "notprovisioned", "lockboxstatus": "Unknown"}})
    );
    let (s, _) = e.search("bare", &bare, &query).await;
    assert_eq!(s, 400, "search is not provisioned");
    e.served.stop().await;
}
