//! Component tests of the widget in headless Chromium (`cargo xtask test`, or `widget::test()` in xtask).
//!
//! The view and the reducer are driven with a fixture challenge and no network: a small harness wires the
//! real reducer to the real `Panel`, the way `use_challenge` does, and the tests click real buttons and read
//! the real DOM. The last tests mount the whole widget, as the loader does, against a server that is not
//! there, which is the one network outcome that needs no server.

use std::rc::Rc;
use std::time::Duration;

use protocol::{Challenge, ChallengeId, ChallengeImage, LabelChoice, LabelId, Lang, PowChallenge};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};
use web_sys::{Element, HtmlElement, HtmlInputElement};
use widget::services::{ServiceError, Verdict};
use widget::state::{Action, Mode, Notice, Phase, State};
use widget::view::Panel;
use yew::prelude::*;

wasm_bindgen_test_configure!(run_in_browser);

/// What a failed `expect` means here: the browser refused the test page something a page may do.
const PAGE: &str = "the test page can do this";
const BASE: &str = "https://cobot.example";
const SITEKEY: &str = "6f1c2a9e-3b4d-4c5e-8f70-0123456789ab";

fn fixture() -> Challenge {
    let label = |id: &str, text: &str| LabelChoice {
        id: LabelId::parse(id).expect(PAGE),
        text: text.into(),
    };
    let image = |n: u8| ChallengeImage {
        url: format!("/api/v1/challenge/AAAAAAAAAAAAAAAAAAAAAA/image/{n}"),
        alt: format!("Vue aérienne d’un toit, image {}", n + 1),
    };
    Challenge {
        challenge_id: ChallengeId::parse("AAAAAAAAAAAAAAAAAAAAAA").expect(PAGE),
        question: "Quelle est l’orientation de ce toit\u{a0}?".into(),
        labels: vec![
            label("north_south", "Nord–sud"),
            label("east_west", "Est–ouest"),
            label("flat", "Plat"),
            label("other", "Autre / je ne sais pas"),
        ],
        images: vec![image(0), image(1)],
        expires_at: "2030-01-01T00:00:00Z".into(),
    }
}

#[derive(Properties, PartialEq)]
struct HarnessProps {
    initial: State,
    lang: Lang,
}

/// The reducer and the view, wired as the real root component wires them, minus the network.
#[function_component]
fn Harness(props: &HarnessProps) -> Html {
    let state = {
        let initial = props.initial.clone();
        use_reducer_eq(move || initial)
    };
    let on_pick = {
        let state = state.clone();
        Callback::from(move |(image, label)| state.dispatch(Action::Pick { image, label }))
    };
    let on_submit = {
        let state = state.clone();
        Callback::from(move |()| state.dispatch(Action::Submit))
    };
    let on_switch = {
        let state = state.clone();
        Callback::from(move |mode| state.dispatch(Action::Switch(mode)))
    };
    html! {
        <Panel state={Rc::new((*state).clone())} lang={props.lang} base={BASE}
            {on_pick} {on_submit} on_reload={Callback::noop()} {on_switch} />
    }
}

fn document() -> web_sys::Document {
    web_sys::window().expect(PAGE).document().expect(PAGE)
}

/// Lets Yew's scheduler and the browser run (rendering, effects, fetch failures).
async fn settle(ms: u64) {
    yew::platform::time::sleep(Duration::from_millis(ms)).await;
}

/// Renders the harness in a fresh element of the test page and waits for the first render.
async fn render(initial: State, lang: Lang) -> Element {
    let root = document().create_element("div").expect(PAGE);
    document().body().expect(PAGE).append_child(&root).expect(PAGE);
    yew::Renderer::<Harness>::with_root_and_props(root.clone(), HarnessProps { initial, lang }).render();
    settle(20).await;
    root
}

fn all(root: &Element, selector: &str) -> Vec<Element> {
    let list = root.query_selector_all(selector).expect(PAGE);
    (0..list.length())
        .map(|i| list.item(i).expect(PAGE).dyn_into().expect(PAGE))
        .collect()
}

fn one(root: &Element, selector: &str) -> Element {
    root.query_selector(selector)
        .expect(PAGE)
        .unwrap_or_else(|| panic!("no element matches {selector}"))
}

fn text(e: &Element) -> String {
    e.text_content().unwrap_or_default().trim().to_owned()
}

fn status(root: &Element) -> String {
    text(&one(root, "[role=status]"))
}

