//! Lake poll cost against lake size: does a poll stay flat as the lake grows?
//!
//! For 10,000, 100,000 and 1,000,000 history rows (spread over 96 complete incremental
//! folders, a day at 15 minutes, in Synapse Link's layout on a local folder), it measures:
//! the first scan (which, started before the history, reads all of it once), an idle poll
//! (nothing completed), and the poll after one new increment (100 changed rows plus one
//! sentinel) — wall time, bytes read and objects listed, through the `synapse_link_csv`
//! target and its metered store.
//!
//! The table layout (`layout: table`) the same way: one partition file of 10,000, 100,000 or
//! 1,000,000 rows; the start-up poll (which positions the cursor at the file's end), an idle
//! poll, the poll after one appended row (the sentinel), and, for contrast, the poll after the
//! file was rewritten in place (one early row updated, the sentinel appended), which reads the
//! file whole.
//!
//! `cargo bench --bench lake`   (writes up to ~320 MB under the temp dir, removed afterwards)

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use lagwatch::connector::{Lookup, Target};
use lagwatch::lake::synapse::{Cursor, TableSpec};
use lagwatch::lake::table::TableCursor;
use lagwatch::lake::{LocalStore, Metered};
use lagwatch::sentinel::SentinelId;
use lagwatch::systems::synapse_link_csv::SynapseLinkCsv;
use prometheus::{Gauge, IntCounter};

const FOLDERS: usize = 96;
const SIZES: [usize; 3] = [10_000, 100_000, 1_000_000];
const MODEL: &str = r#"{"name":"cdm","version":"1.0","entities":[{"$type":"LocalEntity","name":"account","attributes":[{"name":"Id","dataType":"guid"},{"name":"SinkCreatedOn","dataType":"dateTime"},{"name":"SinkModifiedOn","dataType":"dateTime"},{"name":"name","dataType":"string"},{"name":"description","dataType":"string"},{"name":"versionnumber","dataType":"int64"},{"name":"IsDelete","dataType":"boolean"}]}]}"#;

fn folder(i: usize) -> String {
    let t: DateTime<Utc> = "2026-11-01T00:00:00Z".parse().expect("time");
    (t + chrono::Duration::minutes(15 * i as i64))
        .format("%Y-%m-%dT%H.%M.%S%.3fZ")
        .to_string()
}

fn rows(out: &mut String, n: usize, key: impl Fn(usize) -> String) {
    for i in 0..n {
        let _ = writeln!(
            out,
            "{},2026-11-01T00:00:07.0000000Z,2026-11-01T00:00:07.0000000Z,\"{}\",\"Contoso account {i}, Seattle\",{i},False",
            uuid::Uuid::now_v7(),
            key(i)
        );
    }
}

fn write_folder(root: &Path, i: usize, csv: &str) {
    let dir = root.join(folder(i));
    std::fs::create_dir_all(dir.join("account")).expect("mkdir");
    std::fs::write(dir.join("model.json"), MODEL).expect("model");
    if !csv.is_empty() {
        std::fs::write(dir.join("account/2026.csv"), csv).expect("csv");
    }
}

fn open(root: &Path, i: usize) {
    write_folder(root, i, "");
    std::fs::write(root.join("Changelog/changelog.info"), folder(i)).expect("changelog");
}

struct Measure {
    time: Duration,
    bytes: u64,
    objects: u64,
}

async fn poll(
    t: &SynapseLinkCsv,
    id: &SentinelId,
    read: &IntCounter,
    listed: &IntCounter,
) -> (Lookup, Measure) {
    let (b, o) = (read.get(), listed.get());
    let start = Instant::now();
    let r = t.lookup(id).await.expect("lookup");
    (
        r,
        Measure {
            time: start.elapsed(),
            bytes: read.get() - b,
            objects: listed.get() - o,
        },
    )
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut report = String::from(
        "| history rows | lake size | first scan (reads history) | idle poll | poll after one increment |\n|---|---|---|---|---|\n",
    );
    for n in SIZES {
        let root: PathBuf = std::env::temp_dir().join(format!("lagwatch-lake-bench-{n}"));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("Changelog")).expect("mkdir");
        let per = n / FOLDERS;
        for f in 0..FOLDERS {
            let mut csv = String::new();
            rows(&mut csv, per, |i| format!("business-{f}-{i}"));
            write_folder(&root, f, &csv);
        }
        open(&root, FOLDERS);
        let size: u64 = walk(&root);

        let read = IntCounter::new("read", "bench").expect("counter");
        let listed = IntCounter::new("listed", "bench").expect("counter");
        let cursor = Cursor::new(
            TableSpec {
                table: "account".into(),
                key_column: "name".into(),
                payload_column: Some("description".into()),
                key_prefix: "lagwatch-".into(),
            },
            "2020-01-01T00:00:00Z".parse().expect("time"),
            Duration::from_secs(86_400),
        );
        let target = SynapseLinkCsv::new(
            Box::new(Metered::new(
                LocalStore::new(&root),
                listed.clone(),
                read.clone(),
            )),
            cursor,
            Gauge::new("g", "bench").expect("gauge"),
        );
        let id = SentinelId::new("bench");
        let (_, first) = poll(&target, &id, &read, &listed).await;
        let (_, idle) = poll(&target, &id, &read, &listed).await;
        // One increment: 100 changed rows and the sentinel, in the folder that was open.
        let mut csv = String::new();
        rows(&mut csv, 100, |i| format!("business-new-{i}"));
        rows(&mut csv, 1, |_| id.key().to_string());
        write_folder(&root, FOLDERS, &csv);
        open(&root, FOLDERS + 1);
        let (found, inc) = poll(&target, &id, &read, &listed).await;
        assert!(matches!(found, Lookup::Present { .. }), "sentinel found");
        let cell = |m: &Measure| {
            format!(
                "{:.2} ms, {} B, {} objects",
                m.time.as_secs_f64() * 1000.0,
                m.bytes,
                m.objects
            )
        };
        let _ = writeln!(
            report,
            "| {n} | {:.1} MB | {} | {} | {} |",
            size as f64 / 1e6,
            cell(&first),
            cell(&idle),
            cell(&inc)
        );
        let _ = std::fs::remove_dir_all(&root);
    }
    println!("{report}");
    println!("{}", table_layout().await);
}

