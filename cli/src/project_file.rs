//! The project description file (`project.toml`), the same shape `cobot-server project import` reads:
//! `name`, `question = { fr, en }`, `abstain`, `[[labels]] id/fr/en`, and optionally `[consensus]` and
//! `priority`. Checked here so that a mistake is reported with the file's name before anything is sent.

use std::collections::HashSet;
use std::path::Path;

use anyhow::{Context as _, ensure};
use protocol::owner::NewProject;

pub fn read(path: &Path) -> anyhow::Result<NewProject> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse(&text).with_context(|| format!("invalid {}", path.display()))
}

/// The wire body is the file's own shape, so `toml` reports unknown or mistyped fields with their line.
pub fn parse(text: &str) -> anyhow::Result<NewProject> {
    let project: NewProject = toml::from_str(text)?;
    ensure!(!project.name.trim().is_empty(), "`name` is empty");
    ensure!(
        !project.question.fr.trim().is_empty() && !project.question.en.trim().is_empty(),
        "the question needs both `fr` and `en`"
    );
    ensure!(project.labels.len() >= 2, "at least two [[labels]] are needed");
    let mut seen = HashSet::new();
    for label in &project.labels {
        ensure!(seen.insert(&label.id), "label `{}` is listed twice", label.id);
        ensure!(
            !label.fr.trim().is_empty() && !label.en.trim().is_empty(),
            "label `{}` needs both `fr` and `en` texts",
            label.id
        );
    }
    if let Some(abstain) = &project.abstain {
        ensure!(
            seen.contains(abstain),
            "the abstain label `{abstain}` is not among the labels"
        );
    }
    Ok(project)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LABELS: &str = r#"
[[labels]]
id = "flat"
fr = "Plat"
en = "Flat"

[[labels]]
id = "other"
fr = "Autre"
en = "Other"
"#;

    #[test]
    fn the_demo_projects_file_is_read_with_default_consensus_and_priority() {
        let project = parse(&demo_toml()).unwrap();
        assert_eq!(project.name, "Orientation des toits");
        assert_eq!(project.labels.len(), 4);
        assert_eq!(
            project.abstain.as_ref().map(protocol::LabelId::as_str),
            Some("other")
        );
        assert_eq!(project.priority, 1);
        assert_eq!(project.consensus, protocol::owner::ConsensusSettings::default());
    }

    #[test]
    fn consensus_and_priority_can_be_set() {
        let text = format!(
            "name = \"Toits\"\npriority = 3\nquestion = {{ fr = \"Sens\u{a0}?\", en = \"Which way?\" }}\n\
             [consensus]\nmin_agreeing = 2\n{LABELS}"
        );
        let project = parse(&text).unwrap();
        assert_eq!(project.priority, 3);
        assert_eq!(project.consensus.min_agreeing, 2);
        assert!((project.consensus.threshold - 0.95).abs() < f64::EPSILON);
    }

    #[test]
    fn mistakes_are_named() {
        let head = "name = \"Toits\"\nquestion = { fr = \"Sens ?\", en = \"Which way?\" }\n";
        let cases = [
            (
                format!("{head}abstain = \"unknown\"\n{LABELS}"),
                "abstain label `unknown`",
            ),
            (format!("{head}colour = \"red\"\n{LABELS}"), "colour"),
            (format!("{head}{LABELS}{LABELS}"), "listed twice"),
            (
                format!("{head}[[labels]]\nid = \"Flat Roof\"\nfr = \"a\"\nen = \"b\"\n{LABELS}"),
                "label",
            ),
            ("name = \"Toits\"\n".to_owned(), "question"),
        ];
        for (text, expected) in cases {
            let error = format!("{:#}", parse(&text).unwrap_err());
            assert!(error.contains(expected), "{expected:?} not in {error:?}");
        }
    }

    fn demo_toml() -> String {
        // The generator's file, written out here so that this crate does not depend on `demo-data`.
        format!(
            "name = \"Orientation des toits\"\nquestion = {{ fr = \"Dans quel sens est orienté ce toit\u{a0}?\", \
             en = \"Which way does this roof face?\" }}\nabstain = \"other\"  # can’t tell\n\
             [[labels]]\nid = \"north_south\"\nfr = \"Nord-sud\"\nen = \"North–south\"\n\
             [[labels]]\nid = \"east_west\"\nfr = \"Est-ouest\"\nen = \"East–west\"\n{LABELS}"
        )
    }
}
