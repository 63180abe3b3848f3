//! The owner domain: what the owner API (`routes::owner`) and the `cobot-server` subcommands both call, so
//! that there is one way to create a project, add images, create a site, rotate its secret or make an API key.
//!
//! Bodies arrive here as `protocol::owner` types and leave as model records (or the other way round for
//! views); every check that makes a request invalid is done here, before the store is asked to change
//! anything. The folder import (`cobot-server project import`, which also seeds the demo) is a caller like
//! the API: it validates the folder, then goes through [`create_project`] and [`store_images`].

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use anyhow::{Context as _, bail, ensure};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use consensus::CrowdModel;
use consensus::online::Decision;
use protocol::owner::{
    self as wire, DuplicateImage, ImageStatus, ImageView, ProjectView, RejectedFile, SiteView, UploadReport,
    UploadedImage,
};
use protocol::{LabelId, SiteKey, SiteSecret};
use ring::rand::{SecureRandom, SystemRandom};

use crate::intake;
use crate::labels;
use crate::model::{
    AddedImage, ApiKeyRecord, ConsensusSettings, ImageId, ImageMeta, LabelDef, NewImage, NewProject, Owner,
    OwnerId, PreviousSecret, Project, ProjectId, Serving, Site, Texts, now, rfc3339,
};
use crate::routes::owner::{API_KEY_PREFIX, api_key_hash};
use crate::routes::siteverify::secret_hash;
use crate::store::{Store, StoreError};
use crate::token::hex;

/// Longest project or owner name, in characters.
const MAX_NAME: usize = 200;
/// Longest question or label text, in characters: the widget shows them whole on a phone.
const MAX_TEXT: usize = 500;
/// Most labels in a project: more do not fit on a captcha.
const MAX_LABELS: usize = 20;
const MAX_PRIORITY: u32 = 1000;
/// Most votes an image may collect before it is set aside.
const MAX_VOTES_CAP: u32 = 100;
/// Longest file name kept as an image's external id, in bytes.
const MAX_FILE_NAME: usize = 255;
const MAX_HOSTNAMES: usize = 50;
const MAX_SITE_PROJECTS: usize = 50;
/// How long the previous secret stays valid after a rotation, unless the owner says otherwise.
pub const DEFAULT_OVERLAP_SECS: u64 = 86_400;
/// The longest overlap: a forgotten old secret must not stay valid for ever.
pub const MAX_OVERLAP_SECS: u64 = 30 * 86_400;

/// Why an owner operation is refused. `Invalid` says what is wrong with the request in a sentence.
#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    #[error("{0}")]
    Invalid(String),
    #[error("no such {0}")]
    NotFound(&'static str),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn invalid(message: impl Into<String>) -> DomainError {
    DomainError::Invalid(message.into())
}

fn check(ok: bool, message: impl FnOnce() -> String) -> Result<(), DomainError> {
    if ok { Ok(()) } else { Err(invalid(message())) }
}

fn check_text(what: &str, text: &str, max: usize) -> Result<(), DomainError> {
    check(!text.trim().is_empty(), || format!("{what} is empty"))?;
    check(text.chars().count() <= max, || {
        format!("{what} is longer than {max} characters")
    })?;
    check(!text.chars().any(char::is_control), || {
        format!("{what} contains a control character")
    })
}

fn check_texts(what: &str, texts: &wire::Texts) -> Result<(), DomainError> {
    check_text(&format!("{what} (fr)"), &texts.fr, MAX_TEXT)?;
    check_text(&format!("{what} (en)"), &texts.en, MAX_TEXT)
}

