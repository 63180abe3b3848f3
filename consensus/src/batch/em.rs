//! The expectation–maximisation core shared by every batch method: votes laid out for fast passes, the
//! M-step (class prior, crowd and per-source confusion), the E-step (posteriors), and the loop.

use std::collections::HashMap;

use super::{Dataset, EmOptions};
use crate::{Answer, Source};

/// How a source's answers are modelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Noise {
    /// A full confusion matrix per source (Dawid–Skene).
    Confusion,
    /// One accuracy per source, wrong answers spread uniformly ("one-coin").
    OneCoin,
}

/// Votes as flat arrays, grouped by item, with sources numbered in order of first appearance.
/// Slot `n_sources` stands for the crowd: anonymous votes use it.
pub(crate) struct Prepared {
    pub k: usize,
    pub n_items: usize,
    /// Per source slot: its pseudonym (the crowd slot has none).
    pub source_ids: Vec<u64>,
    /// `item_start[i]..item_start[i + 1]` indexes the votes of item `i` in `slot` and `answer`.
    pub item_start: Vec<usize>,
    pub slot: Vec<u32>,
    pub answer: Vec<u16>,
    /// Gold label per item, if any.
    pub gold: Vec<Option<u16>>,
}

impl Prepared {
    pub fn new(data: &Dataset, gold: &[(u32, crate::Label)]) -> Self {
        let k = usize::from(data.n_classes);
        let n_items = usize::try_from(data.n_items).unwrap_or(usize::MAX);
        let mut slots: HashMap<u64, u32> = HashMap::new();
        let mut source_ids = Vec::new();
        let mut counts = vec![0usize; n_items + 1];
        // Votes for items or labels out of range are not the caller's intent; they are skipped rather than
        // allowed to corrupt other items.
        let usable = |item: u32, answer: Answer| -> Option<(usize, u16)> {
            let label = answer.label()?;
            let item = usize::try_from(item).ok()?;
            (item < n_items && label.index() < k).then_some((item, label.0))
        };
        for vote in &data.votes {
            if let Some((item, _)) = usable(vote.item, vote.answer) {
                counts[item + 1] += 1;
                if let Source::Stable(id) = vote.source {
                    slots.entry(id).or_insert_with(|| {
                        source_ids.push(id);
                        u32::try_from(source_ids.len() - 1).unwrap_or(u32::MAX)
                    });
                }
            }
        }
        let crowd_slot = u32::try_from(source_ids.len()).unwrap_or(u32::MAX);
        for i in 0..n_items {
            counts[i + 1] += counts[i];
        }
        let item_start = counts.clone();
        let mut fill = counts;
        let total = item_start[n_items];
        let mut slot = vec![0u32; total];
        let mut answer = vec![0u16; total];
        for vote in &data.votes {
            if let Some((item, label)) = usable(vote.item, vote.answer) {
                let at = fill[item];
                fill[item] += 1;
                slot[at] = match vote.source {
                    Source::Stable(id) => slots[&id],
                    Source::Anonymous => crowd_slot,
                };
                answer[at] = label;
            }
        }
        let mut gold_of = vec![None; n_items];
        for &(item, label) in gold {
            if let Ok(i) = usize::try_from(item)
                && i < n_items
                && label.index() < k
            {
                gold_of[i] = Some(label.0);
            }
        }
        Self {
            k,
            n_items,
            source_ids,
            item_start,
            slot,
            answer,
            gold: gold_of,
        }
    }

    pub fn n_sources(&self) -> usize {
        self.source_ids.len()
    }

    pub fn votes_of(&self, item: usize) -> std::ops::Range<usize> {
        self.item_start[item]..self.item_start[item + 1]
    }

    fn informative(&self, item: usize) -> bool {
        self.gold[item].is_some() || !self.votes_of(item).is_empty()
    }

    /// Majority-vote posteriors (vote shares), gold clamped; items without votes get a uniform posterior.
    pub fn majority(&self) -> Vec<f64> {
        let k = self.k;
        let mut post = vec![0.0; self.n_items * k];
        for item in 0..self.n_items {
            let row = &mut post[item * k..(item + 1) * k];
            if let Some(g) = self.gold[item] {
                row[usize::from(g)] = 1.0;
                continue;
            }
            let votes = self.votes_of(item);
            if votes.is_empty() {
                row.fill(1.0 / lossy(k));
                continue;
            }
            let share = 1.0 / lossy(votes.len());
            for v in votes {
                row[usize::from(self.answer[v])] += share;
            }
        }
        post
    }
}

/// Parameters after an M-step. `confusion` holds `n_sources + 1` matrices (the last is the crowd's), each
/// `k × k` row-major, rows indexed by the true label.
pub(crate) struct Params {
    pub class_prior: Vec<f64>,
    pub confusion: Vec<f64>,
    /// The prior strength used for each true class, in pseudo-votes per row.
    pub prior_votes: Vec<f64>,
}