/// The label buttons of image `image` (0-based), found through the group that names the image.
fn label_buttons(root: &Element, image: usize) -> Vec<Element> {
    let group = &all(root, "[role=group]")[image];
    all(group, "button")
}

fn verify_button(root: &Element) -> Element {
    all(root, "button")
        .into_iter()
        .find(|b| text(b) == "Valider" || text(b) == "Verify")
        .expect("a verify button")
}

fn click(e: &Element) {
    e.dyn_ref::<HtmlElement>().expect(PAGE).click();
}

#[wasm_bindgen_test]
async fn the_question_both_images_and_the_labels_are_shown() {
    let root = render(State::answering(fixture()), Lang::Fr).await;

    assert_eq!(
        text(&one(&root, ".cobot-question")),
        "Quelle est l’orientation de ce toit\u{a0}?"
    );
    let images = all(&root, "img");
    assert_eq!(images.len(), 2);
    for (i, img) in images.iter().enumerate() {
        assert_eq!(
            img.get_attribute("alt").expect(PAGE),
            format!("Vue aérienne d’un toit, image {}", i + 1)
        );
        assert_eq!(
            img.get_attribute("src").expect(PAGE),
            format!("{BASE}/api/v1/challenge/AAAAAAAAAAAAAAAAAAAAAA/image/{i}"),
            "image paths are resolved against the server, never another host"
        );
    }

    // Each image is a group named by its caption and the question, holding one button per label.
    let groups = all(&root, "[role=group]");
    assert_eq!(groups.len(), 2);
    for (i, group) in groups.iter().enumerate() {
        let ids = group.get_attribute("aria-labelledby").expect(PAGE);
        let names: Vec<String> = ids
            .split(' ')
            .map(|id| text(&one(&root, &format!("#{id}"))))
            .collect();
        assert_eq!(
            names,
            [
                format!("Image {} sur 2", i + 1),
                "Quelle est l’orientation de ce toit\u{a0}?".into()
            ]
        );
        let buttons = label_buttons(&root, i);
        let labels: Vec<String> = buttons.iter().map(text).collect();
        assert_eq!(
            labels,
            ["Nord–sud", "Est–ouest", "Plat", "Autre / je ne sais pas"]
        );
        for b in &buttons {
            assert_eq!(
                b.get_attribute("type").as_deref(),
                Some("button"),
                "must never submit the host form"
            );
            assert_eq!(b.get_attribute("aria-pressed").as_deref(), Some("false"));
        }
    }
    let verify = verify_button(&root);
    assert_eq!(verify.get_attribute("type").as_deref(), Some("button"));
    assert!(verify.has_attribute("disabled"), "nothing answered yet");
}

#[wasm_bindgen_test]
async fn a_choice_presses_one_button_per_image_and_enables_verify_once_both_are_answered() {
    let root = render(State::answering(fixture()), Lang::Fr).await;
    let pressed = |image| -> Vec<bool> {
        label_buttons(&root, image)
            .iter()
            .map(|b| b.get_attribute("aria-pressed").as_deref() == Some("true"))
            .collect()
    };

    click(&label_buttons(&root, 0)[1]);
    settle(10).await;
    assert_eq!(pressed(0), [false, true, false, false]);
    assert_eq!(pressed(1), [false, false, false, false]);
    assert!(
        verify_button(&root).has_attribute("disabled"),
        "one image still unanswered"
    );

    // Changing one's mind moves the pressed state: one answer per image.
    click(&label_buttons(&root, 0)[2]);
    settle(10).await;
    assert_eq!(pressed(0), [false, false, true, false]);

    click(&label_buttons(&root, 1)[0]);
    settle(10).await;
    assert_eq!(pressed(1), [true, false, false, false]);
    let verify = verify_button(&root);
    assert!(!verify.has_attribute("disabled"), "both images answered");

    click(&verify);
    settle(10).await;
    assert_eq!(status(&root), "Vérification en cours…");
    assert!(
        label_buttons(&root, 0)
            .iter()
            .all(|b| b.has_attribute("disabled")),
        "answers are frozen while checking"
    );
}

fn answered(verdict_or_error: Result<Verdict, ServiceError>) -> State {
    use yew::Reducible;
    let mut state = Rc::new(State::answering(fixture()));
    state = state.reduce(Action::Pick { image: 0, label: 0 });
    state = state.reduce(Action::Pick { image: 1, label: 2 });
    state = state.reduce(Action::Submit);
    assert_eq!(state.phase, Phase::Checking);
    state = match verdict_or_error {
        Ok(verdict) => state.reduce(Action::Answered(verdict)),
        Err(error) => state.reduce(Action::Failed(error)),
    };
    Rc::unwrap_or_clone(state)
}

