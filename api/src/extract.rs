//! Request extractors that turn every malformed input into a 400 `INVALID_ARGUMENT` naming what
//! is wrong: the JSON body ([`ApiJson`], [`OptionalJson`]), the query string ([`ApiQuery`]) and
//! UUIDs in the path ([`PathId`], [`PathIds`], [`PathName`]).
//!
//! Every POST, PUT and PATCH handler takes its body through [`ApiJson`] or [`OptionalJson`]
//! (`OptionalJson<NoOptions>` when it has nothing to take), and both first check that the
//! request says `Content-Type: application/json` (or `application/...+json`, any parameters),
//! also when the body is empty: else 415 `UNSUPPORTED_MEDIA_TYPE`, before the body is read. So a
//! browser's form or `text/plain` post, which needs no CORS preflight, never runs anything.
//!
//! Bodies and query strings are decoded with `serde_path_to_error`, so a type error names the
//! field it happened in (`cpus`, `l3_network_uuids[1]`), and serde's own messages name missing
//! and unknown fields. A body must be one JSON object: serde would otherwise take an array for
//! a struct, field by field in declaration order (`["renamed", "Disabled"]` as a host update).
//! It is read as a JSON value first ([`Strict`]): a key given twice is refused, and `2.0` is the
//! integer 2, as in JSON Schema. No text in a body or a query string may be longer than
//! `TEXT_MAX_CHARS` or hold a character `refused_in_text` refuses (control characters but tab and
//! newlines, bidirectional controls; `oxstack_engine::services::schema`, which the OpenAPI
//! document's patterns are built from too).

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, RawPathParams, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use std::fmt;

use serde::de::{self, DeserializeOwned, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::error::ApiError;
use oxstack_engine::services::schema::{
    refused_in_text, PEM_FIELDS, PEM_MAX_CHARS, TEXT_MAX_CHARS,
};

/// The largest request body taken, in bytes: axum's default body limit, which the body
/// extractors apply (a longer body is refused with 413 PAYLOAD_TOO_LARGE).
pub const MAX_BODY: usize = 2 * 1024 * 1024;

/// 413 PAYLOAD_TOO_LARGE: a body over [`MAX_BODY`].
pub fn body_too_large() -> ApiError {
    ApiError::new(
        "PAYLOAD_TOO_LARGE",
        format!("the request body may be at most {MAX_BODY} bytes"),
        json!({ "limit": MAX_BODY }),
    )
}

/// A required JSON body.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

/// A JSON body that may be left out entirely (a body of no bytes means `T::default()`; one of
/// white space only is refused, as it is not JSON).
#[derive(Debug)]
pub struct OptionalJson<T>(pub T);

/// The query string.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

/// The one UUID path parameter of a route, as a typed ID.
#[derive(Debug)]
pub struct PathId<T>(pub T);

/// The two UUID path parameters of a route, in order.
#[derive(Debug)]
pub struct PathIds<A, B>(pub A, pub B);

/// The one path parameter of a route as text (global config names).
#[derive(Debug)]
pub struct PathName(pub String);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        check_json_content_type(req.headers().get(CONTENT_TYPE))?;
        let bytes = body_bytes(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::bad_request("the request body is empty; expected a JSON object"));
        }
        parse_json(&bytes).map(Self)
    }
}

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        check_json_content_type(req.headers().get(CONTENT_TYPE))?;
        let bytes = body_bytes(req, state).await?;
        // Left out means no bytes at all: white space alone is not JSON, and is refused.
        if bytes.is_empty() {
            return Ok(Self(T::default()));
        }
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::bad_request(
                "the request body is only white space: send a JSON object, or no body at all",
            ));
        }
        parse_json(&bytes).map(Self)
    }
}

/// The body.
async fn body_bytes<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state).await.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return body_too_large();
        }
        ApiError::bad_request(format!("cannot read the request body: {}", r.body_text()))
    })
}

/// A write must say it is JSON, also with an empty body: 415 UNSUPPORTED_MEDIA_TYPE otherwise
/// (`application/json` or `application/<anything>+json`, with any parameters).
fn check_json_content_type(content_type: Option<&HeaderValue>) -> Result<(), ApiError> {
    let given = content_type.map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let essence = given.as_deref().and_then(|v| v.split(';').next());
    let essence = essence.map(|m| m.trim().to_ascii_lowercase());
    match essence.as_deref() {
        Some("application/json") => Ok(()),
        Some(m) if m.starts_with("application/") && m.ends_with("+json") => Ok(()),
        _ => {
            Err(ApiError::new(
                "UNSUPPORTED_MEDIA_TYPE",
                format!(
                "POST, PUT and PATCH requests must send `Content-Type: application/json`, also \
                 with an empty body (got {})",
                given.as_deref().map_or_else(|| "no Content-Type".to_string(), |g| format!("`{g}`"))
            ),
                json!({ "field": "Content-Type", "content_type": given }),
            ))
        }
    }
}

