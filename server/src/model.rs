//! The server's domain records: projects, images, sites, challenges, tokens, contributions.
//!
//! These are what the store keeps. They are serialised as JSON by the store backends; field names are part of
//! the on-disk format, so renaming one needs a migration.

pub use protocol::owner::ConsensusSettings;
use protocol::{LabelId, Lang, SiteKey};
use serde::{Deserialize, Serialize};

/// Seconds since the Unix epoch. Every timestamp the server stores or compares is one of these.
pub type UnixTime = u64;

/// The current time as [`UnixTime`].
pub fn now() -> UnixTime {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// RFC 3339 (UTC) rendering of a [`UnixTime`], as the wire format wants it.
pub fn rfc3339(t: UnixTime) -> String {
    let t = i64::try_from(t).unwrap_or(i64::MAX);
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|d| d.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ProjectId(pub u64);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ImageId(pub u64);

/// A project owner: a public body (or one of its services) with API keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OwnerId(pub u64);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    pub id: OwnerId,
    /// Unique among owners.
    pub name: String,
    pub created_at: UnixTime,
}

/// An API key, kept only as the hex SHA-256 of the key (the key has 256 random bits, so an unsalted hash is
/// as strong as the key; it also lets the store find the key by its hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyRecord {
    pub hash: String,
    pub owner: OwnerId,
    /// What the owner said the key is for.
    pub name: String,
    pub created_at: UnixTime,
}

impl std::fmt::Display for ProjectId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// A text in both languages the widget speaks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Texts {
    pub fr: String,
    pub en: String,
}

impl Texts {
    pub fn get(&self, lang: Lang) -> &str {
        match lang {
            Lang::Fr => &self.fr,
            Lang::En => &self.en,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelDef {
    pub id: LabelId,
    #[serde(flatten)]
    pub text: Texts,
}

/// A labelling project: one question, one label set, at most one abstain label.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Project {
    pub id: ProjectId,
    pub name: String,
    pub question: Texts,
    pub labels: Vec<LabelDef>,
    /// The label that means "can't tell". Never the expected answer of a control.
    pub abstain: Option<LabelId>,
    pub created_at: UnixTime,
    /// `None` for projects imported by the operator without an owner (seen by no API key).
    #[serde(default)]
    pub owner: Option<OwnerId>,
    #[serde(default)]
    pub consensus: ConsensusSettings,
    /// Weight among the projects that feed one site.
    #[serde(default = "protocol::owner::default_priority")]
    pub priority: u32,
    /// No longer served; still exportable.
    #[serde(default)]
    pub archived: bool,
}

impl Project {
    pub fn has_label(&self, label: &LabelId) -> bool {
        self.labels.iter().any(|l| &l.id == label)
    }
}

/// What a project is created from (the id is assigned by the store).
#[derive(Debug, Clone, PartialEq)]
pub struct NewProject {
    pub name: String,
    pub question: Texts,
    pub labels: Vec<LabelDef>,
    pub abstain: Option<LabelId>,
    pub owner: Option<OwnerId>,
    pub consensus: ConsensusSettings,
    pub priority: u32,
}

impl NewProject {
    /// The project once the store has given it an id.
    pub fn into_project(self, id: ProjectId) -> Project {
        Project {
            id,
            name: self.name,
            question: self.question,
            labels: self.labels,
            abstain: self.abstain,
            created_at: now(),
            owner: self.owner,
            consensus: self.consensus,
            priority: self.priority,
            archived: false,
        }
    }
}

/// An image's metadata; its bytes are fetched separately, only when served.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageMeta {
    pub id: ImageId,
    pub project: ProjectId,
    /// The owner's file name, for exports. Never sent to the browser.
    pub name: String,
    pub content_type: String,
    /// The known answer (gold) when there is one.
    pub known_label: Option<LabelId>,
    /// Hex SHA-256 of the stored (normalised) bytes: a project holds each content once.
    #[serde(default)]
    pub content_hash: String,
}

/// An image to add to a project: already decoded, checked and re-encoded without metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewImage {
    pub name: String,
    pub content_type: String,
    pub bytes: Vec<u8>,
    pub known_label: Option<LabelId>,
    pub content_hash: String,
}

