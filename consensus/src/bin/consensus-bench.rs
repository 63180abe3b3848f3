//! `consensus-bench`: runs the consensus methods on real crowd data and prints accuracy and time.
//!
//! ```text
//! consensus-bench DIR                  # DIR holds answer.csv + truth.csv: a Markdown table
//! consensus-bench --json DIR           # the same, one JSON object per method and line
//! consensus-bench --opensolarmap FILE  # replays OpenSolarMap's contribs.csv through the online rule
//!                                      # (the platform's labels: buildings_labels.csv beside FILE)
//! consensus-bench --all DATA           # every set under DATA/truth-inference and the replay of
//!                                      # DATA/opensolarmap, as the Markdown of BENCHMARKS.md
//! consensus-bench --serving            # which unknown to serve next: uniform vs priority (simulated)
//! ```
//!
//! Every method runs with the crate's defaults: nothing here is tuned to a data set. Times are wall-clock
//! medians of five runs of the method (or of the whole replay) alone, parsing excluded.

use std::cell::Cell;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use consensus::batch::{self, Dataset, EmOptions, Estimate, Vote};
use consensus::online::{self, Decision, ImageState};
use consensus::{Answer, CrowdModel, Label, Policy, Source};
use serde_json::json;

/// Best published accuracy per set (`../shared/data/README.md`), shown next to ours in `--all` mode.
const PUBLISHED: [(&str, f64, f64); 4] = [
    // (set, majority vote, best published)
    ("product", 0.8966, 0.9397),
    ("sentiment", 0.9331, 0.9600),
    ("duck", 0.7593, 0.8889),
    ("dog", 0.8116, 0.8426),
];

/// Contributors whose answers agree with the consensus less often than this are reported as unreliable:
/// the accuracy threshold Etalab used in its analysis of the campaign.
const UNRELIABLE_BELOW: f64 = 0.70;
/// Contributors need this many votes before their estimated accuracy is worth reporting.
const UNRELIABLE_MIN_VOTES: u32 = 20;
/// Rows of the unreliable-contributor table (the JSON output lists them all).
const UNRELIABLE_SHOWN: usize = 15;
/// Batch EM runs after every this many accepted votes during the replay, as a server would run it
/// periodically.
const REPLAY_BATCH_EVERY: usize = 10_000;

#[path = "consensus-bench/serving.rs"]
mod serving;

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    for (flag, cell) in [
        ("--prior-votes", &PRIOR_VOTES),
        ("--tolerance", &TOLERANCE),
        ("--threshold", &THRESHOLD),
    ] {
        if let Some(at) = args.iter().position(|a| a == flag) {
            let Some(value) = args.get(at + 1).and_then(|v| v.parse::<f64>().ok()) else {
                eprintln!("consensus-bench: {flag} needs a number");
                std::process::exit(2);
            };
            cell.with(|c| c.set(value));
            args.drain(at..at + 2);
        }
    }
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["--json", dir] => truth_set(Path::new(dir)).map(|set| set.json_lines()),
        ["--opensolarmap", file] => replay_file(Path::new(file)).map(|r| r.markdown()),
        ["--opensolarmap", "--json", file] | ["--json", "--opensolarmap", file] => {
            replay_file(Path::new(file)).map(|r| r.json_line())
        }
        ["--all", dir] => all(Path::new(dir)),
        ["--serving"] => Ok(serving::markdown()),
        [dir] if !dir.starts_with('-') => truth_set(Path::new(dir)).map(|set| set.markdown(None)),
        _ => Err(USAGE.to_owned()),
    };
    match result {
        Ok(text) => emit(&text),
        Err(message) => {
            eprintln!("consensus-bench: {message}");
            std::process::exit(2);
        }
    }
}

const USAGE: &str =
    "usage: consensus-bench [--json] DIR | --opensolarmap [--json] FILE | --all DATA_DIR | --serving";

#[allow(clippy::print_stdout)] // printing the results is what this binary is for
fn emit(text: &str) {
    print!("{text}");
}

// ---------------------------------------------------------------------------------------------------------
// Truth-inference sets.

