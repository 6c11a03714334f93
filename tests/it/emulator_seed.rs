//! Seeded rows with exact drift, over real HTTP: every API pages through a seeded table (or a
//! replica's copy of it) with small pages, and what the pages show matches the drift the
//! scenario asks for, the formulas of `emulator::seed`, and `/_truth/_drift/{replica}`.

use crate::common::entra;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use lagwatch_emulator::seed::row_id;
use lagwatch_emulator::{Emulator, Scenario};
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

const ROWS: u64 = 2500;

const SCENARIO: &str = r#"
credentials:
  - { tenant: contoso, client_id: app-1, client_secret: s3cret }
dataverse:
  crm:
    tables:
      accounts:
        id: accountid
        columns: { name: string, accountnumber: string, customertypecode: int, description: string }
        seed: { rows: 2500, values: { customertypecode: 3 }, deleted: 5, in_flight: 4 }
  crm2:
    tables:
      accounts:
        id: accountid
        columns: { name: string, accountnumber: string, customertypecode: int, description: string }
fno:
  fin: { default_company: usmf }
search:
  srch: { api_keys: [k1] }
elasticsearch:
  logs: {}
replicas:
  crm2:
    source: crm/accounts
    target: { kind: dataverse, env: crm2, table: accounts }
    lag: { distribution: fixed, value: 10ms }
    drift: { missing: 3, stale: 2, extra: 1, changed: 2 }
  fno:
    source: crm/accounts
    target: { kind: fno, env: fin, entity: CustomersV3, company: usmf }
    key: accountnumber
    map: { accountnumber: CustomerAccount, name: OrganizationName, description: Description }
    transform: { OrganizationName: uppercase }
    lag: { distribution: fixed, value: 10ms }
    drift: { missing: 7, stale: 5, extra: 2, changed: 3 }
  fno_rt:
    source: crm/accounts
    target: { kind: fno, env: fin, entity: CustomersV3, company: usrt }
    key: accountnumber
    filter: endswith(accountnumber,'0')
    map: { accountnumber: CustomerAccount, name: OrganizationName, description: Description }
    lag: { distribution: fixed, value: 10ms }
    drift: { missing: 40, stale: 30 }
  search:
    source: crm/accounts
    target: { kind: search, service: srch, index: accounts }
    key: accountnumber
    lag: { distribution: fixed, value: 10ms }
    drift: { missing: 11, stale: 4, extra: 5, changed: 6 }
  es:
    source: crm/accounts
    target: { kind: elasticsearch, cluster: logs, index: accounts }
    key: accountnumber
    map: { accountnumber: accountnumber, name: name, description: description }
    lag: { distribution: fixed, value: 10ms }
    drift: { missing: 2, stale: 9, extra: 3, changed: 1 }
"#;

struct Server {
    base: String,
    http: reqwest::Client,
    _emu: Arc<Emulator>,
    stop: CancellationToken,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn start(yaml: &str) -> Server {
    let scenario = Scenario::from_yaml(yaml).unwrap_or_else(|e| panic!("{e}"));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let emu = Emulator::new(scenario);
    let stop = CancellationToken::new();
    let (e, s) = (emu.clone(), stop.clone());
    tokio::spawn(async move { e.serve(listener, s).await });
    Server {
        base: format!("http://{addr}"),
        http: reqwest::Client::new(),
        _emu: emu,
        stop,
    }
}

impl Server {
    async fn token(&self, resource: &str) -> String {
        entra::token(&self.http, &self.base, "app-1", "s3cret", resource).await
    }

    async fn json(&self, rb: reqwest::RequestBuilder) -> (u16, Value) {
        let r = rb.send().await.expect("request");
        let status = r.status().as_u16();
        let text = r.text().await.expect("body");
        let v = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
        };
        (status, v)
    }

