//! `GET /feeds/{owner}/{topic}`: the latest update of a sequence feed.
//!
//! Bee 2.8.1 `pkg/api/feed.go`, `pkg/feeds/sequence`, `resolveFeed` in `pkg/api/bzz.go`:
//!
//! - Lookup: `after` (default 0) must have an update, else 404 "no update found"; then the
//!   latest index is found by probing `after+1, +2, +4, …` until a miss and bisecting back.
//!   For a feed without gaps (what every writer produces) this is the linear scan Bee's
//!   synchronous finder does, in O(log n) probes. `at` is parsed and, as in Bee 2.8.1's
//!   sequence lookup, not used.
//! - The stale-feed knob hides updates stored less than `stale_feed_ms` ago.
//! - Resolution: a wrapped chunk of 48 bytes (or 80) reads as v1 (`timestamp ‖ reference`)
//!   when the reference is stored, and then the body is the content at the reference;
//!   otherwise (or for any other length) as v2, the wrapped chunk's own content.
//! - Headers: `Swarm-Feed-Index`, `Swarm-Feed-Index-Next` (16 hex digits, big-endian),
//!   `Swarm-Soc-Signature`, `Swarm-Feed-Resolved-Version`, and
//!   `Access-Control-Expose-Headers` listing the first three, as Bee sends them.
//!
//! `POST /feeds` (feed manifests) needs mantaray and answers 501.

use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::Response;
use staples_protocol::crypto::keccak256_concat;
use staples_protocol::swarm::ChunkAddress;
use staples_protocol::swarm::soc::{self, SingleOwnerChunk};

use super::error::ApiError;
use super::params::{P, Q, decode_hex, header_bool, path_hex};
use super::soc::serve_wrapped;
use super::{Ctx, join, serve_content};
use crate::store::Store;

/// `GET /feeds/{owner}/{topic}`.
pub async fn lookup(
    State(ctx): State<Ctx>,
    P((owner, topic)): P<(String, String)>,
    query: Q,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let owner = parse_owner(&owner)?;
    let topic = path_hex("topic", &topic)?;
    if topic.is_empty() {
        return Err(ApiError::invalid_param("path", "topic", "required"));
    }
    let _at = query.i64("at")?;
    let after = query.u64("after")?.unwrap_or(0);
    let only_root = header_bool(&headers, "Swarm-Only-Root-Chunk")?.unwrap_or(false);

    let feed = Feed {
        store: &ctx.net.store,
        owner,
        topic: &topic,
        min_age: ctx.net.knobs.feed_staleness(),
    };
    let Some((index, data)) = feed.latest(after) else {
        return Err(ApiError::not_found("no update found"));
    };
    let update = SingleOwnerChunk::parse(&data)
        .map_err(|_| ApiError::not_found("wrapped chunk cannot be retrieved"))?;

    let mut extra = HeaderMap::new();
    let set = |h: &mut HeaderMap, name: &'static str, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    };
    set(
        &mut extra,
        "Swarm-Feed-Index",
        hex::encode(index.to_be_bytes()),
    );
    set(
        &mut extra,
        "Swarm-Feed-Index-Next",
        hex::encode(index.saturating_add(1).to_be_bytes()),
    );
    set(
        &mut extra,
        "Swarm-Soc-Signature",
        hex::encode(update.signature().as_bytes()),
    );
    for name in [
        "Swarm-Feed-Index",
        "Swarm-Feed-Index-Next",
        "Swarm-Soc-Signature",
    ] {
        extra.append(
            "Access-Control-Expose-Headers",
            HeaderValue::from_static(name),
        );
    }

    let wrapped = update.wrapped();
    if let Some(reference) = v1_reference(&wrapped.to_data())
        && let Some(target) = ctx.net.store.get(&reference)
    {
        extra.insert(
            "Swarm-Feed-Resolved-Version",
            HeaderValue::from_static("v1"),
        );
        if only_root {
            let target = staples_protocol::swarm::Cac::from_data(&target)
                .map_err(|_| ApiError::not_found("wrapped chunk cannot be retrieved"))?;
            return serve_wrapped(&ctx, &headers, &target, true, extra).await;
        }
        let content = join(&ctx, reference, None).await?;
        return Ok(serve_content(&headers, content, &reference, extra));
    }
    extra.insert(
        "Swarm-Feed-Resolved-Version",
        HeaderValue::from_static("v2"),
    );
    serve_wrapped(&ctx, &headers, wrapped, only_root, extra).await
}

/// `POST /feeds/{owner}/{topic}`: feed manifests are mantaray, which this node lacks.
pub async fn create() -> ApiError {
    ApiError::unsupported("POST /feeds (feed manifests need mantaray)")
}

