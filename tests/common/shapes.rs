//! The documented answers of each API, written once for the shared contract
//! (`tests/it/conformance.rs`) and the per-kind wiremock tests.
//!
//! The fakes use one layout per service: F&O `CustomersV3` with the key in `CustomerAccount`
//! and the payload in `OrganizationName`; Azure AI Search and Elasticsearch documents with
//! `sentinel_key` and `payload` fields (Elasticsearch index `crm-accounts`); Dataverse search
//! on `account` with `accountnumber` and `description`.

use serde_json::{Value, json};
use wiremock::ResponseTemplate;

/// An OData error answer `{"error":{"code","message"}}` (Dataverse, F&O, Azure AI Search).
pub fn odata_error(status: u16, code: &str, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status)
        .set_body_json(json!({"error": {"code": code, "message": message}}))
}

// ---------------------------------------------------------------- F&O OData (§4.1)

/// A page of `CustomersV3` rows.
pub fn fo_page(rows: Vec<Value>) -> ResponseTemplate {
    ResponseTemplate::new(200)
        .insert_header("OData-Version", "4.0")
        .set_body_json(json!({
            "@odata.context": "https://env.operations.dynamics.com/data/$metadata#CustomersV3(CustomerAccount,OrganizationName)",
            "value": rows
        }))
}

/// A `CustomersV3` row; without a payload, as `$select` of the key alone returns it.
pub fn fo_row(key: &str, payload: Option<&str>) -> Value {
    let mut row = json!({
        "@odata.etag": "W/\"JzEsNTYzNzE0NDU3Nic=\"",
        "CustomerAccount": key,
    });
    if let Some(p) = payload {
        row["OrganizationName"] = json!(p);
    }
    row
}

// ---------------------------------------------------------------- Azure AI Search (§6.1)

/// A document with the selected fields.
pub fn search_doc(key: &str, payload: &str) -> Value {
    json!({"sentinel_key": key, "payload": payload})
}

/// A `docs/search` answer with these documents (each given a score).
pub fn search_results(docs: Vec<Value>) -> ResponseTemplate {
    let docs: Vec<Value> = docs
        .into_iter()
        .map(|mut d| {
            d["@search.score"] = json!(1.0);
            d
        })
        .collect();
    ResponseTemplate::new(200).set_body_json(json!({
        "@odata.context": "https://contoso.search.windows.net/indexes('sentinels')/$metadata#docs(*)",
        "value": docs
    }))
}

/// The 404 of a search on an index that does not exist.
pub fn search_index_not_found() -> ResponseTemplate {
    odata_error(
        404,
        "",
        "The index 'sentinels' for service 'contoso' was not found.",
    )
}

// ---------------------------------------------------------------- Dataverse search (§6.2)

/// A `searchquery` answer: the results are escaped JSON inside the `response` string.
pub fn searchquery(error: Value, hits: Vec<Value>) -> ResponseTemplate {
    let count = hits.len();
    let inner = json!({
        "Error": error,
        "Value": hits,
        "Facets": {},
        "QueryContext": null,
        "Count": count
    });
    searchquery_text(&inner.to_string())
}

/// A `searchquery` answer whose `response` string is `inner`, as it is.
pub fn searchquery_text(inner: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "@odata.context": "https://org.crm.dynamics.com/api/data/v9.2/$metadata#Microsoft.Dynamics.CRM.searchqueryResponse",
        "response": inner
    }))
}

/// One result of a `searchquery` on `account`.
pub fn searchquery_hit(key: &str, payload: &str) -> Value {
    json!({
        "Id": "8b35eda1-ef69-ee11-9ae7-000d3a88a4a2",
        "EntityName": "account",
        "ObjectTypeCode": 0,
        "Attributes": {
            "@search.objecttypecode": 1,
            "accountnumber": key,
            "description": payload
        },
        "Highlights": {"accountnumber": [format!("{{crmhit}}{key}{{/crmhit}}")]},
        "Score": 4.95
    })
}

