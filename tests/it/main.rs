//! The integration tests, as one binary: one link instead of one per file, and one home
//! for helpers (`tests/common`). Behaviour through the public surface lives here; units
//! sit beside their code. Only the soak has its own binary (`tests/soak.rs`): it measures
//! processes and sockets and should not share a process with the rest.

#[path = "../common/mod.rs"]
mod common;
#[path = "../../crates/lagwatch-core/src/auth/test_pki.rs"]
mod test_pki;

mod alert_rules;
mod auth_client_certificate;
mod auth_client_credentials;
mod auth_emulator;
mod auth_managed_identity;
mod config_errors;
mod conflicts;
mod conformance;
mod conformance_lake;
mod contract_canary;
mod contract_causal;
mod contract_deletes;
mod contracts_api;
mod dashboards;
mod dataverse_wiremock;
mod delta_reference;
mod dependency_policy;
mod deploy_manifests;
mod docs_commands;
mod dual_write_halted;
mod elasticsearch_wiremock;
mod emulator_deletes;
mod emulator_end_to_end;
mod emulator_http;
mod emulator_lake;
mod emulator_lake_delta;
mod emulator_lake_reader;
mod emulator_lake_seed;
mod emulator_lake_table;
mod emulator_links;
mod emulator_replication;
mod emulator_scenarios;
mod emulator_seed;
mod emulator_status;
mod examples;
mod faults;
mod fno_source;
mod fo_odata_wiremock;
mod ha_pair;
mod hostile_input;
mod http_kind_wiremock;
mod http_surface;
mod inventory_http;
mod lake_azurite;
mod lake_blob_wiremock;
mod lake_deletes;
mod lake_delta;
mod lake_delta_tables;
mod lake_inventory;
mod lake_order;
mod lake_synapse_csv;
mod lake_table_layout;
mod lake_versions;
mod layers;
mod ledger;
mod logs;
mod mixin;
mod ownership;
mod platform_status;
mod platform_status_wiremock;
mod private_ca;
mod probe_behaviour;
mod prometheus_e2e;
mod reconcile_emulator;
#[cfg(unix)]
mod reload;
mod report;
mod search_wiremock;
mod secret_redaction;
mod shutdown;
mod status_page_browser;
mod system_up;
mod wall_clock;
mod web_config;
