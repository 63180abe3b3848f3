//! The owners' command line (`cobot`) against a real server: create a project, upload a folder twice,
//! harvest labels through the widget API, and export what was harvested.
//!
//! The test answers every challenge as a perfect citizen would: it recognises each served image by the
//! hash of its normalised content (the server's own intake, run here on the folder's files) and answers the
//! truth that `demo-data` planned for it. So it knows every answer it gave, image by image, and can compare
//! the exports with them.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use demo_data::{PlannedImage, ProjectSpec, RoofClass};
use protocol::owner::{ContributionRecord, LabelRecord, Progress};
use protocol::{AnswerResponse, Challenge};
use serde_json::json;

use crate::helpers::{HOSTNAME, ORIGIN, ServerProcess, binary, cli_ok};

/// A `cobot` configured to talk to one server, with its own configuration directory.
struct Cobot {
    config_dir: tempfile::TempDir,
}

impl Cobot {
    fn run(&self, args: &[&str]) -> Output {
        Command::new(binary("cobot-cli", "cobot"))
            .arg("--config-dir")
            .arg(self.config_dir.path())
            .args(args)
            // The environment of the test run must not choose the server for it.
            .env_remove("COBOT_SERVER")
            .env_remove("COBOT_API_KEY")
            .output()
            .expect("cobot runs")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "cobot {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8 output")
    }

    fn progress(&self, project: &str) -> Progress {
        serde_json::from_str(&self.ok(&["progress", project, "--json"])).expect("progress JSON")
    }
}

