//! The embedded store, the default: durable data in a redb file, short-lived data in memory.
//!
//! redb commits with fsync (`Durability::Immediate`, its default), so a contribution is on disk when
//! `add_contribution` returns. redb is blocking: every transaction runs on tokio's blocking pool. The file is
//! locked by the process that opens it, so one server owns a data directory at a time.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, RwLock};

use rand::seq::IndexedRandom;
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

use super::ephemeral::ExpiringMap;
use super::{BATCH_RUNS_KEPT, IDEMPOTENCY_SECS, ImageData, Store, StoreError, StoredContribution};
use crate::model::{
    AddedImage, ApiKeyRecord, BatchRun, ChallengeState, Contribution, ControlStats, ImageId, ImageMeta,
    NewImage, NewProject, Owner, OwnerId, Project, ProjectId, Serving, Site, Slot, TokenState, now,
};
use protocol::{LabelId, SiteKey};

const COUNTERS: TableDefinition<&str, u64> = TableDefinition::new("counters");
const PROJECTS: TableDefinition<u64, &[u8]> = TableDefinition::new("projects");
const IMAGES: TableDefinition<u64, &[u8]> = TableDefinition::new("images");
const IMAGE_BYTES: TableDefinition<u64, &[u8]> = TableDefinition::new("image_bytes");
const SITES: TableDefinition<&str, &[u8]> = TableDefinition::new("sites");
const SITE_SECRETS: TableDefinition<&str, &str> = TableDefinition::new("site_secrets");
const CONTRIBUTIONS: TableDefinition<u64, &[u8]> = TableDefinition::new("contributions");
/// Image id -> JSON list of the labels voted for it, appended in the contribution's transaction.
const IMAGE_VOTES: TableDefinition<u64, &[u8]> = TableDefinition::new("image_votes");
/// Image id -> how it is served now that the crowd decided: `""` retired, [`REOPENED`] an unknown again,
/// else the label it controls with.
const SERVING_CHANGES: TableDefinition<u64, &str> = TableDefinition::new("serving_changes");
/// (project, image) -> (): a project's images in id order, for paging.
const PROJECT_IMAGES: TableDefinition<(u64, u64), ()> = TableDefinition::new("project_images");
/// (project, content hash) -> image id: a project holds each content once.
const CONTENT_HASHES: TableDefinition<(u64, &str), u64> = TableDefinition::new("content_hashes");
/// (project, sequence number) -> (): a project's contributions in order, for paging.
const PROJECT_CONTRIBUTIONS: TableDefinition<(u64, u64), ()> = TableDefinition::new("project_contributions");
/// Image id -> (passed, failed) answers to it as a control.
const CONTROL_STATS: TableDefinition<u64, (u64, u64)> = TableDefinition::new("control_stats");
const OWNERS: TableDefinition<u64, &[u8]> = TableDefinition::new("owners");
/// (project, run number) -> batch run (JSON).
const BATCH_RUNS: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("batch_runs");
const OWNER_NAMES: TableDefinition<&str, u64> = TableDefinition::new("owner_names");
/// Hex SHA-256 of an API key -> its record.
const API_KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("api_keys");

/// The `SERVING_CHANGES` value of a control that was re-opened: served as an unknown again. Not a label id
/// (those are lower-case words), so it cannot be mistaken for one.
const REOPENED: &str = "?";

/// Bounds on short-lived state, so that a flood of challenge requests cannot exhaust memory.
const MAX_CHALLENGES: usize = 1_000_000;
const MAX_TOKENS: usize = 1_000_000;

/// What a project can serve, kept in memory so that picking a challenge reads no disk.
#[derive(Default)]
struct ServingIndex {
    controls: Vec<(ImageId, LabelId)>,
    unknowns: Vec<ImageId>,
}

pub struct EmbeddedStore {
    db: Arc<Database>,
    serving: Arc<RwLock<HashMap<ProjectId, ServingIndex>>>,
    challenges: ExpiringMap<ChallengeState>,
    tokens: ExpiringMap<TokenState>,
    /// `challenge:image` -> sequence number of the contribution written for it, for idempotent writes.
    contributed: Arc<ExpiringMap<u64>>,
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Unavailable(format!("corrupt record: {e}")))
}

fn encode<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(unavailable)
}

