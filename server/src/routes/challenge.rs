//! The widget API: issue a challenge, serve its images, take the answer (flow 1 of DESIGN.md).
//!
//! Two kinds of challenge share the store and the answer endpoint. The image question (`create`) proves a
//! human and harvests a label. The accessible path (`create_pow`), for citizens who cannot answer a question
//! about images, asks the citizen's device for a proof of work instead: a challenge with no image slot, so
//! nothing to perceive and nothing to harvest. It is single use like any other and its token says `pow`, so
//! that `siteverify` tells the site which check was passed. A challenge with no slot is a proof-of-work
//! challenge, and only that: `create` never makes one, since a project that can serve nothing is refused.
//!
//! The test sitekeys of `protocol::test_keys` are branched off to `test_keys` as soon as the sitekey is known
//! (from the request, or from the stored challenge): they reach no site, no project and no contribution.

use std::collections::HashMap;
use std::sync::Mutex;

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use protocol::{
    AnswerResponse, ChallengeImage, ChallengeRequest, LabelChoice, LabelId, Lang, PowChallenge, PowNonce,
    SiteKey,
};
use rand::Rng as _;
use rand::seq::SliceRandom;
use serde::Deserialize;

use super::body::{self, BodyError, error_reply};
use super::test_keys::{self, TestKey};
use crate::labels::{self, ServingChange};
use crate::model::{
    ChallengeState, Contribution, ImageId, Project, ProjectId, Serving, Site, TokenState, UnixTime, now,
    rfc3339,
};
use crate::startup::AppState;
use crate::store::{Store, StoreError};
use crate::token::{Check, Claims, random_id};

/// Controls a project keeps whatever humans answer: demoting below this many would stop its challenges.
const MIN_CONTROLS: usize = 2;

/// Unknowns sampled per challenge, of which the one closest to a decision is served ("power of two
/// choices"): labels are decided with fewer images in flight than with a uniform pick, and fresh images
/// still flow, since most samples hold a fresh one.
const UNKNOWN_CANDIDATES: usize = 2;

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
    #[error("this challenge is answered with `{0}`")]
    WrongAnswerKind(&'static str),
    #[error("too many checks by proof of work on this site right now, please try again in a minute")]
    PowQuotaExceeded,
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
            ChallengeError::WrongAnswerKind(_) => (StatusCode::BAD_REQUEST, "bad-request"),
            ChallengeError::PowQuotaExceeded => (StatusCode::TOO_MANY_REQUESTS, "rate-limited"),
            ChallengeError::Store(StoreError::Full(_)) => (StatusCode::SERVICE_UNAVAILABLE, "busy"),
            ChallengeError::Store(_) => (StatusCode::SERVICE_UNAVAILABLE, "store-unavailable"),
        }
    }
}

