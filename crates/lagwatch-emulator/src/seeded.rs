//! Serving the seeded rows of [`seed`](super::seed): a table's *view* (the source, or one
//! replica's copy), the walks the services page with, and the drift's ground truth.
//!
//! Why walks over indices: a seeded table may hold a million rows that exist nowhere but as
//! functions of their index, so a page never materialises the table. A listing walks indices
//! from a position the client carries back (a paging cookie, a skip token) and stops once the
//! page is full (plus one more match, so the last page never comes back empty); rows a filter
//! rejects are skipped on the way, so a page costs the rows it walks. Keyset paging (search
//! `$filter=key gt …&$orderby=key`, Elasticsearch `search_after`) needs key order instead:
//! a generated key (`"{col}-{i:08}"`, the integer `i`, or the row id, whose text ends in
//! `i` as fixed-width hex) grows with `i`, and the drift never touches the key column, so
//! index order *is* key order. A bound becomes a start index by binary search over the key
//! function, and the few live rows are merged in. Keys fixed by `seed.values` are not ordered;
//! sorting on them is refused.
//!
//! Seeded rows are settled: replication lag, drops, flaps and paused maps apply to live rows
//! only. A replica's `filter` applies to seeded rows too, decided on the settled source row
//! (generated fields, id and the system columns of its last settled version).

use std::cmp::Ordering;

use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, SubsecRound, Utc};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::odata::{Dialect, Filter, Lit, Op};
use super::replication::{Origin, ReplicaDef};
use super::scenario::{ColumnType, Table};
use super::seed::{
    DriftPlan, RowFate, Seed, created_age_secs, generated_fields, generated_value, replica_copy,
    row_id, source_version,
};
use super::{Emulator, json_response};

/// Longest key list of the drift truth endpoint.
const TRUTH_KEYS: usize = 10_000;

/// Largest row count whose generated string keys (`{col}-{i:08}`) still sort as their index.
const ORDERED_STRING_ROWS: u64 = 100_000_000;

/// One way of looking at a seeded table: as its source shows it, or as one replica holds it.
pub(crate) struct SeedView<'a> {
    /// The seeded (source) table.
    pub env: &'a str,
    pub set: &'a str,
    pub table: &'a Table,
    pub seed: &'a Seed,
    pub plan: DriftPlan,
    /// `None`: the source's view.
    pub replica: Option<&'a ReplicaDef>,
    /// The emulator's start, whole seconds: `createdon` of row `i` is this minus its age.
    epoch: DateTime<Utc>,
}

