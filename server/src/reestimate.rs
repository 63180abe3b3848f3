//! The periodic batch re-estimation of each project: Dawid–Skene over all its votes learns the crowd,
//! re-decides every image, records the decisions it changes, and gives the online rule the learned model.
//!
//! The online rule decides an image from its own votes, with a model of the crowd. That model starts
//! uninformed (every vote right with the policy's prior accuracy); a batch run learns it from every vote of
//! the project, and may revise online decisions: a decided label withdrawn or changed, a contested image
//! re-opened. Every revision is applied to serving and recorded in a [`BatchRun`] (never silent). Runs are
//! idempotent, so several server instances may run them; each keeps the learned model in memory.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use consensus::batch::{self, Dataset, EmOptions, Vote};
use consensus::online::Decision;
use consensus::{CrowdModel, Label, Source};
use protocol::LabelId;

use crate::labels;
use crate::model::{BatchRun, ImageId, Project, ProjectId, RecordedRevision, Serving, Slot, now};
use crate::store::{Store, StoreError};

/// Images and contributions are read in pages of this many.
const PAGE: usize = 1000;

/// What the online rule and control demotion use for a project between batch runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Learned {
    pub model: CrowdModel,
    pub control_failure_rate: f64,
}

/// The learned state of every project, in memory, and this process's live count of control answers.
#[derive(Debug, Default)]
pub struct LearnedModels {
    learned: RwLock<HashMap<ProjectId, Arc<Learned>>>,
    /// (passed, failed) answers to each project's controls seen by this process since it started.
    live: std::sync::Mutex<HashMap<ProjectId, (u64, u64)>>,
    /// Serving priority of the unknowns this process has seen a vote for (see `labels::priority`).
    /// Unknowns without an entry have no vote here yet and get a fresh image's priority. Another instance's
    /// votes are not seen: priority is a hint for the order of serving, never a decision.
    priorities: std::sync::Mutex<HashMap<ImageId, f64>>,
}

impl LearnedModels {
    pub fn get(&self, project: ProjectId) -> Option<Arc<Learned>> {
        self.learned
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&project)
            .cloned()
    }

    pub fn set(&self, project: ProjectId, learned: Learned) {
        self.learned
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(project, Arc::new(learned));
    }

    /// Records an unknown's priority after a vote (`None`: decided or contested, no longer needed).
    pub fn note_priority(&self, image: ImageId, priority: Option<f64>) {
        let mut priorities = self
            .priorities
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match priority {
            Some(p) => priorities.insert(image, p),
            None => priorities.remove(&image),
        };
    }

    /// The candidate to serve: the unknown that needs a vote most (the first on ties, and among controls).
    /// `None` only when there is no candidate.
    pub fn most_needed(&self, project: &Project, candidates: Vec<Slot>) -> Option<Slot> {
        // A fresh image's priority, computed only if a candidate has had no vote here.
        let fresh = std::cell::OnceCell::new();
        let fresh = || {
            *fresh.get_or_init(|| {
                let learned = self.get(project.id);
                labels::priority(project, &[], learned.as_ref().map(|l| &l.model)).unwrap_or(0.0)
            })
        };
        let priorities = self
            .priorities
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let score = |slot: &Slot| {
            if slot.expected.is_some() {
                return f64::NEG_INFINITY;
            }
            priorities.get(&slot.image).copied().unwrap_or_else(fresh)
        };
        let mut best: Option<(f64, Slot)> = None;
        for slot in candidates {
            let s = score(&slot);
            if best.as_ref().is_none_or(|(b, _)| s > *b) {
                best = Some((s, slot));
            }
        }
        best.map(|(_, slot)| slot)
    }

    /// Counts an answer to one of the project's controls and returns the failure rate a control must
    /// significantly exceed to be demoted: the larger of the last batch run's and this process's live
    /// rate. The live rate matters under a flood of bots, which fail every control alike: without it, a
    /// flood before the first batch run could demote every control of a project.
    pub fn observe_control(&self, project: ProjectId, passed: bool) -> f64 {
        let live = {
            let mut counts = self
                .live
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let (ok, ko) = counts.entry(project).or_default();
            if passed {
                *ok += 1;
            } else {
                *ko += 1;
            }
            #[allow(clippy::cast_precision_loss)] // counts far below 2^52
            let rate = *ko as f64 / (*ok + *ko) as f64;
            rate
        };
        let batch = self.get(project).map_or(0.0, |l| l.control_failure_rate);
        live.max(batch)
    }

    /// Loads each project's last recorded run, so that a restart keeps what was learned.
    pub async fn load(&self, store: &impl Store) -> Result<(), StoreError> {
        for project in store.projects().await? {
            if let Some(run) = store.batch_runs(project.id).await?.into_iter().next() {
                self.set(
                    project.id,
                    Learned {
                        model: run.model,
                        control_failure_rate: run.control_failure_rate,
                    },
                );
            }
        }
        Ok(())
    }
}

