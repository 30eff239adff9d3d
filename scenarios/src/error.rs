//! `ScenarioError`: why a scenario could not be loaded or run.
//!
//! A failed *check* is not an error: the run finishes and its report says which checks failed.
//! Errors are for files that cannot be read or parsed, values that make no sense, and a run that
//! could not be set up (the engine refused to build the topology, the runtime failed).

use oxstack_engine::EngineError;

/// Why a scenario could not be loaded or run.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The scenario file could not be read.
    #[error("cannot read scenario file {path}: {source}")]
    Read { path: String, source: std::io::Error },
    /// The file is not valid TOML or does not match the format (unknown key, wrong type).
    #[error("{origin}: {message}")]
    Parse { origin: String, message: String },
    /// A value is out of range or inconsistent; `key` names it, e.g. `phases[2].concurrency`.
    #[error("{origin}: invalid `{key}`: {message}")]
    Invalid { origin: String, key: String, message: String },
    /// The engine failed while the topology was built or the run was set up.
    #[error("{what}: {source}")]
    Engine { what: String, source: EngineError },
    /// The async runtime could not be started.
    #[error("cannot start the scenario runtime: {0}")]
    Runtime(std::io::Error),
    /// Writing a report failed.
    #[error("cannot write {path}: {message}")]
    Write { path: String, message: String },
}

impl ScenarioError {
    /// Wraps an engine error with what the runner was doing.
    pub fn engine(what: impl Into<String>, source: EngineError) -> Self {
        Self::Engine { what: what.into(), source }
    }
}

/// Result alias of this crate.
pub type ScenarioResult<T> = Result<T, ScenarioError>;
