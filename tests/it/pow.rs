//! The accessible path: a proof-of-work challenge for citizens who cannot answer the image question.
//!
//! The nonces are found with `protocol::pow::search`, the hand-written SHA-256 the widget runs; the server
//! checks them with `ring`. A passing test therefore also says that the two implementations agree.

use protocol::{AnswerResponse, PowChallenge, pow};
use serde_json::{Value, json};

use crate::helpers::{CONTROL_LABEL, ORIGIN, TestApp, assert_api_error};

const POW_PATH: &str = "/api/v1/challenge/pow";

/// Cheap work, so that the tests that are not about the difficulty run fast.
const EASY: &[(&str, &str)] = &[("COBOT_POW_DIFFICULTY_BITS", "4")];

async fn post_pow_raw(app: &TestApp, body: &Value, origin: Option<&str>) -> reqwest::Response {
    let mut req = app.client.post(app.url(POW_PATH)).json(body);
    if let Some(origin) = origin {
        req = req.header("Origin", origin);
    }
    req.send().await.expect("request sent")
}

async fn pow_challenge(app: &TestApp) -> PowChallenge {
    let resp = post_pow_raw(app, &json!({"sitekey": app.site.sitekey}), Some(ORIGIN)).await;
    assert_eq!(
        resp.status(),
        200,
        "proof-of-work challenge refused: {}",
        resp.text().await.unwrap_or_default()
    );
    resp.json().await.expect("a proof-of-work challenge")
}

fn solve(challenge: &PowChallenge) -> String {
    pow::search(&challenge.salt, challenge.difficulty_bits, 0, u64::MAX)
        .expect("a nonce exists")
        .to_string()
}

/// A nonce whose digest does not have the required zero bits.
fn unsolved(challenge: &PowChallenge) -> String {
    (0_u64..1 << 20)
        .find(|n| {
            let digest = pow::sha256(format!("{}{n}", challenge.salt).as_bytes());
            !pow::meets(&digest, challenge.difficulty_bits)
        })
        .expect("most nonces fall short")
        .to_string()
}

/// `post_answer_raw` on a new connection: solving may outlast the server's keep-alive, and a pooled
/// connection closed meanwhile fails the request on a race that says nothing about Cobot.
async fn post_answer(app: &TestApp, challenge_id: &str, body: &Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(app.url(&format!("/api/v1/challenge/{challenge_id}/answer")))
        .header("Origin", ORIGIN)
        .json(body)
        .send()
        .await
        .expect("request sent")
}

async fn answer_nonce(app: &TestApp, challenge_id: &str, nonce: &str) -> AnswerResponse {
    let resp = post_answer(app, challenge_id, &json!({ "nonce": nonce })).await;
    assert_eq!(
        resp.status(),
        200,
        "answer refused: {}",
        resp.text().await.unwrap_or_default()
    );
    resp.json().await.expect("an answer reply")
}

async fn pass_pow(app: &TestApp) -> String {
    let challenge = pow_challenge(app).await;
    let reply = answer_nonce(app, challenge.challenge_id.as_str(), &solve(&challenge)).await;
    assert!(reply.success, "a solved proof of work was refused: {reply:?}");
    reply.token.expect("a token")
}

#[tokio::test]
async fn the_default_work_is_twenty_bits() {
    // A million hashes on average: about a second on a mid-range phone (solving it here, in a debug
    // build, would take longer than the point is worth).
    let app = TestApp::spawn().await;
    let challenge = pow_challenge(&app).await;
    assert_eq!(challenge.difficulty_bits, 20);
}

