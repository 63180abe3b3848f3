//! `cargo xtask demo`: the server and the demo site on the embedded store, seeded on first start.
//!
//! Seeding uses the real owner commands (`cobot-server project import`, `site create`) on a project drawn by
//! `demo-data`, exactly as an operator would, and keeps the demo site's credentials in the data directory.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use anyhow::{Context as _, Result, bail};

use crate::tools::{self, workspace_root};
use crate::widget;

const SERVER_LISTEN: &str = "127.0.0.1:8080";
const DEMO_LISTEN: &str = "127.0.0.1:8081";

pub fn run(args: &[&str]) -> Result<()> {
    if let Some(unknown) = args.first() {
        bail!("`cargo xtask demo` takes no argument (got `{unknown}`); configure it with COBOT_* variables");
    }
    let widget_dir = widget::build(widget::Profile::Release)?;
    println!("xtask: building the server and the demo site");
    tools::run(Command::new(cargo()).current_dir(workspace_root()).args([
        "build",
        "--package",
        "server",
        "--package",
        "demo-site",
        "--bins",
    ]))?;
    let bin_dir = tools::target_dir().join("debug");
    let server = bin_dir.join("cobot-server");
    let data_dir =
        std::env::var_os("COBOT_DATA_DIR").map_or_else(|| workspace_root().join("data"), PathBuf::from);
    let site_file = data_dir.join("demo-site.json");
    if !site_file.is_file() {
        seed(&server, &data_dir, &site_file)?;
    }

    let listen = std::env::var("COBOT_LISTEN").unwrap_or_else(|_| SERVER_LISTEN.into());
    let public_url = std::env::var("COBOT_PUBLIC_URL").unwrap_or_else(|_| format!("http://{listen}"));
    let demo_listen = std::env::var("DEMO_LISTEN").unwrap_or_else(|_| DEMO_LISTEN.into());
    let mut server_proc = Command::new(&server)
        .env("COBOT_LISTEN", &listen)
        .env("COBOT_DATA_DIR", &data_dir)
        .env("COBOT_WIDGET_DIR", &widget_dir)
        .spawn()
        .context("cannot start cobot-server")?;
    let mut demo_proc = Command::new(bin_dir.join("demo-site"))
        .arg("--site-file")
        .arg(&site_file)
        .env("DEMO_LISTEN", &demo_listen)
        .env("COBOT_PUBLIC_URL", &public_url)
        .spawn()
        .context("cannot start demo-site")?;
    println!();
    println!("  Demo form (open this):  http://{demo_listen}/");
    println!("  Cobot server:           {public_url}/  (widget at {public_url}/widget.js)");
    println!("  Data directory:         {}", data_dir.display());
    println!("  Stop with Ctrl-C.");
    println!();
    let outcome = wait_first(&mut server_proc, &mut demo_proc);
    let _ = server_proc.kill();
    let _ = demo_proc.kill();
    outcome
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// First start: draw a demo project, import it, create the demo site for `localhost` and `127.0.0.1`.
fn seed(server: &Path, data_dir: &Path, site_file: &Path) -> Result<()> {
    println!(
        "xtask: first start, seeding the demo project into {}",
        data_dir.display()
    );
    let project_dir = tools::target_dir().join("demo-project");
    if project_dir.exists() {
        std::fs::remove_dir_all(&project_dir)?;
    }
    demo_data::write_project(&project_dir, &demo_data::ProjectSpec::default())
        .context("cannot write the demo project")?;
    let owner = |args: &[&str]| -> Result<String> {
        let out = Command::new(server)
            .args(args)
            .env("COBOT_DATA_DIR", data_dir)
            .output()?;
        if !out.status.success() {
            bail!(
                "cobot-server {args:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8(out.stdout)?.trim().to_owned())
    };
    let project = owner(&["project", "import", &project_dir.to_string_lossy()])?;
    let site = owner(&[
        "site",
        "create",
        "--hostname",
        "localhost",
        "--hostname",
        "127.0.0.1",
        "--project",
        &project,
    ])?;
    std::fs::write(site_file, format!("{site}\n")).context("cannot keep the demo site's credentials")?;
    println!(
        "xtask: project {project} imported; demo site credentials in {}",
        site_file.display()
    );
    Ok(())
}

/// Waits until one of the two processes ends, and reports how.
fn wait_first(a: &mut Child, b: &mut Child) -> Result<()> {
    loop {
        for (name, child) in [("cobot-server", &mut *a), ("demo-site", &mut *b)] {
            if let Some(status) = child.try_wait()? {
                if status.success() {
                    return Ok(());
                }
                bail!("{name} stopped: {status}");
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}
