//! `cobot-server`: serves with no subcommand; owner tools as subcommands.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use server::config::Settings;
use server::model::{OwnerId, ProjectId};
use server::owner::{self, ExportFormat, ExportWhat};
use server::startup::{Application, open_store};
use server::store::AnyStore;

#[derive(Parser)]
#[command(
    name = "cobot-server",
    version,
    about = "Cobot: a captcha that does public good"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve HTTP (the default).
    Serve,
    /// Labelling projects.
    #[command(subcommand)]
    Project(ProjectCommand),
    /// Sites that embed the widget.
    #[command(subcommand)]
    Site(SiteCommand),
    /// API keys of the owner API.
    #[command(subcommand)]
    Key(KeyCommand),
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Create an API key for an owner (created if there is none by that name); prints the key once, as
    /// JSON with the owner's name (the key is stored hashed).
    Create {
        #[arg(long)]
        owner: String,
        /// What the key is for, for the owner's own bookkeeping.
        #[arg(long, default_value = "")]
        name: String,
    },
}

#[derive(Subcommand)]
enum ProjectCommand {
    /// Import a project from a folder holding project.toml, labels.csv and the images; prints its id.
    Import {
        dir: PathBuf,
        /// The owner the project belongs to (must exist: `key create --owner` creates it); without it, the
        /// project belongs to no owner and no API key sees it.
        #[arg(long)]
        owner: Option<String>,
    },
    /// Write a project's contributions or labels to standard output.
    Export {
        id: u64,
        #[arg(long, value_enum)]
        what: What,
        #[arg(long, value_enum, default_value = "jsonl")]
        format: Format,
    },
}

#[derive(Subcommand)]
enum SiteCommand {
    /// Create a site; prints {"sitekey": ..., "secret": ...} once (the secret is stored hashed).
    Create {
        /// A host name whose pages may show the widget (repeat for several).
        #[arg(long = "hostname", required = true)]
        hostnames: Vec<String>,
        /// A project whose images the site shows (repeat for several).
        #[arg(long = "project", required = true)]
        projects: Vec<u64>,
        /// The owner the site belongs to (its projects must be the owner's); without it, no owner.
        #[arg(long)]
        owner: Option<String>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum What {
    Contributions,
    Labels,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Jsonl,
    Csv,
}

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let settings = Settings::load().context("invalid configuration")?;
    server::telemetry::init(settings.log_format);
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(settings).await,
        Command::Project(ProjectCommand::Import { dir, owner }) => {
            let store = open_store(&settings)?;
            let owner = existing_owner(&store, owner.as_deref()).await?;
            let imported = owner::import_project(&store, &dir, owner).await?;
            tracing::info!(
                project = %imported.project.id,
                stored = imported.report.stored.len(),
                duplicates = imported.report.duplicates.len(),
                "project imported"
            );
            for duplicate in &imported.report.duplicates {
                tracing::warn!(
                    file = duplicate.external_id,
                    same_as = duplicate.existing_external_id,
                    "duplicate image, stored once"
                );
            }
            write_stdout(&format!("{}\n", imported.project.id))
        }
        Command::Project(ProjectCommand::Export { id, what, format }) => {
            let store = open_store(&settings)?;
            let what = match what {
                What::Contributions => ExportWhat::Contributions,
                What::Labels => ExportWhat::Labels,
            };
            let format = match format {
                Format::Jsonl => ExportFormat::Jsonl,
                Format::Csv => ExportFormat::Csv,
            };
            // The same domain code as the owner API's exports, writing to standard output.
            let project = server::store::Store::project(&store, ProjectId(id))
                .await?
                .with_context(|| format!("there is no project {id}"))?;
            let mut out = server::exports::WriteSink(std::io::BufWriter::new(std::io::stdout().lock()));
            match (what, format) {
                (ExportWhat::Labels, format) => {
                    let format = match format {
                        ExportFormat::Jsonl => server::exports::LabelsFormat::Jsonl,
                        ExportFormat::Csv => server::exports::LabelsFormat::Csv,
                    };
                    let consensus = server::exports::Consensus::collect(&store, &project).await?;
                    server::exports::write_labels(&store, &project, &consensus, format, &mut out).await?;
                }
                (ExportWhat::Contributions, ExportFormat::Jsonl) => {
                    server::exports::write_contributions(&store, &project, &mut out).await?;
                }
                (ExportWhat::Contributions, ExportFormat::Csv) => {
                    anyhow::bail!("contributions are exported as JSON lines only (--format jsonl)")
                }
            }
            std::io::Write::flush(&mut out.0).context("cannot write the export")
        }
        Command::Site(SiteCommand::Create {
            hostnames,
            projects,
            owner,
        }) => {
            let store = open_store(&settings)?;
            let owner = existing_owner(&store, owner.as_deref()).await?;
            let projects: Vec<ProjectId> = projects.into_iter().map(ProjectId).collect();
            let issued = owner::create_site(&store, owner, &hostnames, &projects).await?;
            let json = serde_json::json!({
                "sitekey": issued.site.sitekey.as_str(),
                "secret": issued.secret.as_str(),
            });
            write_stdout(&format!("{json}\n"))
        }
        Command::Key(KeyCommand::Create { owner, name }) => {
            let store = open_store(&settings)?;
            let owner = owner::ensure_owner(&store, &owner).await?;
            let api_key = owner::create_api_key(&store, owner.id, &name).await?;
            let json = serde_json::json!({ "api_key": api_key, "owner": owner.name });
            write_stdout(&format!("{json}\n"))
        }
    }
}

/// The id of the owner named `name`, which must exist.
async fn existing_owner(store: &AnyStore, name: Option<&str>) -> anyhow::Result<Option<OwnerId>> {
    let Some(name) = name else { return Ok(None) };
    let owner = owner::find_owner(store, name).await?.with_context(|| {
        format!("there is no owner `{name}`: `cobot-server key create --owner {name}` creates one")
    })?;
    Ok(Some(owner.id))
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let app = Application::build(settings)?;
    // On standard output, so that scripts and tests that asked for port 0 learn the real one.
    write_stdout(&format!(
        "cobot-server listening on http://{}\n",
        app.local_addr()
    ))?;
    app.run_until_stopped().await.context("server failed")
}

fn write_stdout(text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}
