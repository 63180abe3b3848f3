//! How reliable votes are: confusion matrices per source and for the crowd, and the posterior of an
//! image's label given its votes. Batch EM estimates a [`CrowdModel`]; the online rule reads it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{Answer, Label, Policy, Source};

/// Probabilities below this are raised to it before taking logarithms, so that one vote can never make a
/// label impossible (a model estimated as perfectly accurate would otherwise veto every other label).
const PROBABILITY_FLOOR: f64 = 1e-9;

/// A confusion matrix: `prob(truth, answer)` is the probability that a source answers `answer` when the
/// true label is `truth`. Rows sum to one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Confusion {
    n_classes: u16,
    /// Row-major, `n_classes × n_classes`, rows indexed by the true label.
    probs: Vec<f64>,
}

impl Confusion {
    /// The "one-coin" matrix: right with probability `accuracy`, otherwise any wrong label uniformly.
    pub fn one_coin(n_classes: u16, accuracy: f64) -> Self {
        let k = usize::from(n_classes);
        let wrong = if k > 1 {
            (1.0 - accuracy) / f64::from(n_classes - 1)
        } else {
            0.0
        };
        let probs = (0..k * k)
            .map(|cell| if cell / k == cell % k { accuracy } else { wrong })
            .collect();
        Self { n_classes, probs }
    }

    /// A matrix from its rows, flattened row-major; `None` when the size does not match.
    pub fn from_row_major(n_classes: u16, probs: Vec<f64>) -> Option<Self> {
        let k = usize::from(n_classes);
        (probs.len() == k * k).then_some(Self { n_classes, probs })
    }

    /// Number of labels.
    pub fn n_classes(&self) -> u16 {
        self.n_classes
    }

    /// Probability of answering `answer` when the truth is `truth`.
    pub fn prob(&self, truth: Label, answer: Label) -> f64 {
        self.probs[truth.index() * usize::from(self.n_classes) + answer.index()]
    }

    /// The rows, flattened row-major.
    pub fn row_major(&self) -> &[f64] {
        &self.probs
    }

    /// Probability of a right answer, averaged over true labels drawn from `class_prior`.
    pub fn accuracy(&self, class_prior: &[f64]) -> f64 {
        let k = usize::from(self.n_classes);
        class_prior
            .iter()
            .enumerate()
            .map(|(c, p)| p * self.probs[c * k + c])
            .sum()
    }
}

/// What the online rule knows about the crowd: how frequent each label is, how the average vote behaves,
/// and how each stable source with a track record behaves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CrowdModel {
    /// Prior probability of each label.
    pub class_prior: Vec<f64>,
    /// Confusion of an average vote: used for anonymous votes and sources without a record.
    pub crowd: Confusion,
    /// Confusion of stable sources, keyed by their pseudonym.
    pub sources: BTreeMap<u64, Confusion>,
}

impl CrowdModel {
    /// The model used before any batch run: uniform class prior, every vote right with
    /// [`Policy::prior_accuracy`].
    pub fn uninformed(policy: &Policy) -> Self {
        let k = policy.n_classes;
        Self {
            class_prior: vec![1.0 / f64::from(k.max(1)); usize::from(k)],
            crowd: Confusion::one_coin(k, policy.prior_accuracy),
            sources: BTreeMap::new(),
        }
    }

    /// Number of labels.
    pub fn n_classes(&self) -> u16 {
        self.crowd.n_classes
    }

    /// The confusion matrix that describes votes from `source`.
    pub fn confusion(&self, source: Source) -> &Confusion {
        match source {
            Source::Stable(id) => self.sources.get(&id).unwrap_or(&self.crowd),
            Source::Anonymous => &self.crowd,
        }
    }

    /// Estimated probability that a vote from `source` is right.
    pub fn accuracy(&self, source: Source) -> f64 {
        self.confusion(source).accuracy(&self.class_prior)
    }

    /// Posterior probability of each label given `votes` (abstentions carry no information).
    pub fn posterior(&self, votes: impl IntoIterator<Item = (Source, Answer)>) -> Vec<f64> {
        let mut log_post: Vec<f64> = self
            .class_prior
            .iter()
            .map(|p| p.max(PROBABILITY_FLOOR).ln())
            .collect();
        for (source, answer) in votes {
            let Answer::Label(answer) = answer else { continue };
            let confusion = self.confusion(source);
            for (truth, lp) in (0..self.n_classes()).zip(log_post.iter_mut()) {
                *lp += confusion.prob(Label(truth), answer).max(PROBABILITY_FLOOR).ln();
            }
        }
        normalise_logs(&mut log_post);
        log_post
    }
}

/// Turns log-weights into probabilities in place (log-sum-exp, stable for very unequal weights) and
/// returns the logarithm of their sum.
pub(crate) fn normalise_logs(logs: &mut [f64]) -> f64 {
    let max = logs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut total = 0.0;
    for l in logs.iter_mut() {
        *l = (*l - max).exp();
        total += *l;
    }
    for l in logs.iter_mut() {
        *l /= total;
    }
    max + total.ln()
}

/// The most probable label and its probability; ties go to the lowest index.
pub(crate) fn top(posterior: &[f64]) -> Option<(Label, f64)> {
    let mut best: Option<(usize, f64)> = None;
    for (c, &p) in posterior.iter().enumerate() {
        if best.is_none_or(|(_, bp)| p > bp) {
            best = Some((c, p));
        }
    }
    best.and_then(|(c, p)| Some((Label(u16::try_from(c).ok()?), p)))
}
