//! The on-disk compile cache: compiled components keyed by content and engine.

use std::hash::{Hash, Hasher};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;

use crate::engine::PluginEngine;

/// First bytes of every cache file; the number is the file format version.
const MAGIC: &[u8; 8] = b"TALLYCW1";
/// Domain separation for cache keys; change it when the file format changes.
const KEY_TAG: &[u8] = b"tally-runtime compile cache v1\0";
/// Length of the header: magic plus the SHA-256 of the payload.
const HEADER_LEN: usize = MAGIC.len() + 32;

/// Where the compiled code of a [`LoadedPlugin`](crate::LoadedPlugin) came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    /// No cache directory is configured: compiled.
    Disabled,
    /// Loaded from a valid cache entry: nothing compiled.
    Hit,
    /// No entry: compiled, and the entry written (if the directory was writable).
    Miss,
    /// An entry existed but was corrupt or incompatible: compiled and rewritten.
    Replaced,
}

/// Compiles `bytes` (a component binary), or loads them from the cache.
pub(crate) fn load_or_compile(
    engine: &PluginEngine,
    bytes: &[u8],
) -> wasmtime::Result<(Component, CacheStatus)> {
    let Some(dir) = &engine.config().cache_dir else {
        return Ok((
            Component::from_binary(engine.wasmtime(), bytes)?,
            CacheStatus::Disabled,
        ));
    };
    let path = entry_path(dir, &cache_key(engine, bytes));
    let status = match std::fs::read(&path) {
        Ok(file) => match verified_payload(&file) {
            Some(payload) => {
                // SAFETY: `payload` is the output of `Component::serialize` that
                // this module wrote into the host's own cache directory, under a
                // key that covers the component bytes and this engine's
                // compatibility hash, and its SHA-256 matches the one written
                // beside it, so it is exactly what was written. wasmtime checks
                // the artifact's header and engine compatibility once more and
                // returns an error (handled below) on any mismatch.
                match unsafe { Component::deserialize(engine.wasmtime(), payload) } {
                    Ok(component) => return Ok((component, CacheStatus::Hit)),
                    Err(error) => {
                        tracing::warn!(path = %path.display(), %error, "compile cache entry refused by wasmtime; recompiling");
                        CacheStatus::Replaced
                    }
                }
            }
            None => {
                tracing::warn!(path = %path.display(), "corrupt compile cache entry; recompiling");
                CacheStatus::Replaced
            }
        },
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => CacheStatus::Miss,
        Err(error) => {
            tracing::warn!(path = %path.display(), %error, "cannot read compile cache entry; recompiling");
            CacheStatus::Miss
        }
    };
    let component = Component::from_binary(engine.wasmtime(), bytes)?;
    // The cache is an optimisation: failing to fill it only costs a later compile.
    match component.serialize() {
        Ok(payload) => {
            if let Err(error) = write_entry(&path, &payload) {
                tracing::warn!(path = %path.display(), %error, "cannot write compile cache entry");
            }
        }
        Err(error) => tracing::warn!(%error, "cannot serialize a compiled component"),
    }
    Ok((component, status))
}

/// The cache key: SHA-256 of the format tag, the engine's compatibility hash and
/// the component bytes.
fn cache_key(engine: &PluginEngine, bytes: &[u8]) -> [u8; 32] {
    let mut digest = Sha256::new();
    digest.update(KEY_TAG);
    engine
        .wasmtime()
        .precompile_compatibility_hash()
        .hash(&mut DigestHasher(&mut digest));
    digest.update((bytes.len() as u64).to_le_bytes());
    digest.update(bytes);
    digest.finalize().into()
}

/// Feeds whatever a [`Hash`] implementation writes into a SHA-256, so that the
/// engine's compatibility hash becomes part of a stable, collision-resistant key
/// (std's `DefaultHasher` is neither stable across releases nor wide enough).
struct DigestHasher<'a>(&'a mut Sha256);

impl Hasher for DigestHasher<'_> {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// Unused: the key is the SHA-256, read from the digest itself.
    fn finish(&self) -> u64 {
        0
    }
}

fn entry_path(dir: &Path, key: &[u8; 32]) -> PathBuf {
    let mut name = String::with_capacity(64 + 6);
    for byte in key {
        name.push_str(&format!("{byte:02x}"));
    }
    name.push_str(".cwasm");
    dir.join(name)
}

/// The payload of a cache file if its magic and checksum are right.
fn verified_payload(file: &[u8]) -> Option<&[u8]> {
    if file.len() < HEADER_LEN || &file[..MAGIC.len()] != MAGIC {
        return None;
    }
    let (header, payload) = file.split_at(HEADER_LEN);
    let expected = &header[MAGIC.len()..];
    (Sha256::digest(payload).as_slice() == expected).then_some(payload)
}

/// Writes an entry atomically: a temporary file in the same directory, renamed
/// over the entry, so that a reader never sees a half-written file.
fn write_entry(path: &Path, payload: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.subsec_nanos());
    let temporary = dir.join(format!(
        ".{}.{}.{nanos}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("entry"),
        std::process::id()
    ));
    let result = (|| {
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(MAGIC)?;
        file.write_all(&Sha256::digest(payload))?;
        file.write_all(payload)?;
        drop(file);
        std::fs::rename(&temporary, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payload_is_accepted_only_with_magic_and_matching_checksum() {
        let payload = b"compiled code";
        let mut file = MAGIC.to_vec();
        file.extend_from_slice(&Sha256::digest(payload));
        file.extend_from_slice(payload);
        assert_eq!(verified_payload(&file), Some(&payload[..]));

        let mut flipped = file.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert_eq!(verified_payload(&flipped), None);
        let mut wrong_magic = file.clone();
        wrong_magic[0] = b'X';
        assert_eq!(verified_payload(&wrong_magic), None);
        assert_eq!(verified_payload(&file[..HEADER_LEN - 1]), None);
    }
}
