//! The demo form in headless Chromium: a citizen fills it, passes the check with the keyboard alone, submits,
//! and the demo site's backend verifies the token with the real server. Needs the built widget
//! (`cargo xtask test` builds it and passes `COBOT_WIDGET_DIR`).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::{TestApp, binary};
use crate::webdriver::{Browser, ENTER, SPACE, TAB};

/// The French text of the controls' label (`flat`) in the demo project.
const CONTROL_TEXT: &str = "Toit plat";

/// A running demo-site process; killed when dropped.
struct DemoSite {
    child: Child,
    url: String,
}

impl DemoSite {
    async fn start(app: &TestApp) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(binary("demo-site", "demo-site"))
            .env("DEMO_LISTEN", format!("127.0.0.1:{port}"))
            .env("COBOT_PUBLIC_URL", &app.server.base)
            .env("DEMO_SITEKEY", &app.site.sitekey)
            .env("DEMO_SECRET", &app.site.secret)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("demo-site starts");
        let url = format!("http://127.0.0.1:{port}/");
        let deadline = Instant::now() + Duration::from_secs(20);
        while app.client.get(format!("{url}healthz")).send().await.is_err() {
            assert!(Instant::now() < deadline, "demo-site did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Self { child, url }
    }
}

impl Drop for DemoSite {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const WIDGET_READY: &str = "const host = document.querySelector('.cobot-captcha'); \
    const root = host && host.shadowRoot; \
    return !!root && root.querySelectorAll('button[aria-pressed]').length >= 8 \
        && [...root.querySelectorAll('img')].every(i => i.complete && i.naturalWidth > 0);";

const TOKEN: &str =
    "const f = document.querySelector('input[name=\"cobot-response\"]'); return f ? f.value : null;";

/// Presses Tab until the focused element satisfies `want`, at most `limit` times; returns it.
async fn tab_to(browser: &Browser, limit: usize, want: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..limit {
        browser.press(TAB).await;
        let focused = browser.focused().await;
        if want(&focused) {
            return focused;
        }
    }
    panic!("Tab never reached the expected element");
}

/// A seeded server, the demo site on it, and a browser showing the demo form with the widget ready.
async fn open_demo_form() -> (TestApp, DemoSite, Browser) {
    let app = TestApp::spawn().await;
    let demo = DemoSite::start(&app).await;
    let browser = Browser::start().await;
    browser.goto(&demo.url).await;
    browser
        .wait_for(WIDGET_READY, 30, "the widget and both images")
        .await;
    (app, demo, browser)
}

#[tokio::test]
async fn a_citizen_fills_the_demo_form_and_passes_the_check_with_the_keyboard_alone() {
    let (app, demo, browser) = open_demo_form().await;

    // Fill the form as a citizen would.
    browser
        .eval("const s = document.getElementById('probleme'); s.selectedIndex = 1; return s.value;")
        .await;
    browser.type_into("#lieu", "12 rue de la République, Lyon").await;
    browser
        .type_into(
            "#description",
            "Un nid-de-poule profond au milieu de la chaussée.",
        )
        .await;

    // From the last field on, only the keyboard: Tab into the widget, pick the control's label on each
    // image with Space (the test knows it: every control of its project is flat), then Enter on "Valider".
    let mut picked = 0;
    while picked < 2 {
        tab_to(&browser, 40, |f| {
            f["in_widget"] == true && f["text"] == CONTROL_TEXT && f["pressed"] == "false"
        })
        .await;
        browser.press(SPACE).await;
        assert_eq!(
            browser.focused().await["pressed"],
            "true",
            "Space did not select the label"
        );
        picked += 1;
    }
    tab_to(&browser, 20, |f| f["in_widget"] == true && f["text"] == "Valider").await;
    browser.press(ENTER).await;
    let token = browser.wait_for(TOKEN, 15, "the token in the form").await;
    let token = token.as_str().expect("a token string").to_owned();
    let announced = browser
        .eval("return document.querySelector('.cobot-captcha').shadowRoot.querySelector('[role=status]').innerText;")
        .await;
    assert!(
        announced.as_str().is_some_and(|s| s.contains("réussie")),
        "not announced: {announced}"
    );

    // On to the submit button, still with the keyboard.
    tab_to(&browser, 20, |f| f["text"] == "Envoyer le signalement").await;
    browser.press(ENTER).await;
    let outcome = browser
        .wait_for(
            "return document.body.innerText.includes('bien été transmis') ? document.body.innerText : null;",
            15,
            "the success page",
        )
        .await;
    assert!(
        outcome.as_str().unwrap().contains("12 rue de la République"),
        "{outcome}"
    );

    // The widget set no cookie and asked nothing of any host but the Cobot server and the page's own.
    assert_eq!(browser.eval("return document.cookie;").await, "");
    let requested = browser
        .eval("return performance.getEntriesByType('resource').map(e => e.name);")
        .await;
    for url in requested.as_array().unwrap() {
        let url = url.as_str().unwrap();
        assert!(
            url.starts_with(&app.server.base) || url.starts_with(&demo.url),
            "third-party request: {url}"
        );
    }
    browser.quit().await;

    // Re-submitting the same token fails: the demo backend's siteverify call is refused.
    // A fresh connection: the pooled one may have idled past the demo site's keep-alive during the browser run.
    let again = reqwest::Client::new()
        .post(&demo.url)
        .form(&[
            ("probleme", "chaussee"),
            ("lieu", "12 rue de la République, Lyon"),
            ("description", "Un nid-de-poule profond au milieu de la chaussée."),
            ("cobot-response", token.as_str()),
        ])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !again.contains("bien été transmis"),
        "the same token was accepted twice"
    );
}

#[tokio::test]
async fn a_citizen_who_cannot_answer_the_image_question_passes_by_proof_of_work_with_the_keyboard_alone() {
    // `_demo` keeps the demo site running until the end of the test.
    let (app, _demo, browser) = open_demo_form().await;
    browser.type_into("#description", "Un lampadaire éteint.").await;

    // Tab past the images to the visible option, and take it with Enter.
    tab_to(&browser, 60, |f| {
        f["in_widget"] == true && f["text"] == "Je ne peux pas répondre à la question en images"
    })
    .await;
    // What the live region says and where the focus is, recorded at every change of the widget: the proof
    // may be found before a poll would look.
    browser
        .eval(
            "const root = document.querySelector('.cobot-captcha').shadowRoot; window.cobotSeen = []; \
             new MutationObserver(() => { \
               const seen = [root.querySelector('[role=status]').innerText, \
                             root.activeElement ? root.activeElement.innerText : 'outside the widget']; \
               const last = window.cobotSeen[window.cobotSeen.length - 1]; \
               if (!last || last[0] !== seen[0] || last[1] !== seen[1]) { window.cobotSeen.push(seen); } \
             }).observe(root, { subtree: true, childList: true, characterData: true, attributes: true }); \
             return true;",
        )
        .await;
    browser.press(ENTER).await;
    let token = browser
        .wait_for(TOKEN, 60, "the token of the proof of work in the form")
        .await;

    // The focus never fell back to the page: it stayed on the way back to the images (which the explanation
    // describes) while the device computed, then went to the status line once the check was passed.
    let seen = browser.eval("return window.cobotSeen;").await;
    let seen: Vec<(String, String)> = serde_json::from_value(seen).expect("pairs of texts");
    let back = "Revenir à la question en images";
    let passed = "Vérification réussie. Vous pouvez envoyer le formulaire.";
    // While the widget worked (computing, then checking) the focus was on the way back. Which working
    // statuses get recorded depends on how fast the device computes: an idle machine can finish the work
    // between two observations, so no particular one is required.
    assert!(
        seen.iter()
            .any(|(status, focus)| focus == back && status != passed),
        "{seen:?}"
    );
    assert_eq!(seen.last(), Some(&(passed.into(), passed.into())), "{seen:?}");
    assert!(
        seen.iter().all(|(_, focus)| focus == back || focus == passed),
        "the focus left the widget or went elsewhere: {seen:?}"
    );
    let token = token.as_str().expect("a token string").to_owned();
    let announced = browser
        .eval("return document.querySelector('.cobot-captcha').shadowRoot.querySelector('[role=status]').innerText;")
        .await;
    assert!(
        announced.as_str().is_some_and(|s| s.contains("réussie")),
        "not announced: {announced}"
    );
    browser.quit().await;

    // The site learns which check was passed. (A new connection: the pooled one may have been closed by
    // the server's keep-alive while the browser worked.)
    let verdict: protocol::SiteverifyResponse = reqwest::Client::new()
        .post(app.url("/siteverify"))
        .form(&[("secret", app.site.secret.as_str()), ("response", token.as_str())])
        .send()
        .await
        .expect("request sent")
        .json()
        .await
        .expect("a siteverify reply");
    assert!(verdict.success, "{verdict:?}");
    assert_eq!(verdict.check.as_deref(), Some("pow"));
}
