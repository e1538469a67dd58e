//! The sidecar's SQLite store: what must survive a restart.
//!
//! Holds the key index (which key ids exist, of which kind, created locally or upstream), the
//! message filters' criteria, and the outbox of envelopes acknowledged to the app. Schema
//! changes are an ordered list of migrations applied inside one transaction each, with
//! SQLite's `user_version` recording how many have run; a database from a newer Staples is
//! refused rather than guessed at.
//!
//! SQLite is synchronous, so one dedicated thread owns the connection and async callers send
//! it jobs over a bounded channel (backpressure instead of an unbounded queue). The thread
//! drains every queued job into one transaction and answers them only after the commit
//! (group commit): an `Ok` from a write means it is on disk (WAL, `synchronous=FULL`).

use std::path::Path;

use rusqlite::{Connection, Transaction, params};
use tokio::sync::{mpsc, oneshot};

/// Migrations in order; entry `i` moves the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 1: keys index, filters, outbox.
    "CREATE TABLE keys (
         id TEXT PRIMARY KEY,
         kind TEXT NOT NULL CHECK (kind IN ('keypair', 'symkey')),
         origin TEXT NOT NULL CHECK (origin IN ('local', 'upstream')),
         created INTEGER NOT NULL
     );
     CREATE TABLE filters (
         id TEXT PRIMARY KEY,
         criteria TEXT NOT NULL,
         origin TEXT NOT NULL CHECK (origin IN ('local', 'upstream')),
         created INTEGER NOT NULL
     );
     CREATE TABLE outbox (
         hash BLOB PRIMARY KEY,
         expiry INTEGER NOT NULL,
         envelope BLOB NOT NULL
     );
     CREATE INDEX outbox_by_expiry ON outbox (expiry);",
    // 2: the PSS transport (engine): chats, their members and reader cursors, the PSS
    // outbox, and every message received or sent with its delivery state.
    "CREATE TABLE pss_meta (k TEXT PRIMARY KEY, v BLOB NOT NULL);
     CREATE TABLE pss_chats (
         chat BLOB PRIMARY KEY,
         key_ref TEXT NOT NULL,
         topic BLOB NOT NULL,
         clock INTEGER NOT NULL DEFAULT 0,
         writer TEXT,
         roster_next INTEGER NOT NULL DEFAULT 0,
         announced INTEGER NOT NULL DEFAULT 0
     );
     CREATE TABLE pss_members (
         chat BLOB NOT NULL,
         node BLOB NOT NULL,
         overlay BLOB,
         pss_key BLOB,
         reader TEXT NOT NULL,
         PRIMARY KEY (chat, node)
     );
     CREATE TABLE pss_outbox (
         seq INTEGER PRIMARY KEY AUTOINCREMENT,
         id BLOB NOT NULL UNIQUE,
         chat BLOB NOT NULL,
         clock INTEGER NOT NULL,
         envelope BLOB NOT NULL,
         reference BLOB,
         page_index INTEGER,
         published INTEGER NOT NULL DEFAULT 0
     );
     CREATE TABLE pss_messages (
         seq INTEGER PRIMARY KEY AUTOINCREMENT,
         id BLOB NOT NULL UNIQUE,
         chat BLOB NOT NULL,
         clock INTEGER NOT NULL,
         parents BLOB NOT NULL,
         state TEXT NOT NULL CHECK (state IN ('pending', 'delivered')),
         envelope BLOB,
         gap_parents BLOB NOT NULL DEFAULT x'',
         late INTEGER NOT NULL DEFAULT 0,
         own INTEGER NOT NULL DEFAULT 0
     );
     CREATE INDEX pss_messages_by_chat ON pss_messages (chat, state, seq);
     CREATE TABLE pss_gaps (
         chat BLOB NOT NULL,
         id BLOB NOT NULL,
         reason TEXT NOT NULL,
         declared_at INTEGER NOT NULL,
         PRIMARY KEY (chat, id)
     );",
    // 3: the Whisper outbox loses its primary key on the envelope hash. Only envelopes the
    // pool admitted as new are written, so duplicates cannot arrive, and the random-keyed
    // index made every group commit rewrite one index page per post (a quarter of the
    // sidecar's CPU under load). Rows now append in post order.
    "CREATE TABLE outbox_v3 (
         seq INTEGER PRIMARY KEY,
         expiry INTEGER NOT NULL,
         envelope BLOB NOT NULL
     );
     INSERT INTO outbox_v3 (expiry, envelope) SELECT expiry, envelope FROM outbox ORDER BY rowid;
     DROP TABLE outbox;
     ALTER TABLE outbox_v3 RENAME TO outbox;
     CREATE INDEX outbox_by_expiry ON outbox (expiry);",
    // 4: what the app has not taken yet. Every message handed to a filter is queued here
    // in the transaction that makes it visible (the PSS delivery record, the Whisper
    // outbox row) and removed once a poll's answer or a notification has been written to
    // the app's connection (`node::queue`). Subscriptions keep a row in `filters` too
    // (kind 'subscription'): its criteria name the mailbox a later `shh_subscribe` takes.
    // No index on `filter`: rows are written and removed by `seq` on the hot path, and
    // only the rare removal of a whole filter scans.
    "ALTER TABLE filters ADD COLUMN kind TEXT NOT NULL DEFAULT 'poll'
         CHECK (kind IN ('poll', 'subscription'));
     CREATE TABLE delivery_queue (
         seq INTEGER PRIMARY KEY,
         filter TEXT NOT NULL,
         envelope BLOB NOT NULL
     );",
    // 5: dual mode's Whisper side. A post that must also go out on Whisper keeps its
    // `shh_post` parameters (with the app's key ids) beside its PSS outbox row, written in
    // the same transaction; the Whisper sender walks the outbox in order behind a cursor
    // (`pss_meta` 'whisper_cursor'). `upstream_keys` maps the app's key ids to the ids
    // the upstream Whisper node gave the same keys.
    "ALTER TABLE pss_outbox ADD COLUMN whisper TEXT;
     CREATE TABLE upstream_keys (
         local TEXT PRIMARY KEY,
         upstream TEXT NOT NULL
     );",
    // Legacy Whisper messages (no DAG header) each filter was handed, by envelope hash:
    // dual mode's Whisper side and relays' bridged records (specs/relay.md §4) deliver the
    // same message on two paths, and this is what collapses them after the first was
    // taken. Written with the queue row; pruned after 30 days.
    "CREATE TABLE legacy_seen (
         filter TEXT NOT NULL,
         hash BLOB NOT NULL,
         at INTEGER NOT NULL,
         PRIMARY KEY (filter, hash)
     ) WITHOUT ROWID;",
    // A relay's messages from Swarm waiting to go to Whisper (specs/relay.md §4): the
    // author's sealed envelope, the `shh_post` fallback, and when it may go.
    "CREATE TABLE relay_outbox (
         seq INTEGER PRIMARY KEY AUTOINCREMENT,
         id BLOB NOT NULL UNIQUE,
         envelope BLOB NOT NULL,
         post TEXT NOT NULL,
         not_before INTEGER NOT NULL
     );",
    // The Whisper side's walk (`dual::db::pending`) looks only at rows with a Whisper
    // post; without this index it read every row after its cursor, and in a relay (whose
    // records go to Swarm only, so the cursor never moves) every row, on every post.
    "CREATE INDEX pss_outbox_whisper ON pss_outbox (seq) WHERE whisper IS NOT NULL;",
    // Who wrote each message (the author's node address, 20 bytes), for the picture of a
    // chat's DAG (`staples dag`); rows from before are NULL and drawn as unknown.
    "ALTER TABLE pss_messages ADD COLUMN author BLOB;",
    // Whether a member writes the chat index (`specs/chat-index.md`): its inbox is then
    // read on the index's word instead of on every pass.
    "ALTER TABLE pss_members ADD COLUMN indexed INTEGER NOT NULL DEFAULT 0;",
];

