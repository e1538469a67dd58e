//! The Bee 2.8.1 HTTP API of one virtual node, plus the `/_staples` admin routes.
//!
//! Every Bee route is served both at its bare path (as bee-js calls it) and under `/v1`
//! (Bee's `rootPath`). Unknown routes are Bee's JSON 404, wrong methods its JSON 405.
//! Middleware, outermost first: request accounting and a debug trace line, CORS (any
//! origin may call a dev node), then, on Bee routes only, the latency knob.
//!
//! Shared upload plumbing lives here: choosing the stamp (`Swarm-Postage-Batch-Id` or a
//! pre-signed `Swarm-Postage-Stamp`), storing a chunk through the drop knob, tags, and
//! serving joined content with `Range` support.

mod admin;
mod bytes;
mod chunks;
pub mod error;
mod feeds;
mod params;
mod pss;
mod soc;
mod stamps;
mod status;
mod tags;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use staples_protocol::swarm::ChunkAddress;
use staples_protocol::swarm::bytes_tree::{self, BytesTreeError, ChunkSource};
use staples_protocol::swarm::stamp::Stamp;

use self::error::ApiError;
use self::params::{header, header_hex, header_u64};
use crate::net::{Node, Shared};
use crate::store::Store;

/// Bee's API version (`openapi/Swarm.yaml` of 2.8.1), which bee-js checks.
pub const API_VERSION: &str = "8.1.0";
/// What `/health` reports: Bee's version with this implementation as its build suffix.
pub const BEE_VERSION: &str = "2.8.1-staples-devnode";

const BATCH_ID: &str = "Swarm-Postage-Batch-Id";
const STAMP: &str = "Swarm-Postage-Stamp";
const TAG: &str = "Swarm-Tag";
const EXPOSE: &str = "Access-Control-Expose-Headers";
/// Content up to this size is joined on the request's task; larger on a blocking thread.
const INLINE_JOIN: u64 = 64 << 10;

/// What every handler gets: the network and which node it is.
#[derive(Clone)]
pub(crate) struct Ctx {
    pub net: Arc<Shared>,
    pub index: usize,
}

impl Ctx {
    pub fn node(&self) -> &Node {
        // `index` comes from `router`, which is only called for existing nodes.
        &self.net.nodes[self.index]
    }
}

/// The full router of node `index`.
pub(crate) fn router(net: Arc<Shared>, index: usize) -> Router {
    let ctx = Ctx { net, index };
    let bee = bee_routes()
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(ctx.clone(), ultra_light))
        .layer(middleware::from_fn_with_state(ctx.clone(), added_latency));
    Router::new()
        .route("/", axum::routing::any(status::root))
        .merge(bee.clone())
        .nest("/v1", bee)
        .nest("/_staples", admin::routes())
        .fallback(not_found)
        .layer(middleware::from_fn(cors))
        .layer(middleware::from_fn_with_state(ctx.clone(), accounting))
        .with_state(ctx)
}

fn bee_routes() -> Router<Ctx> {
    Router::new()
        .route("/health", get(status::health))
        .route("/readiness", get(status::readiness))
        .route("/node", get(status::node))
        .route("/addresses", get(status::addresses))
        .route("/status", get(status::status))
        .route("/chainstate", get(status::chainstate))
        .route("/topology", get(status::topology))
        .route("/peers", get(status::peers))
        .route("/wallet", get(status::wallet))
        .route("/reservestate", get(status::reservestate))
        .route("/chunks", post(chunks::upload))
        .route("/chunks/{address}", get(chunks::download).head(chunks::has))
        .route("/bytes", post(bytes::upload))
        .route("/bytes/{address}", get(bytes::download).head(bytes::head))
        .route("/soc/{owner}/{id}", get(soc::download).post(soc::upload))
        .route(
            "/feeds/{owner}/{topic}",
            get(feeds::lookup).post(feeds::create),
        )
        .route("/pss/send/{topic}/{targets}", post(pss::send))
        .route("/pss/subscribe/{topic}", get(pss::subscribe))
        .route("/stamps", get(stamps::list))
        .route("/stamps/{a}", get(stamps::get).patch(stamps::label))
        .route("/stamps/{a}/buckets", get(stamps::buckets))
        .route("/stamps/{a}/{b}", post(stamps::create))
        .route("/stamps/topup/{a}/{b}", patch(stamps::topup))
        .route("/stamps/dilute/{a}/{b}", patch(stamps::dilute))
        .route("/batches", get(stamps::batches))
        .route("/batches/{a}", get(stamps::batch))
        .route("/tags", get(tags::list).post(tags::create))
        .route(
            "/tags/{id}",
            get(tags::get).delete(tags::delete).patch(tags::done),
        )
        .route("/bzz", post(unsupported_bzz))
        .route("/bzz/{*rest}", get(unsupported_bzz))
}