/// The bounds every project's consensus settings must meet (see `ConsensusSettings`).
pub fn check_consensus(c: &ConsensusSettings) -> Result<(), DomainError> {
    check(c.min_agreeing >= 2, || {
        format!(
            "consensus.min_agreeing is {}: at least 2 people must agree (one source never decides a label)",
            c.min_agreeing
        )
    })?;
    check((0.5..1.0).contains(&c.threshold), || {
        format!(
            "consensus.threshold is {}: it must be at least 0.5 and less than 1",
            c.threshold
        )
    })?;
    check(
        c.min_agreeing <= c.max_votes && c.max_votes <= MAX_VOTES_CAP,
        || {
            format!(
                "consensus.max_votes is {}: it must be between min_agreeing ({}) and {MAX_VOTES_CAP}",
                c.max_votes, c.min_agreeing
            )
        },
    )
}

fn check_priority(priority: u32) -> Result<(), DomainError> {
    check((1..=MAX_PRIORITY).contains(&priority), || {
        format!("priority is {priority}: it must be between 1 and {MAX_PRIORITY}")
    })
}

fn check_labels(labels: &[wire::LabelSpec]) -> Result<(), DomainError> {
    check((2..=MAX_LABELS).contains(&labels.len()), || {
        format!(
            "a project needs between 2 and {MAX_LABELS} labels, not {}",
            labels.len()
        )
    })?;
    let mut seen = HashSet::new();
    for label in labels {
        check(seen.insert(&label.id), || {
            format!("label `{}` is listed twice", label.id)
        })?;
        check_text(
            &format!("the text of label `{}` (fr)", label.id),
            &label.fr,
            MAX_TEXT,
        )?;
        check_text(
            &format!("the text of label `{}` (en)", label.id),
            &label.en,
            MAX_TEXT,
        )?;
    }
    Ok(())
}

/// Checks a project as an owner describes it and turns it into what the store creates.
///
/// Besides the bounds of each field: at least two labels other than the abstain label (a question with one
/// possible answer labels nothing), and the abstain label among the labels.
pub fn validate_project(spec: wire::NewProject, owner: Option<OwnerId>) -> Result<NewProject, DomainError> {
    check_text("name", &spec.name, MAX_NAME)?;
    check_texts("the question", &spec.question)?;
    check_labels(&spec.labels)?;
    if let Some(abstain) = &spec.abstain {
        check(spec.labels.iter().any(|l| &l.id == abstain), || {
            format!("the abstain label `{abstain}` is not among the labels")
        })?;
        check(spec.labels.len() >= 3, || {
            "a project needs at least two labels besides the abstain label".to_owned()
        })?;
    }
    check_consensus(&spec.consensus)?;
    check_priority(spec.priority)?;
    Ok(NewProject {
        name: spec.name.trim().to_owned(),
        question: Texts {
            fr: spec.question.fr,
            en: spec.question.en,
        },
        labels: spec
            .labels
            .into_iter()
            .map(|l| LabelDef {
                id: l.id,
                text: Texts { fr: l.fr, en: l.en },
            })
            .collect(),
        abstain: spec.abstain,
        owner,
        consensus: spec.consensus,
        priority: spec.priority,
    })
}

/// Creates a validated project (with no image yet: they come through [`store_images`]).
pub async fn create_project(store: &impl Store, project: NewProject) -> Result<Project, DomainError> {
    Ok(store.create_project(project, Vec::new()).await?)
}

/// Applies a patch to a project, checking the result as [`validate_project`] does. Label ids and their order
/// never change (votes and exports refer to them); their texts can.
pub async fn update_project(
    store: &impl Store,
    mut project: Project,
    patch: wire::ProjectPatch,
) -> Result<Project, DomainError> {
    if let Some(name) = patch.name {
        check_text("name", &name, MAX_NAME)?;
        name.trim().clone_into(&mut project.name);
    }
    if let Some(question) = patch.question {
        check_texts("the question", &question)?;
        project.question = Texts {
            fr: question.fr,
            en: question.en,
        };
    }
    if let Some(labels) = patch.labels {
        check_labels(&labels)?;
        let same_ids = labels.len() == project.labels.len()
            && labels
                .iter()
                .zip(&project.labels)
                .all(|(new, old)| new.id == old.id);
        check(same_ids, || {
            let ids: Vec<&str> = project.labels.iter().map(|l| l.id.as_str()).collect();
            format!(
                "labels may change their texts only: give the same ids in the same order ({})",
                ids.join(", ")
            )
        })?;
        project.labels = labels
            .into_iter()
            .map(|l| LabelDef {
                id: l.id,
                text: Texts { fr: l.fr, en: l.en },
            })
            .collect();
    }
    if let Some(consensus) = patch.consensus {
        check_consensus(&consensus)?;
        project.consensus = consensus;
    }
    if let Some(priority) = patch.priority {
        check_priority(priority)?;
        project.priority = priority;
    }
    store.update_project(project.clone()).await?;
    Ok(project)
}