/// Jobs waiting for the store thread; callers wait when it is full.
const QUEUE: usize = 1024;

/// Errors from the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite reported an error.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The database was written by a newer Staples.
    #[error("database schema version {found} is newer than this staples understands ({known})")]
    TooNew {
        /// `user_version` in the file.
        found: i64,
        /// Migrations this build knows.
        known: usize,
    },
    /// The batch holding this write failed to commit.
    #[error("commit failed: {0}")]
    Commit(String),
    /// Another write in the same batch failed half-way, so the batch was rolled back;
    /// this write did nothing and may be retried.
    #[error("store batch rolled back by a failing neighbour; retry")]
    RolledBack,
    /// The store thread has stopped (or could not start a transaction).
    #[error("store is closed")]
    Closed,
    /// The store thread could not be started.
    #[error("cannot start the store thread: {0}")]
    Thread(std::io::Error),
}

/// Where a key or filter id was created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// By this sidecar's local node.
    Local,
    /// By the upstream node; only the id is known here.
    Upstream,
}

impl Origin {
    fn as_str(self) -> &'static str {
        match self {
            Origin::Local => "local",
            Origin::Upstream => "upstream",
        }
    }
}

/// What a stored filter is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterKind {
    /// A polling filter (`shh_newMessageFilter`).
    Poll,
    /// A subscription's mailbox (`shh_subscribe`).
    Subscription,
}

