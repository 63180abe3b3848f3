//! Identifier newtypes, parsed once at the edge.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a string is not a valid identifier. The message names the field so that a 400 reply can say which.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdError {
    pub field: &'static str,
    pub reason: &'static str,
}

impl fmt::Display for IdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid {}: {}", self.field, self.reason)
    }
}

impl std::error::Error for IdError {}

macro_rules! string_newtype {
    ($(#[$meta:meta])* $name:ident, $field:literal, $check:path) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn parse(raw: impl Into<String>) -> Result<Self, IdError> {
                let raw = raw.into();
                $check(&raw).map_err(|reason| IdError { field: $field, reason })?;
                Ok(Self(raw))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(raw: String) -> Result<Self, IdError> {
                Self::parse(raw)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .into()
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::ToSchema for $name {}
    };
}

macro_rules! display_as_str {
    ($($name:ident),*) => {$(
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }
    )*};
}

string_newtype!(
    /// A site's public key: a UUID in canonical lower-case form, as strict reCAPTCHA/hCaptcha clients expect.
    SiteKey, "sitekey", check_uuid
);
string_newtype!(
    /// A site's secret: `0x` followed by 40 lower-case hex digits. Never printed: its `Debug` is redacted
    /// and it has no `Display`.
    SiteSecret, "secret", check_secret
);
string_newtype!(
    /// A label of a project's label set (`north_south`, `flat`, ...): 1 to 64 of `a-z 0-9 _ -`.
    LabelId, "label", check_label
);
string_newtype!(
    /// A challenge's id: 22 characters of unpadded base64url (128 random bits).
    ChallengeId, "challenge_id", check_challenge_id
);

display_as_str!(SiteKey, LabelId, ChallengeId);

impl fmt::Debug for SiteSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SiteSecret(<redacted>)")
    }
}

fn check_uuid(s: &str) -> Result<(), &'static str> {
    let bytes = s.as_bytes();
    if bytes.len() != 36 {
        return Err("expected a UUID such as 6f1c2a9e-3b4d-4c5e-8f70-0123456789ab");
    }
    for (i, &b) in bytes.iter().enumerate() {
        let ok = if matches!(i, 8 | 13 | 18 | 23) {
            b == b'-'
        } else {
            is_lower_hex(b)
        };
        if !ok {
            return Err("expected a lower-case UUID such as 6f1c2a9e-3b4d-4c5e-8f70-0123456789ab");
        }
    }
    Ok(())
}

fn check_secret(s: &str) -> Result<(), &'static str> {
    match s.strip_prefix("0x") {
        Some(hex) if hex.len() == 40 && hex.bytes().all(is_lower_hex) => Ok(()),
        _ => Err("expected 0x followed by 40 lower-case hex digits"),
    }
}

fn check_label(s: &str) -> Result<(), &'static str> {
    if s.is_empty() || s.len() > 64 {
        return Err("expected 1 to 64 characters");
    }
    if s.bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    {
        Ok(())
    } else {
        Err("expected only a-z, 0-9, '_' and '-'")
    }
}

fn check_challenge_id(s: &str) -> Result<(), &'static str> {
    if s.len() == 22
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        Ok(())
    } else {
        Err("expected 22 base64url characters")
    }
}

fn is_lower_hex(b: u8) -> bool {
    b.is_ascii_digit() || (b'a'..=b'f').contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sitekeys_are_lower_case_uuids() {
        assert!(SiteKey::parse("6f1c2a9e-3b4d-4c5e-8f70-0123456789ab").is_ok());
        assert!(SiteKey::parse("6F1C2A9E-3B4D-4C5E-8F70-0123456789AB").is_err());
        assert!(SiteKey::parse("6f1c2a9e3b4d4c5e8f700123456789ab").is_err());
    }

    #[test]
    fn secrets_are_0x_and_40_hex_digits_and_never_printed() {
        let secret = SiteSecret::parse(format!("0x{}", "ab".repeat(20))).unwrap();
        assert_eq!(format!("{secret:?}"), "SiteSecret(<redacted>)");
        assert!(SiteSecret::parse("0x1234").is_err());
        assert!(SiteSecret::parse("ab".repeat(21)).is_err());
    }

    #[test]
    fn labels_are_short_slugs() {
        assert!(LabelId::parse("north_south").is_ok());
        assert!(LabelId::parse("").is_err());
        assert!(LabelId::parse("Nord").is_err());
        assert!(LabelId::parse("x".repeat(65)).is_err());
    }

    #[test]
    fn errors_name_the_field() {
        let err = LabelId::parse("bad label").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid label: expected only a-z, 0-9, '_' and '-'"
        );
    }
}
