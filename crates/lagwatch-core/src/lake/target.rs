//! The target every lake kind is: a [`LakeCursor`] over a [`LakeStore`].
//!
//! Each lookup brings the cursor up to date — cheap when nothing changed — and answers from
//! what it has found. A lookup never answers from an older scan than its own, so "absent"
//! always means "absent when this request was sent", which the lag estimate relies on. Scans
//! are serialised per target.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use prometheus::Gauge;
use tokio::sync::Mutex;

use super::{LakeCursor, LakeStore};
use crate::connector::{ConnectorError, Lookup, Target};
use crate::sentinel::SentinelId;

/// A lake table as a target.
pub struct LakeTarget {
    store: Box<dyn LakeStore>,
    cursor: Mutex<Box<dyn LakeCursor>>,
    newest: Gauge,
}

impl LakeTarget {
    /// A target reading `store` with `cursor`; `newest` gets the time of the lake's newest
    /// data (`lagwatch_lake_last_folder_timestamp_seconds`).
    pub fn new(store: Box<dyn LakeStore>, cursor: impl LakeCursor, newest: Gauge) -> Self {
        LakeTarget {
            store,
            cursor: Mutex::new(Box::new(cursor)),
            newest,
        }
    }
}

#[async_trait]
impl Target for LakeTarget {
    async fn lookup(&self, id: &SentinelId) -> Result<Lookup, ConnectorError> {
        let mut cursor = self.cursor.lock().await;
        if let Some(t) = cursor.refresh(self.store.as_ref()).await? {
            self.newest.set(t.timestamp_millis() as f64 / 1000.0);
        }
        Ok(match cursor.found(id.key()) {
            Some(f) => Lookup::Present {
                payload: f.payload.clone(),
            },
            None => Lookup::Absent,
        })
    }

    /// Lake rows carry `SinkCreatedOn`, the pipeline's own time of writing them.
    fn records_apply_time(&self) -> bool {
        true
    }

    async fn applied_at(&self, id: &SentinelId) -> Option<DateTime<Utc>> {
        self.cursor.lock().await.found(id.key())?.sink_at
    }
}
