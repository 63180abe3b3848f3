//! The Redis store: many server instances share one state.
//!
//! Durable data (projects, images, sites, contributions) goes to the *durable* Redis, which must run with AOF
//! `appendfsync always` and `noeviction`: Redis then fsyncs a write before it replies, so a contribution is on
//! disk when `add_contribution` returns. Short-lived data (challenges, tokens) goes to the *ephemeral* Redis,
//! which may be a second, capped and evicting instance, or the same one. Losing short-lived data is safe: a
//! lost challenge is asked again, a lost token can no longer be redeemed (never redeemed twice).
//!
//! Keys are designed for Redis Cluster: every operation that touches several keys names them with one hash
//! tag (`{p<project>}`), so it runs on one node, atomically. A URL list (comma-separated) names the seed nodes
//! of a cluster; a single URL names a single Redis.
//!
//! The connections live on a small runtime owned by the store, so that their background tasks (reading
//! replies, reconnecting after an outage) run whatever runtime the caller is on. Every call is bounded by
//! [`CALL_TIMEOUT`]: during an outage the store fails fast with [`StoreError::Unavailable`] rather than hang,
//! and it reconnects by itself when Redis is back.

use std::future::Future;
use std::time::Duration;

use rand::seq::SliceRandom as _;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClient, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, FromRedisValue, Pipeline, RedisError, RedisFuture, RedisResult, Script, Value};
use serde::{Deserialize, Serialize};

use super::{IDEMPOTENCY_SECS, ImageData, Store, StoreError, StoredContribution};
use crate::model::{
    AddedImage, ApiKeyRecord, BatchRun, ChallengeState, Contribution, ControlStats, ImageId, ImageMeta,
    NewImage, NewProject, Owner, Project, ProjectId, Serving, Site, Slot, TokenState, UnixTime, now,
};
use protocol::{LabelId, SiteKey};

/// The longest a store call may take before the request is answered `503`.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// Bounds inside the client, shorter than [`CALL_TIMEOUT`] so that a dead connection is noticed and replaced.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
const RESPONSE_TIMEOUT: Duration = Duration::from_millis(1500);
/// How many images of a project import are written at the same time (Redis groups their fsyncs).
const IMPORT_CONCURRENCY: usize = 32;
/// Contributions are read back in pages, so that an export does not ask Redis for one huge reply.
const READ_PAGE: isize = 1000;

/// Appends a contribution and gives it the project's next sequence number, in one atomic step.
///
/// KEYS[1] is the project's counter, KEYS[2] its contribution log, KEYS[3] the image's votes (its consensus
/// state, appended in the same step as the vote), KEYS[4] the marker of this challenge's contribution for this
/// image; all carry the project's hash tag, so the script runs on one cluster node. ARGV[1] is the contribution
/// (JSON), ARGV[2] its label, ARGV[3] how long the marker is kept. The cluster client resends a command whose
/// connection broke; the marker makes the resent script return the first sequence number and store nothing.
const ADD_CONTRIBUTION: &str = r#"
local done = redis.call('GET', KEYS[4])
if done then return tonumber(done) end
local seq = redis.call('INCR', KEYS[1])
redis.call('RPUSH', KEYS[2], '{"seq":' .. seq .. ',"contribution":' .. ARGV[1] .. '}')
redis.call('RPUSH', KEYS[3], ARGV[2])
redis.call('SET', KEYS[4], seq, 'EX', ARGV[3])
return seq
"#;

/// A connection to a single Redis or to a cluster. Both reconnect by themselves.
#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// Connects lazily: the store opens even while Redis is down, and is simply not ready until it is up.
fn connect(urls: &str) -> Result<Conn, StoreError> {
    let nodes: Vec<&str> = urls.split(',').map(str::trim).filter(|u| !u.is_empty()).collect();
    match nodes.as_slice() {
        [] => Err(StoreError::Unavailable("no Redis URL given".into())),
        [url] => {
            let client = redis::Client::open(*url).map_err(|e| bad_url(&e))?;
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(CONNECT_TIMEOUT))
                .set_response_timeout(Some(RESPONSE_TIMEOUT))
                .set_number_of_retries(2)
                .set_max_delay(Duration::from_millis(200));
            ConnectionManager::new_lazy_with_config(client, config)
                .map(Conn::Single)
                .map_err(|e| bad_url(&e))
        }
        seeds => {
            let client = ClusterClient::builder(seeds.iter().copied())
                .connection_timeout(CONNECT_TIMEOUT)
                .response_timeout(RESPONSE_TIMEOUT)
                .build()
                .map_err(|e| bad_url(&e))?;
            let config = ClusterConfig::new()
                .set_connection_timeout(CONNECT_TIMEOUT)
                .set_response_timeout(RESPONSE_TIMEOUT);
            Ok(Conn::Cluster(
                client.get_pending_async_connection_with_config(config),
            ))
        }
    }
}

