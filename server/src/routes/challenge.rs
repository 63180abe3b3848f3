//! The widget API: issue a challenge, serve its images, take the answer (flow 1 of DESIGN.md).

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use protocol::{AnswerRequest, AnswerResponse, ChallengeImage, ChallengeRequest, LabelChoice, Lang};
use rand::seq::SliceRandom;

use super::body::{self, BodyError, error_reply};
use crate::model::{ChallengeState, Contribution, TokenState, now, rfc3339};
use crate::startup::AppState;
use crate::store::{Store, StoreError};
use crate::token::{Claims, random_id};

/// Challenge and answer bodies are tiny; anything larger is not a widget talking.
const BODY_LIMIT: usize = 4 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ChallengeError {
    #[error(transparent)]
    Body(#[from] BodyError),
    #[error("no site has this sitekey")]
    UnknownSitekey,
    #[error("{0}")]
    OriginNotAllowed(String),
    #[error("this site's projects have no image to show right now")]
    NothingToServe,
    #[error("no such challenge: it may have expired or been answered already")]
    UnknownChallenge,
    #[error("no such image in this challenge")]
    UnknownImage,
    #[error("expected {expected} answers, one per image, got {got}")]
    WrongAnswerCount { expected: usize, got: usize },
    #[error("`{0}` is not one of this question's labels")]
    InvalidLabel(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ResponseError for ChallengeError {
    fn status_code(&self) -> StatusCode {
        self.status_and_code().0
    }

    fn error_response(&self) -> HttpResponse {
        let (status, code) = self.status_and_code();
        let message = match self {
            // Internal details stay in the logs.
            ChallengeError::Store(e) => {
                tracing::error!(error = %e, "store failure in the widget API");
                "the service is temporarily unavailable, please try again".to_owned()
            }
            other => other.to_string(),
        };
        error_reply(status, code, message)
    }
}

impl ChallengeError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ChallengeError::Body(e) => e.status_and_code(),
            ChallengeError::UnknownSitekey => (StatusCode::NOT_FOUND, "unknown-sitekey"),
            ChallengeError::OriginNotAllowed(_) => (StatusCode::FORBIDDEN, "origin-not-allowed"),
            ChallengeError::NothingToServe => (StatusCode::SERVICE_UNAVAILABLE, "no-challenge-available"),
            ChallengeError::UnknownChallenge => (StatusCode::NOT_FOUND, "unknown-challenge"),
            ChallengeError::UnknownImage => (StatusCode::NOT_FOUND, "unknown-image"),
            ChallengeError::WrongAnswerCount { .. } => (StatusCode::BAD_REQUEST, "wrong-answer-count"),
            ChallengeError::InvalidLabel(_) => (StatusCode::BAD_REQUEST, "invalid-label"),
            ChallengeError::Store(StoreError::Full(_)) => (StatusCode::SERVICE_UNAVAILABLE, "busy"),
            ChallengeError::Store(_) => (StatusCode::SERVICE_UNAVAILABLE, "store-unavailable"),
        }
    }
}

/// The host name of the request's `Origin`, lower-cased, without scheme or port.
fn origin_host(req: &HttpRequest) -> Result<String, ChallengeError> {
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .filter(|v| *v != "null")
        .ok_or_else(|| ChallengeError::OriginNotAllowed("the request has no Origin header".into()))?;
    let rest = origin.split_once("://").map_or(origin, |(_, rest)| rest);
    let authority = rest.split('/').next().unwrap_or_default();
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default()
    } else {
        authority.rsplit_once(':').map_or(authority, |(host, _port)| host)
    };
    Ok(host.to_ascii_lowercase())
}

fn check_origin(req: &HttpRequest, allowed: &[String]) -> Result<String, ChallengeError> {
    let host = origin_host(req)?;
    if allowed.iter().any(|h| h.eq_ignore_ascii_case(&host)) {
        Ok(host)
    } else {
        Err(ChallengeError::OriginNotAllowed(format!(
            "the site does not allow pages on `{host}`"
        )))
    }
}

fn image_alt(lang: Lang, position: usize, total: usize) -> String {
    match lang {
        Lang::Fr => {
            format!("Image {position} sur {total}\u{a0}: vue aérienne à décrire selon la question posée")
        }
        Lang::En => format!("Image {position} of {total}: aerial view to describe according to the question"),
    }
}

