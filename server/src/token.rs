//! Verification tokens: a random id and an HMAC-SHA256 over length-prefixed fields. No JWT.
//!
//! A token reads `v2.<kid>.<id>.<sitekey>.<issued_at>.<check>.<mac>` where `id` and `mac` are unpadded
//! base64url and `check` is the kind of check passed (`image` or `pow`, what `siteverify` reports). The MAC
//! covers a purpose string, the key id, the sitekey, the id, the issue time and the check, each prefixed by
//! its length so that no two field lists share an encoding. (`v1` tokens had no check; they lived five
//! minutes and are refused as malformed since.) It is checked in constant time (`ring::hmac::verify`) before the
//! store is asked anything; single use is then the store's job (`Store::take_token`).

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

use crate::model::UnixTime;
use protocol::SiteKey;

const PURPOSE: &[u8] = b"cobot/siteverify-token/v2";
const VERSION: &str = "v2";

/// The signing key. Its `Debug` prints only the key id.
pub struct TokenKey {
    kid: String,
    key: hmac::Key,
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenKey {{ kid: {:?} }}", self.kid)
    }
}

/// What a valid token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    pub id: String,
    pub sitekey: SiteKey,
    pub issued_at: UnixTime,
    pub check: Check,
}

/// Which check the citizen passed. Signed into the token, so that `siteverify` can tell a site without
/// keeping it anywhere else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// The two-image question: a human answered the control right.
    Image,
    /// The accessible path: the citizen's device did a proof of work.
    Pow,
}

impl Check {
    pub fn as_str(self) -> &'static str {
        match self {
            Check::Image => protocol::checks::IMAGE,
            Check::Pow => protocol::checks::POW,
        }
    }

    fn parse(text: &str) -> Option<Self> {
        [Check::Image, Check::Pow]
            .into_iter()
            .find(|c| c.as_str() == text)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is not in the expected format")]
    Malformed,
    #[error("the token was not signed by this server's key")]
    BadSignature,
}

impl TokenKey {
    /// A key from raw secret bytes (at least 32). The key id is derived from the key so that rotating the key
    /// changes it.
    pub fn from_bytes(secret: &[u8]) -> anyhow::Result<Self> {
        anyhow::ensure!(
            secret.len() >= 32,
            "the signing key must be at least 32 bytes long"
        );
        let digest = ring::digest::digest(&ring::digest::SHA256, secret);
        let kid = hex(&digest.as_ref()[..4]);
        Ok(Self {
            kid,
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
        })
    }

