//! Building the application: store, signing key, listener, and every route in one place.

use std::net::TcpListener;
use std::path::PathBuf;

use actix_cors::Cors;
use actix_web::dev::Server;
use actix_web::http::StatusCode;
use actix_web::{App, HttpResponse, HttpServer, middleware, web};
use anyhow::Context as _;
use tracing_actix_web::TracingLogger;

use crate::config::{Secret, Settings};
use crate::routes::{assets, body::error_reply, challenge, health, siteverify};
use crate::store::{AnyStore, EmbeddedStore, RedisStore};
use crate::token::TokenKey;

/// What every handler can reach.
pub struct AppState {
    pub store: AnyStore,
    pub key: TokenKey,
    pub settings: Settings,
    pub widget_dir: PathBuf,
    /// What the last batch consensus run learned, per project.
    pub learned: crate::reestimate::LearnedModels,
}

/// Opens the store the settings name. The embedded store is the default.
pub fn open_store(settings: &Settings) -> anyhow::Result<AnyStore> {
    if let Some(url) = &settings.redis_url {
        let ephemeral = settings.redis_ephemeral_url.as_ref().map(Secret::expose);
        let store = RedisStore::open(url.expose(), ephemeral).context("cannot open the Redis store")?;
        return Ok(AnyStore::Redis(store));
    }
    let store = EmbeddedStore::open(&settings.data_dir).context("cannot open the embedded store")?;
    Ok(AnyStore::Embedded(store))
}

pub struct Application {
    server: Server,
    addr: std::net::SocketAddr,
}

impl Application {
    /// Opens the store, loads the key and binds the listener (port 0 picks a free port).
    pub fn build(settings: Settings) -> anyhow::Result<Self> {
        let store = open_store(&settings)?;
        let key = TokenKey::load_or_generate(
            settings.signing_key.as_ref().map(Secret::expose),
            &settings.data_dir,
        )?;
        let listener = TcpListener::bind(&settings.listen)
            .with_context(|| format!("cannot listen on {}", settings.listen))?;
        let addr = listener.local_addr()?;
        let widget_dir = settings.widget_dir();
        if !widget_dir.join("widget.js").is_file() {
            tracing::warn!(dir = %widget_dir.display(), "the widget is not built: run `cargo xtask widget`");
        }
        let consensus_interval = settings.consensus_interval_secs;
        let state = web::Data::new(AppState {
            store,
            key,
            settings,
            widget_dir,
            learned: crate::reestimate::LearnedModels::default(),
        });
        if consensus_interval > 0 {
            crate::reestimate::spawn(state.clone(), std::time::Duration::from_secs(consensus_interval));
        }
        let server = HttpServer::new(move || {
            App::new()
                .wrap(TracingLogger::default())
                .app_data(state.clone())
                .configure(routes)
        })
        .listen(listener)?
        .run();
        Ok(Self { server, addr })
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The address actually bound (with the real port when 0 was asked for).
    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.addr
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}

/// The whole HTTP surface.
pub fn routes(cfg: &mut web::ServiceConfig) {
    // The widget API is called from the integrators' pages, on other origins. Which origins may use a site
    // is checked in the handlers against the site's host names; CORS only lets the browser read the replies.
    let widget_api_cors = || {
        Cors::default()
            .allow_any_origin()
            .allowed_methods(["GET", "POST"])
            .allowed_header(actix_web::http::header::CONTENT_TYPE)
            .max_age(86_400)
    };
    cfg.app_data(web::PathConfig::default().error_handler(|err, _| {
        let message = err.to_string();
        actix_web::error::InternalError::from_response(
            err,
            error_reply(StatusCode::NOT_FOUND, "not-found", message),
        )
        .into()
    }))
    .route(protocol::paths::HEALTHZ, web::get().to(health::healthz))
    .route(health::READYZ, web::get().to(health::readyz))
    .route(
        protocol::paths::SITEVERIFY,
        web::post().to(siteverify::siteverify),
    )
    .service(
        web::scope(protocol::paths::CHALLENGE)
            .wrap(widget_api_cors())
            .route("", web::post().to(challenge::create))
            // The accessible path; `pow` cannot be a challenge id (those have 22 characters).
            .route("/pow", web::post().to(challenge::create_pow))
            .route("/{id}/image/{n}", web::get().to(challenge::image))
            .route("/{id}/answer", web::post().to(challenge::answer)),
    )
    .service(
        web::scope("")
            .wrap(middleware::Compress::default())
            .route(protocol::paths::WIDGET_LOADER, web::get().to(assets::loader))
            .route(
                &format!("{}/{{name}}", protocol::paths::WIDGET_ASSETS),
                web::get().to(assets::asset),
            )
            .default_service(web::to(|| async {
                HttpResponse::NotFound().json(protocol::ApiError {
                    success: false,
                    error: "not-found".into(),
                    message: "no such endpoint".into(),
                })
            })),
    );
}