impl Params {
    pub fn matrix(&self, slot: usize, k: usize) -> &[f64] {
        &self.confusion[slot * k * k..(slot + 1) * k * k]
    }
}

/// How strong the prior pulling each source towards the crowd is, in pseudo-votes per confusion row.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Strength {
    Fixed(f64),
    /// One strength per true class, kept from an earlier estimate.
    PerClass(Vec<f64>),
    /// Estimated from the data (empirical Bayes), see [`estimate_strength`].
    Estimated,
}

/// The M-step: maximum a posteriori parameters given the item posteriors.
///
/// Class prior: Laplace (add-one) over items that carry information. Crowd matrix: all votes pooled, with
/// one pseudo-vote per cell. Source matrices: the source's own soft counts plus `s` pseudo-votes per row
/// spread like the crowd's row, i.e. a Dirichlet prior centred on the crowd. Sources with few votes
/// therefore look like the crowd; prolific ones are judged on their own record. One-coin sources get the
/// same treatment with a Beta prior on their accuracy.
pub(crate) fn m_step(prep: &Prepared, post: &[f64], noise: Noise, strength: Strength) -> Params {
    let k = prep.k;
    let kk = k * k;
    let n_slots = prep.n_sources() + 1;
    let crowd = prep.n_sources();
    let (prior, counts) = soft_counts(prep, post);

    // The crowd pools every vote, named or anonymous. Its prior leans to the diagonal (k pseudo-votes for
    // the right answer, one for each wrong one): people who passed a control answer right more often than
    // any given wrong way. Without that lean, a class with gold but (almost) no votes has a row the data
    // cannot pin, and EM can drift into explaining another class's votes with it (label switching).
    let mut crowd_counts: Vec<f64> = (0..kk)
        .map(|i| if i / k == i % k { lossy(k) } else { 1.0 })
        .collect();
    for slot in 0..n_slots {
        for (c, x) in crowd_counts.iter_mut().zip(&counts[slot * kk..(slot + 1) * kk]) {
            *c += x;
        }
    }
    let crowd_matrix = normalise_rows(&crowd_counts, k);
    let crowd_accuracy = diagonal_share(&crowd_counts, k);
    let named = &counts[..crowd * kk];
    // Per source and true class (Confusion) or per source (OneCoin): observed counts and the crowd's shares.
    let one_coin_counts: Vec<f64> = match noise {
        Noise::Confusion => Vec::new(),
        Noise::OneCoin => named
            .chunks(kk)
            .flat_map(|own| {
                let right: f64 = (0..k).map(|c| own[c * k + c]).sum();
                [right, own.iter().sum::<f64>() - right]
            })
            .collect(),
    };
    // One strength per true class for confusion rows: a rare class has few votes per source, and its row
    // deserves its own amount of pooling.
    let strengths: Vec<f64> = match (strength, noise) {
        (Strength::Fixed(s), _) => vec![s; k],
        (Strength::PerClass(s), _) => s,
        (Strength::Estimated, Noise::Confusion) => (0..k)
            .map(|truth| {
                let rows: Vec<f64> = named
                    .chunks(kk)
                    .flat_map(|own| own[truth * k..(truth + 1) * k].iter().copied())
                    .collect();
                estimate_strength(&rows, &crowd_matrix[truth * k..(truth + 1) * k], k)
            })
            .collect(),
        (Strength::Estimated, Noise::OneCoin) => {
            vec![estimate_strength(&one_coin_counts, &[crowd_accuracy, 1.0 - crowd_accuracy], 2); k]
        }
    };
    let mut confusion = vec![0.0; n_slots * kk];
    for slot in 0..n_slots {
        let own = &counts[slot * kk..(slot + 1) * kk];
        let out = &mut confusion[slot * kk..(slot + 1) * kk];
        if slot == crowd {
            match noise {
                Noise::Confusion => out.copy_from_slice(&crowd_matrix),
                Noise::OneCoin => fill_one_coin(out, k, crowd_accuracy),
            }
            continue;
        }
        match noise {
            Noise::Confusion => {
                for truth in 0..k {
                    let row = &own[truth * k..(truth + 1) * k];
                    let s = strengths[truth];
                    let mass: f64 = row.iter().sum::<f64>() + s;
                    if mass <= MIN_MASS {
                        // Without a prior, a source never seen on this class is described by the crowd.
                        out[truth * k..(truth + 1) * k]
                            .copy_from_slice(&crowd_matrix[truth * k..(truth + 1) * k]);
                        continue;
                    }
                    for answer in 0..k {
                        out[truth * k + answer] = (row[answer] + s * crowd_matrix[truth * k + answer]) / mass;
                    }
                }
            }
            Noise::OneCoin => {
                let right = one_coin_counts[2 * slot];
                let all = right + one_coin_counts[2 * slot + 1];
                let s = strengths[0];
                let accuracy = if all + s <= MIN_MASS {
                    crowd_accuracy
                } else {
                    (right + s * crowd_accuracy) / (all + s)
                };
                fill_one_coin(out, k, accuracy);
            }
        }
    }
    Params {
        class_prior: prior,
        confusion,
        prior_votes: strengths,
    }
}

