//! The wire types of Cobot: what the widget, the server and the site backends exchange.
//!
//! This crate does no IO and builds for the host and for `wasm32-unknown-unknown`; it depends on `serde`
//! alone so that it adds little to the widget. Identifiers that arrive from outside are parsed into
//! newtypes (`SiteKey`, `LabelId`, `ChallengeId`) here, once: code that holds one knows it is well formed.

mod ids;

pub use ids::{ChallengeId, IdError, LabelId, SiteKey, SiteSecret};

use serde::{Deserialize, Serialize};

/// Paths of the public HTTP surface, shared so that the widget and the server cannot disagree.
pub mod paths {
    pub const CHALLENGE: &str = "/api/v1/challenge";
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
    /// Extra field, allowed by the contract: the kind of check that was passed (`image` for now).
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
    fn answer_path_names_the_challenge() {
        assert_eq!(paths::answer("abc"), "/api/v1/challenge/abc/answer");
    }
}