fn spec() -> ProjectSpec {
    ProjectSpec {
        seed: 23,
        gold_per_class: 3,
        // Not `other`: it is the abstain label, and a gold abstain is no control.
        gold_classes: vec![RoofClass::Flat, RoofClass::NorthSouth, RoofClass::EastWest],
        unknown: 9,
        size: 64,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The names of a zip archive's entries, read from its central directory.
fn zip_entry_names(zip: &[u8]) -> Vec<String> {
    let u16_at = |i: usize| usize::from(u16::from_le_bytes([zip[i], zip[i + 1]]));
    let u32_at = |i: usize| u32::from_le_bytes(zip[i..i + 4].try_into().expect("4 bytes")) as usize;
    assert!(zip.starts_with(b"PK\x03\x04"), "not a zip archive");
    let end = (0..=zip.len() - 22)
        .rev()
        .find(|&i| zip[i..].starts_with(b"PK\x05\x06"))
        .expect("a zip end-of-central-directory record");
    let (count, mut at) = (u16_at(end + 10), u32_at(end + 16));
    let mut names = Vec::with_capacity(count);
    for _ in 0..count {
        assert!(zip[at..].starts_with(b"PK\x01\x02"), "a central directory entry");
        let (name_len, extra_len, comment_len) = (u16_at(at + 28), u16_at(at + 30), u16_at(at + 32));
        names.push(String::from_utf8(zip[at + 46..at + 46 + name_len].to_vec()).expect("utf-8 name"));
        at += 46 + name_len + extra_len + comment_len;
    }
    names
}

/// Answers to unknowns, by file name, then label: what the test gave as a crowd.
type Answered = BTreeMap<String, BTreeMap<String, u32>>;

#[tokio::test]
async fn an_owner_uploads_a_folder_harvests_labels_and_exports_them_with_the_cli() {
    // The operator creates the first owner's key, then starts the server.
    let data = tempfile::tempdir().unwrap();
    let key: serde_json::Value = serde_json::from_str(&cli_ok(
        data.path(),
        &["key", "create", "--owner", "mairie-de-test"],
    ))
    .unwrap();
    let key = key["api_key"].as_str().expect("an api_key").to_owned();
    let server = ServerProcess::start(data.path(), &[]);

    let cobot = Cobot {
        config_dir: tempfile::tempdir().unwrap(),
    };
    log_in(&cobot, &server.base, &key);

    // A project from the folder's own project.toml.
    let folder = tempfile::tempdir().unwrap();
    let spec = spec();
    demo_data::write_project(folder.path(), &spec).unwrap();
    let plan = demo_data::plan_project(&spec);
    let project_toml = folder.path().join("project.toml");
    let project = cobot
        .ok(&["project", "create", project_toml.to_str().unwrap()])
        .trim()
        .to_owned();
    assert!(
        cobot
            .ok(&["project", "list"])
            .contains(&format!("{project}\tOrientation des toits"))
    );

    upload_twice_and_once_more_without_the_journal(&cobot, &project, folder.path(), &plan);

    let site: serde_json::Value =
        serde_json::from_str(&cobot.ok(&["site", "create", "--hostname", HOSTNAME, "--project", &project]))
            .unwrap();
    let sitekey = site["sitekey"].as_str().expect("a sitekey").to_owned();
    assert!(
        site["secret"].as_str().is_some_and(|s| s.starts_with("0x")),
        "{site}"
    );

    let (answered, decided) = harvest(&server, &cobot, &project, &sitekey, folder.path(), &plan).await;
    let human = cobot.ok(&["progress", &project]);
    assert!(
        human.contains(&format!("project {project}: {} images", plan.len())),
        "{human}"
    );

    let out = folder.path().join("export");
    std::fs::create_dir(&out).unwrap();
    let records = check_labels_export(&cobot, &project, &out, &plan, &answered, decided);
    check_contributions_export(&cobot, &project, &out, &sitekey, &records, &answered);

    // The zip archive opens: `<label>/<file>` for every gold or decided image (the abstain label aside),
    // and its `labels.csv` index.
    let zip_file = out.join("export.zip");
    cobot.ok(&[
        "export",
        &project,
        "--what",
        "zip",
        "--out",
        zip_file.to_str().unwrap(),
    ]);
    let names = zip_entry_names(&std::fs::read(&zip_file).unwrap());
    assert!(names.contains(&"labels.csv".to_owned()), "{names:?}");
    let labelled: Vec<String> = records
        .iter()
        .filter(|r| r.status == "gold" || r.status == "decided")
        .filter_map(|r| r.label.as_ref().map(|l| (l.as_str(), r)))
        .filter(|(label, _)| *label != RoofClass::Other.id())
        .map(|(label, r)| format!("{label}/{}", r.external_id.trim_end_matches(".png")))
        .collect();
    assert_eq!(names.len(), labelled.len() + 1, "{names:?}");
    for prefix in &labelled {
        assert!(
            names.iter().any(|n| n.starts_with(&format!("{prefix}."))),
            "no {prefix}.* in {names:?}"
        );
    }
    // Only the finished files are left: no temporary file from the atomic writes.
    let mut written: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    written.sort();
    assert_eq!(
        written,
        ["contributions.jsonl", "export.zip", "labels.csv", "labels.jsonl"]
    );

    // Archiving stops the serving; the project is still listed, as archived.
    cobot.ok(&["project", "archive", &project]);
    assert!(cobot.ok(&["project", "list"]).contains("(archived)"));
}

fn log_in(cobot: &Cobot, server: &str, key: &str) {
    let refused = cobot.run(&["login", "--server", server, "--key", "cobot_not-a-key"]);
    assert!(!refused.status.success(), "a wrong key was accepted");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("refused the API key"), "{stderr}");
    cobot.ok(&["login", "--server", server, "--key", key]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let credentials = cobot.config_dir.path().join("credentials.toml");
        let mode = std::fs::metadata(&credentials)
            .expect("credentials file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the key is readable by others");
    }
}

fn upload_twice_and_once_more_without_the_journal(
    cobot: &Cobot,
    project: &str,
    folder: &Path,
    plan: &[PlannedImage],
) {
    // Small batches, so that several requests are made; labels.csv is found in the folder.
    let dir = folder.to_str().expect("utf-8 path");
    let summary = cobot.ok(&["images", "upload", project, dir, "--batch-files", "4"]);
    let n = plan.len();
    assert!(
        summary.contains(&format!(
            "{n} files: {n} stored, 0 duplicates, 0 already uploaded, 0 rejected"
        )),
        "{summary}"
    );
    let progress = cobot.progress(project);
    assert_eq!(progress.images.total, n as u64);
    let gold = plan.iter().filter(|p| p.gold).count() as u64;
    assert_eq!(progress.images.control, gold, "{progress:?}");

    // A rerun sends nothing: the journal knows every file.
    let summary = cobot.ok(&["images", "upload", project, dir]);
    assert!(
        summary.contains(&format!(
            "{n} files: 0 stored, 0 duplicates, {n} already uploaded, 0 rejected"
        )),
        "{summary}"
    );
    // Without the journal, everything is sent again and the server recognises every image.
    let journals: Vec<PathBuf> = std::fs::read_dir(folder)
        .expect("list the folder")
        .map(|e| e.expect("a folder entry").path())
        .filter(|p| {
            p.file_name()
                .expect("a file name")
                .to_str()
                .expect("a file name")
                .starts_with(".cobot-upload-")
        })
        .collect();
    assert_eq!(journals.len(), 1, "{journals:?}");
    std::fs::remove_file(&journals[0]).expect("remove the journal");
    let summary = cobot.ok(&["images", "upload", project, dir]);
    assert!(
        summary.contains(&format!(
            "{n} files: 0 stored, {n} duplicates, 0 already uploaded, 0 rejected"
        )),
        "{summary}"
    );
    assert_eq!(cobot.progress(project).images.total, n as u64);
}

/// Citizens answer the truth until some labels are decided. Returns the answers given to unknowns and the
/// number of decided labels.
async fn harvest(
    server: &ServerProcess,
    cobot: &Cobot,
    project: &str,
    sitekey: &str,
    folder: &Path,
    plan: &[PlannedImage],
) -> (Answered, u64) {
    let http = reqwest::Client::new();
    // Every file, by the hash the server gives its normalised tile.
    let by_hash: HashMap<String, &PlannedImage> = plan
        .iter()
        .map(|p| {
            let bytes = std::fs::read(folder.join(&p.file)).expect("read a tile");
            let accepted = server::intake::accept(&bytes, &server::intake::Limits::default())
                .expect("the intake accepts a demo tile");
            (accepted.content_hash, p)
        })
        .collect();
    let gold = plan.iter().filter(|p| p.gold).count() as u64;
    let mut answered = Answered::new();
    for pass in 0..120 {
        let challenge: Challenge = http
            .post(format!("{}/api/v1/challenge", server.base))
            .header("Origin", ORIGIN)
            .json(&json!({"sitekey": sitekey, "lang": "fr"}))
            .send()
            .await
            .expect("challenge request sent")
            .json()
            .await
            .expect("a challenge");
        let mut shown = Vec::new();
        for image in &challenge.images {
            let bytes = http
                .get(format!("{}{}", server.base, image.url))
                .send()
                .await
                .expect("image request sent")
                .bytes()
                .await
                .expect("image bytes");
            let planned = by_hash
                .get(&hex(&protocol::pow::sha256(&bytes)))
                .expect("a served image is one of the folder's");
            shown.push(*planned);
        }
        let answers: Vec<&str> = shown.iter().map(|p| p.class.id()).collect();
        let reply: AnswerResponse = http
            .post(format!(
                "{}/api/v1/challenge/{}/answer",
                server.base,
                challenge.challenge_id.as_str()
            ))
            .header("Origin", ORIGIN)
            .json(&json!({ "answers": answers }))
            .send()
            .await
            .expect("answer request sent")
            .json()
            .await
            .expect("an answer reply");
        assert!(reply.success, "the truth was refused: {reply:?}");
        for planned in shown.iter().filter(|p| !p.gold) {
            *answered
                .entry(planned.file.clone())
                .or_default()
                .entry(planned.class.id().to_owned())
                .or_default() += 1;
        }
        if pass % 5 == 4 {
            let progress = cobot.progress(project);
            // A decided unknown may be promoted to a control at once: count both ways of being decided.
            let decided = progress.images.decided + progress.images.control - gold;
            if decided >= 3 {
                return (answered, decided);
            }
        }
    }
    panic!("fewer than 3 labels decided after 120 passes: {answered:?}");
}

/// The labels export says what the crowd (this test) answered.
fn check_labels_export(
    cobot: &Cobot,
    project: &str,
    out: &Path,
    plan: &[PlannedImage],
    answered: &Answered,
    decided: u64,
) -> Vec<LabelRecord> {
    let labels_file = out.join("labels.jsonl");
    cobot.ok(&[
        "export",
        project,
        "--what",
        "labels",
        "--out",
        labels_file.to_str().expect("utf-8 path"),
    ]);
    let records: Vec<LabelRecord> = std::fs::read_to_string(&labels_file)
        .expect("read the labels export")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a label record"))
        .collect();
    assert_eq!(records.len(), plan.len());
    let truth: HashMap<&str, &PlannedImage> = plan.iter().map(|p| (p.file.as_str(), p)).collect();
    let mut decided_in_export = 0;
    for record in &records {
        let planned = truth[record.external_id.as_str()];
        let label = record.label.as_ref().map(protocol::LabelId::as_str);
        if planned.gold {
            assert_eq!(record.status, "gold", "{record:?}");
            assert_eq!(label, Some(planned.class.id()), "{record:?}");
            continue;
        }
        // Every answer this test gave was the truth. An unknown promoted to a control collects no more
        // votes when answered, so the votes are those answers, or fewer.
        let given = answered
            .get(&record.external_id)
            .map_or(0, |a| a.values().sum::<u32>());
        let votes: u32 = record.votes.values().sum();
        assert!(
            votes <= given,
            "{record:?} has more votes than the {given} answers given"
        );
        assert!(
            record.votes.keys().all(|l| l == planned.class.id()),
            "{record:?} has votes that were never given"
        );
        if record.status == "decided" {
            decided_in_export += 1;
            assert_eq!(label, Some(planned.class.id()), "{record:?}");
            assert!(record.confidence.is_some_and(|c| c >= 0.95), "{record:?}");
            assert!(votes >= 2, "decided on fewer than two votes: {record:?}");
        } else {
            assert!(
                ["open", "contested"].contains(&record.status.as_str()),
                "{record:?}"
            );
        }
    }
    // The export's consensus may include the periodic batch run, which can decide more than the online rule
    // had when the progress was read; never fewer, since every vote agreed.
    assert!(
        decided_in_export >= decided,
        "{decided} decided in the progress, {decided_in_export} in the export"
    );

    // CSV too, with a header.
    let csv_file = out.join("labels.csv");
    cobot.ok(&[
        "export",
        project,
        "--what",
        "labels",
        "--format",
        "csv",
        "--out",
        csv_file.to_str().expect("utf-8 path"),
    ]);
    let csv = std::fs::read_to_string(&csv_file).expect("read the CSV export");
    assert_eq!(csv.lines().count(), plan.len() + 1, "{csv}");
    records
}

/// The raw contributions: the votes of the labels export, one by one, all given on the test's site.
fn check_contributions_export(
    cobot: &Cobot,
    project: &str,
    out: &Path,
    sitekey: &str,
    records: &[LabelRecord],
    answered: &Answered,
) {
    let contributions_file = out.join("contributions.jsonl");
    cobot.ok(&[
        "export",
        project,
        "--what",
        "contributions",
        "--out",
        contributions_file.to_str().expect("utf-8 path"),
    ]);
    let mut contributed = Answered::new();
    for line in std::fs::read_to_string(&contributions_file)
        .expect("read the contributions export")
        .lines()
    {
        let c: ContributionRecord = serde_json::from_str(line).expect("a contribution record");
        assert_eq!(c.sitekey.as_str(), sitekey);
        *contributed
            .entry(c.external_id)
            .or_default()
            .entry(c.label.as_str().to_owned())
            .or_default() += 1;
    }
    let voted: Answered = records
        .iter()
        .filter(|r| !r.votes.is_empty())
        .map(|r| (r.external_id.clone(), r.votes.clone()))
        .collect();
    assert_eq!(contributed, voted);
    assert!(contributed.keys().all(|file| answered.contains_key(file)));
}
