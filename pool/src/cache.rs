//! The compile cache's keys, and the shared compile cache: compiled Go and C# programs,
//! filed by the gateway, mounted read-only into every runtime container at
//! [`SHARED_CACHE_MOUNT`].
//!
//! **Keys.** An artifact's key is an HMAC, under a secret only the gateway holds, of the
//! tenant, the language, the toolchain, the translator and the source ([`ArtifactKeys`]).
//! The gateway sends it with the program; the agent looks the program up under it, in its
//! own cache and here. A plain content hash would be an existence oracle: `cacheHit`, the
//! compile time or a `stat` of the file would tell any tenant whether *anyone* had compiled
//! an exact source (a low-entropy secret in a known template could be brute-forced). Keyed
//! by tenant, a program is reused within its tenant only, and no tenant can compute, or
//! test for, another's key.
//!
//! **Filing.** Containers never write here. When an agent compiles a program it sends the
//! artifact back once (base64, on the reply); the gateway files it under the key *it*
//! computed from the tenant, the source it sent and the container's toolchain, so a
//! container cannot place a binary under another program's key.
//!
//! **Layout.** `<dir>/secret` holds the key (0600, never mounted), so artifacts survive a
//! restart; `<dir>/artifacts` is the mounted directory, mode 0711: user code can open an
//! artifact whose key it knows but cannot list the others.
//!
//! **Bounds.** The oldest artifacts are evicted first, except those in use: a call or a
//! batch lease pins the key of the program it runs ([`SharedCache::pin`]) for as long as
//! it may run it, so eviction never pulls a binary from under a prepared program. When
//! everything is pinned, a new artifact is not filed (the bound is hard).

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use codebeaker_proto::{artifact_file, Language};
use hmac::{KeyInit, Mac};
use std::collections::{HashMap, HashSet, VecDeque};
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The gateway's secret for artifact keys.
pub struct ArtifactKeys {
    secret: [u8; 32],
}

impl ArtifactKeys {
    /// A fresh secret (no shared cache: the keys need not outlive the process).
    pub fn random() -> io::Result<ArtifactKeys> {
        let mut secret = [0u8; 32];
        fs::File::open("/dev/urandom")?.read_exact(&mut secret)?;
        Ok(ArtifactKeys { secret })
    }

    /// The secret in `path`, created (0600) if there is none.
    fn load_or_create(path: &Path) -> io::Result<ArtifactKeys> {
        match fs::read(path) {
            Ok(bytes) => {
                let secret = bytes.try_into().map_err(|_| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("{} is not a 32-byte key", path.display()),
                    )
                })?;
                return Ok(ArtifactKeys { secret });
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let keys = ArtifactKeys::random()?;
        let tmp = path.with_extension(format!("{}", uuid::Uuid::new_v4().simple()));
        {
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(&keys.secret)?;
            f.sync_data()?;
        }
        // Two gateways starting on one directory: the first secret wins for both.
        match fs::hard_link(&tmp, path) {
            Ok(()) => {
                let _ = fs::remove_file(&tmp);
                Ok(keys)
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let _ = fs::remove_file(&tmp);
                ArtifactKeys::load_or_create(path)
            }
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                Err(e)
            }
        }
    }

    /// The key of `source` compiled by `toolchain` for `tenant`: 64 hex digits.
    pub fn key(
        &self,
        tenant: &str,
        language: &Language,
        translator: &str,
        toolchain: &str,
        source: &str,
        files: &[codebeaker_proto::ProgramFile],
    ) -> String {
        use std::fmt::Write as _;
        let Ok(mut mac) = hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.secret) else {
            unreachable!("HMAC takes a key of any length");
        };
        // Length-prefixed: no two different tuples hash the same bytes.
        for part in [
            b"codebeaker-artifact-1".as_slice(),
            tenant.as_bytes(),
            language.name().as_bytes(),
            toolchain.as_bytes(),
            translator.as_bytes(),
            source.as_bytes(),
        ] {
            mac.update(&(part.len() as u64).to_le_bytes());
            mac.update(part);
        }
        // The files written beside the program reach its compiler (a header, a module):
        // they are part of what was compiled. None: the key of the source alone.
        for f in files {
            for part in [
                f.path.as_bytes(),
                f.content.as_bytes(),
                encoding_tag(f.encoding),
            ] {
                mac.update(&(part.len() as u64).to_le_bytes());
                mac.update(part);
            }
        }
        mac.finalize()
            .into_bytes()
            .iter()
            .fold(String::with_capacity(64), |mut s, b| {
                let _ = write!(s, "{b:02x}");
                s
            })
    }
}

