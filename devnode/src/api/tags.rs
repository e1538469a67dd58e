//! `/tags`: Bee 2.8.1 `pkg/api/tag.go` over [`crate::tags::Tags`].

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use staples_protocol::swarm::ChunkAddress;

use super::Ctx;
use super::error::{ApiError, json_response};
use super::params::{P, Q, decode_hex, read_body};
use super::status::rfc3339;
use crate::tags::Tag;

/// `GET /tags?offset=&limit=` (limit 100 by default).
pub async fn list(State(ctx): State<Ctx>, query: Q) -> Result<Response, ApiError> {
    let offset = query.u64("offset")?.unwrap_or(0);
    let limit = query.u64("limit")?.unwrap_or(100);
    let tags: Vec<Value> = ctx
        .node()
        .tags
        .list(
            usize::try_from(offset).unwrap_or(usize::MAX),
            usize::try_from(limit).unwrap_or(usize::MAX),
        )
        .iter()
        .map(tag_json)
        .collect();
    Ok(json_response(StatusCode::OK, &json!({ "tags": tags })))
}

/// `POST /tags`.
pub async fn create(
    State(ctx): State<Ctx>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    read_body(&headers, body, 1024).await?;
    Ok(json_response(
        StatusCode::CREATED,
        &tag_json(&ctx.node().tags.create()),
    ))
}

/// `GET /tags/{id}`.
pub async fn get(State(ctx): State<Ctx>, P((id,)): P<(String,)>) -> Result<Response, ApiError> {
    let tag = ctx
        .node()
        .tags
        .get(parse_id(&id)?)
        .ok_or_else(|| ApiError::not_found("tag not present"))?;
    Ok(json_response(StatusCode::OK, &tag_json(&tag)))
}

/// `DELETE /tags/{id}`: 204.
pub async fn delete(State(ctx): State<Ctx>, P((id,)): P<(String,)>) -> Result<Response, ApiError> {
    if ctx.node().tags.delete(parse_id(&id)?) {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::not_found("tag not present"))
    }
}

#[derive(Deserialize)]
struct DoneBody {
    #[serde(default)]
    address: String,
}

/// `PATCH /tags/{id}` with an optional `{"address": "<root>"}`: marks the split done.
pub async fn done(
    State(ctx): State<Ctx>,
    P((id,)): P<(String,)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let uid = parse_id(&id)?;
    let body = read_body(&headers, body, 1024).await?;
    let root = if body.is_empty() {
        None
    } else {
        let DoneBody { address } = serde_json::from_slice(&body)
            .map_err(|_| ApiError::internal("error unmarshaling metadata"))?;
        match address.as_str() {
            "" => None,
            a => Some(
                decode_hex(a)
                    .ok()
                    .and_then(|b| ChunkAddress::try_from(b.as_slice()).ok())
                    .ok_or_else(|| ApiError::internal("error unmarshaling metadata"))?,
            ),
        }
    };
    if !ctx.node().tags.done(uid, root) {
        return Err(ApiError::not_found("tag not present"));
    }
    Ok(json_response(
        StatusCode::OK,
        &json!({"code": 200, "message": "ok"}),
    ))
}

fn parse_id(s: &str) -> Result<u64, ApiError> {
    match s.parse::<u64>() {
        Ok(0) => Err(ApiError::invalid_param("path", "id", "required")),
        Ok(id) => Ok(id),
        Err(_) => Err(ApiError::invalid_param("path", "id", "invalid syntax")),
    }
}

fn tag_json(t: &Tag) -> Value {
    let started = t
        .started_at
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    json!({
        "split": t.split,
        "seen": t.seen,
        "stored": t.stored,
        "sent": t.sent,
        "synced": t.synced,
        "uid": t.uid,
        "address": t.address.map(|a| a.to_hex()).unwrap_or_default(),
        "startedAt": rfc3339(started),
    })
}
