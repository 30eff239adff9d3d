//! The agent's token: the secret every command must carry, read from `--token-file` at start,
//! and its rotation (`AgentCommand::RotateToken`).
//!
//! A rotation arrives with a token the agent takes. The new token is written to the token file
//! first (a new file in the same directory, mode 0600, synced, renamed over the old one, the
//! directory synced), so an agent restarted at any moment reads either the old token or the
//! new one, never a mix. Only then does the agent take it. If the file cannot be written the
//! rotation is refused and the agent keeps its token.
//!
//! The grace rule: after a rotation the agent accepts the new token and the one the rotation
//! came with (the *previous* token), until the first command carrying the new token arrives;
//! from then on only the new one. So a management node that crashed after the agent took the
//! new token but before it stored it still reaches the agent with the token it has; and a
//! node that stored it uses it, which retires the old one. There is no timer: the old token is
//! retired by use, not by time (a management node whose first command with the new token
//! never comes, because it never stored it, recovers the new one on its side: see
//! docs/ARCHITECTURE.md, "Rotating a host's token"). Only the file's token survives a restart.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use oxstack_hypervisor::AgentToken;

/// The tokens the agent accepts now.
#[derive(Debug)]
struct Held {
    current: AgentToken,
    /// The token the last rotation came with, accepted until the current one is first used.
    previous: Option<AgentToken>,
}

impl Held {
    /// Which token an `Authorization` header carries, if either.
    fn which(&self, header: Option<&str>) -> Option<Presented> {
        if self.current.matches_header(header) {
            Some(Presented::Current)
        } else if self.previous.as_ref().is_some_and(|p| p.matches_header(header)) {
            Some(Presented::Previous)
        } else {
            None
        }
    }
}

/// The agent's token, where it is kept, and its rotation.
#[derive(Debug)]
pub struct AgentTokens {
    /// The token file (`None`: a token given in memory, which cannot be rotated).
    file: Option<PathBuf>,
    held: Mutex<Held>,
    /// One rotation at a time (writing the file included).
    rotating: tokio::sync::Mutex<()>,
}

/// Which of the agent's tokens a command carried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Presented {
    Current,
    /// The token of before the last rotation, still in its grace.
    Previous,
}

/// Why a rotation is refused; the agent keeps its token.
#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    /// The command's token is no longer accepted (another rotation ran since it was checked).
    #[error("missing or wrong agent token")]
    Unauthorized,
    #[error(
        "the new token must be 1 to {} printable ASCII characters without spaces",
        AgentToken::MAX_LEN
    )]
    Malformed,
    #[error("the agent was given its token without a token file: it cannot be rotated")]
    NoFile,
    #[error("cannot write the token file {path}: {source}; the agent keeps its token")]
    Write { path: String, source: std::io::Error },
    #[error("writing the token file did not finish: {0}; the agent keeps its token")]
    Interrupted(String),
}

impl AgentTokens {
    /// `token`, as read from `file`, which rotations rewrite.
    pub fn from_file(token: AgentToken, file: PathBuf) -> Self {
        Self::with(token, Some(file))
    }

    /// `token`, kept in memory only: rotations are refused ([`RotateError::NoFile`]).
    pub fn fixed(token: AgentToken) -> Self {
        Self::with(token, None)
    }

    fn with(token: AgentToken, file: Option<PathBuf>) -> Self {
        Self {
            file,
            held: Mutex::new(Held { current: token, previous: None }),
            rotating: tokio::sync::Mutex::new(()),
        }
    }

    fn held(&self) -> std::sync::MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Which token an `Authorization` header carries, if it is one the agent accepts. The
    /// current token retires the previous one.
    pub fn check(&self, header: Option<&str>) -> Option<Presented> {
        let mut held = self.held();
        let presented = held.which(header);
        if presented == Some(Presented::Current) && held.previous.take().is_some() {
            tracing::info!("a command came with the new token: the previous one is retired");
        }
        presented
    }

    /// Replaces the token with `new`, for a command that came with `header` (checked again
    /// here: a rotation may have run since). Writes the token file first; the token the
    /// command came with becomes the previous one. `new` already current: nothing to do (a
    /// rotation sent again).
    pub async fn rotate(&self, header: Option<&str>, new: &AgentToken) -> Result<(), RotateError> {
        if !new.is_well_formed() {
            return Err(RotateError::Malformed);
        }
        let Some(file) = &self.file else { return Err(RotateError::NoFile) };
        let _one = self.rotating.lock().await;
        let came_with = {
            let held = self.held();
            if held.current.matches_header(Some(&new.bearer())) {
                return Ok(());
            }
            match held.which(header) {
                Some(Presented::Current) => held.current.clone(),
                Some(Presented::Previous) => {
                    held.previous.clone().ok_or(RotateError::Unauthorized)?
                }
                None => return Err(RotateError::Unauthorized),
            }
        };
        let (path, token) = (file.clone(), new.clone());
        let written = tokio::task::spawn_blocking(move || write_token_file(&path, &token)).await;
        match written {
            Ok(Ok(())) => {}
            Ok(Err(source)) => {
                return Err(RotateError::Write { path: file.display().to_string(), source })
            }
            Err(e) => return Err(RotateError::Interrupted(e.to_string())),
        }
        let mut held = self.held();
        held.current = new.clone();
        held.previous = Some(came_with);
        tracing::info!(file = %file.display(), "the agent token was rotated");
        Ok(())
    }
}

