//! The owner API's bodies: what project owners (public bodies) and their tools exchange with the server.
//!
//! Every route is under `/api/v1/` and takes `Authorization: Bearer <api key>`. Errors are [`crate::ApiError`].
//! With the `openapi` feature, every type here derives `utoipa::ToSchema`, and the server's `OpenAPI` document
//! (`/api/v1/openapi.json`) is generated from them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{LabelId, SiteKey};

/// Paths of the owner API (`{id}` a project id, `{sitekey}` a site key).
pub mod paths {
    pub const PROJECTS: &str = "/api/v1/projects";
    pub const SITES: &str = "/api/v1/sites";
    pub const KEYS: &str = "/api/v1/keys";
    pub const OPENAPI: &str = "/api/v1/openapi.json";

    pub fn project(id: u64) -> String {
        format!("{PROJECTS}/{id}")
    }
    pub fn images(id: u64) -> String {
        format!("{PROJECTS}/{id}/images")
    }
    pub fn progress(id: u64) -> String {
        format!("{PROJECTS}/{id}/progress")
    }
    pub fn labels(id: u64) -> String {
        format!("{PROJECTS}/{id}/labels")
    }
    pub fn contributions(id: u64) -> String {
        format!("{PROJECTS}/{id}/contributions")
    }
    pub fn export_zip(id: u64) -> String {
        format!("{PROJECTS}/{id}/export.zip")
    }
    pub fn secrets(sitekey: &str) -> String {
        format!("{SITES}/{sitekey}/secrets")
    }
}

/// Names of the multipart parts of an image upload.
pub mod upload {
    /// One part per image file; its `filename` is kept as the image's external id.
    pub const IMAGE_PART: &str = "image";
    /// Optional: a JSON object `{"<file name>": "<label id>"}` giving the known label (gold) of some files.
    pub const LABELS_PART: &str = "labels";
}

/// A text in French and English.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Texts {
    pub fr: String,
    pub en: String,
}

/// One answer of a project's question.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LabelSpec {
    pub id: LabelId,
    pub fr: String,
    pub en: String,
}

/// How votes become a label. The defaults need no tuning; see `consensus::Policy`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct ConsensusSettings {
    /// Distinct votes that must agree on a label before it is decided (at least 2).
    pub min_agreeing: u32,
    /// Posterior probability the leading label must reach (0.5 to 0.9999).
    pub threshold: f64,
    /// Votes after which an undecided image is set aside as contested (at least `min_agreeing`, at most 100).
    pub max_votes: u32,
}

impl Default for ConsensusSettings {
    fn default() -> Self {
        Self {
            min_agreeing: 3,
            threshold: 0.95,
            max_votes: 10,
        }
    }
}

/// `POST /api/v1/projects`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewProject {
    pub name: String,
    pub question: Texts,
    /// At least two; ids are short lower-case words (`north`, `flat`).
    pub labels: Vec<LabelSpec>,
    /// The label that means "can't tell", one of `labels`.
    #[serde(default)]
    pub abstain: Option<LabelId>,
    #[serde(default)]
    pub consensus: ConsensusSettings,
    /// Weight of this project among those that feed one site (default 1).
    #[serde(default = "default_priority")]
    pub priority: u32,
}

pub fn default_priority() -> u32 {
    1
}

/// `PATCH /api/v1/projects/{id}`: the fields to change. Label ids cannot change once images are voted on;
/// their texts can.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ProjectPatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub question: Option<Texts>,
    /// New texts for existing labels (same ids, same order).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<LabelSpec>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consensus: Option<ConsensusSettings>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u32>,
}

/// A project as the owner sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProjectView {
    pub id: u64,
    pub name: String,
    pub question: Texts,
    pub labels: Vec<LabelSpec>,
    pub abstain: Option<LabelId>,
    pub consensus: ConsensusSettings,
    pub priority: u32,
    /// An archived project is no longer served; its images and labels stay exportable.
    pub archived: bool,
    /// RFC 3339, UTC.
    pub created_at: String,
}

/// `GET /api/v1/projects`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProjectList {
    pub projects: Vec<ProjectView>,
}

/// Where an image stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum ImageStatus {
    /// Collecting votes.
    Open,
    /// The crowd decided its label.
    Decided,
    /// The crowd could not agree within the vote cap; set aside.
    Contested,
    /// Served as a control: a known label, given by the owner (gold) or promoted from a decided label.
    Control,
}

/// One stored image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ImageView {
    pub id: u64,
    /// The owner's file name, as uploaded.
    pub external_id: String,
    pub status: ImageStatus,
    /// The known label of a gold image.
    pub known_label: Option<LabelId>,
    /// The decided label (or the control's label).
    pub label: Option<LabelId>,
    /// Posterior probability of `label` under the online rule; 1 for gold.
    pub confidence: Option<f64>,
    pub votes: u32,
}

