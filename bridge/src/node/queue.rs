//! What the app has not taken yet: each filter's queue of delivered messages, on disk.
//!
//! One delivery path serves every mode (`specs/transport-pss.md` §7):
//! 1. a message becomes visible (a PSS delivery is recorded, a Whisper post enters the
//!    outbox) in one store transaction that also writes a [`QueueRow`] per matching filter;
//! 2. the node holds the same entries in memory ([`super::filters`]) and hands them out: a
//!    poll (`shh_getFilterMessages`) answers with them, a subscription pushes them;
//! 3. when the connection has taken the answer or the notification, its [`Receipt`] says so
//!    and the rows are removed ([`Acks`]). A write that failed puts the entries back.
//!
//! So a crash before step 1 commits means the message was never acknowledged anywhere; a
//! crash between 1 and 3 leaves the rows, which the restarted node queues again; a crash
//! after an answer was written and before its rows' removal committed hands those messages
//! out once more (same envelope hashes). That last window is the only repeat, and it is
//! the side that loses nothing.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

use rusqlite::{Transaction, params};

use crate::store::{Store, StoreError};

/// A queue entry to write with the transaction that makes a message visible.
#[derive(Debug, Clone)]
pub struct QueueRow {
    /// Position in the node's delivery order (unique across filters).
    pub seq: u64,
    /// The filter it waits in.
    pub filter: Arc<str>,
    /// The envelope (RLP), shared by every filter it matched.
    pub envelope: Arc<Vec<u8>>,
    /// For a legacy Whisper message ([`super::Delivered::legacy`]): its envelope hash,
    /// recorded as handed to this filter with the row (`legacy_seen`).
    pub legacy: Option<[u8; 32]>,
}

/// The queue rows of one or more routed messages, to write in the caller's transaction.
#[derive(Default)]
pub struct QueueRows {
    rows: Vec<QueueRow>,
    acks: Option<Arc<Acks>>,
    /// Set once [`QueueRows::write`] ran (the rows are the store's business from then on).
    written: AtomicBool,
}

impl QueueRows {
    /// Rows whose removal `acks` tracks.
    pub fn new(rows: Vec<QueueRow>, acks: Arc<Acks>) -> Self {
        QueueRows {
            rows,
            acks: Some(acks),
            written: AtomicBool::new(false),
        }
    }

    /// Adds `other`'s rows.
    pub fn append(&mut self, mut other: QueueRows) {
        self.rows.append(&mut other.rows);
        if self.acks.is_none() {
            self.acks = other.acks.take();
        }
    }

    /// The encoded envelope of the first row, if any (every row of one message shares it).
    pub fn envelope(&self) -> Option<Arc<Vec<u8>>> {
        self.rows.first().map(|r| r.envelope.clone())
    }

    /// Writes the rows inside `t`, the caller's transaction (on the store's thread). A row
    /// whose message the app has already taken (a local post's notification is usually
    /// written before its job runs) is not written at all: the common case of a live
    /// subscriber costs neither an insert nor a delete.
    pub fn write(&self, t: &Transaction<'_>) -> Result<(), StoreError> {
        self.written.store(true, Ordering::Relaxed);
        self.write_legacy(t)?;
        let Some(acks) = &self.acks else {
            return self.insert(t, |_| true);
        };
        let fresh = acks.stored(self.rows.iter().map(|r| r.seq));
        if fresh.is_empty() {
            return Ok(());
        }
        self.insert(t, |seq| fresh.contains(&seq))
    }

