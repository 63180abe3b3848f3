//! `use_challenge`: the state of one check and the requests and timers that drive it.

use std::rc::Rc;
use std::time::Duration;

use yew::platform::{spawn_local, time::sleep};
use yew::prelude::*;

use crate::host::Config;
use crate::services::{self, ServiceError, Verdict};
use crate::state::{Action, Phase, State};

/// What a component holds to show and drive a check. Cheap to clone.
#[derive(Clone, PartialEq)]
pub struct UseChallengeHandle {
    pub state: UseReducerHandle<State>,
    config: Rc<Config>,
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
                    let generation = this.state.generation + 1;
                    this.state
                        .dispatch(Action::Answered(Verdict::Passed { token, expires_in }));
                    sleep(Duration::from_secs(u64::from(expires_in))).await;
                    this.state.dispatch(Action::Expire(generation));
                }
                Ok(verdict) => this.state.dispatch(Action::Answered(verdict)),
                Err(error) => this.state.dispatch(Action::Failed(error)),
            }
            if load_next {
                this.fetch();
            }
        });
    }

    /// Fetches a new challenge: the first one, a retry after an error, a new check after an expiry.
    pub fn load(&self) {
        self.state.dispatch(Action::Load);
        self.fetch();
    }

    fn fetch(&self) {
        let this = self.clone();
        spawn_local(async move {
            let Some(sitekey) = this.config.sitekey.as_ref() else {
                this.state.dispatch(Action::Failed(ServiceError::Misconfigured));
                return;
            };
            match services::fetch_challenge(&this.config.base, sitekey, this.config.lang).await {
                Ok(challenge) => this.state.dispatch(Action::Loaded(challenge)),
                Err(error) => this.state.dispatch(Action::Failed(error)),
            }
        });
    }
}

/// One check: loads the first challenge when the component mounts.
#[hook]
pub fn use_challenge(config: Rc<Config>) -> UseChallengeHandle {
    let state = use_reducer_eq(State::default);
    let handle = UseChallengeHandle { state, config };
    {
        let handle = handle.clone();
        use_effect_with((), move |()| handle.fetch());
    }
    handle
}
