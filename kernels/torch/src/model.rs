//! The transformer: token embedding, decoder layers (RMSNorm, grouped-query attention with
//! rotary embeddings through `scaled_dot_product_attention`, SwiGLU feed-forward), final norm and
//! output projection. Parameter names are Hugging Face's, so checkpoints map one to one.

use crate::mask::{self, Attention};
use crate::rope;
use tch::{Device, Kind, Tensor};
use zest_kernels::model_config::ModelConfig;

/// Keys and values of earlier positions, one pair per layer (`[batch, kv_heads, len, head_dim]`).
#[derive(Debug, Default)]
pub struct KvCache {
    layers: Vec<Option<(Tensor, Tensor)>>,
}

impl KvCache {
    /// An empty cache.
    pub fn new() -> KvCache {
        KvCache::default()
    }

    /// Positions cached so far.
    pub fn len(&self) -> i64 {
        match self.layers.first() {
            Some(Some((k, _))) => k.size()[2],
            _ => 0,
        }
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keeps only the batch rows in `index` (finished rows are dropped during generation).
    pub fn select_rows(&mut self, index: &Tensor) {
        for (k, v) in self.layers.iter_mut().flatten() {
            *k = k.index_select(0, index);
            *v = v.index_select(0, index);
        }
    }

    fn append(&mut self, layer: usize, k: Tensor, v: Tensor) -> (Tensor, Tensor) {
        if self.layers.len() <= layer {
            self.layers.resize_with(layer + 1, || None);
        }
        let (k, v) = match self.layers[layer].take() {
            Some((pk, pv)) => (Tensor::cat(&[pk, k], 2), Tensor::cat(&[pv, v], 2)),
            None => (k, v),
        };
        self.layers[layer] = Some((k.shallow_clone(), v.shallow_clone()));
        (k, v)
    }
}

struct Layer {
    input_norm: Tensor,
    q: (Tensor, Option<Tensor>),
    k: (Tensor, Option<Tensor>),
    v: (Tensor, Option<Tensor>),
    o: (Tensor, Option<Tensor>),
    post_norm: Tensor,
    gate: (Tensor, Option<Tensor>),
    up: (Tensor, Option<Tensor>),
    down: (Tensor, Option<Tensor>),
}

/// A Llama or Qwen2 decoder-only transformer.
pub struct Transformer {
    /// Its hyper-parameters.
    pub config: ModelConfig,
    params: Vec<(String, Tensor)>,
    embed: Tensor,
    layers: Vec<Layer>,
    norm: Tensor,
    lm_head: Tensor,
    inv_freq: Tensor,
    device: Device,
    kind: Kind,
}

fn linear(x: &Tensor, (w, b): &(Tensor, Option<Tensor>)) -> Tensor {
    x.linear(w, b.as_ref())
}

/// RMSNorm as transformers computes it: in float32, scaled by the weight in the input's type.
pub fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64) -> Tensor {
    let kind = x.kind();
    let h = x.to_kind(Kind::Float);
    let var = h.pow_tensor_scalar(2).mean_dim(-1, true, Kind::Float);
    let h = h * (var + eps).rsqrt();
    weight * h.to_kind(kind)
}

impl Transformer {
    /// A model with every parameter named and shaped by `config`, initialised as transformers
    /// initialises a new model: normal(0, initializer_range) for matrices, zeros for biases,
    /// ones for norms. Parameters are leaf tensors in `kind` on `device`.
    pub fn new(config: ModelConfig, device: Device, kind: Kind) -> Transformer {
        let _guard = tch::no_grad_guard();
        let std = config.initializer_range;
        let params = parameter_shapes(&config)
            .into_iter()
            .map(|(name, shape)| {
                let opts = (Kind::Float, device);
                let t = if name.ends_with("norm.weight") {
                    Tensor::ones(shape.as_slice(), opts)
                } else if name.ends_with(".bias") {
                    Tensor::zeros(shape.as_slice(), opts)
                } else {
                    Tensor::randn(shape.as_slice(), opts) * std
                };
                (name, t.to_kind(kind))
            })
            .collect();
        Transformer::from_params(config, params, device, kind)
            .expect("a freshly initialised model has every parameter")
    }

