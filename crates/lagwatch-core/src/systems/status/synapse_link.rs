//! `synapse_link`: Azure Synapse Link for Dataverse (CSV lake), per table, from the
//! system-generated tables Dataverse keeps its state in (fact sheet §1.1, §1.2).
//!
//! Why two requests: a table's row says how *its* sync goes, but only while its profile is
//! active; a suspended or errored profile leaves the table rows as they were. So the profile
//! comes first, and a profile that is not active is the answer (one request):
//!
//! ```http
//! GET {base}/synapselinkprofiles?$select=synapselinkprofileid,name,profilestate[&$filter=name eq '<profile>']
//! GET {base}/synapselinkprofileentitystates?$select=entityname,syncstate,initialsyncstate,lastsynceddatatime,lastsynceddataversion,lakerecordcount,crmrecordcount,_profile_value&$filter=entityname eq '<table>'
//! ```
//!
//! (`base` = `https://<org>.crm.dynamics.com/api/data/v9.2`, OData headers and
//! `If-None-Match: null` as every Dataverse read.) `synapselinkprofileid` and `_profile_value`
//! (the Web API form of the entity state's `profile` lookup) tie a table's row to its
//! profile: with several profiles and none configured, the profile is the one that has a row
//! for the table, and two such profiles are an error asking for `profile:`.
//!
//! | profile `profilestate` | claim |
//! |---|---|
//! | 1 Active | the table's row, below |
//! | 2 Error | error |
//! | 6 Suspended, 7 Suspending | paused |
//! | 0 Inactive, 3 Deleted, 4 Aborting, 5 Aborted, 8 Deactivated | not running |
//!
//! | table `syncstate` | claim |
//! |---|---|
//! | 2 InProgress | healthy: Microsoft documents InProgress as "link active and error-free" (Completed is not the steady state) |
//! | 32 Paused | paused |
//! | 8 CompletedWithFailures | error |
//! | 0 None, 1 NotStarted, 16 RequestedInitialData | not running |
//! | 4 Completed, 64 PostProcessing, other | unknown |
//! | no row | not running (the table is not in the profile) |
//!
//! `last_sync` is `lastsynceddatatime` (the last successful lake file write; the Web API gives
//! date-times in UTC), the watermark `lastsynceddataversion` when it is a number. The record
//! counts and `initialsyncstate` go to `raw` only: the lake count differs from Dataverse's by
//! design (latency, and append-only mode adds rows). `synapselinkschedules` (the expected
//! step) is not read: one more request per read for a number that does not change the claim.

use async_trait::async_trait;
use reqwest::Client;
use serde_json::{Map, Value};

use super::{Access, Field, claim, code, get, instant, labelled, rows, text, version};
use crate::connector::ConnectorError;
use crate::connector::status::{Claim, ClaimState, StatusReader};
use crate::net::{HttpSystem, Reply};
use crate::systems::wire::{literal, odata, odata_error};

/// What reading the Synapse Link tables needs.
pub const ACCESS: Access = Access {
    grant: "the application user a security role with Read on the Synapse Link tables \
            (synapselinkprofile, synapselinkprofileentitystate, synapselinkexternaltablestate; \
            organization-owned)",
    missing: "these are the Synapse Link solution's tables: is Azure Synapse Link for Dataverse \
              set up in this environment?",
};

const PROFILE_STATES: &[(i64, &str)] = &[
    (0, "Inactive"),
    (1, "Active"),
    (2, "Error"),
    (3, "Deleted"),
    (4, "Aborting"),
    (5, "Aborted"),
    (6, "Suspended"),
    (7, "Suspending"),
    (8, "Deactivated"),
];

const SYNC_STATES: &[(i64, &str)] = &[
    (0, "None"),
    (1, "NotStarted"),
    (2, "InProgress"),
    (4, "Completed"),
    (8, "CompletedWithFailures"),
    (16, "RequestedInitialData"),
    (32, "Paused"),
    (64, "PostProcessing"),
];

const STATE_COLUMNS: &str = "entityname,syncstate,initialsyncstate,lastsynceddatatime,lastsynceddataversion,lakerecordcount,crmrecordcount,_profile_value";

/// The reader: one table of one environment, in one profile or the only one syncing it.
pub struct SynapseLink {
    http: HttpSystem,
    base: String,
    table: String,
    profile: Option<String>,
}

/// A profile as the first request returns it.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    pub id: String,
    pub name: String,
    pub state: Option<i64>,
}

