//! A crowd: many members of one public chat written straight to a Bee node by this crate,
//! with the protocol crate's formats and the sidecar's Bee client, so a test or a bench
//! can put a thousand writers in a chat without a thousand sidecars.
//!
//! Each member does what a sidecar does for a post (transport-pss.md §2, chat-index.md
//! §2, inbox.md §6): upload the sealed envelope, append it to its inbox page and publish
//! the page as its feed's next update, publish the bundle of a page that filled, and (when
//! the crowd writes the index) append an index entry (read back once, not again 3 s
//! later: tests let it write while no sidecar posts). It announces itself with a version-1 roster entry, and a version-2 one when it writes the
//! index. Hostile members use [`Crowd::write_index_slot`] to put anything anywhere.

use staples_bridge::swarm::bee::{BeeOptions, BeeSwarm};
use staples_bridge::swarm::{Swarm, SwarmError};
use staples_protocol::chat::keys::{self, Chat};
use staples_protocol::chat::roster::FEATURE_CHAT_INDEX;
use staples_protocol::chat::{IndexEntry, RosterEntry, seal};
use staples_protocol::crypto::PrivateKey;
use staples_protocol::dag::{self, ChatId, Draft, MessageId};
use staples_protocol::inbox::{Entry, InboxWriter, MAX_ENTRIES, bundle};
use staples_protocol::swarm::feed::{self, FeedTopic};
use staples_protocol::swarm::soc::SingleOwnerChunk;
use staples_protocol::swarm::{Cac, ChunkAddress};
use staples_protocol::whisper::{self, Recipient, SymKey, Topic};

/// One writer of the crowd.
pub struct Member {
    /// Its node key (owner of its inbox feed, author of its messages).
    pub key: PrivateKey,
    writer: InboxWriter,
    clock: u64,
    last: Option<MessageId>,
    /// The sealed messages of its current page (for the page's bundle).
    page: Vec<Vec<u8>>,
}

/// Many members of one public chat.
pub struct Crowd {
    bee: BeeSwarm,
    chat: Chat,
    id: ChatId,
    sym: SymKey,
    topic: Topic,
    page_key: [u8; 32],
    /// The members, in joining order.
    pub members: Vec<Member>,
    /// Whether members write the chat index (and version-2 roster entries).
    pub writes_index: bool,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Which shared feed of the chat.
#[derive(Clone, Copy, Debug)]
pub enum Shared {
    /// The rendezvous roster.
    Roster,
    /// The chat index.
    Index,
}

impl Crowd {
    /// A crowd writing through the Bee API at `bee_url` into public chat `name` (Status's
    /// public chat: key from the name as password, topic from the name).
    pub fn new(bee_url: &str, name: &str, writes_index: bool) -> Result<Crowd, SwarmError> {
        let sym = SymKey::from_password(name);
        let topic = Topic::from_name(name);
        let chat = Chat::Symmetric {
            key: *sym.as_bytes(),
            topic: topic.0,
        };
        Ok(Crowd {
            bee: BeeSwarm::new(bee_url, BeeOptions::default())?,
            id: chat.id(),
            page_key: keys::symmetric_page_key(sym.as_bytes(), &topic.0),
            chat,
            sym,
            topic,
            members: Vec::new(),
            writes_index,
        })
    }

    /// The chat id.
    pub fn chat_id(&self) -> ChatId {
        self.id
    }

    fn shared(&self, which: Shared) -> (PrivateKey, FeedTopic) {
        let topic = match which {
            Shared::Roster => keys::rendezvous_topic(),
            Shared::Index => keys::index_topic(),
        };
        (self.chat.rendezvous_key(), topic)
    }

    /// Writes `payload` at slot `at` of a shared feed, or at its first free slot (reading
    /// it back and moving on when a racing writer won it, as a sidecar does); returns the
    /// slot. Writing at a taken slot replaces what is there (as a hostile member may).
    pub async fn write_shared(
        &self,
        which: Shared,
        at: Option<u64>,
        payload: &[u8],
    ) -> Result<u64, SwarmError> {
        let (key, topic) = self.shared(which);
        let owner = key.public_key().eth_address();
        let mut slot = match at {
            Some(s) => s,
            None => self
                .bee
                .feed_latest_index(&owner, &topic, None)
                .await?
                .map_or(0, |i| i + 1),
        };
        let cac = Cac::new(payload).map_err(|e| SwarmError::Invalid(e.to_string()))?;
        loop {
            let address = feed::update_address(&owner, &topic, slot);
            if at.is_none() && self.bee.download_soc(&address).await.is_ok() {
                slot += 1;
                continue;
            }
            let soc = SingleOwnerChunk::sign(&key, feed::identifier(&topic, slot), cac.clone());
            self.bee.upload_soc(&soc).await?;
            if at.is_some() {
                return Ok(slot);
            }
            match self.bee.download_soc(&address).await {
                Ok(back) if back.wrapped().payload() == payload => return Ok(slot),
                _ => slot += 1,
            }
        }
    }

    /// Bee's newest slot of a shared feed.
    pub async fn latest(&self, which: Shared) -> Result<Option<u64>, SwarmError> {
        let (key, topic) = self.shared(which);
        self.bee
            .feed_latest_index(&key.public_key().eth_address(), &topic, None)
            .await
    }

