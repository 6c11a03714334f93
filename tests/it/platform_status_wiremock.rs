//! The status readers (`platform_status:`) against wiremock: each surface's reader built from
//! YAML as `lagwatch run` builds it (the path's `platform_status` through its system's
//! `status` surfaces), the exact requests it sends (path, query, headers, credentials), the
//! claim it makes of the documented answers, and what it does with a refusal (the permission
//! to grant), a 404, throttling and garbage: errors, never panics, every request counted
//! under `lagwatch_requests_total{operation="status"}`.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use common::fakes::{ExactQuery, answer_next, secret_file, truncated_json};
use common::shapes::{
    dual_write_config, es_refresh_stats, external_table_state, indexer_run, indexer_status,
    odata_error, odata_rows, search_status, search_status_entity, synapse_profile,
    synapse_table_state,
};
use lagwatch::config::Config;
use lagwatch::config::platform::Surface;
use lagwatch::connector::ConnectorError;
use lagwatch::connector::status::{ClaimState, StatusReader};
use lagwatch::metrics::Metrics;
use lagwatch::systems::BuildContext;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockBuilder, MockServer, ResponseTemplate};

const TENANT: &str = "contoso";
/// The access token the fake Entra endpoint hands out.
const TOKEN: &str = "tok-status-1";
/// The admin key of the search service.
const SEARCH_KEY: &str = "admin-key-1";
/// `lagwatch:s3cret` in base64, the basic credential of the Elasticsearch system.
const BASIC: &str = "Basic bGFnd2F0Y2g6czNjcmV0";
/// The id of the Synapse Link profile the fakes answer with.
const PROFILE: &str = "7d1a5b2c-0000-0000-0000-00000000aaaa";

/// One wiremock server playing Entra ID, Dataverse (`/crm`), F&O (`/fno`), Azure AI Search
/// (`/search`) and Elasticsearch (`/es`), and the configuration of a path per surface.
struct Estate {
    server: MockServer,
    metrics: Metrics,
    cx: BuildContext,
    config: Config,
}

async fn estate() -> Estate {
    let server = MockServer::start().await;
    common::fakes::mount_entra_token(&server, TENANT, TOKEN).await;
    let uri = server.uri();
    let entra = format!(
        "{{ method: client_secret, tenant_id: {TENANT}, client_id: lagwatch-app, client_secret: '{}', authority: '{uri}' }}",
        secret_file("client-secret", "s3cret-for-tests")
    );
    let dataverse = |name: &str| {
        format!(
            "  {name}:\n    kind: dataverse\n    url: {uri}/crm\n    table: accounts\n    id_column: accountid\n    key_column: accountnumber\n    payload_column: description\n    scope: https://crm.crm.dynamics.com/.default\n    auth: {entra}\n"
        )
    };
    let yaml = format!(
        r#"
instance: st
systems:
  src:
    kind: simulated
{lake}{lake_named}{fabric}  crm_search:
    kind: dataverse_search
    url: {uri}/crm
    entity: account
    key_column: accountnumber
    payload_column: description
    scope: https://crm.crm.dynamics.com/.default
    auth: {entra}
  fno:
    kind: fo_odata
    url: {uri}/fno
    entity_set: CustomersV3
    key_field: CustomerAccount
    scope: https://fin.operations.dynamics.com/.default
    auth: {entra}
  search:
    kind: azure_search
    endpoint: {uri}/search
    index: accounts
    key_field: sentinel_key
    payload_field: payload
    auth: {{ method: api_key, key: '{search_key}' }}
  es:
    kind: elasticsearch
    url: {uri}/es
    index: crm-accounts
    payload_field: payload
    auth: {{ method: basic, username: lagwatch, password: '{es_password}' }}
paths:
  - source: src
    target: lake
    platform_status: {{ surface: synapse_link, table: account }}
  - source: src
    target: lake_named
    platform_status: {{ surface: synapse_link, table: account, profile: "lake's" }}
  - source: src
    target: fabric
    platform_status: {{ surface: fabric_link, table: account }}
  - source: src
    target: crm_search
    platform_status: {{ surface: dataverse_search, table: account }}
  - source: src
    target: fno
    platform_status:
      surface: dual_write
      internal_entity: Customers V3
      external_entity: accounts
      status_values: {{ 1: healthy, 2: paused }}
  - source: src
    target: search
    platform_status: {{ surface: azure_search_indexer, indexer: accounts-indexer, interval: 5m }}
  - source: src
    target: es
    platform_status: {{ surface: elasticsearch_refresh }}
"#,
        lake = dataverse("lake"),
        lake_named = dataverse("lake_named"),
        fabric = dataverse("fabric"),
        search_key = secret_file("search-key", SEARCH_KEY),
        es_password = secret_file("es-password", "s3cret"),
    );
    let config = lagwatch_emulator::REGISTRY
        .from_yaml("status.yaml", &yaml)
        .unwrap_or_else(|e| panic!("{e}"));
    let metrics = Metrics::new();
    Estate {
        server,
        cx: BuildContext::new(metrics.clone()),
        metrics,
        config,
    }
}

