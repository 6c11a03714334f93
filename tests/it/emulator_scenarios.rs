//! Scenario files: every shipped scenario loads, and mistakes are reported with the key path
//! and a reason instead of a half-working estate.

use std::path::Path;

use lagwatch_emulator::{EmulatorError, Scenario};

#[test]
fn every_shipped_scenario_loads() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/scenarios");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("examples/scenarios exists") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "yaml") {
            if let Err(e) = Scenario::load(&path) {
                panic!("{}: {e}", path.display());
            }
            n += 1;
        }
    }
    assert!(n >= 1);
    assert!(matches!(
        Scenario::load(&dir.join("missing.yaml")),
        Err(EmulatorError::Read { .. })
    ));
    let demo = Scenario::demo().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(demo.credentials.len(), 1);
    assert!(demo.dataverse["crm"].tables.contains_key("accounts"));
}

const BASE: &str = r#"
credentials:
  - { tenant: contoso, client_id: app, client_secret: s }
dataverse:
  crm:
    tables:
      accounts: { columns: { name: string, accountnumber: string } }
fno:
  fin: {}
replicas:
  fno:
    source: crm/accounts
    target: { kind: fno, env: fin, entity: CustomersV3 }
    map: { accountnumber: CustomerAccount }
    lag: { distribution: fixed, value: 1s }
"#;

fn key_of(yaml: &str) -> (String, String) {
    match Scenario::from_yaml(yaml) {
        Err(EmulatorError::Invalid { key, reason }) => (key, reason),
        Err(e) => panic!("not a key error: {e}"),
        Ok(_) => panic!("accepted:\n{yaml}"),
    }
}

#[test]
fn mistakes_name_the_key() {
    assert!(Scenario::from_yaml(BASE).is_ok());
    for (from, to, want) in [
        (
            "value: 1s }",
            "value: 1s }\n    lagg: 1",
            "replicas.fno.lagg",
        ),
        (
            "source: crm/accounts",
            "source: crm/contacts",
            "replicas.fno.source",
        ),
        (
            "{ accountnumber: CustomerAccount }",
            "{ nope: CustomerAccount }",
            "replicas.fno.map.nope",
        ),
        (
            "    map: { accountnumber: CustomerAccount }\n",
            "",
            "replicas.fno.map",
        ),
        ("env: fin,", "env: ops,", "replicas.fno.target.env"),
        (
            "{ distribution: fixed, value: 1s }",
            "{ distribution: log_normal, median: 1s }",
            "replicas.fno.lag.p99",
        ),
        (
            "value: 1s }",
            "value: 1s }\n    drop_probability: 2",
            "replicas.fno.drop_probability",
        ),
        (
            "value: 1s }",
            "value: 1s }\n    filter: \"name eq\"",
            "replicas.fno.filter",
        ),
        (
            "value: 1s }",
            "value: 1s }\n    transform: { Name: uppercase }",
            "replicas.fno.transform.Name",
        ),
        (
            "value: 1s }",
            "value: 1s }\n    state: sleeping",
            "replicas.fno.state",
        ),
        ("  crm:\n", "  fno:\n", "dataverse.fno"),
        ("client_secret: s }", "}", "credentials[0]"),
        (
            "name: string,",
            "name: text,",
            "dataverse.crm.tables.accounts.columns.name",
        ),
    ] {
        assert!(BASE.contains(from), "{from}");
        let yaml = BASE.replacen(from, to, 1);
        let (key, reason) = key_of(&yaml);
        assert!(key.starts_with(want), "{want}: got {key}: {reason}");
        assert!(!reason.is_empty());
    }
    assert!(matches!(
        Scenario::from_yaml("dataverse: [unclosed"),
        Err(EmulatorError::Syntax { .. })
    ));
}