/// The host name of the request's `Origin`, lower-cased, without scheme or port.
pub(super) fn origin_host(req: &HttpRequest) -> Result<String, ChallengeError> {
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

/// Reads a challenge request. Shared by both kinds of challenge, which then branch to the test keys.
async fn read_request(req: &HttpRequest, payload: web::Payload) -> Result<ChallengeRequest, ChallengeError> {
    let request: ChallengeRequest = body::json(payload, req.headers(), BODY_LIMIT).await?;
    tracing::Span::current().record("sitekey", request.sitekey.as_str());
    Ok(request)
}

/// Finds the site of a challenge request, refusing unknown sitekeys and pages on hosts the site does not
/// list. Shared by both kinds of challenge. Returns the site and the page's host name.
async fn requesting_site(
    req: &HttpRequest,
    request: &ChallengeRequest,
    state: &AppState,
) -> Result<(Site, String), ChallengeError> {
    let site = state
        .store
        .site(&request.sitekey)
        .await?
        .ok_or(ChallengeError::UnknownSitekey)?;
    let hostname = check_origin(req, &site.hostnames)?;
    Ok((site, hostname))
}

#[tracing::instrument(name = "create challenge", skip_all, fields(sitekey))]
pub async fn create(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ChallengeError> {
    let request = read_request(&req, payload).await?;
    if let Some(key) = TestKey::of(&request.sitekey) {
        return test_keys::create(&req, &request, key, &state).await;
    }
    let (site, hostname) = requesting_site(&req, &request, &state).await?;

    // Try the site's projects that are not archived, in an order drawn by their priorities (a weighted
    // shuffle: each comes first in proportion to its priority), until one can make a challenge.
    let mut projects = Vec::with_capacity(site.projects.len());
    for id in &site.projects {
        if let Some(project) = state.store.project(*id).await?
            && !project.archived
        {
            projects.push(project);
        }
    }
    let mut rng = rand::rng();
    let mut keyed: Vec<(f64, Project)> = projects
        .into_iter()
        .map(|p| (rng.random::<f64>().powf(1.0 / f64::from(p.priority.max(1))), p))
        .collect();
    keyed.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut picked = None;
    for (_, project) in keyed {
        // Never an empty list: a challenge without slots is the accessible path's, answered by a nonce.
        if let Some(picked_slots) = state.store.pick_slots(project.id, UNKNOWN_CANDIDATES).await? {
            picked = Some((project, picked_slots));
            break;
        }
    }
    let (project, picked) = picked.ok_or(ChallengeError::NothingToServe)?;
    let project_id = project.id;
    let second = state
        .learned
        .most_needed(&project, picked.seconds)
        .ok_or(ChallengeError::NothingToServe)?;
    let mut slots = [picked.control, second];
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
    if TestKey::of(&challenge.sitekey).is_some() {
        return test_keys::image(&challenge, n);
    }
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

/// The answer body: the image question's `answers` or the accessible path's `nonce` (the union of
/// `protocol::AnswerRequest` and `protocol::PowAnswerRequest`). Read as one struct so that each field keeps
/// its precise parse error and a body with neither or both is refused before any lookup.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AnswerBody {
    #[serde(default)]
    answers: Option<Vec<LabelId>>,
    #[serde(default)]
    nonce: Option<PowNonce>,
}

pub(super) enum Answer {
    Labels(Vec<LabelId>),
    Nonce(PowNonce),
}

impl TryFrom<AnswerBody> for Answer {
    type Error = BodyError;
    fn try_from(body: AnswerBody) -> Result<Self, BodyError> {
        match (body.answers, body.nonce) {
            (Some(answers), None) => Ok(Answer::Labels(answers)),
            (None, Some(nonce)) => Ok(Answer::Nonce(nonce)),
            _ => Err(BodyError::Malformed(
                "expected either `answers` (one label per image) or `nonce` (proof of work)".into(),
            )),
        }
    }
}

#[tracing::instrument(name = "answer challenge", skip_all)]
pub async fn answer(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ChallengeError> {
    let id = path.into_inner();
    let body: AnswerBody = body::json(payload, req.headers(), BODY_LIMIT).await?;
    let answer = Answer::try_from(body)?;
    // Everything is checked before the challenge is consumed, so that bad input changes nothing.
    let challenge = state
        .store
        .challenge(&id)
        .await?
        .ok_or(ChallengeError::UnknownChallenge)?;
    check_origin(&req, std::slice::from_ref(&challenge.hostname))?;
    if let Some(key) = TestKey::of(&challenge.sitekey) {
        return test_keys::answer(&state, &id, &challenge, key, answer).await;
    }
    match (answer, challenge.slots.is_empty()) {
        (Answer::Labels(answers), false) => answer_images(&state, &id, &challenge, answers).await,
        (Answer::Nonce(nonce), true) => answer_pow(&state, &id, &challenge, &nonce).await,
        (Answer::Labels(_), true) => Err(ChallengeError::WrongAnswerKind("nonce")),
        (Answer::Nonce(_), false) => Err(ChallengeError::WrongAnswerKind("answers")),
    }
}

async fn answer_images(
    state: &AppState,
    id: &str,
    challenge: &ChallengeState,
    answers: Vec<LabelId>,
) -> Result<HttpResponse, ChallengeError> {
    if answers.len() != challenge.slots.len() {
        return Err(ChallengeError::WrongAnswerCount {
            expected: challenge.slots.len(),
            got: answers.len(),
        });
    }
    let project = state
        .store
        .project(challenge.project)
        .await?
        .ok_or(ChallengeError::UnknownChallenge)?;
    if let Some(bad) = answers.iter().find(|a| !project.has_label(a)) {
        return Err(ChallengeError::InvalidLabel(bad.to_string()));
    }
    // Of concurrent answers to one challenge, exactly one gets past this line.
    let challenge = state
        .store
        .take_challenge(id)
        .await?
        .ok_or(ChallengeError::UnknownChallenge)?;

    let passed = challenge
        .slots
        .iter()
        .zip(&answers)
        .all(|(slot, answer)| slot.expected.as_ref().is_none_or(|expected| expected == answer));
    for (slot, answer) in challenge.slots.iter().zip(&answers) {
        if let Some(expected) = &slot.expected {
            watch_control(state, &project, slot.image, expected == answer).await;
        }
    }
    if !passed {
        tracing::info!(outcome = "wrong-answer", "challenge failed");
        return Ok(wrong_answer());
    }

    let t = now();
    for (slot, answer) in challenge.slots.iter().zip(&answers) {
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
                    challenge: challenge.id.clone(),
                })
                .await?;
            apply_consensus(state, &project, slot.image).await;
        }
    }
    pow_quota().credit_image_pass(&challenge.sitekey, t);
    issue_token(state, challenge, Check::Image, t).await
}

