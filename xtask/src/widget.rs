//! Building the widget: wasm compile, wasm-bindgen, wasm-opt, assets into `target/widget/`.
//!
//! The output folder is what the server serves: `widget.js` (the loader, at `/widget.js`) and
//! `cobot_widget.js`, `cobot_widget_bg.wasm`, `widget.css` (under `/widget/`). The wasm is built in its own
//! target folder (`target/wasm`) so that switching between host and wasm builds never invalidates either.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use flate2::Compression;
use flate2::write::GzEncoder;

use crate::tools::{self, run};

/// The transfer budget of the widget, gzip, all files together (wasm + js + css), in bytes (1 kB = 1000 B).
pub const BUDGET_GZIP: usize = 60_000;

/// Binaryen's `wasm-opt` from npm: Debian's binaryen is too old to read what current rustc emits.
const BINARYEN_NPM: &str = "binaryen@132";
/// Terser minifies the loader and the wasm-bindgen glue (2.6 kB gzip less for the citizen).
const TERSER_NPM: &str = "terser@5.51.4";

const WASM_TARGET: &str = "wasm32-unknown-unknown";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    Dev,
    Release,
}

impl Profile {
    pub fn from_args(args: &[&str]) -> Self {
        if args.contains(&"--dev") {
            Profile::Dev
        } else {
            Profile::Release
        }
    }

    /// The cargo profile name and the folder cargo writes it to.
    fn cargo(self) -> (&'static str, &'static str) {
        match self {
            Profile::Dev => ("dev", "debug"),
            Profile::Release => ("wasm-release", "wasm-release"),
        }
    }
}

/// Builds the widget and returns the folder the server serves it from.
pub fn build(profile: Profile) -> Result<PathBuf> {
    ensure_wasm_target()?;
    let bindgen = ensure_wasm_bindgen()?.join("wasm-bindgen");
    let target = tools::target_dir();
    let wasm_target_dir = target.join("wasm");
    let (cargo_profile, profile_dir) = profile.cargo();

    let mut cargo = Command::new(cargo_bin());
    cargo
        .current_dir(tools::workspace_root())
        .args([
            "build",
            "-p",
            "widget",
            "--target",
            WASM_TARGET,
            "--profile",
            cargo_profile,
        ])
        .arg("--target-dir")
        .arg(&wasm_target_dir);
    if profile == Profile::Release {
        // Compiles the logging of Yew's dependencies out: nobody reads it in a citizen's browser.
        cargo.args(["--features", "small"]);
        // Symbols are kept here because stripping them also drops the `target_features` section that
        // wasm-bindgen reads; wasm-opt strips them afterwards. (opt-level "s" was tried: no smaller.)
        cargo.args(["--config", "profile.wasm-release.strip=false"]);
    }
    run(&mut cargo).context("the widget does not build for wasm")?;
    let module = wasm_target_dir
        .join(WASM_TARGET)
        .join(profile_dir)
        .join("widget.wasm");

    // Build into a fresh folder next to the output, then swap, so a server never serves a half-written widget.
    let out = target.join("widget");
    let staging = target.join("widget.new");
    if staging.exists() {
        fs::remove_dir_all(&staging).with_context(|| format!("cannot clear {}", staging.display()))?;
    }
    fs::create_dir_all(&staging)?;
    let mut bindgen_cmd = Command::new(&bindgen);
    bindgen_cmd.args([
        "--target",
        "web",
        "--out-name",
        "cobot_widget",
        "--no-typescript",
        "--out-dir",
    ]);
    bindgen_cmd.arg(&staging).arg(&module);
    if profile == Profile::Dev {
        bindgen_cmd.arg("--debug");
    }
    run(&mut bindgen_cmd)?;

    if profile == Profile::Release {
        let wasm = staging.join("cobot_widget_bg.wasm");
        let mut opt = Command::new(ensure_npm_tool("wasm-opt", BINARYEN_NPM)?);
        // The features rustc enables by default for wasm32-unknown-unknown; wasm-opt must accept them.
        opt.args([
            "-Oz",
            "--enable-bulk-memory",
            "--enable-mutable-globals",
            "--enable-nontrapping-float-to-int",
            "--enable-sign-ext",
            "--enable-reference-types",
            "--enable-multivalue",
            "--strip-debug",
            "--strip-producers",
        ]);
        opt.arg(&wasm).arg("-o").arg(&wasm);
        run(&mut opt).context("wasm-opt failed")?;
    }

    let crate_dir = tools::workspace_root().join("widget");
    for (from, to) in [
        ("loader/widget.js", "widget.js"),
        ("style/widget.css", "widget.css"),
    ] {
        fs::copy(crate_dir.join(from), staging.join(to))
            .with_context(|| format!("cannot copy widget/{from}"))?;
    }
    if profile == Profile::Release {
        let terser = ensure_npm_tool("terser", TERSER_NPM)?;
        for (name, module) in [("widget.js", false), ("cobot_widget.js", true)] {
            let file = staging.join(name);
            let mut min = Command::new(&terser);
            min.arg(&file)
                .args(["--compress", "passes=2", "--mangle", "--comments", "false", "-o"])
                .arg(&file);
            if module {
                min.arg("--module");
            }
            run(&mut min).with_context(|| format!("cannot minify {name}"))?;
        }
    }

    if out.exists() {
        fs::remove_dir_all(&out).with_context(|| format!("cannot clear {}", out.display()))?;
    }
    fs::rename(&staging, &out)?;
    println!("xtask: widget built into {}", out.display());
    Ok(out)
}

