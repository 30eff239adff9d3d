//! `oxstack account ...`, `oxstack user ...` and `oxstack api-key ...`: tenant accounts with
//! their quotas, the users in them, and users' API keys. Passwords are read from a file or from
//! stdin, never from the command line (where other local users could see them).

use clap::{Args, Subcommand};
use reqwest::Method;
use serde::Serialize;
use serde_json::{json, Value};
use uuid::Uuid;

use super::http::ClientError;
use super::resource::{to_json, Ctx, Kind, ListArgs, Target};
use super::session::read_password;
use super::table::{field, size, Column};
use super::units::parse_size;

/// Accounts in the API.
pub const ACCOUNT: Kind = Kind {
    path: "accounts",
    noun: "account",
    columns: &[
        Column::new("UUID", |v| field(v, "uuid")),
        Column::new("NAME", |v| field(v, "name")),
        Column::new("KIND", |v| field(v, "kind")),
        Column::new("VMS", |v| usage_of(v, "vms", "max_vms", field)),
        Column::new("CPUS", |v| usage_of(v, "cpus", "max_cpus", field)),
        Column::new("MEMORY", |v| usage_of(v, "memory_bytes", "max_memory_bytes", size)),
        Column::new("IPS", |v| usage_of(v, "ips", "max_ips", field)),
        Column::new("VOLUMES", |v| usage_of(v, "volume_bytes", "max_volume_bytes", size)),
    ],
};

/// Users in the API.
pub const USER: Kind = Kind {
    path: "users",
    noun: "user",
    columns: &[
        Column::new("UUID", |v| field(v, "uuid")),
        Column::new("NAME", |v| field(v, "name")),
        Column::new("ROLE", |v| field(v, "role")),
        Column::new("ACCOUNT", |v| field(v, "account_uuid")),
        Column::new("CREATED", |v| field(v, "created_at")),
    ],
};

/// API keys in the API (listed under their user, deleted on their own).
pub const API_KEY: Kind = Kind {
    path: "api-keys",
    noun: "API key",
    columns: &[
        Column::new("UUID", |v| field(v, "uuid")),
        Column::new("NAME", |v| field(v, "name")),
        Column::new("USER", |v| field(v, "user_uuid")),
        Column::new("CREATED", |v| field(v, "created_at")),
    ],
};

/// `used/limit` of one quota, `used` alone when there is no limit.
fn usage_of(v: &Value, used: &str, limit: &str, show: fn(&Value, &str) -> String) -> String {
    let shown = show(&v["usage"], used);
    match v["quotas"].get(limit) {
        Some(l) if !l.is_null() => format!("{shown}/{}", show(&v["quotas"], limit)),
        _ => shown,
    }
}

/// Account commands (admins, but `current`).
#[derive(Subcommand, Debug, Clone)]
pub enum AccountCommand {
    /// Create a tenant account.
    Create(CreateAccount),
    /// List accounts with their usage and quotas.
    List(ListArgs),
    /// Show one account.
    Show(Target),
    /// Show your own account, its quotas and usage.
    Current,
    /// Set a tenant's quotas; a quota left out means no limit.
    SetQuotas(SetQuotas),
    /// Delete a tenant account that has no users, VMs or jobs left.
    Delete(Target),
}

/// `POST /v1/accounts`.
#[derive(Args, Debug, Clone)]
pub struct CreateAccount {
    /// Account name: letters, digits, `.`, `_`, `@` and `-`.
    #[arg(long)]
    pub name: String,
    #[command(flatten)]
    pub quotas: QuotaArgs,
}

/// `PUT /v1/accounts/{uuid}/quotas`.
#[derive(Args, Debug, Clone)]
pub struct SetQuotas {
    /// The account's UUID.
    pub uuid: Uuid,
    #[command(flatten)]
    pub quotas: QuotaArgs,
}

/// An account's limits.
#[derive(Args, Serialize, Debug, Clone, Default)]
pub struct QuotaArgs {
    /// At most this many VMs (a destroyed VM counts until expunged).
    #[arg(long)]
    pub max_vms: Option<u64>,
    /// At most this many vCPUs over its VMs.
    #[arg(long)]
    pub max_cpus: Option<u64>,
    /// At most this much memory over its VMs, e.g. 64GiB.
    #[arg(long = "max-memory", value_name = "SIZE", value_parser = parse_size)]
    pub max_memory_bytes: Option<u64>,
    /// At most this many IP addresses.
    #[arg(long)]
    pub max_ips: Option<u64>,
    /// At most this much volume space, e.g. 1TiB.
    #[arg(long = "max-volume", value_name = "SIZE", value_parser = parse_size)]
    pub max_volume_bytes: Option<u64>,
}

/// User commands (admins: of the admin account, any account's users; of a tenant account, its
/// own account's).
#[derive(Subcommand, Debug, Clone)]
pub enum UserCommand {
    /// Create a user; its password is read from --password-file or stdin.
    Create(CreateUser),
    /// List users.
    List(ListArgs),
    /// Show one user.
    Show(Target),
    /// Delete a user, ending its sessions and API keys.
    Delete(Target),
    /// Set a user's password: your own (give the one you have now), or, as an admin, that of a
    /// user you run. The user's other sessions end; API keys stay.
    SetPassword(SetPassword),
}

/// `PUT /v1/users/{uuid}/password`.
#[derive(Args, Debug, Clone)]
pub struct SetPassword {
    /// The user's UUID.
    pub user: Uuid,
    /// A file holding the new password (its first line); without it, it is read from stdin.
    #[arg(long)]
    pub password_file: Option<std::path::PathBuf>,
    /// A file holding the user's password now (its first line): needed to set your own.
    #[arg(long)]
    pub current_password_file: Option<std::path::PathBuf>,
}