/// One image as a batch run sees it.
struct Item {
    id: ImageId,
    /// The owner's label, clamped in the estimate (unless humans failed it as a control and it was
    /// re-opened, or it is the abstain label).
    gold: Option<Label>,
    serving: Serving,
    votes: Vec<LabelId>,
}

/// Re-estimates one project, applies and records the revisions, and returns the run.
pub async fn run_project(
    store: &impl Store,
    project: &Project,
    learned: Option<&Learned>,
) -> Result<BatchRun, StoreError> {
    let items = load_items(store, project).await?;
    let policy = labels::policy(project);
    let data = Dataset {
        n_items: u32::try_from(items.len()).unwrap_or(u32::MAX),
        n_classes: policy.n_classes,
        votes: items
            .iter()
            .enumerate()
            .flat_map(|(i, item)| {
                let item_no = u32::try_from(i).unwrap_or(u32::MAX);
                item.votes.iter().map(move |label| Vote {
                    item: item_no,
                    source: Source::Anonymous,
                    answer: labels::class_of(project, label)
                        .map_or(consensus::Answer::Abstain, consensus::Answer::Label),
                })
            })
            .collect(),
    };
    let gold: Vec<(u32, Label)> = items
        .iter()
        .enumerate()
        .filter_map(|(i, item)| Some((u32::try_from(i).ok()?, item.gold?)))
        .collect();
    let previous: Vec<Decision> = items
        .iter()
        .map(|item| current_decision(project, item, learned.map(|l| &l.model)))
        .collect();
    let estimate = batch::dawid_skene(&data, &gold, &EmOptions::default());
    let revisions = estimate.revisions(&data, &gold, &previous, &policy);

    let mut recorded = Vec::with_capacity(revisions.len());
    for revision in &revisions {
        let Some(item) = usize::try_from(revision.item).ok().and_then(|i| items.get(i)) else {
            continue;
        };
        apply(store, project.id, item, revision.after).await?;
        let entry = RecordedRevision {
            image: item.id,
            before: describe(project, revision.before),
            after: describe(project, revision.after),
        };
        tracing::info!(
            project = %project.id,
            image = item.id.0,
            before = %entry.before,
            after = %entry.after,
            "batch run revised a decision"
        );
        recorded.push(entry);
    }

    let stats = store.control_stats(project.id).await?;
    let (passed, failed) = stats
        .iter()
        .fold((0u64, 0u64), |(p, f), (_, s)| (p + s.passed, f + s.failed));
    #[allow(clippy::cast_precision_loss)] // counts far below 2^52
    let control_failure_rate = if passed + failed == 0 {
        0.0
    } else {
        failed as f64 / (passed + failed) as f64
    };
    let run = BatchRun {
        at: now(),
        images: items.len() as u64,
        votes: data.votes.len() as u64,
        model: estimate.model,
        control_failure_rate,
        revisions: recorded,
    };
    store.add_batch_run(project.id, run.clone()).await?;
    Ok(run)
}

