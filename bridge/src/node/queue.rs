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
use std::sync::{Arc, Mutex};

use rusqlite::{Transaction, params};

use crate::store::{Store, StoreError};

/// A queue entry to write with the transaction that makes a message visible.
#[derive(Debug, Clone)]
pub struct QueueRow {
    /// Position in the node's delivery order (unique across filters).
    pub seq: u64,
    /// The filter it waits in.
    pub filter: String,
    /// The envelope (RLP), shared by every filter it matched.
    pub envelope: Arc<Vec<u8>>,
}

/// The queue rows of one or more routed messages, to write in the caller's transaction.
#[derive(Default)]
pub struct QueueRows {
    rows: Vec<QueueRow>,
    acks: Option<Arc<Acks>>,
}

impl QueueRows {
    /// Rows whose removal `acks` tracks.
    pub fn new(rows: Vec<QueueRow>, acks: Arc<Acks>) -> Self {
        QueueRows {
            rows,
            acks: Some(acks),
        }
    }

    /// Adds `other`'s rows.
    pub fn append(&mut self, mut other: QueueRows) {
        self.rows.append(&mut other.rows);
        if self.acks.is_none() {
            self.acks = other.acks;
        }
    }

    /// The encoded envelope of the first row, if any (every row of one message shares it).
    pub fn envelope(&self) -> Option<Arc<Vec<u8>>> {
        self.rows.first().map(|r| r.envelope.clone())
    }

    /// Writes the rows inside `t`, the caller's transaction. A row whose message the app
    /// has already taken (a local post's notification is often written before its job
    /// runs) is not written at all, and its removal is dropped with it: the common case
    /// of a live subscriber costs no row.
    pub fn write(&self, t: &Transaction<'_>) -> Result<(), StoreError> {
        let taken = self
            .acks
            .as_ref()
            .map(|a| a.claim(self.rows.iter().map(|r| r.seq)))
            .unwrap_or_default();
        let mut st = t.prepare_cached(
            "INSERT OR REPLACE INTO delivery_queue (seq, filter, envelope) VALUES (?1, ?2, ?3)",
        )?;
        for r in self.rows.iter().filter(|r| !taken.contains(&r.seq)) {
            st.execute(params![seq_sql(r.seq), r.filter, r.envelope.as_slice()])?;
        }
        Ok(())
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
pub struct Receipt(Option<Box<dyn FnOnce(bool) + Send>>);

impl Receipt {
    /// A receipt that runs `f(true)` when written, `f(false)` when dropped unwritten.
    pub fn new(f: impl FnOnce(bool) + Send + 'static) -> Self {
        Receipt(Some(Box::new(f)))
    }

    /// The answer or notification was handed to the connection.
    pub fn written(mut self) {
        if let Some(f) = self.0.take() {
            f(true);
        }
    }
}

impl Drop for Receipt {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f(false);
        }
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
/// A row may be taken before the job that writes it has reached the store: a local post
/// notifies subscribers before it waits for room in the store's queue, so a stalled disk
/// does not delay live delivery (as before rows existed). Such rows are *held*
/// ([`Acks::hold`]) until their insert is sent, and their removal waits until then, so it
/// can never run before the insert on the store thread. When the insert runs and finds
/// its row already taken, it claims the removal and writes nothing ([`QueueRows::write`]).
pub struct Acks {
    store: Option<Store>,
    pending: Mutex<Pending>,
}

#[derive(Default)]
struct Pending {
    seqs: HashSet<u64>,
    held: HashSet<u64>,
    flushing: bool,
}

impl Pending {
    /// Takes the pending removals that may run now; held ones stay.
    fn take_ready(&mut self) -> Vec<u64> {
        if self.held.is_empty() {
            return self.seqs.drain().collect();
        }
        let ready: Vec<u64> = self
            .seqs
            .iter()
            .copied()
            .filter(|s| !self.held.contains(s))
            .collect();
        for s in &ready {
            self.seqs.remove(s);
        }
        ready
    }
}

/// Removal of some rows held until their insert is sent; releases them when dropped.
pub struct Held {
    acks: Arc<Acks>,
    seqs: Vec<u64>,
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut p = self.acks.lock();
        for s in &self.seqs {
            p.held.remove(s);
        }
        self.acks.kick(p);
    }
}

impl Acks {
    /// Acks over `store` (`None`: nothing is persisted, as in unit tests).
    pub fn new(store: Option<Store>) -> Arc<Self> {
        Arc::new(Acks {
            store,
            pending: Mutex::default(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Holds the removal of `seqs` until the returned guard is dropped (see [`Acks`]).
    pub fn hold(self: &Arc<Self>, seqs: Vec<u64>) -> Held {
        if self.store.is_some() {
            self.lock().held.extend(seqs.iter().copied());
        }
        Held {
            acks: self.clone(),
            seqs,
        }
    }

    /// Of `seqs`, those already taken and not yet being removed: they are the caller's now
    /// (its insert skips them, so there is nothing to remove).
    fn claim(&self, seqs: impl Iterator<Item = u64>) -> HashSet<u64> {
        let mut p = self.lock();
        if p.seqs.is_empty() {
            return HashSet::new();
        }
        seqs.filter(|s| p.seqs.remove(s)).collect()
    }

    /// Marks `seqs` taken; their rows go in the next removal job.
    pub fn taken(self: &Arc<Self>, seqs: impl IntoIterator<Item = u64>) {
        if self.store.is_none() {
            return;
        }
        let mut p = self.lock();
        p.seqs.extend(seqs);
        self.kick(p);
    }

    /// Starts the removal task if there is work it may do and it is not running.
    fn kick(self: &Arc<Self>, mut p: std::sync::MutexGuard<'_, Pending>) {
        let Some(store) = self.store.clone() else {
            return;
        };
        if p.flushing || !p.seqs.iter().any(|s| !p.held.contains(s)) {
            return;
        }
        // Outside a runtime (a unit test's plain thread) rows stay until the next start.
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        p.flushing = true;
        drop(p);
        let me = self.clone();
        rt.spawn(async move {
            loop {
                let seqs = {
                    let mut p = me.lock();
                    let ready = p.take_ready();
                    if ready.is_empty() {
                        p.flushing = false;
                        return;
                    }
                    ready
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
                let p = self.lock();
                !p.flushing && p.seqs.is_empty()
            };
            if idle {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
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

    #[tokio::test]
    async fn a_row_taken_before_its_insert_runs_is_never_written_nor_removed_early() {
        let store = Store::in_memory().expect("opens");
        let acks = Acks::new(Some(store.clone()));
        let row = |seq| QueueRow {
            seq,
            filter: "f".into(),
            envelope: Arc::new(vec![1, 2, 3]),
        };
        // Row 1: a subscriber took it before the post's job reached the store.
        let held = acks.hold(vec![1]);
        acks.taken([1, 2]);
        acks.flush().await;
        assert_eq!(
            acks.lock().seqs.len(),
            1,
            "row 2 (never written) was removed, row 1 waits for its insert"
        );
        let q = QueueRows::new(vec![row(1), row(3)], acks.clone());
        let insert = store.submit(move |t| q.write(t)).await.expect("sends");
        drop(held);
        insert.await.expect("commits");
        acks.flush().await;
        assert_eq!(
            rows(&store).await,
            [3],
            "row 1, already taken, was not written"
        );
        assert!(acks.lock().seqs.is_empty(), "and its removal was claimed");
        acks.taken([3]);
        acks.flush().await;
        assert!(rows(&store).await.is_empty());
    }
}
