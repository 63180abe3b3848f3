//! Building the widget: wasm compile, wasm-bindgen, wasm-opt, assets into `target/widget/`.

use std::path::PathBuf;

use anyhow::{Result, bail};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    Dev,
    Release,
}

impl Profile {
    pub fn from_args(args: &[&str]) -> Self {
        if args.contains(&"--dev") { Profile::Dev } else { Profile::Release }
    }
}

/// Builds the widget and returns the folder the server serves it from.
pub fn build(_profile: Profile) -> Result<PathBuf> {
    bail!("widget build not written yet")
}

/// Prints the transfer size of the built widget.
pub fn size_report() -> Result<()> {
    bail!("widget size report not written yet")
}

/// Runs the widget's `wasm-bindgen-test` component tests in headless Chromium.
pub fn test() -> Result<()> {
    bail!("widget tests not written yet")
}
