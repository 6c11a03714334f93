//! Sentinels: the small records lagwatch writes and then looks for downstream.
//!
//! A sentinel's id is a UUID v7 (time-ordered, so listing a source by id also lists it by age)
//! prefixed with the instance name, so the start-up sweep can find this instance's leftovers
//! and never touch another instance's. Ids are opaque and never become metric labels.

use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use uuid::Uuid;

/// Prefix of every sentinel key, so sentinels are recognisable in a customer's tables.
pub const KEY_PREFIX: &str = "lagwatch";

/// Identity of one sentinel.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SentinelId {
    uuid: Uuid,
    key: String,
}

/// This process as a sentinel writer: a random number drawn once per process and the time it
/// was drawn. Every sentinel id this process makes carries the number in the last four bytes
/// of its UUID v7 (random bits by the standard), so a sentinel under this instance's name
/// written after this process started and carrying another number was written by another live
/// process using the same instance name (a restart's predecessor wrote before it started).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Writer {
    pub nonce: u32,
    pub since: DateTime<Utc>,
}

impl Writer {
    /// This process's writer identity (the same for the whole process, across reloads).
    pub fn this_process() -> Writer {
        static THIS: std::sync::OnceLock<Writer> = std::sync::OnceLock::new();
        *THIS.get_or_init(|| Writer {
            nonce: rand::random(),
            since: Utc::now(),
        })
    }

    /// Whether `id`, listed under `instance`'s owner prefix, was written by another live
    /// process using the same instance name: a time-ordered sentinel (not an update canary,
    /// whose key every process of the instance shares) of exactly this instance, written at or
    /// after this writer started, carrying another writer's number.
    pub fn is_foreign(&self, instance: &str, id: &SentinelId) -> bool {
        id.owner() == Some(instance)
            && !id.is_canary()
            && id.writer() != Some(self.nonce)
            && id.written_at().is_some_and(|t| t >= self.since)
    }
}

impl SentinelId {
    /// A fresh, time-ordered id owned by `instance`, carrying this process's writer number.
    pub fn new(instance: &str) -> Self {
        Self::written_by(instance, Writer::this_process().nonce)
    }

    /// A fresh, time-ordered id owned by `instance` carrying the writer number `nonce`.
    pub fn written_by(instance: &str, nonce: u32) -> Self {
        let mut bytes = *Uuid::now_v7().as_bytes();
        bytes[12..].copy_from_slice(&nonce.to_be_bytes());
        Self::from_parts(instance, Uuid::from_bytes(bytes))
    }

    /// The writer number of a time-ordered id ([`Writer`]); `None` for a canary.
    pub fn writer(&self) -> Option<u32> {
        (self.uuid.get_version_num() == 7).then(|| {
            let b = self.uuid.as_bytes();
            u32::from_be_bytes([b[12], b[13], b[14], b[15]])
        })
    }

    /// The instance name the key carries (`lagwatch-<instance>-<uuid>`).
    pub fn owner(&self) -> Option<&str> {
        let rest = self.key.strip_prefix(KEY_PREFIX)?.strip_prefix('-')?;
        // The owner, then a dash and the 36 characters of the UUID.
        rest.get(..rest.len().checked_sub(37)?)
    }

    /// When a time-ordered id was made (its UUID v7's milliseconds); `None` for a canary.
    pub fn written_at(&self) -> Option<DateTime<Utc>> {
        let ts = self.uuid.get_timestamp().filter(|_| !self.is_canary())?;
        let (secs, nanos) = ts.to_unix();
        DateTime::from_timestamp(i64::try_from(secs).ok()?, nanos)
    }

    /// Whether `key` (a value read from a customer's table) is a sentinel key of any
    /// instance, by the naming rule: `lagwatch-<instance>-<uuid>`. Reconciliation leaves
    /// such rows out: they are lagwatch's probes, not the customer's data.
    pub fn is_sentinel_key(key: &str) -> bool {
        Self::parse(key).is_some()
    }

    pub fn from_parts(instance: &str, uuid: Uuid) -> Self {
        SentinelId {
            uuid,
            key: format!("{}{}", Self::owner_prefix(instance), uuid),
        }
    }

