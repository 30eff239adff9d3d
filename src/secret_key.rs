//! The node's secret key, which seals the agent tokens stored in the database
//! (`oxstack_engine::secrets`). `oxstack serve` reads it from `--secret-key-file` (64 hex
//! digits); when that file does not exist it generates a key, writes it there (mode 0600) and
//! prints the file's path, never the key. A file others may read is refused. Every node of a
//! cloud needs the same file: copy it to the others before they start.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use oxstack_engine::secrets::{self, KEY_BYTES};

/// The key in `file`, made there first if there is none; and what happened, for the start-up
/// message.
pub fn load_or_create(file: &Path) -> Result<([u8; KEY_BYTES], String), String> {
    let shown = file.display();
    match std::fs::read_to_string(file) {
        Ok(text) => {
            let mode = std::fs::metadata(file)
                .map_err(|e| format!("cannot read the secret key file {shown}: {e}"))?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                return Err(format!(
                    "the secret key file {shown} may be read by others (mode {:o}): chmod 600 it",
                    mode & 0o777
                ));
            }
            let key = secrets::parse_key(&text).ok_or_else(|| {
                format!("the secret key file {shown} does not hold 64 hex digits")
            })?;
            Ok((key, format!("agent tokens sealed with the key in {shown}")))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let text = secrets::new_key_text().map_err(|e| e.to_string())?;
            match crate::first_admin::write_secret(file, &text) {
                Ok(()) => {}
                // Another node started at once made it first: use that one.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    return load_or_create(file);
                }
                Err(e) => return Err(format!("cannot write the secret key file {shown}: {e}")),
            }
            let key = secrets::parse_key(&text)
                .ok_or_else(|| "a generated key does not parse: a bug".to_string())?;
            let said = format!(
                "agent tokens sealed with a generated key in {shown} (mode 0600): give every \
                 node of this cloud a copy"
            );
            Ok((key, said))
        }
        Err(e) => Err(format!("cannot read the secret key file {shown}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_file() -> std::path::PathBuf {
        std::env::temp_dir().join(format!("oxstack-secret-key-{}", uuid::Uuid::new_v4()))
    }

    #[test]
    fn a_missing_key_is_made_private_and_then_read_back() {
        let file = temp_file();
        let (made, said) = load_or_create(&file).unwrap();
        assert!(said.contains("generated"), "{said}");
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(!said.contains(text.trim()), "the key is never printed");
        let (read, _) = load_or_create(&file).unwrap();
        assert_eq!(made, read);
        std::fs::remove_file(&file).unwrap();
    }

    #[test]
    fn a_readable_or_malformed_key_file_is_refused() {
        let file = temp_file();
        std::fs::write(&file, "ab".repeat(32)).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(load_or_create(&file).unwrap_err().contains("chmod 600"));
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(load_or_create(&file).is_ok());
        std::fs::write(&file, "not a key").unwrap();
        assert!(load_or_create(&file).unwrap_err().contains("64 hex digits"));
        std::fs::remove_file(&file).unwrap();
    }

    #[test]
    fn nodes_starting_at_once_all_take_the_one_key_made() {
        for _ in 0..100 {
            let file = temp_file();
            let keys: Vec<_> = std::thread::scope(|s| {
                let starts: Vec<_> = (0..8).map(|_| s.spawn(|| load_or_create(&file))).collect();
                starts.into_iter().map(|h| h.join().unwrap()).collect()
            });
            let first = keys[0].as_ref().expect("a key").0;
            for key in &keys {
                assert_eq!(key.as_ref().expect("every node gets the key").0, first);
            }
            std::fs::remove_file(&file).unwrap();
        }
    }
}