    /// Every row of an OData collection, following `@odata.nextLink` with `Prefer:
    /// odata.maxpagesize=page`: the rows, the first page's `@odata.count`, the page count.
    async fn odata_all(
        &self,
        url: &str,
        bearer: &str,
        page: usize,
    ) -> (Vec<Map<String, Value>>, Option<u64>, usize) {
        let mut next = Some(url.to_string());
        let mut rows = Vec::new();
        let mut count = None;
        let mut pages = 0;
        while let Some(u) = next.take() {
            let (status, body) = self
                .json(
                    self.http
                        .get(&u)
                        .bearer_auth(bearer)
                        .header("Prefer", format!("odata.maxpagesize={page}")),
                )
                .await;
            assert_eq!(status, 200, "{u}: {body}");
            if pages == 0 {
                count = body["@odata.count"].as_u64();
            }
            pages += 1;
            let value = body["value"].as_array().expect("value");
            assert!(
                value.len() <= page,
                "{} rows on a page of {page}",
                value.len()
            );
            assert!(!value.is_empty(), "an empty page at {u}");
            rows.extend(value.iter().filter_map(|v| v.as_object().cloned()));
            next = body["@odata.nextLink"].as_str().map(str::to_string);
        }
        (rows, count, pages)
    }

    async fn truth(&self, replica: &str) -> Truth {
        let (status, v) = self
            .json(
                self.http
                    .get(format!("{}/_truth/_drift/{replica}", self.base)),
            )
            .await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["truncated"], json!(false));
        let set = |k: &str| -> BTreeSet<u64> {
            let keys = v["keys"][k].as_array().expect("keys");
            assert_eq!(
                keys.len() as u64,
                v["counts"][k].as_u64().expect("count"),
                "{k}"
            );
            // Keys are the replica's key column: an account number, or the row id.
            let by_id: BTreeMap<String, u64> = (0..ROWS)
                .map(|i| (row_id("crm", "accounts", i).to_string(), i))
                .collect();
            keys.iter()
                .map(|k| k.as_str().expect("key text"))
                .map(|k| {
                    index_of(k)
                        .or_else(|| by_id.get(k).copied())
                        .unwrap_or_else(|| panic!("{k} is not a seeded key"))
                })
                .collect()
        };
        Truth {
            missing: set("missing"),
            stale: set("stale"),
            extra: set("extra"),
            changed: set("changed"),
            in_flight: set("in_flight"),
            deleted: set("deleted"),
            replica_rows: v["rows"]["replica"].as_u64().expect("rows"),
        }
    }
}

#[derive(Debug)]
struct Truth {
    missing: BTreeSet<u64>,
    stale: BTreeSet<u64>,
    extra: BTreeSet<u64>,
    changed: BTreeSet<u64>,
    in_flight: BTreeSet<u64>,
    deleted: BTreeSet<u64>,
    replica_rows: u64,
}

impl Truth {
    /// Rows the replica holds: every row but the deleted (not extra) and the missing ones.
    fn held(&self, of: impl Fn(u64) -> bool) -> BTreeSet<u64> {
        (0..ROWS)
            .filter(|i| of(*i) && !self.deleted.contains(i) && !self.missing.contains(i))
            .collect()
    }

    /// What the source deleted: the extra rows and the deleted ones.
    fn source_deleted(&self) -> BTreeSet<u64> {
        self.deleted.union(&self.extra).copied().collect()
    }
}

/// The row index of a generated key (`accountnumber-00000042`, any case, also as a stale
/// copy shows it when the key column is another).
fn index_of(key: &str) -> Option<u64> {
    let key = key.strip_suffix(" (previous)").unwrap_or(key);
    let (prefix, digits) = key.rsplit_once('-')?;
    if !prefix.eq_ignore_ascii_case("accountnumber") || digits.len() != 8 {
        return None;
    }
    digits.parse().ok()
}

fn text<'a>(row: &'a Map<String, Value>, field: &str) -> &'a str {
    row.get(field)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no text {field} in {row:?}"))
}

fn time(row: &Map<String, Value>, field: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text(row, field))
        .unwrap_or_else(|e| panic!("{field}: {e}"))
        .with_timezone(&Utc)
}

fn version(row: &Map<String, Value>) -> u64 {
    row["versionnumber"].as_u64().expect("versionnumber")
}

type Row = Map<String, Value>;

/// Rows by seeded index; panics on a repeated key. Rows whose key is not generated (live
/// sentinels) are returned apart.
fn by_index(rows: Vec<Map<String, Value>>, key: &str) -> (BTreeMap<u64, Row>, Vec<Row>) {
    let mut seeded = BTreeMap::new();
    let mut live = Vec::new();
    for row in rows {
        match index_of(text(&row, key)) {
            Some(i) => {
                let k = text(&row, key).to_string();
                assert!(seeded.insert(i, row).is_none(), "{k} listed twice");
            }
            None => live.push(row),
        }
    }
    (seeded, live)
}

