//! Keys the app creates through `shh_*`: held in memory, persisted as encrypted key files.
//!
//! Each key pair and each symmetric key is one Web3 Secret Storage v3 file under
//! `<data-dir>/keystore/` (`keypair-<id>.json`, `symkey-<id>.json`): scrypt KDF, AES-128-CTR,
//! MAC = keccak256(dk[16..32] ‖ ciphertext), the format geth's `accounts/keystore` and every
//! Ethereum wallet read. A symmetric key's 32 bytes take the private key's place. The key ids
//! live in the store's index; the files hold the material.
//!
//! scrypt is deliberately slow (the standard cost, N = 2^18, r = 8, p = 1, takes about a
//! second and 256 MiB), so one salt is shared by all files this process writes and each
//! derived key is cached per (salt, parameters): a restart with many keys costs one scrypt,
//! not one per key. Every file still has its own random IV, and guessing the passphrase costs
//! an attacker exactly one scrypt per guess either way. Tests lower the cost with
//! `--keystore-scrypt-log-n`.
//!
//! The passphrase and key bytes never reach a log or an error message; `Debug` is redacted.

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use aes::Aes128;
use ctr::cipher::{KeyIvInit, StreamCipher};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha3::{Digest, Keccak256};
use staples_protocol::crypto::PrivateKey;

use crate::ids::random_id;
use crate::store::{KeyKind, Origin, Store, StoreError};

type Aes128Ctr = ctr::Ctr128BE<Aes128>;

/// scrypt cost parameters for new key files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfParams {
    /// log2(N).
    pub log_n: u8,
    /// Block size.
    pub r: u32,
    /// Parallelism.
    pub p: u32,
}

impl KdfParams {
    /// geth's `StandardScryptN` / `StandardScryptP`.
    pub const STANDARD: KdfParams = KdfParams {
        log_n: 18,
        r: 8,
        p: 1,
    };

    /// Standard r and p with a chosen N (tests use a small one).
    pub fn with_log_n(log_n: u8) -> Self {
        KdfParams {
            log_n,
            ..Self::STANDARD
        }
    }
}

/// The keystore passphrase. Never printed.
#[derive(Clone)]
pub struct Password(Arc<String>);

impl Password {
    /// Wraps a passphrase (a trailing newline from a password file is the caller's to trim).
    pub fn new(p: String) -> Self {
        Password(Arc::new(p))
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// 32 symmetric key bytes as the app gave them (geth accepts any 32 bytes in `addSymKey` and
/// refuses a zero key only when it is used). Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct RawSymKey(pub [u8; 32]);

impl std::fmt::Debug for RawSymKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RawSymKey(<redacted>)")
    }
}

/// Errors from the keystore. None carries a passphrase or key bytes.
#[derive(Debug, thiserror::Error)]
pub enum KeystoreError {
    /// The MAC did not verify.
    #[error("wrong keystore password or corrupted key file {0}")]
    WrongPassword(PathBuf),
    /// A key file is not v3 JSON of a kind we read.
    #[error("malformed key file {file}: {why}")]
    Malformed {
        /// The file.
        file: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// A file could not be read or written.
    #[error("key file {file}: {source}")]
    Io {
        /// The file.
        file: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The key index could not be updated.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A blocking task panicked or was cancelled.
    #[error("keystore task failed")]
    Task,
}

/// What the Whisper service needs from a key store. Reads are synchronous (memory);
/// changes are async because they write files and the index.
pub trait Keys: Send + Sync + 'static {
    /// A key pair by id.
    fn key_pair(&self, id: &str) -> Option<Arc<PrivateKey>>;
    /// A symmetric key by id.
    fn sym_key(&self, id: &str) -> Option<Arc<RawSymKey>>;
    /// Stores a key pair under a fresh id.
    fn add_key_pair(
        &self,
        key: PrivateKey,
    ) -> impl Future<Output = Result<String, KeystoreError>> + Send;
    /// Stores a symmetric key under a fresh id.
    fn add_sym_key(
        &self,
        key: RawSymKey,
    ) -> impl Future<Output = Result<String, KeystoreError>> + Send;
    /// Deletes a key pair; false if unknown.
    fn delete_key_pair(&self, id: &str)
    -> impl Future<Output = Result<bool, KeystoreError>> + Send;
    /// Deletes a symmetric key; false if unknown.
    fn delete_sym_key(&self, id: &str) -> impl Future<Output = Result<bool, KeystoreError>> + Send;
}

/// The key store: in memory, and on disk when a passphrase is given.
pub struct Keystore {
    pairs: RwLock<HashMap<String, Arc<PrivateKey>>>,
    syms: RwLock<HashMap<String, Arc<RawSymKey>>>,
    disk: Option<Arc<Disk>>,
}

struct Disk {
    dir: PathBuf,
    password: Password,
    kdf: KdfParams,
    derived: Mutex<Derived>,
    store: Store,
}

/// Derived keys by (salt, log_n, r, p), and the salt new files use.
#[derive(Default)]
struct Derived {
    cache: HashMap<(Vec<u8>, u8, u32, u32), [u8; 32]>,
    write_salt: Option<[u8; 32]>,
}

impl Keystore {
    /// Keys in memory only, lost at exit (geth's behaviour; used without a passphrase).
    pub fn in_memory() -> Self {
        Keystore {
            pairs: RwLock::default(),
            syms: RwLock::default(),
            disk: None,
        }
    }

