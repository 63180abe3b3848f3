//! Owner tools: import a project from a folder, create a site, export contributions and labels.
//!
//! The command line calls these today; the owner API will call the same functions.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::path::Path;

use anyhow::{Context as _, bail, ensure};
use protocol::{LabelId, SiteKey, SiteSecret};
use ring::rand::{SecureRandom, SystemRandom};
use serde::Deserialize;

use crate::intake;
use crate::model::{
    ConsensusSettings, ImageId, LabelDef, NewImage, NewProject, Project, ProjectId, Site, Texts, now, rfc3339,
};
use crate::routes::siteverify::secret_hash;
use crate::store::Store;
use crate::token::hex;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProjectFile {
    name: String,
    question: Texts,
    #[serde(default)]
    abstain: Option<String>,
    labels: Vec<LabelFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LabelFile {
    id: String,
    fr: String,
    en: String,
}

/// Summary of an import, for the operator.
#[derive(Debug, Clone, PartialEq)]
pub struct Imported {
    pub project: Project,
    pub controls: usize,
    pub unknowns: usize,
}

fn parse_project_file(dir: &Path) -> anyhow::Result<NewProject> {
    let path = dir.join("project.toml");
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let file: ProjectFile = toml::from_str(&text).with_context(|| format!("invalid {}", path.display()))?;
    ensure!(!file.name.trim().is_empty(), "project.toml: `name` is empty");
    ensure!(
        !file.question.fr.trim().is_empty() && !file.question.en.trim().is_empty(),
        "project.toml: the question needs both `fr` and `en`"
    );
    ensure!(
        file.labels.len() >= 2,
        "project.toml: at least two [[labels]] are needed"
    );
    let mut seen = HashSet::new();
    let mut labels = Vec::with_capacity(file.labels.len());
    for label in file.labels {
        let id = LabelId::parse(label.id).context("project.toml")?;
        ensure!(
            seen.insert(id.clone()),
            "project.toml: label `{id}` is listed twice"
        );
        ensure!(
            !label.fr.trim().is_empty() && !label.en.trim().is_empty(),
            "project.toml: label `{id}` needs both `fr` and `en` texts"
        );
        labels.push(LabelDef {
            id,
            text: Texts {
                fr: label.fr,
                en: label.en,
            },
        });
    }
    let abstain = file
        .abstain
        .map(LabelId::parse)
        .transpose()
        .context("project.toml: `abstain`")?;
    if let Some(abstain) = &abstain {
        ensure!(
            seen.contains(abstain),
            "project.toml: the abstain label `{abstain}` is not among the labels"
        );
    }
    Ok(NewProject {
        name: file.name,
        question: file.question,
        labels,
        abstain,
        owner: None,
        consensus: ConsensusSettings::default(),
        priority: protocol::owner::default_priority(),
    })
}

fn parse_labels_csv(dir: &Path, project: &NewProject) -> anyhow::Result<HashMap<String, LabelId>> {
    let path = dir.join("labels.csv");
    let mut reader =
        csv::Reader::from_path(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let headers = reader.headers()?.clone();
    ensure!(
        headers.iter().map(str::trim).eq(["file", "label"]),
        "{}: the header must be `file,label`",
        path.display()
    );
    let mut known = HashMap::new();
    for (line, record) in reader.records().enumerate() {
        let record = record.with_context(|| format!("{}: line {}", path.display(), line + 2))?;
        let (file, label) = (record[0].trim().to_owned(), record[1].trim());
        let label = LabelId::parse(label).with_context(|| format!("labels.csv line {}", line + 2))?;
        ensure!(
            project.labels.iter().any(|l| l.id == label),
            "labels.csv line {}: `{label}` is not a label of project.toml",
            line + 2
        );
        ensure!(
            known.insert(file.clone(), label).is_none(),
            "labels.csv: `{file}` is listed twice"
        );
    }
    Ok(known)
}

/// Imports a project from a folder holding `project.toml`, `labels.csv` and the images (JPEG, PNG or WebP).
/// Images listed in `labels.csv` are gold (their label is known); the others are unknowns to label.
/// Every image goes through [`intake::accept`], which recognises the format from the content (the file name
/// only tells images from other files) and stores a normalised tile without metadata.
/// Nothing is stored unless the whole folder is valid.
pub async fn import_project(store: &impl Store, dir: &Path) -> anyhow::Result<Imported> {
    let project = parse_project_file(dir)?;
    let mut known = parse_labels_csv(dir, &project)?;
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
    let mut images = Vec::with_capacity(names.len());
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
        let accepted =
            intake::accept(&bytes, &limits).with_context(|| format!("{name}: not a usable image"))?;
        let known_label = known.remove(&name);
        images.push(NewImage {
            content_hash: accepted.content_hash,
            name,
            content_type: accepted.content_type.into(),
            bytes: accepted.bytes,
            known_label,
        });
    }
    if let Some(missing) = known.keys().next() {
        bail!("labels.csv names `{missing}`, which is not an image of the folder");
    }
    let controls = images
        .iter()
        .filter(|i| {
            i.known_label
                .as_ref()
                .is_some_and(|l| Some(l) != project.abstain.as_ref())
        })
        .count();
    let unknowns = images.iter().filter(|i| i.known_label.is_none()).count();
    ensure!(
        controls >= 1,
        "at least one image needs a known label (other than the abstain label) to serve as a control"
    );
    ensure!(
        controls + unknowns >= 2,
        "a challenge shows two images: import at least two"
    );
    let project = store.create_project(project, images).await?;
    Ok(Imported {
        project,
        controls,
        unknowns,
    })
}

/// A new site's credentials. The secret exists only here and in the operator's hands; the store keeps its hash.
#[derive(Debug)]
pub struct NewSite {
    pub sitekey: SiteKey,
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

pub async fn create_site(
    store: &impl Store,
    hostnames: &[String],
    projects: &[ProjectId],
) -> anyhow::Result<NewSite> {
    ensure!(!hostnames.is_empty(), "give at least one --hostname");
    ensure!(!projects.is_empty(), "give at least one --project");
    let hostnames: Vec<String> = hostnames.iter().map(|h| h.trim().to_ascii_lowercase()).collect();
    for host in &hostnames {
        ensure!(
            valid_hostname(host),
            "`{host}` is not a host name (no scheme, no port, e.g. www.example.gouv.fr)"
        );
    }
    for project in projects {
        ensure!(
            store.project(*project).await?.is_some(),
            "there is no project {project}"
        );
    }
    let rng = SystemRandom::new();
    let mut bytes = [0u8; 36];
    rng.fill(&mut bytes)
        .map_err(|_| anyhow::anyhow!("no system randomness"))?;
    let (uuid, secret) = bytes.split_at_mut(16);
    // RFC 4122 version 4, variant 1.
    uuid[6] = (uuid[6] & 0x0f) | 0x40;
    uuid[8] = (uuid[8] & 0x3f) | 0x80;
    let h = hex(uuid);
    let sitekey = SiteKey::parse(format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    ))?;
    let secret = SiteSecret::parse(format!("0x{}", hex(&secret[..20])))?;
    store
        .create_site(Site {
            sitekey: sitekey.clone(),
            secret_hash: secret_hash(&secret),
            hostnames,
            projects: projects.to_vec(),
            created_at: now(),
            owner: None,
            previous_secret: None,
        })
        .await?;
    Ok(NewSite { sitekey, secret })
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

/// Writes a project's raw contributions, or its labels (gold labels, and for unknowns the consensus: decided,
/// contested or open, with the posterior of the leading label), as JSON lines or CSV.
pub async fn export(
    store: &impl Store,
    project_id: ProjectId,
    what: ExportWhat,
    format: ExportFormat,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let Some(project) = store.project(project_id).await? else {
        bail!("there is no project {project_id}")
    };
    let images: BTreeMap<ImageId, _> = store
        .images(project_id)
        .await?
        .into_iter()
        .map(|i| (i.id, i))
        .collect();
    let contributions = store.contributions(project_id).await?;
    let mut rows: Vec<Row> = Vec::new();
    match what {
        ExportWhat::Contributions => {
            for c in &contributions {
                let name = images.get(&c.contribution.image).map_or("", |i| i.name.as_str());
                rows.push(row([
                    ("seq", c.seq.into()),
                    ("image", name.into()),
                    ("label", c.contribution.label.as_str().into()),
                    ("at", rfc3339(c.contribution.at).into()),
                    ("sitekey", c.contribution.sitekey.as_str().into()),
                ]));
            }
        }
        ExportWhat::Labels => {
            // Consensus over all contributions; gold labels are the owner's own.
            let metas: Vec<_> = images.values().cloned().collect();
            for label in crate::labels::estimate(&project, &metas, &contributions) {
                let name = images.get(&label.image).map_or("", |i| i.name.as_str());
                let (leading, confidence) = label
                    .leading
                    .map_or((serde_json::Value::Null, serde_json::Value::Null), |(l, p)| {
                        (l.as_str().into(), p.into())
                    });
                rows.push(row([
                    ("image", name.into()),
                    (
                        "label",
                        label.label.map_or(serde_json::Value::Null, |l| l.as_str().into()),
                    ),
                    ("status", label.status.as_str().into()),
                    (
                        "confidence",
                        if label.status == crate::labels::Status::Gold {
                            1.0.into()
                        } else {
                            confidence
                        },
                    ),
                    ("leading", leading),
                    ("votes", label.votes.into()),
                ]));
            }
        }
    }
    write_rows(&rows, format, out)
}

/// One exported record, its fields in a fixed order (the CSV columns, and the JSON keys in the same order).
struct Row(Vec<(&'static str, serde_json::Value)>);

impl serde::Serialize for Row {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

fn row<const N: usize>(fields: [(&'static str, serde_json::Value); N]) -> Row {
    Row(fields.into())
}

fn write_rows(rows: &[Row], format: ExportFormat, out: &mut impl Write) -> anyhow::Result<()> {
    match format {
        ExportFormat::Jsonl => {
            for r in rows {
                serde_json::to_writer(&mut *out, r)?;
                out.write_all(b"\n")?;
            }
        }
        ExportFormat::Csv => {
            let mut writer = csv::Writer::from_writer(out);
            if let Some(first) = rows.first() {
                writer.write_record(first.0.iter().map(|(k, _)| k))?;
            }
            for r in rows {
                writer.write_record(r.0.iter().map(|(_, v)| match v {
                    serde_json::Value::String(s) => s.clone(),
                    serde_json::Value::Null => String::new(),
                    other => other.to_string(),
                }))?;
            }
            writer.flush()?;
        }
    }
    Ok(())
}
