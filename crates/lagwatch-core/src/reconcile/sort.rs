//! An external sort of one side's records by key, in bounded memory.
//!
//! Why not let the server sort (`$orderby`): Dataverse and search services order strings by
//! their own collation (case-insensitively, say), lakes have no order at all, and a merge join
//! is only correct when both sides use the same order. So every side is sorted here, by the
//! bytes of the normalised key. At most `chunk` records are held in memory; full chunks are
//! sorted and spilled to a temporary file, and the runs are merged lazily at the end. Memory
//! is `chunk` records plus one per run, whatever the table size; a side that spilled at all
//! spills its last partial chunk too, so a finished side waiting for the other to be read holds
//! no chunk.
//!
//! Each record carries the sequence in which it was read, so records of the same key come out
//! in reading order — what a change log ([`InventoryShape::Changes`]) needs to keep the last.
//!
//! [`InventoryShape::Changes`]: crate::connector::inventory::InventoryShape::Changes

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use super::diff::Record;

/// A record as read, before de-duplication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub record: Record,
    /// Order of reading on this side.
    pub seq: u64,
    /// A change-log delete marker.
    pub deleted: bool,
}

impl Item {
    fn sort_key(&self) -> (&str, u64) {
        (&self.record.key, self.seq)
    }
}

/// Sorts items by (key, reading order), spilling to `dir` beyond `chunk` items.
pub struct Sorter {
    dir: PathBuf,
    chunk: usize,
    buf: Vec<Item>,
    runs: Vec<tempfile::NamedTempFile>,
    /// Bytes written to spill files, for the run report.
    pub spilled_bytes: u64,
}

impl Sorter {
    pub fn new(dir: &Path, chunk: usize) -> Sorter {
        Sorter {
            dir: dir.to_path_buf(),
            chunk: chunk.max(1),
            buf: Vec::new(),
            runs: Vec::new(),
            spilled_bytes: 0,
        }
    }

    /// Adds one item.
    ///
    /// # Errors
    /// I/O errors of the spill file.
    pub fn push(&mut self, item: Item) -> io::Result<()> {
        self.buf.push(item);
        if self.buf.len() >= self.chunk {
            self.spill()?;
        }
        Ok(())
    }

    fn spill(&mut self) -> io::Result<()> {
        self.buf
            .sort_unstable_by(|a, b| a.sort_key().cmp(&b.sort_key()));
        let file = tempfile::Builder::new()
            .prefix("lagwatch-reconcile-")
            .tempfile_in(&self.dir)?;
        let mut w = BufWriter::with_capacity(1 << 16, file.as_file());
        for item in self.buf.drain(..) {
            self.spilled_bytes += encode(&mut w, &item)?;
        }
        w.flush()?;
        drop(w);
        self.runs.push(file);
        Ok(())
    }

    /// Every item pushed, sorted.
    ///
    /// # Errors
    /// I/O errors of the spill files (reading them back can also fail later, per item).
    pub fn finish(mut self) -> io::Result<Sorted> {
        // Once a side spilled, its rest spills too: the merged side then holds only its
        // readers while the other side is read, so two chunks are never in memory at once.
        if !self.runs.is_empty() && !self.buf.is_empty() {
            self.spill()?;
        }
        self.buf
            .sort_unstable_by(|a, b| a.sort_key().cmp(&b.sort_key()));
        let mut readers = Vec::with_capacity(self.runs.len());
        for run in &self.runs {
            readers.push(BufReader::with_capacity(1 << 16, run.reopen()?));
        }
        let mut sorted = Sorted {
            memory: std::mem::take(&mut self.buf).into_iter(),
            mem_head: None,
            readers,
            heap: BinaryHeap::new(),
            _runs: std::mem::take(&mut self.runs),
        };
        sorted.mem_head = sorted.memory.next();
        for i in 0..sorted.readers.len() {
            if let Some(item) = decode(&mut sorted.readers[i])? {
                sorted.heap.push(Reverse(HeapEntry { item, run: i }));
            }
        }
        Ok(sorted)
    }
}

struct HeapEntry {
    item: Item,
    run: usize,
}

impl PartialEq for HeapEntry {
    fn eq(&self, other: &Self) -> bool {
        self.item.sort_key() == other.item.sort_key()
    }
}
impl Eq for HeapEntry {}
impl PartialOrd for HeapEntry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for HeapEntry {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.item.sort_key().cmp(&other.item.sort_key())
    }
}

/// The merged, sorted items; the spill files are deleted when it is dropped.
pub struct Sorted {
    memory: std::vec::IntoIter<Item>,
    mem_head: Option<Item>,
    readers: Vec<BufReader<File>>,
    heap: BinaryHeap<Reverse<HeapEntry>>,
    _runs: Vec<tempfile::NamedTempFile>,
}

impl Iterator for Sorted {
    type Item = io::Result<Item>;

    fn next(&mut self) -> Option<io::Result<Item>> {
        let take_memory = match (&self.mem_head, self.heap.peek()) {
            (None, None) => return None,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(m), Some(Reverse(h))) => m.sort_key() <= h.item.sort_key(),
        };
        if take_memory {
            let next = self.memory.next();
            return std::mem::replace(&mut self.mem_head, next).map(Ok);
        }
        let Reverse(HeapEntry { item, run }) = self.heap.pop()?;
        match decode(&mut self.readers[run]) {
            Ok(Some(next)) => self.heap.push(Reverse(HeapEntry { item: next, run })),
            Ok(None) => {}
            Err(e) => return Some(Err(e)),
        }
        Some(Ok(item))
    }
}