/// Stops serving a project; its images, contributions and labels stay exportable. Idempotent.
pub async fn archive_project(store: &impl Store, mut project: Project) -> Result<Project, DomainError> {
    if !project.archived {
        project.archived = true;
        store.update_project(project.clone()).await?;
    }
    Ok(project)
}

pub fn project_view(project: &Project) -> ProjectView {
    ProjectView {
        id: project.id.0,
        name: project.name.clone(),
        question: wire::Texts {
            fr: project.question.fr.clone(),
            en: project.question.en.clone(),
        },
        labels: project
            .labels
            .iter()
            .map(|l| wire::LabelSpec {
                id: l.id.clone(),
                fr: l.text.fr.clone(),
                en: l.text.en.clone(),
            })
            .collect(),
        abstain: project.abstain.clone(),
        consensus: project.consensus,
        priority: project.priority,
        archived: project.archived,
        created_at: rfc3339(project.created_at),
    }
}

/// One uploaded file: its name (kept as the image's external id) and its bytes as sent, or why they could
/// not be read whole (a file over the size limit is not kept in memory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadFile {
    pub name: String,
    pub bytes: Result<Vec<u8>, intake::Rejection>,
}

/// Files that passed the intake, ready for the store, and those that did not.
#[derive(Debug, Default)]
pub struct Prepared {
    pub images: Vec<NewImage>,
    pub rejected: Vec<RejectedFile>,
}

fn rejected(file: &str, error: &str, message: impl Into<String>) -> RejectedFile {
    RejectedFile {
        file: file.to_owned(),
        error: error.to_owned(),
        message: message.into(),
    }
}

/// Runs every file through the intake and attaches its known label (gold) from `known` (file name → label
/// id, as the owner wrote it). Stores nothing: a refused file is reported with its name, a stable code and a
/// sentence, and the others go on. A label outside the project's set refuses its file (`unknown-label`); a
/// name in `known` that no file has is reported too (`no-such-file`). The abstain label is a valid known
/// label: the image is gold "can't tell" and never served as a control.
pub fn prepare_images(
    labels: &[LabelDef],
    files: Vec<UploadFile>,
    mut known: BTreeMap<String, String>,
    limits: &intake::Limits,
) -> Prepared {
    let mut prepared = Prepared::default();
    let mut names = HashSet::new();
    for file in files {
        let name = file.name;
        if name.trim().is_empty() || name.len() > MAX_FILE_NAME || name.chars().any(char::is_control) {
            prepared.rejected.push(rejected(
                &name,
                "invalid-file-name",
                format!("a file name must have 1 to {MAX_FILE_NAME} bytes and no control character"),
            ));
            continue;
        }
        if !names.insert(name.clone()) {
            prepared.rejected.push(rejected(
                &name,
                "duplicate-file-name",
                "another file of this upload has the same name",
            ));
            continue;
        }
        let known_label = match known.remove(&name) {
            None => None,
            Some(raw) => match LabelId::parse(raw.clone()) {
                Ok(id) if labels.iter().any(|l| l.id == id) => Some(id),
                _ => {
                    let ids: Vec<&str> = labels.iter().map(|l| l.id.as_str()).collect();
                    prepared.rejected.push(rejected(
                        &name,
                        "unknown-label",
                        format!("`{raw}` is not a label of the project ({})", ids.join(", ")),
                    ));
                    continue;
                }
            },
        };
        match file.bytes.and_then(|bytes| intake::accept(&bytes, limits)) {
            Ok(accepted) => prepared.images.push(NewImage {
                name,
                content_type: accepted.content_type.to_owned(),
                bytes: accepted.bytes,
                known_label,
                content_hash: accepted.content_hash,
            }),
            Err(rejection) => {
                prepared
                    .rejected
                    .push(rejected(&name, rejection.code(), rejection.to_string()));
            }
        }
    }
    for name in known.into_keys() {
        prepared.rejected.push(rejected(
            &name,
            "no-such-file",
            "a known label is given for this file name, but no file of the upload has it",
        ));
    }
    prepared
}

