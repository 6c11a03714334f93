//! The `Inventory` capability: one side of a reconciliation reads the key, version and compared
//! columns of every row of a table, page by page, through the same connector (HTTP layer, gate,
//! request budget, auth) that probes it.
//!
//! As for [`Source`](crate::connector::Source) and [`Target`](crate::connector::Target), a call
//! is exactly one request (or one object read for a lake): the reconciliation runner owns
//! pacing, admission at the system's gate and retries. Rows come back in whatever order the
//! system gives them; the runner sorts them itself (spilling to disk), so neither a server's
//! collation nor the lack of `$orderby` can break the merge.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::connector::ConnectorError;

/// What one side is asked to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InventoryQuery {
    /// Table, entity set, index or lake table to read; `None` means the one the system is
    /// configured with for probing.
    pub table: Option<String>,
    /// Columns to read (key columns first, then version, changed and hashed columns, as the
    /// runner lists them). Each returned row holds one value per column, in this order.
    pub columns: Vec<String>,
    /// Only rows whose column `.0` is at or after `.1` (a windowed scope). Kinds that can filter
    /// on the server do (`$filter=modifiedon ge …`); the others return every row and the runner
    /// filters, so the result never depends on whether a kind can.
    pub changed_since: Option<(String, DateTime<Utc>)>,
    /// Rows per page to ask for (a kind caps it at its documented maximum).
    pub page_size: u32,
}

/// One row: a value per requested column, as text (`None` when null or absent).
///
/// Values are text so that both sides compare alike: a JSON number `3` and a CSV field `3`
/// are the same value. Numbers are written as the system wrote them (no float rounding);
/// booleans as `true`/`false`; strings unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InventoryRow {
    pub values: Vec<Option<String>>,
    /// A delete marker of a change log ([`InventoryShape::Changes`]): the key is gone as of
    /// this row. Always `false` for [`InventoryShape::Current`].
    pub deleted: bool,
}

/// One page and where the next one starts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InventoryPage {
    pub rows: Vec<InventoryRow>,
    /// Opaque continuation to pass back for the next page (an OData `@odata.nextLink`, a
    /// search-after value, a lake file and offset); `None` when this was the last page.
    pub next: Option<String>,
}

/// How the rows a side returns describe its table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InventoryShape {
    /// One row per key: the table as it is now (OData entity sets, search indexes).
    Current,
    /// A change log (Synapse Link folders, append-only partitions, the emulator's Delta change
    /// rows): a key may come back several times; the row read last is current, and a row
    /// marked [`deleted`](InventoryRow::deleted) removes the key. Pages must therefore come
    /// in the order the changes were written.
    Changes,
}

/// A system whose rows can be listed for reconciliation.
#[async_trait]
pub trait Inventory: Send + Sync + 'static {
    /// How to read this side's rows (default: one row per key).
    fn shape(&self) -> InventoryShape {
        InventoryShape::Current
    }

    /// Checks a query before any request: `Err` says why this kind cannot answer it (an
    /// unsafe or unknown column name, say), for the config check to report at the right key.
    ///
    /// # Errors
    /// A sentence for the person who wrote the configuration.
    fn check(&self, _query: &InventoryQuery) -> Result<(), String> {
        Ok(())
    }

    /// Exactly one request: the first page when `next` is `None`, else the page `next` names.
    /// A query [`check`](Inventory::check) refuses is answered [`refused`] before anything is
    /// sent, whoever calls: every kind gets that opening from here, not from its own copy.
    ///
    /// # Errors
    /// [`ConnectorError`] as for lookups; a page that cannot be parsed is `BadResponse`.
    async fn page(
        &self,
        query: &InventoryQuery,
        next: Option<&str>,
    ) -> Result<InventoryPage, ConnectorError> {
        self.check(query).map_err(refused)?;
        self.fetch(query, next).await
    }

    /// [`page`](Inventory::page) for a query `check` accepted: the kind's one request.
    ///
    /// # Errors
    /// As for `page`.
    async fn fetch(
        &self,
        query: &InventoryQuery,
        next: Option<&str>,
    ) -> Result<InventoryPage, ConnectorError>;
}

/// An error about a query or continuation handed in, found before any request was sent
/// (status 0).
pub fn refused(detail: impl Into<String>) -> ConnectorError {
    ConnectorError::BadResponse {
        status: 0,
        detail: detail.into(),
    }
}

/// Text of a JSON value as an inventory value: strings as they are, numbers and booleans as
/// written, null (and arrays or objects, which no key or version column holds) as `None`.
pub fn json_text(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The values of `columns` in a JSON object row, in order (`None` for a missing column).
pub fn json_row(
    row: &serde_json::Map<String, serde_json::Value>,
    columns: &[String],
) -> InventoryRow {
    InventoryRow {
        values: columns
            .iter()
            .map(|c| row.get(c).and_then(json_text))
            .collect(),
        deleted: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Counts the requests it would send; refuses queries without columns.
    struct Counting(std::sync::atomic::AtomicUsize);

    #[async_trait]
    impl Inventory for Counting {
        fn check(&self, query: &InventoryQuery) -> Result<(), String> {
            if query.columns.is_empty() {
                return Err("name a column".to_string());
            }
            Ok(())
        }
        async fn fetch(
            &self,
            _query: &InventoryQuery,
            _next: Option<&str>,
        ) -> Result<InventoryPage, ConnectorError> {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(InventoryPage {
                rows: Vec::new(),
                next: None,
            })
        }
    }

    #[tokio::test]
    async fn a_query_check_refuses_is_answered_before_any_request() {
        let inv = Counting(Default::default());
        let mut q = InventoryQuery {
            table: None,
            columns: Vec::new(),
            changed_since: None,
            page_size: 10,
        };
        let e = inv.page(&q, None).await.expect_err("refused");
        assert!(
            matches!(&e, ConnectorError::BadResponse { status: 0, detail } if detail == "name a column"),
            "{e:?}"
        );
        assert_eq!(inv.0.load(std::sync::atomic::Ordering::SeqCst), 0);
        q.columns.push("id".to_string());
        inv.page(&q, None).await.expect("a page");
        assert_eq!(inv.0.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[test]
    fn json_values_become_comparable_text() {
        let row = json!({"a": "x", "n": 9123456, "f": 1.5, "b": true, "z": null, "o": {}});
        let cols: Vec<String> = ["a", "n", "f", "b", "z", "o", "missing"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let r = json_row(row.as_object().expect("object"), &cols);
        assert_eq!(
            r.values,
            vec![
                Some("x".into()),
                Some("9123456".into()),
                Some("1.5".into()),
                Some("true".into()),
                None,
                None,
                None
            ]
        );
        assert!(!r.deleted);
    }
}