/// After a vote on an unknown: applies the online consensus rule to the image's votes and stops serving it
/// once decided or contested (or serves it as a control when decided with a control's confidence).
///
/// The vote itself is already durable, and the image's state is a function of its votes: if this step fails,
/// the next vote on the image redoes it. So a failure here is logged, and the citizen still passes.
async fn apply_consensus(state: &AppState, project: &Project, image: ImageId) {
    let outcome = async {
        let votes = state.store.image_votes(project.id, image).await?;
        let learned = state.learned.get(project.id);
        let model = learned.as_ref().map(|l| &l.model);
        match labels::after_vote(project, &votes, model) {
            ServingChange::Keep { priority } => {
                state.learned.note_priority(image, priority);
                Ok(())
            }
            ServingChange::Retire => {
                state.learned.note_priority(image, None);
                state.store.retire_unknown(project.id, image).await
            }
            ServingChange::Promote(label) => {
                state.learned.note_priority(image, None);
                state.store.promote_control(project.id, image, label).await
            }
        }
    };
    if let Err(e) = outcome.await {
        tracing::warn!(error = %e, image = image.0, "consensus step deferred to the next vote");
    }
}

/// Counts an answer to a control, and re-opens the control when humans fail it significantly more often
/// than the project's controls in general (its label is likely wrong or ambiguous; see
/// `consensus::controls::ControlStats::record`). Statistics only: a failure here is logged and changes
/// nothing for the citizen.
async fn watch_control(state: &AppState, project: &Project, image: ImageId, passed: bool) {
    let outcome = async {
        let project_failure_rate = state.learned.observe_control(project.id, passed);
        let counts = state
            .store
            .record_control_answer(project.id, image, passed)
            .await?;
        if passed {
            // Only a failure can turn the verdict.
            return Ok(());
        }
        let mut before = consensus::controls::ControlStats {
            passed: u32::try_from(counts.passed).unwrap_or(u32::MAX),
            failed: u32::try_from(counts.failed.saturating_sub(1)).unwrap_or(u32::MAX),
        };
        let verdict = before.record(false, project_failure_rate, &labels::policy(project));
        if verdict == consensus::controls::ControlVerdict::Demote
            && keeps_enough_controls(state, project).await?
        {
            tracing::info!(
                image = image.0,
                passed = counts.passed,
                failed = counts.failed,
                "control failed too often: re-opened as an unknown"
            );
            state.store.reopen(project.id, image).await?;
        }
        Ok::<_, StoreError>(())
    };
    if let Err(e) = outcome.await {
        tracing::warn!(error = %e, image = image.0, "control statistics not recorded");
    }
}

