//! Pictures of a chat's DAG (`staples dag`): each delivered message a node (author, Lamport
//! clock, short id), an edge from each parent to its child, and declared gaps marked: a
//! parent the sidecar gave up waiting for is a dashed red node, and an edge to a message
//! delivered after its gap was declared is dashed too. Parents outside the history
//! (before it starts) are dotted grey nodes.
//!
//! Input is `staples_history` (specs/dag.md §5), so anything that can call the sidecar's
//! JSON-RPC can draw it. Output is Graphviz DOT, Mermaid, or SVG laid out by `layout-rs`
//! from the same DOT (a maintained graph-layout crate; no hand-written layout here).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde::Deserialize;

/// One message of `staples_history`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    /// Chat id, `0x` hex.
    pub chat: String,
    /// DAG id, `0x` hex.
    pub id: String,
    /// Lamport clock.
    pub clock: u64,
    /// Parent ids.
    pub parents: Vec<String>,
    /// Parents declared missing when it was delivered.
    #[serde(default)]
    pub gap_parents: Vec<String>,
    /// Delivered after its gap deadline.
    #[serde(default)]
    pub late: bool,
    /// Posted by this sidecar.
    #[serde(default)]
    pub own: bool,
    /// The author's node address, when recorded.
    #[serde(default)]
    pub author: Option<String>,
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Graphviz DOT.
    Dot,
    /// SVG, laid out by `layout-rs`.
    Svg,
    /// A Mermaid flowchart.
    Mermaid,
}

/// Why a picture could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PictureError {
    /// The history JSON is not what `staples_history` returns.
    #[error("staples_history answer does not parse: {0}")]
    History(String),
    /// The chat has no delivered message.
    #[error("no delivered message in chat {0}")]
    Empty(String),
    /// The layout crate refused our DOT (a bug here).
    #[error("layout: {0}")]
    Layout(String),
    /// The sidecar could not be asked.
    #[error("sidecar at {0}: {1}")]
    Rpc(String, String),
}

/// Asks the sidecar at `rpc` for `staples_history(chat)` (bearer token from
/// `STAPLES_RPC_TOKEN` if the sidecar needs one).
pub async fn fetch(rpc: &str, chat: &str) -> Result<Vec<HistoryEntry>, PictureError> {
    let fail = |e: String| PictureError::Rpc(rpc.to_string(), e);
    let body = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "staples_history",
        "params": [chat]});
    let mut req = reqwest::Client::new().post(rpc).json(&body);
    if let Ok(token) = std::env::var("STAPLES_RPC_TOKEN") {
        req = req.bearer_auth(token);
    }
    let v: serde_json::Value = req
        .send()
        .await
        .map_err(|e| fail(e.to_string()))?
        .json()
        .await
        .map_err(|e| fail(e.to_string()))?;
    if let Some(e) = v.get("error") {
        return Err(fail(e.to_string()));
    }
    serde_json::from_value(v["result"].clone()).map_err(|e| PictureError::History(e.to_string()))
}

/// Reads `staples_history`'s answer.
pub fn parse_history(json: &str) -> Result<Vec<HistoryEntry>, PictureError> {
    serde_json::from_str(json).map_err(|e| PictureError::History(e.to_string()))
}

/// The first 4 bytes of an id, for labels.
fn short(hex: &str) -> &str {
    let h = key(hex);
    &h[..h.len().min(8)]
}

/// An id as a node key (whole: short ids may collide in a large chat).
fn key(hex: &str) -> &str {
    hex.trim_start_matches("0x")
}

/// The author's name in `names` (node address → name), else its short address.
fn author_label(e: &HistoryEntry, names: &BTreeMap<String, String>) -> String {
    match &e.author {
        Some(a) => names
            .get(&a.to_ascii_lowercase())
            .cloned()
            .unwrap_or_else(|| format!("0x{}", short(a))),
        None => "?".into(),
    }
}

