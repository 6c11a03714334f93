//! What a path reads of the platform's own status (`paths[i].platform_status`), beside its
//! canary.
//!
//! ```yaml
//! paths:
//!   - source: crm
//!     target: search
//!     platform_status:
//!       surface: azure_search_indexer   # which surface (the table below)
//!       indexer: accounts-indexer       # what the surface needs to know
//!       interval: 60s                   # between reads (default 60s, at least 30s)
//!       grace: 30s                      # a sync this long after a write should carry it
//! ```
//!
//! | surface | read through | needs |
//! |---|---|---|
//! | `synapse_link` | the `dataverse` source | `table`, optional `profile` |
//! | `fabric_link` | the `dataverse` source | `table` |
//! | `dataverse_search` | the `dataverse_search` target or `dataverse` source | `table` |
//! | `azure_search_indexer` | the `azure_search` target | `indexer` |
//! | `elasticsearch_refresh` | the `elasticsearch` target | — (its index) |
//! | `dual_write` | the `fo_odata` target or source | `internal_entity`, `external_entity`, optional `status_values` |

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Dur, Issue, decode};
use crate::connector::status::ClaimState;

/// Defaults of a platform status read.
pub mod default {
    use crate::config::Dur;
    /// A minute: status surfaces move at the pace of their syncs, and every read costs the
    /// system's budget.
    pub const INTERVAL: Dur = Dur::secs(60);
    /// The shortest interval accepted.
    pub const MIN_INTERVAL: Dur = Dur::secs(30);
    pub const GRACE: Dur = Dur::secs(30);
}

/// Which surface, with what it needs to know.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Surface {
    /// Synapse Link for Dataverse (CSV lake): `synapselinkprofileentitystates` of `table`,
    /// `synapselinkprofiles`, `synapselinkschedules`.
    SynapseLink {
        /// The Dataverse table's logical name (`entityname`), e.g. `account`.
        table: String,
        /// The profile's name when the organisation has several.
        #[serde(default)]
        profile: Option<String>,
    },
    /// Link to Fabric / Delta profiles: `synapselinkexternaltablestates` of `table`.
    FabricLink { table: String },
    /// Dataverse search: `searchstatus`, the table's entry.
    DataverseSearch { table: String },
    /// An Azure AI Search indexer's status and execution history.
    AzureSearchIndexer { indexer: String },
    /// Elasticsearch / OpenSearch refresh statistics of the target's index.
    ElasticsearchRefresh {},
    /// The dual-write map as F&O configures it (`DualWriteProjectConfigurations`).
    DualWrite {
        /// F&O's side of the map, e.g. `Customers V3`.
        internal_entity: String,
        /// Dataverse's side, e.g. `accounts`.
        external_entity: String,
        /// What the map's `Status` values mean, as learnt from the environment (Microsoft
        /// documents none): `{ "1": healthy, "2": paused }`, a value as F&O returns it (a
        /// number, or an enum's name) to a state (`healthy`, `error`, `paused`,
        /// `not_running`, `unknown`). A value not listed is exported raw as `unknown`.
        #[serde(default, deserialize_with = "status_values")]
        status_values: BTreeMap<String, ClaimState>,
    },
}

/// Reads `status_values`, naming the `Status` value whose state is not one (the loader puts
/// the key path `….status_values` before the message).
fn status_values<'de, D>(d: D) -> Result<BTreeMap<String, ClaimState>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let raw = BTreeMap::<String, serde_json::Value>::deserialize(d)?;
    let states = || {
        ClaimState::ALL
            .iter()
            .map(|s| s.label())
            .collect::<Vec<_>>()
            .join(", ")
    };
    raw.into_iter()
        .map(|(key, value)| {
            if key.trim().is_empty() {
                return Err(serde::de::Error::custom(
                    "an empty Status value cannot be mapped",
                ));
            }
            let state = value
                .as_str()
                .and_then(|v| ClaimState::ALL.into_iter().find(|s| s.label() == v));
            match state {
                Some(s) => Ok((key, s)),
                None => Err(serde::de::Error::custom(format!(
                    "Status value \"{key}\" is mapped to {value}, which is not a state; the states are: {}",
                    states()
                ))),
            }
        })
        .collect()
}

impl Surface {
    /// Every surface's name, as `surface:` takes it.
    pub const NAMES: [&'static str; 6] = [
        "synapse_link",
        "fabric_link",
        "dataverse_search",
        "azure_search_indexer",
        "elasticsearch_refresh",
        "dual_write",
    ];

    /// Whether the surface reports a version watermark in the source's row-version space, so
    /// each sentinel's version is worth reading after its write.
    pub fn has_watermark(&self) -> bool {
        matches!(
            self,
            Surface::SynapseLink { .. }
                | Surface::FabricLink { .. }
                | Surface::DataverseSearch { .. }
        )
    }

    /// The `surface` label and configured name.
    pub fn name(&self) -> &'static str {
        match self {
            Surface::SynapseLink { .. } => "synapse_link",
            Surface::FabricLink { .. } => "fabric_link",
            Surface::DataverseSearch { .. } => "dataverse_search",
            Surface::AzureSearchIndexer { .. } => "azure_search_indexer",
            Surface::ElasticsearchRefresh {} => "elasticsearch_refresh",
            Surface::DualWrite { .. } => "dual_write",
        }
    }
}

/// A path's platform status read, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusSpec {
    pub surface: Surface,
    /// The system read (the path's target or source, whichever offers the surface).
    pub system: String,
    pub interval: Dur,
    pub grace: Dur,
}