/// Runs every project that is not archived; returns how many decisions were revised.
pub async fn run_all(store: &impl Store, models: &LearnedModels) -> Result<usize, StoreError> {
    let mut revised = 0;
    for project in store.projects().await? {
        if project.archived {
            continue;
        }
        let learned = models.get(project.id);
        let run = run_project(store, &project, learned.as_deref()).await?;
        revised += run.revisions.len();
        models.set(
            project.id,
            Learned {
                model: run.model,
                control_failure_rate: run.control_failure_rate,
            },
        );
    }
    Ok(revised)
}

/// Runs [`run_all`] every `every`, on the current (actix) runtime, until the server stops.
pub fn spawn(state: actix_web::web::Data<crate::startup::AppState>, every: Duration) {
    actix_web::rt::spawn(async move {
        // Until this is loaded after a restart, the online rule uses the uninformed model.
        if let Err(e) = state.learned.load(&state.store).await {
            tracing::warn!(error = %e, "cannot load the last batch runs; the next run learns again");
        }
        let mut ticks = tokio::time::interval(every);
        // The first tick is immediate: skip it, the last runs were just loaded.
        ticks.tick().await;
        loop {
            ticks.tick().await;
            match run_all(&state.store, &state.learned).await {
                Ok(revised) => tracing::info!(revised, "batch consensus run done"),
                Err(e) => tracing::warn!(error = %e, "batch consensus run failed; retried at the next tick"),
            }
        }
    });
}