fn passed() -> State {
    answered(Ok(Verdict::Passed {
        token: "tok".into(),
        expires_in: 300,
    }))
}

#[wasm_bindgen_test]
async fn the_live_region_says_verified() {
    let root = render(passed(), Lang::Fr).await;
    assert_eq!(
        status(&root),
        "Vérification réussie. Vous pouvez envoyer le formulaire."
    );
    assert_eq!(
        one(&root, "[role=status]").get_attribute("class").as_deref(),
        Some("cobot-status cobot-ok")
    );
    assert!(text(&one(&root, ".cobot-done")).contains("Vérifié"));
    assert!(all(&root, "img").is_empty(), "the challenge is gone once passed");
}

#[wasm_bindgen_test]
async fn the_live_region_says_a_wrong_answer_brings_a_new_question() {
    use yew::Reducible;
    let wrong = answered(Ok(Verdict::WrongAnswer));
    assert_eq!(
        (wrong.phase.clone(), wrong.notice),
        (Phase::Loading, Some(Notice::WrongAnswer))
    );
    // The notice stays while the next challenge is shown, so that it is read with it.
    let next = Rc::unwrap_or_clone(Rc::new(wrong).reduce(Action::Loaded(fixture())));
    let root = render(next, Lang::Fr).await;
    assert_eq!(status(&root), "Réponse incorrecte. Voici une nouvelle question.");
    assert_eq!(all(&root, "img").len(), 2);
    assert!(
        label_buttons(&root, 0)
            .iter()
            .all(|b| b.get_attribute("aria-pressed").as_deref() == Some("false"))
    );
}

#[wasm_bindgen_test]
async fn the_live_region_says_expired_and_offers_a_new_check() {
    use yew::Reducible;
    let state = Rc::new(passed());
    let expired = Rc::unwrap_or_clone(state.reduce(Action::Expire(1)));
    assert_eq!(expired.phase, Phase::Expired);
    let root = render(expired, Lang::Fr).await;
    assert_eq!(
        status(&root),
        "La vérification a expiré. Recommencez, s’il vous plaît."
    );
    let buttons = all(&root, "button");
    assert_eq!(
        buttons.iter().map(text).collect::<Vec<_>>(),
        ["Nouvelle vérification"]
    );
    assert_eq!(buttons[0].get_attribute("type").as_deref(), Some("button"));
}

#[wasm_bindgen_test]
async fn the_live_region_says_when_the_service_cannot_be_reached_and_offers_a_retry() {
    let root = render(answered(Err(ServiceError::Network)), Lang::Fr).await;
    assert_eq!(
        status(&root),
        "Impossible de joindre le service de vérification. Vérifiez votre connexion, puis réessayez."
    );
    assert_eq!(
        all(&root, "button").iter().map(text).collect::<Vec<_>>(),
        ["Réessayer"]
    );
}

#[wasm_bindgen_test]
async fn english_is_spoken_when_asked() {
    let root = render(State::answering(fixture()), Lang::En).await;
    assert_eq!(text(&one(&root, ".cobot-title")), "Human check");
    assert_eq!(text(&one(&root, ".cobot-caption")), "Image 1 of 2");
    assert_eq!(text(&verify_button(&root)), "Verify");

    let root = render(passed(), Lang::En).await;
    assert_eq!(status(&root), "Verified. You can now submit the form.");
    let root = render(
        answered(Err(ServiceError::Api {
            status: 429,
            code: "rate-limited".into(),
        })),
        Lang::En,
    )
    .await;
    assert_eq!(
        status(&root),
        "Too many attempts. Please wait a minute before trying again."
    );
    assert_eq!(
        all(&root, "button").iter().map(text).collect::<Vec<_>>(),
        ["Try again"]
    );
}

#[wasm_bindgen_test]
fn an_old_tokens_expiry_does_not_expire_a_newer_one() {
    use yew::Reducible;
    let first = Rc::new(passed());
    assert_eq!(first.generation, 1);
    // A second token (after a reset the generation keeps counting within one component).
    let second = first.reduce(Action::Answered(Verdict::Passed {
        token: "tok2".into(),
        expires_in: 300,
    }));
    let after_old_timer = second.reduce(Action::Expire(1));
    assert_eq!(after_old_timer.token(), Some("tok2"));
    assert_eq!(after_old_timer.reduce(Action::Expire(2)).phase, Phase::Expired);
}

