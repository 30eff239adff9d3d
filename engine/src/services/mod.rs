//! Services: one module per resource family, each a struct built from its dependencies that
//! owns its tables.

pub mod audit;
pub mod cluster;
pub mod host;
pub mod host_calls;
mod host_maintenance;
pub mod host_roster;
pub mod host_service;
mod host_sync;
pub mod host_tokens;
pub mod host_tracker;
pub mod host_trust;
pub mod identity;
pub mod image;
pub mod jobs;
mod list;
pub mod network;
pub mod offering;
pub mod ownership;
mod parents;
mod retention;
pub mod schema;
pub mod storage;
pub mod vm;
pub mod zone;

pub use list::{ListQuery, Page};
pub(crate) use parents::{child_inserted, emptied};

use crate::error::{EngineError, EngineResult};

/// Checks a resource name: 1 to 255 characters, not only white space, no control characters.
pub(crate) fn check_name(name: &str) -> EngineResult<()> {
    if name.trim().is_empty() {
        return Err(EngineError::invalid("name", "must not be empty"));
    }
    if name.chars().count() > schema::NAME_MAX_CHARS {
        return Err(EngineError::invalid("name", "must be at most 255 characters"));
    }
    if let Some(c) = name.chars().find(|c| schema::refused_in_name(*c)) {
        let code = c as u32;
        return Err(EngineError::invalid("name", format!("must not contain U+{code:04X}: no control characters (tab and newline included) nor bidirectional controls")));
    }
    Ok(())
}

/// Converts a size the API took as u64 into SQLite's i64, refusing values past i64::MAX.
pub(crate) fn to_i64(field: &str, v: u64) -> EngineResult<i64> {
    i64::try_from(v).map_err(|_| EngineError::invalid(field, format!("{v} is too large")))
}
