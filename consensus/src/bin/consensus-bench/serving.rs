//! `consensus-bench --serving`: which unknown to serve next. A simulated crowd (fixed seeds) answers a
//! stream of challenges; each challenge serves one open image, chosen uniformly at random (what a server
//! without priorities does) or as the better of two random open images by `online::priority` ("power of
//! two choices", what the server does). Same crowd, same vote budget, same online rule: the table says how
//! many labels each strategy decides, how right they are, and how many images are left half-voted.

use std::fmt::Write as _;

use consensus::online::{self, Decision, ImageState};
use consensus::{Answer, CrowdModel, Label, Policy, Source};

const IMAGES: usize = 3000;
const CLASSES: u16 = 4;
/// Class frequencies of the simulated images (roof orientations are far from uniform).
const PRIOR: [f64; 4] = [0.4, 0.3, 0.2, 0.1];
/// Share of votes that are right; wrong votes go to another label uniformly.
const ACCURACY: f64 = 0.8;
/// Votes per image on average over the whole stream: too few to decide every image.
const BUDGET_PER_IMAGE: usize = 2;
const SEEDS: [u64; 5] = [1, 2, 3, 4, 5];

/// `SplitMix64`: small, fixed, well mixed.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn unit(&mut self) -> f64 {
        #[allow(clippy::cast_precision_loss)] // 53 bits, exact
        let x = (self.next_u64() >> 11) as f64;
        x / 2f64.powi(53)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next_u64() % u64::try_from(n).unwrap_or(u64::MAX)).unwrap_or(0)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Strategy {
    Uniform,
    PowerOfTwo,
}

#[derive(Default)]
struct Outcome {
    decided: usize,
    right: usize,
    contested: usize,
    /// Open images with at least one vote when the budget ran out: votes spent on no label yet.
    half_voted: usize,
}

fn simulate(seed: u64, strategy: Strategy) -> Outcome {
    let mut rng = Rng(seed);
    let truth: Vec<Label> = (0..IMAGES)
        .map(|_| {
            let u = rng.unit();
            let mut acc = 0.0;
            let mut class = CLASSES - 1;
            for (c, p) in PRIOR.iter().enumerate() {
                acc += p;
                if u < acc {
                    class = u16::try_from(c).unwrap_or(0);
                    break;
                }
            }
            Label(class)
        })
        .collect();
    let policy = Policy::new(CLASSES);
    let model = CrowdModel::uninformed(&policy);
    let mut states = vec![ImageState::default(); IMAGES];
    // Open images, for uniform sampling; an image leaves it once decided or contested.
    let mut open: Vec<usize> = (0..IMAGES).collect();
    let mut priorities =
        vec![online::priority(&ImageState::default(), &policy, &model).unwrap_or(0.0); IMAGES];
    for _ in 0..IMAGES * BUDGET_PER_IMAGE {
        if open.is_empty() {
            break;
        }
        let slot = match strategy {
            Strategy::Uniform => rng.below(open.len()),
            Strategy::PowerOfTwo => {
                let (a, b) = (rng.below(open.len()), rng.below(open.len()));
                if priorities[open[b]] > priorities[open[a]] {
                    b
                } else {
                    a
                }
            }
        };
        let image = open[slot];
        let answer = if rng.unit() < ACCURACY {
            truth[image]
        } else {
            let wrong = u16::try_from(rng.below(usize::from(CLASSES) - 1)).unwrap_or(0);
            Label(if wrong >= truth[image].0 { wrong + 1 } else { wrong })
        };
        let decision = online::record_vote(
            &mut states[image],
            Source::Anonymous,
            Answer::Label(answer),
            &policy,
            &model,
        );
        match online::priority(&states[image], &policy, &model) {
            Some(p) => priorities[image] = p,
            None => {
                open.swap_remove(slot);
            }
        }
        debug_assert!(decision == Decision::Open || !open.contains(&image));
    }
    let mut outcome = Outcome::default();
    for (state, truth) in states.iter().zip(&truth) {
        match state.decision() {
            Decision::Decided { label, .. } => {
                outcome.decided += 1;
                outcome.right += usize::from(label == *truth);
            }
            Decision::Contested => outcome.contested += 1,
            Decision::Open if !state.votes().is_empty() => outcome.half_voted += 1,
            Decision::Open => {}
        }
    }
    outcome
}

/// The table for BENCHMARKS.md.
pub fn markdown() -> String {
    let mut out = format!(
        "## Serving priority\n\n{IMAGES} unknown images (class shares {PRIOR:?}), a crowd {:.0} % right, \
         {} votes ({BUDGET_PER_IMAGE} per image), default policy and uninformed model; sums over seeds \
         {SEEDS:?}.\n\n| strategy | decided | right | votes per decided label | contested | half-voted at the end |\n\
         |---|---|---|---|---|---|\n",
        100.0 * ACCURACY,
        IMAGES * BUDGET_PER_IMAGE,
    );
    for (name, strategy) in [
        ("uniform among open images", Strategy::Uniform),
        (
            "**better of two by priority** (the server's)",
            Strategy::PowerOfTwo,
        ),
    ] {
        let mut total = Outcome::default();
        for seed in SEEDS {
            let o = simulate(seed, strategy);
            total.decided += o.decided;
            total.right += o.right;
            total.contested += o.contested;
            total.half_voted += o.half_voted;
        }
        let votes = IMAGES * BUDGET_PER_IMAGE * SEEDS.len();
        #[allow(clippy::cast_precision_loss)] // small counts
        let _ = writeln!(
            out,
            "| {name} | {} | {:.2}% | {:.2} | {} | {} |",
            total.decided,
            100.0 * total.right as f64 / total.decided.max(1) as f64,
            votes as f64 / total.decided.max(1) as f64,
            total.contested,
            total.half_voted,
        );
    }
    out
}
