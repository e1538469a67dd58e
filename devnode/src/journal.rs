//! The on-disk form of a dev network: one append-only journal file, replayed at start.
//!
//! Why a journal and not SQLite: everything the node stores is either immutable (chunks
//! are content addressed; a re-uploaded SOC simply wins as the later record) or a counter
//! that only grows (stamp slots). Appends are all the writes there are, the whole state is
//! held in memory anyway (a dev node serves from RAM), and replaying a log at start is a
//! few lines with no dependency and no C build. SQLite would add a second copy of every
//! chunk's bookkeeping, a schema and a blocking connection for nothing the node queries.
//! The price: the file never shrinks (no compaction; delete the directory to reset).
//!
//! Record framing: `kind (1) ‖ len (4, LE) ‖ payload (len) ‖ fnv1a64(kind ‖ len ‖ payload)
//! (8, LE)`. A record cut short by a crash, or one whose checksum fails, ends the replay;
//! the file is truncated there so new records follow valid ones.
//!
//! Durability: a write is acknowledged after the writer thread has handed it to the OS
//! (`write` + `flush`), so a killed process loses nothing it acknowledged; a power cut may
//! lose the tail, which the checksum then trims. The file is `fsync`ed on a clean stop.
//! Writes go through one dedicated thread (file I/O stays off the async workers) fed by a
//! bounded channel, and batch naturally: everything queued while one write runs is
//! written and flushed together (group commit).

use std::fs::{File, OpenOptions};
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::thread::JoinHandle;

use staples_protocol::swarm::ChunkAddress;
use tokio::sync::{mpsc, oneshot};

/// Name of the journal file inside the data directory.
pub const JOURNAL_FILE: &str = "journal.log";
/// Largest record payload accepted on replay (a chunk is at most 4201 bytes; batch
/// records are small JSON).
const MAX_RECORD: u32 = 1 << 20;
/// Operations queued for the writer before callers wait.
const QUEUE: usize = 1024;
/// Records written between two flushes at most.
const GROUP: usize = 256;

/// Errors from the journal.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// Opening, reading, writing or syncing the file failed.
    #[error("journal {path}: {source}")]
    Io {
        /// The journal file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The writer thread is gone (the network was stopped).
    #[error("journal is closed")]
    Closed,
    /// A record's payload did not decode (a bug or a file from another version).
    #[error("journal record of kind {kind} is malformed")]
    Malformed {
        /// The record kind byte.
        kind: u8,
    },
}

/// One journaled change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// A chunk was stored (a later record for the same address replaces it).
    Chunk {
        /// Its address.
        address: ChunkAddress,
        /// Its bytes as served by `GET /chunks`.
        data: Vec<u8>,
    },
    /// A chunk was removed (the drop knob).
    Remove {
        /// Its address.
        address: ChunkAddress,
    },
    /// A batch was created; the payload is the batch's JSON record.
    Batch(Vec<u8>),
    /// A stamp slot was used.
    Stamp {
        /// The batch.
        batch: [u8; 32],
        /// The stamped chunk.
        chunk: ChunkAddress,
        /// Bucket of the slot.
        bucket: u32,
        /// Slot within the bucket.
        slot: u32,
    },
    /// A batch label changed.
    Label {
        /// The batch.
        batch: [u8; 32],
        /// The new label.
        label: String,
    },
}

impl Record {
    fn kind(&self) -> u8 {
        match self {
            Record::Chunk { .. } => b'C',
            Record::Remove { .. } => b'R',
            Record::Batch(_) => b'B',
            Record::Stamp { .. } => b'S',
            Record::Label { .. } => b'L',
        }
    }

    fn payload(&self) -> Vec<u8> {
        match self {
            Record::Chunk { address, data } => [address.as_bytes().as_slice(), data].concat(),
            Record::Remove { address } => address.as_bytes().to_vec(),
            Record::Batch(json) => json.clone(),
            Record::Stamp {
                batch,
                chunk,
                bucket,
                slot,
            } => [
                batch.as_slice(),
                chunk.as_bytes(),
                &bucket.to_be_bytes(),
                &slot.to_be_bytes(),
            ]
            .concat(),
            Record::Label { batch, label } => [batch.as_slice(), label.as_bytes()].concat(),
        }
    }

