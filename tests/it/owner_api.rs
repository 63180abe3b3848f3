//! The owner API (`/api/v1/projects`, `/api/v1/sites`, `/api/v1/keys`) over HTTP, as an owner's tools call it:
//! projects, image uploads (good, bad and duplicate files), sites and secret rotation, API keys, and the
//! `OpenAPI` document that describes exactly what is served.

use std::collections::BTreeSet;

use demo_data::{RoofClass, render_tile};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{CONTROL_LABEL, ORIGIN, TestApp, api_key, assert_api_error};

/// The server with two owners, alice and bob, and one API key each (from `cobot-server key create`).
struct Owners {
    app: TestApp,
    alice: String,
    bob: String,
}

async fn spawn() -> Owners {
    let mut keys = Vec::new();
    let app = TestApp::spawn_seeded(&[], |dir| {
        keys.push(api_key(dir, "alice"));
        keys.push(api_key(dir, "bob"));
    })
    .await;
    let bob = keys.pop().expect("as the test set it up");
    let alice = keys.pop().expect("as the test set it up");
    Owners { app, alice, bob }
}

impl Owners {
    fn request(&self, method: Method, path: &str, key: Option<&str>) -> reqwest::RequestBuilder {
        let req = self.app.client.request(method, self.app.url(path));
        match key {
            Some(key) => req.bearer_auth(key),
            None => req,
        }
    }

    async fn call(&self, method: Method, path: &str, key: &str, body: Option<&Value>) -> reqwest::Response {
        let mut req = self.request(method, path, Some(key));
        if let Some(body) = body {
            req = req.json(body);
        }
        req.send().await.expect("as the test set it up")
    }

    async fn ok(&self, method: Method, path: &str, key: &str, body: Option<&Value>) -> Value {
        let resp = self.call(method.clone(), path, key, body).await;
        let status = resp.status();
        let text = resp.text().await.expect("as the test set it up");
        assert!(status.is_success(), "{method} {path}: {status} {text}");
        serde_json::from_str(&text).expect("as the test set it up")
    }

    async fn create_project(&self, key: &str, body: &Value) -> u64 {
        let project = self.ok(Method::POST, "/api/v1/projects", key, Some(body)).await;
        project["id"].as_u64().expect("as the test set it up")
    }

    async fn upload(&self, key: &str, project: u64, form: Form) -> reqwest::Response {
        self.request(
            Method::POST,
            &format!("/api/v1/projects/{project}/images"),
            Some(key),
        )
        .header("Content-Type", Form::content_type())
        .body(form.finish())
        .send()
        .await
        .expect("as the test set it up")
    }

    async fn upload_ok(&self, key: &str, project: u64, form: Form) -> Value {
        let resp = self.upload(key, project, form).await;
        assert_eq!(resp.status(), 200);
        resp.json().await.expect("as the test set it up")
    }

    async fn images(&self, key: &str, project: u64, query: &str) -> Value {
        self.ok(
            Method::GET,
            &format!("/api/v1/projects/{project}/images{query}"),
            key,
            None,
        )
        .await
    }
}

fn roof_project(name: &str) -> Value {
    json!({
        "name": name,
        "question": {"fr": "Dans quel sens est orienté ce toit\u{a0}?", "en": "Which way does this roof face?"},
        "labels": [
            {"id": "north_south", "fr": "Nord-sud", "en": "North–south"},
            {"id": "east_west", "fr": "Est-ouest", "en": "East–west"},
            {"id": "flat", "fr": "Plat", "en": "Flat"},
            {"id": "other", "fr": "Je ne sais pas", "en": "Can’t tell"},
        ],
        "abstain": "other",
    })
}

/// A `multipart/form-data` body, written by hand so that the tests can also send malformed ones.
struct Form {
    body: Vec<u8>,
}

const BOUNDARY: &str = "cobot-test-boundary-7MA4YWxkTrZu0gW";

impl Form {
    fn new() -> Self {
        Self { body: Vec::new() }
    }

    fn part(mut self, name: &str, file_name: Option<&str>, bytes: &[u8]) -> Self {
        self.body
            .extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        let disposition = match file_name {
            Some(file) => format!("form-data; name=\"{name}\"; filename=\"{file}\""),
            None => format!("form-data; name=\"{name}\""),
        };
        self.body.extend_from_slice(
            format!("Content-Disposition: {disposition}\r\nContent-Type: application/octet-stream\r\n\r\n")
                .as_bytes(),
        );
        self.body.extend_from_slice(bytes);
        self.body.extend_from_slice(b"\r\n");
        self
    }

    fn image(self, file_name: &str, bytes: &[u8]) -> Self {
        self.part("image", Some(file_name), bytes)
    }

    fn labels(self, labels: &Value) -> Self {
        self.part("labels", None, labels.to_string().as_bytes())
    }

    fn content_type() -> String {
        format!("multipart/form-data; boundary={BOUNDARY}")
    }

    fn finish(mut self) -> Vec<u8> {
        self.body
            .extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
        self.body
    }
}

