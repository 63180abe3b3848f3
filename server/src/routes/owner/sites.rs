//! `/api/v1/sites`: the caller's sites, and rotation of a site's secret.

use actix_web::{HttpRequest, HttpResponse, get, post, web};
use protocol::ApiError;
use protocol::owner::{NewSite, RotateSecret, SiteCredentials, SiteList};

use super::{Caller, JSON_LIMIT, OwnerError, optional_json, owned_site};
use crate::model::ProjectId;
use crate::owner::{self, Issued};
use crate::routes::body;
use crate::startup::AppState;
use crate::store::Store;

fn credentials(issued: &Issued) -> SiteCredentials {
    SiteCredentials {
        sitekey: issued.site.sitekey.clone(),
        secret: issued.secret.as_str().to_owned(),
        site: owner::site_view(&issued.site),
    }
}

/// Creates a site showing some of the caller's projects. A project that is not the caller's (or does not
/// exist, or is archived) is refused with 422 naming it.
#[utoipa::path(
    tag = "sites",
    request_body = NewSite,
    responses(
        (status = 201, description = "The site and its secret, shown this once", body = SiteCredentials),
        (status = 400, description = "Malformed JSON or unknown field", body = ApiError),
        (status = 401, description = "Missing or invalid API key", body = ApiError),
        (status = 422, description = "A bad host name, or a project that is not the caller's", body = ApiError),
    ),
    security(("api_key" = []))
)]
#[post("/api/v1/sites")]
#[tracing::instrument(name = "create site", skip_all, fields(owner = caller.owner.0))]
pub async fn create(
    caller: Caller,
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, OwnerError> {
    let request: NewSite = body::json(payload, req.headers(), JSON_LIMIT).await?;
    let projects: Vec<ProjectId> = request.projects.iter().copied().map(ProjectId).collect();
    let issued = owner::create_site(&state.store, Some(caller.owner), &request.hostnames, &projects).await?;
    tracing::info!(sitekey = issued.site.sitekey.as_str(), "site created");
    Ok(HttpResponse::Created().json(credentials(&issued)))
}

/// The caller's sites, in sitekey order. Secrets are never shown again.
#[utoipa::path(
    tag = "sites",
    responses(
        (status = 200, description = "The caller's sites", body = SiteList),
        (status = 401, description = "Missing or invalid API key", body = ApiError),
    ),
    security(("api_key" = []))
)]
#[get("/api/v1/sites")]
#[tracing::instrument(name = "list sites", skip_all, fields(owner = caller.owner.0))]
pub async fn list(caller: Caller, state: web::Data<AppState>) -> Result<HttpResponse, OwnerError> {
    let sites = state
        .store
        .sites()
        .await?
        .iter()
        .filter(|s| s.owner == Some(caller.owner))
        .map(owner::site_view)
        .collect();
    Ok(HttpResponse::Ok().json(SiteList { sites }))
}

/// Gives the site a new secret; the previous one stays valid for `overlap_seconds` (default one day).
#[utoipa::path(
    tag = "sites",
    params(("sitekey" = String, Path, description = "The site's sitekey")),
    request_body(content = Option<RotateSecret>, description = "May be empty"),
    responses(
        (status = 201, description = "The new secret, shown this once", body = SiteCredentials),
        (status = 400, description = "Malformed JSON or unknown field", body = ApiError),
        (status = 401, description = "Missing or invalid API key", body = ApiError),
        (status = 404, description = "No such site of the caller", body = ApiError),
        (status = 422, description = "An overlap longer than 30 days", body = ApiError),
    ),
    security(("api_key" = []))
)]
#[post("/api/v1/sites/{sitekey}/secrets")]
#[tracing::instrument(name = "rotate site secret", skip_all, fields(owner = caller.owner.0))]
pub async fn rotate_secret(
    caller: Caller,
    sitekey: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, OwnerError> {
    let site = owned_site(&state, caller, &sitekey).await?;
    let request: RotateSecret = optional_json(payload, &req, JSON_LIMIT).await?;
    let issued = owner::rotate_secret(&state.store, site, request.overlap_seconds).await?;
    tracing::info!(sitekey = issued.site.sitekey.as_str(), "site secret rotated");
    Ok(HttpResponse::Created().json(credentials(&issued)))
}
