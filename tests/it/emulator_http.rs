//! The emulator over real sockets on 127.0.0.1:0, driven by a hand-written HTTP/1.1 client
//! sending the documented request shapes of the protocol fact sheet (§1.7, §2, §3.1, §4.1,
//! §6): what a third-party client sends works and gets the documented answers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lagwatch_emulator::{Emulator, Scenario};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

const SCENARIO: &str = r#"
credentials:
  - { tenant: contoso, client_id: app-1, client_secret: s3cret }
  - { tenant: contoso, client_id: app-cert, accept_assertions: true, expires_in: 1800 }
dataverse:
  crm:
    tables:
      accounts:
        id: accountid
        columns: { name: string, accountnumber: string, customertypecode: int, description: string }
  busy:
    throttle: { requests: 3, per: 60s, retry_after: 5s }
    tables:
      accounts:
        columns: { name: string }
fno:
  fin: {}
search:
  srch: { api_keys: [k1] }
elasticsearch:
  logs:
    users: { elastic: pw }
    api_keys: ["kid:ksecret"]
replicas:
  fno:
    source: crm/accounts
    target: { kind: fno, env: fin, entity: CustomersV3, company: usmf }
    key: accountnumber
    map: { accountnumber: CustomerAccount, name: OrganizationName }
    lag: { distribution: fixed, value: 300ms }
  search:
    source: crm/accounts
    target: { kind: search, service: srch, index: sentinels }
    key: accountnumber
    lag: { distribution: fixed, value: 200ms }
  es:
    source: crm/accounts
    target: { kind: elasticsearch, cluster: logs, index: sentinels }
    key: accountnumber
    lag: { distribution: fixed, value: 200ms }
"#;

struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// One HTTP/1.1 request on a fresh connection.
async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Resp {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).await.expect("write");
    s.write_all(body.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut raw))
        .await
        .expect("response in time")
        .expect("read");
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, rest) = text.split_once("\r\n\r\n").expect("http response");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    Resp {
        status,
        headers,
        body,
    }
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

