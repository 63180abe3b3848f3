//! Batch truth inference over all the votes of a project: majority vote, weighted vote, one-coin and
//! full-confusion Dawid–Skene EM, with gold items clamped; and the revisions of online decisions that a
//! batch run implies.

mod em;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::top;
use crate::online::{Decision, StoredVote, agreeing_sources, decidable, rule};
use crate::{Answer, Confusion, CrowdModel, Label, Policy, Source};
use em::{Noise, Prepared, lossy};

/// One vote about item `item` (an index `0..n_items` the caller assigns to its images).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vote {
    pub item: u32,
    pub source: Source,
    pub answer: Answer,
}

/// All the votes of one project.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Dataset {
    pub n_items: u32,
    pub n_classes: u16,
    /// Votes in any order; votes naming an item or label out of range are ignored.
    pub votes: Vec<Vote>,
}

impl Dataset {
    /// The same votes with every source made anonymous: what the engine can do when no contributor is
    /// recognised (each vote is then its own one-vote source).
    #[must_use]
    pub fn anonymised(&self) -> Dataset {
        let votes = self
            .votes
            .iter()
            .map(|v| Vote {
                source: Source::Anonymous,
                ..*v
            })
            .collect();
        Dataset {
            votes,
            ..self.clone()
        }
    }
}

/// Settings of the EM methods.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EmOptions {
    pub max_iterations: u32,
    /// EM stops once the log-likelihood of the votes changes by less than this share in one iteration.
    pub tolerance: f64,
    /// Strength of the prior that pulls each source's confusion row towards the crowd's, in votes;
    /// `None` (the default) estimates it from the data (empirical Bayes).
    pub prior_votes: Option<f64>,
}

impl Default for EmOptions {
    /// 100 iterations at most, stop when the log-likelihood improves by less than 10 ppm (labels no longer
    /// move by then), and no prior on named sources: classic Dawid–Skene maximum likelihood, which judges
    /// every named source on its own record (a source seen once is then uninformative, not trusted).
    fn default() -> Self {
        Self {
            max_iterations: 100,
            tolerance: 1e-5,
            prior_votes: Some(0.0),
        }
    }
}

/// What a stable source looks like after a batch run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceEstimate {
    pub source: u64,
    /// Votes with a label (abstentions excluded).
    pub votes: u32,
    /// Probability that the source answers right, averaged over the class prior (from its confusion).
    pub accuracy: f64,
    /// Expected share of the source's answers that are right under the posteriors: how often it agrees
    /// with the consensus. Less model-dependent than `accuracy` for sources with few votes.
    pub agreement: f64,
    pub confusion: Confusion,
}

/// The result of a batch method.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    pub n_classes: u16,
    /// Posterior of every label of every item, row-major `n_items × n_classes`.
    pub posteriors: Vec<f64>,
    /// Most probable label of every item; `None` for items without votes or gold.
    pub labels: Vec<Option<Label>>,
    /// Stable sources, in order of first vote.
    pub sources: Vec<SourceEstimate>,
    /// The model the online rule should use from now on: each source's matrix is shrunk towards the crowd
    /// (empirical Bayes), unlike the maximum-likelihood ones in `sources`.
    pub model: CrowdModel,
    /// EM iterations run (0 for majority vote).
    pub iterations: u32,
    /// Prior strength used for the sources, per true class, in pseudo-votes per confusion row.
    pub prior_votes: Vec<f64>,
}

/// A decision changed by a batch run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Revision {
    pub item: u32,
    pub before: Decision,
    pub after: Decision,
}

/// Majority vote: the label with the most votes, ties to the lowest label; posteriors are vote shares.
pub fn majority_vote(data: &Dataset, gold: &[(u32, Label)]) -> Estimate {
    let prep = Prepared::new(data, gold);
    let post = prep.majority();
    let params = em::m_step(&prep, &post, Noise::Confusion, em::Strength::Fixed(0.0));
    finish(&prep, post, &params, 0)
}

