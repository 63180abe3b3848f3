//! The embedded store, the default: durable data in a redb file, short-lived data in memory.
//!
//! redb commits with fsync (`Durability::Immediate`, its default), so a contribution is on disk when
//! `add_contribution` returns. redb is blocking: every transaction runs on tokio's blocking pool. The file is
//! locked by the process that opens it, so one server owns a data directory at a time.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, RwLock};

use rand::seq::IndexedRandom;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::ephemeral::ExpiringMap;
use super::{IDEMPOTENCY_SECS, ImageData, Store, StoreError, StoredContribution};
use crate::model::{
    AddedImage, ApiKeyRecord, ChallengeState, Contribution, ControlStats, ImageId, ImageMeta, NewImage,
    NewProject, Owner, Project, ProjectId, Serving, Site, Slot, TokenState, now,
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
/// Image id -> how it is served now that the crowd decided: `""` retired, else the label it controls with.
const SERVING_CHANGES: TableDefinition<u64, &str> = TableDefinition::new("serving_changes");

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
                Some(label) => meta.known_label = Some(LabelId::parse(label).map_err(unavailable)?),
                None => {}
            }
            let abstain = projects.get(&meta.project.0).and_then(|p| p.abstain.as_ref());
            index_image(serving.entry(meta.project).or_default(), &meta, abstain);
        }
        Ok(())
    }

    /// Records durably how an unknown image is served from now on (not at all, or as a control), then
    /// updates the in-memory serving index to match.
    async fn change_serving(
        &self,
        project: ProjectId,
        image: ImageId,
        control: Option<LabelId>,
    ) -> Result<(), StoreError> {
        let label = control.clone();
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(unavailable)?;
            txn.open_table(SERVING_CHANGES)
                .map_err(unavailable)?
                .insert(image.0, label.as_ref().map_or("", LabelId::as_str))
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
        if let Some(label) = control
            && !index.controls.iter().any(|(id, _)| *id == image)
        {
            index.controls.push((image, label));
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
                    let image_id = ImageId(next_id(&txn, "image")?);
                    let meta = ImageMeta {
                        id: image_id,
                        project: id,
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
                    metas.push(meta);
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
        self.change_serving(project, image, None).await
    }

    async fn promote_control(
        &self,
        project: ProjectId,
        image: ImageId,
        label: LabelId,
    ) -> Result<(), StoreError> {
        self.change_serving(project, image, Some(label)).await
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
    ) -> Result<(), StoreError> {
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
