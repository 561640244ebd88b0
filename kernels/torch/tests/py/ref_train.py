"""Reference training steps with PyTorch's own AdamW, LR schedule and gradient clipping.

    ref_train.py --model DIR --batch BATCH.json --out OUT.safetensors
                 [--steps 5] [--lr 1e-3] [--weight-decay 0.1] [--warmup 2]
                 [--schedule linear|cosine] [--max-grad-norm 1.0]

BATCH.json: {"input_ids", "attention_mask", "labels"} (rectangular, right-padded, labels -100
where not scored). Each step: the model's own causal-LM loss on the whole batch (float32,
no position ids), backward, `clip_grad_norm_`, `torch.optim.AdamW` with the Hugging Face
trainer's grouping (no weight decay on biases and norm weights), then the scheduler from
`transformers.get_{linear,cosine}_schedule_with_warmup` (total = --steps).

OUT.safetensors: every parameter after the last step (tied weights once), plus "losses"
(float64 [steps]: the loss before each update) and "grad_norms" (float64 [steps]).
"""

import argparse
import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
import transformers
from safetensors.torch import save_file


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--batch", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--schedule", choices=["linear", "cosine"], default="linear")
    ap.add_argument("--max-grad-norm", type=float, default=1.0)
    args = ap.parse_args()

    model = transformers.AutoModelForCausalLM.from_pretrained(
        args.model, dtype=torch.float32, attn_implementation="sdpa"
    )
    model.train()
    with open(args.batch) as f:
        batch = {k: torch.tensor(v) for k, v in json.load(f).items()}

    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if name.endswith(".bias") or name.endswith("norm.weight") else decay).append(p)
    opt = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": args.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=args.lr,
        betas=(0.9, 0.999),
        eps=1e-8,
    )
    make = {
        "linear": transformers.get_linear_schedule_with_warmup,
        "cosine": transformers.get_cosine_schedule_with_warmup,
    }[args.schedule]
    sched = make(opt, num_warmup_steps=args.warmup, num_training_steps=args.steps)

    losses, norms = [], []
    for _ in range(args.steps):
        out = model(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            labels=batch["labels"],
            use_cache=False,
        )
        opt.zero_grad()
        out.loss.backward()
        norms.append(float(torch.nn.utils.clip_grad_norm_(model.parameters(), args.max_grad_norm)))
        opt.step()
        sched.step()
        losses.append(float(out.loss))

    tensors = {n: p.detach().contiguous() for n, p in model.named_parameters()}
    tensors["losses"] = torch.tensor(losses, dtype=torch.float64)
    tensors["grad_norms"] = torch.tensor(norms, dtype=torch.float64)
    save_file(tensors, args.out)


if __name__ == "__main__":
    main()
