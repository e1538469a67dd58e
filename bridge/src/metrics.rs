//! Prometheus metrics (`GET /metrics`, text exposition format 0.0.4).
//!
//! Two sources. Latency histograms are recorded where the work happens: every JSON-RPC
//! call by method ([`observe_rpc`]), every store commit ([`observe_commit`]), every PSS
//! send, which Bee mines ([`observe_pss_send`]). Everything else is a snapshot of what
//! `staples_status` (and `admin_nodeInfo.staples` for devp2p) says at scrape time,
//! flattened by fixed rules, so a new counter there shows up here without a second list
//! to keep in step:
//!
//! - an object named `counters` → one counter per entry, `<prefix>_<name>_total`;
//! - a number → a gauge `<prefix>_<field>`, or a counter `<prefix>_<field>_total` for the
//!   few fields outside `counters` that only grow ([`CUMULATIVE`]); a boolean → a gauge of
//!   0 or 1;
//! - an object → its fields, under `<prefix>_<field>`;
//! - `chats` (an array) → each chat's fields as `staples_chat_<field>` with labels `chat`,
//!   `kind` and `topic`;
//! - strings and other arrays are left out, except `transport`, which becomes the label of
//!   `staples_info`.
//!
//! Names are snake_case under `staples_` (camelCase fields are split at capitals). The
//! histograms are process-wide: one sidecar per process is what runs in production.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, RwLock};

use serde_json::Value;

/// Status fields outside a `counters` object that only grow: counters, not gauges.
const CUMULATIVE: [&str; 6] = [
    "shed",
    "legacyRepeats",
    "delivered",
    "pagesWalked",
    "messagesFetched",
    "messagesListed",
];

/// Latency buckets, seconds: 100 µs to 10 s.
const BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 2.5, 10.0,
];

/// A latency histogram with fixed [`BUCKETS`].
#[derive(Default)]
pub struct Histogram {
    counts: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, d: std::time::Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }
}

#[derive(Default)]
struct Histograms {
    rpc: RwLock<BTreeMap<String, &'static Histogram>>,
    commit: Histogram,
    pss_send: Histogram,
    sync_pass: Histogram,
}

static HISTOGRAMS: LazyLock<Histograms> = LazyLock::new(Histograms::default);

/// Records a JSON-RPC call of `method` that took `d`. Only methods the node has
/// (`exists`: the answer was not "method not found") get their own series; every other
/// name is `method="other"`, so callers cannot grow the label set.
pub fn observe_rpc(method: &str, exists: bool, d: std::time::Duration) {
    let label = if exists { method } else { "other" };
    // Every call reads; only the first call of a method writes.
    let known = HISTOGRAMS
        .rpc
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .get(label)
        .copied();
    let h = match known {
        Some(h) => h,
        None => *HISTOGRAMS
            .rpc
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .entry(label.to_string())
            // One leaked histogram per method the node has: a few dozen.
            .or_insert_with(|| Box::leak(Box::default())),
    };
    h.observe(d);
}

/// Records a store commit that took `d`.
pub fn observe_commit(d: std::time::Duration) {
    HISTOGRAMS.commit.observe(d);
}

/// Records a PSS send (mined by Bee) that took `d`.
pub fn observe_pss_send(d: std::time::Duration) {
    HISTOGRAMS.pss_send.observe(d);
}

/// Records a sync pass (rosters, indexes, inboxes) that took `d`.
pub fn observe_sync_pass(d: std::time::Duration) {
    HISTOGRAMS.sync_pass.observe(d);
}

/// One metric family being written.
#[derive(Default)]
struct Family {
    kind: &'static str,
    help: String,
    samples: Vec<(String, f64)>,
}

/// Metric families by name, written grouped as the format requires.
#[derive(Default)]
pub struct Exposition {
    families: BTreeMap<String, Family>,
}