impl Estate {
    /// The reader of the path to `target`, built as `lagwatch run` builds it.
    fn reader(&self, target: &str) -> Arc<dyn StatusReader> {
        let spec = self
            .config
            .paths
            .iter()
            .find(|p| p.target == target)
            .and_then(|p| p.platform_status.clone())
            .unwrap_or_else(|| panic!("the path to {target} reads a status"));
        assert_eq!(spec.system, target, "the target offers the surface");
        let status = self
            .system(target)
            .status
            .unwrap_or_else(|| panic!("{target} has status surfaces"));
        let reader = status
            .reader(&spec.surface)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(reader.surface(), spec.surface.name());
        reader
    }

    fn system(&self, name: &str) -> lagwatch::systems::System {
        let gate = self.cx.gate(name, self.config.limits[name]);
        self.config.systems[name]
            .build(name, &self.cx, gate)
            .unwrap_or_else(|e| panic!("{}: {}", e.key, e.reason))
    }

    /// `lagwatch_requests_total{system=name, operation="status", status}`.
    fn requests(&self, name: &str, status: &str) -> u64 {
        self.metrics.requests(name, "status", status)
    }

    /// Forgets every mock and request, keeping the token endpoint.
    async fn reset(&self) {
        self.server.reset().await;
        common::fakes::mount_entra_token(&self.server, TENANT, TOKEN).await;
    }
}

/// The headers of every Dataverse read, with the bearer token.
fn dataverse(m: MockBuilder) -> MockBuilder {
    m.and(header("Authorization", format!("Bearer {TOKEN}").as_str()))
        .and(header("Accept", "application/json"))
        .and(header("OData-MaxVersion", "4.0"))
        .and(header("OData-Version", "4.0"))
        .and(header("If-None-Match", "null"))
}

const STATE_SELECT: &str = "entityname,syncstate,initialsyncstate,lastsynceddatatime,lastsynceddataversion,lakerecordcount,crmrecordcount,_profile_value";

// ---------------------------------------------------------------- synapse_link

#[tokio::test]
async fn synapse_link_reads_the_profile_then_the_tables_state() {
    let e = estate().await;
    dataverse(Mock::given(method("GET")))
        .and(path("/crm/api/data/v9.2/synapselinkprofiles"))
        .and(ExactQuery::of(&[(
            "$select",
            "synapselinkprofileid,name,profilestate",
        )]))
        .respond_with(odata_rows(
            "synapselinkprofiles",
            vec![synapse_profile(PROFILE, "lake", 1)],
        ))
        .expect(1)
        .mount(&e.server)
        .await;
    dataverse(Mock::given(method("GET")))
        .and(path("/crm/api/data/v9.2/synapselinkprofileentitystates"))
        .and(ExactQuery::of(&[
            ("$select", STATE_SELECT),
            ("$filter", "entityname eq 'account'"),
        ]))
        .respond_with(odata_rows(
            "synapselinkprofileentitystates",
            vec![synapse_table_state(
                PROFILE,
                "account",
                2,
                "2026-11-02T10:15:07Z",
                "9123456",
            )],
        ))
        .expect(1)
        .mount(&e.server)
        .await;
    let claim = e.reader("lake").read().await.unwrap();
    assert_eq!(claim.state, ClaimState::Healthy);
    assert_eq!(
        claim.raw,
        "profile lake: profilestate=1 (Active), syncstate=2 (InProgress), initialsyncstate=4 (Completed), lakerecordcount=1200, crmrecordcount=1190"
    );
    assert_eq!(
        claim.last_sync.map(|t| t.to_rfc3339()).as_deref(),
        Some("2026-11-02T10:15:07+00:00")
    );
    assert_eq!(claim.watermark, Some(9_123_456));
    assert_eq!(claim.syncs, None);
    assert_eq!(e.requests("lake", "2xx"), 2);
}