async fn not_found() -> ApiError {
    ApiError::status(StatusCode::NOT_FOUND)
}

async fn method_not_allowed() -> ApiError {
    ApiError::status(StatusCode::METHOD_NOT_ALLOWED)
}

async fn unsupported_bzz() -> ApiError {
    ApiError::unsupported("/bzz (mantaray manifests)")
}

/// An ultra-light node has no chain backend, hence no postage: it refuses whatever would
/// upload or change state (every Bee route but `GET`/`HEAD`), with 403 and a message
/// saying why (the dev node's wording; Bee's differs by route).
async fn ultra_light(State(ctx): State<Ctx>, req: Request, next: Next) -> Response {
    let reads = matches!(
        *req.method(),
        axum::http::Method::GET | axum::http::Method::HEAD | axum::http::Method::OPTIONS
    );
    if !ctx.node().mode().uploads() && !reads {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "ultra-light node: no postage, cannot upload",
        )
        .into_response();
    }
    next.run(req).await
}

/// Counts requests in flight (tests check nothing leaks) and traces each one.
async fn accounting(State(ctx): State<Ctx>, req: Request, next: Next) -> Response {
    struct Guard<'a>(&'a AtomicUsize);
    impl Drop for Guard<'_> {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::Relaxed);
        }
    }
    ctx.net.inflight.fetch_add(1, Ordering::Relaxed);
    ctx.node().requests.fetch_add(1, Ordering::Relaxed);
    let _guard = Guard(&ctx.net.inflight);
    let (method, path) = (req.method().clone(), req.uri().path().to_owned());
    let start = Instant::now();
    let response = next.run(req).await;
    tracing::debug!(
        node = ctx.index,
        %method,
        path,
        status = response.status().as_u16(),
        elapsed_ms = start.elapsed().as_millis() as u64,
        "request"
    );
    response
}

/// The latency knob.
async fn added_latency(State(ctx): State<Ctx>, req: Request, next: Next) -> Response {
    let delay = ctx.net.knobs.latency();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    next.run(req).await
}

/// Bee's CORS headers for any origin (a dev node trusts every page on the machine).
async fn cors(req: Request, next: Next) -> Response {
    let origin = req.headers().get(header::ORIGIN).cloned();
    let preflight = req.method() == Method::OPTIONS && origin.is_some();
    let mut response = if preflight {
        StatusCode::OK.into_response()
    } else {
        next.run(req).await
    };
    if let Some(origin) = origin {
        let h = response.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        h.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, HEAD, OPTIONS, POST, PUT, DELETE, PATCH"),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static(
                "User-Agent, Accept, X-Requested-With, Access-Control-Request-Headers, \
                 Access-Control-Request-Method, Accept-Ranges, Content-Encoding, Authorization, \
                 Accept-Encoding, Content-Type, Content-Disposition, Range, Origin, Swarm-Tag, \
                 Swarm-Pin, Swarm-Encrypt, Swarm-Index-Document, Swarm-Error-Document, \
                 Swarm-Collection, Swarm-Postage-Batch-Id, Swarm-Postage-Stamp, \
                 Swarm-Deferred-Upload, Swarm-Redundancy-Level, Swarm-Redundancy-Strategy, \
                 Swarm-Redundancy-Fallback-Mode, Swarm-Chunk-Retrieval-Timeout, \
                 Swarm-Lookahead-Buffer-Size, Swarm-Feed-Index, Swarm-Feed-Index-Next, \
                 Swarm-Soc-Signature, Swarm-Only-Root-Chunk, Gas-Price, Gas-Limit, Immutable, \
                 Swarm-Act, Swarm-Act-Timestamp, Swarm-Act-Publisher, Swarm-Act-History-Address",
            ),
        );
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("3600"),
        );
    }
    response
}

/// How an upload pays for its chunks.
#[derive(Debug, Clone)]
pub(crate) enum Stamping {
    /// Stamp with this node's batch.
    Batch(Vec<u8>),
    /// A stamp the batch owner signed; only for a single chunk.
    Presigned(Stamp),
}

impl Stamping {
    /// Reads the stamping headers of `/chunks` and `/soc` (either header; the stamp wins),
    /// and checks the batch before any body is read.
    fn from_headers(ctx: &Ctx, headers: &HeaderMap) -> Result<Self, ApiError> {
        let batch = header_hex(headers, BATCH_ID)?;
        let stamp = header_hex(headers, STAMP)?;
        let stamping = match (stamp, batch) {
            (Some(stamp), _) => Stamp::parse(&stamp)
                .map(Stamping::Presigned)
                .map_err(|_| ApiError::bad_request("Stamp deserialization failure"))?,
            (None, Some(batch)) => Stamping::Batch(batch),
            (None, None) => {
                return Err(ApiError::bad_request(format!(
                    "Either '{STAMP}' or '{BATCH_ID}' header must be set in the request"
                )));
            }
        };
        stamping.check(ctx)?;
        Ok(stamping)
    }

