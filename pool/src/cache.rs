//! The shared compile cache: compiled Go and C# programs, filed by the gateway, mounted
//! read-only into every runtime container at [`SHARED_CACHE_MOUNT`].
//!
//! Containers never write here. When an agent compiles a program it sends the artifact
//! back once (base64, on the reply); the gateway files it under the key *it* computes from
//! the source it sent and the container's toolchain ([`artifact_key`]), so a container
//! cannot place a binary under another program's key. From then on every container of the
//! language finds it before compiling.
//!
//! The directory is mode 0711: user code can open an artifact whose key it knows (the
//! hash of the exact source) but cannot list the others. Its size is bounded: the oldest
//! artifacts are evicted first (a container already running one keeps its open file).

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use codebeaker_proto::{artifact_file, artifact_key, Language};
use std::collections::VecDeque;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The host directory and its books.
pub struct SharedCache {
    dir: PathBuf,
    max_bytes: u64,
    index: Mutex<Index>,
}

#[derive(Default)]
struct Index {
    /// Oldest first.
    entries: VecDeque<(String, u64)>,
    total: u64,
}

impl SharedCache {
    /// Opens (creating) the cache directory, with what earlier runs left in it.
    pub fn open(dir: &Path, max_bytes: u64) -> io::Result<SharedCache> {
        fs::create_dir_all(dir)?;
        // Canonical: Docker bind-mounts it by this path.
        let dir = &fs::canonicalize(dir)?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o711))?;
        let mut found = Vec::new();
        for entry in fs::read_dir(dir)? {
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
            dir: dir.to_path_buf(),
            max_bytes,
            index: Mutex::new(index),
        };
        cache.evict(0);
        Ok(cache)
    }

    /// The host directory (bind-mounted read-only into containers).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Files the artifact an agent sent for `source` (the complete program it was given),
    /// compiled by `toolchain`. Returns the key.
    pub fn insert(
        &self,
        language: Language,
        toolchain: &str,
        source: &str,
        artifact_b64: &str,
    ) -> io::Result<String> {
        let key = artifact_key(language, toolchain, source.as_bytes());
        let name = artifact_file(language, &key);
        let path = self.dir.join(&name);
        if path.is_file() {
            return Ok(key);
        }
        let bytes = BASE64
            .decode(artifact_b64)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        if bytes.len() as u64 > self.max_bytes {
            return Err(io::Error::other(format!(
                "a {} byte artifact does not fit a {} byte cache",
                bytes.len(),
                self.max_bytes
            )));
        }
        self.evict(bytes.len() as u64);
        // Written under a dot-name and renamed: a container sees the whole file or none.
        let tmp = self
            .dir
            .join(format!(".{name}.{}", uuid::Uuid::new_v4().simple()));
        {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.set_permissions(fs::Permissions::from_mode(0o755))?;
            f.sync_data()?;
        }
        fs::rename(&tmp, &path)?;
        let mut index = self.index.lock().unwrap_or_else(|p| p.into_inner());
        index.total += bytes.len() as u64;
        index.entries.push_back((name, bytes.len() as u64));
        Ok(key)
    }

    /// Removes the oldest artifacts until `incoming` more bytes fit.
    fn evict(&self, incoming: u64) {
        let mut index = self.index.lock().unwrap_or_else(|p| p.into_inner());
        while index.total + incoming > self.max_bytes {
            let Some((name, len)) = index.entries.pop_front() else {
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
    }

    /// Bytes held.
    pub fn size(&self) -> u64 {
        self.index.lock().unwrap_or_else(|p| p.into_inner()).total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_under_its_own_key_and_evicts_the_oldest() {
        let dir = std::env::temp_dir().join(format!("cb-cache-{}", uuid::Uuid::new_v4()));
        let cache = SharedCache::open(&dir, 10).unwrap();
        let a = cache
            .insert(Language::Go, "go1", "package a", &BASE64.encode(b"AAAAAA"))
            .unwrap();
        assert_eq!(a, artifact_key(Language::Go, "go1", b"package a"));
        assert_eq!(fs::read(dir.join(&a)).unwrap(), b"AAAAAA");
        let mode = fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o711, "listing is not allowed");
        let b = cache
            .insert(
                Language::CSharp,
                "mono",
                "class B {}",
                &BASE64.encode(b"BBBBBB"),
            )
            .unwrap();
        assert!(dir.join(format!("{b}.exe")).is_file());
        assert!(!dir.join(&a).exists(), "the oldest went to make room");
        assert_eq!(cache.size(), 6);
        assert!(cache
            .insert(Language::Go, "go1", "big", &BASE64.encode([0u8; 11]))
            .is_err());
        drop(cache);
        let reopened = SharedCache::open(&dir, 10).unwrap();
        assert_eq!(reopened.size(), 6, "books rebuilt from the directory");
        fs::remove_dir_all(&dir).unwrap();
    }
}
