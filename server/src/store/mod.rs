//! Storage: the `Store` trait and its backends.
//!
//! Two backends: [`EmbeddedStore`] (the default, one process) and [`RedisStore`] (many server instances share
//! one Redis or Redis Cluster). Both pass the one acceptance suite in `tests/it/store_acceptance.rs`.
//!
//! Handlers reach storage only through [`Store`]. Durable data (projects, images, sites, contributions) must be
//! committed before a method returns `Ok`; short-lived data (challenges, tokens) expires by itself. Single use
//! of challenges and tokens is the backend's job: `take_*` returns a record to exactly one caller.

mod embedded;
mod ephemeral;
mod redis;

pub use self::redis::RedisStore;
pub use embedded::EmbeddedStore;

use crate::model::{
    AddedImage, ApiKeyRecord, BatchRun, ChallengeState, Contribution, ControlStats, ImageId, ImageMeta,
    NewImage, NewProject, Owner, Project, ProjectId, Serving, Site, Slot, TokenState,
};
use protocol::{LabelId, SiteKey};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend cannot be reached or failed; the request may succeed later.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The request contradicts what is stored (a duplicate key, an unknown reference).
    #[error("{0}")]
    Conflict(String),
    /// Short-lived state is at its capacity: refuse new work rather than grow without bound.
    #[error("store at capacity: {0}")]
    Full(&'static str),
}

/// How long writing a contribution stays idempotent (per challenge and image): far longer than any resend.
pub const IDEMPOTENCY_SECS: u64 = 3600;

/// Batch runs kept per project: enough to audit weeks of revisions at the default interval.
pub const BATCH_RUNS_KEPT: usize = 100;

/// The bytes of an image, as served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageData {
    pub content_type: String,
    pub bytes: Vec<u8>,
}

/// A contribution with the sequence number the store gave it (increasing in acknowledgement order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredContribution {
    pub seq: u64,
    pub contribution: Contribution,
}