    fn decode(kind: u8, payload: &[u8]) -> Result<Self, JournalError> {
        let bad = || JournalError::Malformed { kind };
        let addr = |b: &[u8]| ChunkAddress::try_from(b).map_err(|_| bad());
        let id = |b: &[u8]| <[u8; 32]>::try_from(b).map_err(|_| bad());
        match kind {
            b'C' if payload.len() >= 32 => Ok(Record::Chunk {
                address: addr(&payload[..32])?,
                data: payload[32..].to_vec(),
            }),
            b'R' => Ok(Record::Remove {
                address: addr(payload)?,
            }),
            b'B' => Ok(Record::Batch(payload.to_vec())),
            b'S' if payload.len() == 72 => {
                let word = |o: usize| {
                    let mut w = [0u8; 4];
                    w.copy_from_slice(&payload[o..o + 4]);
                    u32::from_be_bytes(w)
                };
                Ok(Record::Stamp {
                    batch: id(&payload[..32])?,
                    chunk: addr(&payload[32..64])?,
                    bucket: word(64),
                    slot: word(68),
                })
            }
            b'L' if payload.len() >= 32 => Ok(Record::Label {
                batch: id(&payload[..32])?,
                label: String::from_utf8(payload[32..].to_vec()).map_err(|_| bad())?,
            }),
            _ => Err(bad()),
        }
    }
}

enum Op {
    Append(Record, oneshot::Sender<Result<(), String>>),
    Close(oneshot::Sender<Result<(), String>>),
}

/// An open journal: appends go to a writer thread.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    tx: mpsc::Sender<Op>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Op::Append(..) => "Append",
            Op::Close(_) => "Close",
        })
    }
}

impl Journal {
    /// Opens (or creates) the journal in `dir`, returning it and the records to replay.
    /// A torn or corrupt tail is truncated away (and logged).
    pub fn open(dir: &Path) -> Result<(Self, Vec<Record>), JournalError> {
        let path = dir.join(JOURNAL_FILE);
        let io = |source| JournalError::Io {
            path: path.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        let (records, good_len) = read_records(&mut file).map_err(io)?;
        let file_len = file.metadata().map_err(io)?.len();
        if good_len < file_len {
            tracing::warn!(
                path = %path.display(),
                kept = good_len,
                dropped = file_len - good_len,
                "journal tail is torn or corrupt; truncating it"
            );
            file.set_len(good_len).map_err(io)?;
        }
        file.seek(SeekFrom::End(0)).map_err(io)?;
        let (tx, rx) = mpsc::channel(QUEUE);
        let writer_path = path.clone();
        let thread = std::thread::Builder::new()
            .name("devnode-journal".into())
            .spawn(move || writer(file, rx, &writer_path))
            .map_err(io)?;
        Ok((
            Self {
                path,
                tx,
                thread: Mutex::new(Some(thread)),
            },
            records,
        ))
    }

    /// Appends `record`, returning once it has been handed to the OS.
    pub async fn append(&self, record: Record) -> Result<(), JournalError> {
        let (ack, done) = oneshot::channel();
        self.tx
            .send(Op::Append(record, ack))
            .await
            .map_err(|_| JournalError::Closed)?;
        self.await_ack(done).await
    }

    /// Flushes, `fsync`s and stops the writer. Later appends fail with
    /// [`JournalError::Closed`].
    pub async fn close(&self) -> Result<(), JournalError> {
        let (ack, done) = oneshot::channel();
        if self.tx.send(Op::Close(ack)).await.is_err() {
            return Ok(());
        }
        let result = self.await_ack(done).await;
        let thread = self
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(thread) = thread {
            // The thread has acknowledged the close, so it is about to return.
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
        result
    }

    async fn await_ack(
        &self,
        done: oneshot::Receiver<Result<(), String>>,
    ) -> Result<(), JournalError> {
        match done.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(message)) => Err(JournalError::Io {
                path: self.path.clone(),
                source: std::io::Error::other(message),
            }),
            Err(_) => Err(JournalError::Closed),
        }
    }
}

/// The writer thread: drain what is queued, write it, flush once, acknowledge.
fn writer(file: File, mut rx: mpsc::Receiver<Op>, path: &Path) {
    let mut out = BufWriter::with_capacity(1 << 20, file);
    while let Some(first) = rx.blocking_recv() {
        let mut ops = vec![first];
        while ops.len() < GROUP {
            match rx.try_recv() {
                Ok(op) => ops.push(op),
                Err(_) => break,
            }
        }
        let mut acks = Vec::with_capacity(ops.len());
        let mut close = None;
        let mut result: Result<(), String> = Ok(());
        for op in ops {
            match op {
                Op::Append(record, ack) => {
                    if result.is_ok() {
                        result = write_record(&mut out, &record).map_err(|e| e.to_string());
                    }
                    acks.push(ack);
                }
                Op::Close(ack) => close = Some(ack),
            }
        }
        if result.is_ok() {
            result = out.flush().map_err(|e| e.to_string());
        }
        if let Err(e) = &result {
            tracing::error!(path = %path.display(), error = %e, "journal write failed");
        }
        for ack in acks {
            let _ = ack.send(result.clone());
        }
        if let Some(ack) = close {
            let synced = out
                .flush()
                .and_then(|()| out.get_ref().sync_all())
                .map_err(|e| e.to_string());
            let _ = ack.send(synced);
            return;
        }
    }
}