fn encoding_tag(e: codebeaker_proto::Encoding) -> &'static [u8] {
    match e {
        codebeaker_proto::Encoding::Utf8 => b"utf8",
        codebeaker_proto::Encoding::Base64 => b"base64",
    }
}

/// The host directory and its books.
pub struct SharedCache {
    /// The mounted directory (`<root>/artifacts`).
    dir: PathBuf,
    keys: Arc<ArtifactKeys>,
    max_bytes: u64,
    index: Mutex<Index>,
}

#[derive(Default)]
struct Index {
    /// Filed artifacts, oldest first.
    entries: VecDeque<(String, u64)>,
    /// Bytes filed, and reserved by the inserts under way.
    total: u64,
    /// Names being written now: a second insert of one of them is a no-op.
    pending: HashSet<String>,
    /// Names in use (pinned), with their pin counts.
    pins: HashMap<String, usize>,
}

impl Index {
    fn holds(&self, name: &str) -> bool {
        self.pending.contains(name) || self.entries.iter().any(|(n, _)| n == name)
    }
}

/// Keeps an artifact from eviction while alive (see [`SharedCache::pin`]).
pub struct Pin {
    cache: Arc<SharedCache>,
    name: String,
}

impl Drop for Pin {
    fn drop(&mut self) {
        let mut index = self.cache.lock();
        if let Some(n) = index.pins.get_mut(&self.name) {
            *n -= 1;
            if *n == 0 {
                index.pins.remove(&self.name);
            }
        }
    }
}

