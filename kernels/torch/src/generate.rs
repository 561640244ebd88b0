//! Batched generation with a key/value cache: prompts are left-padded into one batch, each
//! may be sampled `n` times, and rows leave the batch as they finish (end-of-sequence token,
//! stop string or length), so rejection sampling pays only for the rows still running.

use crate::mask::{positions_from_mask, Attention};
use crate::model::{KvCache, Transformer};
use crate::{other, Result};
use tch::{Device, Kind, Tensor};
use zest_kernels::rng::Rng;

/// How to pick tokens and when to stop.
#[derive(Debug, Clone)]
pub struct SamplingParams {
    /// Most tokens generated per sample.
    pub max_new_tokens: usize,
    /// Softmax temperature; 0 means greedy (argmax).
    pub temperature: f64,
    /// Keep only the `k` most likely tokens (0: all).
    pub top_k: usize,
    /// Keep the smallest set of tokens whose probability reaches `top_p` (1.0: all).
    pub top_p: f64,
    /// Seed of the sampler; the same seed gives the same samples.
    pub seed: u64,
    /// Samples per prompt.
    pub n: usize,
    /// Tokens that end a sample (included in its output).
    pub stop_token_ids: Vec<i64>,
    /// Strings that end a sample once the decoded text contains one (the text is cut before it).
    pub stop_strings: Vec<String>,
}

impl Default for SamplingParams {
    fn default() -> Self {
        SamplingParams {
            max_new_tokens: 256,
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            seed: 0,
            n: 1,
            stop_token_ids: Vec::new(),
            stop_strings: Vec::new(),
        }
    }
}

/// Why a sample ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Finish {
    /// An end-of-sequence token.
    Eos,
    /// A stop string.
    Stop,
    /// `max_new_tokens` reached.
    Length,
}

/// One generated sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The generated tokens (not the prompt), the end-of-sequence token included.
    pub token_ids: Vec<i64>,
    /// Why it ended.
    pub finish: Finish,
}

/// Decodes token ids to text, for stop strings.
pub type Decode<'a> = &'a dyn Fn(&[i64]) -> String;

/// Called with (prompt index, sample index, token) as each token is picked.
pub type OnToken<'a> = &'a mut dyn FnMut(usize, usize, i64);

