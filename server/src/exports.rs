//! A project's progress and exports: decided labels (JSON lines or CSV), raw contributions (JSON lines) and an
//! ImageFolder-style zip for training. The owner API streams these; `cobot-server project export` writes the
//! same bytes to standard output.
//!
//! Exports stream: images and contributions are read from the store a page at a time and each page is handed
//! to a [`Sink`] as soon as it is written. What stays in memory is bounded by the number of images and votes,
//! never by the bytes exported: the batch model needs every vote, kept as compact indices ([`Tally`]), and the
//! zip's central directory needs a record per entry. Image bytes and metadata are never all held at once.

pub mod zip;

use std::collections::BTreeMap;
use std::io::{self, Write};

use consensus::batch::{self, Dataset, EmOptions, Estimate, Vote};
use consensus::online::Decision;
use consensus::{Answer, Label, Source};
use protocol::LabelId;
use protocol::owner::{ContributionRecord, DayCount, LabelRecord, Progress, StatusCounts};

use crate::labels::{self, Status};
use crate::model::{ImageId, ImageMeta, Project, Serving, rfc3339};
use crate::store::{Store, StoreError};
use zip::ZipWriter;

/// Images or contributions read from the store at once.
pub const PAGE: usize = 1000;
/// Zip bytes gathered before they are handed to the sink: a few images, not one tiny chunk per header.
const ZIP_CHUNK: usize = 256 * 1024;

/// Why an export stopped.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Writing failed, or the reader went away.
    #[error("cannot write the export: {0}")]
    Io(#[from] io::Error),
}

/// Where an export goes, chunk by chunk, as it is produced.
#[allow(async_fn_in_trait)] // used with concrete types only, on one thread
pub trait Sink {
    async fn send(&mut self, chunk: Vec<u8>) -> io::Result<()>;
}

/// A sink over a blocking writer: standard output for the command line, a counter for benchmarks.
pub struct WriteSink<W>(pub W);

impl<W: Write> Sink for WriteSink<W> {
    async fn send(&mut self, chunk: Vec<u8>) -> io::Result<()> {
        self.0.write_all(&chunk)
    }
}

/// The formats of the labels export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelsFormat {
    Jsonl,
    Csv,
}

impl LabelsFormat {
    /// The value of the `format` query parameter.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "jsonl" => Some(Self::Jsonl),
            "csv" => Some(Self::Csv),
            _ => None,
        }
    }
}

/// Every vote of a project, compact: image ids, and per vote an item index and a label index.
pub struct Tally {
    /// Item index → image id, in id order (the order of `images_page`).
    ids: Vec<ImageId>,
    /// The project's label ids (the abstain label included): the columns of `counts`.
    labels: Vec<LabelId>,
    /// Votes per item and label, row-major `ids.len() × labels.len()`.
    counts: Vec<u32>,
    /// The votes as the batch model takes them.
    data: Dataset,
    /// Gold items and their class (gold with the abstain label is not a class).
    gold: Vec<(u32, Label)>,
    /// Gold images humans failed as controls, re-opened to the crowd: their label is the crowd's now.
    doubted: std::collections::HashSet<ImageId>,
    /// Contributions per UTC day (days since the epoch).
    per_day: BTreeMap<u64, u64>,
}

