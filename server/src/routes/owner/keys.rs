//! `/api/v1/keys`: another API key for the caller's owner account (the first comes from
//! `cobot-server key create --owner NAME`).

use actix_web::{HttpRequest, HttpResponse, post, web};
use protocol::ApiError;
use protocol::owner::{ApiKeyCreated, NewKey};

use super::{Caller, JSON_LIMIT, OwnerError, optional_json};
use crate::owner;
use crate::startup::AppState;
use crate::store::Store;

/// Makes a new API key for the caller's account; the key is shown this once and stored hashed.
#[utoipa::path(
    tag = "keys",
    request_body(content = Option<NewKey>, description = "May be empty"),
    responses(
        (status = 201, description = "The new key, shown this once", body = ApiKeyCreated),
        (status = 400, description = "Malformed JSON or unknown field", body = ApiError),
        (status = 401, description = "Missing or invalid API key", body = ApiError),
        (status = 422, description = "The name is too long", body = ApiError),
    ),
    security(("api_key" = []))
)]
#[post("/api/v1/keys")]
#[tracing::instrument(name = "create api key", skip_all, fields(owner = caller.owner.0))]
pub async fn create(
    caller: Caller,
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, OwnerError> {
    let request: NewKey = optional_json(payload, &req, JSON_LIMIT).await?;
    let name = state
        .store
        .owners()
        .await?
        .into_iter()
        .find(|o| o.id == caller.owner)
        .map(|o| o.name)
        .ok_or(OwnerError::InvalidKey)?;
    let api_key =
        owner::create_api_key(&state.store, caller.owner, request.name.as_deref().unwrap_or("")).await?;
    tracing::info!("api key created");
    Ok(HttpResponse::Created().json(ApiKeyCreated { api_key, owner: name }))
}
