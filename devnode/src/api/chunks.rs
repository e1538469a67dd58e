//! `/chunks`: upload one chunk, download it, ask whether it is stored.
//!
//! Bee 2.8.1 `pkg/api/chunk.go`: a body of 8..=4104 bytes is taken as a content-addressed
//! chunk with whatever span it carries (so a small SOC posted here is stored under its
//! BMT hash, as in Bee); only a longer body (up to 4201) is parsed as a SOC, and an
//! invalid one is Bee's 500 "create chunk error".

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use staples_protocol::swarm::Cac;
use staples_protocol::swarm::bmt::{CHUNK_SIZE, SPAN_SIZE};
use staples_protocol::swarm::soc::{MAX_SOC_SIZE, SingleOwnerChunk};

use super::error::{ApiError, json_response};
use super::params::{P, header_bool, path_hex, read_body};
use super::{Ctx, Stamping, put_chunk, upload_headers, upload_tag};

/// `POST /chunks`.
pub async fn upload(
    State(ctx): State<Ctx>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    if header_bool(&headers, "Swarm-Act")? == Some(true) {
        return Err(ApiError::unsupported("ACT (Swarm-Act)"));
    }
    let tag = upload_tag(&ctx, &headers, false)?;
    let stamping = Stamping::from_headers(&ctx, &headers)?;
    let data = read_body(&headers, body, MAX_SOC_SIZE as u64).await?;
    if data.len() < SPAN_SIZE {
        return Err(ApiError::bad_request("insufficient data length"));
    }
    let address = if data.len() <= SPAN_SIZE + CHUNK_SIZE {
        *Cac::from_data(&data)
            .map_err(|e| ApiError::bad_request(format!("insufficient data length: {e}")))?
            .address()
    } else {
        *SingleOwnerChunk::parse(&data)
            .map_err(|e| ApiError::internal(format!("create chunk error: {e}")))?
            .address()
    };
    put_chunk(&ctx, &stamping, address, data, tag).await?;
    let mut response = json_response(StatusCode::CREATED, &json!({"reference": address.to_hex()}));
    response.headers_mut().extend(upload_headers(tag));
    Ok(response)
}

/// `GET /chunks/{address}`: the raw chunk bytes.
pub async fn download(
    State(ctx): State<Ctx>,
    P((address,)): P<(String,)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    header_bool(&headers, "Swarm-Cache")?;
    let bytes = path_hex("address", &address)?;
    let data = staples_protocol::swarm::ChunkAddress::try_from(bytes.as_slice())
        .ok()
        .and_then(|a| ctx.net.store.get(&a))
        .ok_or_else(|| ApiError::not_found("chunk not found"))?;
    let mut response = (StatusCode::OK, data).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("binary/octet-stream"),
    );
    Ok(response)
}

/// `HEAD /chunks/{address}`: 200 if stored, 404 if not.
pub async fn has(
    State(ctx): State<Ctx>,
    P((address,)): P<(String,)>,
) -> Result<Response, ApiError> {
    let bytes = path_hex("address", &address)?;
    let stored = staples_protocol::swarm::ChunkAddress::try_from(bytes.as_slice())
        .is_ok_and(|a| ctx.net.store.contains(&a));
    if stored {
        Ok(ApiError::status(StatusCode::OK).into_response())
    } else {
        Err(ApiError::status(StatusCode::NOT_FOUND))
    }
}
