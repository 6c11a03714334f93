//! Links: bidirectional dual-write maps with a conflict policy, and their ground truth.
//!
//! Why: lagwatch's conflict probes update a canary row on both sides of a bidirectional map
//! with different values and then read both sides until they agree. To check the outcomes it
//! reports (`converged_same`, `policy_violated`, `diverged`, `rejected`), the emulator must
//! make each happen on purpose and know what really happened.
//!
//! A scenario's `links.<name>` joins two replicas that are opposite directions between a
//! Dataverse table (side A, named by its environment, such as `crm`) and a writable F&O entity
//! (side B, such as `fin`). A *linked row* is identified by its key value (the replicas' keys,
//! which map onto each other: `name` ↔ `OrganizationName`), compared without case. Its
//! *linked fields* are the fields the two maps carry, except the key and the F&O entity key
//! (`CustomerAccount` and what maps to it: the row's identity in F&O, which never changes).
//!
//! **Link writes.** Every write through a service's own API that names a linked field of a
//! row of the linked table or entity is a link write on that side: a Dataverse `POST` or
//! `PATCH` of a row the A→B replica carries (its `filter`), an F&O `POST` or `PATCH` of a row
//! the B→A replica carries, and, because the link makes them writable, a `PATCH` of the other
//! side's copies (a Dataverse copy of an F&O row, an F&O copy of a Dataverse row). A write
//! has the linked values it names (its side's field names), its commit instant (true time),
//! its **stamp** (the writing environment's clock, skewed, at commit), and a delivery instant
//! at the other side: the instant the replica of its direction shows the write (a write that
//! replicates as a row: that row's landscape arrival), or commit plus a lag drawn from that
//! replica (a change of a copy, which has no row of its own to replicate); none when the
//! replica drops it or a paused map holds it.
//!
//! **Resolution** ([`resolve`], pure). Each side applies events in instant order: its own
//! writes at commit, the other side's at delivery. A delivery of `w` at side `L` *conflicts*
//! when `L` holds a write of its own that `w`'s side had not received when `w` was committed.
//! `last_writer_wins` applies `w` iff its stamp is later than the stamp of `L`'s current value
//! (a tie keeps `L`'s own), conflict or not; `source_wins: X` lets `X`'s write win a conflict
//! on both sides; `diverge` drops a conflicting write at the other side (each side keeps its
//! own for good); `reject` refuses a write while a write of the row is in flight either way
//! (committed, not yet delivered), so a conflict never happens. Nothing is echoed: an applied
//! delivery is never sent on. Resolution runs lazily at read time from the remembered writes.
//!
//! **Served values.** Every read of a row whose key has link writes shows that side's
//! resolved values for the linked fields it holds (Dataverse: by id, `$filter`, listings; F&O:
//! by key, `$filter`, listings), and Dataverse `modifiedon` is the side's clock when the
//! current value was applied there. Rows without link writes are served as before.
//!
//! Bounds: the last [`WRITES_KEPT`] writes per key and [`KEYS_KEPT`] keys per emulator are
//! remembered (the oldest key is forgotten first); a key's resolution starts from its oldest
//! remembered write.

use std::collections::{HashMap, VecDeque};
use std::sync::MutexGuard;

use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use tokio::time::Instant;
use uuid::Uuid;

use super::odata::Dialect;
use super::replication::ReplicaDef;
use super::scenario::{ConflictPolicy, FOREVER, Scenario, Target, Transform};
use super::{Emulator, json_response, rfc3339};

/// Writes remembered per key.
pub(crate) const WRITES_KEPT: usize = 1024;

/// Keys remembered per emulator, across links.
pub(crate) const KEYS_KEPT: usize = 10_000;

/// The Dataverse error code of a write refused by the `reject` policy (Dataverse's
/// "concurrency conflict" family; the documents show no dedicated dual-write code).
pub(crate) const DV_REJECT_CODE: &str = "0x80040265";

/// The Dataverse message of a write refused by the `reject` policy.
pub(crate) const DV_REJECT_MESSAGE: &str = "Dual-write: the record is being changed by a concurrent transaction in finance and operations apps; the change was rolled back.";

/// The Infolog line of an F&O write refused by the `reject` policy.
pub(crate) const FNO_REJECT_INFOLOG: &str = "Dual-write: the record is being changed by a concurrent transaction in Dataverse; the change was rolled back.";