/// A connection that broke (Redis restarted, a network blip) fails the one request that finds it broken while
/// the client reconnects. A command that may safely run twice is sent once more, so that a restart of Redis
/// costs no failed request. `GETDEL` qualifies: if the first attempt took the record and its reply was lost,
/// the second finds nothing, which refuses the token or challenge (never accepts it twice).
async fn idempotent<T: FromRedisValue>(conn: &mut Conn, cmd: &Cmd) -> RedisResult<T> {
    match cmd.query_async(conn).await {
        Err(e) if e.is_connection_dropped() || e.is_io_error() => cmd.query_async(conn).await,
        other => other,
    }
}

/// [`idempotent`] for a pipeline of reads.
async fn idempotent_pipe<T: FromRedisValue>(conn: &mut Conn, pipe: &Pipeline) -> RedisResult<T> {
    match pipe.query_async(conn).await {
        Err(e) if e.is_connection_dropped() || e.is_io_error() => pipe.query_async(conn).await,
        other => other,
    }
}

fn bad_url(e: &RedisError) -> StoreError {
    // The error may quote the URL, which may hold a password: keep only its kind.
    StoreError::Unavailable(format!("invalid Redis URL ({:?})", e.kind()))
}

/// The runtime the connections' background tasks live on. Shut down without blocking, so that the store may
/// be dropped from inside another runtime.
struct IoRuntime(Option<tokio::runtime::Runtime>);

impl Drop for IoRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

pub struct RedisStore {
    durable: Conn,
    ephemeral: Conn,
    handle: tokio::runtime::Handle,
    add_contribution: Script,
    /// Boxed: the caches would make the store, and so every `AnyStore`, several times larger.
    caches: Box<Caches>,
    _runtime: IoRuntime,
}

/// Copies of immutable records, kept by each server instance.
struct Caches {
    projects: ImmutableCache<ProjectId, Project>,
    sites: ImmutableCache<String, Site>,
    image_bytes: ImageCache,
}

/// How long a server instance trusts its copy of a project or site record.
const CACHE_TTL: Duration = Duration::from_secs(60);
const CACHE_CAPACITY: usize = 10_000;

/// Copies of records that are never changed once written (projects, sites: the `Store` has no update for
/// them), so that every challenge does not ask Redis for them again. Only records found are kept: a record
/// created by another instance is seen at once. The TTL bounds staleness should records ever become mutable.
struct ImmutableCache<K, V> {
    entries: std::sync::RwLock<std::collections::HashMap<K, (std::time::Instant, V)>>,
}

impl<K: std::hash::Hash + Eq, V: Clone> ImmutableCache<K, V> {
    fn new() -> Self {
        Self {
            entries: std::sync::RwLock::new(std::collections::HashMap::new()),
        }
    }

    fn get(&self, key: &K) -> Option<V> {
        let entries = self
            .entries
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        entries
            .get(key)
            .filter(|(at, _)| at.elapsed() < CACHE_TTL)
            .map(|(_, v)| v.clone())
    }

    fn put(&self, key: K, value: V) {
        let mut entries = self
            .entries
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if entries.len() >= CACHE_CAPACITY {
            // Rare (more live projects and sites than the capacity): start over rather than track usage.
            entries.clear();
        }
        entries.insert(key, (std::time::Instant::now(), value));
    }
}

/// Bytes of served images, which never change once imported: each challenge serves two, and fetching them
/// from Redis every time would move every image through Redis and the network. Bounded in bytes.
struct ImageCache {
    entries: std::sync::RwLock<(std::collections::HashMap<ImageId, ImageData>, usize)>,
}

const IMAGE_CACHE_BYTES: usize = 64 * 1024 * 1024;

impl ImageCache {
    fn get(&self, id: ImageId) -> Option<ImageData> {
        let entries = self
            .entries
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        entries.0.get(&id).cloned()
    }

