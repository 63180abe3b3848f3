//! The demo site over HTTP, on a random port: the form, its validation and the check's failure paths that
//! need no Cobot server. Redeeming a real token is covered by the workspace's end-to-end tests, which run
//! the real `cobot-server`.

use demo_site::{Application, Secret, Settings};

struct TestSite {
    base: String,
    client: awc::Client,
}

/// Starts the site; `cobot_url` is where `/siteverify` goes.
fn spawn(cobot_url: &str) -> TestSite {
    let settings = Settings {
        listen: "127.0.0.1:0".into(),
        public_url: "http://127.0.0.1:9".into(),
        cobot_url: cobot_url.into(),
        sitekey: "6f1c2a9e-3b4d-4c5e-8f70-0123456789ab".into(),
        secret: Secret::new("0x0123456789abcdef0123456789abcdef01234567"),
    };
    let app = Application::build(&settings).expect("the demo site starts");
    let base = format!("http://127.0.0.1:{}", app.port());
    actix_web::rt::spawn(app.into_server());
    TestSite {
        base,
        client: awc::Client::default(),
    }
}

impl TestSite {
    async fn get(&self, path: &str) -> (u16, awc::http::header::HeaderMap, String) {
        let mut response = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("the demo site answers");
        let body = response.body().await.expect("a body");
        (
            response.status().as_u16(),
            response.headers().clone(),
            String::from_utf8(body.to_vec()).expect("UTF-8 HTML"),
        )
    }

    async fn post_form(&self, fields: &[(&str, &str)]) -> (u16, String) {
        let mut response = self
            .client
            .post(format!("{}/", self.base))
            .send_form(&fields)
            .await
            .expect("the demo site answers");
        let body = response.body().await.expect("a body");
        (
            response.status().as_u16(),
            String::from_utf8(body.to_vec()).expect("UTF-8 HTML"),
        )
    }
}

/// A port on which nothing listens: the Cobot server is down.
fn closed_port_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let port = listener.local_addr().expect("its address").port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

const COMPLETE: [(&str, &str); 4] = [
    ("probleme", "chaussee"),
    ("lieu", "Angle de la rue Victor-Hugo et du cours Jean-Jaurès"),
    (
        "description",
        "Un nid-de-poule d’environ 30 cm, dangereux pour les vélos.",
    ),
    ("courriel", ""),
];

#[actix_web::test]
async fn the_form_is_served_with_the_widget_and_a_strict_policy() {
    let site = spawn(&closed_port_url());
    let (status, headers, body) = site.get("/").await;
    assert_eq!(status, 200);
    assert!(body.contains(r#"<script src="http://127.0.0.1:9/widget.js" async defer></script>"#));
    assert!(
        body.contains(r#"<div class="cobot-captcha" data-sitekey="6f1c2a9e-3b4d-4c5e-8f70-0123456789ab">"#)
    );
    let csp = headers.get("content-security-policy").unwrap().to_str().unwrap();
    assert!(
        csp.contains("script-src http://127.0.0.1:9 'wasm-unsafe-eval'"),
        "{csp}"
    );
    assert!(csp.contains("form-action 'self'"), "{csp}");
    assert!(headers.get("set-cookie").is_none(), "no cookies");
}

#[actix_web::test]
async fn the_stylesheet_and_health_check_are_served() {
    let site = spawn(&closed_port_url());
    let (status, headers, body) = site.get("/site.css").await;
    assert_eq!(status, 200);
    assert!(
        headers
            .get("content-type")
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("text/css")
    );
    assert!(body.contains("--blue-france: #000091"));
    assert_eq!(site.get("/healthz").await.0, 200);
}

#[actix_web::test]
async fn an_empty_submission_lists_every_missing_field_and_the_check() {
    let site = spawn(&closed_port_url());
    let (status, body) = site.post_form(&[]).await;
    assert_eq!(status, 422);
    assert!(body.contains("Le formulaire comporte 4\u{a0}erreurs"), "{body}");
    for anchor in ["#probleme", "#lieu", "#description", "#verification"] {
        assert!(body.contains(&format!(r#"<a href="{anchor}">"#)), "{anchor}");
    }
}

#[actix_web::test]
async fn a_complete_form_without_the_check_asks_for_it_and_keeps_the_values() {
    let site = spawn(&closed_port_url());
    let (status, body) = site.post_form(&COMPLETE).await;
    assert_eq!(status, 422);
    assert!(
        body.contains("Veuillez confirmer que vous n’êtes pas un robot"),
        "{body}"
    );
    assert!(body.contains(r#"<option value="chaussee" selected>"#));
    assert!(body.contains("value=\"Angle de la rue Victor-Hugo et du cours Jean-Jaurès\""));
    assert!(body.contains("Un nid-de-poule d’environ 30 cm, dangereux pour les vélos.</textarea>"));
}

#[actix_web::test]
async fn when_cobot_is_down_the_visitor_is_told_and_keeps_the_values() {
    let site = spawn(&closed_port_url());
    let mut fields = COMPLETE.to_vec();
    fields.push(("cobot-response", "some-token"));
    let (status, body) = site.post_form(&fields).await;
    assert_eq!(status, 503);
    assert!(body.contains("Votre signalement n’a pas été transmis"), "{body}");
    assert!(body.contains("ne répond pas"), "{body}");
    assert!(body.contains("value=\"Angle de la rue Victor-Hugo et du cours Jean-Jaurès\""));
}

#[actix_web::test]
async fn a_body_that_is_not_a_form_is_a_bad_request() {
    let site = spawn(&closed_port_url());
    let response = site
        .client
        .post(format!("{}/", site.base))
        .insert_header(("content-type", "application/x-www-form-urlencoded"))
        .send_body(vec![b'a'; 64 * 1024])
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
}
