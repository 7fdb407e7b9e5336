//! Object ids: 64 lowercase hex characters, like Docker's.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// An id string that is not 64 lowercase hex characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} id {value:?}: an id is 64 lowercase hexadecimal characters")]
pub struct InvalidId {
    /// Which kind of id (network, endpoint, sandbox).
    pub kind: &'static str,
    /// The string as given (cut to 100 characters).
    pub value: String,
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Builds an id from 32 random bytes (the caller supplies the randomness).
            pub fn from_bytes(bytes: [u8; 32]) -> Self {
                let mut s = String::with_capacity(64);
                for b in bytes {
                    s.push_str(&format!("{b:02x}"));
                }
                $name(s)
            }

            /// The whole id.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The first 12 characters, as `docker network ls` shows them.
            pub fn short(&self) -> &str {
                &self.0[..12]
            }
        }

        impl FromStr for $name {
            type Err = InvalidId;
            fn from_str(s: &str) -> Result<Self, InvalidId> {
                if s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
                    Ok($name(s.to_owned()))
                } else {
                    Err(InvalidId { kind: $kind, value: s.chars().take(100).collect() })
                }
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidId;
            fn try_from(s: String) -> Result<Self, InvalidId> {
                s.parse()
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(
    /// A network's id.
    NetworkId,
    "network"
);
id_type!(
    /// An endpoint's id.
    EndpointId,
    "endpoint"
);
id_type!(
    /// A sandbox's id.
    SandboxId,
    "sandbox"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_and_shorten() {
        let id = NetworkId::from_bytes([0xab; 32]);
        assert_eq!(id.as_str().len(), 64);
        assert_eq!(id.short(), "abababababab");
        assert_eq!(id.as_str().parse::<NetworkId>().unwrap(), id);
        for bad in [
            "",
            "ABAB",
            &"g".repeat(64),
            &"a".repeat(63),
            &"A".repeat(64),
        ] {
            let e = bad.parse::<EndpointId>().unwrap_err();
            assert_eq!(e.kind, "endpoint");
        }
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(serde_json::from_str::<NetworkId>(&json).unwrap(), id);
        assert!(serde_json::from_str::<NetworkId>("\"xyz\"").is_err());
    }
}
