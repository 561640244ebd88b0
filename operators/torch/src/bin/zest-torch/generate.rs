//! `zest model generate`: load a Hugging Face model directory and generate from one prompt.

use crate::args::GenerateArgs;

const OK: i32 = 0;
const FAILED: i32 = 1;

/// Runs `zest model generate`; returns the exit code.
pub fn run(args: &GenerateArgs) -> i32 {
    match generate(args) {
        Ok(()) => OK,
        Err(e) => {
            eprintln!("zest: {e}");
            FAILED
        }
    }
}

fn generate(args: &GenerateArgs) -> anyhow::Result<()> {
    use anyhow::Context;
    use zest_kernels::text_tokenizer::TextTokenizer;
    use zest_kernels_torch::{checkpoint, device, generate};

    let dev = device::parse_device(&args.device)?;
    let kind = args.dtype.as_deref().map(device::parse_kind).transpose()?;
    let tok = TextTokenizer::from_dir(&args.model)?;
    let model = checkpoint::load(&args.model, dev, kind)?;
    let prompt = if args.chat {
        let mut messages = Vec::new();
        if let Some(system) = &args.system {
            messages.push(serde_json::json!({"role": "system", "content": system}));
        }
        messages.push(serde_json::json!({"role": "user", "content": args.prompt}));
        tok.encode_chat(&messages, true)?
    } else {
        tok.encode(&args.prompt, true)?
    };
    if prompt.is_empty() {
        anyhow::bail!("the prompt encodes to no tokens");
    }
    let stop_token_ids = generate::eos_ids(&args.model, &model.config, &tok)
        .with_context(|| format!("{}", args.model.display()))?;
    let params = generate::SamplingParams {
        max_new_tokens: args.max_new_tokens,
        temperature: args.temperature,
        top_k: args.top_k,
        top_p: args.top_p,
        seed: args.seed,
        n: 1,
        stop_token_ids,
        stop_strings: args.stop.clone(),
    };
    let decode = |ids: &[i64]| tok.decode(ids, true).unwrap_or_default();
    let pad = model.config.pad_token_id.unwrap_or(0);
    let mut out = generate::generate(&model, &[prompt], &params, pad, Some(&decode))?;
    let sample = out.remove(0).remove(0);
    let mut text = tok.decode(&sample.token_ids, true)?;
    if let Some(at) = generate::stop_at(&text, &args.stop) {
        text.truncate(at);
    }
    if args.json {
        let v = serde_json::json!({
            "token_ids": sample.token_ids,
            "text": text,
            "finish_reason": sample.finish,
        });
        println!("{v}");
    } else {
        println!("{text}");
    }
    Ok(())
}
