"""Reference greedy generation from transformers.

    ref_generate.py --model DIR --prompts PROMPTS.json --out OUT.json
                    [--max-new-tokens 32] [--chat] [--no-batch]

PROMPTS.json is a list of strings.  Each prompt is encoded with the model's tokenizer
(add_special_tokens=True); with --chat it is first rendered as one user message through
the chat template (add_generation_prompt=True) and the text encoded with
add_special_tokens=False.  All prompts run as one left-padded batch, or one at a time
with --no-batch.  Decoding is greedy in float32 and stops at any eos id of the model's
generation_config.

OUT.json: {"prompt_ids": [[int]] (unpadded), "generated_ids": [[int]] (new tokens only,
cut after the first eos, which is kept), "texts": [str] (generated_ids decoded with
skip_special_tokens=True)}.
"""

import argparse
import json
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer


def encode(tokenizer, prompt: str, chat: bool) -> list[int]:
    if chat:
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
        )
        return tokenizer(text, add_special_tokens=False)["input_ids"]
    return tokenizer(prompt, add_special_tokens=True)["input_ids"]


def generate(model, tokenizer, prompts: list[list[int]], max_new_tokens: int) -> list[list[int]]:
    """Greedy-decode a left-padded batch; returns the new tokens of each row, padding included."""
    batch = tokenizer.pad({"input_ids": prompts}, padding=True, return_tensors="pt")
    with torch.no_grad():
        out = model.generate(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            do_sample=False,
            max_new_tokens=max_new_tokens,
            pad_token_id=tokenizer.pad_token_id,
        )
    return out[:, batch["input_ids"].shape[1] :].tolist()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--prompts", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--chat", action="store_true", help="render each prompt as a user turn of the chat template")
    ap.add_argument("--no-batch", action="store_true", help="generate each prompt on its own")
    args = ap.parse_args()

    with open(args.prompts) as f:
        prompts = json.load(f)
    tokenizer = AutoTokenizer.from_pretrained(args.model, padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32).eval()
    eos = model.generation_config.eos_token_id
    eos = set(eos if isinstance(eos, list) else [eos])

    prompt_ids = [encode(tokenizer, p, args.chat) for p in prompts]
    if args.no_batch:
        rows = [generate(model, tokenizer, [ids], args.max_new_tokens)[0] for ids in prompt_ids]
    else:
        rows = generate(model, tokenizer, prompt_ids, args.max_new_tokens)

    generated = []
    for row in rows:
        cut = next((i + 1 for i, t in enumerate(row) if t in eos), len(row))
        generated.append(row[:cut])
    result = {
        "prompt_ids": prompt_ids,
        "generated_ids": generated,
        "texts": [tokenizer.decode(ids, skip_special_tokens=True) for ids in generated],
    }
    with open(args.out, "w") as f:
        json.dump(result, f, ensure_ascii=False, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