    fn put(&self, id: ImageId, data: ImageData) {
        let mut entries = self
            .entries
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let size = data.bytes.len();
        if size > IMAGE_CACHE_BYTES / 16 {
            return;
        }
        if entries.1 + size > IMAGE_CACHE_BYTES {
            // Start over rather than track usage: projects serve a rotating working set anyway.
            entries.0.clear();
            entries.1 = 0;
        }
        entries.1 += size;
        entries.0.insert(id, data);
    }
}

fn unavailable(e: &RedisError) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

/// Redis refuses writes with `OOM` when a `noeviction` instance reaches `maxmemory`: the store is full rather
/// than down, and says so.
fn write_error(what: &'static str) -> impl Fn(RedisError) -> StoreError {
    move |e| {
        if e.code() == Some("OOM") {
            StoreError::Full(what)
        } else {
            unavailable(&e)
        }
    }
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Unavailable(format!("corrupt record: {e}")))
}

fn encode<T: Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Unavailable(e.to_string()))
}

/// Key names. Everything of one project shares the hash tag `{p<id>}`; single-key records need no tag.
mod key {
    use crate::model::{ImageId, ProjectId};

    pub const NEXT_PROJECT: &str = "cobot:next-project";
    pub const NEXT_IMAGE: &str = "cobot:next-image";

    pub fn project(p: ProjectId) -> String {
        format!("cobot:{{p{p}}}:project")
    }
    /// Hash: image id -> image metadata (JSON).
    pub fn images(p: ProjectId) -> String {
        format!("cobot:{{p{p}}}:images")
    }
    /// Set of `<image id>:<label>`: the images a challenge may use as its control.
    pub fn controls(p: ProjectId) -> String {
        format!("cobot:{{p{p}}}:controls")
    }
    /// Set of image ids whose label is not known yet.
    pub fn unknowns(p: ProjectId) -> String {
        format!("cobot:{{p{p}}}:unknowns")
    }
    pub fn next_contribution(p: ProjectId) -> String {
        format!("cobot:{{p{p}}}:next-contribution")
    }
    /// List of `{"seq": n, "contribution": {...}}`, in acknowledgement order.
    pub fn contributions(p: ProjectId) -> String {
        format!("cobot:{{p{p}}}:contributions")
    }
    /// Marker of the contribution a challenge gave for an image (its sequence number), kept for an hour.
    pub fn contributed(p: ProjectId, challenge: &str, i: ImageId) -> String {
        format!("cobot:{{p{p}}}:contributed:{challenge}:{}", i.0)
    }
    /// List of the labels voted for an unknown image, in acknowledgement order.
    pub fn votes(p: ProjectId, i: ImageId) -> String {
        format!("cobot:{{p{p}}}:votes:{}", i.0)
    }
    /// Hash with the fields `content_type` and `bytes`.
    pub fn image_data(i: ImageId) -> String {
        format!("cobot:image:{}", i.0)
    }
    pub fn site(sitekey: &str) -> String {
        format!("cobot:site:{sitekey}")
    }
    pub fn site_secret(hash: &str) -> String {
        format!("cobot:site-secret:{hash}")
    }
    /// List of the project's batch runs (JSON), the latest first, trimmed to `BATCH_RUNS_KEPT`.
    pub fn batch_runs(p: ProjectId) -> String {
        format!("cobot:{{p{p}}}:batch-runs")
    }
    pub fn challenge(id: &str) -> String {
        format!("cobot:challenge:{id}")
    }
    pub fn token(id: &str) -> String {
        format!("cobot:token:{id}")
    }
}

/// A contribution as kept in the log.
#[derive(Serialize, Deserialize)]
struct LogRecord {
    seq: u64,
    contribution: Contribution,
}

/// Seconds left before `expires_at`, `None` when it is already past (the record would never be visible).
fn ttl(expires_at: UnixTime) -> Option<u64> {
    let t = now();
    (expires_at > t).then(|| expires_at - t)
}

