//! An `ExportMetricsServiceRequest` as Lookout metric samples (the mapping is in the module doc
//! of [`super`]). A data point that cannot be stored is refused alone and counted, with the
//! reason, for the answer's `partial_success`; the others are kept.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use lookout_protocol::{MetricSample, MetricType, Record};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, HistogramDataPoint, NumberDataPoint, SummaryDataPoint, metric,
    number_data_point,
};

use super::{Limits, Mapped, labels_of, service_of, time_of};

/// Longest metric name kept (the OpenTelemetry API's limit on instrument names).
pub const MAX_NAME_BYTES: usize = 255;

/// The samples of `request`, and what was refused.
pub fn map(request: &ExportMetricsServiceRequest, limits: &Limits, now: DateTime<Utc>) -> Mapped {
    let mut out = Mapped::default();
    for rm in &request.resource_metrics {
        let attrs = rm.resource.as_ref().map_or(&[][..], |r| &r.attributes[..]);
        let service = service_of(attrs);
        for sm in &rm.scope_metrics {
            for m in &sm.metrics {
                let mut at = Point {
                    out: &mut out,
                    limits,
                    service: &service,
                    name: &m.name,
                    now,
                };
                match &m.data {
                    Some(metric::Data::Gauge(g)) => {
                        for p in &g.data_points {
                            at.number(p, MetricType::Gauge);
                        }
                    }
                    Some(metric::Data::Sum(s)) => {
                        let kind = if s.is_monotonic {
                            MetricType::Counter
                        } else {
                            MetricType::Gauge
                        };
                        let cumulative = cumulative(s.aggregation_temporality);
                        for p in &s.data_points {
                            match cumulative {
                                Ok(()) => at.number(p, kind),
                                Err(why) => at.out.refuse(why),
                            }
                        }
                    }
                    Some(metric::Data::Histogram(h)) => {
                        let cumulative = cumulative(h.aggregation_temporality);
                        for p in &h.data_points {
                            match cumulative {
                                Ok(()) => at.histogram(p),
                                Err(why) => at.out.refuse(why),
                            }
                        }
                    }
                    Some(metric::Data::Summary(s)) => {
                        for p in &s.data_points {
                            at.summary(p);
                        }
                    }
                    Some(metric::Data::ExponentialHistogram(h)) => {
                        for _ in &h.data_points {
                            at.out.refuse(
                                "exponential histograms are not stored: use the SDK's explicit \
                                 bucket histogram aggregation (the default) for this instrument",
                            );
                        }
                    }
                    // A metric without data has no points to count.
                    None => {}
                }
            }
        }
    }
    out
}

/// Whether a temporality is one stored: cumulative. A delta is a change since the last export,
/// and a Lookout counter is a running total; the agent keeps no state to add deltas up.
fn cumulative(temporality: i32) -> Result<(), &'static str> {
    if temporality == AggregationTemporality::Cumulative as i32 {
        Ok(())
    } else {
        Err(
            "only cumulative sums and histograms are stored: set the exporter's temporality \
             preference to cumulative (the SDKs' default)",
        )
    }
}

/// What the points of one metric share.
struct Point<'a> {
    out: &'a mut Mapped,
    limits: &'a Limits,
    service: &'a str,
    name: &'a str,
    now: DateTime<Utc>,
}

impl Point<'_> {
    /// The labels and time of a point, or why it is refused.
    fn prepare(
        &self,
        attributes: &[KeyValue],
        time_unix_nano: u64,
        reserved: &[&str],
    ) -> Result<(BTreeMap<String, String>, DateTime<Utc>), &'static str> {
        if self.name.is_empty() {
            return Err("a metric without a name");
        }
        if self.name.len() > MAX_NAME_BYTES {
            return Err("a metric name longer than 255 bytes");
        }
        let labels = labels_of(self.service, attributes, reserved, self.limits)?;
        let time = time_of(time_unix_nano, self.now)?;
        Ok((labels, time))
    }

    fn push(
        &mut self,
        suffix: &str,
        labels: BTreeMap<String, String>,
        time: DateTime<Utc>,
        value: f64,
        metric_type: MetricType,
    ) {
        self.out.records.push(Record::Metric(MetricSample {
            name: format!("{}{suffix}", self.name),
            labels,
            time,
            value,
            metric_type,
        }));
    }

    fn number(&mut self, p: &NumberDataPoint, kind: MetricType) {
        let value = match p.value {
            Some(number_data_point::Value::AsDouble(v)) => v,
            Some(number_data_point::Value::AsInt(v)) => v as f64,
            None => return self.out.refuse("a data point without a value"),
        };
        if !value.is_finite() {
            return self
                .out
                .refuse("a value that is not finite (NaN or infinite)");
        }
        match self.prepare(&p.attributes, p.time_unix_nano, &[]) {
            Ok((labels, time)) => {
                self.out.points += 1;
                self.push("", labels, time, value, kind);
            }
            Err(why) => self.out.refuse(why),
        }
    }

    /// `_bucket{le}` (cumulative counts, `+Inf` last), `_count` and `_sum`, all counters: as a
    /// Prometheus histogram is exposed, and stored by the `prometheus` integration.
    fn histogram(&mut self, p: &HistogramDataPoint) {
        let buckets = &p.bucket_counts;
        let bounds = &p.explicit_bounds;
        if !buckets.is_empty() && buckets.len() != bounds.len() + 1 {
            return self
                .out
                .refuse("a histogram whose bucket counts are not one more than its bounds");
        }
        if bounds.iter().any(|b| !b.is_finite()) || p.sum.is_some_and(|s| !s.is_finite()) {
            return self
                .out
                .refuse("a value that is not finite (NaN or infinite)");
        }
        let (labels, time) = match self.prepare(&p.attributes, p.time_unix_nano, &["le"]) {
            Ok(x) => x,
            Err(why) => return self.out.refuse(why),
        };
        self.out.points += 1;
        let mut running = 0u64;
        for (i, count) in buckets.iter().enumerate() {
            running = running.saturating_add(*count);
            let le = bounds
                .get(i)
                .map_or_else(|| "+Inf".to_string(), |b| b.to_string());
            let mut l = labels.clone();
            l.insert("le".into(), le);
            self.push("_bucket", l, time, running as f64, MetricType::Counter);
        }
        if let Some(sum) = p.sum {
            self.push("_sum", labels.clone(), time, sum, MetricType::Counter);
        }
        self.push("_count", labels, time, p.count as f64, MetricType::Counter);
    }

    /// `{quantile}` gauges, `_sum` and `_count` counters, as the `prometheus` integration
    /// stores a summary.
    fn summary(&mut self, p: &SummaryDataPoint) {
        let finite = p.sum.is_finite()
            && p.quantile_values
                .iter()
                .all(|q| q.quantile.is_finite() && q.value.is_finite());
        if !finite {
            return self
                .out
                .refuse("a value that is not finite (NaN or infinite)");
        }
        let (labels, time) = match self.prepare(&p.attributes, p.time_unix_nano, &["quantile"]) {
            Ok(x) => x,
            Err(why) => return self.out.refuse(why),
        };
        self.out.points += 1;
        for q in &p.quantile_values {
            let mut l = labels.clone();
            l.insert("quantile".into(), q.quantile.to_string());
            self.push("", l, time, q.value, MetricType::Gauge);
        }
        self.push("_sum", labels.clone(), time, p.sum, MetricType::Counter);
        self.push("_count", labels, time, p.count as f64, MetricType::Counter);
    }
}
