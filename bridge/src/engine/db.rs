//! The engine's rows in the sidecar store (schema: migration 2 in [`crate::store`]).
//!
//! Each function is one transaction. Reader and writer states are stored as JSON of the
//! protocol crate's own types, so what is persisted is exactly what the sans-IO state
//! machines hold.

use rusqlite::{OptionalExtension, params};
use staples_protocol::dag::{ChatId, MessageId};

use crate::store::{Store, StoreError};

/// A stored chat.
pub struct ChatRow {
    /// Chat id.
    pub chat: ChatId,
    /// Key reference.
    pub key_ref: String,
    /// Whisper topic.
    pub topic: [u8; 4],
    /// Last Lamport clock.
    pub clock: u64,
    /// Inbox writer JSON.
    pub writer: Option<String>,
    /// Next rendezvous index to read.
    pub roster_next: u64,
    /// Roster entry written.
    pub announced: bool,
}

/// A stored member of a chat.
pub struct MemberRow {
    /// Chat id.
    pub chat: ChatId,
    /// Compressed node key.
    pub node: Vec<u8>,
    /// Overlay, if known.
    pub overlay: Option<Vec<u8>>,
    /// Compressed PSS key, if known.
    pub pss_key: Option<Vec<u8>>,
    /// Inbox reader JSON.
    pub reader: String,
    /// Whether it writes the chat index.
    pub indexed: bool,
}

/// A row of the PSS outbox.
#[derive(Clone)]
pub struct OutboxRow {
    /// Order of posting.
    pub seq: i64,
    /// DAG id.
    pub id: MessageId,
    /// Chat.
    pub chat: ChatId,
    /// Clock.
    pub clock: u64,
    /// Envelope RLP.
    pub envelope: Vec<u8>,
    /// Swarm reference once uploaded.
    pub reference: Option<[u8; 32]>,
    /// Feed index of the page version listing it, once appended.
    pub page_index: Option<u64>,
}

/// A stored message.
pub struct MessageRow {
    /// DAG id.
    pub id: MessageId,
    /// Chat.
    pub chat: ChatId,
    /// Clock.
    pub clock: u64,
    /// Parent ids.
    pub parents: Vec<MessageId>,
    /// Delivered (else pending).
    pub delivered: bool,
    /// Envelope RLP (pending messages keep it for re-insertion after a restart).
    pub envelope: Option<Vec<u8>>,
    /// Gap parents at delivery.
    pub gap_parents: Vec<MessageId>,
    /// Delivered after being declared a gap.
    pub late: bool,
    /// Posted by this sidecar.
    pub own: bool,
    /// The author's node address, where recorded.
    pub author: Option<[u8; 20]>,
}

fn ids_to_blob(ids: &[MessageId]) -> Vec<u8> {
    ids.iter().flat_map(|i| i.as_bytes().to_vec()).collect()
}

fn ids_from_blob(b: &[u8]) -> Vec<MessageId> {
    b.chunks_exact(32)
        .filter_map(|c| MessageId::from_slice(c).ok())
        .collect()
}

fn chat_of(b: &[u8]) -> rusqlite::Result<ChatId> {
    ChatId::from_slice(b).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}

fn id_of(b: &[u8]) -> rusqlite::Result<MessageId> {
    MessageId::from_slice(b).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}

/// Reads a metadata value.
pub async fn meta(store: &Store, k: impl Into<String>) -> Result<Option<Vec<u8>>, StoreError> {
    let k = k.into();
    store
        .run(move |t| {
            Ok(
                t.query_row("SELECT v FROM pss_meta WHERE k = ?1", [&k], |r| r.get(0))
                    .optional()?,
            )
        })
        .await
}

/// Writes a metadata value.
pub async fn set_meta(store: &Store, k: impl Into<String>, v: Vec<u8>) -> Result<(), StoreError> {
    let k = k.into();
    store
        .run(move |t| {
            t.execute(
                "INSERT INTO pss_meta (k, v) VALUES (?1, ?2)
                 ON CONFLICT (k) DO UPDATE SET v = excluded.v",
                params![k, v],
            )?;
            Ok(())
        })
        .await
}

