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
//!   "do not serve" (decided or contested). Images close to a decision come first.
//! - [`controls::should_promote`] says whether a decided unknown may become a control;
//!   [`controls::ControlStats::record`] counts answers to a control and says when humans fail it too often,
//!   and [`online::ImageState::reopen`] then re-opens the image.
//!
//! Periodically (e.g. hourly, off the request path):
//!
//! - [`batch::dawid_skene`] (the default method, full confusion matrices), [`batch::one_coin`],
//!   [`batch::weighted_vote`] and [`batch::majority_vote`] re-estimate every label from all votes of a
//!   project, with gold (control) items clamped to their known label. They return a [`batch::Estimate`]:
//!   labels, posteriors, per-source accuracies and confusion matrices, and a [`CrowdModel`] that the online
//!   rule uses from then on.
//! - [`batch::Estimate::revisions`] compares the batch decisions with the ones the online rule took and lists
//!   every change as a [`batch::Revision`]: decisions are revised openly, never silently.
//!
//! # Models
//!
//! Dawid–Skene EM gives each stable source a confusion matrix (row = true class, column = answer) and
//! shrinks it towards the pooled crowd matrix with a Dirichlet prior worth [`batch::EmOptions::prior_votes`]
//! votes per row: a source with few votes looks like the average contributor, one with many votes is judged
//! on its own record (which is how a source that always lies becomes harmless, its answers being read
//! backwards). Anonymous votes use the pooled crowd matrix. The class prior has a Laplace (add-one) prior.
//! EM starts from majority-vote posteriors and stops after [`batch::EmOptions::max_iterations`] or when no
//! posterior moves by more than [`batch::EmOptions::tolerance`]. Ties go to the lowest label index.

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