impl EmbeddedStore {
    /// Opens (or creates) the database in `dir/cobot.redb` and loads the serving index.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| unavailable(format!("cannot create {}: {e}", dir.display())))?;
        let path = dir.join("cobot.redb");
        let db = Database::create(&path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Unavailable(format!(
                "{} is in use by another process (is a server running on this data directory?)",
                path.display()
            )),
            other => unavailable(format!("cannot open {}: {other}", path.display())),
        })?;
        // Create every table up front so that readers never meet a missing one.
        let txn = db.begin_write().map_err(unavailable)?;
        for table in [PROJECTS, IMAGES, IMAGE_BYTES, CONTRIBUTIONS, IMAGE_VOTES] {
            txn.open_table(table).map_err(unavailable)?;
        }
        txn.open_table(COUNTERS).map_err(unavailable)?;
        txn.open_table(SITES).map_err(unavailable)?;
        txn.open_table(SITE_SECRETS).map_err(unavailable)?;
        txn.open_table(SERVING_CHANGES).map_err(unavailable)?;
        txn.open_table(PROJECT_IMAGES).map_err(unavailable)?;
        txn.open_table(CONTENT_HASHES).map_err(unavailable)?;
        txn.open_table(PROJECT_CONTRIBUTIONS).map_err(unavailable)?;
        txn.open_table(CONTROL_STATS).map_err(unavailable)?;
        txn.open_table(OWNERS).map_err(unavailable)?;
        txn.open_table(OWNER_NAMES).map_err(unavailable)?;
        txn.open_table(API_KEYS).map_err(unavailable)?;
        txn.open_table(BATCH_RUNS).map_err(unavailable)?;
        migrate_indexes(&txn)?;
        txn.commit().map_err(unavailable)?;

        let store = Self {
            db: Arc::new(db),
            serving: Arc::new(RwLock::new(HashMap::new())),
            challenges: ExpiringMap::new(MAX_CHALLENGES),
            tokens: ExpiringMap::new(MAX_TOKENS),
            contributed: Arc::new(ExpiringMap::new(MAX_CHALLENGES)),
        };
        store.load_serving_index()?;
        Ok(store)
    }

    fn load_serving_index(&self) -> Result<(), StoreError> {
        let txn = self.db.begin_read().map_err(unavailable)?;
        let projects: HashMap<u64, Project> = {
            let table = txn.open_table(PROJECTS).map_err(unavailable)?;
            let mut out = HashMap::new();
            for row in table.iter().map_err(unavailable)? {
                let (k, v) = row.map_err(unavailable)?;
                out.insert(k.value(), decode(v.value())?);
            }
            out
        };
        let changes: HashMap<u64, String> = {
            let table = txn.open_table(SERVING_CHANGES).map_err(unavailable)?;
            let mut out = HashMap::new();
            for row in table.iter().map_err(unavailable)? {
                let (k, v) = row.map_err(unavailable)?;
                out.insert(k.value(), v.value().to_owned());
            }
            out
        };
        let table = txn.open_table(IMAGES).map_err(unavailable)?;
        let mut serving = self
            .serving
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for row in table.iter().map_err(unavailable)? {
            let (_, v) = row.map_err(unavailable)?;
            let mut meta: ImageMeta = decode(v.value())?;
            match changes.get(&meta.id.0).map(String::as_str) {
                // Retired by the consensus: decided or contested, no longer served.
                Some("") => continue,
                // A control humans failed too often: an unknown again.
                Some(REOPENED) => meta.known_label = None,
                Some(label) => meta.known_label = Some(LabelId::parse(label).map_err(unavailable)?),
                None => {}
            }
            let abstain = projects.get(&meta.project.0).and_then(|p| p.abstain.as_ref());
            index_image(serving.entry(meta.project).or_default(), &meta, abstain);
        }
        Ok(())
    }

    /// Records durably how an image is served from now on (not at all, as a control, or as an unknown
    /// again), then updates the in-memory serving index to match.
    async fn change_serving(
        &self,
        project: ProjectId,
        image: ImageId,
        to: Serving,
    ) -> Result<(), StoreError> {
        let value = match &to {
            Serving::Retired => String::new(),
            Serving::Unknown => REOPENED.to_owned(),
            Serving::Control(label) => label.as_str().to_owned(),
        };
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(unavailable)?;
            txn.open_table(SERVING_CHANGES)
                .map_err(unavailable)?
                .insert(image.0, value.as_str())
                .map_err(unavailable)?;
            txn.commit().map_err(unavailable)
        })
        .await?;
        let mut serving = self
            .serving
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let index = serving.entry(project).or_default();
        index.unknowns.retain(|id| *id != image);
        index.controls.retain(|(id, _)| *id != image);
        match to {
            Serving::Control(label) => index.controls.push((image, label)),
            Serving::Unknown => index.unknowns.push(image),
            Serving::Retired => {}
        }
        Ok(())
    }

    /// Runs a blocking closure over the database on tokio's blocking pool.
    async fn blocking<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Database) -> Result<T, StoreError> + Send + 'static,
    {
        let db = Arc::clone(&self.db);
        tokio::task::spawn_blocking(move || f(&db))
            .await
            .map_err(unavailable)?
    }
}