/// Stores prepared images in a project: the same content twice (in this call or already in the project)
/// is stored once and reported as a duplicate.
pub async fn store_images(
    store: &impl Store,
    project: ProjectId,
    prepared: Prepared,
) -> Result<UploadReport, DomainError> {
    let mut report = UploadReport {
        stored: Vec::new(),
        duplicates: Vec::new(),
        rejected: prepared.rejected,
    };
    if prepared.images.is_empty() {
        return Ok(report);
    }
    let names: Vec<String> = prepared.images.iter().map(|i| i.name.clone()).collect();
    let added = store.add_images(project, prepared.images).await?;
    for (name, added) in names.into_iter().zip(added) {
        match added {
            AddedImage::Stored(meta) => report.stored.push(UploadedImage {
                id: meta.id.0,
                external_id: meta.name,
                known_label: meta.known_label,
                content_hash: meta.content_hash,
            }),
            AddedImage::Duplicate(meta) => report.duplicates.push(DuplicateImage {
                external_id: name,
                id: meta.id.0,
                existing_external_id: meta.name,
            }),
        }
    }
    Ok(report)
}

/// An image as the owner sees it: how it is served, and for retired ones where the online rule (with the
/// project's `learned` model, as serving uses it) leaves its votes.
fn image_view(
    project: &Project,
    meta: ImageMeta,
    serving: Serving,
    votes: &[LabelId],
    learned: Option<&CrowdModel>,
) -> ImageView {
    let decided = || match labels::online_decision(project, votes, learned) {
        Decision::Decided { label, confidence } => {
            labels::label_of(project, label).map(|label| (label, confidence))
        }
        Decision::Open | Decision::Contested => None,
    };
    let (status, label, confidence) = match serving {
        Serving::Unknown => (ImageStatus::Open, None, None),
        Serving::Control(label) => {
            let confidence = if meta.known_label.is_some() {
                Some(1.0)
            } else {
                decided().map(|(_, confidence)| confidence)
            };
            (ImageStatus::Control, Some(label), confidence)
        }
        // Gold that is not served is gold with the abstain label: decided by its owner.
        Serving::Retired if meta.known_label.is_some() => {
            (ImageStatus::Decided, meta.known_label.clone(), Some(1.0))
        }
        // Retired without a decision: the rule set it aside.
        Serving::Retired => match decided() {
            Some((label, confidence)) => (ImageStatus::Decided, Some(label), Some(confidence)),
            None => (ImageStatus::Contested, None, None),
        },
    };
    ImageView {
        id: meta.id.0,
        external_id: meta.name,
        status,
        known_label: meta.known_label,
        label,
        confidence,
        votes: u32::try_from(votes.len()).unwrap_or(u32::MAX),
    }
}

/// Most images listed in one page.
pub const MAX_PAGE: usize = 1000;

