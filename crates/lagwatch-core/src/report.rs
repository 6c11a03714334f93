//! The consistency report operators attach to a design review: per path, each guarantee as
//! declared against what was measured over a window, the sentinels that broke them, the delete
//! lag and the t-visibility curve. As Markdown (`lagwatch report`) or as one self-contained,
//! printable HTML page (`GET /report`, `lagwatch report --format html`).
//!
//! Both render a [`ContractsReport`] and nothing else, the JSON of `/api/v1/contracts`, so the
//! command renders what a running instance measured without living in its process, and the page
//! and the file say the same. What a path shows is a list of sections ([`SECTIONS`]): a measure
//! still to come (k-staleness of update canaries, causal pairs) is one more section there, in
//! both formats at once, when `contracts` reports it; nothing is shown for what is not measured.

use std::fmt::Write as _;

use crate::chart::Frame;
use crate::contracts::{
    ContractsReport, GuaranteeReport, KBucket, PathContract, Status, VisibilityBucket, evidence_url,
};
use crate::status::{esc, head, human};

/// One measure of a path, rendered in both formats.
struct Section {
    title: &'static str,
    markdown: fn(&PathContract, &mut String),
    html: fn(&PathContract, &mut String),
}

/// What a path shows, in order; where a new measure goes.
const SECTIONS: &[Section] = &[
    Section {
        title: "Guarantees",
        markdown: guarantees_md,
        html: guarantees_html,
    },
    Section {
        title: "Evidence",
        markdown: evidence_md,
        html: evidence_html,
    },
    Section {
        title: "Delete lag",
        markdown: delete_lag_md,
        html: delete_lag_html,
    },
    Section {
        title: "t-visibility",
        markdown: visibility_md,
        html: visibility_html,
    },
    Section {
        title: "k-staleness",
        markdown: staleness_md,
        html: staleness_html,
    },
];

/// The report as Markdown, for a review document or a ticket. The t-visibility curve is the
/// same inline SVG as on the page, and a table as well: many Markdown renderers drop SVG.
pub fn markdown(r: &ContractsReport) -> String {
    let mut m = String::with_capacity(4096 + r.paths.len() * 4096);
    let _ = write!(
        m,
        "# Consistency report: {inst}\n\n\
         Window {start} → {end} (UTC), as measured by lagwatch instance **{inst}**: per path, each \
         guarantee its contract declares (or that is measured without being declared) against what \
         the probes showed. The same data as JSON: [/api/v1/contracts](/api/v1/contracts).\n",
        inst = md(&r.instance),
        start = md(&r.window_start),
        end = md(&r.generated_at),
    );
    if r.paths.is_empty() {
        m.push_str("\nNo path is configured.\n");
    }
    for p in &r.paths {
        let _ = write!(m, "\n## {}\n", md(&heading(p)));
        for s in SECTIONS {
            let _ = write!(m, "\n### {}\n\n", s.title);
            (s.markdown)(p, &mut m);
        }
    }
    m
}

