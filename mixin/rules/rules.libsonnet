// lagwatch's recording rules (rendered into alerts/lagwatch.rules.yml): the lag quantiles and
// objective ratios that the dashboards and the alerts share. Names follow
// level:metric:operations. Level `path` keeps every label of the input except the ones
// aggregated away (le, outcome, and the member labels _config.haLabels), so source, target and
// job survive: one series per path of a job, however many members (an HA pair) measure it.
// Members are combined by adding their probes up: each member writes its own sentinels, so
// the quantiles and ratios are those of all the probes of the path. alerts/README.md explains
// how to load and test them.
{
  local c = $._config,
  local ha = std.join(', ', c.haLabels),

  // The objective of each member as an `le` label (value 1), to pick the histogram bucket at the
  // objective: count_values writes 300 as "300"; Prometheus 3 (and 2 over protobuf) ingests
  // bucket bounds as "300.0", so integral objectives get both spellings.
  local objectiveLe = |||
    count_values without () ("le", lagwatch_lag_objective_seconds)
    or
    label_replace(
      count_values without () ("le", lagwatch_lag_objective_seconds),
      "le", "$1.0", "le", "([0-9]+)"
    )
  |||,

  local indent(text, n) =
    local pad = std.join('', [' ' for _ in std.range(1, n)]);
    std.join('\n', [if l == '' then l else pad + l for l in std.split(std.stripChars(text, '\n'), '\n')]),

  prometheusRules+:: {
    groups+: [
      {
        // Lag quantiles of converged sentinels per path, from the lagwatch_lag_seconds
        // histogram of every member. Classic-histogram quantiles interpolate linearly inside a
        // bucket: estimates, exact only at bucket bounds. NaN while nothing converged in the
        // window.
        name: 'lagwatch.lag.rules',
        rules: [
          {
            record: 'path:lagwatch_lag_seconds:p%s_%s' % [q[2:] + (if std.length(q) == 3 then '0' else ''), w],
            expr: 'histogram_quantile(%s, sum without (%s) (rate(lagwatch_lag_seconds_bucket[%s])))' % [q, ha, w],
          }
          for w in ['5m', '1h']
          for q in ['0.5', '0.95', '0.99']
        ],
      },
      {
        // The SLI "a sentinel arrives within its path's objective", as an error ratio per
        // window: the share of resolved probes that did NOT converge within
        // lagwatch_lag_objective_seconds (converged later, timeout, mismatch, error or halted),
        // over the probes of every member. NaN while no probe resolved in the window; no series
        // for a path whose good probes cannot be counted exactly (see below and
        // LagwatchRuleInputMissing).
        //
        // Good probes come from lagwatch_probes_within_objective_total (exact for any
        // objective). From a lagwatch older than that counter, from the histogram bucket whose
        // upper bound equals the objective. That is exact too where the objective is a bucket
        // bound: always since lag buckets are multiples of each path's objective
        // (src/metrics/series.rs); with the fixed buckets of older versions (0.05 s to 24 h)
        // only for objectives such as 30 s, 5 m or 1 h, not 45 s or 20 m. The bucket is chosen
        // per member, with that member's objective.
        name: 'lagwatch.objective.rules',
        rules: [
          {
            // The objective as an `le` label, per path (members share their configuration).
            record: 'path:lagwatch_lag_objective_seconds:le',
            expr: 'max without (%s) (\n%s\n)\n' % [ha, indent(objectiveLe, 2)],
          },
        ] + [
          {
            record: 'path:lagwatch_probes_outside_objective:ratio_rate' + w,
            expr: |||
              1 - sum without (%(ha)s) (
                  rate(lagwatch_probes_within_objective_total[%(w)s])
                or
                  sum without (le) (
                    rate(lagwatch_lag_seconds_bucket[%(w)s])
                    and
                    (
              %(le)s
                    )
                  )
              )
              / sum without (outcome, %(ha)s) (rate(lagwatch_probes_total[%(w)s]))
            ||| % { ha: ha, w: w, le: indent(objectiveLe, 8) },
          }
          for w in ['5m', '30m', '1h', '2h', '6h', '1d']
        ],
      },
    ],
  },
}
