//! The rule the server applies when a vote arrives, and which open image to serve next.
//!
//! An [`ImageState`] is small (the votes of one image, a decision) and serialisable, so the server stores
//! it in the same transaction as the contribution.

use serde::{Deserialize, Serialize};

use crate::model::top;
use crate::{Answer, CrowdModel, Label, Policy, Source};

/// Where an image stands.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Decision {
    /// Still collecting votes.
    #[default]
    Open,
    /// The label is decided; `confidence` is its posterior probability when it was decided.
    Decided { label: Label, confidence: f64 },
    /// No label can be decided within the vote cap: the image is set aside.
    Contested,
}

impl Decision {
    /// The decided label, if any.
    pub fn label(self) -> Option<Label> {
        match self {
            Decision::Decided { label, .. } => Some(label),
            Decision::Open | Decision::Contested => None,
        }
    }
}

/// One recorded vote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredVote {
    pub source: Source,
    pub answer: Answer,
}

/// The consensus state of one image: its votes and its current decision.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ImageState {
    votes: Vec<StoredVote>,
    decision: Decision,
    /// How many times the image was re-opened after being demoted from the controls.
    #[serde(default)]
    reopened: u32,
}

impl ImageState {
    /// The votes counted for this image, in arrival order.
    pub fn votes(&self) -> &[StoredVote] {
        &self.votes
    }

    /// The current decision.
    pub fn decision(&self) -> Decision {
        self.decision
    }

    /// How many times the image was re-opened after a demotion.
    pub fn reopened(&self) -> u32 {
        self.reopened
    }

    /// Replaces the decision, e.g. with the `after` side of a [`crate::batch::Revision`].
    pub fn revise(&mut self, decision: Decision) {
        self.decision = decision;
    }

    /// Re-opens an image whose label humans reject (a demoted control): its earlier votes agreed on that
    /// label, so they are set aside and the image starts collecting votes afresh.
    pub fn reopen(&mut self) {
        self.votes.clear();
        self.decision = Decision::Open;
        self.reopened += 1;
    }

    fn has_voted(&self, source: Source) -> bool {
        source != Source::Anonymous && self.votes.iter().any(|v| v.source == source)
    }
}

/// Records one vote and returns the image's decision.
///
/// A second vote from the same stable source is ignored (one source, one vote per image). Votes arriving
/// after the image was decided or contested (challenges served before that) are kept for batch EM but do
/// not change the online decision: only a batch run revises it.
pub fn record_vote(
    state: &mut ImageState,
    source: Source,
    answer: Answer,
    policy: &Policy,
    model: &CrowdModel,
) -> Decision {
    if state.has_voted(source) {
        return state.decision;
    }
    state.votes.push(StoredVote { source, answer });
    if state.decision == Decision::Open {
        state.decision = evaluate(&state.votes, policy, model);
    }
    state.decision
}

/// The decision the online rule takes for `votes`, ignoring any earlier decision.
///
/// Decided when the top label's posterior reaches the threshold and enough distinct sources voted for it;
/// contested when the cap is reached, or earlier when even unanimous votes up to the cap could not decide
/// it (further votes would be wasted).
pub fn evaluate(votes: &[StoredVote], policy: &Policy, model: &CrowdModel) -> Decision {
    let posterior = model.posterior(votes.iter().map(|v| (v.source, v.answer)));
    let decision = rule(
        &posterior,
        |label| agreeing_sources(votes, label),
        votes.len(),
        policy,
    );
    if decision == Decision::Open && !decidable(votes, &posterior, policy, model) {
        return Decision::Contested;
    }
    decision
}

