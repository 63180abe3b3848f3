//! Reading request bodies at the edge: size limits, content types, parsing into protocol types, and the JSON
//! error body every 4xx/5xx of the widget API carries.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderMap};
use actix_web::{HttpResponse, web};
use futures_util::StreamExt as _;
use serde::de::DeserializeOwned;

/// A JSON error reply: `{"success": false, "error": "<code>", "message": "<sentence>"}`.
pub fn error_reply(status: StatusCode, code: &str, message: impl Into<String>) -> HttpResponse {
    HttpResponse::build(status).json(protocol::ApiError {
        success: false,
        error: code.to_owned(),
        message: message.into(),
    })
}

#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("the body must be at most {0} bytes")]
    TooLarge(usize),
    #[error("expected Content-Type: {0}")]
    UnsupportedMediaType(&'static str),
    #[error("malformed body: {0}")]
    Malformed(String),
    #[error("could not read the body: {0}")]
    Read(String),
}

impl BodyError {
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            BodyError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large"),
            BodyError::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type")
            }
            BodyError::Malformed(_) | BodyError::Read(_) => (StatusCode::BAD_REQUEST, "bad-request"),
        }
    }
}

/// Reads at most `limit` bytes; a longer body is refused without reading it all.
pub async fn read_limited(
    mut payload: web::Payload,
    headers: &HeaderMap,
    limit: usize,
) -> Result<Vec<u8>, BodyError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(BodyError::TooLarge(limit));
    }
    let mut body = Vec::with_capacity(declared.unwrap_or(0).min(limit));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| BodyError::Read(e.to_string()))?;
        if body.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The media type of the request, lower-cased, without parameters; empty when absent.
pub fn media_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default()
}

/// Reads a JSON body of at most `limit` bytes into `T`. A missing Content-Type is accepted (some clients omit
/// it); another one is refused.
pub async fn json<T: DeserializeOwned>(
    payload: web::Payload,
    headers: &HeaderMap,
    limit: usize,
) -> Result<T, BodyError> {
    let media = media_type(headers);
    if !(media.is_empty() || media == "application/json" || media == "text/plain") {
        return Err(BodyError::UnsupportedMediaType("application/json"));
    }
    let body = read_limited(payload, headers, limit).await?;
    serde_json::from_slice(&body).map_err(|e| BodyError::Malformed(e.to_string()))
}