    /// The key from configuration (base64url or hex), else from `data_dir/signing.key`, generated there (mode
    /// 0600) on first start.
    pub fn load_or_generate(configured: Option<&str>, data_dir: &Path) -> anyhow::Result<Self> {
        use anyhow::Context as _;
        if let Some(text) = configured {
            let text = text.trim();
            let bytes = decode_hex(text)
                .or_else(|| B64.decode(text.trim_end_matches('=')).ok())
                .context("the configured signing key is neither hex nor base64url")?;
            return Self::from_bytes(&bytes);
        }
        let path = data_dir.join("signing.key");
        match std::fs::read(&path) {
            Ok(bytes) => Self::from_bytes(&bytes).with_context(|| format!("bad key in {}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut bytes = [0u8; 32];
                SystemRandom::new()
                    .fill(&mut bytes)
                    .map_err(|_| anyhow::anyhow!("no system randomness"))?;
                std::fs::create_dir_all(data_dir)
                    .with_context(|| format!("cannot create {}", data_dir.display()))?;
                write_private(&path, &bytes).with_context(|| format!("cannot write {}", path.display()))?;
                tracing::info!(path = %path.display(), "generated a new token signing key");
                Self::from_bytes(&bytes)
            }
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn sign(&self, claims: &Claims) -> String {
        let iat = claims.issued_at.to_string();
        let check = claims.check.as_str();
        let mac = hmac::sign(
            &self.key,
            &self.mac_input(&claims.id, claims.sitekey.as_str(), &iat, check),
        );
        [
            VERSION,
            &self.kid,
            &claims.id,
            claims.sitekey.as_str(),
            &iat,
            check,
            &B64.encode(mac.as_ref()),
        ]
        .join(".")
    }

    /// Checks the format and the MAC (in constant time) and returns the claims. Does not check expiry or use.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        if token.len() > 512 {
            return Err(TokenError::Malformed);
        }
        let parts: Vec<&str> = token.split('.').collect();
        let [version, kid, id, sitekey, iat, check, mac] = parts.as_slice() else {
            return Err(TokenError::Malformed);
        };
        if *version != VERSION || id.len() != 22 {
            return Err(TokenError::Malformed);
        }
        let mac = B64.decode(mac).map_err(|_| TokenError::Malformed)?;
        // The kid is compared as part of the MAC input too; this early check only gives a precise error.
        if *kid != self.kid {
            return Err(TokenError::BadSignature);
        }
        hmac::verify(&self.key, &self.mac_input(id, sitekey, iat, check), &mac)
            .map_err(|_| TokenError::BadSignature)?;
        // The fields are trusted from here on: they were signed by us.
        Ok(Claims {
            id: (*id).to_owned(),
            sitekey: SiteKey::parse(*sitekey).map_err(|_| TokenError::Malformed)?,
            issued_at: iat.parse().map_err(|_| TokenError::Malformed)?,
            check: Check::parse(check).ok_or(TokenError::Malformed)?,
        })
    }

    fn mac_input(&self, id: &str, sitekey: &str, iat: &str, check: &str) -> Vec<u8> {
        let mut out = Vec::with_capacity(128);
        for field in [
            PURPOSE,
            self.kid.as_bytes(),
            sitekey.as_bytes(),
            id.as_bytes(),
            iat.as_bytes(),
            check.as_bytes(),
        ] {
            out.extend_from_slice(&u32::try_from(field.len()).unwrap_or(u32::MAX).to_be_bytes());
            out.extend_from_slice(field);
        }
        out
    }
}

/// A fresh random id: 16 bytes, base64url (22 characters).
pub fn random_id() -> String {
    let mut bytes = [0u8; 16];
    // SystemRandom only fails when the OS has no randomness at all, where nothing secure can be done.
    SystemRandom::new()
        .fill(&mut bytes)
        .expect("the operating system provides randomness");
    B64.encode(bytes)
}

pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> TokenKey {
        TokenKey::from_bytes(&[7u8; 32]).unwrap()
    }

    fn claims() -> Claims {
        Claims {
            id: random_id(),
            sitekey: SiteKey::parse("6f1c2a9e-3b4d-4c5e-8f70-0123456789ab").unwrap(),
            issued_at: 1_700_000_000,
            check: Check::Image,
        }
    }

    #[test]
    fn a_signed_token_verifies_to_its_claims() {
        let claims = claims();
        assert_eq!(key().verify(&key().sign(&claims)), Ok(claims));
    }

    #[test]
    fn any_changed_character_breaks_the_token() {
        let token = key().sign(&claims());
        for i in 0..token.len() {
            let mut bytes = token.clone().into_bytes();
            bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
            let mutated = String::from_utf8(bytes).unwrap();
            if mutated != token {
                assert!(
                    key().verify(&mutated).is_err(),
                    "mutation at {i} accepted: {mutated}"
                );
            }
        }
    }

    #[test]
    fn the_check_kind_is_signed() {
        let pow = Claims {
            check: Check::Pow,
            ..claims()
        };
        let token = key().sign(&pow);
        assert_eq!(key().verify(&token).map(|c| c.check), Ok(Check::Pow));
        // Claiming the image check for a proof-of-work token breaks the MAC.
        let relabelled = token.replace(".pow.", ".image.");
        assert_eq!(key().verify(&relabelled), Err(TokenError::BadSignature));
    }

    #[test]
    fn another_key_rejects_the_token() {
        let other = TokenKey::from_bytes(&[8u8; 32]).unwrap();
        assert!(other.verify(&key().sign(&claims())).is_err());
    }

    #[test]
    fn short_keys_are_refused() {
        assert!(TokenKey::from_bytes(&[1u8; 16]).is_err());
    }

    #[test]
    fn a_generated_key_is_kept_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = TokenKey::load_or_generate(None, dir.path()).unwrap();
        let second = TokenKey::load_or_generate(None, dir.path()).unwrap();
        assert_eq!(first.kid(), second.kid());
        assert_eq!(
            second.verify(&first.sign(&claims())).map(|c| c.issued_at),
            Ok(1_700_000_000)
        );
    }
}