    /// Assembles a model from named parameters (Hugging Face names). Every parameter the
    /// configuration needs must be present with the right shape; `lm_head.weight` is ignored
    /// when embeddings are tied.
    pub fn from_params(
        config: ModelConfig,
        params: Vec<(String, Tensor)>,
        device: Device,
        kind: Kind,
    ) -> crate::Result<Transformer> {
        let c = &config;
        let mut by_name: std::collections::HashMap<String, Tensor> = params
            .into_iter()
            .filter(|(n, _)| !(c.tie_word_embeddings && n == "lm_head.weight"))
            .collect();
        let mut order = Vec::new();
        let mut take = |name: String, shape: &[i64]| -> crate::Result<Tensor> {
            let t = by_name
                .remove(&name)
                .ok_or_else(|| crate::other(format!("checkpoint has no tensor `{name}`")))?;
            if t.size() != shape {
                return Err(crate::other(format!(
                    "tensor `{name}` has shape {:?}, the configuration needs {shape:?}",
                    t.size()
                )));
            }
            order.push((name, t.shallow_clone()));
            Ok(t)
        };
        let (h, hd, inter) = (c.hidden_size, c.head_dim, c.intermediate_size);
        let q_out = c.num_attention_heads * hd;
        let kv_out = c.num_key_value_heads * hd;
        let embed = take("model.embed_tokens.weight".into(), &[c.vocab_size, h])?;
        let mut layers = Vec::new();
        for i in 0..c.num_hidden_layers {
            let p = format!("model.layers.{i}");
            let mut proj = |name: &str, out: i64, inp: i64, bias: bool| -> crate::Result<_> {
                let w = take(format!("{p}.{name}.weight"), &[out, inp])?;
                let b = if bias {
                    Some(take(format!("{p}.{name}.bias"), &[out])?)
                } else {
                    None
                };
                Ok((w, b))
            };
            let q = proj("self_attn.q_proj", q_out, h, c.qkv_bias())?;
            let k = proj("self_attn.k_proj", kv_out, h, c.qkv_bias())?;
            let v = proj("self_attn.v_proj", kv_out, h, c.qkv_bias())?;
            let o = proj("self_attn.o_proj", h, q_out, c.o_bias())?;
            let gate = proj("mlp.gate_proj", inter, h, c.mlp_bias)?;
            let up = proj("mlp.up_proj", inter, h, c.mlp_bias)?;
            let down = proj("mlp.down_proj", h, inter, c.mlp_bias)?;
            let input_norm = take(format!("{p}.input_layernorm.weight"), &[h])?;
            let post_norm = take(format!("{p}.post_attention_layernorm.weight"), &[h])?;
            layers.push(Layer {
                input_norm,
                q,
                k,
                v,
                o,
                post_norm,
                gate,
                up,
                down,
            });
        }
        let norm = take("model.norm.weight".into(), &[h])?;
        let lm_head = if c.tie_word_embeddings {
            embed.shallow_clone()
        } else {
            take("lm_head.weight".into(), &[c.vocab_size, h])?
        };
        if let Some(extra) = by_name.keys().find(|n| !n.ends_with("rotary_emb.inv_freq")) {
            return Err(crate::other(format!(
                "checkpoint has tensor `{extra}`, which a {:?} model does not use",
                c.family
            )));
        }
        Ok(Transformer {
            inv_freq: rope::inv_freq_tensor(c, device),
            config,
            params: order,
            embed,
            layers,
            norm,
            lm_head,
            device,
            kind,
        })
    }

    /// Parameters by Hugging Face name, in a fixed order (shared with the model: changing one
    /// in place changes the model).
    pub fn parameters(&self) -> &[(String, Tensor)] {
        &self.params
    }

    /// The device the parameters live on.
    pub fn device(&self) -> Device {
        self.device
    }

    /// The parameters' element type.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Marks every parameter as trainable (or not).
    pub fn set_trainable(&self, on: bool) {
        for (_, p) in &self.params {
            let _ = p.set_requires_grad(on);
        }
    }

