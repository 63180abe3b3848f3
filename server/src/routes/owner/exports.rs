//! The owner API's progress and exports: `GET /api/v1/projects/{id}/progress`, `.../labels?format=jsonl|csv`,
//! `.../contributions` and `.../export.zip`. The work is done by [`crate::exports`]; these handlers check the
//! caller, then stream what it writes as the response body, so an export is never whole in memory.

use actix_web::http::StatusCode;
use actix_web::http::header::{ContentDisposition, DispositionParam, DispositionType};
use actix_web::web::Bytes;
use actix_web::{HttpResponse, ResponseError, get, web};
use futures_util::Stream;
use protocol::owner::{ContributionRecord, LabelRecord, Progress};
use serde::Deserialize;

use super::{Caller, OwnerError, owned_project};
use crate::exports::{self, Consensus, ExportError, LabelsFormat, Sink};
use crate::model::Project;
use crate::routes::body::error_reply;
use crate::startup::AppState;
use crate::store::StoreError;

/// Chunks waiting between the export and the connection: the export pauses when the client reads slowly.
const CHANNEL_CHUNKS: usize = 4;

/// The errors of the export handlers: the owner API's, and a bad query parameter.
#[derive(Debug, thiserror::Error)]
pub enum ExportsError {
    #[error("the `format` parameter must be `jsonl` or `csv`, not `{0}`")]
    Format(String),
    #[error(transparent)]
    Owner(#[from] OwnerError),
}

impl From<StoreError> for ExportsError {
    fn from(e: StoreError) -> Self {
        ExportsError::Owner(e.into())
    }
}

impl ResponseError for ExportsError {
    fn status_code(&self) -> StatusCode {
        match self {
            ExportsError::Format(_) => StatusCode::BAD_REQUEST,
            ExportsError::Owner(e) => e.status_code(),
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            ExportsError::Format(_) => {
                error_reply(StatusCode::BAD_REQUEST, "invalid-format", self.to_string())
            }
            ExportsError::Owner(e) => e.error_response(),
        }
    }
}

/// Registers the handlers of this module (under the `/api/v1/projects` scope).
pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(progress)
        .service(labels)
        .service(contributions)
        .service(export_zip);
}

/// A project's progress: images by status, votes by label, contributions per day, estimated accuracy.
#[utoipa::path(
    tag = "exports",
    params(("id" = u64, Path, description = "Project id")),
    responses(
        (status = 200, description = "The project's progress", body = Progress),
        (status = 401, description = "Missing or invalid API key"),
        (status = 404, description = "No such project among the caller's"),
    ),
    security(("api_key" = []))
)]
#[get("/api/v1/projects/{id}/progress")]
async fn progress(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<u64>,
) -> Result<web::Json<Progress>, ExportsError> {
    let project = owned_project(&state, caller, id.into_inner()).await?;
    let learned = state.learned.get(project.id);
    let model = learned.as_ref().map(|l| &l.model);
    Ok(web::Json(exports::progress(&state.store, &project, model).await?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct LabelsQuery {
    /// `jsonl` (the default) or `csv`.
    format: Option<String>,
}

/// The labels of a project, one record per image: gold, decided (batch Dawid–Skene under the project's
/// consensus settings), contested or open, with the votes per label. Streamed.
#[utoipa::path(
    tag = "exports",
    params(("id" = u64, Path, description = "Project id"), LabelsQuery),
    responses(
        (status = 200, description = "One JSON object per line, or CSV with `votes` as `label:count;label:count`",
         content(
             (LabelRecord = "application/x-ndjson"),
             (String = "text/csv; charset=utf-8"),
         )),
        (status = 400, description = "`format` is neither `jsonl` nor `csv`"),
        (status = 401, description = "Missing or invalid API key"),
        (status = 404, description = "No such project among the caller's"),
    ),
    security(("api_key" = []))
)]
#[get("/api/v1/projects/{id}/labels")]
async fn labels(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<u64>,
    query: web::Query<LabelsQuery>,
) -> Result<HttpResponse, ExportsError> {
    let format = match query.into_inner().format {
        None => LabelsFormat::Jsonl,
        Some(f) => LabelsFormat::parse(&f).ok_or(ExportsError::Format(f))?,
    };
    let project = owned_project(&state, caller, id.into_inner()).await?;
    // Every vote is read before the first byte is sent, so that a store failure is still a clean 503.
    let consensus = Consensus::collect(&state.store, &project).await?;
    let (content_type, ext) = match format {
        LabelsFormat::Jsonl => ("application/x-ndjson", "jsonl"),
        LabelsFormat::Csv => ("text/csv; charset=utf-8", "csv"),
    };
    let filename = format!("project-{}-labels.{ext}", project.id);
    let body = streamed(state, project, move |state, project, mut sink| async move {
        exports::write_labels(&state.store, &project, &consensus, format, &mut sink).await
    });
    Ok(attachment(content_type, &filename).streaming(body))
}

/// Every contribution to a project, in acknowledgement order, as JSON lines. Nothing identifies a citizen.
#[utoipa::path(
    tag = "exports",
    params(("id" = u64, Path, description = "Project id")),
    responses(
        (status = 200, description = "One contribution per line",
         content((ContributionRecord = "application/x-ndjson"))),
        (status = 401, description = "Missing or invalid API key"),
        (status = 404, description = "No such project among the caller's"),
    ),
    security(("api_key" = []))
)]
#[get("/api/v1/projects/{id}/contributions")]
async fn contributions(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<u64>,
) -> Result<HttpResponse, ExportsError> {
    let project = owned_project(&state, caller, id.into_inner()).await?;
    let filename = format!("project-{}-contributions.jsonl", project.id);
    let body = streamed(state, project, |state, project, mut sink| async move {
        exports::write_contributions(&state.store, &project, &mut sink).await
    });
    Ok(attachment("application/x-ndjson", &filename).streaming(body))
}

