//! Probes. `GET /healthz`: liveness; it answers as long as the process serves HTTP, whatever the store's state.
//! `GET /readyz`: readiness; `503` while the store cannot serve, so that a load balancer sends no traffic here.

use actix_web::{HttpResponse, web};

use crate::startup::AppState;
use crate::store::Store as _;

/// Not in `protocol::paths`: only operators' load balancers call it, never the widget or a site.
pub const READYZ: &str = "/readyz";

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    match state.store.ping().await {
        Ok(()) => HttpResponse::Ok().json(serde_json::json!({ "status": "ready" })),
        Err(e) => {
            tracing::warn!(error = %e, "not ready: the store does not answer");
            HttpResponse::ServiceUnavailable().json(serde_json::json!({
                "status": "unavailable",
                "error": "store-unavailable",
                "message": "the store cannot be reached; retrying by itself",
            }))
        }
    }
}