/// The class prior (Laplace-smoothed) and, per source slot, the expected count of each (true label,
/// answer) pair under the posteriors.
fn soft_counts(prep: &Prepared, post: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let k = prep.k;
    let kk = k * k;
    let crowd = prep.n_sources();
    let mut prior = vec![1.0; k];
    let mut counts = vec![0.0; (crowd + 1) * kk];
    for item in 0..prep.n_items {
        if !prep.informative(item) {
            continue;
        }
        let row = &post[item * k..(item + 1) * k];
        for (p, r) in prior.iter_mut().zip(row) {
            *p += r;
        }
        for v in prep.votes_of(item) {
            let base = usize::try_from(prep.slot[v]).unwrap_or(crowd) * kk + usize::from(prep.answer[v]);
            for (truth, r) in row.iter().enumerate() {
                counts[base + truth * k] += r;
            }
        }
    }
    let total: f64 = prior.iter().sum();
    for p in &mut prior {
        *p /= total;
    }
    (prior, counts)
}

/// Below this many (soft) votes a confusion row is undefined without a prior.
const MIN_MASS: f64 = 1e-12;

/// Range searched for the prior strength, in pseudo-votes: from "each source on its own record" to
/// "every source is the average contributor".
const STRENGTH_RANGE: (f64, f64) = (1e-2, 1e3);

/// Empirical Bayes: the prior strength `s` that makes the sources' observed answer counts most probable
/// when each source's row is drawn from a Dirichlet with mean the crowd's row and total mass `s`
/// (Dirichlet-multinomial marginal likelihood, maximised over `ln s` by golden-section search).
///
/// A crowd of look-alike sources gets a strong prior (their few votes tell little that the crowd does not),
/// a crowd of very different sources a weak one (each is judged on its own record). `counts` holds rows of
/// `width` answer counts, `width` rows per source for a confusion model; `base` holds the matching crowd
/// rows, repeated per source.
fn estimate_strength(counts: &[f64], base: &[f64], width: usize) -> f64 {
    let rows: Vec<(&[f64], &[f64])> = counts
        .chunks(width)
        .zip(base.chunks(width).cycle())
        .filter(|(row, _)| row.iter().sum::<f64>() > 1e-9)
        .collect();
    if rows.is_empty() {
        return 1.0;
    }
    let log_likelihood = |log_s: f64| -> f64 {
        let s = log_s.exp();
        let ln_gamma_s = ln_gamma(s);
        rows.iter()
            .map(|(row, base)| {
                let n: f64 = row.iter().sum();
                // Cells with (almost) no votes contribute (almost) nothing: skipping them saves most of
                // the work on sparse sources.
                let cells: f64 = row
                    .iter()
                    .zip(*base)
                    .filter(|(x, _)| **x > 1e-6)
                    .map(|(x, b)| ln_gamma(s * b + x) - ln_gamma(s * b))
                    .sum();
                ln_gamma_s - ln_gamma(s + n) + cells
            })
            .sum()
    };
    let (mut lo, mut hi) = (STRENGTH_RANGE.0.ln(), STRENGTH_RANGE.1.ln());
    let ratio = (5f64.sqrt() - 1.0) / 2.0;
    let mut a = hi - ratio * (hi - lo);
    let mut b = lo + ratio * (hi - lo);
    let (mut fa, mut fb) = (log_likelihood(a), log_likelihood(b));
    // 20 steps narrow the range of ln s (11.5 wide) to about 1e-3: far finer than matters.
    for _ in 0..20 {
        if fa >= fb {
            hi = b;
            b = a;
            fb = fa;
            a = hi - ratio * (hi - lo);
            fa = log_likelihood(a);
        } else {
            lo = a;
            a = b;
            fa = fb;
            b = lo + ratio * (hi - lo);
            fb = log_likelihood(b);
        }
    }
    f64::midpoint(lo, hi).exp()
}

/// Natural logarithm of the gamma function for `x > 0` (Lanczos approximation, g = 7, 9 terms; relative
/// error below 1e-13), since `f64::ln_gamma` is not stable Rust.
pub(crate) fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const COEFFICIENTS: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection: Γ(x) Γ(1 − x) = π / sin(πx).
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut sum = COEFFICIENTS[0];
    for (i, c) in COEFFICIENTS.iter().enumerate().skip(1) {
        sum += c / (x + lossy(i));
    }
    let t = x + G + 0.5;
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + sum.ln()
}