impl SharedCache {
    /// Opens (creating) the cache directory, with what earlier runs left in it.
    pub fn open(root: &Path, max_bytes: u64) -> io::Result<SharedCache> {
        fs::create_dir_all(root)?;
        // Canonical: Docker bind-mounts it by this path.
        let root = &fs::canonicalize(root)?;
        fs::set_permissions(root, fs::Permissions::from_mode(0o711))?;
        let keys = ArtifactKeys::load_or_create(&root.join("secret"))?;
        // Artifacts of the earlier layout (unkeyed, in the root itself): unreachable now.
        for entry in fs::read_dir(root)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.metadata()?.is_file() && is_artifact_name(&name) {
                let _ = fs::remove_file(entry.path());
            }
        }
        let dir = root.join("artifacts");
        fs::create_dir_all(&dir)?;
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o711))?;
        let mut found = Vec::new();
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let meta = entry.metadata()?;
            if name.starts_with('.') {
                // A write that never finished (the gateway died mid-file).
                let _ = fs::remove_file(entry.path());
                continue;
            }
            if meta.is_file() {
                found.push((meta.modified().ok(), name, meta.len()));
            }
        }
        found.sort();
        let mut index = Index::default();
        for (_, name, len) in found {
            index.total += len;
            index.entries.push_back((name, len));
        }
        let cache = SharedCache {
            dir,
            keys: Arc::new(keys),
            max_bytes,
            index: Mutex::new(index),
        };
        let _ = cache.make_room(&mut cache.lock(), 0);
        Ok(cache)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The host directory (bind-mounted read-only into containers).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The keys artifacts are filed under (persisted with the cache).
    pub fn keys(&self) -> Arc<ArtifactKeys> {
        self.keys.clone()
    }

    /// Keeps the artifact `key` (its file keeps the recipe's `extension`) from eviction until the pin is dropped,
    /// whether it is filed already or will be. Taken by whoever may run it from the
    /// cache: a call for its duration, a batch lease for as long as it is prepared.
    pub fn pin(self: &Arc<Self>, extension: &str, key: &str) -> Pin {
        let name = artifact_file(key, extension);
        *self.lock().pins.entry(name.clone()).or_default() += 1;
        Pin {
            cache: self.clone(),
            name,
        }
    }

    /// Files the artifact an agent sent for the program whose key (see [`ArtifactKeys`])
    /// is `key`.
    pub fn insert(&self, extension: &str, key: &str, artifact_b64: &str) -> io::Result<()> {
        if !is_artifact_name(key) {
            return Err(io::Error::other("not an artifact key"));
        }
        let name = artifact_file(key, extension);
        let bytes = BASE64
            .decode(artifact_b64)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        let len = bytes.len() as u64;
        if len > self.max_bytes {
            return Err(io::Error::other(format!(
                "a {len} byte artifact does not fit a {} byte cache",
                self.max_bytes
            )));
        }
        {
            // Checked and reserved under one lock: two inserts of one key (two containers
            // that compiled the same program) file and count it once.
            let mut index = self.lock();
            if index.holds(&name) {
                return Ok(());
            }
            self.make_room(&mut index, len)?;
            index.total += len;
            index.pending.insert(name.clone());
        }
        let written = self.write(&name, &bytes);
        let mut index = self.lock();
        index.pending.remove(&name);
        match written {
            Ok(()) => {
                index.entries.push_back((name, len));
                Ok(())
            }
            Err(e) => {
                index.total -= len;
                Err(e)
            }
        }
    }

    /// Written under a dot-name and renamed: a container sees the whole file or none.
    fn write(&self, name: &str, bytes: &[u8]) -> io::Result<()> {
        let tmp = self
            .dir
            .join(format!(".{name}.{}", uuid::Uuid::new_v4().simple()));
        let written = (|| {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(bytes)?;
            f.set_permissions(fs::Permissions::from_mode(0o755))?;
            f.sync_data()?;
            fs::rename(&tmp, self.dir.join(name))
        })();
        if written.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        written
    }

    /// Removes the oldest unpinned artifacts until `incoming` more bytes fit; an error
    /// when they cannot (everything left is in use).
    fn make_room(&self, index: &mut Index, incoming: u64) -> io::Result<()> {
        let mut i = 0;
        while index.total + incoming > self.max_bytes {
            let Some((name, _)) = index.entries.get(i) else {
                return Err(io::Error::other(
                    "the compile cache is full of artifacts in use",
                ));
            };
            if index.pins.contains_key(name) {
                i += 1;
                continue;
            }
            let Some((name, len)) = index.entries.remove(i) else {
                break;
            };
            index.total -= len;
            if let Err(e) = fs::remove_file(self.dir.join(&name)) {
                if e.kind() != io::ErrorKind::NotFound {
                    tracing::warn!(artifact = %name, error = %e, "cannot evict from the compile cache");
                }
            }
            tracing::debug!(artifact = %name, "evicted from the compile cache");
        }
        Ok(())
    }

    /// Bytes held.
    pub fn size(&self) -> u64 {
        self.lock().total
    }
}