/// Dataverse's text of an instant (whole seconds, `Z`), which every view shows.
pub(crate) fn time_text(t: DateTime<Utc>) -> String {
    t.trunc_subsecs(0)
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Text of a key value, as the replication index keys live rows.
pub(crate) fn key_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Ordinal order of JSON scalars: strings by bytes (Azure AI Search and Elasticsearch keyword
/// order), numbers by value; values of different types by type (null, bool, number, string).
pub(crate) fn cmp_json(a: &Value, b: &Value) -> Ordering {
    fn rank(v: &Value) -> u8 {
        match v {
            Value::Null => 0,
            Value::Bool(_) => 1,
            Value::Number(_) => 2,
            Value::String(_) => 3,
            Value::Array(_) => 4,
            Value::Object(_) => 5,
        }
    }
    match (a, b) {
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x.cmp(&y),
            _ => x
                .as_f64()
                .partial_cmp(&y.as_f64())
                .unwrap_or(Ordering::Equal),
        },
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        _ => rank(a).cmp(&rank(b)),
    }
}

impl<'a> SeedView<'a> {
    pub fn rows(&self) -> u64 {
        self.plan.rows
    }

    /// The id of row `i` (a replica's copy keeps the source's id, as live replication does).
    pub fn id(&self, i: u64) -> Uuid {
        row_id(self.env, self.set, i)
    }

    fn id_column(&self) -> String {
        self.table.id_column(self.set)
    }

    /// The index of the row whose id is `id`, if `id` is one of this table's seeded ids
    /// (whether or not this view shows the row).
    pub fn index_of_id(&self, id: Uuid) -> Option<u64> {
        let (_, lo) = id.as_u64_pair();
        let i = lo & 0x3fff_ffff_ffff_ffff;
        (i < self.rows() && self.id(i) == id).then_some(i)
    }

    /// `createdon` of row `i`.
    fn created(&self, i: u64) -> DateTime<Utc> {
        // Tables too large for the calendar (trillions of rows) start at its beginning.
        let age = i64::try_from(created_age_secs(self.rows(), i)).unwrap_or(i64::MAX);
        chrono::TimeDelta::try_seconds(age)
            .and_then(|d| self.epoch.checked_sub_signed(d))
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
    }

    fn full(
        &self,
        i: u64,
        fields: Map<String, Value>,
        modified: DateTime<Utc>,
        version: u64,
    ) -> Map<String, Value> {
        let mut m = fields;
        m.insert(self.id_column(), Value::String(self.id(i).to_string()));
        m.insert(
            "createdon".into(),
            Value::String(time_text(self.created(i))),
        );
        m.insert("modifiedon".into(), Value::String(time_text(modified)));
        m.insert("versionnumber".into(), json!(version));
        m
    }

    /// Row `i` as the source shows it (id, columns, `createdon`, `modifiedon`,
    /// `versionnumber`) and its version; `None` when deleted. `now` is the time of the
    /// request, an in-flight row's `modifiedon`.
    pub fn source_row(&self, i: u64, now: DateTime<Utc>) -> Option<(Map<String, Value>, u64)> {
        let fate = self.plan.source_fate(i);
        if fate == RowFate::Deleted {
            return None;
        }
        let modified = if fate == RowFate::InFlight {
            now
        } else {
            self.created(i) + chrono::Duration::seconds(1)
        };
        let version = source_version(self.rows(), i, fate);
        let fields = generated_fields(&self.table.columns, self.seed, i);
        Some((self.full(i, fields, modified, version), version))
    }

    /// Row `i` in its last settled version (before any in-flight update and any drift): what a
    /// replica's `filter` decides on.
    fn settled_row(&self, i: u64) -> Map<String, Value> {
        let fields = generated_fields(&self.table.columns, self.seed, i);
        let modified = self.created(i) + chrono::Duration::seconds(1);
        self.full(
            i,
            fields,
            modified,
            source_version(self.rows(), i, RowFate::Normal),
        )
    }

    /// Whether the replica's `filter` lets row `i` through (always, for the source's view).
    pub fn passes_filter(&self, i: u64) -> bool {
        match self.replica.and_then(|r| r.filter.as_ref()) {
            None => true,
            Some(f) => f.matches(&self.settled_row(i), Dialect::DATAVERSE),
        }
    }

    /// The replica's copy of row `i` in source columns (id, columns, system columns), its
    /// version and fate; `None` when the replica does not hold it.
    pub fn copy_row(&self, i: u64) -> Option<(Map<String, Value>, u64, RowFate)> {
        let r = self.replica?;
        let fate = self.plan.replica_fate(i);
        if matches!(fate, RowFate::Missing | RowFate::Deleted) || !self.passes_filter(i) {
            return None;
        }
        let fields = generated_fields(&self.table.columns, self.seed, i);
        let (copy, version) = replica_copy(&fields, &r.key_column, i, fate)?;
        let settled = self.created(i) + chrono::Duration::seconds(1);
        let modified = if fate == RowFate::Stale {
            settled - chrono::Duration::seconds(1)
        } else {
            settled
        };
        Some((self.full(i, copy, modified, version), version, fate))
    }

    /// The document of row `i` in a keyed target (search, Elasticsearch, F&O): its key (the
    /// source key column's text) and the target fields; `None` when not held.
    pub fn doc(&self, i: u64) -> Option<Doc> {
        let r = self.replica?;
        let (copy, _, _) = self.copy_row(i)?;
        let id = copy.get(&r.key_column).and_then(key_text)?;
        Some(Doc {
            id,
            fields: r.shape_row(&copy, false),
        })
    }

    /// The source value of the replica's key column in row `i` (the same in every view:
    /// drift never touches it).
    pub fn key_value(&self, i: u64) -> Value {
        let key = self
            .replica
            .map_or_else(|| self.id_column(), |r| r.key_column.clone());
        if key == self.id_column() {
            return Value::String(self.id(i).to_string());
        }
        match self.table.columns.get(&key) {
            Some(t) => generated_value(&key, *t, self.seed, i),
            None => self.settled_row(i).remove(&key).unwrap_or(Value::Null),
        }
    }

    /// The value of the replica's key field in row `i` (the key column through its
    /// transform).
    fn target_key(&self, i: u64) -> Value {
        let t = self
            .replica
            .and_then(|r| r.key_field.as_ref().and_then(|f| r.transform.get(f)));
        match (t, self.key_value(i)) {
            (Some(t), Value::String(s)) => Value::String(t.apply(&s)),
            (_, v) => v,
        }
    }

    /// Whether the key column grows with the index: generated (not fixed by `seed.values`)
    /// as the id, an `int`, or a `string` of a table small enough that its 8-digit suffix is
    /// fixed width. Transforms (upper or lower case) keep that order: every key shares its
    /// prefix.
    fn key_ordered(&self) -> bool {
        let key = self
            .replica
            .map_or_else(|| self.id_column(), |r| r.key_column.clone());
        if key == self.id_column() {
            return true;
        }
        if self.seed.values.contains_key(&key) {
            return false;
        }
        match self.table.columns.get(&key) {
            Some(ColumnType::Int) => true,
            Some(ColumnType::String) => self.rows() <= ORDERED_STRING_ROWS,
            _ => false,
        }
    }

    /// Whether target field `field` sorts the replica's documents in index order: it is
    /// filled from the key column, which drift leaves alone, and that column is ordered.
    pub fn ordered_on(&self, field: &str) -> bool {
        self.replica
            .is_some_and(|r| r.key_field.as_deref() == Some(field))
            && self.key_ordered()
    }

    /// The first index whose key field is after `bound` (at or after, when `inclusive`);
    /// `rows` if none. Only meaningful when [`ordered_on`](Self::ordered_on) the key field.
    fn first_after(&self, bound: &Value, inclusive: bool) -> u64 {
        let (mut lo, mut hi) = (0u64, self.rows());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let o = cmp_json(&self.target_key(mid), bound);
            let after = o == Ordering::Greater || (inclusive && o == Ordering::Equal);
            if after {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        lo
    }

    /// The index of the row whose key (source key column text, compared case-insensitively
    /// when `fold`) is `key`, if this view's key grows with the index.
    pub fn index_of_key(&self, key: &str, fold: bool) -> Option<u64> {
        if !self.key_ordered() {
            return None;
        }
        let canon = |v: &Value| key_text(v).map(|s| if fold { s.to_lowercase() } else { s });
        let want = if fold {
            key.to_lowercase()
        } else {
            key.to_string()
        };
        // Keys of an `int` column order as numbers, others as text.
        let numeric = matches!(self.key_value(0), Value::Number(_));
        let want_num: Option<i64> = if numeric { key.parse().ok() } else { None };
        if numeric && want_num.is_none() {
            return None;
        }
        let (mut lo, mut hi) = (0u64, self.rows());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let v = self.key_value(mid);
            let o = match want_num {
                Some(n) => v.as_i64().map_or(Ordering::Less, |x| x.cmp(&n)),
                None => canon(&v).map_or(Ordering::Less, |s| s.as_str().cmp(want.as_str())),
            };
            match o {
                Ordering::Less => lo = mid + 1,
                Ordering::Greater => hi = mid,
                Ordering::Equal => return Some(mid),
            }
        }
        None
    }

    /// How many rows this view shows (before any request filter). Arithmetic, unless the
    /// replica has a `filter`: then one pass over the table.
    pub fn held_count(&self) -> u64 {
        let p = &self.plan;
        match self.replica {
            None => p.rows - p.deleted,
            Some(r) if r.filter.is_none() => p.rows - (p.deleted - p.drift.extra) - p.drift.missing,
            Some(_) => (0..p.rows)
                .filter(|&i| {
                    !matches!(
                        self.plan.replica_fate(i),
                        RowFate::Missing | RowFate::Deleted
                    ) && self.passes_filter(i)
                })
                .count() as u64,
        }
    }
}

/// A document of a keyed target: its id (key text) and fields.
pub(crate) struct Doc {
    pub id: String,
    pub fields: Map<String, Value>,
}

/// Where a listing continues: the view (segment), the row index in it, and how many rows of
/// the listing's tail (the stored and live rows after the seeded ones) were already served.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Cursor {
    pub seg: usize,
    pub i: u64,
    pub tail: usize,
}