// ---------------------------------------------------------------- Elasticsearch (§6.3)

/// The `_source` of a sentinel document.
pub fn es_source(key: &str, payload: &str) -> Value {
    json!({"sentinel_key": key, "payload": payload})
}

/// `GET /crm-accounts/_doc/{key}` of a document that is there.
pub fn es_document(key: &str, payload: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "_index": "crm-accounts",
        "_id": key,
        "_version": 1,
        "_seq_no": 0,
        "_primary_term": 1,
        "found": true,
        "_source": es_source(key, payload)
    }))
}

/// `GET /crm-accounts/_doc/{key}` of a document that is not there.
pub fn es_missing(key: &str) -> ResponseTemplate {
    ResponseTemplate::new(404).set_body_json(json!({
        "_index": "crm-accounts", "_id": key, "found": false
    }))
}

/// A `_search` answer with these `_source`s.
pub fn es_hits(sources: Vec<Value>) -> ResponseTemplate {
    let n = sources.len();
    let hits: Vec<Value> = sources
        .into_iter()
        .map(|src| {
            let id = src.get("sentinel_key").cloned().unwrap_or(json!("x"));
            json!({"_index": "crm-accounts", "_id": id, "_score": 1.0, "_source": src})
        })
        .collect();
    ResponseTemplate::new(200).set_body_json(json!({
        "took": 1,
        "timed_out": false,
        "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
        "hits": {"total": {"value": n, "relation": "eq"}, "max_score": null, "hits": hits}
    }))
}

/// An error answer `{"error":{"root_cause","type","reason"},"status"}`.
pub fn es_error(status: u16, kind: &str, reason: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({
        "error": {
            "root_cause": [{"type": kind, "reason": reason}],
            "type": kind,
            "reason": reason,
        },
        "status": status
    }))
}

/// The 404 of a request to an index that does not exist.
pub fn es_index_not_found() -> ResponseTemplate {
    es_error(
        404,
        "index_not_found_exception",
        "no such index [crm-accounts]",
    )
}

// ------------------------------------------------------- platform status (platform-status.md)

/// An OData collection answer of Dataverse or F&O with these rows.
pub fn odata_rows(set: &str, rows: Vec<Value>) -> ResponseTemplate {
    ResponseTemplate::new(200)
        .insert_header("OData-Version", "4.0")
        .set_body_json(json!({
            "@odata.context": format!("https://org.crm.dynamics.com/api/data/v9.2/$metadata#{set}"),
            "value": rows
        }))
}

/// A `synapselinkprofiles` row (§1.1: `profilestate` 0 Inactive … 8 Deactivated).
pub fn synapse_profile(id: &str, name: &str, profilestate: i64) -> Value {
    json!({"@odata.etag": "W/\"4410011\"", "synapselinkprofileid": id, "name": name,
        "profilestate": profilestate})
}

/// A `synapselinkprofileentitystates` row of `profile` for `table` (§1.1: `syncstate` 2
/// InProgress is "active and error-free").
pub fn synapse_table_state(
    profile: &str,
    table: &str,
    syncstate: i64,
    synced: &str,
    version: &str,
) -> Value {
    json!({"@odata.etag": "W/\"4410020\"", "entityname": table, "syncstate": syncstate,
        "initialsyncstate": 4, "lastsynceddatatime": synced, "lastsynceddataversion": version,
        "lakerecordcount": 1200, "crmrecordcount": 1190, "_profile_value": profile,
        "synapselinkprofileentitystateid": "5b1c0f55-0000-0000-0000-000000000001"})
}

