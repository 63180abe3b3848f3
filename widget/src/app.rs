//! The root component of one widget: the check's state, its effects on the host page, the stylesheet.

use std::rc::Rc;

use wasm_bindgen::JsCast;
use web_sys::HtmlElement;
use yew::prelude::*;

use crate::hooks::use_challenge;
use crate::host::{self, Config};
use crate::services;
use crate::state::Phase;
use crate::view::Panel;

#[derive(Properties, PartialEq)]
pub struct CaptchaProps {
    pub config: Rc<Config>,
    /// The integrator's `<div>`, which holds the shadow root we render in.
    pub host: HtmlElement,
}

#[function_component]
pub fn Captcha(props: &CaptchaProps) -> Html {
    let challenge = use_challenge(props.config.clone());
    let state = challenge.state.clone();
    // Hidden until the stylesheet is there, so that nobody sees the unstyled widget flash; shown anyway if
    // it fails to load, since an unstyled widget still works.
    let styled = use_state_eq(|| false);
    let status_ref = use_node_ref();
    let body_ref = use_node_ref();

    // The host page learns how the check went: hidden field, callbacks, DOM events.
    {
        let (config, host) = (props.config.clone(), props.host.clone());
        let outcome = match &state.phase {
            Phase::Verified { token, .. } => Outcome::Verified(token.clone()),
            Phase::Expired => Outcome::Expired,
            Phase::Failed(error) => Outcome::Failed(error.code().to_owned()),
            _ => Outcome::Pending,
        };
        use_effect_with(outcome, move |outcome| match outcome {
            Outcome::Verified(token) => {
                host::set_response(&host, &config, token);
                host::call(&config.callback, Some(token));
                host::emit(&host, "verified", Some(("token", token)));
            }
            Outcome::Expired => {
                host::set_response(&host, &config, "");
                host::call(&config.expired_callback, None);
                host::emit(&host, "expired", None);
            }
            Outcome::Failed(code) => {
                host::set_response(&host, &config, "");
                host::call(&config.error_callback, Some(code));
                host::emit(&host, "error", Some(("error", code)));
            }
            Outcome::Pending => {}
        });
    }

    // When the citizen's own action removed the focused button, put the focus on what comes next: the first
    // button of the new content, or the status line when there is none.
    {
        let settled = !matches!(state.phase, Phase::Loading | Phase::Checking);
        let (status_ref, body_ref) = (status_ref.clone(), body_ref.clone());
        let done = use_mut_ref(|| 0_u32);
        use_effect_with((state.focus_request, settled), move |&(request, settled)| {
            if settled && request != *done.borrow() {
                *done.borrow_mut() = request;
                let target = body_ref
                    .cast::<HtmlElement>()
                    .and_then(|body| body.query_selector("button:enabled").ok().flatten())
                    .and_then(|b| b.dyn_into::<HtmlElement>().ok())
                    .or_else(|| status_ref.cast::<HtmlElement>());
                if let Some(target) = target {
                    let _ = target.focus();
                }
            }
        });
    }

    let on_pick = {
        let challenge = challenge.clone();
        Callback::from(move |(image, label)| challenge.pick(image, label))
    };
    let on_submit = {
        let challenge = challenge.clone();
        Callback::from(move |()| challenge.submit())
    };
    let on_reload = {
        let challenge = challenge.clone();
        Callback::from(move |()| challenge.load())
    };
    let on_switch = {
        let challenge = challenge.clone();
        Callback::from(move |mode| challenge.switch(mode))
    };
    let on_styled = {
        let styled = styled.clone();
        Callback::from(move |_: Event| styled.set(true))
    };
    let config = &props.config;
    let css = services::join(&config.base, "/widget/widget.css");
    html! {
        <>
            <link rel="stylesheet" href={css} onload={on_styled.clone()} onerror={on_styled} />
            <div class="cobot" lang={config.lang.as_str()} data-theme={config.theme.as_str()}
                hidden={!*styled} ref={body_ref}>
                <Panel state={Rc::new((*state).clone())} lang={config.lang} base={AttrValue::from(config.base.clone())}
                    {on_pick} {on_submit} {on_reload} {on_switch} {status_ref} />
            </div>
        </>
    }
}

#[derive(PartialEq)]
enum Outcome {
    Pending,
    Verified(String),
    Expired,
    Failed(String),
}