impl Tally {
    /// Reads a project's images and contributions, a page at a time. Votes for a label the project does not
    /// have, or for an image it no longer holds, are left out.
    pub async fn collect(store: &impl Store, project: &Project) -> Result<Self, StoreError> {
        let (class_of, classes) = labels::class_index(project);
        let labels: Vec<LabelId> = project.labels.iter().map(|l| l.id.clone()).collect();
        let answers: Vec<Answer> = labels
            .iter()
            .map(|id| class_of.get(id).map_or(Answer::Abstain, |l| Answer::Label(*l)))
            .collect();
        let mut ids = Vec::new();
        let mut gold = Vec::new();
        let mut doubted = std::collections::HashSet::new();
        let mut after = None;
        loop {
            let page = store.images_page(project.id, after, PAGE).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.id);
            let page_ids: Vec<ImageId> = page.iter().map(|m| m.id).collect();
            let serving = store.serving(project.id, &page_ids).await?;
            for (meta, serving) in page.iter().zip(serving) {
                let item = index32(ids.len());
                if let Some(class) = meta.known_label.as_ref().and_then(|k| class_of.get(k)) {
                    if labels::gold_is_trusted(&serving) {
                        gold.push((item, *class));
                    } else {
                        doubted.insert(meta.id);
                    }
                }
                ids.push(meta.id);
            }
        }
        let mut counts = vec![0u32; ids.len() * labels.len()];
        let mut votes = Vec::new();
        let mut per_day = BTreeMap::new();
        let mut after = 0;
        loop {
            let page = store.contributions_page(project.id, after, PAGE).await?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            for stored in &page {
                let c = &stored.contribution;
                *per_day.entry(c.at / 86_400).or_insert(0) += 1;
                let (Ok(item), Some(label)) = (
                    ids.binary_search(&c.image),
                    labels.iter().position(|l| *l == c.label),
                ) else {
                    continue;
                };
                counts[item * labels.len() + label] += 1;
                votes.push(Vote {
                    item: index32(item),
                    source: Source::Anonymous,
                    answer: answers[label],
                });
            }
        }
        let data = Dataset {
            n_items: index32(ids.len()),
            n_classes: u16::try_from(classes.len()).unwrap_or(u16::MAX),
            votes,
        };
        Ok(Self {
            ids,
            labels,
            counts,
            data,
            gold,
            doubted,
            per_day,
        })
    }

    /// The item index of an image, if it was in the project when the tally was taken.
    fn item(&self, image: ImageId) -> Option<usize> {
        self.ids.binary_search(&image).ok()
    }

    /// An image's votes per label id, the labels nobody chose left out.
    fn votes(&self, item: Option<usize>) -> BTreeMap<String, u32> {
        let n = self.labels.len();
        item.map(|i| &self.counts[i * n..(i + 1) * n])
            .unwrap_or_default()
            .iter()
            .zip(&self.labels)
            .filter(|(count, _)| **count > 0)
            .map(|(count, label)| (label.as_str().to_owned(), *count))
            .collect()
    }
}

/// The batch consensus of a project: its votes, the Dawid–Skene estimate (gold clamped) and the decision
/// of each image under the project's policy.
pub struct Consensus {
    tally: Tally,
    estimate: Estimate,
    decisions: Vec<Decision>,
    classes: Vec<LabelId>,
}

impl Consensus {
    /// Reads every vote and runs the batch model. The model runs on a blocking thread: on a large project it
    /// takes a while, and the server's workers must keep answering meanwhile.
    pub async fn collect(store: &impl Store, project: &Project) -> Result<Self, StoreError> {
        let tally = Tally::collect(store, project).await?;
        let policy = labels::policy(project);
        let classes = labels::class_index(project).1.into_iter().cloned().collect();
        let (tally, estimate, decisions) = actix_web::web::block(move || {
            let estimate = batch::dawid_skene(&tally.data, &tally.gold, &EmOptions::default());
            let decisions = estimate.decisions(&tally.data, &tally.gold, &policy);
            (tally, estimate, decisions)
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("the batch model did not finish: {e}")))?;
        Ok(Self {
            tally,
            estimate,
            decisions,
            classes,
        })
    }

    fn class(&self, label: Label) -> Option<LabelId> {
        self.classes.get(label.index()).cloned()
    }

    /// The labels export's record of one image.
    pub fn record(&self, meta: &ImageMeta) -> LabelRecord {
        let item = self.tally.item(meta.id);
        let decision = item.map_or(Decision::Open, |i| self.decisions[i]);
        let gold = meta
            .known_label
            .as_ref()
            .filter(|_| !self.tally.doubted.contains(&meta.id));
        let (status, label, confidence) = match (gold, decision) {
            (Some(known), _) => (Status::Gold, Some(known.clone()), Some(1.0)),
            (None, Decision::Decided { label, confidence }) => {
                (Status::Decided, self.class(label), Some(confidence))
            }
            (None, Decision::Contested) => (Status::Contested, None, None),
            (None, Decision::Open) => {
                // The leading label's posterior, once someone voted: how close the image is to a decision.
                let voted = item.is_some_and(|i| self.tally.counts_of(i).iter().any(|c| *c > 0));
                let leading = item.filter(|_| voted).and_then(|i| {
                    self.estimate
                        .posterior(index32(i))
                        .iter()
                        .copied()
                        .reduce(f64::max)
                });
                (Status::Open, None, leading)
            }
        };
        LabelRecord {
            image: meta.id.0,
            external_id: meta.name.clone(),
            status: status.as_str().to_owned(),
            label,
            confidence,
            votes: self.tally.votes(item),
        }
    }

