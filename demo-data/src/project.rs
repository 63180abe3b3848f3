//! A demo labelling project on disk: tiles with neutral names, the gold labels in `labels.csv`, and the
//! question and label set in `project.toml`, the layout `cobot-server` imports.
//!
//! The classes of the unknown images are drawn at random so that the demo harvests something meaningful,
//! but they are written nowhere in the project directory: [`plan_project`] gives them to tests that need
//! the truth, from the same spec, without touching the disk.

use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::Path;

use crate::rng::SplitMix64;
use crate::{RoofClass, TILE_SIZE, render_tile_sized};

/// Keeps the plan's random stream apart from the tiles' own.
const PLAN_SALT: u64 = 0x636F_626F_745F_706C;

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectSpec {
    pub seed: u64,
    /// Gold images (known label) for each class of `gold_classes`.
    pub gold_per_class: usize,
    pub gold_classes: Vec<RoofClass>,
    /// Images without a label, of random classes.
    pub unknown: usize,
    /// Side of the tiles in pixels.
    pub size: u32,
}

impl Default for ProjectSpec {
    fn default() -> Self {
        Self {
            seed: 1,
            gold_per_class: 25,
            gold_classes: RoofClass::ALL.to_vec(),
            unknown: 200,
            size: TILE_SIZE,
        }
    }
}

/// One image of a planned project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedImage {
    /// File name inside the project directory (`img-0001.png`): says nothing of the class or of being gold.
    pub file: String,
    pub class: RoofClass,
    /// Whether the label is published in `labels.csv`.
    pub gold: bool,
    /// Seed of the tile, for [`crate::render_tile_sized`].
    pub seed: u64,
}

/// The images `write_project` writes for `spec`, in file-name order, with the truth for every one.
pub fn plan_project(spec: &ProjectSpec) -> Vec<PlannedImage> {
    let mut rng = SplitMix64::new(spec.seed ^ PLAN_SALT);
    let gold = spec
        .gold_classes
        .iter()
        .flat_map(|&class| std::iter::repeat_n((class, true), spec.gold_per_class));
    let unknown: Vec<(RoofClass, bool)> = (0..spec.unknown)
        .map(|_| (RoofClass::ALL[rng.below(RoofClass::ALL.len())], false))
        .collect();
    let mut items: Vec<(RoofClass, bool, u64)> = gold
        .chain(unknown)
        .map(|(class, gold)| (class, gold, rng.next_u64()))
        .collect();
    // Shuffled so that neither the order nor the numbering reveals which images are gold, or their class.
    for i in (1..items.len()).rev() {
        items.swap(i, rng.below(i + 1));
    }
    let width = items.len().to_string().len().max(4);
    items
        .into_iter()
        .enumerate()
        .map(|(i, (class, gold, seed))| PlannedImage {
            file: format!("img-{:0width$}.png", i + 1),
            class,
            gold,
            seed,
        })
        .collect()
}

/// Writes the project into `dir` (created if needed): the PNG tiles, `labels.csv` and `project.toml`.
///
/// Files of an earlier, larger project in the same directory are left in place; use a fresh directory.
pub fn write_project(dir: &Path, spec: &ProjectSpec) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    let images = plan_project(spec);
    let mut labels = String::from("file,label\n");
    for image in &images {
        fs::write(
            dir.join(&image.file),
            render_tile_sized(image.class, image.seed, spec.size),
        )?;
        if image.gold {
            // File names and label ids are plain ASCII without commas or quotes: no CSV quoting needed.
            let _ = writeln!(labels, "{},{}", image.file, image.class.id());
        }
    }
    fs::write(dir.join("labels.csv"), labels)?;
    fs::write(dir.join("project.toml"), project_toml())?;
    Ok(())
}

/// The project description, in the format `cobot-server` imports.
pub fn project_toml() -> String {
    let mut out = String::new();
    let _ = writeln!(out, "name = {}", toml_string("Orientation des toits"));
    let _ = writeln!(
        out,
        "question = {{ fr = {}, en = {} }}",
        toml_string("Dans quel sens est orienté ce toit\u{a0}?"),
        toml_string("Which way does this roof face?")
    );
    let _ = writeln!(
        out,
        "abstain = {}  # the label that means “can’t tell”",
        toml_string(RoofClass::Other.id())
    );
    for class in RoofClass::ALL {
        out.push_str("\n[[labels]]\n");
        let _ = writeln!(out, "id = {}", toml_string(class.id()));
        let _ = writeln!(out, "fr = {}", toml_string(class.label_fr()));
        let _ = writeln!(out, "en = {}", toml_string(class.label_en()));
    }
    out
}

