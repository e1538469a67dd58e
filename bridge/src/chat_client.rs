//! `staples chat`: a terminal chat client that uses nothing but a sidecar's public
//! JSON-RPC, as a Status app would: join a public chat by name or talk one-to-one to a
//! public key, see messages as the sidecar delivers them (live, and caught up from Swarm
//! when it joins; in causal order, since that is the order the sidecar hands them out),
//! gaps the sidecar declared in this chat, and whether it is online (`net_peerCount`).
//!
//! The screen (ratatui on crossterm): a header with the chat, our key, online/offline and
//! gaps; the messages, newest at the bottom; an input line. Enter posts, Esc or Ctrl-C
//! quits. Polls the filter every 200 ms.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Color, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Paragraph};
use serde_json::{Value, json};
use staples_protocol::whisper::Topic;

/// Who to talk to.
#[derive(Debug, Clone)]
pub enum Target {
    /// A Status public chat, by name.
    Public(String),
    /// One-to-one, to this public key (`0x04…`), on `topic`.
    Direct {
        /// The peer's public key.
        peer: String,
        /// The Whisper topic both sides use.
        topic: Topic,
    },
}

/// The JSON-RPC side: our identity, the filter, and how to post.
struct Session {
    rpc: String,
    http: reqwest::Client,
    me_pub: String,
    filter: String,
    post: Value,
    topic: Topic,
    title: String,
}

impl Session {
    async fn call(&self, method: &str, params: Value) -> Result<Value> {
        call(&self.http, &self.rpc, method, params).await
    }

    async fn open(rpc: &str, target: &Target) -> Result<Session> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()?;
        let me_id = call(&http, rpc, "shh_newKeyPair", json!([])).await?;
        let me_pub = call(&http, rpc, "shh_getPublicKey", json!([me_id])).await?;
        let (criteria, post, topic, title) = match target {
            Target::Public(name) => {
                let key = call(&http, rpc, "shh_generateSymKeyFromPassword", json!([name])).await?;
                let topic = Topic::from_name(name);
                (
                    json!({"symKeyID": key, "topics": [topic.to_string()]}),
                    json!({"symKeyID": key, "sig": me_id, "topic": topic.to_string()}),
                    topic,
                    format!("#{name}"),
                )
            }
            Target::Direct { peer, topic } => (
                json!({"privateKeyID": me_id, "topics": [topic.to_string()]}),
                json!({"pubKey": peer, "sig": me_id, "topic": topic.to_string()}),
                *topic,
                format!("@{}", short(peer)),
            ),
        };
        let filter = call(&http, rpc, "shh_newMessageFilter", json!([criteria])).await?;
        Ok(Session {
            rpc: rpc.to_string(),
            http,
            me_pub: me_pub.as_str().unwrap_or_default().to_ascii_lowercase(),
            filter: filter.as_str().unwrap_or_default().to_string(),
            post,
            topic,
            title,
        })
    }

    async fn send(&self, text: &str) -> Result<()> {
        let mut p = self.post.clone();
        p["payload"] = json!(format!("0x{}", hex::encode(text.as_bytes())));
        p["ttl"] = json!(60);
        p["powTarget"] = json!(0.002);
        p["powTime"] = json!(2);
        self.call("shh_post", json!([p])).await.map(|_| ())
    }
}

async fn call(http: &reqwest::Client, rpc: &str, method: &str, params: Value) -> Result<Value> {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    let mut req = http.post(rpc).json(&body);
    if let Ok(token) = std::env::var("STAPLES_RPC_TOKEN") {
        req = req.bearer_auth(token);
    }
    let v: Value = req
        .send()
        .await
        .with_context(|| format!("sidecar at {rpc} unreachable"))?
        .json()
        .await?;
    if let Some(e) = v.get("error") {
        bail!("{method}: {}", e["message"].as_str().unwrap_or("error"));
    }
    Ok(v["result"].clone())
}

fn short(key: &str) -> String {
    let h = key.trim_start_matches("0x");
    // Uncompressed keys start with 04: skip it so keys differ in what is shown.
    let h = h.strip_prefix("04").filter(|r| r.len() == 128).unwrap_or(h);
    format!("0x{}", &h[..h.len().min(8)])
}

/// What the screen shows.
#[derive(Default)]
struct View {
    lines: Vec<(String, String)>,
    input: String,
    online: Option<bool>,
    gaps: usize,
    error: Option<String>,
    /// This chat's DAG id, once `staples_status` lists it (it never changes).
    chat: Option<String>,
}

impl View {
    fn add(&mut self, session: &Session, m: &Value) {
        let sig = m["sig"].as_str().unwrap_or_default().to_ascii_lowercase();
        let from = if sig.is_empty() {
            "anonymous".to_string()
        } else if sig == session.me_pub {
            "me".to_string()
        } else {
            short(&sig)
        };
        let p = m["payload"].as_str().unwrap_or_default();
        let text = hex::decode(p.trim_start_matches("0x"))
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        self.lines.push((from, text));
    }
}