#[wasm_bindgen_test]
fn a_choice_outside_the_label_set_or_while_checking_is_ignored() {
    use yew::Reducible;
    let state = Rc::new(State::answering(fixture()));
    let state = state
        .reduce(Action::Pick { image: 0, label: 9 })
        .reduce(Action::Pick { image: 5, label: 0 });
    assert_eq!(state.answers, [None, None]);
    let state = state.reduce(Action::Submit);
    assert_eq!(state.phase, Phase::Answering, "an incomplete answer is not sent");
    let state = state
        .reduce(Action::Pick { image: 0, label: 1 })
        .reduce(Action::Pick { image: 1, label: 1 })
        .reduce(Action::Submit)
        .reduce(Action::Pick { image: 0, label: 3 });
    assert_eq!(state.answers, [Some(1), Some(1)]);
    assert_eq!(
        state.chosen_labels().expect(PAGE),
        [
            LabelId::parse("east_west").expect(PAGE),
            LabelId::parse("east_west").expect(PAGE)
        ]
    );
}

// --- The accessible path: a proof of work instead of the image question. ---

const USE_POW_FR: &str = "Je ne peux pas répondre à la question en images";
const POW_EXPLAIN_FR: &str = "Votre appareil va effectuer un petit calcul pour vérifier que vous n’êtes pas un robot, \
                              cela prend quelques secondes.";

fn pow_fixture() -> PowChallenge {
    PowChallenge {
        challenge_id: ChallengeId::parse("BBBBBBBBBBBBBBBBBBBBBB").expect(PAGE),
        salt: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into(),
        difficulty_bits: 8,
        expires_at: "2030-01-01T00:00:00Z".into(),
    }
}

/// The state once the citizen chose the accessible path and its challenge arrived.
fn computing() -> State {
    use yew::Reducible;
    let state = Rc::new(State::answering(fixture()))
        .reduce(Action::Switch(Mode::Pow))
        .reduce(Action::PowLoaded(pow_fixture()));
    Rc::unwrap_or_clone(state)
}

fn button_named(root: &Element, name: &str) -> Option<Element> {
    all(root, "button").into_iter().find(|b| text(b) == name)
}

#[wasm_bindgen_test]
async fn the_accessible_path_is_a_visible_button_after_the_images_and_leads_to_an_explanation() {
    let root = render(State::answering(fixture()), Lang::Fr).await;
    let buttons = all(&root, "button");
    let last = buttons.last().expect("buttons");
    assert_eq!(
        text(last),
        USE_POW_FR,
        "reached with Tab after the answers and Valider"
    );
    assert_eq!(last.get_attribute("type").as_deref(), Some("button"));
    assert!(
        !last.has_attribute("disabled"),
        "available before answering anything"
    );
    assert!(!last.has_attribute("hidden"));

    click(last);
    settle(10).await;
    // The images are gone; one sentence says what happens; the way back is there, described by it.
    assert!(all(&root, "img").is_empty());
    assert_eq!(text(&one(&root, ".cobot-pow")), POW_EXPLAIN_FR);
    let back = button_named(&root, "Revenir à la question en images").expect("a way back");
    assert_eq!(back.get_attribute("type").as_deref(), Some("button"));
    let described = back.get_attribute("aria-describedby").expect("described");
    assert_eq!(text(&one(&root, &format!("#{described}"))), POW_EXPLAIN_FR);
    assert_eq!(status(&root), "Chargement de la question…");
    assert_eq!(
        text(&one(&root, ".cobot-about")),
        "Aucune réponse n’est demandée ni enregistrée."
    );

    click(&back);
    settle(10).await;
    assert!(root.query_selector(".cobot-pow").expect(PAGE).is_none());
    assert_eq!(status(&root), "Chargement de la question…");
}

