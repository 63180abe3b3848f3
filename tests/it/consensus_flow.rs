//! The consensus at work in the running server: a control that humans keep failing is re-opened as an
//! unknown (its gold label is doubted) once it is failed significantly more often than the others, unless
//! the project would be left with too few controls to make challenges.

use std::collections::HashMap;
use std::path::Path;

use demo_data::{ProjectSpec, RoofClass};
use serde_json::json;

use crate::helpers::{
    CONTROL_LABEL, HOSTNAME, ORIGIN, ServerProcess, TestApp, WRONG_LABEL, cli_ok, create_site,
    project_fixture,
};

/// The served bytes of each gold image of a project folder: the intake's normalised tile of its file.
fn gold_tiles(dir: &Path) -> HashMap<Vec<u8>, String> {
    let labels = std::fs::read_to_string(dir.join("labels.csv")).expect("labels.csv");
    labels
        .lines()
        .skip(1)
        .map(|line| line.split(',').next().expect("a file name").to_owned())
        .map(|name| {
            let bytes = std::fs::read(dir.join(&name)).expect("a gold image");
            let tile = server::intake::accept(&bytes, &server::intake::Limits::default()).expect("accepted");
            (tile.bytes, name)
        })
        .collect()
}

/// Answers challenges as a crowd that answers every control right except `doubted`, which it always calls
/// `north_south`, until `doubted` is accepted with that answer (it is an unknown then) or it was failed
/// `max_failures` times. Returns the failures before it was accepted, `None` if it never was.
async fn fail_one_control(
    client: &reqwest::Client,
    base: &str,
    sitekey: &str,
    gold: &HashMap<Vec<u8>, String>,
    doubted: &str,
    max_failures: u32,
) -> Option<u32> {
    let mut failures = 0u32;
    for _ in 0..1500 {
        let challenge: protocol::Challenge = client
            .post(format!("{base}/api/v1/challenge"))
            .header("Origin", ORIGIN)
            .json(&json!({"sitekey": sitekey, "lang": "fr"}))
            .send()
            .await
            .expect("challenge")
            .json()
            .await
            .expect("a challenge");
        let mut answers = [CONTROL_LABEL; 2];
        let mut shows_doubted = false;
        for (slot, image) in challenge.images.iter().enumerate() {
            let bytes = client
                .get(format!("{base}{}", image.url))
                .send()
                .await
                .expect("image")
                .bytes()
                .await
                .expect("bytes");
            if gold.get(bytes.as_ref()).map(String::as_str) == Some(doubted) {
                answers[slot] = WRONG_LABEL;
                shows_doubted = true;
            }
        }
        let reply: protocol::AnswerResponse = client
            .post(format!(
                "{base}/api/v1/challenge/{}/answer",
                challenge.challenge_id.as_str()
            ))
            .header("Origin", ORIGIN)
            .json(&json!({ "answers": answers }))
            .send()
            .await
            .expect("answer")
            .json()
            .await
            .expect("an answer reply");
        if !shows_doubted {
            assert!(reply.success, "right answers refused: {reply:?}");
            continue;
        }
        if reply.success {
            // Accepted although it contradicts the gold label: the image is an unknown now.
            return Some(failures);
        }
        failures += 1;
        if failures >= max_failures {
            return None;
        }
    }
    panic!("the doubted control was shown too rarely");
}

#[tokio::test]
async fn a_control_humans_keep_failing_is_reopened_as_an_unknown() {
    let app = TestApp::spawn().await;
    let gold = gold_tiles(project_fixture());
    let doubted = gold.values().min().expect("gold images").clone();
    let failures = fail_one_control(
        &app.client,
        &app.server.base,
        &app.site.sitekey,
        &gold,
        &doubted,
        100,
    )
    .await
    .expect("the doubted control was never re-opened");
    // Not on a whim: the policy wants 8 answers at least, and the failure rate's lower bound above both
    // 35 % and the other controls' rate; with every answer failed, that is the 8th.
    assert_eq!(failures, 8, "re-opened after {failures} failures");
}

#[tokio::test]
async fn a_project_keeps_its_last_controls_however_often_they_are_failed() {
    // Two controls only: re-opening one would leave a single control, so both stay.
    let project_dir = tempfile::tempdir().expect("temp dir");
    let spec = ProjectSpec {
        seed: 11,
        gold_per_class: 2,
        gold_classes: vec![RoofClass::Flat],
        unknown: 40,
        size: 96,
    };
    demo_data::write_project(project_dir.path(), &spec).expect("write the project");
    let data = tempfile::tempdir().expect("temp dir");
    let project = cli_ok(
        data.path(),
        &["project", "import", project_dir.path().to_str().expect("utf-8")],
    );
    let site = create_site(data.path(), &[HOSTNAME], project.trim());
    let server = ServerProcess::start(data.path(), &[]);
    let gold = gold_tiles(project_dir.path());
    let doubted = gold.values().min().expect("gold images").clone();
    let reopened = fail_one_control(
        &reqwest::Client::new(),
        &server.base,
        &site.sitekey,
        &gold,
        &doubted,
        16,
    )
    .await;
    assert_eq!(reopened, None, "a project's last controls were re-opened");
}
