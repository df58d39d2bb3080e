//! Log output (`log.format`): `plain` for a terminal, `json` for a SIEM (one object a line,
//! the span's and the event's fields flattened into it), `journald` for systemd (an sd-daemon
//! priority prefix such as `<6>`, no timestamp and no colours: journald adds both).

use std::fmt;

use serde::Deserialize;
use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// `2026-12-02T07:00:00.000000Z  INFO target: message key=value`, coloured on a terminal.
    #[default]
    Plain,
    /// One JSON object a line: `timestamp` (RFC 3339, UTC), `level`, `target`, `span`,
    /// `message`, and every field of the event and of the spans around it.
    Json,
    /// `<6>target: message key=value`: the priority prefix journald reads from stdout and
    /// stderr (`<3>` error, `<4>` warning, `<6>` info, `<7>` debug and trace).
    Journald,
}

impl LogFormat {
    /// The config word.
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Plain => "plain",
            LogFormat::Json => "json",
            LogFormat::Journald => "journald",
        }
    }
}

/// Installs the process's log subscriber on stderr: `filter` is a `tracing` filter (`RUST_LOG`
/// wins when set); `ansi` colours plain lines (a terminal only). Does nothing when one is
/// already installed.
pub fn init(format: LogFormat, filter: &str, ansi: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(filter))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Plain => builder.with_ansi(ansi).try_init(),
        LogFormat::Json => builder
            .with_ansi(false)
            .fmt_fields(JsonFields)
            .event_format(Json)
            .try_init(),
        LogFormat::Journald => builder
            .with_ansi(false)
            .event_format(Journald::default())
            .try_init(),
    };
}

/// The sd-daemon priority of a level (`sd-daemon.h`: `SD_ERR` 3, `SD_WARNING` 4, `SD_INFO` 6,
/// `SD_DEBUG` 7).
pub fn priority(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        _ => 7,
    }
}

/// The journald line: the priority prefix, then tracing's own line without time, level word
/// or colours.
pub struct Journald(
    tracing_subscriber::fmt::format::Format<tracing_subscriber::fmt::format::Full, ()>,
);

impl Default for Journald {
    fn default() -> Self {
        Journald(
            tracing_subscriber::fmt::format()
                .without_time()
                .with_level(false)
                .with_ansi(false),
        )
    }
}

impl<S, N> FormatEvent<S, N> for Journald
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        write!(writer, "<{}>", priority(event.metadata().level()))?;
        self.0.format_event(ctx, writer, event)
    }
}

/// Collects fields into a JSON object: numbers and booleans as such, the rest as text.
struct Collect<'a>(&'a mut Map<String, Value>);

impl Visit for Collect<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        let v = serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number);
        self.0.insert(field.name().to_string(), v);
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_string(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_string(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_string(), value.into());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_string(), value.into());
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0
            .insert(field.name().to_string(), value.to_string().into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().to_string(), format!("{value:?}").into());
    }
}

/// A span's fields, kept as the text of a JSON object (what `FormattedFields` holds), so that
/// [`Json`] can flatten them into each event's line.
pub struct JsonFields;

impl<'writer> FormatFields<'writer> for JsonFields {
    fn format_fields<R: tracing_subscriber::field::RecordFields>(
        &self,
        mut writer: Writer<'writer>,
        fields: R,
    ) -> fmt::Result {
        let mut map = Map::new();
        fields.record(&mut Collect(&mut map));
        write!(writer, "{}", Value::Object(map))
    }

    fn add_fields(
        &self,
        current: &'writer mut FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> fmt::Result {
        let mut map = match serde_json::from_str::<Value>(&current.fields) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        };
        fields.record(&mut Collect(&mut map));
        current.fields = Value::Object(map).to_string();
        Ok(())
    }
}

/// The JSON line. Field names are stable: `timestamp`, `level` (`ERROR` .. `TRACE`),
/// `target`, `span` (the innermost span's name, when there is one), `message`, then the
/// fields of the spans (outermost first) and of the event; an event field wins over a span
/// field of the same name, and neither overrides the five above.
pub struct Json;

const RESERVED: [&str; 4] = ["timestamp", "level", "target", "span"];