thread_local! {
    /// EM settings; `--prior-votes X` and `--tolerance X` change them for a sensitivity analysis.
    static PRIOR_VOTES: Cell<f64> = Cell::new(EmOptions::default().prior_votes.unwrap_or(f64::NAN));
    static TOLERANCE: Cell<f64> = Cell::new(EmOptions::default().tolerance);
    static THRESHOLD: Cell<f64> = Cell::new(Policy::default().threshold);
}

fn em_options() -> EmOptions {
    EmOptions {
        prior_votes: Some(PRIOR_VOTES.with(Cell::get)).filter(|p| !p.is_nan()),
        tolerance: TOLERANCE.with(Cell::get),
        ..EmOptions::default()
    }
}

struct Method {
    name: &'static str,
    default: bool,
    run: fn(&Dataset) -> Estimate,
}

const METHODS: [Method; 6] = [
    Method {
        name: "majority_vote",
        default: false,
        run: |d| batch::majority_vote(d, &[]),
    },
    Method {
        name: "weighted_vote",
        default: false,
        run: |d| batch::weighted_vote(d, &[]),
    },
    Method {
        name: "one_coin",
        default: false,
        run: |d| batch::one_coin(d, &[], &em_options()),
    },
    Method {
        name: "dawid_skene",
        default: true,
        run: |d| batch::dawid_skene(d, &[], &em_options()),
    },
    Method {
        name: "dawid_skene_shrunk",
        default: false,
        run: |d| {
            batch::dawid_skene(
                d,
                &[],
                &EmOptions {
                    prior_votes: None,
                    ..em_options()
                },
            )
        },
    },
    Method {
        name: "dawid_skene_anonymous",
        default: false,
        run: |d| batch::dawid_skene(&d.anonymised(), &[], &em_options()),
    },
];

struct TruthSet {
    name: String,
    data: Dataset,
    truth: Vec<(u32, Label)>,
    workers: usize,
    results: Vec<MethodResult>,
}

struct MethodResult {
    method: &'static str,
    default: bool,
    accuracy: f64,
    f1: Option<f64>,
    seconds: f64,
    iterations: u32,
    prior_votes: Vec<f64>,
}

fn truth_set(dir: &Path) -> Result<TruthSet, String> {
    let answers = read_csv(&dir.join("answer.csv"), &["question", "worker", "answer"])?;
    let truths = read_csv(&dir.join("truth.csv"), &["question", "truth"])?;
    let mut items = Interner::default();
    let mut workers = Interner::default();
    let mut votes = Vec::with_capacity(answers.len());
    let mut max_class = 0u16;
    for row in &answers {
        let label = parse_class(&row[2])?;
        max_class = max_class.max(label);
        votes.push(Vote {
            item: items.id(&row[0]),
            source: Source::Stable(u64::from(workers.id(&row[1]))),
            answer: Answer::Label(Label(label)),
        });
    }
    let mut truth = Vec::with_capacity(truths.len());
    for row in &truths {
        let label = parse_class(&row[1])?;
        max_class = max_class.max(label);
        truth.push((items.id(&row[0]), Label(label)));
    }
    let data = Dataset {
        n_items: items.len(),
        n_classes: max_class + 1,
        votes,
    };
    let mut results = Vec::new();
    for method in &METHODS {
        let estimate = (method.run)(&data);
        let seconds = median_seconds(|| {
            std::hint::black_box((method.run)(&data));
        });
        let (accuracy, f1) = score(&estimate, &truth, data.n_classes);
        results.push(MethodResult {
            method: method.name,
            default: method.default,
            accuracy,
            f1,
            seconds,
            iterations: estimate.iterations,
            prior_votes: estimate.prior_votes,
        });
    }
    let name = dir
        .file_name()
        .map_or_else(|| dir.display().to_string(), |n| n.to_string_lossy().into_owned());
    Ok(TruthSet {
        name,
        data,
        truth,
        workers: workers.len() as usize,
        results,
    })
}

