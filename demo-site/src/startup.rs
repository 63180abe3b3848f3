//! Builds the server: binds the listener first (so `DEMO_LISTEN=127.0.0.1:0` works and the port is known
//! before serving), sets the security headers, and registers every route in one place.

use std::net::{SocketAddr, TcpListener};

use actix_web::dev::Server;
use actix_web::middleware::DefaultHeaders;
use actix_web::{App, HttpResponse, HttpServer, error, web};

use crate::config::Settings;
use crate::routes;

/// Form bodies are a few kilobytes at most (a 1 000-character description, a token).
const FORM_LIMIT: usize = 32 * 1024;

pub struct Application {
    address: SocketAddr,
    server: Server,
}

impl Application {
    pub fn build(settings: &Settings) -> anyhow::Result<Self> {
        use anyhow::Context as _;
        let listener = TcpListener::bind(&settings.listen)
            .with_context(|| format!("cannot listen on {}", settings.listen))?;
        let address = listener.local_addr().context("listener has no local address")?;
        let csp = content_security_policy(settings);
        let settings = web::Data::new(settings.clone());
        let server = HttpServer::new(move || {
            App::new()
                // awc's client is not `Send`: one per worker.
                .app_data(web::Data::new(awc::Client::default()))
                .app_data(settings.clone())
                .app_data(
                    web::FormConfig::default()
                        .limit(FORM_LIMIT)
                        .error_handler(|err, _| {
                            let response = HttpResponse::BadRequest()
                                .content_type("text/plain; charset=utf-8")
                                .body("Requête invalide : le formulaire n’a pas pu être lu.");
                            error::InternalError::from_response(err, response).into()
                        }),
                )
                .wrap(
                    DefaultHeaders::new()
                        .add(("Content-Security-Policy", csp.as_str()))
                        .add(("X-Content-Type-Options", "nosniff"))
                        .add(("Referrer-Policy", "same-origin")),
                )
                .route("/", web::get().to(routes::form))
                .route("/", web::post().to(routes::submit))
                .route("/site.css", web::get().to(routes::stylesheet))
                .route("/healthz", web::get().to(routes::healthz))
        })
        .workers(2)
        .listen(listener)
        .context("cannot start the HTTP server")?
        .run();
        Ok(Self { address, server })
    }

    pub fn port(&self) -> u16 {
        self.address.port()
    }

    /// The URL to open in a browser.
    pub fn url(&self) -> String {
        format!("http://{}/", self.address)
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }

    /// The running server, for tests that spawn it and stop it.
    pub fn into_server(self) -> Server {
        self.server
    }
}

/// Only this site and the Cobot server may provide anything to the page. The widget needs scripts and a
/// module from Cobot, to fetch and compile its wasm (`'wasm-unsafe-eval'`), its stylesheet and images.
fn content_security_policy(settings: &Settings) -> String {
    let cobot = settings.public_origin();
    format!(
        "default-src 'none'; script-src {cobot} 'wasm-unsafe-eval'; connect-src {cobot}; \
         img-src 'self' {cobot} data: blob:; style-src 'self' {cobot}; font-src 'self' {cobot}; \
         worker-src {cobot} blob:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    )
}
