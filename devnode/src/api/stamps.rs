//! `/stamps` and `/batches`: buying and inspecting postage batches.
//!
//! Bee 2.8.1 `pkg/api/postage.go` with the chain of the retired `bee dev`: a bought batch
//! is usable at once, `/stamps` lists this node's batches, `/batches` every batch of the
//! network, and top-up/dilute answer 501 (dev mode's `ErrNotImplemented`).

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use rand_core::{OsRng, RngCore};
use serde::Deserialize;
use serde_json::{Value, json};
use staples_protocol::crypto::keccak256_concat;

use super::Ctx;
use super::error::{ApiError, json_response};
use super::params::{P, Q, header_bool, path_hex_exact, read_body};
use crate::postage::{BUCKET_DEPTH, BatchInfo, MIN_DEPTH, NewBatch, PostageError};

/// `POST /stamps/{amount}/{depth}?label=` with optional header `Immutable` (default true).
pub async fn create(
    State(ctx): State<Ctx>,
    P((amount, depth)): P<(String, String)>,
    query: Q,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let amount = parse_amount(&amount)?;
    let depth = depth
        .parse::<u8>()
        .map_err(|_| ApiError::invalid_param("path", "depth", number_error(&depth)))?;
    if depth < MIN_DEPTH {
        return Err(ApiError::invalid_param(
            "path",
            "depth",
            format!("want min:{MIN_DEPTH}"),
        ));
    }
    let immutable = header_bool(&headers, "Immutable")?.unwrap_or(true);
    let mut id = [0u8; 32];
    OsRng.fill_bytes(&mut id);
    let node = &ctx.node().identity;
    let (info, record) = ctx
        .net
        .postage
        .create(NewBatch {
            id,
            owner_node: ctx.index,
            owner: *node.eth_address(),
            depth,
            amount,
            label: query.get("label").unwrap_or_default().to_string(),
            immutable,
            block: ctx.net.block(),
        })
        .map_err(|e| match e {
            PostageError::InvalidDepth(_) => ApiError::bad_request("invalid depth"),
            PostageError::InsufficientAmount { min } => ApiError::bad_request(format!(
                "insufficient amount for 24h minimum validity: the amount must be above {min}"
            )),
            other => ApiError::internal(format!("cannot create batch: {other}")),
        })?;
    if let Some(j) = ctx.net.store.journal() {
        j.append(record)
            .await
            .map_err(|e| ApiError::internal(format!("cannot create batch: {e}")))?;
    }
    tracing::info!(node = ctx.index, batch = %hex::encode(info.id), depth, "batch bought");
    let tx = keccak256_concat(&[b"staples-devnode/tx", &info.id]);
    Ok(json_response(
        StatusCode::CREATED,
        &json!({"batchID": hex::encode(info.id), "txHash": format!("0x{}", hex::encode(tx))}),
    ))
}

/// `GET /stamps`: this node's batches.
pub async fn list(State(ctx): State<Ctx>) -> Response {
    let stamps: Vec<Value> = ctx
        .net
        .postage
        .issuers(ctx.index)
        .iter()
        .map(stamp_json)
        .collect();
    json_response(StatusCode::OK, &json!({ "stamps": stamps }))
}

/// `GET /stamps/{id}`.
pub async fn get(State(ctx): State<Ctx>, P((id,)): P<(String,)>) -> Result<Response, ApiError> {
    let id = path_hex_exact::<32>("batch_id", &id)?;
    let info = ctx
        .net
        .postage
        .issuer(ctx.index, &id)
        .map_err(|_| ApiError::not_found("issuer does not exist"))?;
    Ok(json_response(StatusCode::OK, &stamp_json(&info)))
}

/// `GET /stamps/{id}/buckets`: the count of every bucket.
pub async fn buckets(State(ctx): State<Ctx>, P((id,)): P<(String,)>) -> Result<Response, ApiError> {
    let id = path_hex_exact::<32>("batch_id", &id)?;
    let (info, counts) = ctx
        .net
        .postage
        .buckets(ctx.index, &id)
        .map_err(|_| ApiError::not_found("issuer does not exist"))?;
    let buckets: Vec<Value> = counts
        .iter()
        .enumerate()
        .map(|(i, c)| json!({"bucketID": i, "collisions": c}))
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "depth": info.depth,
            "bucketDepth": BUCKET_DEPTH,
            "bucketUpperBound": info.bucket_upper_bound(),
            "buckets": buckets,
        }),
    ))
}