    /// Parses a key written by [`SentinelId::key`]; `None` if it is not a sentinel key.
    pub fn parse(key: &str) -> Option<Self> {
        let rest = key.strip_prefix(KEY_PREFIX)?.strip_prefix('-')?;
        // The UUID is the last 36 characters, after the instance name and a dash.
        let split = rest.len().checked_sub(36)?;
        let (owner, uuid) = (rest.get(..split)?, rest.get(split..)?);
        if owner.len() < 2 || !owner.ends_with('-') {
            return None;
        }
        let uuid = Uuid::parse_str(uuid).ok()?;
        Some(SentinelId {
            uuid,
            key: key.to_string(),
        })
    }

    /// The update canary of `instance`'s group `group` (a source and interval): one fixed key,
    /// a UUID of version 8 (never a v7 sentinel's), so the start-up sweep can leave it alone.
    pub fn canary(instance: &str, group: &str) -> Self {
        let h = checksum(&format!("{instance}\u{0}{group}"));
        let l = checksum(&format!("{group}\u{0}{instance}"));
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&h.to_be_bytes());
        bytes[8..].copy_from_slice(&l.to_be_bytes());
        Self::from_parts(
            instance,
            uuid::Builder::from_custom_bytes(bytes).into_uuid(),
        )
    }

    /// Whether this is an update canary's key ([`SentinelId::canary`]).
    pub fn is_canary(&self) -> bool {
        self.uuid.get_version_num() == 8
    }

    /// Whether `key` is an update canary's key: a reader that keeps one row per sentinel
    /// keeps every row of a canary, whose record is written again with each version.
    pub fn is_canary_key(key: &str) -> bool {
        Self::parse(key).is_some_and(|id| id.is_canary())
    }

    /// Whether the sentinel was written before `t`, by its UUID v7's millisecond timestamp,
    /// for a sweep of a system whose rows carry no creation time. A canary (v8) never is: the
    /// sweep leaves it.
    pub fn written_before(&self, t: DateTime<Utc>) -> bool {
        self.written_at().is_some_and(|w| w < t)
    }

    /// The prefix every key of `instance` starts with, for listing own sentinels.
    pub fn owner_prefix(instance: &str) -> String {
        format!("{KEY_PREFIX}-{instance}-")
    }

    /// The string stored in the sentinel's key column.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The UUID, for systems whose records need a GUID primary key (Dataverse).
    pub fn uuid(&self) -> Uuid {
        self.uuid
    }
}

impl fmt::Debug for SentinelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key)
    }
}

impl fmt::Display for SentinelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key)
    }
}

/// One sentinel as written to a source.
#[derive(Debug, Clone)]
pub struct Sentinel {
    pub id: SentinelId,
    /// Sequence number within this instance and source (continued across restarts from the
    /// ledger; from 0 without one).
    pub seq: u64,
    /// Wall-clock write time, informational (lag is measured on the monotonic clock).
    pub written_at: DateTime<Utc>,
    /// The payload stored in the record. Carries nothing sensitive: instance, seq, time.
    pub payload: String,
    /// Checksum of `payload`; a replica holding other content is a `mismatch`.
    pub checksum: u64,
}

impl Sentinel {
    pub fn new(instance: &str, seq: u64, written_at: DateTime<Utc>) -> Self {
        Self::restore(instance, SentinelId::new(instance), seq, written_at)
    }

    /// The sentinel an earlier process wrote, rebuilt from what the ledger kept: the same
    /// payload and checksum, so a replica's copy still matches.
    pub fn restore(instance: &str, id: SentinelId, seq: u64, written_at: DateTime<Utc>) -> Self {
        let payload = serde_json::json!({
            "instance": instance,
            "seq": seq,
            "written_at": written_at.to_rfc3339_opts(SecondsFormat::Millis, true),
        })
        .to_string();
        let checksum = checksum(&payload);
        Sentinel {
            id,
            seq,
            written_at,
            payload,
            checksum,
        }
    }

    /// The sequence number (a canary's version) in content read back from a replica, if it is
    /// a sentinel's payload.
    pub fn seq_of(observed: &str) -> Option<u64> {
        serde_json::from_str::<serde_json::Value>(observed)
            .ok()?
            .get("seq")?
            .as_u64()
    }

    /// Whether content read back from a replica is this sentinel's content.
    pub fn matches(&self, observed: &str) -> bool {
        checksum(observed) == self.checksum
    }
}