/// What became of one image given to `Store::add_images`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddedImage {
    Stored(ImageMeta),
    /// The project holds an image with the same content hash already: nothing was stored.
    Duplicate(ImageMeta),
}

/// How an image of a project is served now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Serving {
    /// As a control with this label (gold, or promoted by the consensus).
    Control(LabelId),
    /// As an unknown: still collecting votes.
    Unknown,
    /// Not at all: decided, contested, or gold with the abstain label.
    Retired,
}

/// Answers given to one control image, for demoting controls humans fail too often.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlStats {
    pub passed: u64,
    pub failed: u64,
}

/// A site that embeds the widget. The secret is kept only as its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Site {
    pub sitekey: SiteKey,
    /// Hex SHA-256 of the secret.
    pub secret_hash: String,
    /// Host names (no scheme, no port) whose pages may show the widget.
    pub hostnames: Vec<String>,
    pub projects: Vec<ProjectId>,
    pub created_at: UnixTime,
    /// `None` for sites the operator created without an owner.
    #[serde(default)]
    pub owner: Option<OwnerId>,
    /// After a rotation, the previous secret stays valid for a while so that deployments can catch up.
    #[serde(default)]
    pub previous_secret: Option<PreviousSecret>,
}

impl Site {
    /// Whether `hash` is a secret of this site at `at` (the current one, or the previous one in its overlap).
    /// Constant time in the hashes compared.
    pub fn accepts_secret_hash(&self, hash: &str, at: UnixTime) -> bool {
        use subtle::ConstantTimeEq as _;
        let current: bool = self.secret_hash.as_bytes().ct_eq(hash.as_bytes()).into();
        let previous = self
            .previous_secret
            .as_ref()
            .is_some_and(|p| bool::from(p.hash.as_bytes().ct_eq(hash.as_bytes())) && at < p.valid_until);
        current | previous
    }

    /// Every secret hash the store must index for this site.
    pub fn secret_hashes(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.secret_hash.as_str())
            .chain(self.previous_secret.as_ref().map(|p| p.hash.as_str()))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviousSecret {
    /// Hex SHA-256 of the previous secret.
    pub hash: String,
    pub valid_until: UnixTime,
}

/// One image slot of a challenge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slot {
    pub image: ImageId,
    /// The answer the citizen must give, for a control; `None` for the unknown, whose answer is harvested.
    pub expected: Option<LabelId>,
}

/// A challenge as the server remembers it between issuing it and receiving the answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChallengeState {
    pub id: String,
    pub sitekey: SiteKey,
    pub hostname: String,
    pub project: ProjectId,
    pub slots: Vec<Slot>,
    pub expires_at: UnixTime,
}

/// A token that was issued and not yet redeemed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenState {
    /// The token's random id (base64url), the key it is found under.
    pub id: String,
    pub sitekey: SiteKey,
    pub hostname: String,
    /// When the check was passed.
    pub challenge_ts: UnixTime,
    pub expires_at: UnixTime,
}

/// One harvested answer to an unknown image. Carries no IP address and nothing that identifies the citizen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contribution {
    pub project: ProjectId,
    pub image: ImageId,
    pub label: LabelId,
    pub sitekey: SiteKey,
    pub at: UnixTime,
    /// The challenge it answered: one challenge gives at most one contribution per image, which makes
    /// writing a contribution idempotent (a client library that resends a write cannot store it twice).
    #[serde(default)]
    pub challenge: String,
}

/// A decision a batch run changed, recorded so that no label changes silently.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedRevision {
    pub image: ImageId,
    /// `open`, `contested`, or `decided:<label>`.
    pub before: String,
    pub after: String,
}

/// One periodic batch re-estimation of a project's labels and crowd.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchRun {
    pub at: UnixTime,
    pub images: u64,
    pub votes: u64,
    /// The crowd model the online rule uses until the next run.
    pub model: consensus::CrowdModel,
    /// Share of failed answers over all the project's controls: what a control is compared with before it
    /// is demoted.
    pub control_failure_rate: f64,
    pub revisions: Vec<RecordedRevision>,
}
