//! The target every lake kind is: a [`LakeCursor`] over a [`LakeStore`].
//!
//! Each lookup brings the cursor up to date — cheap when nothing changed — and answers from
//! what it has found. A lookup never answers from a scan that started before it was sent, so
//! "absent" always means "absent when this request was sent", which the lag estimate relies
//! on. Scans are serialised per target, and lookups that waited for a scan that started after
//! they were sent answer from it: the probes and delete watches of all paths reading one lake
//! share its cursor, so reads that meet cost one scan, not one each.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use prometheus::Gauge;
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::{LakeCursor, LakeStore};
use crate::connector::{ConnectorError, Lookup, RowLog, Target};
use crate::sentinel::SentinelId;

/// A lake table as a target.
pub struct LakeTarget {
    store: Box<dyn LakeStore>,
    cursor: Mutex<Scanned>,
    newest: Gauge,
    keeps_versions: bool,
}

/// The cursor and when its last successful scan started.
struct Scanned {
    cursor: Box<dyn LakeCursor>,
    started: Option<Instant>,
}

impl LakeTarget {
    /// A target reading `store` with `cursor`; `newest` gets the time of the lake's newest
    /// data (`lagwatch_lake_last_folder_timestamp_seconds`).
    pub fn new(store: Box<dyn LakeStore>, cursor: impl LakeCursor, newest: Gauge) -> Self {
        LakeTarget {
            store,
            keeps_versions: cursor.keeps_versions(),
            cursor: Mutex::new(Scanned {
                cursor: Box::new(cursor),
                started: None,
            }),
            newest,
        }
    }
}

impl LakeTarget {
    /// The cursor, brought up to date by a scan that started after this call (its own, or
    /// one it waited for).
    async fn scanned(&self) -> Result<tokio::sync::MutexGuard<'_, Scanned>, ConnectorError> {
        let sent = Instant::now();
        let mut scanned = self.cursor.lock().await;
        // Strictly after: a scan started at the same instant (a paused clock) may have read
        // the lake before what this lookup is to see was written.
        if scanned.started.is_none_or(|s| s <= sent) {
            let started = Instant::now();
            if let Some(t) = scanned.cursor.refresh(self.store.as_ref()).await? {
                self.newest.set(t.timestamp_millis() as f64 / 1000.0);
            }
            scanned.started = Some(started);
        }
        Ok(scanned)
    }
}

#[async_trait]
impl Target for LakeTarget {
    async fn lookup(&self, id: &SentinelId) -> Result<Lookup, ConnectorError> {
        Ok(self
            .lookup_together(std::slice::from_ref(id))
            .await?
            .pop()
            .unwrap_or(Lookup::Absent))
    }

    /// Every key is answered from the same scan: one state of the lake (the folders, files
    /// or table version read).
    fn reads_together(&self) -> bool {
        true
    }

    /// Synapse Link and Fabric export a table's changes as a log, in the order Dataverse
    /// made them.
    fn applies_in_order(&self) -> bool {
        true
    }

    fn keeps_versions(&self) -> bool {
        self.keeps_versions
    }

    async fn lookup_log(&self, id: &SentinelId) -> Result<RowLog, ConnectorError> {
        let scanned = self.scanned().await?;
        Ok(scanned.cursor.log(id.key()).cloned().unwrap_or_default())
    }

    async fn lookup_together(&self, ids: &[SentinelId]) -> Result<Vec<Lookup>, ConnectorError> {
        let scanned = self.scanned().await?;
        Ok(ids
            .iter()
            .map(|id| match scanned.cursor.found(id.key()) {
                Some(f) => Lookup::Present {
                    payload: f.payload.clone(),
                },
                None => Lookup::Absent,
            })
            .collect())
    }

    /// Lake rows carry `SinkCreatedOn`, the pipeline's own time of writing them.
    fn records_apply_time(&self) -> bool {
        true
    }

    async fn applied_at(&self, id: &SentinelId) -> Option<DateTime<Utc>> {
        self.cursor.lock().await.cursor.found(id.key())?.sink_at
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lake::{Found, LakeError, LocalStore};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    /// A cursor whose scan takes 50 ms and is counted.
    struct Slow(Arc<AtomicUsize>);

    #[async_trait]
    impl LakeCursor for Slow {
        async fn refresh(&mut self, _: &dyn LakeStore) -> Result<Option<DateTime<Utc>>, LakeError> {
            self.0.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(50)).await;
            Ok(None)
        }

        fn found(&self, _: &str) -> Option<&Found> {
            None
        }
    }

    #[tokio::test(start_paused = true)]
    async fn lookups_that_meet_share_a_scan_that_started_after_they_were_sent() {
        let scans = Arc::new(AtomicUsize::new(0));
        let store = Box::new(LocalStore::new(std::env::temp_dir()));
        let gauge = Gauge::new("g", "h").unwrap();
        let target = LakeTarget::new(store, Slow(scans.clone()), gauge);
        let ids: Vec<SentinelId> = (0..6).map(|_| SentinelId::new("t")).collect();
        // The first scans; the others were sent after it started, so the second scans for
        // them all; the four behind it were sent before it started and answer from it.
        let answers = futures::future::join_all(ids.iter().map(|id| target.lookup(id))).await;
        assert!(answers.iter().all(|a| matches!(a, Ok(Lookup::Absent))));
        assert_eq!(scans.load(Ordering::SeqCst), 2);
        // One lookup alone, later: a scan of its own, even at the same instant as the last.
        target.lookup(&ids[0]).await.unwrap();
        target.lookup(&ids[0]).await.unwrap();
        assert_eq!(scans.load(Ordering::SeqCst), 4);
    }
}
