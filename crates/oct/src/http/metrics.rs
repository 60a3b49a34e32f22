//! `GET /metrics`: the Prometheus text exposition format (version 0.0.4), written by hand: a
//! dozen families do not need a metrics library, and the format is four line shapes.
//!
//! Counters live in one [`Metrics`] value inside the service's counters, incremented where the
//! workers and senders count today; gauges (queue, spool) are computed at scrape time from the
//! state database and the spool directory. Labels are reasons, outcomes and destination names
//! (routes, AMC organisations, `ps`), never an address or a PS number.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Upper bounds (seconds) of the processing latency histogram: spool receipt to commit.
pub const LATENCY_BUCKETS: [f64; 10] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

/// Counters a running service keeps for `/metrics`, beside [`crate::service::ServiceStats`].
#[derive(Debug, Default)]
pub struct Metrics {
    quarantined: Mutex<BTreeMap<String, u64>>,
    deliveries: Mutex<BTreeMap<&'static str, u64>>,
    latency: Histogram,
}

#[derive(Debug, Default)]
struct Histogram {
    /// One count per bucket of [`LATENCY_BUCKETS`] (not cumulative), then `+Inf`.
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    /// Sum in microseconds (an integer so that it can be atomic).
    sum_micros: AtomicU64,
    count: AtomicU64,
}

fn bump<K: Ord>(map: &Mutex<BTreeMap<K, u64>>, key: K) {
    let mut m = map.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    *m.entry(key).or_default() += 1;
}

fn snapshot<K: Ord + Clone>(map: &Mutex<BTreeMap<K, u64>>) -> BTreeMap<K, u64> {
    map.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone()
}

impl Metrics {
    /// A message was quarantined for `reason` (a `RefusalCode` string).
    pub fn quarantined(&self, reason: &str) {
        bump(&self.quarantined, reason.to_owned());
    }

    /// A delivery attempt ended with `outcome` (`delivered`, `deferred`, `failed`,
    /// `login_refused`).
    pub fn delivery(&self, outcome: &'static str) {
        bump(&self.deliveries, outcome);
    }

    /// A message was committed `seconds` after the ingress spooled it.
    pub fn processing_latency(&self, seconds: f64) {
        let seconds = if seconds.is_finite() {
            seconds.max(0.0)
        } else {
            0.0
        };
        let i = LATENCY_BUCKETS
            .iter()
            .position(|&b| seconds <= b)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.latency.buckets[i].fetch_add(1, Ordering::Relaxed);
        // Saturating float-to-int conversion: `as` is the documented saturating cast.
        let micros = (seconds * 1e6) as u64;
        self.latency.sum_micros.fetch_add(micros, Ordering::Relaxed);
        self.latency.count.fetch_add(1, Ordering::Relaxed);
    }
}

/// One destination's queue at scrape time.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct QueueGauge {
    /// Messages not yet delivered (pending, being sent, held, failed).
    pub depth: u64,
    /// Age of the oldest one, seconds.
    pub oldest_age: i64,
}

/// Everything one scrape writes.
#[derive(Debug, Default)]
pub struct Scrape<'a> {
    pub received: u64,
    pub received_bytes: u64,
    pub processed: u64,
    pub delivered: u64,
    pub metrics: Option<&'a Metrics>,
    /// By destination name.
    pub queue: BTreeMap<String, QueueGauge>,
    pub spool_bytes: u64,
    pub quarantine_bytes: u64,
}

/// A label value as the format wants it: backslash, double quote and newline escaped.
fn label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn labelled<V: std::fmt::Display>(
    out: &mut String,
    name: &str,
    key: &str,
    values: impl IntoIterator<Item = (String, V)>,
) {
    for (k, v) in values {
        let _ = writeln!(out, "{name}{{{key}=\"{}\"}} {v}", label(&k));
    }
}

