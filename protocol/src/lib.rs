//! The wire types of Cobot: what the widget, the server and the site backends exchange.
//!
//! This crate does no IO and builds for the host and for `wasm32-unknown-unknown`; it depends on `serde`
//! alone so that it adds little to the widget. Identifiers that arrive from outside are parsed into
//! newtypes (`SiteKey`, `LabelId`, `ChallengeId`) here, once: code that holds one knows it is well formed.

mod ids;
pub mod owner;

pub use ids::{ChallengeId, IdError, LabelId, SiteKey, SiteSecret};

use serde::{Deserialize, Serialize};

/// Paths of the public HTTP surface, shared so that the widget and the server cannot disagree.
pub mod paths {
    pub const CHALLENGE: &str = "/api/v1/challenge";
    /// The accessible path: a challenge that needs no perception, answered with a proof of work.
    pub const POW_CHALLENGE: &str = "/api/v1/challenge/pow";
    pub const SITEVERIFY: &str = "/siteverify";
    pub const HEALTHZ: &str = "/healthz";
    pub const WIDGET_LOADER: &str = "/widget.js";
    /// Directory of the widget's other assets (wasm module, its JS glue, the stylesheet).
    pub const WIDGET_ASSETS: &str = "/widget";

    /// `/api/v1/challenge/{id}/answer`
    pub fn answer(challenge_id: &str) -> String {
        let mut path = String::with_capacity(CHALLENGE.len() + challenge_id.len() + 8);
        path.push_str(CHALLENGE);
        path.push('/');
        path.push_str(challenge_id);
        path.push_str("/answer");
        path
    }
}

/// Languages the widget and the server speak. French is the default: Cobot serves French public services.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    #[default]
    Fr,
    En,
}

impl Lang {
    /// Parses a language tag loosely (`"en"`, `"en-GB"`, `"FR"`); anything not English is French.
    pub fn from_tag(tag: &str) -> Self {
        let primary = tag.split(['-', '_']).next().unwrap_or_default();
        if primary.eq_ignore_ascii_case("en") {
            Lang::En
        } else {
            Lang::Fr
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Lang::Fr => "fr",
            Lang::En => "en",
        }
    }
}

/// `POST /api/v1/challenge` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChallengeRequest {
    pub sitekey: SiteKey,
    #[serde(default)]
    pub lang: Lang,
}

/// One answer the citizen can give.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelChoice {
    pub id: LabelId,
    pub text: String,
}

/// One image of a challenge. `url` is a path on the Cobot server (resolve it against the server's origin);
/// it names the challenge and a position, never the image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChallengeImage {
    pub url: String,
    pub alt: String,
}

/// `POST /api/v1/challenge` success reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Challenge {
    pub challenge_id: ChallengeId,
    pub question: String,
    pub labels: Vec<LabelChoice>,
    pub images: Vec<ChallengeImage>,
    /// RFC 3339, UTC.
    pub expires_at: String,
}

/// `POST /api/v1/challenge/{id}/answer` body: one label id per image, in the order the images were given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnswerRequest {
    pub answers: Vec<LabelId>,
}

/// `POST /api/v1/challenge/{id}/answer` reply (HTTP 200 in both cases: a wrong answer is not a bad request).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnswerResponse {
    pub success: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Seconds until the token can no longer be redeemed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<u64>,
    /// `wrong-answer` when the check failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `POST /api/v1/challenge/pow` success reply (the body of the request is a [`ChallengeRequest`]).
///
/// The accessible path of DESIGN.md: no image, no question, nothing to perceive. The widget searches a nonce
/// such that SHA-256(`salt` || `nonce`) starts with `difficulty_bits` zero bits, where `salt` is taken as
/// its UTF-8 bytes and `nonce` is written in decimal ASCII digits (see [`pow`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PowChallenge {
    pub challenge_id: ChallengeId,
    /// 43 base64url characters, derived by the server from the challenge id and the sitekey; short enough
    /// that the salt and a nonce of up to 12 digits fit one SHA-256 block.
    pub salt: String,
    pub difficulty_bits: u32,
    /// RFC 3339, UTC.
    pub expires_at: String,
}

/// `POST /api/v1/challenge/{id}/answer` body for a proof-of-work challenge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PowAnswerRequest {
    pub nonce: PowNonce,
}

/// A proof-of-work nonce: 1 to 20 ASCII digits (any `u64` in decimal), parsed at the edge like the ids.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PowNonce(String);

