//! Delta poll cost against table size: does a poll of the `delta` target stay flat as the
//! table grows?
//!
//! For 10,000, 100,000 and 1,000,000 history rows (96 commits, a day of 15-minute refreshes,
//! written by the emulator's Delta writer on a local folder, compacted into one file and
//! checkpointed, as a daily OPTIMIZE leaves a table), it measures through the target and its
//! metered store: the start-up scan (checkpoint plus what follows it), an idle poll, the poll
//! after one new commit (100 changed rows plus one sentinel) and the poll after the next
//! compaction of the whole table — wall time, bytes read and objects listed.
//!
//! Two start-up cases: a lagwatch older than the table (every data file may hold a sentinel:
//! statistics decide), and the normal one, where files written before lagwatch started are
//! never read.
//!
//! `cargo bench --bench lake_delta`   (writes up to ~60 MB under the temp dir, removed afterwards)

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use lagwatch::connector::{Lookup, Target};
use lagwatch::lake::delta::{DeltaCursor, DeltaSpec};
use lagwatch::lake::{LocalStore, Metered};
use lagwatch::sentinel::SentinelId;
use lagwatch::systems::delta::DeltaTarget;
use lagwatch_emulator::LocalDirSink;
use lagwatch_emulator::delta::{Cell, DeltaSchema, DeltaWriter, Row};
use lagwatch_emulator::scenario::ColumnType;
use prometheus::{Gauge, IntCounter};

const COMMITS: usize = 96;
const SIZES: [usize; 3] = [10_000, 100_000, 1_000_000];

fn schema() -> DeltaSchema {
    DeltaSchema::lake_table(
        "accountid",
        [
            ("name", ColumnType::String),
            ("description", ColumnType::String),
        ],
    )
    .expect("schema")
}

/// A lake row (`Id`, sink times, description, name, accountid, createdon, modifiedon,
/// versionnumber, IsDelete) with key `name`.
fn row(name: String, n: usize) -> Row {
    let at: DateTime<Utc> = "2026-11-01T00:00:07Z".parse().expect("time");
    let id = uuid::Uuid::now_v7().to_string();
    vec![
        Some(Cell::Str(id.clone())),
        Some(Cell::Timestamp(at)),
        Some(Cell::Timestamp(at)),
        Some(Cell::Str(format!("Contoso account {n}, Seattle"))),
        Some(Cell::Str(name)),
        Some(Cell::Str(id)),
        Some(Cell::Timestamp(at)),
        Some(Cell::Timestamp(at)),
        Some(Cell::Long(i64::try_from(n).unwrap_or(0))),
        Some(Cell::Bool(false)),
    ]
}

struct Measure {
    time: Duration,
    bytes: u64,
    objects: u64,
}

struct Probe {
    target: DeltaTarget,
    read: IntCounter,
    listed: IntCounter,
}

impl Probe {
    fn new(table: &Path, since: DateTime<Utc>) -> Probe {
        let read = IntCounter::new("read", "bench").expect("counter");
        let listed = IntCounter::new("listed", "bench").expect("counter");
        let cursor = DeltaCursor::new(
            DeltaSpec {
                key_column: "name".into(),
                payload_column: Some("description".into()),
                key_prefix: "lagwatch-".into(),
            },
            since,
            Duration::from_secs(86_400),
        );
        let store = Metered::new(LocalStore::new(table), listed.clone(), read.clone());
        Probe {
            target: DeltaTarget::new(Box::new(store), cursor, Gauge::new("g", "b").expect("g")),
            read,
            listed,
        }
    }

    async fn poll(&self, id: &SentinelId) -> (Lookup, Measure) {
        let (b, o) = (self.read.get(), self.listed.get());
        let start = Instant::now();
        let r = self.target.lookup(id).await.expect("lookup");
        let m = Measure {
            time: start.elapsed(),
            bytes: self.read.get() - b,
            objects: self.listed.get() - o,
        };
        (r, m)
    }
}

fn cell(m: &Measure) -> String {
    format!(
        "{:.2} ms, {} B, {} listed",
        m.time.as_secs_f64() * 1000.0,
        m.bytes,
        m.objects
    )
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut report = String::from(
        "| history rows | table size | start-up, lagwatch older than the table | start-up, normal | idle poll | poll after one commit | poll after a full compaction |\n|---|---|---|---|---|---|---|\n",
    );
    for n in SIZES {
        let dir: PathBuf = std::env::temp_dir().join(format!("lagwatch-delta-bench-{n}"));
        let _ = std::fs::remove_dir_all(&dir);
        let sink = Arc::new(LocalDirSink::new(&dir));
        let mut w = DeltaWriter::new(sink, "t");
        w.create(schema()).await.expect("create");
        let per = n / COMMITS;
        for c in 0..COMMITS {
            let rows: Vec<Row> = (0..per)
                .map(|i| row(format!("business-{c:03}-{i:07}"), c * per + i))
                .collect();
            w.append(&rows).await.expect("append");
        }
        w.compact().await.expect("compact");
        w.checkpoint().await.expect("checkpoint");
        let table = dir.join("t");
        let size = walk(&table);

        let id = SentinelId::new("bench");
        let old = Probe::new(&table, "2020-01-01T00:00:00Z".parse().expect("time"));
        let (_, first_old) = old.poll(&id).await;
        // The normal start-up: lagwatch starts after the history was written, so none of its
        // files is read (here "after" is now, the history having been written just before).
        tokio::time::sleep(Duration::from_millis(5)).await;
        let p = Probe::new(&table, Utc::now());
        let (_, first) = p.poll(&id).await;
        let (_, idle) = p.poll(&id).await;
        let mut rows: Vec<Row> = (0..100)
            .map(|i| row(format!("business-new-{i:03}"), i))
            .collect();
        rows.push(row(id.key().to_string(), 0));
        w.append(&rows).await.expect("append");
        let (found, inc) = p.poll(&id).await;
        assert!(matches!(found, Lookup::Present { .. }), "sentinel found");
        w.compact().await.expect("compact");
        let (found, compacted) = p.poll(&id).await;
        assert!(matches!(found, Lookup::Present { .. }), "still found");
        let _ = writeln!(
            report,
            "| {n} | {:.1} MB | {} | {} | {} | {} | {} |",
            size as f64 / 1e6,
            cell(&first_old),
            cell(&first),
            cell(&idle),
            cell(&inc),
            cell(&compacted),
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
    println!("{report}");
}

fn walk(p: &Path) -> u64 {
    let mut total = 0;
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            let Ok(m) = e.metadata() else { continue };
            if m.is_dir() {
                total += walk(&e.path());
            } else {
                total += m.len();
            }
        }
    }
    total
}
