"""Reference preference (CPO / SimPO) and SFT losses computed by TRL's own trainers.

    ref_trl.py --model DIR --batch BATCH.json --out OUT.json

BATCH.json:
  {"pref": {"chosen_input_ids", "chosen_attention_mask", "chosen_labels",
            "rejected_input_ids", "rejected_attention_mask", "rejected_labels"},
   "sft":  {"input_ids", "attention_mask", "completion_mask"}}
Each "pref" group is rectangular and right-padded to its own length, labels -100 on the
prompt and on padding.  "sft" is rectangular; the tokens of a row are those with
attention_mask 1 (each row needs at least one completion token).

Preference: a CPOTrainer (trl.experimental.cpo) is built for each configuration below and
its `get_batch_loss_metrics(model, batch)` is called on the tensors as given.  That
function pads chosen and rejected to a common length (input ids with the tokenizer's pad
id, labels with -100, mask with 0), runs one forward over the concatenation (no
position_ids), and its "logits/*" metrics are means over every position of those padded
[n, len, vocab] logits, padding included.

SFT: an SFTTrainer with completion_only_loss=True is given the rows as a pre-tokenized
dataset ({"input_ids", "completion_mask"}); SFTTrainer._prepare_dataset turns
completion_mask into labels (-100 outside the completion), the trainer's
DataCollatorForLanguageModeling right-pads the batch, and SFTTrainer.compute_loss gives the
loss: the mean over completion tokens of -log p(token | prefix) (fused LM head, no
num_items_in_batch).

OUT.json: {"simpo": {...}, "cpo": {...}, "simpo_cpo": {...}, "sft": {"sft_loss": float}},
each preference entry holding "loss" plus TRL's metrics under TRL's names
("rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins",
"logps/chosen", "logps/rejected", "logits/chosen", "logits/rejected", "nll_loss").
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
from trl import SFTConfig, SFTTrainer
from trl.experimental.cpo import CPOConfig, CPOTrainer

PREF_CONFIGS = {
    "simpo": dict(loss_type="simpo", beta=2.0, simpo_gamma=0.5, cpo_alpha=0.0),
    "cpo": dict(loss_type="sigmoid", beta=0.1, cpo_alpha=1.0),
    "simpo_cpo": dict(loss_type="simpo", beta=2.0, simpo_gamma=0.5, cpo_alpha=0.5),
}

# Options shared by both trainers: float32 on the CPU, no logging, no dataset workers.
COMMON = dict(report_to=[], use_cpu=True, bf16=False, fp16=False, remove_unused_columns=False, seed=0)


def load(model_dir: str):
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="sdpa")
    return model.eval(), AutoTokenizer.from_pretrained(model_dir)


def preference(model_dir: str, pref: dict, tmp: str) -> dict:
    model, tokenizer = load(model_dir)
    batch = {k: torch.tensor(v, dtype=torch.long) for k, v in pref.items()}
    # The constructor insists on a train dataset; it is tokenized but never used.
    dummy = datasets.Dataset.from_dict({"prompt": ["Hello"], "chosen": [" yes"], "rejected": [" no"]})
    results = {}
    for name, options in PREF_CONFIGS.items():
        args = CPOConfig(output_dir=os.path.join(tmp, name), max_length=4096, **COMMON, **options)
        trainer = CPOTrainer(model=model, args=args, train_dataset=dummy, processing_class=tokenizer)
        with torch.no_grad():
            loss, metrics = trainer.get_batch_loss_metrics(model, batch)
        results[name] = {"loss": loss.item(), **metrics}
    return results


def sft(model_dir: str, rows: dict, tmp: str) -> dict:
    model, tokenizer = load(model_dir)
    examples = {"input_ids": [], "completion_mask": []}
    for ids, attn, comp in zip(rows["input_ids"], rows["attention_mask"], rows["completion_mask"]):
        keep = [i for i, a in enumerate(attn) if a]
        examples["input_ids"].append([ids[i] for i in keep])
        examples["completion_mask"].append([comp[i] for i in keep])
    dataset = datasets.Dataset.from_dict(examples)
    args = SFTConfig(output_dir=os.path.join(tmp, "sft"), completion_only_loss=True, max_length=None, **COMMON)
    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)
    prepared = trainer.train_dataset  # labels built from completion_mask by _prepare_dataset
    batch = trainer.data_collator([prepared[i] for i in range(len(prepared))])
    with torch.no_grad():
        loss = trainer.compute_loss(trainer.model, batch)
    return {"sft_loss": loss.item()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--batch", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    with open(args.batch) as f:
        spec = json.load(f)
    datasets.disable_progress_bars()
    warnings.filterwarnings("ignore")
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        out = preference(args.model, spec["pref"], tmp)
        out["sft"] = sft(args.model, spec["sft"], tmp)
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
