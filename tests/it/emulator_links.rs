//! The emulator's links (bidirectional dual-write maps with a conflict policy) over real
//! HTTP, driven the way a conflict probe does it: a canary account created in Dataverse and
//! dual-written to F&O, then changed on both sides `spread` apart (Dataverse `PATCH` by id;
//! F&O `$filter` on the key, then `PATCH` by the compound key), then read on both sides until
//! they settle. Each policy's outcome is checked in what each side serves and in
//! `/_truth/links/{link}/{key}`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::common::twin::Served;

const CLIENT: &str = "links-app";
const SECRET: &str = "links-secret";
/// Each direction's lag: longer than the spread, so the two writes cross.
const LAG: &str = "3s";

fn scenario(policy: &str, fin_skew: &str) -> String {
    crate::common::twin::linked_scenario(
        CLIENT,
        SECRET,
        policy,
        fin_skew,
        &format!("{{ distribution: fixed, value: {LAG} }}"),
    )
}

/// A served estate with a token for each side.
struct Estate {
    served: Served,
    http: reqwest::Client,
    crm: String,
    fin: String,
}

/// A canary: its key, its Dataverse id, and the F&O copy's entity key.
struct Canary {
    key: String,
    id: String,
    account: String,
}

impl Estate {
    async fn start(policy: &str, fin_skew: &str) -> Estate {
        let served = Served::start(&scenario(policy, fin_skew), CLIENT, SECRET).await;
        let (http, crm, fin) = served.signed_in(CLIENT, SECRET).await;
        Estate {
            served,
            http,
            crm,
            fin,
        }
    }

    fn crm_url(&self, rest: &str) -> String {
        format!("{}/crm/api/data/v9.2/{rest}", self.served.base)
    }

    fn fin_url(&self, rest: &str) -> String {
        format!("{}/fno/fin/data/{rest}", self.served.base)
    }

    /// Creates the canary in Dataverse and waits for its F&O copy (which the number
    /// sequence gives an account number, the Dataverse row having none).
    async fn canary(&self, key: &str) -> Canary {
        let r = self
            .http
            .post(self.crm_url("accounts"))
            .bearer_auth(&self.crm)
            .json(&json!({"name": key, "description": "v0"}))
            .send()
            .await
            .expect("create");
        assert_eq!(r.status(), 204);
        let entity_id = r.headers()["odata-entityid"]
            .to_str()
            .expect("OData-EntityId")
            .to_string();
        let id = entity_id
            .rsplit_once('(')
            .and_then(|(_, rest)| rest.strip_suffix(')'))
            .expect("an id")
            .to_string();
        let copy = self.wait_for_copy(key).await;
        let account = copy["CustomerAccount"]
            .as_str()
            .filter(|a| a.starts_with("DW-"))
            .unwrap_or_else(|| panic!("a numbered copy: {copy}"))
            .to_string();
        Canary {
            key: key.to_string(),
            id,
            account,
        }
    }

    /// The F&O copy of `key` as the probe finds it.
    async fn fin_copy(&self, key: &str) -> Option<Value> {
        let body: Value = self
            .http
            .get(self.fin_url("CustomersV3"))
            .query(&[
                ("$filter", format!("OrganizationName eq '{key}'").as_str()),
                ("cross-company", "true"),
                (
                    "$select",
                    "dataAreaId,CustomerAccount,OrganizationName,AddressDescription",
                ),
            ])
            .bearer_auth(&self.fin)
            .send()
            .await
            .expect("F&O query")
            .json()
            .await
            .expect("F&O json");
        body["value"].as_array().and_then(|v| v.first()).cloned()
    }

