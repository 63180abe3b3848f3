//! The owner API (`/api/v1/projects`, `/api/v1/sites`, `/api/v1/keys`): what project owners and their tools
//! call with `Authorization: Bearer <api key>`. Every handler takes a [`Caller`], so none runs unauthenticated,
//! and reaches other owners' records only through [`owned_project`] / [`owned_site`], which answer 404 as if
//! they did not exist (an owner learns nothing about others).

pub mod images;
pub mod keys;
pub mod projects;
pub mod sites;

use actix_web::http::StatusCode;
use actix_web::http::header::AUTHORIZATION;
use actix_web::{FromRequest, HttpRequest, HttpResponse, ResponseError, web};
use futures_util::future::LocalBoxFuture;
use serde::de::DeserializeOwned;
use utoipa::openapi::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_actix_web::service_config::ServiceConfig;

use super::body::{self, BodyError, error_reply};
use crate::model::{OwnerId, Project, ProjectId, Site};
use crate::owner::DomainError;
use crate::startup::AppState;
use crate::store::{Store, StoreError};
use protocol::SiteKey;

/// Largest JSON body of the owner API (projects, sites, keys): far above any real one.
pub const JSON_LIMIT: usize = 64 * 1024;

/// Registers every owner route. Only `service(...)` calls: utoipa-actix-web collects the `OpenAPI` paths from
/// them, so the document lists exactly the routes registered here.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(projects::create)
        .service(projects::list)
        .service(projects::read)
        .service(projects::update)
        .service(projects::archive)
        .service(images::upload)
        .service(images::list)
        .service(sites::create)
        .service(sites::list)
        .service(sites::rotate_secret)
        .service(keys::create)
        .configure(exports::configure);
}

/// The `OpenAPI` document of the owner API, from what [`configure`] registers (built once at startup).
pub fn openapi() -> OpenApi {
    use utoipa_actix_web::AppExt as _;
    let (_, mut api) = actix_web::App::new()
        .into_utoipa_app()
        .configure(configure)
        .split_for_parts();
    api.info.title = "Cobot owner API".into();
    api.info.version = env!("CARGO_PKG_VERSION").into();
    api.info.description = Some(
        "Projects, images, sites and exports of a project owner. Every route takes \
         `Authorization: Bearer <api key>`; errors are `{success, error, message}` with a stable `error` code."
            .into(),
    );
    api.info.license = None;
    api.info.contact = None;
    api.components
        .get_or_insert_with(Default::default)
        .add_security_scheme(
            "api_key",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    api
}

/// A JSON body that may be absent (an empty body means every field's default).
pub async fn optional_json<T: DeserializeOwned + Default>(
    payload: web::Payload,
    req: &HttpRequest,
    limit: usize,
) -> Result<T, OwnerError> {
    let bytes = body::read_limited(payload, req.headers(), limit).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    let media = body::media_type(req.headers());
    if !(media.is_empty() || media == "application/json") {
        return Err(BodyError::UnsupportedMediaType("application/json").into());
    }
    serde_json::from_slice(&bytes).map_err(|e| BodyError::Malformed(e.to_string()).into())
}
pub mod exports;

/// Prefix of every API key, so that a leaked key is recognisable by secret scanners.
pub const API_KEY_PREFIX: &str = "cobot_";

/// The errors of every owner API handler, each with its status and stable code.
#[derive(Debug, thiserror::Error)]
pub enum OwnerError {
    #[error("missing `Authorization: Bearer <api key>` header")]
    MissingKey,
    #[error("invalid API key")]
    InvalidKey,
    #[error("no such {0}")]
    NotFound(&'static str),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Body(#[from] BodyError),
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for OwnerError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(message) => OwnerError::Conflict(message),
            other => OwnerError::Store(other),
        }
    }
}

impl From<DomainError> for OwnerError {
    fn from(e: DomainError) -> Self {
        match e {
            DomainError::Invalid(message) => OwnerError::Invalid(message),
            DomainError::NotFound(what) => OwnerError::NotFound(what),
            DomainError::Store(e) => e.into(),
        }
    }
}

impl OwnerError {
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            OwnerError::MissingKey => (StatusCode::UNAUTHORIZED, "missing-api-key"),
            OwnerError::InvalidKey => (StatusCode::UNAUTHORIZED, "invalid-api-key"),
            OwnerError::NotFound(_) => (StatusCode::NOT_FOUND, "not-found"),
            OwnerError::Invalid(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
            OwnerError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            OwnerError::Body(e) => e.status_and_code(),
            OwnerError::Store(StoreError::Full(_)) => (StatusCode::SERVICE_UNAVAILABLE, "busy"),
            OwnerError::Store(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        }
    }
}

impl ResponseError for OwnerError {
    fn status_code(&self) -> StatusCode {
        self.status_and_code().0
    }

    fn error_response(&self) -> HttpResponse {
        let (status, code) = self.status_and_code();
        let message = match self {
            OwnerError::Store(e) => {
                tracing::error!(error = %e, "store failure in the owner API");
                "the service is temporarily unavailable, please try again".to_owned()
            }
            other => other.to_string(),
        };
        let mut reply = error_reply(status, code, message);
        if status == StatusCode::UNAUTHORIZED {
            reply.headers_mut().insert(
                actix_web::http::header::WWW_AUTHENTICATE,
                actix_web::http::header::HeaderValue::from_static("Bearer"),
            );
        }
        reply
    }
}

/// Hex SHA-256 of an API key: what the store keeps and looks keys up by.
pub fn api_key_hash(key: &str) -> String {
    crate::token::hex(ring::digest::digest(&ring::digest::SHA256, key.as_bytes()).as_ref())
}

/// The owner an API key authenticates. Extracting it is the authentication.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    pub owner: OwnerId,
}

impl FromRequest for Caller {
    type Error = OwnerError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let header = req
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Box::pin(async move {
            let header = header.ok_or(OwnerError::MissingKey)?;
            let (scheme, key) = header.trim().split_once(' ').ok_or(OwnerError::MissingKey)?;
            if !scheme.eq_ignore_ascii_case("bearer") {
                return Err(OwnerError::MissingKey);
            }
            let key = key.trim();
            if !key.starts_with(API_KEY_PREFIX) || key.len() > 200 {
                return Err(OwnerError::InvalidKey);
            }
            let state = state.ok_or(OwnerError::Store(StoreError::Unavailable("no state".into())))?;
            // The key has 256 random bits: looking its hash up leaks nothing useful about other keys.
            let record = state.store.api_key(&api_key_hash(key)).await?;
            let record = record.ok_or(OwnerError::InvalidKey)?;
            tracing::Span::current().record("owner", record.owner.0);
            Ok(Caller { owner: record.owner })
        })
    }
}

/// The caller's project `id`, or 404 (also when it belongs to another owner).
pub async fn owned_project(state: &AppState, caller: Caller, id: u64) -> Result<Project, OwnerError> {
    match state.store.project(ProjectId(id)).await? {
        Some(project) if project.owner == Some(caller.owner) => Ok(project),
        _ => Err(OwnerError::NotFound("project")),
    }
}

/// The caller's site, or 404 (also when it belongs to another owner).
pub async fn owned_site(state: &AppState, caller: Caller, sitekey: &str) -> Result<Site, OwnerError> {
    let sitekey = SiteKey::parse(sitekey).map_err(|_| OwnerError::NotFound("site"))?;
    match state.store.site(&sitekey).await? {
        Some(site) if site.owner == Some(caller.owner) => Ok(site),
        _ => Err(OwnerError::NotFound("site")),
    }
}
