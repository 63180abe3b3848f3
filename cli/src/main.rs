//! `cobot`: the command line of project owners. It talks to a Cobot server through the owner API only
//! (`/api/v1/...` with an API key), so it works the same against a laptop's test server and production.
//!
//! Standard output carries the results (ids, JSON, summaries) so that scripts can read them; progress and
//! notes go to standard error.

mod client;
mod config;
mod journal;
mod project_file;
mod upload;

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand, ValueEnum};
use protocol::owner::{
    ApiKeyCreated, NewKey, NewSite, Progress, ProjectList, ProjectView, RotateSecret, SiteCredentials, paths,
};

use crate::client::{Api, Retry};
use crate::config::Credentials;

#[derive(Parser)]
#[command(
    name = "cobot",
    version,
    about = "Manage Cobot labelling projects through the owner API"
)]
struct Cli {
    /// Where `credentials.toml` is kept (default: `$XDG_CONFIG_HOME/cobot` or `~/.config/cobot`).
    #[arg(long, global = true, value_name = "DIR")]
    config_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Checks an API key against a server and remembers both.
    Login {
        /// The server's address, e.g. `https://cobot.example.gouv.fr`
        #[arg(long)]
        server: String,
        /// The API key (`cobot_...`); `-` reads it from standard input, keeping it out of the shell history.
        #[arg(long)]
        key: String,
    },
    #[command(flatten)]
    Owner(OwnerCommand),
}

