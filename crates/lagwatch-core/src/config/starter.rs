//! `lagwatch init`: a commented starting configuration for the pieces of a Dynamics 365 estate
//! a user names (`--estate dual-write,synapse-link,…`). The text is assembled from one block
//! per piece, each a system (or two) and its path, with placeholders for names and ids and
//! `env:` references for secrets, so that it passes `check-config --no-resolve` as printed
//! (tests load every piece and every combination).

use std::fmt::Write as _;

/// A piece of an estate `lagwatch init` can write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Estate {
    /// Dual-write: Dataverse accounts ↔ F&O customers (`dataverse` → `fo_odata`).
    DualWrite,
    /// Azure Synapse Link for Dataverse, CSV in a storage account (`synapse_link_csv`).
    SynapseLink,
    /// Link to Microsoft Fabric: Delta tables in OneLake (`delta`).
    FabricLink,
    /// An Azure AI Search index fed from Dataverse (`azure_search`).
    Search,
    /// Dataverse search (relevance search) of the environment (`dataverse_search`).
    DataverseSearch,
    /// An Elasticsearch index fed from Dataverse (`elasticsearch`).
    Elasticsearch,
    /// A second Dataverse environment (`dataverse` → `dataverse`).
    Dataverse,
    /// An in-house HTTP API the rows are copied into (`http`).
    Http,
}

impl Estate {
    /// Every piece, in the order the file lists them.
    pub const ALL: [Estate; 8] = [
        Estate::DualWrite,
        Estate::SynapseLink,
        Estate::FabricLink,
        Estate::Search,
        Estate::DataverseSearch,
        Estate::Elasticsearch,
        Estate::Dataverse,
        Estate::Http,
    ];

    /// What `lagwatch init` writes without `--estate`: the two links most estates run.
    pub const DEFAULT: [Estate; 2] = [Estate::DualWrite, Estate::SynapseLink];

    /// As `--estate` spells it.
    pub fn name(self) -> &'static str {
        match self {
            Estate::DualWrite => "dual-write",
            Estate::SynapseLink => "synapse-link",
            Estate::FabricLink => "fabric-link",
            Estate::Search => "search",
            Estate::DataverseSearch => "dataverse-search",
            Estate::Elasticsearch => "elasticsearch",
            Estate::Dataverse => "dataverse",
            Estate::Http => "http",
        }
    }

    /// The piece named `name`.
    ///
    /// # Errors
    /// A sentence listing the names there are.
    pub fn parse(name: &str) -> Result<Estate, String> {
        Estate::ALL
            .into_iter()
            .find(|e| e.name() == name.trim())
            .ok_or_else(|| {
                let names: Vec<&str> = Estate::ALL.iter().map(|e| e.name()).collect();
                format!(
                    "unknown estate \"{name}\"; the estates lagwatch init knows are: {}",
                    names.join(", ")
                )
            })
    }

    /// Secrets the piece references, as environment variable names.
    pub fn secrets(self) -> &'static [&'static str] {
        match self {
            Estate::Search => &[ENTRA_SECRET, "LAGWATCH_SEARCH_KEY"],
            Estate::Elasticsearch => &[ENTRA_SECRET, "LAGWATCH_ES_PASSWORD"],
            Estate::Http => &[ENTRA_SECRET, "LAGWATCH_API_KEY"],
            _ => &[ENTRA_SECRET],
        }
    }

    /// Whether the piece reads copies of the general sentinel table (`crm`); dual-write has a
    /// source of its own.
    fn needs_crm(self) -> bool {
        self != Estate::DualWrite
    }

    /// The piece's systems (YAML under `systems:`, indented by two) and its path (under
    /// `paths:`).
    fn blocks(self) -> (&'static str, &'static str) {
        match self {
            Estate::DualWrite => (DUAL_WRITE_SYSTEMS, DUAL_WRITE_PATH),
            Estate::SynapseLink => (SYNAPSE_SYSTEMS, SYNAPSE_PATH),
            Estate::FabricLink => (FABRIC_SYSTEMS, FABRIC_PATH),
            Estate::Search => (SEARCH_SYSTEMS, SEARCH_PATH),
            Estate::DataverseSearch => (DATAVERSE_SEARCH_SYSTEMS, DATAVERSE_SEARCH_PATH),
            Estate::Elasticsearch => (ES_SYSTEMS, ES_PATH),
            Estate::Dataverse => (DATAVERSE_SYSTEMS, DATAVERSE_PATH),
            Estate::Http => (HTTP_SYSTEMS, HTTP_PATH),
        }
    }
}

/// The Entra application's secret, shared by every piece.
const ENTRA_SECRET: &str = "LAGWATCH_ENTRA_SECRET";

