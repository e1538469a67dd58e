//! Upload tags (Bee "sessions"): counters of what an upload split, stored and synced.
//!
//! Minimal but real: `POST /tags` creates one, uploads that carry `Swarm-Tag` (or the
//! deferred `/bytes` default, which creates one) count their chunks into it, and the root
//! reference is recorded when the upload finishes. In a perfectly replicated network a
//! stored chunk is synced at once, so `stored`, `sent` and `synced` move together. Tags
//! live in memory only; each node keeps at most [`MAX_TAGS`], forgetting the oldest.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};
use std::time::SystemTime;

use staples_protocol::swarm::ChunkAddress;

/// Tags one node remembers before the oldest is evicted (bounds memory under load).
pub const MAX_TAGS: usize = 10_000;

/// One tag's counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    /// Tag id.
    pub uid: u64,
    /// Chunks produced by splitting.
    pub split: u64,
    /// Chunks that were already stored.
    pub seen: u64,
    /// Chunks stored.
    pub stored: u64,
    /// Chunks pushed.
    pub sent: u64,
    /// Chunks confirmed synced.
    pub synced: u64,
    /// Root reference, once the upload is done.
    pub address: Option<ChunkAddress>,
    /// Creation time.
    pub started_at: SystemTime,
}

/// The tags of one node.
#[derive(Debug)]
pub struct Tags {
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    next: u64,
    tags: BTreeMap<u64, Tag>,
}

impl Default for Tags {
    fn default() -> Self {
        Self::new()
    }
}

impl Tags {
    /// No tags; ids start at 1 (0 means "no tag" in Bee's headers).
    pub fn new() -> Self {
        Self {
            inner: Mutex::new(Inner {
                next: 1,
                tags: BTreeMap::new(),
            }),
        }
    }

    /// Creates a tag.
    pub fn create(&self) -> Tag {
        let mut inner = self.lock();
        let uid = inner.next;
        inner.next += 1;
        let tag = Tag {
            uid,
            split: 0,
            seen: 0,
            stored: 0,
            sent: 0,
            synced: 0,
            address: None,
            started_at: SystemTime::now(),
        };
        inner.tags.insert(uid, tag.clone());
        while inner.tags.len() > MAX_TAGS {
            inner.tags.pop_first();
        }
        tag
    }

    /// The tag `uid`.
    pub fn get(&self, uid: u64) -> Option<Tag> {
        self.lock().tags.get(&uid).cloned()
    }

    /// Deletes `uid`; returns whether it existed.
    pub fn delete(&self, uid: u64) -> bool {
        self.lock().tags.remove(&uid).is_some()
    }

    /// Up to `limit` tags after skipping `offset`, in id order.
    pub fn list(&self, offset: usize, limit: usize) -> Vec<Tag> {
        self.lock()
            .tags
            .values()
            .skip(offset)
            .take(limit)
            .cloned()
            .collect()
    }

    /// Counts one stored chunk (`seen` when it was already there).
    pub fn count_chunk(&self, uid: u64, already_stored: bool) {
        if let Some(t) = self.lock().tags.get_mut(&uid) {
            t.split += 1;
            t.stored += 1;
            t.sent += 1;
            t.synced += 1;
            if already_stored {
                t.seen += 1;
            }
        }
    }

    /// Records the root of a finished upload; returns whether the tag exists.
    pub fn done(&self, uid: u64, root: Option<ChunkAddress>) -> bool {
        match self.lock().tags.get_mut(&uid) {
            Some(t) => {
                if root.is_some() {
                    t.address = root;
                }
                true
            }
            None => false,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_count_and_finish() {
        let tags = Tags::new();
        let t = tags.create();
        assert_eq!(t.uid, 1);
        tags.count_chunk(t.uid, false);
        tags.count_chunk(t.uid, true);
        let root = ChunkAddress::from_bytes([1; 32]);
        assert!(tags.done(t.uid, Some(root)));
        let t = tags.get(t.uid).expect("tag");
        assert_eq!(
            (t.split, t.seen, t.synced, t.address),
            (2, 1, 2, Some(root))
        );
        assert_eq!(tags.list(0, 10).len(), 1);
        assert!(tags.delete(t.uid));
        assert!(tags.get(t.uid).is_none());
        assert!(!tags.done(t.uid, None));
    }

    #[test]
    fn the_oldest_tags_are_forgotten_past_the_cap() {
        let tags = Tags::new();
        for _ in 0..MAX_TAGS + 2 {
            tags.create();
        }
        assert!(tags.get(1).is_none());
        assert!(tags.get(3).is_some());
        assert_eq!(tags.list(0, usize::MAX).len(), MAX_TAGS);
    }
}
