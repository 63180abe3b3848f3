//! `demo-site`: serves the demo form. Configuration comes from the command line or the environment
//! (see `demo-site --help`); the site's secret is never logged.

use clap::Parser as _;
use demo_site::{Application, Args};
use tracing_subscriber::EnvFilter;

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .init();
    let settings = Args::parse().into_settings()?;
    let app = Application::build(&settings)?;
    eprintln!(
        "demo-site: listening on {}  (widget from {})",
        app.url(),
        settings.public_url
    );
    app.run_until_stopped().await?;
    Ok(())
}
