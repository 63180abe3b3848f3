//! The widget's static assets: the loader at `/widget.js`, the rest under `/widget/`.
//!
//! Sites on other origins load them: the module glue and the wasm are fetched with CORS, so every asset
//! carries `Access-Control-Allow-Origin: *` (they hold no secret).

use std::path::Path;

use actix_web::http::{StatusCode, header};
use actix_web::{HttpResponse, web};

use super::body::error_reply;
use crate::startup::AppState;

fn content_type(name: &str) -> &'static str {
    match Path::new(name).extension().and_then(|e| e.to_str()) {
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("wasm") => "application/wasm",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}

/// Only plain file names: no separators, no `..`, nothing hidden.
fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

async fn serve(state: &AppState, name: &str) -> HttpResponse {
    if !is_plain_name(name) {
        return error_reply(StatusCode::NOT_FOUND, "not-found", "no such asset");
    }
    let path = state.widget_dir.join(name);
    match tokio::fs::read(&path).await {
        Ok(bytes) => HttpResponse::Ok()
            .content_type(content_type(name))
            .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
            .insert_header(("Cross-Origin-Resource-Policy", "cross-origin"))
            .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
            // File names carry no version yet, so browsers revalidate often.
            .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
            .body(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if !state.widget_dir.is_dir() {
                tracing::warn!(dir = %state.widget_dir.display(), "widget assets not built");
            }
            error_reply(
                StatusCode::NOT_FOUND,
                "not-found",
                "no such asset (is the widget built? run `cargo xtask widget`)",
            )
        }
        Err(e) => {
            tracing::error!(error = %e, path = %path.display(), "cannot read a widget asset");
            error_reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal-error",
                "cannot read the asset",
            )
        }
    }
}

pub async fn loader(state: web::Data<AppState>) -> HttpResponse {
    serve(&state, "widget.js").await
}

pub async fn asset(name: web::Path<String>, state: web::Data<AppState>) -> HttpResponse {
    serve(&state, &name).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_file_names_are_served() {
        assert!(is_plain_name("cobot_widget_bg.wasm"));
        assert!(!is_plain_name("../Cargo.toml"));
        assert!(!is_plain_name(".env"));
        assert!(!is_plain_name("a/b.js"));
    }
}
