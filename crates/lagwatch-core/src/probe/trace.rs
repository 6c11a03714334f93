//! What each probe did, read by read: the evidence behind every number lagwatch exports.
//!
//! A metric is an aggregate; an operator who doubts one needs the probes behind it. Each path
//! keeps its most recent [`RING`] resolved probes as [`ProbeTrace`]s: when the sentinel was
//! written and acknowledged, every read with the instants it was sent and answered and what it
//! found (or the error, with its HTTP status and message), and the outcome. The lag bound, the
//! first hit, the last miss and the reason for the outcome all follow from those reads, so
//! anyone can check them against the target (or the emulator's `/_truth`).
//!
//! Traces are compact (times as milliseconds after the acknowledgement, the sentinel as its
//! UUID, error details only for failed reads), so a thousand paths' rings stay in the tens of
//! megabytes; see BENCHMARKS.md.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use tokio::time::Instant;
use uuid::Uuid;

use super::estimate::LagEstimate;
use super::path::Outcome;
use crate::connector::ConnectorError;
use crate::sentinel::SentinelId;

/// Resolved probes kept per path.
pub const RING: usize = 200;

/// Longest error message kept per failed read (the rest is cut at a character boundary).
const MESSAGE_CAP: usize = 300;

/// What one read found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadResult {
    Absent,
    Present,
    /// Present with different content.
    Mismatch,
    /// The request failed: see the read's error.
    Error,
}

/// Why a read failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReadError {
    /// As in `lagwatch_lookup_errors_total{kind}`.
    pub kind: &'static str,
    /// The HTTP status, when the system answered one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    pub message: Box<str>,
}

impl ReadError {
    pub fn of(e: &ConnectorError) -> ReadError {
        let status = match e {
            ConnectorError::Unavailable { status, .. }
            | ConnectorError::BadResponse { status, .. } => Some(*status),
            ConnectorError::Throttled { .. } => Some(429),
            _ => None,
        };
        let mut message = e.to_string();
        if message.len() > MESSAGE_CAP {
            let mut cut = MESSAGE_CAP;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push('…');
        }
        ReadError {
            kind: e.kind(),
            status,
            message: message.into_boxed_str(),
        }
    }
}

/// One read, unpacked: sent and answered as milliseconds after the acknowledgement.
#[derive(Debug, Clone, Copy)]
struct Read {
    sent_ms: u32,
    answered_ms: u32,
    result: ReadResult,
}

const RESULTS: [ReadResult; 4] = [
    ReadResult::Absent,
    ReadResult::Present,
    ReadResult::Mismatch,
    ReadResult::Error,
];

fn ms_after(base: Instant, at: Instant) -> u32 {
    u32::try_from(at.saturating_duration_since(base).as_millis()).unwrap_or(u32::MAX)
}

/// Bytes a probe's reads keep inline before they move to the heap.
const INLINE: usize = 22;

/// A probe's reads, encoded: per read a varint of the milliseconds since the previous read
/// was sent (zigzag, so a read sent earlier than the one before still round-trips), then a
/// varint of how long it took in milliseconds shifted left by 2 with the result in the low
/// bits. Typical reads (polls seconds apart, answered in milliseconds) take 3 bytes, so the
/// half-dozen reads of a probe fit inline and a full ring of a thousand paths allocates
/// nothing per probe: the ring is the memory lagwatch holds most of (BENCHMARKS.md).
#[derive(Debug, Clone)]
enum Packed {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(Box<[u8]>),
}