    /// Reads the batch header that `/bytes` and `/pss/send` require.
    fn batch_only(headers: &HeaderMap) -> Result<Self, ApiError> {
        header_hex(headers, BATCH_ID)?
            .map(Stamping::Batch)
            .ok_or_else(|| ApiError::invalid_param("header", BATCH_ID, "required"))
    }

    fn check(&self, ctx: &Ctx) -> Result<(), ApiError> {
        match self {
            Stamping::Batch(id) => Ok(ctx.net.postage.check_issuer(ctx.index, id)?),
            Stamping::Presigned(stamp) => match ctx.net.postage.get(&stamp.batch_id) {
                Some(_) => Ok(()),
                None => Err(ApiError::bad_request("invalid batch id")),
            },
        }
    }
}

/// Reads `Swarm-Tag`: `Some(uid)` of an existing tag, a new tag when `create` and none
/// was given, or `None`. An unknown uid is Bee's 404 "tag not found".
fn upload_tag(ctx: &Ctx, headers: &HeaderMap, create: bool) -> Result<Option<u64>, ApiError> {
    match header_u64(headers, TAG)? {
        Some(uid) if uid > 0 => match ctx.node().tags.get(uid) {
            Some(_) => Ok(Some(uid)),
            None => Err(ApiError::not_found("tag not found")),
        },
        _ if create => Ok(Some(ctx.node().tags.create().uid)),
        _ => Ok(None),
    }
}

/// Stamps and stores one chunk; counts it in `tag`. Returns `false` when the drop knob
/// lost it (the upload still succeeds, as a push into the void would).
async fn put_chunk(
    ctx: &Ctx,
    stamping: &Stamping,
    address: ChunkAddress,
    data: Bytes,
    tag: Option<u64>,
) -> Result<bool, ApiError> {
    match stamping {
        Stamping::Batch(id) => {
            let record = ctx.net.postage.stamp(ctx.index, id, &address)?;
            if let (Some(record), Some(journal)) = (record, ctx.net.store.journal()) {
                journal
                    .append(record)
                    .await
                    .map_err(|e| ApiError::internal(format!("chunk write error: {e}")))?;
            }
        }
        Stamping::Presigned(stamp) => ctx.net.postage.verify_stamp(stamp, &address)?,
    }
    let already = ctx.net.store.contains(&address);
    let dropped = ctx.net.knobs.should_drop(&address);
    if dropped {
        tracing::debug!(%address, "drop knob: chunk lost");
    } else {
        ctx.net
            .store
            .put(address, data)
            .await
            .map_err(|e| ApiError::internal(format!("chunk write error: {e}")))?;
    }
    if let Some(uid) = tag {
        ctx.node().tags.count_chunk(uid, already);
    }
    Ok(!dropped)
}

/// Response headers every upload carries (Bee sets the expose header even without a tag).
fn upload_headers(tag: Option<u64>) -> HeaderMap {
    let mut h = HeaderMap::new();
    if let Some(uid) = tag
        && let Ok(v) = HeaderValue::from_str(&uid.to_string())
    {
        h.insert(TAG, v);
    }
    h.insert(EXPOSE, HeaderValue::from_static(TAG));
    h
}

/// A chunk source that also knows one chunk not (necessarily) in the store: the wrapped
/// root of a SOC or feed update.
struct WithRoot<'a> {
    address: ChunkAddress,
    data: Vec<u8>,
    store: &'a Store,
}

impl ChunkSource for WithRoot<'_> {
    fn get(&self, address: &ChunkAddress) -> Option<std::borrow::Cow<'_, [u8]>> {
        if *address == self.address {
            return Some(std::borrow::Cow::Borrowed(&self.data));
        }
        ChunkSource::get(self.store, address)
    }
}

