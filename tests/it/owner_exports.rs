//! The owner API's progress and exports, over HTTP: votes are cast by answering real challenges, then the
//! labels (JSON lines and CSV), the raw contributions, the training zip and the progress must all say what
//! was answered, and nobody but the project's owner may read them.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde_json::Value;

use crate::helpers::{CONTROL_LABEL, TestApp};
use server::model::ProjectId;
use server::store::{EmbeddedStore, Store};

/// A stored image, as the test knows it from the store it seeded.
#[derive(Debug, Clone)]
struct StoredImage {
    id: u64,
    name: String,
    known_label: Option<String>,
    bytes: Vec<u8>,
}

/// A test app whose project belongs to an owner with an API key, and a second owner with a key of its own.
struct OwnedApp {
    app: TestApp,
    project: u64,
    key: String,
    other_key: String,
    images: Vec<StoredImage>,
    /// Answers given to controls through the challenges so far: (right, wrong).
    control_answers: std::cell::Cell<(u64, u64)>,
}

/// Creates two owners' API keys with the real `key create` subcommand, then gives the test project to the
/// first owner and plants control statistics straight through the store, while the server is stopped (the
/// embedded store belongs to one process at a time).
async fn seed_owner(dir: &Path, project: u64) -> (String, String, Vec<StoredImage>) {
    let names = ["Mairie de Test", "Autre collectivité"];
    let keys: Vec<String> = names
        .iter()
        .map(|name| crate::helpers::api_key(dir, name))
        .collect();
    let store = EmbeddedStore::open(dir).expect("open the test store");
    let owners = store.owners().await.expect("list owners");
    let first = owners
        .iter()
        .find(|o| o.name == names[0])
        .expect("the first owner")
        .id;
    let mut record = store
        .project(ProjectId(project))
        .await
        .expect("read the project")
        .expect("the project exists");
    record.owner = Some(first);
    store
        .update_project(record)
        .await
        .expect("give the project an owner");
    // Three right answers and one wrong one to a control, for the pass rate.
    let gold = store
        .images(ProjectId(project))
        .await
        .expect("list images")
        .into_iter()
        .find(|m| m.known_label.is_some())
        .expect("a gold image");
    for passed in [true, true, true, false] {
        store
            .record_control_answer(ProjectId(project), gold.id, passed)
            .await
            .expect("count a control answer");
    }
    let mut images = Vec::new();
    for meta in store.images(ProjectId(project)).await.expect("list images") {
        let data = store
            .image_data(meta.id)
            .await
            .expect("read an image")
            .expect("its bytes");
        images.push(StoredImage {
            id: meta.id.0,
            name: meta.name,
            known_label: meta.known_label.map(|l| l.as_str().to_owned()),
            bytes: data.bytes,
        });
    }
    let mut keys = keys.into_iter();
    (
        keys.next().expect("first key"),
        keys.next().expect("second key"),
        images,
    )
}

impl OwnedApp {
    async fn spawn() -> Self {
        let mut app = TestApp::spawn().await;
        let project: u64 = app.project.parse().expect("a project id");
        app.server.kill();
        let (key, other_key, images) = seed_owner(app.dir.path(), project).await;
        app.restart(&[]);
        Self {
            app,
            project,
            key,
            other_key,
            images,
            control_answers: std::cell::Cell::new((0, 0)),
        }
    }

    fn image_by_bytes(&self, bytes: &[u8]) -> &StoredImage {
        self.images
            .iter()
            .find(|i| i.bytes == bytes)
            .expect("a served image is an image of the project")
    }

    /// Passes one check answering `label` for the unknown image and returns the image that got the vote,
    /// `None` when no vote was stored. Controls are all `flat`: answering `flat` twice always passes, and
    /// another label passes only when the control comes first.
    async fn answer_unknown(&self, label: &str) -> Option<&StoredImage> {
        let challenge = self.app.challenge().await;
        let mut served = Vec::new();
        for image in &challenge.images {
            let resp = self
                .app
                .client
                .get(self.app.url(&image.url))
                .send()
                .await
                .expect("an image request");
            assert_eq!(resp.status(), 200);
            served.push(self.image_by_bytes(&resp.bytes().await.expect("image bytes")));
        }
        let answers = [CONTROL_LABEL, label];
        let reply = self.app.answer(challenge.challenge_id.as_str(), answers).await;
        let (mut right, mut wrong) = self.control_answers.get();
        for (image, answer) in served.iter().zip(answers) {
            match image.known_label.as_deref() {
                Some(known) if known == answer => right += 1,
                Some(_) => wrong += 1,
                None => {}
            }
        }
        self.control_answers.set((right, wrong));
        // The image that is not gold is the unknown (none when the challenge shows two controls).
        let unknown = served.iter().position(|i| i.known_label.is_none());
        if label != CONTROL_LABEL {
            assert!(reply.success == (unknown == Some(1)), "{reply:?}");
        }
        (reply.success).then(|| unknown.map(|u| served[u])).flatten()
    }

