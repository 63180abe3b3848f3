//! `cobot images upload`: a folder of images, with the known labels of some in a CSV, sent in batches.
//!
//! Resumable and idempotent: the journal (see [`crate::journal`]) skips what the server acknowledged in an
//! earlier run, and the server recognises an image by its content, so a file sent twice (a batch whose reply
//! was lost, a journal deleted) comes back as a duplicate and is never stored twice.

use std::collections::BTreeMap;
use std::io::Read;
use std::ops::Range;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail, ensure};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use protocol::LabelId;
use protocol::owner::{LabelSpec, ProjectView, UploadReport, paths, upload};
use reqwest::blocking::multipart::{Form, Part};
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue};

use crate::client::Api;
use crate::journal::{Entry, Journal, Outcome, Stamp};

/// The labels file the folder import reads; used when `--labels` is not given and it exists.
pub const LABELS_FILE: &str = "labels.csv";
/// Not an image: the project description often sits in the same folder.
const PROJECT_FILE: &str = "project.toml";
/// What the server's intake decodes (it sniffs the bytes; the extension only keeps other files out).
const IMAGE_EXTENSIONS: &[&str] = &["png", "jpg", "jpeg", "webp"];

#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Most files in one request.
    pub batch_files: usize,
    /// Most bytes of images in one request (a larger file still goes, alone).
    pub batch_bytes: u64,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            batch_files: 50,
            batch_bytes: 20 * 1024 * 1024,
        }
    }
}

/// What the run did, for the closing summary.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub files: usize,
    pub stored: usize,
    pub duplicates: usize,
    /// Acknowledged by an earlier run and not sent again.
    pub already_uploaded: usize,
    /// File name and the server's reason.
    pub rejected: Vec<(String, String)>,
}

/// One image file of the folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalFile {
    pub name: String,
    pub stamp: Stamp,
}

pub fn run(
    api: &Api,
    project: &ProjectView,
    dir: &Path,
    labels_file: Option<&Path>,
    options: Options,
) -> anyhow::Result<Summary> {
    ensure!(dir.is_dir(), "{} is not a folder", dir.display());
    let labels_file = labels_file
        .map(Path::to_path_buf)
        .or_else(|| Some(dir.join(LABELS_FILE)).filter(|p| p.is_file()));
    let files = list_images(dir, labels_file.as_deref())?;
    let labels = match &labels_file {
        Some(path) => {
            let reader =
                std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
            parse_labels(reader, &path.display().to_string(), &project.labels)?
        }
        None => BTreeMap::new(),
    };
    if let Some(missing) = labels.keys().find(|name| !files.iter().any(|f| &f.name == *name)) {
        bail!(
            "{}: `{missing}` is not an image of {}",
            labels_file.as_deref().unwrap_or(dir).display(),
            dir.display()
        );
    }

    let journal_path = Journal::path(dir, api.server(), project.id);
    let mut journal = Journal::load(&journal_path, api.server(), project.id)?;
    let mut summary = Summary {
        files: files.len(),
        ..Summary::default()
    };
    let todo: Vec<&LocalFile> = files
        .iter()
        .filter(|f| !journal.is_done(&f.name, f.stamp))
        .collect();
    summary.already_uploaded = files.len() - todo.len();

    let bar = progress_bar(todo.len());
    let sizes: Vec<u64> = todo.iter().map(|f| f.stamp.size).collect();
    for range in batches(&sizes, options.batch_files, options.batch_bytes) {
        let batch = &todo[range];
        let report = send_batch(api, project.id, dir, batch, &labels)?;
        record(&mut journal, &mut summary, batch, &report);
        journal.save(&journal_path)?;
        bar.inc(batch.len() as u64);
    }
    bar.finish_and_clear();
    // Files rejected in this run are in the summary already; earlier rejections are retried above.
    summary.rejected.sort();
    Ok(summary)
}

