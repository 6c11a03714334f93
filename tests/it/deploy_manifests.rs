//! The Kubernetes kit under `deploy/kubernetes/` (a kustomize base and the overlays `single`,
//! `ha-pair` and `sharded`) and the Dockerfile: every overlay renders with `kubectl kustomize`
//! and every rendered object validates offline (`scripts/validate-manifests`: the Kubernetes
//! schemas of `kubernetes-validate`, strict, and the Prometheus Operator's kinds against
//! `deploy/kubernetes/schemas/`); what it renders holds together (the volume is the config's
//! `state_dir`, the image is the crate's version, each overlay runs the members its name says,
//! the network policy opens the configured systems' ports, the Service, ServiceMonitor and pods
//! select each other) and cannot drift from its sources: `base/prometheus-rule.yaml` is
//! `alerts/*.yml` rendered by [`render_rule`] and `base/dashboards/` holds copies of
//! `dashboards/` (kustomize reads no file outside the kustomization's directory). Run with
//! `LAGWATCH_UPDATE_DEPLOY=1` to rewrite both after changing a rule or a dashboard (the other
//! tests of the run may still see the old files: run once more without it to check).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::common;

const BASE: &str = "deploy/kubernetes/base";
const RENDERED_RULE: &str = "deploy/kubernetes/base/prometheus-rule.yaml";
const DASHBOARD_COPIES: &str = "deploy/kubernetes/base/dashboards";
const SECRET_TEMPLATE: &str = "deploy/kubernetes/secret.example.yaml";
/// The contract's StatefulSet arguments, before the overlay's own.
const ARGS: &[&str] = &[
    "run",
    "--config=/etc/lagwatch/lagwatch.yaml",
    "--instance=$(POD_NAME)",
];

/// An overlay and what it must render.
struct Overlay {
    name: &'static str,
    replicas: u64,
    /// Shard total passed with `--shard=$(POD_INDEX)/N`; `None`: every member owns every path.
    shards: Option<u64>,
    /// The PodDisruptionBudget: `("minAvailable", 1)` or `("maxUnavailable", 1)`.
    budget: (&'static str, u64),
    /// Members kept off one node by a required anti-affinity.
    anti_affinity: bool,
}

const OVERLAYS: &[Overlay] = &[
    Overlay {
        name: "single",
        replicas: 1,
        shards: None,
        budget: ("maxUnavailable", 1),
        anti_affinity: false,
    },
    Overlay {
        name: "ha-pair",
        replicas: 2,
        shards: None,
        budget: ("minAvailable", 1),
        anti_affinity: true,
    },
    Overlay {
        name: "sharded",
        replicas: 3,
        shards: Some(3),
        budget: ("maxUnavailable", 1),
        anti_affinity: false,
    },
];

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn yaml(text: &str) -> Value {
    serde_saphyr::from_str(text).expect("YAML")
}

fn update() -> bool {
    std::env::var("LAGWATCH_UPDATE_DEPLOY").is_ok_and(|v| v == "1")
}

/// Every `*.yml` (or `*.json`) file of a directory of the repository, sorted.
fn files(dir: &str, ext: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(repo().join(dir))
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(ext))
        .collect();
    names.sort();
    names
}

/// The rule files, in the order the PrometheusRule lists their groups: every `alerts/*.yml`.
fn rule_files() -> Vec<String> {
    files("alerts", ".yml")
        .into_iter()
        .map(|n| format!("alerts/{n}"))
        .collect()
}