#[tokio::test]
async fn a_solved_proof_of_work_gets_a_token_that_siteverify_reports_as_pow_and_harvests_nothing() {
    let mut app = TestApp::spawn_with(&[("COBOT_POW_DIFFICULTY_BITS", "12")]).await;
    let challenge = pow_challenge(&app).await;
    assert_eq!(challenge.difficulty_bits, 12);
    assert_eq!(challenge.salt.len(), 43);
    assert!(challenge.expires_at.ends_with('Z'), "{}", challenge.expires_at);
    let reply = answer_nonce(&app, challenge.challenge_id.as_str(), &solve(&challenge)).await;
    assert!(reply.success, "{reply:?}");
    assert_eq!(reply.expires_in, Some(300));
    let token = reply.token.expect("a token");

    let verdict = app.siteverify(&app.site.secret, &token).await;
    assert!(verdict.success, "{verdict:?}");
    assert_eq!(verdict.check.as_deref(), Some("pow"));
    assert_eq!(verdict.hostname.as_deref(), Some("demo.localhost"));
    assert!(verdict.error_codes.is_empty());

    // The image path still says `image`.
    let image_token = app.pass_check().await;
    let verdict = app.siteverify(&app.site.secret, &image_token).await;
    assert_eq!(verdict.check.as_deref(), Some("image"));

    // One contribution: the image check's. The proof of work harvested no label.
    assert_eq!(app.export_stopped("contributions").len(), 1);
}

#[tokio::test]
async fn a_proof_of_work_token_is_accepted_once() {
    let app = TestApp::spawn_with(EASY).await;
    let token = pass_pow(&app).await;
    assert!(app.siteverify(&app.site.secret, &token).await.success);
    let again = app.siteverify(&app.site.secret, &token).await;
    assert!(!again.success);
    assert_eq!(again.error_codes, ["timeout-or-duplicate"]);
}

#[tokio::test]
async fn a_nonce_short_of_the_difficulty_is_a_wrong_answer_and_spends_the_challenge() {
    let app = TestApp::spawn_with(EASY).await;
    let challenge = pow_challenge(&app).await;
    let id = challenge.challenge_id.as_str();
    let reply = answer_nonce(&app, id, &unsolved(&challenge)).await;
    assert!(!reply.success);
    assert_eq!(reply.error.as_deref(), Some("wrong-answer"));
    assert_eq!(reply.token, None);
    // Spent, like a wrong answer to the image question: the right nonce comes too late.
    let late = post_answer(&app, id, &json!({ "nonce": solve(&challenge) })).await;
    assert_api_error(late, 404, "unknown-challenge").await;
}

#[tokio::test]
async fn a_solved_challenge_cannot_be_replayed() {
    let app = TestApp::spawn_with(EASY).await;
    let challenge = pow_challenge(&app).await;
    let id = challenge.challenge_id.as_str();
    let nonce = solve(&challenge);
    assert!(answer_nonce(&app, id, &nonce).await.success);
    let replay = post_answer(&app, id, &json!({ "nonce": nonce })).await;
    assert_api_error(replay, 404, "unknown-challenge").await;
}

#[tokio::test]
async fn malformed_answers_are_refused_without_spending_the_challenge() {
    let app = TestApp::spawn_with(EASY).await;
    let challenge = pow_challenge(&app).await;
    let id = challenge.challenge_id.as_str();
    for body in [
        json!({}),
        json!({ "nonce": "" }),
        json!({ "nonce": "12a" }),
        json!({ "nonce": "-1" }),
        json!({ "nonce": 12 }),
        json!({ "nonce": "123456789012345678901" }),
        json!({ "nonce": "1", "extra": true }),
        json!({ "nonce": "1", "answers": [CONTROL_LABEL, CONTROL_LABEL] }),
        // The image question's answer does not fit a proof-of-work challenge.
        json!({ "answers": [CONTROL_LABEL, CONTROL_LABEL] }),
    ] {
        let resp = post_answer(&app, id, &body).await;
        assert_api_error(resp, 400, "bad-request").await;
    }
    let not_json = app
        .client
        .post(app.url(&format!("/api/v1/challenge/{id}/answer")))
        .header("Origin", ORIGIN)
        .header("Content-Type", "application/json")
        .body("{\"nonce\": ")
        .send()
        .await
        .unwrap();
    assert_api_error(not_json, 400, "bad-request").await;
    // Still there: the right nonce passes.
    assert!(answer_nonce(&app, id, &solve(&challenge)).await.success);
}

