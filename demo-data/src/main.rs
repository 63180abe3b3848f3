//! `demo-data DIR [--seed N] [--gold-per-class N] [--unknown N] [--size PX]`: writes a demo project that
//! `cobot-server` can import, for owners who want to try an import without images of their own.

use std::path::PathBuf;
use std::process::ExitCode;

use demo_data::{ProjectSpec, plan_project, write_project};

const USAGE: &str = "usage: demo-data DIR [--seed N] [--gold-per-class N] [--unknown N] [--size PX]

Writes synthetic aerial-roof tiles (img-0001.png, ...), labels.csv (the gold images' labels)
and project.toml (question and labels) into DIR.";

fn main() -> ExitCode {
    match parse(std::env::args().skip(1)) {
        Ok(Command::Help) => {
            #[expect(clippy::print_stdout, reason = "the help text is the output asked for")]
            {
                println!("{USAGE}");
            }
            ExitCode::SUCCESS
        }
        Ok(Command::Write(dir, spec)) => match write_project(&dir, &spec) {
            Ok(()) => {
                let images = plan_project(&spec);
                let gold = images.iter().filter(|i| i.gold).count();
                eprintln!(
                    "wrote {} images ({gold} gold, {} unknown) to {}",
                    images.len(),
                    images.len() - gold,
                    dir.display()
                );
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("demo-data: cannot write {}: {err}", dir.display());
                ExitCode::FAILURE
            }
        },
        Err(message) => {
            eprintln!("demo-data: {message}\n\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

enum Command {
    Help,
    Write(PathBuf, ProjectSpec),
}

fn parse(mut args: impl Iterator<Item = String>) -> Result<Command, String> {
    let mut dir = None;
    let mut spec = ProjectSpec::default();
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "--seed" => spec.seed = number(&value("--seed")?, "--seed")?,
            "--gold-per-class" => {
                spec.gold_per_class = number(&value("--gold-per-class")?, "--gold-per-class")?;
            }
            "--unknown" => spec.unknown = number(&value("--unknown")?, "--unknown")?,
            "--size" => spec.size = number(&value("--size")?, "--size")?,
            flag if flag.starts_with('-') => return Err(format!("unknown option {flag}")),
            path if dir.is_none() => dir = Some(PathBuf::from(path)),
            extra => return Err(format!("unexpected argument {extra}")),
        }
    }
    if !(16..=1024).contains(&spec.size) {
        return Err(format!(
            "--size must be between 16 and 1024 pixels, not {}",
            spec.size
        ));
    }
    dir.map(|dir| Command::Write(dir, spec))
        .ok_or_else(|| "missing DIR".to_owned())
}

fn number<T: std::str::FromStr>(text: &str, name: &str) -> Result<T, String> {
    text.parse()
        .map_err(|_| format!("{name} expects a non-negative integer, not `{text}`"))
}