impl FilterKind {
    fn as_str(self) -> &'static str {
        match self {
            FilterKind::Poll => "poll",
            FilterKind::Subscription => "subscription",
        }
    }
}

/// A stored filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredFilter {
    /// Its id.
    pub id: String,
    /// Its criteria as geth-shaped JSON.
    pub criteria: String,
    /// Poll or subscription.
    pub kind: FilterKind,
}

/// Kind of a key id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// A secp256k1 key pair.
    KeyPair,
    /// A symmetric key.
    SymKey,
}

impl KeyKind {
    /// The name used in the database and key files.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::KeyPair => "keypair",
            KeyKind::SymKey => "symkey",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "keypair" => Some(KeyKind::KeyPair),
            "symkey" => Some(KeyKind::SymKey),
            _ => None,
        }
    }
}

type Reply = Box<dyn FnOnce(Result<(), StoreError>) + Send>;
/// A job writes inside the batch's transaction and says whether it succeeded; a job that
/// failed after writing rolls the batch back, so nothing half-done is committed.
type Job = Box<dyn FnOnce(&Transaction<'_>) -> (bool, Reply) + Send>;

enum Msg {
    Job(Job),
    Close(oneshot::Sender<()>),
}

/// A handle to the store thread; cheap to clone.
#[derive(Clone)]
pub struct Store {
    tx: mpsc::Sender<Msg>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Store")
    }
}

