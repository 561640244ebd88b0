//! `zest model info` on model directories in the Hugging Face layout.

mod common;
use common::{text, Project};
use std::collections::BTreeMap;
use zest_kernels::safetensors::{write, Dtype};

fn f32s(n: usize) -> Vec<u8> {
    (0..n).flat_map(|i| (i as f32).to_le_bytes()).collect()
}

#[test]
fn summarises_a_sharded_llama_style_checkpoint() {
    let p = Project::new();
    p.write(
        "m/config.json",
        r#"{"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 8,
            "num_hidden_layers": 1, "num_attention_heads": 4, "num_key_value_heads": 2,
            "vocab_size": 16, "tie_word_embeddings": false,
            "rope_scaling": {"rope_type": "llama3", "factor": 8.0}}"#,
    );
    let dir = p.path().join("m");
    let meta = BTreeMap::from([("format".to_string(), "pt".to_string())]);
    let (emb, q) = (f32s(16 * 8), f32s(8 * 8));
    write(
        &dir.join("model-00001-of-00002.safetensors"),
        &[
            ("model.embed_tokens.weight", Dtype::F32, &[16, 8], &emb),
            (
                "model.layers.0.self_attn.q_proj.weight",
                Dtype::F32,
                &[8, 8],
                &q,
            ),
        ],
        &meta,
    )
    .unwrap();
    let head = vec![0u8; 16 * 8 * 2];
    write(
        &dir.join("model-00002-of-00002.safetensors"),
        &[("lm_head.weight", Dtype::BF16, &[16, 8], &head)],
        &meta,
    )
    .unwrap();
    p.write(
        "m/model.safetensors.index.json",
        r#"{"metadata": {}, "weight_map": {
            "model.embed_tokens.weight": "model-00001-of-00002.safetensors",
            "model.layers.0.self_attn.q_proj.weight": "model-00001-of-00002.safetensors",
            "lm_head.weight": "model-00002-of-00002.safetensors"}}"#,
    );
    p.write("m/tokenizer.json", "{}");
    p.write(
        "m/tokenizer_config.json",
        r#"{"chat_template": "{{ messages }}"}"#,
    );
    let o = p.zest(&["model", "info", "m", "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["architecture"], "LlamaForCausalLM");
    assert_eq!(v["parameters"], 16 * 8 + 8 * 8 + 16 * 8);
    assert_eq!(v["dtypes"]["F32"], 16 * 8 + 8 * 8);
    assert_eq!(v["dtypes"]["BF16"], 16 * 8);
    assert_eq!(v["kv_heads"], 2);
    assert_eq!(v["rope_scaling"], "llama3");
    assert_eq!(v["files"].as_array().unwrap().len(), 2);
    assert_eq!(v["tokenizer"], true);
    assert_eq!(v["chat_template"], true);
    let o = p.zest(&["model", "info", "m"]);
    assert!(
        text(&o).contains("parameters: 320 (BF16, F32) in 2 file(s)"),
        "{}",
        text(&o)
    );
}

#[test]
fn a_corrupt_checkpoint_is_named_with_the_reason() {
    let p = Project::new();
    p.write("m/config.json", "{}");
    p.write("m/model.safetensors", "not a checkpoint at all");
    let o = p.zest(&["model", "info", "m"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let t = text(&o);
    assert!(
        t.contains("model.safetensors: not a valid safetensors file"),
        "{t}"
    );
}
