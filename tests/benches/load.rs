//! Load benchmark: the full human check round and `siteverify` alone, against the embedded store and against
//! Redis, with a bare actix-web hello-world in the same run as the ceiling. Prints req/s, p50/p99 latency and
//! the ratio to the ceiling.
//!
//! `cargo bench -p tests --bench load` (release build). Everything runs on this machine, on loopback: the
//! release `cobot-server`, a `redis-server` it starts itself (AOF, `appendfsync always`), and the load
//! generator, a small HTTP/1.1 keep-alive client. So the figures include the generator's own CPU use, as the
//! ceiling does. `COBOT_BENCH_SECS` sets the length of each run (default 5).

use std::fmt::Write as _;
use std::io::{BufRead as _, BufReader, Write as _};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

const ORIGIN: &str = "http://demo.localhost:8081";
const HOSTNAME: &str = "demo.localhost";
/// Every control of the benchmark project is `flat`, so the generator knows the right answer.
const CONTROL_LABEL: &str = "flat";
/// Concurrent connections for the maximum-load runs.
const CONNECTIONS: usize = 32;
const SIGNING_KEY: &str = "ab1f0d6e2a4c4e8f9a0b1c2d3e4f5061728394a5b6c7d8e9f001122334455667";
/// Env var that turns this binary into the hello-world ceiling server.
const HELLO_ENV: &str = "COBOT_BENCH_HELLO";

type BenchResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn main() -> BenchResult<()> {
    if std::env::var_os(HELLO_ENV).is_some() {
        return hello_world_server();
    }
    let secs = std::env::var("COBOT_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(run(Duration::from_secs(secs)))
}

/// The ceiling: the smallest actix-web app, in its own process like `cobot-server`, with the same defaults.
#[actix_web::main]
async fn hello_world_server() -> BenchResult<()> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let server = actix_web::HttpServer::new(|| {
        actix_web::App::new().route(
            "/",
            actix_web::web::get().to(|| async { actix_web::HttpResponse::Ok().body("Hello world!") }),
        )
    })
    .listen(listener)?
    .run();
    let mut out = std::io::stdout().lock();
    writeln!(out, "listening on http://127.0.0.1:{port}")?;
    out.flush()?;
    drop(out);
    server.await?;
    Ok(())
}

/// A child process killed when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a process that prints `... listening on http://127.0.0.1:<port>` on its first line; returns its port.
fn spawn_listening(mut cmd: Command) -> BenchResult<(Process, u16)> {
    let mut child = cmd.stdout(Stdio::piped()).spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let port = line
        .trim()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| format!("unexpected first line: {line:?}"))?;
    Ok((Process(child), port))
}

fn free_port() -> BenchResult<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A durable Redis as the docs prescribe (AOF with `appendfsync always`, `noeviction`), or a short-lived one
/// (no persistence, capped, evicting the soonest-expiring keys).
fn start_redis(dir: &Path, durable: bool) -> BenchResult<(Process, u16)> {
    let port = free_port()?;
    let settings: &[&str] = if durable {
        &[
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--maxmemory-policy",
            "noeviction",
        ]
    } else {
        &[
            "--appendonly",
            "no",
            "--maxmemory",
            "512mb",
            "--maxmemory-policy",
            "volatile-ttl",
        ]
    };
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--dir"])
        .arg(dir)
        .args(settings)
        .args(["--save", "", "--daemonize", "no"])
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| format!("redis-server is needed (apt-get install redis-server): {e}"))?;
    let process = Process(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return Err("redis-server did not start".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok((process, port))
}

/// Builds the release `cobot-server` next to this benchmark and returns its path.
fn server_binary() -> BenchResult<PathBuf> {
    let exe = std::env::current_exe()?;
    // target/release/deps/load-<hash> -> target/release
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or("no target dir")?
        .to_path_buf();
    let target_dir = profile_dir.parent().ok_or("no target dir")?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "build",
            "--quiet",
            "--release",
            "-p",
            "server",
            "--bin",
            "cobot-server",
            "--target-dir",
        ])
        .arg(target_dir)
        .status()?;
    if !status.success() {
        return Err("cargo build of cobot-server failed".into());
    }
    Ok(profile_dir.join("cobot-server"))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Backend {
    Embedded,
    /// One Redis for everything: every challenge and token write is fsynced too.
    RedisOneUrl,
    /// The recommended deployment: durable data on an `appendfsync always` Redis, short-lived data on one
    /// without persistence.
    RedisTwoUrls,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::Embedded => "embedded",
            Backend::RedisOneUrl => "redis, 1 URL",
            Backend::RedisTwoUrls => "redis, 2 URLs",
        }
    }
}

