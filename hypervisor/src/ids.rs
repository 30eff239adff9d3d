//! Typed identifiers: a `HostId` can never be passed where a `VmId` is expected.
//!
//! With the `schema` feature every ID is also an OpenAPI schema (utoipa's `ToSchema`): a string
//! of format `uuid`, the component named after the type, described from its doc comment. The
//! agent leaves the feature off and never compiles utoipa.

/// Declares a typed UUID identifier with the conversions and formatting every ID needs, and
/// (with the `schema` feature) its OpenAPI schema, described from the doc comment: the only
/// attribute it takes.
///
/// Exported so the engine declares its own resource IDs (zones, clusters, ...) the same way.
#[macro_export]
macro_rules! typed_id {
    ($(#[doc = $doc:literal])* $name:ident) => {
        $(#[doc = $doc])*
        #[derive(
            Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, ::serde::Serialize,
        )]
        #[serde(transparent)]
        pub struct $name(pub ::uuid::Uuid);

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                $crate::deserialize_uuid(d).map(Self)
            }
        }

        impl $name {
            /// A fresh random identifier.
            pub fn new_random() -> Self {
                Self(::uuid::Uuid::new_v4())
            }
            /// The identifier as a plain UUID.
            pub fn as_uuid(&self) -> ::uuid::Uuid {
                self.0
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                ::std::fmt::Display::fmt(&self.0, f)
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = ::uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                ::uuid::Uuid::parse_str(s).map(Self)
            }
        }

        impl From<::uuid::Uuid> for $name {
            fn from(u: ::uuid::Uuid) -> Self {
                Self(u)
            }
        }

        $crate::__typed_id_schema!($name, concat!($($doc, "\n"),*));
    };
}

/// With the `schema` feature, `ToSchema` for a [`typed_id!`]: the feature is the hypervisor
/// crate's, whichever crate invokes the macro (a `cfg` in `typed_id!` itself would be the
/// invoking crate's).
#[cfg(feature = "schema")]
#[doc(hidden)]
#[macro_export]
macro_rules! __typed_id_schema {
    ($name:ident, $doc:expr) => {
        impl $crate::__utoipa::PartialSchema for $name {
            fn schema() -> $crate::__utoipa::openapi::RefOr<$crate::__utoipa::openapi::Schema> {
                $crate::id_schema($doc)
            }
        }

        impl $crate::__utoipa::ToSchema for $name {
            fn name() -> ::std::borrow::Cow<'static, str> {
                ::std::borrow::Cow::Borrowed(stringify!($name))
            }
        }
    };
}

/// Without the `schema` feature an ID has no OpenAPI schema.
#[cfg(not(feature = "schema"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __typed_id_schema {
    ($name:ident, $doc:expr) => {};
}

/// The schema of every ID: a string of format `uuid`, described as "The UUID of" what `doc`
/// (the ID type's doc comment) says it identifies.
#[cfg(feature = "schema")]
pub fn id_schema(doc: &str) -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
    use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
    let what = doc.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut chars = what.chars();
    let description = match chars.next() {
        Some(first) => format!("The UUID of {}{}", first.to_lowercase(), chars.as_str()),
        None => String::from("A UUID"),
    };
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid)))
        .description(Some(description))
        .into()
}

/// Reads a UUID as IDs are written: in text formats only the hyphenated form
/// (`xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, either case), which is what the API documents as a
/// `uuid`; the `uuid` crate alone also takes the simple, braced and URN forms.
pub fn deserialize_uuid<'de, D: serde::Deserializer<'de>>(d: D) -> Result<uuid::Uuid, D::Error> {
    use serde::de::Error;
    use serde::Deserialize;
    if !d.is_human_readable() {
        return uuid::Uuid::deserialize(d);
    }
    let text = std::borrow::Cow::<str>::deserialize(d)?;
    parse_hyphenated(&text).map_err(D::Error::custom)
}

/// Parses a UUID in the hyphenated form only (see [`deserialize_uuid`]).
pub fn parse_hyphenated(text: &str) -> Result<uuid::Uuid, String> {
    // Of the forms `uuid` parses, only the hyphenated one has 36 characters.
    match uuid::Uuid::try_parse(text) {
        Ok(u) if text.len() == 36 => Ok(u),
        _ => Err(format!("`{text}` is not a UUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)")),
    }
}

typed_id!(
    /// A physical (or simulated) host.
    HostId
);
typed_id!(
    /// A VM instance.
    VmId
);
typed_id!(
    /// A volume (root or data disk).
    VolumeId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_strings_and_json() {
        let id = HostId::new_random();
        let parsed: HostId = id.to_string().parse().unwrap();
        assert_eq!(parsed, id);
        let json = serde_json_like(&id);
        assert_eq!(json, format!("\"{id}\""));
        assert!("not-a-uuid".parse::<VmId>().is_err());
    }

    #[test]
    fn ids_are_read_from_text_only_in_the_hyphenated_form() {
        let id = HostId::new_random();
        let hyphenated = id.to_string();
        let read = |text: String| -> Result<HostId, String> {
            let value = serde::de::value::StrDeserializer::<serde::de::value::Error>::new(&text);
            serde::Deserialize::deserialize(value).map_err(|e| e.to_string())
        };
        assert_eq!(read(hyphenated.clone()), Ok(id));
        assert_eq!(read(hyphenated.to_uppercase()), Ok(id));
        let u = id.as_uuid();
        for other in [
            u.simple().to_string(),
            u.braced().to_string(),
            u.urn().to_string(),
            format!(" {hyphenated}"),
            String::from("not-a-uuid"),
        ] {
            let e = read(other.clone()).unwrap_err();
            assert!(e.contains("is not a UUID"), "{other}: {e}");
        }
    }

    #[cfg(feature = "schema")]
    #[test]
    fn an_id_is_a_named_uuid_string_described_from_its_doc() {
        use utoipa::{PartialSchema, ToSchema};
        assert_eq!(HostId::name(), "HostId");
        assert_eq!(VolumeId::name(), "VolumeId");
        let schema = serde_json::to_value(HostId::schema()).unwrap();
        assert_eq!(
            schema,
            serde_json::json!({
                "type": "string",
                "format": "uuid",
                "description": "The UUID of a physical (or simulated) host.",
            })
        );
        let schema = serde_json::to_value(VmId::schema()).unwrap();
        assert_eq!(schema["description"], "The UUID of a VM instance.");
    }

    fn serde_json_like(id: &HostId) -> String {
        // The ID serializes transparently as its UUID string.
        format!("\"{}\"", id.as_uuid())
    }
}