/// Whether the project keeps at least [`MIN_CONTROLS`] other controls if one is re-opened: a project left
/// without controls could not make challenges at all. Only asked when a demotion is due (rarely), so
/// reading every answered control's serving state is affordable.
async fn keeps_enough_controls(state: &AppState, project: &Project) -> Result<bool, StoreError> {
    let answered: Vec<ImageId> = state
        .store
        .control_stats(project.id)
        .await?
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    let serving = state.store.serving(project.id, &answered).await?;
    let controls = serving
        .iter()
        .filter(|s| matches!(s, Serving::Control(_)))
        .count();
    if controls > MIN_CONTROLS {
        return Ok(true);
    }
    tracing::warn!(
        project = %project.id,
        controls,
        "a control humans fail too often is kept: the project has too few others"
    );
    Ok(false)
}

async fn answer_pow(
    state: &AppState,
    id: &str,
    challenge: &ChallengeState,
    nonce: &PowNonce,
) -> Result<HttpResponse, ChallengeError> {
    let salt = pow_salt(&challenge.id, &challenge.sitekey);
    let mut input = Vec::with_capacity(salt.len() + nonce.as_str().len());
    input.extend_from_slice(salt.as_bytes());
    input.extend_from_slice(nonce.as_str().as_bytes());
    let digest = ring::digest::digest(&ring::digest::SHA256, &input);
    let t = now();
    let enough = protocol::pow::meets(digest.as_ref(), difficulty_bits(state));
    // The quota is charged only for real work, and a refusal leaves the challenge for a later try.
    if enough && !pow_quota().try_charge(&challenge.sitekey, t) {
        tracing::warn!(outcome = "quota", "proof-of-work quota of the site exhausted");
        return Err(ChallengeError::PowQuotaExceeded);
    }
    // Of concurrent answers to one challenge, exactly one gets past this line.
    let Some(challenge) = state.store.take_challenge(id).await? else {
        if enough {
            pow_quota().refund(&challenge.sitekey, t);
        }
        return Err(ChallengeError::UnknownChallenge);
    };
    if !enough {
        // Like a wrong answer to the control: the challenge is spent, the widget asks for another.
        tracing::info!(outcome = "wrong-answer", "proof of work short of the difficulty");
        return Ok(wrong_answer());
    }
    issue_token(state, challenge, Check::Pow, t).await
}

pub(super) fn wrong_answer() -> HttpResponse {
    HttpResponse::Ok().json(AnswerResponse {
        success: false,
        token: None,
        expires_in: None,
        error: Some("wrong-answer".into()),
    })
}

/// Signs a token for a passed challenge and records it for single use.
pub(super) async fn issue_token(
    state: &AppState,
    challenge: ChallengeState,
    check: Check,
    t: UnixTime,
) -> Result<HttpResponse, ChallengeError> {
    let lifetime = state.settings.token_lifetime_secs;
    let claims = Claims {
        id: random_id(),
        sitekey: challenge.sitekey.clone(),
        issued_at: t,
        check,
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
    tracing::info!(outcome = "passed", check = check.as_str(), "challenge passed");
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(AnswerResponse {
            success: true,
            token: Some(token),
            expires_in: Some(lifetime),
            error: None,
        }))
}

// --- The accessible path: a proof of work instead of the image question. ---

/// `POST /api/v1/challenge/pow`: a challenge that needs no perception. Same sitekey and `Origin` checks as the
/// image question; its only cost is the work, which the per-site quota bounds.
#[tracing::instrument(name = "create pow challenge", skip_all, fields(sitekey))]
pub async fn create_pow(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ChallengeError> {
    let request = read_request(&req, payload).await?;
    if TestKey::of(&request.sitekey).is_some() {
        return test_keys::create_pow(&req, &request, &state).await;
    }
    let (site, hostname) = requesting_site(&req, &request, &state).await?;
    if !pow_quota().allows(&site.sitekey, now()) {
        tracing::warn!(outcome = "quota", "proof-of-work quota of the site exhausted");
        return Err(ChallengeError::PowQuotaExceeded);
    }

    let id = random_id();
    let expires_at = now() + state.settings.challenge_ttl_secs;
    let challenge = PowChallenge {
        challenge_id: protocol::ChallengeId::parse(id.clone())
            .map_err(|e| StoreError::Unavailable(e.to_string()))?,
        salt: pow_salt(&id, &site.sitekey),
        difficulty_bits: difficulty_bits(&state),
        expires_at: rfc3339(expires_at),
    };
    state
        .store
        .put_challenge(ChallengeState {
            id,
            sitekey: site.sitekey,
            hostname,
            // Unused: a challenge without slots harvests nothing. Any of the site's projects keeps the
            // record well formed.
            project: site.projects.first().copied().unwrap_or(ProjectId(0)),
            slots: Vec::new(),
            expires_at,
        })
        .await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(challenge))
}

