//! The Kubernetes manifests under `deploy/kubernetes/` cannot drift from what they render:
//! `prometheus-rule.yaml` is the rule files of `alerts/` wrapped in a `PrometheusRule`, rendered
//! by [`render`] here. Run with `LAGWATCH_UPDATE_DEPLOY=1` to rewrite it after changing a rule.

use std::path::Path;

use serde_json::Value;

/// The rule files, in the order the PrometheusRule lists their groups.
const RULE_FILES: &[&str] = &["alerts/lagwatch.rules.yml", "alerts/lagwatch.alerts.yml"];
const RENDERED: &str = "deploy/kubernetes/prometheus-rule.yaml";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The PrometheusRule: a header, then every file's `groups:` entries indented under `spec`.
fn render() -> String {
    let mut out = String::from(
        "# Generated from alerts/*.yml by tests/it/deploy_manifests.rs (LAGWATCH_UPDATE_DEPLOY=1 cargo\n\
         # test --test it deploy_manifests::); do not edit by hand. For the Prometheus Operator: label\n\
         # it so your Prometheus's ruleSelector picks it up.\n\
         apiVersion: monitoring.coreos.com/v1\n\
         kind: PrometheusRule\n\
         metadata:\n  name: lagwatch\n  labels:\n    app.kubernetes.io/name: lagwatch\n\
         spec:\n  groups:\n",
    );
    for file in RULE_FILES {
        let text = read(file);
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

fn yaml(text: &str) -> Value {
    serde_saphyr::from_str(text).expect("YAML")
}

#[test]
fn the_prometheus_rule_is_the_rule_files_rendered() {
    let want = render();
    if std::env::var("LAGWATCH_UPDATE_DEPLOY").is_ok_and(|v| v == "1") {
        std::fs::write(repo().join(RENDERED), &want).expect("write");
    }
    let got = read(RENDERED);
    assert!(
        got == want,
        "{RENDERED} is out of date: LAGWATCH_UPDATE_DEPLOY=1 cargo test --test it deploy_manifests::"
    );
    // And the rendering means what the files mean: the same groups, rule for rule.
    let rule = yaml(&got);
    assert_eq!(rule["kind"], "PrometheusRule");
    let mut groups = Vec::new();
    for file in RULE_FILES {
        groups.extend(
            yaml(&read(file))["groups"]
                .as_array()
                .cloned()
                .unwrap_or_default(),
        );
    }
    assert!(groups.len() >= 2);
    assert_eq!(rule["spec"]["groups"], Value::Array(groups));
}

#[test]
fn every_rule_file_is_rendered() {
    let mut files: Vec<String> = std::fs::read_dir(repo().join("alerts"))
        .expect("alerts/")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".yml"))
        .map(|n| format!("alerts/{n}"))
        .collect();
    files.sort();
    let mut listed: Vec<String> = RULE_FILES.iter().map(|s| s.to_string()).collect();
    listed.sort();
    assert_eq!(files, listed, "a new rule file must be added to RULE_FILES");
}

#[test]
fn the_service_monitor_scrapes_the_port_the_container_exposes() {
    let sm = yaml(&read("deploy/kubernetes/service-monitor.yaml"));
    assert_eq!(sm["kind"], "ServiceMonitor");
    let ep = &sm["spec"]["endpoints"][0];
    assert_eq!(ep["path"], "/metrics");
    assert_eq!(ep["port"], "metrics");
    assert!(read("Dockerfile").contains("EXPOSE 9464"));
    // The rules' LagwatchDown/LagwatchAbsent select job="lagwatch": the job label comes from
    // the Service's app.kubernetes.io/name, which the selector requires to be "lagwatch".
    assert_eq!(sm["spec"]["jobLabel"], "app.kubernetes.io/name");
    assert_eq!(
        sm["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"],
        "lagwatch"
    );
    assert!(read("alerts/lagwatch.alerts.yml").contains("job=\"lagwatch\""));
}

#[test]
fn the_deployment_runs_non_root_on_a_read_only_root_with_every_written_path_a_volume() {
    let d = yaml(&read("deploy/kubernetes/deployment.yaml"));
    assert_eq!(d["kind"], "Deployment");
    let pod = &d["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    // The same user as the image's USER line.
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["runAsUser"], 10001);
    assert!(read("Dockerfile").contains("USER 10001:10001"));
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(c["securityContext"]["capabilities"]["drop"][0], "ALL");
    assert_eq!(c["ports"][0]["name"], "metrics");
    assert_eq!(c["ports"][0]["containerPort"], 9464);
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    // Every place lagwatch writes is a mounted volume: the temp dir and the state_dir.
    let mounts: Vec<&str> = c["volumeMounts"]
        .as_array()
        .expect("mounts")
        .iter()
        .map(|m| m["mountPath"].as_str().expect("path"))
        .collect();
    for path in ["/tmp", "/var/lib/lagwatch", "/etc/lagwatch"] {
        assert!(mounts.contains(&path), "{path} is not mounted: {mounts:?}");
    }
    let args: Vec<&str> = c["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| a.as_str().expect("arg"))
        .collect();
    assert_eq!(args, ["run", "--config", "/etc/lagwatch/config.yaml"]);
    // The Service the ServiceMonitor selects exposes the container's named port.
    let svc = yaml(&read("deploy/kubernetes/service.yaml"));
    assert_eq!(
        svc["metadata"]["labels"]["app.kubernetes.io/name"],
        "lagwatch"
    );
    assert_eq!(
        svc["spec"]["selector"]["app.kubernetes.io/name"],
        "lagwatch"
    );
    assert_eq!(svc["spec"]["ports"][0]["name"], "metrics");
    assert_eq!(
        d["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"],
        "lagwatch"
    );
}