impl Cursor {
    /// `seg.i.tail`, the form carried in paging cookies and skip tokens.
    pub fn encode(&self) -> String {
        format!("{}.{}.{}", self.seg, self.i, self.tail)
    }

    pub fn decode(s: &str) -> Option<Cursor> {
        let mut parts = s.split('.');
        let c = Cursor {
            seg: parts.next()?.parse().ok()?,
            i: parts.next()?.parse().ok()?,
            tail: parts.next()?.parse().ok()?,
        };
        parts.next().is_none().then_some(c)
    }
}

/// A page of a segmented listing: rows of segments `0..rows.len()` (row `i` of segment `s` is
/// `row(s, i)`, `None` when absent or filtered out), then `tail`, from `from`, at most `want`
/// rows. Returns the rows and where the next page starts (`None` when this is the last page:
/// the walk looks one match ahead so that the last page is never empty).
pub(crate) fn walk_segments<T>(
    rows: &[u64],
    tail: Vec<T>,
    from: Cursor,
    want: usize,
    mut row: impl FnMut(usize, u64) -> Option<T>,
) -> (Vec<T>, Option<Cursor>) {
    let mut out = Vec::with_capacity(want.min(10_000));
    let mut pos = from;
    while pos.seg < rows.len() {
        while pos.i < rows[pos.seg] {
            if let Some(t) = row(pos.seg, pos.i) {
                if out.len() == want {
                    return (out, Some(pos));
                }
                out.push(t);
            }
            pos.i += 1;
        }
        pos.seg += 1;
        pos.i = 0;
    }
    for t in tail.into_iter().skip(from.tail.max(pos.tail)) {
        if out.len() == want {
            return (out, Some(pos));
        }
        out.push(t);
        pos.tail += 1;
    }
    (out, None)
}