const HAS_VERSION: u8 = 1;
const HAS_CHANGED: u8 = 2;
const HAS_HASH: u8 = 4;
const DELETED: u8 = 8;

fn encode(w: &mut impl Write, item: &Item) -> io::Result<u64> {
    let r = &item.record;
    let mut flags = 0u8;
    if r.version.is_some() {
        flags |= HAS_VERSION;
    }
    if r.changed.is_some() {
        flags |= HAS_CHANGED;
    }
    if r.hash.is_some() {
        flags |= HAS_HASH;
    }
    if item.deleted {
        flags |= DELETED;
    }
    let mut n = 1 + 8;
    w.write_all(&[flags])?;
    w.write_all(&item.seq.to_le_bytes())?;
    n += write_str(w, &r.key)?;
    if let Some(v) = &r.version {
        n += write_str(w, v)?;
    }
    if let Some(c) = r.changed {
        w.write_all(&c.timestamp().to_le_bytes())?;
        w.write_all(&c.timestamp_subsec_nanos().to_le_bytes())?;
        n += 12;
    }
    if let Some(h) = r.hash {
        w.write_all(&h.to_le_bytes())?;
        n += 8;
    }
    Ok(n)
}

fn write_str(w: &mut impl Write, s: &str) -> io::Result<u64> {
    let len = u32::try_from(s.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "value longer than 4 GiB"))?;
    w.write_all(&len.to_le_bytes())?;
    w.write_all(s.as_bytes())?;
    Ok(4 + s.len() as u64)
}

fn read_array<const N: usize>(r: &mut impl Read) -> io::Result<[u8; N]> {
    let mut b = [0u8; N];
    r.read_exact(&mut b)?;
    Ok(b)
}

fn read_str(r: &mut impl Read) -> io::Result<String> {
    let len = u32::from_le_bytes(read_array(r)?) as usize;
    let mut b = vec![0u8; len];
    r.read_exact(&mut b)?;
    String::from_utf8(b).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// The next item of a run, `None` at its end.
fn decode(r: &mut impl Read) -> io::Result<Option<Item>> {
    let mut flags = [0u8; 1];
    if r.read(&mut flags)? == 0 {
        return Ok(None);
    }
    let flags = flags[0];
    let seq = u64::from_le_bytes(read_array(r)?);
    let key = read_str(r)?;
    let version = if flags & HAS_VERSION != 0 {
        Some(read_str(r)?)
    } else {
        None
    };
    let changed = if flags & HAS_CHANGED != 0 {
        let secs = i64::from_le_bytes(read_array(r)?);
        let nanos = u32::from_le_bytes(read_array(r)?);
        DateTime::<Utc>::from_timestamp(secs, nanos)
    } else {
        None
    };
    let hash = if flags & HAS_HASH != 0 {
        Some(u64::from_le_bytes(read_array(r)?))
    } else {
        None
    };
    Ok(Some(Item {
        record: Record {
            key,
            version,
            changed,
            hash,
        },
        seq,
        deleted: flags & DELETED != 0,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn item(key: &str, seq: u64) -> Item {
        Item {
            record: Record {
                key: key.to_string(),
                version: (!seq.is_multiple_of(3)).then(|| format!("v{seq}")),
                changed: seq
                    .is_multiple_of(2)
                    .then(|| DateTime::<Utc>::from_timestamp(1_700_000_000 + seq as i64, 7))
                    .flatten(),
                hash: (!seq.is_multiple_of(5)).then_some(seq * 31),
            },
            seq,
            deleted: seq.is_multiple_of(7),
        }
    }

    fn sorted(items: Vec<Item>, chunk: usize) -> (Vec<Item>, u64) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = Sorter::new(dir.path(), chunk);
        for i in items {
            s.push(i).expect("push");
        }
        let spilled = s.spilled_bytes;
        let out: Vec<Item> = s
            .finish()
            .expect("finish")
            .collect::<io::Result<_>>()
            .expect("read");
        (out, spilled)
    }

    #[test]
    fn spilled_runs_merge_back_with_every_field() {
        let items: Vec<Item> = (0..1000u64)
            .map(|i| item(&format!("k{:03}", (i * 7919) % 250), i))
            .collect();
        let (out, spilled) = sorted(items.clone(), 64);
        assert!(spilled > 0, "a chunk of 64 must spill 1000 items");
        let mut want = items;
        want.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
        assert_eq!(out, want);
    }

    #[test]
    fn spill_files_are_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = Sorter::new(dir.path(), 2);
        for i in 0..10 {
            s.push(item("a", i)).expect("push");
        }
        let it = s.finish().expect("finish");
        assert!(std::fs::read_dir(dir.path()).expect("dir").count() > 0);
        drop(it);
        assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 0);
    }

    proptest! {
        #[test]
        fn any_input_comes_out_sorted_and_complete(
            keys in proptest::collection::vec("[a-c]{0,3}", 0..200),
            chunk in 1usize..50,
        ) {
            let items: Vec<Item> = keys.iter().enumerate().map(|(i, k)| item(k, i as u64)).collect();
            let (out, _) = sorted(items.clone(), chunk);
            let mut want = items;
            want.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
            prop_assert_eq!(out, want);
        }
    }
}
