//! Labels from contributions: the edge between the server's ids and the consensus engine's indices.
//!
//! `consensus` knows class indices and item numbers only. This module maps a project's `LabelId`s to indices
//! (in the project's label order; the abstain label becomes `Answer::Abstain`), its images to items, and the
//! engine's decisions back to label ids. Citizens are anonymous: every contribution is its own source.

use std::collections::HashMap;

use consensus::batch::{self, Dataset, EmOptions, Vote};
use consensus::online::Decision;
use consensus::{Answer, Label, Policy, Source};
use protocol::LabelId;

use crate::model::{ImageId, ImageMeta, Project};
use crate::store::StoredContribution;

/// Where an image's label comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// The owner gave it (gold).
    Gold,
    /// The crowd decided it under the project's policy.
    Decided,
    /// The crowd cannot agree within the vote cap: set aside.
    Contested,
    /// Still collecting votes.
    Open,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Gold => "gold",
            Status::Decided => "decided",
            Status::Contested => "contested",
            Status::Open => "open",
        }
    }
}

/// The consensus about one image.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageLabel {
    pub image: ImageId,
    pub status: Status,
    /// The decided (or gold) label; for an open image, the current best guess is in `leading`.
    pub label: Option<LabelId>,
    /// The label with the highest posterior, decided or not, and that posterior.
    pub leading: Option<(LabelId, f64)>,
    pub votes: usize,
}

/// Runs the default batch method (Dawid–Skene, gold clamped) over every contribution of a project and
/// applies the project's decision policy. `images` must be the project's images.
pub fn estimate(
    project: &Project,
    images: &[ImageMeta],
    contributions: &[StoredContribution],
) -> Vec<ImageLabel> {
    let index: HashMap<&LabelId, Label> = project
        .labels
        .iter()
        .filter(|l| Some(&l.id) != project.abstain.as_ref())
        .enumerate()
        .map(|(i, l)| (&l.id, Label(u16::try_from(i).unwrap_or(u16::MAX))))
        .collect();
    let classes: Vec<&LabelId> = {
        let mut by_index: Vec<(&LabelId, Label)> = index.iter().map(|(id, l)| (*id, *l)).collect();
        by_index.sort_by_key(|(_, l)| *l);
        by_index.into_iter().map(|(id, _)| id).collect()
    };
    let items: HashMap<ImageId, u32> = images
        .iter()
        .enumerate()
        .map(|(i, m)| (m.id, u32::try_from(i).unwrap_or(u32::MAX)))
        .collect();
    let answer = |label: &LabelId| index.get(label).map_or(Answer::Abstain, |l| Answer::Label(*l));

    let votes: Vec<Vote> = contributions
        .iter()
        .filter_map(|c| {
            let item = *items.get(&c.contribution.image)?;
            Some(Vote {
                item,
                source: Source::Anonymous,
                answer: answer(&c.contribution.label),
            })
        })
        .collect();
    let mut counts = vec![0usize; images.len()];
    for v in &votes {
        counts[v.item as usize] += 1;
    }
    let gold: Vec<(u32, Label)> = images
        .iter()
        .enumerate()
        .filter_map(|(i, m)| {
            let label = index.get(m.known_label.as_ref()?)?;
            Some((u32::try_from(i).ok()?, *label))
        })
        .collect();
    let n_classes = u16::try_from(classes.len()).unwrap_or(u16::MAX);
    let data = Dataset {
        n_items: u32::try_from(images.len()).unwrap_or(u32::MAX),
        n_classes,
        votes,
    };
    let estimate = batch::dawid_skene(&data, &gold, &EmOptions::default());
    let decisions = estimate.decisions(&data, &gold, &Policy::new(n_classes));
    let name = |l: Label| classes.get(usize::from(l.0)).map(|id| (*id).clone());

    images
        .iter()
        .enumerate()
        .map(|(i, meta)| {
            let item = u32::try_from(i).unwrap_or(u32::MAX);
            let posterior = estimate.posterior(item);
            let leading = posterior
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .and_then(|(k, p)| Some((name(Label(u16::try_from(k).ok()?))?, *p)));
            let (status, label) = match (&meta.known_label, decisions[i]) {
                (Some(known), _) => (Status::Gold, Some(known.clone())),
                (None, Decision::Decided { label, .. }) => (Status::Decided, name(label)),
                (None, Decision::Contested) => (Status::Contested, None),
                (None, Decision::Open) => (Status::Open, None),
            };
            ImageLabel {
                image: meta.id,
                status,
                label,
                leading,
                votes: counts[i],
            }
        })
        .collect()
}