/// The seed of prompt `index` when a batch shares one seed.
pub fn prompt_seed(seed: u64, index: usize) -> u64 {
    let mut z = seed ^ (index as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Generates `params.n` samples for each prompt (token ids). `pad_id` fills the left padding.
/// `decode` is needed when `params.stop_strings` is not empty. Returns, per prompt, its samples.
/// Prompt `i` samples with the seed [`prompt_seed`]`(params.seed, i)`.
pub fn generate(
    model: &Transformer,
    prompts: &[Vec<i64>],
    params: &SamplingParams,
    pad_id: i64,
    decode: Option<Decode>,
) -> Result<Vec<Vec<Sample>>> {
    let seeds: Vec<u64> = (0..prompts.len())
        .map(|i| prompt_seed(params.seed, i))
        .collect();
    generate_seeded(model, prompts, &seeds, params, pad_id, decode, None)
}

/// [`generate`] with a seed per prompt (`params.seed` is not used) and a callback for each
/// token. Every sample draws from a generator of its own, seeded by its prompt's seed and its
/// index, so a prompt's samples do not depend on the other prompts of the batch.
pub fn generate_seeded(
    model: &Transformer,
    prompts: &[Vec<i64>],
    seeds: &[u64],
    params: &SamplingParams,
    pad_id: i64,
    decode: Option<Decode>,
    mut on_token: Option<OnToken>,
) -> Result<Vec<Vec<Sample>>> {
    if seeds.len() != prompts.len() {
        return Err(other(format!(
            "{} seeds for {} prompts",
            seeds.len(),
            prompts.len()
        )));
    }
    if prompts.iter().any(Vec::is_empty) {
        return Err(other("every prompt needs at least one token"));
    }
    if params.n == 0 {
        return Err(other("n (samples per prompt) must be at least 1"));
    }
    if !params.stop_strings.is_empty() && decode.is_none() {
        return Err(other("stop strings need a tokenizer to decode with"));
    }
    if params.temperature < 0.0 || !(params.top_p > 0.0 && params.top_p <= 1.0) {
        return Err(other(format!(
            "temperature must be >= 0 and top_p in (0, 1], got {} and {}",
            params.temperature, params.top_p
        )));
    }
    let _guard = tch::no_grad_guard();
    let device = model.device();
    let rows: Vec<&Vec<i64>> = prompts
        .iter()
        .flat_map(|p| std::iter::repeat_n(p, params.n))
        .collect();
    let width = rows.iter().map(|p| p.len()).max().unwrap_or(0);
    let mut ids = Vec::with_capacity(rows.len() * width);
    let mut mask = Vec::with_capacity(rows.len() * width);
    for p in &rows {
        let pad = width - p.len();
        ids.extend(std::iter::repeat_n(pad_id, pad).chain(p.iter().copied()));
        mask.extend(std::iter::repeat_n(0i64, pad).chain(std::iter::repeat_n(1, p.len())));
    }
    let r = rows.len() as i64;
    let ids = Tensor::from_slice(&ids)
        .view([r, width as i64])
        .to_device(device);
    let mut mask = Tensor::from_slice(&mask)
        .view([r, width as i64])
        .to_device(device);
    let padded = rows.iter().any(|p| p.len() != width);
    let positions = positions_from_mask(&mask);
    let mut next_pos = positions.narrow(1, width as i64 - 1, 1) + 1;
    let mut cache = KvCache::new();
    let attention = if padded {
        Attention::Padded(&mask)
    } else {
        Attention::Causal
    };
    // Only the last position's logits are needed: project just that row (a full
    // [rows, prompt, vocab] projection would cost gigabytes for long prompts and big vocabularies).
    let hidden = model.hidden_states(&ids, &positions, &attention, Some(&mut cache));
    let mut last = model
        .logits(&hidden.select(1, width as i64 - 1))
        .to_kind(Kind::Float);

    let mut rngs: Vec<Rng> = (0..rows.len())
        .map(|r| Rng::new(prompt_seed(seeds[r / params.n], r % params.n)))
        .collect();
    let mut out: Vec<Vec<i64>> = vec![Vec::new(); rows.len()];
    let mut finish: Vec<Option<Finish>> = vec![None; rows.len()];
    // Batch row -> output row, for the rows still running.
    let mut active: Vec<usize> = (0..rows.len()).collect();
    while !active.is_empty() {
        let uniforms: Vec<f32> = if params.temperature == 0.0 {
            vec![]
        } else {
            active
                .iter()
                .map(|&row| rngs[row].uniform() as f32)
                .collect()
        };
        let next = pick_with(&last, params, &uniforms);
        let next_vec: Vec<i64> =
            Vec::<i64>::try_from(&next.to_device(Device::Cpu)).map_err(|e| other(e.to_string()))?;
        let mut keep = Vec::with_capacity(active.len());
        for (b, &row) in active.iter().enumerate() {
            let tok = next_vec[b];
            out[row].push(tok);
            if let Some(f) = on_token.as_mut() {
                f(row / params.n, row % params.n, tok);
            }
            let done = if params.stop_token_ids.contains(&tok) {
                Some(Finish::Eos)
            } else if !params.stop_strings.is_empty()
                && stop_at(&decode.expect("checked")(&out[row]), &params.stop_strings).is_some()
            {
                Some(Finish::Stop)
            } else if out[row].len() >= params.max_new_tokens {
                Some(Finish::Length)
            } else {
                None
            };
            match done {
                Some(f) => finish[row] = Some(f),
                None => keep.push(b as i64),
            }
        }
        if keep.is_empty() {
            break;
        }
        let mut step_ids = next.view([-1, 1]);
        if keep.len() != active.len() {
            let index = Tensor::from_slice(&keep).to_device(device);
            cache.select_rows(&index);
            mask = mask.index_select(0, &index);
            next_pos = next_pos.index_select(0, &index);
            step_ids = step_ids.index_select(0, &index);
            active = keep.iter().map(|&b| active[b as usize]).collect();
        }
        mask = Tensor::cat(&[&mask, &mask.ones_like().narrow(1, 0, 1)], 1);
        let attention = if padded {
            Attention::Padded(&mask)
        } else {
            Attention::Causal
        };
        let logits = model.forward(&step_ids, &next_pos, &attention, Some(&mut cache));
        last = logits.select(1, 0).to_kind(Kind::Float);
        next_pos += 1;
    }
    let mut samples = out.into_iter().zip(finish).map(|(token_ids, f)| Sample {
        token_ids,
        finish: f.unwrap_or(Finish::Length),
    });
    Ok(prompts
        .iter()
        .map(|_| samples.by_ref().take(params.n).collect())
        .collect())
}

/// Where the first stop string starts in `text`, if any.
pub fn stop_at(text: &str, stops: &[String]) -> Option<usize> {
    stops.iter().filter_map(|s| text.find(s.as_str())).min()
}

/// Picks one token per row of `logits` (`[rows, vocab]`, float32), drawing from `rng` row by
/// row.
pub fn pick(logits: &Tensor, params: &SamplingParams, rng: &mut Rng) -> Tensor {
    let u: Vec<f32> = if params.temperature == 0.0 {
        vec![]
    } else {
        (0..logits.size()[0])
            .map(|_| rng.uniform() as f32)
            .collect()
    };
    pick_with(logits, params, &u)
}

/// Picks one token per row of `logits` with one uniform draw per row (unused when greedy).
pub fn pick_with(logits: &Tensor, params: &SamplingParams, uniforms: &[f32]) -> Tensor {
    if params.temperature == 0.0 {
        return logits.argmax(-1, false);
    }
    let probs = sampling_probs(logits, params);
    let rows = probs.size()[0];
    // Inverse transform sampling with seeded generators: the same draws on every device.
    let u = Tensor::from_slice(uniforms)
        .to_device(probs.device())
        .view([rows, 1]);
    let cdf = probs.cumsum(-1, Kind::Float);
    let total = cdf.narrow(1, cdf.size()[1] - 1, 1);
    let idx = (u * total).searchsorted(&cdf, false, true, "right", None::<Tensor>);
    idx.clamp_max(probs.size()[1] - 1).view([-1])
}

/// The distribution sampled from: temperature, then top-k, then top-p, as transformers'
/// logits warpers apply them.
pub fn sampling_probs(logits: &Tensor, params: &SamplingParams) -> Tensor {
    let mut scores = logits / params.temperature;
    let vocab = scores.size()[1];
    if params.top_k > 0 && (params.top_k as i64) < vocab {
        let (top, _) = scores.topk(params.top_k as i64, -1, true, true);
        let kth = top.narrow(1, params.top_k as i64 - 1, 1);
        scores = scores.masked_fill(&scores.lt_tensor(&kth), f64::NEG_INFINITY);
    }
    if params.top_p < 1.0 {
        let (sorted, order) = scores.sort(-1, false);
        let cum = sorted.softmax(-1, Kind::Float).cumsum(-1, Kind::Float);
        let remove = cum.le(1.0 - params.top_p);
        // Always keep the most likely token.
        let _ = remove.narrow(1, vocab - 1, 1).fill_(0);
        let remove = remove.scatter(1, &order, &remove.shallow_clone());
        scores = scores.masked_fill(&remove, f64::NEG_INFINITY);
    }
    scores.softmax(-1, Kind::Float)
}

/// The tokens that end generation for the model in `dir`: `eos_token_id` of
/// `generation_config.json` (a number or a list) and of `config.json`, and the tokenizer's
/// `eos_token`.
pub fn eos_ids(
    dir: &std::path::Path,
    config: &zest_kernels::model_config::ModelConfig,
    tokenizer: &zest_kernels::text_tokenizer::TextTokenizer,
) -> Result<Vec<i64>> {
    let mut ids = config.eos_token_ids.clone();
    let path = dir.join("generation_config.json");
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let v: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| other(format!("{}: {e}", path.display())))?;
            match &v["eos_token_id"] {
                serde_json::Value::Number(n) => ids.extend(n.as_i64()),
                serde_json::Value::Array(a) => ids.extend(a.iter().filter_map(|x| x.as_i64())),
                _ => {}
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(other(format!("{}: {e}", path.display()))),
    }
    ids.extend(tokenizer.special_id("eos_token"));
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}