/// A seeded store (one project of 25 `flat` controls and 200 unknowns, one site) and a server on it.
struct Target {
    _server: Process,
    _redis: Vec<Process>,
    port: u16,
    sitekey: String,
    secret: String,
}

fn start_target(backend: Backend, binary: &Path, project_dir: &Path, work: &Path) -> BenchResult<Target> {
    let name = backend.name();
    let data = work.join(name.replace([' ', ','], "-"));
    std::fs::create_dir_all(&data)?;
    let mut redis_processes = Vec::new();
    let mut env = Vec::new();
    if backend != Backend::Embedded {
        let (process, port) = start_redis(&data, true)?;
        redis_processes.push(process);
        env.push(("COBOT_REDIS_URL", format!("redis://127.0.0.1:{port}")));
    }
    if backend == Backend::RedisTwoUrls {
        let ephemeral = data.join("ephemeral");
        std::fs::create_dir_all(&ephemeral)?;
        let (process, port) = start_redis(&ephemeral, false)?;
        redis_processes.push(process);
        env.push(("COBOT_REDIS_EPHEMERAL_URL", format!("redis://127.0.0.1:{port}")));
    }
    env.push(("COBOT_DATA_DIR", data.display().to_string()));
    env.push(("COBOT_SIGNING_KEY", SIGNING_KEY.to_owned()));
    env.push(("RUST_LOG", "warn".to_owned()));
    let cli = |args: &[&str]| -> BenchResult<String> {
        let out = Command::new(binary)
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .output()?;
        if !out.status.success() {
            return Err(format!("{args:?}: {}", String::from_utf8_lossy(&out.stderr)).into());
        }
        Ok(String::from_utf8(out.stdout)?)
    };
    let project_path = project_dir.to_str().ok_or("non-utf-8 path")?;
    let project = cli(&["project", "import", project_path])?;
    let site: Value = serde_json::from_str(
        cli(&[
            "site",
            "create",
            "--hostname",
            HOSTNAME,
            "--project",
            project.trim(),
        ])?
        .trim(),
    )?;
    let mut cmd = Command::new(binary);
    cmd.envs(env.iter().map(|(k, v)| (k, v)))
        .env("COBOT_LISTEN", "127.0.0.1:0")
        .stderr(std::fs::File::create(data.join("server.log"))?);
    let (server, port) = spawn_listening(cmd).map_err(|e| {
        let log = std::fs::read_to_string(data.join("server.log")).unwrap_or_default();
        format!("cobot-server did not start ({e}): {log}")
    })?;
    Ok(Target {
        _server: server,
        _redis: redis_processes,
        port,
        sitekey: site["sitekey"].as_str().ok_or("no sitekey")?.to_owned(),
        secret: site["secret"].as_str().ok_or("no secret")?.to_owned(),
    })
}

/// One keep-alive HTTP/1.1 connection. Small on purpose: the generator shares the CPUs with the servers.
struct Conn {
    stream: tokio::io::BufReader<TcpStream>,
    port: u16,
}