impl Store {
    /// Opens (creating if needed) and migrates `path`, and starts the store thread.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let conn = Connection::open(path)?;
        Self::start(conn)
    }

    /// An in-memory store (tests, and the sidecar without a data dir).
    pub fn in_memory() -> Result<Store, StoreError> {
        Self::start(Connection::open_in_memory()?)
    }

    fn start(mut conn: Connection) -> Result<Store, StoreError> {
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        // A failed statement's undo (its statement journal) stays in memory rather than
        // in a temporary file per batch.
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        migrate(&mut conn)?;
        let (tx, rx) = mpsc::channel(QUEUE);
        std::thread::Builder::new()
            .name("staples-store".into())
            .spawn(move || serve(conn, rx))
            .map_err(StoreError::Thread)?;
        Ok(Store { tx })
    }

    /// Commits everything queued, checkpoints the WAL and stops the thread.
    pub async fn close(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Msg::Close(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }

    /// Runs `f` in the store thread inside a transaction; resolves after the commit.
    pub async fn run<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        self.submit(f).await?.await
    }

    /// Records an acknowledged envelope until it expires.
    pub async fn put_outbox(&self, expiry: u32, envelope: Vec<u8>) -> Result<(), StoreError> {
        self.run(move |t| insert_outbox(t, expiry, &envelope)).await
    }

    /// Sends `f` to the store thread now and returns the wait for its commit, so whatever
    /// the caller sends before awaiting it runs after `f` on the store thread.
    pub async fn submit<T, F>(
        &self,
        f: F,
    ) -> Result<impl std::future::Future<Output = Result<T, StoreError>> + use<T, F>, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |t| {
            let out = f(t);
            let ok = out.is_ok();
            let reply: Reply = Box::new(move |commit| {
                let _ = tx.send(commit.and(out));
            });
            (ok, reply)
        });
        let permit = self.tx.reserve().await.map_err(|_| StoreError::Closed)?;
        permit.send(Msg::Job(job));
        Ok(async move { rx.await.map_err(|_| StoreError::Closed)? })
    }

    /// Envelopes in the outbox that have not expired at `now`.
    pub async fn live_outbox(&self, now: u32) -> Result<Vec<Vec<u8>>, StoreError> {
        self.run(move |t| {
            let mut st =
                t.prepare("SELECT envelope FROM outbox WHERE expiry >= ?1 ORDER BY rowid")?;
            let rows = st.query_map([now], |r| r.get::<_, Vec<u8>>(0))?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    /// Deletes expired outbox entries; returns how many.
    pub async fn purge_outbox(&self, now: u32) -> Result<usize, StoreError> {
        self.run(move |t| Ok(t.execute("DELETE FROM outbox WHERE expiry < ?1", [now])?))
            .await
    }

    /// Adds a key id to the index.
    pub async fn put_key(
        &self,
        id: String,
        kind: KeyKind,
        origin: Origin,
    ) -> Result<(), StoreError> {
        self.run(move |t| {
            t.execute(
                "INSERT OR REPLACE INTO keys (id, kind, origin, created) VALUES (?1, ?2, ?3, ?4)",
                params![id, kind.as_str(), origin.as_str(), unix_now()],
            )?;
            Ok(())
        })
        .await
    }

    /// Removes a key id; true if it was there.
    pub async fn delete_key(&self, id: String) -> Result<bool, StoreError> {
        self.run(move |t| Ok(t.execute("DELETE FROM keys WHERE id = ?1", [id])? > 0))
            .await
    }

    /// The key ids of one origin, oldest first.
    pub async fn keys(&self, origin: Origin) -> Result<Vec<(String, KeyKind)>, StoreError> {
        self.run(move |t| {
            let mut st =
                t.prepare("SELECT id, kind FROM keys WHERE origin = ?1 ORDER BY created, rowid")?;
            let rows = st.query_map([origin.as_str()], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (id, kind) = row?;
                // The CHECK constraint makes an unknown kind impossible; skip rather than fail.
                if let Some(kind) = KeyKind::parse(&kind) {
                    out.push((id, kind));
                }
            }
            Ok(out)
        })
        .await
    }

    /// Records a polling filter's criteria (JSON).
    pub async fn put_filter(
        &self,
        id: String,
        criteria: String,
        origin: Origin,
    ) -> Result<(), StoreError> {
        self.put_filter_of(id, criteria, origin, FilterKind::Poll)
            .await
    }

    /// Records a filter's criteria (JSON) and kind.
    pub async fn put_filter_of(
        &self,
        id: String,
        criteria: String,
        origin: Origin,
        kind: FilterKind,
    ) -> Result<(), StoreError> {
        self.run(move |t| {
            t.execute(
                "INSERT OR REPLACE INTO filters (id, criteria, origin, created, kind)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![id, criteria, origin.as_str(), unix_now(), kind.as_str()],
            )?;
            Ok(())
        })
        .await
    }

    /// Forgets a filter and whatever is queued for it; true if it was there.
    pub async fn delete_filter(&self, id: String) -> Result<bool, StoreError> {
        self.run(move |t| {
            t.execute("DELETE FROM delivery_queue WHERE filter = ?1", [&id])?;
            t.execute("DELETE FROM legacy_seen WHERE filter = ?1", [&id])?;
            Ok(t.execute("DELETE FROM filters WHERE id = ?1", [&id])? > 0)
        })
        .await
    }

    /// Every stored filter of one origin, oldest first.
    pub async fn filters_of(&self, origin: Origin) -> Result<Vec<StoredFilter>, StoreError> {
        self.run(move |t| {
            let mut st = t.prepare(
                "SELECT id, criteria, kind FROM filters WHERE origin = ?1 ORDER BY created, rowid",
            )?;
            let rows = st.query_map([origin.as_str()], |r| {
                let kind: String = r.get(2)?;
                Ok(StoredFilter {
                    id: r.get(0)?,
                    criteria: r.get(1)?,
                    kind: if kind == "subscription" {
                        FilterKind::Subscription
                    } else {
                        FilterKind::Poll
                    },
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    /// The schema version of an open database (for tests and diagnostics).
    pub async fn schema_version(&self) -> Result<i64, StoreError> {
        self.run(|t| Ok(t.query_row("PRAGMA user_version", [], |r| r.get(0))?))
            .await
    }
}

/// Applies the migrations the database has not seen yet.
fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > MIGRATIONS.len() as i64 {
        return Err(StoreError::TooNew {
            found: version,
            known: MIGRATIONS.len(),
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version.max(0) as usize) {
        let t = conn.transaction()?;
        t.execute_batch(sql)?;
        t.pragma_update(None, "user_version", i as i64 + 1)?;
        t.commit()?;
        tracing::info!(version = i + 1, "store schema migrated");
    }
    Ok(())
}

fn serve(mut conn: Connection, mut rx: mpsc::Receiver<Msg>) {
    let mut closing = None;
    while let Some(first) = rx.blocking_recv() {
        let mut batch = Vec::new();
        let mut next = Some(first);
        while let Some(msg) = next {
            match msg {
                Msg::Job(job) => batch.push(job),
                Msg::Close(done) => {
                    closing = Some(done);
                    break;
                }
            }
            next = rx.try_recv().ok();
        }
        run_batch(&mut conn, batch);
        if closing.is_some() {
            break;
        }
    }
    if let Err(e) = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);") {
        tracing::warn!(error = %e, "store checkpoint at close failed");
    }
    drop(conn);
    if let Some(done) = closing {
        let _ = done.send(());
    }
}

fn run_batch(conn: &mut Connection, batch: Vec<Job>) {
    if batch.is_empty() {
        return;
    }
    let t = match conn.transaction() {
        Ok(t) => t,
        Err(e) => {
            // Dropping the jobs unanswered makes each caller see `Closed`.
            tracing::error!(error = %e, "store transaction could not begin");
            return;
        }
    };
    let mut replies: Vec<Reply> = Vec::with_capacity(batch.len());
    // No savepoint per job: opening and releasing one cost more than the insert of a
    // typical job. A job that fails before writing (the usual case: a check, a missing
    // row) needs no undo; one that fails after writing rolls back the whole batch, so
    // nothing half-written is ever committed, and its neighbours are told to retry.
    let mut wrote_and_failed = None;
    for job in batch {
        let before = t.total_changes();
        let (ok, reply) = job(&t);
        if !ok && wrote_and_failed.is_none() && t.total_changes() != before {
            wrote_and_failed = Some(replies.len());
        }
        replies.push(reply);
    }
    if let Some(culprit) = wrote_and_failed {
        drop(t);
        tracing::warn!("a store job failed after writing; its batch was rolled back");
        for (i, reply) in replies.into_iter().enumerate() {
            // The culprit gets its own error; the others a retryable one.
            reply(if i == culprit {
                Ok(())
            } else {
                Err(StoreError::RolledBack)
            });
        }
        return;
    }
    let started = std::time::Instant::now();
    let commit = t.commit().map_err(StoreError::from);
    crate::metrics::observe_commit(started.elapsed());
    let failed = commit.as_ref().err().map(|e| e.to_string());
    for reply in replies {
        reply(match &failed {
            None => Ok(()),
            Some(e) => Err(StoreError::Commit(e.clone())),
        });
    }
}

/// Inserts an outbox row inside the caller's transaction.
pub fn insert_outbox(t: &Transaction<'_>, expiry: u32, envelope: &[u8]) -> Result<(), StoreError> {
    t.prepare_cached("INSERT INTO outbox (expiry, envelope) VALUES (?1, ?2)")?
        .execute(params![expiry, envelope])?;
    Ok(())
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn fresh_database_is_migrated_and_reopening_is_idempotent() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("staples.sqlite");
        let s = Store::open(&path).expect("opens");
        assert_eq!(
            s.schema_version().await.expect("reads"),
            MIGRATIONS.len() as i64
        );
        s.put_key("k1".into(), KeyKind::SymKey, Origin::Local)
            .await
            .expect("put");
        s.close().await;
        let s = Store::open(&path).expect("reopens");
        assert_eq!(
            s.keys(Origin::Local).await.expect("reads"),
            [("k1".to_string(), KeyKind::SymKey)]
        );
        assert!(s.keys(Origin::Upstream).await.expect("reads").is_empty());
        s.close().await;
    }

    #[tokio::test]
    async fn migration_3_keeps_outbox_rows_written_by_version_2() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("staples.sqlite");
        {
            let c = Connection::open(&path).expect("opens");
            for (i, sql) in MIGRATIONS[..2].iter().enumerate() {
                c.execute_batch(sql).expect("migrates");
                c.pragma_update(None, "user_version", i as i64 + 1)
                    .expect("versions");
            }
            for (h, expiry) in [(9u8, 300), (1, 100), (5, 200)] {
                c.execute(
                    "INSERT INTO outbox (hash, expiry, envelope) VALUES (?1, ?2, ?3)",
                    params![&[h; 32][..], expiry, vec![h]],
                )
                .expect("inserts");
            }
        }
        let s = Store::open(&path).expect("reopens");
        assert_eq!(
            s.schema_version().await.expect("reads"),
            MIGRATIONS.len() as i64
        );
        assert_eq!(
            s.live_outbox(150).await.expect("reads"),
            [vec![9], vec![5]],
            "unexpired rows survive in their old order"
        );
        s.close().await;
    }

    #[tokio::test]
    async fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("staples.sqlite");
        let c = Connection::open(&path).expect("opens");
        c.pragma_update(None, "user_version", 99).expect("sets");
        drop(c);
        assert!(matches!(
            Store::open(&path),
            Err(StoreError::TooNew { found: 99, .. })
        ));
    }

    #[tokio::test]
    async fn outbox_keeps_live_envelopes_until_expiry() {
        let s = Store::in_memory().expect("opens");
        s.put_outbox(100, vec![1]).await.expect("put");
        s.put_outbox(200, vec![2]).await.expect("put");
        s.put_outbox(200, vec![3]).await.expect("put");
        assert_eq!(
            s.live_outbox(150).await.expect("reads"),
            [vec![2], vec![3]],
            "in post order"
        );
        assert_eq!(s.purge_outbox(150).await.expect("purges"), 1);
        assert_eq!(s.live_outbox(0).await.expect("reads"), [vec![2], vec![3]]);
    }

    #[tokio::test]
    async fn concurrent_writes_are_group_committed() {
        let s = Store::in_memory().expect("opens");
        let writes = (0..200u8).map(|i| {
            let s = s.clone();
            tokio::spawn(async move { s.put_outbox(10, vec![i]).await })
        });
        for w in writes {
            w.await.expect("joins").expect("writes");
        }
        assert_eq!(s.live_outbox(0).await.expect("reads").len(), 200);
        s.put_filter("f".into(), "{}".into(), Origin::Upstream)
            .await
            .expect("put");
        assert!(s.delete_filter("f".into()).await.expect("deletes"));
        assert!(!s.delete_filter("f".into()).await.expect("deletes"));
    }

    #[tokio::test]
    async fn a_failing_job_writes_nothing_and_its_neighbours_commit_or_are_told_to_retry() {
        let s = Store::in_memory().expect("opens");
        // Queued together so they share one transaction. A job that fails before writing
        // leaves its neighbours alone.
        let a = s
            .submit(|t| insert_outbox(t, 10, &[1]))
            .await
            .expect("sends");
        let b = s
            .submit(|_| Err::<(), _>(StoreError::Closed))
            .await
            .expect("sends");
        assert!(a.await.is_ok());
        assert!(matches!(b.await, Err(StoreError::Closed)));
        // One that fails after writing rolls the whole batch back: nothing half-written,
        // its own error for it, a retryable one for the others.
        let c = s
            .submit(|t| insert_outbox(t, 10, &[2]))
            .await
            .expect("sends");
        let d = s
            .submit(|t| {
                insert_outbox(t, 10, &[3])?;
                Err::<(), _>(StoreError::Closed)
            })
            .await
            .expect("sends");
        let c = c.await;
        assert!(matches!(d.await, Err(StoreError::Closed)));
        let expected: Vec<Vec<u8>> = match c {
            // The store thread may have committed c alone before d arrived.
            Ok(()) => vec![vec![1], vec![2]],
            Err(StoreError::RolledBack) => vec![vec![1]],
            other => panic!("unexpected {other:?}"),
        };
        assert_eq!(
            s.live_outbox(0).await.expect("reads"),
            expected,
            "nothing half-written"
        );
    }
}