/// The commands that act on the server with the saved credentials.
#[derive(Subcommand)]
enum OwnerCommand {
    /// Projects: create, list, show, archive.
    #[command(subcommand)]
    Project(ProjectCommand),
    /// Images of a project.
    #[command(subcommand)]
    Images(ImagesCommand),
    /// Where a project stands: images by status, votes, estimated accuracy.
    Progress {
        project: u64,
        /// Shows it again every SECONDS until interrupted.
        #[arg(long, value_name = "SECONDS")]
        watch: Option<u64>,
        /// Prints the server's JSON instead of a summary.
        #[arg(long)]
        json: bool,
    },
    /// Downloads a project's labels, raw contributions, or everything as a zip archive.
    Export {
        project: u64,
        #[arg(long, value_enum)]
        what: ExportWhat,
        /// For labels: JSON lines (default) or CSV. Contributions are JSON lines.
        #[arg(long, value_enum)]
        format: Option<ExportFormat>,
        /// The file to write; it appears only once complete.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Sites: the web pages that show a project's images.
    #[command(subcommand)]
    Site(SiteCommand),
    /// API keys.
    #[command(subcommand)]
    Key(KeyCommand),
}

#[derive(Subcommand)]
enum ProjectCommand {
    /// Creates a project from a TOML file (the shape of `cobot-server project import`'s project.toml)
    /// and prints its id.
    Create { file: PathBuf },
    /// Lists your projects.
    List,
    /// Prints a project as JSON.
    Show { project: u64 },
    /// Stops serving a project; its images and labels stay exportable.
    Archive { project: u64 },
}

#[derive(Subcommand)]
enum ImagesCommand {
    /// Uploads the PNG, JPEG and WebP images of a folder. Rerun it after an interruption: files already
    /// acknowledged are skipped, and the server never stores the same image twice.
    Upload {
        project: u64,
        dir: PathBuf,
        /// A `file,label` CSV of the images whose label is known (default: DIR/labels.csv if present).
        #[arg(long, value_name = "FILE")]
        labels: Option<PathBuf>,
        /// Most files per request.
        #[arg(long, default_value_t = upload::Options::default().batch_files, value_name = "N")]
        batch_files: usize,
    },
}

#[derive(Subcommand)]
enum SiteCommand {
    /// Creates a site and prints its sitekey and secret (the secret is shown this once).
    Create {
        /// A host name allowed to show the widget (repeat for several).
        #[arg(long = "hostname", required = true)]
        hostnames: Vec<String>,
        /// A project whose images the site shows (repeat for several).
        #[arg(long = "project", required = true)]
        projects: Vec<u64>,
    },
    /// Gives a site a new secret and prints it; the old one keeps working for the overlap.
    Rotate {
        sitekey: String,
        /// Seconds the previous secret stays valid (server default: one day; 0 ends it now).
        #[arg(long, value_name = "SECONDS")]
        overlap: Option<u64>,
    },
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Creates another API key for your account and prints it (shown this once).
    Create {
        /// What the key is for (`ci`, `laptop`).
        #[arg(long)]
        name: Option<String>,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ExportWhat {
    Labels,
    Contributions,
    Zip,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ExportFormat {
    Jsonl,
    Csv,
}

fn main() -> std::process::ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(error) => {
            // `{:#}` prints the whole context chain on one line: "cannot read x.toml: No such file".
            let _ = writeln!(std::io::stderr(), "error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<std::process::ExitCode> {
    let config_dir = config::config_dir(cli.config_dir.as_deref())?;
    match cli.command {
        Command::Login { server, key } => {
            login(&config_dir, &server, &key)?;
            Ok(std::process::ExitCode::SUCCESS)
        }
        Command::Owner(command) => owner(&Api::new(&config::load(&config_dir)?)?, command),
    }
}

fn owner(api: &Api, command: OwnerCommand) -> anyhow::Result<std::process::ExitCode> {
    match command {
        OwnerCommand::Project(command) => project(api, command)?,
        OwnerCommand::Images(ImagesCommand::Upload {
            project,
            dir,
            labels,
            batch_files,
        }) => {
            let options = upload::Options {
                batch_files,
                ..upload::Options::default()
            };
            let view: ProjectView = api.get(&paths::project(project))?;
            let summary = upload::run(api, &view, &dir, labels.as_deref(), options)?;
            print_upload_summary(&summary)?;
            if !summary.rejected.is_empty() {
                return Ok(std::process::ExitCode::FAILURE);
            }
        }
        OwnerCommand::Progress { project, watch, json } => loop {
            let progress: Progress = api.get(&paths::progress(project))?;
            if json {
                stdout(&format!("{}\n", serde_json::to_string(&progress)?))?;
            } else {
                stdout(&format_progress(&progress))?;
            }
            let Some(seconds) = watch else { break };
            std::thread::sleep(Duration::from_secs(seconds.max(1)));
        },
        OwnerCommand::Export {
            project,
            what,
            format,
            out,
        } => {
            let path = match (what, format) {
                (ExportWhat::Labels, format) => {
                    let format = if format == Some(ExportFormat::Csv) {
                        "csv"
                    } else {
                        "jsonl"
                    };
                    format!("{}?format={format}", paths::labels(project))
                }
                (ExportWhat::Contributions, None | Some(ExportFormat::Jsonl)) => {
                    paths::contributions(project)
                }
                (ExportWhat::Zip, None) => paths::export_zip(project),
                (_, Some(_)) => {
                    bail!("--format applies to --what labels only (contributions are JSON lines)")
                }
            };
            let bytes = export(api, &path, &out)?;
            note(&format!("wrote {} ({bytes} bytes)", out.display()));
        }
        OwnerCommand::Site(SiteCommand::Create { hostnames, projects }) => {
            let body = NewSite { hostnames, projects };
            let site: SiteCredentials = api.post(paths::SITES, &body, Retry::IfNotSent)?;
            print_site(&site)?;
        }
        OwnerCommand::Site(SiteCommand::Rotate { sitekey, overlap }) => {
            let sitekey = protocol::SiteKey::parse(sitekey).context("SITEKEY")?;
            let body = RotateSecret {
                overlap_seconds: overlap,
            };
            let site: SiteCredentials =
                api.post(&paths::secrets(sitekey.as_str()), &body, Retry::IfNotSent)?;
            print_site(&site)?;
        }
        OwnerCommand::Key(KeyCommand::Create { name }) => {
            let key: ApiKeyCreated = api.post(paths::KEYS, &NewKey { name }, Retry::IfNotSent)?;
            stdout(&format!("{}\n", serde_json::to_string(&key)?))?;
            note("keep this key safe: it is not shown again");
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}

fn login(config_dir: &Path, server: &str, key: &str) -> anyhow::Result<()> {
    let server = config::normalise_server(server)?;
    let key = if key == "-" {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .context("cannot read the key from standard input")?;
        line.trim().to_owned()
    } else {
        key.to_owned()
    };
    if key.is_empty() {
        bail!("--key: the API key is empty");
    }
    let credentials = Credentials { server, key };
    let projects: ProjectList = Api::new(&credentials)?.get(paths::PROJECTS)?;
    let path = config::save(config_dir, &credentials)?;
    note(&format!(
        "logged in to {} ({} project(s)); credentials saved in {}",
        credentials.server,
        projects.projects.len(),
        path.display()
    ));
    Ok(())
}

fn project(api: &Api, command: ProjectCommand) -> anyhow::Result<()> {
    match command {
        ProjectCommand::Create { file } => {
            let body = project_file::read(&file)?;
            let created: ProjectView = api.post(paths::PROJECTS, &body, Retry::IfNotSent)?;
            stdout(&format!("{}\n", created.id))?;
        }
        ProjectCommand::List => {
            let list: ProjectList = api.get(paths::PROJECTS)?;
            let mut text = String::new();
            for p in &list.projects {
                let archived = if p.archived { "  (archived)" } else { "" };
                let _ = writeln!(text, "{}\t{}{archived}", p.id, p.name);
            }
            stdout(&text)?;
        }
        ProjectCommand::Show { project } => {
            let view: ProjectView = api.get(&paths::project(project))?;
            stdout(&format!("{}\n", serde_json::to_string_pretty(&view)?))?;
        }
        ProjectCommand::Archive { project } => {
            api.delete(&paths::project(project))?;
            note(&format!(
                "project {project} archived: no longer served, still exportable"
            ));
        }
    }
    Ok(())
}

/// Streams the body into a temporary file next to `out`, then renames it: `out` is either absent, or
/// the previous version, or complete.
fn export(api: &Api, path: &str, out: &Path) -> anyhow::Result<u64> {
    let dir = match out.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let mut file = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot create a file in {}", dir.display()))?;
    let bytes = {
        let mut writer = std::io::BufWriter::new(file.as_file_mut());
        let bytes = api.download(path, &mut writer)?;
        writer
            .flush()
            .with_context(|| format!("cannot write {}", out.display()))?;
        bytes
    };
    file.as_file()
        .sync_all()
        .with_context(|| format!("cannot write {}", out.display()))?;
    file.persist(out)
        .with_context(|| format!("cannot write {}", out.display()))?;
    Ok(bytes)
}

fn format_progress(progress: &Progress) -> String {
    let images = &progress.images;
    let mut text = format!(
        "project {}: {} images: {} decided, {} open, {} contested, {} control\n",
        progress.project, images.total, images.decided, images.open, images.contested, images.control
    );
    let votes: Vec<String> = progress
        .votes_by_label
        .iter()
        .map(|(label, n)| format!("{label} {n}"))
        .collect();
    let total: u64 = progress.votes_by_label.values().sum();
    let _ = writeln!(text, "votes: {total} ({})", votes.join(", "));
    let percent =
        |share: Option<f64>| share.map_or_else(|| "n/a".to_owned(), |s| format!("{:.1} %", s * 100.0));
    let _ = writeln!(
        text,
        "estimated label accuracy: {}\ncontrol pass rate: {}",
        percent(progress.estimated_label_accuracy),
        percent(progress.control_pass_rate)
    );
    text
}

fn print_upload_summary(summary: &upload::Summary) -> anyhow::Result<()> {
    let mut text = format!(
        "{} files: {} stored, {} duplicates, {} already uploaded, {} rejected\n",
        summary.files,
        summary.stored,
        summary.duplicates,
        summary.already_uploaded,
        summary.rejected.len()
    );
    for (file, reason) in &summary.rejected {
        let _ = writeln!(text, "rejected {file}: {reason}");
    }
    stdout(&text)
}

/// The same one-line JSON `cobot-server site create` prints, so scripts work with either.
fn print_site(site: &SiteCredentials) -> anyhow::Result<()> {
    let json = serde_json::json!({"sitekey": site.sitekey, "secret": site.secret});
    stdout(&format!("{json}\n"))?;
    note("keep the secret on the site's backend: it is not shown again");
    Ok(())
}

fn stdout(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .context("cannot write to standard output")
}

fn note(text: &str) {
    let _ = writeln!(std::io::stderr(), "{text}");
}