#[tokio::test]
async fn synapse_link_with_a_profile_filters_by_name_and_stops_at_a_suspended_one() {
    let e = estate().await;
    dataverse(Mock::given(method("GET")))
        .and(path("/crm/api/data/v9.2/synapselinkprofiles"))
        .and(ExactQuery::of(&[
            ("$select", "synapselinkprofileid,name,profilestate"),
            ("$filter", "name eq 'lake''s'"),
        ]))
        .respond_with(odata_rows(
            "synapselinkprofiles",
            vec![synapse_profile(PROFILE, "lake's", 6)],
        ))
        .expect(1)
        .mount(&e.server)
        .await;
    Mock::given(path("/crm/api/data/v9.2/synapselinkprofileentitystates"))
        .respond_with(odata_rows("synapselinkprofileentitystates", vec![]))
        .expect(0)
        .mount(&e.server)
        .await;
    let claim = e.reader("lake_named").read().await.unwrap();
    assert_eq!(claim.state, ClaimState::Paused);
    assert_eq!(claim.raw, "profile lake's: profilestate=6 (Suspended)");
    assert_eq!(e.requests("lake_named", "2xx"), 1);
}

#[tokio::test]
async fn synapse_link_takes_the_profile_that_syncs_the_table_and_says_when_none_does() {
    let e = estate().await;
    let profiles = vec![
        synapse_profile("aaaa-1", "archive", 0),
        synapse_profile(PROFILE, "lake", 1),
    ];
    Mock::given(path("/crm/api/data/v9.2/synapselinkprofiles"))
        .respond_with(odata_rows("synapselinkprofiles", profiles))
        .mount(&e.server)
        .await;
    answer_next(
        &e.server,
        odata_rows(
            "synapselinkprofileentitystates",
            vec![synapse_table_state(
                &PROFILE.to_uppercase(),
                "account",
                32,
                "2026-11-02T10:15:07Z",
                "",
            )],
        ),
    )
    .await;
    let reader = e.reader("lake");
    let claim = reader.read().await.unwrap();
    assert_eq!(claim.state, ClaimState::Paused);
    assert!(claim.raw.starts_with("profile lake: "), "{}", claim.raw);
    assert_eq!(claim.watermark, None);
    // The table in neither profile: not running, saying which profiles there are.
    answer_next(
        &e.server,
        odata_rows("synapselinkprofileentitystates", vec![]),
    )
    .await;
    let claim = reader.read().await.unwrap();
    assert_eq!(claim.state, ClaimState::NotRunning);
    assert_eq!(
        claim.raw,
        "no profile syncs account (2 profiles: archive, lake)"
    );
}

// ---------------------------------------------------------------- fabric_link