    /// Records legacy messages as seen by their filters, taken or not: a copy arriving by
    /// the other path later is then refused ([`load_legacy`]).
    fn write_legacy(&self, t: &Transaction<'_>) -> Result<(), StoreError> {
        let mut rows = self
            .rows
            .iter()
            .filter_map(|r| Some((r, r.legacy?)))
            .peekable();
        if rows.peek().is_none() {
            return Ok(());
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut st = t.prepare_cached(
            "INSERT OR IGNORE INTO legacy_seen (filter, hash, at) VALUES (?1, ?2, ?3)",
        )?;
        for (r, hash) in rows {
            st.execute(params![&*r.filter, hash.as_slice(), seq_sql(now)])?;
        }
        Ok(())
    }

    fn insert(&self, t: &Transaction<'_>, keep: impl Fn(u64) -> bool) -> Result<(), StoreError> {
        let mut st = t.prepare_cached(
            "INSERT OR REPLACE INTO delivery_queue (seq, filter, envelope) VALUES (?1, ?2, ?3)",
        )?;
        for r in self.rows.iter().filter(|r| keep(r.seq)) {
            st.execute(params![seq_sql(r.seq), &*r.filter, r.envelope.as_slice()])?;
        }
        Ok(())
    }
}

impl Drop for QueueRows {
    fn drop(&mut self) {
        // Never written (the job failed to reach the store): removals the app already
        // asked for have no row to wait for.
        if let Some(acks) = &self.acks
            && !self.rows.is_empty()
            && !self.written.load(Ordering::Relaxed)
        {
            acks.forget(self.rows.iter().map(|r| r.seq));
        }
    }
}

impl std::fmt::Debug for QueueRows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.rows.iter().map(|r| r.seq))
            .finish()
    }
}