/// A key (64 hex digits), or a C# artifact's file name (the key and `.exe`).
fn is_artifact_name(name: &str) -> bool {
    let key = name.strip_suffix(".exe").unwrap_or(name);
    key.len() == 64 && key.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp() -> PathBuf {
        std::env::temp_dir().join(format!("cb-cache-{}", uuid::Uuid::new_v4()))
    }

    #[test]
    fn files_under_its_own_key_and_evicts_the_oldest() {
        let root = temp();
        let cache = SharedCache::open(&root, 10).unwrap();
        let dir = root.join("artifacts");
        let keys = cache.keys();
        let a = keys.key("t", &Language::Go, "", "go1", "package a", &[]);
        cache.insert("", &a, &BASE64.encode(b"AAAAAA")).unwrap();
        assert_eq!(fs::read(dir.join(&a)).unwrap(), b"AAAAAA");
        for d in [&root, &dir] {
            let mode = fs::metadata(d).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o711, "listing is not allowed");
        }
        let b = keys.key(
            "t",
            &Language::CSharp,
            "cs-toplevel-1",
            "mono",
            "class B {}",
            &[],
        );
        cache.insert(".exe", &b, &BASE64.encode(b"BBBBBB")).unwrap();
        assert!(dir.join(format!("{b}.exe")).is_file());
        assert!(!dir.join(&a).exists(), "the oldest went to make room");
        assert_eq!(cache.size(), 6);
        let big = keys.key("t", &Language::Go, "", "go1", "big", &[]);
        assert!(cache.insert("", &big, &BASE64.encode([0u8; 11])).is_err());
        assert!(cache.insert("", "../escape", &BASE64.encode(b"x")).is_err());
        drop(cache);
        let reopened = SharedCache::open(&root, 10).unwrap();
        assert_eq!(reopened.size(), 6, "books rebuilt from the directory");
        assert_eq!(
            reopened.keys().key(
                "t",
                &Language::CSharp,
                "cs-toplevel-1",
                "mono",
                "class B {}",
                &[]
            ),
            b,
            "the secret survives a restart, and with it the artifacts"
        );
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn keys_are_per_tenant_and_secret() {
        let root = temp();
        let cache = SharedCache::open(&root, 10).unwrap();
        let keys = cache.keys();
        let a = keys.key("a", &Language::Go, "", "go1", "package main", &[]);
        assert_eq!(a.len(), 64);
        assert_eq!(
            a,
            keys.key("a", &Language::Go, "", "go1", "package main", &[])
        );
        assert_ne!(
            a,
            keys.key("b", &Language::Go, "", "go1", "package main", &[])
        );
        assert_ne!(
            a,
            keys.key("a", &Language::Go, "", "go2", "package main", &[])
        );
        // Not the public content hash: without the secret no one can compute it.
        assert_ne!(
            a,
            codebeaker_proto::artifact_key(&Language::Go, "", "go1", b"package main")
        );
        let other = ArtifactKeys::random().unwrap();
        assert_ne!(
            a,
            other.key("a", &Language::Go, "", "go1", "package main", &[])
        );
        // Length-prefixed parts: moving bytes from one part to the next changes the key.
        assert_ne!(
            keys.key("ab", &Language::Go, "", "c", "d", &[]),
            keys.key("a", &Language::Go, "", "bc", "d", &[])
        );
        // The secret is outside the mounted directory, and only the gateway reads it.
        let secret = root.join("secret");
        assert_eq!(fs::metadata(&secret).unwrap().len(), 32);
        assert_eq!(
            fs::metadata(&secret).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(!cache.dir().join("secret").exists());
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn concurrent_inserts_of_one_key_count_once() {
        let root = temp();
        let cache = Arc::new(SharedCache::open(&root, 1 << 20).unwrap());
        let key = cache
            .keys()
            .key("t", &Language::Go, "", "go1", "package main", &[]);
        let data = BASE64.encode([7u8; 4096]);
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (cache, key, data) = (cache.clone(), key.clone(), data.clone());
                std::thread::spawn(move || {
                    for _ in 0..20 {
                        cache.insert("", &key, &data).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(cache.size(), 4096, "one artifact, counted once");
        assert_eq!(cache.lock().entries.len(), 1);
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_pinned_artifact_is_not_evicted() {
        let root = temp();
        let cache = Arc::new(SharedCache::open(&root, 10).unwrap());
        let keys = cache.keys();
        let [a, b, c, d] =
            ["a", "b", "c", "d"].map(|s| keys.key("t", &Language::Go, "", "go1", s, &[]));
        // A lease prepared `a` (it pins it before the artifact is even filed).
        let pin = cache.pin("", &a);
        cache.insert("", &a, &BASE64.encode(b"AAAA")).unwrap();
        cache.insert("", &b, &BASE64.encode(b"BBBB")).unwrap();
        cache.insert("", &c, &BASE64.encode(b"CCCC")).unwrap();
        assert!(cache.dir().join(&a).is_file(), "pinned: kept");
        assert!(!cache.dir().join(&b).exists(), "the oldest unpinned went");
        assert_eq!(cache.size(), 8);
        // Everything pinned: a new artifact is not filed, the bound holds.
        let pin_c = cache.pin("", &c);
        assert!(cache.insert("", &d, &BASE64.encode(b"DDDD")).is_err());
        assert_eq!(cache.size(), 8);
        drop((pin, pin_c));
        cache.insert("", &d, &BASE64.encode(b"DDDD")).unwrap();
        assert!(!cache.dir().join(&a).exists(), "unpinned, the oldest goes");
        assert_eq!(cache.size(), 8);
        assert!(cache.lock().pins.is_empty());
        fs::remove_dir_all(&root).unwrap();
    }
}