    /// Seals `plain` with the chat's page key.
    pub fn seal(&self, plain: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; 12];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut nonce);
        seal::seal(&self.page_key, &nonce, plain)
    }

    /// Adds `n` members, each announcing itself in the roster (version 1, and version 2
    /// when the crowd writes the index).
    pub async fn join(&mut self, n: usize) -> Result<(), SwarmError> {
        for _ in 0..n {
            let key = PrivateKey::random(&mut rand::rngs::OsRng);
            let mut overlay = [0u8; 32];
            rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut overlay);
            let features: &[u8] = if self.writes_index {
                &[0, FEATURE_CHAT_INDEX]
            } else {
                &[0]
            };
            for &features in features {
                let entry = RosterEntry {
                    topic: self.topic.0,
                    node_key: key.public_key(),
                    overlay,
                    pss_key: PrivateKey::random(&mut rand::rngs::OsRng).public_key(),
                    timestamp_ms: now_ms(),
                    features,
                }
                .sign(&self.id, &key);
                self.write_shared(Shared::Roster, None, &self.seal(&entry))
                    .await?;
            }
            self.members.push(Member {
                key,
                writer: InboxWriter::new(self.id),
                clock: 0,
                last: None,
                page: Vec::new(),
            });
        }
        Ok(())
    }

    /// Member `i` posts `text`: envelope, inbox page, and (when the crowd writes it) an
    /// index entry, unless `announce` is false (a member withholding its entries).
    pub async fn post(
        &mut self,
        i: usize,
        text: &str,
        announce: bool,
    ) -> Result<MessageId, SwarmError> {
        let invalid = |e: &dyn std::fmt::Display| SwarmError::Invalid(e.to_string());
        let (envelope, id, clock) = {
            let m = &mut self.members[i];
            let now = now_ms();
            m.clock = (m.clock + 1).max(now);
            let message = Draft {
                chat_id: self.id,
                clock: m.clock,
                timestamp: now,
                parents: m.last.into_iter().collect(),
                ephemeral: false,
                body: text.as_bytes().to_vec(),
            }
            .sign(&m.key)
            .map_err(|e| invalid(&e))?;
            let padding = dag::encode_padding(
                message.header(),
                dag::Align::Geth {
                    payload_len: text.len(),
                    signed: false,
                },
            );
            let draft = whisper::Draft {
                topic: self.topic,
                payload: text.as_bytes(),
                padding: Some(&padding),
                signer: None,
                ttl: 600,
                to: Recipient::Symmetric(&self.sym),
            };
            let env = whisper::wrap(&draft, (now / 1000) as u32, &mut rand::rngs::OsRng)
                .map_err(|e| invalid(&e))?;
            (env.encode(), message.id(), m.clock)
        };
        let reference = *self.bee.upload_bytes(&envelope).await?.as_bytes();
        let page = self.members[i]
            .writer
            .append(Entry {
                message_id: id,
                reference,
                clock,
            })
            .map_err(|e| invalid(&e))?;
        let cac = Cac::new(&self.seal(&page.encode())).map_err(|e| invalid(&e))?;
        let soc = SingleOwnerChunk::sign(
            &self.members[i].key,
            feed::identifier(&keys::inbox_topic(&self.id), page.index()),
            cac,
        );
        let address: ChunkAddress = *soc.address();
        self.bee.upload_soc(&soc).await?;
        let m = &mut self.members[i];
        m.writer
            .confirm(page.index(), *address.as_bytes())
            .map_err(|e| invalid(&e))?;
        m.last = Some(id);
        if page.entries().len() == 1 {
            m.page.clear();
        }
        m.page.push(envelope);
        if page.entries().len() == MAX_ENTRIES {
            // A full page: its messages in one object, as a sidecar publishes them.
            let bytes = bundle::encode(&m.page).ok_or_else(|| invalid(&"bundle too large"))?;
            let key = m.key.clone();
            let reference = self.bee.upload_bytes(&bytes).await?;
            let cac = Cac::new(reference.as_bytes()).map_err(|e| invalid(&e))?;
            let id = feed::identifier(&keys::bundle_topic(&self.id), page.first_index());
            self.bee
                .upload_soc(&SingleOwnerChunk::sign(&key, id, cac))
                .await?;
        }
        if self.writes_index && announce {
            let entry = self.index_entry(i, page.index());
            self.write_shared(Shared::Index, None, &self.seal(&entry))
                .await?;
        }
        Ok(id)
    }

    /// Replaces member `i`'s bundle of the page starting at inbox index `first` with one
    /// holding `messages` (what a hostile writer, or a broken one, could publish).
    pub async fn forge_bundle(
        &self,
        i: usize,
        first: u64,
        messages: &[Vec<u8>],
    ) -> Result<(), SwarmError> {
        let bytes =
            bundle::encode(messages).ok_or_else(|| SwarmError::Invalid("too large".into()))?;
        let reference = self.bee.upload_bytes(&bytes).await?;
        let cac = Cac::new(reference.as_bytes()).map_err(|e| SwarmError::Invalid(e.to_string()))?;
        let id = feed::identifier(&keys::bundle_topic(&self.id), first);
        self.bee
            .upload_soc(&SingleOwnerChunk::sign(&self.members[i].key, id, cac))
            .await
    }

    /// Member `i`'s signed (unsealed) index entry for its inbox update `inbox_index`.
    pub fn index_entry(&self, i: usize, inbox_index: u64) -> Vec<u8> {
        let m = &self.members[i];
        IndexEntry {
            node_key: m.key.public_key(),
            inbox_index,
            timestamp_ms: now_ms(),
        }
        .sign(&self.id, &m.key)
    }
}
