//! The durable probe ledger: every sentinel between its write and its delete, on disk.
//!
//! Why: a sentinel lives for as long as its slowest path takes to converge (minutes to the
//! lake). A restart or a crash in that time used to lose its measurement and, until the next
//! start-up sweep, leave the record in the customer's source. With the ledger the next process
//! knows exactly which sentinels are out there, resumes polling them (their lag then measured
//! from the persisted wall-clock times, and flagged as resumed), deletes what is finished, and
//! keeps each path's "unseen since" so staleness keeps rising through a restart instead of
//! starting again at zero.
//!
//! Storage: one SQLite file (`<state_dir>/ledger.sqlite`) in WAL mode with
//! `synchronous=NORMAL`: a commit survives the process crashing or being killed (the WAL is
//! written before the call returns), not necessarily the machine losing power. Three tables:
//! `sentinels` (id, source, seq, when it was sent and acknowledged, whether its delete failed),
//! `probes` (one row per path still waiting for that sentinel, with the last miss persisted at
//! shutdown), and `unseen` (per path, the acknowledgement of the oldest sentinel that ended
//! without being seen). Times are Unix microseconds.
//!
//! Failure is never fatal: a ledger that cannot be opened (unwritable directory, a file that is
//! not a database, a failed integrity check) leaves lagwatch probing without resume. Both that
//! and a write that fails (disk full) set `lagwatch_ledger_up` to 0 and count
//! `lagwatch_ledger_errors_total{operation}`; the reason is kept for `/readyz` and the logs. A
//! corrupt file is left where it is (evidence for the operator), never overwritten.
//!
//! Every change is applied to an in-memory copy of what the tables should hold before it is
//! written. After a failed write the file is stale (a probe that ended meanwhile would still
//! be there, and a restart would resume and count it a second time), so the next write
//! rewrites the tables from that copy in one transaction; when it succeeds the ledger is up
//! again and exact. What stays open: the process stopping (or crashing) while writes still
//! fail leaves the stale file to the next start.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};

use crate::metrics::Metrics;

/// File name of the ledger inside `state_dir`.
pub const FILE_NAME: &str = "ledger.sqlite";

/// Version of the schema below, kept in SQLite's `user_version`.
const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS sentinels(
    id TEXT PRIMARY KEY NOT NULL,
    source TEXT NOT NULL,
    seq INTEGER NOT NULL,
    written_us INTEGER NOT NULL,
    sent_us INTEGER,
    acked_us INTEGER,
    undeleted INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS probes(
    sentinel TEXT NOT NULL REFERENCES sentinels(id) ON DELETE CASCADE,
    target TEXT NOT NULL,
    last_miss_us INTEGER,
    PRIMARY KEY(sentinel, target)
);
CREATE TABLE IF NOT EXISTS unseen(
    source TEXT NOT NULL,
    target TEXT NOT NULL,
    since_us INTEGER NOT NULL,
    PRIMARY KEY(source, target)
);
";

/// Why the ledger could not be opened or written.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("{path}: cannot create its directory: {source}")]
    Directory {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("{path}: integrity check failed: {detail}")]
    Corrupt { path: PathBuf, detail: String },
    #[error(
        "{path}: written by a newer lagwatch (schema {found}, this one knows {SCHEMA_VERSION})"
    )]
    Schema { path: PathBuf, found: i64 },
}

/// File name of the lock inside `state_dir`.
pub const LOCK_FILE: &str = "lagwatch.lock";

/// Why `state_dir` could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "{dir}: the state_dir is in use by another lagwatch (PID {pid} holds {LOCK_FILE}); one process owns a state_dir: stop that one, or give this one its own state_dir"
    )]
    Held { dir: PathBuf, pid: String },
    #[error("{path}: cannot lock the state_dir: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The exclusive OS lock on `state_dir/lagwatch.lock` (holding this process's PID), so that
/// one process owns a ledger and the remembered discrepancies: `lagwatch run` holds it for its
/// whole life (reloads included), `lagwatch reconcile` while it writes. Released when dropped
/// or when the process ends in any way (the OS drops the lock with the file handle).
#[derive(Debug)]
pub struct StateLock {
    file: std::fs::File,
}

