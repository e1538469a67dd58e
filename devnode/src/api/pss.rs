//! `/pss/send/{topic}/{targets}` and the `/pss/subscribe/{topic}` WebSocket.
//!
//! Bee 2.8.1 `pkg/api/pss.go`. The topic is `keccak256` of the path segment as text, so
//! bee-js and bee-rs, which put the hex of their 32-byte topic there, get Bee's double
//! hash; this node reproduces it. Targets are comma-separated hex prefixes of at most 3
//! bytes. `recipient` is a compressed (33-byte) or uncompressed (65-byte) key as Bee
//! accepts; the 64-byte `x ‖ y` form bee-js sends is also accepted (real Bee refuses it).
//! Without a recipient the message is encrypted to the topic-as-key.
//!
//! Errors as in Bee: unknown batch 400 "batch not found", full bucket 402, targets of
//! different lengths or a message over 4000 bytes 500 "pss send failed". Mining is
//! CPU-bound: it runs on the blocking pool, at most `Limits::pss_mining_concurrency` at a
//! time, and stops if the client disconnects. See [`crate::pss`] for delivery and the
//! subscriber queue policy.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use staples_protocol::crypto::PublicKey;
use staples_protocol::swarm::pss::{MAX_PAYLOAD_SIZE, MAX_TARGET_LEN, PssError, PssTopic, Targets};

use super::error::{ApiError, json_response};
use super::params::{P, Q, decode_hex, read_body};
use super::{Ctx, Stamping, put_chunk};
use crate::pss::{EndReason, SendError, Subscription, mine, receive, route};

/// A WebSocket write that takes longer than this means the client stopped reading.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest message accepted from a subscriber (Bee ignores what they send).
const MAX_CLIENT_MESSAGE: usize = 64 << 10;

/// `POST /pss/send/{topic}/{targets}?recipient=`.
pub async fn send(
    State(ctx): State<Ctx>,
    P((topic, targets)): P<(String, String)>,
    query: Q,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let topic = PssTopic::from_string(&topic);
    let targets = parse_targets(&targets)?;
    let recipient = query.get("recipient").map(parse_recipient).transpose()?;
    let stamping = Stamping::batch_only(&headers)?;
    let message = read_body(&headers, body, 4096).await?;
    let Stamping::Batch(batch) = &stamping else {
        return Err(ApiError::internal("pss send failed"));
    };
    ctx.net
        .postage
        .check_issuer(ctx.index, batch)
        .map_err(|_| ApiError::bad_request("batch not found"))?;
    let targets = targets.map_err(send_failed)?;
    if message.len() > MAX_PAYLOAD_SIZE {
        return Err(ApiError::internal(format!(
            "pss send failed: message of {} bytes exceeds {MAX_PAYLOAD_SIZE}",
            message.len()
        )));
    }

    let wrapped = {
        let _permit = ctx
            .net
            .mining
            .acquire()
            .await
            .map_err(|_| ApiError::internal("pss send failed"))?;
        let cancel = CancelOnDrop(Arc::new(AtomicBool::new(false)));
        let flag = cancel.0.clone();
        let max = ctx.net.limits.pss_max_attempts;
        let t = targets.clone();
        tokio::task::spawn_blocking(move || {
            mine(&topic, &message, recipient.as_ref(), &t, max, &flag)
        })
        .await
        .map_err(|_| ApiError::internal("pss send failed"))?
        .map_err(|e| match e {
            SendError::Wrap(e) => send_failed(e),
            other => ApiError::internal(format!("pss send failed: {other}")),
        })?
    };
    let chunk = wrapped.chunk;
    let data = Bytes::from(chunk.to_data());
    let stored = put_chunk(&ctx, &stamping, *chunk.address(), data.clone(), None)
        .await
        .map_err(|e| match e.status {
            StatusCode::NOT_FOUND => ApiError::bad_request("batch not found"),
            _ => e,
        })?;
    if stored {
        let overlays: Vec<([u8; 32], bool)> = ctx
            .net
            .nodes
            .iter()
            .map(|n| (*n.identity.overlay().as_bytes(), n.receives_pss()))
            .collect();
        for i in route(chunk.address().as_bytes(), targets.prefix_len(), &overlays) {
            let node = &ctx.net.nodes[i];
            if let Some(t) = receive(&data, node.identity.pss_key(), &node.pss) {
                tracing::debug!(from = ctx.index, to = i, topic = %t, "pss delivered");
            }
        }
    }
    Ok(json_response(
        StatusCode::CREATED,
        &serde_json::json!({"code": 201, "message": "Created"}),
    ))
}

