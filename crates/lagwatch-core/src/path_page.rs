//! The status page of one path: its recent probes as a table, each with every read, and an
//! inline SVG plot of the last hour's lags with their uncertainty (no JavaScript).
//!
//! It is how an operator gets from a number on the main page (or a spike in Grafana) to the
//! probes behind it: each row names the sentinel, says why the probe ended as it did, and
//! lists the reads that decided it.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};

use crate::chart::Frame;
use crate::probe::Outcome;
use crate::probe::platform::ClaimRecord;
use crate::probe::trace::{ProbeView, ReadResult};
use crate::status::{PathView, esc, head, human};

/// The plot's window.
const WINDOW_SECONDS: f64 = 3600.0;
const FRAME: Frame = Frame {
    width: 900.0,
    height: 260.0,
    left: 64.0,
    right: 12.0,
    top: 18.0,
    bottom: 28.0,
};

fn parse(t: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(t)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The SVG plot: x is when each sentinel was written (the last hour), y its lag; a bar spans
/// the interval the arrival is known to lie in; the objective is a dashed line; probes that
/// did not converge are marked above the plot in red.
pub fn plot(view: &PathView, probes: &[ProbeView], now: DateTime<Utc>) -> String {
    let start = now - chrono::Duration::seconds(WINDOW_SECONDS as i64);
    let points: Vec<(f64, &ProbeView)> = probes
        .iter()
        .filter_map(|p| {
            let at = parse(&p.written_at)?;
            (at >= start).then(|| ((at - start).num_milliseconds() as f64 / 1000.0, p))
        })
        .collect();
    let top_lag = points
        .iter()
        .filter_map(|(_, p)| Some(p.lag_seconds? + p.lag_uncertainty_seconds.unwrap_or(0.0)))
        .fold(view.objective_seconds * 1.25, f64::max)
        .max(0.001);
    let x = |secs: f64| FRAME.x(secs / WINDOW_SECONDS);
    let y = |lag: f64| FRAME.y(lag / top_lag);

    let mut svg = FRAME.open("Lag of the last hour's probes");
    for i in 0..=4 {
        let fraction = f64::from(i) / 4.0;
        FRAME.y_tick(&mut svg, fraction, &human(top_lag * fraction));
    }
    for m in [60, 45, 30, 15, 0] {
        let label = if m == 0 {
            "now".to_string()
        } else {
            format!("−{m} min")
        };
        FRAME.x_label(&mut svg, x(WINDOW_SECONDS - f64::from(m) * 60.0), 0, &label);
    }
    let oy = y(view.objective_seconds);
    let _ = writeln!(
        svg,
        r##"<line class="objective" x1="{x1}" x2="{x2}" y1="{oy:.1}" y2="{oy:.1}" stroke="#bf8700" stroke-dasharray="6 4"/><text x="{tx}" y="{ty:.1}" font-size="11" fill="#7d4e00">objective {obj}</text>"##,
        x1 = FRAME.left,
        x2 = FRAME.width - FRAME.right,
        tx = FRAME.left + 6.0,
        ty = oy - 4.0,
        obj = esc(&human(view.objective_seconds)),
    );
    for (t, p) in &points {
        let xx = x(*t);
        match (p.outcome, p.lag_seconds) {
            (Outcome::Converged, Some(lag)) => {
                let u = p.lag_uncertainty_seconds.unwrap_or(0.0);
                let colour = if lag > view.objective_seconds {
                    "#9a6700"
                } else {
                    "#1a7f37"
                };
                let _ = writeln!(
                    svg,
                    r##"<g class="probe converged"><title>{key}: {lag} ± {u}</title><line x1="{xx:.1}" x2="{xx:.1}" y1="{y1:.1}" y2="{y2:.1}" stroke="{colour}" stroke-width="1.5"/><circle cx="{xx:.1}" cy="{cy:.1}" r="2.5" fill="{colour}"/></g>"##,
                    key = esc(&p.sentinel),
                    lag = esc(&human(lag)),
                    u = esc(&human(u)),
                    y1 = y((lag - u).max(0.0)),
                    y2 = y(lag + u),
                    cy = y(lag),
                );
            }
            (outcome, _) => {
                let _ = writeln!(
                    svg,
                    r##"<g class="probe unconverged"><title>{key}: {o}</title><path d="M{x0:.1} {y0:.1} l4 -7 l4 7 z" fill="#cf222e"/></g>"##,
                    key = esc(&p.sentinel),
                    o = outcome.label(),
                    x0 = xx - 4.0,
                    y0 = FRAME.top - 2.0,
                );
            }
        }
    }
    svg.push_str("</svg>\n");
    svg
}

fn reads_list(p: &ProbeView) -> String {
    let mut h = String::from("<ol class=\"reads\">");
    for (i, r) in p.reads.iter().enumerate() {
        let mark = if Some(i) == p.first_hit {
            " <b>first hit</b>"
        } else if Some(i) == p.last_miss {
            " <b>last miss</b>"
        } else {
            ""
        };
        let result = match (&r.result, &r.error) {
            (ReadResult::Error, Some(e)) => {
                let status = e.status.map(|s| format!(" HTTP {s}")).unwrap_or_default();
                format!("error {}{status}: {}", esc(e.kind), esc(&e.message))
            }
            (res, _) => serde_json::to_value(res)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
        };
        let _ = write!(
            h,
            "<li>sent +{:.3} s, answered +{:.3} s: {result}{mark}</li>",
            r.sent_after_ack_seconds, r.answered_after_ack_seconds
        );
    }
    h.push_str("</ol>");
    h
}

/// The page of one path; `claims`: what its platform status surface said, oldest first.
pub fn render(
    instance: &str,
    view: &PathView,
    probes: &[ProbeView],
    claims: &[ClaimRecord],
    now: DateTime<Utc>,
) -> String {
    let mut h = String::with_capacity(16_384 + probes.len() * 1024);
    head(
        &mut h,
        &format!("lagwatch · {} → {}", view.source, view.target),
        Some(15),
        "th,td{padding:.4rem .6rem;vertical-align:top}\n\
         td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}\n\
         td.key{font-family:ui-monospace,monospace;font-size:.8rem;word-break:break-all}\n\
         td.why{max-width:36rem;overflow-wrap:anywhere}\n\
         ol.reads{margin:.3rem 0 0;padding-left:1.4rem;font-size:.85rem;overflow-wrap:anywhere}",
    );
    let _ = write!(
        h,
        r#"<p><a href="/">← all paths</a></p>
<h1>{src} → {tgt}</h1>
<p class="sub">Instance <b>{inst}</b> · <span class="state {st}">{st}</span> · objective {obj} · timeout {timeout} · a sentinel every {interval} · refreshes every 15 s</p>
<h2>Lag, last hour</h2>
"#,
        src = esc(&view.source),
        tgt = esc(&view.target),
        inst = esc(instance),
        st = view.state.label(),
        obj = esc(&human(view.objective_seconds)),
        timeout = esc(&human(view.timeout_seconds)),
        interval = esc(&human(view.interval_seconds)),
    );
    h.push_str(&plot(view, probes, now));
    let api = format!(
        "/api/v1/probes?{}",
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("source", &view.source)
            .append_pair("target", &view.target)
            .finish()
    );
    let _ = write!(
        h,
        r#"<p class="sub">Each bar spans the interval the sentinel's arrival is known to lie in; the dot is the reported lag. Red marks above the plot are probes that did not converge. The same probes as JSON: <a href="{api}">{api_text}</a>.</p>
<h2>Recent probes ({n}, newest write first)</h2>
<table>
<thead><tr><th>Written (UTC)</th><th>Sentinel</th><th>Outcome</th><th>Lag</th><th>Reads</th><th>Why</th></tr></thead>
<tbody>
"#,
        api = esc(&api),
        api_text = esc(&api),
        n = probes.len(),
    );
    for p in probes {
        let lag = match (p.lag_seconds, p.lag_uncertainty_seconds) {
            (Some(l), Some(u)) => format!("{} ± {}", human(l), human(u)),
            _ => "–".to_string(),
        };
        let written = parse(&p.written_at)
            .map(|t| t.format("%H:%M:%S%.3f").to_string())
            .unwrap_or_else(|| p.written_at.clone());
        let _ = writeln!(
            h,
            r#"<tr data-sentinel="{key}"><td class="num">{written}</td><td class="key">{key}</td><td><span class="state {o}">{o}</span></td><td class="num">{lag}</td><td><details><summary>{n} reads</summary>{reads}</details></td><td class="why">{why}</td></tr>"#,
            key = esc(&p.sentinel),
            o = p.outcome.label(),
            n = p.reads.len(),
            reads = reads_list(p),
            why = esc(&p.why),
        );
    }
    h.push_str("</tbody></table>\n");
    platform_section(&mut h, view, claims);
    h.push_str("</body></html>\n");
    h
}

/// What the platform said over time, newest first, under the verdict it gives now.
fn platform_section(h: &mut String, view: &PathView, claims: &[ClaimRecord]) {
    let Some(p) = &view.platform else {
        return;
    };
    let _ = write!(
        h,
        r#"<h2>Platform says ({surface} through {system})</h2>
<p><span class="state">{verdict}</span> {why}{error}</p>
<table>
<thead><tr><th>Read (UTC)</th><th>State</th><th>In its words</th><th>Last sync (our clock)</th><th>Watermark</th><th>Detail</th></tr></thead>
<tbody>
"#,
        surface = p.surface,
        system = esc(&p.system),
        verdict = p.verdict.label(),
        why = esc(&p.why),
        error = p
            .error
            .as_deref()
            .map(|e| format!(" · the last read failed: {}", esc(e)))
            .unwrap_or_default(),
    );
    for c in claims.iter().rev().take(60) {
        let _ = writeln!(
            h,
            r#"<tr><td class="num">{read}</td><td>{state}</td><td>{raw}</td><td class="num">{sync}</td><td class="num">{mark}</td><td class="why">{detail}</td></tr>"#,
            read = c.read_at.format("%H:%M:%S"),
            state = c.claim.state.label(),
            raw = esc(&c.claim.raw),
            sync = c
                .sync_by
                .map_or_else(|| "–".to_string(), |t| t.format("%H:%M:%S").to_string()),
            mark = c
                .claim
                .watermark
                .map_or_else(|| "–".to_string(), |w| w.to_string()),
            detail = esc(c.claim.detail.as_deref().unwrap_or_default()),
        );
    }
    h.push_str("</tbody></table>\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::trace::ReadView;
    use crate::status::PathStatus;

    fn view() -> PathView {
        PathView {
            platform: None,
            source: "crm".into(),
            target: "<lake>".into(),
            state: PathStatus::Converging,
            objective_seconds: 30.0,
            timeout_seconds: 60.0,
            interval_seconds: 10.0,
            last_lag_seconds: None,
            lag_uncertainty_seconds: None,
            staleness_seconds: 0.0,
            p50_seconds_1h: None,
            p95_seconds_1h: None,
            success_ratio_1h: None,
            probes_1h: 0,
            in_flight: 0,
            last_outcome: None,
            last_error_kind: None,
            last_error_message: None,
            last_error_at: None,
            last_written_at: None,
            last_converged_at: None,
            writes_failing: false,
            expected_convergence: None,
            contract: Vec::new(),
        }
    }

    fn probe(written: DateTime<Utc>, outcome: Outcome, lag: Option<f64>) -> ProbeView {
        let read = |result| ReadView {
            sent_at: String::new(),
            sent_after_ack_seconds: 1.0,
            answered_at: String::new(),
            answered_after_ack_seconds: 1.1,
            result,
            error: None,
        };
        ProbeView {
            source: "crm".into(),
            target: "<lake>".into(),
            sentinel: "lagwatch-t-<x>".into(),
            seq: 1,
            written_at: written.to_rfc3339(),
            acknowledged_at: written.to_rfc3339(),
            write_seconds: 0.02,
            resolved_at: written.to_rfc3339(),
            resolved_after_ack_seconds: 2.0,
            outcome,
            why: "because <reasons>".into(),
            lag_seconds: lag,
            lag_uncertainty_seconds: lag.map(|_| 0.5),
            first_hit: Some(1),
            last_miss: Some(0),
            resumed: false,
            reads: vec![read(ReadResult::Absent), read(ReadResult::Present)],
            delete: None,
        }
    }

    #[test]
    fn the_page_plots_the_last_hour_and_escapes_everything() {
        let now = Utc::now();
        let probes = [
            probe(
                now - chrono::Duration::seconds(30),
                Outcome::Converged,
                Some(12.0),
            ),
            probe(now - chrono::Duration::seconds(90), Outcome::Timeout, None),
            // Older than the plot's hour: in the table, not in the plot.
            probe(
                now - chrono::Duration::seconds(7200),
                Outcome::Converged,
                Some(3.0),
            ),
        ];
        let h = render("t", &view(), &probes, &[], now);
        assert!(!h.contains("<script"));
        assert!(!h.contains("<lake>") && h.contains("&lt;lake&gt;"));
        assert!(h.contains("because &lt;reasons&gt;"));
        assert_eq!(h.matches("class=\"probe converged\"").count(), 1);
        assert_eq!(h.matches("class=\"probe unconverged\"").count(), 1);
        assert_eq!(h.matches("class=\"objective\"").count(), 1);
        assert_eq!(h.matches("<tr data-sentinel=").count(), 3);
        assert!(h.contains("<b>first hit</b>") && h.contains("<b>last miss</b>"));
    }

    #[test]
    fn the_platforms_claims_are_listed_newest_first_under_the_verdict() {
        use crate::connector::status::{Claim, ClaimState};
        use crate::probe::platform::{PlatformView, Verdict};
        let now = Utc::now();
        let claim = |secs: i64, state, raw: &str| ClaimRecord {
            read_at: now - chrono::Duration::seconds(secs),
            claim: Claim {
                state,
                raw: raw.to_string(),
                last_sync: None,
                watermark: Some(42),
                syncs: None,
                detail: Some("<boom>".to_string()),
            },
            sync_after: None,
            sync_by: None,
            clock_offset_seconds: None,
        };
        let claims = [
            claim(120, ClaimState::Healthy, "syncstate=2 (InProgress)"),
            claim(60, ClaimState::Error, "syncstate=8 (CompletedWithFailures)"),
        ];
        let mut v = view();
        v.platform = Some(PlatformView {
            surface: "synapse_link",
            system: "crm".to_string(),
            verdict: Verdict::Explained,
            why: "stuck, and the platform says error".to_string(),
            latest: claims.last().cloned(),
            error: None,
        });
        let h = render("t", &v, &[], &claims, now);
        assert!(h.contains("Platform says (synapse_link through crm)"));
        assert!(h.contains("explained</span> stuck, and the platform says error"));
        let newest = h.find("CompletedWithFailures").expect("the newest claim");
        let oldest = h.find("InProgress").expect("the oldest claim");
        assert!(newest < oldest, "newest first");
        assert!(h.contains("&lt;boom&gt;") && !h.contains("<boom>"));
        // Without a platform status, no section.
        assert!(!render("t", &view(), &[], &[], now).contains("Platform says"));
    }
}