impl Exposition {
    fn add(&mut self, name: &str, kind: &'static str, help: &str, labels: &str, v: f64) {
        let f = self
            .families
            .entry(name.to_string())
            .or_insert_with(|| Family {
                kind,
                help: help.to_string(),
                samples: Vec::new(),
            });
        f.samples.push((labels.to_string(), v));
    }

    fn histogram(&mut self, name: &str, help: &str, labels: &[(&str, &str)], h: &Histogram) {
        let mut cumulative = 0;
        for (i, b) in BUCKETS.iter().enumerate() {
            cumulative += h.counts[i].load(Ordering::Relaxed);
            let mut l = labels.to_vec();
            let le = format!("{b}");
            l.push(("le", &le));
            self.add_h(name, help, "_bucket", &render_labels(&l), cumulative as f64);
        }
        let count = h.count.load(Ordering::Relaxed);
        let mut l = labels.to_vec();
        l.push(("le", "+Inf"));
        self.add_h(name, help, "_bucket", &render_labels(&l), count as f64);
        let base = render_labels(labels);
        let sum = h.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        self.add_h(name, help, "_sum", &base, sum);
        self.add_h(name, help, "_count", &base, count as f64);
    }

    fn add_h(&mut self, name: &str, help: &str, suffix: &str, labels: &str, v: f64) {
        let f = self
            .families
            .entry(name.to_string())
            .or_insert_with(|| Family {
                kind: "histogram",
                help: help.to_string(),
                samples: Vec::new(),
            });
        f.samples.push((format!("{suffix}{labels}"), v));
    }

    /// The text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (name, f) in &self.families {
            let _ = writeln!(out, "# HELP {name} {}", f.help);
            let _ = writeln!(out, "# TYPE {name} {}", f.kind);
            for (labels, v) in &f.samples {
                // Histogram samples carry their suffix before the labels.
                let _ = writeln!(out, "{name}{labels} {}", number(*v));
            }
        }
        out
    }
}

fn number(v: f64) -> String {
    if v.is_finite() && v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

fn render_labels(labels: &[(&str, &str)]) -> String {
    if labels.is_empty() {
        return String::new();
    }
    let inner: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    format!("{{{}}}", inner.join(","))
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// `camelCase` → `camel_case`; anything not alphanumeric → `_`.
fn snake(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 4);
    for (i, c) in s.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else if c.is_ascii_alphanumeric() {
            out.push(c);
        } else {
            out.push('_');
        }
    }
    out
}

/// Flattens a `staples_status`-shaped object under `prefix` (see the module doc).
fn flatten(e: &mut Exposition, prefix: &str, path: &str, v: &Value, labels: &str) {
    let Some(obj) = v.as_object() else {
        return;
    };
    for (k, x) in obj {
        let name = format!("{prefix}_{}", snake(k));
        let here = if path.is_empty() {
            k.clone()
        } else {
            format!("{path}.{k}")
        };
        match x {
            Value::Object(m) if k == "counters" => {
                for (c, n) in m {
                    if let Some(n) = n.as_f64() {
                        let help = format!("staples_status {here}.{c}");
                        e.add(
                            &format!("{prefix}_{}_total", snake(c)),
                            "counter",
                            &help,
                            labels,
                            n,
                        );
                    }
                }
            }
            Value::Array(chats) if k == "chats" => {
                for c in chats {
                    let label = |f: &str| c.get(f).and_then(Value::as_str).unwrap_or("");
                    let l = render_labels(&[
                        ("chat", label("chat")),
                        ("kind", label("kind")),
                        ("topic", label("topic")),
                    ]);
                    flatten(e, "staples_chat", "chats[]", c, &l);
                }
            }
            Value::Number(n) => {
                if let Some(n) = n.as_f64() {
                    let help = format!("staples_status {here}");
                    if CUMULATIVE.contains(&k.as_str()) {
                        e.add(&format!("{name}_total"), "counter", &help, labels, n);
                    } else {
                        e.add(&name, "gauge", &help, labels, n);
                    }
                }
            }
            Value::Bool(b) => {
                let help = format!("staples_status {here} (1 = true)");
                e.add(&name, "gauge", &help, labels, f64::from(u8::from(*b)));
            }
            Value::Object(_) => flatten(e, &name, &here, x, labels),
            _ => {}
        }
    }
}