impl Conn {
    async fn open(port: u16) -> BenchResult<Self> {
        let stream = TcpStream::connect(("127.0.0.1", port)).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream: tokio::io::BufReader::new(stream),
            port,
        })
    }

    /// Sends a request and returns the status and body.
    async fn request(
        &mut self,
        method: &str,
        path: &str,
        json_body: Option<&Value>,
    ) -> BenchResult<(u16, Vec<u8>)> {
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nOrigin: {ORIGIN}\r\n",
            self.port
        );
        let body = json_body.map(serde_json::to_vec).transpose()?.unwrap_or_default();
        if json_body.is_some() {
            write!(
                head,
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                body.len()
            )?;
        }
        head.push_str("\r\n");
        let stream = self.stream.get_mut();
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(&body).await?;

        let mut line = String::new();
        self.stream.read_line(&mut line).await?;
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad status line {line:?}"))?;
        let mut length = 0;
        loop {
            line.clear();
            self.stream.read_line(&mut line).await?;
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse()?;
            }
        }
        let mut body = vec![0; length];
        self.stream.read_exact(&mut body).await?;
        Ok((status, body))
    }

    async fn json(&mut self, method: &str, path: &str, body: Option<&Value>) -> BenchResult<Value> {
        let (status, bytes) = self.request(method, path, body).await?;
        if status != 200 {
            return Err(format!("{method} {path}: {status} {}", String::from_utf8_lossy(&bytes)).into());
        }
        Ok(serde_json::from_slice(&bytes)?)
    }
}

/// Passes a check (challenge, optionally both images, answer) and returns the token.
async fn pass_check(conn: &mut Conn, target: &Target, images: bool) -> BenchResult<String> {
    let challenge = conn
        .json(
            "POST",
            "/api/v1/challenge",
            Some(&json!({"sitekey": target.sitekey, "lang": "fr"})),
        )
        .await?;
    let id = challenge["challenge_id"]
        .as_str()
        .ok_or("no challenge id")?
        .to_owned();
    if images {
        for n in 0..2 {
            let (status, bytes) = conn
                .request("GET", &format!("/api/v1/challenge/{id}/image/{n}"), None)
                .await?;
            if status != 200 || bytes.is_empty() {
                return Err(format!("image {n}: {status}").into());
            }
        }
    }
    let answer = conn
        .json(
            "POST",
            &format!("/api/v1/challenge/{id}/answer"),
            Some(&json!({"answers": [CONTROL_LABEL, CONTROL_LABEL]})),
        )
        .await?;
    Ok(answer["token"].as_str().ok_or("no token")?.to_owned())
}

async fn siteverify(conn: &mut Conn, target: &Target, token: &str) -> BenchResult<()> {
    let reply = conn
        .json(
            "POST",
            "/siteverify",
            Some(&json!({"secret": target.secret, "response": token})),
        )
        .await?;
    if reply["success"] != true {
        return Err(format!("siteverify refused: {reply}").into());
    }
    Ok(())
}

#[derive(Clone, Copy)]
enum Workload {
    Hello,
    FullRound,
    Siteverify,
}

/// The outcome of one run.
struct Measure {
    ops: usize,
    requests_per_op: usize,
    elapsed: Duration,
    p50: Duration,
    p99: Duration,
    errors: usize,
}

impl Measure {
    fn ops_per_sec(&self) -> f64 {
        usize_f64(self.ops) / self.elapsed.as_secs_f64()
    }
    fn requests_per_sec(&self) -> f64 {
        self.ops_per_sec() * usize_f64(self.requests_per_op)
    }
}

#[allow(clippy::cast_precision_loss)] // counts far below 2^52
fn usize_f64(n: usize) -> f64 {
    n as f64
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // an index within the slice
    let i = ((usize_f64(sorted.len() - 1)) * p).round() as usize;
    sorted[i]
}