/// A side of a link: A is the Dataverse table, B the F&O entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    A,
    B,
}

impl Side {
    pub(crate) fn other(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }

    fn index(self) -> usize {
        match self {
            Side::A => 0,
            Side::B => 1,
        }
    }
}

/// A conflict policy, by side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Policy {
    LastWriterWins,
    SourceWins(Side),
    Diverge,
    Reject,
}

/// One link write.
#[derive(Debug, Clone)]
pub(crate) struct LinkWrite {
    pub side: Side,
    /// True time of the commit (or of the refusal).
    pub committed: Instant,
    /// The writing environment's clock at commit.
    pub stamp: DateTime<Utc>,
    /// The linked values written, in the writing side's field names.
    pub values: Map<String, Value>,
    /// When the other side gets it; `None`: never (dropped by the replica, held by a paused
    /// map, or refused).
    pub delivery: Option<Instant>,
    /// Refused by the `reject` policy: nothing was stored.
    pub rejected: bool,
}

/// What happened to a write at the other side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fate {
    Applied,
    Dropped,
    Pending,
    Rejected,
}

impl Fate {
    fn name(self) -> &'static str {
        match self {
            Fate::Applied => "applied",
            Fate::Dropped => "dropped",
            Fate::Pending => "pending",
            Fate::Rejected => "rejected",
        }
    }
}

/// One side's resolved state of a key.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct SideState {
    /// The linked values it holds, in its field names (only those link writes set).
    pub values: Map<String, Value>,
    /// The stamp of the write its current value came from.
    pub stamp: Option<DateTime<Utc>>,
    /// The side that wrote its current value.
    pub from: Option<Side>,
    /// When it applied its current value (true time).
    pub applied_at: Option<Instant>,
}

/// The resolution of a key's writes at an instant.
#[derive(Debug, Clone)]
pub(crate) struct Resolution {
    /// By [`Side::index`].
    pub sides: [SideState; 2],
    /// Per write, its fate at the other side.
    pub fates: Vec<Fate>,
    /// Per delivered write, whether its delivery conflicted.
    pub conflicts: Vec<Option<bool>>,
}

impl Resolution {
    pub(crate) fn side(&self, s: Side) -> &SideState {
        &self.sides[s.index()]
    }
}

/// Turns one side's values into the other side's field names (the map of a direction).
pub(crate) type Carry<'a> = &'a dyn Fn(Side, &Map<String, Value>) -> Map<String, Value>;

/// Resolves `writes` (one key's) as of `now` under `policy`; `carry` turns one side's values
/// into the other side's field names (the map of the write's direction).
pub(crate) fn resolve(
    policy: Policy,
    writes: &[LinkWrite],
    now: Instant,
    carry: Carry<'_>,
) -> Resolution {
    // (instant, local before delivery at one instant, write order, delivery?)
    let mut events: Vec<(Instant, u8, usize)> = Vec::new();
    for (i, w) in writes.iter().enumerate() {
        if w.rejected || w.committed > now {
            continue;
        }
        events.push((w.committed, 0, i));
        if let Some(d) = w.delivery.filter(|d| *d <= now) {
            events.push((d, 1, i));
        }
    }
    events.sort_unstable();
    let mut sides = [SideState::default(), SideState::default()];
    let mut fates: Vec<Fate> = writes
        .iter()
        .map(|w| {
            if w.rejected {
                Fate::Rejected
            } else {
                Fate::Pending
            }
        })
        .collect();
    let mut conflicts = vec![None; writes.len()];
    let mut held = vec![false; writes.len()];
    for (at, kind, i) in events {
        let w = &writes[i];
        if kind == 0 {
            held[i] = true;
            let s = &mut sides[w.side.index()];
            // Last-writer-wins is a register on the stamps, at the writing side too: a change
            // stamped before the value it already holds (its clock is behind the one that
            // wrote that value) is overwritten at once, so both sides still end on the
            // highest stamp, which may be the earlier change.
            if policy == Policy::LastWriterWins && s.stamp.is_some_and(|current| w.stamp <= current)
            {
                continue;
            }
            s.values.extend(w.values.clone());
            s.stamp = Some(w.stamp);
            s.from = Some(w.side);
            s.applied_at = Some(at);
            continue;
        }
        let to = w.side.other();
        // A write of `to`'s own that `w`'s side had not received when `w` was committed.
        let conflict = writes
            .iter()
            .enumerate()
            .any(|(j, l)| held[j] && l.side == to && l.delivery.is_none_or(|d| d > w.committed));
        let s = &mut sides[to.index()];
        let apply = match policy {
            Policy::LastWriterWins => s.stamp.is_none_or(|current| w.stamp > current),
            Policy::SourceWins(x) => !conflict || x == w.side,
            Policy::Diverge => !conflict,
            Policy::Reject => true,
        };
        conflicts[i] = Some(conflict);
        if apply {
            s.values.extend(carry(w.side, &w.values));
            s.stamp = Some(w.stamp);
            s.from = Some(w.side);
            s.applied_at = Some(at);
            fates[i] = Fate::Applied;
        } else {
            fates[i] = Fate::Dropped;
        }
    }
    Resolution {
        sides,
        fates,
        conflicts,
    }
}

