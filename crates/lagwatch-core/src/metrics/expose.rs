//! Writing the exposition: the Prometheus text format 0.0.4 (the default) and OpenMetrics 1.0
//! (when the scraper asks for it, so histogram buckets can carry exemplars).
//!
//! The per-path and per-system families are written directly from lagwatch's own atomics
//! ([`super::series`]); what stays in the `prometheus` registry (a few dozen low-cardinality
//! families) is gathered and written by the same writer, so both formats come from one place.

use prometheus::proto::{MetricFamily, MetricType};

/// The exposition format of a scrape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `text/plain; version=0.0.4`: no exemplars, counters named with `_total` in `# TYPE`.
    Text,
    /// `application/openmetrics-text; version=1.0.0`: exemplars on histogram buckets, counter
    /// families named without `_total`, a closing `# EOF`.
    OpenMetrics,
}

impl Format {
    /// The format a scraper's `Accept` header asks for: OpenMetrics only when it names it.
    pub fn negotiate(accept: Option<&str>) -> Format {
        match accept {
            Some(a) if a.contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::Text,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// The kinds of family the writer knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
    Summary,
    StateSet,
}

/// Escapes a label value (backslash, double quote, newline).
pub fn escape_into(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Escapes HELP text: backslash and newline, and in OpenMetrics the double quote too.
fn escape_help(out: &mut String, help: &str, format: Format) {
    for c in help.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if format == Format::OpenMetrics => out.push_str("\\\""),
            c => out.push(c),
        }
    }
}

/// Writes `# HELP` and `# TYPE` of a family. `name` is the sample name of counters (with
/// `_total`); OpenMetrics names the family without it.
pub fn header(out: &mut String, format: Format, name: &str, help: &str, kind: Kind) {
    let family = match (format, kind) {
        (Format::OpenMetrics, Kind::Counter) => name.strip_suffix("_total").unwrap_or(name),
        _ => name,
    };
    let kind = match (format, kind) {
        (_, Kind::Counter) => "counter",
        (_, Kind::Gauge) => "gauge",
        (_, Kind::Histogram) => "histogram",
        (_, Kind::Summary) => "summary",
        // A state set as the usual enum gauge (one series per state, 1 on the current one):
        // OpenMetrics' own `stateset` type would force the state's label to be named after
        // the family instead of `state`.
        (_, Kind::StateSet) => "gauge",
    };
    out.push_str("# HELP ");
    out.push_str(family);
    out.push(' ');
    escape_help(out, help, format);
    out.push_str("\n# TYPE ");
    out.push_str(family);
    out.push(' ');
    out.push_str(kind);
    out.push('\n');
}

/// Writes an unsigned integer (most samples are counts: this is the hot path of a scrape).
pub fn int(out: &mut String, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    // Only ASCII digits were written.
    out.push_str(std::str::from_utf8(&buf[i..]).unwrap_or("0"));
}

/// Writes a float as both formats spell it.
pub fn float(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v == f64::INFINITY {
        out.push_str("+Inf");
    } else if v == f64::NEG_INFINITY {
        out.push_str("-Inf");
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        if v < 0.0 {
            out.push('-');
        }
        int(out, v.abs() as u64);
    } else {
        // Shortest round-trip digits, as both formats accept (`0.25`, `1.5e-7`).
        out.push_str(ryu::Buffer::new().format_finite(v));
    }
}

/// Writes a Unix time in seconds with millisecond precision (exemplar timestamps).
pub fn millis(out: &mut String, seconds: f64) {
    let ms = (seconds * 1000.0).round().max(0.0) as u64;
    int(out, ms / 1000);
    out.push('.');
    let frac = ms % 1000;
    if frac < 100 {
        out.push('0');
    }
    if frac < 10 {
        out.push('0');
    }
    int(out, frac);
}

/// Writes `name{labels} ` (no braces without labels).
fn series(out: &mut String, name: &str, labels: &str) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        out.push_str(labels);
        out.push('}');
    }
    out.push(' ');
}

/// Writes one sample line: `name{labels} value`. `labels` is already rendered (`a="x",b="y"`,
/// sorted by name) and may be empty.
pub fn sample(out: &mut String, name: &str, labels: &str, value: f64) {
    series(out, name, labels);
    float(out, value);
    out.push('\n');
}

