// The settings of the lagwatch mixin. Override any of them from your own jsonnet:
//
//   (import 'lagwatch/mixin/mixin.libsonnet') + { _config+:: { haLabels+: ['node'] } }
//
// Lag thresholds are not here: they come from each path's lagwatch_lag_objective_seconds and
// lagwatch_probe_timeout_seconds, so one rule serves every path. What is here are the
// multipliers and shares the rules apply to them, the `for:` holds, and how Prometheus names
// lagwatch (alerts/README.md says why each value was chosen).
{
  _config+:: {
    // Selects lagwatch's scrape targets in the rules that read `up` (LagwatchDown,
    // LagwatchMemberDown, LagwatchAbsent). Every other rule reads lagwatch_* families only.
    jobSelector: 'job="lagwatch"',

    // The labels that tell the members of one lagwatch job apart: Prometheus's `instance` (the
    // scrape target) and `pod` (added by a ServiceMonitor). Every alert and recording rule
    // aggregates them away, so an HA pair (two members monitoring the same paths) pages once,
    // and keeps paging when one member dies. Add any other per-target label your scrape
    // configuration attaches (`node`, `kubernetes_pod_name`, ...).
    haLabels: ['instance', 'pod'],

    // Where runbook_url points: runbookURLBase + 'docs/runbooks/<AlertName>.md'.
    runbookURLBase: null,

    // Which Prometheus data sources the dashboards' `datasource` variable offers ('' : all).
    datasourceRegex: '',

    // The SLO of "a probe converges within its path's objective": 99 % of probes over 30 days,
    // with the multi-window burn rates of the Google SRE workbook (2 % of the budget in an
    // hour, 5 % in six hours page; 10 % in a day is a ticket).
    objectiveRatio: 0.99,
    burnRates: [
      { factor: 14.4, long: '1h', short: '5m', 'for': '2m', severity: 'critical' },
      { factor: 6, long: '6h', short: '30m', 'for': '15m', severity: 'critical' },
      { factor: 3, long: '1d', short: '2h', 'for': '1h', severity: 'warning' },
    ],

    // Multipliers and shares of the other rules.
    notConvergingTimeouts: 2,  // LagwatchPathNotConverging: staleness >= 2 x the path's timeout
    lakeStaleObjectives: 2,  // LagwatchLakeStale: newest lake data older than 2 x the objective
    writesFailingRatio: 0.1,  // LagwatchSentinelWritesFailing (warning): 10 % of writes failed
    throttledRatio: 0.05,  // LagwatchSourceThrottled: 5 % of writes throttled
    clockOffsetSeconds: 5,  // LagwatchClockOffsetHigh: offset beyond its uncertainty
    reconcileIntervals: 3,  // LagwatchReconcileFailing: no success for 3 intervals
    platformUnreadableSeconds: 900,  // LagwatchPlatformStatusUnreadable: no successful read

    // The `for:` hold of each alert (the burn-rate alerts' are in burnRates above).
    'for': {
      LagwatchLagAboveObjective: '10m',
      LagwatchPathNotConverging: '5m',
      LagwatchDualWritePaused: '5m',
      LagwatchLakeStale: '10m',
      LagwatchPlatformHealthyButStuck: '5m',
      LagwatchPlatformStatusStale: '30m',
      LagwatchPlatformStatusUnreadable: '5m',
      LagwatchSentinelWritesFailingWarning: '15m',
      LagwatchSentinelWritesFailingCritical: '10m',
      LagwatchSourceThrottled: '15m',
      LagwatchSentinelsPilingUp: '1h',
      LagwatchClockOffsetHigh: '15m',
      LagwatchDiscrepanciesPersisting: '30m',
      LagwatchReconcileFailing: '5m',
      LagwatchDown: '5m',
      LagwatchMemberDown: '15m',
      LagwatchLedgerDown: '15m',
      LagwatchAbsent: '10m',
      LagwatchConfigReloadFailed: '10m',
      LagwatchRuleInputMissing: '15m',
      LagwatchInstanceConflict: '5m',
      LagwatchShardingMismatch: '15m',
      LagwatchShardMissing: '5m',
    },
  },
}
