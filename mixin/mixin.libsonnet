// The lagwatch monitoring mixin: Prometheus alerts, recording rules and Grafana dashboards,
// rendered into alerts/ and dashboards/ by scripts/mixin. Import it and override `_config`
// (config.libsonnet) to fit your Prometheus:
//
//   (import 'lagwatch/mixin/mixin.libsonnet') + { _config+:: { jobSelector: 'job="d365-lag"' } }
(import 'config.libsonnet') +
(import 'alerts/alerts.libsonnet') +
(import 'rules/rules.libsonnet') +
(import 'dashboards/dashboards.libsonnet')
