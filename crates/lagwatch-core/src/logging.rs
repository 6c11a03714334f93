//! Log lines on stderr: `--log.format=logfmt|json`, as Prometheus has it, and the default filter.
//!
//! Both formats carry the same keys in the same order: `ts` (UTC, RFC 3339 with milliseconds),
//! `level` (`trace`, `debug`, `info`, `warn`, `error`), `module` (where it was logged: what
//! `RUST_LOG` filters on), `msg`, then the event's own fields (`source`, `target`, `sentinel`,
//! `outcome`, `error`, …). logfmt is one `key=value` line per event, a value in double quotes
//! when it is empty or holds a space, `=`, `"`, `\` or a control character (escaped as `\"`,
//! `\\`, `\n`, `\r`, `\t`, `\u001b`); json is one object per line, numbers and booleans as
//! such. Neither colours anything.
//!
//! [`filter`] is `RUST_LOG` (default `info`) with the connection-pool chatter of the HTTP
//! stack (`hyper`, `hyper_util`, `h2`, `reqwest`, `rustls`) kept at `info` when a bare
//! `debug` or `trace` would turn it on; naming one of those targets (or a module of one) in
//! `RUST_LOG` still does.

use std::fmt::{self, Write as _};

use chrono::{DateTime, SecondsFormat, Utc};
use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// `--log.format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// `ts=… level=… module=… msg=… key=value` lines.
    #[default]
    Logfmt,
    /// One JSON object per line, with the keys of logfmt.
    Json,
}

/// Targets whose debug output is connection and pool bookkeeping, not lagwatch's.
const QUIET: [&str; 5] = ["hyper", "hyper_util", "h2", "reqwest", "rustls"];

/// The filter for a `RUST_LOG` value (`None` or empty: `info`; unparsable: `info` too, as
/// before): with a bare level more verbose than `info`, every [`QUIET`] target it does not
/// name is added at `info` (a directive for one of its modules, being more specific, still
/// wins for that module).
pub fn filter(rust_log: Option<&str>) -> EnvFilter {
    let spec = rust_log.map(str::trim).filter(|s| !s.is_empty());
    let Some(spec) = spec else {
        return EnvFilter::new("info");
    };
    EnvFilter::try_new(directives(spec)).unwrap_or_else(|_| EnvFilter::new("info"))
}

/// `spec` with the [`QUIET`] targets it leaves to a bare `debug`/`trace` added at `info`.
fn directives(spec: &str) -> String {
    let parts: Vec<&str> = spec.split(',').map(str::trim).collect();
    let verbose = parts
        .iter()
        .filter_map(|d| d.parse::<LevelFilter>().ok())
        .any(|l| l > LevelFilter::INFO);
    let mut out = spec.to_string();
    if !verbose {
        return out;
    }
    for quiet in QUIET {
        // Targets match by prefix: `hyper=debug` also names `hyper_util`.
        let named = parts.iter().any(|d| {
            let target = d.split(['=', '[']).next().unwrap_or_default().trim();
            d.parse::<LevelFilter>().is_err() && !target.is_empty() && quiet.starts_with(target)
        });
        if !named {
            let _ = write!(out, ",{quiet}=info");
        }
    }
    out
}

/// A field's value as logged.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Text(String),
    I64(i64),
    U64(u64),
    F64(f64),
    Bool(bool),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Text(s) => f.write_str(s),
            Value::I64(v) => write!(f, "{v}"),
            Value::U64(v) => write!(f, "{v}"),
            Value::F64(v) => write!(f, "{v}"),
            Value::Bool(v) => write!(f, "{v}"),
        }
    }
}

/// An event's fields: the message, the `log` crate's target (for records of libraries that
/// log through `log`), and the rest in order.
#[derive(Default)]
struct Fields {
    msg: String,
    log_target: Option<String>,
    rest: Vec<(&'static str, Value)>,
}

impl Fields {
    fn put(&mut self, field: &Field, value: Value) {
        match field.name() {
            "message" => self.msg = value.to_string(),
            "log.target" => self.log_target = Some(value.to_string()),
            // The `log` record's module, file and line: noise next to `module`.
            name if name.starts_with("log.") => {}
            name => self.rest.push((name, value)),
        }
    }
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, Value::Text(format!("{value:?}")));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::Text(value.to_string()));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::I64(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::U64(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, Value::F64(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::Bool(value));
    }
}

/// The event formatter of `--log.format`.
#[derive(Debug, Clone, Copy)]
pub struct Lines(pub LogFormat);

impl Lines {
    /// One event as one line (with its newline).
    fn line(self, ts: DateTime<Utc>, event: &Event<'_>) -> String {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let meta = event.metadata();
        let module = fields
            .log_target
            .take()
            .unwrap_or_else(|| meta.target().to_string());
        let mut pairs = vec![
            (
                "ts",
                Value::Text(ts.to_rfc3339_opts(SecondsFormat::Millis, true)),
            ),
            (
                "level",
                Value::Text(meta.level().as_str().to_ascii_lowercase()),
            ),
            ("module", Value::Text(module)),
            ("msg", Value::Text(fields.msg)),
        ];
        pairs.extend(fields.rest);
        match self.0 {
            LogFormat::Logfmt => logfmt(&pairs),
            LogFormat::Json => json(&pairs),
        }
    }
}

impl<S, N> FormatEvent<S, N> for Lines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        writer.write_str(&self.line(Utc::now(), event))
    }
}