impl RedisStore {
    /// Opens the store on `durable_urls`, with short-lived data on `ephemeral_urls` when given (else on the
    /// durable Redis too). Each is a URL (`redis://host:port/db`) or a comma-separated list of cluster seed
    /// nodes. Nothing is connected yet: connections are made on first use and remade after failures.
    pub fn open(durable_urls: &str, ephemeral_urls: Option<&str>) -> Result<Self, StoreError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("cobot-redis")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Unavailable(format!("cannot start the Redis runtime: {e}")))?;
        let handle = runtime.handle().clone();
        let (durable, ephemeral) = {
            // The connections spawn their tasks on the runtime current when they are made.
            let _entered = handle.enter();
            let durable = connect(durable_urls)?;
            let ephemeral = match ephemeral_urls {
                Some(urls) => connect(urls)?,
                None => durable.clone(),
            };
            (durable, ephemeral)
        };
        Ok(Self {
            durable,
            ephemeral,
            handle,
            add_contribution: Script::new(ADD_CONTRIBUTION),
            caches: Box::new(Caches {
                projects: ImmutableCache::new(),
                sites: ImmutableCache::new(),
                image_bytes: ImageCache {
                    entries: std::sync::RwLock::new((std::collections::HashMap::new(), 0)),
                },
            }),
            _runtime: IoRuntime(Some(runtime)),
        })
    }

    /// Runs one store operation on the store's runtime, bounded by [`CALL_TIMEOUT`].
    async fn run<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        let mut task = self.handle.spawn(op);
        if let Ok(joined) = tokio::time::timeout(CALL_TIMEOUT, &mut task).await {
            joined.map_err(|e| StoreError::Unavailable(format!("store task failed: {e}")))?
        } else {
            task.abort();
            Err(StoreError::Unavailable(format!(
                "Redis did not answer within {} ms",
                CALL_TIMEOUT.as_millis()
            )))
        }
    }

    /// Stores a short-lived record with its expiry.
    async fn put_expiring(
        &self,
        key: String,
        value: String,
        expires_at: UnixTime,
        what: &'static str,
    ) -> Result<(), StoreError> {
        let Some(ttl) = ttl(expires_at) else {
            return Ok(());
        };
        let mut conn = self.ephemeral.clone();
        self.run(async move {
            let set = redis::cmd("SET").arg(key).arg(value).arg("EX").arg(ttl).clone();
            idempotent::<()>(&mut conn, &set).await.map_err(write_error(what))
        })
        .await
    }

    /// Reads (or, with `GETDEL`, atomically takes) a short-lived record; expired ones are invisible.
    async fn get_expiring<T>(&self, command: &'static str, key: String) -> Result<Option<T>, StoreError>
    where
        T: serde::de::DeserializeOwned + Expiring + Send + 'static,
    {
        let mut conn = self.ephemeral.clone();
        let raw: Option<Vec<u8>> = self
            .run(async move {
                idempotent(&mut conn, redis::cmd(command).arg(key))
                    .await
                    .map_err(|e| unavailable(&e))
            })
            .await?;
        // Redis expires whole seconds lazily; the record's own expiry is the one the embedded store keeps too.
        Ok(raw
            .map(|bytes| decode::<T>(&bytes))
            .transpose()?
            .filter(|r| r.expires_at() > now()))
    }

    async fn get_json<T>(&self, key: String) -> Result<Option<T>, StoreError>
    where
        T: serde::de::DeserializeOwned + Send + 'static,
    {
        let mut conn = self.durable.clone();
        let raw: Option<Vec<u8>> = self
            .run(async move {
                idempotent(&mut conn, redis::cmd("GET").arg(key))
                    .await
                    .map_err(|e| unavailable(&e))
            })
            .await?;
        raw.map(|bytes| decode(&bytes)).transpose()
    }

    /// Answers when both Redis instances answer `PING`.
    async fn ping_both(&self) -> Result<(), StoreError> {
        for conn in [&self.durable, &self.ephemeral] {
            let mut conn = conn.clone();
            self.run(async move {
                idempotent::<()>(&mut conn, &redis::cmd("PING"))
                    .await
                    .map_err(|e| unavailable(&e))
            })
            .await?;
        }
        Ok(())
    }
}

trait Expiring {
    fn expires_at(&self) -> UnixTime;
}

impl Expiring for ChallengeState {
    fn expires_at(&self) -> UnixTime {
        self.expires_at
    }
}

impl Expiring for TokenState {
    fn expires_at(&self) -> UnixTime {
        self.expires_at
    }
}

/// Where an image goes in the serving sets: a control (with its answer), an unknown, or neither.
fn serving_member(meta: &ImageMeta, abstain: Option<&LabelId>) -> Option<(bool, String)> {
    match &meta.known_label {
        Some(label) if Some(label) != abstain => Some((true, format!("{}:{label}", meta.id.0))),
        // A gold image whose answer is "can't tell" is no use as a control, and needs no votes either.
        Some(_) => None,
        None => Some((false, meta.id.0.to_string())),
    }
}