/// A TOML basic string.
fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn small_spec() -> ProjectSpec {
        ProjectSpec {
            seed: 77,
            gold_per_class: 3,
            gold_classes: RoofClass::ALL.to_vec(),
            unknown: 10,
            size: 64,
        }
    }

    #[test]
    fn the_written_project_has_the_promised_files() {
        let dir = tempfile::tempdir().unwrap();
        let spec = small_spec();
        write_project(dir.path(), &spec).unwrap();

        let pngs: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .filter(|name| name.starts_with("img-"))
            .collect();
        assert_eq!(pngs.len(), 3 * 4 + 10);
        for name in &pngs {
            let bytes = fs::read(dir.path().join(name)).unwrap();
            let info = png::Decoder::new(io::Cursor::new(bytes))
                .read_info()
                .unwrap()
                .info()
                .clone();
            assert_eq!((info.width, info.height), (64, 64), "{name}");
        }

        let mut reader = csv::Reader::from_path(dir.path().join("labels.csv")).unwrap();
        assert_eq!(reader.headers().unwrap(), vec!["file", "label"]);
        let rows: BTreeMap<String, String> = reader
            .records()
            .map(|r| {
                let r = r.unwrap();
                (r[0].to_owned(), r[1].to_owned())
            })
            .collect();
        assert_eq!(rows.len(), 12, "only the gold images are listed");
        let truth: BTreeMap<String, PlannedImage> = plan_project(&spec)
            .into_iter()
            .map(|image| (image.file.clone(), image))
            .collect();
        for (file, label) in &rows {
            assert!(pngs.contains(file), "{file}");
            let image = &truth[file];
            assert!(image.gold);
            assert_eq!(label, image.class.id());
        }
        for class in RoofClass::ALL {
            assert_eq!(rows.values().filter(|l| *l == class.id()).count(), 3, "{class}");
        }
    }

    #[test]
    fn project_toml_has_the_question_and_four_labels() {
        let doc: toml::Table = toml::from_str(&project_toml()).unwrap();
        assert_eq!(doc["name"].as_str(), Some("Orientation des toits"));
        assert_eq!(
            doc["question"]["fr"].as_str(),
            Some("Dans quel sens est orienté ce toit\u{a0}?")
        );
        assert_eq!(
            doc["question"]["en"].as_str(),
            Some("Which way does this roof face?")
        );
        assert_eq!(doc["abstain"].as_str(), Some("other"));
        let labels = doc["labels"].as_array().unwrap();
        let ids: Vec<&str> = labels.iter().map(|l| l["id"].as_str().unwrap()).collect();
        assert_eq!(ids, ["north_south", "east_west", "flat", "other"]);
        assert_eq!(labels[1]["fr"].as_str(), Some("Pans à l’est et à l’ouest"));
        for label in labels {
            assert!(!label["fr"].as_str().unwrap().is_empty() && !label["en"].as_str().unwrap().is_empty());
        }
    }

    #[test]
    fn nothing_in_the_directory_names_the_class_of_an_unknown_image() {
        let dir = tempfile::tempdir().unwrap();
        let spec = small_spec();
        write_project(dir.path(), &spec).unwrap();
        let labels = fs::read_to_string(dir.path().join("labels.csv")).unwrap();
        for image in plan_project(&spec) {
            assert!(
                image.file.starts_with("img-") && !image.file.contains('_'),
                "{}",
                image.file
            );
            assert_eq!(labels.contains(&image.file), image.gold, "{}", image.file);
        }
        let names: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        for class in RoofClass::ALL {
            assert!(names.iter().all(|n| !n.contains(class.id())), "{names:?}");
        }
    }

    #[test]
    fn gold_classes_restrict_the_controls_to_one_class() {
        let spec = ProjectSpec {
            gold_classes: vec![RoofClass::Flat],
            gold_per_class: 5,
            unknown: 40,
            ..small_spec()
        };
        let plan = plan_project(&spec);
        assert_eq!(plan.len(), 45);
        assert!(plan.iter().filter(|i| i.gold).all(|i| i.class == RoofClass::Flat));
        assert_eq!(plan.iter().filter(|i| i.gold).count(), 5);
        // Unknowns are drawn from every class, so the demo has something to harvest.
        for class in RoofClass::ALL {
            assert!(plan.iter().any(|i| !i.gold && i.class == class), "{class}");
        }
    }

    #[test]
    fn the_plan_is_deterministic_and_depends_on_the_seed() {
        assert_eq!(plan_project(&small_spec()), plan_project(&small_spec()));
        assert_ne!(
            plan_project(&small_spec()),
            plan_project(&ProjectSpec {
                seed: 78,
                ..small_spec()
            })
        );
    }
}