/// Whether the `reject` policy refuses a write of a key at `now`: a write of it is in flight
/// either way (committed, not yet delivered). A write the replica lost is not in flight.
pub(crate) fn in_flight(writes: &[LinkWrite], now: Instant) -> bool {
    writes
        .iter()
        .any(|w| !w.rejected && w.committed <= now && w.delivery.is_some_and(|d| d > now))
}

/// A field carried from one side to the other: its name there, its name here, and the
/// replica's transformation on the way.
#[derive(Debug, Clone)]
struct Carried {
    from: String,
    to: String,
    transform: Option<Transform>,
}

/// A resolved scenario link.
pub(crate) struct LinkDef {
    pub name: String,
    pub policy: Policy,
    /// The Dataverse environment and table (side A).
    pub dv_env: String,
    pub dv_set: String,
    /// The F&O environment and entity (side B).
    pub fno_env: String,
    pub fno_entity: String,
    /// Index in the emulator's replicas of the A→B and the B→A replica.
    pub out: usize,
    pub back: usize,
    /// The key column (A) and key field (B).
    pub key_a: String,
    pub key_b: String,
    carry_ab: Vec<Carried>,
    carry_ba: Vec<Carried>,
}

impl LinkDef {
    /// The links of a validated scenario, over its resolved replicas.
    pub(crate) fn build_all(s: &Scenario, replicas: &[ReplicaDef]) -> Vec<LinkDef> {
        let mut out = Vec::new();
        for (name, l) in &s.links {
            let find = |n: &String| replicas.iter().position(|r| &r.name == n);
            let idx: Vec<usize> = l.replicas.iter().filter_map(find).collect();
            let (Some(&i), Some(&j)) = (idx.first(), idx.get(1)) else {
                continue;
            };
            let (o, b) = match replicas[i].target {
                Target::Fno { .. } => (i, j),
                _ => (j, i),
            };
            let (ro, rb) = (&replicas[o], &replicas[b]);
            let Some(entity_key) = s
                .fno
                .get(&rb.env)
                .and_then(|e| e.entities.get(&rb.set))
                .map(|d| d.key.clone())
            else {
                continue;
            };
            // The key pair is the row's identity; the F&O entity key its identity in F&O.
            let linked = |a: &str, b: &str| {
                a != ro.key_column && b != rb.key_column && b != entity_key && b != "dataAreaId"
            };
            let carry = |r: &ReplicaDef, a_to_b: bool| -> Vec<Carried> {
                r.map
                    .iter()
                    .filter(|(from, to)| {
                        if a_to_b {
                            linked(from, to)
                        } else {
                            linked(to, from)
                        }
                    })
                    .map(|(from, to)| Carried {
                        from: from.clone(),
                        to: to.clone(),
                        transform: r.transform.get(to).copied(),
                    })
                    .collect()
            };
            let policy = match &l.policy {
                ConflictPolicy::LastWriterWins => Policy::LastWriterWins,
                ConflictPolicy::SourceWins(env) if *env == ro.env => Policy::SourceWins(Side::A),
                ConflictPolicy::SourceWins(_) => Policy::SourceWins(Side::B),
                ConflictPolicy::Diverge => Policy::Diverge,
                ConflictPolicy::Reject => Policy::Reject,
            };
            out.push(LinkDef {
                name: name.clone(),
                policy,
                dv_env: ro.env.clone(),
                dv_set: ro.set.clone(),
                fno_env: rb.env.clone(),
                fno_entity: rb.set.clone(),
                out: o,
                back: b,
                key_a: ro.key_column.clone(),
                key_b: rb.key_column.clone(),
                carry_ab: carry(ro, true),
                carry_ba: carry(rb, false),
            });
        }
        out
    }