#[tokio::test]
async fn fabric_link_reads_the_tables_delta_state() {
    let e = estate().await;
    dataverse(Mock::given(method("GET")))
        .and(path("/crm/api/data/v9.2/synapselinkexternaltablestates"))
        .and(ExactQuery::of(&[
            (
                "$select",
                "entityname,lastsynchronizedon,lastsyncstate,tablestate,maxrecordversion,recordcount",
            ),
            ("$filter", "entityname eq 'account'"),
        ]))
        .respond_with(odata_rows(
            "synapselinkexternaltablestates",
            vec![external_table_state(
                "account",
                1,
                2,
                "2026-11-02T10:20:00Z",
                9_123_999,
            )],
        ))
        .expect(1)
        .mount(&e.server)
        .await;
    let claim = e.reader("fabric").read().await.unwrap();
    assert_eq!(claim.state, ClaimState::Error, "Created, last sync Failed");
    assert_eq!(
        claim.raw,
        "tablestate=1 (Created), lastsyncstate=2 (Failed), recordcount=1190"
    );
    assert_eq!(claim.watermark, Some(9_123_999));
    assert_eq!(
        claim.last_sync.map(|t| t.to_rfc3339()).as_deref(),
        Some("2026-11-02T10:20:00+00:00")
    );
    assert_eq!(e.requests("fabric", "2xx"), 1);
}

// ---------------------------------------------------------------- dataverse_search

#[tokio::test]
async fn dataverse_search_reads_the_status_function_inside_its_string() {
    let e = estate().await;
    dataverse(Mock::given(method("GET")))
        .and(path("/crm/api/data/v9.2/searchstatus"))
        .and(ExactQuery::of(&[]))
        .respond_with(search_status(
            "provisioned",
            vec![
                search_status_entity(
                    "contact",
                    "1555508!10/16/2023 02:21:59",
                    "EntitySyncComplete",
                ),
                search_status_entity(
                    "account",
                    "73630169!09/12/2022 14:26:14",
                    "EntitySyncComplete",
                ),
            ],
        ))
        .expect(1)
        .mount(&e.server)
        .await;
    let claim = e.reader("crm_search").read().await.unwrap();
    assert_eq!(claim.state, ClaimState::Healthy);
    assert_eq!(claim.watermark, Some(73_630_169));
    assert_eq!(
        claim.last_sync.map(|t| t.to_rfc3339()).as_deref(),
        Some("2022-09-12T14:26:14+00:00")
    );
    assert_eq!(e.requests("crm_search", "2xx"), 1);
    // The same surface through the dataverse kind, the same request.
    let lake = e.system("lake").status.expect("surfaces");
    let reader = lake
        .reader(&Surface::DataverseSearch {
            table: "account".into(),
        })
        .unwrap_or_else(|e| panic!("{e}"));
    e.reset().await;
    answer_next(&e.server, search_status("notprovisioned", vec![])).await;
    let claim = reader.read().await.unwrap();
    assert_eq!(claim.state, ClaimState::NotRunning);
    assert_eq!(claim.raw, "status=notprovisioned");
    let requests = e.server.received_requests().await.unwrap_or_default();
    let data: Vec<_> = requests
        .iter()
        .filter(|r| !r.url.path().ends_with("/token"))
        .collect();
    assert_eq!(data.len(), 1);
    assert_eq!(data[0].url.path(), "/crm/api/data/v9.2/searchstatus");
}

// ---------------------------------------------------------------- azure_search_indexer

#[tokio::test]
async fn an_indexer_status_is_read_with_the_systems_key_and_version() {
    let e = estate().await;
    Mock::given(method("GET"))
        .and(path("/search/indexers/accounts-indexer/status"))
        .and(ExactQuery::of(&[("api-version", "2025-09-01")]))
        .and(header("api-key", SEARCH_KEY))
        .and(header("Accept", "application/json"))
        .respond_with(indexer_status(
            "running",
            vec![
                indexer_run("inProgress", "2026-11-02T10:25:00Z", None),
                indexer_run("success", "2026-11-02T10:20:00Z", None),
                indexer_run("transientFailure", "2026-11-02T10:15:00Z", Some("timeout")),
            ],
        ))
        .expect(1)
        .mount(&e.server)
        .await;
    let claim = e.reader("search").read().await.unwrap();
    assert_eq!(claim.state, ClaimState::Healthy);
    assert_eq!(
        claim.raw,
        "status=running, lastResult.status=inProgress, itemsProcessed=12, itemsFailed=0, last ended run=success"
    );
    assert_eq!(
        claim.last_sync.map(|t| t.to_rfc3339()).as_deref(),
        Some("2026-11-02T10:20:00+00:00"),
        "the newest success, not the run in progress"
    );
    assert_eq!(e.requests("search", "2xx"), 1);
    e.reset().await;
    answer_next(
        &e.server,
        indexer_status(
            "running",
            vec![indexer_run(
                "persistentFailure",
                "2026-11-02T10:30:00Z",
                Some("Credentials for the data source are not valid"),
            )],
        ),
    )
    .await;
    let claim = e.reader("search").read().await.unwrap();
    assert_eq!(claim.state, ClaimState::Error);
    assert_eq!(
        claim.detail.as_deref(),
        Some("Credentials for the data source are not valid")
    );
}

