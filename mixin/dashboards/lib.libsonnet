// Small builders for lagwatch's Grafana dashboards: panels, targets, rows and their layout.
//
// Every panel and target reads the `datasource` variable; every query's selectors are written
// with `%(name)s` placeholders that `new(selectors)` fills in (the job/instance matchers and, on
// the path dashboard, the chosen path), so a query reads as PromQL with its matchers named.
{
  // The builders, with the selectors their queries are formatted with.
  new(selectors):: {
    local lib = self,

    datasource:: { type: 'prometheus', uid: '${datasource}' },

    // --- Targets -------------------------------------------------------------------------

    // A query over time. `expr` is formatted with the selectors (`%(sel)s`, …).
    target(expr, legend=''):: {
      datasource: lib.datasource,
      expr: expr % selectors,
      legendFormat: legend,
    },
    // One value per series for the whole time range (an instant query).
    instant(expr, legend=''):: lib.target(expr, legend) + { instant: true },
    // One row per series in a table (an instant query, table format).
    tableQuery(expr):: lib.target(expr) + { instant: true, range: false, format: 'table' },
    // The buckets of a histogram for a heatmap.
    buckets(expr, legend='{{le}}', exemplar=false)::
      lib.target(expr, legend) + { format: 'heatmap' }
      + (if exemplar then { exemplar: true } else {}),

    // One HA member's count, not the members' sum: `expr` summed per member (the
    // `%(members)s` labels, e.g. instance and pod), the largest member's sum taken by `by`.
    // For what every member measures of the same replication (outcomes, violations, runs),
    // which a pair would otherwise count twice.
    oneMember(by, expr)::
      if by == '' then 'max(sum by (%%(members)s) (%s))' % expr
      else 'max by (%s) (sum by (%s, %%(members)s) (%s))' % [by, by, expr],

    // --- Panels --------------------------------------------------------------------------

    // A link to an alert's runbook under the runbook_base variable.
    runbook(alert):: {
      title: 'Runbook: ' + alert,
      url: '${runbook_base}/docs/runbooks/%s.md' % alert,
      targetBlank: true,
    },

    // What every panel has: refIds A, B, … in the order of `targets`, and `w` × `h` grid cells
    // placed by `layout`.
    panel(type, title, unit, description, targets, runbooks, w, h):: {
      type: type,
      title: title,
      description: description,
      datasource: lib.datasource,
      fieldConfig: { defaults: { unit: unit }, overrides: [] },
      links: [lib.runbook(a) for a in runbooks],
      targets: [
        targets[i] { refId: std.char(std.codepoint('A') + i) }
        for i in std.range(0, std.length(targets) - 1)
      ],
      gridPos: { w: w, h: h },
    },

    // Series over time. `style`: lines, bars (side by side), stacked (bars) or steps (lines
    // that hold their value until the next point: counts that change only when a run ends).
    timeseries(title, unit, description, targets, runbooks=[], style='lines', min=0, w=12, h=8)::
      lib.panel('timeseries', title, unit, description, targets, runbooks, w, h) + {
        fieldConfig+: {
          defaults+: {
            color: { mode: 'palette-classic' },
            custom: {
              drawStyle: if style == 'bars' || style == 'stacked' then 'bars' else 'line',
              lineWidth: 1,
              fillOpacity: if style == 'bars' || style == 'stacked' then 60 else 10,
              showPoints: 'never',
              spanNulls: false,
              stacking: { mode: if style == 'stacked' then 'normal' else 'none', group: 'A' },
            } + (if style == 'steps' then { lineInterpolation: 'stepAfter' } else {}),
          } + (if min == null then {} else { min: min }),
        },
        options: {
          legend: { displayMode: 'table', placement: 'bottom', calcs: ['lastNotNull', 'max'] },
          tooltip: { mode: 'multi', sort: 'desc' },
        },
      },

    // One number (the last value); `graph` draws its history behind it.
    stat(title, unit, description, targets, runbooks=[], graph=true, w=4, h=5)::
      lib.panel('stat', title, unit, description, targets, runbooks, w, h) + {
        fieldConfig+: {
          defaults+: {
            color: { mode: 'thresholds' },
            thresholds: lib.thresholds(['green']),
            mappings: [],
          },
        },
        options: {
          reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false },
          colorMode: 'value',
          graphMode: if graph then 'area' else 'none',
          textMode: 'auto',
          justifyMode: 'auto',
          orientation: 'auto',
        },
      },

    // Horizontal bars coloured by thresholds, from `min` to `max`.
    bargauge(title, unit, description, targets, runbooks=[], steps, max, w=8, h=8)::
      lib.panel('bargauge', title, unit, description, targets, runbooks, w, h) + {
        fieldConfig+: {
          defaults+: {
            min: 0,
            max: max,
            color: { mode: 'thresholds' },
            thresholds: lib.thresholds(steps),
          },
        },
        options: {
          reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false },
          orientation: 'horizontal',
          displayMode: 'gradient',
          showUnfilled: true,
          valueMode: 'color',
          namePlacement: 'auto',
          sizing: 'auto',
        },
      },

    // A row per series coloured by value over time; `mappings` names the values.
    stateTimeline(title, description, targets, runbooks=[], mappings=[], w=24, h=8)::
      lib.panel('state-timeline', title, 'none', description, targets, runbooks, w, h) + {
        fieldConfig+: {
          defaults+: { color: { mode: 'fixed', fixedColor: 'text' } }
                     + (if mappings == [] then {} else { mappings: mappings }),
        },
        options: {
          showValue: 'auto',
          mergeValues: true,
          rowHeight: 0.8,
          legend: { showLegend: false },
          tooltip: { mode: 'single', sort: 'none' },
        },
      },

    // One row per path (instant queries merged on their labels), sorted by `sortBy`; the
    // `rename` of organize names the columns. Rows open the path dashboard.
    table(title, unit, description, targets, runbooks=[], sortBy, desc=false, hide=[], order={}, rename={}, w=24, h=8)::
      lib.panel('table', title, unit, description, targets, runbooks, w, h) + {
        fieldConfig+: {
          defaults+: { links: [lib.openPath], custom: { align: 'auto' } },
        },
        options: { showHeader: true, sortBy: [{ displayName: sortBy, desc: desc }] },
        transformations: [
          { id: 'merge', options: {} },
          {
            id: 'organize',
            options: {
              excludeByName: { [c]: true for c in ['Time'] + hide },
              indexByName: order,
              renameByName: rename,
            },
          },
        ],
      },

    // A histogram's buckets over time; `yUnit` is the unit of the buckets' bounds.
    heatmap(title, description, targets, runbooks=[], yUnit, exemplars=false, w=12, h=8)::
      lib.panel('heatmap', title, 'short', description, targets, runbooks, w, h) + {
        fieldConfig+: { defaults: {} },
        options: {
          calculate: false,
          cellGap: 1,
          color: {
            mode: 'scheme',
            scheme: 'Oranges',
            scale: 'exponential',
            exponent: 0.5,
            steps: 64,
            fill: 'dark-orange',
            reverse: false,
          },
          yAxis: { axisPlacement: 'left', unit: yUnit, reverse: false },
          rowsFrame: { layout: 'le' },
          cellValues: { unit: 'short' },
          filterValues: { le: 1e-09 },
          legend: { show: true },
          tooltip: { mode: 'single', yHistogram: true, showColorScale: false },
        } + (if exemplars then { exemplars: { color: 'rgba(255,0,255,0.7)' } } else {}),
      },

    // A row heading; `layout` starts it on a line of its own.
    row(title):: {
      type: 'row',
      title: title,
      collapsed: false,
      panels: [],
      gridPos: { w: 24, h: 1 },
    },

    // --- Pieces of panels ----------------------------------------------------------------

    // Threshold steps from a list: the first a colour (from -∞), the rest [value, colour].
    thresholds(steps):: {
      mode: 'absolute',
      steps: [{ color: steps[0], value: null }] + [
        { color: s[1], value: s[0] }
        for s in steps[1:]
      ],
    },

    // Value mappings, in order: [value, {text, color}] pairs; `indexed` numbers them.
    valueMap(pairs, indexed=true):: [{
      type: 'value',
      options: {
        [pairs[i][0]]: pairs[i][1] + (if indexed then { index: i } else {})
        for i in std.range(0, std.length(pairs) - 1)
      },
    }],

    // Overrides: adds field overrides to a panel.
    overrides(list):: { fieldConfig+: { overrides+: list } },
    // Series whose name matches `regex` as a dashed red line (objectives, intervals).
    dashedRed(regex):: lib.overrides([{
      matcher: { id: 'byRegexp', options: regex },
      properties: [
        { id: 'custom.lineStyle', value: { fill: 'dash', dash: [10, 10] } },
        { id: 'color', value: { mode: 'fixed', fixedColor: 'red' } },
      ],
    }]),
    // Series whose name matches `regex` as a dotted line (bounds, uncertainties).
    dotted(regex):: lib.overrides([{
      matcher: { id: 'byRegexp', options: regex },
      properties: [{ id: 'custom.lineStyle', value: { fill: 'dot', dash: [0, 10] } }],
    }]),
    // Series whose name matches `regex` in a fixed colour.
    colored(regex, color):: lib.overrides([{
      matcher: { id: 'byRegexp', options: regex },
      properties: [{ id: 'color', value: { mode: 'fixed', fixedColor: color } }],
    }]),
    // A table column's (or series') properties, by its name.
    column(name, properties):: lib.overrides([{
      matcher: { id: 'byName', options: name },
      properties: [{ id: k, value: properties[k] } for k in std.objectFields(properties)],
    }]),
    // Fields added to a panel's custom field config (line and bar drawing).
    custom(fields):: { fieldConfig+: { defaults+: { custom+: fields } } },
    // A table column of state names, each cell coloured as `colors` ([name, colour], …) says.
    stateColumn(name, colors):: lib.overrides([{
      matcher: { id: 'byName', options: name },
      properties: [
        { id: 'unit', value: 'string' },
        { id: 'custom.cellOptions', value: { type: 'color-background' } },
        { id: 'mappings', value: lib.valueMap([[c[0], { color: c[1] }] for c in colors]) },
      ],
    }]),
    // A 0/1 value shown as `no` in red or `yes` in green.
    boolean(no, yes):: lib.defaults({
      thresholds: lib.thresholds(['red', [1, 'green']]),
      mappings: lib.valueMap([['0', { text: no }], ['1', { text: yes }]]),
    }),
    // Defaults added to a panel's field config (thresholds, mappings, …).
    defaults(fields):: { fieldConfig+: { defaults+: fields } },

    // The table rows' link to the path dashboard, keeping the variables and time range.
    openPath:: {
      title: 'Open ${__data.fields.source} → ${__data.fields.target}',
      url: '/d/lagwatch-path/lagwatch-path?${datasource:queryparam}&${job:queryparam}&${instance:queryparam}&var-source=${__data.fields.source}&var-target=${__data.fields.target}&${__url_time_range}',
    },

    // --- State sets ----------------------------------------------------------------------

    // lagwatch's state sets (one series per state, the current one at 1) in their order,
    // each with the colour the dashboards show it in.
    states:: {
      path: [
        ['converging', 'green'],
        ['lagging', 'orange'],
        ['stuck', 'red'],
        ['failing', 'dark-red'],
        ['halted', 'purple'],
        ['idle', 'text'],
      ],
      verdict: [
        ['agree', 'green'],
        ['explained', 'purple'],
        ['healthy_but_stuck', 'red'],
        ['watermark_passed_canary_missing', 'dark-red'],
        ['status_stale', 'orange'],
        ['unknown', 'text'],
      ],
      platform: [
        ['healthy', 'green'],
        ['error', 'red'],
        ['paused', 'purple'],
        ['not_running', 'orange'],
        ['unknown', 'text'],
      ],
    },

    // A state set as one number for a timeline: `base` + 1 while the first state is at 1,
    // + 2 for the second, …; `by` keeps those labels apart.
    coded(metric, label, states, selector, by='', base=0)::
      local agg = if by == '' then 'max ' else 'max by (%s) ' % by;
      local term(i) =
        (if i == 0 then '' else '%d * ' % (i + 1))
        + agg + '(%s{%%(%s)s, %s="%s"})' % [metric, selector, label, states[i][0]];
      (if base == 0 then '' else '%d + ' % base)
      + std.join(' + ', [term(i) for i in std.range(0, std.length(states) - 1)]),

    // The names and colours of the verdict (1 to 6) and the platform's state (10 not read
    // yet, 11 to 15) as `coded` numbers them.
    codedMappings::
      local named(states, base) = [
        [std.toString(base + i + 1), { text: states[i][0], color: states[i][1] }]
        for i in std.range(0, std.length(states) - 1)
      ];
      lib.valueMap(
        named(lib.states.verdict, 0)
        + [['10', { text: 'not read yet', color: 'text' }]]
        + named(lib.states.platform, 10)
      ),

    // --- Dashboards ----------------------------------------------------------------------

    // The `datasource` variable: any Prometheus data source (those matching `regex`), the
    // default one preselected.
    datasourceVariable(regex=''):: {
      type: 'datasource',
      name: 'datasource',
      label: 'Data source',
      query: 'prometheus',
      current: {},
      hide: 0,
      refresh: 1,
      regex: regex,
      options: [],
      skipUrlSync: false,
    },

    // A variable listing the values of `label` on the series `selector` selects
    // (label_values), refreshed with the time range; `multi` ones select all by default.
    queryVariable(name, label, selector, valueLabel, multi=true):: {
      local query = 'label_values(%s, %s)' % [selector % selectors, valueLabel],
      type: 'query',
      name: name,
      label: label,
      datasource: lib.datasource,
      query: { query: query, refId: 'PrometheusVariableQueryEditor-VariableQuery' },
      definition: query,
      refresh: 2,
      regex: '',
      sort: 1,
      hide: 0,
      multi: multi,
      includeAll: multi,
      options: [],
      skipUrlSync: false,
      current: if multi then { selected: true, text: ['All'], value: ['$__all'] } else {},
    },

    // Without a fixed base: a member that is up, as http://<its scrape address>, where lagwatch
    // serves its runbooks (as the alerts' links do). `up` is formatted with the selectors.
    runbookMemberVariable(up):: {
      local query = 'query_result(label_replace(%s == 1, "runbook_base", "http://$1", "instance", "(.+)"))' % (up % selectors),
      type: 'query',
      name: 'runbook_base',
      label: 'Runbook base',
      description: 'A lagwatch member that is up, as http://<its scrape address>: lagwatch serves its runbooks at /docs/runbooks/<AlertName>.md. Set runbookURLBase in the mixin to browse them elsewhere.',
      datasource: lib.datasource,
      query: { query: query, refId: 'PrometheusVariableQueryEditor-VariableQuery' },
      definition: query,
      refresh: 2,
      regex: '/runbook_base="([^"]+)"/',
      sort: 1,
      hide: 2,
      multi: false,
      includeAll: false,
      options: [],
      skipUrlSync: true,
      current: {},
    },

    // The hidden constant every runbook link starts with.
    runbookBaseVariable(base):: {
      type: 'constant',
      name: 'runbook_base',
      label: 'Runbook base',
      description: "Where the repository's files are browsed; runbook links are docs/runbooks/<AlertName>.md under it.",
      query: base,
      current: { selected: false, text: base, value: base },
      options: [{ selected: true, text: base, value: base }],
      hide: 2,
      skipUrlSync: true,
    },

    // A dashboard of lagwatch's: tagged, linked to the others and to the runbooks, not
    // editable (the JSON is generated), its panels laid out by `layout`.
    dashboard(uid, title, description, variables, panels):: {
      uid: uid,
      title: title,
      description: description,
      tags: ['lagwatch'],
      editable: false,
      graphTooltip: 1,
      timezone: 'browser',
      time: { from: 'now-6h', to: 'now' },
      timepicker: {},
      refresh: '1m',
      schemaVersion: 41,
      version: 1,
      id: null,
      fiscalYearStartMonth: 0,
      liveNow: false,
      annotations: { list: [] },
      links: [
        {
          type: 'dashboards',
          title: 'lagwatch',
          tags: ['lagwatch'],
          asDropdown: true,
          includeVars: false,
          keepTime: true,
          targetBlank: false,
          icon: 'external link',
        },
        {
          type: 'link',
          title: 'Runbooks',
          tooltip: "Every alert's runbook (docs/runbooks in the repository)",
          url: '${runbook_base}/docs/runbooks',
          targetBlank: true,
          icon: 'doc',
          asDropdown: false,
          includeVars: false,
          keepTime: false,
          tags: [],
        },
      ],
      templating: { list: variables },
      panels: lib.layout(panels),
    },

    // --- Layout --------------------------------------------------------------------------

    // Places panels left to right in 24 columns, a row heading on a line of its own, a new
    // line when a panel does not fit; a line is as tall as its tallest panel. Numbers the
    // panels 1, 2, … in order.
    layout(panels)::
      local step(acc, p) =
        local row = p.type == 'row';
        local wrap = row || acc.x + p.gridPos.w > 24;
        local y = if wrap then acc.y + acc.h else acc.y;
        local x = if wrap then 0 else acc.x;
        {
          x: x + p.gridPos.w,
          y: y,
          h: if wrap then p.gridPos.h else std.max(acc.h, p.gridPos.h),
          out: acc.out + [p { id: std.length(acc.out) + 1, gridPos+: { x: x, y: y } }],
        };
      std.foldl(step, panels, { x: 0, y: 0, h: 0, out: [] }).out,
  },
}
