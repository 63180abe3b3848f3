//! Labels from contributions: the edge between the server's ids and the consensus engine's indices.
//!
//! `consensus` knows class indices and item numbers only. This module maps a project's `LabelId`s to indices
//! (in the project's label order; the abstain label becomes `Answer::Abstain`) and the engine's decisions
//! back to label ids. Citizens are anonymous: every contribution is its own source.

use std::borrow::Cow;
use std::collections::HashMap;

use consensus::online::{self, Decision, ImageState};
use consensus::{Answer, CrowdModel, Label, Policy, Source, controls};
use protocol::LabelId;

use crate::model::{Project, Serving};

/// Where an image's label comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// The owner gave it (gold).
    Gold,
    /// The crowd decided it under the project's policy.
    Decided,
    /// The crowd cannot agree within the vote cap: set aside.
    Contested,
    /// Still collecting votes.
    Open,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Gold => "gold",
            Status::Decided => "decided",
            Status::Contested => "contested",
            Status::Open => "open",
        }
    }
}

/// The project's labels as engine classes (in the project's order, the abstain label left out), and back.
pub fn class_index(project: &Project) -> (HashMap<&LabelId, Label>, Vec<&LabelId>) {
    let classes: Vec<&LabelId> = project
        .labels
        .iter()
        .map(|l| &l.id)
        .filter(|id| Some(*id) != project.abstain.as_ref())
        .collect();
    let index = classes
        .iter()
        .enumerate()
        .map(|(i, id)| (*id, Label(u16::try_from(i).unwrap_or(u16::MAX))))
        .collect();
    (index, classes)
}

/// The decision policy of a project: its own consensus settings (threshold, agreeing votes, cap), the
/// engine's defaults for the rest.
pub fn policy(project: &Project) -> Policy {
    let mut policy = Policy::new(u16::try_from(class_index(project).1.len()).unwrap_or(u16::MAX));
    policy.threshold = project.consensus.threshold;
    policy.min_agreeing = project.consensus.min_agreeing;
    policy.max_votes = project.consensus.max_votes;
    // A control must stay stricter than a label, whatever the owner chose for labels.
    policy.promote_threshold = policy.promote_threshold.max(policy.threshold);
    policy.promote_min_agreeing = policy.promote_min_agreeing.max(policy.min_agreeing + 1);
    policy
}

/// What serving must change after a vote on an unknown image.
#[derive(Debug, Clone, PartialEq)]
pub enum ServingChange {
    /// Still open: keep serving it as an unknown, with this priority (see [`priority`]).
    Keep { priority: Option<f64> },
    /// Decided or contested: stop serving it; more votes would be wasted.
    Retire,
    /// Decided with enough confidence to serve as a control with this label from now on.
    Promote(LabelId),
}

/// The model the online rule uses: the one the last batch run learned, when it fits the project, else the
/// uninformed one (every vote right with the policy's prior accuracy).
fn online_model<'a>(policy: &Policy, learned: Option<&'a CrowdModel>) -> Cow<'a, CrowdModel> {
    match learned {
        Some(model) if model.n_classes() == policy.n_classes => Cow::Borrowed(model),
        _ => Cow::Owned(CrowdModel::uninformed(policy)),
    }
}

/// The image's state after replaying its votes (in acknowledgement order) through the online rule, with
/// the policy and model it used.
fn online_state<'a>(
    project: &Project,
    votes: &[LabelId],
    learned: Option<&'a CrowdModel>,
) -> (ImageState, Policy, Cow<'a, CrowdModel>) {
    let (index, _) = class_index(project);
    let policy = policy(project);
    let model = online_model(&policy, learned);
    let mut state = ImageState::default();
    for vote in votes {
        let answer = index.get(vote).map_or(Answer::Abstain, |l| Answer::Label(*l));
        online::record_vote(&mut state, Source::Anonymous, answer, &policy, &model);
    }
    (state, policy, model)
}

/// The online rule's decision about an image with these votes.
pub fn online_decision(project: &Project, votes: &[LabelId], learned: Option<&CrowdModel>) -> Decision {
    online_state(project, votes, learned).0.decision()
}

/// Applies the online rule to an image's votes (in acknowledgement order) and says what serving must do.
/// `learned` is the crowd model of the project's last batch run, if any.
///
/// The image's state is a function of its votes, which the store appends in the same atomic step as the
/// contribution: whatever happens after that step can be recomputed from them.
pub fn after_vote(project: &Project, votes: &[LabelId], learned: Option<&CrowdModel>) -> ServingChange {
    let (_, classes) = class_index(project);
    let (state, policy, model) = online_state(project, votes, learned);
    match state.decision() {
        Decision::Open => ServingChange::Keep {
            priority: online::priority(&state, &policy, &model),
        },
        Decision::Decided { label, .. } if controls::should_promote(&state, &policy) => classes
            .get(usize::from(label.0))
            .map_or(ServingChange::Retire, |id| ServingChange::Promote((*id).clone())),
        Decision::Decided { .. } | Decision::Contested => ServingChange::Retire,
    }
}

/// How much an open image needs its next vote (`consensus::online::priority`): higher first; `None` once
/// it is decided or contested.
pub fn priority(project: &Project, votes: &[LabelId], learned: Option<&CrowdModel>) -> Option<f64> {
    let (state, policy, model) = online_state(project, votes, learned);
    online::priority(&state, &policy, &model)
}

/// Whether an image's gold label is trusted: while the image serves as a control. A gold image humans
/// kept failing was re-opened to the crowd (and perhaps decided by its votes since): its label is the
/// crowd's from then on, in the batch run and in the exports alike.
pub fn gold_is_trusted(serving: &Serving) -> bool {
    matches!(serving, Serving::Control(_))
}

/// A label id as the engine's class, `None` for the abstain label or a label the project does not have.
pub fn class_of(project: &Project, label: &LabelId) -> Option<Label> {
    class_index(project).0.get(label).copied()
}

/// The engine's class as the project's label id.
pub fn label_of(project: &Project, class: Label) -> Option<LabelId> {
    class_index(project)
        .1
        .get(usize::from(class.0))
        .map(|id| (*id).clone())
}