// ---------------------------------------------------------------- elasticsearch_refresh

#[tokio::test]
async fn elasticsearch_refreshes_are_counted_from_the_index_stats() {
    let e = estate().await;
    Mock::given(method("GET"))
        .and(path("/es/crm-accounts/_stats/refresh,indexing"))
        .and(ExactQuery::of(&[]))
        .and(header("Authorization", BASIC))
        .and(header("Accept", "application/json"))
        .respond_with(es_refresh_stats("crm-accounts", 31))
        .expect(1)
        .mount(&e.server)
        .await;
    let claim = e.reader("es").read().await.unwrap();
    assert_eq!(claim.state, ClaimState::Healthy);
    assert_eq!(claim.syncs, Some(31));
    assert_eq!(claim.last_sync, None);
    assert_eq!(
        claim.raw,
        "_all.primaries.refresh.external_total=31, indexing.index_total=40"
    );
    assert_eq!(e.requests("es", "2xx"), 1);
}

// ---------------------------------------------------------------- dual_write

#[tokio::test]
async fn dual_write_reads_the_maps_configuration_and_maps_only_configured_values() {
    let e = estate().await;
    Mock::given(method("GET"))
        .and(path("/fno/data/DualWriteProjectConfigurations"))
        .and(ExactQuery::of(&[
            ("cross-company", "true"),
            (
                "$filter",
                "InternalEntityName eq 'Customers V3' and ExternalEntityName eq 'accounts'",
            ),
            (
                "$select",
                "ProjectName,InternalEntityName,ExternalEntityName,Status",
            ),
        ]))
        .and(header("Authorization", format!("Bearer {TOKEN}").as_str()))
        .and(header("Accept", "application/json"))
        .and(header("OData-MaxVersion", "4.0"))
        .and(header("OData-Version", "4.0"))
        .respond_with(odata_rows(
            "DualWriteProjectConfigurations",
            vec![dual_write_config(
                "CustomersV3_accounts",
                "Customers V3",
                "accounts",
                1,
            )],
        ))
        .expect(1)
        .mount(&e.server)
        .await;
    let reader = e.reader("fno");
    let claim = reader.read().await.unwrap();
    assert_eq!(claim.state, ClaimState::Healthy, "status_values maps 1");
    assert_eq!(claim.raw, "Status=1");
    e.reset().await;
    answer_next(
        &e.server,
        odata_rows(
            "DualWriteProjectConfigurations",
            vec![dual_write_config("p", "Customers V3", "accounts", 4)],
        ),
    )
    .await;
    let claim = reader.read().await.unwrap();
    assert_eq!(
        (claim.state, claim.raw.as_str()),
        (ClaimState::Unknown, "Status=4")
    );
    answer_next(
        &e.server,
        odata_rows("DualWriteProjectConfigurations", vec![]),
    )
    .await;
    assert_eq!(reader.read().await.unwrap().state, ClaimState::NotRunning);
}

// ---------------------------------------------------------------- failures, every surface

/// Each path's target, what its refusal must tell to grant, and what a 404 must suggest.
const SURFACES: &[(&str, &str, &str)] = &[
    ("lake", "Synapse Link tables", "Azure Synapse Link"),
    (
        "fabric",
        "synapselinkexternaltablestate",
        "Azure Synapse Link",
    ),
    ("crm_search", "searchstatus", "Dataverse search"),
    ("fno", "DualWriteProjectConfigurationEntity", "dual-write"),
    (
        "search",
        "Search Service Contributor",
        "no indexer of that name",
    ),
    (
        "es",
        "monitor (or manage) index privilege",
        "no index of that name",
    ),
];