fn score(estimate: &Estimate, truth: &[(u32, Label)], n_classes: u16) -> (f64, Option<f64>) {
    let mut right = 0u32;
    let (mut tp, mut fp, mut fn_) = (0u32, 0u32, 0u32);
    let positive = Label(1);
    for &(item, label) in truth {
        let guess = estimate.labels.get(item as usize).copied().flatten();
        if guess == Some(label) {
            right += 1;
        }
        match (guess == Some(positive), label == positive) {
            (true, true) => tp += 1,
            (true, false) => fp += 1,
            (false, true) => fn_ += 1,
            (false, false) => {}
        }
    }
    let accuracy = f64::from(right) / ratio(truth.len(), 1);
    let f1 = (n_classes == 2).then(|| 2.0 * f64::from(tp) / f64::from(2 * tp + fp + fn_).max(1.0));
    (accuracy, f1)
}

impl TruthSet {
    fn json_lines(&self) -> String {
        let mut out = String::new();
        for r in &self.results {
            let line = json!({
                "set": self.name,
                "method": r.method,
                "default": r.default,
                "accuracy": r.accuracy,
                "f1": r.f1,
                "seconds": r.seconds,
                "iterations": r.iterations,
                "prior_votes": r.prior_votes,
                "items": self.data.n_items,
                "truths": self.truth.len(),
                "answers": self.data.votes.len(),
                "workers": self.workers,
            });
            let _ = writeln!(out, "{line}");
        }
        out
    }

    fn markdown(&self, published: Option<(f64, f64)>) -> String {
        let mut out = format!(
            "### {} — {} items, {} workers, {} answers, {} classes\n\n",
            self.name,
            self.data.n_items,
            self.workers,
            self.data.votes.len(),
            self.data.n_classes
        );
        out.push_str("| method | accuracy | F1 (class 1) | time | EM iterations |\n|---|---|---|---|---|\n");
        for r in &self.results {
            let name = if r.default {
                format!("**{}** (default)", r.method)
            } else {
                r.method.to_owned()
            };
            let f1 =
                r.f1.map_or_else(|| "—".to_owned(), |f| format!("{:.2}%", 100.0 * f));
            let _ = writeln!(
                out,
                "| {name} | {:.2}% | {f1} | {} | {} |",
                100.0 * r.accuracy,
                duration(r.seconds),
                r.iterations
            );
        }
        if let Some((mv, best)) = published {
            let _ = writeln!(
                out,
                "| *published: majority vote / best* | {:.2}% / {:.2}% | | | |",
                100.0 * mv,
                100.0 * best
            );
        }
        out.push('\n');
        out
    }
}

// ---------------------------------------------------------------------------------------------------------
// OpenSolarMap replay.

struct Replay {
    votes_in_file: usize,
    buildings: usize,
    contributors: usize,
    seconds: f64,
    ours: RuleOutcome,
    lead3: RuleOutcome,
    platform_decided: usize,
    batch_runs: u32,
    revisions: usize,
    unreliable: Vec<(String, u32, f64)>,
    estimated_contributors: usize,
}

/// How one decision rule did on the replay.
#[derive(Default)]
struct RuleOutcome {
    accepted_votes: usize,
    decided: usize,
    contested: usize,
    votes_at_decision: usize,
    both_decided: usize,
    agree: usize,
    /// Disagreements with the platform: `[ours][platform]`.
    disagreements: [[usize; 4]; 4],
    /// Disagreements where our decision had a dissenting vote.
    disagreements_with_dissent: usize,
}

impl RuleOutcome {
    fn votes_per_decided(&self) -> f64 {
        ratio(self.votes_at_decision, self.decided)
    }
    fn agreement(&self) -> f64 {
        ratio(self.agree, self.both_decided)
    }
}

struct OsmVote {
    building: u32,
    label: u16,
    contributor: u32,
    timestamp: String,
}