impl StateLock {
    /// Locks `dir` (creating it), or says which process holds it.
    ///
    /// # Errors
    /// [`LockError::Held`] naming the holder's PID, [`LockError::Io`] when the directory or
    /// file cannot be made or locked.
    pub fn acquire(dir: &Path) -> Result<StateLock, LockError> {
        use std::io::{Read as _, Seek as _, Write as _};
        let path = dir.join(LOCK_FILE);
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let mut file = std::fs::File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                let pid = pid.trim();
                return Err(LockError::Held {
                    dir: dir.to_path_buf(),
                    pid: if pid.is_empty() { "unknown" } else { pid }.to_string(),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        file.flush().map_err(io)?;
        Ok(StateLock { file })
    }
}

impl Drop for StateLock {
    fn drop(&mut self) {
        // The PID goes with the lock; the file stays (removing it would race the next holder).
        let _ = self.file.set_len(0);
    }
}

/// One sentinel found in the ledger at start-up.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub id: String,
    pub source: String,
    pub seq: u64,
    /// The write time carried in the payload (also the sentinel's `written_at`).
    pub written_at: DateTime<Utc>,
    /// When the write request went out; `None` if the process stopped before.
    pub sent_at: Option<DateTime<Utc>>,
    /// When the write was acknowledged; `None` if it never was (it may or may not exist).
    pub acked_at: Option<DateTime<Utc>>,
    /// Its delete failed: only the delete is left to do.
    pub undeleted: bool,
    /// Paths still waiting for it: target name and the last miss persisted at shutdown.
    pub probes: Vec<(String, Option<DateTime<Utc>>)>,
}

/// What the ledger held when it was opened: the previous process's unfinished business.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    pub entries: Vec<Entry>,
    /// Per (source, target): acknowledgement of the oldest sentinel that ended unseen.
    pub unseen: HashMap<(String, String), DateTime<Utc>>,
}

impl Snapshot {
    /// The highest sequence number written from `source`, so numbering continues after it.
    pub fn max_seq(&self, source: &str) -> Option<u64> {
        self.entries
            .iter()
            .filter(|e| e.source == source)
            .map(|e| e.seq)
            .max()
    }

    /// Whether `id` is a sentinel the ledger knows.
    pub fn knows(&self, id: &str) -> bool {
        self.entries.iter().any(|e| e.id == id)
    }
}

/// How the ledger is doing, for `/readyz` and the status page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// No `state_dir`: nothing is persisted, by configuration.
    Disabled,
    /// Open, and the last write succeeded.
    Up,
    /// Opening or the last write failed; why.
    Down(String),
}

/// The ledger; cheap to share. All writes run on the blocking pool, one at a time.
pub struct Ledger {
    path: Option<PathBuf>,
    db: Option<Arc<Mutex<Connection>>>,
    health: Mutex<Health>,
    snapshot: Mutex<Option<Snapshot>>,
    metrics: Option<Metrics>,
    mirror: Arc<Mutex<Mirror>>,
}

/// What the tables should hold: every change lands here first, so a write that failed is
/// made good by rewriting the tables from here (see the module documentation).
#[derive(Debug, Default, Clone)]
struct Mirror {
    sentinels: HashMap<String, Entry>,
    unseen: HashMap<(String, String), DateTime<Utc>>,
    /// A write failed since the tables last matched this copy.
    stale: bool,
}

impl Mirror {
    fn from_snapshot(snapshot: &Snapshot) -> Mirror {
        Mirror {
            sentinels: snapshot
                .entries
                .iter()
                .map(|e| (e.id.clone(), e.clone()))
                .collect(),
            unseen: snapshot.unseen.clone(),
            stale: false,
        }
    }

    /// Replaces the tables' content with this copy, in one transaction.
    fn rewrite(&self, db: &mut Connection) -> rusqlite::Result<()> {
        let tx = db.transaction()?;
        tx.execute_batch("DELETE FROM probes; DELETE FROM sentinels; DELETE FROM unseen;")?;
        for e in self.sentinels.values() {
            tx.execute(
                "INSERT INTO sentinels(id, source, seq, written_us, sent_us, acked_us, undeleted) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    e.id,
                    e.source,
                    e.seq as i64,
                    us(e.written_at),
                    e.sent_at.map(us),
                    e.acked_at.map(us),
                    i64::from(e.undeleted)
                ],
            )?;
            for (target, miss) in &e.probes {
                tx.execute(
                    "INSERT INTO probes(sentinel, target, last_miss_us) VALUES (?1, ?2, ?3)",
                    params![e.id, target, miss.map(us)],
                )?;
            }
        }
        for ((source, target), since) in &self.unseen {
            tx.execute(
                "INSERT INTO unseen(source, target, since_us) VALUES (?1, ?2, ?3)",
                params![source, target, us(*since)],
            )?;
        }
        tx.commit()
    }
}