/// Parents that are neither in the history nor declared gaps (from before it starts).
fn outside(entries: &[HistoryEntry]) -> (BTreeSet<&str>, BTreeSet<&str>) {
    let ids: BTreeSet<&str> = entries.iter().map(|e| e.id.as_str()).collect();
    let gaps: BTreeSet<&str> = entries
        .iter()
        .flat_map(|e| e.gap_parents.iter().map(String::as_str))
        .filter(|p| !ids.contains(p))
        .collect();
    let older: BTreeSet<&str> = entries
        .iter()
        .flat_map(|e| e.parents.iter().map(String::as_str))
        .filter(|p| !ids.contains(p) && !gaps.contains(p))
        .collect();
    (gaps, older)
}

/// Graphviz DOT of `entries` (one chat), authors named by `names`.
pub fn dot(entries: &[HistoryEntry], names: &BTreeMap<String, String>) -> String {
    let mut out = String::from(
        "digraph dag {\n  rankdir=TB;\n  node [shape=box, style=rounded, fontname=\"Helvetica\"];\n",
    );
    for e in entries {
        let label = format!(
            "{}\\nclock {}\\n{}",
            author_label(e, names),
            e.clock,
            short(&e.id)
        );
        let extra = if e.late { ", color=red" } else { "" };
        let _ = writeln!(out, "  \"{}\" [label=\"{label}\"{extra}];", key(&e.id));
    }
    let (gaps, older) = outside(entries);
    for g in &gaps {
        let _ = writeln!(
            out,
            "  \"{}\" [label=\"gap\\n{}\", style=dashed, color=red];",
            key(g),
            short(g)
        );
    }
    for o in &older {
        let _ = writeln!(
            out,
            "  \"{}\" [label=\"earlier\\n{}\", style=dotted, color=gray];",
            key(o),
            short(o)
        );
    }
    for e in entries {
        for p in &e.parents {
            let gap = e.gap_parents.contains(p);
            let style = if gap {
                " [style=dashed, color=red]"
            } else {
                ""
            };
            let _ = writeln!(out, "  \"{}\" -> \"{}\"{style};", key(p), key(&e.id));
        }
    }
    out.push_str("}\n");
    out
}

/// A Mermaid flowchart of `entries`.
pub fn mermaid(entries: &[HistoryEntry], names: &BTreeMap<String, String>) -> String {
    let mut out = String::from("flowchart TB\n");
    for e in entries {
        let _ = writeln!(
            out,
            "  m{}[\"{} · clock {} · {}\"]",
            key(&e.id),
            author_label(e, names),
            e.clock,
            short(&e.id)
        );
        if e.late {
            let _ = writeln!(out, "  style m{} stroke:#c00", key(&e.id));
        }
    }
    let (gaps, older) = outside(entries);
    for g in &gaps {
        let _ = writeln!(out, "  m{}[\"gap · {}\"]", key(g), short(g));
        let _ = writeln!(out, "  style m{} stroke:#c00,stroke-dasharray: 5 5", key(g));
    }
    for o in &older {
        let _ = writeln!(out, "  m{}[\"earlier · {}\"]", key(o), short(o));
        let _ = writeln!(out, "  style m{} stroke:#999,stroke-dasharray: 2 2", key(o));
    }
    for e in entries {
        for p in &e.parents {
            let arrow = if e.gap_parents.contains(p) {
                "-.->"
            } else {
                "-->"
            };
            let _ = writeln!(out, "  m{} {arrow} m{}", key(p), key(&e.id));
        }
    }
    out
}

/// SVG of `entries`: our DOT, parsed and laid out by `layout-rs`.
pub fn svg(
    entries: &[HistoryEntry],
    names: &BTreeMap<String, String>,
) -> Result<String, PictureError> {
    use layout::backends::svg::SVGWriter;
    use layout::gv;
    let text = dot(entries, names);
    let graph = gv::DotParser::new(&text)
        .process()
        .map_err(PictureError::Layout)?;
    let mut builder = gv::GraphBuilder::new();
    builder.visit_graph(&graph);
    let mut visual = builder.get();
    let mut writer = SVGWriter::new();
    visual.do_it(false, false, false, &mut writer);
    Ok(writer.finalize())
}