    /// Opens the key files listed in the store's index under `dir`.
    pub async fn open(
        dir: PathBuf,
        password: Password,
        kdf: KdfParams,
        store: Store,
    ) -> Result<Self, KeystoreError> {
        let index = store.keys(Origin::Local).await?;
        let disk = Arc::new(Disk {
            dir,
            password,
            kdf,
            derived: Mutex::default(),
            store,
        });
        let d = disk.clone();
        let loaded = tokio::task::spawn_blocking(move || d.load(&index))
            .await
            .map_err(|_| KeystoreError::Task)??;
        let ks = Keystore {
            pairs: RwLock::default(),
            syms: RwLock::default(),
            disk: Some(disk),
        };
        for (id, kind, secret) in loaded {
            match kind {
                KeyKind::KeyPair => match PrivateKey::from_bytes(&secret) {
                    Ok(k) => {
                        write(&ks.pairs).insert(id, Arc::new(k));
                    }
                    Err(_) => {
                        tracing::warn!(key_id = %id, "key file holds an invalid private key; skipped")
                    }
                },
                KeyKind::SymKey => match <[u8; 32]>::try_from(secret.as_slice()) {
                    Ok(b) => {
                        write(&ks.syms).insert(id, Arc::new(RawSymKey(b)));
                    }
                    Err(_) => {
                        tracing::warn!(key_id = %id, "key file holds a key of the wrong size; skipped")
                    }
                },
            }
        }
        Ok(ks)
    }

    /// Number of key pairs and symmetric keys held.
    pub fn counts(&self) -> (usize, usize) {
        (read(&self.pairs).len(), read(&self.syms).len())
    }

    async fn persist(&self, id: &str, kind: KeyKind, secret: Vec<u8>) -> Result<(), KeystoreError> {
        let Some(disk) = &self.disk else {
            return Ok(());
        };
        let d = disk.clone();
        let name = id.to_string();
        tokio::task::spawn_blocking(move || d.write_file(&name, kind, &secret))
            .await
            .map_err(|_| KeystoreError::Task)??;
        disk.store
            .put_key(id.to_string(), kind, Origin::Local)
            .await?;
        Ok(())
    }

    async fn forget(&self, id: &str, kind: KeyKind) -> Result<(), KeystoreError> {
        let Some(disk) = &self.disk else {
            return Ok(());
        };
        disk.store.delete_key(id.to_string()).await?;
        let file = disk.file(id, kind);
        tokio::task::spawn_blocking(move || match std::fs::remove_file(&file) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(KeystoreError::Io { file, source }),
        })
        .await
        .map_err(|_| KeystoreError::Task)?
    }
}

impl Keys for Keystore {
    fn key_pair(&self, id: &str) -> Option<Arc<PrivateKey>> {
        read(&self.pairs).get(id).cloned()
    }

    fn sym_key(&self, id: &str) -> Option<Arc<RawSymKey>> {
        read(&self.syms).get(id).cloned()
    }

    async fn add_key_pair(&self, key: PrivateKey) -> Result<String, KeystoreError> {
        let id = random_id();
        self.persist(&id, KeyKind::KeyPair, key.to_bytes().to_vec())
            .await?;
        write(&self.pairs).insert(id.clone(), Arc::new(key));
        Ok(id)
    }

    async fn add_sym_key(&self, key: RawSymKey) -> Result<String, KeystoreError> {
        let id = random_id();
        self.persist(&id, KeyKind::SymKey, key.0.to_vec()).await?;
        write(&self.syms).insert(id.clone(), Arc::new(key));
        Ok(id)
    }

