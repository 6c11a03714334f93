// lagwatch's alerting rules (rendered into alerts/lagwatch.alerts.yml), in the
// monitoring-mixins style: CamelCase names starting with Lagwatch, a severity of critical
// (page), warning (ticket) or info, a static summary, a templated description, and a runbook
// per alert in docs/runbooks/<AlertName>.md.
//
// Lag thresholds come from lagwatch_lag_objective_seconds (and
// lagwatch_probe_timeout_seconds), never from numbers in the rules, so one rule serves every
// path. The numbers that remain are multipliers and shares from _config (config.libsonnet):
// the burn-rate factors and the 99 % objective ratio of the SLO, 2 x timeout, 2 x objective
// for a lake, 10 % failed writes, 5 % throttled writes, the 5 s clock offset, 3 reconciliation
// intervals, and the 1h and 6h windows of the conflict alerts (alerts/README.md says why each).
//
// High availability: several lagwatch processes (members) may measure the same paths under
// different `instance` names, scraped as targets of one job; _config.haLabels tell them apart.
// Every rule aggregates those labels away, so a pair pages once and an alert keeps its labels
// (and its `for:` progress) when a member dies. How each rule combines its members:
//   - the state of a path (staleness, verdicts, discrepancies, offsets): the worst member,
//     `max without (instance, pod)`, as a single lagwatch would have paged on it;
//   - counts of events about sentinels (halted probes, violations, failed writes): each member
//     writes its own sentinels, so the members' counts add up (`sum without`), and shares are
//     the members' counts added before dividing;
//   - "nothing succeeds" conditions (no write, no status read, no reconciliation): judged over
//     all members together, so a member that still succeeds keeps them silent;
//   - the monitor itself: LagwatchDown only when every member is down, LagwatchMemberDown
//     (a ticket) while some are.
// Descriptions that link to lagwatch's API name a member that shows the condition, found with
// a query at evaluation time, since the alert itself has no `instance` label.
//
// Needs the recording rules (rules/rules.libsonnet). alerts/README.md: loading and testing.
local utils = import '../lib/utils.libsonnet';
local fold = utils.fold;

