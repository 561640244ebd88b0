"""The PyTorch + transformers side of bench/train_cpt.sh: the same CPT steps as train.cpt.

Loads the model directory (weights and tokenizer) with transformers, tokenizes the PubMedQA
abstracts as train.cpt does (each document's ids, then the end-of-text id; rows of SEQ
tokens; the last row held out), trains STEPS steps of BATCH rows (AdamW with train.cpt's
defaults: betas 0.9/0.95, eps 1e-8, weight decay 0.1 off biases and norms; 2 warmup steps,
cosine decay; clipping at 1.0), saves the model, and prints one JSON line with the wall time of
the whole process from its start.
"""

import time

T0 = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer, get_cosine_schedule_with_warmup  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--steps", type=int, required=True)
    ap.add_argument("--batch", type=int, required=True)
    ap.add_argument("--seq", type=int, required=True)
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(a.model)
    model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.float32)
    model.train()
    with open(a.data) as f:
        docs = [" ".join(json.loads(line)["contexts"]) for line in f if line.strip()]
    ids = []
    for d in docs:
        ids.extend(tok(d, add_special_tokens=True)["input_ids"])
        ids.append(tok.eos_token_id)
    rows = len(ids) // a.seq
    data = torch.tensor(ids[: rows * a.seq]).view(rows, a.seq)[: rows - 1]
    decay = [p for n, p in model.named_parameters() if not (n.endswith(".bias") or n.endswith("norm.weight"))]
    rest = [p for n, p in model.named_parameters() if n.endswith(".bias") or n.endswith("norm.weight")]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}],
                            lr=3e-4, betas=(0.9, 0.95), eps=1e-8)
    sched = get_cosine_schedule_with_warmup(opt, 2, a.steps)
    g = torch.Generator().manual_seed(0)
    order = torch.randperm(len(data), generator=g)
    pos = 0
    for _ in range(a.steps):
        if pos + a.batch > len(order):
            order = torch.randperm(len(data), generator=g)
            pos = 0
        batch = data[order[pos : pos + a.batch]]
        pos += a.batch
        out = model(input_ids=batch, labels=batch)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
    model.save_pretrained(a.out)
    tok.save_pretrained(a.out)
    secs = time.perf_counter() - T0
    tokens = a.steps * a.batch * a.seq
    print(json.dumps({"impl": "pytorch", "mode": "train_cpt", "steps": a.steps, "tokens": tokens,
                      "seconds": secs, "tokens_per_s": tokens / secs}))


if __name__ == "__main__":
    main()
