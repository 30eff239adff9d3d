//! The OpenAPI schemas of request fields whose rules the services check by hand, built from the
//! same constants as the checks, so the document states exactly what is refused: names
//! ([`super::check_name`]), text that must not be blank, IPv4 addresses and netmasks (IP
//! ranges), the enumerations kept as strings (hypervisor types, image formats) and the L3
//! networks of a VM; and what no text may hold nor exceed (`oxstack_api::extract` refuses it in
//! every string of a body or a query string, [`refused_in_text`] and [`TEXT_MAX_CHARS`]).
//! Request types point at them with `#[schema(schema_with = ...)]`.

use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, SchemaFormat, SchemaType, Type};
use utoipa::openapi::{KnownFormat, RefOr, Schema};

/// The most characters a name may have.
pub const NAME_MAX_CHARS: usize = 255;

/// The most characters any text of a request may have (a name: [`NAME_MAX_CHARS`]).
pub const TEXT_MAX_CHARS: usize = 4096;

/// The most characters of a PEM bundle of certificates (the fields of [`PEM_FIELDS`]): a CA
/// bundle of a few dozen certificates.
pub const PEM_MAX_CHARS: usize = 65_536;

/// The top-level request fields that hold PEM certificates and may be up to
/// [`PEM_MAX_CHARS`] long rather than [`TEXT_MAX_CHARS`].
pub const PEM_FIELDS: &[&str] = &["agent_ca_pem"];

/// What no text of a request may hold, as the inside of a regular-expression class: the control
/// characters (Unicode `Cc`: C0, DEL and C1) but tab, line feed and carriage return, and the
/// bidirectional embeddings, overrides and isolates (U+202A to U+202E, U+2066 to U+2069), which
/// make a terminal or a page show other text than the text held. U+0000 is among them (a
/// PostgreSQL text column cannot store it), and ESC (the start of a terminal escape).
const REFUSED_CLASS: &str = r"\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F\u202A-\u202E\u2066-\u2069";

/// What no name may hold: what no text may hold, and tab, line feed and carriage return too.
const NAME_REFUSED_CLASS: &str = r"\x00-\x1F\x7F-\x9F\u202A-\u202E\u2066-\u2069";

/// Whether no text of a request may hold `c` (see [`REFUSED_CLASS`]).
pub fn refused_in_text(c: char) -> bool {
    (c.is_control() && !matches!(c, '\t' | '\n' | '\r')) || is_bidi_control(c)
}

/// Whether no name may hold `c`.
pub fn refused_in_name(c: char) -> bool {
    c.is_control() || is_bidi_control(c)
}

fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// The characters Rust's `char::is_whitespace` (and so `str::trim`) takes for white space (the
/// Unicode `White_Space` property), as the inside of a regular-expression class.
const WHITE_SPACE_CLASS: &str = r"\t-\r \x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000";

/// A pattern that a string matches when it is not only white space and holds none of
/// `refused` (the inside of a class).
fn not_blank_pattern(refused: &str) -> String {
    format!(r"^[^{refused}]*[^{refused}{WHITE_SPACE_CLASS}][^{refused}]*$")
}

/// A pattern that a string matches when it holds nothing [`refused_in_text`] refuses.
fn any_text_pattern() -> String {
    format!(r"^[^{REFUSED_CLASS}]*$")
}

/// One IPv4 octet in the form `std::net::Ipv4Addr` parses: decimal, no leading zero.
const OCTET: &str = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])";

/// A dotted-quad IPv4 address exactly as `Ipv4Addr::from_str` takes it.
pub fn ipv4_pattern() -> String {
    format!(r"^{OCTET}(\.{OCTET}){{3}}$")
}

/// Every netmask an IP range may have: 1 to 32 leading one bits, dotted.
pub fn netmasks() -> Vec<String> {
    (1..=32u32).map(|bits| std::net::Ipv4Addr::from(u32::MAX << (32 - bits)).to_string()).collect()
}

fn string(nullable: bool) -> ObjectBuilder {
    let t = if nullable {
        SchemaType::Array(vec![Type::String, Type::Null])
    } else {
        SchemaType::Type(Type::String)
    };
    ObjectBuilder::new().schema_type(t)
}

fn done(o: ObjectBuilder) -> RefOr<Schema> {
    RefOr::T(Schema::Object(o.build()))
}

