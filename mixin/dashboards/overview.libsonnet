// lagwatch / Overview: generated into dashboards/lagwatch-overview.json by the mixin.
function(lib, variables)
  lib.dashboard(
    'lagwatch-overview',
    'lagwatch / Overview',
    "Every replication path lagwatch probes, at a glance: staleness against objective, lag quantiles, convergence, outcomes, correctness violations, throttling, clocks, conflicts between systems linked both ways, lakes, reconciliation (data drift between source and replicas), and lagwatch's own health.",
    variables,
    [
      lib.row('Paths'),
      lib.table(
        'Paths now',
        's',
        "One row per path (source → target): its state as lagwatch_path_state says it (converging, lagging, stuck, failing, halted, idle: the same rules as the status page, using each path's own objective and timeout), the latest converged sentinel's lag and its uncertainty (the true lag is within lag ± uncertainty), the staleness (age of the oldest sentinel not yet seen at the target; 0 when none is pending), the configured objective, the sentinels in flight and the time since the last convergence. Click a row to open that path's dashboard.",
        [
          lib.tableQuery('max by (source, target) (lagwatch_last_lag_seconds{%(sel)s})'),
          lib.tableQuery('max by (source, target) (lagwatch_lag_uncertainty_seconds{%(sel)s})'),
          lib.tableQuery('max by (source, target) (lagwatch_staleness_seconds{%(sel)s})'),
          lib.tableQuery('max by (source, target) (lagwatch_lag_objective_seconds{%(sel)s})'),
          lib.tableQuery(lib.oneMember('source, target', 'lagwatch_probes_in_flight{%(sel)s}')),
          lib.tableQuery('time() - max by (source, target) (lagwatch_last_converged_timestamp_seconds{%(sel)s} > 0)'),
          lib.tableQuery('max by (source, target, state) (lagwatch_path_state{%(sel)s} == 1)'),
        ],
        runbooks=['LagwatchLagAboveObjective', 'LagwatchPathNotConverging'],
        sortBy='State',
        hide=['Value #G'],
        order={ source: 0, target: 1, state: 2 },
        rename={
          'Value #A': 'Last lag',
          'Value #B': '± uncertainty',
          'Value #C': 'Staleness',
          'Value #D': 'Objective',
          'Value #E': 'In flight',
          'Value #F': 'Since last convergence',
          state: 'State',
        },
      )
      + lib.column('In flight', { unit: 'short' })
      + lib.stateColumn('State', lib.states.path),
      lib.bargauge(
        'Staleness ÷ objective',
        'percentunit',
        "Each path's staleness (age of the oldest sentinel not yet seen at the target) as a share of its lag objective. Above 100% the target is behind its objective right now, whether the path is slow or stuck.",
        [
          lib.target('max by (source, target) (lagwatch_staleness_seconds{%(sel)s}) / max by (source, target) (lagwatch_lag_objective_seconds{%(sel)s})', '{{source}} → {{target}}'),
        ],
        runbooks=['LagwatchLagAboveObjective', 'LagwatchPathNotConverging'],
        steps=['green', [0.8, 'orange'], [1, 'red']],
        max=1.5,
      ),
      lib.timeseries(
        'Staleness and objective',
        's',
        "Age of the oldest sentinel not yet seen at each path's target (0 when none is pending); it rises in real time while a path is stuck. Dashed: the path's objective.",
        [
          lib.target('max by (source, target) (lagwatch_staleness_seconds{%(sel)s})', '{{source}} → {{target}}'),
          lib.target('max by (source, target) (lagwatch_lag_objective_seconds{%(sel)s})', '{{source}} → {{target}} objective'),
        ],
        runbooks=['LagwatchLagAboveObjective', 'LagwatchPathNotConverging'],
        w=16,
      )
      + lib.dashedRed('.* objective$'),
      lib.row('Platform says'),
      lib.table(
        'Platform says now',
        's',
        "One row per path with platform_status: (the platform's own status surface, read every interval, 60s by default), judged beside the path's sentinels. Verdict (lagwatch_status_verdict): agree (sentinels arrive and the platform says healthy with a sync no older than them), explained (a sentinel unseen past the objective, and the platform reports an error, a pause, not running, or no sync since the write), healthy_but_stuck (a sentinel unseen past the objective, while the platform says healthy and claims a sync grace or more after that sentinel's write), watermark_passed_canary_missing (a sentinel unseen past the objective whose row version the platform's watermark has passed), status_stale (sentinels arrive, but the platform reports an error, a pause or not running, or its last sync is older than a sentinel that had already arrived), unknown (no claim yet, the last read failed, or a state lagwatch cannot map). Surface and its state as lagwatch maps the platform's claim (lagwatch_platform_state: healthy, error, paused, not_running, unknown; no state before the first successful read), the age of the last sync the platform claims (on lagwatch's clock, after the system's clock offset), its watermark where the surface has one (a row version), and the failed reads of the surface over the time range. The platform's own words and lagwatch's reasoning are at /api/v1/paths (platform) and on the status page. Empty without platform_status on any path. Click a row to open that path's dashboard.",
        [
          lib.tableQuery('max by (source, target, verdict) (lagwatch_status_verdict{%(sel)s} == 1)'),
          lib.tableQuery('max by (source, target, surface, state) (lagwatch_platform_state{%(sel)s} == 1)'),
          lib.tableQuery('time() - max by (source, target) (lagwatch_platform_last_sync_timestamp_seconds{%(sel)s})'),
          lib.tableQuery('max by (source, target) (lagwatch_platform_watermark{%(sel)s})'),
          lib.tableQuery('sum by (source, target) (increase(lagwatch_platform_status_errors_total{%(sel)s}[$__range]))'),
        ],
        runbooks=[
          'LagwatchPlatformHealthyButStuck',
          'LagwatchPlatformStatusStale',
          'LagwatchPlatformStatusUnreadable',
        ],
        sortBy='Verdict',
        hide=['Value #A', 'Value #B'],
        order={ source: 0, target: 1, verdict: 2, surface: 3, state: 4 },
        rename={
          verdict: 'Verdict',
          surface: 'Surface',
          state: 'Platform state',
          'Value #C': "Since the platform's last sync",
          'Value #D': 'Watermark',
          'Value #E': 'Reads failed',
        },
      )
      + lib.stateColumn('Verdict', lib.states.verdict)
      + lib.stateColumn('Platform state', lib.states.platform)
      + lib.column('Surface', { unit: 'string' })
      + lib.column('Watermark', { unit: 'none' })
      + lib.column('Reads failed', { unit: 'short' }),
      lib.stateTimeline(
        'Verdict per path',
        "The status verdict of each path with platform_status: over time (lagwatch_status_verdict, one verdict at 1, coded here 1 to 6 for the timeline): agree (sentinels arrive and the platform says healthy with a sync no older than them), explained (a sentinel unseen past the objective, and the platform reports an error, a pause, not running, or no sync since the write), healthy_but_stuck (a sentinel unseen past the objective, while the platform says healthy and claims a sync grace or more after that sentinel's write), watermark_passed_canary_missing (a sentinel unseen past the objective whose row version the platform's watermark has passed), status_stale (sentinels arrive, but the platform reports an error, a pause or not running, or its last sync is older than a sentinel that had already arrived), unknown (no claim yet, the last read failed, or a state lagwatch cannot map). healthy_but_stuck and watermark_passed_canary_missing for 5m page (LagwatchPlatformHealthyButStuck); status_stale for 30m opens a ticket (LagwatchPlatformStatusStale); explained is named in the lag alerts' descriptions.",
        [
          lib.target(lib.coded('lagwatch_status_verdict', 'verdict', lib.states.verdict, 'sel', by='instance, source, target'), '{{source}} → {{target}}'),
        ],
        runbooks=['LagwatchPlatformHealthyButStuck', 'LagwatchPlatformStatusStale'],
        mappings=lib.codedMappings,
        w=12,
      ),
      lib.stateTimeline(
        'Platform state per path',
        "What each path's platform status surface says over time, as lagwatch maps the claim (lagwatch_platform_state, coded 10 to 15 for the timeline): healthy (syncing without error: Synapse Link's InProgress, a Created Delta table, an indexer whose last run succeeded), error (a failed table or run), paused (a paused profile, table or map), not_running (never started, deleted, initialising, or no runs at all), unknown (an answer lagwatch cannot map, exported raw at /api/v1/paths), not read yet (no successful read since lagwatch started).",
        [
          lib.target(lib.coded('lagwatch_platform_state', 'state', lib.states.platform, 'sel', by='instance, source, target, surface', base=10), '{{source}} → {{target}}: {{surface}}'),
        ],
        runbooks=['LagwatchPlatformHealthyButStuck'],
        mappings=lib.codedMappings,
        w=12,
      ),
      lib.timeseries(
        "Age of the platform's last sync",
        's',
        "time() - lagwatch_platform_last_sync_timestamp_seconds per path: how long ago the platform says it last synced (a lake file written, a Delta conversion, an indexer run, a search refresh), on lagwatch's clock (the platform's time minus the system's measured clock offset). For Elasticsearch, which counts refreshes instead of timing them, the read at which lagwatch saw the count grow. A sawtooth at the platform's schedule is normal; a line that keeps rising while sentinels arrive is status_stale, while they do not, compare with the verdict.",
        [
          lib.target('time() - max by (source, target, surface) (lagwatch_platform_last_sync_timestamp_seconds{%(sel)s})', '{{source}} → {{target}}: {{surface}}'),
        ],
        runbooks=['LagwatchPlatformStatusStale'],
      )
      + lib.custom({
        fillOpacity: 0,
        stacking:: null,
      }),
      lib.timeseries(
        'Platform status reads failed, by kind',
        'short',
        "Failed reads of each path's platform status surface per interval (lagwatch_platform_status_errors_total): auth (grant the permission docs/platform-status.md names for the surface), bad_response (an answer lagwatch cannot read: a wrong name, a changed shape), transport, unavailable, timeout, throttled. A failed read leaves the verdict unknown and never changes a probe; each is a WARN log line naming the surface and the request. LagwatchPlatformStatusUnreadable fires while no read has succeeded since start-up.",
        [
          lib.target('sum by (source, target, surface, kind) (increase(lagwatch_platform_status_errors_total{%(sel)s}[$__rate_interval]))', '{{source}} → {{target}}: {{surface}} {{kind}}'),
        ],
        runbooks=['LagwatchPlatformStatusUnreadable'],
        style='bars',
      ),
      lib.row('Lag'),
      lib.timeseries(
        'Lag p50 per path',
        's',
        'p50 of the lag of sentinels that converged on each path (lagwatch_lag_seconds histogram, interpolated within its buckets). Empty where no sentinel converged in the interval.',
        [
          lib.target('histogram_quantile(0.5, sum by (source, target, le) (rate(lagwatch_lag_seconds_bucket{%(sel)s}[$__rate_interval])))', '{{source}} → {{target}}'),
        ],
        runbooks=['LagwatchLagAboveObjective'],
        w=8,
      ),
      lib.timeseries(
        'Lag p95 per path',
        's',
        'p95 of the lag of sentinels that converged on each path (lagwatch_lag_seconds histogram, interpolated within its buckets). Empty where no sentinel converged in the interval.',
        [
          lib.target('histogram_quantile(0.95, sum by (source, target, le) (rate(lagwatch_lag_seconds_bucket{%(sel)s}[$__rate_interval])))', '{{source}} → {{target}}'),
        ],
        runbooks=['LagwatchLagAboveObjective'],
        w=8,
      ),
      lib.timeseries(
        'Lag p99 per path',
        's',
        'p99 of the lag of sentinels that converged on each path (lagwatch_lag_seconds histogram, interpolated within its buckets). Empty where no sentinel converged in the interval.',
        [
          lib.target('histogram_quantile(0.99, sum by (source, target, le) (rate(lagwatch_lag_seconds_bucket{%(sel)s}[$__rate_interval])))', '{{source}} → {{target}}'),
        ],
        runbooks=['LagwatchLagAboveObjective'],
        w=8,
      ),
      lib.timeseries(
        'Lag p95 ÷ objective per path',
        'short',
        "Each path's p95 lag over the interval divided by its own objective, so paths measured in seconds and in hours share one scale: above 1 the path misses its objective for more than 5 % of its sentinels. Lag buckets are multiples of the objective (1/8 to 4), so the quantile is sharp around 1; beyond 4 it stays at 4.",
        [
          lib.target('histogram_quantile(0.95, sum by (source, target, le) (rate(lagwatch_lag_seconds_bucket{%(sel)s}[$__rate_interval]))) / on (source, target) max by (source, target) (lagwatch_lag_objective_seconds{%(sel)s})', '{{source}} → {{target}}'),
        ],
        runbooks=['LagwatchLagAboveObjective'],
        w=24,
      )
      + lib.custom({
        fillOpacity: 0,
        thresholdsStyle: { mode: 'line' },
      })
      + lib.defaults({ thresholds: lib.thresholds(['green', [1, 'red']]) }),
      lib.row('Convergence and correctness'),
      lib.timeseries(
        'Convergence success ratio',
        'percentunit',
        'Share of resolved probes that converged, per path: converged ÷ all outcomes (timeout, mismatch, error, halted). Gaps where no probe resolved in the interval. The SLO burn-rate alerts are built on this ratio (see the Runbooks link at the top).',
        [
          lib.target('sum by (source, target) (rate(lagwatch_probes_total{%(sel)s, outcome="converged"}[$__rate_interval])) / sum by (source, target) (rate(lagwatch_probes_total{%(sel)s}[$__rate_interval]))', '{{source}} → {{target}}'),
        ],
        runbooks=['LagwatchPathNotConverging', 'LagwatchObjectiveBudgetBurn'],
        min=null,
      ),
      lib.timeseries(
        'Probes not converged, by outcome',
        'short',
        'Resolved probes that did not converge, per interval: timeout (never seen), mismatch (seen with other content), error (only errors until the timeout), halted (missing from a synchronous target such as dual-write after its grace: the replication is not running).',
        [
          lib.target(lib.oneMember('source, target, outcome', 'increase(lagwatch_probes_total{%(sel)s, outcome!="converged"}[$__rate_interval])'), '{{source}} → {{target}} {{outcome}}'),
        ],
        runbooks=['LagwatchPathNotConverging', 'LagwatchDualWritePaused', 'LagwatchObjectiveBudgetBurn'],
        style='stacked',
      ),
      lib.timeseries(
        'Lookup errors by kind',
        'short',
        'Failed target lookups per interval by kind (throttled, auth, transport, unavailable, bad_response, timeout). No lag is ever derived from a failed lookup; a probe with only errors ends as error.',
        [
          lib.target('sum by (source, target, kind) (increase(lagwatch_lookup_errors_total{%(sel)s}[$__rate_interval]))', '{{source}} → {{target}} {{kind}}'),
        ],
        style='stacked',
        w=8,
      ),
      lib.timeseries(
        'Read-your-writes violations',
        'short',
        'Sentinels a source did not return when read right after it acknowledged the write, per interval.',
        [
          lib.target(lib.oneMember('source', 'increase(lagwatch_read_your_writes_violations_total{%(sel)s}[$__rate_interval])'), '{{source}}'),
        ],
        runbooks=['LagwatchReadYourWritesViolated'],
        style='bars',
        w=8,
      ),
      lib.timeseries(
        'Monotonic-read violations',
        'short',
        'Sentinels a target showed and then lost again within the confirmation window, per interval (replicated targets such as search replicas).',
        [
          lib.target(lib.oneMember('source, target', 'increase(lagwatch_monotonic_read_violations_total{%(sel)s}[$__rate_interval])'), '{{source}} → {{target}}'),
        ],
        style='bars',
        w=8,
      ),
      lib.timeseries(
        'Sentinel writes by outcome',
        'short',
        'Sentinel writes per source and interval: ok, error, throttled (not sent because the source was throttling: a gap in measurement, not a lag).',
        [
          lib.target('sum by (source, outcome) (increase(lagwatch_sentinel_writes_total{%(sel)s}[$__rate_interval]))', '{{source}} {{outcome}}'),
        ],
        runbooks=['LagwatchSentinelWritesFailing'],
        style='stacked',
        w=24,
        h=7,
      ),
      lib.row('Guarantees'),
      lib.timeseries(
        'Contract violations by guarantee',
        'short',
        "Measured violations of a consistency guarantee that the path's contract declares (contract: in the configuration, or its target kind's promise), per interval: monotonic_reads is a sentinel the target showed and a later read did not; deletes is a deleted sentinel still there after the declared time, or back after it had gone. Undeclared guarantees are not counted here (see Monotonic-read violations).",
        [
          lib.target(lib.oneMember('source, target, guarantee', 'increase(lagwatch_contract_violations_total{%(sel)s}[$__rate_interval])'), '{{source}} → {{target}}: {{guarantee}}'),
        ],
        runbooks=['LagwatchContractViolated'],
        style='bars',
        w=8,
      ),
      lib.bargauge(
        't-visibility: fresh reads by age',
        'percentunit',
        "Over the dashboard's time range, the share of target reads that saw the sentinel, per path and age of the read (seconds since the source acknowledged the write; each bar is one age bucket, ≤ its bound and above the one before). The probability that a reader sees a write that old: the path's visibility curve. Failed reads are not counted. Only the share per bucket means something: lagwatch reads young sentinels more often than old ones.",
        [
          lib.instant('sum by (source, target, age_le) (increase(lagwatch_reads_total{%(sel)s, result="fresh"}[$__range])) / sum by (source, target, age_le) (increase(lagwatch_reads_total{%(sel)s}[$__range]))', '{{source}} → {{target}} ≤ {{age_le}} s'),
        ],
        steps=['red', [0.5, 'orange'], [0.95, 'green']],
        max=1,
        w=16,
      ),
      lib.timeseries(
        'Delete lag p95 per path',
        's',
        "p95 of the delete lag: from a sentinel's delete acknowledgement to its absence at a target that had shown it (lagwatch_delete_lag_seconds, the midpoint estimate, interpolated within its buckets). Lake targets are not measured (their reader cannot see a delete yet). Empty where no delete arrived in the interval.",
        [
          lib.target('histogram_quantile(0.95, sum by (source, target, le) (rate(lagwatch_delete_lag_seconds_bucket{%(sel)s}[$__rate_interval])))', '{{source}} → {{target}}'),
        ],
        runbooks=['LagwatchDeletesNotPropagating'],
      ),
      lib.timeseries(
        'Deletes lost and resurrections',
        'short',
        "Deleted sentinels still at the target at the end of the delete window (lost: contract.deletes, else the path's timeout) and deleted sentinels shown again after a read found them gone (resurrected), per interval. Each is a WARN log line naming the sentinel.",
        [
          lib.target(lib.oneMember('source, target', 'increase(lagwatch_deletes_lost_total{%(sel)s}[$__rate_interval])'), '{{source}} → {{target}}: lost'),
          lib.target(lib.oneMember('source, target', 'increase(lagwatch_resurrections_total{%(sel)s}[$__rate_interval])'), '{{source}} → {{target}}: resurrected'),
        ],
        runbooks=['LagwatchDeletesNotPropagating'],
        style='bars',
      ),
      lib.timeseries(
        'Update canary: versions behind (p95)',
        'short',
        "k-staleness: how many versions of the source group's update canary, acknowledged before a read, were newer than the version the read at the target returned (lagwatch_version_staleness; 0: the latest). Paths without a canary (a source that cannot update, a lake target) have none.",
        [
          lib.target('histogram_quantile(0.95, sum by (source, target, le) (rate(lagwatch_version_staleness_bucket{%(sel)s}[$__rate_interval])))', '{{source}} → {{target}}'),
        ],
      ),
      lib.timeseries(
        'Update canary: time stale (p95)',
        's',
        'Time staleness: for a canary read that returned an older version, how long before the read the next version had been acknowledged (lagwatch_time_staleness_seconds).',
        [
          lib.target('histogram_quantile(0.95, sum by (source, target, le) (rate(lagwatch_time_staleness_seconds_bucket{%(sel)s}[$__rate_interval])))', '{{source}} → {{target}}'),
        ],
      ),
      lib.timeseries(
        'Causal violations per path',
        'short',
        "Causal pairs whose child a read showed without its parent, per path and certainty (lagwatch_causal_violations_total; certain: one read answered for both keys, suspected: each key read in turn). A path that declares causal pages (LagwatchContractViolated). Each pair is in lagwatch's /api/v1/pairs.",
        [
          lib.target(lib.oneMember('source, target, certainty', 'increase(lagwatch_causal_violations_total{%(sel)s}[$__rate_interval])'), '{{source}} → {{target}} ({{certainty}})'),
        ],
        runbooks=['LagwatchContractViolated'],
      ),
      lib.timeseries(
        'Causal gap p95 per path',
        's',
        "For ordered causal pairs, the 95th percentile of how long after the parent's first sighting the child was first seen, per path (lagwatch_causal_gap_seconds).",
        [
          lib.target('histogram_quantile(0.95, sum by (source, target, le) (rate(lagwatch_causal_gap_seconds_bucket{%(sel)s}[$__rate_interval])))', '{{source}} → {{target}}'),
        ],
      ),
      lib.timeseries(
        'Order inversions, lost updates and versions',
        'short',
        'Order inversions: sentinels a target that applies writes in order (the lake kinds) showed while one written earlier on the path was missing from the same read (lagwatch_order_inversions_total). Lost updates: versions of the update canary the target had not reached a path timeout after they were acknowledged (lagwatch_updates_lost_total; paths with an update canary only). Versions lost and duplicated: on a change log (a lake of incremental update folders), canary versions never shown as a row of their own within the path timeout, and rows repeating a version already shown (lagwatch_versions_lost_total, lagwatch_versions_duplicated_total; updates: every). The WARN logs name the sentinel or the canary.',
        [
          lib.target(lib.oneMember('source, target', 'increase(lagwatch_order_inversions_total{%(sel)s}[$__rate_interval])'), '{{source}} → {{target}}: order inversions'),
          lib.target(lib.oneMember('source, target', 'increase(lagwatch_updates_lost_total{%(sel)s}[$__rate_interval])'), '{{source}} → {{target}}: updates lost'),
          lib.target(lib.oneMember('source, target', 'increase(lagwatch_versions_lost_total{%(sel)s}[$__rate_interval])'), '{{source}} → {{target}}: versions lost'),
          lib.target(lib.oneMember('source, target', 'increase(lagwatch_versions_duplicated_total{%(sel)s}[$__rate_interval])'), '{{source}} → {{target}}: versions duplicated'),
        ],
        runbooks=['LagwatchContractViolated'],
        w=24,
        h=7,
      ),
      lib.row('Throttling and request budget'),
      lib.timeseries(
        'Throttling responses (429)',
        'short',
        'HTTP 429 answers per system and interval. Each pauses every call to that system until its Retry-After has passed.',
        [
          lib.target('sum by (system) (increase(lagwatch_throttled_total{%(sel)s}[$__rate_interval]))', '{{system}}'),
        ],
        runbooks=['LagwatchSourceThrottled'],
        style='bars',
        w=8,
      ),
      lib.timeseries(
        'Request budget used',
        'percentunit',
        "Share of each system's request budget (limits.requests per limits.per) used in the current window. At 100% reads wait for budget, which stretches poll schedules (never lag).",
        [
          lib.target('max by (system) (lagwatch_request_budget_used_ratio{%(sel)s})', '{{system}}'),
        ],
        runbooks=['LagwatchSourceThrottled'],
        w=8,
      )
      + lib.custom({
        thresholdsStyle: { mode: 'dashed' },
      })
      + lib.defaults({ thresholds: lib.thresholds(['green', [0.8, 'orange'], [1, 'red']]) }),
      lib.timeseries(
        'Time spent waiting for admission',
        'short',
        'Seconds per second that calls to each system spent waiting for a throttling pause, the request budget or a concurrency slot, summed over concurrent calls (2 = two calls waiting all the time). Waiting happens before a measurement starts.',
        [
          lib.target('sum by (system) (rate(lagwatch_throttle_wait_seconds_total{%(sel)s}[$__rate_interval]))', '{{system}}'),
        ],
        w=8,
      ),
      lib.timeseries(
        'Requests by status',
        'reqps',
        'Requests per second to each monitored system by status class (2xx, 4xx, 5xx, transport_error). Also requests never sent because no Entra ID token could be had (lagwatch_token_errors_total): the token endpoint, not the system, is failing.',
        [
          lib.target('sum by (system, status) (rate(lagwatch_requests_total{%(sel)s}[$__rate_interval]))', '{{system}} {{status}}'),
          lib.target('sum by (system, kind) (rate(lagwatch_token_errors_total{%(sel)s}[$__rate_interval]))', '{{system}} no token ({{kind}})'),
        ],
      ),
      lib.timeseries(
        'Mean request duration',
        's',
        "Mean duration of requests per system: time spent in requests over requests answered (lagwatch_request_seconds_total over lagwatch_requests_total; one series per system keeps /metrics small). The duration of every read of every probe is in lagwatch's /api/v1/probes.",
        [
          lib.target('sum by (system) (rate(lagwatch_request_seconds_total{%(sel)s}[$__rate_interval])) / sum by (system) (rate(lagwatch_requests_total{%(sel)s}[$__rate_interval]))', '{{system}}'),
        ],
      ),
      lib.row('Clocks'),
      lib.timeseries(
        'Clock offsets',
        's',
        "Each HTTP system's clock minus lagwatch's, from the Date headers of its answers (NTP-style bounds over recent exchanges; 0 until measured). Dotted: half-width of the bounds. Offsets skew the apply lag of lake targets, never the measured lag.",
        [
          lib.target('lagwatch_clock_offset_seconds{%(sel)s}', '{{system}}'),
          lib.target('lagwatch_clock_offset_uncertainty_seconds{%(sel)s}', '{{system}} ± uncertainty'),
        ],
        runbooks=['LagwatchClockOffsetHigh'],
        min=null,
        w=24,
        h=7,
      )
      + lib.dotted('.* uncertainty$'),
      lib.row('Conflicts (linked systems)'),
      lib.timeseries(
        'Conflict probe outcomes',
        'short',
        "Conflict probes per pair of systems linked both ways (conflicts: in the configuration) and outcome, per interval: converged_same (both sides ended on one value, the one the declared policy predicts, or either when it cannot tell), diverged (the two sides still held different values at the timeout: a permanent inconsistency, LagwatchReplicasDiverged pages), policy_violated (they agreed on the value the policy says should have lost: a lost update, LagwatchConflictPolicyViolated), rejected (one of the two updates refused with a conflict error, as synchronous dual-write does; not a divergence), error (a write or read failed). Each probe's values, stamps and canary id: /api/v1/conflicts on the lagwatch instance.",
        [
          lib.target(lib.oneMember('a, b, outcome', 'increase(lagwatch_conflict_probes_total{%(sel)s}[$__rate_interval])'), '{{a}} ↔ {{b}}: {{outcome}}'),
        ],
        runbooks=['LagwatchReplicasDiverged', 'LagwatchConflictPolicyViolated'],
        style='stacked',
        w=8,
      )
      + lib.colored('.*: converged_same$', 'green')
      + lib.colored('.*: diverged$', 'red')
      + lib.colored('.*: policy_violated$', 'orange')
      + lib.colored('.*: rejected$', 'blue')
      + lib.colored('.*: error$', 'purple'),
      lib.timeseries(
        'Conflict time to agreement (p50, p95)',
        's',
        "From the later of a probe's two acknowledged updates until both sides showed the same value, per pair (lagwatch_conflict_agreement_seconds, interpolated within its buckets). A point only where a probe agreed in the interval: one probe per pair every interval of its conflicts: entry. Rising towards the probe's timeout, the link is getting slower; probes past it end diverged.",
        [
          lib.target('histogram_quantile(0.5, sum by (a, b, le) (rate(lagwatch_conflict_agreement_seconds_bucket{%(sel)s}[$__rate_interval])))', '{{a}} ↔ {{b}} p50'),
          lib.target('histogram_quantile(0.95, sum by (a, b, le) (rate(lagwatch_conflict_agreement_seconds_bucket{%(sel)s}[$__rate_interval])))', '{{a}} ↔ {{b}} p95'),
        ],
        runbooks=['LagwatchReplicasDiverged'],
        w=8,
      )
      + lib.custom({
        showPoints: 'always',
      }),
      lib.timeseries(
        'Clock skew between linked systems',
        's',
        "Clock of a minus clock of b at each pair's last conflict probe (lagwatch_conflict_skew_seconds, from the per-system offsets in Clock offsets above, each known only to within its uncertainty). Under last_writer_wins, a skew larger than the pair's configured spread lets the earlier of two updates win (policy_violated).",
        [
          lib.target('lagwatch_conflict_skew_seconds{%(sel)s}', '{{a}} − {{b}}'),
        ],
        runbooks=['LagwatchConflictPolicyViolated'],
        min=null,
        w=8,
      ),
      lib.row('Analytics lake'),
      lib.timeseries(
        'Lake data age',
        's',
        "Time since each lake target's newest data: its newest complete incremental folder (synapse_link_csv), newest partition file (table layout) or newest commit (delta). A line that only climbs means the export has stopped.",
        [
          lib.target('time() - max by (target) (lagwatch_lake_last_folder_timestamp_seconds{%(sel)s} > 0)', '{{target}}'),
        ],
        runbooks=['LagwatchLakeStale'],
        w=8,
      ),
      lib.timeseries(
        'Apply lag vs observed lag (p50)',
        's',
        "Per lake path, the median apply lag (the lake's own SinkCreatedOn minus the write time, on the source's clock) next to the median lag lagwatch observed. The difference is what the export's folder or commit cadence and lagwatch's polling add on top of the pipeline.",
        [
          lib.target('histogram_quantile(0.5, sum by (source, target, le) (rate(lagwatch_apply_lag_seconds_bucket{%(sel)s}[$__rate_interval])))', '{{source}} → {{target}} apply'),
          lib.target('histogram_quantile(0.5, sum by (source, target, le) (rate(lagwatch_lag_seconds_bucket{%(sel)s}[$__rate_interval]) and on (job, instance, source, target) rate(lagwatch_apply_lag_seconds_count{%(sel)s}[$__rate_interval])))', '{{source}} → {{target}} observed'),
        ],
        runbooks=['LagwatchLagAboveObjective', 'LagwatchLakeStale'],
        w=16,
      ),
      lib.timeseries(
        'Lake bytes read',
        'Bps',
        'Bytes per second read from each lake target (change logs, manifests, transaction logs, data files): the cost of its polls.',
        [
          lib.target('sum by (target) (rate(lagwatch_lake_bytes_read_total{%(sel)s}[$__rate_interval]))', '{{target}}'),
        ],
        h=7,
      ),
      lib.timeseries(
        'Lake objects listed',
        'cps',
        'Folders and files listed per second while scanning each lake target.',
        [
          lib.target('sum by (target) (rate(lagwatch_lake_objects_listed_total{%(sel)s}[$__rate_interval]))', '{{target}}'),
        ],
        h=7,
      ),
      lib.row('Reconciliation'),
      lib.table(
        'Reconciliations now',
        'short',
        "One row per reconciliation (source → target, table = the reconciliation's name), from its last run. Missing, Extra, Stale, Mismatched: persistent discrepancies of each kind, keys that differed in this run and the previous one, past the settle window: data drift (missing (in the source, not in the replica), extra (in the replica, gone from the source), stale (the replica holds an older version), mismatched (same version, different content: a transformation or mapping)). Transient: keys that differed for the first time. Unsettled: keys that differ but changed inside the settle window (in flight, not judged). No success for: time since the last successful run, or since lagwatch started if none has succeeded since (LagwatchReconcileFailing fires above 3 × Interval). Settle window: the one the last run used, the larger of settle_floor and 2 × the path's recent p99 lag. The keys: /api/v1/discrepancies?source=…&target=…&table=…&kind=… on the lagwatch instance. Click a row to open that path's dashboard.",
        [
          lib.tableQuery('max by (source, target, table) (lagwatch_discrepancies{%(sel)s, kind="missing", persistence="persistent"})'),
          lib.tableQuery('max by (source, target, table) (lagwatch_discrepancies{%(sel)s, kind="extra", persistence="persistent"})'),
          lib.tableQuery('max by (source, target, table) (lagwatch_discrepancies{%(sel)s, kind="stale", persistence="persistent"})'),
          lib.tableQuery('max by (source, target, table) (lagwatch_discrepancies{%(sel)s, kind="mismatched", persistence="persistent"})'),
          lib.tableQuery('max by (source, target, table) (sum without (kind) (lagwatch_discrepancies{%(sel)s, persistence="transient"}))'),
          lib.tableQuery('max by (source, target, table) (lagwatch_reconcile_unsettled{%(sel)s})'),
          lib.tableQuery('time() - max by (source, target, table) (((lagwatch_reconcile_last_success_timestamp_seconds{%(sel)s} > 0) or (lagwatch_reconcile_last_success_timestamp_seconds{%(sel)s} == 0) + on (job, instance) group_left process_start_time_seconds{%(sel)s}))'),
          lib.tableQuery('max by (source, target, table) (lagwatch_reconcile_interval_seconds{%(sel)s})'),
          lib.tableQuery('max by (source, target, table) (lagwatch_reconcile_settle_window_seconds{%(sel)s})'),
        ],
        runbooks=['LagwatchDiscrepanciesPersisting', 'LagwatchReconcileFailing'],
        sortBy='Missing',
        desc=true,
        order={ source: 0, target: 1, table: 2 },
        rename={
          'Value #A': 'Missing',
          'Value #B': 'Extra',
          'Value #C': 'Stale',
          'Value #D': 'Mismatched',
          'Value #E': 'Transient',
          'Value #F': 'Unsettled',
          'Value #G': 'No success for',
          'Value #H': 'Interval',
          'Value #I': 'Settle window',
        },
      )
      + lib.column('Missing', { 'custom.cellOptions': { type: 'color-text' }, thresholds: lib.thresholds(['green', [1, 'red']]) })
      + lib.column('Extra', { 'custom.cellOptions': { type: 'color-text' }, thresholds: lib.thresholds(['green', [1, 'red']]) })
      + lib.column('Stale', { 'custom.cellOptions': { type: 'color-text' }, thresholds: lib.thresholds(['green', [1, 'red']]) })
      + lib.column('Mismatched', { 'custom.cellOptions': { type: 'color-text' }, thresholds: lib.thresholds(['green', [1, 'red']]) })
      + lib.column('Transient', { 'custom.cellOptions': { type: 'color-text' }, thresholds: lib.thresholds(['green', [1, 'orange']]) })
      + lib.column('No success for', { unit: 's' })
      + lib.column('Interval', { unit: 's' })
      + lib.column('Settle window', { unit: 's' }),
      lib.timeseries(
        'Persistent discrepancies',
        'short',
        'Keys that differed between the source and the replica in two consecutive runs, past the settle window, by kind: missing (in the source, not in the replica), extra (in the replica, gone from the source), stale (the replica holds an older version), mismatched (same version, different content: a transformation or mapping). The count changes only when a run ends. LagwatchDiscrepanciesPersisting fires when a line stays above 0 for 30 minutes.',
        [
          lib.target('max by (source, target, table, kind) (lagwatch_discrepancies{%(sel)s, persistence="persistent"})', '{{source}} → {{target}} {{table}} {{kind}}'),
        ],
        runbooks=['LagwatchDiscrepanciesPersisting'],
        style='steps',
        w=8,
      ),
      lib.timeseries(
        'Unsettled and new discrepancies',
        'short',
        'Unsettled: keys that differ but changed inside the settle window, in flight and not judged. Transient: keys past the settle window that differed for the first time; they become persistent if the next run finds them again.',
        [
          lib.target('max by (source, target, table) (lagwatch_reconcile_unsettled{%(sel)s})', '{{source}} → {{target}} {{table}} unsettled'),
          lib.target('max by (source, target, table, kind) (lagwatch_discrepancies{%(sel)s, persistence="transient"})', '{{source}} → {{target}} {{table}} {{kind}} transient'),
        ],
        runbooks=['LagwatchDiscrepanciesPersisting'],
        style='steps',
        w=8,
      ),
      lib.timeseries(
        'Keys healed',
        'short',
        'Keys that were discrepant in the previous run and agree now, per interval, by kind: repaired by hand, or replicated late.',
        [
          lib.target(lib.oneMember('source, target, table, kind', 'increase(lagwatch_discrepancies_healed_total{%(sel)s}[$__rate_interval])'), '{{source}} → {{target}} {{table}} {{kind}}'),
        ],
        style='stacked',
        w=8,
      ),
      lib.timeseries(
        'Reconciliation runs by outcome',
        'short',
        'Finished reconciliation runs per interval: success or error. No bar at all for several intervals means runs hang or outlast their interval.',
        [
          lib.target(lib.oneMember('source, target, table, outcome', 'increase(lagwatch_reconcile_runs_total{%(sel)s}[$__rate_interval])'), '{{source}} → {{target}} {{table}} {{outcome}}'),
        ],
        runbooks=['LagwatchReconcileFailing'],
        style='stacked',
        w=8,
      ),
      lib.timeseries(
        'Run duration',
        's',
        'Mean duration of the runs that finished in each interval (one run: its duration); empty between runs. Dashed: the configured interval between runs, which a run should stay well below.',
        [
          lib.target('sum by (source, target, table) (increase(lagwatch_reconcile_duration_seconds_sum{%(sel)s}[$__rate_interval])) / sum by (source, target, table) (increase(lagwatch_reconcile_duration_seconds_count{%(sel)s}[$__rate_interval]))', '{{source}} → {{target}} {{table}}'),
          lib.target('max by (source, target, table) (lagwatch_reconcile_interval_seconds{%(sel)s})', '{{source}} → {{target}} {{table}} interval'),
        ],
        w=8,
      )
      + lib.custom({
        showPoints: 'always',
        spanNulls: true,
      })
      + lib.dashedRed('.* interval$'),
      lib.timeseries(
        'Keys compared',
        'short',
        "Keys compared by reconciliation runs per interval (both sides merged by key): the size of each run's scope.",
        [
          lib.target(lib.oneMember('source, target, table', 'increase(lagwatch_reconcile_rows_compared_total{%(sel)s}[$__rate_interval])'), '{{source}} → {{target}} {{table}}'),
        ],
        style='bars',
        w=8,
      ),
      lib.timeseries(
        'Time without a successful run',
        's',
        "Time since each reconciliation's last successful run, or since lagwatch started if none has succeeded since; it falls to 0 at each success. Dashed: 3 × the interval, above which LagwatchReconcileFailing fires.",
        [
          lib.target('time() - max by (source, target, table) (((lagwatch_reconcile_last_success_timestamp_seconds{%(sel)s} > 0) or (lagwatch_reconcile_last_success_timestamp_seconds{%(sel)s} == 0) + on (job, instance) group_left process_start_time_seconds{%(sel)s}))', '{{source}} → {{target}} {{table}}'),
          lib.target('3 * max by (source, target, table) (lagwatch_reconcile_interval_seconds{%(sel)s})', '{{source}} → {{target}} {{table}} 3 × interval'),
        ],
        runbooks=['LagwatchReconcileFailing'],
      )
      + lib.dashedRed('.* 3 × interval$'),
      lib.timeseries(
        'Settle window',
        's',
        "The settle window each reconciliation's last run used: the larger of its settle_floor and 2 × the path's recent p99 lag from the probes. Keys that changed more recently are unsettled, not judged; it grows when the path slows down.",
        [
          lib.target('max by (source, target, table) (lagwatch_reconcile_settle_window_seconds{%(sel)s})', '{{source}} → {{target}} {{table}}'),
        ],
        style='steps',
      ),
      lib.row('lagwatch itself'),
      lib.stat(
        'lagwatch up',
        'none',
        'Whether Prometheus could scrape each lagwatch instance (the up series of its scrape job).',
        [
          lib.target('up{%(sel)s}', '{{instance}}'),
        ],
        runbooks=['LagwatchDown'],
        graph=false,
      )
      + lib.boolean('DOWN', 'UP'),
      lib.stat(
        'Version',
        'none',
        'Version and source revision of each running lagwatch (lagwatch_build_info).',
        [
          lib.target('lagwatch_build_info{%(sel)s}', '{{version}} ({{revision}})'),
        ],
        graph=false,
      )
      + {
        options+: {
          textMode: 'name',
        },
      },
      lib.stat(
        'Uptime',
        's',
        'Time since each lagwatch process started.',
        [
          lib.target('time() - process_start_time_seconds{%(sel)s}', '{{instance}}'),
        ],
        graph=false,
      ),
      lib.timeseries(
        'CPU',
        'percentunit',
        'CPU time used per second by each lagwatch process (100% = one core).',
        [
          lib.target('rate(process_cpu_seconds_total{%(sel)s}[$__rate_interval])', '{{instance}}'),
        ],
        w=6,
        h=5,
      ),
      lib.timeseries(
        'Resident memory',
        'bytes',
        'Resident memory of each lagwatch process.',
        [
          lib.target('process_resident_memory_bytes{%(sel)s}', '{{instance}}'),
        ],
        w=6,
        h=5,
      ),
      lib.timeseries(
        'Sentinels in flight',
        'short',
        'Sentinels written (or being written) and not yet resolved, per path; capped by max_in_flight.',
        [
          lib.target(lib.oneMember('source, target', 'lagwatch_probes_in_flight{%(sel)s}'), '{{source}} → {{target}}'),
        ],
        w=8,
        h=7,
      ),
      lib.timeseries(
        'Writes skipped',
        'short',
        'Sentinel writes skipped per interval because max_in_flight sentinels were already pending on the path (a slow or stuck target, or too short an interval).',
        [
          lib.target(lib.oneMember('source, target', 'increase(lagwatch_probes_skipped_total{%(sel)s}[$__rate_interval])'), '{{source}} → {{target}}'),
        ],
        style='bars',
        w=8,
        h=7,
      ),
      lib.timeseries(
        'Sentinel deletes failing and owed',
        'short',
        'Bars: failed sentinel deletions (cleanup, owed-delete retries and start-up sweep) per source and interval. Line: deletes still owed (lagwatch_sentinel_deletes_owed), sentinel records sitting in the source until a retry succeeds; a line that only rises is LagwatchSentinelsPilingUp.',
        [
          lib.target('sum by (source) (increase(lagwatch_sentinel_deletes_total{%(sel)s, outcome="error"}[$__rate_interval]))', '{{source}}'),
          lib.target('sum by (source) (lagwatch_sentinel_deletes_owed{%(sel)s})', '{{source}} owed'),
        ],
        style='bars',
        w=8,
        h=7,
      )
      + lib.overrides([{
        matcher: { id: 'byFrameRefID', options: 'B' },
        properties: [
          { id: 'custom.drawStyle', value: 'line' },
          { id: 'custom.fillOpacity', value: 0 },
          { id: 'custom.lineWidth', value: 2 },
        ],
      }]),
      lib.stateTimeline(
        'Systems answering',
        'lagwatch_system_up per monitored system: 1 when its last request got an answer below HTTP 500, 0 after a transport error, a 5xx or a request abandoned at its deadline. A system at 0 explains lookup errors and missing probes on every path that uses it.',
        [
          lib.target('max by (system) (lagwatch_system_up{%(sel)s})', '{{system}}'),
        ],
        h=6,
      )
      + lib.defaults({ color: { mode: 'thresholds' }, thresholds: lib.thresholds(['red', [1, 'green']]), min: 0, max: 1 })
      + {
        options+: {
          showValue: 'never',
        },
      },
      lib.stat(
        'Last config reload',
        'none',
        'lagwatch_config_last_reload_successful: OK when the last reload of the configuration file (SIGHUP or POST /-/reload) succeeded or none was tried, REJECTED when the file was invalid and the previous configuration still runs (the log names file, key and reason).',
        [
          lib.target('lagwatch_config_last_reload_successful{%(sel)s}', '{{instance}}'),
        ],
        runbooks=['LagwatchConfigReloadFailed'],
        graph=false,
        w=8,
      )
      + lib.boolean('REJECTED', 'OK'),
      lib.stat(
        'Configuration in force for',
        's',
        'Time since the running configuration was loaded (lagwatch_config_last_reload_success_timestamp_seconds): start-up or the last accepted reload.',
        [
          lib.target('time() - lagwatch_config_last_reload_success_timestamp_seconds{%(sel)s}', '{{instance}}'),
        ],
        graph=false,
        w=8,
      ),
      lib.stat(
        'Probe ledger',
        'none',
        'lagwatch_ledger_up: whether the probe ledger (state_dir/ledger.sqlite) persists the sentinels in flight, so a restart resumes them. FAILING: it could not be opened or written (disk full, permissions, corrupt file); probing goes on without resume and /readyz says why. No value: no state_dir configured.',
        [
          lib.target('lagwatch_ledger_up{%(sel)s}', '{{instance}}'),
        ],
        runbooks=['LagwatchLedgerDown'],
        graph=false,
        w=8,
      )
      + lib.boolean('FAILING', 'OK'),
      lib.stat(
        'Instance name',
        'none',
        'lagwatch_instance_conflict: CONFLICT while sentinels under this member\'s instance name show up in a source that this process did not write (another live process uses the same name: each must have its own); OK otherwise. The WARN log line names the source and a foreign sentinel.',
        [
          lib.target('lagwatch_instance_conflict{%(sel)s}', '{{instance}}'),
        ],
        runbooks=['LagwatchInstanceConflict'],
        graph=false,
        w=8,
      )
      + lib.defaults({
        thresholds: lib.thresholds(['green', [1, 'red']]),
        mappings: lib.valueMap([['0', { text: 'OK' }], ['1', { text: 'CONFLICT' }]]),
      }),
      lib.stat(
        'Shard',
        'none',
        'Which shard of how many each member measures (lagwatch_shard_info, index/total; 0/1 when the estate is not sharded). Members must agree on the total and every index must be up (LagwatchShardingMismatch, LagwatchShardMissing); /api/v1/paths and the status page list the paths the other shards measure.',
        [
          lib.target('lagwatch_shard_info{%(sel)s}', '{{instance}}: {{index}}/{{total}}'),
        ],
        runbooks=['LagwatchShardingMismatch', 'LagwatchShardMissing'],
        graph=false,
        w=8,
      )
      + {
        options+: {
          textMode: 'name',
        },
      },
      lib.timeseries(
        'Probes resumed and sentinels lost across restarts',
        'short',
        'Probes an earlier process left in flight and this one ended, by outcome (lagwatch_probes_resumed_total; their lags are not in the lag histograms), and sentinels the start-up sweep found that the ledger did not know (lagwatch_sentinels_lost_total: written while the ledger was down, or lost with it).',
        [
          lib.target('sum by (source, target, outcome) (increase(lagwatch_probes_resumed_total{%(sel)s}[$__rate_interval]))', '{{source}} → {{target}} resumed, {{outcome}}'),
          lib.target('sum by (source) (increase(lagwatch_sentinels_lost_total{%(sel)s}[$__rate_interval]))', '{{source}} lost'),
        ],
        style='bars',
        w=24,
        h=7,
      ),
    ]

  )