fn parse_control(member: &str) -> Result<Slot, StoreError> {
    let corrupt = || StoreError::Unavailable(format!("corrupt control entry `{member}`"));
    let (id, label) = member.split_once(':').ok_or_else(corrupt)?;
    Ok(Slot {
        image: ImageId(id.parse().map_err(|_| corrupt())?),
        expected: Some(LabelId::parse(label.to_owned()).map_err(|_| corrupt())?),
    })
}

fn parse_unknown(member: &str) -> Result<Slot, StoreError> {
    Ok(Slot {
        image: ImageId(
            member
                .parse()
                .map_err(|_| StoreError::Unavailable(format!("corrupt unknown entry `{member}`")))?,
        ),
        expected: None,
    })
}

impl Store for RedisStore {
    async fn create_project(
        &self,
        project: NewProject,
        images: Vec<NewImage>,
    ) -> Result<Project, StoreError> {
        let mut conn = self.durable.clone();
        // An import may hold many images: its bound is the image count, not one call's timeout.
        let handle = self.handle.clone();
        let task = handle.spawn(async move {
            let failed = write_error("projects");
            let id = ProjectId(
                redis::cmd("INCR")
                    .arg(key::NEXT_PROJECT)
                    .query_async(&mut conn)
                    .await
                    .map_err(&failed)?,
            );
            let count = u64::try_from(images.len()).unwrap_or(u64::MAX);
            let last: u64 = redis::cmd("INCRBY")
                .arg(key::NEXT_IMAGE)
                .arg(count)
                .query_async(&mut conn)
                .await
                .map_err(&failed)?;
            let project = project.into_project(id);
            // The image bytes first, each under its own key (they may live on any cluster node). The project
            // becomes visible only with the last step, so a crash half-way leaves unreachable bytes, never a
            // half-made project.
            let mut metas = Vec::with_capacity(images.len());
            let mut writes = tokio::task::JoinSet::new();
            for (n, image) in (last + 1 - count..).zip(images) {
                let meta = ImageMeta {
                    id: ImageId(n),
                    project: id,
                    name: image.name,
                    content_type: image.content_type,
                    known_label: image.known_label,
                    content_hash: image.content_hash,
                };
                if writes.len() >= IMPORT_CONCURRENCY {
                    writes
                        .join_next()
                        .await
                        .transpose()
                        .map_err(|e| StoreError::Unavailable(e.to_string()))?
                        .transpose()?;
                }
                let mut conn = conn.clone();
                let write = redis::cmd("HSET")
                    .arg(key::image_data(meta.id))
                    .arg("content_type")
                    .arg(&meta.content_type)
                    .arg("bytes")
                    .arg(image.bytes)
                    .clone();
                writes.spawn(async move {
                    write
                        .query_async::<()>(&mut conn)
                        .await
                        .map_err(write_error("images"))
                });
                metas.push(meta);
            }
            while let Some(done) = writes.join_next().await {
                done.map_err(|e| StoreError::Unavailable(e.to_string()))??;
            }

            // Then the project, its image metadata and its serving sets: one slot, one transaction.
            let mut tx = redis::pipe();
            tx.atomic();
            tx.cmd("SET")
                .arg(key::project(id))
                .arg(encode(&project)?)
                .ignore();
            let mut controls = Vec::new();
            let mut unknowns = Vec::new();
            if !metas.is_empty() {
                let hset = tx.cmd("HSET").arg(key::images(id));
                for meta in &metas {
                    hset.arg(meta.id.0).arg(encode(meta)?);
                    match serving_member(meta, project.abstain.as_ref()) {
                        Some((true, m)) => controls.push(m),
                        Some((false, m)) => unknowns.push(m),
                        None => {}
                    }
                }
                hset.ignore();
            }
            if !controls.is_empty() {
                tx.cmd("SADD").arg(key::controls(id)).arg(controls).ignore();
            }
            if !unknowns.is_empty() {
                tx.cmd("SADD").arg(key::unknowns(id)).arg(unknowns).ignore();
            }
            tx.query_async::<()>(&mut conn).await.map_err(&failed)?;
            Ok(project)
        });
        task.await
            .map_err(|e| StoreError::Unavailable(format!("store task failed: {e}")))?
    }

    async fn project(&self, id: ProjectId) -> Result<Option<Project>, StoreError> {
        if let Some(project) = self.caches.projects.get(&id) {
            return Ok(Some(project));
        }
        let project: Option<Project> = self.get_json(key::project(id)).await?;
        if let Some(project) = &project {
            self.caches.projects.put(id, project.clone());
        }
        Ok(project)
    }