/// A name: 1 to 255 characters, not only white space.
pub fn name() -> RefOr<Schema> {
    done(name_builder(false))
}

/// An optional name (absent or null: unchanged).
pub fn optional_name() -> RefOr<Schema> {
    done(name_builder(true))
}

fn name_builder(nullable: bool) -> ObjectBuilder {
    string(nullable)
        .min_length(Some(1))
        .max_length(Some(NAME_MAX_CHARS))
        .pattern(Some(not_blank_pattern(NAME_REFUSED_CLASS)))
        .description(Some("1 to 255 characters, not only white space, no control characters"))
}

/// Any text: up to [`TEXT_MAX_CHARS`], nothing [`refused_in_text`] refuses (like all text).
pub fn free_text() -> RefOr<Schema> {
    done(text_builder(false))
}

/// Optional text: absent, null or any text.
pub fn optional_free_text() -> RefOr<Schema> {
    done(text_builder(true))
}

/// Text that must not be empty or only white space.
pub fn text() -> RefOr<Schema> {
    done(not_blank_text_builder(false))
}

/// Optional text that, when given, must not be empty or only white space.
pub fn optional_text() -> RefOr<Schema> {
    done(not_blank_text_builder(true))
}

/// Optional PEM text (a field of [`PEM_FIELDS`]): when given, not blank, up to
/// [`PEM_MAX_CHARS`].
pub fn optional_pem() -> RefOr<Schema> {
    done(not_blank_text_builder(true).max_length(Some(PEM_MAX_CHARS)))
}

fn text_builder(nullable: bool) -> ObjectBuilder {
    string(nullable).max_length(Some(TEXT_MAX_CHARS)).pattern(Some(any_text_pattern()))
}

fn not_blank_text_builder(nullable: bool) -> ObjectBuilder {
    string(nullable)
        .min_length(Some(1))
        .max_length(Some(TEXT_MAX_CHARS))
        .pattern(Some(not_blank_pattern(REFUSED_CLASS)))
}

/// A dotted-quad IPv4 address.
pub fn ipv4() -> RefOr<Schema> {
    done(
        string(false)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Ipv4)))
            .pattern(Some(ipv4_pattern())),
    )
}

/// A netmask of 1 to 32 leading one bits.
pub fn netmask() -> RefOr<Schema> {
    done(string(false).enum_values(Some(netmasks())))
}

/// One of `values`, exactly.
fn one_of(values: &[&str]) -> RefOr<Schema> {
    done(string(false).enum_values(Some(values.iter().copied())))
}

/// A cluster's hypervisor type.
pub fn hypervisor_type() -> RefOr<Schema> {
    one_of(super::cluster::HYPERVISOR_TYPES)
}

/// An image's disk format.
pub fn image_format() -> RefOr<Schema> {
    one_of(super::image::IMAGE_FORMATS)
}

/// A new password: 12 to 256 characters of any text (see [`REFUSED_CLASS`]).
pub fn new_password() -> RefOr<Schema> {
    password(12)
}

/// A password to sign in with: 1 to 256 characters of any text.
pub fn password_to_sign_in() -> RefOr<Schema> {
    password(1)
}

/// A user's password now, when it changes its own (`null` or left out for an admin's reset).
pub fn current_password() -> RefOr<Schema> {
    password_of(1, true)
}

fn password(min: usize) -> RefOr<Schema> {
    password_of(min, false)
}

fn password_of(min: usize, nullable: bool) -> RefOr<Schema> {
    let max = crate::services::identity::MAX_PASSWORD_CHARS;
    let pattern = format!(r"^[^{REFUSED_CLASS}]{{{min},{max}}}$");
    done(string(nullable).min_length(Some(min)).max_length(Some(max)).pattern(Some(pattern)))
}

/// An audit log list's `outcome`: `success`, `failure` or an HTTP status, 100 to 599.
pub fn audit_outcome() -> RefOr<Schema> {
    let outcome = string(false).pattern(Some(AUDIT_OUTCOME_PATTERN)).max_length(Some(7));
    done(outcome.examples(["failure", "403"]))
}

/// What [`audit_outcome`] matches.
pub const AUDIT_OUTCOME_PATTERN: &str = "^(success|failure|[1-5][0-9]{2})$";