fn spec() -> TableSpec {
    TableSpec {
        table: "account".into(),
        key_column: "name".into(),
        payload_column: Some("description".into()),
        key_prefix: "lagwatch-".into(),
    }
}

fn cell(m: &Measure) -> String {
    format!(
        "{:.2} ms, {} B, {} objects",
        m.time.as_secs_f64() * 1000.0,
        m.bytes,
        m.objects
    )
}

/// The table layout: one partition file of `n` rows, polled at start-up, idle, after one
/// appended row, and after an in-place rewrite.
async fn table_layout() -> String {
    let mut report = String::from(
        "| partition rows | file size | start-up poll | idle poll | poll after one appended row | poll after an in-place rewrite |\n|---|---|---|---|---|---|\n",
    );
    for n in SIZES {
        let root: PathBuf = std::env::temp_dir().join(format!("lagwatch-lake-table-bench-{n}"));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("account")).expect("mkdir");
        std::fs::write(root.join("model.json"), MODEL).expect("model");
        let file = root.join("account/2026.csv");
        let mut csv = String::new();
        rows(&mut csv, n, |i| format!("business-{i}"));
        std::fs::write(&file, &csv).expect("csv");
        let size = csv.len();
        drop(csv);

        let read = IntCounter::new("read", "bench").expect("counter");
        let listed = IntCounter::new("listed", "bench").expect("counter");
        let target = SynapseLinkCsv::new(
            Box::new(Metered::new(
                LocalStore::new(&root),
                listed.clone(),
                read.clone(),
            )),
            TableCursor::new(spec(), Duration::from_secs(86_400)),
            Gauge::new("g", "bench").expect("gauge"),
        );
        let id = SentinelId::new("bench");
        let (_, start) = poll(&target, &id, &read, &listed).await;
        let (_, idle) = poll(&target, &id, &read, &listed).await;
        let mut one = String::new();
        rows(&mut one, 1, |_| id.key().to_string());
        std::fs::OpenOptions::new()
            .append(true)
            .open(&file)
            .and_then(|mut f| std::io::Write::write_all(&mut f, one.as_bytes()))
            .expect("append");
        let (found, append) = poll(&target, &id, &read, &listed).await;
        assert!(matches!(found, Lookup::Present { .. }), "sentinel found");
        // In-place update mode: an early row updated (longer), another sentinel appended; the
        // file replaced by rename, as a writer replaces it atomically.
        let other = SentinelId::new("bench");
        let text = std::fs::read_to_string(&file).expect("read");
        let mut text = text.replacen("Contoso account 1,", "Contoso account 1 (updated),", 1);
        rows(&mut text, 1, |_| other.key().to_string());
        let tmp = root.join("account/.2026.csv.tmp");
        std::fs::write(&tmp, text).expect("tmp");
        std::fs::rename(&tmp, &file).expect("rename");
        let (found, rewrite) = poll(&target, &other, &read, &listed).await;
        assert!(matches!(found, Lookup::Present { .. }), "sentinel found");
        let _ = writeln!(
            report,
            "| {n} | {:.1} MB | {} | {} | {} | {} |",
            size as f64 / 1e6,
            cell(&start),
            cell(&idle),
            cell(&append),
            cell(&rewrite)
        );
        let _ = std::fs::remove_dir_all(&root);
    }
    report
}

fn walk(p: &Path) -> u64 {
    let mut total = 0;
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            let Ok(m) = e.metadata() else { continue };
            total += if m.is_dir() { walk(&e.path()) } else { m.len() };
        }
    }
    total
}