    /// The mean posterior of the labels the crowd decided (gold left out): the share of them expected right.
    pub fn estimated_accuracy(&self) -> Option<f64> {
        let gold: std::collections::HashSet<u32> = self.tally.gold.iter().map(|(i, _)| *i).collect();
        let decided: Vec<f64> = self
            .decisions
            .iter()
            .enumerate()
            .filter(|(i, _)| !gold.contains(&index32(*i)))
            .filter_map(|(_, d)| match d {
                Decision::Decided { confidence, .. } => Some(*confidence),
                _ => None,
            })
            .collect();
        (!decided.is_empty()).then(|| decided.iter().sum::<f64>() / as_f64(decided.len() as u64))
    }
}

impl Tally {
    fn counts_of(&self, item: usize) -> &[u32] {
        let n = self.labels.len();
        &self.counts[item * n..(item + 1) * n]
    }
}

/// A project's progress: images by status (as served now, and for retired unknowns the online rule on
/// their votes), votes by label, contributions per day, the batch model's expected accuracy and the share
/// of right answers to controls.
/// `learned` is the crowd model of the project's last batch run (what the online rule used).
pub async fn progress(
    store: &impl Store,
    project: &Project,
    learned: Option<&consensus::CrowdModel>,
) -> Result<Progress, StoreError> {
    let consensus = Consensus::collect(store, project).await?;
    let mut images = StatusCounts::default();
    let mut after = None;
    loop {
        let page = store.images_page(project.id, after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        let ids: Vec<ImageId> = page.iter().map(|m| m.id).collect();
        let serving = store.serving(project.id, &ids).await?;
        for (meta, serving) in page.iter().zip(serving) {
            images.total += 1;
            let counter = match serving {
                Serving::Control(_) => &mut images.control,
                Serving::Unknown => &mut images.open,
                // Gold with the abstain label is never served: its label is known, as if decided.
                Serving::Retired
                    if meta
                        .known_label
                        .as_ref()
                        .is_some_and(|k| labels::class_of(project, k).is_none()) =>
                {
                    &mut images.decided
                }
                Serving::Retired => {
                    let votes = store.image_votes(project.id, meta.id).await?;
                    match labels::online_decision(project, &votes, learned) {
                        Decision::Decided { .. } => &mut images.decided,
                        Decision::Contested => &mut images.contested,
                        Decision::Open => &mut images.open,
                    }
                }
            };
            *counter += 1;
        }
    }
    let tally = &consensus.tally;
    let n = tally.labels.len();
    let votes_by_label = tally
        .labels
        .iter()
        .enumerate()
        .map(|(k, label)| {
            let votes = tally
                .counts
                .iter()
                .skip(k)
                .step_by(n.max(1))
                .map(|c| u64::from(*c))
                .sum();
            (label.as_str().to_owned(), votes)
        })
        .collect();
    let contributions_per_day = tally
        .per_day
        .iter()
        .map(|(day, contributions)| DayCount {
            day: rfc3339(day * 86_400).get(..10).unwrap_or_default().to_owned(),
            contributions: *contributions,
        })
        .collect();
    let (passed, failed) = store
        .control_stats(project.id)
        .await?
        .iter()
        .fold((0u64, 0u64), |(p, f), (_, s)| (p + s.passed, f + s.failed));
    let answered = passed + failed;
    Ok(Progress {
        project: project.id.0,
        images,
        votes_by_label,
        contributions_per_day,
        estimated_label_accuracy: consensus.estimated_accuracy(),
        control_pass_rate: (answered > 0).then(|| as_f64(passed) / as_f64(answered)),
    })
}

/// The CSV columns of the labels export.
const LABELS_CSV_HEADER: [&str; 6] = ["image", "external_id", "status", "label", "confidence", "votes"];

/// One record of the labels export as CSV fields; `votes` as `label:count;label:count`.
fn label_csv_fields(r: &LabelRecord) -> [String; 6] {
    let votes: Vec<String> = r.votes.iter().map(|(l, c)| format!("{l}:{c}")).collect();
    [
        r.image.to_string(),
        r.external_id.clone(),
        r.status.clone(),
        r.label
            .as_ref()
            .map(|l| l.as_str().to_owned())
            .unwrap_or_default(),
        r.confidence.map(|c| c.to_string()).unwrap_or_default(),
        votes.join(";"),
    ]
}

/// A CSV writer with no header of its own: each page is written into a fresh buffer.
fn csv_writer(buf: &mut Vec<u8>) -> csv::Writer<&mut Vec<u8>> {
    csv::WriterBuilder::new().has_headers(false).from_writer(buf)
}

/// Writes the labels export: one record per image of the project, in id order.
pub async fn write_labels(
    store: &impl Store,
    project: &Project,
    consensus: &Consensus,
    format: LabelsFormat,
    sink: &mut impl Sink,
) -> Result<(), ExportError> {
    let mut buf = Vec::new();
    if format == LabelsFormat::Csv {
        let mut csv = csv_writer(&mut buf);
        csv.write_record(LABELS_CSV_HEADER).map_err(io::Error::from)?;
        csv.flush()?;
    }
    let mut after = None;
    loop {
        let page = store.images_page(project.id, after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        match format {
            LabelsFormat::Jsonl => {
                for meta in &page {
                    serde_json::to_writer(&mut buf, &consensus.record(meta)).map_err(io::Error::from)?;
                    buf.push(b'\n');
                }
            }
            LabelsFormat::Csv => {
                let mut csv = csv_writer(&mut buf);
                for meta in &page {
                    csv.write_record(label_csv_fields(&consensus.record(meta)))
                        .map_err(io::Error::from)?;
                }
                csv.flush()?;
            }
        }
        sink.send(std::mem::take(&mut buf)).await?;
    }
    if !buf.is_empty() {
        sink.send(buf).await?;
    }
    Ok(())
}

/// The external id (file name) of each image of a project, compact: the names one after the other in one
/// string, found by binary search on the ids. Contributions come in acknowledgement order, not image order,
/// so their images' names must be at hand.
struct Names {
    ids: Vec<ImageId>,
    ends: Vec<usize>,
    text: String,
}

impl Names {
    async fn collect(store: &impl Store, project: &Project) -> Result<Self, StoreError> {
        let mut names = Names {
            ids: Vec::new(),
            ends: Vec::new(),
            text: String::new(),
        };
        let mut after = None;
        loop {
            let page = store.images_page(project.id, after, PAGE).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.id);
            for meta in &page {
                names.ids.push(meta.id);
                names.text.push_str(&meta.name);
                names.ends.push(names.text.len());
            }
        }
        Ok(names)
    }

    fn get(&self, image: ImageId) -> &str {
        let Ok(i) = self.ids.binary_search(&image) else {
            return "";
        };
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        self.text.get(start..self.ends[i]).unwrap_or_default()
    }
}

/// Writes every contribution of a project as JSON lines, in acknowledgement order. Nothing in them identifies
/// a citizen: no IP address, no session, no citizen id (there is none).
pub async fn write_contributions(
    store: &impl Store,
    project: &Project,
    sink: &mut impl Sink,
) -> Result<(), ExportError> {
    let names = Names::collect(store, project).await?;
    let mut after = 0;
    loop {
        let page = store.contributions_page(project.id, after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        let mut buf = Vec::new();
        for stored in page {
            let c = stored.contribution;
            let record = ContributionRecord {
                seq: stored.seq,
                image: c.image.0,
                external_id: names.get(c.image).to_owned(),
                label: c.label,
                at: rfc3339(c.at),
                sitekey: c.sitekey,
            };
            serde_json::to_writer(&mut buf, &record).map_err(io::Error::from)?;
            buf.push(b'\n');
        }
        sink.send(buf).await?;
    }
    Ok(())
}

/// Writes an ImageFolder-style zip: `<label>/<external id>.<png|jpg>` for every gold or decided image (not
/// those whose label is the abstain label), and `labels.csv` at the root listing them.
pub async fn write_zip(
    store: &impl Store,
    project: &Project,
    consensus: &Consensus,
    sink: &mut impl Sink,
) -> Result<(), ExportError> {
    let mut zip = ZipWriter::new();
    let mut buf = Vec::new();
    // The index travels in the archive's last entry: its rows are gathered as the images are written.
    let mut index = Vec::new();
    {
        let mut csv = csv_writer(&mut index);
        csv.write_record(["file", "image", "external_id", "status", "label", "confidence"])
            .map_err(io::Error::from)?;
        csv.flush()?;
    }
    let mut paths = std::collections::HashSet::new();
    let mut after = None;
    loop {
        let page = store.images_page(project.id, after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        for meta in &page {
            let record = consensus.record(meta);
            let Some(label) = record.label.as_ref() else {
                continue;
            };
            if Some(label) == project.abstain.as_ref() {
                continue;
            }
            let Some(data) = store.image_data(meta.id).await? else {
                tracing::warn!(
                    image = meta.id.0,
                    "an image of the project has no data; left out of the zip"
                );
                continue;
            };
            let path = entry_path(label, meta, &data.content_type, &mut paths);
            zip.add(&mut buf, &path, &data.bytes)?;
            let mut csv = csv_writer(&mut index);
            csv.write_record([
                path.as_str(),
                &record.image.to_string(),
                &record.external_id,
                &record.status,
                label.as_str(),
                &record.confidence.map(|c| c.to_string()).unwrap_or_default(),
            ])
            .map_err(io::Error::from)?;
            csv.flush()?;
            if buf.len() >= ZIP_CHUNK {
                sink.send(std::mem::take(&mut buf)).await?;
            }
        }
    }
    zip.add(&mut buf, "labels.csv", &index)?;
    zip.finish(&mut buf)?;
    sink.send(buf).await?;
    Ok(())
}

/// `<label>/<name>.<ext>`: the external id without its extension and with nothing that could climb out of
/// the folder, or the image id when nothing is left of it; the image id is appended when two images of a
/// label would get the same path.
fn entry_path(
    label: &LabelId,
    meta: &ImageMeta,
    content_type: &str,
    taken: &mut std::collections::HashSet<String>,
) -> String {
    let ext = match content_type {
        "image/png" => "png",
        "image/jpeg" => "jpg",
        _ => "bin",
    };
    let name: String = meta
        .name
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .take(100)
        .collect();
    // The image may have been re-encoded: its own extension would lie.
    let stem = match name.rsplit_once('.') {
        Some((stem, ext))
            if (1..=4).contains(&ext.len()) && ext.chars().all(|c| c.is_ascii_alphanumeric()) =>
        {
            stem
        }
        _ => name.as_str(),
    };
    let stem = stem.trim_start_matches('.');
    let stem = if stem.is_empty() {
        meta.id.0.to_string()
    } else {
        stem.to_owned()
    };
    let path = format!("{label}/{stem}.{ext}");
    if taken.insert(path.clone()) {
        return path;
    }
    let path = format!("{label}/{stem}-{}.{ext}", meta.id.0);
    taken.insert(path.clone());
    path
}

#[allow(clippy::cast_precision_loss)] // counts of images and answers, far below 2^52
fn as_f64(n: u64) -> f64 {
    n as f64
}

fn index32(i: usize) -> u32 {
    u32::try_from(i).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ProjectId;

    fn meta(id: u64, name: &str) -> ImageMeta {
        ImageMeta {
            id: ImageId(id),
            project: ProjectId(1),
            name: name.to_owned(),
            content_type: "image/png".into(),
            known_label: None,
            content_hash: String::new(),
        }
    }

    #[test]
    fn entry_paths_stay_in_their_label_folder_and_are_unique() {
        let flat = LabelId::parse("flat").unwrap();
        let mut taken = std::collections::HashSet::new();
        let mut path = |id, name| entry_path(&flat, &meta(id, name), "image/png", &mut taken);
        assert_eq!(path(1, "roof-1.jpg"), "flat/roof-1.png");
        assert_eq!(path(2, "../../etc/passwd"), "flat/_.._etc_passwd.png");
        assert_eq!(path(3, "roof-1.png"), "flat/roof-1-3.png");
        assert_eq!(path(4, "..."), "flat/4.png");
        assert_eq!(path(5, "toit été.png"), "flat/toit_été.png");
    }
}