pub(super) fn difficulty_bits(state: &AppState) -> u32 {
    state
        .settings
        .pow_difficulty_bits
        .min(protocol::pow::MAX_DIFFICULTY_BITS)
}

/// The proof-of-work salt: SHA-256 over a purpose string, the challenge id and the sitekey (length-prefixed),
/// base64url. The challenge id is 128 random bits, so no work can be done before the challenge exists; the
/// 43 characters leave room for a nonce in the same SHA-256 block.
pub fn pow_salt(challenge_id: &str, sitekey: &SiteKey) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for field in [
        b"cobot/pow-salt/v1".as_slice(),
        challenge_id.as_bytes(),
        sitekey.as_str().as_bytes(),
    ] {
        ctx.update(&u32::try_from(field.len()).unwrap_or(u32::MAX).to_be_bytes());
        ctx.update(field);
    }
    B64.encode(ctx.finish().as_ref())
}

/// The accessible path's stricter quota, per site: proof-of-work passes are limited to a burst plus what
/// the site's own traffic earns: one per four image passes, and one a minute whatever happens, so that a site
/// with little traffic still serves the citizens who need it. The work itself costs a bot little on native
/// hardware; this bound keeps a farm of them from turning the accessible path into a free pass.
///
/// It is kept in the process, not in the store: with several server instances each applies it on its own,
/// which multiplies the bound by their number (still a bound). It is looked at when a challenge is asked, so
/// that nobody computes in vain when it is spent, and charged when a proof is accepted, so that draining it
/// costs the work of every pass.
#[derive(Default)]
struct PowQuota {
    sites: Mutex<HashMap<SiteKey, Allowance>>,
}

#[derive(Clone, Copy)]
struct Allowance {
    /// Passes left, in quarters (an image pass earns one quarter).
    quarters: u64,
    updated: UnixTime,
}

impl PowQuota {
    const BURST_QUARTERS: u64 = 4 * 30;
    const SECS_PER_FREE_PASS: u64 = 60;

    fn with_site<T>(&self, sitekey: &SiteKey, t: UnixTime, f: impl FnOnce(&mut Allowance) -> T) -> T {
        let mut sites = self
            .sites
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let allowance = sites.entry(sitekey.clone()).or_insert(Allowance {
            quarters: Self::BURST_QUARTERS,
            updated: t,
        });
        let earned = t.saturating_sub(allowance.updated) / Self::SECS_PER_FREE_PASS;
        if earned > 0 {
            allowance.quarters = (allowance.quarters + 4 * earned).min(Self::BURST_QUARTERS);
            allowance.updated += earned * Self::SECS_PER_FREE_PASS;
        }
        f(allowance)
    }

    fn allows(&self, sitekey: &SiteKey, t: UnixTime) -> bool {
        self.with_site(sitekey, t, |a| a.quarters >= 4)
    }

    /// Takes one pass from the site's allowance; `false` when there is none left.
    fn try_charge(&self, sitekey: &SiteKey, t: UnixTime) -> bool {
        self.with_site(sitekey, t, |a| {
            let ok = a.quarters >= 4;
            if ok {
                a.quarters -= 4;
            }
            ok
        })
    }

    fn refund(&self, sitekey: &SiteKey, t: UnixTime) {
        self.with_site(sitekey, t, |a| {
            a.quarters = (a.quarters + 4).min(Self::BURST_QUARTERS);
        });
    }

    fn credit_image_pass(&self, sitekey: &SiteKey, t: UnixTime) {
        self.with_site(sitekey, t, |a| {
            a.quarters = (a.quarters + 1).min(Self::BURST_QUARTERS);
        });
    }
}

fn pow_quota() -> &'static PowQuota {
    static QUOTA: std::sync::OnceLock<PowQuota> = std::sync::OnceLock::new();
    QUOTA.get_or_init(PowQuota::default)
}