/// Polls the filter, the peer count and this chat's gaps.
async fn refresh(session: &Session, view: &mut View) {
    match session
        .call("shh_getFilterMessages", json!([session.filter]))
        .await
    {
        Ok(Value::Array(ms)) => {
            view.error = None;
            for m in &ms {
                view.add(session, m);
            }
        }
        Ok(_) => {}
        Err(e) => view.error = Some(e.to_string()),
    }
    view.online = session
        .call("net_peerCount", json!([]))
        .await
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .and_then(|h| u64::from_str_radix(h.trim_start_matches("0x"), 16).ok())
        .map(|n| n > 0);
    // Gaps are the Swarm transports'; a Whisper node has none to report. The chat's id
    // is looked up until found, then kept.
    if view.chat.is_none() {
        view.chat = session
            .call("staples_status", json!([]))
            .await
            .ok()
            .and_then(|s| {
                s["chats"].as_array().and_then(|cs| {
                    cs.iter()
                        .find(|c| c["topic"] == session.topic.to_string())
                        .and_then(|c| c["chat"].as_str().map(str::to_string))
                })
            });
    }
    if let (Some(chat), Ok(Value::Array(gaps))) =
        (&view.chat, session.call("staples_gaps", json!([])).await)
    {
        let n = gaps.iter().filter(|g| g["chat"] == chat.as_str()).count();
        if n > view.gaps {
            view.lines.push((
                "·".into(),
                format!(
                    "{} earlier message(s) did not arrive in time (gap)",
                    n - view.gaps
                ),
            ));
        }
        view.gaps = n;
    }
}

fn draw(frame: &mut ratatui::Frame<'_>, session: &Session, view: &View) {
    let [head, body, input] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(1),
        Constraint::Length(3),
    ])
    .areas(frame.area());
    let (state, color) = match (view.error.is_some(), view.online) {
        (true, _) => ("sidecar unreachable", Color::Red),
        (false, Some(true)) => ("online", Color::Green),
        (false, Some(false)) => ("offline", Color::Yellow),
        (false, None) => ("…", Color::Gray),
    };
    let header = Line::from(format!(
        " {}  me {}  [{state}]  gaps {}",
        session.title,
        short(&session.me_pub),
        view.gaps
    ))
    .style(Style::default().fg(color));
    frame.render_widget(Paragraph::new(header), head);
    let height = usize::from(body.height);
    let shown: Vec<Line<'_>> = view
        .lines
        .iter()
        .skip(view.lines.len().saturating_sub(height))
        .map(|(from, text)| Line::from(format!("{from}: {text}")))
        .collect();
    frame.render_widget(Paragraph::new(shown), body);
    let prompt = Paragraph::new(view.input.as_str()).block(
        Block::default()
            .borders(Borders::ALL)
            .title(" Enter sends, Esc quits "),
    );
    frame.render_widget(prompt, input);
}

/// Runs the client against the sidecar at `rpc` until the user quits.
pub async fn run(rpc: &str, target: Target) -> Result<()> {
    let session = Session::open(rpc, &target).await?;
    let mut terminal = ratatui::init();
    let result = ui(&mut terminal, &session).await;
    ratatui::restore();
    result
}

async fn ui(terminal: &mut ratatui::DefaultTerminal, session: &Session) -> Result<()> {
    let mut view = View::default();
    let (keys_tx, mut keys) = tokio::sync::mpsc::unbounded_channel();
    // crossterm's reader blocks: it gets a thread, and hands key presses over.
    std::thread::spawn(move || {
        loop {
            match event::poll(Duration::from_millis(100)) {
                Ok(true) => match event::read() {
                    Ok(Event::Key(k)) if k.kind == KeyEventKind::Press => {
                        if keys_tx.send(k).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => return,
                },
                Ok(false) => {}
                Err(_) => return,
            }
        }
    });
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        terminal.draw(|f| draw(f, session, &view))?;
        tokio::select! {
            _ = tick.tick() => refresh(session, &mut view).await,
            Some(k) = keys.recv() => match k.code {
                KeyCode::Esc => return Ok(()),
                KeyCode::Char('c') if k.modifiers.contains(KeyModifiers::CONTROL) => return Ok(()),
                KeyCode::Enter => {
                    let text = std::mem::take(&mut view.input);
                    if !text.is_empty()
                        && let Err(e) = session.send(&text).await
                    {
                        view.error = Some(e.to_string());
                    }
                }
                KeyCode::Backspace => {
                    view.input.pop();
                }
                KeyCode::Char(c) => view.input.push(c),
                _ => {}
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_shown_short_and_distinct() {
        let k = format!("0x04{}", "ab".repeat(64));
        assert_eq!(short(&k), "0xabababab");
        assert_eq!(short("0x1234"), "0x1234");
    }
}