/// The form of an RFC 3339 date-time; the format (`date-time`) says the rest (a month has 1 to
/// 12, a day no more than its month, ...).
pub const DATE_TIME_PATTERN: &str = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})$";

/// An RFC 3339 date-time (JSON Schema's `date-time`), of at most
/// [`super::audit::MAX_TIME_CHARS`] characters.
pub fn date_time() -> RefOr<Schema> {
    let format = SchemaFormat::KnownFormat(KnownFormat::DateTime);
    let time = string(false).format(Some(format)).pattern(Some(DATE_TIME_PATTERN));
    let time = time.max_length(Some(super::audit::MAX_TIME_CHARS));
    done(time.examples(["2026-01-02T03:04:05Z", "2026-01-02T04:04:05.250+01:00"]))
}

/// The L3 networks of a new VM: at least one, none twice. The items are inline: a
/// `schema_with` schema adds no components.
pub fn l3_network_list() -> RefOr<Schema> {
    let uuid = <crate::ids::L3NetworkId as utoipa::PartialSchema>::schema();
    let list = ArrayBuilder::new().items(uuid).min_items(Some(1)).unique_items(true);
    RefOr::T(Schema::Array(list.build()))
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use regex::Regex;

    use super::*;

    #[test]
    fn the_text_patterns_take_exactly_what_the_checks_take() {
        let name = Regex::new(&not_blank_pattern(NAME_REFUSED_CLASS)).unwrap();
        let text = Regex::new(&not_blank_pattern(REFUSED_CLASS)).unwrap();
        let any = Regex::new(&any_text_pattern()).unwrap();
        for c in (0..=0x10FFFF).filter_map(char::from_u32) {
            for s in [c.to_string(), format!(" {c} "), format!("x{c}")] {
                let not_blank = !s.trim().is_empty();
                let name_ok = not_blank && !s.chars().any(refused_in_name);
                assert_eq!(name.is_match(&s), name_ok, "name {s:?}");
                let text_ok = !s.chars().any(refused_in_text);
                assert_eq!(text.is_match(&s), not_blank && text_ok, "text {s:?}");
                assert_eq!(any.is_match(&s), text_ok, "any text {s:?}");
            }
        }
        assert!(text.is_match(" \t\u{3000}x\n") && !name.is_match("a\tb"));
        assert!(!text.is_match(" \t\u{3000}\u{85}\n"), "U+0085 is C1");
        for refused in ['\u{0}', '\u{1B}', '\u{7F}', '\u{9B}', '\u{202E}', '\u{2066}'] {
            assert!(refused_in_text(refused) && refused_in_name(refused), "{refused:?}");
        }
        assert!(any.is_match("") && any.is_match(" x\n\tY\r"));
    }

    #[test]
    fn every_netmask_the_ip_range_check_takes_is_listed() {
        let listed = netmasks();
        assert_eq!(listed.len(), 32);
        assert_eq!((listed[0].as_str(), listed[31].as_str()), ("128.0.0.0", "255.255.255.255"));
        for m in &listed {
            let mask = u32::from(m.parse::<Ipv4Addr>().unwrap());
            assert!(mask != 0 && mask.leading_ones() + mask.trailing_zeros() == 32, "{m}");
        }
    }

    #[test]
    fn the_ipv4_pattern_matches_exactly_what_ipv4addr_parses() {
        let pattern = Regex::new(&ipv4_pattern()).unwrap();
        let mut octets: Vec<String> = (0..=300).map(|n| n.to_string()).collect();
        octets.extend(
            ["00", "01", "007", "-1", "+1", "", " 1", "1 ", "a", "0x1", "1.5", "\u{661}"]
                .map(String::from),
        );
        let check = |text: &str| {
            assert_eq!(pattern.is_match(text), text.parse::<Ipv4Addr>().is_ok(), "{text:?}");
        };
        for o in &octets {
            for position in 0..4 {
                let mut parts = ["10", "1", "2", "3"].map(String::from);
                parts[position] = o.clone();
                check(&parts.join("."));
            }
        }
        for text in
            ["1.2.3", "1.2.3.4.5", "1..2.3", ".1.2.3.4", "1.2.3.4.", " 1.2.3.4", "1.2.3.4\n"]
        {
            check(text);
        }
    }
}