    async fn get(&self, path: &str, key: Option<&str>) -> reqwest::Response {
        let mut req = self.app.client.get(self.app.url(path));
        if let Some(key) = key {
            req = req.bearer_auth(key);
        }
        req.send().await.expect("request sent")
    }

    async fn get_ok(&self, path: &str) -> reqwest::Response {
        let resp = self.get(path, Some(&self.key)).await;
        assert_eq!(
            resp.status(),
            200,
            "{path}: {}",
            resp.text().await.unwrap_or_default()
        );
        resp
    }
}

/// What the test answered: per image id, the votes per label.
type Answered = BTreeMap<u64, BTreeMap<String, u64>>;

/// Answers `attempts` challenges, mostly `flat` (what the gold says roofs look like) and every fourth
/// vote `east_west`, so that some images are decided and others stay open or contested. Returns the votes
/// stored and how many.
async fn cast_votes(app: &OwnedApp, attempts: usize) -> (Answered, usize) {
    let mut answered = Answered::new();
    let mut stored = 0;
    for _ in 0..attempts {
        let label = if stored % 4 == 3 {
            "east_west"
        } else {
            CONTROL_LABEL
        };
        if let Some(image) = app.answer_unknown(label).await {
            *answered
                .entry(image.id)
                .or_default()
                .entry(label.to_owned())
                .or_default() += 1;
            stored += 1;
        }
    }
    assert!(stored >= 12, "too few votes to test anything: {stored}");
    (answered, stored)
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

fn assert_attachment(resp: &reqwest::Response, content_type: &str, filename: &str) {
    assert_eq!(resp.headers()["content-type"], content_type);
    let disposition = resp.headers()["content-disposition"]
        .to_str()
        .expect("an ASCII header");
    assert!(disposition.starts_with("attachment"), "{disposition}");
    assert!(disposition.contains(filename), "{disposition}");
}

#[tokio::test]
#[allow(clippy::too_many_lines)] // one scenario, each export checked against the votes and the others
async fn the_exports_say_what_was_answered() {
    let app = OwnedApp::spawn().await;
    let (answered, stored) = cast_votes(&app, 60).await;
    let p = app.project;

    // Labels, JSON lines: one record per image, votes exactly as answered.
    let resp = app
        .get_ok(&format!("/api/v1/projects/{p}/labels?format=jsonl"))
        .await;
    assert_attachment(
        &resp,
        "application/x-ndjson",
        &format!("project-{p}-labels.jsonl"),
    );
    let labels = json_lines(&resp.text().await.unwrap());
    assert_eq!(labels.len(), app.images.len());
    let mut by_id = HashMap::new();
    for record in &labels {
        let id = record["image"].as_u64().unwrap();
        let image = app
            .images
            .iter()
            .find(|i| i.id == id)
            .expect("an image of the project");
        assert_eq!(record["external_id"], image.name.as_str());
        let votes: BTreeMap<String, u64> = serde_json::from_value(record["votes"].clone()).unwrap();
        assert_eq!(votes, answered.get(&id).cloned().unwrap_or_default(), "{record}");
        match record["status"].as_str().unwrap() {
            "gold" => {
                assert_eq!(record["label"], image.known_label.as_deref().unwrap());
                assert_eq!(record["confidence"], 1.0);
            }
            "decided" => {
                // Decided by at least three agreeing votes (the default consensus settings).
                let label = record["label"].as_str().unwrap();
                assert!(votes[label] >= 3, "{record}");
                assert!(record["confidence"].as_f64().unwrap() >= 0.95, "{record}");
            }
            "open" | "contested" => assert!(record["label"].is_null(), "{record}"),
            other => panic!("unexpected status {other}"),
        }
        by_id.insert(id, record.clone());
    }
    let decided = labels.iter().filter(|l| l["status"] == "decided").count();
    assert!(decided >= 1, "nothing decided: {labels:?}");
    assert_eq!(labels.iter().filter(|l| l["status"] == "gold").count(), 6);

    // Labels, CSV: the same records, `votes` as `label:count;label:count`.
    let resp = app
        .get_ok(&format!("/api/v1/projects/{p}/labels?format=csv"))
        .await;
    assert_attachment(
        &resp,
        "text/csv; charset=utf-8",
        &format!("project-{p}-labels.csv"),
    );
    let csv = resp.text().await.unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("image,external_id,status,label,confidence,votes")
    );
    let mut rows = 0;
    for line in lines {
        let fields: Vec<&str> = line.split(',').collect();
        let record = &by_id[&fields[0].parse::<u64>().unwrap()];
        assert_eq!(fields[1], record["external_id"]);
        assert_eq!(fields[2], record["status"]);
        assert_eq!(fields[3], record["label"].as_str().unwrap_or(""));
        // serde_json (without `float_roundtrip`) may read the last digit differently.
        let csv_confidence = fields[4].parse::<f64>().ok();
        let json_confidence = record["confidence"].as_f64();
        assert_eq!(csv_confidence.is_some(), json_confidence.is_some(), "{line}");
        if let (Some(a), Some(b)) = (csv_confidence, json_confidence) {
            assert!((a - b).abs() < 1e-12, "{line}");
        }
        let votes: Vec<String> = record["votes"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(l, c)| format!("{l}:{c}"))
            .collect();
        assert_eq!(fields[5], votes.join(";"));
        rows += 1;
    }
    assert_eq!(rows, labels.len());

    // Contributions: one per vote stored, and nothing that could identify a citizen.
    let resp = app.get_ok(&format!("/api/v1/projects/{p}/contributions")).await;
    assert_attachment(
        &resp,
        "application/x-ndjson",
        &format!("project-{p}-contributions.jsonl"),
    );
    let contributions = json_lines(&resp.text().await.unwrap());
    assert_eq!(contributions.len(), stored);
    let mut from_contributions = Answered::new();
    for c in &contributions {
        let keys: Vec<&str> = c.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            ["at", "external_id", "image", "label", "seq", "sitekey"],
            "{c}"
        );
        assert_eq!(c["sitekey"], app.app.site.sitekey.as_str());
        let id = c["image"].as_u64().unwrap();
        assert_eq!(c["external_id"], by_id[&id]["external_id"]);
        *from_contributions
            .entry(id)
            .or_default()
            .entry(c["label"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    assert_eq!(from_contributions, answered);
    let seqs: Vec<u64> = contributions.iter().map(|c| c["seq"].as_u64().unwrap()).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "not in acknowledgement order: {seqs:?}"
    );

    // The zip: gold and decided images in their label's folder, byte for byte, and the index.
    let resp = app.get_ok(&format!("/api/v1/projects/{p}/export.zip")).await;
    assert_attachment(&resp, "application/zip", &format!("project-{p}-images.zip"));
    let zip = resp.bytes().await.unwrap();
    let files = unzip(&zip);
    let index = String::from_utf8(files["labels.csv"].clone()).unwrap();
    let mut index_lines = index.lines();
    assert_eq!(
        index_lines.next(),
        Some("file,image,external_id,status,label,confidence")
    );
    let mut expected_entries = 0;
    for record in by_id.values() {
        if !matches!(record["status"].as_str(), Some("gold" | "decided")) {
            continue;
        }
        expected_entries += 1;
        let id = record["image"].as_u64().unwrap();
        let image = app.images.iter().find(|i| i.id == id).unwrap();
        let stem = image.name.rsplit_once('.').unwrap().0;
        let path = format!("{}/{stem}.jpg", record["label"].as_str().unwrap());
        assert_eq!(
            files.get(&path),
            Some(&image.bytes),
            "{path} is not the image of {record}"
        );
        assert!(
            index
                .lines()
                .any(|l| l.starts_with(&format!("{path},{id},{},", image.name))),
            "{path} missing from labels.csv:\n{index}"
        );
    }
    assert_eq!(files.len(), expected_entries + 1, "{:?}", files.keys());
    assert_eq!(index_lines.count(), expected_entries);

    // Progress: counts by status, the votes, the day, the pass rate.
    let progress: Value = app
        .get_ok(&format!("/api/v1/projects/{p}/progress"))
        .await
        .json()
        .await
        .unwrap();
    let images = &progress["images"];
    assert_eq!(images["total"], app.images.len());
    assert_eq!(images["control"], 6, "{progress}");
    let sum: u64 = ["open", "decided", "contested", "control"]
        .iter()
        .map(|s| images[s].as_u64().unwrap())
        .sum();
    assert_eq!(sum, app.images.len() as u64, "{progress}");
    assert!(images["decided"].as_u64().unwrap() >= 1, "{progress}");
    let mut votes_by_label = BTreeMap::new();
    for votes in answered.values() {
        for (label, n) in votes {
            *votes_by_label.entry(label.clone()).or_insert(0u64) += n;
        }
    }
    for (label, n) in progress["votes_by_label"].as_object().unwrap() {
        assert_eq!(
            n.as_u64().unwrap(),
            votes_by_label.get(label).copied().unwrap_or(0),
            "{label}"
        );
    }
    let days = progress["contributions_per_day"].as_array().unwrap();
    assert_eq!(days.len(), 1, "{progress}");
    assert_eq!(days[0]["contributions"], stored);
    let today = server::model::rfc3339(server::model::now());
    assert_eq!(days[0]["day"], &today[..10]);
    let accuracy = progress["estimated_label_accuracy"].as_f64().unwrap();
    assert!((0.95..=1.0).contains(&accuracy), "{progress}");
    // The seeded answers (3 right, 1 wrong) and every answer to a control given through the challenges.
    let (right, wrong) = app.control_answers.get();
    assert!(right > 0, "no control was answered");
    #[allow(clippy::cast_precision_loss)] // small counts
    let expected = (3 + right) as f64 / (4 + right + wrong) as f64;
    let rate = progress["control_pass_rate"].as_f64().unwrap();
    assert!(
        (rate - expected).abs() < 1e-12,
        "{rate} vs {expected}: {progress}"
    );
}

/// Checks an archive with `unzip -t` and returns its files by path.
fn unzip(archive: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("export.zip");
    std::fs::write(&path, archive).expect("write the archive");
    let test = std::process::Command::new("unzip")
        .arg("-t")
        .arg(&path)
        .output()
        .expect("unzip runs");
    assert!(test.status.success(), "{}", String::from_utf8_lossy(&test.stdout));
    let out = dir.path().join("out");
    let status = std::process::Command::new("unzip")
        .args(["-q", "-d"])
        .arg(&out)
        .arg(&path)
        .status()
        .expect("unzip runs");
    assert!(status.success());
    let mut files = BTreeMap::new();
    let mut stack = vec![out.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).expect("list the extracted files") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let name = path
                    .strip_prefix(&out)
                    .expect("under the output")
                    .to_str()
                    .expect("a UTF-8 name")
                    .to_owned();
                files.insert(name, std::fs::read(&path).expect("read an extracted file"));
            }
        }
    }
    files
}

