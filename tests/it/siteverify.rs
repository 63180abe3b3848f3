//! Flow 2: a site's backend redeems tokens, with reCAPTCHA's error codes.

use protocol::SiteverifyResponse;
use serde_json::json;

use crate::helpers::{HOSTNAME, TestApp};

fn codes(reply: &SiteverifyResponse) -> Vec<&str> {
    reply.error_codes.iter().map(String::as_str).collect()
}

#[tokio::test]
async fn a_fresh_token_verifies_with_its_time_and_hostname() {
    let app = TestApp::spawn().await;
    let token = app.pass_check().await;
    let reply = app.siteverify(&app.site.secret, &token).await;
    assert!(reply.success, "{reply:?}");
    assert!(codes(&reply).is_empty());
    assert_eq!(reply.hostname.as_deref(), Some(HOSTNAME));
    let ts = reply.challenge_ts.expect("challenge_ts");
    assert!(ts.ends_with('Z') && ts.len() == 20, "not RFC 3339 UTC: {ts}");
}

#[tokio::test]
async fn siteverify_accepts_json_as_well_as_forms() {
    let app = TestApp::spawn().await;
    let token = app.pass_check().await;
    let resp = app
        .client
        .post(app.url("/siteverify"))
        .json(&json!({"secret": app.site.secret, "response": token, "remoteip": "192.0.2.1"}))
        .send()
        .await
        .unwrap();
    let reply: SiteverifyResponse = resp.json().await.unwrap();
    assert!(reply.success, "{reply:?}");
}

#[tokio::test]
async fn a_token_is_accepted_only_once() {
    let app = TestApp::spawn().await;
    let token = app.pass_check().await;
    assert!(app.siteverify(&app.site.secret, &token).await.success);
    let again = app.siteverify(&app.site.secret, &token).await;
    assert!(!again.success);
    assert_eq!(codes(&again), ["timeout-or-duplicate"]);
}

#[tokio::test]
async fn an_expired_token_is_refused() {
    let app = TestApp::spawn_with(&[("COBOT_TOKEN_LIFETIME_SECS", "1")]).await;
    let token = app.pass_check().await;
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let reply = app.siteverify(&app.site.secret, &token).await;
    assert!(!reply.success);
    assert_eq!(codes(&reply), ["timeout-or-duplicate"]);
}

#[tokio::test]
async fn a_wrong_secret_is_refused_and_leaves_the_token_redeemable() {
    let app = TestApp::spawn().await;
    let token = app.pass_check().await;
    let unknown = format!("0x{}", "0".repeat(40));
    assert_eq!(
        codes(&app.siteverify(&unknown, &token).await),
        ["invalid-input-secret"]
    );
    assert_eq!(
        codes(&app.siteverify("not-a-secret", &token).await),
        ["invalid-input-secret"]
    );
    // The refused attempts consumed nothing.
    assert!(app.siteverify(&app.site.secret, &token).await.success);
}

#[tokio::test]
async fn the_secret_of_another_site_is_refused_and_leaves_the_token_redeemable() {
    let app = TestApp::spawn().await;
    let token = app.pass_check().await;
    let reply = app.siteverify(&app.other_site.secret, &token).await;
    assert!(!reply.success);
    assert_eq!(codes(&reply), ["sitekey-secret-mismatch"]);
    assert!(app.siteverify(&app.site.secret, &token).await.success);
}

#[tokio::test]
async fn a_mutated_token_is_refused() {
    let app = TestApp::spawn().await;
    let token = app.pass_check().await;
    // Change one character of each part in turn: version, key id, id, sitekey, time, MAC.
    let parts: Vec<&str> = token.split('.').collect();
    for i in 0..parts.len() {
        let mut mutated: Vec<String> = parts.iter().map(|p| (*p).to_owned()).collect();
        let first = mutated[i].remove(0);
        mutated[i].insert(0, if first == 'a' { 'b' } else { 'a' });
        let reply = app.siteverify(&app.site.secret, &mutated.join(".")).await;
        assert_eq!(codes(&reply), ["invalid-input-response"], "part {i} mutated");
    }
    assert_eq!(
        codes(&app.siteverify(&app.site.secret, "garbage").await),
        ["invalid-input-response"]
    );
    assert!(app.siteverify(&app.site.secret, &token).await.success);
}

#[tokio::test]
async fn missing_inputs_are_named() {
    let app = TestApp::spawn().await;
    let post = |form: Vec<(&'static str, String)>| app.client.post(app.url("/siteverify")).form(&form).send();
    let reply: SiteverifyResponse = post(vec![("response", "x".into())])
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(codes(&reply), ["missing-input-secret"]);
    let reply: SiteverifyResponse = post(vec![("secret", app.site.secret.clone())])
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(codes(&reply), ["missing-input-response"]);
}

#[tokio::test]
async fn an_unreadable_siteverify_body_is_a_bad_request() {
    let app = TestApp::spawn().await;
    let resp = app
        .client
        .post(app.url("/siteverify"))
        .header("Content-Type", "application/json")
        .body("{oops")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let reply: SiteverifyResponse = resp.json().await.unwrap();
    assert_eq!(codes(&reply), ["bad-request"]);
    let resp = app
        .client
        .post(app.url("/siteverify"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(format!("secret={}", "x".repeat(20_000)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
}

#[tokio::test]
async fn a_token_from_another_server_key_is_refused() {
    let a = TestApp::spawn().await;
    let b = TestApp::spawn().await;
    let token = a.pass_check().await;
    // B never signed it; B's key differs (each data directory generates its own).
    assert_eq!(
        codes(&b.siteverify(&b.site.secret, &token).await),
        ["invalid-input-response"]
    );
}