/// Writes `token` to `path` so that a reader finds the old file or the new one, whole: a new
/// file next to it (mode 0600), synced, renamed over it, then the directory synced. Once the
/// rename is done the token is written: a directory that cannot be synced is only logged.
fn write_token_file(path: &Path, token: &AgentToken) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let Some(name) = path.file_name() else {
        let why = "the token file's path names no file";
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, why));
    };
    let temp = dir.join(format!(".{}.new-{}", name.to_string_lossy(), std::process::id()));
    // Left by a write this process did not finish (rotations run one at a time).
    let _ = std::fs::remove_file(&temp);
    let written = (|| {
        let mut file = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&temp)?;
        file.write_all(format!("{}\n", token.secret()).as_bytes())?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&temp, path)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temp);
        return Err(e);
    }
    if let Err(e) = File::open(dir).and_then(|d| d.sync_all()) {
        tracing::warn!(dir = %dir.display(), %e, "the token file's directory could not be synced");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn bearer(token: &str) -> String {
        format!("Bearer {token}")
    }

    fn temp_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("oxstack-tokens-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[tokio::test]
    async fn the_previous_token_works_until_the_new_one_is_used() {
        let dir = temp_dir();
        let file = dir.join("agent.token");
        std::fs::write(&file, "old\n").unwrap();
        let tokens = AgentTokens::from_file(AgentToken::new("old"), file.clone());
        assert_eq!(tokens.check(Some(&bearer("old"))), Some(Presented::Current));
        tokens.rotate(Some(&bearer("old")), &AgentToken::new("new")).await.unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "new\n");
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // Old and new both work, as often as need be, until the new one is used.
        for _ in 0..2 {
            assert_eq!(tokens.check(Some(&bearer("old"))), Some(Presented::Previous));
        }
        assert_eq!(tokens.check(Some(&bearer("new"))), Some(Presented::Current));
        assert_eq!(tokens.check(Some(&bearer("old"))), None, "retired by the new one's use");
        assert_eq!(tokens.check(Some(&bearer("new"))), Some(Presented::Current));
        // Sent again, a rotation to the current token changes nothing.
        tokens.rotate(Some(&bearer("new")), &AgentToken::new("new")).await.unwrap();
        assert_eq!(tokens.check(Some(&bearer("new"))), Some(Presented::Current));
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(left.len(), 1, "no temporary file is left: {left:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_rotation_with_the_previous_token_forgets_the_unused_new_one() {
        let dir = temp_dir();
        let file = dir.join("agent.token");
        let tokens = AgentTokens::from_file(AgentToken::new("t0"), file.clone());
        tokens.rotate(Some(&bearer("t0")), &AgentToken::new("t1")).await.unwrap();
        // The node never stored t1 and rotates again with t0.
        tokens.rotate(Some(&bearer("t0")), &AgentToken::new("t2")).await.unwrap();
        assert_eq!(tokens.check(Some(&bearer("t1"))), None);
        assert_eq!(tokens.check(Some(&bearer("t0"))), Some(Presented::Previous));
        assert_eq!(tokens.check(Some(&bearer("t2"))), Some(Presented::Current));
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "t2\n");
        let refused = tokens.rotate(Some(&bearer("t0")), &AgentToken::new("t3")).await;
        assert!(matches!(refused, Err(RotateError::Unauthorized)), "{refused:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_token_file_that_cannot_be_written_keeps_the_old_token() {
        let dir = temp_dir();
        let file = dir.join("gone").join("agent.token");
        let tokens = AgentTokens::from_file(AgentToken::new("old"), file);
        let err = tokens.rotate(Some(&bearer("old")), &AgentToken::new("new")).await.unwrap_err();
        assert!(matches!(err, RotateError::Write { .. }), "{err:?}");
        assert!(err.to_string().contains("keeps its token"), "{err}");
        assert_eq!(tokens.check(Some(&bearer("new"))), None);
        assert_eq!(tokens.check(Some(&bearer("old"))), Some(Presented::Current));
        for (tokens, new) in [
            (AgentTokens::fixed(AgentToken::new("old")), "new"),
            (AgentTokens::from_file(AgentToken::new("old"), dir.join("t")), "a b"),
        ] {
            let err = tokens.rotate(Some(&bearer("old")), &AgentToken::new(new)).await;
            assert!(matches!(err, Err(RotateError::NoFile | RotateError::Malformed)), "{err:?}");
            assert_eq!(tokens.check(Some(&bearer("old"))), Some(Presented::Current));
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
