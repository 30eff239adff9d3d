//! Volume files: qcow2 images made with `qemu-img`, the root volume over its image as backing file.

use std::path::{Path, PathBuf};
use std::process::Command;

use oxstack_hypervisor::VolumeSpec;

/// Why a volume file could not be made.
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    #[error(
        "image `{0}` is not a local file (only file:// URLs and absolute paths are supported)"
    )]
    UnsupportedImage(String),
    #[error("cannot run qemu-img: {0}")]
    Spawn(std::io::Error),
    #[error("qemu-img {args} failed: {stderr}")]
    QemuImg { args: String, stderr: String },
    #[error("qemu-img info printed something unexpected: {0}")]
    BadInfo(String),
    #[error("cannot create {path}: {source}")]
    Dir { path: PathBuf, source: std::io::Error },
}

/// Turns an image URL into a local path: `file:///x` or `/x`.
pub fn image_path(url: &str) -> Result<PathBuf, DiskError> {
    let path = url.strip_prefix("file://").unwrap_or(url);
    if path.starts_with('/') {
        Ok(PathBuf::from(path))
    } else {
        Err(DiskError::UnsupportedImage(url.to_string()))
    }
}

fn qemu_img(args: &[&str]) -> Result<String, DiskError> {
    let out = Command::new("qemu-img").args(args).output().map_err(DiskError::Spawn)?;
    if !out.status.success() {
        return Err(DiskError::QemuImg {
            args: args.join(" "),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The format and virtual size of an image, as `qemu-img info` reports them.
fn image_info(path: &Path) -> Result<(String, u64), DiskError> {
    let text = qemu_img(&["info", "--output=json", &path.to_string_lossy()])?;
    let info: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| DiskError::BadInfo(e.to_string()))?;
    let format = info["format"].as_str().ok_or_else(|| DiskError::BadInfo(text.clone()))?;
    let size = info["virtual-size"].as_u64().ok_or_else(|| DiskError::BadInfo(text.clone()))?;
    Ok((format.to_string(), size))
}

/// Creates the qcow2 file of a volume at `path` unless it exists: over the backing image when
/// the volume has one, blank otherwise. Never smaller than its backing image.
pub fn create_volume(path: &Path, volume: &VolumeSpec) -> Result<(), DiskError> {
    if path.exists() {
        return Ok(());
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|source| DiskError::Dir { path: dir.to_path_buf(), source })?;
    }
    let target = path.to_string_lossy();
    match &volume.backing_image_url {
        Some(url) => {
            let backing = image_path(url)?;
            let (format, backing_size) = image_info(&backing)?;
            let size = volume.size_bytes.max(backing_size).to_string();
            let backing = backing.to_string_lossy();
            qemu_img(&[
                "create", "-q", "-f", "qcow2", "-b", &backing, "-F", &format, &target, &size,
            ])?;
        }
        None => {
            let size = volume.size_bytes.max(1 << 20).to_string();
            qemu_img(&["create", "-q", "-f", "qcow2", &target, &size])?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use oxstack_hypervisor::VolumeId;

    use super::*;

    fn volume(backing: Option<String>) -> VolumeSpec {
        VolumeSpec {
            volume: VolumeId::new_random(),
            size_bytes: 4 << 20,
            format: "qcow2".into(),
            backing_image_url: backing,
            device_index: 0,
        }
    }

    #[test]
    fn image_urls_must_be_local_files() {
        assert_eq!(image_path("file:///a/b.img").unwrap(), PathBuf::from("/a/b.img"));
        assert_eq!(image_path("/a/b.img").unwrap(), PathBuf::from("/a/b.img"));
        assert!(matches!(image_path("http://x/b.img"), Err(DiskError::UnsupportedImage(_))));
    }

    #[test]
    fn creates_a_qcow2_over_its_backing_image() {
        if Command::new("qemu-img").arg("--version").output().is_err() {
            eprintln!(
                "SKIPPED: creates_a_qcow2_over_its_backing_image because qemu-img is not installed"
            );
            return;
        }
        let dir = std::env::temp_dir().join(format!("oxstack-disks-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let image = dir.join("base.img");
        std::fs::write(&image, vec![0u8; 1 << 20]).unwrap();
        let root = dir.join("vm/root.qcow2");
        create_volume(&root, &volume(Some(format!("file://{}", image.display())))).unwrap();
        let (format, size) = image_info(&root).unwrap();
        assert_eq!((format.as_str(), size), ("qcow2", 4 << 20));
        let info = qemu_img(&["info", "--output=json", &root.to_string_lossy()]).unwrap();
        assert!(info.contains("base.img"), "backing file recorded: {info}");
        let blank = dir.join("vm/data.qcow2");
        create_volume(&blank, &volume(None)).unwrap();
        assert_eq!(image_info(&blank).unwrap().0, "qcow2");
        let missing = create_volume(&dir.join("x.qcow2"), &volume(Some("/nonexistent.img".into())));
        assert!(matches!(missing, Err(DiskError::QemuImg { .. })), "{missing:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