/// Writes an integer sample (counters), without float formatting.
pub fn sample_u64(out: &mut String, name: &str, labels: &str, value: u64) {
    series(out, name, labels);
    int(out, value);
    out.push('\n');
}

/// Writes every family gathered from a `prometheus` registry in `format`.
pub fn gathered(out: &mut String, format: Format, families: &[MetricFamily]) {
    let mut labels = String::new();
    for f in families {
        let name = f.name();
        let kind = match f.get_field_type() {
            MetricType::COUNTER => Kind::Counter,
            MetricType::HISTOGRAM => Kind::Histogram,
            MetricType::SUMMARY => Kind::Summary,
            _ => Kind::Gauge,
        };
        if f.get_metric().is_empty() {
            continue;
        }
        header(out, format, name, f.help(), kind);
        for m in f.get_metric() {
            labels.clear();
            for (i, l) in m.get_label().iter().enumerate() {
                if i > 0 {
                    labels.push(',');
                }
                labels.push_str(l.name());
                labels.push_str("=\"");
                escape_into(&mut labels, l.value());
                labels.push('"');
            }
            match kind {
                Kind::Counter => sample(out, name, &labels, m.get_counter().get_value()),
                Kind::Gauge | Kind::StateSet => {
                    sample(out, name, &labels, m.get_gauge().get_value())
                }
                Kind::Histogram => {
                    let h = m.get_histogram();
                    let bucket = format!("{name}_bucket");
                    let sep = if labels.is_empty() { "" } else { "," };
                    for b in h.get_bucket() {
                        let mut l = labels.clone();
                        l.push_str(sep);
                        l.push_str("le=\"");
                        float(&mut l, b.upper_bound());
                        l.push('"');
                        sample_u64(out, &bucket, &l, b.cumulative_count());
                    }
                    let mut l = labels.clone();
                    l.push_str(sep);
                    l.push_str("le=\"+Inf\"");
                    sample_u64(out, &bucket, &l, h.get_sample_count());
                    sample(out, &format!("{name}_sum"), &labels, h.get_sample_sum());
                    sample_u64(out, &format!("{name}_count"), &labels, h.get_sample_count());
                }
                Kind::Summary => {
                    let s = m.get_summary();
                    sample(out, &format!("{name}_sum"), &labels, s.sample_sum());
                    sample_u64(out, &format!("{name}_count"), &labels, s.sample_count());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openmetrics_is_asked_for_by_name() {
        assert_eq!(Format::negotiate(None), Format::Text);
        assert_eq!(
            Format::negotiate(Some("text/plain;version=0.0.4;q=0.5,*/*;q=0.1")),
            Format::Text
        );
        assert_eq!(
            Format::negotiate(Some(
                "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
            )),
            Format::OpenMetrics
        );
    }

    #[test]
    fn headers_and_numbers_follow_each_format() {
        let mut t = String::new();
        header(&mut t, Format::Text, "x_total", "a\nb", Kind::Counter);
        assert_eq!(t, "# HELP x_total a\\nb\n# TYPE x_total counter\n");
        let mut o = String::new();
        header(
            &mut o,
            Format::OpenMetrics,
            "x_total",
            "say \"h\"",
            Kind::Counter,
        );
        assert_eq!(o, "# HELP x say \\\"h\\\"\n# TYPE x counter\n");
        let mut n = String::new();
        for v in [0.0, 2.0, -3.0, 0.25, f64::INFINITY, f64::NAN, 1e20] {
            float(&mut n, v);
            n.push(' ');
        }
        assert_eq!(n, "0 2 -3 0.25 +Inf NaN 1e20 ");
        let mut i = String::new();
        for v in [0, 7, 10, 18_446_744_073_709_551_615] {
            int(&mut i, v);
            i.push(' ');
        }
        assert_eq!(i, "0 7 10 18446744073709551615 ");
        let mut t = String::new();
        millis(&mut t, 1_700_000_000.5);
        t.push(' ');
        millis(&mut t, 12.007);
        assert_eq!(t, "1700000000.500 12.007");
        let mut l = String::new();
        escape_into(&mut l, "a\"b\\c\nd");
        assert_eq!(l, "a\\\"b\\\\c\\nd");
    }
}