/// 64-bit FNV-1a: stable across versions and platforms, which a std hasher is not.
pub fn checksum(data: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_canary_key_is_fixed_per_group_parses_and_is_told_apart() {
        let a = SentinelId::canary("prod", "crm@30s");
        assert_eq!(a, SentinelId::canary("prod", "crm@30s"));
        assert_ne!(a, SentinelId::canary("prod", "crm@10s"));
        assert_ne!(a, SentinelId::canary("test", "crm@30s"));
        assert!(a.is_canary());
        let parsed = SentinelId::parse(a.key()).expect("a sentinel key");
        assert!(parsed.is_canary());
        assert!(!SentinelId::new("prod").is_canary());
        assert!(SentinelId::is_canary_key(a.key()));
        assert!(!SentinelId::is_canary_key(SentinelId::new("prod").key()));
        assert!(!SentinelId::is_canary_key("lagwatch-prod-x"));
        let now = Utc::now();
        assert!(SentinelId::new("prod").written_before(now + chrono::Duration::seconds(1)));
        assert!(!SentinelId::new("prod").written_before(now - chrono::Duration::seconds(1)));
        assert!(
            !a.written_before(now + chrono::Duration::days(1)),
            "a canary is never swept"
        );
        let s = Sentinel::restore("prod", a, 42, Utc::now());
        assert_eq!(Sentinel::seq_of(&s.payload), Some(42));
        assert_eq!(Sentinel::seq_of("<html>"), None);
    }

    #[test]
    fn ids_carry_the_owner_and_round_trip() {
        let id = SentinelId::new("prod-eu");
        assert!(id.key().starts_with("lagwatch-prod-eu-"));
        let back = SentinelId::parse(id.key()).unwrap();
        assert_eq!(back, id);
        assert_eq!(back.uuid().get_version_num(), 7);
        assert!(SentinelId::parse("customer-record-1").is_none());
    }

    #[test]
    fn ids_carry_their_writer_and_tell_another_live_writer_apart() {
        let me = Writer {
            nonce: 7,
            since: Utc::now() - chrono::Duration::seconds(1),
        };
        let mine = SentinelId::written_by("prod", 7);
        assert_eq!(mine.writer(), Some(7));
        assert_eq!(mine.owner(), Some("prod"));
        let back = SentinelId::parse(mine.key()).expect("a sentinel key");
        assert_eq!(back.writer(), Some(7));
        assert!(!me.is_foreign("prod", &back));
        // Another process of the same name, writing now: foreign.
        let other = SentinelId::parse(SentinelId::written_by("prod", 8).key()).unwrap();
        assert!(me.is_foreign("prod", &other));
        // Another instance whose name starts with ours is not ours at all.
        let longer = SentinelId::parse(SentinelId::written_by("prod-eu", 8).key()).unwrap();
        assert_eq!(longer.owner(), Some("prod-eu"));
        assert!(!me.is_foreign("prod", &longer));
        // A predecessor (a restart) wrote before this writer started: not foreign.
        let old = Uuid::new_v7(uuid::Timestamp::from_unix(
            uuid::NoContext,
            u64::try_from((me.since - chrono::Duration::minutes(5)).timestamp()).unwrap(),
            0,
        ));
        assert!(!me.is_foreign("prod", &SentinelId::from_parts("prod", old)));
        // The update canary's key is shared by every process of the instance.
        assert!(!me.is_foreign("prod", &SentinelId::canary("prod", "crm@30s")));
        assert_eq!(
            SentinelId::new("x").writer(),
            Some(Writer::this_process().nonce)
        );
        assert!(SentinelId::is_sentinel_key(SentinelId::new("demo").key()));
        assert!(!SentinelId::is_sentinel_key("lagwatch-demo"));
        assert!(!SentinelId::is_sentinel_key("Contoso Ltd"));
    }

    #[test]
    fn ids_are_time_ordered() {
        let a = SentinelId::new("x");
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = SentinelId::new("x");
        assert!(a.key() < b.key());
    }

    #[test]
    fn checksum_detects_changed_content() {
        let s = Sentinel::new("x", 7, Utc::now());
        assert!(s.matches(&s.payload));
        assert!(!s.matches(&s.payload.replace("\"seq\":7", "\"seq\":8")));
        assert_eq!(checksum("a"), 0xaf63_dc4c_8601_ec8c);
    }
}