/// The commented configuration for `estates` (in [`Estate::ALL`] order, each once; the
/// [`Estate::DEFAULT`] when empty).
pub fn starter(estates: &[Estate]) -> String {
    let mut chosen: Vec<Estate> = if estates.is_empty() {
        Estate::DEFAULT.to_vec()
    } else {
        estates.to_vec()
    };
    chosen.sort();
    chosen.dedup();
    let names: Vec<&str> = chosen.iter().map(|e| e.name()).collect();
    let mut secrets: Vec<&str> = chosen.iter().flat_map(|e| e.secrets()).copied().collect();
    secrets.sort_unstable();
    secrets.dedup();
    let exports: Vec<String> = secrets.iter().map(|s| format!("{s}=…")).collect();

    let mut out = String::new();
    let _ = write!(
        out,
        "# lagwatch configuration for: {}\n\
         # Written by `lagwatch init --estate {}`; docs/setup.md explains each step.\n\
         #\n\
         # 1. Replace every placeholder: contoso, the tenant and client ids, table and column\n\
         #    names (docs/setup.md links what each kind needs in the tenant).\n\
         # 2. Check the file where no secrets are at hand (a CI pipeline):\n\
         #      lagwatch check-config --no-resolve -c lagwatch.yaml\n\
         # 3. Where lagwatch runs, provide the secrets and check again, then run it:\n\
         #      export {}\n\
         #      lagwatch check-config -c lagwatch.yaml\n\
         #      lagwatch run --config lagwatch.yaml\n\
         #\n\
         # Secrets are only ever env:NAME or file:/path references, never values in this file.\n",
        names.join(", "),
        names.join(","),
        exports.join(" "),
    );
    out.push_str(HEAD);
    out.push_str("\nsystems:\n");
    // The first system written carries the Entra auth block as an anchor; the others refer to
    // it (`*entra`).
    let mut anchored = false;
    let mut push_system = |out: &mut String, text: &str| {
        let text = if anchored {
            text.replace("AUTH", "auth: *entra")
        } else {
            anchored = true;
            text.replace("AUTH", ENTRA_AUTH)
        };
        out.push_str(&text);
    };
    if chosen.iter().any(|e| e.needs_crm()) {
        push_system(&mut out, CRM_SYSTEM);
    }
    for e in &chosen {
        push_system(&mut out, e.blocks().0);
    }
    out.push_str("\npaths:\n");
    for e in &chosen {
        out.push_str(e.blocks().1);
    }
    out
}

const HEAD: &str = "
# Names this lagwatch (1-32 of a-z, 0-9, '-'). It is written into every sentinel, so a restart
# deletes only its own leftovers: keep it the same across restarts.
instance: prod

# Where the probe ledger and reconciliation state survive restarts (a persistent volume).
state_dir: /var/lib/lagwatch

# Every path takes these unless it says otherwise: a sentinel every minute, given up after
# 30 minutes, and a lag objective of 5 minutes for alerts.
defaults:
  interval: 1m
  timeout: 30m
  objective: 5m
";

/// The Entra application every system signs in as (client credentials).
const ENTRA_AUTH: &str =
    "auth: &entra                      # one Entra app registration for every system
      method: client_secret           # or client_certificate, workload_identity, managed_identity
      tenant_id: 00000000-0000-0000-0000-000000000000   # your directory (tenant) id
      client_id: 00000000-0000-0000-0000-000000000000   # the app's application (client) id
      client_secret: env:LAGWATCH_ENTRA_SECRET";

const CRM_SYSTEM: &str = "
  # The source the copies below are read for: a dedicated sentinel table keeps sentinels out of
  # business data (a table `lw_sentinel` with a text column for the key and a multi-line text
  # column for the payload). The app needs an application user with create, read and delete on it.
  crm:
    kind: dataverse
    url: https://contoso.crm4.dynamics.com          # the environment URL, nothing after it
    table: lw_sentinels                             # entity set name (plural)
    id_column: lw_sentinelid
    key_column: lw_key
    payload_column: lw_payload
    AUTH
";

const DUAL_WRITE_SYSTEMS: &str = "
  # Dual-write: sentinels are written as customer accounts (the map \"Customers V3 to accounts\"
  # copies accounts with customertypecode 3 and a company) and looked up as F&O customers.
  crm-accounts:
    kind: dataverse
    url: https://contoso.crm4.dynamics.com
    table: accounts
    id_column: accountid
    key_column: name                                # copied by the map to OrganizationName
    payload_column: description
    fields:
      customertypecode: 3                           # customer: in the map's filter
      \"msdyn_company@odata.bind\": /cdm_companies(00000000-0000-0000-0000-000000000000)  # the company's cdm_companyid
    AUTH
  fno:
    kind: fo_odata
    url: https://contoso.operations.dynamics.com    # no /data after it
    entity_set: CustomersV3
    key_field: OrganizationName
    data_area_id: usmf                              # the legal entity of the company above
    AUTH
";

const DUAL_WRITE_PATH: &str =
    "  - source: crm-accounts             # dual-write: synchronous while the map runs
    target: fno
    interval: 5m                                    # each sentinel is a customer until deleted
    timeout: 10m
    objective: 30s
";