impl Default for Packed {
    fn default() -> Self {
        Packed::Inline {
            len: 0,
            bytes: [0; INLINE],
        }
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn take_varint(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *bytes.get(*at)?;
        *at += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

impl Packed {
    fn encode(reads: &[Read]) -> Packed {
        let mut out = Vec::with_capacity(reads.len() * 3);
        let mut prev = 0i64;
        for r in reads {
            let delta = i64::from(r.sent_ms) - prev;
            prev = i64::from(r.sent_ms);
            put_varint(&mut out, ((delta << 1) ^ (delta >> 63)) as u64);
            let took = u64::from(r.answered_ms.saturating_sub(r.sent_ms));
            let code = RESULTS.iter().position(|x| *x == r.result).unwrap_or(3) as u64;
            put_varint(&mut out, took << 2 | code);
        }
        if out.len() <= INLINE {
            let mut bytes = [0; INLINE];
            bytes[..out.len()].copy_from_slice(&out);
            Packed::Inline {
                len: out.len() as u8,
                bytes,
            }
        } else {
            Packed::Heap(out.into_boxed_slice())
        }
    }

    fn bytes(&self) -> &[u8] {
        match self {
            Packed::Inline { len, bytes } => &bytes[..usize::from(*len).min(INLINE)],
            Packed::Heap(b) => b,
        }
    }

    fn heap_bytes(&self) -> usize {
        match self {
            Packed::Inline { .. } => 0,
            Packed::Heap(b) => b.len(),
        }
    }

    fn decode(&self) -> Vec<Read> {
        let bytes = self.bytes();
        let (mut at, mut prev, mut reads) = (0usize, 0i64, Vec::new());
        while at < bytes.len() {
            let (Some(d), Some(t)) = (take_varint(bytes, &mut at), take_varint(bytes, &mut at))
            else {
                break;
            };
            let delta = (d >> 1) as i64 ^ -((d & 1) as i64);
            prev += delta;
            let sent_ms = u32::try_from(prev.max(0)).unwrap_or(u32::MAX);
            reads.push(Read {
                sent_ms,
                answered_ms: sent_ms.saturating_add(u32::try_from(t >> 2).unwrap_or(u32::MAX)),
                result: RESULTS[(t & 3) as usize],
            });
        }
        reads
    }
}

/// The reads of a probe as they happen; becomes a [`ProbeTrace`] when the probe resolves.
#[derive(Debug)]
pub(crate) struct Recorder {
    acked: Instant,
    reads: Vec<Read>,
    errors: Vec<ReadError>,
}

impl Recorder {
    pub(crate) fn new(acked: Instant) -> Recorder {
        Recorder {
            acked,
            reads: Vec::new(),
            errors: Vec::new(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.reads.len()
    }

    pub(crate) fn read(
        &mut self,
        sent: Instant,
        answered: Instant,
        result: ReadResult,
        error: Option<ReadError>,
    ) {
        self.reads.push(Read {
            sent_ms: ms_after(self.acked, sent),
            answered_ms: ms_after(self.acked, answered),
            result,
        });
        if let Some(e) = error {
            self.errors.push(e);
        }
    }

    /// The finished trace. `acked_wall` is the acknowledgement on the wall clock.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn finish(
        self,
        sentinel: &SentinelId,
        seq: u64,
        written_at: DateTime<Utc>,
        acked_wall: DateTime<Utc>,
        write: Duration,
        outcome: Outcome,
        estimate: Option<LagEstimate>,
        resumed: bool,
    ) -> ProbeTrace {
        let resolved_ms = ms_after(self.acked, Instant::now());
        let acked_us = acked_wall.timestamp_micros();
        let written_before_us = acked_us.saturating_sub(written_at.timestamp_micros());
        ProbeTrace {
            uuid: sentinel.uuid(),
            seq,
            acked_us,
            written_before_us: u32::try_from(written_before_us.max(0)).unwrap_or(u32::MAX),
            write_ms: u32::try_from(write.as_millis()).unwrap_or(u32::MAX),
            resolved_ms,
            lag: estimate.map_or(f32::NAN, |e| e.lag.as_secs_f32()),
            uncertainty: estimate.map_or(f32::NAN, |e| e.uncertainty.as_secs_f32()),
            outcome,
            resumed,
            n_reads: u16::try_from(self.reads.len()).unwrap_or(u16::MAX),
            reads: Packed::encode(&self.reads),
            errors: (!self.errors.is_empty()).then(|| Box::new(self.errors)),
        }
    }
}

/// One resolved probe of one path: 88 bytes and no allocation for a probe whose reads all
/// answered (the common case), so a thousand paths' full rings stay near 17 MiB.
#[derive(Debug, Clone)]
pub struct ProbeTrace {
    uuid: Uuid,
    pub seq: u64,
    /// When the source acknowledged the write, on lagwatch's wall clock (µs since the Unix
    /// epoch): every read's time is counted from here.
    acked_us: i64,
    /// How long before the acknowledgement the sentinel was created (its `written_at`, just
    /// before the write was sent), in µs.
    written_before_us: u32,
    write_ms: u32,
    resolved_ms: u32,
    lag: f32,
    uncertainty: f32,
    pub outcome: Outcome,
    pub resumed: bool,
    n_reads: u16,
    reads: Packed,
    /// The errors of the failed reads, in order (`None` for the many probes without one).
    /// Boxed to a thin pointer: 8 bytes in every trace instead of 16, for an extra allocation
    /// only in the rare probe with a failed read.
    #[allow(clippy::box_collection)]
    errors: Option<Box<Vec<ReadError>>>,
}

/// The facts of a path an outcome's reason refers to.
#[derive(Debug, Clone, Copy)]
pub struct PathRules {
    pub timeout: Duration,
    /// The grace of a synchronous target (`halted`).
    pub sync_grace: Option<Duration>,
}

fn secs(ms: u32) -> f64 {
    f64::from(ms) / 1000.0
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl ProbeTrace {
    pub fn sentinel(&self, instance: &str) -> SentinelId {
        SentinelId::from_parts(instance, self.uuid)
    }

    /// The lag estimate of a converged or mismatched probe.
    pub fn estimate(&self) -> Option<LagEstimate> {
        (!self.lag.is_nan()).then(|| LagEstimate {
            lag: Duration::from_secs_f32(self.lag.max(0.0)),
            uncertainty: Duration::from_secs_f32(self.uncertainty.max(0.0)),
        })
    }

    /// When the source acknowledged the write, on lagwatch's wall clock.
    pub fn acked_at(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_micros(self.acked_us).unwrap_or_default()
    }

    /// When the sentinel was created, just before the write was sent.
    pub fn written_at(&self) -> DateTime<Utc> {
        self.acked_at() - chrono::Duration::microseconds(i64::from(self.written_before_us))
    }

    /// When the probe resolved, on the wall clock.
    pub fn resolved_at(&self) -> DateTime<Utc> {
        self.acked_at() + chrono::Duration::milliseconds(i64::from(self.resolved_ms))
    }

    pub fn reads(&self) -> usize {
        usize::from(self.n_reads)
    }

    /// The error of the last read that failed, if one did.
    pub fn last_error(&self) -> Option<&ReadError> {
        self.errors.as_deref().and_then(|e| e.last())
    }

    /// Heap and inline bytes this trace holds (for the memory budget).
    pub fn bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.reads.heap_bytes()
            + self.errors.as_ref().map_or(0, |e| {
                std::mem::size_of::<Vec<ReadError>>()
                    + e.iter()
                        .map(|e| std::mem::size_of::<ReadError>() + e.message.len())
                        .sum::<usize>()
            })
    }

    fn first_hit(reads: &[Read]) -> Option<(usize, Read)> {
        reads
            .iter()
            .copied()
            .enumerate()
            .rev()
            .take_while(|(_, r)| r.result != ReadResult::Absent)
            .filter(|(_, r)| matches!(r.result, ReadResult::Present | ReadResult::Mismatch))
            .last()
    }

    fn last_miss(reads: &[Read]) -> Option<(usize, Read)> {
        reads
            .iter()
            .copied()
            .enumerate()
            .rev()
            .find(|(_, r)| r.result == ReadResult::Absent)
    }

    /// Why the probe ended as it did, in words, from its reads and the path's rules (the
    /// definitions in `docs/measurement.md`).
    pub fn why(&self, rules: PathRules) -> String {
        let t = rules.timeout.as_secs_f64();
        let reads = self.reads.decode();
        let last = reads.last().copied();
        let read_at = |r: Read| {
            format!(
                "the read sent {:.3} s after the acknowledgement",
                secs(r.sent_ms)
            )
        };
        let resumed = if self.resumed {
            " (resumed after a restart: the bound spans it)"
        } else {
            ""
        };
        match self.outcome {
            Outcome::Converged => match (Self::first_hit(&reads), Self::last_miss(&reads)) {
                (Some((_, hit)), Some((_, miss))) => format!(
                    "Seen by {} (answered at {:.3} s); the last read that missed was sent at {:.3} s, so it arrived in between{resumed}.",
                    read_at(hit),
                    secs(hit.answered_ms),
                    secs(miss.sent_ms)
                ),
                (Some((_, hit)), None) => format!(
                    "Seen by {} (answered at {:.3} s), the first read that got an answer{resumed}.",
                    read_at(hit),
                    secs(hit.answered_ms)
                ),
                _ => format!("Seen at the target{resumed}."),
            },
            Outcome::Timeout => match last {
                Some(r) => format!(
                    "Never seen: {}, at or after the {t} s deadline, answered absent.",
                    read_at(r)
                ),
                None => format!("Never seen by the {t} s deadline."),
            },
            Outcome::Error => match (last, self.last_error()) {
                (Some(r), Some(e))
                    if r.result == ReadResult::Error && r.sent_ms >= deadline_ms(rules) =>
                {
                    format!(
                        "Unknown: never seen, and {} (at the {t} s deadline) failed: {}.",
                        read_at(r),
                        e.message
                    )
                }
                _ => format!(
                    "Unknown: never seen, and no read at the {t} s deadline got an answer (lagwatch's own limits for the target did not let one through in time)."
                ),
            },
            Outcome::Mismatch => match last {
                Some(r) => format!("{} found the sentinel with different content.", read_at(r)),
                None => "Found with different content.".to_string(),
            },
            Outcome::Halted => {
                let grace = rules
                    .sync_grace
                    .map_or(String::new(), |g| format!(" of {} s", g.as_secs_f64()));
                match last {
                    Some(r) => format!(
                        "Missing from a synchronous target: {} answered absent after its grace{grace}, so the replication is not running.",
                        read_at(r)
                    ),
                    None => "Missing from a synchronous target after its grace.".to_string(),
                }
            }
        }
    }

    /// The JSON form served by `/api/v1/probes`.
    pub fn view(&self, source: &str, target: &str, instance: &str, rules: PathRules) -> ProbeView {
        let acked_at = self.acked_at();
        let at = |ms: u32| rfc3339(acked_at + chrono::Duration::milliseconds(i64::from(ms)));
        let mut errors = self.errors.iter().flat_map(|e| e.iter());
        let decoded = self.reads.decode();
        let reads = decoded
            .iter()
            .map(|r| ReadView {
                sent_at: at(r.sent_ms),
                sent_after_ack_seconds: secs(r.sent_ms),
                answered_at: at(r.answered_ms),
                answered_after_ack_seconds: secs(r.answered_ms),
                result: r.result,
                error: if r.result == ReadResult::Error {
                    errors.next().cloned()
                } else {
                    None
                },
            })
            .collect();
        let estimate = self.estimate();
        ProbeView {
            source: source.to_string(),
            target: target.to_string(),
            sentinel: self.sentinel(instance).key().to_string(),
            seq: self.seq,
            written_at: rfc3339(self.written_at()),
            acknowledged_at: rfc3339(acked_at),
            write_seconds: secs(self.write_ms),
            resolved_at: rfc3339(self.resolved_at()),
            resolved_after_ack_seconds: secs(self.resolved_ms),
            outcome: self.outcome,
            why: self.why(rules),
            lag_seconds: estimate.map(|e| e.lag.as_secs_f64()),
            lag_uncertainty_seconds: estimate.map(|e| e.uncertainty.as_secs_f64()),
            first_hit: Self::first_hit(&decoded).map(|(i, _)| i),
            last_miss: Self::last_miss(&decoded).map(|(i, _)| i),
            resumed: self.resumed,
            reads,
            delete: None,
        }
    }
}

fn deadline_ms(rules: PathRules) -> u32 {
    u32::try_from(rules.timeout.as_millis()).unwrap_or(u32::MAX)
}

/// One read as `/api/v1/probes` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ReadView {
    pub sent_at: String,
    pub sent_after_ack_seconds: f64,
    pub answered_at: String,
    pub answered_after_ack_seconds: f64,
    pub result: ReadResult,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ReadError>,
}

/// One probe as `/api/v1/probes` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeView {
    pub source: String,
    pub target: String,
    /// The sentinel's key, as written into the source (and as `/_truth/{replica}/{key}` takes).
    pub sentinel: String,
    pub seq: u64,
    pub written_at: String,
    pub acknowledged_at: String,
    /// From sending the write to its acknowledgement.
    pub write_seconds: f64,
    pub resolved_at: String,
    pub resolved_after_ack_seconds: f64,
    pub outcome: Outcome,
    /// The outcome's reason in words (`docs/measurement.md`, "Outcomes").
    pub why: String,
    pub lag_seconds: Option<f64>,
    pub lag_uncertainty_seconds: Option<f64>,
    /// Index in `reads` of the first read that found the sentinel (since the last miss).
    pub first_hit: Option<usize>,
    /// Index in `reads` of the last read that answered absent.
    pub last_miss: Option<usize>,
    pub resumed: bool,
    pub reads: Vec<ReadView>,
    /// How the sentinel's delete went at this target, once it was watched (paths whose
    /// target shows deletes, after a probe that saw the sentinel).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delete: Option<super::deletes::DeleteView>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trace(
        outcome: Outcome,
        reads: &[(u64, u64, ReadResult)],
        error: Option<ReadError>,
    ) -> ProbeTrace {
        let acked = Instant::now();
        let mut rec = Recorder::new(acked);
        let mut error = error;
        for (sent, answered, result) in reads {
            let e = if *result == ReadResult::Error {
                error.take()
            } else {
                None
            };
            rec.read(
                acked + Duration::from_millis(*sent),
                acked + Duration::from_millis(*answered),
                *result,
                e,
            );
        }
        let id = SentinelId::new("t");
        rec.finish(
            &id,
            1,
            Utc::now(),
            Utc::now(),
            Duration::from_millis(20),
            outcome,
            None,
            false,
        )
    }

    const RULES: PathRules = PathRules {
        timeout: Duration::from_secs(45),
        sync_grace: None,
    };

    #[test]
    fn first_hit_and_last_miss_come_from_the_reads() {
        use ReadResult::*;
        let t = trace(
            Outcome::Converged,
            &[
                (250, 260, Absent),
                (1000, 1010, Error),
                (2000, 2010, Absent),
                (3000, 3010, Present),
                (3500, 3510, Present),
            ],
            Some(ReadError {
                kind: "unavailable",
                status: Some(503),
                message: "down".into(),
            }),
        );
        let v = t.view("a", "b", "t", RULES);
        assert_eq!(v.first_hit, Some(3));
        assert_eq!(v.last_miss, Some(2));
        assert_eq!(v.reads[1].error.as_ref().map(|e| e.status), Some(Some(503)));
        assert!(v.reads[0].error.is_none());
        assert!(
            v.why.contains("3.000 s") && v.why.contains("2.000 s"),
            "{}",
            v.why
        );
        assert!(v.sentinel.starts_with("lagwatch-t-"));
    }

    #[test]
    fn the_reason_names_the_deadline_read() {
        use ReadResult::*;
        let timeout = trace(
            Outcome::Timeout,
            &[(250, 260, Absent), (45_000, 45_010, Absent)],
            None,
        );
        assert!(
            timeout.why(RULES).contains("45.000 s"),
            "{}",
            timeout.why(RULES)
        );
        let error = trace(
            Outcome::Error,
            &[(250, 260, Absent), (45_000, 45_010, Error)],
            Some(ReadError {
                kind: "timeout",
                status: None,
                message: "no answer within the request timeout".into(),
            }),
        );
        let why = error.why(RULES);
        assert!(
            why.starts_with("Unknown") && why.contains("no answer"),
            "{why}"
        );
    }

    #[test]
    fn reads_round_trip_through_their_encoding() {
        use ReadResult::*;
        let cases: Vec<Vec<Read>> = vec![
            vec![],
            // Typical: polls seconds apart, answered in milliseconds: inline.
            (0..6)
                .map(|i| Read {
                    sent_ms: 250 + i * 1500,
                    answered_ms: 262 + i * 1500,
                    result: if i == 5 { Present } else { Absent },
                })
                .collect(),
            // Out of order, extremes, every result, and long enough to move to the heap.
            vec![
                Read {
                    sent_ms: 5000,
                    answered_ms: 4000,
                    result: Error,
                },
                Read {
                    sent_ms: 10,
                    answered_ms: 20,
                    result: Mismatch,
                },
                Read {
                    sent_ms: u32::MAX,
                    answered_ms: u32::MAX,
                    result: Present,
                },
                Read {
                    sent_ms: 0,
                    answered_ms: u32::MAX,
                    result: Absent,
                },
            ],
        ];
        for reads in cases {
            let packed = Packed::encode(&reads);
            let back = packed.decode();
            assert_eq!(back.len(), reads.len());
            for (a, b) in reads.iter().zip(&back) {
                assert_eq!(a.sent_ms, b.sent_ms);
                assert_eq!(a.answered_ms.max(a.sent_ms), b.answered_ms);
                assert_eq!(a.result, b.result);
            }
        }
        let six = Packed::encode(
            &[Read {
                sent_ms: 3000,
                answered_ms: 3010,
                result: Absent,
            }; 6],
        );
        assert_eq!(six.heap_bytes(), 0, "six ordinary reads stay inline");
    }

    #[test]
    fn a_trace_stays_small() {
        // The ring's budget in BENCHMARKS.md counts on this size.
        assert!(
            std::mem::size_of::<ProbeTrace>() <= 88,
            "{}",
            std::mem::size_of::<ProbeTrace>()
        );
        let t = trace(
            Outcome::Converged,
            &[
                (250, 260, ReadResult::Absent),
                (2000, 2010, ReadResult::Present),
            ],
            None,
        );
        assert_eq!(t.bytes(), std::mem::size_of::<ProbeTrace>());
        assert_eq!(t.reads(), 2);
        let v = t.view("a", "b", "t", RULES);
        assert_eq!(v.reads[1].sent_after_ack_seconds, 2.0);
        assert!(v.written_at <= v.acknowledged_at);
    }

    #[test]
    fn long_messages_are_cut_at_a_character_boundary() {
        let e = ReadError::of(&ConnectorError::BadResponse {
            status: 200,
            detail: "é".repeat(400),
        });
        assert!(e.message.len() <= MESSAGE_CAP + '…'.len_utf8());
        assert_eq!(e.status, Some(200));
    }
}