/// `GET /api/v1/projects/{id}/images?status=&after=&limit=`: one page, in id order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ImageList {
    pub images: Vec<ImageView>,
    /// Pass as `after` to get the next page; absent on the last page.
    pub next_after: Option<u64>,
}

/// An image of an upload that was stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UploadedImage {
    pub id: u64,
    pub external_id: String,
    pub known_label: Option<LabelId>,
    /// Hex SHA-256 of the normalised image.
    pub content_hash: String,
}

/// An image of an upload that the project holds already (same normalised content).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DuplicateImage {
    pub external_id: String,
    /// The image already stored.
    pub id: u64,
    pub existing_external_id: String,
}

/// A file of an upload that was refused, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RejectedFile {
    pub file: String,
    /// A stable machine code (`unsupported-format`, `too-many-pixels`, `unknown-label`...).
    pub error: String,
    pub message: String,
}

/// `POST /api/v1/projects/{id}/images` reply: the good files are stored, the others reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UploadReport {
    pub stored: Vec<UploadedImage>,
    pub duplicates: Vec<DuplicateImage>,
    pub rejected: Vec<RejectedFile>,
}

/// `POST /api/v1/sites`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewSite {
    /// Host names (no scheme, no port) whose pages may show the widget.
    pub hostnames: Vec<String>,
    /// Projects (of the same owner) whose images the site shows.
    pub projects: Vec<u64>,
}

/// A site as the owner sees it; the secret is never shown again after creation or rotation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SiteView {
    pub sitekey: SiteKey,
    pub hostnames: Vec<String>,
    pub projects: Vec<u64>,
    pub created_at: String,
    /// While a rotation overlaps, the previous secret stays valid until then (RFC 3339).
    pub previous_secret_valid_until: Option<String>,
}

/// `GET /api/v1/sites`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SiteList {
    pub sites: Vec<SiteView>,
}

/// `POST /api/v1/sites` and `POST /api/v1/sites/{sitekey}/secrets` reply: the secret, shown this once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SiteCredentials {
    pub sitekey: SiteKey,
    pub secret: String,
    pub site: SiteView,
}

/// `POST /api/v1/sites/{sitekey}/secrets` body (may be empty).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RotateSecret {
    /// How long the previous secret stays valid, in seconds (default 86 400, at most 30 days; 0 ends it now).
    #[serde(default)]
    pub overlap_seconds: Option<u64>,
}

/// `POST /api/v1/keys` body (may be empty): another API key for the caller's owner account.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    /// What the key is for (`ci`, `laptop`), for the owner's own bookkeeping.
    #[serde(default)]
    pub name: Option<String>,
}

/// An API key, shown this once (stored hashed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApiKeyCreated {
    pub api_key: String,
    pub owner: String,
}

/// Images of a project by status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StatusCounts {
    pub total: u64,
    pub open: u64,
    pub decided: u64,
    pub contested: u64,
    pub control: u64,
}

/// Contributions received on one day (UTC).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DayCount {
    /// `YYYY-MM-DD`.
    pub day: String,
    pub contributions: u64,
}

/// `GET /api/v1/projects/{id}/progress`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Progress {
    pub project: u64,
    pub images: StatusCounts,
    /// Votes received per label id (the abstain label included).
    pub votes_by_label: BTreeMap<String, u64>,
    pub contributions_per_day: Vec<DayCount>,
    /// Expected share of decided labels that are right: the mean posterior of the decided labels under the
    /// batch model. `null` before any label is decided.
    pub estimated_label_accuracy: Option<f64>,
    /// Share of right answers to controls. `null` before any control was answered.
    pub control_pass_rate: Option<f64>,
}

/// One line of the labels export (`GET /api/v1/projects/{id}/labels?format=jsonl|csv`; in CSV, `votes` is
/// a `label:count` list separated by `;`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LabelRecord {
    pub image: u64,
    pub external_id: String,
    /// `gold`, `decided`, `contested` or `open`.
    pub status: String,
    /// The gold or decided label.
    pub label: Option<LabelId>,
    /// Posterior probability of `label` (1 for gold); for open images, of the leading label.
    pub confidence: Option<f64>,
    pub votes: BTreeMap<String, u32>,
}

/// One line of the raw contributions export. Citizens are anonymous: nothing here identifies one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ContributionRecord {
    /// Increasing in acknowledgement order.
    pub seq: u64,
    pub image: u64,
    pub external_id: String,
    pub label: LabelId,
    /// RFC 3339, UTC.
    pub at: String,
    /// The site the answer was given on.
    pub sitekey: SiteKey,
}
