//! API keys: generation, the keys file, verification and hot reload.
//!
//! A key looks like `cb_<id>_<secret>`: the id is visible (it names the key in logs and
//! metrics), the secret is 32 random bytes. Only `sha256(secret)` is stored; comparison is
//! constant-time. Keys are high-entropy, so a fast hash is enough (no password hashing).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};
use subtle::ConstantTimeEq;

use super::AuthFailure;
use crate::domain::{Principal, Quota, Scope, Via};

/// One key as stored in the keys file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyRecord {
    pub id: String,
    #[serde(default)]
    pub name: String,
    pub tenant: String,
    /// `sha256:<hex>` of the secret part.
    pub hash: String,
    pub scopes: Vec<Scope>,
    /// The key's quota (named `limits` in the keys file).
    #[serde(default)]
    pub limits: Quota,
    #[serde(default)]
    pub created_at: String,
    #[serde(default)]
    pub revoked: bool,
    /// The key's webhook signing secret (`whsec_<hex>`): callbacks of this key's async
    /// executions are signed with it. Created with the key; absent in older records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_secret: Option<String>,
}

/// The keys file: `[[keys]]` records.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct KeysFile {
    #[serde(default)]
    pub keys: Vec<KeyRecord>,
}

struct Entry {
    hash: [u8; 32],
    revoked: bool,
    webhook_secret: Option<String>,
    /// Shared, so a request costs a reference count, not a copy of the record.
    principal: Arc<Principal>,
}

/// The loaded keys, swapped whole on reload so readers never see a half-read file.
pub struct KeyStore {
    path: Option<PathBuf>,
    current: RwLock<Arc<HashMap<String, Entry>>>,
    loaded_mtime: RwLock<Option<SystemTime>>,
}