/// The E-step: posteriors of every item given the parameters; gold items stay clamped. Returns the
/// log-likelihood of the votes.
pub(crate) fn e_step(prep: &Prepared, params: &Params, post: &mut [f64], uniform_prior: bool) -> f64 {
    let k = prep.k;
    let log_conf: Vec<f64> = params.confusion.iter().map(|p| p.max(1e-300).ln()).collect();
    let log_prior: Vec<f64> = if uniform_prior {
        vec![0.0; k]
    } else {
        params.class_prior.iter().map(|p| p.max(1e-300).ln()).collect()
    };
    let mut logs = vec![0.0; k];
    let mut log_likelihood = 0.0;
    let prior: Vec<f64> = if uniform_prior {
        vec![1.0 / lossy(k); k]
    } else {
        params.class_prior.clone()
    };
    for item in 0..prep.n_items {
        if prep.gold[item].is_some() {
            continue;
        }
        if prep.votes_of(item).is_empty() {
            // Nothing is known but the prior; this shortcut matters when most items have no vote yet.
            post[item * k..(item + 1) * k].copy_from_slice(&prior);
            continue;
        }
        logs.copy_from_slice(&log_prior);
        for v in prep.votes_of(item) {
            let base =
                usize::try_from(prep.slot[v]).unwrap_or(usize::MAX) * k * k + usize::from(prep.answer[v]);
            for (truth, l) in logs.iter_mut().enumerate() {
                *l += log_conf[base + truth * k];
            }
        }
        log_likelihood += crate::model::normalise_logs(&mut logs);
        post[item * k..(item + 1) * k].copy_from_slice(&logs);
    }
    log_likelihood
}

/// Runs EM from majority-vote posteriors. Returns the posteriors, the final parameters and the number of
/// iterations run.
///
/// An estimated prior strength is re-estimated at iterations 0, 1, 2, 4, 8… and kept in between: it moves
/// little once the posteriors settle, and the estimate costs more than an iteration.
pub(crate) fn run(
    prep: &Prepared,
    noise: Noise,
    opts: &EmOptions,
    uniform_prior: bool,
    start: Option<&super::Estimate>,
) -> (Vec<f64>, Params, u32) {
    let mut post = prep.majority();
    if let Some(start) = start.filter(|s| usize::from(s.n_classes) == prep.k) {
        let k = prep.k;
        // Items the earlier run knew start from its posteriors; new items from their vote shares.
        for (item, label) in start.labels.iter().enumerate().take(prep.n_items) {
            if label.is_some() && prep.gold[item].is_none() && !prep.votes_of(item).is_empty() {
                post[item * k..(item + 1) * k].copy_from_slice(&start.posteriors[item * k..(item + 1) * k]);
            }
        }
    }
    let mut iterations = 0u32;
    let mut previous = f64::NEG_INFINITY;
    let mut strength = opts.prior_votes.map_or(Strength::Estimated, Strength::Fixed);
    let mut params = m_step(prep, &post, noise, strength.clone());
    while iterations < opts.max_iterations {
        let log_likelihood = e_step(prep, &params, &mut post, uniform_prior);
        iterations += 1;
        if opts.prior_votes.is_none() {
            strength = if iterations.is_power_of_two() {
                Strength::Estimated
            } else {
                Strength::PerClass(params.prior_votes.clone())
            };
        }
        params = m_step(prep, &post, noise, strength.clone());
        if (log_likelihood - previous).abs() <= opts.tolerance * log_likelihood.abs() {
            break;
        }
        previous = log_likelihood;
    }
    (post, params, iterations)
}

fn normalise_rows(counts: &[f64], k: usize) -> Vec<f64> {
    let mut out = counts.to_vec();
    for row in out.chunks_mut(k) {
        let total: f64 = row.iter().sum();
        for x in row {
            *x /= total;
        }
    }
    out
}

fn diagonal_share(counts: &[f64], k: usize) -> f64 {
    let right: f64 = (0..k).map(|c| counts[c * k + c]).sum();
    right / counts.iter().sum::<f64>()
}

fn fill_one_coin(out: &mut [f64], k: usize, accuracy: f64) {
    let wrong = if k > 1 {
        (1.0 - accuracy) / lossy(k - 1)
    } else {
        0.0
    };
    for (cell, x) in out.iter_mut().enumerate() {
        *x = if cell / k == cell % k { accuracy } else { wrong };
    }
}

/// Counts as floats; counts here stay far below 2^52, where the conversion is exact.
#[allow(clippy::cast_precision_loss)] // exact for every count this crate handles (< 2^52)
pub(crate) fn lossy(n: usize) -> f64 {
    n as f64
}
