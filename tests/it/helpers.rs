//! Spawning the real `cobot-server` process on a random port with its own data directory, seeding it with the
//! real owner commands, and typed helpers for the HTTP calls the tests make.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;

use demo_data::{ProjectSpec, RoofClass};
use protocol::{AnswerResponse, Challenge, SiteverifyResponse};
use serde_json::{Value, json};
use tempfile::TempDir;

/// The host name the test sites allow, and the `Origin` the tests send.
pub const ORIGIN: &str = "http://demo.localhost:8081";
pub const HOSTNAME: &str = "demo.localhost";
/// Every control of the test project has this label, so the tests know the right answer without any way
/// for a client to learn it from the server.
pub const CONTROL_LABEL: &str = "flat";
pub const WRONG_LABEL: &str = "north_south";

/// Builds a binary of the workspace once per test run and returns its path. Cargo does not build the
/// binaries of another package for an integration test, so the tests ask it explicitly.
pub fn binary(package: &str, name: &str) -> PathBuf {
    static BUILT: OnceLock<std::sync::Mutex<Vec<String>>> = OnceLock::new();
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/it-<hash> -> target/<profile>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target profile dir")
        .to_path_buf();
    let built = BUILT.get_or_init(Default::default);
    let mut built = built.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if !built.iter().any(|b| b == name) {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let target_dir = profile_dir.parent().expect("target dir");
        let status = Command::new(cargo)
            .args([
                "build",
                "--quiet",
                "--package",
                package,
                "--bin",
                name,
                "--target-dir",
            ])
            .arg(target_dir)
            .status()
            .expect("cargo runs");
        assert!(status.success(), "cargo build of {name} failed");
        built.push(name.to_owned());
    }
    profile_dir.join(name)
}

pub fn server_binary() -> PathBuf {
    binary("server", "cobot-server")
}

/// The demo project folder, generated once per test run: 6 gold images, all `flat`, and 12 unknowns.
pub fn project_fixture() -> &'static Path {
    static DIR: OnceLock<TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let spec = ProjectSpec {
            seed: 7,
            gold_per_class: 6,
            gold_classes: vec![RoofClass::Flat],
            unknown: 12,
            size: 96,
        };
        demo_data::write_project(dir.path(), &spec).expect("write the demo project");
        dir
    })
    .path()
}

/// Runs `cobot-server <args>` on a data directory, as an operator would.
pub fn cli(data_dir: &Path, args: &[&str]) -> Output {
    Command::new(server_binary())
        .args(args)
        .env("COBOT_DATA_DIR", data_dir)
        .env("RUST_LOG", "warn")
        .output()
        .expect("cobot-server runs")
}