/// Runs `workload` on `connections` connections for `duration`. With `rate` (ops/s in total), each connection
/// paces itself and latency counts from the scheduled start (no coordinated omission); without, it runs flat
/// out. Siteverify draws its tokens from `tokens` and stops early when they run out.
async fn measure(
    port: u16,
    target: Option<Arc<Target>>,
    workload: Workload,
    connections: usize,
    duration: Duration,
    rate: Option<f64>,
    tokens: Arc<std::sync::Mutex<Vec<String>>>,
) -> BenchResult<Measure> {
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (target, stop, errors, tokens) = (
            target.clone(),
            Arc::clone(&stop),
            Arc::clone(&errors),
            Arc::clone(&tokens),
        );
        let interval = rate.map(|r| Duration::from_secs_f64(usize_f64(connections) / r));
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut last_done = None;
            let Ok(mut conn) = Conn::open(port).await else {
                errors.fetch_add(1, Ordering::Relaxed);
                return (latencies, last_done);
            };
            // Spread the paced connections over one interval.
            let mut next = Instant::now() + interval.map_or(Duration::ZERO, |i| i.mul_f64(rand_fraction()));
            while !stop.load(Ordering::Relaxed) {
                if interval.is_some() {
                    tokio::time::sleep_until(next.into()).await;
                }
                let began = if interval.is_some() { next } else { Instant::now() };
                let outcome = match workload {
                    Workload::Hello => conn.request("GET", "/", None).await.map(|_| ()),
                    Workload::FullRound => match target.as_deref() {
                        Some(t) => match pass_check(&mut conn, t, true).await {
                            Ok(token) => siteverify(&mut conn, t, &token).await,
                            Err(e) => Err(e),
                        },
                        None => Err("no target".into()),
                    },
                    Workload::Siteverify => {
                        let token = tokens
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .pop();
                        let (Some(token), Some(t)) = (token, target.as_deref()) else {
                            stop.store(true, Ordering::Relaxed);
                            break;
                        };
                        siteverify(&mut conn, t, &token).await
                    }
                };
                if outcome.is_err() {
                    errors.fetch_add(1, Ordering::Relaxed);
                    if let Ok(fresh) = Conn::open(port).await {
                        conn = fresh;
                    }
                } else {
                    latencies.push(began.elapsed());
                    last_done = Some(Instant::now());
                }
                if let Some(interval) = interval {
                    next += interval;
                }
            }
            (latencies, last_done)
        }));
    }
    // A siteverify run ends early when its tokens run out.
    while start.elapsed() < duration && !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    let mut end = start;
    for task in tasks {
        let (done, last) = task.await?;
        latencies.extend(done);
        end = end.max(last.unwrap_or(start));
    }
    let elapsed = end.duration_since(start).max(Duration::from_millis(1));
    latencies.sort_unstable();
    Ok(Measure {
        ops: latencies.len(),
        requests_per_op: match workload {
            Workload::FullRound => 5,
            Workload::Hello | Workload::Siteverify => 1,
        },
        elapsed,
        p50: percentile(&latencies, 0.50),
        p99: percentile(&latencies, 0.99),
        errors: errors.load(Ordering::Relaxed),
    })
}

fn rand_fraction() -> f64 {
    use std::hash::{BuildHasher as _, Hasher as _};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u8(0);
    usize_f64(usize::try_from(h.finish() % 1000).unwrap_or(0)) / 1000.0
}

/// Mints tokens (challenge + answer, no images) on `CONNECTIONS` connections for at most `limit`.
async fn mint_tokens(target: Arc<Target>, count: usize, limit: Duration) -> BenchResult<Vec<String>> {
    let deadline = Instant::now() + limit;
    let per_conn = count.div_ceil(CONNECTIONS);
    let mut tasks = Vec::new();
    for _ in 0..CONNECTIONS {
        let target = Arc::clone(&target);
        tasks.push(tokio::spawn(async move {
            let mut tokens = Vec::with_capacity(per_conn);
            let Ok(mut conn) = Conn::open(target.port).await else {
                return tokens;
            };
            while tokens.len() < per_conn && Instant::now() < deadline {
                if let Ok(token) = pass_check(&mut conn, &target, false).await {
                    tokens.push(token);
                }
            }
            tokens
        }));
    }
    let mut tokens = Vec::new();
    for task in tasks {
        tokens.extend(task.await?);
    }
    Ok(tokens)
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

fn row(out: &mut impl std::io::Write, what: &str, m: &Measure, ceiling: f64) -> std::io::Result<()> {
    writeln!(
        out,
        "| {what} | {:.0} | {:.0} | {} | {} | {:.2} | {} |",
        m.ops_per_sec(),
        m.requests_per_sec(),
        ms(m.p50),
        ms(m.p99),
        m.requests_per_sec() / ceiling,
        m.errors
    )?;
    out.flush()
}

async fn run(duration: Duration) -> BenchResult<()> {
    let binary = server_binary()?;
    let work = tempfile::tempdir()?;
    let project_dir = work.path().join("project");
    let spec = demo_data::ProjectSpec {
        seed: 11,
        gold_per_class: 25,
        gold_classes: vec![demo_data::RoofClass::Flat],
        unknown: 200,
        ..demo_data::ProjectSpec::default()
    };
    demo_data::write_project(&project_dir, &spec)?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{} CPUs, {} connections, {} s per run\n",
        std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
        CONNECTIONS,
        duration.as_secs()
    )?;
    writeln!(
        out,
        "| run | ops/s | req/s | p50 ms | p99 ms | req/s ÷ ceiling | errors |"
    )?;
    writeln!(out, "|---|---|---|---|---|---|---|")?;

    let mut hello_cmd = Command::new(std::env::current_exe()?);
    hello_cmd.env(HELLO_ENV, "1");
    let (hello, hello_port) = spawn_listening(hello_cmd)?;
    let no_tokens = Arc::new(std::sync::Mutex::new(Vec::new()));
    let ceiling = measure(
        hello_port,
        None,
        Workload::Hello,
        CONNECTIONS,
        duration,
        None,
        Arc::clone(&no_tokens),
    )
    .await?;
    drop(hello);
    let ceiling_rps = ceiling.requests_per_sec();
    row(&mut out, "hello-world (ceiling)", &ceiling, ceiling_rps)?;

    for backend in [Backend::Embedded, Backend::RedisOneUrl, Backend::RedisTwoUrls] {
        let target = Arc::new(start_target(backend, &binary, &project_dir, work.path())?);
        bench_backend(&mut out, backend.name(), &target, duration, ceiling_rps).await?;
    }
    Ok(())
}

