//! Node information routes: `/`, `/health`, `/readiness`, `/node`, `/addresses`, `/status`,
//! `/chainstate`, `/topology`, `/peers`, `/wallet`, `/reservestate`.
//!
//! Shapes follow Bee 2.8.1 (`pkg/api/{health,readiness,node,p2p,status,postage,wallet}.go`,
//! `pkg/topology`); values are those of a healthy full node whose peers are the other up
//! nodes of this network, with the values bee-js's own tests require (block above 300,
//! price 24000, `isWarmingUp: false`, non-zero balances).

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use staples_protocol::swarm::bee_api::BeeMode;

use super::Ctx;
use super::error::json_response;
use super::{API_VERSION, BEE_VERSION};
use crate::identity::checksum_address;
use crate::postage::{CURRENT_PRICE, MINIMUM_VALIDITY_BLOCKS};

/// Bee's plain-text greeting (bee-js `checkConnection`).
pub async fn root() -> Response {
    let mut r = (StatusCode::OK, "Ethereum Swarm Bee\n").into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

pub async fn health() -> Response {
    json_response(
        StatusCode::OK,
        &json!({"status": "ok", "version": BEE_VERSION, "apiVersion": API_VERSION}),
    )
}

pub async fn readiness() -> Response {
    json_response(
        StatusCode::OK,
        &json!({"status": "ready", "version": BEE_VERSION, "apiVersion": API_VERSION}),
    )
}

pub async fn node(State(ctx): State<Ctx>) -> Response {
    let mode = ctx.node().mode();
    let full = mode == BeeMode::Full;
    json_response(
        StatusCode::OK,
        &json!({"beeMode": mode.as_str(), "chequebookEnabled": full, "swapEnabled": full}),
    )
}

pub async fn addresses(State(ctx): State<Ctx>) -> Response {
    let id = &ctx.node().identity;
    let eth = checksum_address(id.eth_address());
    json_response(
        StatusCode::OK,
        &json!({
            "overlay": id.overlay().to_string(),
            "underlay": [format!("/ip4/{}/tcp/{}", ctx.node().addr.ip(), ctx.node().addr.port())],
            "ethereum": eth,
            "chain_address": eth,
            "publicKey": hex::encode(id.public_key().to_compressed()),
            "pssPublicKey": hex::encode(id.pss_public_key().to_compressed()),
        }),
    )
}

pub async fn status(State(ctx): State<Ctx>) -> Response {
    let peers = up_peers(&ctx).len();
    let stored = ctx.net.store.len();
    json_response(
        StatusCode::OK,
        &json!({
            "overlay": ctx.node().identity.overlay().to_string(),
            "proximity": 256,
            "beeMode": ctx.node().mode().as_str(),
            "reserveSize": stored,
            "reserveSizeWithinRadius": stored,
            "pullsyncRate": 0.0,
            "storageRadius": 0,
            "connectedPeers": peers,
            "neighborhoodSize": peers,
            "batchCommitment": ctx.net.postage.commitment(),
            "isReachable": true,
            "lastSyncedBlock": ctx.net.block(),
            "committedDepth": 0,
            "isWarmingUp": false,
        }),
    )
}

pub async fn chainstate(State(ctx): State<Ctx>) -> Response {
    let block = ctx.net.block();
    json_response(
        StatusCode::OK,
        &json!({
            "chainTip": block,
            "block": block,
            "totalAmount": "0",
            "currentPrice": CURRENT_PRICE.to_string(),
            "minimumValidityBlocks": MINIMUM_VALIDITY_BLOCKS,
        }),
    )
}

pub async fn topology(State(ctx): State<Ctx>) -> Response {
    let own = ctx.node().identity.overlay().as_bytes();
    let mut bins: Vec<Vec<String>> = vec![Vec::new(); 32];
    let all = other_nodes(&ctx);
    for (overlay, up) in &all {
        if *up {
            bins[proximity(own, overlay)].push(hex::encode(overlay));
        }
    }
    let mut bins_json = serde_json::Map::new();
    for (po, peers) in bins.iter().enumerate() {
        let population = all.iter().filter(|(o, _)| proximity(own, o) == po).count();
        bins_json.insert(
            format!("bin_{po}"),
            json!({
                "population": population,
                "connected": peers.len(),
                "disconnectedPeers": [],
                "connectedPeers": peers.iter().map(|a| json!({"address": a})).collect::<Vec<_>>(),
            }),
        );
    }
    let connected: usize = bins.iter().map(Vec::len).sum();
    json_response(
        StatusCode::OK,
        &json!({
            "baseAddr": hex::encode(own),
            "population": all.len(),
            "connected": connected,
            "timestamp": rfc3339_now(),
            "nnLowWatermark": 1,
            "depth": 0,
            "reachability": "Public",
            "networkAvailability": "Available",
            "bins": Value::Object(bins_json),
            "lightNodes": {"population": 0, "connected": 0, "disconnectedPeers": [], "connectedPeers": []},
        }),
    )
}

pub async fn peers(State(ctx): State<Ctx>) -> Response {
    let peers: Vec<Value> = up_peers(&ctx)
        .iter()
        .map(|o| json!({"address": hex::encode(o), "fullNode": true}))
        .collect();
    json_response(StatusCode::OK, &json!({ "peers": peers }))
}

pub async fn wallet(State(ctx): State<Ctx>) -> Response {
    let eth = ctx.node().identity.eth_address();
    // A chequebook address derived from the node's, so every node shows its own.
    let mut chequebook = [0u8; 20];
    chequebook
        .copy_from_slice(&staples_protocol::crypto::keccak256_concat(&[b"chequebook", eth])[12..]);
    json_response(
        StatusCode::OK,
        &json!({
            "bzzBalance": "100000000000000000",
            "nativeTokenBalance": "1000000000000000000",
            "chainID": 1,
            "chequebookContractAddress": checksum_address(&chequebook),
            "walletAddress": checksum_address(eth),
        }),
    )
}

pub async fn reservestate(State(ctx): State<Ctx>) -> Response {
    json_response(
        StatusCode::OK,
        &json!({
            "radius": 0,
            "storageRadius": 0,
            "commitment": ctx.net.postage.commitment(),
            "reserveCapacityDoubling": 0,
        }),
    )
}

/// Overlays of the other nodes, with whether each is up.
fn other_nodes(ctx: &Ctx) -> Vec<([u8; 32], bool)> {
    ctx.net
        .nodes
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != ctx.index)
        .map(|(_, n)| (*n.identity.overlay().as_bytes(), n.is_up()))
        .collect()
}