fn hash_secret(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Splits `cb_<id>_<secret>`. The secret may itself contain `_` (base64url).
fn parse_key(key: &str) -> Option<(&str, &str)> {
    let rest = key.strip_prefix("cb_")?;
    let (id, secret) = rest.split_once('_')?;
    (!id.is_empty() && secret.len() >= 16).then_some((id, secret))
}

/// The id of a well-formed key (`cb_<id>_<secret>`), for logs.
pub fn key_id(key: &str) -> Option<&str> {
    parse_key(key).map(|(id, _)| id)
}

/// Why the keys file could not be read, parsed or written.
#[derive(Debug, thiserror::Error)]
pub enum KeysFileError {
    #[error("keys file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("keys file {path}: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: toml::de::Error,
    },
    #[error("keys file: key {id}: {reason}")]
    BadHash { id: String, reason: String },
    #[error("keys file: {0}")]
    Encode(#[from] toml::ser::Error),
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> KeysFileError + '_ {
    move |source| KeysFileError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl KeyStore {
    /// Loads `path` (a missing file means "no keys yet").
    pub fn load(path: Option<PathBuf>) -> Result<KeyStore, KeysFileError> {
        let store = KeyStore {
            path,
            current: RwLock::new(Arc::new(HashMap::new())),
            loaded_mtime: RwLock::new(None),
        };
        store.reload()?;
        Ok(store)
    }

    /// Re-reads the keys file. On error the previous keys stay in force.
    pub fn reload(&self) -> Result<usize, KeysFileError> {
        let Some(path) = &self.path else { return Ok(0) };
        let mtime = std::fs::metadata(path).and_then(|m| m.modified()).ok();
        let file = match std::fs::read_to_string(path) {
            Ok(text) => {
                toml::from_str::<KeysFile>(&text).map_err(|source| KeysFileError::Parse {
                    path: path.clone(),
                    source,
                })?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => KeysFile::default(),
            Err(e) => return Err(io_error(path)(e)),
        };
        let mut map = HashMap::new();
        for k in file.keys {
            let hex_hash =
                k.hash
                    .strip_prefix("sha256:")
                    .ok_or_else(|| KeysFileError::BadHash {
                        id: k.id.clone(),
                        reason: "the hash must start with sha256:".into(),
                    })?;
            let mut hash = [0u8; 32];
            hex::decode_to_slice(hex_hash, &mut hash).map_err(|e| KeysFileError::BadHash {
                id: k.id.clone(),
                reason: e.to_string(),
            })?;
            map.insert(
                k.id.clone(),
                Entry {
                    hash,
                    webhook_secret: k.webhook_secret.clone(),
                    revoked: k.revoked,
                    principal: Arc::new(Principal {
                        subject: format!("key:{}", k.id),
                        tenant: k.tenant,
                        scopes: k.scopes,
                        quota: k.limits,
                        via: Via::ApiKey,
                    }),
                },
            );
        }
        let n = map.len();
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(map);
        *self.loaded_mtime.write().unwrap_or_else(|p| p.into_inner()) = mtime;
        Ok(n)
    }

    /// Reloads if the file's modification time changed since the last load.
    pub fn reload_if_changed(&self) {
        let Some(path) = &self.path else { return };
        let mtime = std::fs::metadata(path).and_then(|m| m.modified()).ok();
        if mtime != *self.loaded_mtime.read().unwrap_or_else(|p| p.into_inner()) {
            match self.reload() {
                Ok(n) => tracing::info!(keys = n, "keys file reloaded"),
                Err(e) => {
                    tracing::error!(error = %e, "keys file reload failed; keeping the previous keys")
                }
            }
        }
    }

    /// The principal of a presented key, compared in constant time; revoked keys are refused.
    /// The webhook signing secret of the key with this id (not revoked), if it has one.
    pub fn webhook_secret(&self, id: &str) -> Option<String> {
        let keys = self
            .current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        keys.get(id)
            .filter(|e| !e.revoked)
            .and_then(|e| e.webhook_secret.clone())
    }

    /// The principal of a presented key, compared in constant time; revoked keys are refused.
    pub fn verify(&self, presented: &str) -> Result<Arc<Principal>, AuthFailure> {
        let (id, secret) = parse_key(presented).ok_or(AuthFailure::MalformedKey)?;
        let keys = self
            .current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let presented_hash = hash_secret(secret);
        let Some(entry) = keys.get(id) else {
            return Err(AuthFailure::WrongKey);
        };
        if !bool::from(entry.hash.ct_eq(&presented_hash)) {
            return Err(AuthFailure::WrongKey);
        }
        if entry.revoked {
            return Err(AuthFailure::Revoked);
        }
        Ok(entry.principal.clone())
    }
}

/// Creates a key: returns the full secret key (shown once) and the record to store.
pub fn generate(
    name: &str,
    tenant: &str,
    scopes: Vec<Scope>,
    limits: Quota,
) -> (String, KeyRecord) {
    let id_bytes: [u8; 6] = rand::random();
    let secret_bytes: [u8; 32] = rand::random();
    let id = hex::encode(id_bytes);
    let secret = hex::encode(secret_bytes);
    let key = format!("cb_{id}_{secret}");
    let record = KeyRecord {
        id,
        name: name.to_string(),
        tenant: tenant.to_string(),
        hash: format!("sha256:{}", hex::encode(hash_secret(&secret))),
        scopes,
        limits,
        created_at: chrono::Utc::now().to_rfc3339(),
        revoked: false,
        webhook_secret: Some(format!("whsec_{}", hex::encode(rand::random::<[u8; 32]>()))),
    };
    (key, record)
}

/// Reads the keys file; a missing file has no keys.
pub fn read_file(path: &Path) -> Result<KeysFile, KeysFileError> {
    match std::fs::read_to_string(path) {
        Ok(text) => toml::from_str::<KeysFile>(&text).map_err(|source| KeysFileError::Parse {
            path: path.to_path_buf(),
            source,
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(KeysFile::default()),
        Err(e) => Err(io_error(path)(e)),
    }
}

/// Writes the keys file atomically (a temporary file renamed over it), so a gateway that
/// reloads it meanwhile reads the old or the new file, never half of one.
pub fn write_file(path: &Path, file: &KeysFile) -> Result<(), KeysFileError> {
    let text = toml::to_string_pretty(file)?;
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).map_err(io_error(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io_error(path))
}

/// Appends `record` to the keys file (created if missing), rewriting it atomically.
pub fn append_to_file(path: &Path, record: KeyRecord) -> Result<(), KeysFileError> {
    let mut file = read_file(path)?;
    file.keys.push(record);
    write_file(path, &file)
}

/// Why a key of the keys file could not be changed.
#[derive(Debug, thiserror::Error)]
pub enum KeyChangeError {
    #[error(transparent)]
    File(#[from] KeysFileError),
    #[error("no key with id {id:?} in {path}")]
    NotFound { id: String, path: PathBuf },
    #[error("key {0} is revoked; create a new key instead of rotating it")]
    Revoked(String),
}

/// The key id named by `id_or_key`: an id, or a whole `cb_<id>_<secret>` key.
pub fn id_of(id_or_key: &str) -> &str {
    key_id(id_or_key).unwrap_or(id_or_key)
}

/// Changes the record `id` with `change` and writes the file back; returns what `change`
/// returned.
fn change_record<T>(
    path: &Path,
    id: &str,
    change: impl FnOnce(&mut KeyRecord) -> Result<T, KeyChangeError>,
) -> Result<T, KeyChangeError> {
    let mut file = read_file(path)?;
    let record =
        file.keys
            .iter_mut()
            .find(|k| k.id == id)
            .ok_or_else(|| KeyChangeError::NotFound {
                id: id.to_string(),
                path: path.to_path_buf(),
            })?;
    let out = change(record)?;
    write_file(path, &file)?;
    Ok(out)
}

/// Marks key `id` revoked (the gateway refuses it from its next reload). Revoking a
/// revoked key is not an error.
pub fn revoke(path: &Path, id: &str) -> Result<(), KeyChangeError> {
    change_record(path, id, |k| {
        k.revoked = true;
        Ok(())
    })
}

/// Gives key `id` a new secret and returns the new key, `cb_<id>_<secret>` (shown once).
/// Everything else of the record stays (name, tenant, scopes, limits, webhook secret): the
/// old secret stops working at the gateway's next reload.
pub fn rotate(path: &Path, id: &str) -> Result<String, KeyChangeError> {
    change_record(path, id, |k| {
        if k.revoked {
            return Err(KeyChangeError::Revoked(k.id.clone()));
        }
        let secret = hex::encode(rand::random::<[u8; 32]>());
        k.hash = format!("sha256:{}", hex::encode(hash_secret(&secret)));
        Ok(format!("cb_{}_{secret}", k.id))
    })
}

/// Watches the keys file (mtime polling) and SIGHUP until `shutdown`.
pub async fn watch(
    store: Arc<KeyStore>,
    every: Duration,
    shutdown: tokio_util::sync::CancellationToken,
) {
    #[cfg(unix)]
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    loop {
        #[cfg(unix)]
        let hup_recv = async {
            match hup.as_mut() {
                Some(h) => {
                    h.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let hup_recv = std::future::pending::<()>();
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => store.reload_if_changed(),
            _ = hup_recv => {
                match store.reload() {
                    Ok(n) => tracing::info!(keys = n, "keys reloaded on SIGHUP"),
                    Err(e) => tracing::error!(error = %e, "keys reload on SIGHUP failed"),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_verify_and_wrong_or_revoked_ones_do_not() {
        let dir = std::env::temp_dir().join(format!("cb-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("keys.toml");
        let (key, rec) = generate("t", "acme", vec![Scope::Execute], Quota::default());
        let (key2, mut rec2) = generate("t2", "acme", vec![Scope::Execute], Quota::default());
        rec2.revoked = true;
        append_to_file(&path, rec.clone()).unwrap();
        append_to_file(&path, rec2).unwrap();
        assert!(
            !std::fs::read_to_string(&path).unwrap().contains(&key[20..]),
            "secret never stored"
        );
        let store = KeyStore::load(Some(path)).unwrap();
        let p = store.verify(&key).unwrap();
        assert_eq!(p.tenant, "acme");
        assert_eq!(p.subject, format!("key:{}", rec.id));
        let mut wrong = key.clone();
        wrong.pop();
        wrong.push(if key.ends_with('0') { '1' } else { '0' });
        assert!(matches!(store.verify(&wrong), Err(AuthFailure::WrongKey)));
        assert!(matches!(store.verify(&key2), Err(AuthFailure::Revoked)));
        assert!(matches!(
            store.verify("nope"),
            Err(AuthFailure::MalformedKey)
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_changed_file_is_reloaded_and_a_broken_one_keeps_the_old_keys() {
        let dir = std::env::temp_dir().join(format!("cb-keys-reload-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("keys.toml");
        let (first, rec) = generate("a", "t", vec![Scope::Execute], Quota::default());
        append_to_file(&path, rec).unwrap();
        let store = KeyStore::load(Some(path.clone())).unwrap();
        assert!(store.verify(&first).is_ok());
        let (second, rec) = generate("b", "t", vec![Scope::Execute], Quota::default());
        append_to_file(&path, rec).unwrap();
        // What the watcher sees: a newer modification time (set, not waited for).
        let bump = |secs| {
            let f = std::fs::File::options().write(true).open(&path).unwrap();
            f.set_modified(SystemTime::now() + Duration::from_secs(secs))
                .unwrap();
        };
        bump(10);
        store.reload_if_changed();
        assert!(
            store.verify(&second).is_ok(),
            "the new key works after the reload"
        );
        std::fs::write(&path, "not = [valid").unwrap();
        bump(20);
        store.reload_if_changed();
        assert!(
            store.verify(&first).is_ok(),
            "a broken file leaves the keys in force"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn rotate_keeps_the_record_with_a_new_secret_and_revoke_refuses_the_key() {
        let dir = std::env::temp_dir().join(format!("cb-keys-rotate-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("keys.toml");
        let (old, rec) = generate("ci", "acme", vec![Scope::Execute], Quota::default());
        let id = rec.id.clone();
        append_to_file(&path, rec.clone()).unwrap();
        let new = rotate(&path, id_of(&old)).unwrap();
        assert!(new.starts_with(&format!("cb_{id}_")) && new != old);
        let after = &read_file(&path).unwrap().keys[0];
        assert_eq!(
            (&after.name, &after.tenant, &after.webhook_secret),
            (&rec.name, &rec.tenant, &rec.webhook_secret)
        );
        let store = KeyStore::load(Some(path.clone())).unwrap();
        assert!(store.verify(&new).is_ok());
        assert!(matches!(store.verify(&old), Err(AuthFailure::WrongKey)));
        revoke(&path, &id).unwrap();
        store.reload().unwrap();
        assert!(matches!(store.verify(&new), Err(AuthFailure::Revoked)));
        assert!(matches!(
            rotate(&path, &id),
            Err(KeyChangeError::Revoked(_))
        ));
        assert!(matches!(
            revoke(&path, "nope"),
            Err(KeyChangeError::NotFound { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