/// Every queued row, in delivery order: `(seq, filter, envelope)`.
pub async fn load(store: &Store) -> Result<Vec<(u64, String, Vec<u8>)>, StoreError> {
    store
        .run(|t| {
            let mut st =
                t.prepare("SELECT seq, filter, envelope FROM delivery_queue ORDER BY seq")?;
            let rows = st.query_map([], |r| {
                Ok((
                    u64::try_from(r.get::<_, i64>(0)?).unwrap_or(0),
                    r.get(1)?,
                    r.get(2)?,
                ))
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
}

/// How long a filter remembers the legacy messages it was handed: longer than any Whisper
/// TTL and than a relay's outbox could plausibly lag behind another's.
pub const LEGACY_SEEN_SECS: u64 = 30 * 24 * 3600;

/// The legacy messages each filter was handed within [`LEGACY_SEEN_SECS`] of `now`, as
/// `(filter, envelope hash)`; older records are deleted.
pub async fn load_legacy(store: &Store, now: u64) -> Result<Vec<(String, [u8; 32])>, StoreError> {
    let cutoff = seq_sql(now.saturating_sub(LEGACY_SEEN_SECS));
    store
        .run(move |t| {
            t.execute("DELETE FROM legacy_seen WHERE at < ?1", [cutoff])?;
            t.execute(
                "DELETE FROM legacy_seen WHERE filter NOT IN (SELECT id FROM filters)",
                [],
            )?;
            let mut st = t.prepare("SELECT filter, hash FROM legacy_seen ORDER BY at")?;
            let rows = st.query_map([], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (filter, hash) = row?;
                if let Ok(h) = <[u8; 32]>::try_from(hash.as_slice()) {
                    out.push((filter, h));
                }
            }
            Ok(out)
        })
        .await
}

/// Deletes the rows of filters that no longer exist (a filter removed while a delivery
/// that matched it was being committed).
pub async fn delete_orphans(store: &Store) -> Result<usize, StoreError> {
    store
        .run(|t| {
            Ok(t.execute(
                "DELETE FROM delivery_queue WHERE filter NOT IN (SELECT id FROM filters)",
                [],
            )?)
        })
        .await
}

fn seq_sql(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

/// Says whether a hand-out reached the app's connection. Calling [`Receipt::written`]
/// settles it; dropping it unsettled means the write did not happen (the entries go back).
pub struct Receipt(Option<Settle>);

/// Who hears how a hand-out ended.
enum Settle {
    /// One pushed notification: the common case, one per delivered message, so it is a
    /// weak pointer and two words rather than a boxed closure.
    Push {
        to: Weak<dyn Pushed>,
        filter: Arc<str>,
        seq: u64,
    },
    /// Anything else (a poll's batch).
    Other(Box<dyn FnOnce(bool) + Send>),
}

/// Settles pushed notifications (the node's filter set).
pub trait Pushed: Send + Sync {
    /// Notification `seq` of subscription `filter` was written (or, `false`, dropped).
    fn pushed(&self, filter: &Arc<str>, seq: u64, written: bool);
}

impl Receipt {
    /// A receipt that runs `f(true)` when written, `f(false)` when dropped unwritten.
    pub fn new(f: impl FnOnce(bool) + Send + 'static) -> Self {
        Receipt(Some(Settle::Other(Box::new(f))))
    }

    /// The receipt of notification `seq` pushed for `filter`, settled by `to` if it is
    /// still there.
    pub fn push(to: Weak<dyn Pushed>, filter: Arc<str>, seq: u64) -> Self {
        Receipt(Some(Settle::Push { to, filter, seq }))
    }

    /// The answer or notification was handed to the connection.
    pub fn written(mut self) {
        self.settle(true);
    }

    fn settle(&mut self, written: bool) {
        match self.0.take() {
            Some(Settle::Push { to, filter, seq }) => {
                if let Some(to) = to.upgrade() {
                    to.pushed(&filter, seq, written);
                }
            }
            Some(Settle::Other(f)) => f(written),
            None => {}
        }
    }
}

impl Drop for Receipt {
    fn drop(&mut self) {
        self.settle(false);
    }
}

impl std::fmt::Debug for Receipt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Receipt")
    }
}

/// Removes taken rows from the store, batched: receipts arrive one per notification, and
/// each would otherwise be its own store job. One job is in flight at a time and takes
/// everything acknowledged meanwhile.
///
/// A row may be taken before the job that writes it has run: a local post notifies
/// subscribers before its outbox row commits, so a stalled disk does not delay live
/// delivery. So a removal is only sent for a row known to be written ([`Acks::stored`],
/// called by the writing job on the store's thread, which runs jobs in order); a row taken
/// earlier waits as *unwritten*, and its insert finds it there and writes nothing.
pub struct Acks {
    store: Option<Store>,
    state: Mutex<State>,
}

/// Sets of delivery sequence numbers (unique, so hashing them is just spreading the bits).
type Seqs = HashSet<u64, BuildHasherDefault<SeqHasher>>;

#[derive(Default)]
struct State {
    /// Rows written (or being written) and not taken yet.
    stored: Seqs,
    /// Taken before their row was written: their insert skips them.
    unwritten: Seqs,
    /// Taken rows to delete in the next removal job.
    remove: Vec<u64>,
    flushing: bool,
}

impl Acks {
    /// Acks over `store` (`None`: nothing is persisted, as in unit tests).
    pub fn new(store: Option<Store>) -> Arc<Self> {
        Arc::new(Acks {
            store,
            state: Mutex::default(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Of `seqs`, about to be written by the caller's job, those not taken yet: they are
    /// written, and their removal will be sent when they are taken. The others are
    /// dropped from the unwritten set; nothing is left to remove for them.
    pub fn stored(&self, seqs: impl Iterator<Item = u64>) -> Seqs {
        if self.store.is_none() {
            return seqs.collect();
        }
        let mut st = self.lock();
        let mut fresh = Seqs::default();
        for s in seqs {
            if !st.unwritten.remove(&s) {
                st.stored.insert(s);
                fresh.insert(s);
            }
        }
        fresh
    }

    /// `seqs` will never be written (their job did not run).
    fn forget(&self, seqs: impl Iterator<Item = u64>) {
        if self.store.is_none() {
            return;
        }
        let mut st = self.lock();
        for s in seqs {
            st.unwritten.remove(&s);
        }
    }

    /// Marks `seqs` taken: written rows go in the next removal job, unwritten ones are
    /// never written.
    pub fn taken(self: &Arc<Self>, seqs: impl IntoIterator<Item = u64>) {
        if self.store.is_none() {
            return;
        }
        let mut st = self.lock();
        for s in seqs {
            if st.stored.remove(&s) {
                st.remove.push(s);
            } else {
                st.unwritten.insert(s);
            }
        }
        self.kick(st);
    }

    /// Starts the removal task if there is work and it is not running.
    fn kick(self: &Arc<Self>, mut st: std::sync::MutexGuard<'_, State>) {
        let Some(store) = self.store.clone() else {
            return;
        };
        if st.flushing || st.remove.is_empty() {
            return;
        }
        // Outside a runtime (a unit test's plain thread) rows stay until the next start.
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        st.flushing = true;
        drop(st);
        let me = self.clone();
        rt.spawn(async move {
            loop {
                let seqs = {
                    let mut st = me.lock();
                    if st.remove.is_empty() {
                        st.flushing = false;
                        return;
                    }
                    std::mem::take(&mut st.remove)
                };
                let n = seqs.len();
                let r = store
                    .run(move |t| {
                        let mut st =
                            t.prepare_cached("DELETE FROM delivery_queue WHERE seq = ?1")?;
                        for s in seqs {
                            st.execute([seq_sql(s)])?;
                        }
                        Ok(())
                    })
                    .await;
                if let Err(e) = r {
                    // The rows stay: after a restart they are handed out again (a repeat,
                    // never a loss).
                    tracing::warn!(error = %e, rows = n, "removing taken queue rows failed");
                }
            }
        });
    }

    /// Waits until every removal asked for so far is committed (shutdown).
    pub async fn flush(&self) {
        for _ in 0..500 {
            let idle = {
                let st = self.lock();
                !st.flushing && st.remove.is_empty()
            };
            if idle {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
    }
}

/// Hashes a sequence number by Fibonacci multiplication: they are unique integers, so
/// SipHash's resistance to chosen keys buys nothing here.
#[derive(Default)]
pub struct SeqHasher(u64);

impl Hasher for SeqHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn rows(store: &Store) -> Vec<u64> {
        load(store)
            .await
            .expect("loads")
            .into_iter()
            .map(|(seq, _, _)| seq)
            .collect()
    }

    fn row(seq: u64) -> QueueRow {
        QueueRow {
            seq,
            filter: "f".into(),
            envelope: Arc::new(vec![1, 2, 3]),
            legacy: None,
        }
    }

    #[tokio::test]
    async fn a_row_taken_before_its_insert_runs_is_never_written_and_others_go_once_taken() {
        let store = Store::in_memory().expect("opens");
        let acks = Acks::new(Some(store.clone()));
        // Row 1: a subscriber took it before the post's job reached the store.
        acks.taken([1]);
        acks.flush().await;
        let q = QueueRows::new(vec![row(1), row(2)], acks.clone());
        store.run(move |t| q.write(t)).await.expect("commits");
        assert_eq!(
            rows(&store).await,
            [2],
            "row 1, already taken, was not written"
        );
        assert!(acks.lock().unwritten.is_empty(), "and nothing waits for it");
        acks.taken([2]);
        acks.flush().await;
        assert!(rows(&store).await.is_empty(), "row 2 went once taken");
        assert!(acks.lock().stored.is_empty());
    }

    #[tokio::test]
    async fn rows_whose_job_never_ran_leave_nothing_waiting() {
        let acks = Acks::new(Some(Store::in_memory().expect("opens")));
        let q = QueueRows::new(vec![row(7)], acks.clone());
        acks.taken([7]);
        drop(q);
        let st = acks.lock();
        assert!(st.unwritten.is_empty() && st.stored.is_empty() && st.remove.is_empty());
    }
}