/// In which order a keyed walk visits documents.
pub(crate) enum Order {
    /// Views in index order, one after the other, then the live documents.
    Index,
    /// By the value of `field`, ascending, only documents after `after` (`(value, inclusive)`).
    Key {
        field: String,
        after: Option<(Value, bool)>,
    },
}

/// Visits the documents of `views` and `live` in `order` until `visit` returns `false`.
///
/// # Errors
/// Key order on a field some view's documents do not grow with (a sentence for a 400).
pub(crate) fn walk_docs(
    views: &[SeedView],
    live: Vec<Doc>,
    order: &Order,
    mut visit: impl FnMut(Doc) -> bool,
) -> Result<(), String> {
    match order {
        Order::Index => {
            for v in views {
                for i in 0..v.rows() {
                    if let Some(d) = v.doc(i)
                        && !visit(d)
                    {
                        return Ok(());
                    }
                }
            }
            for d in live {
                if !visit(d) {
                    return Ok(());
                }
            }
            Ok(())
        }
        Order::Key { field, after } => {
            if let Some(v) = views.iter().find(|v| !v.ordered_on(field)) {
                return Err(format!(
                    "ordering on '{field}' over the seeded rows of {}/{} is not supported by the \
                     emulator: only the field filled from a generated key column is ordered",
                    v.env, v.set
                ));
            }
            let is_after = |x: &Value| match after {
                None => true,
                Some((b, inclusive)) => {
                    let o = cmp_json(x, b);
                    o == Ordering::Greater || (*inclusive && o == Ordering::Equal)
                }
            };
            let mut live: Vec<(Value, Doc)> = live
                .into_iter()
                .filter_map(|d| {
                    let k = d.fields.get(field).cloned().unwrap_or(Value::Null);
                    (!k.is_null() && is_after(&k)).then_some((k, d))
                })
                .collect();
            live.sort_by(|a, b| cmp_json(&a.0, &b.0));
            let mut live = live.into_iter().peekable();
            let mut next: Vec<u64> = views
                .iter()
                .map(|v| after.as_ref().map_or(0, |(b, inc)| v.first_after(b, *inc)))
                .collect();
            // Each view's next held document, looked up lazily.
            let mut heads: Vec<Option<(Value, Doc)>> = views.iter().map(|_| None).collect();
            loop {
                for (k, v) in views.iter().enumerate() {
                    while heads[k].is_none() && next[k] < v.rows() {
                        let i = next[k];
                        next[k] += 1;
                        if let Some(d) = v.doc(i) {
                            heads[k] = Some((v.target_key(i), d));
                        }
                    }
                }
                let best_view = heads
                    .iter()
                    .enumerate()
                    .filter_map(|(k, h)| h.as_ref().map(|(key, _)| (k, key)))
                    .min_by(|a, b| cmp_json(a.1, b.1))
                    .map(|(k, key)| (k, key.clone()));
                let take_live = match (&best_view, live.peek()) {
                    (None, None) => return Ok(()),
                    (None, Some(_)) => true,
                    (Some(_), None) => false,
                    (Some((_, key)), Some((lk, _))) => cmp_json(lk, key) == Ordering::Less,
                };
                let doc = if take_live {
                    live.next().map(|(_, d)| d)
                } else {
                    best_view.and_then(|(k, _)| heads[k].take()).map(|(_, d)| d)
                };
                if let Some(d) = doc
                    && !visit(d)
                {
                    return Ok(());
                }
            }
        }
    }
}