/// The whole exposition: `status` (`staples_status`, when the node has one), `devp2p`
/// (`admin_nodeInfo.staples`, when it has devp2p sessions), and the histograms.
pub fn render(status: Option<&Value>, devp2p: Option<&Value>) -> String {
    let mut e = Exposition::default();
    let transport = status
        .and_then(|s| s.get("transport"))
        .and_then(Value::as_str)
        .unwrap_or("whisper");
    e.add(
        "staples_info",
        "gauge",
        "the running sidecar (always 1), by transport",
        &render_labels(&[
            ("transport", transport),
            ("version", env!("CARGO_PKG_VERSION")),
        ]),
        1.0,
    );
    if let Some(s) = status {
        flatten(&mut e, "staples", "", s, "");
    }
    if let Some(d) = devp2p {
        flatten(&mut e, "staples_devp2p", "admin_nodeInfo.staples", d, "");
    }
    let rpc: Vec<(String, &'static Histogram)> = HISTOGRAMS
        .rpc
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    for (method, h) in rpc {
        e.histogram(
            "staples_rpc_duration_seconds",
            "JSON-RPC call latency by method",
            &[("method", &method)],
            h,
        );
    }
    e.histogram(
        "staples_store_commit_duration_seconds",
        "SQLite transaction commit latency (one commit per batch of jobs)",
        &[],
        &HISTOGRAMS.commit,
    );
    e.histogram(
        "staples_pss_send_duration_seconds",
        "PSS send latency, Bee's mining included",
        &[],
        &HISTOGRAMS.pss_send,
    );
    e.histogram(
        "staples_sync_pass_duration_seconds",
        "Sync pass latency (rosters, chat indexes and the inboxes they name)",
        &[],
        &HISTOGRAMS.sync_pass,
    );
    e.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_fields_become_counters_and_gauges_by_fixed_rules() {
        let status = serde_json::json!({
            "transport": "dual",
            "outboxDepth": 3,
            "bee": {"ok": true, "peers": 2, "lastError": null},
            "counters": {"pss_sent": 7},
            "whisper": {"backlog": 1, "counters": {"whisper_legacy_delivered": 4}},
            "chats": [{"chat": "0xab", "kind": "symmetric", "topic": "0x01020304",
                       "pending": 5, "missing": 0, "membersKnownIndex": {"0x1": 3}}],
        });
        let text = render(Some(&status), None);
        for line in [
            "staples_outbox_depth 3",
            "staples_bee_ok 1",
            "staples_bee_peers 2",
            "staples_pss_sent_total 7",
            "staples_whisper_backlog 1",
            "staples_whisper_whisper_legacy_delivered_total 4",
            "staples_chat_pending{chat=\"0xab\",kind=\"symmetric\",topic=\"0x01020304\"} 5",
            "# TYPE staples_pss_sent_total counter",
            "staples_info{transport=\"dual\",version=\"",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
        assert!(
            !text.contains("last_error"),
            "strings and nulls are left out"
        );
    }

    #[test]
    fn unknown_methods_share_one_label_and_histograms_are_cumulative() {
        observe_rpc("shh_post", true, std::time::Duration::from_micros(300));
        observe_rpc(
            "no such method \"x\"",
            false,
            std::time::Duration::from_micros(300),
        );
        let text = render(None, None);
        assert!(
            text.contains(
                "staples_rpc_duration_seconds_bucket{method=\"shh_post\",le=\"0.0005\"} "
            )
        );
        assert!(text.contains("method=\"other\""));
        assert!(!text.contains("no such method"));
        assert!(
            text.contains("staples_rpc_duration_seconds_bucket{method=\"shh_post\",le=\"+Inf\"} ")
        );
    }
}
