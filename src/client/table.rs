//! Turning API JSON into tables: a column is a header plus a function of one item, a list page
//! becomes one row per item, and a single resource becomes a FIELD/VALUE table of all its fields.
//!
//! Rendering works on `serde_json::Value` so that a field the API adds later shows up in `show`
//! without a client change, and a field it drops renders as `-` instead of failing.

use comfy_table::{presets, ContentArrangement, Table};
use serde_json::Value;

use super::units::format_size;

/// One table column: its header and how to compute its cell from an item.
pub struct Column {
    /// Header text.
    pub header: &'static str,
    /// The cell for one item.
    pub cell: fn(&Value) -> String,
}

impl Column {
    /// A column with the given header and cell function.
    pub const fn new(header: &'static str, cell: fn(&Value) -> String) -> Self {
        Self { header, cell }
    }
}

/// An empty table in the client's style.
fn styled() -> Table {
    let mut t = Table::new();
    t.load_style(presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Disabled);
    t
}

/// A plain rendering of a scalar: strings without quotes, `-` for null or missing.
pub fn text(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "-".to_string(),
        Some(Value::String(s)) if s.is_empty() => "-".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) if items.is_empty() => "-".to_string(),
        Some(Value::Array(items)) => {
            items.iter().map(|i| text(Some(i))).collect::<Vec<_>>().join(", ")
        }
        Some(other) => other.to_string(),
    }
}

/// The field `name` of `item` as text.
pub fn field(item: &Value, name: &str) -> String {
    text(item.get(name))
}

/// The byte-count field `name` of `item`, human-readable (`64 GiB`).
pub fn size(item: &Value, name: &str) -> String {
    item.get(name).and_then(Value::as_u64).map(format_size).unwrap_or_else(|| field(item, name))
}

/// `used / total` of two numeric fields, sizes human-readable when `bytes` is set.
pub fn used_of(item: &Value, used: &str, total: &str, bytes: bool) -> String {
    let show = |name: &str| if bytes { size(item, name) } else { field(item, name) };
    format!("{} / {}", show(used), show(total))
}

/// Whose a resource an account may own (an image, an L3 network) is: `shared`, or the
/// owning account's uuid.
pub fn owner(item: &Value) -> String {
    match item.get("shared").and_then(Value::as_bool) {
        Some(true) => "shared".into(),
        _ => field(item, "account_uuid"),
    }
}

/// The number of elements of the array field `name`.
pub fn count(item: &Value, name: &str) -> String {
    item.get(name).and_then(Value::as_array).map_or_else(|| "-".into(), |a| a.len().to_string())
}

/// Renders one row per item of `items` with `columns`.
pub fn render_rows(columns: &[Column], items: &[Value]) -> String {
    let mut t = styled();
    t.set_header(columns.iter().map(|c| c.header).collect::<Vec<_>>());
    for item in items {
        t.add_row(columns.iter().map(|c| (c.cell)(item)).collect::<Vec<_>>());
    }
    t.to_string()
}

/// Renders a list page (`{"items","total","limit","offset"}`) and, when the page does not hold
/// every match, a line saying which part is shown.
pub fn render_page(columns: &[Column], page: &Value) -> String {
    let items = page.get("items").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]);
    let total = page.get("total").and_then(Value::as_u64).unwrap_or(items.len() as u64);
    let offset = page.get("offset").and_then(Value::as_u64).unwrap_or(0);
    if items.is_empty() {
        return if total == 0 {
            "no items".to_string()
        } else {
            format!("no items at offset {offset} ({total} in all)")
        };
    }
    let mut out = render_rows(columns, items);
    let shown = items.len() as u64;
    if shown < total {
        out.push_str(&format!(
            "\n{}-{} of {total}; see more with --offset {} (and --limit)",
            offset + 1,
            offset + shown,
            offset + shown
        ));
    }
    out
}

/// Whether a field holds a byte count that reads better as `64 GiB`.
fn is_byte_field(name: &str) -> bool {
    name.ends_with("_bytes") || name.starts_with("memory_")
}

/// The VALUE cell of one field of a resource.
fn detail_value(name: &str, v: &Value) -> String {
    match v {
        Value::Number(n) if is_byte_field(name) => match n.as_u64() {
            Some(b) => format!("{} ({b})", format_size(b)),
            None => n.to_string(),
        },
        Value::Object(map) if map.is_empty() => "-".into(),
        Value::Object(_) => nested(v),
        Value::Array(items) if items.iter().any(Value::is_object) => {
            items.iter().map(summarize).collect::<Vec<_>>().join("\n")
        }
        other => text(Some(other)),
    }
}

/// A nested object in one cell: an error as `CODE: message`, a resource (a job's result) as its
/// uuid, name and state, anything else as compact JSON.
fn nested(v: &Value) -> String {
    if let (Some(code), Some(message)) = (v.get("code"), v.get("message")) {
        return format!("{}: {}", text(Some(code)), text(Some(message)));
    }
    if v.get("uuid").is_some() {
        let about: Vec<String> = ["name", "state"]
            .iter()
            .filter(|k| v.get(**k).is_some())
            .map(|k| format!("{k}={}", field(v, k)))
            .collect();
        return format!("{} {}", field(v, "uuid"), about.join(" ")).trim_end().to_string();
    }
    v.to_string()
}