impl<S> FormatEvent<S, JsonFields> for Json
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, JsonFields>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut fields = Map::new();
        let mut innermost = None;
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                innermost = Some(span.name());
                let ext = span.extensions();
                if let Some(f) = ext.get::<FormattedFields<JsonFields>>() {
                    if let Ok(Value::Object(m)) = serde_json::from_str::<Value>(&f.fields) {
                        fields.extend(m);
                    }
                }
            }
        }
        event.record(&mut Collect(&mut fields));
        let mut line = Map::new();
        line.insert(
            "timestamp".into(),
            chrono::Utc::now()
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
                .into(),
        );
        line.insert("level".into(), event.metadata().level().as_str().into());
        line.insert("target".into(), event.metadata().target().into());
        if let Some(name) = innermost {
            line.insert("span".into(), name.into());
        }
        for (k, v) in fields {
            if !RESERVED.contains(&k.as_str()) {
                line.insert(k, v);
            }
        }
        writeln!(writer, "{}", Value::Object(line))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::fmt::MakeWriter;

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            crate::sync::lock(&self.0).extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buf {
        type Writer = Buf;
        fn make_writer(&'a self) -> Buf {
            self.clone()
        }
    }

    impl Buf {
        fn text(&self) -> String {
            String::from_utf8(crate::sync::lock(&self.0).clone()).unwrap()
        }
    }

    fn emit() {
        let span = tracing::info_span!(
            "radius",
            src = "192.0.2.1:1812",
            outcome = tracing::field::Empty
        );
        let _e = span.enter();
        span.record("outcome", "accept");
        tracing::info!(
            mac = "02:00:00:00:00:01",
            vlan = 100u16,
            degraded = false,
            "decision \"quoted\""
        );
        tracing::warn!(level = "ignored", "the reserved names stay ours");
        tracing::error!("failure");
        tracing::debug!("not shown at info");
    }

    #[test]
    fn json_lines_flatten_span_and_event_fields() {
        let buf = Buf::default();
        let sub = tracing_subscriber::fmt()
            .with_env_filter("info")
            .with_writer(buf.clone())
            .with_ansi(false)
            .fmt_fields(JsonFields)
            .event_format(Json)
            .finish();
        tracing::subscriber::with_default(sub, emit);
        let text = buf.text();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        assert_eq!(lines.len(), 3, "{text}");
        let first = &lines[0];
        assert_eq!(first["level"], "INFO");
        assert_eq!(first["target"], "poortwachter::logging::tests");
        assert_eq!(first["span"], "radius");
        assert_eq!(first["src"], "192.0.2.1:1812");
        assert_eq!(first["outcome"], "accept");
        assert_eq!(first["mac"], "02:00:00:00:00:01");
        assert_eq!(first["vlan"], 100);
        assert_eq!(first["degraded"], false);
        assert_eq!(first["message"], "decision \"quoted\"");
        let ts = first["timestamp"].as_str().unwrap();
        assert!(ts.ends_with('Z'), "{ts}");
        chrono::DateTime::parse_from_rfc3339(ts).unwrap();
        assert_eq!(
            lines[1]["level"], "WARN",
            "a field never overrides the level"
        );
        assert_eq!(lines[2]["level"], "ERROR");
    }

    #[test]
    fn journald_lines_carry_the_priority_and_no_time() {
        let buf = Buf::default();
        let sub = tracing_subscriber::fmt()
            .with_env_filter("info")
            .with_writer(buf.clone())
            .with_ansi(false)
            .event_format(Journald::default())
            .finish();
        tracing::subscriber::with_default(sub, emit);
        let text = buf.text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].starts_with("<6>radius{"), "{}", lines[0]);
        assert!(
            lines[0].contains("mac=\"02:00:00:00:00:01\""),
            "{}",
            lines[0]
        );
        assert!(lines[1].starts_with("<4>"), "{}", lines[1]);
        assert!(lines[2].starts_with("<3>"), "{}", lines[2]);
        assert!(!text.contains('\u{1b}'), "no colours");
        assert!(!text.contains(" INFO ") && !text.contains("Z "), "{text}");
    }

    #[test]
    fn formats_by_their_config_word() {
        for f in [LogFormat::Plain, LogFormat::Json, LogFormat::Journald] {
            let parsed: LogFormat = serde_json::from_value(f.as_str().into()).unwrap();
            assert_eq!(parsed, f);
        }
        assert!(serde_json::from_value::<LogFormat>("syslog".into()).is_err());
    }
}