    /// The side's environment name.
    pub(crate) fn side_name(&self, s: Side) -> &str {
        match s {
            Side::A => &self.dv_env,
            Side::B => &self.fno_env,
        }
    }

    /// The key column (A) or field (B).
    pub(crate) fn key_of(&self, s: Side) -> &str {
        match s {
            Side::A => &self.key_a,
            Side::B => &self.key_b,
        }
    }

    /// The replica that carries a side's writes to the other side.
    pub(crate) fn carrier(&self, s: Side) -> usize {
        match s {
            Side::A => self.out,
            Side::B => self.back,
        }
    }

    /// The linked fields of a side, in its names: what it carries, and what it is carried.
    pub(crate) fn fields(&self, s: Side) -> Vec<&str> {
        let (mine, theirs) = match s {
            Side::A => (&self.carry_ab, &self.carry_ba),
            Side::B => (&self.carry_ba, &self.carry_ab),
        };
        let mut out: Vec<&str> = mine.iter().map(|c| c.from.as_str()).collect();
        for c in theirs {
            if !out.contains(&c.to.as_str()) {
                out.push(&c.to);
            }
        }
        out
    }

    /// `values` of side `from` in the other side's names (the map of that direction).
    pub(crate) fn carry(&self, from: Side, values: &Map<String, Value>) -> Map<String, Value> {
        let map = match from {
            Side::A => &self.carry_ab,
            Side::B => &self.carry_ba,
        };
        let mut out = Map::new();
        for c in map {
            if let Some(v) = values.get(&c.from) {
                let v = match (c.transform, v) {
                    (Some(t), Value::String(s)) => Value::String(t.apply(s)),
                    _ => v.clone(),
                };
                out.insert(c.to.clone(), v);
            }
        }
        out
    }

    /// Whether both sides hold the same linked values: every field carried one way that
    /// either side holds is held by both, equal once carried.
    fn agree(&self, r: &Resolution) -> bool {
        let (a, b) = (r.side(Side::A), r.side(Side::B));
        if a.from.is_none() || b.from.is_none() {
            return false;
        }
        let check = |from: Side, map: &[Carried], x: &SideState, y: &SideState| {
            map.iter()
                .all(|c| match (x.values.get(&c.from), y.values.get(&c.to)) {
                    (None, None) => true,
                    (Some(_), None) | (None, Some(_)) => false,
                    (Some(v), Some(w)) => {
                        let mut one = Map::new();
                        one.insert(c.from.clone(), v.clone());
                        self.carry(from, &one).get(&c.to) == Some(w)
                    }
                })
        };
        check(Side::A, &self.carry_ab, a, b) && check(Side::B, &self.carry_ba, b, a)
    }
}

/// The remembered link writes, by link and key.
#[derive(Default)]
pub(crate) struct Book {
    keys: HashMap<(usize, String), KeyLog>,
    order: VecDeque<(usize, String)>,
}

struct KeyLog {
    /// The key as first written (the map's key is lower-cased).
    display: String,
    writes: Vec<LinkWrite>,
}

impl Book {
    fn writes(&self, link: usize, key: &str) -> Option<&KeyLog> {
        self.keys.get(&(link, key.to_lowercase()))
    }

    fn push(&mut self, link: usize, key: &str, w: LinkWrite) {
        let slot = (link, key.to_lowercase());
        let log = self.keys.entry(slot.clone()).or_insert_with(|| {
            self.order.push_back(slot);
            KeyLog {
                display: key.to_string(),
                writes: Vec::new(),
            }
        });
        log.writes.push(w);
        if log.writes.len() > WRITES_KEPT {
            log.writes.remove(0);
        }
        while self.order.len() > KEYS_KEPT {
            if let Some(old) = self.order.pop_front() {
                self.keys.remove(&old);
            }
        }
    }
}

/// A link write about to be made: checked against the policy before anything is stored.
pub(crate) struct Planned {
    pub link: usize,
    pub side: Side,
    pub key: String,
    pub values: Map<String, Value>,
    pub committed: Instant,
}

/// The text of a key value.
fn key_text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

impl Emulator {
    /// The links of the scenario.
    pub(crate) fn links(&self) -> &[LinkDef] {
        &self.links
    }

