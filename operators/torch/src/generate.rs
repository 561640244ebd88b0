//! The `local` generation backend ([`zest_operators::generate::backend`]) on the kernels:
//! chat requests rendered with the model's chat template and generated in batches, exactly as
//! `zest model serve` generates them (the same template, seeds, stop handling and end of
//! sequence), so a DAG gets the same responses from its model artifact as from the model
//! served over HTTP.

use crate::init::kind_of;
use crate::model_dir;
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::path::Path;
use std::sync::Mutex;
use zest_kernels::text_tokenizer::TextTokenizer;
use zest_kernels_torch::generate::{self, SamplingParams};
use zest_kernels_torch::{checkpoint, device, Transformer};
use zest_operators::generate::backend::{ChatRequest, Generator, RoleConfig};

/// A model, loaded for generation.
struct Local {
    model: Mutex<Transformer>,
    tok: TextTokenizer,
    eos: Vec<i64>,
    pad: i64,
    max_len: usize,
    batch_size: usize,
    identity: Value,
}

/// Opens the model in `dir` (artifact `digest`) for role `role`.
pub fn open(dir: &Path, digest: &str, role: &RoleConfig) -> Result<Box<dyn Generator>> {
    let dev = device::parse_device(&role.device)?;
    let tok = model_dir::load_tokenizer(dir, &format!("model {digest}"))?;
    if !tok.has_chat_template() {
        bail!("the model {digest} has no chat template, which the generating operators need");
    }
    let model = checkpoint::load(dir, dev, Some(kind_of(role.dtype)))
        .with_context(|| format!("cannot load the model {digest}"))?;
    model_dir::check_vocabulary(&tok, &model, &format!("model {digest}"))?;
    let eos = generate::eos_ids(dir, &model.config, &tok)?;
    let pad = model.config.pad_token_id.unwrap_or(0);
    let max_len = model.config.max_position_embeddings as usize;
    let identity = json!({
        "kind": "local",
        "model": digest,
        "dtype": role.dtype,
        "device": format!("{dev:?}"),
        // The generation code: a change to it must not reuse old responses.
        "code": zest_operators::code_fingerprint::of_type("zest_operators::generate::backend"),
    });
    Ok(Box::new(Local {
        model: Mutex::new(model),
        tok,
        eos,
        pad,
        max_len,
        batch_size: role.batch_size.max(1),
        identity,
    }))
}

fn params_key(r: &ChatRequest) -> String {
    format!(
        "{}|{}|{}|{}|{:?}",
        r.max_tokens, r.temperature, r.top_p, r.n, r.stop
    )
}

impl Generator for Local {
    fn identity(&self) -> Value {
        self.identity.clone()
    }

    fn complete(
        &self,
        requests: &[ChatRequest],
        done: &mut dyn FnMut(usize, Vec<String>) -> Result<()>,
    ) -> Result<()> {
        let mut encoded = Vec::with_capacity(requests.len());
        for (i, r) in requests.iter().enumerate() {
            let messages: Vec<Value> = r.messages.iter().map(|m| json!(m)).collect();
            let ids = self
                .tok
                .encode_chat(&messages, true)
                .with_context(|| format!("request {}: cannot apply the chat template", i + 1))?;
            if ids.len() + r.max_tokens > self.max_len {
                bail!(
                    "request {}: the prompt's {} tokens and max_tokens {} exceed the model's \
                     context of {} tokens",
                    i + 1,
                    ids.len(),
                    r.max_tokens,
                    self.max_len
                );
            }
            encoded.push(ids);
        }
        // Requests with the same settings, in order, in batches of at most `batch_size`
        // sequences (a request with more samples than that is a batch of its own).
        let mut groups: Vec<(String, Vec<usize>)> = vec![];
        for (i, r) in requests.iter().enumerate() {
            let k = params_key(r);
            match groups.iter_mut().find(|g| g.0 == k) {
                Some(g) => g.1.push(i),
                None => groups.push((k, vec![i])),
            }
        }
        let model = self.model.lock().unwrap_or_else(|e| e.into_inner());
        let decode = |ids: &[i64]| self.tok.decode(ids, true).unwrap_or_default();
        for (_, members) in groups {
            let r0 = &requests[members[0]];
            let per = r0.n.max(1);
            let take = (self.batch_size / per).max(1);
            for chunk in members.chunks(take) {
                let prompts: Vec<Vec<i64>> = chunk.iter().map(|&i| encoded[i].clone()).collect();
                let seeds: Vec<u64> = chunk
                    .iter()
                    .map(|&i| generate::prompt_seed(requests[i].seed, 0))
                    .collect();
                let params = SamplingParams {
                    max_new_tokens: r0.max_tokens,
                    temperature: r0.temperature,
                    top_k: 0,
                    top_p: r0.top_p,
                    seed: 0,
                    n: r0.n,
                    stop_token_ids: self.eos.clone(),
                    stop_strings: r0.stop.clone(),
                };
                let decode_opt: Option<generate::Decode> = if params.stop_strings.is_empty() {
                    None
                } else {
                    Some(&decode)
                };
                let samples = generate::generate_seeded(
                    &model, &prompts, &seeds, &params, self.pad, decode_opt, None,
                )?;
                for (&i, s) in chunk.iter().zip(samples) {
                    let texts = s
                        .iter()
                        .map(|x| {
                            let mut t = self.tok.decode(&x.token_ids, true).unwrap_or_default();
                            if let Some(at) = generate::stop_at(&t, &params.stop_strings) {
                                t.truncate(at);
                            }
                            t
                        })
                        .collect();
                    done(i, texts)?;
                }
            }
        }
        Ok(())
    }
}