/// The report as one HTML page: no JavaScript, no external asset, every name escaped, no
/// refresh (it is read, printed or saved, not watched). Links are relative to the instance.
pub fn html(r: &ContractsReport) -> String {
    let mut h = String::with_capacity(8192 + r.paths.len() * 8192);
    head(
        &mut h,
        &format!(
            "lagwatch report · {} · {} → {}",
            r.instance, r.window_start, r.generated_at
        ),
        None,
        "td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}\n\
         td.key{font-family:ui-monospace,monospace;font-size:.8rem;word-break:break-all}\n\
         td.holds{color:#116329;font-weight:600} td.violated{color:#a40e26;font-weight:600}\n\
         td.no_data,td.not_observable{color:#57606a}\n\
         section.path{margin-top:2rem} h3{font-size:.95rem;margin:1rem 0 .4rem}\n\
         footer{margin-top:2rem;color:#57606a;font-size:.85rem}\n\
         @media print{body{margin:1cm;background:#fff} table{box-shadow:none}\n\
         h2,h3{break-after:avoid} table,svg{break-inside:avoid} a{color:inherit}}",
    );
    let _ = write!(
        h,
        r#"<h1>Consistency report · {inst}</h1>
<p class="sub">Window <b>{start}</b> → <b>{end}</b> (UTC) · {n} paths · each guarantee as declared against what the probes showed · the same as JSON: <a href="/api/v1/contracts">/api/v1/contracts</a> · <a href="/">status page</a></p>
"#,
        inst = esc(&r.instance),
        start = esc(&r.window_start),
        end = esc(&r.generated_at),
        n = r.paths.len(),
    );
    if r.paths.is_empty() {
        h.push_str("<p>No path is configured.</p>\n");
    }
    for p in &r.paths {
        let _ = writeln!(h, r#"<section class="path"><h2>{}</h2>"#, esc(&heading(p)));
        for s in SECTIONS {
            let _ = writeln!(h, "<h3>{}</h3>", s.title);
            (s.html)(p, &mut h);
        }
        h.push_str("</section>\n");
    }
    h.push_str(
        "<footer>Verdicts: <i>holds</i> (observed, never broken), <i>violated N×</i>, <i>no data</i> \
         (nothing in the window could show it), <i>not observable</i> (the target kind cannot show \
         it). Evidence links open the probe in this instance's <code>/api/v1/probes</code>.</footer>\n\
         </body></html>\n",
    );
    h
}

fn heading(p: &PathContract) -> String {
    format!("{} → {} ({})", p.source, p.target, p.target_kind)
}

/// The verdict in the words of a review.
fn verdict(g: &GuaranteeReport) -> String {
    match g.status {
        Status::Holds => "holds".to_string(),
        Status::Violated => format!("violated {}×", g.violations),
        Status::NoData => "no data".to_string(),
        Status::NotObservable if g.summary.is_empty() => "not observable".to_string(),
        Status::NotObservable => format!("not observable: {}", g.summary),
    }
}

/// The summary column: for a guarantee that cannot be observed its reason is the verdict.
fn summary(g: &GuaranteeReport) -> &str {
    match g.status {
        Status::NotObservable => "–",
        _ => &g.summary,
    }
}

fn status_class(s: Status) -> &'static str {
    match s {
        Status::Holds => "holds",
        Status::Violated => "violated",
        Status::NoData => "no_data",
        Status::NotObservable => "not_observable",
    }
}

