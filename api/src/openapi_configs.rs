//! The global configs in the OpenAPI document: one path per config name
//! (`/v1/global-configs/host.ping_interval_secs`, ...), each with the exact schema of its value,
//! in place of the one `/v1/global-configs/{name}` path the router serves, whose free-text
//! `value` could not say what each config takes.
//!
//! An integer config's value is a string of the integer in canonical form (see
//! [`ConfigKind::validate`]), which a regular expression states exactly: [`range_pattern`]
//! writes the one that matches the decimals from `min` to `max` and nothing else. An enumerated
//! config's value is one of its values.

use serde_json::{json, Map, Value};

use oxstack_engine::config::{ConfigKind, DEFINITIONS};

/// The generic path the router serves, which the document replaces.
const GENERIC: &str = "/v1/global-configs/{name}";

/// Replaces the generic config path with one path per config (see the module doc).
pub fn add_config_paths(doc: &mut Value) {
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else { return };
    let Some(generic) = paths.remove(GENERIC) else { return };
    for def in DEFINITIONS {
        let name = def.name.as_str();
        let mut item = generic.clone();
        let Some(ops) = item.as_object_mut() else { continue };
        for (method, op) in ops.iter_mut() {
            let Some(op) = op.as_object_mut() else { continue };
            let id = op.get("operationId").and_then(Value::as_str).unwrap_or(method);
            op.insert("operationId".into(), json!(format!("{id}_{}", name.replace('.', "_"))));
            op.insert(
                "summary".into(),
                json!(format!("{} ({})", def.description, def.kind.describe())),
            );
            // The name is in the path: no parameter, and never an unknown config.
            op.remove("parameters");
            if let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) {
                responses.remove("404");
            }
            if op.contains_key("requestBody") {
                op.insert("requestBody".into(), update_body(&def.kind));
            }
        }
        paths.insert(format!("/v1/global-configs/{name}"), item);
    }
}

/// The body of `PUT` for a config of `kind`: `{"value": ...}` with the value's exact schema.
fn update_body(kind: &ConfigKind) -> Value {
    let value = match kind {
        ConfigKind::Int { min, max } => json!({
            "type": "string",
            "pattern": range_pattern(u64::try_from(*min).unwrap_or(0), u64::try_from(*max).unwrap_or(0)),
            "maxLength": max.to_string().len(),
            "description": format!(
                "An integer from {min} to {max}, in decimal without sign, leading zeros or white space"
            ),
        }),
        ConfigKind::OneOf(values) => json!({ "type": "string", "enum": values }),
    };
    let mut properties = Map::new();
    properties.insert("value".into(), value);
    json!({
        "required": true,
        "content": { "application/json": { "schema": {
            "type": "object",
            "required": ["value"],
            "properties": properties,
            "additionalProperties": false,
        }}},
    })
}

/// An anchored regular expression that matches exactly the decimal numbers from `min` to `max`
/// (`min <= max`) in canonical form: no sign, no leading zeros, nothing around them. It uses
/// only `[0-9]`-style classes, so it means the same in every regex dialect (`\d` would take
/// other scripts' digits in some).
pub fn range_pattern(min: u64, max: u64) -> String {
    let (min, max) = (min.min(max), max.max(min));
    let mut alternatives = Vec::new();
    let (lo_len, hi_len) = (digits(min), digits(max));
    for len in lo_len..=hi_len {
        let lo = if len == lo_len { min } else { 10u64.pow(len - 1) };
        let hi = if len == hi_len { max } else { 10u64.pow(len) - 1 };
        same_length(lo.to_string().as_bytes(), hi.to_string().as_bytes(), &mut alternatives);
    }
    format!("^({})$", alternatives.join("|"))
}

fn digits(n: u64) -> u32 {
    n.checked_ilog10().unwrap_or(0) + 1
}

/// A class of the digits `from..=to`.
fn class(from: u8, to: u8) -> String {
    if from == to {
        (from as char).to_string()
    } else {
        format!("[{}-{}]", from as char, to as char)
    }
}

/// Adds to `out` alternatives that together match the numbers from `lo` to `hi`, written with
/// the same number of digits (`lo <= hi`).
fn same_length(lo: &[u8], hi: &[u8], out: &mut Vec<String>) {
    let (Some((&l, lo_rest)), Some((&h, hi_rest))) = (lo.split_first(), hi.split_first()) else {
        out.push(String::new());
        return;
    };
    let any = "[0-9]".repeat(lo_rest.len());
    if l == h {
        let mut tails = Vec::new();
        same_length(lo_rest, hi_rest, &mut tails);
        out.extend(tails.into_iter().map(|t| format!("{}{t}", l as char)));
        return;
    }
    let lo_full = lo_rest.iter().all(|&d| d == b'0');
    let hi_full = hi_rest.iter().all(|&d| d == b'9');
    // `l` followed by lo_rest..=99..9, unless that is all of `l`'s numbers.
    let first_full = if lo_full {
        l
    } else {
        let nines = vec![b'9'; lo_rest.len()];
        let mut tails = Vec::new();
        same_length(lo_rest, &nines, &mut tails);
        out.extend(tails.into_iter().map(|t| format!("{}{t}", l as char)));
        l + 1
    };
    let last_full = if hi_full { h } else { h - 1 };
    if first_full <= last_full {
        out.push(format!("{}{any}", class(first_full, last_full)));
    }
    if !hi_full {
        let zeros = vec![b'0'; hi_rest.len()];
        let mut tails = Vec::new();
        same_length(&zeros, hi_rest, &mut tails);
        out.extend(tails.into_iter().map(|t| format!("{}{t}", h as char)));
    }
}

