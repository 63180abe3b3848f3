//! `/api/v1/projects/{id}/images`: bulk upload (multipart) and the listing with each image's status.
//!
//! An upload is read whole before anything is stored, so that a malformed request (a part other than
//! `image` or `labels`, bad `labels` JSON, too many files, a body over the limit) stores nothing and is
//! answered 400/413. Otherwise each file stands alone: the good ones are stored, duplicates and refused ones
//! are reported by file name, and the reply is 200 with the report.

use std::collections::BTreeMap;

use actix_multipart::Multipart;
use actix_web::error::PayloadError;
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use futures_util::StreamExt as _;
use protocol::ApiError;
use protocol::owner::upload::{IMAGE_PART, LABELS_PART};
use protocol::owner::{ImageList, ImageStatus, UploadReport};
use serde::Deserialize;

use super::{Caller, OwnerError, owned_project};
use crate::intake;
use crate::owner::{self, UploadFile};
use crate::routes::body::{self, BodyError};
use crate::startup::AppState;

/// The largest upload request: many tiles at once, but bounded (the request is held in memory).
pub const MAX_UPLOAD_BYTES: usize = 200 * 1024 * 1024;
/// The most files in one upload request.
pub const MAX_UPLOAD_FILES: usize = 500;
/// The largest `labels` part.
const MAX_LABELS_PART: usize = 1024 * 1024;
const DEFAULT_PAGE: usize = 100;

/// Upload images, with optional known labels (gold).
///
/// `multipart/form-data` with one `image` part per file (its file name is kept as the image's external id)
/// and at most one `labels` part: a JSON object `{"<file name>": "<label id>"}`. Files are sniffed from their
/// bytes (JPEG, PNG, WebP), checked for size and pixel count before decoding, and re-encoded without
/// metadata. Each refused file is reported with a stable code: `empty`, `too-large`, `unsupported-format`,
/// `too-many-pixels`, `side-too-long`, `truncated-or-corrupt`, `unsupported-encoding`, `memory-limit`,
/// `unknown-label`, `invalid-file-name`, `duplicate-file-name`, `no-such-file`.
#[utoipa::path(
    tag = "images",
    params(("id" = u64, Path, description = "Project id")),
    request_body(content_type = "multipart/form-data", description = "`image` parts (many) and an optional `labels` part"),
    responses(
        (status = 200, description = "What was stored, what was already there, what was refused and why", body = UploadReport),
        (status = 400, description = "A malformed request: nothing stored", body = ApiError),
        (status = 401, description = "Missing or invalid API key", body = ApiError),
        (status = 404, description = "No such project of the caller", body = ApiError),
        (status = 413, description = "More than 200 MiB or 500 files: nothing stored", body = ApiError),
        (status = 415, description = "Not multipart/form-data", body = ApiError),
        (status = 422, description = "The project is archived", body = ApiError),
    ),
    security(("api_key" = []))
)]
#[post("/api/v1/projects/{id}/images")]
#[tracing::instrument(name = "upload images", skip_all, fields(owner = caller.owner.0))]
pub async fn upload(
    caller: Caller,
    id: web::Path<u64>,
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, OwnerError> {
    let project = owned_project(&state, caller, id.into_inner()).await?;
    if project.archived {
        return Err(OwnerError::Invalid(format!(
            "project {} is archived: it takes no more images",
            project.id
        )));
    }
    if body::media_type(req.headers()) != "multipart/form-data" {
        return Err(BodyError::UnsupportedMediaType("multipart/form-data").into());
    }
    let limits = intake::Limits::default();
    let (files, known) = read_upload(&req, payload, &limits).await?;
    let count = files.len();
    // Decoding and re-encoding take tens of milliseconds per image: off the worker that serves citizens.
    let labels = project.labels.clone();
    let prepared = web::block(move || owner::prepare_images(&labels, files, known, &limits))
        .await
        .map_err(|e| OwnerError::Store(crate::store::StoreError::Unavailable(e.to_string())))?;
    let report = owner::store_images(&state.store, project.id, prepared).await?;
    tracing::info!(
        project = %project.id,
        files = count,
        stored = report.stored.len(),
        duplicates = report.duplicates.len(),
        rejected = report.rejected.len(),
        "images uploaded"
    );
    Ok(HttpResponse::Ok().json(report))
}

fn malformed(message: impl Into<String>) -> OwnerError {
    BodyError::Malformed(message.into()).into()
}

/// Reads every part of an upload, in order.
async fn read_upload(
    req: &HttpRequest,
    payload: web::Payload,
    limits: &intake::Limits,
) -> Result<(Vec<UploadFile>, BTreeMap<String, String>), OwnerError> {
    let declared = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > MAX_UPLOAD_BYTES) {
        return Err(BodyError::TooLarge(MAX_UPLOAD_BYTES).into());
    }
    // The whole body counts against the limit, whatever the parts say about themselves.
    let mut seen = 0usize;
    let limited = payload.map(move |chunk| {
        let chunk = chunk?;
        seen += chunk.len();
        if seen > MAX_UPLOAD_BYTES {
            return Err(PayloadError::Overflow);
        }
        Ok(chunk)
    });
    let mut multipart = Multipart::new(req.headers(), limited);
    let mut files: Vec<UploadFile> = Vec::new();
    let mut known: Option<BTreeMap<String, String>> = None;
    while let Some(field) = multipart.next().await {
        let mut field = field.map_err(multipart_error)?;
        let name = field.name().unwrap_or_default().to_owned();
        match name.as_str() {
            IMAGE_PART => {
                if files.len() >= MAX_UPLOAD_FILES {
                    return Err(malformed(format!(
                        "at most {MAX_UPLOAD_FILES} files in one request"
                    )));
                }
                let file_name = field
                    .content_disposition()
                    .and_then(|d| d.get_filename())
                    .map(str::to_owned)
                    .ok_or_else(|| malformed("an `image` part has no file name"))?;
                let bytes = read_file(&mut field, limits.max_file_bytes).await?;
                files.push(UploadFile {
                    name: file_name,
                    bytes,
                });
            }
            LABELS_PART => {
                if known.is_some() {
                    return Err(malformed("more than one `labels` part"));
                }
                let bytes = field
                    .bytes(MAX_LABELS_PART)
                    .await
                    .map_err(|_| malformed(format!("the `labels` part is over {MAX_LABELS_PART} bytes")))?
                    .map_err(multipart_error)?;
                let map: BTreeMap<String, String> = serde_json::from_slice(&bytes).map_err(|e| {
                    malformed(format!(
                        "the `labels` part must be a JSON object {{\"<file name>\": \"<label id>\"}}: {e}"
                    ))
                })?;
                known = Some(map);
            }
            "" => return Err(malformed("a part has no name")),
            other => {
                return Err(malformed(format!(
                    "unexpected part `{other}`: only `{IMAGE_PART}` and `{LABELS_PART}` parts are accepted"
                )));
            }
        }
    }
    if files.is_empty() {
        return Err(malformed(format!("the upload has no `{IMAGE_PART}` part")));
    }
    Ok((files, known.unwrap_or_default()))
}

