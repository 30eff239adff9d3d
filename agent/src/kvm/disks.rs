//! Volume files: qcow2 images made with `qemu-img`, the root volume over its image as backing file.
//!
//! An image is a file the agent's image directory holds (`--image-dir`), named by a `file://`
//! URL or an absolute path. Whatever the engine sends, only such a file is used as a backing
//! file: the path is resolved (symbolic links, `..`) and must stay inside the directory, be a
//! regular file (no device), and be an image without a backing file of its own, so an image
//! cannot make a VM's disk read the host's files (`/etc/shadow`, `/dev/sda`).

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
    #[error("image `{url}` cannot be read: {source}")]
    ImageUnreadable { url: String, source: std::io::Error },
    #[error("image `{url}` is not inside this host's image directory {dir}")]
    ImageOutsideDir { url: String, dir: PathBuf },
    #[error("image `{0}` is not a regular file")]
    ImageNotAFile(String),
    #[error("image `{0}` has a backing file of its own; only standalone images are used")]
    ImageHasBacking(String),
    #[error("cannot run qemu-img: {0}")]
    Spawn(std::io::Error),
    #[error("qemu-img {args} failed: {stderr}")]
    QemuImg { args: String, stderr: String },
    #[error("qemu-img info printed something unexpected: {0}")]
    BadInfo(String),
    #[error("cannot create {path}: {source}")]
    Dir { path: PathBuf, source: std::io::Error },
}

/// The file an image URL (`file:///x` or `/x`) names, resolved, when it is a regular file inside
/// `image_dir` (see the module doc).
pub fn image_path(url: &str, image_dir: &Path) -> Result<PathBuf, DiskError> {
    let path = url.strip_prefix("file://").unwrap_or(url);
    if !path.starts_with('/') {
        return Err(DiskError::UnsupportedImage(url.to_string()));
    }
    let unreadable = |source| DiskError::ImageUnreadable { url: url.to_string(), source };
    let resolved = std::fs::canonicalize(path).map_err(unreadable)?;
    let dir = std::fs::canonicalize(image_dir)
        .map_err(|e| DiskError::Dir { path: image_dir.to_path_buf(), source: e })?;
    if !resolved.starts_with(&dir) {
        return Err(DiskError::ImageOutsideDir { url: url.to_string(), dir });
    }
    if !std::fs::metadata(&resolved).map_err(unreadable)?.is_file() {
        return Err(DiskError::ImageNotAFile(url.to_string()));
    }
    Ok(resolved)
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

/// What `qemu-img info` reports of an image: its format, virtual size, and whether it has a
/// backing file.
struct ImageInfo {
    format: String,
    size: u64,
    has_backing: bool,
}

fn image_info(path: &Path) -> Result<ImageInfo, DiskError> {
    let text = qemu_img(&["info", "--output=json", &path.to_string_lossy()])?;
    let info: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| DiskError::BadInfo(e.to_string()))?;
    let format = info["format"].as_str().ok_or_else(|| DiskError::BadInfo(text.clone()))?;
    let size = info["virtual-size"].as_u64().ok_or_else(|| DiskError::BadInfo(text.clone()))?;
    let has_backing = !info["backing-filename"].is_null();
    Ok(ImageInfo { format: format.to_string(), size, has_backing })
}

/// Creates the qcow2 file of a volume at `path` unless it exists: over the backing image when
/// the volume has one (a file of `image_dir`: [`image_path`]), blank otherwise. Never smaller
/// than its backing image.
pub fn create_volume(path: &Path, volume: &VolumeSpec, image_dir: &Path) -> Result<(), DiskError> {
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
            let backing = image_path(url, image_dir)?;
            let info = image_info(&backing)?;
            if info.has_backing {
                return Err(DiskError::ImageHasBacking(url.clone()));
            }
            let size = volume.size_bytes.max(info.size).to_string();
            let (backing, format) = (backing.to_string_lossy(), info.format);
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

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("oxstack-{tag}-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn an_image_is_a_regular_file_inside_the_image_directory() {
        let dir = temp_dir("images");
        let images = dir.join("images");
        std::fs::create_dir_all(images.join("sub")).unwrap();
        let image = images.join("sub/base.img");
        std::fs::write(&image, b"image").unwrap();
        let outside = dir.join("secret");
        std::fs::write(&outside, b"secret").unwrap();
        std::os::unix::fs::symlink(&outside, images.join("link.img")).unwrap();
        std::os::unix::fs::symlink("/dev/null", images.join("device.img")).unwrap();
        let named = |url: String| image_path(&url, &images);

        let resolved = images.canonicalize().unwrap().join("sub/base.img");
        assert_eq!(named(format!("file://{}", image.display())).unwrap(), resolved);
        assert_eq!(named(image.display().to_string()).unwrap(), resolved);
        let dotted = format!("{}/sub/../sub/base.img", images.display());
        assert_eq!(named(dotted).unwrap(), resolved, "`..` inside the directory is fine");
        for escape in [
            "file:///etc/shadow".to_string(),
            "/etc/passwd".to_string(),
            format!("{}/../secret", images.display()),
            format!("file://{}/link.img", images.display()),
            format!("{}/device.img", images.display()),
        ] {
            let e = named(escape.clone()).unwrap_err();
            assert!(matches!(e, DiskError::ImageOutsideDir { .. }), "{escape}: {e}");
        }
        let e = named(format!("{}/sub", images.display())).unwrap_err();
        assert!(matches!(e, DiskError::ImageNotAFile(_)), "a directory: {e}");
        let e = named(format!("{}/missing.img", images.display())).unwrap_err();
        assert!(matches!(e, DiskError::ImageUnreadable { .. }), "{e}");
        let e = named("http://x/b.img".into()).unwrap_err();
        assert!(matches!(e, DiskError::UnsupportedImage(_)), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn creates_a_qcow2_over_its_backing_image() {
        if Command::new("qemu-img").arg("--version").output().is_err() {
            eprintln!(
                "SKIPPED: creates_a_qcow2_over_its_backing_image because qemu-img is not installed"
            );
            return;
        }
        let dir = temp_dir("disks");
        let image = dir.join("base.img");
        std::fs::write(&image, vec![0u8; 1 << 20]).unwrap();
        let root = dir.join("vm/root.qcow2");
        let over_image = volume(Some(format!("file://{}", image.display())));
        create_volume(&root, &over_image, &dir).unwrap();
        let info = image_info(&root).unwrap();
        assert_eq!((info.format.as_str(), info.size, info.has_backing), ("qcow2", 4 << 20, true));
        let info = qemu_img(&["info", "--output=json", &root.to_string_lossy()]).unwrap();
        assert!(info.contains("base.img"), "backing file recorded: {info}");
        let blank = dir.join("vm/data.qcow2");
        create_volume(&blank, &volume(None), &dir).unwrap();
        assert_eq!(image_info(&blank).unwrap().format, "qcow2");
        let missing = volume(Some(format!("{}/nonexistent.img", dir.display())));
        let missing = create_volume(&dir.join("x.qcow2"), &missing, &dir);
        assert!(matches!(missing, Err(DiskError::ImageUnreadable { .. })), "{missing:?}");
        // An image with a backing file of its own (here, the root volume just made) is refused.
        let chained = volume(Some(root.display().to_string()));
        let chained = create_volume(&dir.join("y.qcow2"), &chained, &dir);
        assert!(matches!(chained, Err(DiskError::ImageHasBacking(_))), "{chained:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