/// `GET /pss/subscribe/{topic}`: binary frames of the plaintext of each message.
pub async fn subscribe(
    State(ctx): State<Ctx>,
    P((topic,)): P<(String,)>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let upgrade = upgrade.map_err(|e| {
        ApiError::bad_request(format!("websocket upgrade failed: {}", e.body_text()))
    })?;
    let topic = PssTopic::from_string(&topic);
    let sub = ctx
        .node()
        .pss
        .subscribe(topic)
        .ok_or_else(|| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "node is down"))?;
    let ping = ctx.net.limits.ws_ping;
    Ok(upgrade
        .max_message_size(MAX_CLIENT_MESSAGE)
        .on_upgrade(move |socket| pump(socket, sub, ping)))
}

/// Moves messages from the subscription to the socket until either side ends.
/// Dropping `sub` on return unregisters it, so a vanished client leaves nothing behind.
async fn pump(mut socket: WebSocket, mut sub: Subscription, ping: Duration) {
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + ping, ping);
    loop {
        tokio::select! {
            next = sub.recv() => match next {
                Ok(message) => {
                    if !write(&mut socket, Message::Binary(message)).await {
                        break;
                    }
                }
                Err(reason) => {
                    let (code, text) = match reason {
                        EndReason::Lagged => (
                            close_code::POLICY,
                            "subscriber too slow: queue full, messages may be missing",
                        ),
                        EndReason::NodeDown => (close_code::AWAY, "node is down"),
                        EndReason::Stopped => (close_code::AWAY, "node is stopping"),
                    };
                    let frame = CloseFrame { code, reason: text.into() };
                    let _ = write(&mut socket, Message::Close(Some(frame))).await;
                    break;
                }
            },
            incoming = socket.recv() => match incoming {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break,
                Some(Ok(_)) => {}
            },
            _ = ticker.tick() => {
                if !write(&mut socket, Message::Ping(Bytes::new())).await {
                    break;
                }
            }
        }
    }
    tracing::debug!(topic = %sub.topic(), "pss subscriber gone");
}

async fn write(socket: &mut WebSocket, message: Message) -> bool {
    matches!(
        tokio::time::timeout(WRITE_TIMEOUT, socket.send(message)).await,
        Ok(Ok(()))
    )
}

/// Sets the flag when the request future is dropped (client gone), stopping the miner.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Checks each target as Bee's validation does (hex, 1..=3 bytes: 400). Targets of
/// different lengths pass validation and fail in `pss.Wrap` (500), hence the inner result.
fn parse_targets(s: &str) -> Result<Result<Targets, PssError>, ApiError> {
    let mut list = Vec::new();
    for t in s.split(',') {
        let bytes = decode_hex(t).map_err(|e| ApiError::invalid_param("path", "target", e))?;
        if bytes.is_empty() {
            return Err(ApiError::invalid_param("path", "target", "required"));
        }
        if bytes.len() > MAX_TARGET_LEN {
            return Err(ApiError::invalid_param(
                "path",
                "target",
                format!("want max:{MAX_TARGET_LEN}, got {}", bytes.len()),
            ));
        }
        list.push(bytes);
    }
    Ok(Targets::new(&list))
}

fn parse_recipient(s: &str) -> Result<PublicKey, ApiError> {
    let bad = |e: String| ApiError::invalid_param("query", "recipient", e);
    let mut bytes = decode_hex(s).map_err(bad)?;
    if bytes.len() == 64 {
        bytes.insert(0, 0x04);
    }
    PublicKey::from_bytes(&bytes).map_err(|_| bad("malformed public key".into()))
}

fn send_failed(e: PssError) -> ApiError {
    ApiError::internal(format!("pss send failed: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_validate_like_bee() {
        assert_eq!(
            parse_targets("ab,cd")
                .expect("valid")
                .map(|t| t.prefix_len()),
            Ok(1)
        );
        assert!(
            parse_targets("ab,cdef").expect("validates").is_err(),
            "mixed lengths fail later"
        );
        for bad in ["", "abcdef01", "xy", "abc", "ab,"] {
            assert!(parse_targets(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn recipients_in_three_forms() {
        let k = staples_protocol::crypto::PrivateKey::from_bytes(&[7; 32]).expect("key");
        let p = k.public_key();
        let full = p.to_uncompressed();
        for form in [
            hex::encode(p.to_compressed()),
            hex::encode(full),
            hex::encode(&full[1..]),
        ] {
            assert_eq!(parse_recipient(&form), Ok(p));
        }
        assert!(parse_recipient("02abcd").is_err());
    }
}