/// `POST /v1/users`.
#[derive(Args, Debug, Clone)]
pub struct CreateUser {
    /// User name: letters, digits, `.`, `_`, `@` and `-`.
    #[arg(long)]
    pub name: String,
    /// admin, member or read_only (a tenant account's admin runs its account's users).
    #[arg(long, default_value = "member", value_parser = ["admin", "member", "read_only"])]
    pub role: String,
    /// The account the user is in; by default your own.
    #[arg(long = "account", value_name = "ACCOUNT_UUID")]
    pub account_uuid: Option<Uuid>,
    /// A file holding the password (its first line); without it, it is read from stdin.
    #[arg(long)]
    pub password_file: Option<std::path::PathBuf>,
}

/// API key commands (your own keys; admins: those of the users they run).
#[derive(Subcommand, Debug, Clone)]
pub enum ApiKeyCommand {
    /// Create an API key for a user; its token is printed once.
    Create(CreateApiKey),
    /// List a user's API keys (never their tokens).
    List(UserTarget),
    /// Delete an API key.
    Delete(Target),
}

/// `POST /v1/users/{uuid}/api-keys`.
#[derive(Args, Debug, Clone)]
pub struct CreateApiKey {
    /// The user's UUID.
    pub user: Uuid,
    /// What the key is for.
    #[arg(long)]
    pub name: String,
}

/// One user, by UUID.
#[derive(Args, Debug, Clone)]
pub struct UserTarget {
    /// The user's UUID.
    pub user: Uuid,
}

/// Runs an account command.
pub async fn account(ctx: &Ctx, cmd: AccountCommand) -> Result<(), ClientError> {
    match cmd {
        AccountCommand::Create(c) => {
            let body = json!({ "name": c.name, "quotas": c.quotas });
            ctx.create(&ACCOUNT, &body).await
        }
        AccountCommand::List(f) => ctx.list(&ACCOUNT, &f).await,
        AccountCommand::Show(t) => ctx.show(&ACCOUNT, &t).await,
        AccountCommand::Current => {
            let item = ctx.api.get(&["accounts", "current"], &[]).await?;
            ctx.print_detail(&item);
            Ok(())
        }
        AccountCommand::SetQuotas(c) => {
            let uuid = c.uuid.to_string();
            let body = to_json(&c.quotas)?;
            let path = ["accounts", uuid.as_str(), "quotas"];
            let updated = ctx.api.call(Method::PUT, &path, &[], Some(&body)).await?;
            ctx.print_detail(&updated);
            Ok(())
        }
        AccountCommand::Delete(t) => ctx.delete(&ACCOUNT, &t).await,
    }
}

/// Runs a user command.
pub async fn user(ctx: &Ctx, cmd: UserCommand) -> Result<(), ClientError> {
    match cmd {
        UserCommand::Create(c) => {
            let password = read_password(&c.name, c.password_file.as_deref())?;
            let mut body = json!({ "name": c.name, "password": password, "role": c.role });
            if let Some(account) = c.account_uuid {
                body["account_uuid"] = json!(account);
            }
            ctx.create(&USER, &body).await
        }
        UserCommand::List(f) => ctx.list(&USER, &f).await,
        UserCommand::Show(t) => ctx.show(&USER, &t).await,
        UserCommand::Delete(t) => ctx.delete(&USER, &t).await,
        UserCommand::SetPassword(c) => {
            let user = c.user.to_string();
            let password = read_password(&user, c.password_file.as_deref())?;
            let mut body = json!({ "password": password });
            if let Some(file) = c.current_password_file.as_deref() {
                body["current_password"] = json!(read_password(&user, Some(file))?);
            }
            let path = ["users", user.as_str(), "password"];
            ctx.api.call(Method::PUT, &path, &[], Some(&body)).await?;
            if !ctx.json {
                eprintln!("set the password of user {user}");
            }
            Ok(())
        }
    }
}

/// Runs an API key command.
pub async fn api_key(ctx: &Ctx, cmd: ApiKeyCommand) -> Result<(), ClientError> {
    match cmd {
        ApiKeyCommand::Create(c) => {
            let body = json!({ "name": c.name });
            let key = ctx.post_on(&USER, &c.user, &["api-keys"], &[], Some(&body)).await?;
            ctx.print_detail(&key);
            if !ctx.json {
                eprintln!("the token is shown once: keep it now");
            }
            Ok(())
        }
        ApiKeyCommand::List(u) => {
            let user = u.user.to_string();
            let page = ctx.api.get(&["users", user.as_str(), "api-keys"], &[]).await?;
            ctx.print_list(API_KEY.columns, &page);
            Ok(())
        }
        ApiKeyCommand::Delete(t) => ctx.delete(&API_KEY, &t).await,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::client::table::render_rows;

    #[test]
    fn an_accounts_row_shows_usage_against_its_limits() {
        let account = json!({
            "uuid": "u", "name": "acme", "kind": "tenant",
            "quotas": {"max_vms": 10, "max_cpus": null, "max_memory_bytes": 4294967296u64},
            "usage": {"vms": 3, "cpus": 6, "memory_bytes": 1073741824, "ips": 0, "volume_bytes": 0},
        });
        let row = render_rows(ACCOUNT.columns, &[account]);
        assert!(row.contains("3/10"), "{row}");
        assert!(row.contains("1 GiB/4 GiB"), "{row}");
        assert!(!row.contains("6/"), "no limit on cpus: {row}");
    }

    #[test]
    fn quotas_left_out_are_sent_as_no_limit() {
        let q = QuotaArgs { max_vms: Some(5), ..QuotaArgs::default() };
        let body = serde_json::to_value(&q).unwrap();
        assert_eq!(body["max_vms"], 5);
        assert!(body["max_cpus"].is_null());
    }
}
