//! Primary-storage backends (ZStack's primary storage types): what a kind of storage checks of
//! its URL and does with the volumes placed on it.
//!
//! A primary storage is served by the first registered backend that [`serves`] its URL, the
//! built-in ones last: `local` (an absolute path or `file:///path` on each host) and `nfs`
//! (`nfs://server/export`, mounted by each host). A URL no backend serves is refused when the
//! storage is created. A backend hears of a volume once its bytes are charged, before any host
//! uses it ([`instantiate_volume`]), and before its row is deleted ([`delete_volume`]): a backend
//! whose volumes are made outside the hosts (an RBD image, a LUN) makes and removes them there.
//! The built-in backends do neither: with them a volume is a file the host makes when it defines
//! the VM.
//!
//! [`serves`]: PrimaryStorageBackend::serves
//! [`instantiate_volume`]: PrimaryStorageBackend::instantiate_volume
//! [`delete_volume`]: PrimaryStorageBackend::delete_volume

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use oxstack_db::{storages, Db};

use crate::error::{EngineError, EngineResult};
use crate::ids::{PrimaryStorageId, VmId, VolumeId};

/// A volume on a primary storage, as its backend sees it.
#[derive(Clone, Copy, Debug)]
pub struct VolumeAt<'a> {
    pub storage: PrimaryStorageId,
    /// The storage's URL, as created.
    pub storage_url: &'a str,
    pub volume: VolumeId,
    /// The VM the volume belongs to.
    pub vm: Option<VmId>,
    pub size_bytes: u64,
    /// Disk format, e.g. `qcow2`.
    pub format: &'a str,
}

/// A kind of primary storage.
#[async_trait]
pub trait PrimaryStorageBackend: Send + Sync {
    /// Names the backend in a storage's `backend` field and in errors.
    fn name(&self) -> &'static str;

    /// Whether this backend serves storages at `url` (by its scheme, typically).
    fn serves(&self, url: &str) -> bool;

    /// Checks the URL of a new storage this backend serves: `Err(message)` refuses the storage
    /// with `INVALID_ARGUMENT` on `url`.
    fn check_url(&self, _url: &str) -> Result<(), String> {
        Ok(())
    }

    /// Makes `volume` ready on its storage; no host uses it yet. Called again for a volume it
    /// already made (a step run twice): idempotent. `Err(reason)` fails the operation with
    /// `PROVIDER_ERROR`, and the volume is deleted again (this backend's `delete_volume` too).
    async fn instantiate_volume(&self, _volume: &VolumeAt<'_>) -> Result<(), String> {
        Ok(())
    }

    /// Removes what `instantiate_volume` made, before the volume's row is deleted. Idempotent,
    /// also for a volume it never made. `Err(reason)` keeps the volume and fails the operation
    /// with `PROVIDER_ERROR`: it can be tried again.
    async fn delete_volume(&self, _volume: &VolumeAt<'_>) -> Result<(), String> {
        Ok(())
    }
}

/// `local`: a directory on each host, `/path` or `file:///path`.
pub struct LocalStorage;

impl PrimaryStorageBackend for LocalStorage {
    fn name(&self) -> &'static str {
        "local"
    }
    fn serves(&self, url: &str) -> bool {
        url.starts_with('/') || url.starts_with("file://")
    }
    fn check_url(&self, url: &str) -> Result<(), String> {
        let path = url.strip_prefix("file://").unwrap_or(url);
        if !path.starts_with('/') {
            return Err(format!(
                "`{url}` is not an absolute path (local storage: /path or file:///path)"
            ));
        }
        if path.split('/').any(|part| part == "..") {
            return Err(format!("`{url}` must not contain `..`"));
        }
        Ok(())
    }
}

/// `nfs`: an NFS export each host mounts, `nfs://server/export`.
pub struct NfsStorage;

impl PrimaryStorageBackend for NfsStorage {
    fn name(&self) -> &'static str {
        "nfs"
    }
    fn serves(&self, url: &str) -> bool {
        url.starts_with("nfs://")
    }
    fn check_url(&self, url: &str) -> Result<(), String> {
        let rest = url.strip_prefix("nfs://").unwrap_or(url);
        let (server, export) = rest.split_once('/').unwrap_or((rest, ""));
        if server.is_empty() || export.is_empty() {
            return Err(format!("`{url}` names no server or no export (nfs://server/export)"));
        }
        if export.split('/').any(|part| part == "..") {
            return Err(format!("`{url}` must not contain `..`"));
        }
        Ok(())
    }
}

/// The registered backends, then the built-in ones; cheap to clone.
#[derive(Clone)]
pub struct StorageBackends {
    chain: Arc<[Arc<dyn PrimaryStorageBackend>]>,
    /// Each storage's URL, read once (a storage's URL never changes).
    urls: Arc<Mutex<HashMap<PrimaryStorageId, Arc<str>>>>,
}

impl Default for StorageBackends {
    fn default() -> Self {
        Self::new(Vec::new())
    }
}