fn index_image(index: &mut ServingIndex, meta: &ImageMeta, abstain: Option<&LabelId>) {
    match &meta.known_label {
        Some(label) if Some(label) != abstain => index.controls.push((meta.id, label.clone())),
        // A gold image whose answer is "can't tell" is no use as a control, and needs no votes either.
        Some(_) => {}
        None => index.unknowns.push(meta.id),
    }
}

fn next_id(txn: &redb::WriteTransaction, counter: &str) -> Result<u64, StoreError> {
    let mut counters = txn.open_table(COUNTERS).map_err(unavailable)?;
    let next = counters
        .get(counter)
        .map_err(unavailable)?
        .map_or(1, |v| v.value());
    counters.insert(counter, next + 1).map_err(unavailable)?;
    Ok(next)
}

fn get_json<K, T>(
    db: &Database,
    table: TableDefinition<K, &[u8]>,
    key: K::SelfType<'_>,
) -> Result<Option<T>, StoreError>
where
    K: redb::Key + 'static,
    T: serde::de::DeserializeOwned,
{
    let txn = db.begin_read().map_err(unavailable)?;
    let table = txn.open_table(table).map_err(unavailable)?;
    let value = table.get(key).map_err(unavailable)?;
    value.map(|v| decode(v.value())).transpose()
}

/// Stores one image of `project` unless the project holds its content already. Inside the caller's write
/// transaction, so that the check and the insert are one step.
fn insert_image(
    txn: &redb::WriteTransaction,
    project: ProjectId,
    image: NewImage,
) -> Result<AddedImage, StoreError> {
    {
        let hashes = txn.open_table(CONTENT_HASHES).map_err(unavailable)?;
        let existing = hashes
            .get((project.0, image.content_hash.as_str()))
            .map_err(unavailable)?
            .map(|v| v.value());
        if let Some(existing) = existing {
            let images = txn.open_table(IMAGES).map_err(unavailable)?;
            let meta = images.get(existing).map_err(unavailable)?;
            let meta = meta.ok_or_else(|| unavailable("content hash of a missing image"))?;
            return Ok(AddedImage::Duplicate(decode(meta.value())?));
        }
    }
    let image_id = ImageId(next_id(txn, "image")?);
    let meta = ImageMeta {
        id: image_id,
        project,
        name: image.name,
        content_type: image.content_type,
        known_label: image.known_label,
        content_hash: image.content_hash,
    };
    txn.open_table(IMAGES)
        .map_err(unavailable)?
        .insert(image_id.0, encode(&meta)?.as_slice())
        .map_err(unavailable)?;
    txn.open_table(IMAGE_BYTES)
        .map_err(unavailable)?
        .insert(image_id.0, image.bytes.as_slice())
        .map_err(unavailable)?;
    txn.open_table(PROJECT_IMAGES)
        .map_err(unavailable)?
        .insert((project.0, image_id.0), ())
        .map_err(unavailable)?;
    if !meta.content_hash.is_empty() {
        txn.open_table(CONTENT_HASHES)
            .map_err(unavailable)?
            .insert((project.0, meta.content_hash.as_str()), image_id.0)
            .map_err(unavailable)?;
    }
    Ok(AddedImage::Stored(meta))
}

