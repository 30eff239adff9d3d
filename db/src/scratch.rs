//! Where an in-memory database lives: a file in RAM (`/dev/shm`) that is removed once unused.
//!
//! The writer thread and the sqlx readers are separate connections, so an in-memory database
//! must be one they can share. SQLite's own options for that are poor fits: a shared-cache
//! `:memory:` database locks whole tables (readers wait on the writer's open batch), and the
//! `memdb` VFS has no WAL, so every commit waits for readers to let go (measured: 500 creates
//! took 2.5× longer than on a file). A WAL database on tmpfs with `synchronous = OFF` behaves
//! like the file database without touching a disk, and is as volatile as memory: it is deleted
//! when the last handle to it is dropped, and files left by a process that died are swept up
//! by the next one. Where `/dev/shm` is missing, the system temporary directory is used.

use std::path::{Path, PathBuf};

/// File-name prefix of in-memory databases.
const PREFIX: &str = "oxstack-mem-";

/// An in-memory database's files, deleted on drop.
#[derive(Debug)]
pub struct ScratchDb {
    path: PathBuf,
}

impl ScratchDb {
    /// A fresh, unused path for an in-memory database of this process.
    pub fn new() -> Self {
        let dir = scratch_dir();
        sweep_dead(&dir);
        let name = format!("{PREFIX}{}-{}.db", std::process::id(), uuid::Uuid::new_v4());
        Self { path: dir.join(name) }
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ScratchDb {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let mut p = self.path.clone().into_os_string();
            p.push(suffix);
            let _ = std::fs::remove_file(p);
        }
    }
}

fn scratch_dir() -> PathBuf {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_owned()
    } else {
        std::env::temp_dir()
    }
}

/// Deletes in-memory database files whose process is gone (it was killed, or never dropped
/// its handles). Only Linux tells us whether a process lives (`/proc/<pid>`); elsewhere
/// nothing is swept.
fn sweep_dead(dir: &Path) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(owner_pid) else { continue };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// The process id in an in-memory database's file name.
fn owner_pid(name: &str) -> Option<u32> {
    name.strip_prefix(PREFIX)?.split('-').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_go_when_dropped_and_dead_processes_files_are_swept() {
        let db = ScratchDb::new();
        std::fs::write(db.path(), b"x").unwrap();
        let path = db.path().to_owned();
        assert_eq!(
            owner_pid(path.file_name().unwrap().to_str().unwrap()),
            Some(std::process::id())
        );
        drop(db);
        assert!(!path.exists());

        // A file of a process that cannot exist (pid beyond the kernel's limit) is swept.
        let dir = scratch_dir();
        let dead = dir.join(format!("{PREFIX}4294967295-{}.db-wal", uuid::Uuid::new_v4()));
        std::fs::write(&dead, b"x").unwrap();
        let alive = ScratchDb::new();
        assert!(!dead.exists(), "a dead process's file was left");
        drop(alive);
    }
}
