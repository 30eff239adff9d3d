//! Progress reporting: the runner tells an `Observer` what it is doing; the `oxstack` binary
//! draws progress bars from it, tests stay silent.

/// Receives progress from a run. Every method has a do-nothing default.
pub trait Observer: Send + Sync {
    /// A phase starts; `total` is its number of operations when known.
    fn phase_started(&self, _name: &str, _total: Option<u64>) {}
    /// `n` more operations of the current phase finished.
    fn advanced(&self, _n: u64) {}
    /// The current phase ended.
    fn phase_finished(&self, _name: &str) {}
    /// Something worth a line of output (a fault fired, a check failed).
    fn note(&self, _message: &str) {}
}

/// An observer that ignores everything.
#[derive(Clone, Copy, Debug, Default)]
pub struct Silent;

impl Observer for Silent {}