/// Inserts or updates a chat.
pub async fn put_chat(store: &Store, row: ChatRow) -> Result<(), StoreError> {
    store
        .run(move |t| {
            t.execute(
                "INSERT INTO pss_chats (chat, key_ref, topic, clock, writer, roster_next, announced)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (chat) DO UPDATE SET key_ref = excluded.key_ref,
                    clock = excluded.clock, writer = excluded.writer,
                    roster_next = excluded.roster_next, announced = excluded.announced",
                params![
                    &row.chat.as_bytes()[..],
                    row.key_ref,
                    &row.topic[..],
                    row.clock as i64,
                    row.writer,
                    row.roster_next as i64,
                    row.announced
                ],
            )?;
            Ok(())
        })
        .await
}

/// All chats.
pub async fn chats(store: &Store) -> Result<Vec<ChatRow>, StoreError> {
    store
        .run(|t| {
            let mut st = t.prepare(
                "SELECT chat, key_ref, topic, clock, writer, roster_next, announced FROM pss_chats",
            )?;
            let rows = st.query_map([], |r| {
                let topic: Vec<u8> = r.get(2)?;
                Ok(ChatRow {
                    chat: chat_of(&r.get::<_, Vec<u8>>(0)?)?,
                    key_ref: r.get(1)?,
                    topic: topic.as_slice().try_into().unwrap_or([0; 4]),
                    clock: r.get::<_, i64>(3)? as u64,
                    writer: r.get(4)?,
                    roster_next: r.get::<_, i64>(5)? as u64,
                    announced: r.get(6)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
}

/// Inserts or updates members.
pub async fn put_members(store: &Store, rows: Vec<MemberRow>) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    store
        .run(move |t| {
            for row in rows {
                t.execute(
                    "INSERT INTO pss_members (chat, node, overlay, pss_key, reader, indexed)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT (chat, node) DO UPDATE SET
                        overlay = coalesce(excluded.overlay, overlay),
                        pss_key = coalesce(excluded.pss_key, pss_key),
                        reader = excluded.reader,
                        indexed = max(indexed, excluded.indexed)",
                    params![
                        &row.chat.as_bytes()[..],
                        row.node,
                        row.overlay,
                        row.pss_key,
                        row.reader,
                        row.indexed
                    ],
                )?;
            }
            Ok(())
        })
        .await
}

/// All members.
pub async fn members(store: &Store) -> Result<Vec<MemberRow>, StoreError> {
    store
        .run(|t| {
            let mut st =
                t.prepare("SELECT chat, node, overlay, pss_key, reader, indexed FROM pss_members")?;
            let rows = st.query_map([], |r| {
                Ok(MemberRow {
                    chat: chat_of(&r.get::<_, Vec<u8>>(0)?)?,
                    node: r.get(1)?,
                    overlay: r.get(2)?,
                    pss_key: r.get(3)?,
                    reader: r.get(4)?,
                    indexed: r.get(5)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
}

/// Accepts a post: the outbox row (with, in dual mode, its Whisper post parameters), the
/// message as delivered (own), the chat's clock and the queue rows for our own filters,
/// in one transaction, so an acknowledged post is durable with its DAG state, for both
/// transports.
pub async fn accept_post(
    store: &Store,
    row: OutboxRow,
    author: [u8; 20],
    parents: Vec<MessageId>,
    queue: crate::node::QueueRows,
    whisper: Option<String>,
) -> Result<(), StoreError> {
    store
        .run(move |t| {
            queue.write(t)?;
            t.execute(
                "INSERT INTO pss_outbox (id, chat, clock, envelope, whisper)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    &row.id.as_bytes()[..],
                    &row.chat.as_bytes()[..],
                    row.clock as i64,
                    row.envelope,
                    whisper
                ],
            )?;
            t.execute(
                "INSERT OR IGNORE INTO pss_messages (id, chat, clock, parents, state, own, author)
                 VALUES (?1, ?2, ?3, ?4, 'delivered', 1, ?5)",
                params![
                    &row.id.as_bytes()[..],
                    &row.chat.as_bytes()[..],
                    row.clock as i64,
                    ids_to_blob(&parents),
                    &author[..]
                ],
            )?;
            t.execute(
                "UPDATE pss_chats SET clock = max(clock, ?2) WHERE chat = ?1",
                params![&row.chat.as_bytes()[..], row.clock as i64],
            )?;
            Ok(())
        })
        .await
}

/// The outbox in posting order.
pub async fn outbox(store: &Store) -> Result<Vec<OutboxRow>, StoreError> {
    store
        .run(|t| {
            let mut st = t.prepare(
                "SELECT seq, id, chat, clock, envelope, reference, page_index FROM pss_outbox
                 WHERE published = 0 ORDER BY seq",
            )?;
            let rows = st.query_map([], |r| {
                let reference: Option<Vec<u8>> = r.get(5)?;
                Ok(OutboxRow {
                    seq: r.get(0)?,
                    id: id_of(&r.get::<_, Vec<u8>>(1)?)?,
                    chat: chat_of(&r.get::<_, Vec<u8>>(2)?)?,
                    clock: r.get::<_, i64>(3)? as u64,
                    envelope: r.get(4)?,
                    reference: reference.and_then(|v| v.as_slice().try_into().ok()),
                    page_index: r.get::<_, Option<i64>>(6)?.map(|i| i as u64),
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
}

/// Outbox depth.
pub async fn outbox_depth(store: &Store) -> Result<u64, StoreError> {
    store
        .run(|t| {
            Ok(t.query_row(
                "SELECT count(*) FROM pss_outbox WHERE published = 0",
                [],
                |r| r.get::<_, i64>(0),
            )? as u64)
        })
        .await
}

/// Records the upload reference of an outbox row.
pub async fn set_reference(store: &Store, seq: i64, reference: [u8; 32]) -> Result<(), StoreError> {
    store
        .run(move |t| {
            t.execute(
                "UPDATE pss_outbox SET reference = ?2 WHERE seq = ?1",
                params![seq, &reference[..]],
            )?;
            Ok(())
        })
        .await
}

/// Records that the row's entry was appended at `page_index`, with the writer state that
/// holds it (written before publishing, so a crash republishes the same page).
pub async fn set_appended(
    store: &Store,
    seq: i64,
    chat: ChatId,
    page_index: u64,
    writer: String,
) -> Result<(), StoreError> {
    store
        .run(move |t| {
            t.execute(
                "UPDATE pss_outbox SET page_index = ?2 WHERE seq = ?1",
                params![seq, page_index as i64],
            )?;
            t.execute(
                "UPDATE pss_chats SET writer = ?2 WHERE chat = ?1",
                params![&chat.as_bytes()[..], writer],
            )?;
            Ok(())
        })
        .await
}

/// Marks a row published, with the confirmed writer state.
pub async fn set_published(
    store: &Store,
    seq: i64,
    chat: ChatId,
    writer: String,
) -> Result<(), StoreError> {
    store
        .run(move |t| {
            t.execute("UPDATE pss_outbox SET published = 1 WHERE seq = ?1", [seq])?;
            t.execute(
                "UPDATE pss_chats SET writer = ?2 WHERE chat = ?1",
                params![&chat.as_bytes()[..], writer],
            )?;
            Ok(())
        })
        .await
}

/// Our sealed messages of `chat` appended at inbox indexes `first..=last`, in index order
/// (for a page bundle; published rows keep their envelope).
pub async fn page_envelopes(
    store: &Store,
    chat: ChatId,
    first: u64,
    last: u64,
) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
    store
        .run(move |t| {
            let mut st = t.prepare(
                "SELECT page_index, envelope FROM pss_outbox
                 WHERE chat = ?1 AND page_index BETWEEN ?2 AND ?3 ORDER BY page_index",
            )?;
            let rows = st.query_map(
                params![&chat.as_bytes()[..], first as i64, last as i64],
                |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, Vec<u8>>(1)?)),
            )?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
}

/// Stores received messages waiting for parents, in one write.
pub async fn put_pending(store: &Store, rows: Vec<PendingRow>) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    store
        .run(move |t| {
            let mut insert = t.prepare_cached(
                "INSERT OR IGNORE INTO pss_messages (id, chat, clock, parents, state, envelope)
                 VALUES (?1, ?2, ?3, ?4, 'pending', ?5)",
            )?;
            for r in rows {
                insert.execute(params![
                    &r.id.as_bytes()[..],
                    &r.chat.as_bytes()[..],
                    r.clock as i64,
                    ids_to_blob(&r.parents),
                    r.envelope
                ])?;
            }
            Ok(())
        })
        .await
}

/// A message waiting for parents, to record.
pub struct PendingRow {
    /// Chat.
    pub chat: ChatId,
    /// DAG id.
    pub id: MessageId,
    /// Clock.
    pub clock: u64,
    /// Parents.
    pub parents: Vec<MessageId>,
    /// The envelope, to restore it into the buffer after a restart.
    pub envelope: Vec<u8>,
}

/// A delivery to record.
pub struct Delivered {
    /// Chat.
    pub chat: ChatId,
    /// DAG id.
    pub id: MessageId,
    /// Clock.
    pub clock: u64,
    /// Parents.
    pub parents: Vec<MessageId>,
    /// Gap parents.
    pub gap_parents: Vec<MessageId>,
    /// Late.
    pub late: bool,
    /// The author's node address.
    pub author: [u8; 20],
}

/// Records deliveries (in delivery order) and the chat clocks they advanced, with the
/// filter queue rows that hand them to the app, in one transaction.
pub async fn put_delivered(
    store: &Store,
    rows: Vec<Delivered>,
    queue: crate::node::QueueRows,
) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    store
        .run(move |t| {
            queue.write(t)?;
            // Cached statements: a catch-up writes thousands of rows, and parsing the SQL
            // for each cost more than the writes.
            let mut delete = t.prepare_cached("DELETE FROM pss_messages WHERE id = ?1")?;
            let mut insert = t.prepare_cached(
                "INSERT INTO pss_messages
                     (id, chat, clock, parents, state, gap_parents, late, author)
                 VALUES (?1, ?2, ?3, ?4, 'delivered', ?5, ?6, ?7)",
            )?;
            let mut clock =
                t.prepare_cached("UPDATE pss_chats SET clock = max(clock, ?2) WHERE chat = ?1")?;
            for d in rows {
                // Delete-then-insert gives a delivered message a fresh `seq`: history is
                // in delivery order, which is a causal order.
                delete.execute([&d.id.as_bytes()[..]])?;
                insert.execute(params![
                    &d.id.as_bytes()[..],
                    &d.chat.as_bytes()[..],
                    d.clock as i64,
                    ids_to_blob(&d.parents),
                    ids_to_blob(&d.gap_parents),
                    d.late,
                    &d.author[..]
                ])?;
                clock.execute(params![&d.chat.as_bytes()[..], d.clock as i64])?;
            }
            Ok(())
        })
        .await
}

/// Records declared gaps.
pub async fn put_gaps(
    store: &Store,
    rows: Vec<(ChatId, MessageId, &'static str, u64)>,
) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    store
        .run(move |t| {
            for (chat, id, reason, at) in rows {
                t.execute(
                    "INSERT OR IGNORE INTO pss_gaps (chat, id, reason, declared_at)
                     VALUES (?1, ?2, ?3, ?4)",
                    params![&chat.as_bytes()[..], &id.as_bytes()[..], reason, at as i64],
                )?;
            }
            Ok(())
        })
        .await
}

/// Declared gaps: chat, id, reason, when.
pub async fn gaps(store: &Store) -> Result<Vec<(ChatId, MessageId, String, u64)>, StoreError> {
    store
        .run(|t| {
            let mut st = t.prepare(
                "SELECT chat, id, reason, declared_at FROM pss_gaps ORDER BY declared_at",
            )?;
            let rows = st.query_map([], |r| {
                Ok((
                    chat_of(&r.get::<_, Vec<u8>>(0)?)?,
                    id_of(&r.get::<_, Vec<u8>>(1)?)?,
                    r.get(2)?,
                    r.get::<_, i64>(3)? as u64,
                ))
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
}

/// Messages of `chat` (or all chats), delivered ones in delivery order then pending ones.
pub async fn messages(store: &Store, chat: Option<ChatId>) -> Result<Vec<MessageRow>, StoreError> {
    store
        .run(move |t| {
            let mut st = t.prepare(
                "SELECT id, chat, clock, parents, state, envelope, gap_parents, late, own, author
                 FROM pss_messages WHERE (?1 IS NULL OR chat = ?1)
                 ORDER BY state = 'pending', seq",
            )?;
            let key = chat.map(|c| c.as_bytes().to_vec());
            let rows = st.query_map([key], |r| {
                Ok(MessageRow {
                    id: id_of(&r.get::<_, Vec<u8>>(0)?)?,
                    chat: chat_of(&r.get::<_, Vec<u8>>(1)?)?,
                    clock: r.get::<_, i64>(2)? as u64,
                    parents: ids_from_blob(&r.get::<_, Vec<u8>>(3)?),
                    delivered: r.get::<_, String>(4)? == "delivered",
                    envelope: r.get(5)?,
                    gap_parents: ids_from_blob(&r.get::<_, Vec<u8>>(6)?),
                    late: r.get(7)?,
                    own: r.get(8)?,
                    author: r
                        .get::<_, Option<Vec<u8>>>(9)?
                        .and_then(|a| <[u8; 20]>::try_from(a.as_slice()).ok()),
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
}