#[wasm_bindgen_test]
async fn the_live_region_says_the_device_is_computing_then_verified() {
    use yew::Reducible;
    let root = render(computing(), Lang::Fr).await;
    assert_eq!(status(&root), "Calcul en cours, patientez quelques secondes…");
    assert_eq!(text(&one(&root, ".cobot-pow")), POW_EXPLAIN_FR);
    assert!(
        !button_named(&root, "Revenir à la question en images")
            .expect("a way back")
            .has_attribute("disabled"),
        "the citizen can go back while it computes"
    );

    let checking = Rc::new(computing()).reduce(Action::Solved);
    assert_eq!(checking.phase, Phase::Checking);
    let root = render((*checking).clone(), Lang::Fr).await;
    assert_eq!(status(&root), "Vérification en cours…");
    assert!(
        button_named(&root, "Revenir à la question en images")
            .expect("a way back")
            .has_attribute("disabled"),
        "no switching while the proof is checked"
    );

    let passed = checking.reduce(Action::Answered(Verdict::Passed {
        token: "tok".into(),
        expires_in: 300,
    }));
    let root = render((*passed).clone(), Lang::Fr).await;
    assert_eq!(
        status(&root),
        "Vérification réussie. Vous pouvez envoyer le formulaire."
    );
    assert!(all(&root, "button").is_empty());
}

#[wasm_bindgen_test]
async fn the_accessible_path_speaks_english_when_asked() {
    let root = render(State::answering(fixture()), Lang::En).await;
    assert!(button_named(&root, "I can’t answer the image question").is_some());
    let root = render(computing(), Lang::En).await;
    assert_eq!(
        text(&one(&root, ".cobot-pow")),
        "Your device will do a small computation to check that you are not a robot; it takes a few seconds."
    );
    assert_eq!(status(&root), "Computing, please wait a few seconds…");
    assert!(button_named(&root, "Back to the image question").is_some());
}

#[wasm_bindgen_test]
fn a_late_reply_for_the_other_mode_is_dropped_and_no_switch_happens_while_checking() {
    use yew::Reducible;
    let state = Rc::new(State::answering(fixture())).reduce(Action::Switch(Mode::Pow));
    assert_eq!((state.mode, state.phase.clone()), (Mode::Pow, Phase::Loading));
    assert_eq!(state.challenge, None, "the image challenge is dropped");
    // The image challenge asked before the switch arrives late: it must not replace the accessible path.
    let state = state.reduce(Action::Loaded(fixture()));
    assert_eq!((state.mode, state.phase.clone()), (Mode::Pow, Phase::Loading));
    let state = state.reduce(Action::PowLoaded(pow_fixture()));
    assert_eq!(state.phase, Phase::Computing);
    let state = state.reduce(Action::Solved);
    let same = state.clone().reduce(Action::Switch(Mode::Images));
    assert_eq!((same.mode, same.phase.clone()), (Mode::Pow, Phase::Checking));
    // A wrong proof (a bug, or a server that changed its difficulty) brings a new challenge of the same kind.
    let wrong = state.reduce(Action::Answered(Verdict::WrongAnswer));
    assert_eq!(
        (wrong.mode, wrong.phase.clone(), wrong.notice),
        (Mode::Pow, Phase::Loading, Some(Notice::WrongAnswer))
    );
}

#[wasm_bindgen_test]
fn the_proof_of_work_runs_in_wasm_and_agrees_with_sha_256() {
    assert_eq!(
        protocol::pow::sha256(b"abc")[..8],
        [0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea],
        "FIPS 180-4's `abc` vector, on a 32-bit target"
    );
    let challenge = pow_fixture();
    let nonce = protocol::pow::search(&challenge.salt, 8, 0, 1 << 20).expect("a nonce");
    let digest = protocol::pow::sha256(format!("{}{nonce}", challenge.salt).as_bytes());
    assert!(protocol::pow::meets(&digest, 8));
}

// --- The whole widget, mounted as the loader mounts it. ---

/// A form holding a host `<div class="cobot-captcha">` with the given extra attributes.
fn host_in_form(attrs: &[(&str, &str)]) -> (Element, HtmlElement) {
    let form = document().create_element("form").expect(PAGE);
    let host: HtmlElement = document()
        .create_element("div")
        .expect(PAGE)
        .dyn_into()
        .expect(PAGE);
    host.set_class_name("cobot-captcha");
    for (name, value) in attrs {
        host.set_attribute(name, value).expect(PAGE);
    }
    form.append_child(&host).expect(PAGE);
    document().body().expect(PAGE).append_child(&form).expect(PAGE);
    (form, host)
}

fn shadow(host: &HtmlElement) -> Element {
    // The shadow root is a fragment: its first child is the element Yew renders into.
    host.shadow_root()
        .expect("an open shadow root")
        .first_element_child()
        .expect(PAGE)
}

