// lagwatch's Grafana dashboards, in the kubernetes-mixin style: `grafanaDashboards` maps each
// file name under dashboards/ to its dashboard, built from `$._config` (config.libsonnet):
//   jobSelector      matchers for lagwatch's scrape job ('' for every job): the `job` variable
//                    lists the jobs it matches that export lagwatch_build_info;
//   haLabels         the labels that tell the members of an HA pair apart (instance, pod):
//                    panels that count what every member measures take one member's count
//                    (the largest) instead of adding the members' counts up;
//   runbookURLBase   where runbooks are browsed (ending in /): runbook links are
//                    <runbookURLBase>docs/runbooks/<AlertName>.md, the same as the alerts';
//                    null links a member that is up (http://<instance>/docs/runbooks/…);
//   datasourceRegex  (optional, '' when absent) which Prometheus data sources the `datasource`
//                    variable offers.
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
    up: if c.jobSelector == '' then 'up{job=~"$job"}' else 'up{%s, job=~"$job"}' % c.jobSelector,
    jobBuild: if c.jobSelector == '' then 'lagwatch_build_info{job=~"$job"}' else 'lagwatch_build_info{%s, job=~"$job"}' % c.jobSelector,
  }),

  local common = [
    lib.datasourceVariable(if std.objectHas(c, 'datasourceRegex') then c.datasourceRegex else ''),
    lib.queryVariable('job', 'Job', '%(build)s', 'job'),
    lib.queryVariable('instance', 'Instance', '%(jobBuild)s', 'instance'),
  ],
  // Where runbook links start: runbookURLBase without its final /, or without one a member
  // that is up (lagwatch serves its runbooks), as the alerts' links.
  local runbookBase = [
    if c.runbookURLBase != null then lib.runbookBaseVariable(std.rstripChars(c.runbookURLBase, '/'))
    else lib.runbookMemberVariable('%(up)s'),
  ],

  grafanaDashboards+:: {
    'lagwatch-overview.json': (import 'overview.libsonnet')(lib, common + runbookBase),
    'lagwatch-path.json': (import 'path.libsonnet')(lib, common + [
      lib.queryVariable('source', 'Source', 'lagwatch_lag_objective_seconds{%(sel)s}', 'source', multi=false),
      lib.queryVariable('target', 'Target', 'lagwatch_lag_objective_seconds{%(src)s}', 'target', multi=false),
    ] + runbookBase),
  },
}