impl SynapseLink {
    /// `base` is the environment's Web API base (no trailing slash), `table` the logical name
    /// (`entityname`, e.g. `account`), `profile` the profile's name when there are several.
    pub fn new(http: HttpSystem, base: String, table: String, profile: Option<String>) -> Self {
        SynapseLink {
            http,
            base,
            table,
            profile,
        }
    }

    async fn collection(
        &self,
        set: &str,
        query: &[(&str, &str)],
    ) -> Result<(Vec<Map<String, Value>>, Reply), ConnectorError> {
        let url = format!("{}/{set}", self.base);
        let reply = get(
            &self.http,
            &ACCESS,
            |c: &Client| {
                odata(c.get(&url))
                    .header("If-None-Match", "null")
                    .query(query)
            },
            odata_error,
        )
        .await?;
        Ok((rows(&reply)?, reply))
    }

    async fn profiles(&self) -> Result<Vec<Profile>, ConnectorError> {
        let filter = self
            .profile
            .as_ref()
            .map(|p| format!("name eq {}", literal(p)));
        let mut query = vec![("$select", "synapselinkprofileid,name,profilestate")];
        if let Some(f) = &filter {
            query.push(("$filter", f));
        }
        let (rows, reply) = self.collection("synapselinkprofiles", &query).await?;
        rows.iter()
            .map(profile)
            .collect::<Field<Vec<_>>>()
            .map_err(|e| reply.bad_response(e))
    }

    async fn table_rows(&self) -> Result<(Vec<Map<String, Value>>, Reply), ConnectorError> {
        let filter = format!("entityname eq {}", literal(&self.table));
        self.collection(
            "synapselinkprofileentitystates",
            &[("$select", STATE_COLUMNS), ("$filter", &filter)],
        )
        .await
    }
}

fn profile(row: &Map<String, Value>) -> Field<Profile> {
    Ok(Profile {
        id: text(row, "synapselinkprofileid")?
            .ok_or("a profile without synapselinkprofileid")?
            .to_string(),
        name: text(row, "name")?.unwrap_or_default().to_string(),
        state: code(row, "profilestate")?,
    })
}

/// The claim of a profile that is not active, or `None` when it is (the table decides).
pub fn profile_claim(p: &Profile) -> Option<Claim> {
    let raw = match p.state {
        Some(s) => format!(
            "profile {}: {}",
            p.name,
            labelled("profilestate", s, PROFILE_STATES)
        ),
        None => format!("profile {}: no profilestate", p.name),
    };
    let state = match p.state {
        Some(1) => return None,
        Some(2) => ClaimState::Error,
        Some(6 | 7) => ClaimState::Paused,
        Some(0 | 3 | 4 | 5 | 8) => ClaimState::NotRunning,
        _ => ClaimState::Unknown,
    };
    Some(claim(state, raw))
}

/// The claim of an active profile's table row (`None`: the table is not in the profile).
///
/// # Errors
/// A field that is not of its documented type.
pub fn table_claim(p: &Profile, table: &str, row: Option<&Map<String, Value>>) -> Field<Claim> {
    let active = format!("profile {}: profilestate=1 (Active)", p.name);
    let Some(row) = row else {
        return Ok(claim(
            ClaimState::NotRunning,
            format!(
                "{active}; no synapselinkprofileentitystate row for {table} (the table is not in the profile)"
            ),
        ));
    };
    let sync = code(row, "syncstate")?;
    let state = match sync {
        Some(2) => ClaimState::Healthy,
        Some(32) => ClaimState::Paused,
        Some(8) => ClaimState::Error,
        Some(0 | 1 | 16) => ClaimState::NotRunning,
        _ => ClaimState::Unknown,
    };
    let mut raw = vec![active];
    raw.push(match sync {
        Some(s) => labelled("syncstate", s, SYNC_STATES),
        None => "no syncstate".to_string(),
    });
    if let Some(s) = code(row, "initialsyncstate")? {
        raw.push(labelled("initialsyncstate", s, SYNC_STATES));
    }
    for count in ["lakerecordcount", "crmrecordcount"] {
        if let Some(n) = code(row, count)? {
            raw.push(format!("{count}={n}"));
        }
    }
    Ok(Claim {
        last_sync: instant(row, "lastsynceddatatime")?,
        watermark: version(row, "lastsynceddataversion").unwrap_or(None),
        ..claim(state, raw.join(", "))
    })
}

