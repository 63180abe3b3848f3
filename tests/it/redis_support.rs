//! Real `redis-server` processes for the tests: each on a free port, in its own temporary directory, with AOF
//! and `appendfsync always`, killed when dropped. A Redis already running on the machine is never used.
//! And [`Deployment`]: several `cobot-server` processes sharing them.

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Once, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tempfile::TempDir;

use crate::helpers::{CONTROL_LABEL, HOSTNAME, ORIGIN, ServerProcess, SiteCreds, server_binary};

/// Panics, with what to do, when `redis-server` is not installed: these tests are never skipped.
fn require_redis() {
    static CHECK: Once = Once::new();
    CHECK.call_once(|| {
        for tool in ["redis-server", "redis-cli"] {
            let found = Command::new(tool)
                .arg("--version")
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            assert!(
                found,
                "`{tool}` is not installed: the Redis tests need it. Install it with `apt-get install \
                 redis-server` (or run `cargo xtask test`, which does)"
            );
        }
    });
}

/// A port that was free a moment ago. `cluster` also wants `port + 10000` free (the cluster bus).
fn free_port(cluster: bool) -> u16 {
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("bind a free port")
            .port();
        if !cluster {
            return port;
        }
        // Below 55536 the bus port exists; bind both to check they are free.
        let candidate = 20_000 + port % 30_000;
        if TcpListener::bind(("127.0.0.1", candidate)).is_ok()
            && TcpListener::bind(("127.0.0.1", candidate + 10_000)).is_ok()
        {
            return candidate;
        }
    }
}

/// Sends one inline command and returns the raw reply, or `None` when Redis does not answer.
pub fn raw_command(port: u16, command: &str) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream.write_all(format!("{command}\r\n").as_bytes()).ok()?;
    let mut buf = vec![0; 64 * 1024];
    let n = stream.read(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// One `redis-server` process.
pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
    dir: TempDir,
    extra: Vec<String>,
}

impl RedisServer {
    /// A durable Redis: AOF with `appendfsync always`, `noeviction`.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// With extra `redis-server` arguments (`--maxmemory 10mb`, `--cluster-enabled yes`, ...).
    pub fn start_with(extra: &[&str]) -> Self {
        require_redis();
        let cluster = extra.contains(&"--cluster-enabled");
        let dir = tempfile::tempdir().expect("temp dir");
        let mut server = Self {
            child: None,
            port: free_port(cluster),
            dir,
            extra: extra.iter().map(|s| (*s).to_owned()).collect(),
        };
        server.launch();
        server
    }

    fn launch(&mut self) {
        // Another test may have taken the port between our check and the bind: then try another one.
        for _ in 0..5 {
            let log = std::fs::File::create(self.dir.path().join("redis.log")).expect("log file");
            let child = Command::new("redis-server")
                .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
                .arg("--dir")
                .arg(self.dir.path())
                .args(["--appendonly", "yes", "--appendfsync", "always", "--save", ""])
                .args(["--maxmemory-policy", "noeviction", "--daemonize", "no"])
                .args(&self.extra)
                .stdout(Stdio::from(log))
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server starts");
            self.child = Some(child);
            if self.wait_ready() {
                return;
            }
            self.kill();
            self.port = free_port(self.extra.iter().any(|a| a == "--cluster-enabled"));
        }
        panic!("redis-server did not start:\n{}", self.log());
    }

    fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(child) = &mut self.child
                && child.try_wait().ok().flatten().is_some()
            {
                return false;
            }
            // `LOADING` while the AOF is replayed: not ready yet.
            if raw_command(self.port, "PING").is_some_and(|r| r.starts_with("+PONG")) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default()
    }

    /// SIGKILL: Redis gets no chance to flush anything beyond what it already fsynced.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts again on the same port and directory: Redis replays its AOF.
    pub fn restart(&mut self) {
        self.kill();
        self.launch();
    }

    /// Starts again on the same port with nothing: as a capped, non-persistent instance would come back.
    pub fn restart_empty(&mut self) {
        self.kill();
        self.dir = tempfile::tempdir().expect("temp dir");
        self.launch();
    }

    /// The number of keys whose name matches `pattern`.
    pub fn count_keys(&self, pattern: &str) -> usize {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string(), "--scan", "--pattern", pattern])
            .output()
            .expect("redis-cli runs");
        String::from_utf8_lossy(&out.stdout).lines().count()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A Redis Cluster of three masters and no replicas, made with `redis-cli --cluster create`.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    pub fn start() -> Self {
        let nodes: Vec<RedisServer> = (0..3)
            .map(|_| {
                RedisServer::start_with(&["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"])
            })
            .collect();
        let addresses: Vec<String> = nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)).collect();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("redis-cli runs");
        assert!(
            out.status.success(),
            "cluster creation failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        for node in &nodes {
            while !raw_command(node.port, "CLUSTER INFO").is_some_and(|i| i.contains("cluster_state:ok")) {
                assert!(Instant::now() < deadline, "the cluster did not become ready");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Self { nodes }
    }

    /// The seed list the store takes for a cluster: every node's URL, comma-separated.
    pub fn url(&self) -> String {
        self.nodes
            .iter()
            .map(RedisServer::url)
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// A project with many unknowns, generated once per test run. The streams of answers in these tests answer
/// every unknown alike, so the consensus decides and retires each after three votes (the default policy's
/// minimum of agreeing sources); once all are retired, challenges are made of two controls and record no
/// contribution. 2,000 unknowns hold 6,000 votes, more than the 5,000 answers a stream may send.
pub const BULK_UNKNOWNS: usize = 2000;

fn bulk_project_fixture() -> &'static Path {
    static DIR: OnceLock<TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let spec = demo_data::ProjectSpec {
            seed: 5,
            gold_per_class: 6,
            gold_classes: vec![demo_data::RoofClass::Flat],
            unknown: BULK_UNKNOWNS,
            size: 48,
        };
        demo_data::write_project(dir.path(), &spec).expect("write the project");
        dir
    })
    .path()
}

/// The token signing key every instance of a deployment shares, as an operator configures it.
const SHARED_SIGNING_KEY: &str = "ab1f0d6e2a4c4e8f9a0b1c2d3e4f5061728394a5b6c7d8e9f001122334455667";

/// Several `cobot-server` processes sharing one Redis store (or two: durable and short-lived), seeded with
/// the real owner commands: one project, one site.
pub struct Deployment {
    dir: TempDir,
    env: Vec<(String, String)>,
    /// Behind a lock so that an instance can be killed and restarted while requests stream to the others.
    servers: Vec<std::sync::Mutex<ServerProcess>>,
    pub project: String,
    pub site: SiteCreds,
    pub client: reqwest::Client,
}

/// What a test needs from an HTTP reply: its status and its JSON body (`Null` when there is none).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
}

