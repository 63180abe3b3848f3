//! Redeeming the widget's token: `POST {COBOT_URL}/siteverify`, form-encoded like reCAPTCHA's, and what the
//! reply means for the visitor. The reply is parsed here, independently of Cobot's own types, because that
//! is what an integrator does; it also keeps the server honest about its wire format.

use std::net::IpAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::Settings;

/// The documented reply. Unknown fields are ignored, as the contract allows extra ones.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SiteverifyReply {
    pub success: bool,
    #[serde(default)]
    pub challenge_ts: Option<String>,
    #[serde(default)]
    pub hostname: Option<String>,
    #[serde(default, rename = "error-codes")]
    pub error_codes: Vec<String>,
}

/// Why the report is not accepted, in terms the page can explain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// The form came without a token: the visitor has not done the check.
    Missing,
    /// The token was valid once but has expired or was already used.
    Expired,
    /// The token is not one the server issued for this site.
    Invalid,
    /// The server refuses this site's credentials: an operator must fix the configuration.
    Misconfigured,
    /// The server could not be reached or did not answer sensibly.
    Unavailable,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Passed {
        challenge_ts: Option<String>,
        hostname: Option<String>,
    },
    Rejected(Rejection),
}

/// What a `siteverify` reply means.
pub fn judge(reply: &SiteverifyReply) -> Verdict {
    if reply.success {
        return Verdict::Passed {
            challenge_ts: reply.challenge_ts.clone(),
            hostname: reply.hostname.clone(),
        };
    }
    let has = |code: &str| reply.error_codes.iter().any(|c| c == code);
    let rejection =
        if has("invalid-input-secret") || has("missing-input-secret") || has("sitekey-secret-mismatch") {
            Rejection::Misconfigured
        } else if has("timeout-or-duplicate") {
            Rejection::Expired
        } else if has("invalid-input-response") || has("missing-input-response") {
            Rejection::Invalid
        } else {
            // `internal-error`, `bad-request`, a code this site does not know, or none at all: not the visitor's fault.
            Rejection::Unavailable
        };
    Verdict::Rejected(rejection)
}

#[derive(Serialize)]
struct SiteverifyForm<'a> {
    secret: &'a str,
    response: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    remoteip: Option<String>,
    sitekey: &'a str,
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("siteverify request failed")]
    Send(#[source] anyhow::Error),
    #[error("siteverify answered {status} with a body that is not the documented JSON")]
    Body {
        status: u16,
        #[source]
        source: anyhow::Error,
    },
}

/// Sends the token to Cobot. The secret goes in the body only; it is never logged.
pub async fn siteverify(
    client: &awc::Client,
    settings: &Settings,
    token: &str,
    remote_ip: Option<IpAddr>,
) -> Result<SiteverifyReply, VerifyError> {
    let form = SiteverifyForm {
        secret: settings.secret.expose(),
        response: token,
        remoteip: remote_ip.map(|ip| ip.to_string()),
        sitekey: &settings.sitekey,
    };
    let url = format!("{}/siteverify", settings.cobot_url);
    let mut response = client
        .post(url)
        .timeout(Duration::from_secs(10))
        .send_form(&form)
        .await
        .map_err(|err| VerifyError::Send(anyhow::anyhow!("{err}")))?;
    // Error replies (4xx) carry the same JSON as successes, so the status alone decides nothing.
    let status = response.status().as_u16();
    let body = response
        .body()
        .limit(64 * 1024)
        .await
        .map_err(|err| VerifyError::Body {
            status,
            source: anyhow::anyhow!("{err}"),
        })?;
    serde_json::from_slice(&body).map_err(|err| VerifyError::Body {
        status,
        source: err.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(json: &str) -> SiteverifyReply {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn a_successful_reply_passes_with_its_time_and_hostname() {
        let verdict = judge(&reply(
            r#"{"success":true,"challenge_ts":"2026-03-12T14:05:09Z","hostname":"mairie.test","error-codes":[],"check":"image"}"#,
        ));
        assert_eq!(
            verdict,
            Verdict::Passed {
                challenge_ts: Some("2026-03-12T14:05:09Z".into()),
                hostname: Some("mairie.test".into())
            }
        );
    }

    #[test]
    fn a_used_or_expired_token_is_reported_as_such() {
        assert_eq!(
            judge(&reply(
                r#"{"success":false,"error-codes":["timeout-or-duplicate"]}"#
            )),
            Verdict::Rejected(Rejection::Expired)
        );
    }

    #[test]
    fn a_forged_token_is_invalid() {
        assert_eq!(
            judge(&reply(
                r#"{"success":false,"error-codes":["invalid-input-response"]}"#
            )),
            Verdict::Rejected(Rejection::Invalid)
        );
    }

    #[test]
    fn credential_errors_blame_the_site_not_the_visitor() {
        for code in [
            "invalid-input-secret",
            "missing-input-secret",
            "sitekey-secret-mismatch",
        ] {
            let json = format!(r#"{{"success":false,"error-codes":["{code}"]}}"#);
            assert_eq!(
                judge(&reply(&json)),
                Verdict::Rejected(Rejection::Misconfigured),
                "{code}"
            );
        }
    }

    #[test]
    fn server_trouble_and_unknown_codes_mean_unavailable() {
        for json in [
            r#"{"success":false,"error-codes":["internal-error"]}"#,
            r#"{"success":false,"error-codes":["something-new"]}"#,
            r#"{"success":false}"#,
        ] {
            assert_eq!(
                judge(&reply(json)),
                Verdict::Rejected(Rejection::Unavailable),
                "{json}"
            );
        }
    }

    #[test]
    fn the_request_is_form_encoded_with_the_documented_names() {
        // awc's `send_form` encodes with `serde_urlencoded`, so this is the body that goes on the wire.
        let body = serde_urlencoded::to_string(SiteverifyForm {
            secret: "0xabc",
            response: "tok en",
            remoteip: Some("192.0.2.1".into()),
            sitekey: "6f1c",
        })
        .unwrap();
        assert_eq!(
            body,
            "secret=0xabc&response=tok+en&remoteip=192.0.2.1&sitekey=6f1c"
        );
    }
}