/// One page of a project's images in id order, those with an id above `after`, at most `limit`, only those
/// with `status` when given (then the scan goes on until the page is full or the images end). `learned` is
/// the crowd model of the project's last batch run, if any.
pub async fn list_images(
    store: &impl Store,
    project: &Project,
    learned: Option<&CrowdModel>,
    status: Option<ImageStatus>,
    after: Option<u64>,
    limit: usize,
) -> Result<wire::ImageList, DomainError> {
    let limit = limit.clamp(1, MAX_PAGE);
    let mut images = Vec::new();
    let mut cursor = after.map(ImageId);
    loop {
        let page = store.images_page(project.id, cursor, limit).await?;
        let end = page.len() < limit;
        let ids: Vec<ImageId> = page.iter().map(|m| m.id).collect();
        let serving = store.serving(project.id, &ids).await?;
        for (meta, serving) in page.into_iter().zip(serving) {
            cursor = Some(meta.id);
            let votes = if meta.known_label.is_some() {
                Vec::new()
            } else {
                store.image_votes(project.id, meta.id).await?
            };
            let view = image_view(project, meta, serving, &votes, learned);
            if status.is_none_or(|s| s == view.status) {
                images.push(view);
                if images.len() == limit {
                    return Ok(wire::ImageList {
                        images,
                        next_after: cursor.map(|c| c.0),
                    });
                }
            }
        }
        if end {
            return Ok(wire::ImageList {
                images,
                next_after: None,
            });
        }
    }
}

/// A site's credentials and record: the secret exists only here and in the owner's hands; the store keeps
/// its hash.
#[derive(Debug)]
pub struct Issued {
    pub site: Site,
    pub secret: SiteSecret,
}

fn valid_hostname(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && !host.starts_with(['.', '-'])
}

fn random_bytes<const N: usize>() -> Result<[u8; N], DomainError> {
    let mut bytes = [0u8; N];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| DomainError::Store(StoreError::Unavailable("no system randomness".into())))?;
    Ok(bytes)
}

/// A fresh secret in the reCAPTCHA shape (`0x` and 40 hex digits), so that strict client libraries take it.
fn new_secret() -> Result<SiteSecret, DomainError> {
    let bytes: [u8; 20] = random_bytes()?;
    SiteSecret::parse(format!("0x{}", hex(&bytes))).map_err(|e| invalid(e.to_string()))
}

/// Creates a site for `owner` (or for no owner, from the operator's command line) showing `projects`,
/// which must exist, belong to `owner` and not be archived: otherwise the refusal names the project, the same
/// way whether it does not exist or belongs to another owner.
pub async fn create_site(
    store: &impl Store,
    owner: Option<OwnerId>,
    hostnames: &[String],
    projects: &[ProjectId],
) -> Result<Issued, DomainError> {
    check(!hostnames.is_empty(), || "give at least one host name".into())?;
    check(!projects.is_empty(), || "give at least one project".into())?;
    check(hostnames.len() <= MAX_HOSTNAMES, || {
        format!("at most {MAX_HOSTNAMES} host names")
    })?;
    check(projects.len() <= MAX_SITE_PROJECTS, || {
        format!("at most {MAX_SITE_PROJECTS} projects")
    })?;
    let mut hosts: Vec<String> = Vec::with_capacity(hostnames.len());
    for host in hostnames {
        let host = host.trim().to_ascii_lowercase();
        check(valid_hostname(&host), || {
            format!("`{host}` is not a host name (no scheme, no port, e.g. www.example.gouv.fr)")
        })?;
        if !hosts.contains(&host) {
            hosts.push(host);
        }
    }
    let mut ids: Vec<ProjectId> = Vec::with_capacity(projects.len());
    for id in projects {
        let project = store.project(*id).await?;
        let usable = project
            .as_ref()
            .is_some_and(|p| p.owner == owner || owner.is_none());
        check(usable, || format!("there is no project {id}"))?;
        check(project.is_some_and(|p| !p.archived), || {
            format!("project {id} is archived")
        })?;
        if !ids.contains(id) {
            ids.push(*id);
        }
    }
    let bytes: [u8; 16] = random_bytes()?;
    let mut uuid = bytes;
    // RFC 4122 version 4, variant 1.
    uuid[6] = (uuid[6] & 0x0f) | 0x40;
    uuid[8] = (uuid[8] & 0x3f) | 0x80;
    let h = hex(&uuid);
    let sitekey = SiteKey::parse(format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    ))
    .map_err(|e| invalid(e.to_string()))?;
    let secret = new_secret()?;
    let site = Site {
        sitekey,
        secret_hash: secret_hash(&secret),
        hostnames: hosts,
        projects: ids,
        created_at: now(),
        owner,
        previous_secret: None,
    };
    store.create_site(site.clone()).await?;
    Ok(Issued { site, secret })
}