// actix-web runs each handler on its worker's single-threaded runtime, so the futures need not be `Send`.
#[allow(async_fn_in_trait)]
pub trait Store: Send + Sync + 'static {
    // Projects and images: durable.
    async fn create_project(&self, project: NewProject, images: Vec<NewImage>)
    -> Result<Project, StoreError>;
    async fn project(&self, id: ProjectId) -> Result<Option<Project>, StoreError>;
    async fn images(&self, project: ProjectId) -> Result<Vec<ImageMeta>, StoreError>;
    async fn image_data(&self, id: ImageId) -> Result<Option<ImageData>, StoreError>;
    /// Picks a control (served as a control now, see [`Serving`]) and a second image: an unknown when the project still has
    /// one, else another control. `None` when the project cannot make a challenge.
    async fn pick_slots(&self, project: ProjectId) -> Result<Option<[Slot; 2]>, StoreError>;

    // Sites: durable.
    async fn create_site(&self, site: Site) -> Result<(), StoreError>;
    async fn site(&self, sitekey: &SiteKey) -> Result<Option<Site>, StoreError>;
    async fn site_by_secret_hash(&self, secret_hash: &str) -> Result<Option<Site>, StoreError>;

    // Challenges and tokens: short-lived, single use.
    async fn put_challenge(&self, challenge: ChallengeState) -> Result<(), StoreError>;
    async fn challenge(&self, id: &str) -> Result<Option<ChallengeState>, StoreError>;
    /// Removes and returns the challenge; of concurrent callers, exactly one gets it.
    async fn take_challenge(&self, id: &str) -> Result<Option<ChallengeState>, StoreError>;
    async fn put_token(&self, token: TokenState) -> Result<(), StoreError>;
    /// Removes and returns the token; of concurrent callers, exactly one gets it.
    async fn take_token(&self, id: &str) -> Result<Option<TokenState>, StoreError>;

    // Contributions: durable before `Ok`.
    /// Stores a contribution and returns its sequence number. Idempotent for an hour per challenge and image:
    /// the same write again (a resent request) returns the first sequence number and stores nothing.
    async fn add_contribution(&self, contribution: Contribution) -> Result<u64, StoreError>;
    async fn contributions(&self, project: ProjectId) -> Result<Vec<StoredContribution>, StoreError>;

    // Consensus state of unknown images.
    /// The labels voted for an image so far, in acknowledgement order. `add_contribution` appends to this
    /// list in the same atomic step as the contribution, so the image's consensus state (a function of its
    /// votes) is always as durable as its votes.
    async fn image_votes(&self, project: ProjectId, image: ImageId) -> Result<Vec<LabelId>, StoreError>;
    /// Stops serving an unknown image: its label is decided, or it is contested. Idempotent.
    async fn retire_unknown(&self, project: ProjectId, image: ImageId) -> Result<(), StoreError>;
    /// Serves a decided unknown as a control with `label` from now on (and no longer as an unknown).
    /// Idempotent.
    async fn promote_control(
        &self,
        project: ProjectId,
        image: ImageId,
        label: LabelId,
    ) -> Result<(), StoreError>;

    /// Re-opens a control that humans fail too often: it is served as an unknown again and collects votes
    /// (its earlier votes, if any, still count). Idempotent.
    async fn reopen(&self, project: ProjectId, image: ImageId) -> Result<(), StoreError>;
    /// How each of `images` (of `project`) is served now, in the same order.
    async fn serving(&self, project: ProjectId, images: &[ImageId]) -> Result<Vec<Serving>, StoreError>;
    /// Counts one answer to a control and returns the control's counts, this answer included. Statistics,
    /// not contributions: a crash may lose the last few.
    async fn record_control_answer(
        &self,
        project: ProjectId,
        image: ImageId,
        passed: bool,
    ) -> Result<ControlStats, StoreError>;
    /// Answers to each control of a project that was answered at least once, in image id order.
    async fn control_stats(&self, project: ProjectId) -> Result<Vec<(ImageId, ControlStats)>, StoreError>;

    /// Records a batch run of a project; the store keeps the last [`BATCH_RUNS_KEPT`].
    async fn add_batch_run(&self, project: ProjectId, run: BatchRun) -> Result<(), StoreError>;
    /// The project's recorded batch runs, the latest first.
    async fn batch_runs(&self, project: ProjectId) -> Result<Vec<BatchRun>, StoreError>;

    // Owners and API keys: durable.
    /// Creates an owner with a unique name (`Conflict` if the name is taken).
    async fn create_owner(&self, name: &str) -> Result<Owner, StoreError>;
    async fn owners(&self) -> Result<Vec<Owner>, StoreError>;
    /// Stores a key's hash (`Conflict` if that hash exists).
    async fn add_api_key(&self, key: ApiKeyRecord) -> Result<(), StoreError>;
    async fn api_key(&self, hash: &str) -> Result<Option<ApiKeyRecord>, StoreError>;

    // Projects, images and sites: the owner API.
    /// Every project, in id order.
    async fn projects(&self) -> Result<Vec<Project>, StoreError>;
    /// Replaces a project's record (`Conflict` if there is no such project). Its id, labels' ids and
    /// abstain label never change; archiving stops serving it.
    async fn update_project(&self, project: Project) -> Result<(), StoreError>;
    /// Adds images to a project, in order. An image whose `content_hash` the project holds already (or
    /// that appears earlier in the same call) is not stored: it comes back as `Duplicate` of the stored one.
    /// `Conflict` if there is no such project.
    async fn add_images(
        &self,
        project: ProjectId,
        images: Vec<NewImage>,
    ) -> Result<Vec<AddedImage>, StoreError>;
    /// A page of a project's images in id order: those with an id above `after`, at most `limit`.
    async fn images_page(
        &self,
        project: ProjectId,
        after: Option<ImageId>,
        limit: usize,
    ) -> Result<Vec<ImageMeta>, StoreError>;
    /// A page of a project's contributions in sequence order: those with `seq > after`, at most `limit`.
    async fn contributions_page(
        &self,
        project: ProjectId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<StoredContribution>, StoreError>;
    /// Every site, in sitekey order.
    async fn sites(&self) -> Result<Vec<Site>, StoreError>;
    /// Replaces a site's record and its secret index: every hash of `Site::secret_hashes` finds the site,
    /// the hashes of the old record that are no longer there find nothing (`Conflict` if no such site).
    async fn update_site(&self, site: Site) -> Result<(), StoreError>;

    /// Readiness: `Ok` when the store can serve requests now. A store in the process needs no check.
    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// The backend chosen by configuration. An enum rather than `dyn Store` because `async fn` in traits is not
/// object safe; adding a backend adds a variant here and nowhere else.
pub enum AnyStore {
    Embedded(EmbeddedStore),
    Redis(RedisStore),
}

macro_rules! dispatch {
    ($self:ident, $s:ident => $call:expr) => {
        match $self {
            AnyStore::Embedded($s) => $call,
            AnyStore::Redis($s) => $call,
        }
    };
}

impl Store for AnyStore {
    async fn create_project(
        &self,
        project: NewProject,
        images: Vec<NewImage>,
    ) -> Result<Project, StoreError> {
        dispatch!(self, s => s.create_project(project, images).await)
    }
    async fn project(&self, id: ProjectId) -> Result<Option<Project>, StoreError> {
        dispatch!(self, s => s.project(id).await)
    }
    async fn images(&self, project: ProjectId) -> Result<Vec<ImageMeta>, StoreError> {
        dispatch!(self, s => s.images(project).await)
    }
    async fn image_data(&self, id: ImageId) -> Result<Option<ImageData>, StoreError> {
        dispatch!(self, s => s.image_data(id).await)
    }
    async fn pick_slots(&self, project: ProjectId) -> Result<Option<[Slot; 2]>, StoreError> {
        dispatch!(self, s => s.pick_slots(project).await)
    }
    async fn create_site(&self, site: Site) -> Result<(), StoreError> {
        dispatch!(self, s => s.create_site(site).await)
    }
    async fn site(&self, sitekey: &SiteKey) -> Result<Option<Site>, StoreError> {
        dispatch!(self, s => s.site(sitekey).await)
    }
    async fn site_by_secret_hash(&self, secret_hash: &str) -> Result<Option<Site>, StoreError> {
        dispatch!(self, s => s.site_by_secret_hash(secret_hash).await)
    }
    async fn put_challenge(&self, challenge: ChallengeState) -> Result<(), StoreError> {
        dispatch!(self, s => s.put_challenge(challenge).await)
    }
    async fn challenge(&self, id: &str) -> Result<Option<ChallengeState>, StoreError> {
        dispatch!(self, s => s.challenge(id).await)
    }
    async fn take_challenge(&self, id: &str) -> Result<Option<ChallengeState>, StoreError> {
        dispatch!(self, s => s.take_challenge(id).await)
    }
    async fn put_token(&self, token: TokenState) -> Result<(), StoreError> {
        dispatch!(self, s => s.put_token(token).await)
    }
    async fn take_token(&self, id: &str) -> Result<Option<TokenState>, StoreError> {
        dispatch!(self, s => s.take_token(id).await)
    }
    async fn add_contribution(&self, contribution: Contribution) -> Result<u64, StoreError> {
        dispatch!(self, s => s.add_contribution(contribution).await)
    }
    async fn contributions(&self, project: ProjectId) -> Result<Vec<StoredContribution>, StoreError> {
        dispatch!(self, s => s.contributions(project).await)
    }
    async fn image_votes(&self, project: ProjectId, image: ImageId) -> Result<Vec<LabelId>, StoreError> {
        dispatch!(self, s => s.image_votes(project, image).await)
    }
    async fn retire_unknown(&self, project: ProjectId, image: ImageId) -> Result<(), StoreError> {
        dispatch!(self, s => s.retire_unknown(project, image).await)
    }
    async fn promote_control(
        &self,
        project: ProjectId,
        image: ImageId,
        label: LabelId,
    ) -> Result<(), StoreError> {
        dispatch!(self, s => s.promote_control(project, image, label).await)
    }
    async fn reopen(&self, project: ProjectId, image: ImageId) -> Result<(), StoreError> {
        dispatch!(self, s => s.reopen(project, image).await)
    }
    async fn serving(&self, project: ProjectId, images: &[ImageId]) -> Result<Vec<Serving>, StoreError> {
        dispatch!(self, s => s.serving(project, images).await)
    }
    async fn record_control_answer(
        &self,
        project: ProjectId,
        image: ImageId,
        passed: bool,
    ) -> Result<ControlStats, StoreError> {
        dispatch!(self, s => s.record_control_answer(project, image, passed).await)
    }
    async fn control_stats(&self, project: ProjectId) -> Result<Vec<(ImageId, ControlStats)>, StoreError> {
        dispatch!(self, s => s.control_stats(project).await)
    }
    async fn add_batch_run(&self, project: ProjectId, run: BatchRun) -> Result<(), StoreError> {
        dispatch!(self, s => s.add_batch_run(project, run).await)
    }
    async fn batch_runs(&self, project: ProjectId) -> Result<Vec<BatchRun>, StoreError> {
        dispatch!(self, s => s.batch_runs(project).await)
    }
    async fn create_owner(&self, name: &str) -> Result<Owner, StoreError> {
        dispatch!(self, s => s.create_owner(name).await)
    }
    async fn owners(&self) -> Result<Vec<Owner>, StoreError> {
        dispatch!(self, s => s.owners().await)
    }
    async fn add_api_key(&self, key: ApiKeyRecord) -> Result<(), StoreError> {
        dispatch!(self, s => s.add_api_key(key).await)
    }
    async fn api_key(&self, hash: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        dispatch!(self, s => s.api_key(hash).await)
    }
    async fn projects(&self) -> Result<Vec<Project>, StoreError> {
        dispatch!(self, s => s.projects().await)
    }
    async fn update_project(&self, project: Project) -> Result<(), StoreError> {
        dispatch!(self, s => s.update_project(project).await)
    }
    async fn add_images(
        &self,
        project: ProjectId,
        images: Vec<NewImage>,
    ) -> Result<Vec<AddedImage>, StoreError> {
        dispatch!(self, s => s.add_images(project, images).await)
    }
    async fn images_page(
        &self,
        project: ProjectId,
        after: Option<ImageId>,
        limit: usize,
    ) -> Result<Vec<ImageMeta>, StoreError> {
        dispatch!(self, s => s.images_page(project, after, limit).await)
    }
    async fn contributions_page(
        &self,
        project: ProjectId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<StoredContribution>, StoreError> {
        dispatch!(self, s => s.contributions_page(project, after, limit).await)
    }
    async fn sites(&self) -> Result<Vec<Site>, StoreError> {
        dispatch!(self, s => s.sites().await)
    }
    async fn update_site(&self, site: Site) -> Result<(), StoreError> {
        dispatch!(self, s => s.update_site(site).await)
    }
    async fn ping(&self) -> Result<(), StoreError> {
        dispatch!(self, s => s.ping().await)
    }
}