/// Databases written before the owner API have no per-project indexes: build them once, from the records.
fn migrate_indexes(txn: &redb::WriteTransaction) -> Result<(), StoreError> {
    let mut project_images = txn.open_table(PROJECT_IMAGES).map_err(unavailable)?;
    if project_images.is_empty().map_err(unavailable)? {
        let images = txn.open_table(IMAGES).map_err(unavailable)?;
        let mut hashes = txn.open_table(CONTENT_HASHES).map_err(unavailable)?;
        for row in images.iter().map_err(unavailable)? {
            let (_, v) = row.map_err(unavailable)?;
            let meta: ImageMeta = decode(v.value())?;
            project_images
                .insert((meta.project.0, meta.id.0), ())
                .map_err(unavailable)?;
            if !meta.content_hash.is_empty() {
                hashes
                    .insert((meta.project.0, meta.content_hash.as_str()), meta.id.0)
                    .map_err(unavailable)?;
            }
        }
    }
    let mut project_contributions = txn.open_table(PROJECT_CONTRIBUTIONS).map_err(unavailable)?;
    if project_contributions.is_empty().map_err(unavailable)? {
        let contributions = txn.open_table(CONTRIBUTIONS).map_err(unavailable)?;
        for row in contributions.iter().map_err(unavailable)? {
            let (k, v) = row.map_err(unavailable)?;
            let contribution: Contribution = decode(v.value())?;
            project_contributions
                .insert((contribution.project.0, k.value()), ())
                .map_err(unavailable)?;
        }
    }
    Ok(())
}

/// Every record of a table whose values are JSON, in key order.
fn all_json<K, T>(db: &Database, table: TableDefinition<K, &[u8]>) -> Result<Vec<T>, StoreError>
where
    K: redb::Key + 'static,
    T: serde::de::DeserializeOwned,
{
    let txn = db.begin_read().map_err(unavailable)?;
    let table = txn.open_table(table).map_err(unavailable)?;
    let mut out = Vec::new();
    for row in table.iter().map_err(unavailable)? {
        let (_, v) = row.map_err(unavailable)?;
        out.push(decode(v.value())?);
    }
    Ok(out)
}

impl Store for EmbeddedStore {
    async fn create_project(
        &self,
        project: NewProject,
        images: Vec<NewImage>,
    ) -> Result<Project, StoreError> {
        let (project, metas) = self
            .blocking(move |db| {
                let txn = db.begin_write().map_err(unavailable)?;
                let id = ProjectId(next_id(&txn, "project")?);
                let project = project.into_project(id);
                let mut metas = Vec::with_capacity(images.len());
                {
                    let mut projects = txn.open_table(PROJECTS).map_err(unavailable)?;
                    projects
                        .insert(id.0, encode(&project)?.as_slice())
                        .map_err(unavailable)?;
                }
                for image in images {
                    match insert_image(&txn, id, image)? {
                        AddedImage::Stored(meta) => metas.push(meta),
                        AddedImage::Duplicate(meta) => {
                            return Err(StoreError::Conflict(format!(
                                "two images of the new project have the same content as {}",
                                meta.name
                            )));
                        }
                    }
                }
                txn.commit().map_err(unavailable)?;
                Ok((project, metas))
            })
            .await?;
        let mut serving = self
            .serving
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let index = serving.entry(project.id).or_default();
        for meta in &metas {
            index_image(index, meta, project.abstain.as_ref());
        }
        Ok(project)
    }

    async fn project(&self, id: ProjectId) -> Result<Option<Project>, StoreError> {
        self.blocking(move |db| get_json(db, PROJECTS, id.0)).await
    }

