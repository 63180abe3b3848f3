//! The widget's markup: a pure function of the state, with callbacks for what the citizen does.
//!
//! Everything is reachable with Tab: label choices are real `<button type="button">`s with `aria-pressed`
//! (a `type="button"` never submits the host form), the groups are named "Image 1 sur 2" plus the question,
//! and one `role="status"` region, always present so that screen readers track it, says how the check went.
//! Under the images, a visible button leads to the accessible path (a proof of work, nothing to perceive),
//! which has its own button back.

use std::rc::Rc;

use protocol::{ChallengeImage, LabelChoice, Lang};
use yew::prelude::*;

use crate::i18n::{self, Texts};
use crate::services::{self, ServiceError};
use crate::state::{Mode, Notice, Phase, State};

#[derive(Properties, PartialEq)]
pub struct PanelProps {
    pub state: Rc<State>,
    pub lang: Lang,
    /// The server's base URL, against which image paths are resolved.
    pub base: AttrValue,
    /// `(image, label)` indices.
    pub on_pick: Callback<(usize, usize)>,
    pub on_submit: Callback<()>,
    /// Fetches a new challenge (retry after an error, new check after an expiry).
    pub on_reload: Callback<()>,
    /// Switches between the image question and the accessible path.
    #[prop_or_default]
    pub on_switch: Callback<Mode>,
    /// The status line, so that the root component can move the focus to it.
    #[prop_or_default]
    pub status_ref: NodeRef,
}

#[function_component]
pub fn Panel(props: &PanelProps) -> Html {
    let t = i18n::texts(props.lang);
    let state = &props.state;

    let body = match (&state.phase, &state.challenge) {
        (Phase::Verified { .. }, _) => html! {
            <p class="cobot-done"><span class="cobot-tick" aria-hidden="true">{"✓"}</span>{t.verified_badge}</p>
        },
        (Phase::Expired, _) => reload_button(t.new_check, &props.on_reload),
        (Phase::Failed(ServiceError::Misconfigured), _) => Html::default(),
        (Phase::Failed(_), _) => reload_button(t.retry, &props.on_reload),
        (Phase::Loading | Phase::Computing | Phase::Checking, _) if state.mode == Mode::Pow => {
            // The way back is described by the sentence, so that a screen reader landing on it hears both.
            html! {
                <>
                    <p class="cobot-pow" id="cobot-pow">{t.pow_explain}</p>
                    <button type="button" class="cobot-alt" aria-describedby="cobot-pow"
                        disabled={state.phase == Phase::Checking}
                        onclick={props.on_switch.reform(|_: MouseEvent| Mode::Images)}>
                        {t.use_images}
                    </button>
                </>
            }
        }
        (Phase::Answering | Phase::Checking, Some(challenge)) => {
            let checking = state.phase == Phase::Checking;
            let on_submit = props.on_submit.reform(|_: MouseEvent| ());
            let count = challenge.images.len();
            html! {
                <>
                    <p class="cobot-question" id="cobot-q">{&challenge.question}</p>
                    <div class="cobot-images">
                        { for challenge.images.iter().enumerate().map(|(i, image)| html! {
                            <ImageCard
                                index={i}
                                {count}
                                image={image.clone()}
                                labels={challenge.labels.clone()}
                                chosen={state.answers.get(i).copied().flatten()}
                                disabled={checking}
                                base={props.base.clone()}
                                lang={props.lang}
                                on_pick={props.on_pick.clone()}
                            />
                        }) }
                    </div>
                    <p class="cobot-hint" id="cobot-hint">{t.hint}</p>
                    <button type="button" class="cobot-verify" aria-describedby="cobot-hint"
                        disabled={checking || !state.complete()} onclick={on_submit}>
                        {if checking { t.checking } else { t.verify }}
                    </button>
                    <button type="button" class="cobot-alt" disabled={checking}
                        onclick={props.on_switch.reform(|_: MouseEvent| Mode::Pow)}>
                        {t.use_pow}
                    </button>
                </>
            }
        }
        (_, _) => Html::default(),
    };

    let status_class = match state.phase {
        Phase::Verified { .. } => "cobot-status cobot-ok",
        Phase::Failed(_) | Phase::Expired => "cobot-status cobot-bad",
        _ if state.notice.is_some() => "cobot-status cobot-bad",
        _ => "cobot-status",
    };

    html! {
        <section class="cobot-box" aria-labelledby="cobot-title">
            <p class="cobot-title" id="cobot-title">{t.title}</p>
            <div class="cobot-body">{body}</div>
            <p class={status_class} role="status" tabindex="-1" ref={props.status_ref.clone()}>
                {status_text(t, state)}
            </p>
            <p class="cobot-about">{if state.mode == Mode::Pow { t.pow_about } else { t.about }}</p>
        </section>
    }
}