    /// Logits (`[batch, seq, vocab]`, in the model's type) for `input_ids` (`[batch, seq]`)
    /// at `positions` (`[batch, seq]`). With a `cache`, earlier keys and values are read from it
    /// and the new ones appended.
    pub fn forward(
        &self,
        input_ids: &Tensor,
        positions: &Tensor,
        attention: &Attention,
        cache: Option<&mut KvCache>,
    ) -> Tensor {
        self.logits(&self.hidden_states(input_ids, positions, attention, cache))
    }

    /// The final hidden states (after the last norm), `[batch, seq, hidden]`.
    pub fn hidden_states(
        &self,
        input_ids: &Tensor,
        positions: &Tensor,
        attention: &Attention,
        mut cache: Option<&mut KvCache>,
    ) -> Tensor {
        let c = &self.config;
        let (b, s) = input_ids.size2().expect("input_ids is [batch, seq]");
        let past = cache.as_ref().map_or(0, |c| c.len());
        let input_ids = input_ids.to_device(self.device);
        let positions = positions.to_device(self.device);
        let (cos, sin) = rope::cos_sin(&self.inv_freq, &positions, self.kind);
        let mask = mask::build(attention, s, past, self.device);
        let is_causal = mask.is_none() && s > 1 && past == 0;
        let (nh, nkv, hd) = (c.num_attention_heads, c.num_key_value_heads, c.head_dim);
        let groups = nh / nkv;
        let mut x = Tensor::embedding(&self.embed, &input_ids, -1, false, false);
        for (i, layer) in self.layers.iter().enumerate() {
            let h = rms_norm(&x, &layer.input_norm, c.rms_norm_eps);
            let q = linear(&h, &layer.q).view([b, s, nh, hd]).transpose(1, 2);
            let k = linear(&h, &layer.k).view([b, s, nkv, hd]).transpose(1, 2);
            let v = linear(&h, &layer.v).view([b, s, nkv, hd]).transpose(1, 2);
            let q = rope::apply(&q, &cos, &sin);
            let k = rope::apply(&k, &cos, &sin);
            let (k, v) = match cache.as_deref_mut() {
                Some(cache) => cache.append(i, k, v),
                None => (k, v),
            };
            // Without a mask the fused kernels take grouped keys and values as they are; with
            // one they would fall back to the slow path, so the heads are repeated instead.
            let gqa = mask.is_none() && groups > 1;
            let (k, v) = if gqa {
                (k, v)
            } else {
                (repeat_kv(&k, groups), repeat_kv(&v, groups))
            };
            let a = Tensor::scaled_dot_product_attention(
                &q,
                &k,
                &v,
                mask.as_ref(),
                0.0,
                is_causal,
                None,
                gqa,
            );
            let a = a.transpose(1, 2).reshape([b, s, nh * hd]);
            // Not `+=`: an in-place add would overwrite a tensor autograd saved for backward.
            x = &x + linear(&a, &layer.o);
            let h = rms_norm(&x, &layer.post_norm, c.rms_norm_eps);
            let m = linear(&h, &layer.gate).silu() * linear(&h, &layer.up);
            x = &x + linear(&m, &layer.down);
        }
        rms_norm(&x, &self.norm, c.rms_norm_eps)
    }

    /// Projects hidden states to logits.
    pub fn logits(&self, hidden: &Tensor) -> Tensor {
        hidden.linear::<Tensor>(&self.lm_head, None)
    }
}

pub use zest_kernels::model_config::parameter_shapes;

/// Repeats each key/value head `groups` times, so that grouped-query attention runs through the
/// same kernel as multi-head attention.
fn repeat_kv(x: &Tensor, groups: i64) -> Tensor {
    if groups == 1 {
        return x.shallow_clone();
    }
    let (b, h, s, d) = x.size4().expect("[batch, heads, seq, dim]");
    x.unsqueeze(2)
        .expand([b, h, groups, s, d], false)
        .reshape([b, h * groups, s, d])
}
