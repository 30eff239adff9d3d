//! For tests of several management nodes: a temporary directory holding one SQLite file they
//! share, removed when dropped.
//!
//! Always SQLite, also when `OXSTACK_TEST_DB=postgres`: these tests run on tokio's paused
//! clock (heartbeat timeouts pass in an instant), which fires the PostgreSQL pool's timeouts
//! while its sockets wait. Nodes on PostgreSQL are tested by processes with real time
//! (tests/three_nodes.rs with `OXSTACK_TEST_DB=postgres`).

pub struct TestDbDir(std::path::PathBuf);

impl TestDbDir {
    /// A fresh directory under the system's temp dir; `tag` names the test family.
    pub fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("oxstack-{tag}-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    /// The `sqlite://` URL of the shared database file.
    pub fn url(&self) -> String {
        format!("sqlite://{}", self.0.join("nodes.db").display())
    }
}

impl Drop for TestDbDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