/// The gold and decided images in `ImageFolder` layout (`<label>/<external id>.png`, one folder per label) with
/// a `labels.csv` index: a training set. Stored entries, ZIP64 when needed. Streamed.
#[utoipa::path(
    tag = "exports",
    params(("id" = u64, Path, description = "Project id")),
    responses(
        (status = 200, description = "A zip archive", content((Vec<u8> = "application/zip"))),
        (status = 401, description = "Missing or invalid API key"),
        (status = 404, description = "No such project among the caller's"),
    ),
    security(("api_key" = []))
)]
#[get("/api/v1/projects/{id}/export.zip")]
async fn export_zip(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<u64>,
) -> Result<HttpResponse, ExportsError> {
    let project = owned_project(&state, caller, id.into_inner()).await?;
    let consensus = Consensus::collect(&state.store, &project).await?;
    let filename = format!("project-{}-images.zip", project.id);
    let body = streamed(state, project, move |state, project, mut sink| async move {
        exports::write_zip(&state.store, &project, &consensus, &mut sink).await
    });
    Ok(attachment("application/zip", &filename).streaming(body))
}

fn attachment(content_type: &str, filename: &str) -> actix_web::HttpResponseBuilder {
    let mut reply = HttpResponse::Ok();
    reply
        .content_type(content_type)
        .insert_header(ContentDisposition {
            disposition: DispositionType::Attachment,
            parameters: vec![DispositionParam::Filename(filename.to_owned())],
        });
    reply
}

/// Hands what the export writes to the connection through a small bounded channel.
struct ChannelSink(tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>);

impl Sink for ChannelSink {
    async fn send(&mut self, chunk: Vec<u8>) -> std::io::Result<()> {
        self.0
            .send(Ok(Bytes::from(chunk)))
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client went away"))
    }
}

/// Runs `export` on this worker (the store's futures are not `Send`) and returns the stream of what it
/// writes. A failure after the first byte can only cut the body short: the client sees a truncated download,
/// never a complete-looking one.
fn streamed<F, Fut>(
    state: web::Data<AppState>,
    project: Project,
    export: F,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + 'static
where
    F: FnOnce(web::Data<AppState>, Project, ChannelSink) -> Fut + 'static,
    Fut: Future<Output = Result<(), ExportError>> + 'static,
{
    let (tx, mut rx) = tokio::sync::mpsc::channel(CHANNEL_CHUNKS);
    let project_id = project.id.0;
    actix_web::rt::spawn(async move {
        let errors = tx.clone();
        match export(state, project, ChannelSink(tx)).await {
            Ok(()) => {}
            Err(ExportError::Io(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                tracing::debug!(project = project_id, "export abandoned by the client");
            }
            Err(e) => {
                tracing::error!(project = project_id, error = %e, "export failed midway");
                let _ = errors.send(Err(std::io::Error::other(e.to_string()))).await;
            }
        }
    });
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[cfg(test)]
mod tests {
    use utoipa_actix_web::AppExt as _;

    #[test]
    fn the_openapi_document_describes_the_export_routes_and_their_bodies() {
        let (_, api) = actix_web::App::new()
            .into_utoipa_app()
            .configure(super::configure)
            .split_for_parts();
        let paths: Vec<&str> = api.paths.paths.keys().map(String::as_str).collect();
        assert_eq!(
            paths,
            [
                "/api/v1/projects/{id}/contributions",
                "/api/v1/projects/{id}/export.zip",
                "/api/v1/projects/{id}/labels",
                "/api/v1/projects/{id}/progress",
            ]
        );
        let schemas = api.components.expect("components").schemas;
        for schema in [
            "Progress",
            "LabelRecord",
            "ContributionRecord",
            "StatusCounts",
            "DayCount",
        ] {
            assert!(
                schemas.contains_key(schema),
                "{schema} missing: {:?}",
                schemas.keys()
            );
        }
        let json = serde_json::to_value(&api.paths.paths["/api/v1/projects/{id}/labels"]).expect("JSON");
        assert!(json.to_string().contains("application/x-ndjson"), "{json}");
        assert!(json.to_string().contains("\"format\""), "{json}");
    }
}