/// The picture of chat `chat` (its entries in `history`) in `format`.
pub fn render(
    history: &[HistoryEntry],
    chat: &str,
    format: Format,
    names: &BTreeMap<String, String>,
) -> Result<String, PictureError> {
    let want = chat.to_ascii_lowercase();
    let entries: Vec<HistoryEntry> = history
        .iter()
        .filter(|e| e.chat.to_ascii_lowercase() == want)
        .cloned()
        .collect();
    if entries.is_empty() {
        return Err(PictureError::Empty(chat.to_string()));
    }
    Ok(match format {
        Format::Dot => dot(&entries, names),
        Format::Mermaid => mermaid(&entries, names),
        Format::Svg => svg(&entries, names)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, clock: u64, parents: &[&str], gaps: &[&str], author: &str) -> HistoryEntry {
        HistoryEntry {
            chat: "0xc0".into(),
            id: id.into(),
            clock,
            parents: parents.iter().map(|s| s.to_string()).collect(),
            gap_parents: gaps.iter().map(|s| s.to_string()).collect(),
            late: !gaps.is_empty(),
            own: false,
            author: Some(author.into()),
        }
    }

    fn history() -> Vec<HistoryEntry> {
        vec![
            entry("0xaaaaaaaa01", 1, &["0x0000000001"], &[], "0x11"),
            entry("0xbbbbbbbb02", 2, &["0xaaaaaaaa01"], &[], "0x22"),
            entry(
                "0xcccccccc03",
                4,
                &["0xbbbbbbbb02", "0xdddddddd09"],
                &["0xdddddddd09"],
                "0x11",
            ),
        ]
    }

    #[test]
    fn nodes_edges_gaps_and_earlier_parents_are_drawn() {
        let names = BTreeMap::from([("0x11".to_string(), "Alice".to_string())]);
        let d = dot(&history(), &names);
        assert!(
            d.contains("\"aaaaaaaa01\" [label=\"Alice\\nclock 1\\naaaaaaaa\"]"),
            "{d}"
        );
        assert!(
            d.contains("\"bbbbbbbb02\" [label=\"0x22\\nclock 2\\nbbbbbbbb\"]"),
            "{d}"
        );
        assert!(d.contains("\"aaaaaaaa01\" -> \"bbbbbbbb02\";"), "{d}");
        assert!(d.contains("\"dddddddd09\" [label=\"gap\\ndddddddd\", style=dashed, color=red];"));
        assert!(d.contains("\"dddddddd09\" -> \"cccccccc03\" [style=dashed, color=red];"));
        assert!(d.contains("\"0000000001\" [label=\"earlier"), "{d}");
        let m = mermaid(&history(), &names);
        assert!(m.contains("mdddddddd09 -.-> mcccccccc03"), "{m}");
        assert!(m.contains("maaaaaaaa01 --> mbbbbbbbb02"), "{m}");
    }

    #[test]
    fn svg_is_laid_out_by_the_layout_crate() {
        let s = render(&history(), "0xC0", Format::Svg, &BTreeMap::new()).expect("renders");
        assert!(s.starts_with("<svg") || s.contains("<svg"), "{s}");
        assert!(s.contains("clock 4"), "labels reach the picture");
        assert!(matches!(
            render(&history(), "0xff", Format::Dot, &BTreeMap::new()),
            Err(PictureError::Empty(_))
        ));
    }

    #[test]
    fn history_json_from_the_sidecar_parses() {
        let json = r#"[{"chat":"0xc0","id":"0x01","clock":1,"parents":[],"gapParents":[],
            "late":false,"own":true,"author":"0x11"}]"#;
        let h = parse_history(json).expect("parses");
        assert_eq!(h[0].author.as_deref(), Some("0x11"));
        assert!(parse_history("{}").is_err());
    }
}
