//! Training losses, computed as TRL computes them: masked token cross-entropy (SFT and CPT),
//! per-sequence log-probabilities (summed or length-averaged), and the preference losses
//! SimPO, CPO, SimPO+CPO and DPO with TRL's metrics.
//!
//! Labels follow the Hugging Face convention: the label of position `t` is the token at `t`,
//! `-100` marks tokens that are not scored (prompt and padding), and logits at `t` predict
//! the token at `t + 1`.

use serde::Serialize;
use std::collections::BTreeMap;
use tch::{Kind, Reduction, Tensor};

/// The label value of tokens that are not scored.
pub const IGNORE: i64 = -100;

/// Log-probability of each next token and whether it is scored, both `[batch, seq - 1]`.
pub fn token_logps(logits: &Tensor, labels: &Tensor) -> (Tensor, Tensor) {
    let s = logits.size()[1];
    let logits = logits.narrow(1, 0, s - 1).to_kind(Kind::Float);
    let labels = labels.narrow(1, 1, s - 1).to_device(logits.device());
    let mask = labels.ne(IGNORE);
    let index = labels.masked_fill(&mask.logical_not(), 0).unsqueeze(-1);
    let picked = logits.gather(-1, &index, false).squeeze_dim(-1);
    let logps = picked - logits.logsumexp([-1], false);
    (logps, mask)
}

/// Per-sequence log-probability of the scored tokens, `[batch]`: their sum, or with `average`
/// their mean (SimPO's length normalisation).
pub fn sequence_logps(logits: &Tensor, labels: &Tensor, average: bool) -> Tensor {
    let (logps, mask) = token_logps(logits, labels);
    let mask = mask.to_kind(Kind::Float);
    let total = (logps * &mask).sum_dim_intlist(-1, false, Kind::Float);
    if average {
        total / mask.sum_dim_intlist(-1, false, Kind::Float)
    } else {
        total
    }
}

/// Masked next-token cross-entropy: the mean over scored tokens, or, given `num_items` (the
/// scored tokens of a whole accumulated batch), the sum divided by it, so that gradient
/// accumulation weighs every token alike (transformers' `num_items_in_batch`). As in
/// transformers, the labels are shifted rather than the logits, and the fused cross-entropy
/// kernel does the rest.
pub fn masked_cross_entropy(logits: &Tensor, labels: &Tensor, num_items: Option<i64>) -> Tensor {
    let (b, s, v) = logits.size3().expect("logits are [batch, seq, vocab]");
    let labels = labels.to_device(logits.device());
    let shifted = Tensor::cat(
        &[
            labels.narrow(1, 1, s - 1),
            labels.full_like(IGNORE).narrow(1, 0, 1),
        ],
        1,
    )
    .view([b * s]);
    let logits = logits.to_kind(Kind::Float).view([b * s, v]);
    match num_items {
        Some(n) => {
            logits.cross_entropy_loss::<Tensor>(&shifted, None, Reduction::Sum, IGNORE, 0.0)
                / n as f64
        }
        None => logits.cross_entropy_loss::<Tensor>(&shifted, None, Reduction::Mean, IGNORE, 0.0),
    }
}

/// Which preference loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PreferenceKind {
    /// CPO's sigmoid loss on summed log-probabilities (`loss_type="sigmoid"` in TRL's CPOTrainer).
    Cpo,
    /// SimPO: sigmoid loss on length-averaged log-probabilities with a target margin γ
    /// (`loss_type="simpo"`); with `cpo_alpha` > 0 it is SimPO+CPO.
    Simpo,
    /// DPO's sigmoid loss against a reference model.
    Dpo,
}

/// Preference-loss settings (TRL's names).
#[derive(Debug, Clone, Copy, Serialize, serde::Deserialize)]
pub struct PreferenceConfig {
    /// Which loss.
    pub kind: PreferenceKind,
    /// β: reward scale.
    pub beta: f64,
    /// γ: SimPO's target reward margin.
    pub simpo_gamma: f64,
    /// Weight of the NLL term on chosen responses (CPO); 0 disables it.
    pub cpo_alpha: f64,
    /// Conservative label smoothing.
    pub label_smoothing: f64,
}

impl PreferenceConfig {
    /// Whether sequence log-probabilities are length-averaged (SimPO) or summed.
    pub fn averages_logps(&self) -> bool {
        self.kind == PreferenceKind::Simpo
    }
}

/// The scalars TRL logs for a preference batch, under TRL's names.
pub type Metrics = BTreeMap<String, f64>;

/// The inputs of a preference loss for a batch of pairs.
pub struct PreferenceInputs<'a> {
    /// Policy log-probabilities of the chosen responses, `[batch]`.
    pub chosen_logps: &'a Tensor,
    /// Policy log-probabilities of the rejected responses, `[batch]`.
    pub rejected_logps: &'a Tensor,
    /// Reference log-probabilities (DPO only).
    pub reference: Option<(&'a Tensor, &'a Tensor)>,
    /// NLL of the chosen responses (CPO's term); ignored when `cpo_alpha` is 0.
    pub nll: Option<&'a Tensor>,
}