impl Deployment {
    /// `instances` servers on the Redis at `durable_url`, short-lived data on `ephemeral_url` when given.
    pub fn start(instances: usize, durable_url: &str, ephemeral_url: Option<&str>) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut env = vec![
            ("COBOT_REDIS_URL".to_owned(), durable_url.to_owned()),
            ("COBOT_SIGNING_KEY".to_owned(), SHARED_SIGNING_KEY.to_owned()),
        ];
        if let Some(url) = ephemeral_url {
            env.push(("COBOT_REDIS_EPHEMERAL_URL".to_owned(), url.to_owned()));
        }
        let mut deployment = Self {
            dir,
            env,
            servers: Vec::new(),
            project: String::new(),
            site: SiteCreds {
                sitekey: String::new(),
                secret: String::new(),
            },
            client: reqwest::Client::new(),
        };
        let imported = deployment.cli(&[
            "project",
            "import",
            bulk_project_fixture().to_str().expect("utf-8 path"),
        ]);
        let project = imported.trim();
        let site = deployment.cli(&["site", "create", "--hostname", HOSTNAME, "--project", project]);
        project.clone_into(&mut deployment.project);
        deployment.site = serde_json::from_str(site.trim()).expect("site create prints JSON");
        deployment.servers = (0..instances)
            .map(|n| std::sync::Mutex::new(deployment.spawn_instance(n)))
            .collect();
        deployment
    }

    fn env(&self) -> Vec<(&str, &str)> {
        self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
    }

    /// Server number `n`, in its own data directory (which holds only its log: the data is in Redis).
    fn spawn_instance(&self, n: usize) -> ServerProcess {
        let data = self.dir.path().join(format!("instance-{n}"));
        std::fs::create_dir_all(&data).expect("instance dir");
        ServerProcess::start(&data, &self.env())
    }

    fn server(&self, n: usize) -> std::sync::MutexGuard<'_, ServerProcess> {
        self.servers[n]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// SIGKILL of server number `n`, like a crash.
    pub fn kill_instance(&self, n: usize) {
        self.server(n).kill();
    }

    /// Starts server number `n` again (on another port) after a kill.
    pub fn restart_instance(&self, n: usize) {
        let server = self.spawn_instance(n);
        *self.server(n) = server;
    }

    /// The server's log so far, for failure messages.
    pub fn log(&self, n: usize) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("instance-{n}/server.log"))).unwrap_or_default()
    }

    /// Runs an owner command against the deployment's store, as an operator would.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new(server_binary())
            .args(args)
            .env("COBOT_DATA_DIR", self.dir.path())
            .envs(self.env())
            .env("RUST_LOG", "warn")
            .output()
            .expect("cobot-server runs");
        assert!(
            out.status.success(),
            "cobot-server {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8 output")
    }

    /// The project's contributions, exported with the owner command.
    pub fn contributions(&self) -> Vec<Value> {
        self.cli(&[
            "project",
            "export",
            &self.project,
            "--what",
            "contributions",
            "--format",
            "jsonl",
        ])
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
    }

    pub fn url(&self, instance: usize, path: &str) -> String {
        format!("{}{path}", self.server(instance).base)
    }

    /// Sends a request; `None` when no reply came back (the server is down).
    async fn send(&self, request: reqwest::RequestBuilder) -> Option<Reply> {
        let resp = request.send().await.ok()?;
        let status = resp.status().as_u16();
        let body = resp.json().await.unwrap_or(Value::Null);
        Some(Reply { status, body })
    }

    pub async fn get(&self, instance: usize, path: &str) -> Option<Reply> {
        self.send(self.client.get(self.url(instance, path))).await
    }

    pub async fn post_challenge(&self, instance: usize) -> Option<Reply> {
        let body = json!({"sitekey": self.site.sitekey, "lang": "fr"});
        self.send(
            self.client
                .post(self.url(instance, "/api/v1/challenge"))
                .header("Origin", ORIGIN)
                .json(&body),
        )
        .await
    }

    pub async fn post_answer(&self, instance: usize, challenge_id: &str) -> Option<Reply> {
        let body = json!({ "answers": [CONTROL_LABEL, CONTROL_LABEL] });
        self.send(
            self.client
                .post(self.url(instance, &format!("/api/v1/challenge/{challenge_id}/answer")))
                .header("Origin", ORIGIN)
                .json(&body),
        )
        .await
    }

    pub async fn siteverify(&self, instance: usize, token: &str) -> Option<Reply> {
        self.send(
            self.client
                .post(self.url(instance, "/siteverify"))
                .form(&[("secret", self.site.secret.as_str()), ("response", token)]),
        )
        .await
    }

    /// Passes a check as a citizen would: the challenge from one instance, the answer at another.
    pub async fn pass_check(&self, challenge_at: usize, answer_at: usize) -> String {
        let challenge = self.post_challenge(challenge_at).await.expect("a reply");
        assert_eq!(challenge.status, 200, "{:?}", challenge.body);
        let id = challenge.body["challenge_id"].as_str().expect("a challenge id");
        let answer = self.post_answer(answer_at, id).await.expect("a reply");
        assert_eq!(answer.status, 200, "{:?}", answer.body);
        assert_eq!(answer.body["success"], true, "{:?}", answer.body);
        answer.body["token"].as_str().expect("a token").to_owned()
    }
}
