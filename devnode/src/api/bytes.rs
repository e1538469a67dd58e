//! `/bytes`: content of any length as a chunk tree.
//!
//! Upload splits the body into the redundancy-NONE tree of
//! [`staples_protocol::swarm::bytes_tree`] while it streams in, stamping and storing each
//! chunk as it is completed. Hashing runs on a blocking thread in batches of 256 KiB so a
//! large upload does not stall the node's other requests.
//!
//! Redundancy: Bee 2.8.1 defaults uploads to MEDIUM erasure coding when
//! `Swarm-Redundancy-Level` is absent; this node has no erasure coding, so an absent header
//! (or `0`) gives the NONE tree (the same reference for content up to 4096 bytes, a
//! different one above), and an explicit level 1..=4 is refused with 501 rather than
//! silently answering with a reference Bee would not give.

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use serde_json::json;
use staples_protocol::swarm::bmt::{CHUNK_SIZE, SPAN_SIZE};
use staples_protocol::swarm::bytes_tree::{Redundancy, Splitter};
use staples_protocol::swarm::{Cac, ChunkAddress};

use super::error::{ApiError, json_response};
use super::params::{P, header, header_bool, path_hex};
use super::{Ctx, Stamping, join, put_chunk, serve_content, upload_headers, upload_tag};

/// Body bytes hashed per batch.
const BATCH: usize = 256 << 10;
/// Up to this much is hashed on the request's task (four chunks, well under a
/// millisecond); a batch of 256 KiB takes a few milliseconds and goes to the blocking pool.
const INLINE: usize = 16 << 10;

/// `POST /bytes`.
pub async fn upload(
    State(ctx): State<Ctx>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    reject_unsupported(&headers)?;
    let stamping = Stamping::batch_only(&headers)?;
    // Bee: `Swarm-Deferred-Upload` defaults to true, so a tag is created and returned.
    let deferred = header_bool(&headers, "Swarm-Deferred-Upload")?.unwrap_or(true);
    let pin = header_bool(&headers, "Swarm-Pin")?.unwrap_or(false);
    let tag = upload_tag(&ctx, &headers, deferred || pin)?;
    stamping.check(&ctx)?;

    let limit = ctx.net.limits.max_upload_bytes;
    let declared =
        header(&headers, header::CONTENT_LENGTH.as_str())?.and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|l| l > limit) {
        return Err(ApiError::status(StatusCode::PAYLOAD_TOO_LARGE));
    }

    let mut splitter = Splitter::new(Redundancy::None)
        .map_err(|e| ApiError::internal(format!("split write all failed: {e}")))?;
    let mut pending = Vec::with_capacity(BATCH);
    let mut received = 0u64;
    let mut body = body;
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|e| ApiError::bad_request(format!("cannot read request body: {e}")))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        received += data.len() as u64;
        if received > limit {
            return Err(ApiError::status(StatusCode::PAYLOAD_TOO_LARGE));
        }
        pending.extend_from_slice(&data);
        if pending.len() >= BATCH {
            let (s, chunks) = split(splitter, std::mem::take(&mut pending)).await?;
            splitter = s;
            store_all(&ctx, &stamping, chunks, tag).await?;
        }
    }
    let (splitter, mut chunks) = split(splitter, pending).await?;
    let (root, _) = splitter.finish(&mut |c| chunks.push(c));
    store_all(&ctx, &stamping, chunks, tag).await?;
    if let Some(uid) = tag {
        ctx.node().tags.done(uid, Some(root));
    }
    let mut response = json_response(StatusCode::CREATED, &json!({"reference": root.to_hex()}));
    response.headers_mut().extend(upload_headers(tag));
    Ok(response)
}

/// `GET /bytes/{address}`: the joined content.
pub async fn download(
    State(ctx): State<Ctx>,
    P((address,)): P<(String,)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    header_bool(&headers, "Swarm-Cache")?;
    let bytes = path_hex("address", &address)?;
    let root = ChunkAddress::try_from(bytes.as_slice())
        .map_err(|_| ApiError::status(StatusCode::NOT_FOUND))?;
    let content = join(&ctx, root, None).await?;
    Ok(serve_content(&headers, content, &root, HeaderMap::new()))
}

/// `HEAD /bytes/{address}`: the content length from the root span, no body (Bee answers
/// errors here with a bare status).
pub async fn head(State(ctx): State<Ctx>, P((address,)): P<(String,)>) -> Response {
    let Ok(bytes) = path_hex("address", &address) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let Some(data) = ChunkAddress::try_from(bytes.as_slice())
        .ok()
        .and_then(|a| ctx.net.store.get(&a))
    else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let length = match data.get(..SPAN_SIZE) {
        Some(span) if data.len() <= SPAN_SIZE + CHUNK_SIZE => {
            let mut s = [0u8; SPAN_SIZE];
            s.copy_from_slice(span);
            u64::from_le_bytes(s)
        }
        _ => data.len() as u64,
    };
    let mut response = StatusCode::OK.into_response();
    let h = response.headers_mut();
    h.insert(
        "Access-Control-Expose-Headers",
        HeaderValue::from_static("Accept-Ranges, Content-Encoding"),
    );
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    response
}

/// Refuses upload options this node cannot honour, with a clear 501.
fn reject_unsupported(headers: &HeaderMap) -> Result<(), ApiError> {
    if header_bool(headers, "Swarm-Encrypt")? == Some(true) {
        return Err(ApiError::unsupported("encrypted upload (Swarm-Encrypt)"));
    }
    if header_bool(headers, "Swarm-Act")? == Some(true) {
        return Err(ApiError::unsupported("ACT (Swarm-Act)"));
    }
    match header(headers, "Swarm-Redundancy-Level")? {
        None | Some("0") => Ok(()),
        Some(l @ ("1" | "2" | "3" | "4")) => Err(ApiError::unsupported(&format!(
            "redundancy level {l} (erasure coding); use 0 or omit Swarm-Redundancy-Level"
        ))),
        Some(_) => Err(ApiError::invalid_param(
            "header",
            "Swarm-Redundancy-Level",
            "want redundancy level between 0 and 4",
        )),
    }
}

/// Feeds `data` to the splitter, off the async workers when it is large.
async fn split(mut splitter: Splitter, data: Vec<u8>) -> Result<(Splitter, Vec<Cac>), ApiError> {
    let data_len = data.len();
    let run = move || {
        let mut chunks = Vec::with_capacity(data.len() / CHUNK_SIZE + 2);
        splitter.write(&data, &mut |c| chunks.push(c));
        (splitter, chunks)
    };
    if data_len <= INLINE {
        Ok(run())
    } else {
        tokio::task::spawn_blocking(run)
            .await
            .map_err(|_| ApiError::internal("split write all failed"))
    }
}

async fn store_all(
    ctx: &Ctx,
    stamping: &Stamping,
    chunks: Vec<Cac>,
    tag: Option<u64>,
) -> Result<(), ApiError> {
    for chunk in chunks {
        let data = Bytes::from(chunk.to_data());
        put_chunk(ctx, stamping, *chunk.address(), data, tag).await?;
    }
    Ok(())
}
