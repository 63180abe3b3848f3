//! `use_challenge`: the state of one check and the requests, timers and computation that drive it.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use protocol::PowChallenge;
use yew::platform::{spawn_local, time::sleep};
use yew::prelude::*;

use crate::host::Config;
use crate::services::{self, ServiceError, Verdict};
use crate::state::{Action, Mode, Phase, State};

/// Hashes tried between two looks at the clock.
const POW_SLICE: u64 = 2048;
/// How long the proof of work may hold the page's thread before it yields: under the 50 ms after which
/// a page feels stuck, so that scrolling, typing and the screen reader keep up while it computes.
const POW_BUDGET_MS: f64 = 40.0;

/// What a component holds to show and drive a check. Cheap to clone.
#[derive(Clone, PartialEq)]
pub struct UseChallengeHandle {
    pub state: UseReducerHandle<State>,
    config: Rc<Config>,
    /// Bumped when a new challenge is asked: a proof of work of an older run stops at its next slice.
    run: Rc<Cell<u32>>,
}

impl UseChallengeHandle {
    /// The citizen chose label `label` for image `image`.
    pub fn pick(&self, image: usize, label: usize) {
        self.state.dispatch(Action::Pick { image, label });
    }

    /// Sends the answers; on a wrong answer, fetches the next challenge.
    pub fn submit(&self) {
        let Some(answers) = self.state.chosen_labels() else {
            return;
        };
        let Some(challenge) = self.state.challenge.clone() else {
            return;
        };
        if self.state.phase != Phase::Answering {
            return;
        }
        self.state.dispatch(Action::Submit);
        let this = self.clone();
        spawn_local(async move {
            let verdict =
                services::submit_answers(&this.config.base, &challenge.challenge_id, &answers).await;
            this.conclude(verdict, Mode::Images).await;
        });
    }

    /// Hands the verdict to the reducer; on a wrong answer or a lost challenge, fetches the next one of
    /// the same kind; on success, waits for the token's expiry.
    async fn conclude(&self, verdict: Result<Verdict, ServiceError>, mode: Mode) {
        let load_next = matches!(
            verdict,
            Ok(Verdict::WrongAnswer)
                | Err(ServiceError::Api {
                    status: 404 | 410,
                    ..
                })
        );
        match verdict {
            Ok(Verdict::Passed { token, expires_in }) => {
                // Read before dispatching: the reducer bumps it for this very token.
                let generation = self.state.generation + 1;
                self.state
                    .dispatch(Action::Answered(Verdict::Passed { token, expires_in }));
                sleep(Duration::from_secs(u64::from(expires_in))).await;
                self.state.dispatch(Action::Expire(generation));
            }
            Ok(verdict) => self.state.dispatch(Action::Answered(verdict)),
            Err(error) => self.state.dispatch(Action::Failed(error)),
        }
        if load_next {
            self.fetch(mode);
        }
    }

    /// Fetches a new challenge: the first one, a retry after an error, a new check after an expiry.
    pub fn load(&self) {
        self.state.dispatch(Action::Load);
        self.fetch(self.state.mode);
    }

    /// Switches between the image question and the accessible path, and fetches a challenge of that kind.
    pub fn switch(&self, mode: Mode) {
        if mode == self.state.mode {
            return;
        }
        self.state.dispatch(Action::Switch(mode));
        self.fetch(mode);
    }

    fn fetch(&self, mode: Mode) {
        // Whatever was being computed belongs to a challenge nobody will answer any more.
        self.run.set(self.run.get().wrapping_add(1));
        let this = self.clone();
        spawn_local(async move {
            let Some(sitekey) = this.config.sitekey.as_ref() else {
                this.state.dispatch(Action::Failed(ServiceError::Misconfigured));
                return;
            };
            let (base, lang) = (&this.config.base, this.config.lang);
            match mode {
                Mode::Images => match services::fetch_challenge(base, sitekey, lang).await {
                    Ok(challenge) => this.state.dispatch(Action::Loaded(challenge)),
                    Err(error) => this.state.dispatch(Action::Failed(error)),
                },
                Mode::Pow => match services::fetch_pow_challenge(base, sitekey, lang).await {
                    Ok(challenge) => {
                        let challenge = Rc::new(challenge);
                        this.state.dispatch(Action::PowLoaded((*challenge).clone()));
                        this.prove(challenge).await;
                    }
                    Err(error) => this.state.dispatch(Action::Failed(error)),
                },
            }
        });
    }

    /// Computes the proof of work in slices, yielding to the page between them, then sends it. Stops
    /// quietly when another challenge was asked meanwhile.
    async fn prove(&self, challenge: Rc<PowChallenge>) {
        let run = self.run.get();
        let mut from = 0_u64;
        let nonce = loop {
            let started = js_sys::Date::now();
            let mut found = None;
            while found.is_none() && js_sys::Date::now() - started < POW_BUDGET_MS {
                found = protocol::pow::search(&challenge.salt, challenge.difficulty_bits, from, POW_SLICE);
                from = from.saturating_add(POW_SLICE);
            }
            if let Some(nonce) = found {
                break nonce;
            }
            sleep(Duration::ZERO).await;
            if self.run.get() != run {
                return;
            }
        };
        if self.run.get() != run {
            return;
        }
        self.state.dispatch(Action::Solved);
        let verdict = services::submit_nonce(&self.config.base, &challenge.challenge_id, nonce).await;
        self.conclude(verdict, Mode::Pow).await;
    }
}

/// One check: loads the first challenge when the component mounts.
#[hook]
pub fn use_challenge(config: Rc<Config>) -> UseChallengeHandle {
    let state = use_reducer_eq(State::default);
    let run = use_memo((), |()| Cell::new(0_u32));
    let handle = UseChallengeHandle { state, config, run };
    {
        let handle = handle.clone();
        use_effect_with((), move |()| {
            handle.fetch(Mode::Images);
            // Unmounted: no computation may go on for a widget that is gone.
            move || handle.run.set(handle.run.get().wrapping_add(1))
        });
    }
    handle
}