#[tokio::test]
async fn refusals_name_the_permission_and_404_throttling_and_garbage_are_errors() {
    let e = estate().await;
    for (target, grant, missing) in SURFACES {
        let reader = e.reader(target);
        let bearer = matches!(*target, "lake" | "fabric" | "crm_search" | "fno");
        let mut four = 0;
        for status in [401, 403] {
            e.reset().await;
            Mock::given(wiremock::matchers::any())
                .respond_with(odata_error(
                    status,
                    "0x80040220",
                    "Principal user is missing prvReadsynapselinkprofile privilege",
                ))
                .mount(&e.server)
                .await;
            let err = reader.read().await.unwrap_err();
            assert_eq!(err.kind(), "auth", "{target} {status}: {err}");
            let text = err.to_string();
            assert!(text.contains(&format!("HTTP {status}")), "{target}: {text}");
            assert!(
                text.contains("to read this status, grant") && text.contains(grant),
                "{target} {status}: {text}"
            );
            // A rejected token is fetched again and the request sent once more.
            four += if status == 401 && bearer { 2 } else { 1 };
        }
        e.reset().await;
        answer_next(
            &e.server,
            odata_error(404, "", "Resource not found for the segment"),
        )
        .await;
        match reader.read().await.unwrap_err() {
            ConnectorError::BadResponse {
                status: 404,
                detail,
            } => {
                assert!(detail.contains(missing), "{target}: {detail}");
            }
            other => panic!("{target}: {other:?}"),
        }
        four += 1;
        answer_next(
            &e.server,
            ResponseTemplate::new(429)
                .insert_header("Retry-After", "7")
                .set_body_json(serde_json::json!({"error": {"code": "0x80072322", "message": "Number of requests exceeded the limit"}})),
        )
        .await;
        match reader.read().await.unwrap_err() {
            ConnectorError::Throttled { retry_after } => {
                assert_eq!(retry_after, Some(Duration::from_secs(7)), "{target}");
            }
            other => panic!("{target}: {other:?}"),
        }
        four += 1;
        for garbage in [
            truncated_json(),
            ResponseTemplate::new(200).set_body_string("<html>maintenance</html>"),
            ResponseTemplate::new(200)
                .set_body_json(serde_json::json!({"response": 7, "rows": [], "status": 3})),
        ] {
            answer_next(&e.server, garbage).await;
            let err = reader.read().await.unwrap_err();
            assert!(
                matches!(err, ConnectorError::BadResponse { status: 200, .. }),
                "{target}: {err:?}"
            );
        }
        assert_eq!(e.requests(target, "4xx"), four, "{target}");
        assert_eq!(e.requests(target, "2xx"), 3, "{target}");
        let exposition = e.metrics.render();
        assert!(
            exposition.contains(&format!(
                "lagwatch_requests_total{{operation=\"status\",status=\"2xx\",system=\"{target}\"}} 3"
            )),
            "{target}: {exposition}"
        );
    }
}

/// The loader checked the kind offers the surface; a kind asked for another refuses, naming
/// both, rather than building a reader of the wrong API.
#[tokio::test]
async fn a_kind_refuses_a_surface_it_does_not_offer() {
    let e = estate().await;
    let es = e.system("es").status.expect("surfaces");
    let refused = es
        .reader(&Surface::FabricLink {
            table: "account".into(),
        })
        .err()
        .expect("refused");
    assert_eq!(
        refused,
        "kind elasticsearch offers no fabric_link status surface"
    );
    for (name, offers) in [
        (
            "lake",
            vec!["synapse_link", "fabric_link", "dataverse_search"],
        ),
        ("crm_search", vec!["dataverse_search"]),
        ("fno", vec!["dual_write"]),
        ("search", vec!["azure_search_indexer"]),
        ("es", vec!["elasticsearch_refresh"]),
    ] {
        assert_eq!(
            e.config.systems[name].status_surfaces(),
            offers.as_slice(),
            "{name}"
        );
    }
}
