//! Memory of the exports on a large project: seeds an embedded store with `COBOT_BENCH_IMAGES` small images
//! (default 100,000; a third gold) and three votes on every other unknown, then runs each export through the
//! domain functions (`server::exports`) into a byte-counting sink, and prints, per export, the bytes written
//! and the growth of the process's peak resident memory during it, on a cold then a warm store cache. Bounded memory means the growth stays far
//! below the bytes exported, and does not grow with the image bytes.
//!
//! `cargo bench -p tests --bench exports` (`COBOT_BENCH_IMAGES`, `COBOT_BENCH_IMAGE_BYTES` change the sizes). The seeding runs in a child process (the same binary), so that its
//! own allocations are not in the measured process's peak; the peak is reset before each export
//! (`/proc/self/clear_refs`), so each line is measured on its own.

use std::fmt::Write as _;
use std::io::Write;
use std::path::Path;
use std::time::Instant;

use server::exports::{self, Consensus, LabelsFormat, WriteSink};
use server::model::{Contribution, LabelDef, NewImage, NewProject, ProjectId, Texts};
use server::store::{EmbeddedStore, Store};

type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

/// Env var that turns this binary into the seeding child, with the data directory as its value.
const SEED_ENV: &str = "COBOT_BENCH_SEED_DIR";
const LABELS: [&str; 4] = ["north_south", "east_west", "flat", "other"];
/// Bytes of each image by default: about a real 96-pixel JPEG tile (`COBOT_BENCH_IMAGE_BYTES` to change).
const IMAGE_BYTES: usize = 2048;