fn replay_file(file: &Path) -> Result<Replay, String> {
    let rows = read_csv(file, &["osm_id", "label", "contributor", "timestamp"])?;
    let labels_file = file.with_file_name("buildings_labels.csv");
    let mut buildings = Interner::default();
    let mut contributors = Interner::default();
    let mut votes = Vec::with_capacity(rows.len());
    for row in &rows {
        let label = parse_class(&row[1])?;
        if !(1..=4).contains(&label) {
            return Err(format!("{}: label {label} is not 1–4", file.display()));
        }
        votes.push(OsmVote {
            building: buildings.id(&row[0]),
            label: label - 1,
            contributor: contributors.id(&row[2]),
            timestamp: row[3].clone(),
        });
    }
    // Timestamps share one format, so their text order is their time order; the sort is stable.
    votes.sort_by(|a, b| a.timestamp.cmp(&b.timestamp));
    let mut platform: Vec<Option<Label>> = vec![None; buildings.len() as usize];
    for row in read_csv(&labels_file, &["osm_id", "consensus_label"])? {
        if row[1].is_empty() {
            continue;
        }
        if let Some(id) = buildings.get(&row[0]) {
            platform[id as usize] = Some(Label(parse_class(&row[1])? - 1));
        }
    }
    let (ours, batch_runs, revisions, estimate) = replay_online(&votes, buildings.len(), &platform);
    // The replay is deterministic: it is run again only to time it like the methods.
    let seconds = median_seconds(|| {
        std::hint::black_box(replay_online(&votes, buildings.len(), &platform));
    });
    let lead3 = replay_lead3(&votes, buildings.len(), &platform);
    let mut unreliable: Vec<(String, u32, f64)> = estimate
        .sources
        .iter()
        .filter(|s| s.votes >= UNRELIABLE_MIN_VOTES && s.agreement < UNRELIABLE_BELOW)
        .map(|s| {
            (
                contributors
                    .name(u32::try_from(s.source).unwrap_or(u32::MAX))
                    .to_owned(),
                s.votes,
                s.agreement,
            )
        })
        .collect();
    unreliable.sort_by(|a, b| a.2.total_cmp(&b.2));
    Ok(Replay {
        votes_in_file: votes.len(),
        buildings: buildings.len() as usize,
        contributors: contributors.len() as usize,
        seconds,
        ours,
        lead3,
        platform_decided: platform.iter().filter(|p| p.is_some()).count(),
        batch_runs,
        revisions,
        estimated_contributors: estimate
            .sources
            .iter()
            .filter(|s| s.votes >= UNRELIABLE_MIN_VOTES)
            .count(),
        unreliable,
    })
}

