//! Logs and metrics set-up.
//!
//! Logs are JSON lines on stdout: `{"ts":…,"level":…,"msg":…,"target":…, <fields>}`. The message
//! key is `msg` (tests and log shippers look for `{"msg":"listening",…}`). Metric names live in
//! `hookline_actors::names`, re-exported here.

pub use hookline_actors::names;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde_json::{Map, Value};
use std::fmt;
use std::sync::OnceLock;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

struct JsonLines;

struct Fields(Map<String, Value>);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(key(field), Value::String(format!("{value:?}")));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(key(field), Value::String(value.to_string()));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(key(field), Value::from(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(key(field), Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(key(field), Value::from(value));
    }
}

fn key(field: &Field) -> String {
    match field.name() {
        "message" => "msg".to_string(),
        other => other.to_string(),
    }
}

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let mut fields = Fields(Map::new());
        // The fields of the spans the event is in (such as a request's `request_id`), outermost
        // first, as `key=value` pairs of ids (values without spaces).
        for span in ctx.event_scope().into_iter().flat_map(|scope| scope.from_root()) {
            let extensions = span.extensions();
            let Some(formatted) = extensions.get::<tracing_subscriber::fmt::FormattedFields<N>>() else {
                continue;
            };
            for (name, value) in formatted.fields.split(' ').filter_map(|pair| pair.split_once('=')) {
                fields
                    .0
                    .insert(name.to_string(), Value::String(value.trim_matches('"').to_string()));
            }
        }
        fields.0.insert(
            "ts".into(),
            Value::String(humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()),
        );
        fields.0.insert(
            "level".into(),
            Value::String(event.metadata().level().to_string().to_lowercase()),
        );
        event.record(&mut fields);
        fields
            .0
            .insert("target".into(), Value::String(event.metadata().target().to_string()));
        let line = serde_json::to_string(&Value::Object(fields.0)).map_err(|_| fmt::Error)?;
        writeln!(writer, "{line}")
    }
}

/// Install the JSON log subscriber (once per process; later calls do nothing).
pub fn init_logging(level: &str) {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| v.parse::<EnvFilter>().ok())
        .unwrap_or_else(|| EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        // Span fields are read back as `key=value` text: no colour codes in it (set before the
        // event format, which replaces the one `with_ansi` belongs to).
        .with_ansi(false)
        .with_env_filter(filter)
        .event_format(JsonLines)
        .with_writer(std::io::stdout)
        .try_init();
}

/// Histogram buckets of every `_seconds` histogram.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0, 3600.0,
    21600.0, 86400.0,
];

/// The process-wide Prometheus recorder (installed on first use). Its histograms buffer
/// samples until rendered: `sampler` runs its upkeep, so memory stays bounded without scrapes.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            // Real histograms (buckets, not client-side quantiles), so percentiles can be taken
            // across nodes. From 1 ms to a day: end-to-end latency includes retries.
            let recorder = PrometheusBuilder::new()
                .set_buckets(LATENCY_BUCKETS)
                .expect("buckets are not empty")
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (an embedding program's): then this
            // handle renders an empty page rather than failing the node.
            if metrics::set_global_recorder(recorder).is_ok() {
                names::describe_all();
            }
            handle
        })
        .clone()
}
