//! Flow 1: challenges, images and answers, and every way a client can get them wrong.

use serde_json::json;

use crate::helpers::{CONTROL_LABEL, ORIGIN, TestApp, WRONG_LABEL, assert_api_error};

#[tokio::test]
async fn a_challenge_shows_two_opaque_images_and_the_project_labels() {
    let app = TestApp::spawn().await;
    let challenge = app.challenge().await;
    assert_eq!(challenge.question, "Dans quel sens est orienté ce toit\u{a0}?");
    let labels: Vec<&str> = challenge.labels.iter().map(|l| l.id.as_str()).collect();
    assert_eq!(labels, ["north_south", "east_west", "flat", "other"]);
    assert_eq!(challenge.images.len(), 2);
    let id = challenge.challenge_id.as_str();
    for (n, image) in challenge.images.iter().enumerate() {
        // The URL names the challenge and a position, nothing about the image.
        assert_eq!(image.url, format!("/api/v1/challenge/{id}/image/{n}"));
        assert!(
            image.alt.contains(&format!("Image {} sur 2", n + 1)),
            "{}",
            image.alt
        );
        let resp = app.client.get(app.url(&image.url)).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        // Tiles are normalised to JPEG by the intake, whatever was uploaded.
        assert_eq!(resp.headers()["content-type"], "image/jpeg");
        let bytes = resp.bytes().await.unwrap();
        assert_eq!(&bytes[..3], b"\xff\xd8\xff");
    }
    let missing = app
        .client
        .get(app.url(&format!("/api/v1/challenge/{id}/image/2")))
        .send()
        .await
        .unwrap();
    assert_api_error(missing, 404, "unknown-image").await;
}

#[tokio::test]
async fn english_is_served_when_asked() {
    let app = TestApp::spawn().await;
    let resp = app
        .post_challenge_raw(&json!({"sitekey": app.site.sitekey, "lang": "en"}), Some(ORIGIN))
        .await;
    let challenge: protocol::Challenge = resp.json().await.unwrap();
    assert_eq!(challenge.question, "Which way does this roof face?");
    assert!(challenge.images[0].alt.starts_with("Image 1 of 2"));
}

#[tokio::test]
async fn the_control_position_varies_between_challenges() {
    // The control must not always sit at the same place, or a bot would know which image to answer.
    let app = TestApp::spawn().await;
    let mut positions = std::collections::HashSet::new();
    for _ in 0..40 {
        let challenge = app.challenge().await;
        // Answer the control at position 0 only: success tells us where the control was.
        let reply = app
            .answer(challenge.challenge_id.as_str(), [CONTROL_LABEL, WRONG_LABEL])
            .await;
        positions.insert(reply.success);
        if positions.len() == 2 {
            break;
        }
    }
    assert_eq!(positions.len(), 2, "the control was always at the same position");
}

#[tokio::test]
async fn the_right_answer_stores_exactly_one_contribution_and_a_wrong_one_none() {
    let mut app = TestApp::spawn().await;
    app.pass_check().await;
    let wrong = app.challenge().await;
    let reply = app
        .answer(wrong.challenge_id.as_str(), [WRONG_LABEL, WRONG_LABEL])
        .await;
    assert!(!reply.success);
    assert_eq!(reply.error.as_deref(), Some("wrong-answer"));
    assert_eq!(reply.token, None);

    let contributions = app.export_stopped("contributions");
    assert_eq!(contributions.len(), 1, "{contributions:?}");
    assert_eq!(contributions[0]["label"], CONTROL_LABEL);
    assert!(contributions[0]["image"].as_str().unwrap().starts_with("img-"));
}

#[tokio::test]
async fn a_challenge_is_answered_once() {
    let app = TestApp::spawn().await;
    let challenge = app.challenge().await;
    let id = challenge.challenge_id.as_str();
    assert!(app.answer(id, [CONTROL_LABEL, CONTROL_LABEL]).await.success);
    let again = app
        .post_answer_raw(id, &json!({"answers": [CONTROL_LABEL, CONTROL_LABEL]}))
        .await;
    assert_api_error(again, 404, "unknown-challenge").await;
    // Its images are gone too.
    let image = app
        .client
        .get(app.url(&challenge.images[0].url))
        .send()
        .await
        .unwrap();
    assert_api_error(image, 404, "unknown-challenge").await;
}

