//! `/_staples/...`: test controls that real Bee does not have. Every node serves them and
//! they act on the whole network (take node 2 down through node 0's admin route).
//!
//! | route | effect |
//! |---|---|
//! | `GET /_staples/nodes` | every node: index, url, overlay, keys, up/down, PSS subscribers |
//! | `POST /_staples/nodes/{i}/down[?for_ms=N]` | take node `i` down (and back up after N ms) |
//! | `POST /_staples/nodes/{i}/up` | bring node `i` back on its port |
//! | `POST /_staples/nodes/{i}/mode/{mode}` | make node `i` act as a `full`, `light` (no PSS received) or `ultra-light` (no PSS, no uploads) node; `GET /node` reports it |
//! | `GET /_staples/knobs` | current knobs and dropped addresses |
//! | `PUT /_staples/knobs` | partial update, e.g. `{"latency_ms":50}`, `{"stale_feed_ms":2000}`, `{"drop_probability":0.1}` |
//! | `POST /_staples/chunks/{addr}/drop` | remove a chunk and refuse it from now on |
//! | `DELETE /_staples/chunks/{addr}/drop` | accept it again (it stays gone until re-uploaded) |
//! | `GET /_staples/stats` | chunks stored, bytes, requests in flight, batches |
//!
//! A node taking itself down answers first: the cut happens 100 ms later.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use serde_json::json;
use staples_protocol::swarm::ChunkAddress;

use super::Ctx;
use super::error::{ApiError, json_response};
use super::params::{P, Q, path_hex_exact, read_body};
use crate::knobs::KnobUpdate;
use crate::net::DevNetError;

pub(super) fn routes() -> Router<Ctx> {
    Router::new()
        .route("/nodes", get(nodes))
        .route("/nodes/{i}/down", post(down))
        .route("/nodes/{i}/up", post(up))
        .route("/nodes/{i}/mode/{mode}", post(set_mode))
        .route("/knobs", get(knobs).put(set_knobs))
        .route(
            "/chunks/{addr}/drop",
            post(drop_chunk).delete(restore_chunk),
        )
        .route("/stats", get(stats))
}

async fn nodes(State(ctx): State<Ctx>) -> Result<Response, ApiError> {
    let infos = (0..ctx.net.nodes.len())
        .map(|i| ctx.net.info(i))
        .collect::<Result<Vec<_>, _>>()
        .map_err(node_error)?;
    Ok(json_response(StatusCode::OK, &infos))
}

async fn down(
    State(ctx): State<Ctx>,
    P((i,)): P<(String,)>,
    query: Q,
) -> Result<Response, ApiError> {
    let index = parse_index(&ctx, &i)?;
    let back_after = query.u64("for_ms")?.map(Duration::from_millis);
    let own = index == ctx.index;
    if !own {
        ctx.net.take_down(index).await.map_err(node_error)?;
    }
    if own || back_after.is_some() {
        let net = ctx.net.clone();
        tokio::spawn(async move {
            if own {
                tokio::time::sleep(Duration::from_millis(100)).await;
                if let Err(e) = net.take_down(index).await {
                    tracing::warn!(error = %e, "take down failed");
                    return;
                }
            }
            if let Some(after) = back_after {
                tokio::time::sleep(after).await;
                if let Err(e) = net.bring_up(index).await {
                    tracing::warn!(error = %e, "bring up failed");
                }
            }
        });
    }
    Ok(json_response(
        StatusCode::OK,
        &json!({"node": index, "up": false}),
    ))
}

async fn up(State(ctx): State<Ctx>, P((i,)): P<(String,)>) -> Result<Response, ApiError> {
    let index = parse_index(&ctx, &i)?;
    ctx.net.bring_up(index).await.map_err(node_error)?;
    Ok(json_response(
        StatusCode::OK,
        &json!({"node": index, "up": true}),
    ))
}

async fn set_mode(
    State(ctx): State<Ctx>,
    P((i, mode)): P<(String, String)>,
) -> Result<Response, ApiError> {
    let index = parse_index(&ctx, &i)?;
    if !ctx.net.node(index).map_err(node_error)?.set_mode(&mode) {
        let names: Vec<&str> = crate::net::MODES.iter().map(|m| m.as_str()).collect();
        return Err(ApiError::bad_request(format!(
            "mode must be one of {names:?}"
        )));
    }
    Ok(json_response(
        StatusCode::OK,
        &json!({"node": index, "mode": mode}),
    ))
}

async fn knobs(State(ctx): State<Ctx>) -> Response {
    let s = ctx.net.knobs.settings();
    let dropped: Vec<String> = ctx
        .net
        .knobs
        .dropped_addresses()
        .iter()
        .map(ChunkAddress::to_hex)
        .collect();
    json_response(
        StatusCode::OK,
        &json!({
            "latency_ms": s.latency_ms,
            "stale_feed_ms": s.stale_feed_ms,
            "drop_probability": s.drop_probability,
            "dropped": dropped,
        }),
    )
}

async fn set_knobs(
    State(ctx): State<Ctx>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let body = read_body(&headers, body, 64 << 10).await?;
    let update: KnobUpdate = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid knobs: {e}")))?;
    let settings = ctx
        .net
        .knobs
        .update(&update)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    tracing::info!(?settings, "knobs changed");
    Ok(json_response(StatusCode::OK, &settings))
}

async fn drop_chunk(
    State(ctx): State<Ctx>,
    P((addr,)): P<(String,)>,
) -> Result<Response, ApiError> {
    let address = ChunkAddress::from_bytes(path_hex_exact::<32>("addr", &addr)?);
    ctx.net.knobs.drop_address(address);
    let removed = ctx
        .net
        .store
        .remove(&address)
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(json_response(
        StatusCode::OK,
        &json!({"dropped": address.to_hex(), "removed": removed}),
    ))
}

async fn restore_chunk(
    State(ctx): State<Ctx>,
    P((addr,)): P<(String,)>,
) -> Result<Response, ApiError> {
    let address = ChunkAddress::from_bytes(path_hex_exact::<32>("addr", &addr)?);
    let restored = ctx.net.knobs.restore(&address);
    Ok(json_response(
        StatusCode::OK,
        &json!({"restored": restored}),
    ))
}

async fn stats(State(ctx): State<Ctx>) -> Response {
    json_response(
        StatusCode::OK,
        &json!({
            "chunks": ctx.net.store.len(),
            "bytes": ctx.net.store.data_bytes(),
            "inflight": ctx.net.inflight.load(std::sync::atomic::Ordering::Relaxed),
            "batches": ctx.net.postage.all().len(),
        }),
    )
}

fn parse_index(ctx: &Ctx, s: &str) -> Result<usize, ApiError> {
    let index = s
        .parse::<usize>()
        .map_err(|_| ApiError::invalid_param("path", "i", "invalid syntax"))?;
    ctx.net.node(index).map_err(node_error)?;
    Ok(index)
}

fn node_error(e: DevNetError) -> ApiError {
    match e {
        DevNetError::NoSuchNode(_) => ApiError::not_found(e.to_string()),
        other => ApiError::internal(other.to_string()),
    }
}
