//! What every resource command shares: the call context and output mode, list filters turned
//! into a query string, and the generic create / list / show / delete of a resource kind.

use std::io::Write;
use std::sync::Mutex;

use reqwest::Method;
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use super::http::{Api, ClientError};
use super::table::{self, Column};

/// A kind of resource: where it lives in the API, what to call it, and its list columns.
pub struct Kind {
    /// Collection path under `/v1`, e.g. `zones`.
    pub path: &'static str,
    /// What a person calls one, e.g. `zone`.
    pub noun: &'static str,
    /// Columns of its list table.
    pub columns: &'static [Column],
}

/// Paging, which every list accepts.
#[derive(clap::Args, Serialize, Debug, Clone, Default)]
pub struct Paging {
    /// At most this many items (the API's default is 100, its maximum 1000; page with --offset).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// Skip this many items first.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<u32>,
}

/// Paging and the name filter, which every list of named resources accepts.
#[derive(clap::Args, Serialize, Debug, Clone, Default)]
pub struct ListArgs {
    /// Only items with exactly this name.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[command(flatten)]
    #[serde(flatten)]
    pub paging: Paging,
}

/// One resource named by its UUID.
#[derive(clap::Args, Debug, Clone)]
pub struct Target {
    /// The resource's UUID.
    pub uuid: Uuid,
}

/// Where command output goes.
#[derive(Debug)]
pub enum Sink {
    /// The process's stdout.
    Stdout,
    /// A buffer, for tests that check what a command printed.
    #[cfg_attr(not(test), allow(dead_code))]
    Buffer(Mutex<String>),
}

/// Everything a command needs: the API and how to print.
#[derive(Debug)]
pub struct Ctx {
    /// The management node's API.
    pub api: Api,
    /// Print raw JSON instead of tables.
    pub json: bool,
    /// Where output goes.
    pub sink: Sink,
}

/// Converts a request or filter struct to JSON.
pub fn to_json(value: &impl Serialize) -> Result<Value, ClientError> {
    serde_json::to_value(value).map_err(|e| ClientError::Encode(e.to_string()))
}

/// The query pairs of a filter struct: its non-null top-level fields, strings unquoted.
pub fn query_of(filters: &impl Serialize) -> Result<Vec<(String, String)>, ClientError> {
    let Value::Object(map) = to_json(filters)? else { return Ok(Vec::new()) };
    Ok(map
        .into_iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| match v {
            Value::String(s) => (k, s),
            other => (k, other.to_string()),
        })
        .collect())
}

impl Ctx {
    /// Writes one line of output. On stdout a closed pipe (`oxstack vm list | head`) is ignored.
    pub fn out(&self, text: &str) {
        match &self.sink {
            Sink::Stdout => {
                let _ = writeln!(std::io::stdout().lock(), "{text}");
            }
            Sink::Buffer(buf) => {
                let mut buf = buf.lock().unwrap_or_else(|e| e.into_inner());
                buf.push_str(text);
                buf.push('\n');
            }
        }
    }

    /// Prints one resource: pretty JSON, or a FIELD/VALUE table.
    pub fn print_detail(&self, value: &Value) {
        if self.json {
            self.print_json(value);
        } else {
            self.out(&table::render_detail(value));
        }
    }

    /// Prints one resource as a single row of `columns` (compact, for action results).
    pub fn print_row(&self, columns: &[Column], value: &Value) {
        if self.json {
            self.print_json(value);
        } else {
            self.out(&table::render_rows(columns, std::slice::from_ref(value)));
        }
    }

    /// Prints a list answer: a page (`{"items",...}`) or a bare array.
    pub fn print_list(&self, columns: &[Column], value: &Value) {
        if self.json {
            self.print_json(value);
        } else if let Some(items) = value.as_array() {
            self.out(&if items.is_empty() {
                "no items".to_string()
            } else {
                table::render_rows(columns, items)
            });
        } else {
            self.out(&table::render_page(columns, value));
        }
    }

    /// Prints a message for people; with `--json`, prints the answer instead if it has one.
    pub fn print_done(&self, message: &str, value: &Value) {
        if !self.json {
            self.out(message);
        } else if !value.is_null() {
            self.print_json(value);
        }
    }

    /// Prints pretty JSON.
    pub fn print_json(&self, value: &Value) {
        self.out(&serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string()));
    }

    /// `POST /v1/<kind>` with `body`; prints the created resource.
    pub async fn create(&self, kind: &Kind, body: &impl Serialize) -> Result<(), ClientError> {
        let body = to_json(body)?;
        let created = self.api.call(Method::POST, &[kind.path], &[], Some(&body)).await?;
        self.print_detail(&created);
        Ok(())
    }

    /// `GET /v1/<kind>?<filters>`; prints the page.
    pub async fn list(&self, kind: &Kind, filters: &impl Serialize) -> Result<(), ClientError> {
        let page = self.api.get(&[kind.path], &query_of(filters)?).await?;
        self.print_list(kind.columns, &page);
        Ok(())
    }

    /// `GET /v1/<kind>/<uuid>`; prints the resource.
    pub async fn show(&self, kind: &Kind, target: &Target) -> Result<(), ClientError> {
        let uuid = target.uuid.to_string();
        let item = self.api.get(&[kind.path, &uuid], &[]).await?;
        self.print_detail(&item);
        Ok(())
    }

    /// `DELETE /v1/<kind>/<uuid>`.
    pub async fn delete(&self, kind: &Kind, target: &Target) -> Result<(), ClientError> {
        let uuid = target.uuid.to_string();
        let answer = self.api.call(Method::DELETE, &[kind.path, &uuid], &[], None).await?;
        self.print_done(&format!("deleted {} {uuid}", kind.noun), &answer);
        Ok(())
    }

    /// `POST /v1/<kind>/<uuid>/<segments...>` with an optional body; returns the answer.
    pub async fn post_on(
        &self,
        kind: &Kind,
        uuid: &Uuid,
        segments: &[&str],
        query: &[(String, String)],
        body: Option<&Value>,
    ) -> Result<Value, ClientError> {
        let uuid = uuid.to_string();
        let mut path = vec![kind.path, uuid.as_str()];
        path.extend_from_slice(segments);
        self.api.call(Method::POST, &path, query, body).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Filters {
        #[serde(flatten)]
        list: ListArgs,
        #[serde(skip_serializing_if = "Option::is_none")]
        state: Option<String>,
        zone_uuid: Option<Uuid>,
    }

    #[test]
    fn filters_become_query_pairs_without_the_unset_ones() {
        let zone = Uuid::nil();
        let f = Filters {
            list: ListArgs {
                name: Some("web 1".into()),
                paging: Paging { limit: Some(20), offset: None },
            },
            state: None,
            zone_uuid: Some(zone),
        };
        let pairs = query_of(&f).unwrap();
        let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("name"), Some("web 1"));
        assert_eq!(get("limit"), Some("20"));
        assert_eq!(get("zone_uuid"), Some("00000000-0000-0000-0000-000000000000"));
        assert_eq!(get("offset"), None);
        assert_eq!(get("state"), None);
        assert_eq!(pairs.len(), 3);
    }

    #[test]
    fn list_queries_end_up_encoded_in_the_url() {
        let api = Api::new("http://127.0.0.1:8080", None, None).unwrap();
        let paging = Paging { limit: None, offset: Some(7) };
        let f = ListArgs { name: Some("a&b".into()), paging };
        let url = api.url(&["hosts"], &query_of(&f).unwrap());
        assert_eq!(url.as_str(), "http://127.0.0.1:8080/v1/hosts?name=a%26b&offset=7");
    }
}
