//! Finding and installing the outside tools the build and the tests need.
//!
//! Everything is installed from the registries this project may reach (Debian's apt, crates.io, npm) and
//! never from a tool's own download of a prebuilt binary. A tool that cannot be installed is an error that
//! says what to install by hand: the tests never skip silently.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// The workspace root (the parent of this crate's folder).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// `target/` of the workspace, honouring `CARGO_TARGET_DIR`.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| workspace_root().join("target"), PathBuf::from)
}

/// Where tools installed for this project (wasm-bindgen CLI, binaryen) live: inside `target/`, so that a
/// clean clone installs its own and nothing is written outside the work tree except apt packages.
pub fn tools_dir() -> PathBuf {
    target_dir().join("tools")
}

/// A per-user cache for tools that do not depend on the checkout (`$XDG_CACHE_HOME/cobot`, else
/// `~/.cache/cobot`, else `target/tools`).
pub fn user_cache_dir() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
        .map_or_else(tools_dir, |cache| cache.join("cobot"))
}

/// Runs a command, failing with its command line when it does not succeed.
pub fn run(cmd: &mut Command) -> Result<()> {
    let shown = format!("{cmd:?}");
    let status = cmd.status().with_context(|| format!("cannot start {shown}"))?;
    if !status.success() {
        bail!("{shown} failed with {status}");
    }
    Ok(())
}

/// Whether `program` is on the PATH.
pub fn on_path(program: &str) -> bool {
    which(program).is_some()
}

pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// Makes sure each `(program, apt package)` pair is installed, with one `apt-get install` for the missing ones.
pub fn ensure_apt(needs: &[(&str, &str)]) -> Result<()> {
    let missing: Vec<&str> = needs
        .iter()
        .filter(|(prog, _)| !on_path(prog))
        .map(|(_, pkg)| *pkg)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    println!("xtask: installing {} with apt-get", missing.join(" "));
    if !on_path("apt-get") {
        bail!(
            "missing {}: install these packages by hand (no apt-get here)",
            missing.join(" ")
        );
    }
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout == b"0\n");
    let sudo = |args: &[&str]| {
        let mut cmd = if root {
            Command::new(args[0])
        } else {
            Command::new("sudo")
        };
        if root {
            cmd.args(&args[1..]);
        } else {
            cmd.args(args);
        }
        cmd.env("DEBIAN_FRONTEND", "noninteractive");
        cmd
    };
    run(&mut sudo(&["apt-get", "update", "-qq"]))
        .context("apt-get update failed: are the package registries reachable?")?;
    let mut install = sudo(&["apt-get", "install", "-y", "-qq", "--no-install-recommends"]);
    install.args(&missing);
    run(&mut install).with_context(|| format!("could not install {}", missing.join(" ")))?;
    for (prog, pkg) in needs {
        if !on_path(prog) {
            bail!("`{prog}` is still missing after installing the apt package `{pkg}`");
        }
    }
    Ok(())
}

/// Chromium and its `WebDriver` server, for the browser tests.
pub fn ensure_browser() -> Result<()> {
    ensure_apt(&[("chromium", "chromium"), ("chromedriver", "chromium-driver")])
}

/// `redis-server`, for the Redis store tests.
pub fn ensure_redis() -> Result<()> {
    ensure_apt(&[("redis-server", "redis-server")])
}
