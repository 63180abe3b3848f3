//! The per-project consensus settings a project owner can tune, with defaults that need no tuning.

use serde::{Deserialize, Serialize};

/// Consensus settings of one project.
///
/// The defaults follow the design document: a label is decided at posterior ≥ 0.95 with at least three
/// agreeing sources, and an image that gathered ten votes without a decision is contested (the cap the
/// `OpenSolarMap` platform used).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Policy {
    /// Number of labels of the project (abstention is not a label).
    pub n_classes: u16,
    /// Posterior probability the top label must reach for the image to be decided.
    pub threshold: f64,
    /// Distinct sources that must have voted for the top label. Values below 2 are treated as 2:
    /// one source never decides a label alone.
    pub min_agreeing: u32,
    /// Votes (abstentions included) after which an undecided image is contested and no longer served.
    pub max_votes: u32,
    /// Accuracy assumed for every vote before batch EM has estimated the crowd
    /// (see [`crate::CrowdModel::uninformed`]).
    pub prior_accuracy: f64,
    /// Posterior a decided unknown needs to be promoted to a control.
    pub promote_threshold: f64,
    /// Distinct agreeing sources a decided unknown needs to be promoted to a control.
    pub promote_min_agreeing: u32,
    /// Share of humans failing a control above which the control is considered wrong or ambiguous.
    pub control_max_failure: f64,
    /// Answers to a control before a demotion can be considered.
    pub control_min_answers: u32,
}

impl Policy {
    /// Default settings for a project with `n_classes` labels.
    pub fn new(n_classes: u16) -> Self {
        Self {
            n_classes,
            ..Self::default()
        }
    }

    /// The number of agreeing sources actually required: never fewer than two.
    pub fn required_agreeing(&self) -> u32 {
        self.min_agreeing.max(2)
    }
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            n_classes: 2,
            threshold: 0.95,
            min_agreeing: 3,
            max_votes: 10,
            // Humans who passed a control are mostly right; 0.75 is cautious (Etalab measured 3.3 % wrong
            // votes on OpenSolarMap) and is replaced by the estimated crowd after the first batch run.
            prior_accuracy: 0.75,
            promote_threshold: 0.99,
            promote_min_agreeing: 4,
            control_max_failure: 0.35,
            control_min_answers: 8,
        }
    }
}