/// Gives a site a new secret. The current one becomes the previous secret, valid `overlap` seconds more
/// (default [`DEFAULT_OVERLAP_SECS`], at most [`MAX_OVERLAP_SECS`]; 0 ends it now) so that the site's
/// backends can be redeployed meanwhile. A secret that was still in an earlier overlap stops working:
/// two secrets at most are valid at once.
pub async fn rotate_secret(
    store: &impl Store,
    mut site: Site,
    overlap: Option<u64>,
) -> Result<Issued, DomainError> {
    let overlap = overlap.unwrap_or(DEFAULT_OVERLAP_SECS);
    check(overlap <= MAX_OVERLAP_SECS, || {
        format!("overlap_seconds is {overlap}: at most {MAX_OVERLAP_SECS} (30 days)")
    })?;
    let secret = new_secret()?;
    let previous = std::mem::replace(&mut site.secret_hash, secret_hash(&secret));
    site.previous_secret = (overlap > 0).then(|| PreviousSecret {
        hash: previous,
        valid_until: now() + overlap,
    });
    store.update_site(site.clone()).await?;
    Ok(Issued { site, secret })
}

pub fn site_view(site: &Site) -> SiteView {
    let at = now();
    SiteView {
        sitekey: site.sitekey.clone(),
        hostnames: site.hostnames.clone(),
        projects: site.projects.iter().map(|p| p.0).collect(),
        created_at: rfc3339(site.created_at),
        previous_secret_valid_until: site
            .previous_secret
            .as_ref()
            .filter(|p| at < p.valid_until)
            .map(|p| rfc3339(p.valid_until)),
    }
}

/// The owner named `name`, if there is one.
pub async fn find_owner(store: &impl Store, name: &str) -> Result<Option<Owner>, DomainError> {
    Ok(store.owners().await?.into_iter().find(|o| o.name == name))
}

/// The owner named `name`, created if there is none.
pub async fn ensure_owner(store: &impl Store, name: &str) -> Result<Owner, DomainError> {
    let name = name.trim();
    check_text("the owner name", name, MAX_NAME)?;
    if let Some(owner) = find_owner(store, name).await? {
        return Ok(owner);
    }
    match store.create_owner(name).await {
        Ok(owner) => Ok(owner),
        // Created meanwhile by another call: that one is the owner.
        Err(StoreError::Conflict(_)) => find_owner(store, name)
            .await?
            .ok_or(DomainError::NotFound("owner")),
        Err(e) => Err(e.into()),
    }
}

/// Makes an API key for `owner`: `cobot_` and 32 random bytes in base64url. Returned this once; the store
/// keeps its hash.
pub async fn create_api_key(store: &impl Store, owner: OwnerId, name: &str) -> Result<String, DomainError> {
    check(
        name.chars().count() <= MAX_NAME && !name.chars().any(char::is_control),
        || format!("a key name has at most {MAX_NAME} characters and no control character"),
    )?;
    let bytes: [u8; 32] = random_bytes()?;
    let key = format!("{API_KEY_PREFIX}{}", B64.encode(bytes));
    store
        .add_api_key(ApiKeyRecord {
            hash: api_key_hash(&key),
            owner,
            name: name.to_owned(),
            created_at: now(),
        })
        .await?;
    Ok(key)
}

/// Summary of an import, for the operator.
#[derive(Debug, Clone, PartialEq)]
pub struct Imported {
    pub project: Project,
    pub report: UploadReport,
}