/// How soon an open image should be served: higher first; `None` for images that must not be served
/// (decided or contested).
///
/// The score is the chance of a decision per vote spent: for each label, the probability that the next
/// votes it needs (from average sources, given the current posterior) all go to it, divided by how many
/// votes that is, summed over labels. An image one likely vote away from a decision scores near 1, a
/// fresh image about `1 / min_agreeing` times the chance that that many votes agree, an image that can
/// only be decided by many more votes near 0. Serving the highest scores first decides labels with the
/// fewest votes in flight; a server may also sample images in proportion to the score, to keep fresh
/// images flowing.
pub fn priority(state: &ImageState, policy: &Policy, model: &CrowdModel) -> Option<f64> {
    if state.decision != Decision::Open {
        return None;
    }
    let posterior = model.posterior(state.votes.iter().map(|v| (v.source, v.answer)));
    let mut score = 0.0;
    let mut reachable = false;
    for label in (0..model.n_classes()).map(Label) {
        let Some(needed) = votes_to_decide(&state.votes, &posterior, label, policy, model) else {
            continue;
        };
        reachable = true;
        let all_agree: f64 = posterior
            .iter()
            .enumerate()
            .map(|(truth, p)| {
                let truth = Label(u16::try_from(truth).unwrap_or(u16::MAX));
                p * model
                    .crowd
                    .prob(truth, label)
                    .powi(i32::try_from(needed).unwrap_or(i32::MAX))
            })
            .sum();
        score += all_agree / f64::from(needed.max(1));
    }
    reachable.then_some(score)
}

/// The shared decision rule over a posterior, used online and by batch revisions.
pub(crate) fn rule(
    posterior: &[f64],
    agreeing: impl Fn(Label) -> u32,
    n_votes: usize,
    policy: &Policy,
) -> Decision {
    if let Some((label, confidence)) = top(posterior)
        && confidence >= policy.threshold
        && agreeing(label) >= policy.required_agreeing()
    {
        return Decision::Decided { label, confidence };
    }
    if n_votes >= usize::try_from(policy.max_votes).unwrap_or(usize::MAX) {
        Decision::Contested
    } else {
        Decision::Open
    }
}

/// Distinct sources among `votes` that answered `label`; every anonymous vote is a source of its own.
pub(crate) fn agreeing_sources(votes: &[StoredVote], label: Label) -> u32 {
    let mut seen: Vec<u64> = Vec::new();
    let mut count = 0;
    for vote in votes {
        if vote.answer != Answer::Label(label) {
            continue;
        }
        match vote.source {
            Source::Anonymous => count += 1,
            Source::Stable(id) if !seen.contains(&id) => {
                seen.push(id);
                count += 1;
            }
            Source::Stable(_) => {}
        }
    }
    count
}

/// Whether some label can still be decided before the cap.
pub(crate) fn decidable(
    votes: &[StoredVote],
    posterior: &[f64],
    policy: &Policy,
    model: &CrowdModel,
) -> bool {
    // The leader is by far the most likely to be reachable: trying it first usually ends the search at once.
    let leader = top(posterior).map_or(0, |(l, _)| l.0);
    std::iter::once(leader)
        .chain((0..model.n_classes()).filter(|&l| l != leader))
        .any(|l| votes_to_decide(votes, posterior, Label(l), policy, model).is_some())
}