    async fn delete_key_pair(&self, id: &str) -> Result<bool, KeystoreError> {
        if write(&self.pairs).remove(id).is_none() {
            return Ok(false);
        }
        self.forget(id, KeyKind::KeyPair).await?;
        Ok(true)
    }

    async fn delete_sym_key(&self, id: &str) -> Result<bool, KeystoreError> {
        if write(&self.syms).remove(id).is_none() {
            return Ok(false);
        }
        self.forget(id, KeyKind::SymKey).await?;
        Ok(true)
    }
}

impl Disk {
    fn file(&self, id: &str, kind: KeyKind) -> PathBuf {
        self.dir.join(format!("{}-{id}.json", kind.as_str()))
    }

    fn load(
        &self,
        index: &[(String, KeyKind)],
    ) -> Result<Vec<(String, KeyKind, Vec<u8>)>, KeystoreError> {
        let mut out = Vec::new();
        for (id, kind) in index {
            let file = self.file(id, *kind);
            let text = match std::fs::read_to_string(&file) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    tracing::warn!(key_id = %id, "indexed key file is missing; key skipped");
                    continue;
                }
                Err(source) => return Err(KeystoreError::Io { file, source }),
            };
            let secret = self.decrypt(&text, &file)?;
            out.push((id.clone(), *kind, secret));
        }
        Ok(out)
    }

    fn derive(&self, kdf: &KdfJson, file: &Path) -> Result<[u8; 32], KeystoreError> {
        let malformed = |why: &str| KeystoreError::Malformed {
            file: file.to_path_buf(),
            why: why.into(),
        };
        match kdf {
            KdfJson::Scrypt {
                dklen,
                n,
                r,
                p,
                salt,
            } => {
                if *dklen != 32 || !n.is_power_of_two() || *n < 2 {
                    return Err(malformed("unsupported scrypt parameters"));
                }
                let log_n = n.trailing_zeros() as u8;
                let salt = hex::decode(salt).map_err(|_| malformed("salt is not hex"))?;
                let key = (salt.clone(), log_n, *r, *p);
                let mut d = self.derived.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(dk) = d.cache.get(&key) {
                    return Ok(*dk);
                }
                let dk = scrypt_dk(&self.password, &salt, log_n, *r, *p)
                    .ok_or_else(|| malformed("unsupported scrypt parameters"))?;
                // Reuse a loaded file's salt for new files when it has today's parameters.
                if d.write_salt.is_none()
                    && log_n == self.kdf.log_n
                    && (*r, *p) == (self.kdf.r, self.kdf.p)
                {
                    d.write_salt = salt.as_slice().try_into().ok();
                }
                d.cache.insert(key, dk);
                Ok(dk)
            }
            KdfJson::Pbkdf2 {
                c,
                dklen,
                prf,
                salt,
            } => {
                if *dklen != 32 || prf != "hmac-sha256" {
                    return Err(malformed("unsupported pbkdf2 parameters"));
                }
                let salt = hex::decode(salt).map_err(|_| malformed("salt is not hex"))?;
                let mut dk = [0u8; 32];
                pbkdf2::pbkdf2_hmac::<sha2::Sha256>(self.password.0.as_bytes(), &salt, *c, &mut dk);
                Ok(dk)
            }
        }
    }

    fn decrypt(&self, text: &str, file: &Path) -> Result<Vec<u8>, KeystoreError> {
        let malformed = |why: String| KeystoreError::Malformed {
            file: file.to_path_buf(),
            why,
        };
        let v: KeyFileJson = serde_json::from_str(text).map_err(|e| malformed(e.to_string()))?;
        if v.version != 3 || v.crypto.cipher != "aes-128-ctr" {
            return Err(malformed("not a v3 aes-128-ctr key file".into()));
        }
        let dk = self.derive(&v.crypto.kdfparams, file)?;
        let ct = hex::decode(&v.crypto.ciphertext)
            .map_err(|_| malformed("ciphertext is not hex".into()))?;
        let iv: [u8; 16] = hex::decode(&v.crypto.cipherparams.iv)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| malformed("iv is not 16 hex bytes".into()))?;
        let mac = hex::decode(&v.crypto.mac).map_err(|_| malformed("mac is not hex".into()))?;
        if mac_of(&dk, &ct)[..] != mac[..] {
            return Err(KeystoreError::WrongPassword(file.to_path_buf()));
        }
        let mut secret = ct;
        ctr_apply(&dk, &iv, &mut secret);
        Ok(secret)
    }

    fn write_file(&self, id: &str, kind: KeyKind, secret: &[u8]) -> Result<(), KeystoreError> {
        let file = self.file(id, kind);
        let io = |source| KeystoreError::Io {
            file: file.clone(),
            source,
        };
        let (salt, dk) = {
            let mut d = self.derived.lock().unwrap_or_else(|p| p.into_inner());
            let salt = *d.write_salt.get_or_insert_with(|| {
                let mut s = [0u8; 32];
                rand::rngs::OsRng.fill_bytes(&mut s);
                s
            });
            let key = (salt.to_vec(), self.kdf.log_n, self.kdf.r, self.kdf.p);
            let dk = match d.cache.get(&key) {
                Some(dk) => *dk,
                None => {
                    let dk = scrypt_dk(
                        &self.password,
                        &salt,
                        self.kdf.log_n,
                        self.kdf.r,
                        self.kdf.p,
                    )
                    .ok_or_else(|| KeystoreError::Malformed {
                        file: file.clone(),
                        why: "invalid scrypt parameters".into(),
                    })?;
                    d.cache.insert(key, dk);
                    dk
                }
            };
            (salt, dk)
        };
        let mut iv = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut iv);
        let mut ct = secret.to_vec();
        ctr_apply(&dk, &iv, &mut ct);
        let address = match kind {
            KeyKind::KeyPair => PrivateKey::from_bytes(secret)
                .ok()
                .map(|k| hex::encode(k.public_key().eth_address())),
            KeyKind::SymKey => None,
        };
        let json = KeyFileJson {
            address,
            crypto: CryptoJson {
                cipher: "aes-128-ctr".into(),
                cipherparams: CipherParams {
                    iv: hex::encode(iv),
                },
                ciphertext: hex::encode(&ct),
                kdf: "scrypt".into(),
                kdfparams: KdfJson::Scrypt {
                    dklen: 32,
                    n: 1u32 << self.kdf.log_n,
                    r: self.kdf.r,
                    p: self.kdf.p,
                    salt: hex::encode(salt),
                },
                mac: hex::encode(mac_of(&dk, &ct)),
            },
            id: uuid_v4(),
            version: 3,
            staples: Some(StaplesMeta {
                kind: kind.as_str().into(),
                key_id: id.into(),
            }),
        };
        let text = serde_json::to_vec_pretty(&json).map_err(|e| io(std::io::Error::other(e)))?;
        std::fs::create_dir_all(&self.dir).map_err(io)?;
        write_atomically(&file, &text).map_err(io)
    }
}