#[tokio::test]
async fn a_wrong_answer_also_consumes_the_challenge() {
    let app = TestApp::spawn().await;
    let challenge = app.challenge().await;
    let id = challenge.challenge_id.as_str();
    assert!(!app.answer(id, [WRONG_LABEL, WRONG_LABEL]).await.success);
    let retry = app
        .post_answer_raw(id, &json!({"answers": [CONTROL_LABEL, CONTROL_LABEL]}))
        .await;
    assert_api_error(retry, 404, "unknown-challenge").await;
}

#[tokio::test]
async fn an_unknown_challenge_is_refused() {
    let app = TestApp::spawn().await;
    let resp = app
        .post_answer_raw("AAAAAAAAAAAAAAAAAAAAAA", &json!({"answers": ["flat", "flat"]}))
        .await;
    assert_api_error(resp, 404, "unknown-challenge").await;
    let resp = app
        .post_answer_raw("not-even-an-id", &json!({"answers": ["flat", "flat"]}))
        .await;
    assert_api_error(resp, 404, "unknown-challenge").await;
}

#[tokio::test]
async fn a_label_outside_the_set_is_refused_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let challenge = app.challenge().await;
    let id = challenge.challenge_id.as_str();
    let resp = app
        .post_answer_raw(id, &json!({"answers": ["flat", "round"]}))
        .await;
    assert_api_error(resp, 400, "invalid-label").await;
    let resp = app.post_answer_raw(id, &json!({"answers": ["flat"]})).await;
    assert_api_error(resp, 400, "wrong-answer-count").await;
    // The challenge is still there and still answerable.
    assert!(app.answer(id, [CONTROL_LABEL, CONTROL_LABEL]).await.success);
}

#[tokio::test]
async fn an_unknown_sitekey_is_refused() {
    let app = TestApp::spawn().await;
    let resp = app
        .post_challenge_raw(
            &json!({"sitekey": "00000000-0000-4000-8000-000000000000"}),
            Some(ORIGIN),
        )
        .await;
    assert_api_error(resp, 404, "unknown-sitekey").await;
}

#[tokio::test]
async fn a_page_on_a_host_the_site_does_not_allow_gets_no_challenge() {
    let app = TestApp::spawn().await;
    let body = json!({"sitekey": app.site.sitekey});
    let resp = app.post_challenge_raw(&body, Some("https://evil.example")).await;
    assert_api_error(resp, 403, "origin-not-allowed").await;
    let resp = app.post_challenge_raw(&body, None).await;
    assert_api_error(resp, 403, "origin-not-allowed").await;
    // Same host on another port or scheme is the same site.
    let resp = app
        .post_challenge_raw(&body, Some("https://demo.localhost"))
        .await;
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn an_answer_from_another_origin_is_refused_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let challenge = app.challenge().await;
    let id = challenge.challenge_id.as_str();
    let resp = app
        .client
        .post(app.url(&format!("/api/v1/challenge/{id}/answer")))
        .header("Origin", "https://evil.example")
        .json(&json!({"answers": ["flat", "flat"]}))
        .send()
        .await
        .unwrap();
    assert_api_error(resp, 403, "origin-not-allowed").await;
    assert!(app.answer(id, [CONTROL_LABEL, CONTROL_LABEL]).await.success);
}