/// Replays the votes in time order through the online rule, as the server would have received them: a
/// building stops collecting votes once decided or contested, and batch EM runs periodically, its
/// revisions applied (a revision that re-opens a building lets it collect votes again).
fn replay_online(
    votes: &[OsmVote],
    n_buildings: u32,
    platform: &[Option<Label>],
) -> (RuleOutcome, u32, usize, Estimate) {
    let policy = Policy {
        threshold: THRESHOLD.with(Cell::get),
        ..Policy::new(4)
    };
    let opts = em_options();
    // One periodic batch run over the votes accepted so far, warm-started from the previous one.
    let batch_run = |accepted: &[Vote], last: Option<&Estimate>| {
        let data = Dataset {
            n_items: n_buildings,
            n_classes: 4,
            votes: accepted.to_vec(),
        };
        let estimate = match last {
            Some(start) => batch::dawid_skene_from(&data, &[], &opts, start),
            None => batch::dawid_skene(&data, &[], &opts),
        };
        (data, estimate)
    };
    let mut model = CrowdModel::uninformed(&policy);
    let mut states = vec![ImageState::default(); n_buildings as usize];
    let mut last: Option<Estimate> = None;
    let mut accepted: Vec<Vote> = Vec::new();
    let mut batch_runs = 0;
    let mut revisions = 0;
    let mut since_batch = 0;
    for v in votes {
        let state = &mut states[v.building as usize];
        if state.decision() != Decision::Open {
            continue;
        }
        let before = state.votes().len();
        let source = Source::Stable(u64::from(v.contributor));
        let answer = Answer::Label(Label(v.label));
        online::record_vote(state, source, answer, &policy, &model);
        if state.votes().len() == before {
            continue; // a repeated vote of the same contributor
        }
        accepted.push(Vote {
            item: v.building,
            source,
            answer,
        });
        since_batch += 1;
        if since_batch == REPLAY_BATCH_EVERY {
            since_batch = 0;
            batch_runs += 1;
            let (data, estimate) = batch_run(&accepted, last.as_ref());
            let previous: Vec<Decision> = states.iter().map(ImageState::decision).collect();
            for revision in estimate.revisions(&data, &[], &previous, &policy) {
                // Only decisions are revised here; an open building simply stays open for the next vote.
                if revision.before != Decision::Open {
                    states[revision.item as usize].revise(revision.after);
                    revisions += 1;
                }
            }
            model = estimate.model.clone();
            last = Some(estimate);
        }
    }
    let (data, estimate) = batch_run(&accepted, last.as_ref());
    // The server's next periodic run, after the last vote of the campaign.
    batch_runs += 1;
    let previous: Vec<Decision> = states.iter().map(ImageState::decision).collect();
    for revision in estimate.revisions(&data, &[], &previous, &policy) {
        if revision.before != Decision::Open {
            states[revision.item as usize].revise(revision.after);
            revisions += 1;
        }
    }
    let mut outcome = RuleOutcome {
        accepted_votes: accepted.len(),
        ..RuleOutcome::default()
    };
    for (state, platform) in states.iter().zip(platform) {
        match state.decision() {
            Decision::Decided { label, .. } => {
                outcome.decided += 1;
                outcome.votes_at_decision += state.votes().len();
                if let Some(p) = platform {
                    outcome.both_decided += 1;
                    outcome.agree += usize::from(*p == label);
                    if *p != label {
                        outcome.disagreements[label.index()][p.index()] += 1;
                        let dissent = state.votes().iter().any(|v| v.answer != Answer::Label(label));
                        outcome.disagreements_with_dissent += usize::from(dissent);
                    }
                }
            }
            Decision::Contested => outcome.contested += 1,
            Decision::Open => {}
        }
    }
    (outcome, batch_runs, revisions, estimate)
}

/// The platform's own rule replayed on the same votes: decided when the top label leads all others
/// combined by three votes, contested at ten votes.
fn replay_lead3(votes: &[OsmVote], n_buildings: u32, platform: &[Option<Label>]) -> RuleOutcome {
    let mut counts = vec![[0u32; 4]; n_buildings as usize];
    let mut seen_by: Vec<Vec<u32>> = vec![Vec::new(); n_buildings as usize];
    let mut done: Vec<Option<Option<Label>>> = vec![None; n_buildings as usize];
    let mut outcome = RuleOutcome::default();
    for v in votes {
        let b = v.building as usize;
        if done[b].is_some() || seen_by[b].contains(&v.contributor) {
            continue;
        }
        seen_by[b].push(v.contributor);
        counts[b][usize::from(v.label)] += 1;
        outcome.accepted_votes += 1;
        let total: u32 = counts[b].iter().sum();
        let (top, &max) = counts[b]
            .iter()
            .enumerate()
            .max_by_key(|(i, c)| (**c, std::cmp::Reverse(*i)))
            .unwrap_or((0, &0));
        if 2 * max >= total + 3 {
            done[b] = Some(Some(Label(u16::try_from(top).unwrap_or(u16::MAX))));
            outcome.decided += 1;
            outcome.votes_at_decision += total as usize;
            if let Some(p) = platform[b] {
                outcome.both_decided += 1;
                outcome.agree += usize::from(p.index() == top);
            }
        } else if total >= 10 {
            done[b] = Some(None);
            outcome.contested += 1;
        }
    }
    outcome
}

