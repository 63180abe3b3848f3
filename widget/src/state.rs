//! The widget's state and the reducer that moves it: every transition of a check lives here.
//!
//! Side effects (requests, timers, the host page's hidden field) are not here: the `use_challenge` hook and
//! the root component react to the state this reducer produces.

use std::rc::Rc;

use protocol::{Challenge, LabelId, PowChallenge};
use yew::Reducible;

use crate::services::{ServiceError, Verdict};

/// Where the check stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// Asking the server for a challenge.
    Loading,
    /// A challenge is shown and the citizen is answering.
    Answering,
    /// The accessible path: the device is computing the proof of work.
    Computing,
    /// The answers are on their way.
    Checking,
    /// Passed: `token` is in the host form's hidden field until it expires.
    Verified { token: String, expires_in: u32 },
    /// The token's lifetime ran out; the field was cleared.
    Expired,
    /// Something went wrong that a retry may fix (or, for a bad configuration, may not).
    Failed(ServiceError),
}

/// A sentence shown next to a fresh challenge, saying why it is a new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    WrongAnswer,
    QuestionExpired,
}

/// Which check the citizen is taking.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Mode {
    /// The two-image question.
    #[default]
    Images,
    /// The accessible path, for whoever cannot answer a question about images: a proof of work that the
    /// device computes, with nothing to see or answer.
    Pow,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    pub phase: Phase,
    pub mode: Mode,
    pub challenge: Option<Rc<Challenge>>,
    /// The proof-of-work challenge being computed, in [`Mode::Pow`].
    pub pow: Option<Rc<PowChallenge>>,
    /// One chosen label index per image of `challenge`.
    pub answers: Vec<Option<usize>>,
    pub notice: Option<Notice>,
    /// Counts tokens handed out, so that the expiry timer of an older token does nothing.
    pub generation: u32,
    /// Bumped when a citizen's own action removed the focused button; the view then moves focus somewhere
    /// useful instead of leaving it on the page's `<body>`.
    pub focus_request: u32,
}

impl Default for State {
    fn default() -> Self {
        State {
            phase: Phase::Loading,
            mode: Mode::Images,
            challenge: None,
            pow: None,
            answers: Vec::new(),
            notice: None,
            generation: 0,
            focus_request: 0,
        }
    }
}

pub enum Action {
    /// A new challenge is being fetched (first load, retry, new check after expiry).
    Load,
    Loaded(Challenge),
    /// The citizen chose the image question or the accessible path; a new challenge of that kind follows.
    Switch(Mode),
    PowLoaded(PowChallenge),
    /// The proof of work is found and on its way.
    Solved,
    /// The citizen chose label `label` (an index into the challenge's labels) for image `image`.
    Pick {
        image: usize,
        label: usize,
    },
    Submit,
    Answered(Verdict),
    Failed(ServiceError),
    /// The token of this generation expired.
    Expire(u32),
}

impl State {
    /// A state showing `challenge`, as after it was loaded; for tests and previews.
    pub fn answering(challenge: Challenge) -> Self {
        State::default().reduce_owned(Action::Loaded(challenge))
    }

    /// Whether every image has an answer, so that the check can be submitted.
    pub fn complete(&self) -> bool {
        !self.answers.is_empty() && self.answers.iter().all(Option::is_some)
    }

    /// The chosen label ids, in image order, when every image has one.
    pub fn chosen_labels(&self) -> Option<Vec<LabelId>> {
        let challenge = self.challenge.as_ref()?;
        self.answers
            .iter()
            .map(|a| Some(challenge.labels.get((*a)?)?.id.clone()))
            .collect()
    }

    pub fn token(&self) -> Option<&str> {
        match &self.phase {
            Phase::Verified { token, .. } => Some(token),
            _ => None,
        }
    }

    fn reduce_owned(mut self, action: Action) -> Self {
        match action {
            Action::Load => {
                // From a failure or an expiry the citizen pressed a button that is about to disappear: clear
                // the old sentence and move the focus once the new challenge is there.
                if matches!(self.phase, Phase::Failed(_) | Phase::Expired) {
                    self.notice = None;
                    self.focus_request += 1;
                }
                self.phase = Phase::Loading;
            }
            // A reply for the other mode, late after a switch, is dropped.
            Action::Loaded(challenge) if self.mode == Mode::Images => {
                self.answers = vec![None; challenge.images.len()];
                self.challenge = Some(Rc::new(challenge));
                self.phase = Phase::Answering;
            }
            Action::PowLoaded(challenge) if self.mode == Mode::Pow => {
                self.pow = Some(Rc::new(challenge));
                self.phase = Phase::Computing;
            }
            Action::Loaded(_) | Action::PowLoaded(_) => {}
            Action::Switch(mode) => {
                if mode != self.mode && !matches!(self.phase, Phase::Verified { .. } | Phase::Checking) {
                    // The button pressed disappears with the old content: move the focus to the new one.
                    self.mode = mode;
                    self.notice = None;
                    self.challenge = None;
                    self.answers.clear();
                    self.pow = None;
                    self.focus_request += 1;
                    self.phase = Phase::Loading;
                }
            }
            Action::Solved => {
                if self.phase == Phase::Computing {
                    self.phase = Phase::Checking;
                    self.notice = None;
                }
            }
            Action::Pick { image, label } => {
                let known = self.challenge.as_ref().is_some_and(|c| label < c.labels.len());
                if self.phase == Phase::Answering
                    && known
                    && let Some(slot) = self.answers.get_mut(image)
                {
                    *slot = Some(label);
                }
            }
            Action::Submit => {
                if self.phase == Phase::Answering && self.complete() {
                    self.phase = Phase::Checking;
                    self.notice = None;
                }
            }
            Action::Answered(Verdict::Passed { token, expires_in }) => {
                self.generation += 1;
                self.focus_request += 1;
                self.phase = Phase::Verified { token, expires_in };
            }
            Action::Answered(Verdict::WrongAnswer) => {
                self.notice = Some(Notice::WrongAnswer);
                self.focus_request += 1;
                self.phase = Phase::Loading;
            }
            Action::Failed(ServiceError::Api {
                status: 404 | 410, ..
            }) if self.phase == Phase::Checking => {
                // The challenge timed out on the server (or was already used): a new one is all it takes.
                self.notice = Some(Notice::QuestionExpired);
                self.focus_request += 1;
                self.phase = Phase::Loading;
            }
            Action::Failed(error) => {
                if self.phase == Phase::Checking {
                    self.focus_request += 1;
                }
                self.phase = Phase::Failed(error);
            }
            Action::Expire(generation) => {
                if generation == self.generation && matches!(self.phase, Phase::Verified { .. }) {
                    self.phase = Phase::Expired;
                }
            }
        }
        self
    }
}

impl Reducible for State {
    type Action = Action;

    fn reduce(self: Rc<Self>, action: Action) -> Rc<Self> {
        Rc::new(Rc::unwrap_or_clone(self).reduce_owned(action))
    }
}