/// A `synapselinkexternaltablestates` row (§1.1: `tablestate` 1 Created, `maxrecordversion`).
pub fn external_table_state(
    table: &str,
    tablestate: i64,
    lastsyncstate: i64,
    synced: &str,
    version: u64,
) -> Value {
    json!({"@odata.etag": "W/\"4410030\"", "entityname": table, "tablestate": tablestate,
        "lastsyncstate": lastsyncstate, "lastsynchronizedon": synced,
        "maxrecordversion": version, "recordcount": 1190,
        "synapselinkexternaltablestateid": "5b1c0f55-0000-0000-0000-000000000002"})
}

/// A `searchstatus` answer: the status as escaped JSON inside `response` (§1.3).
pub fn search_status(status: &str, entities: Vec<Value>) -> ResponseTemplate {
    let inner = json!({"value": {"status": status, "lockboxstatus": "disabled",
        "cmkstatus": "disabled", "entitystatusresults": entities,
        "manytomanyrelationshipsyncstatus": []}});
    ResponseTemplate::new(200).set_body_json(json!({
        "@odata.context": "https://org.crm.dynamics.com/api/data/v9.2/$metadata#Microsoft.Dynamics.CRM.searchstatusResponse",
        "response": inner.to_string()
    }))
}

/// A table's entry in `searchstatus`, with its `"<version>!MM/dd/yyyy HH:mm:ss"` watermark.
pub fn search_status_entity(table: &str, watermark: &str, entitystatus: &str) -> Value {
    json!({"entitylogicalname": table, "objecttypecode": 1, "primarynamefield": "name",
        "lastdatasynctimestamp": watermark,
        "lastprincipalobjectaccesssynctimestamp": "0!01/01/0001 00:00:00",
        "entitystatus": entitystatus, "searchableindexedfieldinfomap": {}})
}

/// One execution of an Azure AI Search indexer (§1.5).
pub fn indexer_run(status: &str, start: &str, error: Option<&str>) -> Value {
    json!({"status": status, "errorMessage": error, "startTime": start, "endTime": start,
        "errors": [], "warnings": [], "itemsProcessed": 12, "itemsFailed": 0,
        "initialTrackingState": null, "finalTrackingState": null})
}

/// `GET /indexers/{name}/status`: the indexer's status, last run and history (newest first).
pub fn indexer_status(status: &str, history: Vec<Value>) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "@odata.context": "https://contoso.search.windows.net/$metadata#Microsoft.Azure.Search.V2025_09_01.IndexerExecutionInfo",
        "name": "accounts-indexer", "status": status,
        "lastResult": history.first().cloned(),
        "executionHistory": history,
        "limits": {"maxRunTime": "PT2H", "maxDocumentExtractionSize": 16_777_216,
            "maxDocumentContentCharactersToExtract": 32768}
    }))
}

/// `GET /{index}/_stats/refresh,indexing` with `external` search-visible refreshes of the
/// primaries (§1.6).
pub fn es_refresh_stats(index: &str, external: u64) -> ResponseTemplate {
    let stats = json!({
        "refresh": {"total": external + 5, "total_time_in_millis": 120, "external_total": external,
            "external_total_time_in_millis": 100, "listeners": 0},
        "indexing": {"index_total": 40, "index_time_in_millis": 30, "index_current": 0,
            "index_failed": 0, "delete_total": 2, "noop_update_total": 0, "is_throttled": false}
    });
    let mut indices = serde_json::Map::new();
    indices.insert(
        index.to_string(),
        json!({"uuid": "x1", "primaries": stats, "total": stats}),
    );
    ResponseTemplate::new(200).set_body_json(json!({
        "_shards": {"total": 2, "successful": 1, "failed": 0},
        "_all": {"primaries": stats, "total": stats},
        "indices": indices
    }))
}

/// A `DualWriteProjectConfigurations` row (§1.4; `Status` values undocumented).
pub fn dual_write_config(project: &str, internal: &str, external: &str, status: i64) -> Value {
    json!({"@odata.etag": "W/\"JzEsNTYzNzE0NDU4Myc=\"", "ProjectName": project,
        "InternalEntityName": internal, "ExternalEntityName": external, "Status": status})
}
