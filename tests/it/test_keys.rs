//! The test keys (`protocol::test_keys`): a sitekey and a secret that always pass, a pair that always fail,
//! for the integrators' own test suites. They work from any page, need no site, and harvest nothing.

use protocol::test_keys::{FAIL_SECRET, FAIL_SITEKEY, PASS_SECRET, PASS_SITEKEY};
use protocol::{AnswerResponse, Challenge, PowChallenge, SiteverifyResponse, pow};
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_api_error};

/// Pages of an integrator's tests: none of them is a host name of any site of the server.
const LOCAL_ORIGIN: &str = "http://localhost:3000";
const CI_ORIGIN: &str = "https://ci-runner-42.example.org";

fn codes(reply: &SiteverifyResponse) -> Vec<&str> {
    reply.error_codes.iter().map(String::as_str).collect()
}

async fn test_challenge(app: &TestApp, sitekey: &str, lang: &str, origin: &str) -> Challenge {
    let resp = app
        .post_challenge_raw(&json!({"sitekey": sitekey, "lang": lang}), Some(origin))
        .await;
    assert_eq!(
        resp.status(),
        200,
        "test challenge refused: {}",
        resp.text().await.unwrap_or_default()
    );
    resp.json().await.expect("a challenge")
}

async fn post_answer(app: &TestApp, challenge_id: &str, origin: &str, body: &Value) -> reqwest::Response {
    app.client
        .post(app.url(&format!("/api/v1/challenge/{challenge_id}/answer")))
        .header("Origin", origin)
        .json(body)
        .send()
        .await
        .expect("request sent")
}

async fn answer(app: &TestApp, challenge_id: &str, origin: &str, body: &Value) -> AnswerResponse {
    let resp = post_answer(app, challenge_id, origin, body).await;
    assert_eq!(
        resp.status(),
        200,
        "answer refused: {}",
        resp.text().await.unwrap_or_default()
    );
    resp.json().await.expect("an answer reply")
}

/// Passes a check with the pass sitekey and returns the token.
async fn test_token(app: &TestApp) -> String {
    let challenge = test_challenge(app, PASS_SITEKEY, "fr", LOCAL_ORIGIN).await;
    let reply = answer(
        app,
        challenge.challenge_id.as_str(),
        LOCAL_ORIGIN,
        &json!({"answers": ["a", "b"]}),
    )
    .await;
    assert!(reply.success, "{reply:?}");
    reply.token.expect("a token")
}