/// Weighted vote: each source's vote weighs the log-odds of its accuracy, estimated from its agreement
/// with the majority (one round of one-coin EM with a uniform class prior). Anonymous votes weigh the
/// crowd's average, so without stable sources this is the majority vote.
pub fn weighted_vote(data: &Dataset, gold: &[(u32, Label)]) -> Estimate {
    let prep = Prepared::new(data, gold);
    let opts = EmOptions {
        max_iterations: 1,
        ..EmOptions::default()
    };
    let (post, params, iterations) = em::run(&prep, Noise::OneCoin, &opts, true, None);
    finish(&prep, post, &params, iterations)
}

/// One-coin Dawid–Skene: each source has one accuracy, its wrong answers spread evenly.
pub fn one_coin(data: &Dataset, gold: &[(u32, Label)], opts: &EmOptions) -> Estimate {
    let prep = Prepared::new(data, gold);
    let (post, params, iterations) = em::run(&prep, Noise::OneCoin, opts, false, None);
    finish(&prep, post, &params, iterations)
}

/// Dawid–Skene with a full confusion matrix per stable source (the default method).
pub fn dawid_skene(data: &Dataset, gold: &[(u32, Label)], opts: &EmOptions) -> Estimate {
    let prep = Prepared::new(data, gold);
    let (post, params, iterations) = em::run(&prep, Noise::Confusion, opts, false, None);
    finish(&prep, post, &params, iterations)
}

/// [`dawid_skene`] warm-started from an earlier run on a subset of the same votes (same item indices):
/// periodic runs on a growing project converge in a few iterations instead of starting from scratch.
pub fn dawid_skene_from(
    data: &Dataset,
    gold: &[(u32, Label)],
    opts: &EmOptions,
    start: &Estimate,
) -> Estimate {
    let prep = Prepared::new(data, gold);
    let (post, params, iterations) = em::run(&prep, Noise::Confusion, opts, false, Some(start));
    finish(&prep, post, &params, iterations)
}

fn finish(prep: &Prepared, posteriors: Vec<f64>, params: &em::Params, iterations: u32) -> Estimate {
    let k = prep.k;
    let n_classes = u16::try_from(k).unwrap_or(u16::MAX);
    let labels = (0..prep.n_items)
        .map(|item| {
            let informative = prep.gold[item].is_some() || !prep.votes_of(item).is_empty();
            informative
                .then(|| top(&posteriors[item * k..(item + 1) * k]).map(|(l, _)| l))
                .flatten()
        })
        .collect();
    let mut votes_per_slot = vec![0u32; prep.n_sources() + 1];
    let mut right_per_slot = vec![0.0; prep.n_sources() + 1];
    for item in 0..prep.n_items {
        for v in prep.votes_of(item) {
            if let Ok(slot) = usize::try_from(prep.slot[v])
                && slot < votes_per_slot.len()
            {
                votes_per_slot[slot] += 1;
                right_per_slot[slot] += posteriors[item * k + usize::from(prep.answer[v])];
            }
        }
    }
    let matrix = |slot: usize| {
        Confusion::from_row_major(n_classes, params.matrix(slot, k).to_vec())
            .unwrap_or_else(|| Confusion::one_coin(n_classes, 1.0 / lossy(k)))
    };
    let sources: Vec<SourceEstimate> = prep
        .source_ids
        .iter()
        .enumerate()
        .map(|(slot, &source)| {
            let confusion = matrix(slot);
            SourceEstimate {
                source,
                votes: votes_per_slot[slot],
                accuracy: confusion.accuracy(&params.class_prior),
                agreement: right_per_slot[slot] / f64::from(votes_per_slot[slot].max(1)),
                confusion,
            }
        })
        .collect();
    // The online rule needs to predict a source's next vote, not to explain its past ones: a source with
    // few votes has a maximum-likelihood matrix far more certain than its record allows. The model it gets
    // is the posterior predictive under a hierarchical prior (each source's rows drawn around the crowd's,
    // strength fitted by empirical Bayes), whatever estimator produced the labels.
    let predictive = em::m_step(prep, &posteriors, Noise::Confusion, em::Strength::Estimated);
    let predictive_matrix = |slot: usize| {
        Confusion::from_row_major(n_classes, predictive.matrix(slot, k).to_vec())
            .unwrap_or_else(|| Confusion::one_coin(n_classes, 1.0 / lossy(k)))
    };
    let model = CrowdModel {
        class_prior: params.class_prior.clone(),
        crowd: predictive_matrix(prep.n_sources()),
        sources: prep
            .source_ids
            .iter()
            .enumerate()
            .map(|(slot, &id)| (id, predictive_matrix(slot)))
            .collect::<BTreeMap<_, _>>(),
    };
    Estimate {
        n_classes,
        posteriors,
        labels,
        sources,
        model,
        iterations,
        prior_votes: params.prior_votes.clone(),
    }
}