/// The owner as 20 bytes, `0x` optional. Bee's `common.HexToAddress` never fails (it
/// pads and truncates); this node asks for exactly 40 hex digits instead.
fn parse_owner(s: &str) -> Result<[u8; 20], ApiError> {
    let hex = s.strip_prefix("0x").unwrap_or(s);
    let bytes = decode_hex(hex).map_err(|e| ApiError::invalid_param("path", "owner", e))?;
    <[u8; 20]>::try_from(bytes.as_slice()).map_err(|_| {
        ApiError::invalid_param(
            "path",
            "owner",
            format!("want 20 bytes (40 hex digits), got {}", bytes.len()),
        )
    })
}

/// The reference of a v1 update: data `span ‖ timestamp ‖ reference` of 48 bytes (Bee's
/// `isV1Length` also takes 80, an encrypted 64-byte reference no 32-byte address can fetch).
fn v1_reference(wrapped_data: &[u8]) -> Option<ChunkAddress> {
    if wrapped_data.len() == 48 {
        ChunkAddress::try_from(&wrapped_data[16..]).ok()
    } else {
        None
    }
}

/// One feed as the lookup sees it.
struct Feed<'a> {
    store: &'a Store,
    owner: [u8; 20],
    topic: &'a [u8],
    min_age: Duration,
}

impl Feed<'_> {
    /// Update `index`, if stored long enough ago.
    fn get(&self, index: u64) -> Option<axum::body::Bytes> {
        // Bee's feed identifier takes the topic bytes as given, whatever their length.
        let id = keccak256_concat(&[self.topic, &index.to_be_bytes()]);
        self.store
            .get_older_than(&soc::address(&id, &self.owner), self.min_age)
    }

    /// The latest update at or after `after`: gallop up, then bisect.
    fn latest(&self, after: u64) -> Option<(u64, axum::body::Bytes)> {
        let mut hit = (after, self.get(after)?);
        let mut step = 1u64;
        let miss = loop {
            let Some(probe) = hit.0.checked_add(step) else {
                break u64::MAX;
            };
            match self.get(probe) {
                Some(d) => {
                    hit = (probe, d);
                    step = step.saturating_mul(2);
                }
                None => break probe,
            }
        };
        // Invariant: `hit.0` has an update, `miss` has none (or is u64::MAX).
        let mut hi = miss;
        while hi - hit.0 > 1 {
            let mid = hit.0 + (hi - hit.0) / 2;
            match self.get(mid) {
                Some(d) => hit = (mid, d),
                None => hi = mid,
            }
        }
        Some(hit)
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Bytes;
    use staples_protocol::swarm::feed;

    use super::*;

    async fn feed_with(store: &Store, owner: &[u8; 20], topic: &[u8; 32], indexes: &[u64]) {
        let t = feed::FeedTopic::from_bytes(*topic);
        for &i in indexes {
            store
                .put(feed::update_address(owner, &t, i), Bytes::from_static(b"u"))
                .await
                .expect("put");
        }
    }

    #[tokio::test]
    async fn lookup_finds_the_latest_of_a_gapless_feed() {
        let store = Store::in_memory();
        let (owner, topic) = ([1u8; 20], [2u8; 32]);
        let f = Feed {
            store: &store,
            owner,
            topic: &topic,
            min_age: Duration::ZERO,
        };
        assert!(f.latest(0).is_none());
        for n in [1u64, 2, 3, 5, 8, 100] {
            let store = Store::in_memory();
            feed_with(&store, &owner, &topic, &(0..n).collect::<Vec<_>>()).await;
            let f = Feed {
                store: &store,
                owner,
                topic: &topic,
                min_age: Duration::ZERO,
            };
            assert_eq!(f.latest(0).map(|(i, _)| i), Some(n - 1), "{n} updates");
            assert_eq!(
                f.latest(n / 2).map(|(i, _)| i),
                Some(n - 1),
                "after {}",
                n / 2
            );
            assert!(f.latest(n).is_none(), "after a missing index");
        }
    }

    #[tokio::test]
    async fn stale_reads_hide_fresh_updates() {
        let store = Store::in_memory();
        let (owner, topic) = ([1u8; 20], [2u8; 32]);
        feed_with(&store, &owner, &topic, &[0, 1]).await;
        let f = Feed {
            store: &store,
            owner,
            topic: &topic,
            min_age: Duration::from_secs(60),
        };
        assert!(f.latest(0).is_none());
    }

    #[test]
    fn owners_need_forty_hex_digits() {
        assert!(parse_owner(&format!("0x{}", "ab".repeat(20))).is_ok());
        assert!(parse_owner(&"ab".repeat(20)).is_ok());
        assert!(parse_owner("abcd").is_err());
        assert!(parse_owner(&"zz".repeat(20)).is_err());
    }
}
