//! Truth inference for Cobot: turns anonymous, noisy, sometimes adversarial votes into labels a public body
//! can trust.
//!
//! The crate is pure: no IO, no async, no threads, no randomness. The same inputs always give the same
//! outputs, bit for bit, so a decision can be replayed and audited.
//!
//! # Vocabulary
//!
//! - A [`Label`] is a class index `0..n_classes` of one project; the server maps its `LabelId` strings to
//!   indices (in the project's label order) at the edge.
//! - An [`Answer`] is a [`Label`] or [`Answer::Abstain`] ("can't tell"): abstentions count towards the
//!   vote cap of an image but never support a label.
//! - A [`Source`] is who voted: [`Source::Stable`] when the server can recognise the same contributor again
//!   (a keyed pseudonym), [`Source::Anonymous`] otherwise. Every anonymous vote is a distinct one-vote
//!   source: it can never be matched with another vote.
//!
//! # What the server calls
//!
//! When a contribution arrives (in the same store transaction as the vote itself):
//!
//! ```
//! use consensus::{Answer, CrowdModel, Label, Policy, Source, online::{self, Decision, ImageState}};
//!
//! let policy = Policy::new(4); // four labels, defaults for everything else
//! let model = CrowdModel::uninformed(&policy); // replaced by batch EM estimates later
//! let mut state = ImageState::default(); // stored as JSON next to the image
//! for (who, label) in [(1, 2), (2, 2), (3, 2)] {
//!     online::record_vote(&mut state, Source::Stable(who), Answer::Label(Label(label)), &policy, &model);
//! }
//! assert!(matches!(state.decision(), Decision::Decided { label: Label(2), .. }));
//! // Decided and contested images are no longer served:
//! assert_eq!(online::priority(&state, &policy, &model), None);
//! ```
//!
//! - [`online::record_vote`] updates an [`online::ImageState`] and returns its [`online::Decision`]:
//!   `Open`, `Decided { label, confidence }` or `Contested`. An image is decided when the posterior of its
//!   top label reaches [`Policy::threshold`] *and* at least [`Policy::min_agreeing`] distinct sources voted
//!   for it (never fewer than two, whatever the policy says); it is contested after [`Policy::max_votes`].
//! - [`online::priority`] scores an open image for serving: higher means "show it sooner"; `None` means
//!   "do not serve" (decided or contested). The score is the chance of a decision per vote spent, so images
//!   close to a decision come first.
//! - [`online::evaluate`] is the rule itself over a list of votes (what `record_vote` applies).
//! - [`controls::should_promote`] says whether a decided unknown may become a control (stricter bar:
//!   [`Policy::promote_threshold`], [`Policy::promote_min_agreeing`]);
//!   [`controls::ControlStats::record`] counts answers to a control and says when humans fail it
//!   significantly more than controls in general, and [`online::ImageState::reopen`] then re-opens the image.
//!
//! Periodically (e.g. hourly, off the request path), over all the votes of a project
//! ([`batch::Dataset`]: items numbered `0..n_items` by the caller, each [`batch::Vote`] with its source):
//!
//! - [`batch::dawid_skene`] (the default method: a full confusion matrix per stable source),
//!   [`batch::one_coin`], [`batch::weighted_vote`] and [`batch::majority_vote`] re-estimate every label,
//!   with gold (control) items clamped to their known label. [`batch::dawid_skene_from`] warm-starts from
//!   the previous run. They return a [`batch::Estimate`]: labels, posteriors, per-source accuracies and
//!   confusion matrices, and a [`CrowdModel`] that the online rule uses from then on (store it as JSON).
//! - [`batch::Estimate::decisions`] applies the online rule to the batch posteriors, and
//!   [`batch::Estimate::revisions`] lists every change against the decisions taken so far as a
//!   [`batch::Revision`] (`item`, `before`, `after`): the server applies them with
//!   [`online::ImageState::revise`] and records them. Decisions are revised openly, never silently.
//!
//! # Models
//!
//! Dawid–Skene EM gives each stable source a confusion matrix (row = true class, column = answer), so a
//! source that always lies becomes informative (its answers are read backwards) instead of harmful.
//! Anonymous votes are one-vote sources: they all share the pooled crowd matrix, so a crowd without any
//! stable id is still handled (the model then cannot tell a liar from an honest contributor, and does
//! as well as counting votes). The class prior has a Laplace (add-one) prior, the crowd matrix one
//! pseudo-vote per cell.
//!
//! By default ([`batch::EmOptions::default`]) a stable source's matrix is its own maximum-likelihood
//! estimate, classic Dawid–Skene: a source seen once is uninformative rather than trusted.
//! [`batch::EmOptions::prior_votes`] can instead shrink each source towards the crowd with a Dirichlet
//! prior worth that many votes per row, or, with `None`, estimate that strength from the data (empirical
//! Bayes, Dirichlet-multinomial marginal likelihood).
//!
//! Whatever the estimator, the [`CrowdModel`] handed to the online rule ([`batch::Estimate::model`])
//! describes each source by its posterior predictive matrix under that empirical-Bayes prior: the online
//! rule predicts a source's next vote, and a source with a short record must not look certain.
//!
//! EM starts from majority-vote posteriors (or the previous run's) and stops after
//! [`batch::EmOptions::max_iterations`] or when the log-likelihood improves by less than
//! [`batch::EmOptions::tolerance`] (relative). Ties go to the lowest label index. Everything is computed
//! in a fixed order, so results are reproducible bit for bit.

pub mod batch;
pub mod controls;
mod model;
pub mod online;
mod policy;

use serde::{Deserialize, Serialize};

pub use model::{Confusion, CrowdModel};
pub use policy::Policy;

/// A class index, `0..n_classes`, of one project's label set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Label(pub u16);

impl Label {
    /// The label as an index into per-class arrays.
    pub fn index(self) -> usize {
        usize::from(self.0)
    }
}

/// One contributor's answer about one image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Answer {
    /// The contributor chose this label.
    Label(Label),
    /// The contributor said they cannot tell; supports no label.
    Abstain,
}

impl Answer {
    /// The chosen label, if any.
    pub fn label(self) -> Option<Label> {
        match self {
            Answer::Label(label) => Some(label),
            Answer::Abstain => None,
        }
    }
}

/// Who gave a vote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// A contributor that cannot be recognised again: every anonymous vote is its own one-vote source.
    Anonymous,
    /// A contributor recognised across votes by a stable pseudonym (e.g. a keyed hash).
    Stable(u64),
}
