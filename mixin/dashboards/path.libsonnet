// lagwatch / Path: generated into dashboards/lagwatch-path.json by the mixin.
function(lib, variables)
  lib.dashboard(
    'lagwatch-path',
    'lagwatch / Path',
    "One replication path (source → target) in depth: lag and its uncertainty, outcomes, the source's writes, both systems' requests, throttling and clocks, for lake targets the lake itself, and the reconciliations of the path (data drift between source and target).",
    variables,
    [
      lib.row('$source → $target now'),
      lib.stat(
        'Staleness ÷ objective',
        'percentunit',
        "The path's staleness (age of the oldest sentinel not yet seen at the target) as a share of its objective. Above 100% the target is behind its objective right now.",
        [
          lib.target('max(lagwatch_staleness_seconds{%(path)s}) / max(lagwatch_lag_objective_seconds{%(path)s})'),
        ],
        runbooks=['LagwatchLagAboveObjective', 'LagwatchPathNotConverging'],
      )
      + lib.defaults({ thresholds: lib.thresholds(['green', [0.8, 'orange'], [1, 'red']]) }),
      lib.stat(
        'Last lag',
        's',
        'Lag of the most recently converged sentinel (the midpoint of the interval its arrival is known to lie in).',
        [
          lib.target('max(lagwatch_last_lag_seconds{%(path)s})'),
        ],
      ),
      lib.stat(
        '± uncertainty',
        's',
        'Half-width of the last lag estimate: the true lag is within last lag ± this.',
        [
          lib.target('max(lagwatch_lag_uncertainty_seconds{%(path)s})'),
        ],
      ),
      lib.stat(
        'Objective',
        's',
        'The lag this path should stay under (its configured objective).',
        [
          lib.target('max(lagwatch_lag_objective_seconds{%(path)s})'),
        ],
        runbooks=['LagwatchLagAboveObjective'],
        graph=false,
      ),
      lib.stat(
        'Since last convergence',
        's',
        'Time since a sentinel was last seen at the target (empty if never).',
        [
          lib.target('time() - max(lagwatch_last_converged_timestamp_seconds{%(path)s} > 0)'),
        ],
      ),
      lib.stat(
        'Sentinels in flight',
        'short',
        'Sentinels of the path written (or being written) and not yet resolved.',
        [
          lib.target(lib.oneMember('', 'lagwatch_probes_in_flight{%(path)s}')),
        ],
      ),
      lib.stateTimeline(
        'State',
        "The path's state over time, as lagwatch decides it (lagwatch_path_state, the same rules as its status page): converging (arrives within the objective), lagging (above it), stuck (a sentinel timed out or is pending longer than the timeout), failing (reads or writes fail, or content arrives changed), halted (a synchronous target lacks a sentinel after its grace), idle (nothing resolved yet).",
        [
          lib.target('max by (state) (lagwatch_path_state{%(path)s} == 1)', '{{state}}'),
        ],
        runbooks=['LagwatchPathNotConverging'],
        mappings=lib.valueMap([[s[0], { color: s[1], text: s[0] }] for s in lib.states.path], indexed=false),
        h=4,
      )
      + {
        transformations: [
          { id: 'labelsToFields', options: { mode: 'columns', valueLabel: 'state' } },
          { id: 'merge', options: {} },
        ],
      },
      lib.stateTimeline(
        'Platform says',
        "For a path with platform_status: its status verdict (lagwatch_status_verdict, coded 1 to 6) and what the platform's own status surface says (lagwatch_platform_state, coded 10 to 15), over time. Verdict: agree (sentinels arrive and the platform says healthy with a sync no older than them), explained (a sentinel unseen past the objective, and the platform reports an error, a pause, not running, or no sync since the write), healthy_but_stuck (a sentinel unseen past the objective, while the platform says healthy and claims a sync grace or more after that sentinel's write), watermark_passed_canary_missing (a sentinel unseen past the objective whose row version the platform's watermark has passed), status_stale (sentinels arrive, but the platform reports an error, a pause or not running, or its last sync is older than a sentinel that had already arrived), unknown (no claim yet, the last read failed, or a state lagwatch cannot map). Platform state: healthy, error, paused, not_running, unknown (an answer lagwatch cannot map), not read yet. The platform's own words, the claimed sync and lagwatch's reasoning are at /api/v1/paths (platform). Empty without platform_status; with several lagwatch instances, select one.",
        [
          lib.target(lib.coded('lagwatch_status_verdict', 'verdict', lib.states.verdict, 'path'), 'verdict'),
          lib.target(lib.coded('lagwatch_platform_state', 'state', lib.states.platform, 'path', by='surface', base=10), 'platform: {{surface}}'),
        ],
        runbooks=['LagwatchPlatformHealthyButStuck', 'LagwatchPlatformStatusStale'],
        mappings=lib.codedMappings,
        h=5,
      ),
      lib.row('Lag'),
      lib.timeseries(
        'Lag quantiles and objective',
        's',
        'p50, p95 and p99 of the lag of sentinels that converged on the path (from the lagwatch_lag_seconds buckets); dashed: the objective. Empty where no sentinel converged in the interval.',
        [
          lib.target('histogram_quantile(0.5, sum by (le) (rate(lagwatch_lag_seconds_bucket{%(path)s}[$__rate_interval])))', 'p50'),
          lib.target('histogram_quantile(0.95, sum by (le) (rate(lagwatch_lag_seconds_bucket{%(path)s}[$__rate_interval])))', 'p95'),
          lib.target('histogram_quantile(0.99, sum by (le) (rate(lagwatch_lag_seconds_bucket{%(path)s}[$__rate_interval])))', 'p99'),
          lib.target('max(lagwatch_lag_objective_seconds{%(path)s})', 'objective'),
        ],
        runbooks=['LagwatchLagAboveObjective'],
      )
      + lib.dashedRed('^objective$'),
      lib.timeseries(
        'Last lag and its bounds',
        's',
        'Lag of the latest converged sentinel with the bounds of the estimate (lag ± uncertainty): the true lag lies between them.',
        [
          lib.target('max(lagwatch_last_lag_seconds{%(path)s})', 'last lag'),
          lib.target('max(lagwatch_last_lag_seconds{%(path)s} - lagwatch_lag_uncertainty_seconds{%(path)s})', 'lower bound'),
          lib.target('max(lagwatch_last_lag_seconds{%(path)s} + lagwatch_lag_uncertainty_seconds{%(path)s})', 'upper bound'),
        ],
      )
      + lib.dotted('.* bound$'),
      lib.heatmap(
        'Lag distribution',
        "Converged sentinels per lag bucket and interval on this path, from the lagwatch_lag_seconds buckets (multiples of the path's objective: 1/8, 1/4, 1/2, 1, 2, 4). With OpenMetrics scraping and exemplars enabled on the data source, each bucket shows the sentinel of its latest probe; lagwatch's /api/v1/probes?sentinel=<key> shows its every read.",
        [
          lib.buckets('sum by (le) (increase(lagwatch_lag_seconds_bucket{%(path)s}[$__rate_interval]))', exemplar=true),
        ],
        runbooks=['LagwatchLagAboveObjective'],
        yUnit='s',
        exemplars=true,
      )
      + lib.defaults({ unit: 'short' }),
      lib.timeseries(
        'Staleness and objective',
        's',
        'Age of the oldest sentinel not yet seen at the target (0 when none is pending); it rises in real time while the path is stuck. Dashed: the objective.',
        [
          lib.target('max(lagwatch_staleness_seconds{%(path)s})', 'staleness'),
          lib.target('max(lagwatch_lag_objective_seconds{%(path)s})', 'objective'),
        ],
        runbooks=['LagwatchLagAboveObjective', 'LagwatchPathNotConverging'],
      )
      + lib.dashedRed('^objective$'),
      lib.row('Outcomes'),
      lib.timeseries(
        'Convergence success ratio',
        'percentunit',
        "Share of the path's resolved probes that converged. Gaps where no probe resolved in the interval.",
        [
          lib.target('sum(rate(lagwatch_probes_total{%(path)s, outcome="converged"}[$__rate_interval])) / sum(rate(lagwatch_probes_total{%(path)s}[$__rate_interval]))', 'converged'),
        ],
        runbooks=['LagwatchPathNotConverging', 'LagwatchObjectiveBudgetBurn'],
        min=null,
        w=8,
      ),
      lib.timeseries(
        'Outcomes',
        'short',
        'Resolved probes per interval by outcome: converged, timeout (never seen), mismatch (seen with other content), error (only errors until the timeout), halted (missing from a synchronous target after its grace: dual-write not running).',
        [
          lib.target(lib.oneMember('outcome', 'increase(lagwatch_probes_total{%(path)s}[$__rate_interval])'), '{{outcome}}'),
        ],
        runbooks=['LagwatchPathNotConverging', 'LagwatchDualWritePaused', 'LagwatchObjectiveBudgetBurn'],
        style='stacked',
        w=8,
      ),
      lib.timeseries(
        'Lookup errors by kind',
        'short',
        'Failed lookups at the target per interval by kind (throttled, auth, transport, unavailable, bad_response, timeout); never counted as lag.',
        [
          lib.target('sum by (kind) (increase(lagwatch_lookup_errors_total{%(path)s}[$__rate_interval]))', '{{kind}}'),
        ],
        style='stacked',
        w=8,
      ),
      lib.timeseries(
        'Monotonic-read violations',
        'short',
        'Sentinels the target showed and then lost again within the confirmation window, per interval.',
        [
          lib.target(lib.oneMember('', 'increase(lagwatch_monotonic_read_violations_total{%(path)s}[$__rate_interval])'), 'violations'),
        ],
        style='bars',
        w=8,
        h=7,
      ),
      lib.timeseries(
        'Writes skipped',
        'short',
        'Sentinel writes skipped per interval because max_in_flight sentinels were pending on the path.',
        [
          lib.target(lib.oneMember('', 'increase(lagwatch_probes_skipped_total{%(path)s}[$__rate_interval])'), 'skipped'),
        ],
        style='bars',
        w=8,
        h=7,
      ),
      lib.timeseries(
        'Sentinels in flight',
        'short',
        'Sentinels of the path written and not yet resolved.',
        [
          lib.target(lib.oneMember('', 'lagwatch_probes_in_flight{%(path)s}'), 'in flight'),
        ],
        w=8,
        h=7,
      ),
      lib.row('Guarantees'),
      lib.bargauge(
        't-visibility: fresh reads by age',
        'percentunit',
        "Over the dashboard's time range, the share of this path's target reads that saw the sentinel, per age of the read (seconds since the source acknowledged the write; each bar is one age bucket, ≤ its bound and above the one before): the chance that a reader sees a write that old. Failed reads are not counted; only the share per bucket means something, as lagwatch reads young sentinels more often than old ones.",
        [
          lib.instant('sum by (age_le) (increase(lagwatch_reads_total{%(path)s, result="fresh"}[$__range])) / sum by (age_le) (increase(lagwatch_reads_total{%(path)s}[$__range]))', '≤ {{age_le}} s'),
        ],
        steps=['red', [0.5, 'orange'], [0.95, 'green']],
        max=1,
        w=16,
      ),
      lib.timeseries(
        'Contract violations by guarantee',
        'short',
        "Measured violations of the consistency guarantees this path's contract declares (contract: in the configuration, or its target kind's promise), per interval. No series when the path declares none.",
        [
          lib.target(lib.oneMember('guarantee', 'increase(lagwatch_contract_violations_total{%(path)s}[$__rate_interval])'), '{{guarantee}}'),
        ],
        runbooks=['LagwatchContractViolated'],
        style='bars',
        w=8,
      ),
      lib.timeseries(
        'Delete lag p50 and p95',
        's',
        "Quantiles of the delete lag: from a sentinel's delete acknowledgement to its absence at the target (lagwatch_delete_lag_seconds, the midpoint estimate, interpolated within its buckets). Empty for lake targets (not measured) and where no delete arrived in the interval.",
        [
          lib.target('histogram_quantile(0.5, sum by (le) (rate(lagwatch_delete_lag_seconds_bucket{%(path)s}[$__rate_interval])))', 'p50'),
          lib.target('histogram_quantile(0.95, sum by (le) (rate(lagwatch_delete_lag_seconds_bucket{%(path)s}[$__rate_interval])))', 'p95'),
        ],
        runbooks=['LagwatchDeletesNotPropagating'],
      ),
      lib.timeseries(
        'Deletes lost and resurrections',
        'short',
        "Deleted sentinels still at the target at the end of the delete window (lost: contract.deletes, else the path's timeout) and deleted sentinels shown again after a read found them gone (resurrected), per interval. Each is a WARN log line naming the sentinel.",
        [
          lib.target(lib.oneMember('target', 'increase(lagwatch_deletes_lost_total{%(path)s}[$__rate_interval])'), '{{target}}: lost'),
          lib.target(lib.oneMember('target', 'increase(lagwatch_resurrections_total{%(path)s}[$__rate_interval])'), '{{target}}: resurrected'),
        ],
        runbooks=['LagwatchDeletesNotPropagating'],
        style='bars',
      ),
      lib.heatmap(
        'Update canary: k-staleness',
        "k-staleness of the update canary's reads per interval: how many versions acknowledged before a read were newer than the version it returned (lagwatch_version_staleness buckets 0, 1, 2, 3, 5, 8, 13, 21; 0: the latest). A band that climbs means the target falls further behind the source's updates. Paths without a canary (update_interval unset, a source that cannot update, a lake target) have none.",
        [
          lib.buckets('sum by (le) (increase(lagwatch_version_staleness_bucket{%(path)s}[$__rate_interval]))'),
        ],
        yUnit='short',
      )
      + lib.defaults({ unit: 'short' }),
      lib.timeseries(
        'Update canary: time stale',
        's',
        'Time staleness: for a canary read that returned an older version, how long before the read the next version had been acknowledged (lagwatch_time_staleness_seconds).',
        [
          lib.target('histogram_quantile(0.5, sum by (le) (rate(lagwatch_time_staleness_seconds_bucket{%(path)s}[$__rate_interval])))', 'p50'),
          lib.target('histogram_quantile(0.95, sum by (le) (rate(lagwatch_time_staleness_seconds_bucket{%(path)s}[$__rate_interval])))', 'p95'),
        ],
      ),
      lib.timeseries(
        'Causal pairs by result',
        'short',
        "Causal pairs read at the target (a parent, then a child that references it, every pair_interval): ordered, violated (a read showed the child without its parent) or incomplete (not both seen by the timeout), and the violations by certainty (certain: one read answered for both keys). Each pair is in lagwatch's /api/v1/pairs; a violation's WARN log names the child.",
        [
          lib.target(lib.oneMember('result', 'increase(lagwatch_causal_pairs_total{%(path)s}[$__rate_interval])'), '{{result}}'),
          lib.target(lib.oneMember('certainty', 'increase(lagwatch_causal_violations_total{%(path)s}[$__rate_interval])'), 'violations ({{certainty}})'),
        ],
        runbooks=['LagwatchContractViolated'],
      ),
      lib.timeseries(
        'Causal gap: child after parent',
        's',
        "For ordered causal pairs, how long after the parent's first sighting at the target the child was first seen (lagwatch_causal_gap_seconds; 0 when one read found both): how far apart the target applies a record and the one it references.",
        [
          lib.target('histogram_quantile(0.5, sum by (le) (rate(lagwatch_causal_gap_seconds_bucket{%(path)s}[$__rate_interval])))', 'p50'),
          lib.target('histogram_quantile(0.95, sum by (le) (rate(lagwatch_causal_gap_seconds_bucket{%(path)s}[$__rate_interval])))', 'p95'),
        ],
      ),
      lib.timeseries(
        'Order inversions, lost updates and versions',
        'short',
        'Order inversions: sentinels a target that applies writes in order (the lake kinds) showed while one written earlier on the path was missing from the same read (lagwatch_order_inversions_total). Lost updates: versions of the update canary the target had not reached a path timeout after they were acknowledged (lagwatch_updates_lost_total; paths with an update canary only). Versions lost and duplicated: on a change log (a lake of incremental update folders), canary versions never shown as a row of their own within the path timeout, and rows repeating a version already shown (lagwatch_versions_lost_total, lagwatch_versions_duplicated_total; updates: every). The WARN logs name the sentinel or the canary.',
        [
          lib.target(lib.oneMember('', 'increase(lagwatch_order_inversions_total{%(path)s}[$__rate_interval])'), 'order inversions'),
          lib.target(lib.oneMember('', 'increase(lagwatch_updates_lost_total{%(path)s}[$__rate_interval])'), 'updates lost'),
          lib.target(lib.oneMember('', 'increase(lagwatch_versions_lost_total{%(path)s}[$__rate_interval])'), 'versions lost'),
          lib.target(lib.oneMember('', 'increase(lagwatch_versions_duplicated_total{%(path)s}[$__rate_interval])'), 'versions duplicated'),
        ],
        runbooks=['LagwatchContractViolated'],
        w=24,
        h=7,
      ),
      lib.row('Source $source'),
      lib.timeseries(
        'Sentinel writes by outcome',
        'short',
        'Sentinel writes to the source per interval: ok, error, throttled (not sent: a gap, not a lag). Shared by every path from this source.',
        [
          lib.target('sum by (outcome) (increase(lagwatch_sentinel_writes_total{%(src)s}[$__rate_interval]))', '{{outcome}}'),
        ],
        runbooks=['LagwatchSentinelWritesFailing'],
        style='stacked',
        w=8,
        h=7,
      ),
      lib.timeseries(
        'Read-your-writes violations',
        'short',
        'Sentinels the source did not return when read right after it acknowledged the write, per interval.',
        [
          lib.target(lib.oneMember('', 'increase(lagwatch_read_your_writes_violations_total{%(src)s}[$__rate_interval])'), 'violations'),
        ],
        runbooks=['LagwatchReadYourWritesViolated'],
        style='bars',
        w=8,
        h=7,
      ),
      lib.timeseries(
        'Sentinel deletes by outcome',
        'short',
        'Sentinel deletions at the source (cleanup and start-up sweep) per interval by outcome.',
        [
          lib.target('sum by (outcome) (increase(lagwatch_sentinel_deletes_total{%(src)s}[$__rate_interval]))', '{{outcome}}'),
        ],
        style='stacked',
        w=8,
        h=7,
      ),
      lib.row('Systems $source and $target'),
      lib.timeseries(
        'Requests by operation and status',
        'reqps',
        "Requests per second to the path's two systems by operation and status class.",
        [
          lib.target('sum by (system, operation, status) (rate(lagwatch_requests_total{%(systems)s}[$__rate_interval]))', '{{system}} {{operation}} {{status}}'),
        ],
      ),
      lib.timeseries(
        'Mean request duration',
        's',
        "Mean duration of requests to the path's two systems: lagwatch_request_seconds_total over lagwatch_requests_total. Every read of every probe, with its times, is in lagwatch's /api/v1/probes and on its path page.",
        [
          lib.target('sum by (system) (rate(lagwatch_request_seconds_total{%(systems)s}[$__rate_interval])) / sum by (system) (rate(lagwatch_requests_total{%(systems)s}[$__rate_interval]))', '{{system}}'),
        ],
      ),
      lib.timeseries(
        'Throttling responses (429)',
        'short',
        'HTTP 429 answers per interval; each pauses every call to the system until Retry-After.',
        [
          lib.target('sum by (system) (increase(lagwatch_throttled_total{%(systems)s}[$__rate_interval]))', '{{system}}'),
        ],
        runbooks=['LagwatchSourceThrottled'],
        style='bars',
        w=6,
        h=7,
      ),
      lib.timeseries(
        'Request budget used',
        'percentunit',
        "Share of each system's request budget used in the current window; at 100% polls are stretched.",
        [
          lib.target('max by (system) (lagwatch_request_budget_used_ratio{%(systems)s})', '{{system}}'),
        ],
        runbooks=['LagwatchSourceThrottled'],
        w=6,
        h=7,
      )
      + lib.custom({
        thresholdsStyle: { mode: 'dashed' },
      })
      + lib.defaults({ thresholds: lib.thresholds(['green', [0.8, 'orange'], [1, 'red']]) }),
      lib.timeseries(
        'Time spent waiting for admission',
        'short',
        'Seconds per second that calls waited for a throttling pause, the budget or a concurrency slot, summed over concurrent calls.',
        [
          lib.target('sum by (system) (rate(lagwatch_throttle_wait_seconds_total{%(systems)s}[$__rate_interval]))', '{{system}}'),
        ],
        w=6,
        h=7,
      ),
      lib.timeseries(
        'Clock offsets',
        's',
        "Each system's clock minus lagwatch's, from HTTP Date headers (0 until measured; HTTP systems only); dotted: half-width of the bounds.",
        [
          lib.target('lagwatch_clock_offset_seconds{%(systems)s}', '{{system}}'),
          lib.target('lagwatch_clock_offset_uncertainty_seconds{%(systems)s}', '{{system}} ± uncertainty'),
        ],
        runbooks=['LagwatchClockOffsetHigh'],
        min=null,
        w=6,
        h=7,
      )
      + lib.dotted('.* uncertainty$'),
      lib.row('Analytics lake (lake targets only)'),
      lib.timeseries(
        'Lake data age',
        's',
        "Time since the lake target's newest data (newest complete folder, partition file or commit). Empty for targets that are not lakes.",
        [
          lib.target('time() - max(lagwatch_lake_last_folder_timestamp_seconds{%(tgt)s} > 0)', '{{target}}'),
        ],
        runbooks=['LagwatchLakeStale'],
        w=8,
      ),
      lib.timeseries(
        'Apply lag vs observed lag',
        's',
        "p50 and p95 of the apply lag (the lake's SinkCreatedOn minus the write time, on the source's clock) next to the lag lagwatch observed; the gap is the export's cadence plus polling.",
        [
          lib.target('histogram_quantile(0.5, sum by (le) (rate(lagwatch_apply_lag_seconds_bucket{%(path)s}[$__rate_interval])))', 'apply p50'),
          lib.target('histogram_quantile(0.95, sum by (le) (rate(lagwatch_apply_lag_seconds_bucket{%(path)s}[$__rate_interval])))', 'apply p95'),
          lib.target('histogram_quantile(0.5, sum by (le) (rate(lagwatch_lag_seconds_bucket{%(path)s}[$__rate_interval])))', 'observed p50'),
          lib.target('histogram_quantile(0.95, sum by (le) (rate(lagwatch_lag_seconds_bucket{%(path)s}[$__rate_interval])))', 'observed p95'),
        ],
        runbooks=['LagwatchLagAboveObjective', 'LagwatchLakeStale'],
        w=16,
      ),
      lib.timeseries(
        'Lake bytes read',
        'Bps',
        'Bytes per second read from the lake target: the cost of its polls.',
        [
          lib.target('sum(rate(lagwatch_lake_bytes_read_total{%(tgt)s}[$__rate_interval]))', 'bytes read'),
        ],
        h=7,
      ),
      lib.timeseries(
        'Lake objects listed',
        'cps',
        'Folders and files listed per second while scanning the lake target.',
        [
          lib.target('sum(rate(lagwatch_lake_objects_listed_total{%(tgt)s}[$__rate_interval]))', 'objects listed'),
        ],
        h=7,
      ),
      lib.row('Reconciliation $source → $target'),
      lib.stat(
        'Persistent discrepancies',
        'short',
        "Keys of all this path's reconciliations that differed in the last two runs, past the settle window: data drift (missing (in the source, not in the replica), extra (in the replica, gone from the source), stale (the replica holds an older version), mismatched (same version, different content: a transformation or mapping)). LagwatchDiscrepanciesPersisting fires when this stays above 0 for 30 minutes. The keys: /api/v1/discrepancies?source=$source&target=$target on the lagwatch instance.",
        [
          lib.target('max(sum by (job, instance) (lagwatch_discrepancies{%(path)s, persistence="persistent"}))'),
        ],
        runbooks=['LagwatchDiscrepanciesPersisting'],
      )
      + lib.defaults({ thresholds: lib.thresholds(['green', [1, 'red']]) }),
      lib.stat(
        'New discrepancies',
        'short',
        'Keys past the settle window that differed for the first time in the last run (transient): persistent if the next run finds them again.',
        [
          lib.target('max(sum by (job, instance) (lagwatch_discrepancies{%(path)s, persistence="transient"}))'),
        ],
        runbooks=['LagwatchDiscrepanciesPersisting'],
      )
      + lib.defaults({ thresholds: lib.thresholds(['green', [1, 'orange']]) }),
      lib.stat(
        'Unsettled keys',
        'short',
        'Keys that differ but changed inside the settle window in the last run: in flight, not judged.',
        [
          lib.target('max(sum by (job, instance) (lagwatch_reconcile_unsettled{%(path)s}))'),
        ],
      ),
      lib.stat(
        'No successful run for',
        's',
        'Per reconciliation (table): time since its last successful run, or since lagwatch started if none has succeeded since. LagwatchReconcileFailing fires above 3 × its interval.',
        [
          lib.target('time() - max by (table) (((lagwatch_reconcile_last_success_timestamp_seconds{%(path)s} > 0) or (lagwatch_reconcile_last_success_timestamp_seconds{%(path)s} == 0) + on (job, instance) group_left process_start_time_seconds{%(sel)s}))', '{{table}}'),
        ],
        runbooks=['LagwatchReconcileFailing'],
      ),
      lib.stat(
        'Interval',
        's',
        'Per reconciliation (table): the configured interval between runs.',
        [
          lib.target('max by (table) (lagwatch_reconcile_interval_seconds{%(path)s})', '{{table}}'),
        ],
      ),
      lib.stat(
        'Settle window',
        's',
        "Per reconciliation (table): the settle window of the last run, the larger of settle_floor and 2 × the path's recent p99 lag.",
        [
          lib.target('max by (table) (lagwatch_reconcile_settle_window_seconds{%(path)s})', '{{table}}'),
        ],
      ),
      lib.timeseries(
        'Discrepancies by table, kind and persistence',
        'short',
        'Keys that differ between $source and $target past the settle window, per reconciliation (table), kind and persistence: transient (first run that saw it) or persistent (the previous run saw it too). Kinds: missing (in the source, not in the replica), extra (in the replica, gone from the source), stale (the replica holds an older version), mismatched (same version, different content: a transformation or mapping). Changes only when a run ends.',
        [
          lib.target('max by (table, kind, persistence) (lagwatch_discrepancies{%(path)s})', '{{table}} {{kind}} {{persistence}}'),
        ],
        runbooks=['LagwatchDiscrepanciesPersisting'],
        style='steps',
        w=8,
      ),
      lib.timeseries(
        'Unsettled keys',
        'short',
        'Keys that differ but changed inside the settle window at each run, by table: in flight, not judged. A count that keeps growing run after run means changes arrive faster than they replicate.',
        [
          lib.target('max by (table) (lagwatch_reconcile_unsettled{%(path)s})', '{{table}}'),
        ],
        style='steps',
        w=8,
      ),
      lib.timeseries(
        'Keys healed',
        'short',
        'Keys discrepant in the previous run that agree now, per interval, by table and kind: repaired, or replicated late.',
        [
          lib.target(lib.oneMember('table, kind', 'increase(lagwatch_discrepancies_healed_total{%(path)s}[$__rate_interval])'), '{{table}} {{kind}}'),
        ],
        style='stacked',
        w=8,
      ),
      lib.timeseries(
        'Reconciliation runs by outcome',
        'short',
        'Finished runs per interval, by table and outcome (success, error). No bar for several intervals means runs hang or outlast their interval.',
        [
          lib.target(lib.oneMember('table, outcome', 'increase(lagwatch_reconcile_runs_total{%(path)s}[$__rate_interval])'), '{{table}} {{outcome}}'),
        ],
        runbooks=['LagwatchReconcileFailing'],
        style='stacked',
        w=8,
      ),
      lib.timeseries(
        'Run duration',
        's',
        'Mean duration of the runs that finished in each interval (one run: its duration), by table; empty between runs. Dashed: the interval between runs.',
        [
          lib.target('sum by (table) (increase(lagwatch_reconcile_duration_seconds_sum{%(path)s}[$__rate_interval])) / sum by (table) (increase(lagwatch_reconcile_duration_seconds_count{%(path)s}[$__rate_interval]))', '{{table}}'),
          lib.target('max by (table) (lagwatch_reconcile_interval_seconds{%(path)s})', '{{table}} interval'),
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
        "Keys compared by runs per interval, by table: the size of each run's scope.",
        [
          lib.target(lib.oneMember('table', 'increase(lagwatch_reconcile_rows_compared_total{%(path)s}[$__rate_interval])'), '{{table}}'),
        ],
        style='bars',
        w=8,
      ),
      lib.timeseries(
        'Time without a successful run',
        's',
        'By table: time since the last successful run, or since lagwatch started if none has succeeded since; it falls to 0 at each success. Dashed: 3 × the interval, above which LagwatchReconcileFailing fires.',
        [
          lib.target('time() - max by (table) (((lagwatch_reconcile_last_success_timestamp_seconds{%(path)s} > 0) or (lagwatch_reconcile_last_success_timestamp_seconds{%(path)s} == 0) + on (job, instance) group_left process_start_time_seconds{%(sel)s}))', '{{table}}'),
          lib.target('3 * max by (table) (lagwatch_reconcile_interval_seconds{%(path)s})', '{{table}} 3 × interval'),
        ],
        runbooks=['LagwatchReconcileFailing'],
      )
      + lib.dashedRed('.* 3 × interval$'),
      lib.timeseries(
        'Settle window',
        's',
        "By table: the settle window each run used, the larger of settle_floor and 2 × the path's recent p99 lag from the probes. Keys that changed more recently are unsettled.",
        [
          lib.target('max by (table) (lagwatch_reconcile_settle_window_seconds{%(path)s})', '{{table}}'),
        ],
        style='steps',
      ),
    ]

  )
