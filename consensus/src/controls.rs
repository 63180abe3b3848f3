//! Controls from consensus: which decided unknowns become controls, and when a control that humans fail
//! too often is demoted (and its image re-opened with [`crate::online::ImageState::reopen`]).

use serde::{Deserialize, Serialize};

use crate::Policy;
use crate::online::{Decision, ImageState, agreeing_sources};

/// One-sided 95 % normal quantile, for the Wilson lower bound.
const Z_95: f64 = 1.645;

/// Whether a decided unknown is trustworthy enough to serve as a control: decided with a posterior of at
/// least [`Policy::promote_threshold`] and at least [`Policy::promote_min_agreeing`] distinct agreeing
/// sources. A wrong control rejects honest humans, hence the stricter bar than for a label.
pub fn should_promote(state: &ImageState, policy: &Policy) -> bool {
    let Decision::Decided { label, confidence } = state.decision() else {
        return false;
    };
    let min_agreeing = policy.promote_min_agreeing.max(policy.required_agreeing());
    confidence >= policy.promote_threshold && agreeing_sources(state.votes(), label) >= min_agreeing
}

/// What to do with a control after an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlVerdict {
    Keep,
    /// Humans fail it too often: stop serving it as a control and re-open the image.
    Demote,
}

/// Answers given to one control image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ControlStats {
    pub passed: u32,
    pub failed: u32,
}

impl ControlStats {
    /// Counts one answer to the control and says whether to keep it.
    ///
    /// `project_failure_rate` is the failure rate over all the project's controls: bots and careless
    /// visitors fail every control alike, so a control is only blamed when it is failed significantly
    /// more than controls in general *and* more than [`Policy::control_max_failure`]. "Significantly"
    /// means that the one-sided 95 % Wilson lower bound of its failure rate is above both, after at least
    /// [`Policy::control_min_answers`] answers.
    pub fn record(&mut self, correct: bool, project_failure_rate: f64, policy: &Policy) -> ControlVerdict {
        if correct {
            self.passed += 1;
        } else {
            self.failed += 1;
        }
        let n = self.passed + self.failed;
        if n < policy.control_min_answers {
            return ControlVerdict::Keep;
        }
        let bound = wilson_lower(self.failed, n);
        if bound > policy.control_max_failure && bound > project_failure_rate {
            ControlVerdict::Demote
        } else {
            ControlVerdict::Keep
        }
    }
}

/// Lower bound of the Wilson score interval for `successes` out of `n` trials.
fn wilson_lower(successes: u32, n: u32) -> f64 {
    let n = f64::from(n);
    let p = f64::from(successes) / n;
    let z2 = Z_95 * Z_95;
    let centre = p + z2 / (2.0 * n);
    let spread = Z_95 * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    (centre - spread) / (1.0 + z2 / n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::online::{evaluate, record_vote};
    use crate::{Answer, CrowdModel, Label, Source};

    #[test]
    fn only_strongly_agreed_labels_are_promoted() {
        let policy = Policy::new(4);
        let model = CrowdModel::uninformed(&policy);
        let mut state = ImageState::default();
        for who in 0..3 {
            record_vote(
                &mut state,
                Source::Stable(who),
                Answer::Label(Label(1)),
                &policy,
                &model,
            );
        }
        assert!(state.decision().label().is_some());
        assert!(
            !should_promote(&state, &policy),
            "three votes are enough for a label, not for a control"
        );
        // A fourth, late vote is kept; once a batch run (here the online rule itself) re-evaluates the
        // image, its four agreeing sources make it a control.
        record_vote(
            &mut state,
            Source::Stable(3),
            Answer::Label(Label(1)),
            &policy,
            &model,
        );
        state.revise(evaluate(state.votes(), &policy, &model));
        assert!(should_promote(&state, &policy));
    }

    #[test]
    fn a_control_most_humans_fail_is_demoted_and_a_normal_one_is_kept() {
        let policy = Policy::default();
        let mut bad = ControlStats::default();
        let verdicts: Vec<_> = (0..12).map(|i| bad.record(i % 5 == 0, 0.15, &policy)).collect();
        assert_eq!(verdicts.last(), Some(&ControlVerdict::Demote));
        let mut good = ControlStats::default();
        for i in 0..200 {
            assert_eq!(good.record(i % 6 != 0, 0.15, &policy), ControlVerdict::Keep);
        }
    }

    #[test]
    fn bot_traffic_failing_every_control_demotes_none() {
        let policy = Policy::default();
        let mut stats = ControlStats::default();
        for i in 0..100 {
            assert_eq!(stats.record(i % 2 == 0, 0.5, &policy), ControlVerdict::Keep);
        }
    }
}
