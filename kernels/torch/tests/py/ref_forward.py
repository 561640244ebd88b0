"""Reference logits from transformers for a batch of token ids.

    ref_forward.py --model DIR --input IN.json --out OUT.safetensors [--attn sdpa|eager]

IN.json holds rectangular lists: {"input_ids": [[int]], "attention_mask": [[0|1]],
"position_ids": [[int]]}; attention_mask and position_ids may be left out (transformers
then uses all ones and 0..s-1).  The model runs in float32, eval mode, without a KV
cache, and OUT.safetensors gets one tensor, "logits": float32 [batch, seq, vocab].
Logits at padded positions are whatever transformers computes there; compare only
positions whose attention_mask is 1.
"""

import argparse
import json
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import torch
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--input", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--attn", choices=["sdpa", "eager"], default="sdpa")
    args = ap.parse_args()

    with open(args.input) as f:
        spec = json.load(f)
    inputs = {"input_ids": torch.tensor(spec["input_ids"], dtype=torch.long)}
    for key in ("attention_mask", "position_ids"):
        if spec.get(key) is not None:
            inputs[key] = torch.tensor(spec[key], dtype=torch.long)

    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32, attn_implementation=args.attn)
    model.eval()
    with torch.no_grad():
        logits = model(**inputs, use_cache=False).logits
    save_file({"logits": logits.float().contiguous()}, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