#[derive(Deserialize)]
struct LabelBody {
    label: String,
}

/// `PATCH /stamps/{id}` with `{"label": "..."}`.
pub async fn label(
    State(ctx): State<Ctx>,
    P((id,)): P<(String,)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let id = path_hex_exact::<32>("batch_id", &id)?;
    let body = read_body(&headers, body, 64 << 10).await?;
    let LabelBody { label } =
        serde_json::from_slice(&body).map_err(|_| ApiError::bad_request("invalid request body"))?;
    let record = ctx
        .net
        .postage
        .set_label(ctx.index, &id, &label)
        .map_err(|e| match e {
            PostageError::LabelRequired => ApiError::bad_request("label is required"),
            _ => ApiError::not_found("issuer does not exist"),
        })?;
    if let Some(j) = ctx.net.store.journal() {
        j.append(record)
            .await
            .map_err(|e| ApiError::internal(format!("cannot update label: {e}")))?;
    }
    Ok(json_response(
        StatusCode::OK,
        &json!({"code": 200, "message": "OK"}),
    ))
}

/// `PATCH /stamps/topup/{id}/{amount}`.
pub async fn topup() -> ApiError {
    ApiError::unsupported("topping up a batch (batches here never expire)")
}

/// `PATCH /stamps/dilute/{id}/{depth}`.
pub async fn dilute() -> ApiError {
    ApiError::unsupported("diluting a batch (buy a deeper batch instead)")
}

/// `GET /batches`: every batch of the network.
pub async fn batches(State(ctx): State<Ctx>) -> Response {
    let batches: Vec<Value> = ctx.net.postage.all().iter().map(batch_json).collect();
    json_response(StatusCode::OK, &json!({ "batches": batches }))
}

/// `GET /batches/{id}`.
pub async fn batch(State(ctx): State<Ctx>, P((id,)): P<(String,)>) -> Result<Response, ApiError> {
    let id = path_hex_exact::<32>("batch_id", &id)?;
    let info = ctx
        .net
        .postage
        .get(&id)
        .ok_or_else(|| ApiError::not_found("batch not found"))?;
    Ok(json_response(StatusCode::OK, &batch_json(&info)))
}

fn stamp_json(b: &BatchInfo) -> Value {
    json!({
        "batchID": hex::encode(b.id),
        "utilization": b.utilization,
        "utilizationRatio": f64::from(b.utilization) / f64::from(b.bucket_upper_bound()),
        "usable": true,
        "label": b.label,
        "depth": b.depth,
        "amount": b.amount.to_string(),
        "bucketDepth": BUCKET_DEPTH,
        "blockNumber": b.block,
        "immutableFlag": b.immutable,
        "exists": true,
        "batchTTL": b.ttl_secs(),
    })
}

fn batch_json(b: &BatchInfo) -> Value {
    json!({
        "batchID": hex::encode(b.id),
        "value": b.amount.to_string(),
        "start": b.block,
        "owner": hex::encode(b.owner),
        "depth": b.depth,
        "bucketDepth": BUCKET_DEPTH,
        "immutable": b.immutable,
        "batchTTL": b.ttl_secs(),
    })
}

/// A decimal amount (Bee parses a `big.Int`; this node's amounts fit in 128 bits).
fn parse_amount(s: &str) -> Result<u128, ApiError> {
    s.parse::<u128>()
        .map_err(|_| ApiError::invalid_param("path", "amount", number_error(s)))
}

fn number_error(v: &str) -> String {
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        "value out of range".into()
    } else {
        "invalid value".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_parse_or_explain() {
        assert_eq!(parse_amount("500000000"), Ok(500_000_000));
        assert_eq!(
            parse_amount("abc").expect_err("bad").reasons[0].error,
            "invalid value"
        );
        assert_eq!(
            parse_amount(&"9".repeat(50)).expect_err("big").reasons[0].error,
            "value out of range"
        );
    }
}
