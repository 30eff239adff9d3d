//! Tokio runtimes for the benches.

use tokio::runtime::{Builder, Runtime};

/// A multi-thread runtime with `workers` worker threads (the engine's normal environment).
pub fn multi_thread(workers: usize) -> Runtime {
    Builder::new_multi_thread()
        .worker_threads(workers.max(1))
        .enable_all()
        .build()
        .expect("building a tokio runtime")
}

/// A current-thread runtime (for measuring pure per-call costs without cross-thread wakeups).
pub fn current_thread() -> Runtime {
    Builder::new_current_thread().enable_all().build().expect("building a tokio runtime")
}

/// Worker threads to use: the machine's cores (2 on the project's machines).
pub fn cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)
}