/// Joins the content under `root`; `root_data` supplies the root chunk when it is the
/// wrapped chunk of a SOC. Large content is joined on a blocking thread.
async fn join(
    ctx: &Ctx,
    root: ChunkAddress,
    root_data: Option<Vec<u8>>,
) -> Result<Vec<u8>, ApiError> {
    let data = match root_data {
        Some(d) => d,
        None => ctx
            .net
            .store
            .get(&root)
            .ok_or_else(|| ApiError::status(StatusCode::NOT_FOUND))?
            .to_vec(),
    };
    let span = data
        .get(..8)
        .and_then(|s| <[u8; 8]>::try_from(s).ok())
        .map(u64::from_le_bytes)
        .unwrap_or(0);
    let max = ctx.net.limits.max_download_bytes;
    let net = ctx.net.clone();
    let run = move || {
        let source = WithRoot {
            address: root,
            data,
            store: &net.store,
        };
        bytes_tree::join(&source, &root, max)
    };
    let joined = if span <= INLINE_JOIN {
        run()
    } else {
        tokio::task::spawn_blocking(run)
            .await
            .map_err(|_| ApiError::internal("joiner failed"))?
    };
    joined.map_err(|e| match e {
        BytesTreeError::MissingChunk(_) => ApiError::status(StatusCode::NOT_FOUND),
        BytesTreeError::RedundancyUnsupported(level) => {
            ApiError::unsupported(&format!("joining content with redundancy level {level}"))
        }
        other => ApiError::internal(format!("joiner failed: {other}")),
    })
}

/// Serves joined content like Bee's `downloadHandler` (`http.ServeContent`): ETag,
/// Content-Length, `Accept-Ranges`, a single `Range` (a multi-range request gets the whole
/// body, which RFC 9110 allows), 416 for an unsatisfiable range.
fn serve_content(
    request: &HeaderMap,
    content: Vec<u8>,
    etag: &ChunkAddress,
    mut extra: HeaderMap,
) -> Response {
    let total = content.len() as u64;
    extra.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    extra.append(EXPOSE, HeaderValue::from_static("Content-Disposition"));
    extra.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Ok(v) = HeaderValue::from_str(&format!("\"{etag}\"")) {
        extra.insert(header::ETAG, v);
    }
    let range = header(request, header::RANGE.as_str())
        .ok()
        .flatten()
        .map(|r| parse_range(r, total));
    match range {
        Some(RangeSpec::Unsatisfiable) => {
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{total}")) {
                extra.insert(header::CONTENT_RANGE, v);
            }
            extra.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            (
                StatusCode::RANGE_NOT_SATISFIABLE,
                extra,
                "invalid range: failed to overlap\n",
            )
                .into_response()
        }
        Some(RangeSpec::One(start, end)) => {
            if let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{end}/{total}")) {
                extra.insert(header::CONTENT_RANGE, v);
            }
            // start ≤ end < total, both from a Vec's length.
            let part = content[start as usize..=end as usize].to_vec();
            (StatusCode::PARTIAL_CONTENT, extra, Body::from(part)).into_response()
        }
        Some(RangeSpec::Whole) | None => {
            (StatusCode::OK, extra, Body::from(content)).into_response()
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum RangeSpec {
    Whole,
    One(u64, u64),
    Unsatisfiable,
}

/// Parses a `Range` header against a body of `total` bytes (RFC 9110 §14.1.2).
fn parse_range(value: &str, total: u64) -> RangeSpec {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return RangeSpec::Whole;
    };
    if spec.contains(',') {
        return RangeSpec::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeSpec::Whole;
    };
    let (first, last) = (first.trim(), last.trim());
    let parsed = if first.is_empty() {
        // Suffix range: the last `last` bytes.
        match last.parse::<u64>() {
            Ok(0) | Err(_) => return RangeSpec::Unsatisfiable,
            Ok(_) if total == 0 => return RangeSpec::Unsatisfiable,
            Ok(n) => (total.saturating_sub(n), total - 1),
        }
    } else {
        let Ok(start) = first.parse::<u64>() else {
            return RangeSpec::Whole;
        };
        if start >= total {
            return RangeSpec::Unsatisfiable;
        }
        let end = if last.is_empty() {
            total - 1
        } else {
            match last.parse::<u64>() {
                Ok(e) if e >= start => e.min(total - 1),
                _ => return RangeSpec::Whole,
            }
        };
        (start, end)
    };
    RangeSpec::One(parsed.0, parsed.1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_follow_rfc9110() {
        use RangeSpec::*;
        let cases = [
            ("bytes=0-3", 10, One(0, 3)),
            ("bytes=5-", 10, One(5, 9)),
            ("bytes=-4", 10, One(6, 9)),
            ("bytes=-40", 10, One(0, 9)),
            ("bytes=8-100", 10, One(8, 9)),
            ("bytes=10-", 10, Unsatisfiable),
            ("bytes=-0", 10, Unsatisfiable),
            ("bytes=0-1,3-4", 10, Whole),
            ("items=0-1", 10, Whole),
            ("bytes=5-2", 10, Whole),
            ("bytes=0-0", 0, Unsatisfiable),
        ];
        for (header, total, want) in cases {
            assert_eq!(parse_range(header, total), want, "{header} of {total}");
        }
    }
}