#[tokio::test]
async fn only_the_owner_reads_a_project_progress_and_exports() {
    let app = OwnedApp::spawn().await;
    let p = app.project;
    for path in [
        format!("/api/v1/projects/{p}/progress"),
        format!("/api/v1/projects/{p}/labels?format=csv"),
        format!("/api/v1/projects/{p}/contributions"),
        format!("/api/v1/projects/{p}/export.zip"),
    ] {
        let missing = app.get(&path, None).await;
        assert_owner_error(missing, 401, "missing-api-key").await;
        let invalid = app.get(&path, Some("cobot_not-a-key")).await;
        assert_owner_error(invalid, 401, "invalid-api-key").await;
        // Another owner's project is not found, exactly like a project that does not exist.
        let other = app.get(&path, Some(&app.other_key)).await;
        assert_owner_error(other, 404, "not-found").await;
        let none = app
            .get(&path.replace(&format!("/{p}/"), "/999/"), Some(&app.key))
            .await;
        assert_owner_error(none, 404, "not-found").await;
    }
}

#[tokio::test]
async fn a_labels_format_other_than_jsonl_or_csv_is_refused() {
    let app = OwnedApp::spawn().await;
    let resp = app
        .get(
            &format!("/api/v1/projects/{}/labels?format=xml", app.project),
            Some(&app.key),
        )
        .await;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "invalid-format", "{body}");
    assert!(body["message"].as_str().unwrap().contains("`format`"), "{body}");
    // Without `format`, JSON lines.
    let resp = app
        .get_ok(&format!("/api/v1/projects/{}/labels", app.project))
        .await;
    assert_eq!(resp.headers()["content-type"], "application/x-ndjson");
}

