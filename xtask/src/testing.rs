//! `cargo xtask test`: every test, with what they need installed first.
//!
//! Order: tools (apt packages, the wasm target and CLI), formatting and lints, the widget build (the
//! browser tests load it), the host test suites (unit, HTTP black-box, browser), then the widget's own
//! component tests in headless Chromium. Any failure stops the run with a non-zero exit.

use std::process::Command;

use anyhow::{Result, bail};

use crate::tools::{self, workspace_root};
use crate::widget;

pub fn run(args: &[&str]) -> Result<()> {
    let quick = args.contains(&"--no-lint");
    if let Some(unknown) = args.iter().find(|a| **a != "--no-lint") {
        bail!("unknown option `{unknown}` (known: --no-lint)");
    }
    tools::ensure_browser()?;
    tools::ensure_redis()?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let root = workspace_root();
    if !quick {
        println!("xtask: checking formatting and lints");
        tools::run(
            Command::new(&cargo)
                .current_dir(&root)
                .args(["fmt", "--all", "--", "--check"]),
        )?;
        tools::run(Command::new(&cargo).current_dir(&root).args([
            "clippy",
            "--workspace",
            "--exclude",
            "widget",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]))?;
    }
    let widget_dir = widget::build(widget::Profile::Release)?;
    println!("xtask: running the host tests (unit, HTTP, browser)");
    tools::run(
        Command::new(&cargo)
            .current_dir(&root)
            .args(["test", "--workspace", "--exclude", "widget"])
            .env("COBOT_WIDGET_DIR", &widget_dir)
            .env("CHROMEDRIVER", tools::which("chromedriver").unwrap_or_default())
            .env("CHROMIUM", tools::which("chromium").unwrap_or_default()),
    )?;
    println!("xtask: running the widget's component tests in headless Chromium");
    widget::test()?;
    println!("xtask: every test passed");
    Ok(())
}
