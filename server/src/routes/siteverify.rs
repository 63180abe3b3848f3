//! `POST /siteverify`: a site's backend redeems a token (flow 2 of DESIGN.md).
//!
//! Semantic failures answer 200 with `success: false` and reCAPTCHA's error codes, as client libraries expect;
//! only a body that cannot be parsed at all gets a 400 (`bad-request`), and a store failure a 503
//! (`internal-error`). The checks run in an order that consumes the token only when everything else is right.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use protocol::siteverify_errors as codes;
use protocol::{SiteKey, SiteSecret, SiteverifyRequest, SiteverifyResponse};

use super::body::{self, BodyError};
use super::test_keys;
use crate::model::{now, rfc3339};
use crate::startup::AppState;
use crate::store::{Store, StoreError};
use crate::token::TokenError;

const BODY_LIMIT: usize = 8 * 1024;

fn reply(status: StatusCode, codes: &[&str]) -> HttpResponse {
    HttpResponse::build(status).json(SiteverifyResponse {
        success: false,
        challenge_ts: None,
        hostname: None,
        error_codes: codes.iter().map(|c| (*c).to_owned()).collect(),
        check: None,
    })
}

fn failure(code: &str) -> HttpResponse {
    reply(StatusCode::OK, &[code])
}

async fn parse(req: &HttpRequest, payload: web::Payload) -> Result<SiteverifyRequest, BodyError> {
    let media = body::media_type(req.headers());
    let raw = body::read_limited(payload, req.headers(), BODY_LIMIT).await?;
    match media.as_str() {
        "application/json" => serde_json::from_slice(&raw).map_err(|e| BodyError::Malformed(e.to_string())),
        // reCAPTCHA's documented encoding; also what a client that sets no Content-Type most likely sends.
        "" | "application/x-www-form-urlencoded" => {
            serde_urlencoded::from_bytes(&raw).map_err(|e| BodyError::Malformed(e.to_string()))
        }
        _ => Err(BodyError::UnsupportedMediaType(
            "application/x-www-form-urlencoded or application/json",
        )),
    }
}

/// SHA-256 of a secret, in hex: what sites store instead of their secret.
pub fn secret_hash(secret: &SiteSecret) -> String {
    crate::token::hex(ring::digest::digest(&ring::digest::SHA256, secret.as_str().as_bytes()).as_ref())
}

#[tracing::instrument(name = "siteverify", skip_all, fields(sitekey))]
pub async fn siteverify(req: HttpRequest, payload: web::Payload, state: web::Data<AppState>) -> HttpResponse {
    let request = match parse(&req, payload).await {
        Ok(r) => r,
        Err(e) => {
            tracing::info!(error = %e, "unreadable siteverify body");
            let (status, _) = e.status_and_code();
            return reply(status, &[codes::BAD_REQUEST]);
        }
    };
    match verify(request, &state).await {
        Ok(response) => HttpResponse::Ok().json(response),
        Err(Failure::Code(code)) => {
            tracing::info!(error = code, "token refused");
            failure(code)
        }
        Err(Failure::Store(e)) => {
            tracing::error!(error = %e, "store failure in siteverify");
            reply(StatusCode::SERVICE_UNAVAILABLE, &[codes::INTERNAL_ERROR])
        }
    }
}

enum Failure {
    Code(&'static str),
    Store(StoreError),
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure::Store(e)
    }
}

async fn verify(request: SiteverifyRequest, state: &AppState) -> Result<SiteverifyResponse, Failure> {
    let secret = request.secret.filter(|s| !s.is_empty());
    let response = request.response.filter(|s| !s.is_empty());
    let (secret, token) = match (secret, response) {
        (Some(secret), Some(token)) => (secret, token),
        (Some(_), None) => return Err(Failure::Code(codes::MISSING_INPUT_RESPONSE)),
        // Without a secret, that is what is named first, as reCAPTCHA does.
        (None, _) => return Err(Failure::Code(codes::MISSING_INPUT_SECRET)),
    };
    // The test secrets never reach the store.
    if let Some(outcome) = test_keys::verify(&secret, &token, &state.key) {
        return outcome.map_err(Failure::Code);
    }
    let secret = SiteSecret::parse(secret).map_err(|_| Failure::Code(codes::INVALID_INPUT_SECRET))?;

    // The MAC is checked in constant time, before the store is asked anything about the token.
    let claims = state.key.verify(&token).map_err(|e| match e {
        TokenError::Malformed | TokenError::BadSignature => Failure::Code(codes::INVALID_INPUT_RESPONSE),
    })?;
    tracing::Span::current().record("sitekey", claims.sitekey.as_str());

    let hash = secret_hash(&secret);
    let site = state.store.site(&claims.sitekey).await?;
    // The current secret, or the previous one while a rotation overlaps.
    let owns_token = site
        .as_ref()
        .is_some_and(|site| site.accepts_secret_hash(&hash, now()));
    if !owns_token {
        // Tell a secret of another site (a configuration mistake worth naming) from an unknown one.
        return Err(Failure::Code(
            if state.store.site_by_secret_hash(&hash).await?.is_some() {
                codes::SITEKEY_SECRET_MISMATCH
            } else {
                codes::INVALID_INPUT_SECRET
            },
        ));
    }
    if let Some(expected) = request.sitekey.filter(|s| !s.is_empty())
        && SiteKey::parse(expected).ok().as_ref() != Some(&claims.sitekey)
    {
        return Err(Failure::Code(codes::SITEKEY_SECRET_MISMATCH));
    }
    if claims.issued_at + state.settings.token_lifetime_secs <= now() {
        return Err(Failure::Code(codes::TIMEOUT_OR_DUPLICATE));
    }
    // Single use: of concurrent redemptions, exactly one gets the record.
    let record = state
        .store
        .take_token(&claims.id)
        .await?
        .ok_or(Failure::Code(codes::TIMEOUT_OR_DUPLICATE))?;
    if record.sitekey != claims.sitekey {
        return Err(Failure::Code(codes::INVALID_INPUT_RESPONSE));
    }
    tracing::info!(outcome = "redeemed", "token redeemed");
    Ok(SiteverifyResponse {
        success: true,
        challenge_ts: Some(rfc3339(record.challenge_ts)),
        hostname: Some(record.hostname),
        error_codes: Vec::new(),
        // From the signed claims: which check was passed (`image`, or `pow` for the accessible path).
        check: Some(claims.check.as_str().into()),
    })
}