/// A profile and its state row for the table, if it has one.
pub type Picked<'a> = (&'a Profile, Option<&'a Map<String, Value>>);

/// The profile whose state decides, and its row for the table (if any), among `profiles`
/// (every profile, or the configured one) and the table's rows; `None` when several profiles
/// were listed and none syncs the table. `sole`: `profiles` is every profile there is and has
/// one entry, so every row is its own.
///
/// # Errors
/// What to configure when the rows cannot tell which profile is meant.
pub fn pick<'a>(
    profiles: &'a [Profile],
    table_rows: &'a [Map<String, Value>],
    sole: bool,
) -> Field<Option<Picked<'a>>> {
    let owned_by = |p: &Profile| -> Field<Vec<&'a Map<String, Value>>> {
        let mut mine = Vec::new();
        for row in table_rows {
            match text(row, "_profile_value")? {
                Some(id) if id.eq_ignore_ascii_case(&p.id) => mine.push(row),
                Some(_) => {}
                None if sole => mine.push(row),
                None => return Err("a table state row has no _profile_value (its profile lookup), so its profile cannot be told".to_string()),
            }
        }
        Ok(mine)
    };
    let mut found = Vec::new();
    for p in profiles {
        let mine = owned_by(p)?;
        if mine.len() > 1 {
            return Err(format!(
                "profile {} has {} state rows for the table",
                p.name,
                mine.len()
            ));
        }
        if let Some(row) = mine.first() {
            found.push((p, *row));
        }
    }
    match (profiles, found.as_slice()) {
        ([only], []) => Ok(Some((only, None))),
        (_, [(p, row)]) => Ok(Some((p, Some(*row)))),
        (_, []) => Ok(None),
        (_, several) => Err(format!(
            "the table is in several profiles ({}): name one with platform_status.profile",
            several
                .iter()
                .map(|(p, _)| p.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

#[async_trait]
impl StatusReader for SynapseLink {
    fn surface(&self) -> &'static str {
        "synapse_link"
    }

    async fn read(&self) -> Result<Claim, ConnectorError> {
        let profiles = self.profiles().await?;
        match (profiles.as_slice(), &self.profile) {
            ([], Some(name)) => {
                return Ok(claim(
                    ClaimState::NotRunning,
                    format!("no Synapse Link profile named {name}"),
                ));
            }
            ([], None) => {
                return Ok(claim(
                    ClaimState::NotRunning,
                    "no Synapse Link profile in the environment",
                ));
            }
            ([_, _, ..], Some(name)) => {
                return Err(ConnectorError::BadResponse {
                    status: 200,
                    detail: format!("several Synapse Link profiles are named {name}"),
                });
            }
            ([only], _) => {
                if let Some(c) = profile_claim(only) {
                    return Ok(c);
                }
            }
            _ => {}
        }
        let (table_rows, reply) = self.table_rows().await?;
        let sole = self.profile.is_none() && profiles.len() == 1;
        match pick(&profiles, &table_rows, sole).map_err(|e| reply.bad_response(e))? {
            Some((p, row)) => match profile_claim(p) {
                Some(c) => Ok(c),
                None => table_claim(p, &self.table, row).map_err(|e| reply.bad_response(e)),
            },
            None => Ok(claim(
                ClaimState::NotRunning,
                format!(
                    "no profile syncs {} ({} profiles: {})",
                    self.table,
                    profiles.len(),
                    profiles
                        .iter()
                        .map(|p| p.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(id: &str, name: &str, state: i64) -> Profile {
        Profile {
            id: id.into(),
            name: name.into(),
            state: Some(state),
        }
    }

    fn row(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn every_documented_profile_state_is_mapped() {
        let cases = [
            (0, Some(ClaimState::NotRunning)),
            (1, None),
            (2, Some(ClaimState::Error)),
            (3, Some(ClaimState::NotRunning)),
            (4, Some(ClaimState::NotRunning)),
            (5, Some(ClaimState::NotRunning)),
            (6, Some(ClaimState::Paused)),
            (7, Some(ClaimState::Paused)),
            (8, Some(ClaimState::NotRunning)),
            (9, Some(ClaimState::Unknown)),
        ];
        for (code, want) in cases {
            let got = profile_claim(&p("id", "lake", code));
            assert_eq!(got.as_ref().map(|c| c.state), want, "profilestate {code}");
            if let Some(c) = got {
                assert!(
                    c.raw
                        .starts_with(&format!("profile lake: profilestate={code}")),
                    "{}",
                    c.raw
                );
            }
        }
        assert_eq!(
            profile_claim(&p("id", "lake", 6)).unwrap().raw,
            "profile lake: profilestate=6 (Suspended)"
        );
    }

    #[test]
    fn every_documented_table_state_is_mapped() {
        let cases = [
            (0, ClaimState::NotRunning),
            (1, ClaimState::NotRunning),
            (2, ClaimState::Healthy),
            (4, ClaimState::Unknown),
            (8, ClaimState::Error),
            (16, ClaimState::NotRunning),
            (32, ClaimState::Paused),
            (64, ClaimState::Unknown),
            (128, ClaimState::Unknown),
        ];
        for (code, want) in cases {
            let r = row(json!({"entityname": "account", "syncstate": code}));
            let c = table_claim(&p("id", "lake", 1), "account", Some(&r)).unwrap();
            assert_eq!(c.state, want, "syncstate {code}");
            assert!(c.raw.contains(&format!("syncstate={code}")), "{}", c.raw);
        }
    }

    #[test]
    fn an_in_progress_table_is_healthy_with_its_time_and_version() {
        let r = row(json!({
            "entityname": "account", "syncstate": 2, "initialsyncstate": 4,
            "lastsynceddatatime": "2026-11-02T10:15:07Z", "lastsynceddataversion": "9123456",
            "lakerecordcount": 120, "crmrecordcount": 118, "_profile_value": "id"
        }));
        let c = table_claim(&p("id", "lake", 1), "account", Some(&r)).unwrap();
        assert_eq!(c.state, ClaimState::Healthy);
        assert_eq!(
            c.raw,
            "profile lake: profilestate=1 (Active), syncstate=2 (InProgress), initialsyncstate=4 (Completed), lakerecordcount=120, crmrecordcount=118"
        );
        assert_eq!(
            c.last_sync.unwrap().to_rfc3339(),
            "2026-11-02T10:15:07+00:00"
        );
        assert_eq!(c.watermark, Some(9_123_456));
        // A version that is not a number is no watermark, not an error: the column is text.
        let r = row(json!({"syncstate": 2, "lastsynceddataversion": "0x00AF"}));
        let c = table_claim(&p("id", "lake", 1), "account", Some(&r)).unwrap();
        assert_eq!(c.watermark, None);
        // A time that is not one is garbage.
        let r = row(json!({"syncstate": 2, "lastsynceddatatime": "yesterday"}));
        assert!(table_claim(&p("id", "lake", 1), "account", Some(&r)).is_err());
        let r = row(json!({"syncstate": "2"}));
        assert!(table_claim(&p("id", "lake", 1), "account", Some(&r)).is_err());
    }

    #[test]
    fn a_table_not_in_the_profile_is_not_running() {
        let c = table_claim(&p("id", "lake", 1), "account", None).unwrap();
        assert_eq!(c.state, ClaimState::NotRunning);
        assert!(c.raw.contains("not in the profile"), "{}", c.raw);
    }

    #[test]
    fn the_profile_is_the_one_with_a_row_for_the_table() {
        let profiles = [p("A1", "one", 1), p("b2", "two", 2)];
        let rows = [row(json!({"syncstate": 2, "_profile_value": "B2"}))];
        let (chosen, r) = pick(&profiles, &rows, false).unwrap().unwrap();
        assert_eq!(chosen.name, "two");
        assert!(r.is_some());
        // No profile has the table.
        let other = [row(json!({"syncstate": 2, "_profile_value": "c3"}))];
        assert_eq!(pick(&profiles, &other, false), Ok(None));
        // Two profiles have it: ask for profile:.
        let both = [
            row(json!({"syncstate": 2, "_profile_value": "a1"})),
            row(json!({"syncstate": 2, "_profile_value": "b2"})),
        ];
        let e = pick(&profiles, &both, false).unwrap_err();
        assert!(
            e.contains("one, two") && e.contains("platform_status.profile"),
            "{e}"
        );
        // The only profile owns rows without a lookup; a configured one cannot tell.
        let bare = [row(json!({"syncstate": 2}))];
        assert!(
            pick(&profiles[..1], &bare, true)
                .unwrap()
                .unwrap()
                .1
                .is_some()
        );
        assert!(pick(&profiles[..1], &bare, false).is_err());
        // The only profile without a row for the table: not running, decided by table_claim.
        assert!(
            pick(&profiles[..1], &[], true)
                .unwrap()
                .unwrap()
                .1
                .is_none()
        );
    }
}