fn us(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

fn from_us(v: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(v).unwrap_or(DateTime::UNIX_EPOCH)
}

impl Ledger {
    /// A ledger that persists nothing (no `state_dir` configured).
    pub fn disabled() -> Arc<Ledger> {
        Arc::new(Ledger {
            path: None,
            db: None,
            health: Mutex::new(Health::Disabled),
            snapshot: Mutex::new(Some(Snapshot::default())),
            metrics: None,
            mirror: Arc::default(),
        })
    }

    /// Opens (or creates) the ledger in `state_dir` and reads what it holds. Never fails:
    /// a ledger that cannot be opened is logged, counted and reported down, and lagwatch runs
    /// without resume.
    pub fn open(state_dir: &Path, metrics: &Metrics) -> Arc<Ledger> {
        let path = state_dir.join(FILE_NAME);
        metrics.ledger_errors.with_label_values(&["open"]);
        metrics.ledger_errors.with_label_values(&["write"]);
        let up = metrics.ledger_up.with_label_values::<&str>(&[]);
        match open_db(&path).and_then(|db| {
            let snap = read_snapshot(&db, &path)?;
            Ok((db, snap))
        }) {
            Ok((db, snapshot)) => {
                up.set(1);
                if !snapshot.entries.is_empty() {
                    tracing::info!(ledger = %path.display(), sentinels = snapshot.entries.len(), "The ledger holds sentinels of an earlier run; resuming them.");
                }
                let mirror = Arc::new(Mutex::new(Mirror::from_snapshot(&snapshot)));
                Arc::new(Ledger {
                    path: Some(path),
                    db: Some(Arc::new(Mutex::new(db))),
                    health: Mutex::new(Health::Up),
                    snapshot: Mutex::new(Some(snapshot)),
                    metrics: Some(metrics.clone()),
                    mirror,
                })
            }
            Err(e) => {
                up.set(0);
                metrics.ledger_errors.with_label_values(&["open"]).inc();
                tracing::error!(error = %e, "The probe ledger cannot be used; probing without resume: sentinels in flight at a restart lose their measurement and are deleted by the start-up sweep.");
                Arc::new(Ledger {
                    path: Some(path),
                    db: None,
                    health: Mutex::new(Health::Down(e.to_string())),
                    snapshot: Mutex::new(Some(Snapshot::default())),
                    metrics: Some(metrics.clone()),
                    mirror: Arc::default(),
                })
            }
        }
    }

    pub fn health(&self) -> Health {
        lock(&self.health).clone()
    }

    /// Whether writes are currently being persisted.
    pub fn is_up(&self) -> bool {
        matches!(*lock(&self.health), Health::Up)
    }

    /// What the ledger held when opened; the first call takes it (the engine resumes it once).
    pub fn take_snapshot(&self) -> Snapshot {
        lock(&self.snapshot).take().unwrap_or_default()
    }

    /// Before a write is sent: the sentinel and the paths that will wait for it.
    pub async fn begin(
        &self,
        id: &str,
        source: &str,
        seq: u64,
        written_at: DateTime<Utc>,
        targets: Vec<String>,
    ) -> bool {
        let (id, source) = (id.to_string(), source.to_string());
        self.change(|m| {
            m.sentinels.insert(
                id.clone(),
                Entry {
                    id: id.clone(),
                    source: source.clone(),
                    seq,
                    written_at,
                    sent_at: None,
                    acked_at: None,
                    undeleted: false,
                    probes: targets.iter().map(|t| (t.clone(), None)).collect(),
                },
            );
        });
        self.write(move |db| {
            let tx = db.transaction()?;
            tx.execute(
                "INSERT OR REPLACE INTO sentinels(id, source, seq, written_us) VALUES (?1, ?2, ?3, ?4)",
                params![id, source, seq as i64, us(written_at)],
            )?;
            for t in &targets {
                tx.execute(
                    "INSERT OR REPLACE INTO probes(sentinel, target) VALUES (?1, ?2)",
                    params![id, t],
                )?;
            }
            tx.commit()
        })
        .await
    }

    /// The write was acknowledged at `acked_at` after being sent at `sent_at`.
    pub async fn acked(&self, id: &str, sent_at: DateTime<Utc>, acked_at: DateTime<Utc>) -> bool {
        self.change(|m| {
            if let Some(e) = m.sentinels.get_mut(id) {
                (e.sent_at, e.acked_at) = (Some(sent_at), Some(acked_at));
            }
        });
        let id = id.to_string();
        self.write(move |db| {
            db.execute(
                "UPDATE sentinels SET sent_us = ?2, acked_us = ?3 WHERE id = ?1",
                params![id, us(sent_at), us(acked_at)],
            )
            .map(drop)
        })
        .await
    }

    /// One path is done with the sentinel (or no longer exists).
    pub async fn resolved(&self, id: &str, target: &str) -> bool {
        self.change(|m| {
            if let Some(e) = m.sentinels.get_mut(id) {
                e.probes.retain(|(t, _)| t != target);
            }
        });
        let (id, target) = (id.to_string(), target.to_string());
        self.write(move |db| {
            db.execute(
                "DELETE FROM probes WHERE sentinel = ?1 AND target = ?2",
                params![id, target],
            )
            .map(drop)
        })
        .await
    }

    /// Shutdown interrupted one path's polling; its last miss keeps the resumed bound tight.
    pub async fn interrupted(
        &self,
        id: &str,
        target: &str,
        last_miss: Option<DateTime<Utc>>,
    ) -> bool {
        self.change(|m| {
            if let Some(e) = m.sentinels.get_mut(id) {
                for (t, miss) in &mut e.probes {
                    if t == target {
                        *miss = last_miss;
                    }
                }
            }
        });
        let (id, target) = (id.to_string(), target.to_string());
        self.write(move |db| {
            db.execute(
                "UPDATE probes SET last_miss_us = ?3 WHERE sentinel = ?1 AND target = ?2",
                params![id, target, last_miss.map(us)],
            )
            .map(drop)
        })
        .await
    }

    /// Only the delete is left: it failed, or the write's fate is unknown. The engine retries.
    pub async fn undeleted(&self, id: &str) -> bool {
        self.change(|m| {
            if let Some(e) = m.sentinels.get_mut(id) {
                e.probes.clear();
                e.undeleted = true;
            }
        });
        let id = id.to_string();
        self.write(move |db| {
            let tx = db.transaction()?;
            tx.execute("DELETE FROM probes WHERE sentinel = ?1", params![id])?;
            tx.execute(
                "UPDATE sentinels SET undeleted = 1 WHERE id = ?1",
                params![id],
            )?;
            tx.commit()
        })
        .await
    }

    /// The sentinel is gone from the source (or was never written): forget it.
    pub async fn forget(&self, id: &str) -> bool {
        self.change(|m| {
            m.sentinels.remove(id);
        });
        let id = id.to_string();
        self.write(move |db| {
            let tx = db.transaction()?;
            tx.execute("DELETE FROM probes WHERE sentinel = ?1", params![id])?;
            tx.execute("DELETE FROM sentinels WHERE id = ?1", params![id])?;
            tx.commit()
        })
        .await
    }

    /// A path's "unseen since" changed (`None`: a sentinel was seen again).
    pub async fn unseen(&self, source: &str, target: &str, since: Option<DateTime<Utc>>) -> bool {
        let (source, target) = (source.to_string(), target.to_string());
        self.change(|m| {
            let key = (source.clone(), target.clone());
            match since {
                Some(t) => m.unseen.insert(key, t),
                None => m.unseen.remove(&key),
            };
        });
        self.write(move |db| {
            match since {
                Some(t) => db.execute(
                    "INSERT OR REPLACE INTO unseen(source, target, since_us) VALUES (?1, ?2, ?3)",
                    params![source, target, us(t)],
                ),
                None => db.execute(
                    "DELETE FROM unseen WHERE source = ?1 AND target = ?2",
                    params![source, target],
                ),
            }
            .map(drop)
        })
        .await
    }

    /// Sentinels the ledger holds right now.
    #[cfg(test)]
    async fn count(&self) -> Option<u64> {
        let db = self.db.clone()?;
        tokio::task::spawn_blocking(move || {
            let db = lock(&db);
            db.query_row("SELECT count(*) FROM sentinels", [], |r| r.get::<_, i64>(0))
                .ok()
                .map(|n| n.max(0) as u64)
        })
        .await
        .ok()
        .flatten()
    }

    /// Applies a change to the in-memory copy (nothing to keep without a database).
    fn change(&self, f: impl FnOnce(&mut Mirror)) {
        if self.db.is_some() {
            f(&mut lock(&self.mirror));
        }
    }

    /// Runs one write on the blocking pool; false (and the ledger reported down) if it failed.
    /// After a failed write the tables are stale: this one rewrites them from the in-memory
    /// copy instead, which already holds its change.
    async fn write(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<()> + Send + 'static,
    ) -> bool {
        let Some(db) = self.db.clone() else {
            return false;
        };
        let mirror = self.mirror.clone();
        let result = tokio::task::spawn_blocking(move || {
            // The database lock is held throughout: no other write runs in between.
            let mut db = lock(&db);
            let stale = {
                let m = lock(&mirror);
                m.stale.then(|| m.clone())
            };
            let written = match stale {
                Some(copy) => copy.rewrite(&mut db),
                None => f(&mut db),
            };
            lock(&mirror).stale = written.is_err();
            written
        })
        .await;
        let outcome = match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(e) => {
                lock(&self.mirror).stale = true;
                Err(format!("ledger task failed: {e}"))
            }
        };
        self.note(outcome)
    }

    fn note(&self, outcome: Result<(), String>) -> bool {
        let Some(m) = &self.metrics else {
            return false;
        };
        let mut health = lock(&self.health);
        match outcome {
            Ok(()) => {
                if *health != Health::Up {
                    tracing::info!(ledger = ?self.path, "The probe ledger is writable again and was rewritten from memory.");
                }
                *health = Health::Up;
                m.ledger_up.with_label_values::<&str>(&[]).set(1);
                true
            }
            Err(reason) => {
                if *health == Health::Up {
                    tracing::error!(ledger = ?self.path, error = %reason, "Writing the probe ledger failed; it is rewritten from memory by the next write that succeeds. Until then a restart cannot resume the sentinels in flight correctly.");
                }
                let path = self
                    .path
                    .as_deref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default();
                *health = Health::Down(format!("{path}: {reason}"));
                m.ledger_up.with_label_values::<&str>(&[]).set(0);
                m.ledger_errors.with_label_values(&["write"]).inc();
                false
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn open_db(path: &Path) -> Result<Connection, LedgerError> {
    let sql = |source| LedgerError::Sqlite {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| LedgerError::Directory {
            path: path.to_path_buf(),
            source,
        })?;
    }
    let db = Connection::open(path).map_err(sql)?;
    // Another process holding the file (a second lagwatch on the same state_dir) should fail
    // fast rather than stall probes.
    db.busy_timeout(std::time::Duration::from_secs(2))
        .map_err(sql)?;
    let check: String = db
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .map_err(sql)?;
    if check != "ok" {
        return Err(LedgerError::Corrupt {
            path: path.to_path_buf(),
            detail: check,
        });
    }
    let version: i64 = db
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(sql)?;
    if version > SCHEMA_VERSION {
        return Err(LedgerError::Schema {
            path: path.to_path_buf(),
            found: version,
        });
    }
    db.query_row("PRAGMA journal_mode=WAL", [], |r| r.get::<_, String>(0))
        .map_err(sql)?;
    db.execute_batch(&format!(
        "PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON; {SCHEMA} PRAGMA user_version={SCHEMA_VERSION};"
    ))
    .map_err(sql)?;
    Ok(db)
}

fn read_snapshot(db: &Connection, path: &Path) -> Result<Snapshot, LedgerError> {
    let sql = |source| LedgerError::Sqlite {
        path: path.to_path_buf(),
        source,
    };
    let mut snap = Snapshot::default();
    let mut stmt = db
        .prepare(
            "SELECT id, source, seq, written_us, sent_us, acked_us, undeleted FROM sentinels ORDER BY seq",
        )
        .map_err(sql)?;
    let rows = stmt
        .query_map([], |r| {
            Ok(Entry {
                id: r.get(0)?,
                source: r.get(1)?,
                seq: r.get::<_, i64>(2)?.max(0) as u64,
                written_at: from_us(r.get(3)?),
                sent_at: r.get::<_, Option<i64>>(4)?.map(from_us),
                acked_at: r.get::<_, Option<i64>>(5)?.map(from_us),
                undeleted: r.get::<_, i64>(6)? != 0,
                probes: Vec::new(),
            })
        })
        .map_err(sql)?;
    for row in rows {
        snap.entries.push(row.map_err(sql)?);
    }
    let mut stmt = db
        .prepare("SELECT target, last_miss_us FROM probes WHERE sentinel = ?1 ORDER BY target")
        .map_err(sql)?;
    for e in &mut snap.entries {
        let rows = stmt
            .query_map([&e.id], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, Option<i64>>(1)?))
            })
            .map_err(sql)?;
        for row in rows {
            let (target, miss) = row.map_err(sql)?;
            e.probes.push((target, miss.map(from_us)));
        }
    }
    let mut stmt = db
        .prepare("SELECT source, target, since_us FROM unseen")
        .map_err(sql)?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })
        .map_err(sql)?;
    for row in rows {
        let (s, t, since) = row.map_err(sql)?;
        snap.unseen.insert((s, t), from_us(since));
    }
    // A sentinel row whose id the ledger cannot have written is not ours to act on.
    snap.entries
        .retain(|e| crate::sentinel::SentinelId::parse(&e.id).is_some());
    Ok(snap)
}