fn image_bytes() -> usize {
    std::env::var("COBOT_BENCH_IMAGE_BYTES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(IMAGE_BYTES)
}

fn main() -> BenchResult<()> {
    let images: u64 = std::env::var("COBOT_BENCH_IMAGES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    if let Some(dir) = std::env::var_os(SEED_ENV) {
        return local.block_on(&runtime, seed(Path::new(&dir), images));
    }
    // `COBOT_BENCH_DIR` keeps the seeded store for another run (seeded there when empty).
    let temp = tempfile::tempdir()?;
    let dir = std::env::var_os("COBOT_BENCH_DIR").map_or_else(|| temp.path().to_owned(), Into::into);
    if !dir.join("cobot.redb").exists() {
        let started = Instant::now();
        let status = std::process::Command::new(std::env::current_exe()?)
            .env(SEED_ENV, &dir)
            .status()?;
        if !status.success() {
            return Err("seeding failed".into());
        }
        eprintln!(
            "seeded {images} images in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
    local.block_on(&runtime, measure(&dir, images))
}

/// Images in pages of 1,000; gold for every third (labels in turn); three agreeing votes on one unknown in
/// four, the label in turn too (each vote is a durable write: that is what takes the seeding's time).
async fn seed(dir: &Path, images: u64) -> BenchResult<()> {
    let store = EmbeddedStore::open(dir)?;
    let labels = LABELS
        .iter()
        .map(|id| {
            Ok(LabelDef {
                id: protocol::LabelId::parse(*id)?,
                text: Texts {
                    fr: (*id).into(),
                    en: (*id).into(),
                },
            })
        })
        .collect::<BenchResult<Vec<_>>>()?;
    let project = store
        .create_project(
            NewProject {
                name: "bench".into(),
                question: Texts {
                    fr: "?".into(),
                    en: "?".into(),
                },
                labels: labels.clone(),
                abstain: Some(labels[3].id.clone()),
                owner: None,
                consensus: server::model::ConsensusSettings::default(),
                priority: 1,
            },
            Vec::new(),
        )
        .await?;
    let label = |n: u64| labels[usize::try_from(n % 3).unwrap_or(0)].id.clone();
    let mut n = 0;
    while n < images {
        let batch: Vec<NewImage> = (n..images.min(n + 1000))
            .map(|i| {
                let mut bytes = vec![0u8; image_bytes().max(8)];
                bytes[..8].copy_from_slice(&i.to_le_bytes());
                NewImage {
                    name: format!("tile-{i:06}.jpg"),
                    content_type: "image/jpeg".into(),
                    bytes,
                    known_label: (i % 3 == 0).then(|| label(i / 3)),
                    content_hash: format!("{i:064x}"),
                }
            })
            .collect();
        store.add_images(project.id, batch).await?;
        n += 1000;
    }
    let mut votes = 0;
    let sitekey = protocol::SiteKey::parse("00000000-0000-4000-8000-000000000000".to_owned())?;
    let mut after = None;
    loop {
        let page = store.images_page(project.id, after, 1000).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        for (k, meta) in page.iter().enumerate() {
            if meta.known_label.is_some() || k % 4 != 1 {
                continue;
            }
            for v in 0..3 {
                store
                    .add_contribution(Contribution {
                        project: project.id,
                        image: meta.id,
                        label: label(meta.id.0),
                        sitekey: sitekey.clone(),
                        at: 1_780_000_000 + votes,
                        challenge: format!("c{}-{v}", meta.id.0),
                    })
                    .await?;
                votes += 1;
            }
            // What the challenge route does after the deciding vote.
            store.retire_unknown(project.id, meta.id).await?;
        }
    }
    eprintln!("{votes} votes");
    Ok(())
}

/// Counts the bytes written, keeps none.
#[derive(Default)]
struct Counter(u64);

impl Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Runs one export into a byte counter and returns the bytes written.
async fn export(store: &EmbeddedStore, project: &server::model::Project, what: &str) -> BenchResult<u64> {
    let mut sink = WriteSink(Counter::default());
    match what {
        "progress" => {
            let json = serde_json::to_vec(&exports::progress(store, project, None).await?)?;
            sink.0.write_all(&json)?;
        }
        "labels.jsonl" | "labels.csv" => {
            let format = if what == "labels.csv" {
                LabelsFormat::Csv
            } else {
                LabelsFormat::Jsonl
            };
            let consensus = Consensus::collect(store, project).await?;
            exports::write_labels(store, project, &consensus, format, &mut sink).await?;
        }
        "contributions.jsonl" => exports::write_contributions(store, project, &mut sink).await?,
        _ => {
            let consensus = Consensus::collect(store, project).await?;
            exports::write_zip(store, project, &consensus, &mut sink).await?;
        }
    }
    Ok(sink.0.0)
}

/// `VmRSS` and `VmHWM` (peak) of this process, in kB.
fn memory_kb() -> BenchResult<(u64, u64)> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .ok_or_else(|| format!("no {name} in /proc/self/status"))
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

/// Resets the peak to the current resident size (Linux: `5` to `clear_refs`).
fn reset_peak() -> BenchResult<()> {
    std::fs::write("/proc/self/clear_refs", "5")?;
    Ok(())
}

#[allow(clippy::cast_precision_loss)] // sizes far below 2^52
async fn measure(dir: &Path, images: u64) -> BenchResult<()> {
    let store = EmbeddedStore::open(dir)?;
    let project = store.project(ProjectId(1)).await?.ok_or("no project")?;
    let mut table = String::from(
        "| export | bytes written | peak RSS growth, 1st run (MiB) | 2nd run (MiB) | 2nd run / bytes | \
         RSS still held after the 1st (MiB) | time (s) |\n|---|---|---|---|---|---|---|\n",
    );
    for what in [
        "progress",
        "labels.jsonl",
        "labels.csv",
        "contributions.jsonl",
        "export.zip",
    ] {
        // The first run also fills the store's own read cache (redb's, 1 GiB by default); the second finds
        // it warm, so its growth is the export's own memory.
        let mut growth = [0.0; 2];
        let mut held = None;
        let mut bytes = 0;
        let mut secs = 0.0;
        for growth in &mut growth {
            reset_peak()?;
            let (before, _) = memory_kb()?;
            let started = Instant::now();
            bytes = export(&store, &project, what).await?;
            secs = started.elapsed().as_secs_f64();
            let (after, peak) = memory_kb()?;
            *growth = peak.saturating_sub(before) as f64 / 1024.0;
            // After the first run: what the export left behind (a cache), not what it used while running.
            held.get_or_insert(after.saturating_sub(before) as f64 / 1024.0);
        }
        let ratio = if what == "progress" {
            "—".to_owned()
        } else {
            format!("{:.3}", growth[1] * 1024.0 * 1024.0 / bytes.max(1) as f64)
        };
        writeln!(
            table,
            "| {what} | {bytes} | {:.1} | {:.1} | {ratio} | {:.1} | {secs:.1} |",
            growth[0],
            growth[1],
            held.unwrap_or_default()
        )?;
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "{images} images, {} B each\n\n{table}", image_bytes())?;
    Ok(())
}
