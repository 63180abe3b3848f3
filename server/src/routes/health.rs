//! `GET /healthz`: liveness. It answers as long as the process serves HTTP, whatever the store's state.

use actix_web::HttpResponse;

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}
