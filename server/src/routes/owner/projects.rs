//! `/api/v1/projects`: create, list, read, update and archive the caller's projects.

use actix_web::{HttpRequest, HttpResponse, delete, get, patch, post, web};
use protocol::ApiError;
use protocol::owner::{NewProject, ProjectList, ProjectPatch, ProjectView};

use super::{Caller, JSON_LIMIT, OwnerError, owned_project};
use crate::owner;
use crate::routes::body;
use crate::startup::AppState;
use crate::store::Store;

/// Creates a project for the caller. Its images come through `POST /api/v1/projects/{id}/images`.
#[utoipa::path(
    tag = "projects",
    request_body = NewProject,
    responses(
        (status = 201, description = "The project, created", body = ProjectView),
        (status = 400, description = "Malformed JSON or unknown field", body = ApiError),
        (status = 401, description = "Missing or invalid API key", body = ApiError),
        (status = 422, description = "A field is out of bounds; the message says which", body = ApiError),
    ),
    security(("api_key" = []))
)]
#[post("/api/v1/projects")]
#[tracing::instrument(name = "create project", skip_all, fields(owner = caller.owner.0))]
pub async fn create(
    caller: Caller,
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, OwnerError> {
    let spec: NewProject = body::json(payload, req.headers(), JSON_LIMIT).await?;
    let project = owner::validate_project(spec, Some(caller.owner))?;
    let project = owner::create_project(&state.store, project).await?;
    tracing::info!(project = %project.id, "project created");
    Ok(HttpResponse::Created().json(owner::project_view(&project)))
}

/// The caller's projects, archived ones included, in id order.
#[utoipa::path(
    tag = "projects",
    responses(
        (status = 200, description = "The caller's projects", body = ProjectList),
        (status = 401, description = "Missing or invalid API key", body = ApiError),
    ),
    security(("api_key" = []))
)]
#[get("/api/v1/projects")]
#[tracing::instrument(name = "list projects", skip_all, fields(owner = caller.owner.0))]
pub async fn list(caller: Caller, state: web::Data<AppState>) -> Result<HttpResponse, OwnerError> {
    let projects = state
        .store
        .projects()
        .await?
        .iter()
        .filter(|p| p.owner == Some(caller.owner))
        .map(owner::project_view)
        .collect();
    Ok(HttpResponse::Ok().json(ProjectList { projects }))
}

#[utoipa::path(
    tag = "projects",
    params(("id" = u64, Path, description = "Project id")),
    responses(
        (status = 200, description = "The project", body = ProjectView),
        (status = 401, description = "Missing or invalid API key", body = ApiError),
        (status = 404, description = "No such project of the caller", body = ApiError),
    ),
    security(("api_key" = []))
)]
#[get("/api/v1/projects/{id}")]
#[tracing::instrument(name = "read project", skip_all, fields(owner = caller.owner.0))]
pub async fn read(
    caller: Caller,
    id: web::Path<u64>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, OwnerError> {
    let project = owned_project(&state, caller, id.into_inner()).await?;
    Ok(HttpResponse::Ok().json(owner::project_view(&project)))
}

/// Changes the given fields; label ids and their order stay as they are (their texts can change).
#[utoipa::path(
    tag = "projects",
    params(("id" = u64, Path, description = "Project id")),
    request_body = ProjectPatch,
    responses(
        (status = 200, description = "The project, updated", body = ProjectView),
        (status = 400, description = "Malformed JSON or unknown field", body = ApiError),
        (status = 401, description = "Missing or invalid API key", body = ApiError),
        (status = 404, description = "No such project of the caller", body = ApiError),
        (status = 422, description = "A field is out of bounds; the message says which", body = ApiError),
    ),
    security(("api_key" = []))
)]
#[patch("/api/v1/projects/{id}")]
#[tracing::instrument(name = "update project", skip_all, fields(owner = caller.owner.0))]
pub async fn update(
    caller: Caller,
    id: web::Path<u64>,
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, OwnerError> {
    let project = owned_project(&state, caller, id.into_inner()).await?;
    let patch: ProjectPatch = body::json(payload, req.headers(), JSON_LIMIT).await?;
    let project = owner::update_project(&state.store, project, patch).await?;
    Ok(HttpResponse::Ok().json(owner::project_view(&project)))
}

/// Archives the project: it is no longer served; its images, votes and labels stay readable and exportable.
#[utoipa::path(
    tag = "projects",
    params(("id" = u64, Path, description = "Project id")),
    responses(
        (status = 200, description = "The project, archived", body = ProjectView),
        (status = 401, description = "Missing or invalid API key", body = ApiError),
        (status = 404, description = "No such project of the caller", body = ApiError),
    ),
    security(("api_key" = []))
)]
#[delete("/api/v1/projects/{id}")]
#[tracing::instrument(name = "archive project", skip_all, fields(owner = caller.owner.0))]
pub async fn archive(
    caller: Caller,
    id: web::Path<u64>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, OwnerError> {
    let project = owned_project(&state, caller, id.into_inner()).await?;
    let project = owner::archive_project(&state.store, project).await?;
    tracing::info!(project = %project.id, "project archived");
    Ok(HttpResponse::Ok().json(owner::project_view(&project)))
}