/// What a body's top-level JSON value is when it is not an object, judged by its first byte
/// (`None` for an object, and for bytes that are not JSON at all: the parser says why).
fn not_an_object(bytes: &[u8]) -> Option<&'static str> {
    match bytes.iter().find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))? {
        b'[' => Some("an array"),
        b'"' => Some("a string"),
        b'n' => Some("null"),
        b't' | b'f' => Some("a boolean"),
        b'-' | b'0'..=b'9' => Some("a number"),
        _ => None,
    }
}

/// Parses a JSON body, which must be one JSON object, naming the field of a type error, a
/// missing or an unknown field.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if let Some(kind) = not_an_object(bytes) {
        return Err(ApiError::bad_request(format!(
            "the request body must be a JSON object, not {kind}"
        )));
    }
    let Strict(value) = serde_json::from_slice(bytes).map_err(|e| {
        if e.is_syntax() || e.is_eof() || e.is_io() {
            ApiError::bad_request(format!("the request body is not valid JSON: {e}"))
        } else {
            ApiError::bad_request(format!("invalid request body: {e}"))
        }
    })?;
    if let Some((field, why)) = refused_text(&value, "") {
        return Err(text_refused(&field, &why));
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let inner = e.inner();
        match field_of(&e.path().to_string(), &inner.to_string()) {
            Some((f, true)) => ApiError::invalid(&f, format!("invalid request body: {inner}")),
            Some((f, false)) => {
                ApiError::invalid(&f, format!("invalid request body: field `{f}`: {inner}"))
            }
            None => ApiError::bad_request(format!("invalid request body: {inner}")),
        }
    })
}

/// Why `text` may not be in a request, if it may not: longer than `max` characters, or a
/// character no text may hold.
fn refusal(text: &str, max: usize) -> Option<String> {
    if let Some(c) = text.chars().find(|c| refused_in_text(*c)) {
        let code = c as u32;
        return Some(format!(
            "text may not contain U+{code:04X} (no control characters but tab and newlines, \
             no bidirectional controls)"
        ));
    }
    (text.chars().count() > max).then(|| format!("text may be at most {max} characters long"))
}

/// Where a body holds text no request may have (the first such place), and why.
fn refused_text(value: &Value, at: &str) -> Option<(String, String)> {
    match value {
        Value::String(s) => {
            let max = if PEM_FIELDS.contains(&at) { PEM_MAX_CHARS } else { TEXT_MAX_CHARS };
            refusal(s, max).map(|why| (at.to_string(), why))
        }
        Value::Array(items) => {
            items.iter().enumerate().find_map(|(i, v)| refused_text(v, &format!("{at}[{i}]")))
        }
        Value::Object(fields) => fields.iter().find_map(|(k, v)| {
            refused_text(v, &if at.is_empty() { k.clone() } else { format!("{at}.{k}") })
        }),
        _ => None,
    }
}

fn text_refused(field: &str, why: &str) -> ApiError {
    ApiError::invalid(field, format!("invalid {field}: {why}"))
}

/// A JSON value read strictly, before it becomes the request type: an object with a key twice
/// is refused, and a number with a zero fraction (`2.0`, `1e3`) is the integer it equals, as JSON
/// Schema counts it (serde would refuse `2.0` for an integer field that the OpenAPI document
/// says takes it).
struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        const TWO_63: f64 = 9_223_372_036_854_775_808.0;
        Ok(match v {
            _ if v.fract() != 0.0 => Value::from(v),
            _ if (0.0..2.0 * TWO_63).contains(&v) => Value::from(v as u64),
            _ if (-TWO_63..0.0).contains(&v) => Value::from(v as i64),
            _ => Value::from(v),
        })
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Strict(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(de::Error::custom(format!("the key `{key}` is given twice")));
            }
            let Strict(value) = map.next_value()?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        parse_query(parts.uri.query().unwrap_or_default()).map(Self)
    }
}