/// Text for Markdown: HTML-escaped (Markdown passes HTML through) with Markdown's own
/// punctuation escaped, so that a name can neither open a link, emphasis or code nor end a
/// table cell; a line break becomes a space (a row is one line).
fn md(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in esc(s).chars() {
        match c {
            '\\' | '`' | '*' | '_' | '[' | ']' | '|' | '#' | '~' | '!' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

fn guarantees_md(p: &PathContract, m: &mut String) {
    m.push_str(
        "| guarantee | declared | verdict | observations | summary |\n|---|---|---|---:|---|\n",
    );
    for g in &p.guarantees {
        let _ = writeln!(
            m,
            "| {} | {} | {} | {} | {} |",
            md(&g.guarantee),
            md(g.declared.as_deref().unwrap_or("not declared")),
            md(&verdict(g)),
            g.observations,
            md(summary(g)),
        );
    }
}

fn guarantees_html(p: &PathContract, h: &mut String) {
    h.push_str("<table><thead><tr><th>Guarantee</th><th>Declared</th><th>Verdict</th><th>Observations</th><th>Summary</th></tr></thead><tbody>\n");
    for g in &p.guarantees {
        let _ = writeln!(
            h,
            r#"<tr data-guarantee="{name}"><td>{name}</td><td>{declared}</td><td class="{class}">{verdict}</td><td class="num">{obs}</td><td>{summary}</td></tr>"#,
            name = esc(&g.guarantee),
            declared = esc(g.declared.as_deref().unwrap_or("not declared")),
            class = status_class(g.status),
            verdict = esc(&verdict(g)),
            obs = g.observations,
            summary = esc(summary(g)),
        );
    }
    h.push_str("</tbody></table>\n");
}

fn evidence_md(p: &PathContract, m: &mut String) {
    let mut any = false;
    for g in &p.guarantees {
        for e in &g.evidence {
            any = true;
            let _ = writeln!(
                m,
                "- {}: [{}]({}) at {}: {}",
                md(&g.guarantee),
                md(&e.sentinel),
                evidence_url(&g.guarantee, &e.sentinel),
                md(&e.at),
                md(&e.what),
            );
        }
    }
    if !any {
        m.push_str("none\n");
    }
}

fn evidence_html(p: &PathContract, h: &mut String) {
    let rows: Vec<_> = p
        .guarantees
        .iter()
        .flat_map(|g| g.evidence.iter().map(move |e| (g, e)))
        .collect();
    if rows.is_empty() {
        h.push_str("<p>none</p>\n");
        return;
    }
    h.push_str("<table><thead><tr><th>Guarantee</th><th>At (UTC)</th><th>Sentinel</th><th>What happened</th></tr></thead><tbody>\n");
    for (g, e) in rows {
        let _ = writeln!(
            h,
            r#"<tr><td>{g}</td><td class="num">{at}</td><td class="key"><a href="{url}">{key}</a></td><td>{what}</td></tr>"#,
            g = esc(&g.guarantee),
            at = esc(&e.at),
            url = esc(&evidence_url(&g.guarantee, &e.sentinel)),
            key = esc(&e.sentinel),
            what = esc(&e.what),
        );
    }
    h.push_str("</tbody></table>\n");
}

/// The delete lag in words: its quantiles and how many deletes they are of.
fn delete_lag(p: &PathContract) -> String {
    match &p.delete_lag {
        Some(l) => format!(
            "p50 {}, p95 {}, max {} of {} {}",
            human(l.p50),
            human(l.p95),
            human(l.max),
            l.count,
            if l.count == 1 { "delete" } else { "deletes" },
        ),
        None => "no delete watched in the window".to_string(),
    }
}

fn delete_lag_md(p: &PathContract, m: &mut String) {
    let _ = writeln!(m, "{}", md(&delete_lag(p)));
}

fn delete_lag_html(p: &PathContract, h: &mut String) {
    let _ = writeln!(h, r#"<p class="delete-lag">{}</p>"#, esc(&delete_lag(p)));
}

/// A bucket's upper bound as the axis labels it: `0.25 s`, `30 s`, `10 min`, `2 h`, `+Inf`.
fn age(bound: Option<f64>) -> String {
    match bound {
        None => "+Inf".to_string(),
        Some(s) if s < 60.0 => format!("{s} s"),
        Some(s) if s < 3600.0 => format!("{} min", s / 60.0),
        Some(s) => format!("{} h", s / 3600.0),
    }
}

/// P(fresh | age in the bucket); `None` for a bucket without reads, which is a gap in the
/// curve, not a 0.
fn p_fresh(b: &VisibilityBucket) -> Option<f64> {
    let reads = b.fresh + b.stale;
    (reads > 0).then(|| b.fresh as f64 / reads as f64)
}

fn percent(p: f64) -> String {
    format!("{:.1} %", p * 100.0)
}

const VISIBILITY: Frame = Frame {
    width: 900.0,
    height: 300.0,
    left: 56.0,
    right: 12.0,
    top: 18.0,
    bottom: 48.0,
};

/// The t-visibility curve: a slot per age bucket (their bounds are about log-spaced, so the
/// axis is too), P(fresh) per bucket joined by a line broken where a bucket had no read, the
/// reads of each bucket under its label.
fn visibility_svg(p: &PathContract) -> String {
    let f = VISIBILITY;
    // On one line: in Markdown a blank line would end the SVG's HTML block.
    let label = format!("P(fresh | age) of {} by age bucket", heading(p));
    let mut svg = f.open(&label.replace(['\n', '\r'], " "));
    for i in 0..=4 {
        let fraction = f64::from(i) / 4.0;
        f.y_tick(&mut svg, fraction, &format!("{} %", i * 25));
    }
    f.x_label(&mut svg, f.left / 2.0, 0, "age ≤");
    f.x_label(&mut svg, f.left / 2.0, 1, "reads");
    let n = p.t_visibility.len().max(1) as f64;
    let mut curve = String::new();
    let mut points = String::new();
    let mut joined = false;
    for (i, b) in p.t_visibility.iter().enumerate() {
        let x = f.x((i as f64 + 0.5) / n);
        let reads = b.fresh + b.stale;
        f.x_label(&mut svg, x, 0, &age(b.age_le));
        f.x_label(&mut svg, x, 1, &reads.to_string());
        let Some(pf) = p_fresh(b) else {
            joined = false;
            continue;
        };
        let y = f.y(pf);
        let _ = write!(curve, "{}{x:.1} {y:.1} ", if joined { "L" } else { "M" });
        joined = true;
        let _ = writeln!(
            points,
            r##"<g class="bucket"><title>age ≤ {age}: {fresh} of {reads} reads fresh ({pct})</title><circle cx="{x:.1}" cy="{y:.1}" r="3.5" fill="#0969da"/></g>"##,
            age = esc(&age(b.age_le)),
            fresh = b.fresh,
            pct = percent(pf),
        );
    }
    if !curve.is_empty() {
        let _ = writeln!(
            svg,
            r##"<path class="curve" d="{}" fill="none" stroke="#0969da" stroke-width="1.5"/>"##,
            curve.trim_end()
        );
    }
    svg.push_str(&points);
    svg.push_str("</svg>\n");
    svg
}

/// What the curve shows, under it.
const VISIBILITY_NOTE: &str = "P(fresh | age): of the reads sent that long after the source acknowledged the write, \
     the share that found the sentinel. Each bucket holds the ages above the previous bound up to its own; \
     a bucket without reads is a gap, not 0.";

fn visibility_md(p: &PathContract, m: &mut String) {
    // An HTML block in Markdown ends at a blank line: the SVG has none.
    m.push_str(&visibility_svg(p));
    let _ = write!(
        m,
        "\n{VISIBILITY_NOTE}\n\n| age ≤ | reads | P(fresh) |\n|---|---:|---:|\n"
    );
    for b in &p.t_visibility {
        let _ = writeln!(
            m,
            "| {} | {} | {} |",
            age(b.age_le),
            b.fresh + b.stale,
            p_fresh(b).map_or_else(|| "–".to_string(), percent),
        );
    }
}

fn visibility_html(p: &PathContract, h: &mut String) {
    h.push_str(&visibility_svg(p));
    let _ = writeln!(h, r#"<p class="sub">{}</p>"#, esc(VISIBILITY_NOTE));
}

const STALENESS: Frame = Frame {
    width: 900.0,
    height: 240.0,
    left: 56.0,
    right: 12.0,
    top: 18.0,
    bottom: 48.0,
};

/// A k-staleness bucket as the axis labels it: `k ≤ 3`, `k > 21`.
fn k_label(b: &KBucket, last_bound: Option<u64>) -> String {
    match (b.k_le, last_bound) {
        (Some(k), _) => k.to_string(),
        (None, Some(k)) => format!("> {k}"),
        (None, None) => "+Inf".to_string(),
    }
}

/// The k-staleness distribution: a bar per bucket, its height the bucket's share of the
/// canary's reads, the reads under its label.
fn staleness_svg(p: &PathContract, buckets: &[KBucket]) -> String {
    let f = STALENESS;
    let label = format!("k-staleness of {} by bucket", heading(p));
    let mut svg = f.open(&label.replace(['\n', '\r'], " "));
    for i in 0..=4 {
        let fraction = f64::from(i) / 4.0;
        f.y_tick(&mut svg, fraction, &format!("{} %", i * 25));
    }
    f.x_label(&mut svg, f.left / 2.0, 0, "k ≤");
    f.x_label(&mut svg, f.left / 2.0, 1, "reads");
    let total: u64 = buckets.iter().map(|b| b.reads).sum();
    let n = buckets.len().max(1) as f64;
    let last = buckets.iter().filter_map(|b| b.k_le).max();
    let width = f.plot_width() / n * 0.6;
    for (i, b) in buckets.iter().enumerate() {
        let x = f.x((i as f64 + 0.5) / n);
        let k = k_label(b, last);
        f.x_label(&mut svg, x, 0, &k);
        f.x_label(&mut svg, x, 1, &b.reads.to_string());
        if b.reads == 0 || total == 0 {
            continue;
        }
        let share = b.reads as f64 / total as f64;
        let (top, bottom) = (f.y(share), f.y(0.0));
        let _ = writeln!(
            svg,
            r##"<g class="bucket"><title>k {op}{k}: {reads} of {total} reads ({pct})</title><rect x="{x0:.1}" y="{top:.1}" width="{width:.1}" height="{h:.1}" fill="#bf8700"/></g>"##,
            op = if b.k_le.is_some() { "≤ " } else { "" },
            k = esc(&k),
            reads = b.reads,
            pct = percent(share),
            x0 = x - width / 2.0,
            h = (bottom - top).max(0.0),
        );
    }
    svg.push_str("</svg>\n");
    svg
}

/// What the bars show, under them.
const STALENESS_NOTE: &str = "k-staleness of the update canary: for each read at the target, how many versions the source \
     had acknowledged before the read that were newer than the one it returned (0: the latest).";

/// Why a path has no k-staleness.
const NO_CANARY: &str = "No update canary on this path (update_interval; a source that can write a record again and a target that returns its content).";

fn staleness_md(p: &PathContract, m: &mut String) {
    let Some(buckets) = &p.k_staleness else {
        let _ = writeln!(m, "{}", md(NO_CANARY));
        return;
    };
    m.push_str(&staleness_svg(p, buckets));
    let _ = write!(m, "\n{STALENESS_NOTE}\n\n| k ≤ | reads |\n|---|---:|\n");
    let last = buckets.iter().filter_map(|b| b.k_le).max();
    for b in buckets {
        let _ = writeln!(m, "| {} | {} |", md(&k_label(b, last)), b.reads);
    }
}

fn staleness_html(p: &PathContract, h: &mut String) {
    let Some(buckets) = &p.k_staleness else {
        let _ = writeln!(h, r#"<p class="sub">{}</p>"#, esc(NO_CANARY));
        return;
    };
    h.push_str(&staleness_svg(p, buckets));
    let _ = writeln!(h, r#"<p class="sub">{}</p>"#, esc(STALENESS_NOTE));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contracts::{Evidence, LagSummary};

    const HOSTILE: &str = "<script>alert(1)</script>|*x*_[y](javascript:z)";

    fn guarantee(name: &str, status: Status, violations: u64, summary: &str) -> GuaranteeReport {
        GuaranteeReport {
            guarantee: name.to_string(),
            declared: None,
            status,
            observations: 40,
            violations,
            summary: summary.to_string(),
            evidence: Vec::new(),
        }
    }

    fn bucket(age_le: Option<f64>, fresh: u64, stale: u64) -> VisibilityBucket {
        VisibilityBucket {
            age_le,
            fresh,
            stale,
        }
    }

    fn report() -> ContractsReport {
        let mut visibility = guarantee("visibility", Status::Holds, 0, "100.0 % of 40 probes");
        visibility.declared = Some("2m".to_string());
        let mut monotonic = guarantee("monotonic_reads", Status::Violated, 3, HOSTILE);
        monotonic.evidence = vec![Evidence {
            at: "2026-12-05T22:40:01Z".to_string(),
            sentinel: "lagwatch-t-0190 &x".to_string(),
            url: "/api/v1/probes?sentinel=lagwatch-t-0190+%26x".to_string(),
            what: "missing from a later read".to_string(),
        }];
        ContractsReport {
            instance: "<inst>".to_string(),
            generated_at: "2026-12-06T10:00:00Z".to_string(),
            window_start: "2026-12-05T10:00:00Z".to_string(),
            paths: vec![
                PathContract {
                    source: HOSTILE.to_string(),
                    target: "t\"arget\n\nnext".to_string(),
                    target_kind: "simulated".to_string(),
                    guarantees: vec![
                        visibility,
                        monotonic,
                        guarantee("deletes", Status::NoData, 0, "0 of 0 deletes"),
                    ],
                    t_visibility: vec![
                        bucket(Some(0.25), 0, 4),
                        bucket(Some(0.5), 0, 0),
                        bucket(Some(1.0), 3, 1),
                        bucket(Some(120.0), 1, 0),
                        bucket(Some(7200.0), 0, 0),
                        bucket(None, 2, 2),
                    ],
                    delete_lag: Some(LagSummary {
                        count: 12,
                        p50: 1.5,
                        p95: 4.0,
                        max: 61.0,
                    }),
                    k_staleness: Some(
                        [(Some(0), 30), (Some(1), 10), (Some(2), 0), (None, 5)]
                            .into_iter()
                            .map(|(k_le, reads)| KBucket { k_le, reads })
                            .collect(),
                    ),
                },
                PathContract {
                    source: "crm".to_string(),
                    target: "lake".to_string(),
                    target_kind: "delta".to_string(),
                    guarantees: vec![guarantee(
                        "deletes",
                        Status::NotObservable,
                        0,
                        "a lake cursor keeps a sentinel once found",
                    )],
                    t_visibility: vec![bucket(Some(1.0), 0, 0)],
                    delete_lag: None,
                    k_staleness: None,
                },
            ],
        }
    }

    #[test]
    fn hostile_names_are_escaped_in_both_formats() {
        let r = report();
        let h = html(&r);
        assert!(!h.contains("<script"), "{h}");
        assert!(!h.contains("<inst>") && h.contains("&lt;inst&gt;"));
        assert!(h.contains("t&quot;arget"));
        assert!(h.contains("lagwatch-t-0190 &amp;x"));
        // The link's key is URL-encoded, then HTML-escaped.
        assert!(
            h.contains(r#"href="/api/v1/probes?sentinel=lagwatch-t-0190+%26x""#),
            "{h}"
        );
        let m = markdown(&r);
        assert!(
            !m.contains("<script") && m.contains("&lt;script&gt;"),
            "{m}"
        );
        assert!(m.contains(r"\|\*x\*\_\[y\](javascript:z)"), "{m}");
        assert!(
            !m.contains("t&quot;arget\n"),
            "a name cannot break a line: {m}"
        );
        // Every table row of a path keeps its five cells, whatever the summary holds.
        for row in m.lines().filter(|l| l.starts_with("| monotonic")) {
            assert_eq!(row.replace(r"\|", "").matches('|').count(), 6, "{row}");
        }
    }

    #[test]
    fn verdicts_are_words() {
        let r = report();
        let words: Vec<String> = r
            .paths
            .iter()
            .flat_map(|p| p.guarantees.iter().map(verdict))
            .collect();
        assert_eq!(
            words,
            [
                "holds",
                "violated 3×",
                "no data",
                "not observable: a lake cursor keeps a sentinel once found"
            ]
        );
        let m = markdown(&r);
        assert!(
            m.contains("| visibility | 2m | holds | 40 | 100.0 % of 40 probes |"),
            "{m}"
        );
        assert!(
            m.contains("| deletes | not declared | no data | 40 |"),
            "{m}"
        );
        let h = html(&r);
        assert!(
            h.contains(r#"<td class="violated">violated 3×</td>"#),
            "{h}"
        );
        assert!(h.contains("not observable: a lake cursor keeps a sentinel once found"));
        assert_eq!(
            h.matches("<tr data-guarantee=").count(),
            4,
            "a row per guarantee"
        );
    }

    #[test]
    fn evidence_delete_lag_and_their_absence_are_said() {
        let r = report();
        let m = markdown(&r);
        assert!(
            m.contains("- monotonic\\_reads: [lagwatch-t-0190 &amp;x](/api/v1/probes?sentinel=lagwatch-t-0190+%26x) at 2026-12-05T22:40:01Z: missing from a later read"),
            "{m}"
        );
        assert!(
            m.contains("p50 1.5 s, p95 4.0 s, max 1 min 1 s of 12 deletes"),
            "{m}"
        );
        assert!(m.contains("no delete watched in the window"));
        assert_eq!(m.matches("\n### Evidence\n\nnone\n").count(), 1, "{m}");
        let h = html(&r);
        assert_eq!(h.matches("<p>none</p>").count(), 1);
        assert!(h.contains("of 12 deletes") && h.contains("no delete watched in the window"));
    }

    /// The y of each circle, in the order drawn.
    fn circles(svg: &str) -> Vec<String> {
        svg.split("<circle ")
            .skip(1)
            .filter_map(|c| c.split("cy=\"").nth(1)?.split('"').next())
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn the_curve_plots_each_ratio_and_leaves_empty_buckets_as_gaps() {
        let r = report();
        let svg = visibility_svg(&r.paths[0]);
        let y = |p: f64| format!("{:.1}", VISIBILITY.y(p));
        // 0/4, –, 3/4, 1/1, –, 2/4: a point per bucket with reads, none at 0 for the others.
        assert_eq!(circles(&svg), [y(0.0), y(0.75), y(1.0), y(0.5)]);
        // The line breaks at the empty buckets: a new segment after each gap.
        let d = svg
            .split("class=\"curve\" d=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .unwrap_or_default();
        assert_eq!(d.matches('M').count(), 3, "{d}");
        assert_eq!(d.matches('L').count(), 1, "{d}");
        // Every bucket is labelled with its bound and its reads, the gaps with 0.
        for label in ["0.25 s", "0.5 s", "1 s", "2 min", "2 h", "+Inf"] {
            assert!(svg.contains(&format!(">{label}</text>")), "{label}");
        }
        assert!(svg.contains("2 of 4 reads fresh (50.0 %)"));
        assert_eq!(svg.matches(">0</text>").count(), 2, "{svg}");
        // Nothing to plot: a frame, no curve.
        let empty = visibility_svg(&r.paths[1]);
        assert!(circles(&empty).is_empty() && !empty.contains("class=\"curve\""));
    }

    #[test]
    fn k_staleness_is_a_bar_per_bucket_by_share_and_its_absence_is_said() {
        let r = report();
        let svg = staleness_svg(
            &r.paths[0],
            r.paths[0].k_staleness.as_deref().unwrap_or(&[]),
        );
        // Three buckets with reads, one empty: three bars.
        assert_eq!(svg.matches("<g class=\"bucket\">").count(), 3, "{svg}");
        assert!(
            svg.contains("<title>k ≤ 0: 30 of 45 reads (66.7 %)</title>"),
            "{svg}"
        );
        assert!(
            svg.contains("<title>k &gt; 2: 5 of 45 reads (11.1 %)</title>"),
            "{svg}"
        );
        let m = markdown(&r);
        assert!(
            m.contains(
                "| k ≤ | reads |\n|---|---:|\n| 0 | 30 |\n| 1 | 10 |\n| 2 | 0 |\n| &gt; 2 | 5 |\n"
            ),
            "{m}"
        );
        assert!(m.contains("No update canary on this path"), "{m}");
        assert!(html(&r).contains("No update canary on this path"));
    }

    #[test]
    fn markdown_gives_the_curve_as_a_table_too() {
        let m = markdown(&report());
        assert!(m.contains("| 0.25 s | 4 | 0.0 % |"), "{m}");
        assert!(m.contains("| 0.5 s | 0 | – |"), "{m}");
        assert!(m.contains("| 1 s | 4 | 75.0 % |"));
        assert!(m.contains("| +Inf | 4 | 50.0 % |"));
        // The SVG is an HTML block: no blank line may end it early.
        let svg = m
            .split("<svg")
            .nth(1)
            .and_then(|s| s.split("</svg>").next());
        assert!(svg.is_some_and(|s| !s.contains("\n\n")));
    }

    #[test]
    fn the_page_is_self_contained_titled_and_does_not_refresh() {
        let h = html(&report());
        assert!(h.contains(
            "<title>lagwatch report · &lt;inst&gt; · 2026-12-05T10:00:00Z → 2026-12-06T10:00:00Z</title>"
        ));
        assert!(!h.contains("http-equiv=\"refresh\""));
        assert!(!h.contains("<script") && !h.contains("src=") && !h.contains("<link"));
        assert!(h.contains(r#"<a href="/api/v1/contracts">"#));
        assert!(h.contains("@media print"));
        assert_eq!(h.matches("<section class=\"path\">").count(), 2);
        // A t-visibility curve per path, and k-staleness bars where a canary runs.
        assert_eq!(h.matches("<svg ").count(), 3);
    }
}
