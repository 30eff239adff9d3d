//! The first admin of an empty database. `oxstack serve` makes the user `admin` with the
//! password in `--admin-password-file`; when that file does not exist it generates a password,
//! writes it there (mode 0600) and prints the file's path, never the password. On a database
//! that has its admin, the file is not read.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use oxstack_engine::Engine;

/// The first admin's name.
pub const ADMIN: &str = "admin";

/// Characters of a generated password (no look-alikes).
const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";

/// Makes the first admin if the database has none; what happened, for the start-up message.
pub async fn ensure(engine: &Engine, file: &Path) -> Result<String, String> {
    let shown = file.display();
    let bootstrapped = engine.identity.bootstrapped().await.map_err(|e| e.to_string())?;
    if bootstrapped {
        return Ok("users: sign in with `oxstack login`".into());
    }
    let (password, generated) = match std::fs::read_to_string(file) {
        Ok(text) => (text.trim_end_matches(['\n', '\r']).to_owned(), false),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (generate()?, true),
        Err(e) => return Err(format!("cannot read the admin password file {shown}: {e}")),
    };
    if generated {
        write_secret(file, &password)
            .map_err(|e| format!("cannot write the admin password file {shown}: {e}"))?;
    }
    match engine.identity.bootstrap(ADMIN, &password).await {
        Ok(Some(_)) if generated => Ok(format!(
            "created the user `{ADMIN}`; its generated password is in {shown} (mode 0600)"
        )),
        Ok(Some(_)) => Ok(format!("created the user `{ADMIN}` with the password in {shown}")),
        Ok(None) => {
            if generated {
                // Another node made the admin first: this password is nobody's.
                let _ = std::fs::remove_file(file);
            }
            Ok("users: another node created the admin; sign in with `oxstack login`".into())
        }
        Err(e) => Err(format!("the admin password in {shown} is refused: {e}")),
    }
}

/// 24 characters of [`ALPHABET`] from the OS's randomness.
fn generate() -> Result<String, String> {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).map_err(|e| format!("no randomness for a password: {e}"))?;
    Ok(bytes.iter().map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char).collect())
}

/// Writes `secret` to a new file only its owner can read.
pub(crate) fn write_secret(file: &Path, secret: &str) -> std::io::Result<()> {
    // Written whole into a file of its own first, then linked at `file`: a node starting at
    // the same moment reads no file or the whole secret, never an empty one, and a `file`
    // another node made first is kept (`AlreadyExists`).
    let dir = file.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = file.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let staged = dir.join(format!(".{name}.{}.new", uuid::Uuid::new_v4()));
    let written = (|| {
        let mut f =
            std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&staged)?;
        writeln!(f, "{secret}")?;
        f.sync_all()?;
        std::fs::hard_link(&staged, file)
    })();
    let _ = std::fs::remove_file(&staged);
    written
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::sync::Arc;

    use oxstack_engine::services::identity::CreateSession;
    use oxstack_engine::EngineOptions;
    use oxstack_simulator::{SimCloud, SimConfig};

    async fn engine() -> Engine {
        let hv: Arc<dyn oxstack_hypervisor::Hypervisor> =
            Arc::new(SimCloud::new(SimConfig::with_seed(1)));
        let opts = EngineOptions { background_tasks: false, ..EngineOptions::default() };
        Engine::start(opts, hv).await.unwrap()
    }

    fn temp_file() -> std::path::PathBuf {
        std::env::temp_dir().join(format!("oxstack-admin-{}", uuid::Uuid::new_v4()))
    }

    #[tokio::test]
    async fn a_generated_password_is_written_0600_and_signs_the_admin_in() {
        let (e, file) = (engine().await, temp_file());
        let said = ensure(&e, &file).await.unwrap();
        let password = std::fs::read_to_string(&file).unwrap().trim().to_owned();
        assert!(said.contains(&file.display().to_string()) && !said.contains(&password));
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(password.len(), 24);
        let login = CreateSession { name: ADMIN.into(), password: password.clone() };
        e.identity.sign_in(login).await.unwrap();
        // Started again: the file is not read, the admin stays.
        std::fs::remove_file(&file).unwrap();
        assert!(ensure(&e, &file).await.unwrap().contains("oxstack login"));
        assert!(!file.exists());
    }

    #[tokio::test]
    async fn a_given_password_is_used_and_a_short_one_refused() {
        let (e, file) = (engine().await, temp_file());
        std::fs::write(&file, "short\n").unwrap();
        let err = ensure(&e, &file).await.unwrap_err();
        assert!(err.contains("12 to 256") && !err.contains("short\n"), "{err}");
        std::fs::write(&file, "a given password of enough length\n").unwrap();
        ensure(&e, &file).await.unwrap();
        let login = CreateSession {
            name: ADMIN.into(),
            password: "a given password of enough length".into(),
        };
        e.identity.sign_in(login).await.unwrap();
        std::fs::remove_file(&file).unwrap();
    }
}
