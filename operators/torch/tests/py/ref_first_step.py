"""TRL's first-step loss and metrics on a dataset it tokenizes itself.

    ref_first_step.py --model DIR --data RECORDS.jsonl --kind sft|simpo|cpo|simpo_cpo|dpo
                      [--beta B --gamma G --alpha A] [--reference DIR] --out OUT.json

The model directory holds the tokenizer and its chat template. All records form one batch,
so the result does not depend on the order a trainer would draw them in.

sft: records are Citrus `{input, target}`; they become conversational prompt/completion rows
(a user turn, an assistant turn) for an SFTTrainer with completion_only_loss; its collator
builds the batch and `compute_loss` gives the loss.

simpo, cpo, simpo_cpo: records are TRL preference pairs (`chosen`/`rejected` conversations,
implicit prompt); a CPOTrainer extracts the prompt, applies the chat template and tokenizes
(its own `tokenize_row`); its collator builds the batch and `get_batch_loss_metrics` gives the
loss and every metric.

dpo: the same pairs through a DPOTrainer (sigmoid loss) against the model in --reference; its
`_compute_loss` gives the loss and records the metrics.

OUT.json: {"loss": float, "metrics": {name: float}}.
"""

import argparse
import json
import os
import sys
import tempfile
import warnings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("WANDB_DISABLED", "true")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

import datasets
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import DPOConfig, DPOTrainer, SFTConfig, SFTTrainer
from trl.experimental.cpo import CPOConfig, CPOTrainer

COMMON = dict(report_to=[], use_cpu=True, bf16=False, fp16=False, seed=0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--kind", required=True, choices=["sft", "simpo", "cpo", "simpo_cpo", "dpo"])
    ap.add_argument("--beta", type=float, default=0.1)
    ap.add_argument("--gamma", type=float, default=0.5)
    ap.add_argument("--alpha", type=float, default=1.0)
    ap.add_argument("--reference")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    datasets.disable_progress_bars()
    warnings.filterwarnings("ignore")
    torch.manual_seed(0)
    with open(args.data) as f:
        records = [json.loads(line) for line in f if line.strip()]
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32, attn_implementation="sdpa").eval()
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    with tempfile.TemporaryDirectory() as tmp:
        if args.kind == "sft":
            rows = {
                "prompt": [[{"role": "user", "content": r["input"]}] for r in records],
                "completion": [[{"role": "assistant", "content": r["target"]}] for r in records],
            }
            conf = SFTConfig(output_dir=tmp, completion_only_loss=True, max_length=None,
                             per_device_train_batch_size=len(records), **COMMON)
            trainer = SFTTrainer(model=model, args=conf, train_dataset=datasets.Dataset.from_dict(rows),
                                 processing_class=tokenizer)
            prepared = trainer.train_dataset
            batch = trainer.data_collator([prepared[i] for i in range(len(prepared))])
            with torch.no_grad():
                loss = trainer.compute_loss(trainer.model, batch)
            out = {"loss": loss.item(), "metrics": {}}
        elif args.kind == "dpo":
            reference = AutoModelForCausalLM.from_pretrained(
                args.reference, dtype=torch.float32, attn_implementation="sdpa").eval()
            rows = {"chosen": [r["chosen"] for r in records], "rejected": [r["rejected"] for r in records]}
            conf = DPOConfig(output_dir=tmp, max_length=None, beta=args.beta, loss_type=["sigmoid"],
                             per_device_train_batch_size=len(records), **COMMON)
            trainer = DPOTrainer(model=model, ref_model=reference, args=conf,
                                 train_dataset=datasets.Dataset.from_dict(rows), processing_class=tokenizer)
            prepared = trainer.train_dataset
            batch = trainer.data_collator([prepared[i] for i in range(len(prepared))])
            batch = {k: v.to(trainer.accelerator.device) if hasattr(v, "to") else v for k, v in batch.items()}
            with torch.no_grad():
                loss = trainer._compute_loss(trainer.model, batch, return_outputs=False)
            recorded = trainer._metrics["eval"] or trainer._metrics["train"]
            keep = ("rewards/", "logps/")
            out = {"loss": loss.item(),
                   "metrics": {k: float(v[-1]) for k, v in recorded.items() if k.startswith(keep)}}
        else:
            options = {
                "simpo": dict(loss_type="simpo", cpo_alpha=0.0),
                "cpo": dict(loss_type="sigmoid", cpo_alpha=args.alpha),
                "simpo_cpo": dict(loss_type="simpo", cpo_alpha=args.alpha),
            }[args.kind]
            rows = {"chosen": [r["chosen"] for r in records], "rejected": [r["rejected"] for r in records]}
            conf = CPOConfig(output_dir=tmp, max_length=4096, beta=args.beta, simpo_gamma=args.gamma,
                             per_device_train_batch_size=len(records), remove_unused_columns=False,
                             **COMMON, **options)
            trainer = CPOTrainer(model=model, args=conf, train_dataset=datasets.Dataset.from_dict(rows),
                                 processing_class=tokenizer)
            prepared = trainer.train_dataset
            batch = trainer.data_collator([prepared[i] for i in range(len(prepared))])
            with torch.no_grad():
                loss, metrics = trainer.get_batch_loss_metrics(model, batch)
            out = {"loss": loss.item(), "metrics": {k: float(v) for k, v in metrics.items()}}
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
