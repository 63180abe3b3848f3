//! `cargo xtask <task>`: the project's automation, in Rust rather than shell.
//!
//! - `demo`   builds the widget, seeds the demo project on first start, runs the server and the demo site;
//! - `test`   installs what the tests need when missing, builds the widget and runs every test;
//! - `widget` builds the widget into `target/widget/`;
//! - `size`   prints the widget's transfer size (raw and gzip);
//! - `widget-test` runs the widget's component tests in headless Chromium.

#![allow(clippy::print_stdout)] // this binary talks to a developer on its standard output

mod demo;
mod testing;
mod tools;
mod widget;

use anyhow::{Result, bail};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rest = args.iter().skip(1).map(String::as_str).collect::<Vec<_>>();
    match args.first().map(String::as_str) {
        Some("demo") => demo::run(&rest),
        Some("test") => testing::run(&rest),
        Some("widget") => widget::build(widget::Profile::from_args(&rest)).map(|_| ()),
        Some("size") => widget::size_report(),
        Some("widget-test") => widget::test(),
        None | Some("help" | "--help" | "-h") => {
            println!("{HELP}");
            Ok(())
        }
        Some(other) => bail!("unknown task `{other}`\n\n{HELP}"),
    }
}

const HELP: &str = "\
usage: cargo xtask <task>

tasks:
  demo      build the widget, seed the demo project on first start, run the server and the demo site
  test      install what the tests need when missing, build the widget, run every test
  widget    build the widget into target/widget/ (add --dev for an unoptimised build)
  size      print the widget's transfer size (raw and gzip of wasm + js + css)
  widget-test  run the widget's component tests in headless Chromium";