/// Raw and gzip sizes of one part of the widget.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Size {
    pub raw: usize,
    pub gzip: usize,
}

impl std::ops::Add for Size {
    type Output = Size;
    fn add(self, other: Size) -> Size {
        Size {
            raw: self.raw + other.raw,
            gzip: self.gzip + other.gzip,
        }
    }
}

/// What a citizen's browser downloads for the widget, part by part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sizes {
    pub wasm: Size,
    /// The loader and the wasm-bindgen glue.
    pub js: Size,
    pub css: Size,
}

impl Sizes {
    pub fn total(&self) -> Size {
        self.wasm + self.js + self.css
    }

    pub fn within_budget(&self) -> bool {
        self.total().gzip <= BUDGET_GZIP
    }
}

/// Measures an already built widget folder.
pub fn sizes(dir: &Path) -> Result<Sizes> {
    let size = |name: &str| -> Result<Size> {
        let bytes =
            fs::read(dir.join(name)).with_context(|| format!("cannot read {name} in {}", dir.display()))?;
        let mut gz = GzEncoder::new(Vec::new(), Compression::best());
        gz.write_all(&bytes)?;
        Ok(Size {
            raw: bytes.len(),
            gzip: gz.finish()?.len(),
        })
    };
    Ok(Sizes {
        wasm: size("cobot_widget_bg.wasm")?,
        js: size("widget.js")? + size("cobot_widget.js")?,
        css: size("widget.css")?,
    })
}

/// Builds the release widget and prints its transfer size (raw and gzip) against the budget.
pub fn size_report() -> Result<()> {
    let dir = build(Profile::Release)?;
    let sizes = sizes(&dir)?;
    let row = |name: &str, s: Size| format!("{name:<6} {:>9} {:>9}", s.raw, s.gzip);
    println!("{:<6} {:>9} {:>9}", "part", "raw B", "gzip B");
    println!("{}", row("wasm", sizes.wasm));
    println!("{}", row("js", sizes.js));
    println!("{}", row("css", sizes.css));
    println!("{}", row("total", sizes.total()));
    let verdict = if sizes.within_budget() { "within" } else { "OVER" };
    println!(
        "budget {BUDGET_GZIP} B gzip: {verdict} ({} B gzip)",
        sizes.total().gzip
    );
    Ok(())
}

/// Runs the widget's `wasm-bindgen-test` component tests in headless Chromium.
pub fn test() -> Result<()> {
    ensure_wasm_target()?;
    tools::ensure_browser()?;
    let bin = ensure_wasm_bindgen()?;
    let target = tools::target_dir();
    let chromedriver = tools::which("chromedriver").context("chromedriver is not on the PATH")?;

    // The runner already passes `headless` and `no-sandbox` (needed as root); what we add keeps Chromium from
    // reaching the network on its own and gives it a profile folder of its own.
    let profile_dir = target.join("widget-test-chromium");
    if profile_dir.exists() {
        fs::remove_dir_all(&profile_dir)?;
    }
    let caps = serde_json::json!({
        "goog:chromeOptions": {
            "binary": chromium_binary()?,
            "args": [
                "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync",
                format!("--user-data-dir={}", profile_dir.display()),
            ]
        }
    });
    let caps_file = target.join("widget-webdriver.json");
    fs::write(&caps_file, serde_json::to_vec_pretty(&caps)?)?;

    let mut cargo = Command::new(cargo_bin());
    cargo
        .current_dir(tools::workspace_root())
        .args(["test", "-p", "widget", "--target", WASM_TARGET])
        .arg("--target-dir")
        .arg(target.join("wasm"))
        .env(
            "CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER",
            bin.join("wasm-bindgen-test-runner"),
        )
        .env("CHROMEDRIVER", chromedriver)
        .env("WASM_BINDGEN_TEST_WEBDRIVER_JSON", &caps_file)
        .env("WASM_BINDGEN_TEST_TIMEOUT", "60");
    run(&mut cargo).context("widget component tests failed")
}