/// The PrometheusRule: a header, then every rule file's `groups:` entries indented under `spec`.
fn render_rule() -> String {
    let mut out = String::from(
        "# Generated from alerts/*.yml by tests/it/deploy_manifests.rs (LAGWATCH_UPDATE_DEPLOY=1 cargo\n\
         # test --test it deploy_manifests::); do not edit by hand. For the Prometheus Operator: label\n\
         # it so your Prometheus's ruleSelector picks it up.\n\
         apiVersion: monitoring.coreos.com/v1\n\
         kind: PrometheusRule\n\
         metadata:\n  name: lagwatch\n\
         spec:\n  groups:\n",
    );
    for file in rule_files() {
        let text = read(&file);
        let (_, groups) = text
            .split_once("\ngroups:\n")
            .unwrap_or_else(|| panic!("{file} has a top-level groups: key"));
        out.push_str(&format!("    # {file}\n"));
        for line in groups.lines() {
            if line.is_empty() {
                out.push('\n');
            } else {
                out.push_str("  ");
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

/// Every group of the rule files, as the PrometheusRule must list them.
fn rule_groups() -> Value {
    let mut groups = Vec::new();
    for file in rule_files() {
        groups.extend(
            yaml(&read(&file))["groups"]
                .as_array()
                .cloned()
                .unwrap_or_default(),
        );
    }
    assert!(groups.len() >= 2, "the rule files hold groups");
    Value::Array(groups)
}

#[test]
fn the_prometheus_rule_is_the_rule_files_rendered() {
    let want = render_rule();
    if update() {
        std::fs::write(repo().join(RENDERED_RULE), &want).expect("write");
    }
    assert!(
        read(RENDERED_RULE) == want,
        "{RENDERED_RULE} is out of date: LAGWATCH_UPDATE_DEPLOY=1 cargo test --test it deploy_manifests::"
    );
    // And the rendering means what the files mean: the same groups, rule for rule.
    let rule = yaml(&read(RENDERED_RULE));
    assert_eq!(rule["kind"], "PrometheusRule");
    assert!(
        rule["spec"]["groups"] == rule_groups(),
        "{RENDERED_RULE}'s groups are not the rules of alerts/"
    );
}

#[test]
fn the_dashboard_copies_are_the_dashboards() {
    let sources = files("dashboards", ".json");
    assert!(sources.len() >= 2, "dashboards/ holds the dashboards");
    if update() {
        for stale in files(DASHBOARD_COPIES, ".json") {
            std::fs::remove_file(repo().join(DASHBOARD_COPIES).join(stale)).expect("remove");
        }
        for name in &sources {
            std::fs::copy(
                repo().join("dashboards").join(name),
                repo().join(DASHBOARD_COPIES).join(name),
            )
            .expect("copy");
        }
    }
    let fix = "LAGWATCH_UPDATE_DEPLOY=1 cargo test --test it deploy_manifests::";
    assert_eq!(
        files(DASHBOARD_COPIES, ".json"),
        sources,
        "{DASHBOARD_COPIES} must copy every dashboard and nothing else: {fix}, and list a new \
         one in {BASE}/kustomization.yaml"
    );
    for name in &sources {
        assert!(
            read(&format!("dashboards/{name}")) == read(&format!("{DASHBOARD_COPIES}/{name}")),
            "{DASHBOARD_COPIES}/{name} is out of date: {fix}"
        );
    }
}

/// `kubectl kustomize` of an overlay (or the base) as text; `None` (the test skips) when kubectl
/// cannot run and tools are not required.
fn kustomize(dir: &str) -> Option<String> {
    let out = match Command::new("kubectl")
        .arg("kustomize")
        .arg(repo().join(dir))
        .output()
    {
        Ok(out) => out,
        Err(e) => {
            common::tools::missing("kubectl", &format!("cannot run ({e})"));
            return None;
        }
    };
    assert!(
        out.status.success(),
        "kubectl kustomize {dir}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8(out.stdout).expect("UTF-8"))
}

/// The objects of a rendering: kustomize separates them with `---` lines.
fn objects(text: &str) -> Vec<Value> {
    text.split("\n---\n")
        .map(|doc| doc.trim_start_matches("---\n"))
        .filter(|doc| !doc.trim().is_empty())
        .map(yaml)
        .collect()
}

/// Every overlay's rendering and its objects, or `None` when kubectl is missing (and not
/// required).
fn rendered_texts() -> Option<Vec<(&'static Overlay, String, Vec<Value>)>> {
    let mut all = Vec::new();
    for overlay in OVERLAYS {
        let text = kustomize(&format!("deploy/kubernetes/overlays/{}", overlay.name))?;
        let objs = objects(&text);
        all.push((overlay, text, objs));
    }
    Some(all)
}

/// Every overlay's objects, or `None` when kubectl is missing (and not required).
fn rendered() -> Option<Vec<(&'static Overlay, Vec<Value>)>> {
    Some(
        rendered_texts()?
            .into_iter()
            .map(|(overlay, _, objs)| (overlay, objs))
            .collect(),
    )
}

/// The one object of a kind (and name prefix) in a rendering.
fn one<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    let found: Vec<&Value> = objects
        .iter()
        .filter(|o| o["kind"] == kind && o["metadata"]["name"].as_str() == Some(name))
        .collect();
    assert_eq!(found.len(), 1, "one {kind} {name}");
    found[0]
}

/// The generated ConfigMap of the config: its name carries a content hash.
fn config_map(objects: &[Value]) -> &Value {
    let found: Vec<&Value> = objects
        .iter()
        .filter(|o| {
            o["kind"] == "ConfigMap"
                && o["metadata"]["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with("lagwatch-config-"))
        })
        .collect();
    assert_eq!(found.len(), 1, "one generated lagwatch-config ConfigMap");
    found[0]
}

fn strs(v: &Value) -> Vec<&str> {
    v.as_array()
        .unwrap_or_else(|| panic!("an array: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap_or_else(|| panic!("a string: {s}")))
        .collect()
}

fn container(sts: &Value) -> &Value {
    let containers = sts["spec"]["template"]["spec"]["containers"]
        .as_array()
        .expect("containers");
    assert_eq!(containers.len(), 1, "one container");
    &containers[0]
}

/// Whether a selector's matchLabels all appear in `labels`.
fn selects(selector: &Value, labels: &Value) -> bool {
    let wanted = selector.as_object().expect("matchLabels");
    !wanted.is_empty() && wanted.iter().all(|(k, v)| &labels[k] == v)
}

/// `scripts/validate-manifests` on a file, with the virtual environment's Python: its exit code
/// and what it printed; `None` (the test skips) when kubernetes-validate is missing and tools
/// are not required.
fn validate(file: &Path) -> Option<(Option<i32>, String)> {
    let python = repo().join(".tools/kubernetes-validate/bin/python");
    if !python.exists() {
        common::tools::missing("kubernetes-validate", "is not installed");
        return None;
    }
    let out = Command::new(&python)
        .arg(repo().join("scripts/validate-manifests"))
        .arg(file)
        .output()
        .expect("run scripts/validate-manifests");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some((out.status.code(), printed))
}

#[test]
fn every_overlay_renders_and_every_object_validates_against_its_schema() {
    let Some(all) = rendered_texts() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let mut inputs: Vec<(String, PathBuf, usize)> = Vec::new();
    for (overlay, text, objs) in &all {
        let file = dir.path().join(format!("{}.yaml", overlay.name));
        std::fs::write(&file, text).expect("write");
        inputs.push((overlay.name.to_string(), file, objs.len()));
    }
    inputs.push((SECRET_TEMPLATE.to_string(), repo().join(SECRET_TEMPLATE), 1));
    for (what, file, count) in inputs {
        let Some((code, stdout)) = validate(&file) else {
            return;
        };
        assert_eq!(code, Some(0), "{what} does not validate:\n{stdout}");
        // Every object was checked, none passed for want of a schema.
        let checked: BTreeSet<&str> = stdout
            .lines()
            .filter_map(|l| l.strip_prefix("ok    "))
            .filter_map(|l| l.split_once(':').map(|(name, _)| name))
            .collect();
        assert_eq!(
            checked.len(),
            count,
            "{what}: every object checked\n{stdout}"
        );
        assert!(!stdout.contains("FAIL"), "{stdout}");
    }
}

#[test]
fn the_validator_fails_what_the_schemas_do_not_allow() {
    // A misspelt field of a built-in kind, a field the operator's kind does not have, a
    // malformed duration, a recording rule with an alert's field, and a kind without a schema.
    let bad = "\
apiVersion: v1
kind: Service
metadata: {name: a}
spec: {selektor: {app: a}, ports: [{port: 1}]}
---
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata: {name: b}
spec: {selector: {matchLabels: {app: b}}, endpoints: [{port: m, interval: 30 s}], job: x}
---
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata: {name: c}
spec: {groups: [{name: g, rules: [{record: r, expr: up, for: 5m}]}]}
---
apiVersion: monitoring.coreos.com/v1
kind: PodMonitor
metadata: {name: d}
spec: {}
";
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("bad.yaml");
    std::fs::write(&file, bad).expect("write");
    let Some((code, stdout)) = validate(&file) else {
        return;
    };
    assert_eq!(code, Some(1), "{stdout}");
    for want in [
        "FAIL  Service/a: Kubernetes 1.28: spec: Additional properties are not allowed ('selektor'",
        "FAIL  ServiceMonitor/b: spec: Additional properties are not allowed ('job'",
        "FAIL  ServiceMonitor/b: spec.endpoints.0.interval: '30 s' does not match",
        "FAIL  PrometheusRule/c: spec.groups.0.rules.0:",
        "FAIL  PodMonitor/d: no schema for monitoring.coreos.com/v1 PodMonitor",
    ] {
        assert!(stdout.contains(want), "{want}\n{stdout}");
    }
}

#[test]
fn every_overlay_runs_the_members_its_name_promises() {
    let Some(all) = rendered() else { return };
    for (overlay, objs) in &all {
        let name = overlay.name;
        // The kinds the issue lists, each once (two dashboards); nothing else.
        let mut kinds: Vec<&str> = objs
            .iter()
            .map(|o| o["kind"].as_str().expect("kind"))
            .collect();
        kinds.sort();
        assert_eq!(
            kinds,
            [
                "ConfigMap",
                "ConfigMap",
                "ConfigMap",
                "NetworkPolicy",
                "PodDisruptionBudget",
                "PrometheusRule",
                "Service",
                "ServiceAccount",
                "ServiceMonitor",
                "StatefulSet"
            ],
            "{name}"
        );
        for o in objs {
            assert_eq!(
                o["metadata"]["namespace"], "lagwatch",
                "{name}: {}",
                o["kind"]
            );
        }
        let sts = one(objs, "StatefulSet", "lagwatch");
        assert_eq!(sts["spec"]["replicas"], overlay.replicas, "{name}");
        let args = strs(&container(sts)["args"]);
        let mut want: Vec<String> = ARGS.iter().map(|a| a.to_string()).collect();
        if let Some(n) = overlay.shards {
            // Each member a shard: the total is the replica count.
            assert_eq!(n, overlay.replicas, "{name}");
            want.push(format!("--shard=$(POD_INDEX)/{n}"));
        }
        assert_eq!(args, want, "{name}");
        // The variables the arguments use come from the downward API, as the contract says.
        let env = container(sts)["env"].as_array().expect("env");
        let field = |var: &str| {
            env.iter()
                .find(|e| e["name"] == var)
                .map(|e| e["valueFrom"]["fieldRef"]["fieldPath"].clone())
                .unwrap_or(Value::Null)
        };
        assert_eq!(field("POD_NAME"), "metadata.name", "{name}");
        assert_eq!(
            field("POD_INDEX"),
            "metadata.labels['apps.kubernetes.io/pod-index']",
            "{name}"
        );
        // The disruption budget: an HA pair never loses both members to a drain.
        let pdb = one(objs, "PodDisruptionBudget", "lagwatch");
        let (key, value) = overlay.budget;
        assert_eq!(pdb["spec"][key], value, "{name}");
        assert_eq!(
            pdb["spec"].as_object().expect("spec").len(),
            2,
            "{name}: one budget and the selector"
        );
        let pod_labels = &sts["spec"]["template"]["metadata"]["labels"];
        assert!(selects(&pdb["spec"]["selector"]["matchLabels"], pod_labels));
        let anti = &sts["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"];
        if overlay.anti_affinity {
            assert_eq!(anti[0]["topologyKey"], "kubernetes.io/hostname", "{name}");
            assert!(selects(
                &anti[0]["labelSelector"]["matchLabels"],
                pod_labels
            ));
        } else {
            assert!(anti.is_null(), "{name}");
        }
    }
}

#[test]
fn the_state_volume_is_the_configs_state_dir_on_a_claim_of_its_own() {
    let Some(all) = rendered() else { return };
    for (overlay, objs) in &all {
        let name = overlay.name;
        let sts = one(objs, "StatefulSet", "lagwatch");
        let cm = config_map(objs);
        let config = yaml(cm["data"]["lagwatch.yaml"].as_str().expect("lagwatch.yaml"));
        let state_dir = config["state_dir"]
            .as_str()
            .expect("the config sets state_dir");
        assert_eq!(state_dir, "/var/lib/lagwatch", "the contract's state_dir");
        let c = container(sts);
        let mounts = c["volumeMounts"].as_array().expect("mounts");
        let mount = |path: &str| {
            mounts
                .iter()
                .find(|m| m["mountPath"] == path)
                .unwrap_or_else(|| panic!("{name}: nothing mounted at {path}"))
        };
        // state_dir is the pod's own claim, from the volumeClaimTemplates: not an emptyDir.
        let state = mount(state_dir);
        let claims = sts["spec"]["volumeClaimTemplates"]
            .as_array()
            .expect("claims");
        assert_eq!(claims.len(), 1, "{name}");
        assert_eq!(claims[0]["metadata"]["name"], state["name"], "{name}");
        assert_eq!(strs(&claims[0]["spec"]["accessModes"]), ["ReadWriteOnce"]);
        let volumes = sts["spec"]["template"]["spec"]["volumes"]
            .as_array()
            .expect("volumes");
        assert!(
            volumes.iter().all(|v| v["name"] != state["name"]),
            "{name}: the state volume must not also be a pod volume (emptyDir)"
        );
        assert_ne!(state["readOnly"], true, "{name}");
        // Kept when the StatefulSet is deleted or scaled down.
        assert_eq!(
            sts["spec"]["persistentVolumeClaimRetentionPolicy"],
            serde_json::json!({"whenDeleted": "Retain", "whenScaled": "Retain"})
        );
        // --config names the file the ConfigMap's key becomes under its mount.
        let config_arg = strs(&c["args"])
            .into_iter()
            .find_map(|a| a.strip_prefix("--config="))
            .expect("--config=");
        let config_mount = mount("/etc/lagwatch");
        assert_eq!(config_mount["readOnly"], true);
        let config_volume = volumes
            .iter()
            .find(|v| v["name"] == config_mount["name"])
            .expect("the config volume");
        assert_eq!(config_volume["configMap"]["name"], cm["metadata"]["name"]);
        assert_eq!(config_arg, "/etc/lagwatch/lagwatch.yaml");
        // The only other writable place: /tmp, an emptyDir.
        let tmp = mount("/tmp");
        assert!(
            volumes
                .iter()
                .any(|v| v["name"] == tmp["name"] && v["emptyDir"].is_object())
        );
    }
}

#[test]
fn the_image_is_pinned_to_the_crate_version() {
    let Some(all) = rendered() else { return };
    let want = format!("lagwatch:{}", env!("CARGO_PKG_VERSION"));
    for (overlay, objs) in &all {
        let image = container(one(objs, "StatefulSet", "lagwatch"))["image"].clone();
        assert_eq!(image, want.as_str(), "{}", overlay.name);
    }
}

#[test]
fn the_pods_run_non_root_on_a_read_only_root_and_probe_the_open_endpoints() {
    let Some(all) = rendered() else { return };
    let dockerfile = read("Dockerfile");
    for (overlay, objs) in &all {
        let name = overlay.name;
        let sts = one(objs, "StatefulSet", "lagwatch");
        let pod = &sts["spec"]["template"]["spec"];
        let c = container(sts);
        // The same user as the image's USER line.
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{name}");
        assert_eq!(pod["securityContext"]["runAsUser"], 10001);
        assert_eq!(
            pod["securityContext"]["fsGroup"], 10001,
            "the claim writable"
        );
        assert_eq!(
            pod["securityContext"]["seccompProfile"]["type"],
            "RuntimeDefault"
        );
        assert!(dockerfile.contains("USER 10001:10001"));
        assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
        assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
        assert_eq!(strs(&c["securityContext"]["capabilities"]["drop"]), ["ALL"]);
        assert_eq!(pod["automountServiceAccountToken"], false);
        // Probes on the endpoints lagwatch serves without credentials.
        for (probe, path) in [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")] {
            assert_eq!(c[probe]["httpGet"]["path"], path, "{name}");
            assert_eq!(c[probe]["httpGet"]["port"], "metrics", "{name}");
            assert!(lagwatch::web::basic_auth::OPEN_PATHS.contains(&path));
        }
        assert!(c["resources"]["requests"]["cpu"].is_string());
        assert!(c["resources"]["requests"]["memory"].is_string());
        assert!(c["resources"]["limits"]["memory"].is_string());
        // Workload identity: the webhook's pod label and the ServiceAccount's client id.
        assert_eq!(
            sts["spec"]["template"]["metadata"]["labels"]["azure.workload.identity/use"],
            "true"
        );
        let sa = one(objs, "ServiceAccount", "lagwatch");
        assert_eq!(pod["serviceAccountName"], "lagwatch");
        assert!(sa["metadata"]["annotations"]["azure.workload.identity/client-id"].is_string());
    }
}

#[test]
fn the_scraper_finds_every_member_as_job_lagwatch() {
    let Some(all) = rendered() else { return };
    for (overlay, objs) in &all {
        let name = overlay.name;
        let sts = one(objs, "StatefulSet", "lagwatch");
        let svc = one(objs, "Service", "lagwatch");
        let sm = one(objs, "ServiceMonitor", "lagwatch");
        let pod_labels = &sts["spec"]["template"]["metadata"]["labels"];
        // The StatefulSet's headless Service: one target per member.
        assert_eq!(sts["spec"]["serviceName"], svc["metadata"]["name"]);
        assert_eq!(svc["spec"]["clusterIP"], "None");
        assert!(selects(&svc["spec"]["selector"], pod_labels), "{name}");
        assert!(selects(&sts["spec"]["selector"]["matchLabels"], pod_labels));
        // The ServiceMonitor selects the Service and scrapes its port by name, which is the
        // container's port, which is the image's.
        assert!(selects(
            &sm["spec"]["selector"]["matchLabels"],
            &svc["metadata"]["labels"]
        ));
        let ep = &sm["spec"]["endpoints"][0];
        assert_eq!(ep["path"], "/metrics");
        assert_eq!(ep["port"], svc["spec"]["ports"][0]["name"]);
        assert_eq!(svc["spec"]["ports"][0]["targetPort"], "metrics");
        let port = &container(sts)["ports"][0];
        assert_eq!(port["name"], "metrics");
        assert_eq!(port["containerPort"], 9464);
        assert!(read("Dockerfile").contains("EXPOSE 9464"));
        // job="lagwatch", which the rules select, comes from the Service's label.
        let job_label = sm["spec"]["jobLabel"].as_str().expect("jobLabel");
        assert_eq!(svc["metadata"]["labels"][job_label], "lagwatch");
        assert!(
            rule_files()
                .iter()
                .any(|f| read(f).contains("job=\"lagwatch\""))
        );
        // The network policy admits the scraper on that port.
        let np = one(objs, "NetworkPolicy", "lagwatch");
        assert!(selects(
            &np["spec"]["podSelector"]["matchLabels"],
            pod_labels
        ));
        assert_eq!(np["spec"]["ingress"][0]["ports"][0]["port"], "metrics");
        assert!(np["spec"]["ingress"][0]["from"][0]["podSelector"].is_object());
    }
}

#[test]
fn every_overlay_ships_the_rules_and_the_dashboards_unchanged() {
    let Some(all) = rendered() else { return };
    let groups = rule_groups();
    for (overlay, objs) in &all {
        let name = overlay.name;
        let rule = one(objs, "PrometheusRule", "lagwatch");
        assert!(
            rule["spec"]["groups"] == groups,
            "{name}: the PrometheusRule's groups are not the rules of alerts/"
        );
        for file in files("dashboards", ".json") {
            let stem = file
                .trim_end_matches(".json")
                .trim_start_matches("lagwatch-");
            let cm = one(objs, "ConfigMap", &format!("lagwatch-dashboard-{stem}"));
            assert_eq!(cm["metadata"]["labels"]["grafana_dashboard"], "1", "{name}");
            let data = cm["data"].as_object().expect("data");
            assert_eq!(data.len(), 1, "{name}: one dashboard per ConfigMap");
            assert!(
                data[&file].as_str() == Some(read(&format!("dashboards/{file}")).as_str()),
                "{name}: {file} differs from dashboards/{file}"
            );
            // A client-side apply keeps the whole object in an annotation of at most 256 KiB.
            let size = serde_json::to_string(cm).expect("JSON").len();
            assert!(
                size < 256 * 1024,
                "{name}: {file}'s ConfigMap is {size} bytes"
            );
        }
    }
}

/// Every `env:` and `file:` reference of a configuration, anywhere in it.
fn secret_refs(v: &Value, env: &mut BTreeSet<String>, file: &mut BTreeSet<String>) {
    match v {
        Value::String(s) => {
            if let Some(name) = s.strip_prefix("env:") {
                env.insert(name.to_string());
            } else if let Some(path) = s.strip_prefix("file:") {
                file.insert(path.to_string());
            }
        }
        Value::Array(a) => a.iter().for_each(|x| secret_refs(x, env, file)),
        Value::Object(o) => o.values().for_each(|x| secret_refs(x, env, file)),
        _ => {}
    }
}

#[test]
fn the_config_is_valid_and_its_secrets_and_systems_are_reachable_from_the_pod() {
    let Some(all) = rendered() else { return };
    let (_, objs) = &all[0];
    let text = config_map(objs)["data"]["lagwatch.yaml"]
        .as_str()
        .expect("lagwatch.yaml")
        .to_string();
    let config = yaml(&text);
    let sts = one(objs, "StatefulSet", "lagwatch");
    let c = container(sts);
    let secret = yaml(&read(SECRET_TEMPLATE));
    let secret_name = secret["metadata"]["name"].as_str().expect("name");
    let secret_keys: BTreeSet<&str> = secret["stringData"]
        .as_object()
        .expect("stringData")
        .keys()
        .map(String::as_str)
        .collect();
    let (mut env, mut file) = (BTreeSet::new(), BTreeSet::new());
    secret_refs(&config, &mut env, &mut file);
    assert!(
        !env.is_empty() && !file.is_empty(),
        "the config shows both kinds of reference"
    );
    // Every key of the Secret is a variable of the container, so each env: reference is one
    // when the Secret has its key (and a config naming another needs only that key).
    let from_secret = c["envFrom"]
        .as_array()
        .expect("envFrom")
        .iter()
        .any(|e| e["secretRef"]["name"] == secret_name);
    assert!(from_secret, "the container's environment is the Secret's");
    for var in &env {
        assert!(
            secret_keys.contains(var.as_str()),
            "env:{var} is no key of the Secret"
        );
    }
    // Each file: reference is an item of the Secret's volume, under its mount.
    let volumes = sts["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .expect("volumes");
    let credentials = volumes
        .iter()
        .find(|v| v["secret"]["secretName"] == secret_name)
        .expect("the Secret as a volume");
    let mount = c["volumeMounts"]
        .as_array()
        .expect("mounts")
        .iter()
        .find(|m| m["name"] == credentials["name"])
        .expect("mounted");
    let dir = dir_of(&mount["mountPath"]);
    for path in &file {
        let item = path
            .strip_prefix(&format!("{dir}/"))
            .unwrap_or_else(|| panic!("file:{path} is not under the Secret's mount {dir}"));
        assert!(
            credentials["secret"]["items"].is_null(),
            "every key of the Secret is a file"
        );
        assert!(
            secret_keys.contains(item),
            "file:{path} is no key of the Secret"
        );
    }

    // Every system's port is open in the network policy's egress, and no other port is.
    let np = one(objs, "NetworkPolicy", "lagwatch");
    let mut open: BTreeSet<u64> = BTreeSet::new();
    let mut dns = false;
    for rule in np["spec"]["egress"].as_array().expect("egress") {
        for p in rule["ports"].as_array().expect("ports") {
            let port = p["port"].as_u64().expect("a numeric port");
            if port == 53 {
                dns |= p["protocol"] == "UDP";
            } else {
                assert_eq!(p["protocol"], "TCP");
                open.insert(port);
            }
        }
    }
    assert!(dns, "DNS is allowed");
    let mut used: BTreeSet<u64> = BTreeSet::new();
    for (system, s) in config["systems"].as_object().expect("systems") {
        let address = s["url"]
            .as_str()
            .or(s["endpoint"].as_str())
            .unwrap_or_else(|| panic!("{system} has a url or endpoint"));
        let url = url::Url::parse(&address.replace("abfss://", "https://"))
            .unwrap_or_else(|e| panic!("{system}: {address}: {e}"));
        let port = u64::from(url.port_or_known_default().expect("a port"));
        assert!(
            open.contains(&port),
            "{system} ({address}): port {port} is not open"
        );
        used.insert(port);
    }
    // Entra ID's token endpoint, for every Entra-authenticated system, is on 443.
    used.insert(443);
    assert_eq!(open, used, "an egress port no system uses");

    // And the config is valid: check-config, with the Secret's and the workload identity
    // webhook's values stood in for (the file: secrets in a directory of the test's).
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut local = text.clone();
    for path in &file {
        let name = path.rsplit('/').next().expect("a file name");
        let stand_in = tmp.path().join(name);
        std::fs::write(&stand_in, "stand-in").expect("write");
        local = local.replace(
            &format!("file:{path}"),
            &format!("file:{}", stand_in.display()),
        );
    }
    let token = tmp.path().join("azure-identity-token");
    std::fs::write(&token, "stand-in").expect("write");
    let config_file = tmp.path().join("lagwatch.yaml");
    std::fs::write(&config_file, local).expect("write");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lagwatch"));
    cmd.arg("check-config")
        .arg(&config_file)
        .env("AZURE_TENANT_ID", "11111111-2222-3333-4444-555555555555")
        .env("AZURE_CLIENT_ID", "66666666-7777-8888-9999-000000000000")
        .env("AZURE_FEDERATED_TOKEN_FILE", &token);
    for var in &env {
        cmd.env(var, "stand-in");
    }
    let out = cmd.output().expect("run lagwatch check-config");
    assert!(
        out.status.success(),
        "the shipped config is invalid: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn dir_of(v: &Value) -> &str {
    v.as_str().expect("a path").trim_end_matches('/')
}

/// `cargo metadata` of a workspace: its own packages' lib, bin and bench targets (kind, name,
/// source path relative to the root).
fn targets(root: &Path, extra: &[&str]) -> BTreeSet<(String, String, String)> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let out = Command::new(cargo)
        .current_dir(root)
        .args(["metadata", "--format-version", "1", "--locked"])
        .args(extra)
        .output()
        .expect("run cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata in {}: {}",
        root.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let mut set = BTreeSet::new();
    for p in meta["packages"].as_array().expect("packages") {
        if !p["source"].is_null() {
            continue;
        }
        for t in p["targets"].as_array().expect("targets") {
            let kind = t["kind"][0].as_str().expect("kind").to_string();
            if ["lib", "bin", "bench"].contains(&kind.as_str()) {
                let src = Path::new(t["src_path"].as_str().expect("src_path"));
                let rel = src.strip_prefix(root).unwrap_or(src).display().to_string();
                set.insert((kind, t["name"].as_str().expect("name").to_string(), rel));
            }
        }
    }
    set
}

#[test]
fn the_dockerfile_builds_the_dependencies_in_a_layer_of_their_own() {
    let dockerfile = read("Dockerfile");
    let lines: Vec<&str> = dockerfile.lines().collect();
    let at = |needle: &str| {
        lines
            .iter()
            .position(|l| l.starts_with(needle))
            .unwrap_or_else(|| panic!("the Dockerfile has a line starting {needle:?}"))
    };
    let stubs = at("RUN scripts/docker-dependency-stubs");
    // The dependency build sees only manifests: every package's Cargo.toml (and build script)
    // is copied before it, the sources and the revision (which changes with every commit)
    // only after.
    for manifest in [
        "crates/lagwatch-core/Cargo.toml",
        "crates/lagwatch-emulator/Cargo.toml",
        "crates/lagwatch-core/build.rs",
    ] {
        let line = lines
            .iter()
            .position(|l| l.starts_with("COPY ") && l.contains(manifest))
            .unwrap_or_else(|| panic!("the Dockerfile copies {manifest}"));
        assert!(
            line < stubs,
            "{manifest} is copied before the dependency build"
        );
    }
    assert!(at("COPY Cargo.toml Cargo.lock") < stubs);
    assert!(
        lines[stubs..]
            .iter()
            .take(3)
            .any(|l| l.contains("cargo build --release --locked"))
    );
    for late in ["COPY src ", "COPY crates ", "ARG LAGWATCH_REVISION"] {
        assert!(at(late) > stubs, "{late} comes after the dependency build");
    }
    // The real sources are newer than the stand-ins' build, whatever their times in the context.
    assert!(dockerfile.contains("-exec touch {} +"));

    // The stand-ins make a workspace Cargo accepts with the locked dependencies and the same
    // lib, bin and bench targets as the real tree.
    let tmp = tempfile::tempdir().expect("tempdir");
    for f in [
        "Cargo.toml",
        "Cargo.lock",
        "crates/lagwatch-core/Cargo.toml",
        "crates/lagwatch-core/build.rs",
        "crates/lagwatch-emulator/Cargo.toml",
    ] {
        let to = tmp.path().join(f);
        std::fs::create_dir_all(to.parent().expect("parent")).expect("mkdir");
        std::fs::copy(repo().join(f), to).expect("copy");
    }
    let out = Command::new("sh")
        .arg(repo().join("scripts/docker-dependency-stubs"))
        .current_dir(tmp.path())
        .output()
        .expect("run the stubs script");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        targets(tmp.path(), &["--no-deps"]),
        targets(repo(), &["--no-deps"]),
        "scripts/docker-dependency-stubs must stand in for every lib, bin and bench target"
    );
    // Resolving the whole graph with --locked fails when the stand-in workspace would need a
    // different Cargo.lock.
    let rustc = Command::new("rustc")
        .arg("-vV")
        .output()
        .expect("rustc -vV");
    let info = String::from_utf8_lossy(&rustc.stdout).to_string();
    let host = info
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .expect("host");
    targets(tmp.path(), &["--filter-platform", host]);
}

#[test]
fn the_tool_installer_stops_and_says_so_without_kubectl() {
    // A PATH with the shell and what the script needs before its kubectl check, and no kubectl.
    let bin = tempfile::tempdir().expect("tempdir");
    for tool in ["bash", "dirname"] {
        let found = ["/usr/bin", "/bin"]
            .iter()
            .map(|d| Path::new(d).join(tool))
            .find(|p| p.exists())
            .unwrap_or_else(|| panic!("{tool} in /usr/bin or /bin"));
        std::os::unix::fs::symlink(found, bin.path().join(tool)).expect("symlink");
    }
    let out = Command::new(bin.path().join("bash"))
        .arg(repo().join("scripts/install-test-tools"))
        .env("PATH", bin.path())
        .output()
        .expect("run scripts/install-test-tools");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("kubectl with kustomize built in (`kubectl kustomize`) is missing"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("Installing"),
        "stops before installing anything: {stderr}"
    );
}