impl PowNonce {
    pub fn parse(raw: impl Into<String>) -> Result<Self, IdError> {
        let raw = raw.into();
        if raw.is_empty() || raw.len() > 20 || !raw.bytes().all(|b| b.is_ascii_digit()) {
            return Err(IdError {
                field: "nonce",
                reason: "expected 1 to 20 decimal digits",
            });
        }
        Ok(Self(raw))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for PowNonce {
    type Error = IdError;
    fn try_from(raw: String) -> Result<Self, IdError> {
        Self::parse(raw)
    }
}

impl From<PowNonce> for String {
    fn from(nonce: PowNonce) -> String {
        nonce.0
    }
}

/// The proof-of-work rule that the widget (which computes it) and the server (which checks it) share.
pub mod pow {
    /// The most work a server may ask: beyond this a phone would take minutes, which is no longer a check.
    pub const MAX_DIFFICULTY_BITS: u32 = 32;

    /// How many leading zero bits `digest` has, counted from the most significant bit of its first byte.
    pub fn leading_zero_bits(digest: &[u8]) -> u32 {
        let mut bits = 0;
        for byte in digest {
            if *byte == 0 {
                bits += 8;
            } else {
                return bits + byte.leading_zeros();
            }
        }
        bits
    }

    /// Whether `digest` shows the work `difficulty_bits` asks for.
    pub fn meets(digest: &[u8], difficulty_bits: u32) -> bool {
        leading_zero_bits(digest) >= difficulty_bits
    }

    /// The first nonce in `from..from + count` whose digest with `salt` meets `difficulty_bits`, if any.
    /// The widget calls this in slices and yields to the browser in between, so the page never freezes.
    pub fn search(salt: &str, difficulty_bits: u32, from: u64, count: u64) -> Option<u64> {
        let salt = salt.as_bytes();
        // Salt and nonce are hashed from one buffer on the stack, without an allocation per try. Salts have
        // 43 characters; one too long for the buffer finds nothing (a slow path for it cost the widget 200 B).
        let mut buf = [0u8; 128];
        if salt.len() + 20 > buf.len() {
            return None;
        }
        buf[..salt.len()].copy_from_slice(salt);
        (from..from.saturating_add(count)).find(|&nonce| {
            let len = salt.len() + write_decimal(&mut buf[salt.len()..], nonce);
            meets(&sha256(&buf[..len]), difficulty_bits)
        })
    }

    /// `n` in decimal, as the nonce is sent and hashed (without the `fmt` machinery, which weighs on wasm).
    pub fn decimal(n: u64) -> String {
        let mut digits = [0u8; 20];
        let len = write_decimal(&mut digits, n);
        digits[..len].iter().map(|d| char::from(*d)).collect()
    }

    /// Writes `n` in decimal at the start of `out` (at least 20 bytes) and returns how many bytes it took.
    fn write_decimal(out: &mut [u8], mut n: u64) -> usize {
        let mut digits = [0u8; 20];
        let mut len = 0;
        loop {
            // `n % 10` is below 10: the cast cannot truncate.
            #[allow(clippy::cast_possible_truncation)]
            let digit = (n % 10) as u8;
            digits[len] = b'0' + digit;
            len += 1;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        for (i, d) in digits[..len].iter().rev().enumerate() {
            out[i] = *d;
        }
        len
    }

    const K: [u32; 64] = [
        0x428a_2f98,
        0x7137_4491,
        0xb5c0_fbcf,
        0xe9b5_dba5,
        0x3956_c25b,
        0x59f1_11f1,
        0x923f_82a4,
        0xab1c_5ed5,
        0xd807_aa98,
        0x1283_5b01,
        0x2431_85be,
        0x550c_7dc3,
        0x72be_5d74,
        0x80de_b1fe,
        0x9bdc_06a7,
        0xc19b_f174,
        0xe49b_69c1,
        0xefbe_4786,
        0x0fc1_9dc6,
        0x240c_a1cc,
        0x2de9_2c6f,
        0x4a74_84aa,
        0x5cb0_a9dc,
        0x76f9_88da,
        0x983e_5152,
        0xa831_c66d,
        0xb003_27c8,
        0xbf59_7fc7,
        0xc6e0_0bf3,
        0xd5a7_9147,
        0x06ca_6351,
        0x1429_2967,
        0x27b7_0a85,
        0x2e1b_2138,
        0x4d2c_6dfc,
        0x5338_0d13,
        0x650a_7354,
        0x766a_0abb,
        0x81c2_c92e,
        0x9272_2c85,
        0xa2bf_e8a1,
        0xa81a_664b,
        0xc24b_8b70,
        0xc76c_51a3,
        0xd192_e819,
        0xd699_0624,
        0xf40e_3585,
        0x106a_a070,
        0x19a4_c116,
        0x1e37_6c08,
        0x2748_774c,
        0x34b0_bcb5,
        0x391c_0cb3,
        0x4ed8_aa4a,
        0x5b9c_ca4f,
        0x682e_6ff3,
        0x748f_82ee,
        0x78a5_636f,
        0x84c8_7814,
        0x8cc7_0208,
        0x90be_fffa,
        0xa450_6ceb,
        0xbef9_a3f7,
        0xc671_78f2,
    ];

    const H0: [u32; 8] = [
        0x6a09_e667,
        0xbb67_ae85,
        0x3c6e_f372,
        0xa54f_f53a,
        0x510e_527f,
        0x9b05_688c,
        0x1f83_d9ab,
        0x5be0_cd19,
    ];

    /// SHA-256 (FIPS 180-4), written out so that the widget does not pull a crate for it: a few hundred bytes
    /// of wasm. The server checks proofs with `ring` instead, so the two implementations check each other.
    pub fn sha256(message: &[u8]) -> [u8; 32] {
        let mut h = H0;
        let mut blocks = message.chunks_exact(64);
        for block in &mut blocks {
            compress(&mut h, block);
        }
        // The tail, the 0x80 marker and the bit length fill one block, or two when the tail is 56 bytes or more.
        let tail = blocks.remainder();
        let mut last = [0u8; 128];
        last[..tail.len()].copy_from_slice(tail);
        last[tail.len()] = 0x80;
        let end = if tail.len() < 56 { 64 } else { 128 };
        let bits = (message.len() as u64).wrapping_mul(8);
        last[end - 8..end].copy_from_slice(&bits.to_be_bytes());
        for block in last[..end].chunks_exact(64) {
            compress(&mut h, block);
        }
        let mut out = [0u8; 32];
        for (chunk, word) in out.chunks_exact_mut(4).zip(h) {
            chunk.copy_from_slice(&word.to_be_bytes());
        }
        out
    }

    // The standard's own names (a to h, w), so that this reads side by side with FIPS 180-4.
    #[allow(clippy::many_single_char_names)]
    fn compress(h: &mut [u32; 8], block: &[u8]) {
        let mut w = [0u32; 64];
        for (i, word) in block.chunks_exact(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..64 {
            let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
            let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16].wrapping_add(s0).wrapping_add(w[i - 7]).wrapping_add(s1);
        }
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut hh] = *h;
        for i in 0..64 {
            let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
            let ch = (e & f) ^ (!e & g);
            let t1 = hh
                .wrapping_add(s1)
                .wrapping_add(ch)
                .wrapping_add(K[i])
                .wrapping_add(w[i]);
            let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
            let maj = (a & b) ^ (a & c) ^ (b & c);
            let t2 = s0.wrapping_add(maj);
            hh = g;
            g = f;
            f = e;
            e = d.wrapping_add(t1);
            d = c;
            c = b;
            b = a;
            a = t1.wrapping_add(t2);
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e, f, g, hh]) {
            *x = x.wrapping_add(y);
        }
    }
}

/// What `siteverify` reports in its `check` field: which kind of check the citizen passed.
pub mod checks {
    /// The two-image question.
    pub const IMAGE: &str = "image";
    /// The accessible path's proof of work, which harvests no label and tells nothing of a human.
    pub const POW: &str = "pow";
}

/// Test keys for integrators' own test suites, as hCaptcha and Turnstile offer: a sitekey and a secret that
/// always pass, and a pair that always fail. They are public, so a site must never use them in production.
///
/// Challenges of a test sitekey work from any page (`localhost`, a CI host...), need no site on the server
/// and harvest nothing: their question and their two images are built in, no answer is ever stored as a
/// contribution. The test secrets are never looked up in the server's store. Both sitekeys have the UUID
/// version nibble `f`, which no sitekey the server generates (version 4) can have. The secrets follow the
/// sitekeys' pattern rather than hCaptcha's all-zero test secret: a string of zeros is what a configuration
/// template or a test naturally puts for "no secret", and it must not turn into a secret that accepts all.
pub mod test_keys {
    /// Every well-formed answer to its image question passes and yields a token (`check: image`); its
    /// accessible path (proof of work) works as for a real site, without the site's quota.
    pub const PASS_SITEKEY: &str = "10000000-ffff-ffff-ffff-000000000001";
    /// Every answer to its image question or its proof of work is a wrong answer: no token, ever.
    pub const FAIL_SITEKEY: &str = "20000000-ffff-ffff-ffff-000000000002";
    /// `siteverify` answers `success: true` for any non-empty `response`, a token or not, without consuming
    /// it. Anyone can use it: a site whose backend holds it accepts every form.
    pub const PASS_SECRET: &str = "0x10000000ffffffffffffffff0000000000000001";
    /// `siteverify` answers `success: false` with `invalid-input-response` for any `response`.
    pub const FAIL_SECRET: &str = "0x20000000ffffffffffffffff0000000000000002";
}

/// The body of every 4xx/5xx reply of the widget API: a stable machine code and a sentence for humans.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    pub success: bool,
    pub error: String,
    pub message: String,
}