/// The full round and siteverify alone, each flat out then at half that rate, on one backend.
async fn bench_backend(
    out: &mut impl std::io::Write,
    name: &str,
    target: &Arc<Target>,
    duration: Duration,
    ceiling_rps: f64,
) -> BenchResult<()> {
    let no_tokens = Arc::new(std::sync::Mutex::new(Vec::new()));
    let port = target.port;

    let full = measure(
        port,
        Some(Arc::clone(target)),
        Workload::FullRound,
        CONNECTIONS,
        duration,
        None,
        Arc::clone(&no_tokens),
    )
    .await?;
    row(out, &format!("{name}: full round, max"), &full, ceiling_rps)?;
    let half_rate = full.ops_per_sec() / 2.0;
    let half = measure(
        port,
        Some(Arc::clone(target)),
        Workload::FullRound,
        CONNECTIONS,
        duration,
        Some(half_rate),
        Arc::clone(&no_tokens),
    )
    .await?;
    row(
        out,
        &format!("{name}: full round at {half_rate:.0}/s (half)"),
        &half,
        ceiling_rps,
    )?;

    // Siteverify alone needs fresh tokens: mint them first (as many as the run can use, bounded in time).
    let wanted = 60_000;
    let minted = mint_tokens(Arc::clone(target), wanted, duration * 3).await?;
    let minted_count = minted.len();
    let pool = Arc::new(std::sync::Mutex::new(minted));
    let verify = measure(
        port,
        Some(Arc::clone(target)),
        Workload::Siteverify,
        CONNECTIONS,
        duration,
        None,
        Arc::clone(&pool),
    )
    .await?;
    row(
        out,
        &format!("{name}: siteverify, max ({minted_count} tokens)"),
        &verify,
        ceiling_rps,
    )?;
    // The half-load run gets its own fresh tokens (the maximum run may have used them all).
    let half_rate = verify.ops_per_sec() / 2.0;
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // a positive count
    let wanted = (half_rate * duration.as_secs_f64()) as usize;
    let minted = mint_tokens(Arc::clone(target), wanted, duration * 3).await?;
    let minted_count = minted.len();
    *pool.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = minted;
    let half = measure(
        port,
        Some(Arc::clone(target)),
        Workload::Siteverify,
        CONNECTIONS,
        duration,
        Some(half_rate),
        Arc::clone(&pool),
    )
    .await?;
    row(
        out,
        &format!("{name}: siteverify at {half_rate:.0}/s (half, {minted_count} tokens)"),
        &half,
        ceiling_rps,
    )?;
    Ok(())
}