    async fn images(&self, project: ProjectId) -> Result<Vec<ImageMeta>, StoreError> {
        let mut conn = self.durable.clone();
        let raw: Vec<Vec<u8>> = self
            .run(async move {
                idempotent(&mut conn, redis::cmd("HVALS").arg(key::images(project)))
                    .await
                    .map_err(|e| unavailable(&e))
            })
            .await?;
        let mut metas = raw
            .iter()
            .map(|r| decode::<ImageMeta>(r))
            .collect::<Result<Vec<_>, _>>()?;
        metas.sort_by_key(|m| m.id);
        Ok(metas)
    }

    async fn image_data(&self, id: ImageId) -> Result<Option<ImageData>, StoreError> {
        if let Some(data) = self.caches.image_bytes.get(id) {
            return Ok(Some(data));
        }
        let mut conn = self.durable.clone();
        let (content_type, bytes): (Option<String>, Option<Vec<u8>>) = self
            .run(async move {
                let hmget = redis::cmd("HMGET")
                    .arg(key::image_data(id))
                    .arg("content_type")
                    .arg("bytes")
                    .clone();
                idempotent(&mut conn, &hmget).await.map_err(|e| unavailable(&e))
            })
            .await?;
        let data = content_type
            .zip(bytes)
            .map(|(content_type, bytes)| ImageData { content_type, bytes });
        if let Some(data) = &data {
            self.caches.image_bytes.put(id, data.clone());
        }
        Ok(data)
    }

    async fn pick_slots(&self, project: ProjectId) -> Result<Option<[Slot; 2]>, StoreError> {
        let mut conn = self.durable.clone();
        // Random members straight from the serving sets: no scan, one round trip, one slot.
        let (controls, unknowns): (Vec<String>, Vec<String>) = self
            .run(async move {
                let picks = redis::pipe()
                    .cmd("SRANDMEMBER")
                    .arg(key::controls(project))
                    .arg(2)
                    .cmd("SRANDMEMBER")
                    .arg(key::unknowns(project))
                    .arg(1)
                    .clone();
                idempotent_pipe(&mut conn, &picks)
                    .await
                    .map_err(|e| unavailable(&e))
            })
            .await?;
        // SRANDMEMBER with a count returns distinct members in no truly random order (the whole set, in set
        // order, when it has no more members than asked): shuffle, or a two-control project always shows
        // the same control first.
        let mut controls = controls;
        controls.shuffle(&mut rand::rng());
        let Some(control) = controls.first() else {
            return Ok(None);
        };
        let control = parse_control(control)?;
        if let Some(unknown) = unknowns.first() {
            return Ok(Some([control, parse_unknown(unknown)?]));
        }
        // No unknown left: a second control keeps the check working, and harvests nothing.
        controls
            .get(1)
            .map(|other| Ok([control, parse_control(other)?]))
            .transpose()
    }

    async fn create_site(&self, site: Site) -> Result<(), StoreError> {
        let mut conn = self.durable.clone();
        let record = encode(&site)?;
        self.run(async move {
            // The site first: `NX` makes it the one place a duplicate is refused. The secret index comes after;
            // it only serves to name a secret of another site, so a crash in between loses nothing that matters.
            let created: Option<String> = redis::cmd("SET")
                .arg(key::site(site.sitekey.as_str()))
                .arg(record)
                .arg("NX")
                .query_async(&mut conn)
                .await
                .map_err(write_error("sites"))?;
            if created.is_none() {
                return Err(StoreError::Conflict(format!(
                    "site {} exists already",
                    site.sitekey
                )));
            }
            redis::cmd("SET")
                .arg(key::site_secret(&site.secret_hash))
                .arg(site.sitekey.as_str())
                .query_async::<()>(&mut conn)
                .await
                .map_err(write_error("sites"))
        })
        .await
    }

    async fn site(&self, sitekey: &SiteKey) -> Result<Option<Site>, StoreError> {
        if let Some(site) = self.caches.sites.get(&sitekey.as_str().to_owned()) {
            return Ok(Some(site));
        }
        let site: Option<Site> = self.get_json(key::site(sitekey.as_str())).await?;
        if let Some(site) = &site {
            self.caches.sites.put(sitekey.as_str().to_owned(), site.clone());
        }
        Ok(site)
    }

    async fn site_by_secret_hash(&self, secret_hash: &str) -> Result<Option<Site>, StoreError> {
        let mut conn = self.durable.clone();
        let secret_key = key::site_secret(secret_hash);
        let sitekey: Option<String> = self
            .run(async move {
                idempotent(&mut conn, redis::cmd("GET").arg(secret_key))
                    .await
                    .map_err(|e| unavailable(&e))
            })
            .await?;
        match sitekey {
            Some(sitekey) => self.get_json(key::site(&sitekey)).await,
            None => Ok(None),
        }
    }