impl Estimate {
    /// Posterior of each label of `item`.
    pub fn posterior(&self, item: u32) -> &[f64] {
        let k = usize::from(self.n_classes);
        let i = usize::try_from(item).unwrap_or(usize::MAX);
        self.posteriors.get(i * k..(i + 1) * k).unwrap_or(&[])
    }

    /// The decision of every item under `policy`, with the batch posteriors in place of the online ones:
    /// the same rule (threshold, distinct agreeing sources, cap) as [`crate::online::evaluate`].
    /// Gold items are decided with confidence 1.
    pub fn decisions(&self, data: &Dataset, gold: &[(u32, Label)], policy: &Policy) -> Vec<Decision> {
        let n = self.labels.len();
        let mut votes: Vec<Vec<StoredVote>> = vec![Vec::new(); n];
        for vote in &data.votes {
            if let Some(list) = usize::try_from(vote.item).ok().and_then(|i| votes.get_mut(i)) {
                list.push(StoredVote {
                    source: vote.source,
                    answer: vote.answer,
                });
            }
        }
        let mut decisions: Vec<Decision> = (0..n)
            .map(|i| {
                let item_votes = &votes[i];
                let posterior = self.posterior(u32::try_from(i).unwrap_or(u32::MAX));
                let decision = rule(
                    posterior,
                    |label| agreeing_sources(item_votes, label),
                    item_votes.len(),
                    policy,
                );
                // An image nobody has answered yet is open, whatever the model thinks of its chances.
                if decision == Decision::Open
                    && !item_votes.is_empty()
                    && !decidable(item_votes, posterior, policy, &self.model)
                {
                    Decision::Contested
                } else {
                    decision
                }
            })
            .collect();
        for &(item, label) in gold {
            if let Some(d) = usize::try_from(item).ok().and_then(|i| decisions.get_mut(i)) {
                *d = Decision::Decided {
                    label,
                    confidence: 1.0,
                };
            }
        }
        decisions
    }

    /// The changes this run makes to `previous` decisions (indexed by item): a changed label, a decision
    /// withdrawn or newly taken, a contested image re-opened. A mere change of confidence is not a revision.
    pub fn revisions(
        &self,
        data: &Dataset,
        gold: &[(u32, Label)],
        previous: &[Decision],
        policy: &Policy,
    ) -> Vec<Revision> {
        let now = self.decisions(data, gold, policy);
        previous
            .iter()
            .zip(now)
            .enumerate()
            .filter(|(_, (before, after))| !same_outcome(**before, *after))
            .map(|(i, (&before, after))| Revision {
                item: u32::try_from(i).unwrap_or(u32::MAX),
                before,
                after,
            })
            .collect()
    }
}

fn same_outcome(a: Decision, b: Decision) -> bool {
    match (a, b) {
        (Decision::Decided { label: x, .. }, Decision::Decided { label: y, .. }) => x == y,
        (Decision::Open, Decision::Open) | (Decision::Contested, Decision::Contested) => true,
        _ => false,
    }
}