fn b64url(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

struct Server {
    addr: SocketAddr,
    emu: Arc<Emulator>,
    stop: CancellationToken,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn start() -> Server {
    let scenario = Scenario::from_yaml(SCENARIO).unwrap_or_else(|e| panic!("{e}"));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let emu = Emulator::new(scenario);
    let stop = CancellationToken::new();
    let (e, s) = (emu.clone(), stop.clone());
    tokio::spawn(async move { e.serve(listener, s).await });
    Server { addr, emu, stop }
}

const FORM: (&str, &str) = ("Content-Type", "application/x-www-form-urlencoded");

async fn token(addr: SocketAddr, scope: &str) -> String {
    let r = http(
        addr,
        "POST",
        "/entra/contoso/oauth2/v2.0/token",
        &[FORM],
        &format!(
            "client_id=app-1&scope={scope}&client_secret=s3cret&grant_type=client_credentials"
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["access_token"]
        .as_str()
        .expect("token")
        .to_string()
}

const CRM_SCOPE: &str = "https%3A%2F%2Fcrm.crm.dynamics.com%2F.default";

#[tokio::test]
async fn documented_dataverse_requests_get_documented_answers() {
    let srv = start().await;
    let bearer = format!("Bearer {}", token(srv.addr, CRM_SCOPE).await);
    let std_headers = |extra: &[(&'static str, &'static str)]| {
        let mut h: Vec<(&str, String)> = vec![
            ("Authorization", bearer.clone()),
            ("Accept", "application/json".into()),
            ("OData-MaxVersion", "4.0".into()),
            ("OData-Version", "4.0".into()),
        ];
        h.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
        h
    };
    let call = |method: &'static str,
                path: String,
                extra: &'static [(&'static str, &'static str)],
                body: String| {
        let headers = std_headers(extra);
        async move {
            let refs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            http(srv.addr, method, &path, &refs, &body).await
        }
    };
    const JSON: (&str, &str) = ("Content-Type", "application/json; charset=utf-8");
    const REPR: (&str, &str) = ("Prefer", "return=representation");

    // Create with Prefer: return=representation → 201 + the row (§1.7).
    let r = call(
        "POST",
        "/crm/api/data/v9.2/accounts?$select=accountid,name,createdon,versionnumber".into(),
        &[JSON, REPR],
        json!({"name": "SENTINEL-01", "accountnumber": "SENT-01", "customertypecode": 3})
            .to_string(),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(
        r.header("Preference-Applied"),
        Some("return=representation")
    );
    assert_eq!(
        r.header("OData-EntityId"),
        None,
        "not returned with a representation"
    );
    assert_eq!(r.header("OData-Version"), Some("4.0"));
    assert!(r.header("Date").is_some());
    let row = r.json();
    let id = row["accountid"].as_str().expect("id").to_string();
    assert!(uuid::Uuid::parse_str(&id).is_ok());
    assert_eq!(row["name"], "SENTINEL-01");
    assert!(row.get("accountnumber").is_none(), "$select applies");
    let version = row["versionnumber"].as_u64().expect("versionnumber");
    assert_eq!(row["@odata.etag"], format!("W/\"{version}\""));
    let createdon = row["createdon"].as_str().expect("createdon");
    assert_eq!(createdon.len(), 20, "whole seconds with Z: {createdon}");
    assert!(createdon.ends_with('Z') && chrono::DateTime::parse_from_rfc3339(createdon).is_ok());

    // Plain create → 204 + OData-EntityId.
    let r = call(
        "POST",
        "/crm/api/data/v9.2/accounts".into(),
        &[JSON],
        r#"{"name":"plain"}"#.into(),
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.body);
    let entity = r.header("OData-EntityId").expect("OData-EntityId");
    assert!(
        entity.starts_with(&format!("http://{}/crm/api/data/v9.2/accounts(", srv.addr)),
        "{entity}"
    );

    // Upsert, create-only, twice → 204 then 412 (§1.3).
    let new_id = "9b1d4c3e-0000-4000-8000-000000000001";
    let path = format!("/crm/api/data/v9.2/accounts({new_id})");
    let body = r#"{"name":"SENTINEL-02","accountnumber":"SENT-02"}"#.to_string();
    let r = call(
        "PATCH",
        path.clone(),
        &[JSON, ("If-None-Match", "*")],
        body.clone(),
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.body);
    let r = call(
        "PATCH",
        path.clone(),
        &[JSON, ("If-None-Match", "*")],
        body.clone(),
    )
    .await;
    assert_eq!(r.status, 412);
    assert_eq!(
        r.json()["error"]["message"],
        "A record with matching key values already exists."
    );
    assert!(r.json()["error"]["code"].is_string());
    // Update-only on a missing row → 404.
    let r = call(
        "PATCH",
        "/crm/api/data/v9.2/accounts(9b1d4c3e-0000-4000-8000-0000000000ff)".into(),
        &[JSON, ("If-Match", "*")],
        body.clone(),
    )
    .await;
    assert_eq!(r.status, 404);
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap_or("")
            .ends_with("Does Not Exist")
    );
    // Update with representation → 200.
    let r = call(
        "PATCH",
        path.clone(),
        &[JSON, ("If-Match", "*"), REPR],
        r#"{"description":"d"}"#.into(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["description"], "d");
    assert_eq!(r.json()["accountnumber"], "SENT-02");

    // Retrieve by id with $select (§1.3).
    let r = call(
        "GET",
        format!("/crm/api/data/v9.2/accounts({id})?$select=name,createdon"),
        &[("If-None-Match", "null")],
        String::new(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let got = r.json();
    assert_eq!(got["name"], "SENTINEL-01");
    assert_eq!(got["accountid"], id.as_str(), "the id always comes back");
    assert_eq!(got["createdon"], createdon);
    assert!(got.get("accountnumber").is_none());
    assert!(
        got["@odata.context"]
            .as_str()
            .is_some_and(|c| c.ends_with("$metadata#accounts(name,createdon)/$entity"))
    );

    // Query with $filter and $top (§1.7).
    let r = call(
        "GET",
        "/crm/api/data/v9.2/accounts?$select=accountid,createdon&$filter=accountnumber%20eq%20'SENT-01'&$top=1".into(),
        &[],
        String::new(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let value = r.json()["value"].clone();
    assert_eq!(value.as_array().map(Vec::len), Some(1));
    assert_eq!(value[0]["accountid"], id.as_str());
    assert!(value[0]["@odata.etag"].is_string());

    // Server-driven paging with odata.maxpagesize and absolute nextLinks.
    for n in 0..5 {
        let r = call(
            "POST",
            "/crm/api/data/v9.2/accounts".into(),
            &[JSON],
            json!({"accountnumber": format!("PAGE-{n}")}).to_string(),
        )
        .await;
        assert_eq!(r.status, 204);
    }
    let mut next = Some(
        "/crm/api/data/v9.2/accounts?$select=accountnumber&$filter=startswith(accountnumber,'PAGE-')%20and%20createdon%20lt%202999-01-01T00:00:00Z"
            .to_string(),
    );
    let mut seen = Vec::new();
    let mut pages = 0;
    while let Some(path) = next.take() {
        let r = call(
            "GET",
            path,
            &[("Prefer", "odata.maxpagesize=2")],
            String::new(),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.header("Preference-Applied"), Some("odata.maxpagesize=2"));
        let page = r.json();
        pages += 1;
        let rows = page["value"].as_array().cloned().unwrap_or_default();
        assert!(rows.len() <= 2);
        seen.extend(
            rows.iter()
                .filter_map(|v| v["accountnumber"].as_str().map(str::to_string)),
        );
        if let Some(link) = page["@odata.nextLink"].as_str() {
            let prefix = format!("http://{}", srv.addr);
            assert!(link.starts_with(&prefix), "absolute: {link}");
            next = Some(link[prefix.len()..].to_string());
        }
    }
    seen.sort();
    assert_eq!(pages, 3);
    assert_eq!(seen, ["PAGE-0", "PAGE-1", "PAGE-2", "PAGE-3", "PAGE-4"]);
    let r = call(
        "GET",
        "/crm/api/data/v9.2/accounts?$filter=startswith(accountnumber,'PAGE-')%20and%20createdon%20lt%202000-01-01T00:00:00Z".into(),
        &[],
        String::new(),
    )
    .await;
    assert_eq!(r.json()["value"], json!([]));

    // Delete → 204, then 404.
    let r = call(
        "DELETE",
        format!("/crm/api/data/v9.2/accounts({id})"),
        &[],
        String::new(),
    )
    .await;
    assert_eq!(r.status, 204);
    let r = call(
        "DELETE",
        format!("/crm/api/data/v9.2/accounts({id})"),
        &[],
        String::new(),
    )
    .await;
    assert_eq!(r.status, 404);
    assert!(r.json()["error"]["message"].is_string());
    let r = call(
        "GET",
        format!("/crm/api/data/v9.2/accounts({id})"),
        &[],
        String::new(),
    )
    .await;
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn token_endpoint_answers_the_documented_shapes() {
    let srv = start().await;
    let addr = srv.addr;
    let post = |body: String| async move {
        http(
            addr,
            "POST",
            "/entra/contoso/oauth2/v2.0/token",
            &[FORM],
            &body,
        )
        .await
    };
    let r = post(format!(
        "client_id=app-1&scope={CRM_SCOPE}&client_secret=s3cret&grant_type=client_credentials"
    ))
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let ok = r.json();
    assert_eq!(ok["token_type"], "Bearer");
    assert_eq!(ok["expires_in"], 3599);
    assert!(ok["access_token"].as_str().is_some_and(|t| t.len() >= 32));

    // The emulated URL of an environment is a resource too.
    let own = format!("http%3A%2F%2F{}%2Fcrm%2F.default", srv.addr);
    let r = post(format!(
        "client_id=app-1&scope={own}&client_secret=s3cret&grant_type=client_credentials"
    ))
    .await;
    assert_eq!(r.status, 200, "{}", r.body);

    // Certificate / federated credential: a client assertion.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let jwt = format!(
        "{}.{}.{}",
        b64url(br#"{"alg":"RS256","typ":"JWT"}"#),
        b64url(
            json!({"iss": "app-cert", "sub": "app-cert", "aud": "token", "exp": now + 600})
                .to_string()
                .as_bytes()
        ),
        b64url(b"signature")
    );
    let r = post(format!(
        "client_id=app-cert&scope={CRM_SCOPE}&grant_type=client_credentials&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion={jwt}"
    ))
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["expires_in"], 1800);

    for (body, error, code) in [
        (format!("client_id=app-1&scope={CRM_SCOPE}&client_secret=wrong&grant_type=client_credentials"), "invalid_client", 7000215),
        (format!("client_id=nobody&scope={CRM_SCOPE}&client_secret=s3cret&grant_type=client_credentials"), "unauthorized_client", 700016),
        ("client_id=app-1&scope=https%3A%2F%2Fcrm.crm.dynamics.com&client_secret=s3cret&grant_type=client_credentials".to_string(), "invalid_scope", 1002012),
        (format!("client_id=app-1&scope={CRM_SCOPE}&client_secret=s3cret&grant_type=password"), "unsupported_grant_type", 70003),
        (format!("client_id=app-1&scope={CRM_SCOPE}&client_secret=s3cret"), "invalid_request", 900144),
        ("client_id=app-1&scope=https%3A%2F%2Fother.example%2F.default&client_secret=s3cret&grant_type=client_credentials".to_string(), "invalid_resource", 500011),
        (format!("client_id=app-cert&scope={CRM_SCOPE}&grant_type=client_credentials&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion=not.a-jwt"), "invalid_client", 50027),
    ] {
        let r = post(body.clone()).await;
        assert_eq!(r.status, 400, "{body}: {}", r.body);
        let e = r.json();
        assert_eq!(e["error"], error, "{body}");
        assert_eq!(e["error_codes"], json!([code]), "{body}");
        for field in ["error_description", "timestamp", "trace_id", "correlation_id"] {
            assert!(e[field].is_string(), "{field} in {e}");
        }
        assert!(e["error_description"].as_str().is_some_and(|d| d.starts_with(&format!("AADSTS{code}:"))));
    }
    let r = http(
        srv.addr,
        "POST",
        "/entra/fabrikam/oauth2/v2.0/token",
        &[FORM],
        "grant_type=client_credentials",
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error_codes"], json!([90002]));
}

#[tokio::test]
async fn requests_without_or_with_a_wrong_token_get_401() {
    let srv = start().await;
    let fno_token = token(
        srv.addr,
        "https%3A%2F%2Ffin.operations.dynamics.com%2F.default",
    )
    .await;
    let path = "/crm/api/data/v9.2/accounts?$top=1";
    let r = http(srv.addr, "GET", path, &[], "").await;
    assert_eq!(r.status, 401);
    assert!(
        r.header("WWW-Authenticate")
            .is_some_and(|w| w.starts_with("Bearer"))
    );
    assert!(r.json()["error"]["code"].is_string());
    for bad in [
        "Bearer not-a-token".to_string(),
        format!("Bearer {fno_token}"),
        "Basic dTpw".to_string(),
    ] {
        let r = http(srv.addr, "GET", path, &[("Authorization", &bad)], "").await;
        assert_eq!(r.status, 401, "{bad}");
        assert_eq!(
            r.json()["error"]["code"],
            if bad.starts_with("Basic") {
                "MissingCrmAuthenticationToken"
            } else {
                "InvalidAuthTicket"
            }
        );
    }
    // F&O refuses a Dataverse token and accepts its own.
    let crm_token = token(srv.addr, CRM_SCOPE).await;
    let fno = "/fno/fin/data/CustomersV3?cross-company=true&$top=1";
    let r = http(
        srv.addr,
        "GET",
        fno,
        &[("Authorization", &format!("Bearer {crm_token}"))],
        "",
    )
    .await;
    assert_eq!(r.status, 401);
    let r = http(
        srv.addr,
        "GET",
        fno,
        &[("Authorization", &format!("Bearer {fno_token}"))],
        "",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[tokio::test]
async fn service_protection_answers_429_and_lengthens_retry_after() {
    let srv = start().await;
    let bearer = format!(
        "Bearer {}",
        token(srv.addr, "https%3A%2F%2Fbusy.crm.dynamics.com%2F.default").await
    );
    let headers = [("Authorization", bearer.as_str())];
    let get = || {
        http(
            srv.addr,
            "GET",
            "/busy/api/data/v9.2/accounts?$top=1",
            &headers,
            "",
        )
    };
    for _ in 0..3 {
        assert_eq!(get().await.status, 200);
    }
    let r = get().await;
    assert_eq!(r.status, 429);
    assert_eq!(r.header("Retry-After"), Some("5"));
    let e = r.json();
    assert_eq!(e["error"]["code"], "0x80072322");
    assert!(
        e["error"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("Number of requests exceeded the limit of 3"))
    );
    let r = get().await;
    assert_eq!(r.status, 429);
    let longer: u64 = r
        .header("Retry-After")
        .and_then(|v| v.parse().ok())
        .expect("seconds");
    assert!(longer > 5, "keeps sending → longer penalty, got {longer}");
    // Another environment's budget is separate.
    let crm = format!("Bearer {}", token(srv.addr, CRM_SCOPE).await);
    let r = http(
        srv.addr,
        "GET",
        "/crm/api/data/v9.2/accounts?$top=1",
        &[("Authorization", crm.as_str())],
        "",
    )
    .await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn ground_truth_brackets_what_reads_observe() {
    let srv = start().await;
    let crm = format!("Bearer {}", token(srv.addr, CRM_SCOPE).await);
    let fno = format!(
        "Bearer {}",
        token(
            srv.addr,
            "https%3A%2F%2Ffin.operations.dynamics.com%2F.default"
        )
        .await
    );
    let unix = || {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0)
    };
    let sent = unix();
    let r = http(
        srv.addr,
        "POST",
        "/crm/api/data/v9.2/accounts",
        &[
            ("Authorization", &crm),
            ("Content-Type", "application/json"),
        ],
        r#"{"name":"truth","accountnumber":"SENT-TRUTH-1"}"#,
    )
    .await;
    let acked = unix();
    assert_eq!(r.status, 204);
    let path = "/fno/fin/data/CustomersV3?cross-company=true&$filter=CustomerAccount%20eq%20'SENT-TRUTH-1'&$select=CustomerAccount,OrganizationName&$top=1";
    let mut last_miss_sent = sent;
    let first_hit_answered = loop {
        let at = unix();
        let r = http(srv.addr, "GET", path, &[("Authorization", &fno)], "").await;
        assert_eq!(r.status, 200, "{}", r.body);
        if r.json()["value"].as_array().is_some_and(|v| !v.is_empty()) {
            assert_eq!(r.json()["value"][0]["OrganizationName"], "truth");
            break unix();
        }
        last_miss_sent = at;
        assert!(at - sent < 10.0, "never arrived");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let t = http(srv.addr, "GET", "/_truth/fno/SENT-TRUTH-1", &[], "")
        .await
        .json();
    let committed = t["committed_at_unix"].as_f64().expect("committed");
    let visible = t["visible_at_unix"].as_f64().expect("visible");
    let slack = 0.05;
    assert!(
        committed >= sent - slack && committed <= acked + slack,
        "{t}"
    );
    assert!(
        visible >= last_miss_sent - slack && visible <= first_hit_answered + slack,
        "{t}"
    );
    assert!(
        (visible - committed - 0.3).abs() < 1e-6,
        "fixed 300ms lag: {t}"
    );
    assert_eq!(
        srv.emu.truth("fno", "SENT-TRUTH-1").and_then(|g| g.lag()),
        Some(Duration::from_millis(300))
    );
}

#[tokio::test]
async fn search_and_elasticsearch_answer_over_http() {
    let srv = start().await;
    let crm = format!("Bearer {}", token(srv.addr, CRM_SCOPE).await);
    let doc = "/search/srch/indexes/sentinels/docs/SENT-IDX-1?api-version=2025-09-01";
    assert_eq!(http(srv.addr, "GET", doc, &[], "").await.status, 401);
    assert_eq!(
        http(srv.addr, "GET", doc, &[("api-key", "wrong")], "")
            .await
            .status,
        403
    );
    let r = http(
        srv.addr,
        "GET",
        "/search/srch/indexes/sentinels/docs/SENT-IDX-1",
        &[("api-key", "k1")],
        "",
    )
    .await;
    assert_eq!(r.status, 400, "api-version is required");
    assert_eq!(
        http(srv.addr, "GET", doc, &[("api-key", "k1")], "")
            .await
            .status,
        404
    );
    let r = http(
        srv.addr,
        "GET",
        "/search/srch/indexes/nope/docs/x?api-version=2025-09-01",
        &[("api-key", "k1")],
        "",
    )
    .await;
    assert_eq!(r.status, 404);
    assert!(r.json()["error"]["message"].is_string());

    let es_doc = "/es/logs/sentinels/_doc/SENT-IDX-1";
    let basic = "Basic ZWxhc3RpYzpwdw=="; // elastic:pw
    let apikey = "ApiKey a2lkOmtzZWNyZXQ="; // kid:ksecret
    let r = http(srv.addr, "GET", es_doc, &[], "").await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"]["type"], "security_exception");
    let r = http(srv.addr, "GET", es_doc, &[("Authorization", basic)], "").await;
    assert_eq!(r.status, 404);
    assert_eq!(
        r.json(),
        json!({"_index": "sentinels", "_id": "SENT-IDX-1", "found": false})
    );
    let r = http(
        srv.addr,
        "GET",
        "/es/logs/other/_doc/x",
        &[("Authorization", apikey)],
        "",
    )
    .await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"]["type"], "index_not_found_exception");

    let r = http(
        srv.addr,
        "POST",
        "/crm/api/data/v9.2/accounts",
        &[
            ("Authorization", &crm),
            ("Content-Type", "application/json"),
        ],
        r#"{"name":"indexed","accountnumber":"SENT-IDX-1"}"#,
    )
    .await;
    assert_eq!(r.status, 204);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let r = http(srv.addr, "GET", doc, &[("api-key", "k1")], "").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["name"], "indexed");
    let r = http(
        srv.addr,
        "POST",
        "/search/srch/indexes/sentinels/docs/search?api-version=2025-09-01",
        &[("api-key", "k1"), ("Content-Type", "application/json")],
        r#"{"filter":"accountnumber eq 'SENT-IDX-1'","select":"accountnumber","top":1,"count":true}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["value"][0]["accountnumber"], "SENT-IDX-1");
    assert_eq!(r.json()["@odata.count"], 1);
    let r = http(srv.addr, "GET", es_doc, &[("Authorization", apikey)], "").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let d = r.json();
    assert_eq!(d["found"], true);
    assert_eq!(d["_id"], "SENT-IDX-1");
    assert_eq!(d["_source"]["name"], "indexed");
    for key in ["_version", "_seq_no", "_primary_term"] {
        assert!(d[key].is_u64(), "{key}");
    }
    let r = http(
        srv.addr,
        "POST",
        "/es/logs/sentinels/_search",
        &[
            ("Authorization", basic),
            ("Content-Type", "application/json"),
        ],
        r#"{"query":{"term":{"accountnumber":"SENT-IDX-1"}}}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["hits"]["total"]["value"], 1);
    assert_eq!(
        r.json()["hits"]["hits"][0]["_source"]["accountnumber"],
        "SENT-IDX-1"
    );
}

#[tokio::test]
async fn bad_requests_get_error_bodies_and_never_break_the_server() {
    let srv = start().await;
    let crm = format!("Bearer {}", token(srv.addr, CRM_SCOPE).await);
    let auth = ("Authorization", crm.as_str());
    let json_ct = ("Content-Type", "application/json");
    for (method, path, body, want) in [
        ("POST", "/crm/api/data/v9.2/accounts", "{not json", 400),
        ("POST", "/crm/api/data/v9.2/accounts", "[1,2]", 400),
        (
            "POST",
            "/crm/api/data/v9.2/accounts",
            r#"{"nosuchcolumn":1}"#,
            400,
        ),
        (
            "POST",
            "/crm/api/data/v9.2/accounts",
            r#"{"customertypecode":"three"}"#,
            400,
        ),
        (
            "POST",
            "/crm/api/data/v9.2/accounts",
            r#"{"accountid":"not-a-guid"}"#,
            400,
        ),
        ("GET", "/crm/api/data/v9.2/accounts(not-a-guid)", "", 400),
        ("GET", "/crm/api/data/v9.2/accounts(", "", 400),
        (
            "GET",
            "/crm/api/data/v9.2/accounts?$filter=name%20eq",
            "",
            400,
        ),
        (
            "GET",
            "/crm/api/data/v9.2/accounts?$filter=nope%20eq%201",
            "",
            400,
        ),
        ("GET", "/crm/api/data/v9.2/accounts?$select=nope", "", 400),
        ("GET", "/crm/api/data/v9.2/accounts?$top=-1", "", 400),
        ("GET", "/crm/api/data/v9.2/accounts?$skip=1", "", 400),
        (
            "GET",
            "/crm/api/data/v9.2/accounts?$skiptoken=junk",
            "",
            400,
        ),
        ("GET", "/crm/api/data/v9.2/accounts?$filter=%zz", "", 400),
        ("GET", "/crm/api/data/v9.2/contacts", "", 404),
        ("PUT", "/crm/api/data/v9.2/accounts", "", 405),
        (
            "GET",
            "/crm/api/data/v9.2/accounts(9b1d4c3e-0000-4000-8000-000000000001)/primarycontactid",
            "",
            501,
        ),
    ] {
        let r = http(srv.addr, method, path, &[auth, json_ct], body).await;
        assert_eq!(r.status, want, "{method} {path} {body}: {}", r.body);
        let e = r.json();
        assert!(
            e["error"]["message"].is_string() && e["error"]["code"].is_string(),
            "{path}: {e}"
        );
    }
    for path in [
        "/nowhere",
        "/fno/unknown/data/X",
        "/es/unknown/x/_doc/1",
        "/search/unknown/indexes",
    ] {
        assert_eq!(
            http(srv.addr, "GET", path, &[], "").await.status,
            404,
            "{path}"
        );
    }
    let r = http(
        srv.addr,
        "POST",
        "/es/logs/sentinels/_search",
        &[("Authorization", "Basic ZWxhc3RpYzpwdw==")],
        r#"{"query":{"fuzzy":{}}}"#,
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["type"], "parsing_exception");
    let r = http(
        srv.addr,
        "POST",
        "/entra/contoso/oauth2/v2.0/token",
        &[FORM],
        "%%%",
    )
    .await;
    assert_eq!(r.status, 400);
    // Still serving.
    let r = http(srv.addr, "GET", "/", &[], "").await;
    assert_eq!(r.status, 200);
    assert!(
        r.json()["dataverse"]
            .as_array()
            .is_some_and(|a| a.len() == 2)
    );
}

#[tokio::test]
async fn serve_runs_the_demo_scenario_until_cancelled() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let stop = CancellationToken::new();
    let scenario = Scenario::demo().unwrap_or_else(|e| panic!("{e}"));
    let task = tokio::spawn(lagwatch_emulator::serve(listener, scenario, stop.clone()));
    let r = http(addr, "GET", "/", &[], "").await;
    assert_eq!(r.status, 200);
    let names: Vec<String> = r.json()["replicas"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r| r["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(
        names,
        ["crm2", "es", "fabric", "fno", "fno_back", "lake", "search"]
    );
    stop.cancel();
    let done = tokio::time::timeout(Duration::from_secs(5), task).await;
    assert!(matches!(done, Ok(Ok(Ok(())))), "stops cleanly");
}