/// A lower bound on `field` that `filter` implies (`field gt|ge literal`, possibly inside
/// `and`s): where a keyset page starts. The filter is still applied to every row.
pub(crate) fn lower_bound(filter: &Filter, field: &str) -> Option<(Value, bool)> {
    match filter {
        Filter::Cmp {
            field: f,
            op: op @ (Op::Gt | Op::Ge),
            lit,
        } if f == field => {
            let v = match lit {
                Lit::Str(s) => Value::String(s.clone()),
                Lit::Int(i) => json!(i),
                Lit::Float(x) => json!(x),
                _ => return None,
            };
            Some((v, *op == Op::Ge))
        }
        Filter::And(a, b) => match (lower_bound(a, field), lower_bound(b, field)) {
            (Some(x), Some(y)) => Some(match cmp_json(&x.0, &y.0) {
                Ordering::Greater => x,
                Ordering::Less => y,
                Ordering::Equal => {
                    if x.1 {
                        y
                    } else {
                        x
                    }
                }
            }),
            (x, y) => x.or(y),
        },
        _ => None,
    }
}

impl Emulator {
    fn view<'a>(
        &'a self,
        env: &'a str,
        set: &'a str,
        replica: Option<&'a ReplicaDef>,
    ) -> Option<SeedView<'a>> {
        let table = self.scenario.dataverse.get(env)?.tables.get(set)?;
        let seed = table.seed.as_ref()?;
        let drift = replica
            .and_then(|r| self.scenario.replicas.get(&r.name))
            .and_then(|r| r.drift)
            .unwrap_or_default();
        // Validated with the scenario; a plan that cannot be made shows no seeded rows.
        let plan = DriftPlan::new(seed, drift).ok()?;
        Some(SeedView {
            env,
            set,
            table,
            seed,
            plan,
            replica,
            epoch: self.started_wall.trunc_subsecs(0),
        })
    }

    /// The seeded rows of `env/set` as its source shows them, if it has any.
    pub(crate) fn source_view<'a>(&'a self, env: &'a str, set: &'a str) -> Option<SeedView<'a>> {
        self.view(env, set, None)
    }

    /// Replica `r`'s copy of its source's seeded rows, if the source has any.
    pub(crate) fn replica_view<'a>(&'a self, r: &'a ReplicaDef) -> Option<SeedView<'a>> {
        if r.origin != Origin::Dataverse {
            // Only Dataverse tables are seeded; an F&O entity has no rows of its own to copy.
            return None;
        }
        self.view(&r.env, &r.set, Some(r))
    }

    /// Replica views of `replicas`, in their order, for those whose source is seeded.
    pub(crate) fn replica_views<'a>(&'a self, replicas: &[&'a ReplicaDef]) -> Vec<SeedView<'a>> {
        replicas
            .iter()
            .filter_map(|r| self.replica_view(r))
            .collect()
    }

    /// `GET /_truth/_drift/{replica}`: the exact drift of a replica's copy of the seeded rows.
    pub(crate) fn drift_truth_endpoint(&self, replica: &str) -> Response {
        let Some(r) = self.replicas.iter().find(|r| r.name == replica) else {
            return json_response(
                StatusCode::NOT_FOUND,
                &json!({"error": format!("no replica named \"{replica}\"")}),
            );
        };
        json_response(StatusCode::OK, &self.drift_truth(r))
    }

    fn drift_truth(&self, r: &ReplicaDef) -> Value {
        let kinds = [
            ("missing", RowFate::Missing),
            ("stale", RowFate::Stale),
            ("extra", RowFate::Extra),
            ("changed", RowFate::Changed),
            ("in_flight", RowFate::InFlight),
            ("deleted", RowFate::Deleted),
        ];
        let mut counts = Map::new();
        let mut keys = Map::new();
        let mut truncated = false;
        let (source_rows, replica_rows) = match self.replica_view(r) {
            None => {
                for (name, _) in kinds {
                    counts.insert(name.into(), json!(0));
                    keys.insert(name.into(), json!([]));
                }
                (0, 0)
            }
            Some(v) => {
                let ranges = v.plan.replica_ranges();
                for (name, fate) in kinds {
                    let mut rows: Vec<u64> = ranges
                        .iter()
                        .filter(|(f, _, _)| *f == fate)
                        .flat_map(|&(_, first, count)| first..first + count)
                        .map(|p| v.plan.index_at(p))
                        .filter(|&i| v.passes_filter(i))
                        .collect();
                    rows.sort_unstable();
                    counts.insert(name.into(), json!(rows.len()));
                    truncated |= rows.len() > TRUTH_KEYS;
                    let list: Vec<Value> = rows
                        .iter()
                        .take(TRUTH_KEYS)
                        .map(|&i| key_text(&v.key_value(i)).map_or(Value::Null, Value::String))
                        .collect();
                    keys.insert(name.into(), Value::Array(list));
                }
                (v.plan.rows - v.plan.deleted, v.held_count())
            }
        };
        json!({
            "replica": r.name,
            "source": r.describe_source(),
            "key": r.key_column,
            "rows": {"source": source_rows, "replica": replica_rows},
            "counts": Value::Object(counts),
            "keys": Value::Object(keys),
            "truncated": truncated,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip() {
        let c = Cursor {
            seg: 1,
            i: 12_345,
            tail: 7,
        };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        for bad in ["", "1.2", "1.2.3.4", "a.b.c", "-1.0.0"] {
            assert_eq!(Cursor::decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn segment_walks_fill_pages_and_never_end_on_an_empty_one() {
        // Two segments of 5 and 3 rows; odd rows absent; a tail of two.
        let rows = [5u64, 3];
        let row = |s: usize, i: u64| i.is_multiple_of(2).then_some(format!("{s}:{i}"));
        let mut all = Vec::new();
        let mut from = Cursor::default();
        let mut pages = 0;
        loop {
            let (page, next) =
                walk_segments(&rows, vec!["t0".to_string(), "t1".into()], from, 2, row);
            assert!(!page.is_empty());
            all.extend(page);
            pages += 1;
            match next {
                Some(n) => from = n,
                None => break,
            }
        }
        assert_eq!(all, ["0:0", "0:2", "0:4", "1:0", "1:2", "t0", "t1"]);
        assert_eq!(pages, 4);
        let (page, next) = walk_segments(&rows, Vec::<String>::new(), Cursor::default(), 5, row);
        assert_eq!(page.len(), 5);
        assert_eq!(next, None, "exactly full and nothing after: no next page");
    }

    #[test]
    fn bounds_come_from_key_comparisons_under_and() {
        let f = super::super::odata::parse_filter("k gt 'a-1' and k ge 'a-2' and n eq 3")
            .expect("parses");
        assert_eq!(lower_bound(&f, "k"), Some((json!("a-2"), true)));
        let f = super::super::odata::parse_filter("k gt 'a-1' or k gt 'a-2'").expect("parses");
        assert_eq!(lower_bound(&f, "k"), None);
        assert_eq!(cmp_json(&json!(2), &json!(10)), Ordering::Less);
        assert_eq!(cmp_json(&json!("k-2"), &json!("k-10")), Ordering::Greater);
    }
}