#[tokio::test]
async fn an_image_challenge_cannot_be_answered_with_a_nonce() {
    let app = TestApp::spawn_with(EASY).await;
    let challenge = app.challenge().await;
    let id = challenge.challenge_id.as_str();
    let resp = post_answer(&app, id, &json!({ "nonce": "42" })).await;
    assert_api_error(resp, 400, "bad-request").await;
    // Not spent either.
    assert!(app.answer(id, [CONTROL_LABEL, CONTROL_LABEL]).await.success);
}

#[tokio::test]
async fn a_proof_of_work_challenge_has_no_image() {
    let app = TestApp::spawn_with(EASY).await;
    let challenge = pow_challenge(&app).await;
    let resp = app
        .client
        .get(app.url(&format!(
            "/api/v1/challenge/{}/image/0",
            challenge.challenge_id.as_str()
        )))
        .send()
        .await
        .unwrap();
    assert_api_error(resp, 404, "unknown-image").await;
}

#[tokio::test]
async fn the_same_origin_and_sitekey_checks_as_the_image_path_apply() {
    let app = TestApp::spawn_with(EASY).await;
    let body = json!({"sitekey": app.site.sitekey});
    assert_api_error(
        post_pow_raw(&app, &body, Some("https://evil.example")).await,
        403,
        "origin-not-allowed",
    )
    .await;
    assert_api_error(post_pow_raw(&app, &body, None).await, 403, "origin-not-allowed").await;
    // A site's pages may not ask for another site's checks.
    let other = json!({"sitekey": app.other_site.sitekey});
    assert_api_error(
        post_pow_raw(&app, &other, Some(ORIGIN)).await,
        403,
        "origin-not-allowed",
    )
    .await;
    let unknown = json!({"sitekey": "00000000-0000-4000-8000-000000000000"});
    assert_api_error(
        post_pow_raw(&app, &unknown, Some(ORIGIN)).await,
        404,
        "unknown-sitekey",
    )
    .await;
    assert_api_error(
        post_pow_raw(&app, &json!({"sitekey": "nope"}), Some(ORIGIN)).await,
        400,
        "bad-request",
    )
    .await;

    // An answer from another origin is refused and does not spend the challenge.
    let challenge = pow_challenge(&app).await;
    let id = challenge.challenge_id.as_str();
    let nonce = solve(&challenge);
    let foreign = app
        .client
        .post(app.url(&format!("/api/v1/challenge/{id}/answer")))
        .header("Origin", "https://evil.example")
        .json(&json!({ "nonce": nonce }))
        .send()
        .await
        .unwrap();
    assert_api_error(foreign, 403, "origin-not-allowed").await;
    assert!(answer_nonce(&app, id, &nonce).await.success);
}

#[tokio::test]
async fn the_accessible_path_has_a_stricter_per_site_quota_that_image_passes_replenish() {
    let app = TestApp::spawn_with(EASY).await;
    // A burst of 30 passes by proof of work per site, then nothing until the site's traffic earns more.
    for _ in 0..30 {
        pass_pow(&app).await;
    }
    let refused = post_pow_raw(&app, &json!({"sitekey": app.site.sitekey}), Some(ORIGIN)).await;
    assert_api_error(refused, 429, "rate-limited").await;
    // The image question is not limited by it.
    app.pass_check().await;

    // A challenge asked while there was room is not honoured once the room is gone: the proof is
    // refused without spending the challenge, which passes once the quota has room again.
    for _ in 0..3 {
        app.pass_check().await;
    }
    let pending = pow_challenge(&app).await;
    let other = pow_challenge(&app).await;
    assert!(
        answer_nonce(&app, other.challenge_id.as_str(), &solve(&other))
            .await
            .success,
        "four image passes earned one proof-of-work pass"
    );
    let id = pending.challenge_id.as_str();
    let nonce = solve(&pending);
    let over = post_answer(&app, id, &json!({ "nonce": nonce })).await;
    assert_api_error(over, 429, "rate-limited").await;
    for _ in 0..4 {
        app.pass_check().await;
    }
    assert!(answer_nonce(&app, id, &nonce).await.success);
}
