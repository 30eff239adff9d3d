//! Signing the CLI in: `oxstack login` asks the API for a session and saves its token (mode
//! 0600) under the user's config directory, `oxstack logout` ends it. Every other command
//! sends `--token` (or `OXSTACK_TOKEN`, e.g. an API key) when given, else the saved token of
//! the same `--api`.

use std::io::{BufRead, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use reqwest::{Method, Url};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::http::{Api, ClientError};

/// `oxstack login`.
#[derive(clap::Args, Debug, Clone)]
pub struct LoginArgs {
    /// The user to sign in as.
    #[arg(long, default_value = "admin")]
    pub user: String,
    /// A file holding the password (its first line); without it the password is read from
    /// standard input.
    #[arg(long, value_name = "PATH")]
    pub password_file: Option<PathBuf>,
}

/// What `oxstack login` saves.
#[derive(Debug, Serialize, Deserialize)]
struct Saved {
    api: String,
    token: String,
    expires_at: String,
}

/// Where the session is saved: `$XDG_CONFIG_HOME/oxstack/session.json`, or
/// `~/.config/oxstack/session.json`.
pub fn saved_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("oxstack").join("session.json"))
}

/// The token to send to `api`: `given` (`--token`, `OXSTACK_TOKEN`), else the one saved by
/// `oxstack login` for the same API.
pub fn token_for(api: &str, given: Option<&str>) -> Option<String> {
    match saved_path() {
        Some(path) => token_in(&path, api, given),
        None => given.map(str::to_owned),
    }
}

/// [`token_for`] with the session saved at `path`.
pub fn token_in(path: &Path, api: &str, given: Option<&str>) -> Option<String> {
    if let Some(t) = given {
        return Some(t.to_owned());
    }
    let text = std::fs::read_to_string(path).ok()?;
    let saved: Saved = serde_json::from_str(&text).ok()?;
    let same = Url::parse(&saved.api).ok()? == Url::parse(api.trim()).ok()?;
    same.then_some(saved.token)
}

/// Signs in and saves the session for `api` where [`saved_path`] says.
pub async fn login(api: &Api, args: &LoginArgs) -> Result<(), ClientError> {
    let path = saved_path().ok_or_else(|| local("the config directory", &"HOME is not set"))?;
    login_to(api, args, &path).await
}

/// [`login`], saving the session at `path`.
pub async fn login_to(api: &Api, args: &LoginArgs, path: &Path) -> Result<(), ClientError> {
    let password = read_password(&args.user, args.password_file.as_deref())?;
    let body = json!({ "name": args.user, "password": password });
    let session = api.call(Method::POST, &["sessions"], &[], Some(&body)).await?;
    let field = |name: &str| session[name].as_str().unwrap_or_default().to_owned();
    let (token, expires_at) = (field("token"), field("expires_at"));
    save_to(path, api.base().as_str(), &token, &expires_at)?;
    eprintln!("signed in as {} until {expires_at}; the token is in {}", args.user, path.display());
    Ok(())
}

/// Ends the saved session (at the API and on disk).
pub async fn logout(api: &Api) -> Result<(), ClientError> {
    api.call(Method::DELETE, &["sessions", "current"], &[], None).await?;
    if let Some(path) = saved_path() {
        let _ = std::fs::remove_file(path);
    }
    eprintln!("signed out");
    Ok(())
}

/// `user`'s password: the first line of `file`, or else a line read from stdin after a prompt.
pub fn read_password(user: &str, file: Option<&Path>) -> Result<String, ClientError> {
    match file {
        Some(path) => read_first_line(path),
        None => {
            eprint!("password for {user}: ");
            let _ = std::io::stderr().flush();
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line).map_err(|e| local("stdin", &e))?;
            Ok(line.trim_end_matches(['\n', '\r']).to_owned())
        }
    }
}

fn read_first_line(path: &Path) -> Result<String, ClientError> {
    let text = std::fs::read_to_string(path).map_err(|e| local(&path.display().to_string(), &e))?;
    Ok(text.lines().next().unwrap_or_default().to_owned())
}

/// Writes the session of `api` to `path`, readable by its owner only.
pub fn save_to(path: &Path, api: &str, token: &str, expires_at: &str) -> Result<(), ClientError> {
    let saved =
        Saved { api: api.to_owned(), token: token.to_owned(), expires_at: expires_at.to_owned() };
    let shown = path.display().to_string();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| local(&shown, &e))?;
    }
    let text = serde_json::to_string(&saved).map_err(|e| ClientError::Encode(e.to_string()))?;
    let tmp = path.with_extension("json.tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| local(&shown, &e))?;
    f.write_all(text.as_bytes()).map_err(|e| local(&shown, &e))?;
    std::fs::rename(&tmp, path).map_err(|e| local(&shown, &e))
}

fn local(what: &str, e: &dyn std::fmt::Display) -> ClientError {
    ClientError::Local { what: what.to_owned(), reason: e.to_string() }
}
