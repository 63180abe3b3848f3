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
use redis::{
    Cmd, FromRedisValue, Pipeline, RedisError, RedisFuture, RedisResult, Script, ScriptInvocation, Value,
};
use serde::{Deserialize, Serialize};

use super::{IDEMPOTENCY_SECS, ImageData, Store, StoreError, StoredContribution};
use crate::model::{
    AddedImage, ApiKeyRecord, BatchRun, ChallengeState, Contribution, ControlStats, ImageId, ImageMeta,
    NewImage, NewProject, Owner, OwnerId, Project, ProjectId, Serving, Site, Slot, TokenState, UnixTime, now,
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
/// The most records asked of Redis in one command (also small enough for Lua's `unpack`).
const PAGE: usize = 1000;

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

/// Gives a project stored before the image index existed its index, on first use: the sorted set of image
/// ids (for paging) and the content hashes its metadata carry (for dedup). A project that has images and
/// was stored since has both from its creation, so the index is complete whenever the sorted set exists.
/// KEYS[1] is the metadata hash, KEYS[2] the id set, KEYS[3] the content hashes. Prefixed to the scripts
/// below, which all name those three keys first.
const INDEX_IMAGES: &str = r"
local function index_images()
  if redis.call('EXISTS', KEYS[2]) == 1 then return end
  local all = redis.call('HGETALL', KEYS[1])
  for i = 1, #all, 2 do
    redis.call('ZADD', KEYS[2], all[i], all[i])
    local ok, meta = pcall(cjson.decode, all[i + 1])
    if ok and type(meta.content_hash) == 'string' and meta.content_hash ~= '' then
      redis.call('HSETNX', KEYS[3], meta.content_hash, all[i])
    end
  end
end
index_images()
";

/// Adds images to a project unless it holds their content already, in one atomic step.
///
/// KEYS[1..3] as in [`INDEX_IMAGES`], KEYS[4] the controls, KEYS[5] the unknowns, KEYS[6] the project
/// record. ARGV holds five values per image: id, content hash, metadata (JSON), serving kind (`c`ontrol,
/// `u`nknown, `n`either) and serving member. Returns nil when there is no such project, else one value per
/// image: an empty string when it is stored, the stored metadata when its content is there already (an
/// earlier image of the same call counts). The image ids are fresh for each call, so a resent call (the
/// cluster client resends after a broken connection) finds its own ids under its hashes and stores nothing.
const ADD_IMAGES: &str = r"
if redis.call('EXISTS', KEYS[6]) == 0 then return false end
local out = {}
for i = 1, #ARGV, 5 do
  local id, hash = ARGV[i], ARGV[i + 1]
  local holder = false
  if hash ~= '' then holder = redis.call('HGET', KEYS[3], hash) end
  if holder and holder ~= id then
    out[#out + 1] = redis.call('HGET', KEYS[1], holder)
  else
    if not holder then
      if hash ~= '' then redis.call('HSET', KEYS[3], hash, id) end
      redis.call('HSET', KEYS[1], id, ARGV[i + 2])
      redis.call('ZADD', KEYS[2], id, id)
      if ARGV[i + 3] == 'c' then redis.call('SADD', KEYS[4], ARGV[i + 4])
      elseif ARGV[i + 3] == 'u' then redis.call('SADD', KEYS[5], ARGV[i + 4]) end
    end
    out[#out + 1] = ''
  end
end
return out
";

/// A page of a project's images in id order. KEYS[1..3] as in [`INDEX_IMAGES`]; ARGV[1] the exclusive lower
/// bound (`(<id>` or `-inf`), ARGV[2] the page size (small enough for `unpack`).
const IMAGES_PAGE: &str = r"
local ids = redis.call('ZRANGE', KEYS[2], ARGV[1], '+inf', 'BYSCORE', 'LIMIT', 0, ARGV[2])
if #ids == 0 then return {} end
return redis.call('HMGET', KEYS[1], unpack(ids))
";

/// How each image is served. KEYS[1] the controls, KEYS[2] the unknowns; ARGV[1] the number of the project's
/// labels, then the labels, then the image ids. Returns per image its control label, an empty string for an
/// unknown, nil when it is not served. Controls are members `<id>:<label>`, so the project's few labels are
/// tried rather than the whole set scanned.
const SERVING: &str = r"
local labels = tonumber(ARGV[1])
local out = {}
for i = labels + 2, #ARGV do
  local found = false
  for l = 2, labels + 1 do
    if redis.call('SISMEMBER', KEYS[1], ARGV[i] .. ':' .. ARGV[l]) == 1 then
      found = ARGV[l]
      break
    end
  end
  if not found and redis.call('SISMEMBER', KEYS[2], ARGV[i]) == 1 then found = '' end
  out[#out + 1] = found
end
return out
";

/// A page of a project's contribution log: the records with a sequence number above ARGV[1], at most
/// ARGV[2]. KEYS[1] is the log. Sequence numbers increase along the log and start at 1, so the record at
/// index `i` has a number above `i`: the first one wanted is at index `after` at the latest, exactly there
/// when the numbers have no gap (the usual case, checked first), else found by bisection.
const CONTRIBUTIONS_PAGE: &str = r#"
local after = tonumber(ARGV[1])
local function seq(i)
  return tonumber(string.match(redis.call('LINDEX', KEYS[1], i), '^{"seq":(%d+),'))
end
local lo, hi = 0, math.min(after, redis.call('LLEN', KEYS[1]))
if hi > 0 and seq(hi - 1) <= after then lo = hi end
while lo < hi do
  local mid = math.floor((lo + hi) / 2)
  if seq(mid) > after then hi = mid else lo = mid + 1 end
end
return redis.call('LRANGE', KEYS[1], lo, lo + tonumber(ARGV[2]) - 1)
"#;

/// Creates an owner unless another holds the name. KEYS[1] maps names to ids, KEYS[2] ids to records (one
/// hash tag: every owner on one node, so the name check and the write are one step). ARGV: name, id, record.
/// The id is fresh per call, so a resent call finds the name held by its own id and succeeds again.
const CREATE_OWNER: &str = r"
local holder = redis.call('HGET', KEYS[1], ARGV[1])
if holder and holder ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
return 1
";

/// The store's Lua scripts (each sent by hash, loaded on first use).
struct Scripts {
    add_contribution: Script,
    add_images: Script,
    images_page: Script,
    serving: Script,
    contributions_page: Script,
    create_owner: Script,
}

impl Scripts {
    fn new() -> Self {
        Self {
            add_contribution: Script::new(ADD_CONTRIBUTION),
            add_images: Script::new(&format!("{INDEX_IMAGES}{ADD_IMAGES}")),
            images_page: Script::new(&format!("{INDEX_IMAGES}{IMAGES_PAGE}")),
            serving: Script::new(SERVING),
            contributions_page: Script::new(CONTRIBUTIONS_PAGE),
            create_owner: Script::new(CREATE_OWNER),
        }
    }
}

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

/// [`idempotent`] for a script that may safely run twice (each says why it may).
async fn idempotent_script<T: FromRedisValue>(
    conn: &mut Conn,
    script: &ScriptInvocation<'_>,
) -> RedisResult<T> {
    match script.invoke_async(conn).await {
        Err(e) if e.is_connection_dropped() || e.is_io_error() => script.invoke_async(conn).await,
        other => other,
    }
}

/// Writes image bytes, each under its own key (they may live on any cluster node), a bounded number at a
/// time. Written before the metadata that refers to them, so a crash half-way leaves unreachable bytes, never
/// an image without bytes.
async fn write_image_bytes(conn: &Conn, images: Vec<(ImageId, String, Vec<u8>)>) -> Result<(), StoreError> {
    let mut writes = tokio::task::JoinSet::new();
    for (id, content_type, bytes) in images {
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
            .arg(key::image_data(id))
            .arg("content_type")
            .arg(content_type)
            .arg("bytes")
            .arg(bytes)
            .clone();
        writes.spawn(async move {
            write
                .query_async::<()>(&mut conn)
                .await
                .map_err(write_error("images"))
        });
    }
    while let Some(done) = writes.join_next().await {
        done.map_err(|e| StoreError::Unavailable(e.to_string()))??;
    }
    Ok(())
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
    /// Boxed: several scripts, each with its source.
    scripts: Box<Scripts>,
    /// Boxed: the caches would make the store, and so every `AnyStore`, several times larger.
    caches: Box<Caches>,
    _runtime: IoRuntime,
}

/// Copies of records, kept by each server instance.
struct Caches {
    projects: RecordCache<ProjectId, Project>,
    sites: RecordCache<String, Site>,
    image_bytes: ImageCache,
}

/// How long a server instance trusts its copy of a project or site record.
const CACHE_TTL: Duration = Duration::from_secs(60);
const CACHE_CAPACITY: usize = 10_000;

/// Copies of records that change rarely (projects, sites: only their owner changes them), so that every
/// challenge does not ask Redis for them again. Only records found are kept: a record created by another
/// instance is seen at once. An instance that changes a record updates its own copy; the other instances see
/// the change within [`CACHE_TTL`]. Checks that must see a change at once (a site's secrets) do not use it.
struct RecordCache<K, V> {
    entries: std::sync::RwLock<std::collections::HashMap<K, (std::time::Instant, V)>>,
}

impl<K: std::hash::Hash + Eq, V: Clone> RecordCache<K, V> {
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

    /// The last project id given. Projects are listed by id from 1 to it: that finds every project, those
    /// stored before listings existed too, and skips the ids of creations that did not complete.
    pub const NEXT_PROJECT: &str = "cobot:next-project";
    pub const NEXT_IMAGE: &str = "cobot:next-image";
    /// Set of every sitekey: sitekeys are random, so sites need an index to be listed.
    pub const SITES: &str = "cobot:sites";
    /// Set once the sites stored before [`SITES`] existed are in it.
    pub const SITES_INDEXED: &str = "cobot:sites-indexed";
    /// Pattern of the site records, for that one-off indexing.
    pub const SITE_PATTERN: &str = "cobot:site:*";
    /// Owners share one hash tag: they are few, and a name must be checked and taken in one step.
    pub const NEXT_OWNER: &str = "cobot:{owners}:next";
    /// Hash: owner id -> owner (JSON).
    pub const OWNERS: &str = "cobot:{owners}:records";
    /// Hash: owner name -> owner id.
    pub const OWNER_NAMES: &str = "cobot:{owners}:names";

    pub fn api_key(hash: &str) -> String {
        format!("cobot:api-key:{hash}")
    }

    pub fn project(p: ProjectId) -> String {
        format!("cobot:{{p{p}}}:project")
    }
    /// Hash: image id -> image metadata (JSON).
    pub fn images(p: ProjectId) -> String {
        format!("cobot:{{p{p}}}:images")
    }
    /// Sorted set of the image ids, scored by id: pages of images in id order.
    pub fn image_ids(p: ProjectId) -> String {
        format!("cobot:{{p{p}}}:image-ids")
    }
    /// Hash: content hash -> id of the image holding that content (a project holds each content once).
    pub fn content_hashes(p: ProjectId) -> String {
        format!("cobot:{{p{p}}}:content-hashes")
    }
    /// Hash: `<image id>:passed` and `<image id>:failed` -> answers to that control.
    pub fn control_stats(p: ProjectId) -> String {
        format!("cobot:{{p{p}}}:control-stats")
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
            scripts: Box::new(Scripts::new()),
            caches: Box::new(Caches {
                projects: RecordCache::new(),
                sites: RecordCache::new(),
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

    /// Reads a value from the durable Redis with a command that may safely run twice.
    async fn read<T>(&self, cmd: Cmd) -> Result<T, StoreError>
    where
        T: FromRedisValue + Send + 'static,
    {
        let mut conn = self.durable.clone();
        self.run(async move { idempotent(&mut conn, &cmd).await.map_err(|e| unavailable(&e)) })
            .await
    }

    /// Writes to the durable Redis with a command that may safely run twice.
    async fn write<T>(&self, cmd: Cmd, what: &'static str) -> Result<T, StoreError>
    where
        T: FromRedisValue + Send + 'static,
    {
        let mut conn = self.durable.clone();
        self.run(async move { idempotent(&mut conn, &cmd).await.map_err(write_error(what)) })
            .await
    }

    /// Reads the records under `keys`, in order, skipping the keys that hold none. The keys may be in any
    /// slots: the cluster client splits `MGET` by node.
    async fn get_many_json<T>(&self, keys: &[String]) -> Result<Vec<T>, StoreError>
    where
        T: serde::de::DeserializeOwned,
    {
        let mut out = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(PAGE) {
            let raw: Vec<Option<Vec<u8>>> = self.read(redis::cmd("MGET").arg(chunk).clone()).await?;
            for record in raw.into_iter().flatten() {
                out.push(decode(&record)?);
            }
        }
        Ok(out)
    }

    /// Indexes the sites stored before [`key::SITES`] existed, once. `KEYS` walks the whole key space (of
    /// every master, in a cluster) and blocks Redis meanwhile, which is acceptable once per deployment.
    async fn index_old_sites(&self) -> Result<(), StoreError> {
        let indexed: Option<String> = self
            .read(redis::cmd("GET").arg(key::SITES_INDEXED).clone())
            .await?;
        if indexed.is_some() {
            return Ok(());
        }
        let keys: Vec<String> = self
            .read(redis::cmd("KEYS").arg(key::SITE_PATTERN).clone())
            .await?;
        let sitekeys: Vec<&str> = keys
            .iter()
            .filter_map(|k| k.strip_prefix(key::SITE_PATTERN.trim_end_matches('*')))
            .collect();
        for chunk in sitekeys.chunks(PAGE) {
            self.write::<()>(redis::cmd("SADD").arg(key::SITES).arg(chunk).clone(), "sites")
                .await?;
        }
        self.write::<()>(redis::cmd("SET").arg(key::SITES_INDEXED).arg(1).clone(), "sites")
            .await
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
        // A new project holds each content once, as `add_images` keeps it: refused before anything is written.
        let mut seen = std::collections::HashSet::new();
        if let Some(twice) = images
            .iter()
            .find(|i| !i.content_hash.is_empty() && !seen.insert(i.content_hash.as_str()))
        {
            return Err(StoreError::Conflict(format!(
                "two images of the new project have the same content as {}",
                twice.name
            )));
        }
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
            // The image bytes first. The project becomes visible only with the last step, so a crash half-way
            // leaves unreachable bytes, never a half-made project.
            let mut metas = Vec::with_capacity(images.len());
            let mut bytes = Vec::with_capacity(images.len());
            for (n, image) in (last + 1 - count..).zip(images) {
                let meta = ImageMeta {
                    id: ImageId(n),
                    project: id,
                    name: image.name,
                    content_type: image.content_type,
                    known_label: image.known_label,
                    content_hash: image.content_hash,
                };
                bytes.push((meta.id, meta.content_type.clone(), image.bytes));
                metas.push(meta);
            }
            write_image_bytes(&conn, bytes).await?;

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
                // The image index, as `add_images` and `images_page` expect it of every project with images.
                let zadd = tx.cmd("ZADD").arg(key::image_ids(id));
                for meta in &metas {
                    zadd.arg(meta.id.0).arg(meta.id.0);
                }
                zadd.ignore();
                // Each image holds its content (checked distinct above).
                let holders: Vec<_> = metas.iter().filter(|m| !m.content_hash.is_empty()).collect();
                if !holders.is_empty() {
                    let hset = tx.cmd("HSET").arg(key::content_hashes(id));
                    for meta in holders {
                        hset.arg(&meta.content_hash).arg(meta.id.0);
                    }
                    hset.ignore();
                }
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
        let hashes: Vec<String> = site.secret_hashes().map(str::to_owned).collect();
        self.run(async move {
            // Listed first: a sitekey listed without a record is skipped, a record never listed would be lost.
            redis::cmd("SADD")
                .arg(key::SITES)
                .arg(site.sitekey.as_str())
                .query_async::<()>(&mut conn)
                .await
                .map_err(write_error("sites"))?;
            // Then the site: `NX` makes it the one place a duplicate is refused. The secret index comes after;
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
            for hash in hashes {
                redis::cmd("SET")
                    .arg(key::site_secret(&hash))
                    .arg(site.sitekey.as_str())
                    .query_async::<()>(&mut conn)
                    .await
                    .map_err(write_error("sites"))?;
            }
            Ok(())
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
        let Some(sitekey) = sitekey else {
            return Ok(None);
        };
        // The index may name a hash the site no longer has (an update that stopped half-way): the record,
        // written before the index is cleaned, decides.
        let site: Option<Site> = self.get_json(key::site(&sitekey)).await?;
        Ok(site.filter(|s| s.secret_hashes().any(|h| h == secret_hash)))
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
        let script = self.scripts.add_contribution.clone();
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

    async fn reopen(&self, project: ProjectId, image: ImageId) -> Result<(), StoreError> {
        let Some(record) = self.project(project).await? else {
            return Err(StoreError::Conflict(format!("no project {project}")));
        };
        let mut tx = redis::pipe();
        // Both sets carry the project's tag: one slot, one atomic transaction. Its control entry names its
        // label, one of the project's.
        tx.atomic().cmd("SREM").arg(key::controls(project));
        for label in &record.labels {
            tx.arg(format!("{}:{}", image.0, label.id));
        }
        tx.ignore()
            .cmd("SADD")
            .arg(key::unknowns(project))
            .arg(image.0.to_string())
            .ignore();
        let mut conn = self.durable.clone();
        self.run(async move {
            idempotent_pipe::<()>(&mut conn, &tx)
                .await
                .map_err(write_error("serving sets"))
        })
        .await
    }

    async fn serving(&self, project: ProjectId, images: &[ImageId]) -> Result<Vec<Serving>, StoreError> {
        let Some(record) = self.project(project).await? else {
            return Ok(vec![Serving::Retired; images.len()]);
        };
        let mut out = Vec::with_capacity(images.len());
        for chunk in images.chunks(PAGE) {
            let mut conn = self.durable.clone();
            let script = self.scripts.serving.clone();
            let labels: Vec<String> = record.labels.iter().map(|l| l.id.as_str().to_owned()).collect();
            let ids: Vec<u64> = chunk.iter().map(|i| i.0).collect();
            let raw: Vec<Option<String>> = self
                .run(async move {
                    let mut invocation = script.prepare_invoke();
                    invocation
                        .key(key::controls(project))
                        .key(key::unknowns(project))
                        .arg(labels.len())
                        .arg(labels)
                        .arg(ids);
                    idempotent_script(&mut conn, &invocation)
                        .await
                        .map_err(|e| unavailable(&e))
                })
                .await?;
            for served in raw {
                out.push(match served {
                    None => Serving::Retired,
                    Some(label) if label.is_empty() => Serving::Unknown,
                    Some(label) => Serving::Control(
                        LabelId::parse(label)
                            .map_err(|e| StoreError::Unavailable(format!("corrupt control label: {e}")))?,
                    ),
                });
            }
        }
        Ok(out)
    }

    async fn record_control_answer(
        &self,
        project: ProjectId,
        image: ImageId,
        passed: bool,
    ) -> Result<ControlStats, StoreError> {
        let field = format!("{}:{}", image.0, if passed { "passed" } else { "failed" });
        let (ok, ko) = (format!("{}:passed", image.0), format!("{}:failed", image.0));
        // Not resent after a broken connection: counting an answer twice is worse than losing it.
        let mut conn = self.durable.clone();
        let (passed, failed): (Option<u64>, Option<u64>) = self
            .run(async move {
                redis::pipe()
                    .atomic()
                    .cmd("HINCRBY")
                    .arg(key::control_stats(project))
                    .arg(field)
                    .arg(1)
                    .ignore()
                    .cmd("HMGET")
                    .arg(key::control_stats(project))
                    .arg(ok)
                    .arg(ko)
                    .query_async::<((Option<u64>, Option<u64>),)>(&mut conn)
                    .await
                    .map(|(counts,)| counts)
                    .map_err(write_error("control statistics"))
            })
            .await?;
        Ok(ControlStats {
            passed: passed.unwrap_or(0),
            failed: failed.unwrap_or(0),
        })
    }

    async fn control_stats(&self, project: ProjectId) -> Result<Vec<(ImageId, ControlStats)>, StoreError> {
        let raw: Vec<(String, u64)> = self
            .read(redis::cmd("HGETALL").arg(key::control_stats(project)).clone())
            .await?;
        let mut stats = std::collections::BTreeMap::<ImageId, ControlStats>::new();
        for (field, count) in raw {
            let corrupt = || StoreError::Unavailable(format!("corrupt control statistic `{field}`"));
            let (id, outcome) = field.split_once(':').ok_or_else(corrupt)?;
            let entry = stats
                .entry(ImageId(id.parse().map_err(|_| corrupt())?))
                .or_default();
            match outcome {
                "passed" => entry.passed = count,
                "failed" => entry.failed = count,
                _ => return Err(corrupt()),
            }
        }
        Ok(stats.into_iter().collect())
    }

    async fn create_owner(&self, name: &str) -> Result<Owner, StoreError> {
        let id: u64 = self
            .write(redis::cmd("INCR").arg(key::NEXT_OWNER).clone(), "owners")
            .await?;
        let owner = Owner {
            id: OwnerId(id),
            name: name.to_owned(),
            created_at: now(),
        };
        let record = encode(&owner)?;
        let mut conn = self.durable.clone();
        let script = self.scripts.create_owner.clone();
        let name = owner.name.clone();
        let created: bool = self
            .run(async move {
                let mut invocation = script.prepare_invoke();
                invocation
                    .key(key::OWNER_NAMES)
                    .key(key::OWNERS)
                    .arg(name)
                    .arg(id)
                    .arg(record);
                idempotent_script(&mut conn, &invocation)
                    .await
                    .map_err(write_error("owners"))
            })
            .await?;
        if created {
            Ok(owner)
        } else {
            Err(StoreError::Conflict(format!(
                "an owner named {} exists already",
                owner.name
            )))
        }
    }

    async fn owners(&self) -> Result<Vec<Owner>, StoreError> {
        let raw: Vec<Vec<u8>> = self.read(redis::cmd("HVALS").arg(key::OWNERS).clone()).await?;
        let mut owners = raw
            .iter()
            .map(|r| decode::<Owner>(r))
            .collect::<Result<Vec<_>, _>>()?;
        owners.sort_by_key(|o| o.id);
        Ok(owners)
    }

    async fn add_api_key(&self, record: ApiKeyRecord) -> Result<(), StoreError> {
        let value = encode(&record)?;
        let mut conn = self.durable.clone();
        let created: Option<String> = self
            .run(async move {
                redis::cmd("SET")
                    .arg(key::api_key(&record.hash))
                    .arg(value)
                    .arg("NX")
                    .query_async(&mut conn)
                    .await
                    .map_err(write_error("API keys"))
            })
            .await?;
        created
            .map(|_| ())
            .ok_or_else(|| StoreError::Conflict("this API key exists already".into()))
    }

    async fn api_key(&self, hash: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        self.get_json(key::api_key(hash)).await
    }

    async fn projects(&self) -> Result<Vec<Project>, StoreError> {
        let last: Option<u64> = self
            .read(redis::cmd("GET").arg(key::NEXT_PROJECT).clone())
            .await?;
        let keys: Vec<String> = (1..=last.unwrap_or(0))
            .map(|id| key::project(ProjectId(id)))
            .collect();
        self.get_many_json(&keys).await
    }

    async fn update_project(&self, project: Project) -> Result<(), StoreError> {
        let value = encode(&project)?;
        let id = project.id;
        // `XX`: only a project that exists is replaced; replacing it with the same record again is harmless.
        let replaced: Option<String> = self
            .write(
                redis::cmd("SET")
                    .arg(key::project(id))
                    .arg(value)
                    .arg("XX")
                    .clone(),
                "projects",
            )
            .await?;
        if replaced.is_none() {
            return Err(StoreError::Conflict(format!("no project {id}")));
        }
        self.caches.projects.put(id, project);
        Ok(())
    }

    async fn add_images(
        &self,
        project: ProjectId,
        images: Vec<NewImage>,
    ) -> Result<Vec<AddedImage>, StoreError> {
        let Some(record) = self.project(project).await? else {
            return Err(StoreError::Conflict(format!("no project {project}")));
        };
        if images.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.durable.clone();
        let script = self.scripts.add_images.clone();
        // Many images may be added at once: the bound is their count, not one call's timeout.
        let task = self.handle.spawn(async move {
            let failed = write_error("images");
            // The contents the project holds already need no bytes written (the script decides, this saves work).
            let hashes: Vec<&str> = images.iter().map(|i| i.content_hash.as_str()).collect();
            let held: Vec<Option<u64>> = idempotent(
                &mut conn,
                redis::cmd("HMGET").arg(key::content_hashes(project)).arg(hashes),
            )
            .await
            .map_err(|e| unavailable(&e))?;
            let count = u64::try_from(images.len()).unwrap_or(u64::MAX);
            let last: u64 = redis::cmd("INCRBY")
                .arg(key::NEXT_IMAGE)
                .arg(count)
                .query_async(&mut conn)
                .await
                .map_err(&failed)?;
            let mut metas = Vec::with_capacity(images.len());
            let mut bytes = Vec::new();
            let mut written = std::collections::HashSet::new();
            let mut seen = std::collections::HashSet::new();
            for ((n, image), held) in (last + 1 - count..).zip(images).zip(held) {
                let meta = ImageMeta {
                    id: ImageId(n),
                    project,
                    name: image.name,
                    content_type: image.content_type,
                    known_label: image.known_label,
                    content_hash: image.content_hash,
                };
                let new_content = held.is_none()
                    && (meta.content_hash.is_empty() || seen.insert(meta.content_hash.clone()));
                if new_content {
                    written.insert(meta.id);
                    bytes.push((meta.id, meta.content_type.clone(), image.bytes));
                }
                metas.push(meta);
            }
            write_image_bytes(&conn, bytes).await?;

            // Then the dedup check and the inserts: one slot, one script.
            let mut invocation = script.prepare_invoke();
            invocation
                .key(key::images(project))
                .key(key::image_ids(project))
                .key(key::content_hashes(project))
                .key(key::controls(project))
                .key(key::unknowns(project))
                .key(key::project(project));
            for meta in &metas {
                let (kind, member) = match serving_member(meta, record.abstain.as_ref()) {
                    Some((true, member)) => ("c", member),
                    Some((false, member)) => ("u", member),
                    None => ("n", String::new()),
                };
                invocation
                    .arg(meta.id.0)
                    .arg(&meta.content_hash)
                    .arg(encode(meta)?)
                    .arg(kind)
                    .arg(member);
            }
            let outcome: Option<Vec<Vec<u8>>> =
                idempotent_script(&mut conn, &invocation).await.map_err(&failed)?;
            let outcome = outcome.ok_or_else(|| StoreError::Conflict(format!("no project {project}")))?;
            let mut added = Vec::with_capacity(metas.len());
            let mut orphans = Vec::new();
            for (meta, stored) in metas.into_iter().zip(outcome) {
                if stored.is_empty() {
                    added.push(AddedImage::Stored(meta));
                } else {
                    if written.contains(&meta.id) {
                        orphans.push(key::image_data(meta.id));
                    }
                    added.push(AddedImage::Duplicate(decode(&stored)?));
                }
            }
            // Bytes written for a content that a concurrent call stored first: nothing refers to them. Removing
            // them is tidiness only, so a failure here does not fail the call.
            if !orphans.is_empty()
                && let Err(e) = redis::cmd("DEL").arg(orphans).query_async::<()>(&mut conn).await
            {
                tracing::warn!(error = %e, "could not remove the bytes of duplicate images");
            }
            Ok(added)
        });
        task.await
            .map_err(|e| StoreError::Unavailable(format!("store task failed: {e}")))?
    }

    async fn images_page(
        &self,
        project: ProjectId,
        after: Option<ImageId>,
        limit: usize,
    ) -> Result<Vec<ImageMeta>, StoreError> {
        let mut out: Vec<ImageMeta> = Vec::new();
        let mut after = after;
        while out.len() < limit {
            let size = (limit - out.len()).min(PAGE);
            let from = after.map_or_else(|| "-inf".to_owned(), |id| format!("({}", id.0));
            let mut conn = self.durable.clone();
            let script = self.scripts.images_page.clone();
            let raw: Vec<Option<Vec<u8>>> = self
                .run(async move {
                    let mut invocation = script.prepare_invoke();
                    invocation
                        .key(key::images(project))
                        .key(key::image_ids(project))
                        .key(key::content_hashes(project))
                        .arg(from)
                        .arg(size);
                    // Reads, apart from indexing an older project once: safe to run twice.
                    idempotent_script(&mut conn, &invocation)
                        .await
                        .map_err(write_error("images"))
                })
                .await?;
            let got = raw.len();
            for meta in raw {
                let meta = meta
                    .ok_or_else(|| StoreError::Unavailable("the image index names a missing image".into()))?;
                out.push(decode(&meta)?);
            }
            after = out.last().map(|m| m.id);
            if got < size {
                break;
            }
        }
        Ok(out)
    }

    async fn contributions_page(
        &self,
        project: ProjectId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<StoredContribution>, StoreError> {
        let mut out: Vec<StoredContribution> = Vec::new();
        let mut after = after;
        while out.len() < limit {
            let size = (limit - out.len()).min(PAGE);
            let mut conn = self.durable.clone();
            let script = self.scripts.contributions_page.clone();
            let raw: Vec<Vec<u8>> = self
                .run(async move {
                    let mut invocation = script.prepare_invoke();
                    invocation.key(key::contributions(project)).arg(after).arg(size);
                    idempotent_script(&mut conn, &invocation)
                        .await
                        .map_err(|e| unavailable(&e))
                })
                .await?;
            let got = raw.len();
            for record in &raw {
                let record: LogRecord = decode(record)?;
                after = record.seq;
                out.push(StoredContribution {
                    seq: record.seq,
                    contribution: record.contribution,
                });
            }
            if got < size {
                break;
            }
        }
        Ok(out)
    }

    async fn sites(&self) -> Result<Vec<Site>, StoreError> {
        self.index_old_sites().await?;
        let mut sitekeys: Vec<String> = self.read(redis::cmd("SMEMBERS").arg(key::SITES).clone()).await?;
        sitekeys.sort();
        let keys: Vec<String> = sitekeys.iter().map(|k| key::site(k)).collect();
        self.get_many_json(&keys).await
    }

    async fn update_site(&self, site: Site) -> Result<(), StoreError> {
        let sitekey = site.sitekey.as_str().to_owned();
        let Some(old) = self.get_json::<Site>(key::site(&sitekey)).await? else {
            return Err(StoreError::Conflict(format!("no site {sitekey}")));
        };
        // New hashes first, then the record, then the old hashes dropped: at every step each hash of the
        // record finds the site, and `site_by_secret_hash` checks the record, so a hash the index still
        // names after a crash finds nothing.
        for hash in site.secret_hashes() {
            self.write::<()>(
                redis::cmd("SET")
                    .arg(key::site_secret(hash))
                    .arg(&sitekey)
                    .clone(),
                "sites",
            )
            .await?;
        }
        let replaced: Option<String> = self
            .write(
                redis::cmd("SET")
                    .arg(key::site(&sitekey))
                    .arg(encode(&site)?)
                    .arg("XX")
                    .clone(),
                "sites",
            )
            .await?;
        if replaced.is_none() {
            return Err(StoreError::Conflict(format!("no site {sitekey}")));
        }
        let dropped: Vec<String> = old
            .secret_hashes()
            .filter(|h| !site.secret_hashes().any(|kept| kept == *h))
            .map(key::site_secret)
            .collect();
        for hash_key in dropped {
            self.write::<()>(redis::cmd("DEL").arg(hash_key).clone(), "sites")
                .await?;
        }
        self.caches.sites.put(sitekey, site);
        Ok(())
    }
}