/// What a text column shows for the fate of row `i` in a replica.
fn expect_text(t: &Truth, col: &str, i: u64) -> String {
    let plain = format!("{col}-{i:08}");
    if t.stale.contains(&i) {
        format!("{plain} (previous)")
    } else if t.changed.contains(&i) {
        plain.to_uppercase()
    } else {
        plain
    }
}

const CRM: &str = "https://crm.crm.dynamics.com";
const CRM2: &str = "https://crm2.crm.dynamics.com";
const FIN: &str = "https://fin.operations.dynamics.com";

/// Writes a live sentinel into crm/accounts and waits until its replication lag passed.
async fn write_sentinel(srv: &Server, bearer: &str) {
    let r = srv
        .http
        .post(format!("{}/crm/api/data/v9.2/accounts", srv.base))
        .bearer_auth(bearer)
        .json(&json!({"accountnumber": "SENT-1", "name": "sentinel", "customertypecode": 3}))
        .send()
        .await
        .expect("create");
    assert_eq!(r.status(), 204);
    tokio::time::sleep(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn the_dataverse_source_pages_every_seeded_row_once_then_the_stored_ones() {
    let srv = start(SCENARIO).await;
    let bearer = srv.token(CRM).await;
    write_sentinel(&srv, &bearer).await;
    let truth = srv.truth("crm2").await;
    let deleted = truth.source_deleted();
    assert_eq!(deleted.len(), 5);
    assert_eq!(truth.in_flight.len(), 4);

    let url = format!(
        "{}/crm/api/data/v9.2/accounts?$select=accountid,accountnumber,description,customertypecode,createdon,modifiedon,versionnumber&$count=true",
        srv.base
    );
    let (rows, count, pages) = srv.odata_all(&url, &bearer, 300).await;
    let now = Utc::now();
    assert_eq!(
        count,
        Some(ROWS - 5 + 1),
        "seeded rows but the deleted, and the sentinel"
    );
    assert_eq!(pages, (ROWS - 5 + 1).div_ceil(300) as usize);
    let last = rows.last().expect("rows");
    assert_eq!(
        text(last, "accountnumber"),
        "SENT-1",
        "stored rows come after the seeded ones"
    );
    let (seeded, live) = by_index(rows, "accountnumber");
    assert_eq!(live.len(), 1);
    let want: BTreeSet<u64> = (0..ROWS).filter(|i| !deleted.contains(i)).collect();
    assert_eq!(seeded.keys().copied().collect::<BTreeSet<_>>(), want);
    let ids: BTreeSet<&str> = seeded.values().map(|r| text(r, "accountid")).collect();
    assert_eq!(ids.len(), seeded.len(), "ids are distinct");
    let mut previous: Option<DateTime<Utc>> = None;
    for (&i, row) in &seeded {
        assert_eq!(row["customertypecode"], json!(3), "fixed by seed.values");
        assert_eq!(text(row, "description"), format!("description-{i:08}"));
        let created = time(row, "createdon");
        assert!(created < now - chrono::Duration::seconds(3600));
        if let Some(p) = previous {
            assert!(created > p, "createdon grows with the index");
        }
        previous = Some(created);
        if truth.in_flight.contains(&i) {
            assert_eq!(version(row), 1_000_000 + 2 * ROWS + i);
            let age = now - time(row, "modifiedon");
            assert!(
                age.num_seconds().abs() <= 5,
                "in flight: modified just now ({age})"
            );
        } else {
            assert_eq!(version(row), 1_000_000 + 2 * i + 1);
            assert_eq!(
                time(row, "modifiedon") - created,
                chrono::Duration::seconds(1)
            );
        }
    }

    // $top is one unpaged answer; $filter skips what it rejects; $orderby is refused.
    let base = format!("{}/crm/api/data/v9.2/accounts", srv.base);
    let (status, body) = srv
        .json(
            srv.http
                .get(format!("{base}?$top=7&$select=accountnumber"))
                .bearer_auth(&bearer),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["value"].as_array().map(Vec::len), Some(7));
    assert!(body.get("@odata.nextLink").is_none());
    let kept = (0..ROWS)
        .find(|i| !deleted.contains(i) && i % 100 == 42)
        .expect("a row");
    let (status, body) = srv
        .json(
            srv.http
                .get(&base)
                .query(&[
                    (
                        "$filter",
                        format!("accountnumber eq 'ACCOUNTNUMBER-{kept:08}'"),
                    ),
                    ("$count", "true".to_string()),
                ])
                .bearer_auth(&bearer),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["@odata.count"],
        json!(1),
        "case-insensitive, as Dataverse"
    );
    let id = body["value"][0]["accountid"]
        .as_str()
        .expect("id")
        .to_string();
    let (status, body) = srv
        .json(
            srv.http
                .get(format!("{base}?$orderby=name"))
                .bearer_auth(&bearer),
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("$orderby"))
    );

    // A seeded row by id; it cannot be written.
    let (status, body) = srv
        .json(
            srv.http
                .get(format!("{base}({id})?$select=accountnumber"))
                .bearer_auth(&bearer),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["accountnumber"],
        json!(format!("accountnumber-{kept:08}"))
    );
    let r = srv
        .http
        .delete(format!("{base}({id})"))
        .bearer_auth(&bearer)
        .send()
        .await
        .expect("delete");
    assert_eq!(r.status(), 405);
}

#[tokio::test]
async fn a_dataverse_replica_shows_its_drifted_copy_then_the_live_rows() {
    let srv = start(SCENARIO).await;
    write_sentinel(&srv, &srv.token(CRM).await).await;
    let bearer = srv.token(CRM2).await;
    let truth = srv.truth("crm2").await;
    assert_eq!(
        (
            truth.missing.len(),
            truth.stale.len(),
            truth.extra.len(),
            truth.changed.len()
        ),
        (3, 2, 1, 2)
    );
    assert_eq!((truth.deleted.len(), truth.in_flight.len()), (4, 4));
    let url = format!("{}/crm2/api/data/v9.2/accounts?$count=true", srv.base);
    let (rows, count, _) = srv.odata_all(&url, &bearer, 250).await;
    let held = truth.held(|_| true);
    assert_eq!(count, Some(held.len() as u64 + 1));
    assert_eq!(truth.replica_rows, held.len() as u64);
    assert_eq!(
        rows.last().map(|r| text(r, "accountnumber")),
        Some("SENT-1"),
        "live replicated rows after the seeded copies"
    );
    let (seeded, _) = by_index(rows, "accountnumber");
    assert_eq!(seeded.keys().copied().collect::<BTreeSet<_>>(), held);
    for i in &truth.extra {
        assert!(
            seeded.contains_key(i),
            "extra row {i} is still in the replica"
        );
    }
    for (&i, row) in &seeded {
        assert_eq!(
            text(row, "description"),
            expect_text(&truth, "description", i)
        );
        assert_eq!(text(row, "name"), expect_text(&truth, "name", i));
        // The key of this replica is the id: the account number drifts like any text.
        assert_eq!(
            text(row, "accountnumber"),
            expect_text(&truth, "accountnumber", i)
        );
        let created = time(row, "createdon");
        let modified = time(row, "modifiedon");
        if truth.stale.contains(&i) {
            assert_eq!(version(row), 1_000_000 + 2 * i, "the version before");
            assert_eq!(modified, created);
        } else {
            assert_eq!(version(row), 1_000_000 + 2 * i + 1, "row {i}");
            assert_eq!(modified - created, chrono::Duration::seconds(1));
        }
    }
}

#[tokio::test]
async fn fno_pages_the_mapped_copies_per_company() {
    let srv = start(SCENARIO).await;
    write_sentinel(&srv, &srv.token(CRM).await).await;
    let bearer = srv.token(FIN).await;
    let usmf = srv.truth("fno").await;
    let usrt = srv.truth("fno_rt").await;
    // The replica's filter passes every tenth row; drift picked among all rows, so only the
    // drifted rows that pass it are in the truth.
    let tenth = |i: u64| i.is_multiple_of(10);
    assert!(usrt.missing.len() < 40 && usrt.stale.len() < 30, "{usrt:?}");
    assert!(!usrt.missing.is_empty() && !usrt.stale.is_empty());
    assert!(usrt.missing.iter().chain(&usrt.stale).all(|i| tenth(*i)));

    let entity = format!("{}/fno/fin/data/CustomersV3", srv.base);
    let (rows, count, pages) = srv
        .odata_all(
            &format!("{entity}?cross-company=true&$count=true"),
            &bearer,
            400,
        )
        .await;
    let (mf_held, rt_held) = (usmf.held(|_| true), usrt.held(tenth));
    assert_eq!(count, Some((mf_held.len() + rt_held.len() + 1) as u64));
    assert_eq!(usrt.replica_rows, rt_held.len() as u64);
    assert_eq!(pages, count.map_or(0, |c| c.div_ceil(400)) as usize);
    let mut per_company: BTreeMap<String, Vec<Map<String, Value>>> = BTreeMap::new();
    for row in rows {
        per_company
            .entry(text(&row, "dataAreaId").to_string())
            .or_default()
            .push(row);
    }
    for (company, truth, held) in [("usmf", &usmf, &mf_held), ("usrt", &usrt, &rt_held)] {
        let rows = per_company.remove(company).unwrap_or_default();
        let (seeded, live) = by_index(rows, "CustomerAccount");
        assert_eq!(
            seeded.keys().copied().collect::<BTreeSet<_>>(),
            *held,
            "{company}"
        );
        assert_eq!(live.len(), usize::from(company == "usmf"), "the sentinel");
        for (&i, row) in &seeded {
            let description = expect_text(truth, "description", i);
            assert_eq!(text(row, "Description"), description);
            let name = expect_text(truth, "name", i);
            let name = if company == "usmf" {
                name.to_uppercase()
            } else {
                name
            };
            assert_eq!(text(row, "OrganizationName"), name, "{company} {i}");
            assert!(row["@odata.etag"].as_str().is_some());
        }
    }
    // Without cross-company only the caller's company; $top pages too; keys find seeded rows.
    let (_, count, _) = srv
        .odata_all(
            &format!("{entity}?$count=true&$select=CustomerAccount"),
            &bearer,
            10_000,
        )
        .await;
    assert_eq!(count, Some(mf_held.len() as u64 + 1));
    let (rows, _, pages) = srv
        .odata_all(
            &format!("{entity}?$top=950&$select=CustomerAccount"),
            &bearer,
            400,
        )
        .await;
    assert_eq!((rows.len(), pages), (950, 3));
    let i = *rt_held.iter().next().expect("a usrt row");
    let (status, row) = srv
        .json(
            srv.http
                .get(format!(
                    "{entity}(dataAreaId='usrt',CustomerAccount='ACCOUNTNUMBER-{i:08}')"
                ))
                .bearer_auth(&bearer),
        )
        .await;
    assert_eq!(status, 200, "{row}");
    assert_eq!(
        row["CustomerAccount"],
        json!(format!("accountnumber-{i:08}"))
    );
    let gone = *usmf.missing.iter().next().expect("a missing row");
    let (status, _) = srv
        .json(
            srv.http
                .get(format!(
                    "{entity}(dataAreaId='usmf',CustomerAccount='accountnumber-{gone:08}')"
                ))
                .bearer_auth(&bearer),
        )
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn azure_search_lists_the_copies_by_keyset_paging() {
    let srv = start(SCENARIO).await;
    write_sentinel(&srv, &srv.token(CRM).await).await;
    let truth = srv.truth("search").await;
    let held = truth.held(|_| true);
    let docs = format!("{}/search/srch/indexes/accounts/docs", srv.base);
    // GET with $filter gt the last key, POST alike: both list every document once, in order.
    for post in [false, true] {
        let mut last: Option<String> = None;
        let mut keys: Vec<String> = Vec::new();
        let mut rows = Vec::new();
        let mut pages = 0;
        loop {
            let filter = last.as_ref().map(|k| format!("accountnumber gt '{k}'"));
            let (status, body) = if post {
                let mut b = json!({"search": "*", "orderby": "accountnumber asc", "top": 500,
                    "select": "accountnumber,name,description", "count": pages == 0});
                if let Some(f) = &filter {
                    b["filter"] = json!(f);
                }
                srv.json(
                    srv.http
                        .post(format!("{docs}/search?api-version=2024-07-01"))
                        .header("api-key", "k1")
                        .json(&b),
                )
                .await
            } else {
                let mut q = vec![
                    ("api-version", "2024-07-01".to_string()),
                    ("search", "*".into()),
                    ("$orderby", "accountnumber asc".into()),
                    ("$top", "500".into()),
                    ("$select", "accountnumber,name,description".into()),
                    ("$count", (pages == 0).to_string()),
                ];
                if let Some(f) = filter {
                    q.push(("$filter", f));
                }
                srv.json(srv.http.get(&docs).query(&q).header("api-key", "k1"))
                    .await
            };
            assert_eq!(status, 200, "{body}");
            if pages == 0 {
                assert_eq!(body["@odata.count"], json!(held.len() + 1));
            }
            pages += 1;
            let value = body["value"].as_array().expect("value");
            if value.is_empty() {
                break;
            }
            for d in value {
                let d = d.as_object().expect("doc").clone();
                assert!(d.contains_key("@search.score"));
                assert!(!d.contains_key("accountid"), "$select");
                keys.push(text(&d, "accountnumber").to_string());
                rows.push(d);
            }
            last = keys.last().cloned();
        }
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted, "key order");
        assert_eq!(
            keys.first().map(String::as_str),
            Some("SENT-1"),
            "live rows merged in"
        );
        let (seeded, _) = by_index(rows, "accountnumber");
        assert_eq!(seeded.keys().copied().collect::<BTreeSet<_>>(), held);
        for (&i, d) in &seeded {
            assert_eq!(
                text(d, "description"),
                expect_text(&truth, "description", i)
            );
        }
    }
    // A document by key, a missing one, the count, and $top above 1000.
    let i = *held.iter().next().expect("held");
    let r = srv
        .http
        .get(format!(
            "{docs}/accountnumber-{i:08}?api-version=2024-07-01"
        ))
        .header("api-key", "k1")
        .send()
        .await
        .expect("lookup");
    assert_eq!(r.status(), 200);
    let gone = *truth.missing.iter().next().expect("missing");
    let r = srv
        .http
        .get(format!(
            "{docs}/accountnumber-{gone:08}?api-version=2024-07-01"
        ))
        .header("api-key", "k1")
        .send()
        .await
        .expect("lookup");
    assert_eq!(r.status(), 404);
    let r = srv
        .http
        .get(format!("{docs}/$count?api-version=2024-07-01"))
        .header("api-key", "k1")
        .send()
        .await
        .expect("count");
    assert_eq!(r.text().await.ok(), Some((held.len() + 1).to_string()));
    let (status, body) = srv
        .json(
            srv.http
                .get(&docs)
                .query(&[
                    ("api-version", "2024-07-01"),
                    ("$top", "1500"),
                    ("$select", "accountnumber"),
                ])
                .header("api-key", "k1"),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["value"].as_array().map(Vec::len), Some(1000));
    let next = body["@odata.nextLink"].as_str().expect("a next page");
    assert!(
        next.contains("$skip=1000") && next.contains("$top=500"),
        "{next}"
    );
}

#[tokio::test]
async fn elasticsearch_lists_the_copies_with_search_after() {
    let srv = start(SCENARIO).await;
    write_sentinel(&srv, &srv.token(CRM).await).await;
    tokio::time::sleep(Duration::from_millis(1100)).await; // a refresh for the sentinel
    let truth = srv.truth("es").await;
    let held = truth.held(|_| true);
    let search = format!("{}/es/logs/accounts/_search", srv.base);
    let mut after: Option<Value> = None;
    let mut rows = Vec::new();
    let mut ids = Vec::new();
    loop {
        let mut body = json!({
            "size": 700,
            "query": {"match_all": {}},
            "sort": [{"accountnumber": "asc"}],
            "_source": ["accountnumber", "description"],
            "track_total_hits": true,
        });
        if let Some(a) = &after {
            body["search_after"] = json!([a]);
        }
        let (status, r) = srv.json(srv.http.post(&search).json(&body)).await;
        assert_eq!(status, 200, "{r}");
        assert_eq!(
            r["hits"]["total"],
            json!({"value": held.len() + 1, "relation": "eq"})
        );
        let hits = r["hits"]["hits"].as_array().expect("hits");
        let Some(last) = hits.last() else { break };
        after = Some(last["sort"][0].clone());
        for h in hits {
            let src = h["_source"].as_object().expect("_source").clone();
            assert_eq!(src.len(), 2, "_source filtering: {src:?}");
            assert_eq!(h["_id"].as_str(), Some(text(&src, "accountnumber")));
            ids.push(text(&src, "accountnumber").to_string());
            rows.push(src);
        }
    }
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted);
    assert_eq!(ids.first().map(String::as_str), Some("SENT-1"));
    let (seeded, _) = by_index(rows, "accountnumber");
    assert_eq!(seeded.keys().copied().collect::<BTreeSet<_>>(), held);
    for (&i, d) in &seeded {
        assert_eq!(
            text(d, "description"),
            expect_text(&truth, "description", i)
        );
    }
    // Default total tracking, the result window, and a document by id.
    let (_, r) = srv
        .json(srv.http.post(&search).json(&json!({"size": 1})))
        .await;
    assert_eq!(
        r["hits"]["total"],
        json!({"value": held.len() + 1, "relation": "eq"})
    );
    let (status, _) = srv
        .json(srv.http.post(&search).json(&json!({"size": 10_001})))
        .await;
    assert_eq!(status, 400);
    let i = *truth.stale.iter().next().expect("stale");
    let (status, doc) = srv
        .json(srv.http.get(format!(
            "{}/es/logs/accounts/_doc/accountnumber-{i:08}",
            srv.base
        )))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        doc["_source"]["description"],
        json!(format!("description-{i:08} (previous)"))
    );
}