fn tile(class: RoofClass, seed: u64) -> Vec<u8> {
    render_tile(class, seed)
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn png_chunk(out: &mut Vec<u8>, kind: [u8; 4], data: &[u8]) {
    out.extend_from_slice(
        &u32::try_from(data.len())
            .expect("as the test set it up")
            .to_be_bytes(),
    );
    let mut typed = kind.to_vec();
    typed.extend_from_slice(data);
    out.extend_from_slice(&typed);
    out.extend_from_slice(&crc32(&typed).to_be_bytes());
}

/// A valid PNG header claiming 50 000 × 50 000 RGB pixels (7.5 GB decoded) over a few bytes of data.
fn png_bomb() -> Vec<u8> {
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&50_000u32.to_be_bytes());
    ihdr.extend_from_slice(&50_000u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    png_chunk(&mut png, *b"IHDR", &ihdr);
    // A zlib stream of one empty stored block: whatever follows is never needed to refuse it.
    png_chunk(
        &mut png,
        *b"IDAT",
        &[0x78, 0x01, 0x01, 0x00, 0x00, 0xff, 0xff, 0x00, 0x00, 0x00, 0x01],
    );
    png_chunk(&mut png, *b"IEND", &[]);
    png
}

const SVG: &[u8] = br#"<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>"#;
const ZIP: &[u8] = b"PK\x03\x04\x14\x00\x00\x00\x08\x00roofs/1.png\x00\x00\x00\x00\x00\x00\x00\x00";

fn rejected_codes(report: &Value) -> BTreeSet<(String, String)> {
    report["rejected"]
        .as_array()
        .expect("as the test set it up")
        .iter()
        .map(|r| {
            assert!(r["message"].as_str().is_some_and(|m| !m.is_empty()), "{r}");
            (
                r["file"].as_str().expect("as the test set it up").to_owned(),
                r["error"].as_str().expect("as the test set it up").to_owned(),
            )
        })
        .collect()
}

fn names(list: &Value, key: &str) -> Vec<String> {
    list[key]
        .as_array()
        .expect("as the test set it up")
        .iter()
        .map(|i| {
            i["external_id"]
                .as_str()
                .expect("as the test set it up")
                .to_owned()
        })
        .collect()
}

#[tokio::test]
async fn an_owner_creates_reads_lists_updates_and_archives_a_project() {
    let o = spawn().await;
    let created = o
        .ok(
            Method::POST,
            "/api/v1/projects",
            &o.alice,
            Some(&roof_project("Toits")),
        )
        .await;
    let id = created["id"].as_u64().unwrap();
    assert_eq!(created["name"], "Toits");
    assert_eq!(created["abstain"], "other");
    assert_eq!(created["archived"], false);
    assert_eq!(created["priority"], 1);
    assert_eq!(
        created["consensus"],
        json!({"min_agreeing": 3, "threshold": 0.95, "max_votes": 10})
    );
    assert!(created["created_at"].as_str().unwrap().ends_with('Z'));

    let read = o
        .ok(Method::GET, &format!("/api/v1/projects/{id}"), &o.alice, None)
        .await;
    assert_eq!(read, created);
    // The operator's imported project has no owner: no key sees it.
    let list = o.ok(Method::GET, "/api/v1/projects", &o.alice, None).await;
    let ids: Vec<u64> = list["projects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [id]);
    let bobs = o.ok(Method::GET, "/api/v1/projects", &o.bob, None).await;
    assert_eq!(bobs["projects"], json!([]));

    let patch = json!({
        "name": "Toits de Lyon",
        "consensus": {"min_agreeing": 2, "threshold": 0.9, "max_votes": 6},
        "priority": 5,
        "labels": [
            {"id": "north_south", "fr": "Faîtage est-ouest", "en": "Ridge east–west"},
            {"id": "east_west", "fr": "Faîtage nord-sud", "en": "Ridge north–south"},
            {"id": "flat", "fr": "Toit plat", "en": "Flat roof"},
            {"id": "other", "fr": "Je ne sais pas", "en": "Can’t tell"},
        ],
    });
    let updated = o
        .ok(
            Method::PATCH,
            &format!("/api/v1/projects/{id}"),
            &o.alice,
            Some(&patch),
        )
        .await;
    assert_eq!(updated["name"], "Toits de Lyon");
    assert_eq!(updated["priority"], 5);
    assert_eq!(updated["consensus"]["min_agreeing"], 2);
    assert_eq!(updated["labels"][2]["fr"], "Toit plat");
    assert_eq!(updated["question"], created["question"]);

    let archived = o
        .ok(Method::DELETE, &format!("/api/v1/projects/{id}"), &o.alice, None)
        .await;
    assert_eq!(archived["archived"], true);
    // Archived, not deleted: still readable.
    let read = o
        .ok(Method::GET, &format!("/api/v1/projects/{id}"), &o.alice, None)
        .await;
    assert_eq!(read["archived"], true);
    assert_eq!(read["name"], "Toits de Lyon");
}

#[tokio::test]
async fn every_owner_route_refuses_a_missing_or_invalid_key_and_hides_other_owners_records() {
    let o = spawn().await;
    let project = o.create_project(&o.alice, &roof_project("Toits")).await;
    let site = o
        .ok(
            Method::POST,
            "/api/v1/sites",
            &o.alice,
            Some(&json!({"hostnames": ["mairie.example.fr"], "projects": [project]})),
        )
        .await;
    let sitekey = site["sitekey"].as_str().unwrap();
    let routes = [
        (Method::POST, "/api/v1/projects".to_owned()),
        (Method::GET, "/api/v1/projects".to_owned()),
        (Method::GET, format!("/api/v1/projects/{project}")),
        (Method::PATCH, format!("/api/v1/projects/{project}")),
        (Method::DELETE, format!("/api/v1/projects/{project}")),
        (Method::POST, format!("/api/v1/projects/{project}/images")),
        (Method::GET, format!("/api/v1/projects/{project}/images")),
        (Method::POST, "/api/v1/sites".to_owned()),
        (Method::GET, "/api/v1/sites".to_owned()),
        (Method::POST, format!("/api/v1/sites/{sitekey}/secrets")),
        (Method::POST, "/api/v1/keys".to_owned()),
    ];
    for (method, path) in &routes {
        let resp = o.request(method.clone(), path, None).send().await.unwrap();
        assert_eq!(resp.headers()["www-authenticate"], "Bearer", "{method} {path}");
        assert_api_error(resp, 401, "missing-api-key").await;
        for bad in ["cobot_not-a-key-at-all", "Basic dXNlcjpwYXNz"] {
            let resp = o.request(method.clone(), path, Some(bad)).send().await.unwrap();
            assert_api_error(resp, 401, "invalid-api-key").await;
        }
        let resp = o
            .request(method.clone(), path, None)
            .header("Authorization", "Basic dXNlcjpwYXNz")
            .send()
            .await
            .unwrap();
        assert_api_error(resp, 401, "missing-api-key").await;
    }
    // Bob's key on Alice's records: as if they did not exist.
    let hidden = [
        (Method::GET, format!("/api/v1/projects/{project}"), None),
        (
            Method::PATCH,
            format!("/api/v1/projects/{project}"),
            Some(json!({"name": "pris"})),
        ),
        (Method::DELETE, format!("/api/v1/projects/{project}"), None),
        (Method::GET, format!("/api/v1/projects/{project}/images"), None),
        (Method::POST, format!("/api/v1/sites/{sitekey}/secrets"), None),
    ];
    for (method, path, body) in &hidden {
        let resp = o.call(method.clone(), path, &o.bob, body.as_ref()).await;
        assert_api_error(resp, 404, "not-found").await;
    }
    let resp = o
        .upload(
            &o.bob,
            project,
            Form::new().image("a.png", &tile(RoofClass::Flat, 1)),
        )
        .await;
    assert_api_error(resp, 404, "not-found").await;
    // A project of another owner cannot feed one's site either; the refusal names it, the same way as
    // a project that does not exist.
    let resp = o
        .call(
            Method::POST,
            "/api/v1/sites",
            &o.bob,
            Some(&json!({"hostnames": ["bob.example.fr"], "projects": [project]})),
        )
        .await;
    let body: Value = {
        assert_eq!(resp.status(), 422);
        resp.json().await.unwrap()
    };
    assert_eq!(body["message"], format!("there is no project {project}"));
    assert_eq!(
        o.ok(Method::GET, "/api/v1/sites", &o.bob, None).await["sites"],
        json!([])
    );
    // Nothing of Alice's changed.
    let read = o
        .ok(
            Method::GET,
            &format!("/api/v1/projects/{project}"),
            &o.alice,
            None,
        )
        .await;
    assert_eq!(read["name"], "Toits");
    assert_eq!(read["archived"], false);
    // An id that is not a number is no project at all.
    let resp = o.call(Method::GET, "/api/v1/projects/abc", &o.alice, None).await;
    assert_api_error(resp, 404, "not-found").await;
}

/// The roof project with the field at `path` (`a/b/0/c`) set to `value`.
fn with(path: &str, value: Value) -> Value {
    let mut body = roof_project("Toits");
    let mut target = &mut body;
    let parts: Vec<&str> = path.split('/').collect();
    for part in &parts[..parts.len() - 1] {
        target = if let Ok(i) = part.parse::<usize>() {
            &mut target[i]
        } else {
            &mut target[*part]
        };
    }
    target[*parts.last().expect("a path")] = value;
    body
}

#[tokio::test]
async fn bad_project_bodies_are_refused_naming_the_problem_and_change_nothing() {
    let o = spawn().await;
    o.create_project(&o.alice, &roof_project("Toits")).await;
    let unprocessable = [
        (with("name", json!("  ")), "name is empty"),
        (with("question/en", json!("")), "the question (en) is empty"),
        (
            with("labels", json!([{"id": "flat", "fr": "Plat", "en": "Flat"}])),
            "between 2 and 20 labels",
        ),
        (
            with(
                "labels",
                json!([{"id": "flat", "fr": "Plat", "en": "Flat"}, {"id": "flat", "fr": "Plat", "en": "Flat"}]),
            ),
            "label `flat` is listed twice",
        ),
        (
            with("abstain", json!("unsure")),
            "the abstain label `unsure` is not among the labels",
        ),
        (
            with(
                "consensus",
                json!({"min_agreeing": 1, "threshold": 0.95, "max_votes": 10}),
            ),
            "consensus.min_agreeing",
        ),
        (
            with(
                "consensus",
                json!({"min_agreeing": 3, "threshold": 1.0, "max_votes": 10}),
            ),
            "consensus.threshold",
        ),
        (
            with(
                "consensus",
                json!({"min_agreeing": 3, "threshold": 0.4, "max_votes": 10}),
            ),
            "consensus.threshold",
        ),
        (
            with(
                "consensus",
                json!({"min_agreeing": 3, "threshold": 0.95, "max_votes": 101}),
            ),
            "consensus.max_votes",
        ),
        (
            with(
                "consensus",
                json!({"min_agreeing": 5, "threshold": 0.95, "max_votes": 4}),
            ),
            "consensus.max_votes",
        ),
        (with("priority", json!(0)), "priority"),
    ];
    for (body, message) in &unprocessable {
        let resp = o
            .call(Method::POST, "/api/v1/projects", &o.alice, Some(body))
            .await;
        assert_eq!(resp.status(), 422, "{body}");
        let reply: Value = resp.json().await.unwrap();
        assert_eq!(reply["error"], "invalid");
        assert!(
            reply["message"].as_str().unwrap().contains(message),
            "{reply} for {body}"
        );
    }

    // Nothing was created.
    let list = o.ok(Method::GET, "/api/v1/projects", &o.alice, None).await;
    assert_eq!(list["projects"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn malformed_project_bodies_are_refused_with_400_and_create_nothing() {
    let o = spawn().await;
    let bad_requests = [
        with("colour", json!("blue")),
        with("labels/0/id", json!("North South")),
        with("question", json!("Quel toit ?")),
        json!([]),
    ];
    for body in &bad_requests {
        let resp = o
            .call(Method::POST, "/api/v1/projects", &o.alice, Some(body))
            .await;
        assert_api_error(resp, 400, "bad-request").await;
    }
    let resp = o
        .request(Method::POST, "/api/v1/projects", Some(&o.alice))
        .header("Content-Type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();
    assert_api_error(resp, 400, "bad-request").await;
    let resp = o
        .request(Method::POST, "/api/v1/projects", Some(&o.alice))
        .header("Content-Type", "application/xml")
        .body("<project/>")
        .send()
        .await
        .unwrap();
    assert_api_error(resp, 415, "unsupported-media-type").await;
    let list = o.ok(Method::GET, "/api/v1/projects", &o.alice, None).await;
    assert_eq!(list["projects"], json!([]));
}

#[tokio::test]
async fn a_bad_patch_is_refused_and_changes_nothing() {
    let o = spawn().await;
    let project = o.create_project(&o.alice, &roof_project("Toits")).await;
    // A patch may not change label ids, nor break the bounds.
    let path = format!("/api/v1/projects/{project}");
    let patches = [
        (
            json!({"labels": [{"id": "north", "fr": "Nord", "en": "North"}, {"id": "south", "fr": "Sud", "en": "South"}]}),
            422,
        ),
        (
            json!({"consensus": {"min_agreeing": 1, "threshold": 0.95, "max_votes": 10}}),
            422,
        ),
        (json!({"name": ""}), 422),
        (json!({"abstain": "flat"}), 400),
        (json!({"archived": false}), 400),
    ];
    for (patch, status) in &patches {
        let resp = o.call(Method::PATCH, &path, &o.alice, Some(patch)).await;
        assert_eq!(resp.status().as_u16(), *status, "{patch}");
    }
    let read = o.ok(Method::GET, &path, &o.alice, None).await;
    assert_eq!(read["name"], "Toits");
    assert_eq!(read["consensus"]["min_agreeing"], 3);
    assert_eq!(read["labels"][0]["id"], "north_south");
}

#[tokio::test]
async fn an_upload_stores_the_good_files_and_reports_each_bad_one_by_name() {
    let o = spawn().await;
    let project = o.create_project(&o.alice, &roof_project("Toits")).await;
    let good = tile(RoofClass::Flat, 11);
    let mut truncated = tile(RoofClass::EastWest, 12);
    truncated.truncate(truncated.len() / 2);
    let mut wrong_magic = tile(RoofClass::NorthSouth, 13);
    wrong_magic[..8].copy_from_slice(b"NOTAPNG!");
    let form = Form::new()
        .image("gold-flat.png", &good)
        .image("unknown.png", &tile(RoofClass::EastWest, 14))
        .image("cant-tell.png", &tile(RoofClass::Other, 15))
        .image("truncated.png", &truncated)
        .image("wrong-magic.png", &wrong_magic)
        .image("bomb.png", &png_bomb())
        .image("drawing.svg", SVG)
        .image("archive.zip", ZIP)
        .image("round.png", &tile(RoofClass::Flat, 16))
        .image("empty.png", b"")
        .labels(&json!({
            "gold-flat.png": "flat",
            "cant-tell.png": "other",
            "round.png": "round",
            "missing.png": "flat",
        }));
    let report = o.upload_ok(&o.alice, project, form).await;
    let stored: Vec<Value> = report["stored"].as_array().unwrap().clone();
    assert_eq!(
        names(&report, "stored"),
        ["gold-flat.png", "unknown.png", "cant-tell.png"]
    );
    assert_eq!(stored[0]["known_label"], "flat");
    assert_eq!(stored[1]["known_label"], Value::Null);
    assert_eq!(stored[2]["known_label"], "other");
    assert!(
        stored
            .iter()
            .all(|s| s["content_hash"].as_str().unwrap().len() == 64)
    );
    assert_eq!(report["duplicates"], json!([]));
    let expected: BTreeSet<(String, String)> = [
        ("truncated.png", "truncated-or-corrupt"),
        ("wrong-magic.png", "unsupported-format"),
        ("bomb.png", "too-many-pixels"),
        ("drawing.svg", "unsupported-format"),
        ("archive.zip", "unsupported-format"),
        ("round.png", "unknown-label"),
        ("empty.png", "empty"),
        ("missing.png", "no-such-file"),
    ]
    .into_iter()
    .map(|(f, c)| (f.to_owned(), c.to_owned()))
    .collect();
    assert_eq!(rejected_codes(&report), expected);
    let message = |file: &str| {
        report["rejected"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["file"] == file)
            .unwrap()["message"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert!(
        message("drawing.svg").contains("svg"),
        "{}",
        message("drawing.svg")
    );
    assert!(
        message("archive.zip").contains("zip"),
        "{}",
        message("archive.zip")
    );
    assert!(
        message("bomb.png").contains("50000 × 50000"),
        "{}",
        message("bomb.png")
    );
    assert!(message("round.png").contains("round"), "{}", message("round.png"));

    // Only the good ones are in the project.
    let list = o.images(&o.alice, project, "").await;
    assert_eq!(
        names(&list, "images"),
        ["gold-flat.png", "unknown.png", "cant-tell.png"]
    );
}

#[tokio::test]
async fn the_same_image_is_stored_once_within_an_upload_and_across_uploads() {
    let o = spawn().await;
    let project = o.create_project(&o.alice, &roof_project("Toits")).await;
    let a = tile(RoofClass::Flat, 21);
    let b = tile(RoofClass::EastWest, 22);
    let first = o
        .upload_ok(
            &o.alice,
            project,
            Form::new()
                .image("a.png", &a)
                .image("a-again.png", &a)
                .image("b.png", &b),
        )
        .await;
    assert_eq!(names(&first, "stored"), ["a.png", "b.png"]);
    let a_id = first["stored"][0]["id"].clone();
    assert_eq!(
        first["duplicates"],
        json!([{"external_id": "a-again.png", "id": a_id, "existing_external_id": "a.png"}])
    );
    // The same file again later, under another name, and the same name twice in one request.
    let second = o
        .upload_ok(
            &o.alice,
            project,
            Form::new()
                .image("b-copy.png", &b)
                .image("c.png", &tile(RoofClass::Other, 23))
                .image("c.png", &tile(RoofClass::Other, 24)),
        )
        .await;
    assert_eq!(names(&second, "stored"), ["c.png"]);
    assert_eq!(second["duplicates"][0]["external_id"], "b-copy.png");
    assert_eq!(second["duplicates"][0]["existing_external_id"], "b.png");
    assert_eq!(
        rejected_codes(&second),
        [("c.png".to_owned(), "duplicate-file-name".to_owned())].into()
    );
    let list = o.images(&o.alice, project, "").await;
    assert_eq!(names(&list, "images"), ["a.png", "b.png", "c.png"]);
    // Another project of the same owner holds its own copy.
    let other = o.create_project(&o.alice, &roof_project("Autres toits")).await;
    let third = o.upload_ok(&o.alice, other, Form::new().image("a.png", &a)).await;
    assert_eq!(names(&third, "stored"), ["a.png"]);
}

#[tokio::test]
async fn a_malformed_upload_is_refused_whole_and_stores_nothing() {
    let o = spawn().await;
    let project = o.create_project(&o.alice, &roof_project("Toits")).await;
    let good = tile(RoofClass::Flat, 31);
    let cases: Vec<(Form, &str)> = vec![
        (
            Form::new().image("a.png", &good).part("comment", None, b"hello"),
            "unexpected part `comment`",
        ),
        (
            Form::new()
                .image("a.png", &good)
                .part("labels", None, b"[\"flat\"]"),
            "the `labels` part must be a JSON object",
        ),
        (
            Form::new()
                .image("a.png", &good)
                .labels(&json!({"a.png": "flat"}))
                .labels(&json!({"a.png": "flat"})),
            "more than one `labels` part",
        ),
        (Form::new().part("image", None, &good), "no file name"),
        (Form::new().labels(&json!({})), "no `image` part"),
    ];
    for (form, message) in cases {
        let resp = o.upload(&o.alice, project, form).await;
        assert_eq!(resp.status(), 400);
        let reply: Value = resp.json().await.unwrap();
        assert_eq!(reply["error"], "bad-request");
        assert!(reply["message"].as_str().unwrap().contains(message), "{reply}");
    }
    let resp = o
        .request(
            Method::POST,
            &format!("/api/v1/projects/{project}/images"),
            Some(&o.alice),
        )
        .header("Content-Type", "image/png")
        .body(good.clone())
        .send()
        .await
        .unwrap();
    assert_api_error(resp, 415, "unsupported-media-type").await;
    let resp = o
        .request(
            Method::POST,
            &format!("/api/v1/projects/{project}/images"),
            Some(&o.alice),
        )
        .header(
            "Content-Type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\n\r\nabc"
        ))
        .send()
        .await
        .unwrap();
    assert_api_error(resp, 400, "bad-request").await;
    let mut too_many = Form::new();
    for n in 0..=500 {
        too_many = too_many.image(&format!("{n}.png"), b"x");
    }
    let resp = o.upload(&o.alice, project, too_many).await;
    assert_api_error(resp, 400, "bad-request").await;
    assert_eq!(o.images(&o.alice, project, "").await["images"], json!([]));
}

#[tokio::test]
async fn images_are_listed_with_their_status_in_pages() {
    let o = spawn().await;
    let project = o.create_project(&o.alice, &roof_project("Toits")).await;
    let mut form = Form::new()
        .image("gold-1.png", &tile(RoofClass::Flat, 41))
        .image("gold-2.png", &tile(RoofClass::Flat, 42))
        .image("cant-tell.png", &tile(RoofClass::Other, 43));
    for n in 0..4 {
        form = form.image(&format!("unknown-{n}.png"), &tile(RoofClass::EastWest, 44 + n));
    }
    let form = form.labels(&json!({"gold-1.png": "flat", "gold-2.png": "flat", "cant-tell.png": "other"}));
    let report = o.upload_ok(&o.alice, project, form).await;
    assert_eq!(report["stored"].as_array().unwrap().len(), 7);

    let all = o.images(&o.alice, project, "").await;
    assert_eq!(all["next_after"], Value::Null);
    let statuses: Vec<(&str, &str)> = all["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["external_id"].as_str().unwrap(), i["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        statuses,
        [
            ("gold-1.png", "control"),
            ("gold-2.png", "control"),
            // Gold "can't tell": known, never a control.
            ("cant-tell.png", "decided"),
            ("unknown-0.png", "open"),
            ("unknown-1.png", "open"),
            ("unknown-2.png", "open"),
            ("unknown-3.png", "open"),
        ]
    );
    let gold = &all["images"][0];
    assert_eq!(gold["known_label"], "flat");
    assert_eq!(gold["label"], "flat");
    assert_eq!(gold["confidence"], 1.0);
    assert_eq!(gold["votes"], 0);
    let open = &all["images"][3];
    assert_eq!(open["label"], Value::Null);
    assert_eq!(open["known_label"], Value::Null);

    // Pages of two, in id order, by `after`.
    let mut seen = Vec::new();
    let mut query = "?limit=2".to_owned();
    loop {
        let page = o.images(&o.alice, project, &query).await;
        assert!(page["images"].as_array().unwrap().len() <= 2);
        seen.extend(names(&page, "images"));
        match page["next_after"].as_u64() {
            Some(after) => query = format!("?limit=2&after={after}"),
            None => break,
        }
    }
    assert_eq!(seen, names(&all, "images"));

    let open = o.images(&o.alice, project, "?status=open&limit=3").await;
    assert_eq!(
        names(&open, "images"),
        ["unknown-0.png", "unknown-1.png", "unknown-2.png"]
    );
    let after = open["next_after"].as_u64().unwrap();
    let last_page = o
        .images(&o.alice, project, &format!("?status=open&limit=3&after={after}"))
        .await;
    assert_eq!(names(&last_page, "images"), ["unknown-3.png"]);
    assert_eq!(last_page["next_after"], Value::Null);
    let controls = o.images(&o.alice, project, "?status=control").await;
    assert_eq!(names(&controls, "images"), ["gold-1.png", "gold-2.png"]);
    assert_eq!(
        o.images(&o.alice, project, "?status=contested").await["images"],
        json!([])
    );

    for query in [
        "?status=maybe",
        "?limit=0",
        "?limit=1001",
        "?after=x",
        "?colour=blue",
    ] {
        let resp = o
            .call(
                Method::GET,
                &format!("/api/v1/projects/{project}/images{query}"),
                &o.alice,
                None,
            )
            .await;
        assert_api_error(resp, 400, "bad-request").await;
    }
}

/// Alice's project with gold `flat` controls and unknowns, and a site for it on the tests' host name.
async fn served_site(o: &Owners) -> (u64, Value) {
    let project = o.create_project(&o.alice, &roof_project("Toits")).await;
    let mut form = Form::new();
    let mut gold = serde_json::Map::new();
    for n in 0..4 {
        let name = format!("gold-{n}.png");
        form = form.image(&name, &tile(RoofClass::Flat, 60 + n));
        gold.insert(name, json!(CONTROL_LABEL));
    }
    for n in 0..6 {
        form = form.image(&format!("unknown-{n}.png"), &tile(RoofClass::EastWest, 70 + n));
    }
    let report = o
        .upload_ok(&o.alice, project, form.labels(&Value::Object(gold)))
        .await;
    assert_eq!(
        report["stored"].as_array().expect("as the test set it up").len(),
        10,
        "{report}"
    );
    let site = o
        .ok(
            Method::POST,
            "/api/v1/sites",
            &o.alice,
            Some(&json!({"hostnames": [crate::helpers::HOSTNAME], "projects": [project]})),
        )
        .await;
    (project, site)
}

async fn challenge_for(o: &Owners, sitekey: &str) -> reqwest::Response {
    o.app
        .post_challenge_raw(&json!({"sitekey": sitekey, "lang": "fr"}), Some(ORIGIN))
        .await
}

/// Passes a check on `sitekey` as a citizen would (every control of the site's project is `flat`).
async fn token_for(o: &Owners, sitekey: &str) -> String {
    let resp = challenge_for(o, sitekey).await;
    assert_eq!(resp.status(), 200);
    let challenge: protocol::Challenge = resp.json().await.expect("as the test set it up");
    let reply = o
        .app
        .answer(challenge.challenge_id.as_str(), [CONTROL_LABEL, CONTROL_LABEL])
        .await;
    assert!(reply.success, "{reply:?}");
    reply.token.expect("as the test set it up")
}

#[tokio::test]
async fn a_site_is_created_for_the_owners_projects_and_its_secret_is_shown_once() {
    let o = spawn().await;
    let (project, site) = served_site(&o).await;
    let sitekey = site["sitekey"].as_str().unwrap();
    assert!(protocol::SiteKey::parse(sitekey).is_ok());
    let secret = site["secret"].as_str().unwrap();
    assert!(protocol::SiteSecret::parse(secret).is_ok());
    assert_eq!(site["site"]["hostnames"], json!([crate::helpers::HOSTNAME]));
    assert_eq!(site["site"]["projects"], json!([project]));
    assert_eq!(site["site"]["previous_secret_valid_until"], Value::Null);
    let list = o.ok(Method::GET, "/api/v1/sites", &o.alice, None).await;
    assert_eq!(list["sites"], json!([site["site"]]));
    assert!(!list.to_string().contains(secret));
    // The site works with the widget and siteverify.
    let token = token_for(&o, sitekey).await;
    assert!(o.app.siteverify(secret, &token).await.success);

    let archived = o.create_project(&o.alice, &roof_project("Archivé")).await;
    o.ok(
        Method::DELETE,
        &format!("/api/v1/projects/{archived}"),
        &o.alice,
        None,
    )
    .await;
    let refused = [
        (
            json!({"hostnames": ["https://mairie.example.fr"], "projects": [project]}),
            "is not a host name",
        ),
        (
            json!({"hostnames": ["mairie.example.fr:8080"], "projects": [project]}),
            "is not a host name",
        ),
        (
            json!({"hostnames": [], "projects": [project]}),
            "at least one host name",
        ),
        (
            json!({"hostnames": ["mairie.example.fr"], "projects": []}),
            "at least one project",
        ),
        (
            json!({"hostnames": ["mairie.example.fr"], "projects": [999]}),
            "there is no project 999",
        ),
        (
            json!({"hostnames": ["mairie.example.fr"], "projects": [archived]}),
            "is archived",
        ),
    ];
    for (body, message) in &refused {
        let resp = o.call(Method::POST, "/api/v1/sites", &o.alice, Some(body)).await;
        assert_eq!(resp.status(), 422, "{body}");
        let reply: Value = resp.json().await.unwrap();
        assert!(reply["message"].as_str().unwrap().contains(message), "{reply}");
    }
    let resp = o
        .call(
            Method::POST,
            "/api/v1/sites",
            &o.alice,
            Some(&json!({"hostnames": ["a.fr"]})),
        )
        .await;
    assert_api_error(resp, 400, "bad-request").await;
    let list = o.ok(Method::GET, "/api/v1/sites", &o.alice, None).await;
    assert_eq!(list["sites"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn after_a_rotation_both_secrets_verify_during_the_overlap_and_the_old_one_not_after() {
    let o = spawn().await;
    let (_, site) = served_site(&o).await;
    let sitekey = site["sitekey"].as_str().unwrap();
    let first = site["secret"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/sites/{sitekey}/secrets");

    // The default overlap: a day.
    let rotated = o.ok(Method::POST, &path, &o.alice, None).await;
    let second = rotated["secret"].as_str().unwrap().to_owned();
    assert_ne!(first, second);
    assert_eq!(rotated["sitekey"], sitekey);
    assert!(
        rotated["site"]["previous_secret_valid_until"].is_string(),
        "{rotated}"
    );
    for secret in [&first, &second] {
        let token = token_for(&o, sitekey).await;
        let verdict = o.app.siteverify(secret, &token).await;
        assert!(verdict.success, "{verdict:?}");
    }

    // An overlap of 0 ends the previous secret at once.
    let rotated = o
        .ok(
            Method::POST,
            &path,
            &o.alice,
            Some(&json!({"overlap_seconds": 0})),
        )
        .await;
    let third = rotated["secret"].as_str().unwrap().to_owned();
    assert_eq!(rotated["site"]["previous_secret_valid_until"], Value::Null);
    for old in [&first, &second] {
        let token = token_for(&o, sitekey).await;
        let verdict = o.app.siteverify(old, &token).await;
        assert!(!verdict.success, "{verdict:?}");
        assert_eq!(verdict.error_codes, ["invalid-input-secret"]);
    }
    let token = token_for(&o, sitekey).await;
    assert!(o.app.siteverify(&third, &token).await.success);

    let resp = o
        .call(
            Method::POST,
            &path,
            &o.alice,
            Some(&json!({"overlap_seconds": 2_592_001})),
        )
        .await;
    assert_api_error(resp, 422, "invalid").await;
    let resp = o
        .call(Method::POST, &path, &o.alice, Some(&json!({"overlap": 10})))
        .await;
    assert_api_error(resp, 400, "bad-request").await;
    let resp = o
        .call(
            Method::POST,
            "/api/v1/sites/not-a-sitekey/secrets",
            &o.alice,
            None,
        )
        .await;
    assert_api_error(resp, 404, "not-found").await;
    // Refused rotations changed nothing.
    let token = token_for(&o, sitekey).await;
    assert!(o.app.siteverify(&third, &token).await.success);
}

#[tokio::test]
async fn an_archived_project_is_no_longer_served() {
    let o = spawn().await;
    let (project, site) = served_site(&o).await;
    let sitekey = site["sitekey"].as_str().unwrap();
    assert_eq!(challenge_for(&o, sitekey).await.status(), 200);
    o.ok(
        Method::DELETE,
        &format!("/api/v1/projects/{project}"),
        &o.alice,
        None,
    )
    .await;
    assert_api_error(challenge_for(&o, sitekey).await, 503, "no-challenge-available").await;
    // Archiving twice is archiving.
    let again = o
        .ok(
            Method::DELETE,
            &format!("/api/v1/projects/{project}"),
            &o.alice,
            None,
        )
        .await;
    assert_eq!(again["archived"], true);
    let resp = o
        .upload(
            &o.alice,
            project,
            Form::new().image("late.png", &tile(RoofClass::Flat, 99)),
        )
        .await;
    assert_api_error(resp, 422, "invalid").await;
}

#[tokio::test]
async fn a_key_made_through_the_api_works_like_the_first_one() {
    let o = spawn().await;
    let project = o.create_project(&o.alice, &roof_project("Toits")).await;
    let created = o
        .request(Method::POST, "/api/v1/keys", Some(&o.alice))
        .json(&json!({"name": "ci"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let created: Value = created.json().await.unwrap();
    assert_eq!(created["owner"], "alice");
    let key = created["api_key"].as_str().unwrap();
    assert!(key.starts_with("cobot_") && key.len() == 6 + 43, "{key}");
    assert_ne!(key, o.alice);
    let read = o
        .ok(Method::GET, &format!("/api/v1/projects/{project}"), key, None)
        .await;
    assert_eq!(read["id"], project);
    // An empty body is allowed; an unknown field is not.
    let unnamed = o.ok(Method::POST, "/api/v1/keys", &o.bob, None).await;
    assert_eq!(unnamed["owner"], "bob");
    let resp = o
        .call(
            Method::POST,
            "/api/v1/keys",
            &o.alice,
            Some(&json!({"owner": "bob"})),
        )
        .await;
    assert_api_error(resp, 400, "bad-request").await;
    // The keys are stored hashed: none appears in the data directory.
    for entry in walk(o.app.dir.path()) {
        let bytes = std::fs::read(&entry).unwrap();
        for k in [key, o.alice.as_str(), o.bob.as_str()] {
            assert!(
                !bytes.windows(k.len()).any(|w| w == k.as_bytes()),
                "API key stored in clear in {}",
                entry.display()
            );
        }
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("as the test set it up") {
        let path = entry.expect("as the test set it up").path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// The owner routes of the issue: projects, images, sites and keys, then progress and exports.
const OWNER_ROUTES: &[(&str, &str)] = &[
    ("POST", "/api/v1/projects"),
    ("GET", "/api/v1/projects"),
    ("GET", "/api/v1/projects/{id}"),
    ("PATCH", "/api/v1/projects/{id}"),
    ("DELETE", "/api/v1/projects/{id}"),
    ("POST", "/api/v1/projects/{id}/images"),
    ("GET", "/api/v1/projects/{id}/images"),
    ("POST", "/api/v1/sites"),
    ("GET", "/api/v1/sites"),
    ("POST", "/api/v1/sites/{sitekey}/secrets"),
    ("POST", "/api/v1/keys"),
];
const EXPORT_ROUTES: &[(&str, &str)] = &[
    ("GET", "/api/v1/projects/{id}/progress"),
    ("GET", "/api/v1/projects/{id}/labels"),
    ("GET", "/api/v1/projects/{id}/contributions"),
    ("GET", "/api/v1/projects/{id}/export.zip"),
];

fn concrete(path: &str) -> String {
    path.replace("{id}", "1")
        .replace("{sitekey}", "5f0c4d2e-8b1a-4c3d-9e7f-0a1b2c3d4e5f")
}

#[tokio::test]
async fn the_openapi_document_lists_exactly_the_owner_routes_served() {
    let o = spawn().await;
    let resp = o
        .app
        .client
        .get(o.app.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let doc: Value = resp.json().await.unwrap();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3."),
        "{}",
        doc["openapi"]
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["api_key"]["scheme"],
        "bearer"
    );
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            documented.insert((method.to_uppercase(), path.clone()));
            assert!(
                operation["responses"]["401"].is_object(),
                "{method} {path} documents no 401"
            );
        }
    }
    // Every documented operation is really served: without a key it answers 401, not 404.
    for (method, path) in &documented {
        let resp = o
            .request(
                Method::from_bytes(method.as_bytes()).unwrap(),
                &concrete(path),
                None,
            )
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401, "{method} {path} is documented but not served");
    }
    // Every owner route of the issue is documented.
    for (method, path) in OWNER_ROUTES.iter().chain(EXPORT_ROUTES) {
        assert!(
            documented.contains(&((*method).to_owned(), (*path).to_owned())),
            "{method} {path} undocumented"
        );
    }
    // Nothing else is documented.
    let known: BTreeSet<(String, String)> = OWNER_ROUTES
        .iter()
        .chain(EXPORT_ROUTES)
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    let extra: Vec<_> = documented.difference(&known).collect();
    assert!(extra.is_empty(), "documented but not an owner route: {extra:?}");
    // An undocumented path or method under the owner API is not served, with a key or without.
    for (method, path) in [
        (Method::GET, "/api/v1/projects/1/nothing"),
        (Method::PUT, "/api/v1/projects/1"),
        (Method::DELETE, "/api/v1/sites"),
    ] {
        let resp = o
            .request(method.clone(), path, Some(&o.alice))
            .send()
            .await
            .unwrap();
        assert_api_error(resp, 404, "not-found").await;
    }
}

#[tokio::test]
async fn a_site_serves_its_projects_by_priority_and_never_an_archived_one() {
    let o = spawn().await;
    let mut projects = Vec::new();
    for (name, seed) in [("Toits A", 100), ("Toits B", 200)] {
        let mut body = roof_project(name);
        body["question"]["fr"] = json!(format!("{name}\u{a0}?"));
        let project = o.create_project(&o.alice, &body).await;
        let form = Form::new()
            .image("gold-1.png", &tile(RoofClass::Flat, seed))
            .image("gold-2.png", &tile(RoofClass::Flat, seed + 1))
            .image("unknown.png", &tile(RoofClass::EastWest, seed + 2))
            .labels(&json!({"gold-1.png": CONTROL_LABEL, "gold-2.png": CONTROL_LABEL}));
        let report = o.upload_ok(&o.alice, project, form).await;
        assert_eq!(report["stored"].as_array().unwrap().len(), 3, "{report}");
        projects.push(project);
    }
    let (a, b) = (projects[0], projects[1]);
    o.ok(
        Method::PATCH,
        &format!("/api/v1/projects/{b}"),
        &o.alice,
        Some(&json!({"priority": 9})),
    )
    .await;
    let site = o
        .ok(
            Method::POST,
            "/api/v1/sites",
            &o.alice,
            Some(&json!({"hostnames": [crate::helpers::HOSTNAME], "projects": [a, b]})),
        )
        .await;
    let sitekey = site["sitekey"].as_str().unwrap();
    let question = |challenge: Value| challenge["question"].as_str().unwrap().to_owned();
    let mut from_b = 0;
    for _ in 0..40 {
        let resp = challenge_for(&o, sitekey).await;
        assert_eq!(resp.status(), 200);
        if question(resp.json().await.unwrap()) == "Toits B\u{a0}?" {
            from_b += 1;
        }
    }
    // Nine chances in ten for B: fewer than 25 of 40 would happen about once in a billion runs (and
    // about once in 25 with equal priorities).
    assert!(
        from_b >= 25,
        "only {from_b} of 40 challenges from the priority-9 project"
    );

    o.ok(Method::DELETE, &format!("/api/v1/projects/{b}"), &o.alice, None)
        .await;
    for _ in 0..10 {
        let resp = challenge_for(&o, sitekey).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(question(resp.json().await.unwrap()), "Toits A\u{a0}?");
    }
}