    async fn put_challenge(&self, challenge: ChallengeState) -> Result<(), StoreError> {
        let value = encode(&challenge)?;
        self.put_expiring(
            key::challenge(&challenge.id),
            value,
            challenge.expires_at,
            "challenges",
        )
        .await
    }

    async fn challenge(&self, id: &str) -> Result<Option<ChallengeState>, StoreError> {
        self.get_expiring("GET", key::challenge(id)).await
    }

    async fn take_challenge(&self, id: &str) -> Result<Option<ChallengeState>, StoreError> {
        // GETDEL is atomic in Redis: of concurrent callers on any server instance, exactly one gets the record.
        self.get_expiring("GETDEL", key::challenge(id)).await
    }

    async fn put_token(&self, token: TokenState) -> Result<(), StoreError> {
        let value = encode(&token)?;
        self.put_expiring(key::token(&token.id), value, token.expires_at, "tokens")
            .await
    }

    async fn take_token(&self, id: &str) -> Result<Option<TokenState>, StoreError> {
        self.get_expiring("GETDEL", key::token(id)).await
    }

    async fn add_contribution(&self, contribution: Contribution) -> Result<u64, StoreError> {
        let mut conn = self.durable.clone();
        let script = self.add_contribution.clone();
        let project = contribution.project;
        let votes = key::votes(project, contribution.image);
        let marker = key::contributed(project, &contribution.challenge, contribution.image);
        let label = contribution.label.as_str().to_owned();
        let record = encode(&contribution)?;
        // With `appendfsync always`, Redis replies only once the script's writes are fsynced to the AOF.
        self.run(async move {
            script
                .key(key::next_contribution(project))
                .key(key::contributions(project))
                .key(votes)
                .key(marker)
                .arg(record)
                .arg(label)
                .arg(IDEMPOTENCY_SECS)
                .invoke_async(&mut conn)
                .await
                .map_err(write_error("contributions"))
        })
        .await
    }

    async fn image_votes(&self, project: ProjectId, image: ImageId) -> Result<Vec<LabelId>, StoreError> {
        let mut conn = self.durable.clone();
        let raw: Vec<String> = self
            .run(async move {
                idempotent(
                    &mut conn,
                    redis::cmd("LRANGE")
                        .arg(key::votes(project, image))
                        .arg(0)
                        .arg(-1),
                )
                .await
                .map_err(|e| unavailable(&e))
            })
            .await?;
        raw.into_iter()
            .map(|l| LabelId::parse(l).map_err(|e| StoreError::Unavailable(format!("corrupt vote: {e}"))))
            .collect()
    }

    async fn retire_unknown(&self, project: ProjectId, image: ImageId) -> Result<(), StoreError> {
        let mut conn = self.durable.clone();
        self.run(async move {
            redis::cmd("SREM")
                .arg(key::unknowns(project))
                .arg(image.0.to_string())
                .query_async::<()>(&mut conn)
                .await
                .map_err(write_error("serving sets"))
        })
        .await
    }

    async fn promote_control(
        &self,
        project: ProjectId,
        image: ImageId,
        label: LabelId,
    ) -> Result<(), StoreError> {
        let mut conn = self.durable.clone();
        self.run(async move {
            // Both sets carry the project's tag: one slot, one atomic transaction.
            redis::pipe()
                .atomic()
                .cmd("SREM")
                .arg(key::unknowns(project))
                .arg(image.0.to_string())
                .ignore()
                .cmd("SADD")
                .arg(key::controls(project))
                .arg(format!("{}:{label}", image.0))
                .ignore()
                .query_async::<()>(&mut conn)
                .await
                .map_err(write_error("serving sets"))
        })
        .await
    }

    async fn contributions(&self, project: ProjectId) -> Result<Vec<StoredContribution>, StoreError> {
        let mut out = Vec::new();
        let mut start: isize = 0;
        loop {
            let mut conn = self.durable.clone();
            let page: Vec<Vec<u8>> = self
                .run(async move {
                    let range = redis::cmd("LRANGE")
                        .arg(key::contributions(project))
                        .arg(start)
                        .arg(start + READ_PAGE - 1)
                        .clone();
                    idempotent(&mut conn, &range).await.map_err(|e| unavailable(&e))
                })
                .await?;
            for raw in &page {
                let record: LogRecord = decode(raw)?;
                out.push(StoredContribution {
                    seq: record.seq,
                    contribution: record.contribution,
                });
            }
            if page.len() < usize::try_from(READ_PAGE).unwrap_or(usize::MAX) {
                return Ok(out);
            }
            start += READ_PAGE;
        }
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.ping_both().await
    }