{
  local c = $._config,
  // `instance, pod`, for `without (...)` and `on (...)`.
  local ha = std.join(', ', c.haLabels),
  // Formats an expression: %(ha)s is the member labels, %(job)s the job selector.
  local x(text, extra={}) = text % ({ ha: ha, job: c.jobSelector } + extra),
  local hold(name) = c['for'][name],

  // runbook_url: runbookURLBase + docs/runbooks/<AlertName>.md. Without a base (the default),
  // the runbook is the page a running lagwatch member serves itself (GET
  // /docs/runbooks/<AlertName>.md), found with a query at evaluation time; with no member up,
  // its path in lagwatch's source tree.
  local runbook(name) =
    local page = 'docs/runbooks/' + name + '.md';
    if c.runbookURLBase != null then c.runbookURLBase + page
    else '{{ with printf "up{job=%q} == 1" $labels.job | query | sortByLabel "instance" }}http://{{ . | first | label "instance" }}/{{ end }}' + page,

  // The cause a platform reports, added to the lag alerts' descriptions when a member's status
  // verdict for the path is `explained`; nothing otherwise.
  local explained = |||
    {{ with printf "lagwatch_status_verdict{job=%q,source=%q,target=%q,verdict=\"explained\"} == 1" $labels.job $labels.source $labels.target | query | sortByLabel "instance" }}{{ $m := . | first | label "instance" }}{{ with printf "lagwatch_platform_state{job=%q,source=%q,target=%q,instance=%q} == 1" $labels.job $labels.source $labels.target $m | query | sortByLabel "instance" }}{{ $s := . | first }}
    The platform knows why (lagwatch_status_verdict explained): its {{ $s | label "surface" }}
    status {{ if eq ($s | label "state") "healthy" }}says healthy but reports no sync since
    the oldest missing sentinel was written{{ else }}says {{ $s | label "state" }}{{ end }};
    the platform's own words and lagwatch's reasoning: http://{{ $m }}/api/v1/paths
    (the path's platform).{{ end }}{{ end }}
  |||,

  // The path's objective, as the members export it (they share the configuration).
  local objective = '{{ with printf "max(lagwatch_lag_objective_seconds{job=%q,source=%q,target=%q})" $labels.job $labels.source $labels.target | query | sortByLabel "instance" }}{{ . | first | value | humanizeDuration }}{{ end }}',

  // 'twice' for 2, '3 times' for 3.
  local times(n) = if n == 2 then 'twice' else '%s times' % n,

  // Words for a `for:` hold in a description: '5m' -> '5 minutes'.
  local words(d) =
    local n = std.parseInt(std.substr(d, 0, std.length(d) - 1));
    local unit = { s: 'second', m: 'minute', h: 'hour', d: 'day' }[std.substr(d, std.length(d) - 1, 1)];
    if n == 1 then (if unit == 'hour' then 'an hour' else 'a ' + unit) else '%d %ss' % [n, unit],

  prometheusAlerts+:: {
    groups+: [
      {
        name: 'lagwatch.paths',
        rules: [
          {
            // The oldest sentinel any member has not yet seen is older than the objective, or
            // the p95 lag of the last hour (all members' probes) is above it. Not while the
            // path is halted (LagwatchDualWritePaused says that). When the path reads its
            // platform's status and a member's verdict is `explained`, the description says
            // what the platform reports (the cause); without platform_status it says nothing
            // more.
            alert: 'LagwatchLagAboveObjective',
            expr: x(|||
              (
                  max without (%(ha)s) (lagwatch_staleness_seconds)
                > max without (%(ha)s) (lagwatch_lag_objective_seconds)
                or
                  path:lagwatch_lag_seconds:p95_1h
                > max without (%(ha)s) (lagwatch_lag_objective_seconds)
              )
              unless ignoring (outcome)
              (max without (%(ha)s) (increase(lagwatch_probes_total{outcome="halted"}[15m])) > 0)
            |||),
            'for': hold('LagwatchLagAboveObjective'),
            labels: { severity: 'warning' },
            annotations: {
              summary: "Replication lag is above the path's objective.",
              description: fold(|||
                Sentinels written to {{ $labels.source }} reach {{ $labels.target }} later than the
                path's objective of %s:
                {{ $value | humanizeDuration }} (the age of the oldest sentinel not yet seen there,
                or else the p95 lag over the last hour).%s
              ||| % [objective, explained]),
              runbook_url: runbook('LagwatchLagAboveObjective'),
            },
          },
          {
            // The oldest sentinel a member has not seen at the target (staleness keeps counting
            // through timeouts until a later sentinel arrives) is twice the path's timeout
            // old, while that member's writes to the source still succeed. Without
            // lagwatch_probe_timeout_seconds (an older lagwatch) this rule cannot fire and
            // LagwatchRuleInputMissing says so. The description adds the platform's cause when
            // the path's status verdict is `explained`, as above.
            alert: 'LagwatchPathNotConverging',
            expr: x(|||
              max without (%(ha)s) (
                lagwatch_staleness_seconds >= %(n)s * lagwatch_probe_timeout_seconds
                and ignoring (target)
                (sum without (outcome) (increase(lagwatch_sentinel_writes_total{outcome="ok"}[1h])) > 0)
              )
              unless ignoring (outcome)
              (max without (%(ha)s) (increase(lagwatch_probes_total{outcome="halted"}[15m])) > 0)
            |||, { n: c.notConvergingTimeouts }),
            'for': hold('LagwatchPathNotConverging'),
            labels: { severity: 'critical' },
            annotations: {
              summary: 'Sentinels have stopped arriving at a target.',
              description: fold(|||
                No sentinel written to {{ $labels.source }} has arrived at {{ $labels.target }} for
                {{ $value | humanizeDuration }}, at least %s the path's timeout of {{ with printf "max(lagwatch_probe_timeout_seconds{job=%%q,source=%%q,target=%%q})" $labels.job $labels.source $labels.target | query | sortByLabel "instance" }}{{ . | first | value | humanizeDuration }}{{ end }},
                while sentinels are still being written: the replication is stuck or the target
                cannot be read.%s
              ||| % [times(c.notConvergingTimeouts), explained]),
              runbook_url: runbook('LagwatchPathNotConverging'),
            },
          },
          {
            // Sentinels still missing from a synchronous target (dual-write into F&O) after its
            // sync_grace end as `halted`; none converging at the same time, for any member,
            // means the map is not running. One halt among converging probes does not fire.
            // Each member writes its own sentinels: their halted probes add up.
            alert: 'LagwatchDualWritePaused',
            expr: x(|||
              (sum without (outcome, %(ha)s) (increase(lagwatch_probes_total{outcome="halted"}[15m])) > 0)
              unless ignoring (outcome)
              (sum without (%(ha)s) (increase(lagwatch_probes_total{outcome="converged"}[15m])) > 0)
            |||),
            'for': hold('LagwatchDualWritePaused'),
            labels: { severity: 'critical' },
            annotations: {
              summary: 'Dual-write is not replicating into Finance and Operations.',
              description: fold(|||
                {{ $value | printf "%.0f" }} sentinels written to {{ $labels.source }} in the last
                15 minutes were still missing from {{ $labels.target }} after the synchronous grace,
                and none arrived: the dual-write table map is paused or stopped. This is not lag.
              |||),
              runbook_url: runbook('LagwatchDualWritePaused'),
            },
          },
          {
            // The newest folder, partition file or Delta commit any member has seen is older
            // than twice the largest objective of the paths into the lake, while sentinels wait
            // for it. A lake meeting its objective writes more often than that; this fires
            // before the sentinels time out. 0 means "not seen yet".
            alert: 'LagwatchLakeStale',
            expr: x(|||
              (
                time() - max without (%(ha)s) (lagwatch_lake_last_folder_timestamp_seconds)
                > %(n)s * max without (source, %(ha)s) (lagwatch_lag_objective_seconds)
              )
              and (max without (%(ha)s) (lagwatch_lake_last_folder_timestamp_seconds) > 0)
              and (max without (source, %(ha)s) (lagwatch_probes_in_flight) > 0)
            |||, { n: c.lakeStaleObjectives }),
            'for': hold('LagwatchLakeStale'),
            labels: { severity: 'warning' },
            annotations: {
              summary: "A lake target's newest data is old.",
              description: fold(|||
                The newest data lagwatch sees in the lake {{ $labels.target }} (complete folder,
                partition file or Delta commit) is {{ $value | humanizeDuration }} old, more than
                %s the objective of the paths into it, while sentinels wait for it: the export
                has probably stopped writing.
              ||| % [times(c.lakeStaleObjectives)]),
              runbook_url: runbook('LagwatchLakeStale'),
            },
          },
        ],
      },
      {
        // Multi-window, multi-burn-rate alerts on the SLI "a probe converges within its path's
        // objective" (_config.objectiveRatio over 30 days). With the defaults: page at 14.4x
        // over 1h and 5m (2 % of the budget spent in an hour) and 6x over 6h and 30m (5 % in
        // six hours); ticket at 3x over 1d and 2h (10 % in a day). Both windows must burn: the
        // long one shows it matters, the short one that it is still happening. The ratios are
        // over all members' probes (the recording rules add them up).
        name: 'lagwatch.objective-budget',
        rules: [
          {
            alert: 'LagwatchObjectiveBudgetBurn',
            expr: x(|||
              path:lagwatch_probes_outside_objective:ratio_rate%(long)s > (%(factor)s * (1 - %(ratio)s))
              and
              path:lagwatch_probes_outside_objective:ratio_rate%(short)s > (%(factor)s * (1 - %(ratio)s))
            |||, b { ratio: c.objectiveRatio }),
            'for': b['for'],
            labels: { severity: b.severity, long: b.long, short: b.short },
            annotations: {
              summary: "Sentinels miss their path's objective fast enough to exhaust the error budget.",
              description: fold(|||
                {{ $value | humanizePercentage }} of the probes from {{ $labels.source }} to
                {{ $labels.target }} over the last %(long)s (and still over the last %(short)s) did not
                arrive within the objective of %(objective)s:
                they arrived later, timed out, failed, changed or halted. The budget is %(budget)s %% of
                probes over 30 days; this spends it more than %(factor)s times too fast.
              ||| % (b { objective: objective, budget: std.toString(std.floor((1 - c.objectiveRatio) * 1e6 + 0.5) / 1e4) })),
              runbook_url: runbook('LagwatchObjectiveBudgetBurn'),
            },
          }
          for b in c.burnRates
        ],
      },
      {
        // Consistency contracts: guarantees a path declares (contract: in lagwatch's
        // configuration, or its target kind's promise). Only declared guarantees are in this
        // metric. Each member counts the violations its own sentinels show: they add up.
        name: 'lagwatch.contracts',
        rules: [
          {
            alert: 'LagwatchContractViolated',
            expr: x('sum without (%(ha)s) (increase(lagwatch_contract_violations_total{guarantee=~"monotonic_reads|causal"}[30m])) > 0'),
            labels: { severity: 'critical' },
            annotations: {
              summary: 'A path broke a consistency guarantee it declares.',
              description: fold(|||
                {{ $labels.source }} -> {{ $labels.target }} declares {{ $labels.guarantee }} and
                broke it {{ $value | printf "%.0f" }} time(s) in the last 30 minutes: a reader of
                {{ $labels.target }} {{ if eq $labels.guarantee "causal" }}saw a record before the
                record it references, so integrations reading it can meet a lookup that points at
                nothing.{{ else }}saw a sentinel and then did not, so integrations reading it can
                see data go back in time.{{ end }}
              |||),
              runbook_url: runbook('LagwatchContractViolated'),
            },
          },
          {
            // A broken deletes or updates guarantee is a ticket: a row stays (or comes back),
            // or an update is late, for a while; no reader sees data go back in time.
            alert: 'LagwatchContractViolated',
            expr: x('sum without (%(ha)s) (increase(lagwatch_contract_violations_total{guarantee=~"deletes|updates"}[30m])) > 0'),
            labels: { severity: 'warning' },
            annotations: {
              summary: 'A path broke a consistency guarantee it declares.',
              description: fold(|||
                {{ $labels.source }} -> {{ $labels.target }} declares {{ $labels.guarantee }} and
                broke it {{ $value | printf "%.0f" }} time(s) in the last 30 minutes: {{ if eq
                $labels.guarantee "updates" }}versions of the update canary written in {{
                $labels.source }} had not reached {{ $labels.target }} a path timeout after they
                were acknowledged.{{ else }}a sentinel deleted in {{ $labels.source }} was still in
                {{ $labels.target }} after the declared time, or came back after it had gone.{{ end }}
              |||),
              runbook_url: runbook('LagwatchContractViolated'),
            },
          },
          {
            // Deletes do not arrive at all (declared or not): every delete any member watched
            // in the last 30 minutes was still there at the end of its window.
            alert: 'LagwatchDeletesNotPropagating',
            expr: x(|||
              sum without (%(ha)s) (increase(lagwatch_deletes_lost_total[30m])) > 0
              unless sum without (%(ha)s) (increase(lagwatch_delete_lag_seconds_count[30m])) > 0
            |||),
            labels: { severity: 'warning' },
            annotations: {
              summary: 'Deletes in the source do not reach a target.',
              description: fold(|||
                None of the sentinels deleted in {{ $labels.source }} in the last 30 minutes went
                from {{ $labels.target }} within the delete window; {{ $value | printf "%.0f" }}
                were still there at its end. Rows deleted in the source stay in the replica.
              |||),
              runbook_url: runbook('LagwatchDeletesNotPropagating'),
            },
          },
        ],
      },
      {
        // Conflict probes (conflicts: in lagwatch's configuration): two systems linked both
        // ways (a dual-write map, a Dataverse-to-Dataverse sync) get a canary row updated on
        // both sides with different values, `spread` apart, then read until they agree or a
        // timeout passes. Labels a and b are the pair as configured. Only `diverged` and
        // `policy_violated` alert: `rejected` (one update refused with a conflict error, as
        // synchronous dual-write does) and `error` (a write or read failed) are not
        // inconsistencies. No hold (`for:`): each outcome is already decided at the probe's
        // timeout, and probes run every `interval` (15m, say), so one is all there is to wait
        // for. The members' probes add up.
        name: 'lagwatch.conflicts',
        rules: [
          {
            // The two sides still held different values at the timeout: a permanent
            // inconsistency, which replication will not repair. Pages for an hour after each
            // diverged probe.
            alert: 'LagwatchReplicasDiverged',
            expr: x('sum without (outcome, %(ha)s) (increase(lagwatch_conflict_probes_total{outcome="diverged"}[1h])) > 0'),
            labels: { severity: 'critical' },
            annotations: {
              summary: 'Two linked systems kept different values for the same row after concurrent updates.',
              description: fold(|||
                {{ $value | printf "%.0f" }} conflict probe(s) between {{ $labels.a }} and
                {{ $labels.b }} in the last hour ended diverged: after the canary row was updated
                on both sides, {{ $labels.a }} and {{ $labels.b }} still held different values at
                the probe's timeout. A row updated on both sides at about the same time stays
                different in the two systems; replication will not repair it. The canary id and
                both values: {{ with printf "increase(lagwatch_conflict_probes_total{job=%q,a=%q,b=%q,outcome=\"diverged\"}[1h]) > 0" $labels.job $labels.a $labels.b | query | sortByLabel "instance" }}http://{{ . | first | label "instance" }}/api/v1/conflicts{{ end }}
              |||),
              runbook_url: runbook('LagwatchReplicasDiverged'),
            },
          },
          {
            // The two sides agreed, on the value the declared policy says should have lost
            // (lost updates). A ticket: the systems are consistent, but not in the way the
            // integrations rely on; usually clock skew under last_writer_wins. The skew and
            // spread are those of a member whose probe saw it.
            alert: 'LagwatchConflictPolicyViolated',
            expr: x('sum without (outcome, %(ha)s) (increase(lagwatch_conflict_probes_total{outcome="policy_violated"}[6h])) > 0'),
            labels: { severity: 'warning' },
            annotations: {
              summary: 'Two linked systems resolved a conflicting update against the declared policy.',
              description: fold(|||
                {{ $value | printf "%.0f" }} conflict probe(s) between {{ $labels.a }} and
                {{ $labels.b }} in the last 6 hours ended with both sides on the value that the
                pair's declared conflict policy says should have lost: one of two updates was
                silently lost.{{ with printf "increase(lagwatch_conflict_probes_total{job=%q,a=%q,b=%q,outcome=\"policy_violated\"}[6h]) > 0" $labels.job $labels.a $labels.b | query | sortByLabel "instance" }}{{ $m := . | first | label "instance" }}
                Clock skew {{ $labels.a }} minus {{ $labels.b }} at the last probe:
                {{ with printf "lagwatch_conflict_skew_seconds{job=%q,a=%q,b=%q,instance=%q}" $labels.job $labels.a $labels.b $m | query | sortByLabel "instance" }}{{ . | first | value | humanizeDuration }}{{ else }}unknown{{ end }}
                (lagwatch_conflict_skew_seconds), spread between the updates
                {{ with printf "lagwatch_conflict_spread_seconds{job=%q,a=%q,b=%q,instance=%q}" $labels.job $labels.a $labels.b $m | query | sortByLabel "instance" }}{{ . | first | value | humanizeDuration }}{{ else }}unknown{{ end }};
                under last_writer_wins a skew larger than the spread lets the earlier write win. Details:
                http://{{ $m }}/api/v1/conflicts{{ end }}
              |||),
              runbook_url: runbook('LagwatchConflictPolicyViolated'),
            },
          },
        ],
      },
      {
        // Platform status (platform_status: on a path): the platform's own claim about the
        // path's replication (Synapse Link or Link to Fabric table state, Dataverse search
        // status, an Azure AI Search indexer's execution history, Elasticsearch refresh counts,
        // the dual-write map), judged beside the path's sentinels at every scrape as
        // lagwatch_status_verdict (a state set, one verdict at 1; `unknown` from start-up).
        // Only the verdicts where the platform contradicts the sentinels alert:
        // `healthy_but_stuck` and `watermark_passed_canary_missing` page, `status_stale` is a
        // ticket. `explained` (stuck, and the platform knows) goes into the lag alerts'
        // descriptions instead; `agree` and `unknown` never alert. Paths without
        // platform_status have none of these series. A verdict of any member counts; the
        // description tells that member's story (its staleness, claim and API).
        name: 'lagwatch.platform',
        rules: [
          {
            // The verdict itself needs a sentinel unseen for longer than the path's objective
            // while the platform says healthy and claims a sync `grace` or more after that
            // sentinel's write, or a watermark past its row version. The 5m hold (a few status
            // reads at the default 60 s interval, and several of the path's polls) covers a
            // sentinel that the platform has just synced and lagwatch's next poll of the target
            // is about to see.
            alert: 'LagwatchPlatformHealthyButStuck',
            expr: x(|||
              max without (verdict, %(ha)s) (
                lagwatch_status_verdict{verdict=~"healthy_but_stuck|watermark_passed_canary_missing"}
              ) == 1
            |||),
            'for': hold('LagwatchPlatformHealthyButStuck'),
            labels: { severity: 'critical' },
            annotations: {
              summary: "The platform reports a path's replication healthy while its sentinels do not arrive.",
              description: fold(|||
                {{ with printf "lagwatch_status_verdict{job=%q,source=%q,target=%q,verdict=~\"healthy_but_stuck|watermark_passed_canary_missing\"} == 1" $labels.job $labels.source $labels.target | query | sortByLabel "instance" }}{{ $m := . | first | label "instance" }}Sentinels
                written to {{ $labels.source }} have been missing from {{ $labels.target }}
                for {{ with printf "lagwatch_staleness_seconds{job=%q,source=%q,target=%q,instance=%q}" $labels.job $labels.source $labels.target $m | query | sortByLabel "instance" }}{{ . | first | value | humanizeDuration }}{{ end }},
                longer than the path's objective of {{ with printf "lagwatch_lag_objective_seconds{job=%q,source=%q,target=%q,instance=%q}" $labels.job $labels.source $labels.target $m | query | sortByLabel "instance" }}{{ . | first | value | humanizeDuration }}{{ end }},
                yet {{ with printf "lagwatch_platform_state{job=%q,source=%q,target=%q,instance=%q} == 1" $labels.job $labels.source $labels.target $m | query | sortByLabel "instance" }}{{ $s := . | first }}the
                platform's {{ $s | label "surface" }} status says {{ $s | label "state" }}{{ else }}the
                platform's status{{ end }} {{ with printf "lagwatch_status_verdict{job=%q,source=%q,target=%q,verdict=\"watermark_passed_canary_missing\",instance=%q} == 1" $labels.job $labels.source $labels.target $m | query | sortByLabel "instance" }}and
                its watermark{{ with printf "lagwatch_platform_watermark{job=%q,source=%q,target=%q,instance=%q}" $labels.job $labels.source $labels.target $m | query | sortByLabel "instance" }}
                ({{ . | first | value | printf "%.0f" }}){{ end }} has passed the missing sentinel's
                row version{{ else }}and claims a sync after the oldest missing sentinel was
                written{{ with printf "time() - lagwatch_platform_last_sync_timestamp_seconds{job=%q,source=%q,target=%q,instance=%q}" $labels.job $labels.source $labels.target $m | query | sortByLabel "instance" }}
                (its last, {{ . | first | value | humanizeDuration }} ago){{ end }}{{ end }}: the
                platform reports success for data that has not arrived, so its own monitoring will
                not show this. The claim, its age and lagwatch's reasoning:
                http://{{ $m }}/api/v1/paths (the path's platform) and the status page
                http://{{ $m }}/.{{ end }}
              |||),
              runbook_url: runbook('LagwatchPlatformHealthyButStuck'),
            },
          },
          {
            // Sentinels arrive, but the platform reports an error, a pause or not running, or
            // its last sync is older than a sentinel that had already arrived: Microsoft's
            // surface is wrong while data flows. No data is at risk, so a ticket, after 30m:
            // surfaces that update their status some time after the data (a table state written
            // after the files) do not open one.
            alert: 'LagwatchPlatformStatusStale',
            expr: x(|||
              max without (verdict, %(ha)s) (lagwatch_status_verdict{verdict="status_stale"}) == 1
            |||),
            'for': hold('LagwatchPlatformStatusStale'),
            labels: { severity: 'warning' },
            annotations: {
              summary: "The platform's own status of a path is wrong while its data flows.",
              description: fold(|||
                {{ with printf "lagwatch_status_verdict{job=%%q,source=%%q,target=%%q,verdict=\"status_stale\"} == 1" $labels.job $labels.source $labels.target | query | sortByLabel "instance" }}{{ $m := . | first | label "instance" }}Sentinels
                written to {{ $labels.source }} arrive at {{ $labels.target }}, but for
                %s {{ with printf "lagwatch_platform_state{job=%%q,source=%%q,target=%%q,instance=%%q} == 1" $labels.job $labels.source $labels.target $m | query | sortByLabel "instance" }}{{ $s := . | first }}the
                platform's {{ $s | label "surface" }} status has said {{ $s | label "state" }}{{ if eq ($s | label "state") "healthy" }}
                with a last sync older than sentinels that had already arrived{{ with printf "time() - lagwatch_platform_last_sync_timestamp_seconds{job=%%q,source=%%q,target=%%q,instance=%%q}" $labels.job $labels.source $labels.target $m | query | sortByLabel "instance" }}
                (its last, {{ . | first | value | humanizeDuration }} ago){{ end }}{{ end }}{{ else }}the
                platform's status has not matched them{{ end }}: the status is wrong, not the data.
                People and tools that watch this status are misled, and while it stays wrong a stuck
                path cannot be told apart as explained by the platform. The claim and lagwatch's
                reasoning: http://{{ $m }}/api/v1/paths (the path's platform).{{ end }}
              ||| % [words(hold('LagwatchPlatformStatusStale'))]),
              runbook_url: runbook('LagwatchPlatformStatusStale'),
            },
          },
          {
            // Reads of the status surface fail and no member has read it successfully for 15
            // minutes (the last successful read is 0 before the first): from start-up, or
            // after the surface was read. 15m without a success, then 5m more: an outage of the
            // system that ends by itself does not open a ticket. A member that still reads the
            // status keeps it silent: the path's verdict is then that member's.
            alert: 'LagwatchPlatformStatusUnreadable',
            expr: x(|||
              sum without (kind, %(ha)s) (increase(lagwatch_platform_status_errors_total[30m])) > 0
              and
              (time() - max without (%(ha)s) (lagwatch_platform_last_read_timestamp_seconds)) > %(s)s
            |||, { s: c.platformUnreadableSeconds }),
            'for': hold('LagwatchPlatformStatusUnreadable'),
            labels: { severity: 'warning' },
            annotations: {
              summary: "A path's platform status cannot be read.",
              description: fold(|||
                No lagwatch member has read the {{ $labels.surface }} status of {{ $labels.source }}
                → {{ $labels.target }} successfully for %s or more, and reads failed in the
                last 30 minutes (by kind: {{ range $i, $s := printf "sum by (kind) (increase(lagwatch_platform_status_errors_total{job=%%q,source=%%q,target=%%q,surface=%%q}[30m])) > 0" $labels.job $labels.source $labels.target $labels.surface | query | sortByLabel "instance" }}{{ if $i }},
                {{ end }}{{ $s | label "kind" }}{{ end }}). The path's verdict stays unknown, so
                LagwatchPlatformHealthyButStuck cannot fire for it. lagwatch's WARN log line names the
                request and the permission to grant; the error is also at
                {{ with printf "increase(lagwatch_platform_status_errors_total{job=%%q,source=%%q,target=%%q,surface=%%q}[30m]) > 0" $labels.job $labels.source $labels.target $labels.surface | query | sortByLabel "instance" }}http://{{ . | first | label "instance" }}/api/v1/paths{{ end }} (the path's platform).
              ||| % [words('%dm' % (c.platformUnreadableSeconds / 60))]),
              runbook_url: runbook('LagwatchPlatformStatusUnreadable'),
            },
          },
        ],
      },
      {
        // The sources: sentinel writes, read-your-writes, owed deletes, clocks.
        name: 'lagwatch.sources',
        rules: [
          {
            alert: 'LagwatchReadYourWritesViolated',
            expr: x('sum without (%(ha)s) (increase(lagwatch_read_your_writes_violations_total[30m])) > 0'),
            labels: { severity: 'warning' },
            annotations: {
              summary: 'A source did not return its own acknowledged write.',
              description: fold(|||
                {{ $labels.source }} acknowledged sentinel writes but did not return them when read
                right after ({{ $value | printf "%.0f" }} in the last 30 minutes): its reads are
                served from a lagging replica or cache, so integrations that read after writing see
                old data.
              |||),
              runbook_url: runbook('LagwatchReadYourWritesViolated'),
            },
          },
          {
            // The share of failed writes, over all members' writes.
            alert: 'LagwatchSentinelWritesFailing',
            expr: x(|||
              sum without (outcome, %(ha)s) (rate(lagwatch_sentinel_writes_total{outcome="error"}[15m]))
              / sum without (outcome, %(ha)s) (rate(lagwatch_sentinel_writes_total[15m]))
              > %(r)s
            |||, { r: c.writesFailingRatio }),
            'for': hold('LagwatchSentinelWritesFailingWarning'),
            labels: { severity: 'warning' },
            annotations: {
              summary: 'Sentinel writes to a source are failing.',
              description: fold(|||
                {{ $value | humanizePercentage }} of the sentinel writes to {{ $labels.source }}
                failed over the last 15 minutes: the paths from {{ $labels.source }} are measured
                less often, and each failed round is a gap.
              |||),
              runbook_url: runbook('LagwatchSentinelWritesFailing'),
            },
          },
          {
            // No member's write succeeds at all: every path from the source is unmeasured, and
            // its lag alerts cannot fire (staleness stays 0 without pending sentinels).
            alert: 'LagwatchSentinelWritesFailing',
            expr: x(|||
              (sum without (outcome, %(ha)s) (increase(lagwatch_sentinel_writes_total{outcome="error"}[15m])) > 0)
              unless ignoring (outcome)
              (sum without (%(ha)s) (increase(lagwatch_sentinel_writes_total{outcome="ok"}[15m])) > 0)
            |||),
            'for': hold('LagwatchSentinelWritesFailingCritical'),
            labels: { severity: 'critical' },
            annotations: {
              summary: 'No sentinel write to a source succeeds.',
              description: fold(|||
                Every sentinel write to {{ $labels.source }} in the last 15 minutes failed: no path
                from {{ $labels.source }} is being measured, so their lag alerts cannot fire.
              |||),
              runbook_url: runbook('LagwatchSentinelWritesFailing'),
            },
          },
          {
            alert: 'LagwatchSourceThrottled',
            expr: x(|||
              sum without (outcome, %(ha)s) (rate(lagwatch_sentinel_writes_total{outcome="throttled"}[30m]))
              / sum without (outcome, %(ha)s) (rate(lagwatch_sentinel_writes_total[30m]))
              > %(r)s
            |||, { r: c.throttledRatio }),
            'for': hold('LagwatchSourceThrottled'),
            labels: { severity: 'warning' },
            annotations: {
              summary: 'A source is throttling sentinel writes.',
              description: fold(|||
                {{ $value | humanizePercentage }} of the sentinel writes to {{ $labels.source }} over
                the last 30 minutes were not sent: the system answered 429 and lagwatch waits for
                its Retry-After, or lagwatch's request budget for it was used up. Those rounds are
                gaps, not lag; integrations sharing the same application user hit the same limits.
              |||),
              runbook_url: runbook('LagwatchSourceThrottled'),
            },
          },
          {
            // Deletes owed to a source for an hour without a pause: the sentinels lagwatch
            // cannot delete stay in the customer's source (and in every replica it feeds). A
            // healthy source owes none but for about a minute after a write whose answer was
            // lost. Each member owes deletes of its own sentinels: they add up.
            alert: 'LagwatchSentinelsPilingUp',
            expr: x('sum without (%(ha)s) (lagwatch_sentinel_deletes_owed) > 0'),
            'for': hold('LagwatchSentinelsPilingUp'),
            labels: { severity: 'warning' },
            annotations: {
              summary: 'Sentinel records are piling up in a source.',
              description: fold(|||
                lagwatch has owed deletes to {{ $labels.source }} for %s ({{ $value | printf "%%.0f" }}
                now, by {{ range $i, $s := printf "lagwatch_sentinel_deletes_owed{job=%%q,source=%%q} > 0" $labels.job $labels.source | query | sortByLabel "instance" }}{{ if $i }}, {{ end }}{{ $s | label "instance" }}{{ end }}):
                those sentinel records stay in {{ $labels.source }} and in what it replicates to
                until a delete succeeds.
                {{ with printf "sum(increase(lagwatch_sentinel_deletes_total{job=%%q,source=%%q,outcome=\"error\"}[1h]))" $labels.job $labels.source | query | sortByLabel "instance" }}{{ . | first | value | printf "%%.0f" }}{{ end }}
                deletes failed in the last hour.
              ||| % [words(hold('LagwatchSentinelsPilingUp'))]),
              runbook_url: runbook('LagwatchSentinelsPilingUp'),
            },
          },
          {
            // The offset's lower bound (|offset| minus its uncertainty) is above 5 s, as
            // measured by the member furthest off.
            alert: 'LagwatchClockOffsetHigh',
            expr: x(|||
              max without (%(ha)s) (
                abs(lagwatch_clock_offset_seconds) - lagwatch_clock_offset_uncertainty_seconds
              ) > %(s)s
            |||, { s: c.clockOffsetSeconds }),
            'for': hold('LagwatchClockOffsetHigh'),
            labels: { severity: 'warning' },
            annotations: {
              summary: "A system's clock differs from lagwatch's.",
              description: fold(|||
                The clock of {{ $labels.system }} differs from lagwatch's by at least
                {{ $value | humanizeDuration }} (measured from HTTP Date headers, by lagwatch at
                {{ range $i, $s := printf "abs(lagwatch_clock_offset_seconds{job=%%q,system=%%q}) - lagwatch_clock_offset_uncertainty_seconds > %s" $labels.job $labels.system | query | sortByLabel "instance" }}{{ if $i }}, {{ end }}{{ $s | label "instance" }}{{ end }}).
                Timestamps that compare the two clocks, such as a lake's apply lag, are off by as
                much; if every system shows a similar offset, that lagwatch's own host clock is
                wrong.
              ||| % [c.clockOffsetSeconds]),
              runbook_url: runbook('LagwatchClockOffsetHigh'),
            },
          },
        ],
      },
      {
        // Reconciliation: the periodic comparison of a source table with each replica (keys
        // missing, extra, stale or mismatched there). A discrepancy is judged only past the
        // settle window (max of a floor and 2 x the path's recent p99 lag), so lag is not
        // drift; "persistent" means the previous run saw it too. Both alerts are tickets: drift
        // needs a person to repair data, and a failing reconciliation only means drift is not
        // being looked for.
        name: 'lagwatch.reconciliation',
        rules: [
          {
            // Keys that differed in two consecutive runs of a member, both past the settle
            // window, still there after 30m. alerts/README.md says why 30m and warning.
            alert: 'LagwatchDiscrepanciesPersisting',
            expr: x(|||
              max without (persistence, %(ha)s) (lagwatch_discrepancies{persistence="persistent"}) > 0
            |||),
            'for': hold('LagwatchDiscrepanciesPersisting'),
            labels: { severity: 'warning' },
            annotations: {
              summary: 'Rows of a replica disagree with the source in consecutive reconciliations.',
              description: fold(|||
                {{ $value | printf "%.0f" }} {{ $labels.kind }} keys of {{ $labels.table }}
                {{ if eq $labels.kind "missing" }}are in {{ $labels.source }} but not in {{ $labels.target }}{{ else if eq $labels.kind "extra" }}are in {{ $labels.target }} but no longer in {{ $labels.source }}{{ else if eq $labels.kind "stale" }}hold an older version in {{ $labels.target }} than in {{ $labels.source }}{{ else }}have the same version but different content in {{ $labels.source }} and {{ $labels.target }}{{ end }},
                in two consecutive reconciliations, past the settle window: this is data drift,
                not lag, and replication will not repair it. The keys, with when each was first
                seen and the version on each side:
                {{ with printf "lagwatch_discrepancies{job=%q,source=%q,target=%q,table=%q,kind=%q,persistence=\"persistent\"} > 0" $labels.job $labels.source $labels.target $labels.table $labels.kind | query | sortByLabel "instance" }}http://{{ . | first | label "instance" }}{{ end }}/api/v1/discrepancies?source={{ $labels.source }}&target={{ $labels.target }}&table={{ $labels.table }}&kind={{ $labels.kind }}
              |||),
              runbook_url: runbook('LagwatchDiscrepanciesPersisting'),
            },
          },
          {
            // No member has a successful run for more than 3 intervals, each counted from the
            // member's last success or, when none has succeeded since it started (the timestamp
            // is 0 until the first success), from its process start: a lagwatch that just
            // started does not fire, one whose runs never succeed fires 3 intervals after it
            // started. Also fires for a run that hangs (no outcome at all). A member whose runs
            // succeed keeps it silent: drift is still being looked for.
            alert: 'LagwatchReconcileFailing',
            expr: x(|||
              time() - max without (%(ha)s) (
                  (lagwatch_reconcile_last_success_timestamp_seconds > 0)
                or
                  (lagwatch_reconcile_last_success_timestamp_seconds == 0)
                  + on (job, %(ha)s) group_left
                  process_start_time_seconds
              )
              > %(n)s * max without (%(ha)s) (lagwatch_reconcile_interval_seconds)
            |||, { n: c.reconcileIntervals }),
            'for': hold('LagwatchReconcileFailing'),
            labels: { severity: 'warning' },
            annotations: {
              summary: 'Reconciliation of a table has not succeeded for several intervals.',
              description: fold(|||
                The reconciliation of {{ $labels.table }} from {{ $labels.source }} to
                {{ $labels.target }} has not succeeded for {{ $value | humanizeDuration }}{{ with printf "max(lagwatch_reconcile_last_success_timestamp_seconds{job=%%q,source=%%q,target=%%q,table=%%q})" $labels.job $labels.source $labels.target $labels.table | query | sortByLabel "instance" }}{{ if eq (. | first | value) 0.0 }} (not once since lagwatch started){{ end }}{{ end }},
                more than %s its interval of {{ with printf "max(lagwatch_reconcile_interval_seconds{job=%%q,source=%%q,target=%%q,table=%%q})" $labels.job $labels.source $labels.target $labels.table | query | sortByLabel "instance" }}{{ . | first | value | humanizeDuration }}{{ end }};
                {{ with printf "sum(increase(lagwatch_reconcile_runs_total{outcome=%%q,job=%%q,source=%%q,target=%%q,table=%%q}[1h]))" "error" $labels.job $labels.source $labels.target $labels.table | query | sortByLabel "instance" }}{{ . | first | value | printf "%%.0f" }}{{ end }}
                runs failed in the last hour (none: a run hangs or outlasts the interval). Its
                discrepancy counts are out of date and drift on this table goes unnoticed.
              ||| % [times(c.reconcileIntervals)]),
              runbook_url: runbook('LagwatchReconcileFailing'),
            },
          },
        ],
      },
      {
        // Meta-monitoring: the monitor itself, its members and shards, and the inputs the
        // alerts above need. _config.jobSelector selects lagwatch's targets (job="lagwatch").
        name: 'lagwatch.meta',
        rules: [
          {
            // Every member of the job is down: nothing measures its paths. While one member is
            // up (an HA pair), this stays silent and LagwatchMemberDown opens a ticket.
            alert: 'LagwatchDown',
            expr: x('max without (%(ha)s) (up{%(job)s}) == 0'),
            'for': hold('LagwatchDown'),
            labels: { severity: 'critical' },
            annotations: {
              summary: 'Prometheus cannot scrape lagwatch.',
              description: fold(|||
                Prometheus has failed to scrape every lagwatch target of job {{ $labels.job }}
                ({{ range $i, $s := printf "up{job=%%q} == 0" $labels.job | query | sortByLabel "instance" }}{{ if $i }}, {{ end }}{{ $s | label "instance" }}{{ end }})
                for %s: replication lag is not being measured and no other lagwatch alert can
                fire.
              ||| % [words(hold('LagwatchDown'))]),
              runbook_url: runbook('LagwatchDown'),
            },
          },
          {
            // Some members of the job are down while at least one is up: the paths are still
            // measured (by the other member of an HA pair), so a ticket. In a sharded job a down
            // member's paths are not measured: LagwatchShardMissing pages for that.
            alert: 'LagwatchMemberDown',
            expr: x(|||
              count without (%(ha)s) (up{%(job)s} == 0)
              and
              max without (%(ha)s) (up{%(job)s}) == 1
            |||),
            'for': hold('LagwatchMemberDown'),
            labels: { severity: 'warning' },
            annotations: {
              summary: 'A member of an HA lagwatch job cannot be scraped.',
              description: fold(|||
                Prometheus has failed to scrape {{ $value | printf "%%.0f" }} of the lagwatch
                targets of job {{ $labels.job }} for %s
                ({{ range $i, $s := printf "up{job=%%q} == 0" $labels.job | query | sortByLabel "instance" }}{{ if $i }}, {{ end }}{{ $s | label "instance" }}{{ end }}),
                while {{ range $i, $s := printf "up{job=%%q} == 1" $labels.job | query | sortByLabel "instance" }}{{ if $i }}, {{ end }}{{ $s | label "instance" }}{{ end }}
                can still be scraped. The paths of an HA pair are still measured, by one member
                instead of two; in a sharded job LagwatchShardMissing says whether a shard is
                gone.
              ||| % [words(hold('LagwatchMemberDown'))]),
              runbook_url: runbook('LagwatchMemberDown'),
            },
          },
          {
            // The probe ledger of a member could not be opened or written (lagwatch_ledger_up
            // exists only with a state_dir). Probing goes on; what is lost is that member's
            // resume across a restart.
            alert: 'LagwatchLedgerDown',
            expr: x('min without (%(ha)s) (lagwatch_ledger_up) == 0'),
            'for': hold('LagwatchLedgerDown'),
            labels: { severity: 'warning' },
            annotations: {
              summary: 'The probe ledger of lagwatch is not persisting sentinels in flight.',
              description: fold(|||
                lagwatch at {{ range $i, $s := printf "lagwatch_ledger_up{job=%%q} == 0" $labels.job | query | sortByLabel "instance" }}{{ if $i }}, {{ end }}{{ $s | label "instance" }}{{ end }}
                has not been able to open or write its probe ledger (state_dir/ledger.sqlite) for
                %s;
                {{ with printf "sum(increase(lagwatch_ledger_errors_total{job=%%q}[15m]))" $labels.job | query | sortByLabel "instance" }}{{ . | first | value | printf "%%.0f" }}{{ end }}
                ledger operations failed in the last 15 minutes. Lag is still measured, but a restart now
                loses the probes in flight and restarts staleness from zero, and sentinels it
                leaves are only found by the next start-up sweep. /readyz gives the reason.
              ||| % [words(hold('LagwatchLedgerDown'))]),
              runbook_url: runbook('LagwatchLedgerDown'),
            },
          },
          {
            alert: 'LagwatchAbsent',
            expr: x('absent(up{%(job)s})'),
            'for': hold('LagwatchAbsent'),
            labels: { severity: 'critical' },
            annotations: {
              summary: 'Prometheus has no lagwatch target.',
              description: fold(|||
                Prometheus has no scrape target with job="{{ $labels.job }}" for %s:
                lagwatch is not deployed, not discovered, or scraped under another job name. No
                other lagwatch alert can fire.
              ||| % [words(hold('LagwatchAbsent'))]),
              runbook_url: runbook('LagwatchAbsent'),
            },
          },
          {
            // The last reload of a member's configuration file (SIGHUP or POST /-/reload) was
            // rejected, so it still runs the configuration it loaded before: the edits are not
            // in force there. max_over_time, as the Prometheus mixin's PrometheusBadConfig: a
            // reload that succeeded within the last 5 minutes keeps it silent.
            alert: 'LagwatchConfigReloadFailed',
            expr: x('min without (%(ha)s) (max_over_time(lagwatch_config_last_reload_successful[5m])) == 0'),
            'for': hold('LagwatchConfigReloadFailed'),
            labels: { severity: 'warning' },
            annotations: {
              summary: 'A configuration reload of lagwatch was rejected.',
              description: fold(|||
                {{ with printf "max_over_time(lagwatch_config_last_reload_successful{job=%q}[5m]) == 0" $labels.job | query | sortByLabel "instance" }}{{ $m := . | first | label "instance" }}lagwatch
                at {{ $m }} rejected its configuration file at the last reload and still runs the
                configuration it loaded {{ with printf "time() - lagwatch_config_last_reload_success_timestamp_seconds{job=%q,instance=%q}" $labels.job $m | query | sortByLabel "instance" }}{{ . | first | value | humanizeDuration }}{{ end }}
                ago; later edits are not in force.{{ if gt (len .) 1 }} Also rejected at {{ range $i, $s := . }}{{ if $i }}{{ if gt $i 1 }}, {{ end }}{{ $s | label "instance" }}{{ end }}{{ end }}.{{ end }}
                Its log names the file, key and reason.{{ end }}
              |||),
              runbook_url: runbook('LagwatchConfigReloadFailed'),
            },
          },
          {
            // A path some alert cannot evaluate: no objective ratio (its objective is not a
            // bucket bound and lagwatch_probes_within_objective_total is not exported, or the
            // recording rules are not loaded), or no member exports a timeout gauge
            // (lagwatch_probe_timeout_seconds): both are exported by this lagwatch, so it fires
            // against older ones or without the rules.
            alert: 'LagwatchRuleInputMissing',
            expr: x(|||
              label_replace(
                max without (%(ha)s) (lagwatch_lag_objective_seconds)
                unless path:lagwatch_probes_outside_objective:ratio_rate1h,
                "missing", "objective_ratio", "", ""
              )
              or
              label_replace(
                max without (%(ha)s) (lagwatch_lag_objective_seconds)
                unless max without (%(ha)s) (lagwatch_probe_timeout_seconds),
                "missing", "timeout", "", ""
              )
            |||),
            'for': hold('LagwatchRuleInputMissing'),
            labels: { severity: 'warning' },
            annotations: {
              summary: 'An alert cannot evaluate a path because one of its inputs is missing.',
              description: fold(|||
                The path {{ $labels.source }} → {{ $labels.target }} has no {{ $labels.missing }}
                series, so
                {{ if eq $labels.missing "timeout" }}LagwatchPathNotConverging cannot fire for it:
                lagwatch does not export lagwatch_probe_timeout_seconds.{{ else }}LagwatchObjectiveBudgetBurn
                cannot fire for it: its objective ({{ $value | humanizeDuration }}) is not a bound of
                the lag histogram and lagwatch does not export
                lagwatch_probes_within_objective_total, or the recording rules are not
                loaded.{{ end }}
              |||),
              runbook_url: runbook('LagwatchRuleInputMissing'),
            },
          },
          {
            // A member found sentinels under its own instance name that it did not write:
            // another live lagwatch uses the same name against the same source (a copied
            // configuration, two pods without --instance). Each may take the other's sentinels
            // for its own, so the lag both report for the shared paths is wrong. A ticket: the
            // measuring goes on, a person must rename one; the 5m hold lets a process that was
            // just replaced (its last sentinels still arriving) settle.
            alert: 'LagwatchInstanceConflict',
            expr: x('max without (%(ha)s) (lagwatch_instance_conflict) == 1'),
            'for': hold('LagwatchInstanceConflict'),
            labels: { severity: 'warning' },
            annotations: {
              summary: 'Two lagwatch processes use the same instance name.',
              description: fold(|||
                lagwatch at {{ range $i, $s := printf "lagwatch_instance_conflict{job=%q} == 1" $labels.job | query | sortByLabel "instance" }}{{ if $i }}, {{ end }}{{ $s | label "instance" }}{{ end }}
                finds sentinels under its own instance name that it did not write: another live
                lagwatch process uses the same instance name against the same source. The two
                take each other's sentinels for their own, so the lag measured on the paths they
                share is wrong. Give each process its own instance name (--instance, or the
                instance key of its configuration).
              |||),
              runbook_url: runbook('LagwatchInstanceConflict'),
            },
          },
          {
            // Members of one job were told different shard totals (--shard I/N): each assigns
            // paths by its own N, so some paths are measured by two shards and others by none.
            // The 15m hold covers a rolling change of N, during which the members disagree
            // for a few restarts; past it, paths go unmeasured, so it pages.
            alert: 'LagwatchShardingMismatch',
            expr: x(|||
              count without (total) (
                count_values without (%(ha)s) ("total", lagwatch_total_shards)
              ) > 1
            |||),
            'for': hold('LagwatchShardingMismatch'),
            labels: { severity: 'critical' },
            annotations: {
              summary: 'The shards of a lagwatch job disagree on how many shards there are.',
              description: fold(|||
                The members of job {{ $labels.job }} were told {{ $value | printf "%.0f" }}
                different shard totals ({{ range $i, $s := printf "count_values by (total) (\"total\", lagwatch_total_shards{job=%q})" $labels.job | query | sortByLabel "total" }}{{ if $i }}, {{ end }}{{ $s | value | printf "%.0f" }} with {{ $s | label "total" }}{{ end }}):
                each assigns the paths by its own total, so some paths are measured twice and
                others not at all, and the alerts of those cannot fire. Give every member the same
                total (--shard I/N, or shard: {index, total}).
              |||),
              runbook_url: runbook('LagwatchShardingMismatch'),
            },
          },
          {
            // Fewer distinct shard indexes report than the total the members were told: the
            // paths of the missing shards are measured by nobody (the shards of an HA job each
            // report their index, so one of a pair is enough). A shard that is down vanishes
            // at once (its scrape fails); the 5m hold, as LagwatchDown's, covers a restart.
            alert: 'LagwatchShardMissing',
            expr: x(|||
              count without (index) (max without (total, %(ha)s) (lagwatch_shard_info))
              < max without (%(ha)s) (lagwatch_total_shards)
            |||),
            'for': hold('LagwatchShardMissing'),
            labels: { severity: 'critical' },
            annotations: {
              summary: 'A shard of a lagwatch job is not running.',
              description: fold(|||
                Only {{ $value | printf "%.0f" }} of the
                {{ with printf "max(lagwatch_total_shards{job=%q})" $labels.job | query | sortByLabel "total" }}{{ . | first | value | printf "%.0f" }}{{ end }}
                shards of job {{ $labels.job }} report (indexes
                {{ range $i, $s := printf "count by (index) (lagwatch_shard_info{job=%q})" $labels.job | query | sortByLabel "index" }}{{ if $i }}, {{ end }}{{ $s | label "index" }}{{ end }}):
                the paths of the missing shards are not measured and none of their alerts can
                fire. A shard's process is down (LagwatchMemberDown names it) or was never
                started.
              |||),
              runbook_url: runbook('LagwatchShardMissing'),
            },
          },
        ],
      },
    ],
  },
}