/// Types `paths[i].platform_status` and picks the system that offers its surface: the target,
/// else the source.
pub(super) fn resolve(
    key: &str,
    value: serde_json::Value,
    (source, source_surfaces): (&str, &[&str]),
    (target, target_surfaces): (&str, &[&str]),
) -> Result<StatusSpec, Issue> {
    let key = format!("{key}.platform_status");
    let serde_json::Value::Object(mut map) = value else {
        return Err(Issue::new(
            key,
            "expected a mapping with surface: and what the surface needs",
        ));
    };
    let duration = |map: &mut serde_json::Map<String, serde_json::Value>, name: &str| {
        map.remove(name)
            .map(|v| decode::<Dur>(&format!("{key}.{name}"), v))
            .transpose()
    };
    let interval = duration(&mut map, "interval")?.unwrap_or(default::INTERVAL);
    let grace = duration(&mut map, "grace")?.unwrap_or(default::GRACE);
    if interval.get() < default::MIN_INTERVAL.get() {
        return Err(Issue::new(
            format!("{key}.interval"),
            format!(
                "{interval} is shorter than {}: status surfaces change at the pace of their syncs, and every read costs the system's request budget",
                default::MIN_INTERVAL
            ),
        ));
    }
    let name = match map.remove("surface") {
        Some(serde_json::Value::String(n)) if Surface::NAMES.contains(&n.as_str()) => n,
        Some(serde_json::Value::String(n)) => {
            return Err(Issue::new(
                format!("{key}.surface"),
                format!(
                    "unknown surface \"{n}\"; the surfaces are: {}",
                    Surface::NAMES.join(", ")
                ),
            ));
        }
        Some(_) => {
            return Err(Issue::new(
                format!("{key}.surface"),
                format!("expected one of: {}", Surface::NAMES.join(", ")),
            ));
        }
        None => {
            return Err(Issue::new(
                format!("{key}.surface"),
                format!(
                    "required key is missing; the surfaces are: {}",
                    Surface::NAMES.join(", ")
                ),
            ));
        }
    };
    // Typed as `{<surface>: {…}}`, so an error names the key inside the surface's block,
    // which the user wrote beside `surface:`.
    let tagged = serde_json::json!({ name.clone(): serde_json::Value::Object(map) });
    let surface: Surface = decode(&key, tagged).map_err(|issue| {
        let inner = format!("{key}.{name}");
        let at = issue.key.replacen(&inner, &key, 1);
        let reason = match issue.reason.strip_prefix("unknown key; the keys allowed here are: ") {
            Some(list) => format!(
                "unknown key; the keys allowed here are: {list}, and on every surface: surface, interval, grace"
            ),
            None if issue.reason == "unknown key; no keys are allowed here" => {
                "unknown key; the keys allowed here are: surface, interval, grace".to_string()
            }
            None => issue.reason.clone(),
        };
        Issue::new(at, reason)
    })?;
    let name = surface.name();
    let system = if target_surfaces.contains(&name) {
        target
    } else if source_surfaces.contains(&name) {
        source
    } else {
        return Err(Issue::new(
            format!("{key}.surface"),
            format!(
                "neither the target \"{target}\" ({}) nor the source \"{source}\" ({}) offers {name}",
                offers(target_surfaces),
                offers(source_surfaces)
            ),
        ));
    };
    Ok(StatusSpec {
        surface,
        system: system.to_string(),
        interval,
        grace,
    })
}

fn offers(surfaces: &[&str]) -> String {
    if surfaces.is_empty() {
        "no status surface".to_string()
    } else {
        format!("offers {}", surfaces.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn dual_write(values: serde_json::Value) -> Result<StatusSpec, Issue> {
        resolve(
            "paths[0]",
            json!({"surface": "dual_write", "internal_entity": "Customers V3",
                "external_entity": "accounts", "status_values": values}),
            ("crm", &[]),
            ("fno", &["dual_write"]),
        )
    }

    #[test]
    fn status_values_give_each_status_of_a_map_its_state() {
        let spec = dual_write(json!({"1": "healthy", "2": "paused", "0": "not_running"}))
            .unwrap_or_else(|e| panic!("{e:?}"));
        let Surface::DualWrite { status_values, .. } = spec.surface else {
            panic!("{:?}", spec.surface)
        };
        assert_eq!(status_values.get("1"), Some(&ClaimState::Healthy));
        assert_eq!(status_values.get("2"), Some(&ClaimState::Paused));
        assert_eq!(status_values.get("0"), Some(&ClaimState::NotRunning));
        // Without the key, nothing is mapped.
        let spec = resolve(
            "paths[0]",
            json!({"surface": "dual_write", "internal_entity": "a", "external_entity": "b"}),
            ("crm", &[]),
            ("fno", &["dual_write"]),
        )
        .unwrap_or_else(|e| panic!("{e:?}"));
        assert!(
            matches!(spec.surface, Surface::DualWrite { status_values, .. } if status_values.is_empty())
        );
    }

    #[test]
    fn a_status_value_that_is_no_state_is_named_with_its_key() {
        let e = dual_write(json!({"1": "healthy", "7": "helthy"})).unwrap_err();
        assert_eq!(e.key, "paths[0].platform_status.status_values");
        assert_eq!(
            e.reason,
            "Status value \"7\" is mapped to \"helthy\", which is not a state; the states are: healthy, error, paused, not_running, unknown"
        );
        let e = dual_write(json!({"1": 1})).unwrap_err();
        assert!(
            e.reason
                .contains("\"1\" is mapped to 1, which is not a state"),
            "{e:?}"
        );
        // Still strict about keys beside it.
        let e = resolve(
            "paths[0]",
            json!({"surface": "dual_write", "internal_entity": "a", "external_entity": "b", "status": {}}),
            ("crm", &[]),
            ("fno", &["dual_write"]),
        )
        .unwrap_err();
        assert!(e.reason.contains("unknown key"), "{e:?}");
    }
}