/// One line for a nested object: `key=value` pairs, the way a NIC or an error reads best.
fn summarize(v: &Value) -> String {
    match v.as_object() {
        Some(map) => {
            map.iter().map(|(k, v)| format!("{k}={}", text(Some(v)))).collect::<Vec<_>>().join(" ")
        }
        None => text(Some(v)),
    }
}

/// Fields shown first in a detail table, when present; the others follow alphabetically.
const FIRST: [&str; 4] = ["uuid", "name", "state", "status"];

/// Renders every field of a single resource as a FIELD/VALUE table: identity and state first,
/// then the other fields by name.
pub fn render_detail(item: &Value) -> String {
    let Some(map) = item.as_object() else { return text(Some(item)) };
    let mut t = styled();
    t.set_header(vec!["FIELD", "VALUE"]);
    let first = FIRST.iter().filter_map(|k| map.get_key_value(*k));
    let rest = map.iter().filter(|(k, _)| !FIRST.contains(&k.as_str()));
    for (name, v) in first.chain(rest) {
        t.add_row(vec![name.clone(), detail_value(name, v)]);
    }
    t.to_string()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const HOST_COLUMNS: &[Column] = &[
        Column::new("NAME", |v| field(v, "name")),
        Column::new("STATUS", |v| field(v, "status")),
        Column::new("CPU", |v| used_of(v, "cpu_used", "cpu_total", false)),
        Column::new("MEMORY", |v| used_of(v, "memory_used", "memory_total", true)),
    ];

    fn sample_page() -> Value {
        json!({
            "items": [
                {"name": "h1", "status": "Connected", "cpu_used": 4, "cpu_total": 32,
                 "memory_used": 8589934592u64, "memory_total": 137438953472u64},
                {"name": "h2", "status": "Disconnected", "cpu_used": 0, "cpu_total": 16,
                 "memory_used": 0, "memory_total": 68719476736u64}
            ],
            "total": 5, "limit": 2, "offset": 0
        })
    }

    #[test]
    fn a_page_renders_one_row_per_item_with_human_sizes() {
        let out = render_page(HOST_COLUMNS, &sample_page());
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[1].contains("NAME") && lines[1].contains("MEMORY"), "{out}");
        let h1 = lines.iter().find(|l| l.contains("h1")).unwrap();
        assert!(
            h1.contains("Connected") && h1.contains("4 / 32") && h1.contains("8 GiB / 128 GiB")
        );
        let h2 = lines.iter().find(|l| l.contains("h2")).unwrap();
        assert!(h2.contains("0 B / 64 GiB"), "{out}");
        assert!(out.ends_with("1-2 of 5; see more with --offset 2 (and --limit)"), "{out}");
    }

    #[test]
    fn a_full_page_has_no_footer_and_an_empty_one_says_so() {
        let mut page = sample_page();
        page["total"] = json!(2);
        assert!(!render_page(HOST_COLUMNS, &page).contains("of 2"));
        assert_eq!(render_page(HOST_COLUMNS, &json!({"items": [], "total": 0})), "no items");
        let past_end = json!({"items": [], "total": 3, "offset": 10});
        assert_eq!(render_page(HOST_COLUMNS, &past_end), "no items at offset 10 (3 in all)");
    }

    #[test]
    fn missing_and_odd_fields_render_as_dashes_not_errors() {
        let out = render_rows(HOST_COLUMNS, &[json!({"name": "x", "cpu_used": null})]);
        assert!(out.contains("- / -"), "{out}");
        assert_eq!(text(Some(&json!(["a", "b"]))), "a, b");
        assert_eq!(text(Some(&json!(""))), "-");
        assert_eq!(count(&json!({"xs": [1, 2, 3]}), "xs"), "3");
        assert_eq!(count(&json!({}), "xs"), "-");
    }

    #[test]
    fn a_detail_table_shows_every_field_sizes_and_nested_objects() {
        let vm = json!({
            "uuid": "6a1f", "name": "web-1", "state": "Running", "memory_bytes": 2147483648u64,
            "host_uuid": null,
            "nics": [{"ip": "10.0.0.5", "mac": "fa:16:3e:00:00:01"}],
            "details": {}
        });
        let out = render_detail(&vm);
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[1].contains("FIELD"), "{out}");
        assert!(lines[3].contains("uuid") && lines[4].contains("name"), "identity first: {out}");
        assert!(lines[5].contains("state"), "{out}");
        assert!(out.contains("2 GiB (2147483648)"), "{out}");
        assert!(out.contains("ip=10.0.0.5 mac=fa:16:3e:00:00:01"), "{out}");
        let host_line = out.lines().find(|l| l.contains("host_uuid")).unwrap();
        assert!(host_line.contains(" - "), "{out}");
        assert_eq!(render_detail(&json!("plain")), "plain");
    }

    #[test]
    fn nested_errors_and_resources_stay_on_one_short_line() {
        let job = json!({"uuid": "j1", "state": "Failed",
                         "error": {"code": "TIMEOUT", "message": "stop timed out", "details": {}},
                         "result": {"uuid": "v1", "name": "web", "state": "Stopped", "cpus": 2}});
        let out = render_detail(&job);
        assert!(out.contains("TIMEOUT: stop timed out"), "{out}");
        assert!(out.contains("v1 name=web state=Stopped"), "{out}");
        assert!(!out.contains("cpus"), "{out}");
        assert_eq!(nested(&json!({"a": 1})), r#"{"a":1}"#);
    }
}