    async fn wait_for_copy(&self, key: &str) -> Value {
        for _ in 0..100 {
            if let Some(c) = self.fin_copy(key).await {
                return c;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no F&O copy of {key}");
    }

    async fn patch_crm(&self, c: &Canary, description: &str) -> (u16, Value) {
        let r = self
            .http
            .patch(self.crm_url(&format!("accounts({})", c.id)))
            .bearer_auth(&self.crm)
            .header("if-match", "*")
            .json(&json!({"description": description}))
            .send()
            .await
            .expect("Dataverse PATCH");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn patch_fin(&self, c: &Canary, description: &str) -> (u16, Value) {
        let r = self
            .http
            .patch(self.fin_url(&format!(
                "CustomersV3(dataAreaId='usmf',CustomerAccount='{}')",
                c.account
            )))
            .bearer_auth(&self.fin)
            .json(&json!({"AddressDescription": description}))
            .send()
            .await
            .expect("F&O PATCH");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// The canary's Dataverse row, read by id.
    async fn crm_row(&self, c: &Canary) -> Value {
        self.http
            .get(self.crm_url(&format!("accounts({})", c.id)))
            .bearer_auth(&self.crm)
            .send()
            .await
            .expect("Dataverse read")
            .json()
            .await
            .expect("Dataverse json")
    }

    /// What each side serves now: (Dataverse description, F&O AddressDescription).
    async fn served(&self, c: &Canary) -> (String, String) {
        let crm = self.crm_row(c).await["description"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let fin = self.fin_copy(&c.key).await.expect("the copy")["AddressDescription"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        (crm, fin)
    }

    async fn truth(&self, key: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}/_truth/links/customers/{key}", self.served.base))
            .send()
            .await
            .expect("truth");
        let status = r.status().as_u16();
        (status, r.json().await.expect("truth json"))
    }

    /// The truth once `writes` writes are known and none is pending.
    async fn settled(&self, key: &str, writes: usize) -> Value {
        for _ in 0..150 {
            let (status, t) = self.truth(key).await;
            assert_eq!(status, 200, "{t}");
            let list = t["writes"].as_array().cloned().unwrap_or_default();
            if list.len() == writes && list.iter().all(|w| w["fate"] != "pending") {
                return t;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{key} did not settle: {}", self.truth(key).await.1);
    }

    /// Changes the canary on both sides: F&O first, then Dataverse `spread` later.
    async fn both(&self, c: &Canary, spread: Duration) {
        assert_eq!(self.patch_fin(c, "fin").await.0, 204);
        tokio::time::sleep(spread).await;
        assert_eq!(self.patch_crm(c, "crm").await.0, 204);
    }
}

fn fates(t: &Value) -> Vec<(String, String)> {
    t["writes"]
        .as_array()
        .unwrap_or_else(|| panic!("{t}"))
        .iter()
        .map(|w| {
            (
                w["side"].as_str().unwrap_or_default().to_string(),
                w["fate"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

fn time(v: &Value) -> DateTime<Utc> {
    v.as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .unwrap_or_else(|| panic!("not a time: {v}"))
        .with_timezone(&Utc)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_writer_wins_without_skew_keeps_the_later_write_on_both_sides() {
    let e = Estate::start("last_writer_wins", "0s").await;
    let c = e.canary("LINK-LWW").await;
    // The copy is addressable by the number it was given, and keeps it.
    let by_key: Value = e
        .http
        .get(e.fin_url(&format!(
            "CustomersV3(dataAreaId='usmf',CustomerAccount='{}')",
            c.account
        )))
        .bearer_auth(&e.fin)
        .send()
        .await
        .expect("by key")
        .json()
        .await
        .expect("json");
    assert_eq!(by_key["OrganizationName"], "LINK-LWW", "{by_key}");
    e.both(&c, Duration::from_secs(1)).await;
    let t = e.settled(&c.key, 3).await;
    assert_eq!(t["policy"], "last_writer_wins");
    assert_eq!(t["agree"], true, "{t}");
    assert_eq!(t["sides"]["crm"]["values"]["description"], "crm", "{t}");
    assert_eq!(
        t["sides"]["fin"]["values"]["AddressDescription"], "crm",
        "{t}"
    );
    assert_eq!(t["sides"]["fin"]["from"], "crm");
    assert_eq!(
        fates(&t),
        pairs(&[("crm", "applied"), ("fin", "dropped"), ("crm", "applied")])
    );
    assert_eq!(t["writes"][1]["conflict"], true, "{t}");
    assert_eq!(e.served(&c).await, ("crm".into(), "crm".into()));
    assert_eq!(
        e.fin_copy(&c.key).await.expect("copy")["CustomerAccount"],
        c.account.as_str()
    );
    e.served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_skewed_clock_lets_the_earlier_write_win_last_writer_wins() {
    let e = Estate::start("last_writer_wins", "4s").await;
    let c = e.canary("LINK-SKEW").await;
    e.both(&c, Duration::from_secs(1)).await;
    let t = e.settled(&c.key, 3).await;
    // F&O wrote first, but its clock is 4s fast: its stamp is the later one.
    assert_eq!(t["agree"], true, "{t}");
    assert_eq!(t["sides"]["crm"]["values"]["description"], "fin", "{t}");
    assert_eq!(t["sides"]["crm"]["from"], "fin");
    assert_eq!(
        fates(&t),
        pairs(&[("crm", "applied"), ("fin", "applied"), ("crm", "dropped")])
    );
    let fin = &t["writes"][1];
    let ahead = time(&fin["stamp"]) - time(&fin["committed_at"]);
    assert_eq!(ahead, chrono::Duration::seconds(4), "{fin}");
    assert!(time(&t["writes"][2]["committed_at"]) > time(&fin["committed_at"]));
    assert_eq!(e.served(&c).await, ("fin".into(), "fin".into()));
    // modifiedon: when Dataverse applied F&O's write, on its own clock (whole seconds).
    let modified = time(&e.crm_row(&c).await["modifiedon"]);
    let applied = time(&t["sides"]["crm"]["applied_at"]);
    assert!(
        (applied - modified).num_milliseconds().abs() < 1000,
        "{modified} {applied}"
    );
    e.served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_wins_keeps_the_source_value_on_both_sides() {
    let e = Estate::start("{ source_wins: crm }", "0s").await;
    let c = e.canary("LINK-SOURCE").await;
    // Dataverse second, yet F&O's write is the one that loses; then the other order.
    e.both(&c, Duration::ZERO).await;
    let t = e.settled(&c.key, 3).await;
    assert_eq!(t["source_wins"], "crm");
    assert_eq!(t["agree"], true, "{t}");
    assert_eq!(t["sides"]["fin"]["values"]["AddressDescription"], "crm");
    assert_eq!(
        fates(&t),
        pairs(&[("crm", "applied"), ("fin", "dropped"), ("crm", "applied")])
    );
    assert_eq!(e.served(&c).await, ("crm".into(), "crm".into()));
    e.served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diverge_leaves_each_side_its_own_value() {
    let e = Estate::start("diverge", "0s").await;
    let c = e.canary("LINK-DIVERGE").await;
    e.both(&c, Duration::ZERO).await;
    let t = e.settled(&c.key, 3).await;
    assert_eq!(t["agree"], false, "{t}");
    assert_eq!(t["sides"]["crm"]["values"]["description"], "crm");
    assert_eq!(t["sides"]["fin"]["values"]["AddressDescription"], "fin");
    assert_eq!(
        fates(&t),
        pairs(&[("crm", "applied"), ("fin", "dropped"), ("crm", "dropped")])
    );
    assert_eq!(e.served(&c).await, ("crm".into(), "fin".into()));
    e.served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reject_refuses_the_second_concurrent_write_on_either_side() {
    let e = Estate::start("reject", "0s").await;
    let c = e.canary("LINK-REJECT").await;
    assert_eq!(e.patch_crm(&c, "crm").await.0, 204);
    let (status, body) = e.patch_fin(&c, "fin").await;
    assert_eq!(status, 400, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with(
            "Write failed for table row of type 'CustomersV3'. Infolog: Error: Dual-write:"
        ),
        "{body}"
    );
    assert_eq!(
        body["error"]["innererror"]["type"],
        "Microsoft.Dynamics.Platform.Integration.Services.OData.AxODataWriteException"
    );
    let t = e.settled(&c.key, 3).await;
    assert_eq!(
        fates(&t),
        pairs(&[("crm", "applied"), ("crm", "applied"), ("fin", "rejected")])
    );
    assert_eq!(t["writes"][2]["delivered_at"], Value::Null);
    assert_eq!(t["agree"], true, "{t}");
    assert_eq!(e.served(&c).await, ("crm".into(), "crm".into()));
    // The other way round: F&O first, then Dataverse is refused.
    assert_eq!(e.patch_fin(&c, "fin2").await.0, 204);
    let (status, body) = e.patch_crm(&c, "crm2").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "0x80040265", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("concurrent transaction in finance and operations apps"),
        "{body}"
    );
    e.settled(&c.key, 5).await;
    assert_eq!(e.served(&c).await, ("fin2".into(), "fin2".into()));
    e.served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn date_headers_show_each_environments_skew() {
    let e = Estate::start("last_writer_wins", "4s").await;
    let date = |r: &reqwest::Response| {
        let text = r.headers()["date"].to_str().expect("Date").to_string();
        DateTime::parse_from_rfc2822(&text)
            .unwrap_or_else(|err| panic!("{text}: {err}"))
            .with_timezone(&Utc)
    };
    let offset = |served: DateTime<Utc>, before: DateTime<Utc>, after: DateTime<Utc>| {
        // Date has whole seconds: the offset is within a second of the truth either way.
        let low = (served - after).num_milliseconds() as f64 / 1000.0;
        let high = (served - before).num_milliseconds() as f64 / 1000.0 + 1.0;
        (low, high)
    };
    for (url, bearer, skew) in [
        (e.fin_url(""), &e.fin, 4.0),
        (e.crm_url("WhoAmI"), &e.crm, 0.0),
    ] {
        let before = Utc::now();
        let r = e
            .http
            .get(&url)
            .bearer_auth(bearer)
            .send()
            .await
            .expect("request");
        let after = Utc::now();
        assert_eq!(r.status(), 200, "{url}");
        let (low, high) = offset(date(&r), before, after);
        assert!(
            low - 0.05 <= skew && skew <= high + 0.05,
            "{url}: {low}..{high}"
        );
    }
    // Routes of no environment keep the unskewed clock.
    let before = Utc::now();
    let r = e
        .http
        .get(format!("{}/", e.served.base))
        .send()
        .await
        .expect("index");
    let (low, high) = offset(date(&r), before, Utc::now());
    assert!(low - 0.05 <= 0.0 && 0.0 <= high + 0.05, "{low}..{high}");
    let index: Value = r.json().await.expect("index json");
    assert_eq!(index["links"][0]["name"], "customers", "{index}");
    e.served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_truth_of_an_unknown_link_or_key_is_404() {
    let e = Estate::start("diverge", "0s").await;
    assert_eq!(e.truth("nobody").await.0, 404);
    let r = e
        .http
        .get(format!("{}/_truth/links/elsewhere/K", e.served.base))
        .send()
        .await
        .expect("truth");
    assert_eq!(r.status(), 404);
    e.served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dataverse_change_of_a_copy_from_fno_is_a_link_write_not_a_fork() {
    let e = Estate::start("last_writer_wins", "0s").await;
    let r = e
        .http
        .post(e.fin_url("CustomersV3"))
        .bearer_auth(&e.fin)
        .json(&json!({"dataAreaId": "usmf", "OrganizationName": "LINK-BACK", "AddressDescription": "v0"}))
        .send()
        .await
        .expect("F&O create");
    assert_eq!(r.status(), 201);
    let find = || async {
        let body: Value = e
            .http
            .get(e.crm_url("accounts"))
            .query(&[("$filter", "name eq 'LINK-BACK'")])
            .bearer_auth(&e.crm)
            .send()
            .await
            .expect("Dataverse query")
            .json()
            .await
            .expect("json");
        body["value"].as_array().cloned().unwrap_or_default()
    };
    let mut rows = Vec::new();
    for _ in 0..100 {
        rows = find().await;
        if !rows.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let id = rows
        .first()
        .and_then(|r| r["accountid"].as_str())
        .unwrap_or_else(|| panic!("no Dataverse copy: {rows:?}"))
        .to_string();
    let r = e
        .http
        .patch(e.crm_url(&format!("accounts({id})")))
        .bearer_auth(&e.crm)
        .json(&json!({"description": "crm"}))
        .send()
        .await
        .expect("PATCH");
    assert_eq!(r.status(), 204);
    // Not a column the link carries: refused, not forked.
    let r = e
        .http
        .patch(e.crm_url(&format!("accounts({id})")))
        .bearer_auth(&e.crm)
        .json(&json!({"accountnumber": "X"}))
        .send()
        .await
        .expect("PATCH");
    assert_eq!(r.status(), 400);
    let t = e.settled("link-back", 2).await;
    assert_eq!(t["key"], "LINK-BACK");
    assert_eq!(fates(&t), pairs(&[("fin", "applied"), ("crm", "applied")]));
    let rows = find().await;
    assert_eq!(rows.len(), 1, "one row, the copy: {rows:?}");
    assert_eq!(rows[0]["description"], "crm");
    let written: Value = e
        .http
        .get(e.fin_url("CustomersV3"))
        .query(&[
            ("$filter", "OrganizationName eq 'LINK-BACK'"),
            ("cross-company", "true"),
        ])
        .bearer_auth(&e.fin)
        .send()
        .await
        .expect("F&O query")
        .json()
        .await
        .expect("json");
    assert_eq!(
        written["value"][0]["AddressDescription"], "crm",
        "{written}"
    );
    e.served.stop().await;
}