fn progress_bar(len: usize) -> ProgressBar {
    // `stderr()` draws only when standard error is a terminal: nothing pollutes a log or a pipe.
    let bar = ProgressBar::with_draw_target(Some(len as u64), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("{bar:40} {pos}/{len} files, {elapsed} (eta {eta})") {
        bar.set_style(style);
    }
    bar
}

fn send_batch(
    api: &Api,
    project: u64,
    dir: &Path,
    batch: &[&LocalFile],
    labels: &BTreeMap<String, LabelId>,
) -> anyhow::Result<UploadReport> {
    let mut parts = Vec::with_capacity(batch.len());
    for file in batch {
        let path = dir.join(&file.name);
        let bytes = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        parts.push((file.name.clone(), content_type(&file.name), bytes));
    }
    let batch_labels: BTreeMap<&str, &LabelId> = batch
        .iter()
        .filter_map(|f| labels.get(&f.name).map(|l| (f.name.as_str(), l)))
        .collect();
    let labels_json = if batch_labels.is_empty() {
        None
    } else {
        Some(serde_json::to_string(&batch_labels)?)
    };
    api.post_multipart(&paths::images(project), || {
        let mut form = Form::new();
        for (name, content_type, bytes) in &parts {
            let mut headers = HeaderMap::new();
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
            let part = Part::bytes(bytes.clone())
                .file_name(name.clone())
                .headers(headers);
            form = form.part(upload::IMAGE_PART, part);
        }
        if let Some(json) = &labels_json {
            let mut headers = HeaderMap::new();
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            form = form.part(upload::LABELS_PART, Part::text(json.clone()).headers(headers));
        }
        form
    })
}

/// Records the server's answer for each file of a batch. A file the reply does not mention stays out of
/// the journal, so the next run sends it again.
fn record(journal: &mut Journal, summary: &mut Summary, batch: &[&LocalFile], report: &UploadReport) {
    let stamp_of = |name: &str| batch.iter().find(|f| f.name == name).map(|f| f.stamp);
    for image in &report.stored {
        if let Some(stamp) = stamp_of(&image.external_id) {
            summary.stored += 1;
            journal.files.insert(
                image.external_id.clone(),
                Entry {
                    stamp,
                    outcome: Outcome::Stored,
                    image: Some(image.id),
                    error: None,
                },
            );
        }
    }
    for duplicate in &report.duplicates {
        if let Some(stamp) = stamp_of(&duplicate.external_id) {
            summary.duplicates += 1;
            journal.files.insert(
                duplicate.external_id.clone(),
                Entry {
                    stamp,
                    outcome: Outcome::Duplicate,
                    image: Some(duplicate.id),
                    error: None,
                },
            );
        }
    }
    for rejected in &report.rejected {
        let reason = format!("{} ({})", rejected.message, rejected.error);
        if let Some(stamp) = stamp_of(&rejected.file) {
            journal.files.insert(
                rejected.file.clone(),
                Entry {
                    stamp,
                    outcome: Outcome::Rejected,
                    image: None,
                    error: Some(reason.clone()),
                },
            );
        }
        summary.rejected.push((rejected.file.clone(), reason));
    }
}

fn content_type(name: &str) -> &'static str {
    if has_extension(name, &["png"]) {
        "image/png"
    } else if has_extension(name, &["webp"]) {
        "image/webp"
    } else {
        "image/jpeg"
    }
}

fn has_extension(name: &str, extensions: &[&str]) -> bool {
    Path::new(name)
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| extensions.iter().any(|x| e.eq_ignore_ascii_case(x)))
}

/// The images of `dir`, by name. Dot files (the journal), `project.toml` and the labels file are skipped;
/// any other file that is not a PNG, JPEG or WebP image is refused before anything is sent.
pub fn list_images(dir: &Path, labels_file: Option<&Path>) -> anyhow::Result<Vec<LocalFile>> {
    let labels_path: Option<PathBuf> = labels_file.and_then(|p| p.canonicalize().ok());
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            bail!(
                "{}: the file name is not valid UTF-8; rename it",
                entry.path().display()
            );
        };
        let metadata = entry
            .metadata()
            .with_context(|| format!("cannot read {}", entry.path().display()))?;
        if name.starts_with('.')
            || name == PROJECT_FILE
            || !metadata.is_file()
            || labels_path.is_some() && entry.path().canonicalize().ok() == labels_path
        {
            continue;
        }
        ensure!(
            has_extension(name, IMAGE_EXTENSIONS),
            "{}: only .png, .jpg, .jpeg and .webp images can be uploaded; move this file out of the folder",
            entry.path().display()
        );
        files.push(LocalFile {
            name: name.to_owned(),
            stamp: Stamp::of(&metadata),
        });
    }
    files.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(files)
}

