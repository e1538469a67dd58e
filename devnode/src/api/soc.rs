//! `/soc/{owner}/{id}`: single-owner chunks.
//!
//! Bee 2.8.1 `pkg/api/soc.go`. Upload takes the wrapped chunk (`span ‖ payload`) as the
//! body and the signature as `?sig=`; the chunk is accepted only if the signature over
//! `keccak256(id ‖ wrapped address)` recovers to `owner` (bee-js and Bee sign with
//! different nonces, so bytes are never compared). A wrong owner length is Bee's 401
//! "invalid address", any other mismatch 401 "invalid chunk".

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use staples_protocol::crypto::keccak256_concat;
use staples_protocol::swarm::bmt::{CHUNK_SIZE, SPAN_SIZE};
use staples_protocol::swarm::signature::SwarmSignature;
use staples_protocol::swarm::soc::SingleOwnerChunk;
use staples_protocol::swarm::{Cac, ChunkAddress};

use super::error::{ApiError, json_response};
use super::params::{P, Q, decode_hex, header_bool, path_hex, read_body};
use super::{Ctx, Stamping, join, put_chunk, serve_content, upload_headers, upload_tag};

/// `POST /soc/{owner}/{id}?sig=`.
pub async fn upload(
    State(ctx): State<Ctx>,
    P((owner, id)): P<(String, String)>,
    query: Q,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let owner = path_hex("owner", &owner)?;
    let id = path_hex("id", &id)?;
    let sig = query
        .get("sig")
        .ok_or_else(|| ApiError::invalid_param("query", "sig", "required"))
        .and_then(|s| decode_hex(s).map_err(|e| ApiError::invalid_param("query", "sig", e)))?;
    if header_bool(&headers, "Swarm-Act")? == Some(true) {
        return Err(ApiError::unsupported("ACT (Swarm-Act)"));
    }
    let stamping = Stamping::from_headers(&ctx, &headers)?;
    let deferred = header_bool(&headers, "Swarm-Deferred-Upload")?;
    let pin = header_bool(&headers, "Swarm-Pin")?.unwrap_or(false);
    let wants_tag = deferred == Some(true) || pin;
    let tag = upload_tag(&ctx, &headers, wants_tag)?;

    let data = read_body(&headers, body, (SPAN_SIZE + CHUNK_SIZE) as u64).await?;
    if data.len() < SPAN_SIZE {
        return Err(ApiError::bad_request("short chunk data"));
    }
    let wrapped = Cac::from_data(&data).map_err(|_| ApiError::bad_request("chunk data error"))?;
    let owner: [u8; 20] = owner
        .as_slice()
        .try_into()
        .map_err(|_| ApiError::new(StatusCode::UNAUTHORIZED, "invalid address"))?;
    let invalid = || ApiError::new(StatusCode::UNAUTHORIZED, "invalid chunk");
    let id: [u8; 32] = id.as_slice().try_into().map_err(|_| invalid())?;
    let signature = SwarmSignature::from_bytes(&sig).map_err(|_| invalid())?;
    let soc = SingleOwnerChunk::from_parts(id, signature, wrapped).map_err(|_| invalid())?;
    if *soc.owner() != owner {
        return Err(invalid());
    }
    let address = *soc.address();
    put_chunk(&ctx, &stamping, address, soc.to_bytes().into(), tag).await?;
    if let Some(uid) = tag {
        ctx.node().tags.done(uid, Some(address));
    }
    let mut response = json_response(StatusCode::CREATED, &json!({"reference": address.to_hex()}));
    response.headers_mut().extend(upload_headers(tag));
    Ok(response)
}

/// `GET /soc/{owner}/{id}`: the wrapped chunk's content, with its signature in a header.
pub async fn download(
    State(ctx): State<Ctx>,
    P((owner, id)): P<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let owner = path_hex("owner", &owner)?;
    let id = path_hex("id", &id)?;
    let only_root = header_bool(&headers, "Swarm-Only-Root-Chunk")?.unwrap_or(false);
    // Bee's `soc.CreateAddress` hashes whatever lengths it gets.
    let address = ChunkAddress::from_bytes(keccak256_concat(&[&id, &owner]));
    let data = ctx
        .net
        .store
        .get(&address)
        .ok_or_else(|| ApiError::not_found("requested chunk cannot be retrieved"))?;
    let soc = SingleOwnerChunk::parse(&data)
        .map_err(|_| ApiError::internal("chunk is not a single owner chunk"))?;
    let mut extra = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&hex::encode(soc.signature().as_bytes())) {
        extra.insert("Swarm-Soc-Signature", v);
    }
    extra.insert(
        "Access-Control-Expose-Headers",
        HeaderValue::from_static("Swarm-Soc-Signature"),
    );
    serve_wrapped(&ctx, &headers, soc.wrapped(), only_root, extra).await
}

/// Serves a SOC's wrapped chunk: raw with `Swarm-Only-Root-Chunk`, else joined (a wrapped
/// root of a larger tree pulls its children from the store).
pub(super) async fn serve_wrapped(
    ctx: &Ctx,
    request: &HeaderMap,
    wrapped: &Cac,
    only_root: bool,
    mut extra: HeaderMap,
) -> Result<Response, ApiError> {
    if only_root {
        extra.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        return Ok((StatusCode::OK, extra, wrapped.to_data()).into_response());
    }
    let content = join(ctx, *wrapped.address(), Some(wrapped.to_data())).await?;
    Ok(serve_content(request, content, wrapped.address(), extra))
}