fn scrypt_dk(password: &Password, salt: &[u8], log_n: u8, r: u32, p: u32) -> Option<[u8; 32]> {
    // Refuse costs beyond 2^22 so a crafted file cannot make startup allocate gigabytes.
    if log_n > 22 {
        return None;
    }
    let params = scrypt::Params::new(log_n, r, p, 32).ok()?;
    let mut dk = [0u8; 32];
    scrypt::scrypt(password.0.as_bytes(), salt, &params, &mut dk).ok()?;
    Some(dk)
}

fn mac_of(dk: &[u8; 32], ct: &[u8]) -> [u8; 32] {
    let mut h = Keccak256::new();
    h.update(&dk[16..32]);
    h.update(ct);
    h.finalize().into()
}

fn ctr_apply(dk: &[u8; 32], iv: &[u8; 16], data: &mut [u8]) {
    let mut c = Aes128Ctr::new(dk[..16].into(), iv.into());
    c.apply_keystream(data);
}

fn uuid_v4() -> String {
    let mut b = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

fn write_atomically(file: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = file.with_extension("json.tmp");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, file)?;
    if let Some(dir) = file.parent() {
        // Make the rename itself durable.
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
}

#[derive(Serialize, Deserialize)]
struct KeyFileJson {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    address: Option<String>,
    crypto: CryptoJson,
    id: String,
    version: u32,
    #[serde(rename = "x-staples", skip_serializing_if = "Option::is_none", default)]
    staples: Option<StaplesMeta>,
}

#[derive(Serialize, Deserialize)]
struct StaplesMeta {
    kind: String,
    #[serde(rename = "keyID")]
    key_id: String,
}

#[derive(Serialize, Deserialize)]
struct CryptoJson {
    cipher: String,
    cipherparams: CipherParams,
    ciphertext: String,
    kdf: String,
    kdfparams: KdfJson,
    mac: String,
}

#[derive(Serialize, Deserialize)]
struct CipherParams {
    iv: String,
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum KdfJson {
    Scrypt {
        dklen: u32,
        n: u32,
        r: u32,
        p: u32,
        salt: String,
    },
    Pbkdf2 {
        c: u32,
        dklen: u32,
        prf: String,
        salt: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    // The published Web3 Secret Storage v3 PBKDF2 test vector (password "testpassword"). The
    // published scrypt vector uses N = 2^18 with r = 1, outside RFC 7914's bound
    // (N < 2^(16 r)), which the `scrypt` crate rightly refuses; our scrypt files are covered by
    // the round trip below and the crate's own RFC 7914 vectors.
    const SECRET: &str = "7a28b5ba57c53603b0b07b56bba752f7784bf506fa95edc395f5cf6c7514fe9d";
    const PBKDF2_VECTOR: &str = r#"{"crypto":{"cipher":"aes-128-ctr","cipherparams":{"iv":"6087dab2f9fdbbfaddc31a909735c1e6"},"ciphertext":"5318b4d5bcd28de64ee5559e671353e16f075ecae9f99c7a79a38af5f869aa46","kdf":"pbkdf2","kdfparams":{"c":262144,"dklen":32,"prf":"hmac-sha256","salt":"ae3cd4e7013836a3df6bd7241b12db061dbe2c6785853cce422d148a624ce0bd"},"mac":"517ead924a9d0dc3124507e3393d175ce3ff7c1e96529c6c555ce9e51205e9b2"},"id":"3198bc9c-6672-5ab3-d995-4942343ae5b6","version":3}"#;

    fn disk(password: &str, store: Store) -> Disk {
        Disk {
            dir: PathBuf::from("/nonexistent"),
            password: Password::new(password.into()),
            kdf: KdfParams::with_log_n(4),
            derived: Mutex::default(),
            store,
        }
    }

    #[tokio::test]
    async fn published_v3_vectors_decrypt() {
        let d = disk("testpassword", Store::in_memory().expect("store"));
        let f = Path::new("vector.json");
        assert_eq!(
            hex::encode(d.decrypt(PBKDF2_VECTOR, f).expect("pbkdf2")),
            SECRET
        );
        let wrong = disk("nope", Store::in_memory().expect("store"));
        let err = wrong.decrypt(PBKDF2_VECTOR, f).expect_err("wrong password");
        assert!(matches!(err, KeystoreError::WrongPassword(_)));
        assert!(
            !err.to_string().contains("nope"),
            "the password never appears"
        );
    }

    #[tokio::test]
    async fn keys_survive_reopening_and_deletes_stick() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("db.sqlite")).expect("store");
        let kdir = dir.path().join("keystore");
        let pw = Password::new("correct horse".into());
        let ks = Keystore::open(
            kdir.clone(),
            pw.clone(),
            KdfParams::with_log_n(4),
            store.clone(),
        )
        .await
        .expect("opens");
        let pair = PrivateKey::from_bytes(&[7; 32]).expect("valid");
        let pid = ks.add_key_pair(pair.clone()).await.expect("adds");
        let sid = ks.add_sym_key(RawSymKey([9; 32])).await.expect("adds");
        let gone = ks.add_sym_key(RawSymKey([1; 32])).await.expect("adds");
        assert!(ks.delete_sym_key(&gone).await.expect("deletes"));
        assert!(!ks.delete_sym_key(&gone).await.expect("deletes"));
        let text = std::fs::read_to_string(kdir.join(format!("keypair-{pid}.json"))).expect("file");
        assert!(
            !text.contains(&hex::encode([7u8; 32])),
            "key material is encrypted"
        );
        assert!(text.contains("\"version\": 3"));

        let again = Keystore::open(kdir.clone(), pw, KdfParams::with_log_n(4), store.clone())
            .await
            .expect("reopens");
        assert_eq!(again.key_pair(&pid).as_deref(), Some(&pair));
        assert_eq!(again.sym_key(&sid).map(|k| k.0), Some([9; 32]));
        assert!(again.sym_key(&gone).is_none());
        assert_eq!(again.counts(), (1, 1));

        let wrong = Keystore::open(
            kdir,
            Password::new("wrong".into()),
            KdfParams::with_log_n(4),
            store,
        )
        .await;
        assert!(matches!(wrong, Err(KeystoreError::WrongPassword(_))));
    }

    #[test]
    fn debug_output_is_redacted() {
        assert_eq!(
            format!("{:?}", Password::new("s3cret".into())),
            "Password(<redacted>)"
        );
        assert_eq!(format!("{:?}", RawSymKey([1; 32])), "RawSymKey(<redacted>)");
    }
}