    /// The link whose side A is Dataverse table `env/set`.
    pub(crate) fn dv_link(&self, env: &str, set: &str) -> Option<usize> {
        self.links
            .iter()
            .position(|l| l.dv_env == env && l.dv_set == set)
    }

    /// The link whose side B is F&O entity `env/entity`.
    pub(crate) fn fno_link(&self, env: &str, entity: &str) -> Option<usize> {
        self.links
            .iter()
            .position(|l| l.fno_env == env && l.fno_entity == entity)
    }

    /// The link writes, locked. Taken before the state lock, never while holding it: a write
    /// holds it from its policy check until its write is recorded.
    pub(crate) fn link_book(&self) -> MutexGuard<'_, Book> {
        self.link_book.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Side `s`'s clock at `at`: the wall clock plus its environment's skew.
    pub(crate) fn side_time(&self, def: &LinkDef, s: Side, at: Instant) -> DateTime<Utc> {
        match s {
            Side::A => self.dataverse_time(&def.dv_env, at),
            Side::B => self.wall_time(at) + self.fno_skew(&def.fno_env),
        }
    }

    /// The link write a change on side `s` would be, if it is one: `after` is the row as the
    /// change leaves it (its key; the carrying replica's filter), `body` the fields the
    /// change names (the linked ones are its values). `None` when the replica does not carry
    /// the row, it has no key, or the change names no linked field.
    pub(crate) fn plan_link_write(
        &self,
        link: usize,
        s: Side,
        after: &Map<String, Value>,
        body: &Map<String, Value>,
    ) -> Option<Planned> {
        let def = self.links.get(link)?;
        let carrier = self.replicas.get(def.carrier(s))?;
        let dialect = match s {
            Side::A => Dialect::DATAVERSE,
            Side::B => Dialect::FNO,
        };
        if carrier
            .filter
            .as_ref()
            .is_some_and(|f| !f.matches(after, dialect))
        {
            return None;
        }
        let key = key_text(after.get(def.key_of(s)))?;
        let fields = def.fields(s);
        let values: Map<String, Value> = body
            .iter()
            .filter(|(k, _)| fields.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        (!values.is_empty()).then(|| Planned {
            link,
            side: s,
            key,
            values,
            committed: Instant::now(),
        })
    }

    /// `Err(())` when the link's policy refuses `p` now (`reject`, a write of the row in
    /// flight); the refusal is remembered for the truth. The caller answers with its
    /// service's error ([`DV_REJECT_MESSAGE`], [`FNO_REJECT_INFOLOG`]).
    pub(crate) fn link_admit(&self, book: &mut Book, p: &Planned) -> Result<(), ()> {
        let Some(def) = self.links.get(p.link) else {
            return Ok(());
        };
        if def.policy != Policy::Reject {
            return Ok(());
        }
        let busy = book
            .writes(p.link, &p.key)
            .is_some_and(|log| in_flight(&log.writes, p.committed));
        if !busy {
            return Ok(());
        }
        book.push(
            p.link,
            &p.key,
            LinkWrite {
                side: p.side,
                committed: p.committed,
                stamp: self.side_time(def, p.side, p.committed),
                values: p.values.clone(),
                delivery: None,
                rejected: true,
            },
        );
        Err(())
    }

    /// Records committed write `p`, delivered to the other side at `delivery`.
    pub(crate) fn link_commit(&self, book: &mut Book, p: Planned, delivery: Option<Instant>) {
        let Some(def) = self.links.get(p.link) else {
            return;
        };
        let stamp = self.side_time(def, p.side, p.committed);
        book.push(
            p.link,
            &p.key,
            LinkWrite {
                side: p.side,
                committed: p.committed,
                stamp,
                values: p.values,
                delivery,
                rejected: false,
            },
        );
    }

    /// The delivery of a write that replicated as row `id` through `replica`: when the
    /// landscape shows that version there (`None` if dropped, or held by a paused map).
    pub(crate) fn delivery_via(&self, replica: usize, id: Uuid) -> Option<Instant> {
        let r = self.replicas.get(replica)?;
        let at = self
            .landscape
            .replica_entry(&r.name, &id.to_string())?
            .visible_at?;
        (at <= self.started + FOREVER.get() / 2).then_some(at)
    }

    /// The delivery of a change of a copy (no row of its own to replicate): a lag drawn
    /// from `replica` (its drop probability, stall outages and paused map too).
    pub(crate) fn delivery_drawn(&self, replica: usize, now: Instant) -> Option<Instant> {
        let r = self.replicas.get(replica)?;
        let at = self.landscape.draw_arrival(&r.name, now)?;
        (at <= self.started + FOREVER.get() / 2).then_some(at)
    }

    /// The resolution of `key` of `link` now, if it has link writes.
    fn resolution(&self, link: usize, key: &str, now: Instant) -> Option<Resolution> {
        let def = self.links.get(link)?;
        let book = self.link_book();
        let log = book.writes(link, key)?;
        let writes = log.writes.clone();
        drop(book);
        Some(resolve(def.policy, &writes, now, &|s, v| def.carry(s, v)))
    }

    /// Overlays side `s`'s resolved linked values on `rows` (served rows of that side, in its
    /// field names); `modified`, a Dataverse row's `modifiedon` column, becomes the side's
    /// clock when its current value was applied. Rows whose key has no link writes are left
    /// as they are. Never called with the state lock held.
    pub(crate) fn link_overlay<'a>(
        &self,
        link: usize,
        s: Side,
        rows: impl IntoIterator<Item = &'a mut Map<String, Value>>,
        modified: Option<&str>,
    ) {
        let Some(def) = self.links.get(link) else {
            return;
        };
        let now = Instant::now();
        for row in rows {
            let Some(key) = key_text(row.get(def.key_of(s))) else {
                continue;
            };
            let Some(r) = self.resolution(link, &key, now) else {
                continue;
            };
            let state = r.side(s);
            for (k, v) in &state.values {
                row.insert(k.clone(), v.clone());
            }
            if let (Some(col), Some(at)) = (modified, state.applied_at) {
                let t = self.side_time(def, s, at);
                row.insert(col.to_string(), Value::String(super::dataverse::dv_time(t)));
            }
        }
    }

