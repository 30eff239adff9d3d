//! Typed identifiers: a `HostId` can never be passed where a `VmId` is expected.

/// Declares a typed UUID identifier with the conversions and formatting every ID needs.
///
/// Exported so the engine declares its own resource IDs (zones, clusters, ...) the same way.
#[macro_export]
macro_rules! typed_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(
            Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord,
            ::serde::Serialize, ::serde::Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(pub ::uuid::Uuid);

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
    };
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

    fn serde_json_like(id: &HostId) -> String {
        // The ID serializes transparently as its UUID string.
        format!("\"{}\"", id.as_uuid())
    }
}