fn parse_project_file(dir: &Path, owner: Option<OwnerId>) -> anyhow::Result<NewProject> {
    let path = dir.join("project.toml");
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
    // The same body as `POST /api/v1/projects`, in TOML.
    let spec: wire::NewProject =
        toml::from_str(&text).with_context(|| format!("invalid {}", path.display()))?;
    validate_project(spec, owner).context("project.toml")
}

fn parse_labels_csv(dir: &Path, project: &NewProject) -> anyhow::Result<BTreeMap<String, String>> {
    let path = dir.join("labels.csv");
    let mut reader =
        csv::Reader::from_path(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let headers = reader.headers()?.clone();
    ensure!(
        headers.iter().map(str::trim).eq(["file", "label"]),
        "{}: the header must be `file,label`",
        path.display()
    );
    let mut known = BTreeMap::new();
    for (line, record) in reader.records().enumerate() {
        let record = record.with_context(|| format!("{}: line {}", path.display(), line + 2))?;
        let (file, label) = (record[0].trim().to_owned(), record[1].trim());
        ensure!(
            project.labels.iter().any(|l| l.id.as_str() == label),
            "labels.csv line {}: `{label}` is not a label of project.toml",
            line + 2
        );
        ensure!(
            known.insert(file.clone(), label.to_owned()).is_none(),
            "labels.csv: `{file}` is listed twice"
        );
    }
    Ok(known)
}

/// Imports a project from a folder holding `project.toml` (the body of `POST /api/v1/projects` in TOML),
/// `labels.csv` and the images (PNG, JPEG or WebP). Images listed in `labels.csv` are gold (their label is
/// known); the others are unknowns to label. Nothing is stored unless the whole folder is valid; then the
/// project and its images are stored as the owner API stores them.
pub async fn import_project(
    store: &impl Store,
    dir: &Path,
    owner: Option<OwnerId>,
) -> anyhow::Result<Imported> {
    let project = parse_project_file(dir, owner)?;
    let known = parse_labels_csv(dir, &project)?;
    let mut names: Vec<String> = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.')
            || name == "project.toml"
            || name == "labels.csv"
            || !entry.file_type()?.is_file()
        {
            continue;
        }
        let ext = Path::new(&name)
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        if !matches!(ext.as_deref(), Some("png" | "jpg" | "jpeg" | "webp")) {
            bail!("{name}: only .png, .jpg, .jpeg and .webp images can be imported");
        }
        names.push(name);
    }
    names.sort();
    let limits = intake::Limits::default();
    let mut files = Vec::with_capacity(names.len());
    for name in names {
        let path = dir.join(&name);
        // Checked before reading too, so that a huge file is not read into memory only to be refused.
        let size = std::fs::metadata(&path)?.len();
        ensure!(
            usize::try_from(size).is_ok_and(|size| size <= limits.max_file_bytes),
            "{name}: {size} bytes, more than the {} allowed",
            limits.max_file_bytes
        );
        let bytes = std::fs::read(&path).with_context(|| format!("cannot read {name}"))?;
        files.push(UploadFile {
            name,
            bytes: Ok(bytes),
        });
    }
    let prepared = prepare_images(&project.labels, files, known, &limits);
    if let Some(first) = prepared.rejected.first() {
        bail!(
            "{}: not a usable image ({}: {})",
            first.file,
            first.error,
            first.message
        );
    }
    let controls = prepared
        .images
        .iter()
        .filter(|i| {
            i.known_label
                .as_ref()
                .is_some_and(|l| Some(l) != project.abstain.as_ref())
        })
        .count();
    let unknowns = prepared.images.iter().filter(|i| i.known_label.is_none()).count();
    ensure!(
        controls >= 1,
        "at least one image needs a known label (other than the abstain label) to serve as a control"
    );
    ensure!(
        controls + unknowns >= 2,
        "a challenge shows two images: import at least two"
    );
    let project = create_project(store, project).await?;
    let report = store_images(store, project.id, prepared).await?;
    Ok(Imported { project, report })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportWhat {
    Contributions,
    Labels,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    Jsonl,
    Csv,
}