    /// `/_truth/links`, `/_truth/links/{link}` and `/_truth/links/{link}/{key}`.
    pub(crate) fn link_truth_endpoint(&self, link: Option<&str>, key: Option<&str>) -> Response {
        let not_found =
            |what: String| json_response(StatusCode::NOT_FOUND, &json!({"error": what}));
        let Some(name) = link else {
            let names: Vec<&str> = self.links.iter().map(|l| l.name.as_str()).collect();
            return json_response(StatusCode::OK, &json!({"links": names}));
        };
        let Some(li) = self.links.iter().position(|l| l.name == name) else {
            return not_found(format!("no link \"{name}\""));
        };
        let def = &self.links[li];
        let Some(key) = key else {
            let book = self.link_book();
            let keys: Vec<String> = book
                .order
                .iter()
                .filter(|(l, _)| *l == li)
                .filter_map(|slot| book.keys.get(slot).map(|k| k.display.clone()))
                .collect();
            return json_response(
                StatusCode::OK,
                &json!({"link": def.name, "policy": self.policy_json(def).0,
                        "source_wins": self.policy_json(def).1,
                        "sides": [def.dv_env, def.fno_env], "keys": keys}),
            );
        };
        let now = Instant::now();
        let (display, writes) = {
            let book = self.link_book();
            let Some(log) = book.writes(li, key) else {
                return not_found(format!("no link write of key \"{key}\" in link \"{name}\""));
            };
            (log.display.clone(), log.writes.clone())
        };
        let r = resolve(def.policy, &writes, now, &|s, v| def.carry(s, v));
        let true_time = |i: Instant| rfc3339(self.wall_time(i));
        let side_json = |s: Side| {
            let st = r.side(s);
            json!({
                "values": st.values,
                "stamp": st.stamp.map(rfc3339),
                "from": st.from.map(|f| def.side_name(f)),
                "applied_at": st.applied_at.map(|a| rfc3339(self.side_time(def, s, a))),
                "applied_at_true": st.applied_at.map(true_time),
            })
        };
        let mut sides = Map::new();
        sides.insert(def.dv_env.clone(), side_json(Side::A));
        sides.insert(def.fno_env.clone(), side_json(Side::B));
        let list: Vec<Value> = writes
            .iter()
            .enumerate()
            .map(|(i, w)| {
                json!({
                    "side": def.side_name(w.side),
                    "committed_at": true_time(w.committed),
                    "stamp": rfc3339(w.stamp),
                    "values": w.values,
                    "delivered_at": w.delivery.map(true_time),
                    "fate": r.fates[i].name(),
                    "conflict": r.conflicts[i],
                })
            })
            .collect();
        let (policy, source) = self.policy_json(def);
        json_response(
            StatusCode::OK,
            &json!({
                "link": def.name,
                "key": display,
                "policy": policy,
                "source_wins": source,
                "agree": def.agree(&r),
                "sides": sides,
                "writes": list,
                "now": true_time(now),
            }),
        )
    }