#[tracing::instrument(name = "create challenge", skip_all, fields(sitekey))]
pub async fn create(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ChallengeError> {
    let request: ChallengeRequest = body::json(payload, req.headers(), BODY_LIMIT).await?;
    tracing::Span::current().record("sitekey", request.sitekey.as_str());
    let site = state
        .store
        .site(&request.sitekey)
        .await?
        .ok_or(ChallengeError::UnknownSitekey)?;
    let hostname = check_origin(&req, &site.hostnames)?;

    // Try the site's projects in random order until one can make a challenge.
    let mut projects = site.projects.clone();
    projects.shuffle(&mut rand::rng());
    let mut picked = None;
    for project in projects {
        if let Some(slots) = state.store.pick_slots(project).await? {
            picked = Some((project, slots));
            break;
        }
    }
    let (project_id, mut slots) = picked.ok_or(ChallengeError::NothingToServe)?;
    let project = state
        .store
        .project(project_id)
        .await?
        .ok_or(ChallengeError::NothingToServe)?;
    // The control's position must not be guessable.
    slots.shuffle(&mut rand::rng());

    let id = random_id();
    let expires_at = now() + state.settings.challenge_ttl_secs;
    let total = slots.len();
    let challenge = protocol::Challenge {
        challenge_id: protocol::ChallengeId::parse(id.clone())
            .map_err(|e| StoreError::Unavailable(e.to_string()))?,
        question: project.question.get(request.lang).to_owned(),
        labels: project
            .labels
            .iter()
            .map(|l| LabelChoice {
                id: l.id.clone(),
                text: l.text.get(request.lang).to_owned(),
            })
            .collect(),
        images: (0..total)
            .map(|n| ChallengeImage {
                url: format!("{}/{id}/image/{n}", protocol::paths::CHALLENGE),
                alt: image_alt(request.lang, n + 1, total),
            })
            .collect(),
        expires_at: rfc3339(expires_at),
    };
    state
        .store
        .put_challenge(ChallengeState {
            id,
            sitekey: site.sitekey,
            hostname,
            project: project_id,
            slots: slots.to_vec(),
            expires_at,
        })
        .await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(challenge))
}

#[tracing::instrument(name = "challenge image", skip_all)]
pub async fn image(
    path: web::Path<(String, usize)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ChallengeError> {
    let (id, n) = path.into_inner();
    let challenge = state
        .store
        .challenge(&id)
        .await?
        .ok_or(ChallengeError::UnknownChallenge)?;
    let slot = challenge.slots.get(n).ok_or(ChallengeError::UnknownImage)?;
    let data = state
        .store
        .image_data(slot.image)
        .await?
        .ok_or(ChallengeError::UnknownImage)?;
    Ok(HttpResponse::Ok()
        .content_type(data.content_type)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header(("Cross-Origin-Resource-Policy", "cross-origin"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .body(data.bytes))
}

#[tracing::instrument(name = "answer challenge", skip_all)]
pub async fn answer(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ChallengeError> {
    let id = path.into_inner();
    let request: AnswerRequest = body::json(payload, req.headers(), BODY_LIMIT).await?;
    // Everything is checked before the challenge is consumed, so that bad input changes nothing.
    let challenge = state
        .store
        .challenge(&id)
        .await?
        .ok_or(ChallengeError::UnknownChallenge)?;
    check_origin(&req, std::slice::from_ref(&challenge.hostname))?;
    if request.answers.len() != challenge.slots.len() {
        return Err(ChallengeError::WrongAnswerCount {
            expected: challenge.slots.len(),
            got: request.answers.len(),
        });
    }
    let project = state
        .store
        .project(challenge.project)
        .await?
        .ok_or(ChallengeError::UnknownChallenge)?;
    if let Some(bad) = request.answers.iter().find(|a| !project.has_label(a)) {
        return Err(ChallengeError::InvalidLabel(bad.to_string()));
    }
    // Of concurrent answers to one challenge, exactly one gets past this line.
    let challenge = state
        .store
        .take_challenge(&id)
        .await?
        .ok_or(ChallengeError::UnknownChallenge)?;

    let passed = challenge
        .slots
        .iter()
        .zip(&request.answers)
        .all(|(slot, answer)| slot.expected.as_ref().is_none_or(|expected| expected == answer));
    if !passed {
        tracing::info!(outcome = "wrong-answer", "challenge failed");
        return Ok(HttpResponse::Ok().json(AnswerResponse {
            success: false,
            token: None,
            expires_in: None,
            error: Some("wrong-answer".into()),
        }));
    }

    let t = now();
    for (slot, answer) in challenge.slots.iter().zip(&request.answers) {
        if slot.expected.is_none() {
            // Durable before the reply: an acknowledged contribution is never lost.
            state
                .store
                .add_contribution(Contribution {
                    project: challenge.project,
                    image: slot.image,
                    label: answer.clone(),
                    sitekey: challenge.sitekey.clone(),
                    at: t,
                })
                .await?;
        }
    }

    let lifetime = state.settings.token_lifetime_secs;
    let claims = Claims {
        id: random_id(),
        sitekey: challenge.sitekey.clone(),
        issued_at: t,
    };
    let token = state.key.sign(&claims);
    state
        .store
        .put_token(TokenState {
            id: claims.id,
            sitekey: challenge.sitekey,
            hostname: challenge.hostname,
            challenge_ts: t,
            expires_at: t + lifetime,
        })
        .await?;
    tracing::info!(outcome = "passed", "challenge passed");
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(AnswerResponse {
            success: true,
            token: Some(token),
            expires_in: Some(lifetime),
            error: None,
        }))
}