async fn load_items(store: &impl Store, project: &Project) -> Result<Vec<Item>, StoreError> {
    let mut items = Vec::new();
    let mut after = None;
    loop {
        let page = store.images_page(project.id, after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        let ids: Vec<ImageId> = page.iter().map(|m| m.id).collect();
        let serving = store.serving(project.id, &ids).await?;
        for (meta, serving) in page.into_iter().zip(serving) {
            let gold = meta
                .known_label
                .as_ref()
                .filter(|_| labels::gold_is_trusted(&serving))
                .and_then(|l| labels::class_of(project, l));
            items.push(Item {
                id: meta.id,
                gold,
                serving,
                votes: Vec::new(),
            });
        }
    }
    let index: HashMap<ImageId, usize> = items.iter().enumerate().map(|(i, item)| (item.id, i)).collect();
    let mut after = 0;
    loop {
        let page = store.contributions_page(project.id, after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for c in page {
            if let Some(&i) = index.get(&c.contribution.image) {
                items[i].votes.push(c.contribution.label);
            }
        }
    }
    Ok(items)
}

/// What serving says about an image now, as a decision.
fn current_decision(project: &Project, item: &Item, model: Option<&CrowdModel>) -> Decision {
    if let Some(label) = item.gold {
        return Decision::Decided {
            label,
            confidence: 1.0,
        };
    }
    match &item.serving {
        Serving::Unknown => Decision::Open,
        Serving::Control(label) => {
            labels::class_of(project, label).map_or(Decision::Open, |label| Decision::Decided {
                label,
                confidence: 1.0,
            })
        }
        Serving::Retired if item.votes.is_empty() => Decision::Open,
        // Retired by the online rule: decided or contested, by its votes. Retired but undecided under the
        // current model (it was retired under an earlier one): set aside, which the batch may re-open.
        Serving::Retired => match labels::online_decision(project, &item.votes, model) {
            Decision::Open => Decision::Contested,
            decided_or_contested => decided_or_contested,
        },
    }
}

/// Makes serving follow a revised decision.
async fn apply(
    store: &impl Store,
    project: ProjectId,
    item: &Item,
    after: Decision,
) -> Result<(), StoreError> {
    match (after, &item.serving) {
        // Serving already follows the decision.
        (Decision::Open, Serving::Unknown)
        | (Decision::Decided { .. } | Decision::Contested, Serving::Retired) => Ok(()),
        // A decision withdrawn, or a contested image worth more votes: collect them.
        (Decision::Open, _) => store.reopen(project, item.id).await,
        // Decided or contested now: no more votes; a promoted control whose label the batch no longer
        // supports stops being a control (a wrong control rejects honest humans).
        (Decision::Decided { .. } | Decision::Contested, Serving::Unknown) => {
            store.retire_unknown(project, item.id).await
        }
        // Re-opening first takes it out of the controls; a crash in between leaves an unknown, harmless.
        (Decision::Decided { .. } | Decision::Contested, Serving::Control(_)) => {
            store.reopen(project, item.id).await?;
            store.retire_unknown(project, item.id).await
        }
    }
}

fn describe(project: &Project, decision: Decision) -> String {
    match decision {
        Decision::Open => "open".to_owned(),
        Decision::Contested => "contested".to_owned(),
        Decision::Decided { label, .. } => {
            format!(
                "decided:{}",
                labels::label_of(project, label).map_or_else(String::new, String::from)
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ConsensusSettings, Contribution, LabelDef, NewImage, NewProject, Texts};
    use crate::store::EmbeddedStore;
    use protocol::SiteKey;

    fn label(s: &str) -> LabelId {
        LabelId::parse(s).unwrap()
    }

    async fn project_with_votes(store: &EmbeddedStore, votes: &[(usize, &str)]) -> (Project, Vec<ImageId>) {
        let texts = |s: &str| Texts {
            fr: s.to_owned(),
            en: s.to_owned(),
        };
        let project = store
            .create_project(
                NewProject {
                    name: "p".into(),
                    question: texts("q"),
                    labels: ["a", "b", "c"]
                        .iter()
                        .map(|l| LabelDef {
                            id: label(l),
                            text: texts(l),
                        })
                        .collect(),
                    abstain: None,
                    owner: None,
                    consensus: ConsensusSettings::default(),
                    priority: 1,
                },
                (0..6)
                    .map(|i| NewImage {
                        name: format!("{i}.jpg"),
                        content_type: "image/jpeg".into(),
                        bytes: vec![u8::try_from(i).unwrap()],
                        known_label: (i == 0).then(|| label("a")),
                        content_hash: format!("h{i}"),
                    })
                    .collect(),
            )
            .await
            .unwrap();
        let ids: Vec<ImageId> = store
            .images(project.id)
            .await
            .unwrap()
            .iter()
            .map(|m| m.id)
            .collect();
        for (n, (image, vote)) in votes.iter().enumerate() {
            store
                .add_contribution(Contribution {
                    project: project.id,
                    image: ids[*image],
                    label: label(vote),
                    sitekey: SiteKey::parse("6f1c2a9e-3b4d-4c5e-8f70-0123456789ab").unwrap(),
                    at: now(),
                    challenge: format!("c{n}"),
                })
                .await
                .unwrap();
        }
        (project, ids)
    }

    #[tokio::test]
    async fn a_control_the_votes_contradict_is_revised_recorded_and_no_longer_served() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path()).unwrap();
        // Image 1 has four votes for `b` but was (wrongly) promoted to a control labelled `a`; the others
        // give the crowd a track record.
        let mut votes = vec![(1, "b"), (1, "b"), (1, "b"), (1, "b")];
        for image in 2..6 {
            votes.extend([(image, "c"), (image, "c"), (image, "c")]);
        }
        let (project, ids) = project_with_votes(&store, &votes).await;
        store
            .promote_control(project.id, ids[1], label("a"))
            .await
            .unwrap();
        // The online rule decided the others after their third vote.
        for id in &ids[2..] {
            store.retire_unknown(project.id, *id).await.unwrap();
        }

        let run = run_project(&store, &project, None).await.unwrap();

        assert_eq!(
            run.revisions,
            vec![RecordedRevision {
                image: ids[1],
                before: "decided:a".into(),
                after: "decided:b".into(),
            }]
        );
        assert_eq!(
            store.serving(project.id, &ids[1..2]).await.unwrap(),
            vec![Serving::Retired]
        );
        // The gold control and the decided images are left alone.
        assert_eq!(
            store.serving(project.id, &ids[..1]).await.unwrap(),
            vec![Serving::Control(label("a"))]
        );
        assert_eq!(run.votes, 16);
        let recorded = store.batch_runs(project.id).await.unwrap();
        assert_eq!(recorded.len(), 1);
        assert_eq!((recorded[0].at, &recorded[0].revisions), (run.at, &run.revisions));

        // A second run finds nothing more to revise: runs are idempotent.
        let again = run_project(&store, &project, None).await.unwrap();
        assert!(again.revisions.is_empty(), "{:?}", again.revisions);
        assert_eq!(store.batch_runs(project.id).await.unwrap().len(), 2);
    }

    #[tokio::test]
    async fn the_learned_crowd_replaces_the_uninformed_one_and_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let (project, _) = {
            let store = EmbeddedStore::open(dir.path()).unwrap();
            // A crowd that always agrees: the learned accuracy is far above the cautious prior of 0.75.
            let votes: Vec<(usize, &str)> = (1..6).flat_map(|i| [(i, "b"), (i, "b"), (i, "b")]).collect();
            let out = project_with_votes(&store, &votes).await;
            let models = LearnedModels::default();
            // Never evaluated online here, the five images are open: the batch run decides them.
            assert_eq!(run_all(&store, &models).await.unwrap(), 5);
            let ids: Vec<ImageId> = out.1[1..].to_vec();
            assert!(
                store
                    .serving(out.0.id, &ids)
                    .await
                    .unwrap()
                    .iter()
                    .all(|s| *s == Serving::Retired)
            );
            let learned = models.get(out.0.id).unwrap();
            let prior = labels::policy(&out.0).prior_accuracy;
            // Learned where there are votes (label `b`): far more reliable than the cautious prior.
            let accuracy = learned.model.crowd.prob(Label(1), Label(1));
            assert!(
                accuracy > prior + 0.1,
                "learned {accuracy} vs prior {prior}: {:?}",
                learned.model
            );
            out
        };
        let store = EmbeddedStore::open(dir.path()).unwrap();
        let models = LearnedModels::default();
        assert!(models.get(project.id).is_none());
        models.load(&store).await.unwrap();
        assert!(models.get(project.id).is_some());
    }

    #[test]
    fn the_unknown_closest_to_a_decision_is_served_first() {
        let models = LearnedModels::default();
        let texts = |s: &str| crate::model::Texts {
            fr: s.to_owned(),
            en: s.to_owned(),
        };
        let project = NewProject {
            name: "p".into(),
            question: texts("q"),
            labels: ["a", "b", "c"]
                .iter()
                .map(|l| LabelDef {
                    id: label(l),
                    text: texts(l),
                })
                .collect(),
            abstain: None,
            owner: None,
            consensus: ConsensusSettings::default(),
            priority: 1,
        }
        .into_project(ProjectId(1));
        let unknown = |id| Slot {
            image: ImageId(id),
            expected: None,
        };
        // Image 2 has two agreeing votes: one more may decide it. Image 1 is fresh.
        models.note_priority(
            ImageId(2),
            labels::priority(&project, &[label("a"), label("a")], None),
        );
        assert_eq!(
            models.most_needed(&project, vec![unknown(1), unknown(2)]),
            Some(unknown(2))
        );
        // Decided: forgotten, back to a fresh image's priority, so the first candidate wins the tie.
        models.note_priority(ImageId(2), None);
        assert_eq!(
            models.most_needed(&project, vec![unknown(2), unknown(1)]),
            Some(unknown(2))
        );
        assert_eq!(models.most_needed(&project, Vec::new()), None);
    }

    #[test]
    fn the_live_failure_rate_protects_controls_from_a_flood_of_bots() {
        let models = LearnedModels::default();
        let p = ProjectId(1);
        assert!((models.observe_control(p, true) - 0.0).abs() < 1e-12);
        for _ in 0..99 {
            models.observe_control(p, false);
        }
        assert!(models.observe_control(p, false) > 0.98);
    }
}