/// Parses a query string, naming the parameter that is wrong.
pub fn parse_query<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    let pairs = form_urlencoded::parse(query.as_bytes());
    if let Some((name, why)) =
        pairs.clone().find_map(|(n, v)| refusal(&v, TEXT_MAX_CHARS).map(|why| (n, why)))
    {
        return Err(text_refused(&name, &why));
    }
    let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
    serde_path_to_error::deserialize(de).map_err(|e| {
        let inner = e.inner().to_string();
        match field_of(&e.path().to_string(), &inner) {
            Some((f, true)) => ApiError::invalid(&f, format!("invalid query string: {inner}")),
            Some((f, false)) => {
                ApiError::invalid(&f, format!("invalid query parameter `{f}`: {inner}"))
            }
            None => ApiError::bad_request(format!("invalid query string: {inner}")),
        }
    })
}

/// The field an error is about: the path to where it happened, or for errors raised at the
/// level of the enclosing object (missing and unknown fields) the field serde's message names.
/// The flag says whether the message already names it.
fn field_of(path: &str, message: &str) -> Option<(String, bool)> {
    let named = ["missing field `", "unknown field `"].iter().find_map(|prefix| {
        let rest = message.strip_prefix(prefix)?;
        rest.split('`').next().map(str::to_string)
    });
    if !path.is_empty() && path != "." {
        // A missing or unknown field inside a nested object: `outer.inner`.
        let full = match &named {
            Some(n) if !path.ends_with(n.as_str()) => format!("{path}.{n}"),
            _ => path.to_string(),
        };
        return Some((full, false));
    }
    named.map(|n| (n, true))
}

async fn path_params<S: Send + Sync>(
    parts: &mut Parts,
    state: &S,
) -> Result<Vec<(String, String)>, ApiError> {
    let raw = RawPathParams::from_request_parts(parts, state)
        .await
        .map_err(|r| ApiError::bad_request(format!("invalid path: {}", r.body_text())))?;
    Ok(raw.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
}

/// A UUID path parameter, in the hyphenated form only (as the document's `format: uuid` says).
fn parse_uuid(name: &str, value: &str) -> Result<Uuid, ApiError> {
    oxstack_hypervisor::parse_hyphenated(value).map_err(|e| {
        ApiError::new(
            "INVALID_ARGUMENT",
            format!("invalid path parameter `{name}`: {e}"),
            json!({ "field": name, "location": "path" }),
        )
    })
}

fn param(params: &[(String, String)], index: usize) -> Result<&(String, String), ApiError> {
    params
        .get(index)
        .ok_or_else(|| ApiError::internal(format!("route has no path parameter {index}")))
}

impl<S: Send + Sync, T: From<Uuid>> FromRequestParts<S> for PathId<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let params = path_params(parts, state).await?;
        let (name, value) = param(&params, 0)?;
        parse_uuid(name, value).map(|u| Self(T::from(u)))
    }
}