const SYNAPSE_SYSTEMS: &str = "
  # Azure Synapse Link for Dataverse: the sentinel table exported as CSV (incremental update
  # folders) into a storage account; the app needs Storage Blob Data Reader on the container.
  lake:
    kind: synapse_link_csv
    url: abfss://dataverse-contoso-unq0000@contosolake.dfs.core.windows.net/
    table: lw_sentinel                              # the table's logical (singular) name
    key_column: lw_key
    payload_column: lw_payload
    AUTH
";

const SYNAPSE_PATH: &str = "  - source: crm
    target: lake
    interval: 15m                                   # the link's folder interval
    timeout: 2h
    objective: 30m
";

const FABRIC_SYSTEMS: &str = "
  # Link to Microsoft Fabric: the sentinel table as a Delta table in the lakehouse the link made.
  fabric:
    kind: delta
    url: https://onelake.dfs.fabric.microsoft.com/Contoso/dataverse_contoso.Lakehouse/Tables/lw_sentinel
    key_column: lw_key
    payload_column: lw_payload
    AUTH
";

const FABRIC_PATH: &str = "  - source: crm
    target: fabric
    interval: 15m
    timeout: 3h                                     # Fabric refreshes up to hourly
    objective: 1h
";

const SEARCH_SYSTEMS: &str = "
  # An Azure AI Search index your indexer or integration fills from the sentinel table.
  search:
    kind: azure_search
    endpoint: https://contoso-search.search.windows.net   # no /indexes/… after it
    index: sentinels
    mode: lookup                                    # the document key is the sentinel key
    key_field: id
    payload_field: payload
    auth:
      method: api_key                               # a query key is enough
      key: env:LAGWATCH_SEARCH_KEY
";

const SEARCH_PATH: &str = "  - source: crm
    target: search
";

const DATAVERSE_SEARCH_SYSTEMS: &str = "
  # Dataverse search of the same environment (the sentinel table added to the search index).
  crm-search:
    kind: dataverse_search
    url: https://contoso.crm4.dynamics.com
    entity: lw_sentinel                             # logical (singular) name
    key_column: lw_key
    payload_column: lw_payload
    AUTH
";

const DATAVERSE_SEARCH_PATH: &str = "  - source: crm
    target: crm-search
    timeout: 1h
    objective: 15m                                  # Dataverse search: \"up to 15 minutes\"
";

const ES_SYSTEMS: &str = "
  # An Elasticsearch index the sentinel rows are copied into.
  es:
    kind: elasticsearch
    url: https://es.contoso.internal:9200           # the cluster URL, no index after it
    index: d365-sentinels
    mode: searchable                                # measured to searchability
    key_field: key
    payload_field: payload
    auth:
      method: basic
      username: lagwatch
      password: env:LAGWATCH_ES_PASSWORD
";

const ES_PATH: &str = "  - source: crm
    target: es
";

const DATAVERSE_SYSTEMS: &str = "
  # A second Dataverse environment the sentinel table is copied into (data integration, a
  # plug-in, an Azure function...): the same table there.
  crm-copy:
    kind: dataverse
    url: https://contoso-reporting.crm4.dynamics.com
    table: lw_sentinels
    id_column: lw_sentinelid
    key_column: lw_key
    payload_column: lw_payload
    AUTH
";

const DATAVERSE_PATH: &str = "  - source: crm
    target: crm-copy
";

const HTTP_SYSTEMS: &str = "
  # An in-house API the sentinel rows end up in: lagwatch asks it for each sentinel by key
  # ({id}) and reads the payload at a JSON pointer. 404 means not there yet.
  api:
    kind: http
    lookup:
      url: https://api.contoso.example/customers/{id}
      payload_pointer: /payload
    auth:
      method: api_key
      header: x-api-key
      key: env:LAGWATCH_API_KEY
";

const HTTP_PATH: &str = "  - source: crm
    target: api
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_ones_list_the_known() {
        for e in Estate::ALL {
            assert_eq!(Estate::parse(e.name()), Ok(e));
        }
        let e = Estate::parse("synapse").unwrap_err();
        assert!(e.contains("dual-write, synapse-link, fabric-link"), "{e}");
    }

    #[test]
    fn the_default_and_a_repeated_piece_write_each_block_once() {
        let text = starter(&[]);
        assert!(text.contains("crm-accounts:") && text.contains("\n  lake:\n"));
        assert!(
            text.contains("\n  crm:\n"),
            "the lake is read for crm:\n{text}"
        );
        let dual = starter(&[Estate::DualWrite]);
        assert!(
            !dual.contains("\n  crm:\n"),
            "dual-write alone needs no crm:\n{dual}"
        );
        let twice = starter(&[Estate::Search, Estate::Search]);
        assert_eq!(twice.matches("\n  search:\n").count(), 1);
        assert_eq!(twice.matches("auth: &entra").count(), 1);
        assert!(twice.contains("export LAGWATCH_ENTRA_SECRET=… LAGWATCH_SEARCH_KEY=…"));
    }
}