#[cfg(test)]
mod tests {
    use regex::Regex;

    use super::*;

    /// Strings around `n` that are not its canonical form.
    fn non_canonical(n: u64) -> Vec<String> {
        vec![
            format!("0{n}"),
            format!("+{n}"),
            format!("-{n}"),
            format!(" {n}"),
            format!("{n} "),
            format!("{n}\n"),
            format!("{n}.0"),
            format!("{n}{n}x"),
        ]
    }

    fn check_range(min: u64, max: u64, candidates: impl IntoIterator<Item = u64>) {
        let pattern = range_pattern(min, max);
        let re = Regex::new(&pattern).unwrap();
        for n in candidates {
            let inside = (min..=max).contains(&n);
            assert_eq!(re.is_match(&n.to_string()), inside, "{n} in {min}..={max}: {pattern}");
            for s in non_canonical(n) {
                assert!(!re.is_match(&s), "{s:?} in {min}..={max}: {pattern}");
            }
        }
        assert!(!re.is_match(""));
    }

    #[test]
    fn small_ranges_exhaustively() {
        for min in 0..=120 {
            for max in min..=120 {
                check_range(min, max, 0..=max * 2 + 12);
            }
        }
    }

    #[test]
    fn large_ranges_at_their_edges_and_at_random() {
        // xorshift: deterministic, no dependency.
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut ranges = vec![(0, u64::MAX), (1, i64::MAX as u64), (999, 1000), (1, 86_400)];
        for _ in 0..3_000 {
            let (a, b) = (next() >> (next() % 64), next() >> (next() % 64));
            ranges.push((a.min(b), a.max(b)));
        }
        for (min, max) in ranges {
            let mut candidates = vec![min, max, min.saturating_sub(1), max.saturating_add(1)];
            for p in 0..20 {
                let ten = 10u64.pow(p);
                candidates.extend([ten - 1, ten, ten + 1]);
            }
            for _ in 0..40 {
                candidates.push(next() >> (next() % 64));
                let span = max - min;
                candidates.push(min + if span == u64::MAX { next() } else { next() % (span + 1) });
            }
            check_range(min, max, candidates);
        }
    }

    #[test]
    fn each_config_path_states_exactly_what_the_config_takes() {
        for def in DEFINITIONS {
            let body = update_body(&def.kind);
            let value = &body["content"]["application/json"]["schema"]["properties"]["value"];
            let accepted = |s: &str| match (&def.kind, value["pattern"].as_str()) {
                (ConfigKind::Int { .. }, Some(p)) => Regex::new(p).unwrap().is_match(s),
                (ConfigKind::OneOf(_), None) => {
                    value["enum"].as_array().unwrap().contains(&json!(s))
                }
                _ => panic!("{}: {value}", def.name.as_str()),
            };
            let mut candidates: Vec<String> =
                ["", " ", "x", "Delay", "delay", "Spread", "Pack "].map(String::from).to_vec();
            if let ConfigKind::Int { min, max } = def.kind {
                assert!(min >= 0, "{}: the pattern is for non-negative ranges", def.name.as_str());
                for n in [min - 1, min, min + 1, max - 1, max, max + 1, max * 10, (min + max) / 2] {
                    candidates.push(n.to_string());
                    candidates.extend(non_canonical(n.unsigned_abs()));
                }
                if max <= 20_000 {
                    candidates.extend((0..=max + 10).map(|n| n.to_string()));
                }
            }
            if let ConfigKind::OneOf(values) = def.kind {
                candidates.extend(values.iter().map(|v| v.to_string()));
                candidates.extend(values.iter().map(|v| v.to_lowercase()));
            }
            for s in candidates {
                assert_eq!(
                    accepted(&s),
                    def.kind.validate(&s).is_ok(),
                    "{}: {s:?}",
                    def.name.as_str()
                );
            }
        }
    }

    #[test]
    fn the_generic_path_becomes_one_path_per_config() {
        let mut doc = json!({"paths": {
            GENERIC: {
                "get": {"operationId": "get_config", "parameters": [{"name": "name"}],
                        "responses": {"200": {}, "404": {}}},
                "put": {"operationId": "update_config", "parameters": [{"name": "name"}],
                        "requestBody": {}, "responses": {"200": {}, "400": {}, "404": {}}},
            },
            "/v1/global-configs": {"get": {}},
        }});
        add_config_paths(&mut doc);
        let paths = doc["paths"].as_object().unwrap();
        assert!(!paths.contains_key(GENERIC));
        assert_eq!(paths.len(), DEFINITIONS.len() + 1);
        let ping = &paths["/v1/global-configs/host.ping_interval_secs"];
        assert_eq!(ping["put"]["operationId"], "update_config_host_ping_interval_secs");
        assert!(ping["put"].get("parameters").is_none());
        assert!(ping["put"]["responses"].get("404").is_none());
        assert!(ping["put"]["responses"].get("400").is_some());
        let schema = &ping["put"]["requestBody"]["content"]["application/json"]["schema"];
        assert_eq!(schema["properties"]["value"]["pattern"], range_pattern(1, 86_400));
    }
}