impl Replay {
    fn markdown(&self) -> String {
        let mut out = format!(
            "### OpenSolarMap replay — {} votes, {} buildings, {} contributors, {} decided by the platform\n\n",
            self.votes_in_file, self.buildings, self.contributors, self.platform_decided
        );
        out.push_str(
            "| rule | votes used | decided | contested | votes per decided building | agreement with platform labels | time |\n\
             |---|---|---|---|---|---|---|\n",
        );
        for (name, o, time) in [
            (
                "**online rule + periodic Dawid–Skene** (default policy)",
                &self.ours,
                duration(self.seconds),
            ),
            (
                "lead ≥ 3 (the platform's rule, replayed)",
                &self.lead3,
                "—".to_owned(),
            ),
        ] {
            let _ = writeln!(
                out,
                "| {name} | {} | {} | {} | {:.2} | {:.2}% ({} / {}) | {time} |",
                o.accepted_votes,
                o.decided,
                o.contested,
                o.votes_per_decided(),
                100.0 * o.agreement(),
                o.agree,
                o.both_decided,
            );
        }
        let _ = writeln!(
            out,
            "\nBatch EM ran {} times during the replay and revised {} decisions.\n",
            self.batch_runs, self.revisions
        );
        out.push_str(&self.disagreements_markdown());
        let _ = writeln!(
            out,
            "Unreliable contributors (agreement with the consensus < {:.0}%, at least {} accepted votes): {} of {}.\n",
            100.0 * UNRELIABLE_BELOW,
            UNRELIABLE_MIN_VOTES,
            self.unreliable.len(),
            self.estimated_contributors
        );
        if !self.unreliable.is_empty() {
            out.push_str("| contributor | votes | agreement with the consensus |\n|---|---|---|\n");
            for (name, votes, accuracy) in self.unreliable.iter().take(UNRELIABLE_SHOWN) {
                let _ = writeln!(out, "| {name} | {votes} | {:.1}% |", 100.0 * accuracy);
            }
            if self.unreliable.len() > UNRELIABLE_SHOWN {
                let _ = writeln!(
                    out,
                    "| … and {} more | | |",
                    self.unreliable.len() - UNRELIABLE_SHOWN
                );
            }
            out.push('\n');
        }
        let (ours, lead3) = (&self.ours, &self.lead3);
        out.push_str("| goal | target | measured | met |\n|---|---|---|---|\n");
        for (goal, target, measured, met) in [
            (
                "replay time",
                "≤ 1 s".to_owned(),
                duration(self.seconds),
                self.seconds <= 1.0,
            ),
            (
                "agreement with the platform's decided labels",
                "≥ 97%".to_owned(),
                format!("{:.2}%", 100.0 * ours.agreement()),
                ours.agreement() >= 0.97,
            ),
            (
                "votes per decided building",
                format!("< {:.2} (lead ≥ 3)", lead3.votes_per_decided()),
                format!("{:.2}", ours.votes_per_decided()),
                ours.votes_per_decided() < lead3.votes_per_decided(),
            ),
        ] {
            let _ = writeln!(
                out,
                "| {goal} | {target} | {measured} | {} |",
                if met { "yes" } else { "no" }
            );
        }
        out.push('\n');
        out
    }

    fn disagreements_markdown(&self) -> String {
        let mut out = String::new();
        let names = ["north_south", "east_west", "flat", "other"];
        let _ = writeln!(
            out,
            "Disagreements with the platform ({}; {} of them decided despite a dissenting vote), ours → platform's:\n",
            self.ours.both_decided - self.ours.agree,
            self.ours.disagreements_with_dissent
        );
        out.push_str(
            "| ours ↓ / platform → | north_south | east_west | flat | other |\n|---|---|---|---|---|\n",
        );
        for (name, row) in names.iter().zip(&self.ours.disagreements) {
            let _ = writeln!(
                out,
                "| {name} | {} | {} | {} | {} |",
                row[0], row[1], row[2], row[3]
            );
        }
        out.push('\n');
        out
    }

    fn json_line(&self) -> String {
        let rule = |o: &RuleOutcome| {
            json!({
                "votes_used": o.accepted_votes,
                "decided": o.decided,
                "contested": o.contested,
                "votes_per_decided": o.votes_per_decided(),
                "agreement": o.agreement(),
                "both_decided": o.both_decided,
            })
        };
        let line = json!({
            "set": "opensolarmap",
            "method": "online_replay",
            "default": true,
            "seconds": self.seconds,
            "votes": self.votes_in_file,
            "ours": rule(&self.ours),
            "lead3": rule(&self.lead3),
            "batch_runs": self.batch_runs,
            "revisions": self.revisions,
            "unreliable": self.unreliable.iter().map(|(n, v, a)| json!({"contributor": n, "votes": v, "agreement": a})).collect::<Vec<_>>(),
        });
        format!("{line}\n")
    }
}

