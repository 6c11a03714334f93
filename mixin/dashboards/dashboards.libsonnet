// lagwatch's Grafana dashboards, in the kubernetes-mixin style: `grafanaDashboards` maps each
// file name under dashboards/ to its dashboard, built from `$._config`:
//   jobSelector      matchers for the scrape job(s) of lagwatch ('' lists every job exporting
//                    lagwatch_build_info), narrowing the `job` variable;
//   haLabels         the labels that tell the members of an HA pair apart (instance, pod):
//                    panels that count what every member measures take one member's count
//                    (the largest) instead of adding the members' counts up;
//   datasourceRegex  which Prometheus data sources the `datasource` variable offers ('' all);
//   runbookBase      where the repository's files are browsed: runbook links are
//                    <runbookBase>/docs/runbooks/<AlertName>.md.
{
  local c = $._config,
  local sel = 'job=~"$job", instance=~"$instance"',
  local lib = (import 'lib.libsonnet').new({
    sel: sel,
    path: sel + ', source="$source", target="$target"',
    src: sel + ', source="$source"',
    tgt: sel + ', target="$target"',
    systems: sel + ', system=~"$source|$target"',
    members: std.join(', ', c.haLabels),
    build: if c.jobSelector == '' then 'lagwatch_build_info' else 'lagwatch_build_info{%s}' % c.jobSelector,
    jobBuild: if c.jobSelector == '' then 'lagwatch_build_info{job=~"$job"}' else 'lagwatch_build_info{%s, job=~"$job"}' % c.jobSelector,
  }),

  local common = [
    lib.datasourceVariable(c.datasourceRegex),
    lib.queryVariable('job', 'Job', '%(build)s', 'job'),
    lib.queryVariable('instance', 'Instance', '%(jobBuild)s', 'instance'),
  ],
  local runbookBase = [lib.runbookBaseVariable(c.runbookBase)],

  grafanaDashboards+:: {
    'lagwatch-overview.json': (import 'overview.libsonnet')(lib, common + runbookBase),
    'lagwatch-path.json': (import 'path.libsonnet')(lib, common + [
      lib.queryVariable('source', 'Source', 'lagwatch_lag_objective_seconds{%(sel)s}', 'source', multi=false),
      lib.queryVariable('target', 'Target', 'lagwatch_lag_objective_seconds{%(src)s}', 'target', multi=false),
    ] + runbookBase),
  },
}