/// Reads one file part. A file over `max` bytes is drained (so that the next parts can be read) but not
/// kept: it is refused for its size, as the intake would.
async fn read_file(
    field: &mut actix_multipart::Field,
    max: usize,
) -> Result<Result<Vec<u8>, intake::Rejection>, OwnerError> {
    let mut bytes = Vec::new();
    let mut size = 0usize;
    while let Some(chunk) = field.next().await {
        let chunk = chunk.map_err(multipart_error)?;
        size += chunk.len();
        if size <= max {
            bytes.extend_from_slice(&chunk);
        }
    }
    if size > max {
        return Ok(Err(intake::Rejection::TooLarge { size, max }));
    }
    Ok(Ok(bytes))
}

fn multipart_error(e: actix_multipart::MultipartError) -> OwnerError {
    match e {
        actix_multipart::MultipartError::Payload(PayloadError::Overflow) => {
            BodyError::TooLarge(MAX_UPLOAD_BYTES).into()
        }
        other => malformed(format!("malformed multipart body: {other}")),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ImagesQuery {
    status: Option<ImageStatus>,
    after: Option<u64>,
    limit: Option<usize>,
}

/// A page of the project's images in id order, with each one's status.
#[utoipa::path(
    tag = "images",
    params(
        ("id" = u64, Path, description = "Project id"),
        ("status" = Option<ImageStatus>, Query, description = "Only images with this status"),
        ("after" = Option<u64>, Query, description = "Images with an id above this (`next_after` of the previous page)"),
        ("limit" = Option<usize>, Query, description = "At most this many (default 100, at most 1000)"),
    ),
    responses(
        (status = 200, description = "One page of images", body = ImageList),
        (status = 400, description = "A bad query parameter", body = ApiError),
        (status = 401, description = "Missing or invalid API key", body = ApiError),
        (status = 404, description = "No such project of the caller", body = ApiError),
    ),
    security(("api_key" = []))
)]
#[get("/api/v1/projects/{id}/images")]
#[tracing::instrument(name = "list images", skip_all, fields(owner = caller.owner.0))]
pub async fn list(
    caller: Caller,
    id: web::Path<u64>,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, OwnerError> {
    let project = owned_project(&state, caller, id.into_inner()).await?;
    let query: ImagesQuery =
        serde_urlencoded::from_str(req.query_string()).map_err(|e| malformed(format!("bad query: {e}")))?;
    let limit = query.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=owner::MAX_PAGE).contains(&limit) {
        return Err(malformed(format!(
            "limit must be between 1 and {}",
            owner::MAX_PAGE
        )));
    }
    let learned = state.learned.get(project.id);
    let model = learned.as_ref().map(|l| &l.model);
    let list = owner::list_images(&state.store, &project, model, query.status, query.after, limit).await?;
    Ok(HttpResponse::Ok().json(list))
}