#[tokio::test]
async fn malformed_oversized_and_wrongly_typed_bodies_get_clear_errors() {
    let app = TestApp::spawn().await;
    let url = app.url("/api/v1/challenge");
    let post = |body: String, content_type: &'static str| {
        app.client
            .post(&url)
            .header("Origin", ORIGIN)
            .header("Content-Type", content_type)
            .body(body)
            .send()
    };
    assert_api_error(
        post("{not json".into(), "application/json").await.unwrap(),
        400,
        "bad-request",
    )
    .await;
    assert_api_error(
        post(r#"{"sitekey": 42}"#.into(), "application/json")
            .await
            .unwrap(),
        400,
        "bad-request",
    )
    .await;
    assert_api_error(
        post(r#"{"lang": "fr"}"#.into(), "application/json")
            .await
            .unwrap(),
        400,
        "bad-request",
    )
    .await;
    let huge = format!(
        r#"{{"sitekey": "{}", "pad": "{}"}}"#,
        app.site.sitekey,
        "x".repeat(100_000)
    );
    assert_api_error(
        post(huge, "application/json").await.unwrap(),
        413,
        "payload-too-large",
    )
    .await;
    let form = format!("sitekey={}", app.site.sitekey);
    assert_api_error(
        post(form, "application/x-www-form-urlencoded").await.unwrap(),
        415,
        "unsupported-media-type",
    )
    .await;

    let challenge = app.challenge().await;
    let id = challenge.challenge_id.as_str();
    for body in [
        json!({"answers": "flat"}),
        json!({"answers": [1, 2]}),
        json!({}),
        json!({"answers": ["Flat", "flat"]}),
    ] {
        assert_api_error(app.post_answer_raw(id, &body).await, 400, "bad-request").await;
    }
    // None of that consumed the challenge.
    assert!(app.answer(id, [CONTROL_LABEL, CONTROL_LABEL]).await.success);
}

#[tokio::test]
async fn unknown_paths_get_a_json_404_and_health_is_reported() {
    let app = TestApp::spawn().await;
    let resp = app.client.get(app.url("/nowhere")).send().await.unwrap();
    assert_api_error(resp, 404, "not-found").await;
    let health: serde_json::Value = app
        .client
        .get(app.url("/healthz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");
}

#[tokio::test]
async fn the_widget_api_answers_cors_preflights() {
    let app = TestApp::spawn().await;
    let resp = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/api/v1/challenge"))
        .header("Origin", ORIGIN)
        .header("Access-Control-Request-Method", "POST")
        .header("Access-Control-Request-Headers", "content-type")
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    assert_eq!(resp.headers()["access-control-allow-origin"], ORIGIN);
    // And no cookie is ever set.
    let challenge = app
        .post_challenge_raw(&json!({"sitekey": app.site.sitekey}), Some(ORIGIN))
        .await;
    assert!(challenge.headers().get("set-cookie").is_none());
}

#[tokio::test]
async fn agreeing_answers_become_decided_labels_in_the_export() {
    let mut app = TestApp::spawn().await;
    // 60 passes spread over 12 unknowns: each collects several agreeing votes.
    for _ in 0..60 {
        app.pass_check().await;
    }
    let labels = app.export_stopped("labels");
    let decided: Vec<_> = labels.iter().filter(|l| l["status"] == "decided").collect();
    assert!(!decided.is_empty(), "nothing decided: {labels:?}");
    for label in &decided {
        assert_eq!(label["label"], CONTROL_LABEL);
        assert!(label["confidence"].as_f64().unwrap() >= 0.95, "{label}");
        assert!(
            label["votes"].as_u64().unwrap() >= 3,
            "decided on fewer than three votes: {label}"
        );
    }
    let gold = labels.iter().filter(|l| l["status"] == "gold").count();
    assert_eq!(gold, 6);
}

#[tokio::test]
async fn decided_images_are_no_longer_served_even_after_a_restart() {
    let mut app = TestApp::spawn().await;
    // 12 unknowns; three agreeing votes decide one (the engine's default policy). 60 passes are more than
    // the 36 votes needed, so every unknown gets decided and retired, and later passes harvest nothing.
    for _ in 0..60 {
        app.pass_check().await;
    }
    app.restart(&[]);
    for _ in 0..10 {
        app.pass_check().await;
    }
    let contributions = app.export_stopped("contributions");
    let mut per_image = std::collections::HashMap::<String, usize>::new();
    for c in &contributions {
        *per_image
            .entry(c["image"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    assert_eq!(per_image.len(), 12, "{per_image:?}");
    assert!(
        per_image.values().all(|n| *n == 3),
        "votes spent past a decision: {per_image:?}"
    );
}