/// The smallest number of further votes, all for `target` from new average sources, that would decide
/// the image for `target` before the cap; `None` when no number would.
fn votes_to_decide(
    votes: &[StoredVote],
    posterior: &[f64],
    target: Label,
    policy: &Policy,
    model: &CrowdModel,
) -> Option<u32> {
    let cap = usize::try_from(policy.max_votes).unwrap_or(usize::MAX);
    let agreeing = agreeing_sources(votes, target);
    let mut logs: Vec<f64> = posterior.iter().map(|p| p.max(f64::MIN_POSITIVE).ln()).collect();
    let step: Vec<f64> = (0..model.n_classes())
        .map(|truth| model.crowd.prob(Label(truth), target).max(f64::MIN_POSITIVE).ln())
        .collect();
    // Fewer votes than the missing agreeing sources cannot decide: start counting from there.
    let mut extra = policy.required_agreeing().saturating_sub(agreeing);
    let mut n_votes = votes.len() + usize::try_from(extra).unwrap_or(usize::MAX);
    if n_votes > cap {
        return None;
    }
    for (l, s) in logs.iter_mut().zip(&step) {
        *l += f64::from(extra) * s;
    }
    let mut post = vec![0.0; logs.len()];
    loop {
        post.copy_from_slice(&logs);
        crate::model::normalise_logs(&mut post);
        if let Decision::Decided { label, .. } = rule(&post, |_| agreeing + extra, 0, policy)
            && label == target
        {
            return Some(extra);
        }
        if n_votes >= cap {
            return None;
        }
        extra += 1;
        n_votes += 1;
        for (l, s) in logs.iter_mut().zip(&step) {
            *l += s;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vote(
        state: &mut ImageState,
        who: Source,
        label: u16,
        policy: &Policy,
        model: &CrowdModel,
    ) -> Decision {
        record_vote(state, who, Answer::Label(Label(label)), policy, model)
    }

    #[test]
    fn one_stable_source_never_decides_alone() {
        let policy = Policy {
            min_agreeing: 1,
            ..Policy::new(3)
        };
        let model = CrowdModel::uninformed(&Policy {
            prior_accuracy: 0.999,
            ..policy.clone()
        });
        let mut state = ImageState::default();
        for _ in 0..20 {
            assert_eq!(
                vote(&mut state, Source::Stable(7), 1, &policy, &model),
                Decision::Open
            );
        }
        assert_eq!(state.votes().len(), 1, "repeated votes of one source are ignored");
    }

    #[test]
    fn three_agreeing_votes_decide_with_default_policy() {
        let policy = Policy::new(4);
        let model = CrowdModel::uninformed(&policy);
        let mut state = ImageState::default();
        assert_eq!(
            vote(&mut state, Source::Anonymous, 2, &policy, &model),
            Decision::Open
        );
        assert_eq!(
            vote(&mut state, Source::Anonymous, 2, &policy, &model),
            Decision::Open
        );
        let decision = vote(&mut state, Source::Anonymous, 2, &policy, &model);
        assert_eq!(decision.label(), Some(Label(2)));
        assert_eq!(priority(&state, &policy, &model), None);
    }

    #[test]
    fn a_hopelessly_split_image_is_contested_before_the_cap() {
        let policy = Policy::new(2);
        let model = CrowdModel::uninformed(&policy);
        let mut state = ImageState::default();
        for i in 0..8 {
            vote(
                &mut state,
                Source::Stable(i),
                u16::from(i % 2 == 0),
                &policy,
                &model,
            );
        }
        // 4–4 after eight votes: even two more agreeing votes give only 0.9 < 0.95.
        assert_eq!(state.decision(), Decision::Contested);
    }

    #[test]
    fn images_close_to_a_decision_are_served_first() {
        let policy = Policy::new(2);
        let model = CrowdModel::uninformed(&policy);
        let votes = |labels: &[u16]| {
            let mut state = ImageState::default();
            for &l in labels {
                vote(&mut state, Source::Anonymous, l, &policy, &model);
            }
            state
        };
        let p = |s: &ImageState| priority(s, &policy, &model).unwrap_or(-1.0);
        let (close, leaning, fresh) = (votes(&[1, 1]), votes(&[1, 0, 1]), votes(&[]));
        assert!(p(&close) > p(&leaning), "{} vs {}", p(&close), p(&leaning));
        assert!(p(&leaning) > p(&fresh), "{} vs {}", p(&leaning), p(&fresh));
        assert!(p(&fresh) > 0.0);
        assert_eq!(
            priority(&votes(&[1, 1, 1]), &policy, &model),
            None,
            "decided images are not served"
        );
    }

    #[test]
    fn state_round_trips_through_json() {
        let policy = Policy::new(4);
        let model = CrowdModel::uninformed(&policy);
        let mut state = ImageState::default();
        vote(&mut state, Source::Stable(u64::MAX), 3, &policy, &model);
        record_vote(&mut state, Source::Anonymous, Answer::Abstain, &policy, &model);
        let json = serde_json::to_string(&state).expect("serialise");
        let back: ImageState = serde_json::from_str(&json).expect("deserialise");
        assert_eq!(back, state);
    }
}