    async fn images(&self, project: ProjectId) -> Result<Vec<ImageMeta>, StoreError> {
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(unavailable)?;
            let table = txn.open_table(IMAGES).map_err(unavailable)?;
            let mut out = Vec::new();
            for row in table.iter().map_err(unavailable)? {
                let (_, v) = row.map_err(unavailable)?;
                let meta: ImageMeta = decode(v.value())?;
                if meta.project == project {
                    out.push(meta);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn image_data(&self, id: ImageId) -> Result<Option<ImageData>, StoreError> {
        self.blocking(move |db| {
            let Some(meta) = get_json::<u64, ImageMeta>(db, IMAGES, id.0)? else {
                return Ok(None);
            };
            let txn = db.begin_read().map_err(unavailable)?;
            let table = txn.open_table(IMAGE_BYTES).map_err(unavailable)?;
            let bytes = table.get(id.0).map_err(unavailable)?.map(|v| v.value().to_vec());
            Ok(bytes.map(|bytes| ImageData {
                content_type: meta.content_type,
                bytes,
            }))
        })
        .await
    }

    async fn pick_slots(&self, project: ProjectId) -> Result<Option<[Slot; 2]>, StoreError> {
        let serving = self
            .serving
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(index) = serving.get(&project) else {
            return Ok(None);
        };
        let mut rng = rand::rng();
        let Some((control, label)) = index.controls.choose(&mut rng) else {
            return Ok(None);
        };
        let control = Slot {
            image: *control,
            expected: Some(label.clone()),
        };
        if let Some(unknown) = index.unknowns.choose(&mut rng) {
            return Ok(Some([
                control,
                Slot {
                    image: *unknown,
                    expected: None,
                },
            ]));
        }
        // No unknown left: a second control keeps the check working, and harvests nothing.
        let others: Vec<_> = index
            .controls
            .iter()
            .filter(|(id, _)| *id != control.image)
            .collect();
        Ok(others.choose(&mut rng).map(|(id, label)| {
            [
                control,
                Slot {
                    image: *id,
                    expected: Some(label.clone()),
                },
            ]
        }))
    }

    async fn create_site(&self, site: Site) -> Result<(), StoreError> {
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(unavailable)?;
            {
                let mut sites = txn.open_table(SITES).map_err(unavailable)?;
                if sites.get(site.sitekey.as_str()).map_err(unavailable)?.is_some() {
                    return Err(StoreError::Conflict(format!(
                        "site {} exists already",
                        site.sitekey
                    )));
                }
                sites
                    .insert(site.sitekey.as_str(), encode(&site)?.as_slice())
                    .map_err(unavailable)?;
                let mut secrets = txn.open_table(SITE_SECRETS).map_err(unavailable)?;
                secrets
                    .insert(site.secret_hash.as_str(), site.sitekey.as_str())
                    .map_err(unavailable)?;
            }
            txn.commit().map_err(unavailable)
        })
        .await
    }

    async fn site(&self, sitekey: &SiteKey) -> Result<Option<Site>, StoreError> {
        let key = sitekey.clone();
        self.blocking(move |db| get_json(db, SITES, key.as_str())).await
    }

    async fn site_by_secret_hash(&self, secret_hash: &str) -> Result<Option<Site>, StoreError> {
        let hash = secret_hash.to_owned();
        self.blocking(move |db| {
            let sitekey = {
                let txn = db.begin_read().map_err(unavailable)?;
                let secrets = txn.open_table(SITE_SECRETS).map_err(unavailable)?;
                let found = secrets.get(hash.as_str()).map_err(unavailable)?;
                found.map(|v| v.value().to_owned())
            };
            match sitekey {
                Some(key) => get_json(db, SITES, key.as_str()),
                None => Ok(None),
            }
        })
        .await
    }

    async fn put_challenge(&self, challenge: ChallengeState) -> Result<(), StoreError> {
        self.challenges
            .insert(challenge.id.clone(), challenge.expires_at, challenge)
            .map_err(|()| StoreError::Full("challenges"))
    }

    async fn challenge(&self, id: &str) -> Result<Option<ChallengeState>, StoreError> {
        Ok(self.challenges.get(id))
    }

    async fn take_challenge(&self, id: &str) -> Result<Option<ChallengeState>, StoreError> {
        Ok(self.challenges.take(id))
    }

    async fn put_token(&self, token: TokenState) -> Result<(), StoreError> {
        self.tokens
            .insert(token.id.clone(), token.expires_at, token)
            .map_err(|()| StoreError::Full("tokens"))
    }

    async fn take_token(&self, id: &str) -> Result<Option<TokenState>, StoreError> {
        Ok(self.tokens.take(id))
    }

    async fn add_contribution(&self, contribution: Contribution) -> Result<u64, StoreError> {
        let contributed = Arc::clone(&self.contributed);
        let marker = format!("{}:{}", contribution.challenge, contribution.image.0);
        self.blocking(move |db| {
            // redb has one writer at a time: checking the marker inside the write transaction makes the
            // check and the write one step.
            let txn = db.begin_write().map_err(unavailable)?;
            if let Some(seq) = contributed.get(&marker) {
                return Ok(seq);
            }
            let seq = next_id(&txn, "contribution")?;
            txn.open_table(CONTRIBUTIONS)
                .map_err(unavailable)?
                .insert(seq, encode(&contribution)?.as_slice())
                .map_err(unavailable)?;
            txn.open_table(PROJECT_CONTRIBUTIONS)
                .map_err(unavailable)?
                .insert((contribution.project.0, seq), ())
                .map_err(unavailable)?;
            // The image's votes, in the same transaction: its consensus state is as durable as the vote.
            {
                let mut votes_table = txn.open_table(IMAGE_VOTES).map_err(unavailable)?;
                let mut votes: Vec<LabelId> =
                    match votes_table.get(contribution.image.0).map_err(unavailable)? {
                        Some(v) => decode(v.value())?,
                        None => Vec::new(),
                    };
                votes.push(contribution.label.clone());
                votes_table
                    .insert(contribution.image.0, encode(&votes)?.as_slice())
                    .map_err(unavailable)?;
            }
            // Durability::Immediate (the default): commit returns once the data is fsynced.
            txn.commit().map_err(unavailable)?;
            // A full marker map only loses idempotency for resends, which nothing in-process makes.
            let _ = contributed.insert(marker, now() + IDEMPOTENCY_SECS, seq);
            Ok(seq)
        })
        .await
    }

    async fn image_votes(&self, _project: ProjectId, image: ImageId) -> Result<Vec<LabelId>, StoreError> {
        self.blocking(move |db| Ok(get_json(db, IMAGE_VOTES, image.0)?.unwrap_or_default()))
            .await
    }

    async fn retire_unknown(&self, project: ProjectId, image: ImageId) -> Result<(), StoreError> {
        self.change_serving(project, image, Serving::Retired).await
    }

    async fn promote_control(
        &self,
        project: ProjectId,
        image: ImageId,
        label: LabelId,
    ) -> Result<(), StoreError> {
        self.change_serving(project, image, Serving::Control(label)).await
    }

    async fn contributions(&self, project: ProjectId) -> Result<Vec<StoredContribution>, StoreError> {
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(unavailable)?;
            let table = txn.open_table(CONTRIBUTIONS).map_err(unavailable)?;
            let mut out = Vec::new();
            for row in table.iter().map_err(unavailable)? {
                let (k, v) = row.map_err(unavailable)?;
                let contribution: Contribution = decode(v.value())?;
                if contribution.project == project {
                    out.push(StoredContribution {
                        seq: k.value(),
                        contribution,
                    });
                }
            }
            Ok(out)
        })
        .await
    }

    async fn reopen(&self, project: ProjectId, image: ImageId) -> Result<(), StoreError> {
        self.change_serving(project, image, Serving::Unknown).await
    }

    async fn serving(&self, project: ProjectId, images: &[ImageId]) -> Result<Vec<Serving>, StoreError> {
        let images = images.to_vec();
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(unavailable)?;
            let abstain = match txn
                .open_table(PROJECTS)
                .map_err(unavailable)?
                .get(project.0)
                .map_err(unavailable)?
            {
                Some(v) => decode::<Project>(v.value())?.abstain,
                None => None,
            };
            let metas = txn.open_table(IMAGES).map_err(unavailable)?;
            let changes = txn.open_table(SERVING_CHANGES).map_err(unavailable)?;
            let mut out = Vec::with_capacity(images.len());
            for id in images {
                let Some(meta) = metas.get(id.0).map_err(unavailable)? else {
                    out.push(Serving::Retired);
                    continue;
                };
                let meta: ImageMeta = decode(meta.value())?;
                let change = changes
                    .get(id.0)
                    .map_err(unavailable)?
                    .map(|v| v.value().to_owned());
                out.push(match (change.as_deref(), meta.known_label) {
                    (Some(""), _) => Serving::Retired,
                    (Some(REOPENED), _) | (None, None) => Serving::Unknown,
                    (Some(label), _) => Serving::Control(LabelId::parse(label).map_err(unavailable)?),
                    (None, Some(label)) if Some(&label) == abstain.as_ref() => Serving::Retired,
                    (None, Some(label)) => Serving::Control(label),
                });
            }
            Ok(out)
        })
        .await
    }

    async fn record_control_answer(
        &self,
        _project: ProjectId,
        image: ImageId,
        passed: bool,
    ) -> Result<ControlStats, StoreError> {
        self.blocking(move |db| {
            let mut txn = db.begin_write().map_err(unavailable)?;
            // Statistics: no fsync of their own; the next durable commit (a contribution) carries them.
            txn.set_durability(redb::Durability::None).map_err(unavailable)?;
            let counts = {
                let mut table = txn.open_table(CONTROL_STATS).map_err(unavailable)?;
                let (ok, ko) = table
                    .get(image.0)
                    .map_err(unavailable)?
                    .map_or((0, 0), |v| v.value());
                let counts = if passed { (ok + 1, ko) } else { (ok, ko + 1) };
                table.insert(image.0, counts).map_err(unavailable)?;
                counts
            };
            txn.commit().map_err(unavailable)?;
            Ok(ControlStats {
                passed: counts.0,
                failed: counts.1,
            })
        })
        .await
    }

    async fn control_stats(&self, project: ProjectId) -> Result<Vec<(ImageId, ControlStats)>, StoreError> {
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(unavailable)?;
            let images = txn.open_table(PROJECT_IMAGES).map_err(unavailable)?;
            let stats = txn.open_table(CONTROL_STATS).map_err(unavailable)?;
            let mut out = Vec::new();
            for row in images
                .range((project.0, 0)..=(project.0, u64::MAX))
                .map_err(unavailable)?
            {
                let (k, ()) = row.map(|(k, _)| (k, ())).map_err(unavailable)?;
                let image = k.value().1;
                if let Some(v) = stats.get(image).map_err(unavailable)? {
                    let (passed, failed) = v.value();
                    out.push((ImageId(image), ControlStats { passed, failed }));
                }
            }
            Ok(out)
        })
        .await
    }

    async fn add_batch_run(&self, project: ProjectId, run: BatchRun) -> Result<(), StoreError> {
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(unavailable)?;
            {
                let mut runs = txn.open_table(BATCH_RUNS).map_err(unavailable)?;
                let next = {
                    let mut range = runs
                        .range((project.0, 0)..=(project.0, u64::MAX))
                        .map_err(unavailable)?;
                    match range.next_back() {
                        Some(row) => row.map_err(unavailable)?.0.value().1 + 1,
                        None => 1,
                    }
                };
                runs.insert((project.0, next), encode(&run)?.as_slice())
                    .map_err(unavailable)?;
                let kept = u64::try_from(BATCH_RUNS_KEPT).unwrap_or(u64::MAX);
                if next > kept {
                    runs.retain_in((project.0, 0)..=(project.0, next - kept), |_, _| false)
                        .map_err(unavailable)?;
                }
            }
            txn.commit().map_err(unavailable)
        })
        .await
    }

    async fn batch_runs(&self, project: ProjectId) -> Result<Vec<BatchRun>, StoreError> {
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(unavailable)?;
            let runs = txn.open_table(BATCH_RUNS).map_err(unavailable)?;
            let mut out = Vec::new();
            for row in runs
                .range((project.0, 0)..=(project.0, u64::MAX))
                .map_err(unavailable)?
                .rev()
            {
                let (_, v) = row.map_err(unavailable)?;
                out.push(decode(v.value())?);
            }
            Ok(out)
        })
        .await
    }

    async fn create_owner(&self, name: &str) -> Result<Owner, StoreError> {
        let name = name.to_owned();
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(unavailable)?;
            if txn
                .open_table(OWNER_NAMES)
                .map_err(unavailable)?
                .get(name.as_str())
                .map_err(unavailable)?
                .is_some()
            {
                return Err(StoreError::Conflict(format!(
                    "an owner named {name} exists already"
                )));
            }
            let owner = Owner {
                id: OwnerId(next_id(&txn, "owner")?),
                name,
                created_at: now(),
            };
            txn.open_table(OWNER_NAMES)
                .map_err(unavailable)?
                .insert(owner.name.as_str(), owner.id.0)
                .map_err(unavailable)?;
            txn.open_table(OWNERS)
                .map_err(unavailable)?
                .insert(owner.id.0, encode(&owner)?.as_slice())
                .map_err(unavailable)?;
            txn.commit().map_err(unavailable)?;
            Ok(owner)
        })
        .await
    }

    async fn owners(&self) -> Result<Vec<Owner>, StoreError> {
        self.blocking(|db| all_json(db, OWNERS)).await
    }

    async fn add_api_key(&self, key: ApiKeyRecord) -> Result<(), StoreError> {
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(unavailable)?;
            {
                let mut keys = txn.open_table(API_KEYS).map_err(unavailable)?;
                if keys.get(key.hash.as_str()).map_err(unavailable)?.is_some() {
                    return Err(StoreError::Conflict("this API key exists already".into()));
                }
                keys.insert(key.hash.as_str(), encode(&key)?.as_slice())
                    .map_err(unavailable)?;
            }
            txn.commit().map_err(unavailable)
        })
        .await
    }

    async fn api_key(&self, hash: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        let hash = hash.to_owned();
        self.blocking(move |db| get_json(db, API_KEYS, hash.as_str()))
            .await
    }

    async fn projects(&self) -> Result<Vec<Project>, StoreError> {
        self.blocking(|db| all_json(db, PROJECTS)).await
    }

    async fn update_project(&self, project: Project) -> Result<(), StoreError> {
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(unavailable)?;
            {
                let mut projects = txn.open_table(PROJECTS).map_err(unavailable)?;
                if projects.get(project.id.0).map_err(unavailable)?.is_none() {
                    return Err(StoreError::Conflict(format!(
                        "there is no project {}",
                        project.id
                    )));
                }
                projects
                    .insert(project.id.0, encode(&project)?.as_slice())
                    .map_err(unavailable)?;
            }
            txn.commit().map_err(unavailable)
        })
        .await
    }

    async fn add_images(
        &self,
        project: ProjectId,
        images: Vec<NewImage>,
    ) -> Result<Vec<AddedImage>, StoreError> {
        let (added, abstain) = self
            .blocking(move |db| {
                let txn = db.begin_write().map_err(unavailable)?;
                let abstain = match txn
                    .open_table(PROJECTS)
                    .map_err(unavailable)?
                    .get(project.0)
                    .map_err(unavailable)?
                {
                    Some(v) => decode::<Project>(v.value())?.abstain,
                    None => return Err(StoreError::Conflict(format!("there is no project {project}"))),
                };
                let mut added = Vec::with_capacity(images.len());
                for image in images {
                    added.push(insert_image(&txn, project, image)?);
                }
                txn.commit().map_err(unavailable)?;
                Ok((added, abstain))
            })
            .await?;
        let mut serving = self
            .serving
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let index = serving.entry(project).or_default();
        for added in &added {
            if let AddedImage::Stored(meta) = added {
                index_image(index, meta, abstain.as_ref());
            }
        }
        Ok(added)
    }

    async fn images_page(
        &self,
        project: ProjectId,
        after: Option<ImageId>,
        limit: usize,
    ) -> Result<Vec<ImageMeta>, StoreError> {
        let start = after.map_or(0, |a| a.0.saturating_add(1));
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(unavailable)?;
            let index = txn.open_table(PROJECT_IMAGES).map_err(unavailable)?;
            let metas = txn.open_table(IMAGES).map_err(unavailable)?;
            let mut out = Vec::with_capacity(limit.min(1024));
            for row in index
                .range((project.0, start)..=(project.0, u64::MAX))
                .map_err(unavailable)?
            {
                if out.len() >= limit {
                    break;
                }
                let (k, _) = row.map_err(unavailable)?;
                if let Some(meta) = metas.get(k.value().1).map_err(unavailable)? {
                    out.push(decode(meta.value())?);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn contributions_page(
        &self,
        project: ProjectId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<StoredContribution>, StoreError> {
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(unavailable)?;
            let index = txn.open_table(PROJECT_CONTRIBUTIONS).map_err(unavailable)?;
            let records = txn.open_table(CONTRIBUTIONS).map_err(unavailable)?;
            let mut out = Vec::with_capacity(limit.min(1024));
            for row in index
                .range((project.0, after.saturating_add(1))..=(project.0, u64::MAX))
                .map_err(unavailable)?
            {
                if out.len() >= limit {
                    break;
                }
                let (k, _) = row.map_err(unavailable)?;
                let seq = k.value().1;
                if let Some(v) = records.get(seq).map_err(unavailable)? {
                    out.push(StoredContribution {
                        seq,
                        contribution: decode(v.value())?,
                    });
                }
            }
            Ok(out)
        })
        .await
    }

    async fn sites(&self) -> Result<Vec<Site>, StoreError> {
        self.blocking(|db| all_json(db, SITES)).await
    }

    async fn update_site(&self, site: Site) -> Result<(), StoreError> {
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(unavailable)?;
            {
                let mut sites = txn.open_table(SITES).map_err(unavailable)?;
                let old: Site = match sites.get(site.sitekey.as_str()).map_err(unavailable)? {
                    Some(v) => decode(v.value())?,
                    None => return Err(StoreError::Conflict(format!("there is no site {}", site.sitekey))),
                };
                let mut secrets = txn.open_table(SITE_SECRETS).map_err(unavailable)?;
                for hash in old.secret_hashes() {
                    if !site.secret_hashes().any(|h| h == hash) {
                        secrets.remove(hash).map_err(unavailable)?;
                    }
                }
                for hash in site.secret_hashes() {
                    secrets.insert(hash, site.sitekey.as_str()).map_err(unavailable)?;
                }
                sites
                    .insert(site.sitekey.as_str(), encode(&site)?.as_slice())
                    .map_err(unavailable)?;
            }
            txn.commit().map_err(unavailable)
        })
        .await
    }
}