    /// The policy's name, and the winning environment of `source_wins`.
    fn policy_json<'a>(&self, def: &'a LinkDef) -> (&'static str, Option<&'a str>) {
        match def.policy {
            Policy::LastWriterWins => ("last_writer_wins", None),
            Policy::SourceWins(s) => ("source_wins", Some(def.side_name(s))),
            Policy::Diverge => ("diverge", None),
            Policy::Reject => ("reject", None),
        }
    }

    /// The links for the `/` description.
    pub(crate) fn describe_links(&self, base: &str) -> Vec<Value> {
        self.links
            .iter()
            .map(|l| {
                let (policy, source) = self.policy_json(l);
                json!({
                    "name": l.name,
                    "replicas": [self.replicas[l.out].name, self.replicas[l.back].name],
                    "sides": {
                        l.dv_env.clone(): format!("dataverse {}/{}", l.dv_env, l.dv_set),
                        l.fno_env.clone(): format!("fno {}/{}", l.fno_env, l.fno_entity),
                    },
                    "policy": policy,
                    "source_wins": source,
                    "truth": format!("{base}/_truth/links/{}/{{key}}", l.name),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A write of `value` (field `v`) on `side`, committed `at` seconds after `t0`, stamped
    /// with `skew` seconds added, delivered `lag` seconds later.
    fn w(side: Side, t0: Instant, at: f64, skew: f64, lag: f64, value: &str) -> LinkWrite {
        let wall = DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap_or_default();
        let secs = |s: f64| chrono::Duration::milliseconds((s * 1000.0) as i64);
        LinkWrite {
            side,
            committed: t0 + Duration::from_secs_f64(at),
            stamp: wall + secs(at + skew),
            values: Map::from_iter([("v".to_string(), json!(value))]),
            delivery: Some(t0 + Duration::from_secs_f64(at + lag)),
            rejected: false,
        }
    }

    fn run(policy: Policy, writes: &[LinkWrite], t0: Instant, at: f64) -> Resolution {
        resolve(policy, writes, t0 + Duration::from_secs_f64(at), &|_, v| {
            v.clone()
        })
    }

    fn value(r: &Resolution, s: Side) -> &str {
        r.side(s)
            .values
            .get("v")
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    #[test]
    fn without_a_conflict_every_policy_applies_each_write() {
        let t0 = Instant::now();
        // A writes, B gets it at 1s, B writes at 2s, A gets it at 3s: one after the other.
        let writes = [
            w(Side::A, t0, 0.0, 0.0, 1.0, "a"),
            w(Side::B, t0, 2.0, 0.0, 1.0, "b"),
        ];
        for p in [
            Policy::LastWriterWins,
            Policy::SourceWins(Side::A),
            Policy::Diverge,
            Policy::Reject,
        ] {
            let r = run(p, &writes, t0, 5.0);
            assert_eq!(
                (value(&r, Side::A), value(&r, Side::B)),
                ("b", "b"),
                "{p:?}"
            );
            assert_eq!(r.fates, vec![Fate::Applied, Fate::Applied]);
            assert_eq!(r.conflicts, vec![Some(false), Some(false)]);
            assert_eq!(r.side(Side::A).from, Some(Side::B));
        }
        // Before B's write arrives, A shows its own and B's is pending.
        let r = run(Policy::LastWriterWins, &writes, t0, 2.5);
        assert_eq!((value(&r, Side::A), value(&r, Side::B)), ("a", "b"));
        assert_eq!(r.fates, vec![Fate::Applied, Fate::Pending]);
    }

    /// A at 0s and B at 1s, each delivered 2s later: each writes before it has the other's.
    fn concurrent(skew_b: f64) -> (Instant, [LinkWrite; 2]) {
        let t0 = Instant::now();
        (
            t0,
            [
                w(Side::A, t0, 0.0, 0.0, 2.0, "a"),
                w(Side::B, t0, 1.0, skew_b, 2.0, "b"),
            ],
        )
    }

    #[test]
    fn last_writer_wins_picks_the_later_stamp_on_both_sides() {
        let (t0, writes) = concurrent(0.0);
        let r = run(Policy::LastWriterWins, &writes, t0, 4.0);
        assert_eq!((value(&r, Side::A), value(&r, Side::B)), ("b", "b"));
        assert_eq!(r.fates, vec![Fate::Dropped, Fate::Applied]);
        assert_eq!(r.conflicts, vec![Some(true), Some(true)]);
    }

    #[test]
    fn a_skew_larger_than_the_spread_lets_the_earlier_write_win() {
        // A is 4s fast: its write at 0s is stamped 4s, later than B's at 1s.
        let t0 = Instant::now();
        let writes = [
            w(Side::A, t0, 0.0, 4.0, 2.0, "a"),
            w(Side::B, t0, 1.0, 0.0, 2.0, "b"),
        ];
        let r = run(Policy::LastWriterWins, &writes, t0, 4.0);
        assert_eq!((value(&r, Side::A), value(&r, Side::B)), ("a", "a"));
        assert_eq!(r.fates, vec![Fate::Applied, Fate::Dropped]);
        // B behind by 4s: the same.
        let (t0, writes) = concurrent(-4.0);
        let r = run(Policy::LastWriterWins, &writes, t0, 4.0);
        assert_eq!((value(&r, Side::A), value(&r, Side::B)), ("a", "a"));
        // A tie keeps each side's own: they stay apart.
        let (t0, writes) = concurrent(-1.0);
        let r = run(Policy::LastWriterWins, &writes, t0, 4.0);
        assert_eq!((value(&r, Side::A), value(&r, Side::B)), ("a", "b"));
    }

    #[test]
    fn source_wins_keeps_the_source_on_both_sides() {
        let (t0, writes) = concurrent(0.0);
        for (source, want) in [(Side::A, "a"), (Side::B, "b")] {
            let r = run(Policy::SourceWins(source), &writes, t0, 4.0);
            assert_eq!((value(&r, Side::A), value(&r, Side::B)), (want, want));
        }
    }

    #[test]
    fn diverge_drops_conflicting_writes_at_both_sides() {
        let (t0, writes) = concurrent(0.0);
        let r = run(Policy::Diverge, &writes, t0, 10.0);
        assert_eq!((value(&r, Side::A), value(&r, Side::B)), ("a", "b"));
        assert_eq!(r.fates, vec![Fate::Dropped, Fate::Dropped]);
        // A later write without a conflict heals it.
        let mut more = writes.to_vec();
        more.push(w(Side::A, t0, 5.0, 0.0, 1.0, "c"));
        let r = run(Policy::Diverge, &more, t0, 10.0);
        assert_eq!((value(&r, Side::A), value(&r, Side::B)), ("c", "c"));
    }

    #[test]
    fn reject_refuses_while_a_write_is_in_flight_either_way() {
        let t0 = Instant::now();
        let first = [w(Side::A, t0, 0.0, 0.0, 2.0, "a")];
        let at = |s: f64| t0 + Duration::from_secs_f64(s);
        assert!(in_flight(&first, at(0.0)));
        assert!(in_flight(&first, at(1.9)));
        assert!(!in_flight(&first, at(2.0)), "delivered");
        let mut lost = first.clone();
        lost[0].delivery = None;
        assert!(!in_flight(&lost, at(1.0)), "a lost write is not in flight");
        let mut refused = first.to_vec();
        refused.push(LinkWrite {
            rejected: true,
            delivery: None,
            ..w(Side::B, t0, 1.0, 0.0, 0.0, "b")
        });
        let r = run(Policy::Reject, &refused, t0, 3.0);
        assert_eq!((value(&r, Side::A), value(&r, Side::B)), ("a", "a"));
        assert_eq!(r.fates, vec![Fate::Applied, Fate::Rejected]);
    }

    #[test]
    fn carried_values_take_the_other_sides_names() {
        let t0 = Instant::now();
        let writes = [w(Side::A, t0, 0.0, 0.0, 1.0, "a")];
        let r = resolve(
            Policy::LastWriterWins,
            &writes,
            t0 + Duration::from_secs(2),
            &|_, v| {
                v.iter()
                    .map(|(k, x)| (k.to_uppercase(), x.clone()))
                    .collect()
            },
        );
        assert_eq!(r.side(Side::B).values.get("V"), Some(&json!("a")));
        assert_eq!(r.side(Side::A).values.get("v"), Some(&json!("a")));
    }
}