pub fn cli_ok(data_dir: &Path, args: &[&str]) -> String {
    let out = cli(data_dir, args);
    assert!(
        out.status.success(),
        "cobot-server {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

#[derive(Debug, Clone, serde::Deserialize)]
pub struct SiteCreds {
    pub sitekey: String,
    pub secret: String,
}

/// A running `cobot-server` process; killed (SIGKILL) when dropped.
pub struct ServerProcess {
    child: Child,
    pub base: String,
}

impl ServerProcess {
    pub fn start(data_dir: &Path, env: &[(&str, &str)]) -> Self {
        let mut cmd = Command::new(server_binary());
        cmd.env("COBOT_LISTEN", "127.0.0.1:0")
            .env("COBOT_DATA_DIR", data_dir)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(
                std::fs::File::create(data_dir.join("server.log")).expect("log file"),
            ));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("cobot-server starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the listening line");
        let base = line
            .trim()
            .strip_prefix("cobot-server listening on ")
            .unwrap_or_else(|| {
                let log = std::fs::read_to_string(data_dir.join("server.log")).unwrap_or_default();
                panic!("cobot-server did not start: {line:?}\n{log}")
            })
            .to_owned();
        Self { child, base }
    }

    /// SIGKILL: no chance to flush or clean up, like a crash.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A seeded data directory (one project, two sites) and a server running on it.
pub struct TestApp {
    pub dir: TempDir,
    pub server: ServerProcess,
    pub project: String,
    pub site: SiteCreds,
    pub other_site: SiteCreds,
    pub client: reqwest::Client,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(&[]).await
    }

    pub async fn spawn_with(env: &[(&str, &str)]) -> Self {
        Self::spawn_seeded(env, |_| ()).await
    }

    /// Like `spawn_with`, running `seed` on the data directory (with the owner commands, say) before the
    /// server starts: the embedded store belongs to one process at a time.
    pub async fn spawn_seeded(env: &[(&str, &str)], seed: impl FnOnce(&Path)) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        seed(dir.path());
        let project = cli_ok(
            dir.path(),
            &[
                "project",
                "import",
                project_fixture().to_str().expect("utf-8 path"),
            ],
        )
        .trim()
        .to_owned();
        // The browser tests load the demo site from 127.0.0.1.
        let site = create_site(dir.path(), &[HOSTNAME, "127.0.0.1"], &project);
        let other_site = create_site(dir.path(), &["other.example"], &project);
        let server = ServerProcess::start(dir.path(), env);
        let client = reqwest::Client::new();
        // The address is printed once bound; wait until it also answers, as a load balancer would.
        let health = format!("{}/healthz", server.base);
        for _ in 0..100 {
            if client
                .get(&health)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        Self {
            dir,
            server,
            project,
            site,
            other_site,
            client,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.base)
    }

    /// Stops the server (SIGKILL) and restarts it on the same data directory (another port).
    pub fn restart(&mut self, env: &[(&str, &str)]) {
        self.server.kill();
        self.server = ServerProcess::start(self.dir.path(), env);
    }

    /// The project's export, read with the owner command while the server is stopped (the embedded store
    /// belongs to one process at a time).
    pub fn export_stopped(&mut self, what: &str) -> Vec<Value> {
        self.server.kill();
        let out = cli_ok(
            self.dir.path(),
            &[
                "project",
                "export",
                &self.project,
                "--what",
                what,
                "--format",
                "jsonl",
            ],
        );
        out.lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect()
    }

    pub async fn post_challenge_raw(&self, body: &Value, origin: Option<&str>) -> reqwest::Response {
        let mut req = self.client.post(self.url("/api/v1/challenge")).json(body);
        if let Some(origin) = origin {
            req = req.header("Origin", origin);
        }
        req.send().await.expect("request sent")
    }

    pub async fn challenge(&self) -> Challenge {
        let resp = self
            .post_challenge_raw(&json!({"sitekey": self.site.sitekey, "lang": "fr"}), Some(ORIGIN))
            .await;
        assert_eq!(
            resp.status(),
            200,
            "challenge refused: {}",
            resp.text().await.unwrap_or_default()
        );
        resp.json().await.expect("a challenge")
    }

    pub async fn post_answer_raw(&self, challenge_id: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url(&format!("/api/v1/challenge/{challenge_id}/answer")))
            .header("Origin", ORIGIN)
            .json(body)
            .send()
            .await
            .expect("request sent")
    }

    pub async fn answer(&self, challenge_id: &str, labels: [&str; 2]) -> AnswerResponse {
        let resp = self
            .post_answer_raw(challenge_id, &json!({ "answers": labels }))
            .await;
        assert_eq!(
            resp.status(),
            200,
            "answer refused: {}",
            resp.text().await.unwrap_or_default()
        );
        resp.json().await.expect("an answer reply")
    }

    /// Passes a check as a citizen would and returns the token.
    pub async fn pass_check(&self) -> String {
        let challenge = self.challenge().await;
        let reply = self
            .answer(challenge.challenge_id.as_str(), [CONTROL_LABEL, CONTROL_LABEL])
            .await;
        assert!(reply.success, "the right answer was refused: {reply:?}");
        reply.token.expect("a token")
    }

    pub async fn siteverify(&self, secret: &str, response: &str) -> SiteverifyResponse {
        let resp = self
            .client
            .post(self.url("/siteverify"))
            .form(&[("secret", secret), ("response", response)])
            .send()
            .await
            .expect("request sent");
        assert_eq!(resp.status(), 200);
        resp.json().await.expect("a siteverify reply")
    }
}

/// A new API key for `owner` (created if needed), from `cobot-server key create` as an operator would.
pub fn api_key(data_dir: &Path, owner: &str) -> String {
    let out = cli_ok(data_dir, &["key", "create", "--owner", owner]);
    let reply: Value = serde_json::from_str(out.trim()).expect("key create prints JSON");
    assert_eq!(reply["owner"], owner, "{reply}");
    reply["api_key"].as_str().expect("an api_key").to_owned()
}

pub fn create_site(data_dir: &Path, hostnames: &[&str], project: &str) -> SiteCreds {
    let mut args = vec!["site", "create", "--project", project];
    for host in hostnames {
        args.extend(["--hostname", host]);
    }
    let out = cli_ok(data_dir, &args);
    serde_json::from_str(out.trim()).expect("site create prints JSON")
}

/// Asserts the JSON error body of the widget API.
pub async fn assert_api_error(resp: reqwest::Response, status: u16, code: &str) {
    assert_eq!(resp.status(), status, "unexpected status");
    let body: Value = resp.json().await.expect("a JSON error body");
    assert_eq!(body["success"], false, "{body}");
    assert_eq!(body["error"], code, "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "no message in {body}"
    );
}