#[tokio::test]
async fn a_project_without_votes_exports_its_gold_only() {
    let app = OwnedApp::spawn().await;
    let p = app.project;
    let contributions = app.get_ok(&format!("/api/v1/projects/{p}/contributions")).await;
    assert_eq!(contributions.text().await.unwrap(), "");
    let zip = app
        .get_ok(&format!("/api/v1/projects/{p}/export.zip"))
        .await
        .bytes()
        .await
        .unwrap();
    let files = unzip(&zip);
    let gold: Vec<_> = app.images.iter().filter(|i| i.known_label.is_some()).collect();
    assert_eq!(files.len(), gold.len() + 1, "{:?}", files.keys());
    let progress: Value = app
        .get_ok(&format!("/api/v1/projects/{p}/progress"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        progress["images"]["open"],
        app.images.len() - gold.len(),
        "{progress}"
    );
    assert_eq!(progress["estimated_label_accuracy"], Value::Null);
    assert_eq!(progress["contributions_per_day"], serde_json::json!([]));
}

async fn assert_owner_error(resp: reqwest::Response, status: u16, code: &str) {
    assert_eq!(resp.status(), status, "{:?}", resp.url().path());
    let body: Value = resp.json().await.expect("a JSON error body");
    assert_eq!(body["error"], code, "{body}");
}