fn logfmt(pairs: &[(&str, Value)]) -> String {
    let mut out = String::new();
    for (i, (key, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.extend(key.chars().map(|c| {
            if c == '=' || c == '"' || c.is_whitespace() || c.is_control() {
                '_'
            } else {
                c
            }
        }));
        out.push('=');
        logfmt_value(&mut out, &value.to_string());
    }
    out.push('\n');
    out
}

fn logfmt_value(out: &mut String, v: &str) {
    let plain = !v.is_empty()
        && !v
            .chars()
            .any(|c| matches!(c, '=' | '"' | '\\') || c.is_whitespace() || c.is_control());
    if plain {
        out.push_str(v);
        return;
    }
    out.push('"');
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn json(pairs: &[(&str, Value)]) -> String {
    // Written pair by pair: a `serde_json::Map` would sort the keys, and `ts` comes first.
    let mut out = String::from("{");
    for (i, (key, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let v = match value {
            Value::Text(s) => serde_json::Value::from(s.as_str()),
            Value::I64(v) => serde_json::Value::from(*v),
            Value::U64(v) => serde_json::Value::from(*v),
            // NaN and infinities are not JSON numbers.
            Value::F64(v) => serde_json::Number::from_f64(*v)
                .map_or_else(|| serde_json::Value::from(v.to_string()), Into::into),
            Value::Bool(v) => serde_json::Value::from(*v),
        };
        let _ = write!(out, "{}:{v}", serde_json::Value::from(*key));
    }
    out.push_str("}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Runs `f` under a subscriber writing `format` lines at `rust_log` into a buffer.
    fn capture(format: LogFormat, rust_log: &str, f: impl FnOnce()) -> String {
        use std::io::{Read as _, Seek as _};
        let file = tempfile::tempfile().unwrap();
        let mut written = file.try_clone().unwrap();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(filter(Some(rust_log)))
            .event_format(Lines(format))
            .with_writer(Mutex::new(file))
            .finish();
        tracing::subscriber::with_default(subscriber, f);
        let mut text = String::new();
        written.rewind().unwrap();
        written.read_to_string(&mut text).unwrap();
        text
    }

    #[test]
    fn logfmt_quotes_and_escapes_what_would_break_a_pair() {
        let text = capture(LogFormat::Logfmt, "info", || {
            tracing::warn!(
                source = "crm",
                error = %"GET host/path: said \"no\"\nthen\\left",
                empty = "",
                n = 3u64,
                ok = true,
                "Probe did not converge."
            );
        });
        let line = text.strip_suffix('\n').expect("one line");
        assert!(!line.contains('\n'), "{line}");
        assert!(line.starts_with("ts=20"), "{line}");
        assert!(
            line.contains(
                " level=warn module=lagwatch::logging::tests msg=\"Probe did not converge.\" \
                 source=crm error=\"GET host/path: said \\\"no\\\"\\nthen\\\\left\" empty=\"\" \
                 n=3 ok=true"
            ),
            "{line}"
        );
    }

    #[test]
    fn json_has_the_keys_of_logfmt() {
        let text = capture(LogFormat::Json, "info", || {
            tracing::info!(source = "crm", reads = 4u64, lag = 1.5, "Probe converged.");
        });
        let v: serde_json::Value = serde_json::from_str(text.trim_end()).expect("json");
        assert!(text.starts_with("{\"ts\":\"20"), "{text}");
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        for key in ["ts", "level", "module", "msg", "source", "reads", "lag"] {
            assert!(keys.contains(&key), "{key} in {text}");
        }
        assert_eq!(v["level"], "info");
        assert_eq!(v["msg"], "Probe converged.");
        assert_eq!(v["reads"], 4);
        assert_eq!(v["lag"], 1.5);
        assert!(v["ts"].as_str().unwrap().ends_with('Z'));
    }

    #[test]
    fn a_bare_debug_keeps_the_http_stack_at_info_unless_named() {
        assert_eq!(
            directives("debug"),
            "debug,hyper=info,hyper_util=info,h2=info,reqwest=info,rustls=info"
        );
        assert_eq!(
            directives("trace,hyper_util::client=trace"),
            "trace,hyper_util::client=trace,hyper=info,hyper_util=info,h2=info,reqwest=info,rustls=info"
        );
        assert_eq!(
            directives("debug,hyper=debug"),
            "debug,hyper=debug,h2=info,reqwest=info,rustls=info"
        );
        // Nothing more verbose than info asked for: nothing to quiet, and nothing raised.
        assert_eq!(directives("warn"), "warn");
        assert_eq!(directives("lagwatch=debug"), "lagwatch=debug");
        let text = capture(LogFormat::Logfmt, "debug", || {
            tracing::debug!(target: "hyper_util::client::legacy::pool", "pooling idle connection");
            tracing::info!(target: "reqwest::connect", "kept");
            tracing::debug!("ours");
        });
        assert!(!text.contains("pooling"), "{text}");
        assert!(
            text.contains("msg=kept") && text.contains("msg=ours"),
            "{text}"
        );
        let named = capture(LogFormat::Logfmt, "debug,hyper_util::client=debug", || {
            tracing::debug!(target: "hyper_util::client::legacy::pool", "pooling idle connection");
            tracing::debug!(target: "hyper_util::rt", "not named");
        });
        assert!(named.contains("pooling"), "{named}");
        assert!(!named.contains("not named"), "{named}");
    }
}
