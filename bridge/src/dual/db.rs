//! The Whisper side's state in the store: the cursor over `pss_outbox`, the map from the
//! app's key ids to the upstream's, and the backlog.

use rusqlite::{OptionalExtension, params};

use crate::store::{Store, StoreError};

/// Where the cursor lives in `pss_meta`.
const CURSOR: &str = "whisper_cursor";
/// Rows read per pass.
const BATCH: i64 = 64;

/// Rows after the cursor that go to Whisper, oldest first: `(seq, post JSON, the
/// envelope as the engine sealed it)`.
pub(super) async fn pending(store: &Store) -> Result<Vec<(i64, String, Vec<u8>)>, StoreError> {
    store
        .run(|t| {
            let cursor = cursor_of(t)?;
            let mut st = t.prepare_cached(
                "SELECT seq, whisper, envelope FROM pss_outbox
                 WHERE seq > ?1 AND whisper IS NOT NULL ORDER BY seq LIMIT ?2",
            )?;
            let rows = st.query_map(params![cursor, BATCH], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
}

/// Posts waiting for the Whisper side.
pub async fn backlog(store: &Store) -> Result<i64, StoreError> {
    store
        .run(|t| {
            let cursor = cursor_of(t)?;
            Ok(t.query_row(
                "SELECT count(*) FROM pss_outbox WHERE seq > ?1 AND whisper IS NOT NULL",
                [cursor],
                |r| r.get(0),
            )?)
        })
        .await
}

pub(super) fn cursor_of(t: &rusqlite::Transaction<'_>) -> Result<i64, StoreError> {
    let v: Option<Vec<u8>> = t
        .query_row("SELECT v FROM pss_meta WHERE k = ?1", [CURSOR], |r| {
            r.get(0)
        })
        .optional()?;
    Ok(v.and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
        .map_or(0, i64::from_be_bytes))
}

pub(super) fn put_cursor(t: &rusqlite::Transaction<'_>, seq: i64) -> Result<(), StoreError> {
    t.execute(
        "INSERT OR REPLACE INTO pss_meta (k, v) VALUES (?1, ?2)",
        params![CURSOR, seq.to_be_bytes().to_vec()],
    )?;
    Ok(())
}

#[cfg(test)]
async fn set_cursor(store: &Store, seq: i64) -> Result<(), StoreError> {
    store.run(move |t| put_cursor(t, seq)).await
}

/// Queues the cursor's move past `seq` without waiting for its commit: the store runs jobs
/// in order, so the next read sees it, and moves group-commit instead of costing an fsync
/// each. A crash may lose the last few moves: those posts go out on Whisper again.
pub(super) async fn move_cursor(store: &Store, seq: i64) -> Result<(), StoreError> {
    drop(store.submit(move |t| put_cursor(t, seq)).await?);
    Ok(())
}

/// Forgets every key mapping: the Whisper node starts without the keys (an in-process
/// node, whose imported keys live in memory), so each is imported again on first use.
pub async fn forget_keys(store: &Store) -> Result<(), StoreError> {
    store
        .run(|t| {
            t.execute("DELETE FROM upstream_keys", [])?;
            Ok(())
        })
        .await
}

pub(super) async fn mapped_key(store: &Store, local: &str) -> Result<Option<String>, StoreError> {
    let local = local.to_string();
    store
        .run(move |t| {
            Ok(t.query_row(
                "SELECT upstream FROM upstream_keys WHERE local = ?1",
                [local],
                |r| r.get(0),
            )
            .optional()?)
        })
        .await
}

pub(super) async fn map_key(
    store: &Store,
    local: String,
    upstream: String,
) -> Result<(), StoreError> {
    store
        .run(move |t| {
            t.execute(
                "INSERT OR REPLACE INTO upstream_keys (local, upstream) VALUES (?1, ?2)",
                params![local, upstream],
            )?;
            Ok(())
        })
        .await
}

pub(super) async fn forget_key(store: &Store, local: &str) -> Result<(), StoreError> {
    let local = local.to_string();
    store
        .run(move |t| {
            t.execute("DELETE FROM upstream_keys WHERE local = ?1", [local])?;
            Ok(())
        })
        .await
}

/// On the first start in dual mode, the posts already in the PSS outbox (from `pss` mode)
/// have no Whisper parameters and are skipped by the `whisper IS NOT NULL` filter; nothing
/// else needs setting up. This checks that the cursor never runs ahead of the outbox
/// (a restored older database): it is reset to the outbox's last row if so.
pub async fn check_cursor(store: &Store) -> Result<(), StoreError> {
    store
        .run(|t| {
            let cursor = cursor_of(t)?;
            let last: i64 =
                t.query_row("SELECT coalesce(max(seq), 0) FROM pss_outbox", [], |r| {
                    r.get(0)
                })?;
            if cursor > last {
                put_cursor(t, last)?;
            }
            Ok(())
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_cursor_walks_only_posts_meant_for_whisper() {
        let store = Store::in_memory().expect("opens");
        store
            .run(|t| {
                for (i, w) in [(1, None), (2, Some("{}")), (3, Some("{}"))] {
                    t.execute(
                        "INSERT INTO pss_outbox (id, chat, clock, envelope, whisper)
                         VALUES (?1, x'00', 1, x'00', ?2)",
                        params![vec![i as u8; 32], w],
                    )?;
                }
                Ok(())
            })
            .await
            .expect("writes");
        assert_eq!(backlog(&store).await.expect("counts"), 2);
        let rows = pending(&store).await.expect("reads");
        assert_eq!(rows.iter().map(|r| r.0).collect::<Vec<_>>(), [2, 3]);
        set_cursor(&store, 2).await.expect("moves");
        assert_eq!(backlog(&store).await.expect("counts"), 1);
        set_cursor(&store, 99).await.expect("moves");
        check_cursor(&store).await.expect("checks");
        assert_eq!(
            store.run(cursor_of).await.expect("reads"),
            3,
            "a cursor past the outbox is pulled back"
        );
    }
}