fn write_record(out: &mut impl Write, record: &Record) -> std::io::Result<()> {
    let payload = record.payload();
    let len = u32::try_from(payload.len())
        .ok()
        .filter(|l| *l <= MAX_RECORD)
        .ok_or_else(|| std::io::Error::other("journal record too large"))?;
    let head = [[record.kind()].as_slice(), &len.to_le_bytes()].concat();
    out.write_all(&head)?;
    out.write_all(&payload)?;
    out.write_all(&checksum(&head, &payload).to_le_bytes())
}

/// Reads valid records from the start; returns them and the length they cover.
fn read_records(file: &mut File) -> std::io::Result<(Vec<Record>, u64)> {
    file.seek(SeekFrom::Start(0))?;
    let mut reader = BufReader::with_capacity(1 << 20, &mut *file);
    let mut records = Vec::new();
    let mut good = 0u64;
    loop {
        let mut head = [0u8; 5];
        if !read_full(&mut reader, &mut head)? {
            break;
        }
        let kind = head[0];
        let len = u32::from_le_bytes([head[1], head[2], head[3], head[4]]);
        if len > MAX_RECORD {
            break;
        }
        let mut payload = vec![0u8; len as usize];
        let mut sum = [0u8; 8];
        if !read_full(&mut reader, &mut payload)? || !read_full(&mut reader, &mut sum)? {
            break;
        }
        if u64::from_le_bytes(sum) != checksum(&head, &payload) {
            break;
        }
        match Record::decode(kind, &payload) {
            Ok(r) => records.push(r),
            Err(e) => {
                tracing::warn!(error = %e, "skipping journal record");
            }
        }
        good += 5 + u64::from(len) + 8;
    }
    Ok((records, good))
}

/// Fills `buf`; `false` on a clean or torn end of file.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<bool> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => return Ok(false),
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// FNV-1a, 64-bit: enough to tell a torn or garbled record from a good one (not an
/// integrity guarantee against tampering; chunk data is content addressed anyway).
fn checksum(head: &[u8], payload: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in head.iter().chain(payload) {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "staples-devnode-journal-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir
    }

    fn samples() -> Vec<Record> {
        vec![
            Record::Chunk {
                address: ChunkAddress::from_bytes([1; 32]),
                data: b"\x03\0\0\0\0\0\0\0foo".to_vec(),
            },
            Record::Batch(br#"{"id":"ab"}"#.to_vec()),
            Record::Stamp {
                batch: [2; 32],
                chunk: ChunkAddress::from_bytes([3; 32]),
                bucket: 0x0303,
                slot: 7,
            },
            Record::Label {
                batch: [2; 32],
                label: "näme".into(),
            },
            Record::Remove {
                address: ChunkAddress::from_bytes([1; 32]),
            },
        ]
    }

    #[tokio::test]
    async fn records_round_trip_through_the_file() {
        let dir = temp_dir("roundtrip");
        let (j, replay) = Journal::open(&dir).expect("open");
        assert!(replay.is_empty());
        for r in samples() {
            j.append(r).await.expect("append");
        }
        j.close().await.expect("close");
        assert!(matches!(
            j.append(Record::Batch(vec![])).await,
            Err(JournalError::Closed)
        ));
        let (j2, replay) = Journal::open(&dir).expect("reopen");
        assert_eq!(replay, samples());
        j2.close().await.expect("close");
    }

    #[tokio::test]
    async fn a_torn_tail_is_truncated_and_appends_continue() {
        let dir = temp_dir("torn");
        let (j, _) = Journal::open(&dir).expect("open");
        for r in samples() {
            j.append(r).await.expect("append");
        }
        j.close().await.expect("close");
        let path = dir.join(JOURNAL_FILE);
        let full = std::fs::metadata(&path).expect("meta").len();
        // Cut the last record in half, then add garbage.
        let f = OpenOptions::new().write(true).open(&path).expect("open");
        f.set_len(full - 20).expect("truncate");
        drop(f);
        let (j, replay) = Journal::open(&dir).expect("reopen");
        assert_eq!(replay, samples()[..4].to_vec());
        j.append(samples()[4].clone()).await.expect("append");
        j.close().await.expect("close");
        let (_, replay) = Journal::open(&dir).expect("reopen");
        assert_eq!(replay, samples());
    }

    #[test]
    fn malformed_payloads_are_errors_not_panics() {
        for (kind, payload) in [(b'C', &[0u8; 3][..]), (b'S', &[0; 71]), (b'X', &[])] {
            assert!(matches!(
                Record::decode(kind, payload),
                Err(JournalError::Malformed { .. })
            ));
        }
    }
}