#[cfg(test)]
mod lock_tests {
    use super::*;

    #[test]
    fn a_state_dir_has_one_holder_and_the_next_one_learns_its_pid() {
        let dir = tempfile::tempdir().expect("dir");
        let state = dir.path().join("state");
        let first = StateLock::acquire(&state).expect("first");
        let text = std::fs::read_to_string(state.join(LOCK_FILE)).expect("lock file");
        assert_eq!(text.trim(), std::process::id().to_string());
        let err = StateLock::acquire(&state).expect_err("held");
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("PID {}", std::process::id())),
            "{msg}"
        );
        drop(first);
        let again = StateLock::acquire(&state).expect("free again");
        drop(again);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn id(n: u32) -> String {
        format!("lagwatch-test-0190a5b2-0000-7000-8000-{n:012}")
    }

    #[tokio::test]
    async fn a_sentinel_survives_reopening_until_it_is_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let m = Metrics::new();
        let l = Ledger::open(dir.path(), &m);
        assert_eq!(l.health(), Health::Up);
        assert!(
            l.begin(
                &id(1),
                "crm",
                7,
                t("2026-11-27T10:00:00.123456Z"),
                vec!["fno".into(), "lake".into()]
            )
            .await
        );
        assert!(
            l.acked(
                &id(1),
                t("2026-11-27T10:00:00.2Z"),
                t("2026-11-27T10:00:00.5Z")
            )
            .await
        );
        assert!(l.resolved(&id(1), "fno").await);
        assert!(
            l.interrupted(&id(1), "lake", Some(t("2026-11-27T10:01:00Z")))
                .await
        );
        assert!(
            l.begin(
                &id(2),
                "crm",
                8,
                t("2026-11-27T10:00:30Z"),
                vec!["fno".into()]
            )
            .await
        );
        assert!(l.undeleted(&id(2)).await);
        assert!(
            l.unseen("crm", "lake", Some(t("2026-11-27T09:00:00Z")))
                .await
        );
        drop(l);

        let l = Ledger::open(dir.path(), &m);
        let snap = l.take_snapshot();
        assert_eq!(snap.entries.len(), 2);
        let e = &snap.entries[0];
        assert_eq!((e.id.as_str(), e.seq), (id(1).as_str(), 7));
        assert_eq!(e.written_at, t("2026-11-27T10:00:00.123456Z"));
        assert_eq!(e.acked_at, Some(t("2026-11-27T10:00:00.5Z")));
        assert_eq!(
            e.probes,
            vec![("lake".to_string(), Some(t("2026-11-27T10:01:00Z")))]
        );
        assert!(!e.undeleted);
        assert!(snap.entries[1].undeleted && snap.entries[1].probes.is_empty());
        assert_eq!(snap.max_seq("crm"), Some(8));
        assert_eq!(
            snap.unseen.get(&("crm".into(), "lake".into())),
            Some(&t("2026-11-27T09:00:00Z"))
        );
        assert!(l.forget(&id(1)).await && l.forget(&id(2)).await);
        assert!(l.unseen("crm", "lake", None).await);
        assert_eq!(l.count().await, Some(0));
        assert!(l.take_snapshot().entries.is_empty(), "taken once");
    }

    #[tokio::test]
    async fn after_failed_writes_the_next_write_rewrites_the_tables_from_memory() {
        let dir = tempfile::tempdir().unwrap();
        let m = Metrics::new();
        let l = Ledger::open(dir.path(), &m);
        let at = t("2026-11-27T10:00:00Z");
        assert!(
            l.begin(&id(1), "crm", 1, at, vec!["fno".into(), "lake".into()])
                .await
        );
        assert!(l.begin(&id(2), "crm", 2, at, vec!["fno".into()]).await);
        assert!(l.acked(&id(1), at, at).await && l.acked(&id(2), at, at).await);

        // SQLite refuses every write (as with a full disk): the file goes stale.
        let query_only = |on: bool| {
            let db = l.db.clone().unwrap();
            lock(&db)
                .execute_batch(&format!("PRAGMA query_only = {}", i32::from(on)))
                .unwrap();
        };
        query_only(true);
        assert!(!l.resolved(&id(1), "fno").await);
        assert!(!l.forget(&id(2)).await);
        assert!(!l.unseen("crm", "lake", Some(at)).await);
        assert!(matches!(l.health(), Health::Down(_)));
        assert_eq!(
            l.count().await,
            Some(2),
            "the file still holds the deleted one"
        );

        // The next write that succeeds brings the whole file up to date.
        query_only(false);
        let miss = t("2026-11-27T10:01:00Z");
        assert!(l.interrupted(&id(1), "lake", Some(miss)).await);
        assert_eq!(l.health(), Health::Up);
        drop(l);
        let snap = Ledger::open(dir.path(), &m).take_snapshot();
        assert_eq!(snap.entries.len(), 1, "{:?}", snap.entries);
        assert_eq!(snap.entries[0].id, id(1));
        assert_eq!(snap.entries[0].acked_at, Some(at));
        assert_eq!(
            snap.entries[0].probes,
            vec![("lake".to_string(), Some(miss))]
        );
        assert_eq!(snap.unseen.get(&("crm".into(), "lake".into())), Some(&at));
    }

    #[tokio::test]
    async fn a_file_that_is_not_a_ledger_is_reported_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(FILE_NAME);
        let garbage = b"this is not a database, it is a shopping list\n".repeat(200);
        std::fs::write(&file, &garbage).unwrap();
        let m = Metrics::new();
        let l = Ledger::open(dir.path(), &m);
        let Health::Down(reason) = l.health() else {
            panic!("down")
        };
        assert!(reason.contains(FILE_NAME), "{reason}");
        assert!(!l.begin(&id(1), "crm", 1, Utc::now(), vec![]).await);
        assert_eq!(std::fs::read(&file).unwrap(), garbage, "evidence kept");
        let text = m.render();
        assert!(text.contains("lagwatch_ledger_up 0"), "{text}");
        assert!(text.contains("lagwatch_ledger_errors_total{operation=\"open\"} 1"));
    }

    #[tokio::test]
    async fn an_unwritable_directory_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        // A file where the state directory should be: no directory can be created there.
        let blocker = dir.path().join("state");
        std::fs::write(&blocker, b"x").unwrap();
        let m = Metrics::new();
        let l = Ledger::open(&blocker.join("deeper"), &m);
        assert!(matches!(l.health(), Health::Down(r) if r.contains("deeper")));
    }

    #[tokio::test]
    async fn a_disabled_ledger_persists_nothing_and_exports_nothing() {
        let l = Ledger::disabled();
        assert_eq!(l.health(), Health::Disabled);
        assert!(!l.begin(&id(1), "crm", 1, Utc::now(), vec![]).await);
        assert!(!Metrics::new().render().contains("lagwatch_ledger_up"));
    }
}
