// Renders the dashboards on their own, with the defaults they need, until the mixin's
// config.libsonnet provides them: jsonnet -J mixin/dashboards -m dashboards mixin/dashboards/test-render.jsonnet
local dashboards = (import 'dashboards.libsonnet') + {
  _config+:: {
    jobSelector: '',
    haLabels: ['instance', 'pod'],
    datasourceRegex: '',
    runbookBase: 'https://github.com/lagwatch/lagwatch/blob/main',
  },
};
dashboards.grafanaDashboards