/// Records calls of a global callback and `cobot:*` events reaching the document, as an integrator would.
fn spy(global: &str) {
    let code = format!(
        "window.{global}Calls = []; window.{global} = function (x) {{ window.{global}Calls.push(String(x)); }};"
    );
    js_sys::Function::new_no_args(&code)
        .call0(&JsValue::NULL)
        .expect(PAGE);
    js_sys::Function::new_no_args(
        "if (!window.cobotEvents) { window.cobotEvents = []; \
         ['cobot:verified', 'cobot:expired', 'cobot:error'].forEach(function (t) { \
           document.addEventListener(t, function (e) { window.cobotEvents.push(t + ' ' + JSON.stringify(e.detail)); }); \
         }); }",
    )
    .call0(&JsValue::NULL)
    .expect(PAGE);
}

fn recorded(name: &str) -> Vec<String> {
    let list = js_sys::Reflect::get(&web_sys::window().expect(PAGE), &name.into()).expect(PAGE);
    js_sys::Array::from(&list)
        .iter()
        .map(|v| v.as_string().expect(PAGE))
        .collect()
}

#[wasm_bindgen_test]
async fn an_unreachable_server_is_reported_in_the_widget_to_the_callback_and_as_an_event() {
    spy("onCobotError");
    let (form, host) = host_in_form(&[
        ("data-sitekey", SITEKEY),
        ("data-error-callback", "onCobotError"),
        ("data-response-field-name", "captcha"),
    ]);
    // Port 9 (discard) is closed: the fetch fails the way it does when the citizen is offline.
    let (_config, _app) = widget::mount("http://127.0.0.1:9", &host, &JsValue::UNDEFINED).expect(PAGE);
    let inside = shadow(&host);
    let failed = || inside.query_selector(".cobot-bad").expect(PAGE).is_some();
    let mut waited = 0;
    while !failed() && waited < 5000 {
        settle(50).await;
        waited += 50;
    }
    assert_eq!(
        status(&inside),
        "Impossible de joindre le service de vérification. Vérifiez votre connexion, puis réessayez."
    );
    assert_eq!(
        all(&inside, "button").iter().map(text).collect::<Vec<_>>(),
        ["Réessayer"]
    );
    assert_eq!(recorded("onCobotErrorCalls"), ["network-error"]);
    assert!(recorded("cobotEvents").contains(&r#"cobot:error {"error":"network-error"}"#.to_owned()));

    // The hidden field is in the light DOM of the form, under the configured name, and empty.
    let field: HtmlInputElement = form
        .query_selector("input[name=captcha]")
        .expect(PAGE)
        .expect(PAGE)
        .dyn_into()
        .expect(PAGE);
    assert_eq!(field.type_(), "hidden");
    assert_eq!(field.value(), "");
    // The page's styles cannot reach in: the widget's markup is only in the shadow root.
    assert!(form.query_selector("[role=status]").expect(PAGE).is_none());
}

#[wasm_bindgen_test]
async fn a_missing_sitekey_says_the_site_is_misconfigured_without_calling_anyone() {
    let (_form, host) = host_in_form(&[("data-lang", "en")]);
    let (_config, _app) = widget::mount("http://127.0.0.1:9", &host, &JsValue::UNDEFINED).expect(PAGE);
    settle(50).await;
    let inside = shadow(&host);
    assert_eq!(
        status(&inside),
        "The check is misconfigured on this site. Please tell the site’s administrators."
    );
    assert!(all(&inside, "button").is_empty(), "retrying cannot help");
    assert_eq!(
        one(&inside, ".cobot").get_attribute("lang").as_deref(),
        Some("en")
    );
}

#[wasm_bindgen_test]
async fn render_options_win_over_data_attributes() {
    let (_form, host) = host_in_form(&[("data-lang", "en"), ("data-theme", "light")]);
    let options = js_sys::Object::new();
    js_sys::Reflect::set(&options, &"lang".into(), &"fr".into()).expect(PAGE);
    js_sys::Reflect::set(&options, &"theme".into(), &"dark".into()).expect(PAGE);
    let (config, _app) = widget::mount("http://127.0.0.1:9", &host, &options).expect(PAGE);
    assert_eq!(config.lang, Lang::Fr);
    settle(50).await;
    let inside = shadow(&host);
    let frame = one(&inside, ".cobot");
    assert_eq!(frame.get_attribute("lang").as_deref(), Some("fr"));
    assert_eq!(frame.get_attribute("data-theme").as_deref(), Some("dark"));
}