// ---------------------------------------------------------------------------------------------------------
// Everything at once.

fn all(data: &Path) -> Result<String, String> {
    let mut out = String::from("## Truth inference (Zheng et al., PVLDB 2017 sets)\n\n");
    let mut summary = String::from(
        "| set | default (dawid_skene) | best published | goal met | Dawid–Skene time |\n|---|---|---|---|---|\n",
    );
    for (name, mv, best) in PUBLISHED {
        let dir: PathBuf = data.join("truth-inference").join(name);
        let set = truth_set(&dir)?;
        out.push_str(&set.markdown(Some((mv, best))));
        if let Some(r) = set.results.iter().find(|r| r.default) {
            let met = if r.accuracy + 1e-9 >= best {
                "yes".to_owned()
            } else {
                format!("no (−{:.2} points)", 100.0 * (best - r.accuracy))
            };
            let _ = writeln!(
                summary,
                "| {name} | {:.2}% | {:.2}% | {met} | {} |",
                100.0 * r.accuracy,
                100.0 * best,
                duration(r.seconds)
            );
        }
    }
    out.push_str("### Summary\n\n");
    out.push_str(&summary);
    out.push_str("\n## OpenSolarMap\n\n");
    out.push_str(&replay_file(&data.join("opensolarmap").join("contribs.csv"))?.markdown());
    Ok(out)
}

// ---------------------------------------------------------------------------------------------------------
// Small helpers.

/// Maps the text ids of a file to dense indices, in order of first appearance.
#[derive(Default)]
struct Interner {
    ids: HashMap<String, u32>,
    names: Vec<String>,
}

impl Interner {
    fn id(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        let id = self.len();
        self.ids.insert(name.to_owned(), id);
        self.names.push(name.to_owned());
        id
    }
    fn get(&self, name: &str) -> Option<u32> {
        self.ids.get(name).copied()
    }
    fn name(&self, id: u32) -> &str {
        self.names.get(id as usize).map_or("?", String::as_str)
    }
    fn len(&self) -> u32 {
        u32::try_from(self.names.len()).unwrap_or(u32::MAX)
    }
}

/// Reads a simple CSV file (no quoting: the reference files use none) and returns the wanted columns of
/// every row, in the order asked.
fn read_csv(path: &Path, columns: &[&str]) -> Result<Vec<Vec<String>>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap_or("")
        .trim_end_matches('\r')
        .split(',')
        .collect();
    let index: Vec<usize> = columns
        .iter()
        .map(|c| {
            header
                .iter()
                .position(|h| h == c)
                .ok_or_else(|| format!("{}: no column {c}", path.display()))
        })
        .collect::<Result<_, _>>()?;
    let mut rows = Vec::new();
    for (n, line) in lines.enumerate() {
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(',').collect();
        let row = index
            .iter()
            .map(|&i| fields.get(i).map(|f| (*f).to_owned()))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| format!("{}: line {} has too few fields", path.display(), n + 2))?;
        rows.push(row);
    }
    Ok(rows)
}

fn parse_class(text: &str) -> Result<u16, String> {
    text.trim().parse().map_err(|_| format!("bad class id {text:?}"))
}

fn median_seconds(mut run: impl FnMut()) -> f64 {
    let mut times: Vec<f64> = (0..5)
        .map(|_| {
            let start = Instant::now();
            run();
            start.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// `a / b` for counts (0 when `b` is 0).
#[allow(clippy::cast_precision_loss)] // counts here stay far below 2^52
fn ratio(a: usize, b: usize) -> f64 {
    a as f64 / b.max(1) as f64
}

fn duration(seconds: f64) -> String {
    if seconds < 1.0 {
        format!("{:.1} ms", 1000.0 * seconds)
    } else {
        format!("{seconds:.2} s")
    }
}