/// `POST /siteverify` body, form-encoded or JSON, as reCAPTCHA, hCaptcha and Turnstile define it.
/// Every field is optional here so that a missing one becomes its documented error code, not a parse error.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteverifyRequest {
    #[serde(default)]
    pub secret: Option<String>,
    #[serde(default)]
    pub response: Option<String>,
    #[serde(default)]
    pub remoteip: Option<String>,
    #[serde(default)]
    pub sitekey: Option<String>,
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

/// `POST /siteverify` reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteverifyResponse {
    pub success: bool,
    /// When the check was passed (RFC 3339, UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub challenge_ts: Option<String>,
    /// The host name of the page the check was passed on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(rename = "error-codes")]
    pub error_codes: Vec<String>,
    /// Extra field, allowed by the contract: the kind of check that was passed, one of [`checks`]: `image`,
    /// or `pow` for the accessible path, which a site may want to treat with more care.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<String>,
}

/// The `siteverify` error codes of reCAPTCHA / hCaptcha, which Cobot reuses so that client libraries work unchanged.
pub mod siteverify_errors {
    pub const MISSING_INPUT_SECRET: &str = "missing-input-secret";
    pub const INVALID_INPUT_SECRET: &str = "invalid-input-secret";
    pub const MISSING_INPUT_RESPONSE: &str = "missing-input-response";
    pub const INVALID_INPUT_RESPONSE: &str = "invalid-input-response";
    pub const TIMEOUT_OR_DUPLICATE: &str = "timeout-or-duplicate";
    pub const SITEKEY_SECRET_MISMATCH: &str = "sitekey-secret-mismatch";
    pub const BAD_REQUEST: &str = "bad-request";
    pub const INTERNAL_ERROR: &str = "internal-error";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_challenge_request_without_lang_defaults_to_french() {
        let req: ChallengeRequest =
            serde_json::from_str(r#"{"sitekey":"6f1c2a9e-3b4d-4c5e-8f70-0123456789ab"}"#).unwrap();
        assert_eq!(req.lang, Lang::Fr);
    }

    #[test]
    fn a_challenge_request_with_a_bad_sitekey_is_rejected_at_parse_time() {
        let err = serde_json::from_str::<ChallengeRequest>(r#"{"sitekey":"nope"}"#).unwrap_err();
        assert!(err.to_string().contains("sitekey"), "{err}");
    }

    #[test]
    fn siteverify_errors_serialise_under_the_hyphenated_name() {
        let body = SiteverifyResponse {
            success: false,
            challenge_ts: None,
            hostname: None,
            error_codes: vec![siteverify_errors::TIMEOUT_OR_DUPLICATE.into()],
            check: None,
        };
        assert_eq!(
            serde_json::to_string(&body).unwrap(),
            r#"{"success":false,"error-codes":["timeout-or-duplicate"]}"#
        );
    }

    #[test]
    fn language_tags_are_read_loosely() {
        assert_eq!(Lang::from_tag("en-GB"), Lang::En);
        assert_eq!(Lang::from_tag("FR"), Lang::Fr);
        assert_eq!(Lang::from_tag("de"), Lang::Fr);
    }

    #[test]
    fn nonces_are_decimal_digits_only() {
        assert!(PowNonce::parse("0").is_ok());
        assert!(PowNonce::parse("18446744073709551615").is_ok());
        for bad in ["", "-1", "12a", " 1", "1.5", "123456789012345678901"] {
            assert!(PowNonce::parse(bad).is_err(), "{bad:?} accepted");
        }
        let err = serde_json::from_str::<PowAnswerRequest>(r#"{"nonce":"x"}"#).unwrap_err();
        assert!(err.to_string().contains("nonce"), "{err}");
        assert!(serde_json::from_str::<PowAnswerRequest>(r#"{"nonce":12}"#).is_err());
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().fold(String::new(), |mut s, b| {
            use std::fmt::Write as _;
            let _ = write!(s, "{b:02x}");
            s
        })
    }

    #[test]
    fn sha256_matches_the_fips_180_vectors() {
        let cases: [(&[u8], &str); 4] = [
            (b"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
            (b"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
            (
                b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
                "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
            ),
            (
                b"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
                "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1",
            ),
        ];
        for (message, digest) in cases {
            assert_eq!(hex(&pow::sha256(message)), digest);
        }
        // One million `a`: many blocks.
        assert_eq!(
            hex(&pow::sha256(&vec![b'a'; 1_000_000])),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"
        );
        // Tails on each side of the one-block / two-block padding boundary (digests from Python's hashlib).
        for (len, digest) in [
            (
                55,
                "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318",
            ),
            (
                56,
                "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a",
            ),
            (
                63,
                "7d3e74a05d7db15bce4ad9ec0658ea98e3f06eeecf16b4c6fff2da457ddc2f34",
            ),
            (
                64,
                "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb",
            ),
            (
                119,
                "31eba51c313a5c08226adf18d4a359cfdfd8d2e816b13f4af952f7ea6584dcfb",
            ),
            (
                120,
                "2f3d335432c70b580af0e8e1b3674a7c020d683aa5f73aaaedfdc55af904c21c",
            ),
        ] {
            assert_eq!(hex(&pow::sha256(&vec![b'a'; len])), digest, "{len} bytes");
        }
    }

    #[test]
    fn search_finds_the_first_nonce_with_enough_zero_bits() {
        let salt = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        let nonce = pow::search(salt, 8, 0, 1 << 20).unwrap();
        let digest = pow::sha256(format!("{salt}{nonce}").as_bytes());
        assert!(pow::meets(&digest, 8));
        for earlier in 0..nonce {
            let digest = pow::sha256(format!("{salt}{earlier}").as_bytes());
            assert!(!pow::meets(&digest, 8), "{earlier} already met the target");
        }
        assert_eq!(pow::search(salt, 8, 0, nonce), None, "the range is half-open");
        assert_eq!(pow::search(salt, 8, nonce, 1), Some(nonce));
        assert_eq!(pow::decimal(nonce), nonce.to_string());
        assert_eq!(pow::decimal(u64::MAX), u64::MAX.to_string());
        assert_eq!(pow::decimal(0), "0");
        // A salt too long for the stack buffer finds nothing rather than something wrong.
        assert_eq!(pow::search(&"s".repeat(200), 0, 0, 10), None);
        assert_eq!(pow::search(&"s".repeat(108), 0, 0, 10), Some(0));
    }

    #[test]
    fn leading_zero_bits_count_from_the_first_byte() {
        assert_eq!(pow::leading_zero_bits(&[0x80, 0]), 0);
        assert_eq!(pow::leading_zero_bits(&[0x00, 0x10]), 11);
        assert_eq!(pow::leading_zero_bits(&[0, 0]), 16);
        assert!(pow::meets(&[0x00, 0x1f], 11));
        assert!(!pow::meets(&[0x00, 0x1f], 12));
    }

    #[test]
    fn test_keys_are_well_formed_keys() {
        for sitekey in [test_keys::PASS_SITEKEY, test_keys::FAIL_SITEKEY] {
            assert!(SiteKey::parse(sitekey).is_ok(), "{sitekey}");
            // Not a version-4 UUID, so never one the server generates for a real site.
            assert_eq!(&sitekey[14..15], "f", "{sitekey}");
        }
        for secret in [test_keys::PASS_SECRET, test_keys::FAIL_SECRET] {
            assert!(SiteSecret::parse(secret).is_ok());
        }
        assert_ne!(test_keys::PASS_SITEKEY, test_keys::FAIL_SITEKEY);
        assert_ne!(test_keys::PASS_SECRET, test_keys::FAIL_SECRET);
    }

    #[test]
    fn answer_path_names_the_challenge() {
        assert_eq!(paths::answer("abc"), "/api/v1/challenge/abc/answer");
    }
}
