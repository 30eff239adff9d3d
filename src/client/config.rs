//! `oxstack config ...`: the management node's global configuration (typed settings with a
//! default and a description each; a change takes effect at once).

use clap::Subcommand;
use reqwest::Method;
use serde_json::json;

use super::http::ClientError;
use super::resource::Ctx;
use super::table::{field, Column};

/// Path of global configs under `/v1`.
const PATH: &str = "global-configs";

/// Columns of the config list.
pub const COLUMNS: &[Column] = &[
    Column::new("NAME", |v| field(v, "name")),
    Column::new("VALUE", |v| field(v, "value")),
    Column::new("DEFAULT", |v| field(v, "default")),
    Column::new("KIND", |v| field(v, "kind")),
];

/// Config commands.
#[derive(Subcommand, Debug, Clone)]
pub enum ConfigCommand {
    /// List every setting with its value and default.
    List,
    /// Show one setting with its description.
    Show {
        /// Dotted name, e.g. host.ping_interval_secs.
        name: String,
    },
    /// Change a setting (validated by the node; takes effect at once).
    #[command(allow_negative_numbers = true)]
    Set {
        /// Dotted name, e.g. vm.deletion_policy.
        name: String,
        /// New value, e.g. Direct.
        value: String,
    },
}

/// Runs a config command.
pub async fn run(ctx: &Ctx, cmd: ConfigCommand) -> Result<(), ClientError> {
    match cmd {
        ConfigCommand::List => {
            let all = ctx.api.get(&[PATH], &[]).await?;
            ctx.print_list(COLUMNS, &all);
        }
        ConfigCommand::Show { name } => {
            let one = ctx.api.get(&[PATH, &name], &[]).await?;
            ctx.print_detail(&one);
        }
        ConfigCommand::Set { name, value } => {
            let body = json!({ "value": value });
            let one = ctx.api.call(Method::PUT, &[PATH, &name], &[], Some(&body)).await?;
            ctx.print_row(COLUMNS, &one);
        }
    }
    Ok(())
}