impl Scrape<'_> {
    /// The exposition text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        self.render_simple(&mut out);
        let (quarantined, deliveries) = self
            .metrics
            .map(|m| (snapshot(&m.quarantined), snapshot(&m.deliveries)))
            .unwrap_or_default();
        let deliveries = deliveries.into_iter().map(|(k, v)| (k.to_owned(), v));
        let depth = self.queue.iter().map(|(k, g)| (k.clone(), g.depth));
        let oldest = self.queue.iter().map(|(k, g)| (k.clone(), g.oldest_age));
        let name = "svoct_messages_quarantined_total";
        family(
            &mut out,
            name,
            "counter",
            "Messages quarantined, by refusal reason.",
        );
        labelled(&mut out, name, "reason", quarantined);
        let name = "svoct_deliveries_total";
        family(
            &mut out,
            name,
            "counter",
            "Delivery attempts, by outcome (delivered, deferred, failed, login_refused).",
        );
        labelled(&mut out, name, "outcome", deliveries);
        let name = "svoct_queue_depth";
        family(
            &mut out,
            name,
            "gauge",
            "Outgoing messages not yet delivered, by destination.",
        );
        labelled(&mut out, name, "destination", depth);
        let name = "svoct_queue_oldest_age_seconds";
        family(
            &mut out,
            name,
            "gauge",
            "Age of the oldest undelivered message, by destination.",
        );
        labelled(&mut out, name, "destination", oldest);
        if let Some(m) = self.metrics {
            render_histogram(&mut out, &m.latency);
        }
        out
    }

    /// The families without labels.
    fn render_simple(&self, out: &mut String) {
        let simple: [(&str, &str, &str, u64); 6] = [
            (
                "svoct_messages_received_total",
                "counter",
                "Messages the SMTP ingress stored in the spool (answered 250).",
                self.received,
            ),
            (
                "svoct_received_bytes_total",
                "counter",
                "Octets of the messages stored in the spool.",
                self.received_bytes,
            ),
            (
                "svoct_messages_processed_total",
                "counter",
                "Spooled messages committed by the workers (quarantined ones included).",
                self.processed,
            ),
            (
                "svoct_deliveries_succeeded_total",
                "counter",
                "Outgoing messages delivered.",
                self.delivered,
            ),
            (
                "svoct_spool_bytes",
                "gauge",
                "Octets of messages waiting in the spool (being received or not yet processed).",
                self.spool_bytes,
            ),
            (
                "svoct_quarantine_bytes",
                "gauge",
                "Octets of quarantined content held in the state database.",
                self.quarantine_bytes,
            ),
        ];
        for (name, kind, help, v) in simple {
            family(out, name, kind, help);
            let _ = writeln!(out, "{name} {v}");
        }
    }
}

fn render_histogram(out: &mut String, h: &Histogram) {
    let name = "svoct_processing_seconds";
    family(
        out,
        name,
        "histogram",
        "Time from spool receipt to commit of a processed message.",
    );
    let mut cumulative = 0;
    for (i, b) in LATENCY_BUCKETS.iter().enumerate() {
        cumulative += h.buckets[i].load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {cumulative}");
    }
    cumulative += h.buckets[LATENCY_BUCKETS.len()].load(Ordering::Relaxed);
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
    let sum = h.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
    let _ = writeln!(out, "{name}_sum {sum}");
    let _ = writeln!(out, "{name}_count {}", h.count.load(Ordering::Relaxed));
}

/// Octets of the files in the spool's `new/` and `tmp/` (read without the spool's lock: a
/// file renamed meanwhile is counted once or not at all, which a gauge tolerates).
pub fn spool_bytes(spool: &Path) -> u64 {
    ["new", "tmp"]
        .iter()
        .filter_map(|sub| std::fs::read_dir(spool.join(sub)).ok())
        .flat_map(|d| d.filter_map(Result::ok))
        .filter_map(|e| e.metadata().ok())
        .filter(std::fs::Metadata::is_file)
        .map(|m| m.len())
        .sum()
}

/// The queue gauges from the undelivered rows: `(destination, created_at)` pairs.
pub fn queue_gauges(rows: impl IntoIterator<Item = (String, i64)>, now: i64) -> BTreeMap<String, QueueGauge> {
    let mut out: BTreeMap<String, QueueGauge> = BTreeMap::new();
    for (destination, created) in rows {
        let g = out.entry(destination).or_default();
        g.depth += 1;
        g.oldest_age = g.oldest_age.max(now.saturating_sub(created));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_has_every_family_escaped_labels_and_a_cumulative_histogram() {
        let m = Metrics::default();
        m.quarantined("unknown_sender");
        m.quarantined("unknown_sender");
        m.quarantined("we\"ird\\");
        m.delivery("deferred");
        m.processing_latency(0.2);
        m.processing_latency(7.0);
        m.processing_latency(1e9);
        let scrape = Scrape {
            received: 3,
            metrics: Some(&m),
            queue: queue_gauges([("route 011".to_owned(), 100), ("route 011".to_owned(), 40)], 160),
            ..Scrape::default()
        };
        let text = scrape.render();
        for line in [
            "svoct_messages_received_total 3",
            "svoct_messages_quarantined_total{reason=\"unknown_sender\"} 2",
            "svoct_messages_quarantined_total{reason=\"we\\\"ird\\\\\"} 1",
            "svoct_deliveries_total{outcome=\"deferred\"} 1",
            "svoct_queue_depth{destination=\"route 011\"} 2",
            "svoct_queue_oldest_age_seconds{destination=\"route 011\"} 120",
            "svoct_processing_seconds_bucket{le=\"0.1\"} 0",
            "svoct_processing_seconds_bucket{le=\"0.25\"} 1",
            "svoct_processing_seconds_bucket{le=\"10\"} 2",
            "svoct_processing_seconds_bucket{le=\"+Inf\"} 3",
            "svoct_processing_seconds_count 3",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
        assert_eq!(text.matches("# TYPE ").count(), 11, "{text}");
    }
}