#[tokio::test]
async fn the_drift_truth_endpoint_answers_counts_and_404s() {
    let srv = start(SCENARIO).await;
    let (status, v) = srv
        .json(srv.http.get(format!("{}/_truth/_drift/search", srv.base)))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        v["counts"],
        json!({"missing": 11, "stale": 4, "extra": 5, "changed": 6, "in_flight": 4, "deleted": 0})
    );
    assert_eq!(v["rows"], json!({"source": ROWS - 5, "replica": ROWS - 11}));
    let (status, _) = srv
        .json(srv.http.get(format!("{}/_truth/_drift/nope", srv.base)))
        .await;
    assert_eq!(status, 404);
    let invalid = SCENARIO.replace("  search:\n    source", "  _drift:\n    source");
    assert!(Scenario::from_yaml(&invalid).is_err(), "_drift is reserved");
}

/// One million seeded rows through the Dataverse API in pages of 5,000: the count, and every
/// key exactly once (a bitset over the index parsed from the key).
#[tokio::test]
#[ignore = "scale check: run with --ignored (about 35 s in a debug build, 2.5 s in release)"]
async fn a_million_seeded_rows_page_through_dataverse() {
    const MILLION: u64 = 1_000_000;
    let yaml = r#"
credentials:
  - { tenant: contoso, client_id: app-1, client_secret: s3cret }
dataverse:
  crm:
    tables:
      accounts:
        id: accountid
        columns: { name: string, accountnumber: string, customertypecode: int }
        seed: { rows: 1000000, deleted: 100, in_flight: 10 }
"#;
    let srv = start(yaml).await;
    let bearer = srv.token(CRM).await;
    let started = Instant::now();
    let mut seen = vec![0u64; MILLION.div_ceil(64) as usize];
    let mut next = Some(format!(
        "{}/crm/api/data/v9.2/accounts?$select=accountid,accountnumber,versionnumber",
        srv.base
    ));
    let (mut rows, mut pages) = (0u64, 0u32);
    while let Some(url) = next.take() {
        let r = srv
            .http
            .get(&url)
            .bearer_auth(&bearer)
            .header("Prefer", "odata.maxpagesize=5000")
            .send()
            .await
            .expect("page");
        assert_eq!(r.status(), 200);
        let body: Value = r.json().await.expect("json");
        pages += 1;
        for row in body["value"].as_array().expect("value") {
            let i = row["accountnumber"]
                .as_str()
                .and_then(index_of)
                .expect("a seeded key");
            let (word, bit) = ((i / 64) as usize, i % 64);
            assert_eq!(seen[word] & (1 << bit), 0, "row {i} twice");
            seen[word] |= 1 << bit;
            rows += 1;
        }
        next = body["@odata.nextLink"].as_str().map(str::to_string);
    }
    eprintln!(
        "{rows} rows in {pages} pages in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(rows, MILLION - 100);
    assert_eq!(pages, (MILLION - 100).div_ceil(5000) as u32);
}