fn scalar(t: &Tensor) -> f64 {
    t.detach().to_kind(Kind::Double).double_value(&[])
}

/// The loss (a scalar tensor with gradients) and TRL's metrics for one batch of pairs.
pub fn preference_loss(
    config: &PreferenceConfig,
    inputs: &PreferenceInputs,
) -> crate::Result<(Tensor, Metrics)> {
    let (pc, pr) = (inputs.chosen_logps, inputs.rejected_logps);
    let beta = config.beta;
    let (logits, chosen_rewards, rejected_rewards) = match config.kind {
        PreferenceKind::Cpo => (pc - pr, pc.detach() * beta, pr.detach() * beta),
        PreferenceKind::Simpo => (
            pc - pr - config.simpo_gamma / beta,
            pc.detach() * beta,
            pr.detach() * beta,
        ),
        PreferenceKind::Dpo => {
            let (rc, rr) = inputs
                .reference
                .ok_or_else(|| crate::other("DPO needs reference log-probabilities"))?;
            (
                (pc - pr) - (rc - rr),
                (pc - rc).detach() * beta,
                (pr - rr).detach() * beta,
            )
        }
    };
    let ls = config.label_smoothing;
    let scaled = logits * beta;
    let losses = -scaled.log_sigmoid() * (1.0 - ls) - (-&scaled).log_sigmoid() * ls;
    let mut loss = losses.mean(Kind::Float);
    let mut metrics = Metrics::new();
    let nll = match (config.cpo_alpha, inputs.nll) {
        (a, Some(nll)) if a != 0.0 => {
            loss = &loss + nll * a;
            scalar(nll)
        }
        (a, None) if a != 0.0 => {
            return Err(crate::other(
                "cpo_alpha > 0 needs the chosen responses' NLL",
            ))
        }
        _ => 0.0,
    };
    let mean = |t: &Tensor| scalar(&t.to_kind(Kind::Float).mean(Kind::Float));
    metrics.insert("rewards/chosen".into(), mean(&chosen_rewards));
    metrics.insert("rewards/rejected".into(), mean(&rejected_rewards));
    metrics.insert(
        "rewards/accuracies".into(),
        mean(&chosen_rewards.gt_tensor(&rejected_rewards)),
    );
    metrics.insert(
        "rewards/margins".into(),
        mean(&(&chosen_rewards - &rejected_rewards)),
    );
    metrics.insert("logps/chosen".into(), mean(pc));
    metrics.insert("logps/rejected".into(), mean(pr));
    metrics.insert("nll_loss".into(), nll);
    Ok((loss, metrics))
}

/// Runs `model`'s forward pass over a batch of pairs the way TRL's CPOTrainer does (chosen and
/// rejected rows concatenated, right-padded to one width) and returns the loss and metrics,
/// `logits/chosen` and `logits/rejected` included. `ids`, `mask` and `labels` are
/// `[2 * pairs, seq]`, chosen rows first.
pub fn preference_batch(
    model: &crate::Transformer,
    config: &PreferenceConfig,
    ids: &Tensor,
    mask: &Tensor,
    labels: &Tensor,
    reference: Option<(&Tensor, &Tensor)>,
) -> crate::Result<(Tensor, Metrics)> {
    let (rows, seq) = ids.size2().map_err(crate::LlmError::Torch)?;
    let pairs = rows / 2;
    // TRL gives the model no position ids: positions count from the row's start (for
    // right-padded rows, the same as counting real tokens).
    let positions = crate::mask::positions_from_start(rows, seq, model.device());
    let attention = crate::mask::Attention::Padded(mask);
    let logits = model.forward(ids, &positions, &attention, None);
    let labels = labels.to_device(logits.device());
    let all = sequence_logps(&logits, &labels, config.averages_logps());
    let (pc, pr) = (all.narrow(0, 0, pairs), all.narrow(0, pairs, pairs));
    let nll = (config.cpo_alpha != 0.0).then(|| {
        masked_cross_entropy(
            &logits.narrow(0, 0, pairs),
            &labels.narrow(0, 0, pairs),
            None,
        )
    });
    let (loss, mut metrics) = preference_loss(
        config,
        &PreferenceInputs {
            chosen_logps: &pc,
            rejected_logps: &pr,
            reference,
            nll: nll.as_ref(),
        },
    )?;
    let lf = logits.detach().to_kind(Kind::Float);
    metrics.insert(
        "logits/chosen".into(),
        scalar(&lf.narrow(0, 0, pairs).mean(Kind::Float)),
    );
    metrics.insert(
        "logits/rejected".into(),
        scalar(&lf.narrow(0, pairs, pairs).mean(Kind::Float)),
    );
    Ok((loss, metrics))
}