fn chromium_binary() -> Result<String> {
    tools::which("chromium")
        .or_else(|| tools::which("chromium-browser"))
        .map(|p| p.display().to_string())
        .context("chromium is not on the PATH")
}

fn cargo_bin() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

fn ensure_wasm_target() -> Result<()> {
    // `rustup target add` is a no-op when the target is there; automatic installation is off on this machine.
    let mut cmd = Command::new("rustup");
    cmd.args(["target", "add", WASM_TARGET]);
    run(&mut cmd).context("cannot add the wasm32 target: is rustup installed?")
}

/// The `wasm-bindgen` version in `Cargo.lock`, which the CLI must match exactly.
fn locked_wasm_bindgen_version() -> Result<String> {
    let lock =
        fs::read_to_string(tools::workspace_root().join("Cargo.lock")).context("cannot read Cargo.lock")?;
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line.trim() == r#"name = "wasm-bindgen""#
            && let Some(version) = lines.next().and_then(|l| l.trim().strip_prefix("version = "))
        {
            return Ok(version.trim_matches('"').to_owned());
        }
    }
    bail!("wasm-bindgen is not in Cargo.lock: does the widget depend on it?")
}

/// Installs the wasm-bindgen CLI (and its test runner) of the locked version; returns its `bin` folder.
fn ensure_wasm_bindgen() -> Result<PathBuf> {
    let version = locked_wasm_bindgen_version()?;
    // Keyed by version in the user's cache rather than in `target/`: building the CLI takes minutes, and a
    // fresh clone (CI's) on a machine that built it once can reuse it. It is still installed when missing.
    let root = tools::user_cache_dir().join(format!("wasm-bindgen-cli-{version}"));
    let bin = root.join("bin");
    let installed = Command::new(bin.join("wasm-bindgen"))
        .arg("--version")
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned());
    if installed.as_deref() == Some(&format!("wasm-bindgen {version}")) {
        return Ok(bin);
    }
    println!(
        "xtask: installing wasm-bindgen-cli {version} into {}",
        root.display()
    );
    let mut cmd = Command::new(cargo_bin());
    cmd.args(["install", "wasm-bindgen-cli", "--version"])
        .arg(format!("={version}"))
        .args(["--no-default-features", "--root"])
        .arg(&root)
        // Its own target folder: the install must not fight the workspace build over the lock.
        .env("CARGO_TARGET_DIR", root.join("build"));
    run(&mut cmd).context("cannot install wasm-bindgen-cli from crates.io")?;
    Ok(bin)
}

/// A command-line tool from npm (`wasm-opt` from `binaryen`, `terser`), installed under `tools/node` when
/// missing.
fn ensure_npm_tool(bin: &str, package: &str) -> Result<PathBuf> {
    let prefix = tools::tools_dir().join("node");
    let path = prefix.join("node_modules").join(".bin").join(bin);
    if path.is_file() {
        return Ok(path);
    }
    if !tools::on_path("npm") {
        bail!(
            "npm is missing: install Node.js and npm (apt-get install npm) so that xtask can install {package}"
        );
    }
    println!("xtask: installing {package} from npm into {}", prefix.display());
    fs::create_dir_all(&prefix)?;
    let mut cmd = Command::new("npm");
    cmd.args(["install", "--no-audit", "--no-fund", "--prefix"])
        .arg(&prefix)
        .arg(package);
    run(&mut cmd).with_context(|| format!("cannot install {package} from npm"))?;
    if !path.is_file() {
        bail!("{} is missing after installing {package}", path.display());
    }
    Ok(path)
}