fn up_peers(ctx: &Ctx) -> Vec<[u8; 32]> {
    other_nodes(ctx)
        .into_iter()
        .filter(|(_, up)| *up)
        .map(|(o, _)| o)
        .collect()
}

/// Leading bits two overlays share, capped at Bee's 31 (`swarm.MaxPO`).
fn proximity(a: &[u8; 32], b: &[u8; 32]) -> usize {
    let mut bits = 0;
    for (x, y) in a.iter().zip(b) {
        let d = x ^ y;
        if d != 0 {
            bits += d.leading_zeros() as usize;
            break;
        }
        bits += 8;
    }
    bits.min(31)
}

/// The current time as RFC 3339 in UTC, to the second (Bee prints Go's `time.Time`).
pub fn rfc3339_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    rfc3339(secs)
}

/// `secs` since the epoch as `YYYY-MM-DDTHH:MM:SSZ` (civil-from-days, proleptic Gregorian).
pub fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proximity_counts_shared_leading_bits() {
        let a = [0u8; 32];
        let mut b = [0u8; 32];
        b[0] = 0x80;
        assert_eq!(proximity(&a, &b), 0);
        b[0] = 0x01;
        assert_eq!(proximity(&a, &b), 7);
        b[0] = 0;
        b[1] = 0x10;
        assert_eq!(proximity(&a, &b), 11);
        assert_eq!(proximity(&a, &a), 31);
    }

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
    }
}