async fn pow_challenge(app: &TestApp, sitekey: &str) -> PowChallenge {
    let resp = app
        .client
        .post(app.url("/api/v1/challenge/pow"))
        .header("Origin", CI_ORIGIN)
        .json(&json!({"sitekey": sitekey}))
        .send()
        .await
        .expect("request sent");
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

#[tokio::test]
async fn the_pass_sitekey_serves_a_built_in_challenge_from_any_origin() {
    let app = TestApp::spawn().await;
    for origin in [LOCAL_ORIGIN, CI_ORIGIN] {
        let challenge = test_challenge(&app, PASS_SITEKEY, "fr", origin).await;
        assert_eq!(
            challenge.question,
            "Clé de test\u{a0}: choisissez n’importe quelle réponse."
        );
        let labels: Vec<_> = challenge.labels.iter().map(|l| l.id.as_str()).collect();
        assert_eq!(labels, ["a", "b"]);
        assert_eq!(challenge.labels[0].text, "Réponse A");
        assert_eq!(challenge.images.len(), 2);
        let mut tiles = Vec::new();
        for (n, image) in challenge.images.iter().enumerate() {
            assert_eq!(
                image.url,
                format!("/api/v1/challenge/{}/image/{n}", challenge.challenge_id)
            );
            assert!(
                image
                    .alt
                    .starts_with(&format!("Image {} sur 2\u{a0}: image de test", n + 1)),
                "{}",
                image.alt
            );
            let resp = app.client.get(app.url(&image.url)).send().await.unwrap();
            assert_eq!(resp.status(), 200);
            assert_eq!(resp.headers()["content-type"], "image/png");
            let bytes = resp.bytes().await.unwrap();
            // A PNG whose header says 128 × 128 pixels.
            assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
            assert_eq!(&bytes[12..16], b"IHDR");
            assert_eq!(&bytes[16..24], [0, 0, 0, 128, 0, 0, 0, 128]);
            tiles.push(bytes);
        }
        assert_ne!(tiles[0], tiles[1], "the two test tiles should be told apart");
        let missing = app
            .client
            .get(app.url(&format!("/api/v1/challenge/{}/image/2", challenge.challenge_id)))
            .send()
            .await
            .unwrap();
        assert_api_error(missing, 404, "unknown-image").await;
    }

    let english = test_challenge(&app, PASS_SITEKEY, "en", CI_ORIGIN).await;
    assert_eq!(english.question, "Test key: choose any answer.");
    assert_eq!(english.labels[1].text, "Answer B");
    assert!(
        english.images[0]
            .alt
            .starts_with("Image 1 of 2: Cobot test image")
    );
    let failing = test_challenge(&app, FAIL_SITEKEY, "en", CI_ORIGIN).await;
    assert_eq!(
        failing.question,
        "Failing test key: every answer will be refused."
    );
}

#[tokio::test]
async fn a_test_sitekey_still_needs_an_origin() {
    // As for any site: the widget's requests always carry one, and the token's page is taken from it.
    let app = TestApp::spawn().await;
    let resp = app
        .post_challenge_raw(&json!({"sitekey": PASS_SITEKEY}), None)
        .await;
    assert_api_error(resp, 403, "origin-not-allowed").await;
}

#[tokio::test]
async fn any_answer_with_the_pass_sitekey_passes_and_the_pass_secret_redeems_the_token() {
    let app = TestApp::spawn().await;
    for answers in [["a", "a"], ["a", "b"], ["b", "a"], ["b", "b"]] {
        let challenge = test_challenge(&app, PASS_SITEKEY, "fr", CI_ORIGIN).await;
        let id = challenge.challenge_id.as_str();
        let reply = answer(&app, id, CI_ORIGIN, &json!({ "answers": answers })).await;
        assert!(reply.success, "{answers:?}: {reply:?}");
        assert_eq!(reply.expires_in, Some(300));
        let token = reply.token.expect("a token");

        let verified = app.siteverify(PASS_SECRET, &token).await;
        assert!(verified.success, "{verified:?}");
        assert!(codes(&verified).is_empty());
        assert_eq!(verified.check.as_deref(), Some("image"));
        assert_eq!(verified.hostname.as_deref(), Some("localhost"));
        let ts = verified.challenge_ts.expect("challenge_ts");
        assert!(ts.ends_with('Z') && ts.len() == 20, "not RFC 3339 UTC: {ts}");

        // Single use, as any challenge.
        let again = post_answer(&app, id, CI_ORIGIN, &json!({ "answers": answers })).await;
        assert_api_error(again, 404, "unknown-challenge").await;
    }
}

#[tokio::test]
async fn a_malformed_answer_to_a_test_challenge_is_refused_as_usual() {
    let app = TestApp::spawn().await;
    for sitekey in [PASS_SITEKEY, FAIL_SITEKEY] {
        let challenge = test_challenge(&app, sitekey, "fr", LOCAL_ORIGIN).await;
        let id = challenge.challenge_id.as_str();
        let resp = post_answer(&app, id, LOCAL_ORIGIN, &json!({"answers": ["a"]})).await;
        assert_api_error(resp, 400, "wrong-answer-count").await;
        let resp = post_answer(&app, id, LOCAL_ORIGIN, &json!({"answers": ["a", "flat"]})).await;
        assert_api_error(resp, 400, "invalid-label").await;
        let resp = post_answer(&app, id, LOCAL_ORIGIN, &json!({"nonce": "1"})).await;
        assert_api_error(resp, 400, "bad-request").await;
        // From another page than the one it was issued to, as any challenge.
        let resp = post_answer(&app, id, CI_ORIGIN, &json!({"answers": ["a", "a"]})).await;
        assert_api_error(resp, 403, "origin-not-allowed").await;
        // None of these consumed it.
        let reply = answer(&app, id, LOCAL_ORIGIN, &json!({"answers": ["a", "a"]})).await;
        assert_eq!(reply.success, sitekey == PASS_SITEKEY, "{reply:?}");
    }
}

#[tokio::test]
async fn every_answer_with_the_fail_sitekey_is_wrong() {
    let app = TestApp::spawn().await;
    for answers in [["a", "a"], ["a", "b"], ["b", "a"], ["b", "b"]] {
        let challenge = test_challenge(&app, FAIL_SITEKEY, "fr", LOCAL_ORIGIN).await;
        let id = challenge.challenge_id.as_str();
        let reply = answer(&app, id, LOCAL_ORIGIN, &json!({ "answers": answers })).await;
        assert!(!reply.success, "{answers:?}: {reply:?}");
        assert_eq!(reply.error.as_deref(), Some("wrong-answer"));
        assert_eq!(reply.token, None);
        // Spent, like any wrongly answered challenge.
        let again = post_answer(&app, id, LOCAL_ORIGIN, &json!({ "answers": answers })).await;
        assert_api_error(again, 404, "unknown-challenge").await;
    }
}

#[tokio::test]
async fn the_pass_secret_accepts_any_response_without_consuming_it() {
    let app = TestApp::spawn().await;
    // An integrator's backend tests may not run a browser: any response passes.
    let garbage = app.siteverify(PASS_SECRET, "not-a-token").await;
    assert!(garbage.success, "{garbage:?}");
    assert!(codes(&garbage).is_empty());
    assert_eq!(garbage.check.as_deref(), Some("image"));
    assert_eq!(garbage.hostname.as_deref(), Some("localhost"));
    assert!(garbage.challenge_ts.is_some());

    // A test token is not consumed: a test suite may redeem it again.
    let token = test_token(&app).await;
    assert!(app.siteverify(PASS_SECRET, &token).await.success);
    assert!(app.siteverify(PASS_SECRET, &token).await.success);

    // A real site's token "passes" too, as anything does, but the test secret never reaches the store: the
    // token is still the real site's to redeem, once.
    let real = app.pass_check().await;
    assert!(app.siteverify(PASS_SECRET, &real).await.success);
    assert!(app.siteverify(&app.site.secret, &real).await.success);
    assert_eq!(
        codes(&app.siteverify(&app.site.secret, &real).await),
        ["timeout-or-duplicate"]
    );

    // An empty response is still missing, whatever the secret.
    let empty = app.siteverify(PASS_SECRET, "").await;
    assert!(!empty.success);
    assert_eq!(codes(&empty), ["missing-input-response"]);
}

#[tokio::test]
async fn the_fail_secret_refuses_every_response() {
    let app = TestApp::spawn().await;
    let test = test_token(&app).await;
    let real = app.pass_check().await;
    for response in ["not-a-token", test.as_str(), real.as_str()] {
        let reply = app.siteverify(FAIL_SECRET, response).await;
        assert!(!reply.success, "{reply:?}");
        assert_eq!(codes(&reply), ["invalid-input-response"]);
        assert_eq!(reply.check, None);
    }
    // Nothing was consumed.
    assert!(app.siteverify(&app.site.secret, &real).await.success);
}

#[tokio::test]
async fn a_test_token_does_not_pass_with_a_real_secret() {
    let app = TestApp::spawn().await;
    let token = test_token(&app).await;
    let mismatch = app.siteverify(&app.site.secret, &token).await;
    assert!(!mismatch.success);
    assert_eq!(codes(&mismatch), ["sitekey-secret-mismatch"]);
    let unknown = format!("0x{}", "ab".repeat(20));
    let reply = app.siteverify(&unknown, &token).await;
    assert_eq!(codes(&reply), ["invalid-input-secret"]);
    // Still redeemable with the test secret.
    assert!(app.siteverify(PASS_SECRET, &token).await.success);
}

#[tokio::test]
async fn the_accessible_path_works_with_the_pass_sitekey_and_fails_with_the_fail_sitekey() {
    let app = TestApp::spawn_with(&[("COBOT_POW_DIFFICULTY_BITS", "4")]).await;
    // More passes than a site's burst of proof-of-work passes (30): test keys are charged no quota.
    for _ in 0..35 {
        let challenge = pow_challenge(&app, PASS_SITEKEY).await;
        let nonce = solve(&challenge);
        let reply = answer(
            &app,
            challenge.challenge_id.as_str(),
            CI_ORIGIN,
            &json!({ "nonce": nonce }),
        )
        .await;
        assert!(reply.success, "{reply:?}");
        let verified = app.siteverify(PASS_SECRET, &reply.token.expect("a token")).await;
        assert_eq!(verified.check.as_deref(), Some("pow"));
    }

    // The work is checked as for a real site.
    let challenge = pow_challenge(&app, PASS_SITEKEY).await;
    let short = (0_u64..1 << 20)
        .find(|n| {
            let digest = pow::sha256(format!("{}{n}", challenge.salt).as_bytes());
            !pow::meets(&digest, challenge.difficulty_bits)
        })
        .expect("most nonces fall short");
    let reply = answer(
        &app,
        challenge.challenge_id.as_str(),
        CI_ORIGIN,
        &json!({ "nonce": short.to_string() }),
    )
    .await;
    assert_eq!(reply.error.as_deref(), Some("wrong-answer"));

    // With the fail sitekey even a solved proof is a wrong answer.
    let challenge = pow_challenge(&app, FAIL_SITEKEY).await;
    let nonce = solve(&challenge);
    let reply = answer(
        &app,
        challenge.challenge_id.as_str(),
        CI_ORIGIN,
        &json!({ "nonce": nonce }),
    )
    .await;
    assert!(!reply.success);
    assert_eq!(reply.error.as_deref(), Some("wrong-answer"));
    let resp = post_answer(
        &app,
        challenge.challenge_id.as_str(),
        CI_ORIGIN,
        &json!({ "nonce": nonce }),
    )
    .await;
    assert_api_error(resp, 404, "unknown-challenge").await;
}

#[tokio::test]
async fn test_key_traffic_stores_no_contribution() {
    let mut app = TestApp::spawn().await;
    for sitekey in [PASS_SITEKEY, FAIL_SITEKEY] {
        for answers in [["a", "b"], ["b", "b"]] {
            let challenge = test_challenge(&app, sitekey, "fr", LOCAL_ORIGIN).await;
            answer(
                &app,
                challenge.challenge_id.as_str(),
                LOCAL_ORIGIN,
                &json!({ "answers": answers }),
            )
            .await;
        }
    }
    let token = test_token(&app).await;
    assert!(app.siteverify(PASS_SECRET, &token).await.success);

    // Test challenges belong to no project, so this says that none of their answers reached the server's
    // only project. That none is stored anywhere rests on the answer branching off before the image question's
    // code, and behind that on their slots being controls: nothing to harvest.
    let contributions = app.export_stopped("contributions");
    assert!(contributions.is_empty(), "{contributions:?}");
}
