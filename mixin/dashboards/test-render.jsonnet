// Renders the dashboards alone, the way scripts/mixin writes them, with the _config values
// they read (those of mixin/config.libsonnet):
//   jsonnet -S -J mixin/dashboards -m dashboards mixin/dashboards/test-render.jsonnet
// Override one with --tla-str or by editing a copy, e.g. jobSelector '' to list every job.
local dashboards = (import 'dashboards.libsonnet') + {
  _config+:: {
    jobSelector: 'job="lagwatch"',
    haLabels: ['instance', 'pod'],
    runbookURLBase: null,
  },
};
{
  [name]: std.manifestJsonEx(dashboards.grafanaDashboards[name], '  ') + '\n'
  for name in std.objectFields(dashboards.grafanaDashboards)
}