impl StorageBackends {
    /// `registered`, asked in this order, then `local` and `nfs`.
    pub fn new(registered: Vec<Arc<dyn PrimaryStorageBackend>>) -> Self {
        let mut chain = registered;
        chain.push(Arc::new(LocalStorage));
        chain.push(Arc::new(NfsStorage));
        Self { chain: chain.into(), urls: Arc::default() }
    }

    /// The backend serving `url`.
    pub fn serving(&self, url: &str) -> Option<&Arc<dyn PrimaryStorageBackend>> {
        self.chain.iter().find(|b| b.serves(url))
    }

    /// Checks a new storage's URL: a backend serves it and accepts it. Returns its name.
    pub fn check_url(&self, url: &str) -> EngineResult<&'static str> {
        let Some(backend) = self.serving(url) else {
            let names: Vec<_> = self.chain.iter().map(|b| b.name()).collect();
            return Err(EngineError::invalid(
                "url",
                format!("no primary-storage backend serves `{url}` (backends: {}; local takes /path or file:///path, nfs takes nfs://server/export)", names.join(", ")),
            ));
        };
        backend.check_url(url).map_err(|message| EngineError::invalid("url", message))?;
        Ok(backend.name())
    }

    /// The name of the backend serving a stored storage's URL; `local` for a URL none serves
    /// (a storage created before its URL was checked).
    pub fn name_for(&self, url: &str) -> &'static str {
        self.serving(url).map_or("local", |b| b.name())
    }

    /// Makes `volume` ready on its storage's backend.
    pub(crate) async fn instantiate(&self, db: &Db, volume: VolumeAt<'_>) -> EngineResult<()> {
        let url = self.url_of(db, volume.storage).await?;
        let backend = self.backend_for(&url);
        let at = VolumeAt { storage_url: &url, ..volume };
        backend.instantiate_volume(&at).await.map_err(|reason| EngineError::Provider {
            provider: backend.name(),
            operation: "instantiate volume",
            reason,
        })
    }

    /// Removes `volume` from its storage's backend.
    pub(crate) async fn delete(&self, db: &Db, volume: VolumeAt<'_>) -> EngineResult<()> {
        let url = self.url_of(db, volume.storage).await?;
        let backend = self.backend_for(&url);
        let at = VolumeAt { storage_url: &url, ..volume };
        backend.delete_volume(&at).await.map_err(|reason| EngineError::Provider {
            provider: backend.name(),
            operation: "delete volume",
            reason,
        })
    }

    fn backend_for(&self, url: &str) -> Arc<dyn PrimaryStorageBackend> {
        match self.serving(url) {
            Some(b) => b.clone(),
            None => Arc::new(LocalStorage),
        }
    }

    /// A storage's URL, from memory after the first read.
    async fn url_of(&self, db: &Db, storage: PrimaryStorageId) -> EngineResult<Arc<str>> {
        if let Some(url) = self.urls.lock().unwrap_or_else(|e| e.into_inner()).get(&storage) {
            return Ok(url.clone());
        }
        let row = storages::get_primary(db, storage)
            .await?
            .ok_or_else(|| EngineError::not_found("primary storage", storage))?;
        let url: Arc<str> = row.url.into();
        self.urls.lock().unwrap_or_else(|e| e.into_inner()).insert(storage, url.clone());
        Ok(url)
    }
}

impl std::fmt::Debug for StorageBackends {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.chain.iter().map(|b| b.name())).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_backends_serve_paths_and_nfs_exports_and_refuse_the_rest() {
        let b = StorageBackends::default();
        assert_eq!(b.check_url("/var/lib/oxstack/ps").unwrap(), "local");
        assert_eq!(b.check_url("file:///var/lib/ps").unwrap(), "local");
        assert_eq!(b.check_url("nfs://10.0.0.5/exports/ps").unwrap(), "nfs");
        for bad in [
            "ps1",
            "ceph://pool",
            "file://relative",
            "/a/../etc",
            "nfs://",
            "nfs://srv",
            "nfs:///x",
        ] {
            let e = b.check_url(bad).unwrap_err();
            assert_eq!(e.code(), "INVALID_ARGUMENT", "{bad}: {e}");
            assert!(e.to_string().contains("url"), "{bad}: {e}");
        }
        assert_eq!(b.name_for("ps1"), "local");
    }

    struct Ceph;
    impl PrimaryStorageBackend for Ceph {
        fn name(&self) -> &'static str {
            "ceph"
        }
        fn serves(&self, url: &str) -> bool {
            url.starts_with("ceph://") || url.starts_with("/ceph/")
        }
    }

    #[test]
    fn a_registered_backend_is_asked_before_the_built_in_ones() {
        let b = StorageBackends::new(vec![Arc::new(Ceph)]);
        assert_eq!(b.check_url("ceph://pool").unwrap(), "ceph");
        assert_eq!(b.check_url("/ceph/pool").unwrap(), "ceph");
        assert_eq!(b.check_url("/var/ps").unwrap(), "local");
        assert_eq!(format!("{b:?}"), r#"["ceph", "local", "nfs"]"#);
    }
}