fn reload_button(text: &'static str, on_reload: &Callback<()>) -> Html {
    html! {
        <button type="button" class="cobot-verify" onclick={on_reload.reform(|_: MouseEvent| ())}>{text}</button>
    }
}

/// What the live region says. A notice (why this is a new question) outlives the loading it caused.
pub fn status_text(t: &'static Texts, state: &State) -> &'static str {
    match (&state.phase, state.notice) {
        (Phase::Verified { .. }, _) => t.verified,
        (Phase::Expired, _) => t.expired,
        (Phase::Failed(error), _) => error_text(t, error),
        (_, Some(Notice::WrongAnswer)) => t.wrong_answer,
        (_, Some(Notice::QuestionExpired)) => t.question_expired,
        (Phase::Loading, None) => t.loading,
        (Phase::Computing, None) => t.computing,
        (Phase::Checking, None) => t.checking,
        (Phase::Answering, None) => "",
    }
}

fn error_text(t: &'static Texts, error: &ServiceError) -> &'static str {
    match error {
        ServiceError::Network => t.network_error,
        ServiceError::Api { status: 429, .. } => t.too_many,
        // No sitekey, or the server refuses the sitekey or the page's origin: a retry will not help, the
        // integrator must act.
        ServiceError::Misconfigured
        | ServiceError::Api {
            status: 400 | 403, ..
        } => t.misconfigured,
        ServiceError::Api { .. } | ServiceError::BadReply => t.server_error,
    }
}

#[derive(Properties, PartialEq)]
struct ImageCardProps {
    index: usize,
    count: usize,
    image: ChallengeImage,
    labels: Vec<LabelChoice>,
    chosen: Option<usize>,
    disabled: bool,
    base: AttrValue,
    lang: Lang,
    on_pick: Callback<(usize, usize)>,
}

/// One image with its caption and its row of label buttons, named as a group by both.
#[function_component]
fn ImageCard(props: &ImageCardProps) -> Html {
    let t = i18n::texts(props.lang);
    let index = props.index;
    let mut caption_id = String::from("cobot-img");
    caption_id.push(char::from(b'0' + u8::try_from(index % 10).unwrap_or(0)));
    let mut group_label = caption_id.clone();
    group_label.push_str(" cobot-q");
    html! {
        <div class="cobot-card" role="group" aria-labelledby={group_label}>
            <p class="cobot-caption" id={caption_id}>{i18n::image_caption(t, index, props.count)}</p>
            <img class="cobot-img" src={services::join(&props.base, &props.image.url)} alt={props.image.alt.clone()}
                width="200" height="200" />
            <div class="cobot-labels">
                { for props.labels.iter().enumerate().map(|(l, label)| {
                    let pressed = props.chosen == Some(l);
                    let onclick = props.on_pick.reform(move |_: MouseEvent| (index, l));
                    html! {
                        <button type="button" class="cobot-label" aria-pressed={if pressed { "true" } else { "false" }}
                            disabled={props.disabled} {onclick}>
                            {&label.text}
                        </button>
                    }
                }) }
            </div>
        </div>
    }
}
