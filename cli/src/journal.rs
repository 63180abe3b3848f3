//! The upload journal: a file in the uploaded folder that records what the server acknowledged for each
//! file, so that a rerun after an interruption sends only what is left.
//!
//! A file is known by its name, size and modification time: if any changes, it is sent again (and the
//! server, which recognises an image by its content, says whether it already holds it). One journal per
//! server and project, so that uploading the same folder elsewhere starts from scratch.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use anyhow::{Context as _, ensure};
use serde::{Deserialize, Serialize};

/// What the server said of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Stored,
    Duplicate,
    Rejected,
}

/// The identity of a file's content as far as the file system tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamp {
    pub size: u64,
    /// Modification time, nanoseconds since the Unix epoch (0 when the file system does not keep it).
    pub mtime_ns: u64,
}

impl Stamp {
    pub fn of(metadata: &std::fs::Metadata) -> Self {
        let mtime_ns = metadata
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        Self {
            size: metadata.len(),
            mtime_ns,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    #[serde(flatten)]
    pub stamp: Stamp,
    pub outcome: Outcome,
    /// The server's image id (stored or duplicate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<u64>,
    /// Why it was rejected: the server's code and message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Entry {
    /// Stored and duplicate files are on the server. Rejected ones are tried again: the cause may have been
    /// the labels CSV, which can be fixed without touching the file.
    pub fn is_done(&self, stamp: Stamp) -> bool {
        self.stamp == stamp && matches!(self.outcome, Outcome::Stored | Outcome::Duplicate)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Journal {
    pub server: String,
    pub project: u64,
    pub files: BTreeMap<String, Entry>,
}

impl Journal {
    /// `DIR/.cobot-upload-<host>-<project>.json`; a dot file, so that the upload itself skips it.
    pub fn path(dir: &Path, server: &str, project: u64) -> PathBuf {
        let host = server
            .split_once("://")
            .map_or(server, |(_, rest)| rest)
            .split('/')
            .next()
            .unwrap_or_default();
        let host: String = host
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        dir.join(format!(".cobot-upload-{host}-{project}.json"))
    }

    /// The journal at `path`, or an empty one if there is none yet.
    pub fn load(path: &Path, server: &str, project: u64) -> anyhow::Result<Self> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Self {
                    server: server.to_owned(),
                    project,
                    files: BTreeMap::new(),
                });
            }
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let journal: Self = serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is damaged; delete it to upload the whole folder again (the server skips what it has)",
                path.display()
            )
        })?;
        ensure!(
            journal.server == server && journal.project == project,
            "{} belongs to project {} on {}, not project {project} on {server}",
            path.display(),
            journal.project,
            journal.server
        );
        Ok(journal)
    }

    pub fn is_done(&self, name: &str, stamp: Stamp) -> bool {
        self.files.get(name).is_some_and(|e| e.is_done(stamp))
    }

    /// Writes the journal atomically: an interruption leaves the previous version, never half a file.
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut file = tempfile::NamedTempFile::new_in(dir)
            .with_context(|| format!("cannot write the upload journal in {}", dir.display()))?;
        serde_json::to_writer_pretty(&mut file, self)?;
        file.write_all(b"\n")?;
        file.as_file().sync_all()?;
        file.persist(path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAMP: Stamp = Stamp {
        size: 100,
        mtime_ns: 1_700_000_000_000_000_000,
    };

    fn entry(outcome: Outcome) -> Entry {
        Entry {
            stamp: STAMP,
            outcome,
            image: Some(1),
            error: None,
        }
    }

    #[test]
    fn the_journal_is_named_after_the_server_host_and_the_project() {
        let dir = Path::new("/data/tiles");
        assert_eq!(
            Journal::path(dir, "https://cobot.example.fr", 3),
            dir.join(".cobot-upload-cobot.example.fr-3.json")
        );
        assert_eq!(
            Journal::path(dir, "http://127.0.0.1:8080", 12),
            dir.join(".cobot-upload-127.0.0.1_8080-12.json")
        );
    }

    #[test]
    fn stored_and_duplicate_files_are_done_unless_they_changed() {
        assert!(entry(Outcome::Stored).is_done(STAMP));
        assert!(entry(Outcome::Duplicate).is_done(STAMP));
        assert!(!entry(Outcome::Rejected).is_done(STAMP));
        let touched = Stamp {
            mtime_ns: STAMP.mtime_ns + 1,
            ..STAMP
        };
        assert!(!entry(Outcome::Stored).is_done(touched));
        let grown = Stamp { size: 101, ..STAMP };
        assert!(!entry(Outcome::Stored).is_done(grown));
    }

    #[test]
    fn a_saved_journal_is_read_back_and_belongs_to_one_server_and_project() {
        let dir = tempfile::tempdir().unwrap();
        let server = "http://127.0.0.1:8080";
        let path = Journal::path(dir.path(), server, 4);
        let mut journal = Journal::load(&path, server, 4).unwrap();
        assert!(journal.files.is_empty());
        journal.files.insert("a.png".into(), entry(Outcome::Stored));
        journal.save(&path).unwrap();
        let read = Journal::load(&path, server, 4).unwrap();
        assert_eq!(read, journal);
        assert!(read.is_done("a.png", STAMP));
        assert!(!read.is_done("b.png", STAMP));
        let error = Journal::load(&path, server, 5).unwrap_err().to_string();
        assert!(error.contains("not project 5"), "{error}");
        std::fs::write(&path, "{").unwrap();
        let error = Journal::load(&path, server, 4).unwrap_err().to_string();
        assert!(error.contains("damaged"), "{error}");
    }
}
