//! An `ExportLogsServiceRequest` as Lookout log records (the mapping is in the module doc of
//! [`super`]).

use chrono::{DateTime, Utc};
use lookout_protocol::{LogRecord, Record};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value};

use super::{Limits, Mapped, service_of, text_of};

/// Longest log text kept, in bytes (the tailer's default `max_line_bytes`); a longer body is
/// cut and marked as the tailer marks the lines it cuts.
pub const MAX_TEXT_BYTES: usize = 32 * 1024;

/// The records of `request`, and what was refused.
pub fn map(request: &ExportLogsServiceRequest, limits: &Limits, now: DateTime<Utc>) -> Mapped {
    let mut out = Mapped::default();
    for rl in &request.resource_logs {
        let attrs = rl.resource.as_ref().map_or(&[][..], |r| &r.attributes[..]);
        let service = service_of(attrs);
        if service.len() > limits.max_label_bytes {
            for sl in &rl.scope_logs {
                for _ in &sl.log_records {
                    out.refuse("a service.name longer than max_label_bytes");
                }
            }
            continue;
        }
        let source = format!("otlp:{service}");
        for sl in &rl.scope_logs {
            for r in &sl.log_records {
                let text = r.body.as_ref().map(cut_text).unwrap_or_default();
                // The time of the event, else when it was observed, else now.
                let time = [r.time_unix_nano, r.observed_time_unix_nano]
                    .into_iter()
                    .find(|t| *t != 0)
                    .and_then(|t| super::time_of(t, now).ok())
                    .unwrap_or(now);
                out.records.push(Record::Log(LogRecord {
                    time,
                    source: source.clone(),
                    level: level(r.severity_number, &r.severity_text).map(str::to_string),
                    text,
                    position: None,
                }));
            }
        }
    }
    out
}

/// A body as text, cut at [`MAX_TEXT_BYTES`] and marked as the tailer marks the lines it cuts;
/// a long string body is not copied whole first.
fn cut_text(body: &AnyValue) -> String {
    let (mut text, mut cut) = match &body.value {
        Some(any_value::Value::StringValue(s)) if s.len() > MAX_TEXT_BYTES => {
            let mut end = MAX_TEXT_BYTES;
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            (s[..end].to_string(), s.len() - end)
        }
        _ => (text_of(body), 0),
    };
    cut += lookout_runtime::truncate_on_char_boundary(&mut text, MAX_TEXT_BYTES);
    if cut > 0 {
        text.push_str(&format!("…[truncated {cut} bytes]"));
    }
    text
}

/// The level of an OpenTelemetry severity: its number's range (TRACE 1-4, DEBUG 5-8, INFO
/// 9-12, WARN 13-16, ERROR 17-20, FATAL 21-24, which Lookout calls error as the tailer does),
/// else its text read as the tailer reads a level word, else none.
pub fn level(number: i32, text: &str) -> Option<&'static str> {
    match number {
        1..=4 => Some("trace"),
        5..=8 => Some("debug"),
        9..=12 => Some("info"),
        13..=16 => Some("warn"),
        17..=24 => Some("error"),
        _ => crate::logs::lines::normalise(text.trim()),
    }
}