impl<S: Send + Sync, A: From<Uuid>, B: From<Uuid>> FromRequestParts<S> for PathIds<A, B> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let params = path_params(parts, state).await?;
        let (a_name, a) = param(&params, 0)?;
        let (b_name, b) = param(&params, 1)?;
        Ok(Self(A::from(parse_uuid(a_name, a)?), B::from(parse_uuid(b_name, b)?)))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for PathName {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let params = path_params(parts, state).await?;
        param(&params, 0).map(|(_, v)| Self(v.clone()))
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Req {
        name: String,
        cpus: u32,
        #[serde(default)]
        ids: Vec<Uuid>,
    }

    fn field(e: &ApiError) -> Option<&str> {
        e.body.details.get("field").and_then(|f| f.as_str())
    }

    #[test]
    fn json_errors_name_the_field() {
        let e = parse_json::<Req>(br#"{"name": "a", "cpus": -1}"#).unwrap_err();
        assert_eq!(field(&e), Some("cpus"));
        assert!(e.body.message.contains("cpus"), "{}", e.body.message);
        let e = parse_json::<Req>(br#"{"cpus": 1}"#).unwrap_err();
        assert_eq!(field(&e), Some("name"));
        let e = parse_json::<Req>(br#"{"name": "a", "cpus": 1, "colour": 2}"#).unwrap_err();
        assert_eq!(field(&e), Some("colour"));
        let e = parse_json::<Req>(br#"{"name": "a", "cpus": 1, "ids": ["nope"]}"#).unwrap_err();
        assert_eq!(field(&e), Some("ids[0]"));
        let e = parse_json::<Req>(br#"{"name": "a", "#).unwrap_err();
        assert_eq!(e.body.code, "INVALID_ARGUMENT");
        assert!(e.body.message.contains("not valid JSON"), "{}", e.body.message);
        let e = parse_json::<Req>(br#"{"name": "a", "cpus": 1} trailing"#).unwrap_err();
        assert_eq!(e.status.as_u16(), 400);
        assert!(parse_json::<Req>(br#"{"name": "a", "cpus": 1}"#).is_ok());
    }

    #[test]
    fn bodies_must_be_objects() {
        // serde takes a sequence for a struct, field by field: not through this parser.
        assert!(serde_json::from_slice::<Req>(br#"["a", 1]"#).is_ok());
        for (body, kind) in [
            (&br#"["a", 1]"#[..], "an array"),
            (b" \t\r\n[\"a\", 1, []]", "an array"),
            (br#""a""#, "a string"),
            (b"null", "null"),
            (b"true", "a boolean"),
            (b"-1", "a number"),
            (b"7", "a number"),
        ] {
            let e = parse_json::<Req>(body).unwrap_err();
            assert_eq!(e.status.as_u16(), 400);
            assert_eq!(e.body.code, "INVALID_ARGUMENT");
            assert!(e.body.message.contains("must be a JSON object"), "{}", e.body.message);
            assert!(e.body.message.ends_with(kind), "{}", e.body.message);
        }
        let e = parse_json::<Req>(b"{nope").unwrap_err();
        assert!(e.body.message.contains("not valid JSON"), "{}", e.body.message);
        assert!(parse_json::<Req>(b" \n{\"name\": \"a\", \"cpus\": 1}").is_ok());
    }

    #[test]
    fn integral_floats_are_integers_and_keys_are_given_once() {
        let r = parse_json::<Req>(br#"{"name": "a", "cpus": 4.0}"#).unwrap();
        assert_eq!(r.cpus, 4);
        assert_eq!(parse_json::<Req>(br#"{"name": "a", "cpus": 4e2}"#).unwrap().cpus, 400);
        let e = parse_json::<Req>(br#"{"name": "a", "cpus": 4.5}"#).unwrap_err();
        assert_eq!(field(&e), Some("cpus"));
        let e = parse_json::<Req>(br#"{"name": "a", "cpus": -1.0}"#).unwrap_err();
        assert_eq!(field(&e), Some("cpus"));
        let e = parse_json::<Req>(br#"{"name": "a", "cpus": 1e30}"#).unwrap_err();
        assert_eq!(field(&e), Some("cpus"));
        let e = parse_json::<Req>(br#"{"name": "a", "cpus": 1, "name": "b"}"#).unwrap_err();
        assert!(e.body.message.contains("`name` is given twice"), "{}", e.body.message);
        #[derive(Debug, Deserialize)]
        struct Big {
            n: u64,
            i: i64,
        }
        let b = parse_json::<Big>(br#"{"n": 9223372036854775807.0, "i": -9223372036854775808.0}"#);
        let b = b.unwrap();
        assert_eq!((b.n, b.i), (1 << 63, i64::MIN));
    }

    #[test]
    fn text_may_not_hold_control_characters_nor_be_too_long() {
        let e = parse_json::<Req>(b"{\"name\": \"a\\u001b[31mb\", \"cpus\": 1}").unwrap_err();
        assert_eq!(field(&e), Some("name"));
        assert!(e.body.message.contains("U+001B"), "{}", e.body.message);
        let e = parse_json::<Req>("{\"name\": \"evil\u{202E}txt\", \"cpus\": 1}".as_bytes());
        assert!(e.unwrap_err().body.message.contains("U+202E"));
        let e = parse_json::<Req>(b"{\"name\": \"a\\u009bb\", \"cpus\": 1}").unwrap_err();
        assert!(e.body.message.contains("U+009B"), "C1: {}", e.body.message);
        let ok = parse_json::<Req>(b"{\"name\": \"a\\tb\\r\\nc\", \"cpus\": 1}");
        assert_eq!(ok.unwrap().name, "a\tb\r\nc", "tab and newlines are text");
        let longest = "x".repeat(TEXT_MAX_CHARS);
        let body = format!("{{\"name\": \"{longest}\", \"cpus\": 1}}");
        assert!(parse_json::<Req>(body.as_bytes()).is_ok());
        let body = format!("{{\"name\": \"{longest}\u{e9}\", \"cpus\": 1}}");
        let e = parse_json::<Req>(body.as_bytes()).unwrap_err();
        assert_eq!(field(&e), Some("name"));
        assert!(e.body.message.contains("at most 4096 characters"), "{}", e.body.message);
        let e = parse_query::<Q>("zone_uuid=%1B%5B2J").unwrap_err();
        assert_eq!(field(&e), Some("zone_uuid"));
        assert!(e.body.message.contains("U+001B"), "{}", e.body.message);
    }

    #[tokio::test]
    async fn an_optional_body_may_be_left_out_but_white_space_is_not_json() {
        #[derive(Deserialize, Debug, Default)]
        struct Options {
            #[allow(dead_code)]
            force: Option<bool>,
        }
        let request = |body: &'static str| {
            axum::http::Request::builder()
                .method("POST")
                .header(CONTENT_TYPE, "application/json")
                .body(axum::body::Body::from(body))
                .unwrap()
        };
        assert!(OptionalJson::<Options>::from_request(request(""), &()).await.is_ok());
        assert!(OptionalJson::<Options>::from_request(request("{}"), &()).await.is_ok());
        for blank in ["\r", " ", "\n\t"] {
            let e = OptionalJson::<Options>::from_request(request(blank), &()).await.unwrap_err();
            assert_eq!(e.status, StatusCode::BAD_REQUEST, "{blank:?}");
        }
    }

    #[test]
    fn a_pem_field_may_be_longer_than_other_text_but_not_without_bound() {
        #[derive(Deserialize, Debug)]
        struct WithPem {
            #[allow(dead_code)]
            agent_ca_pem: String,
        }
        let bundle = "x".repeat(PEM_MAX_CHARS);
        let body = format!("{{\"agent_ca_pem\": \"{bundle}\"}}");
        assert!(parse_json::<WithPem>(body.as_bytes()).is_ok(), "a bundle of many certificates");
        let body = format!("{{\"agent_ca_pem\": \"{bundle}x\"}}");
        let e = parse_json::<WithPem>(body.as_bytes()).unwrap_err();
        assert_eq!(field(&e), Some("agent_ca_pem"));
        assert!(e.body.message.contains("at most 65536 characters"), "{}", e.body.message);
        // Only that field: the same length elsewhere is refused at the usual bound.
        let body = format!("{{\"name\": \"{bundle}\", \"cpus\": 1}}");
        assert!(parse_json::<Req>(body.as_bytes()).is_err());
    }

    #[test]
    fn text_may_not_hold_nul() {
        let e = parse_json::<Req>(b"{\"name\": \"a\\u0000b\", \"cpus\": 1}").unwrap_err();
        assert_eq!(field(&e), Some("name"));
        assert!(e.body.message.contains("U+0000"), "{}", e.body.message);
        let e = parse_json::<Outer>(b"{\"inner\": {\"name\": \"\\u0000\", \"cpus\": 1}}");
        assert_eq!(field(&e.unwrap_err()), Some("inner.name"));
        let e = parse_json::<Req>(b"{\"name\": \"a\", \"cpus\": 1, \"ids\": [\"\\u0000\"]}");
        assert_eq!(field(&e.unwrap_err()), Some("ids[0]"));
        let e = parse_query::<Q>("zone_uuid=%00").unwrap_err();
        assert_eq!(field(&e), Some("zone_uuid"));
        assert!(e.body.message.contains("U+0000"), "{}", e.body.message);
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Outer {
        inner: Req,
    }

    #[test]
    fn nested_errors_name_the_full_path() {
        let e = parse_json::<Outer>(br#"{"inner": {"name": "a", "cpus": 1, "x": 1}}"#).unwrap_err();
        assert_eq!(field(&e), Some("inner.x"));
        let e = parse_json::<Outer>(br#"{"inner": {"cpus": 1}}"#).unwrap_err();
        assert_eq!(field(&e), Some("inner.name"));
        let e = parse_json::<Outer>(br#"{"inner": {"name": "a", "cpus": "1"}}"#).unwrap_err();
        assert_eq!(field(&e), Some("inner.cpus"));
        assert!(e.body.message.contains("inner.cpus"), "{}", e.body.message);
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Q {
        limit: Option<u32>,
        zone_uuid: Option<Uuid>,
    }

    #[test]
    fn query_errors_name_the_parameter() {
        let e = parse_query::<Q>("limit=-3").unwrap_err();
        assert_eq!(field(&e), Some("limit"));
        let e = parse_query::<Q>("zone_uuid=xyz").unwrap_err();
        assert_eq!(field(&e), Some("zone_uuid"));
        let e = parse_query::<Q>("colour=red").unwrap_err();
        assert_eq!(field(&e), Some("colour"));
        let q = parse_query::<Q>("limit=3").unwrap();
        assert_eq!(q.limit, Some(3));
    }
}