/// Reads a `file,label` CSV (the folder import's `labels.csv`): each label must be one of the project's.
pub fn parse_labels(
    reader: impl Read,
    source: &str,
    project_labels: &[LabelSpec],
) -> anyhow::Result<BTreeMap<String, LabelId>> {
    let mut reader = csv::ReaderBuilder::new().trim(csv::Trim::All).from_reader(reader);
    let headers = reader
        .headers()
        .with_context(|| format!("{source}: cannot read the header"))?;
    ensure!(
        headers.iter().eq(["file", "label"]),
        "{source}: the header must be `file,label`"
    );
    let mut known = BTreeMap::new();
    for record in reader.records() {
        let record = record.with_context(|| format!("{source}: unreadable line"))?;
        let line = record.position().map_or(0, csv::Position::line);
        let (file, label) = (&record[0], &record[1]);
        ensure!(!file.is_empty(), "{source} line {line}: the file name is empty");
        let label = LabelId::parse(label).with_context(|| format!("{source} line {line}: `{label}`"))?;
        ensure!(
            project_labels.iter().any(|l| l.id == label),
            "{source} line {line}: `{label}` is not a label of the project (expected one of {})",
            project_labels
                .iter()
                .map(|l| l.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        ensure!(
            known.insert(file.to_owned(), label).is_none(),
            "{source} line {line}: `{file}` is listed twice"
        );
    }
    Ok(known)
}

/// Splits files (given by size, in order) into consecutive batches of at most `max_files` files and
/// `max_bytes` bytes; a file larger than `max_bytes` makes a batch of its own.
pub fn batches(sizes: &[u64], max_files: usize, max_bytes: u64) -> Vec<Range<usize>> {
    let max_files = max_files.max(1);
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0u64;
    for (i, &size) in sizes.iter().enumerate() {
        let full = i - start == max_files || (i > start && bytes.saturating_add(size) > max_bytes);
        if full {
            out.push(start..i);
            start = i;
            bytes = 0;
        }
        bytes = bytes.saturating_add(size);
    }
    if start < sizes.len() {
        out.push(start..sizes.len());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> Vec<LabelSpec> {
        ["flat", "north_south", "other"]
            .into_iter()
            .map(|id| LabelSpec {
                id: LabelId::parse(id).unwrap(),
                fr: id.into(),
                en: id.into(),
            })
            .collect()
    }

    #[test]
    fn batches_respect_the_file_and_byte_limits() {
        assert!(batches(&[], 50, 100).is_empty());
        assert_eq!(batches(&[1; 5], 2, 100), vec![0..2, 2..4, 4..5]);
        assert_eq!(batches(&[40, 40, 40, 10], 50, 100), vec![0..2, 2..4]);
        // A file over the byte limit goes alone rather than never.
        assert_eq!(batches(&[10, 500, 10], 50, 100), vec![0..1, 1..2, 2..3]);
        assert_eq!(batches(&[100, 1], 50, 100), vec![0..1, 1..2]);
        // Every file is in exactly one batch, in order.
        let sizes: Vec<u64> = (0..137).map(|i| (i * 7919) % 300).collect();
        let flat: Vec<usize> = batches(&sizes, 10, 1000).into_iter().flatten().collect();
        assert_eq!(flat, (0..137).collect::<Vec<_>>());
    }

    #[test]
    fn the_labels_csv_is_read_with_its_spaces_trimmed() {
        let csv = "file, label\nimg-1.png,flat\n img-2.png , north_south\n";
        let known = parse_labels(csv.as_bytes(), "labels.csv", &labels()).unwrap();
        assert_eq!(known.len(), 2);
        assert_eq!(known["img-2.png"].as_str(), "north_south");
    }

    #[test]
    fn a_bad_labels_csv_is_refused_with_its_line() {
        let cases = [
            ("name,label\na.png,flat\n", "header must be `file,label`"),
            (
                "file,label\na.png,flat\nb.png,south\n",
                "labels.csv line 3: `south` is not a label",
            ),
            (
                "file,label\na.png,flat\na.png,other\n",
                "line 3: `a.png` is listed twice",
            ),
            ("file,label\na.png,Flat Roof\n", "line 2"),
            ("file,label\n,flat\n", "line 2: the file name is empty"),
            ("file,label\na.png\n", "unreadable line"),
        ];
        for (csv, expected) in cases {
            let error = format!(
                "{:#}",
                parse_labels(csv.as_bytes(), "labels.csv", &labels()).unwrap_err()
            );
            assert!(error.contains(expected), "{expected:?} not in {error:?}");
        }
    }

    #[test]
    fn the_folder_listing_skips_the_journal_and_the_project_files_and_refuses_strangers() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "b.png",
            "a.JPG",
            "c.jpeg",
            "labels.csv",
            "project.toml",
            ".cobot-upload-x-1.json",
        ] {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let labels = dir.path().join("labels.csv");
        let names: Vec<String> = list_images(dir.path(), Some(&labels))
            .unwrap()
            .into_iter()
            .map(|f| f.name)
            .collect();
        assert_eq!(names, ["a.JPG", "b.png", "c.jpeg"]);
        std::fs::write(dir.path().join("notes.txt"), b"x").unwrap();
        let error = list_images(dir.path(), Some(&labels)).unwrap_err().to_string();
        assert!(error.contains("notes.txt"), "{error}");
    }
}