    async fn add_batch_run(&self, project: ProjectId, run: BatchRun) -> Result<(), StoreError> {
        let json = encode(&run)?;
        let mut conn = self.durable.clone();
        self.run(async move {
            // Not resent on a broken connection: a run recorded twice would only repeat an audit line.
            redis::pipe()
                .atomic()
                .cmd("LPUSH")
                .arg(key::batch_runs(project))
                .arg(json)
                .ignore()
                .cmd("LTRIM")
                .arg(key::batch_runs(project))
                .arg(0)
                .arg(super::BATCH_RUNS_KEPT - 1)
                .ignore()
                .query_async::<()>(&mut conn)
                .await
                .map_err(write_error("batch runs"))
        })
        .await
    }

    async fn batch_runs(&self, project: ProjectId) -> Result<Vec<BatchRun>, StoreError> {
        let mut conn = self.durable.clone();
        let raw: Vec<Vec<u8>> = self
            .run(async move {
                idempotent(
                    &mut conn,
                    redis::cmd("LRANGE").arg(key::batch_runs(project)).arg(0).arg(-1),
                )
                .await
                .map_err(|e| unavailable(&e))
            })
            .await?;
        raw.iter().map(|bytes| decode(bytes)).collect()
    }

    // FIXME(owner-api): placeholder bodies until the backend implements the owner API's methods.
    async fn reopen(&self, _project: ProjectId, _image: ImageId) -> Result<(), StoreError> {
        Err(StoreError::Unavailable("not implemented yet".into()))
    }
    async fn serving(&self, _project: ProjectId, _images: &[ImageId]) -> Result<Vec<Serving>, StoreError> {
        Err(StoreError::Unavailable("not implemented yet".into()))
    }
    async fn record_control_answer(
        &self,
        _project: ProjectId,
        _image: ImageId,
        _passed: bool,
    ) -> Result<ControlStats, StoreError> {
        Err(StoreError::Unavailable("not implemented yet".into()))
    }
    async fn control_stats(&self, _project: ProjectId) -> Result<Vec<(ImageId, ControlStats)>, StoreError> {
        Err(StoreError::Unavailable("not implemented yet".into()))
    }
    async fn create_owner(&self, _name: &str) -> Result<Owner, StoreError> {
        Err(StoreError::Unavailable("not implemented yet".into()))
    }
    async fn owners(&self) -> Result<Vec<Owner>, StoreError> {
        Err(StoreError::Unavailable("not implemented yet".into()))
    }
    async fn add_api_key(&self, _key: ApiKeyRecord) -> Result<(), StoreError> {
        Err(StoreError::Unavailable("not implemented yet".into()))
    }
    async fn api_key(&self, _hash: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        Err(StoreError::Unavailable("not implemented yet".into()))
    }
    async fn projects(&self) -> Result<Vec<Project>, StoreError> {
        Err(StoreError::Unavailable("not implemented yet".into()))
    }
    async fn update_project(&self, _project: Project) -> Result<(), StoreError> {
        Err(StoreError::Unavailable("not implemented yet".into()))
    }
    async fn add_images(
        &self,
        _project: ProjectId,
        _images: Vec<NewImage>,
    ) -> Result<Vec<AddedImage>, StoreError> {
        Err(StoreError::Unavailable("not implemented yet".into()))
    }
    async fn images_page(
        &self,
        _project: ProjectId,
        _after: Option<ImageId>,
        _limit: usize,
    ) -> Result<Vec<ImageMeta>, StoreError> {
        Err(StoreError::Unavailable("not implemented yet".into()))
    }
    async fn contributions_page(
        &self,
        _project: ProjectId,
        _after: u64,
        _limit: usize,
    ) -> Result<Vec<StoredContribution>, StoreError> {
        Err(StoreError::Unavailable("not implemented yet".into()))
    }
    async fn sites(&self) -> Result<Vec<Site>, StoreError> {
        Err(StoreError::Unavailable("not implemented yet".into()))
    }
    async fn update_site(&self, _site: Site) -> Result<(), StoreError> {
        Err(StoreError::Unavailable("not implemented yet".into()))
    }
}
