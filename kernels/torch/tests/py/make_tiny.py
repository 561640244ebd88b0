"""Create a tiny, randomly initialised Llama or Qwen2 checkpoint for tests.

The directory written looks like a real Hugging Face checkpoint:
config.json, generation_config.json, model.safetensors, tokenizer.json and
tokenizer_config.json (with the real Llama 3 / Qwen2.5 chat template).

The tokenizer is a byte-level BPE (vocab 512 plus the special tokens, which
get the ids after the learned vocabulary, as in Llama 3 and Qwen2) trained on
a small embedded corpus.  Weights use std 0.2, and the RMSNorm weights and the
Qwen2 q/k/v biases are random too, so that every parameter matters.

    make_tiny.py --arch llama --out /tmp/tiny-llama [--seed 0] [--dtype float32]
                 [--jinja-file] [--legacy-config]
"""

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import torch
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import (
    AutoTokenizer,
    GenerationConfig,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2ForCausalLM,
)

TEMPLATES = Path(__file__).resolve().parent.parent / "fixtures" / "chat_templates"

CORPUS = [
    "The patient is a 54-year-old man with chest pain radiating to the left arm.",
    "Blood pressure was 142/91 mmHg and the heart rate was 88 beats per minute.",
    "She was started on metformin 500 mg twice daily for type 2 diabetes.",
    "An electrocardiogram showed ST elevation in leads II, III and aVF.",
    "Hemoglobin A1c improved from 9.1% to 6.8% after six months of therapy.",
    "The MRI revealed a 3 cm lesion in the right temporal lobe.",
    "Do not take ibuprofen with warfarin: the risk of bleeding increases.",
    "Symptoms include fever, cough, fatigue, and shortness of breath.",
    "Randomized controlled trials remain the gold standard for evidence.",
    "In 2019, 1,204 participants were enrolled across 37 hospitals.",
    "The odds ratio was 0.72 (95% CI 0.61-0.85; p < 0.001).",
    "Is the drug safe during pregnancy? The answer depends on the trimester.",
    "Antibiotics do not work against viral infections such as the common cold.",
    "Insulin resistance is common in patients with obesity and hypertension.",
    "The child received the measles, mumps and rubella vaccine at 12 months.",
    "Creatinine rose to 2.4 mg/dL, suggesting acute kidney injury.",
    "Please describe where it hurts and when the pain started.",
    "A quick brown fox jumps over the lazy dog near the river bank.",
    "Yesterday it rained all afternoon, so we stayed inside and read books.",
    "The museum opens at 9:30 a.m. and closes at 5 p.m. on weekdays.",
    "Could you summarize the main findings of this study in two sentences?",
    "Water boils at 100 degrees Celsius at sea level.",
    "Our team released version 3.2.1 of the software on March 14th.",
    "Learning a language takes patience, practice, and a lot of reading.",
    "She said: \"I'll be there by eight o'clock, I promise!\"",
    "Numbers like 7, 42, 365 and 2048 appear in many puzzles.",
    "The train from Paris to Berlin takes about eight hours.",
    "Good morning! How are you feeling today?",
    "Wash your hands for at least 20 seconds with soap and water.",
    "Chronic obstructive pulmonary disease (COPD) is a progressive lung disease.",
    "The tumor was resected and margins were negative for malignancy.",
    "Take one tablet by mouth every 8 hours as needed for pain.",
    "Sepsis requires early antibiotics, fluids, and close monitoring.",
    "Mean age was 61.3 +/- 9.7 years; 48% of patients were women.",
    "What are the side effects of statins? Muscle aches are the most common.",
    "The assistant answered the question clearly and politely.",
    "Thank you for your help; I really appreciate it.",
    "Cells divide by mitosis, producing two identical daughter cells.",
    "The sun rises in the east and sets in the west.",
    "Email me at doctor@example.com or call 555-0199 before Friday.",
    "患者有高血压和糖尿病病史。",
    "请问这种药每天吃几次？",
    "今天天气很好，我们去公园散步吧。",
]

SPECIALS = {
    "llama": ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"],
    "qwen2": ["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
}


# Pre-tokenizer split patterns of Llama 3 (digits in runs of up to 3) and Qwen2 (single digits).
SPLIT_PATTERN = {
    "llama": r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+""",
    "qwen2": r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+""",
}


def build_tokenizer(arch: str) -> PreTrainedTokenizerFast:
    # Same pipeline as the released tokenizer.json files: a regex split, then byte-level mapping
    # (Qwen2 also NFC-normalises).  transformers 5 rebuilds Qwen2's pipeline in code when loading,
    # so tokenizer.json has to match it for Rust (reading tokenizer.json) and Python to agree.
    tok = Tokenizer(models.BPE())
    if arch == "qwen2":
        tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(SPLIT_PATTERN[arch]), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=512, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tok.train_from_iterator(CORPUS * 4, trainer)
    # Added after training, so the special tokens get the ids after the BPE vocabulary.
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIALS[arch]])
    byte_level = processors.ByteLevel(trim_offsets=False)
    if arch == "llama":
        bos = "<|begin_of_text|>"
        bos_id = tok.token_to_id(bos)
        tok.post_processor = processors.Sequence(
            [
                byte_level,
                processors.TemplateProcessing(
                    single=f"{bos} $A", pair=f"{bos} $A {bos}:1 $B:1", special_tokens=[(bos, bos_id)]
                ),
            ]
        )
        names = dict(bos_token=bos, eos_token="<|eot_id|>", pad_token="<|end_of_text|>")
        template = (TEMPLATES / "llama3.jinja").read_text(encoding="utf-8")
    else:
        tok.post_processor = byte_level
        names = dict(eos_token="<|im_end|>", pad_token="<|endoftext|>")
        template = (TEMPLATES / "qwen2_5.jinja").read_text(encoding="utf-8")
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, chat_template=template, model_max_length=512, clean_up_tokenization_spaces=False, **names
    )


def build_config(arch: str, tokenizer: PreTrainedTokenizerFast):
    common = dict(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=160,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        initializer_range=0.2,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    if arch == "llama":
        # transformers 5 keeps rope_theta and the scaling together in `rope_parameters`.
        rope = dict(
            rope_type="llama3",
            rope_theta=500000.0,
            factor=8.0,
            low_freq_factor=1.0,
            high_freq_factor=4.0,
            original_max_position_embeddings=64,
        )
        return LlamaConfig(
            **common,
            rms_norm_eps=1e-5,
            rope_parameters=rope,
            tie_word_embeddings=False,
            bos_token_id=tokenizer.bos_token_id,
        )
    return Qwen2Config(
        **common,
        rms_norm_eps=1e-6,
        rope_parameters=dict(rope_type="default", rope_theta=1000000.0),
        tie_word_embeddings=True,
        use_sliding_window=False,
        bos_token_id=None,
    )


@torch.no_grad()
def randomize_extras(model) -> None:
    """Random RMSNorm weights, q/k/v biases and pad embedding, so none of them is a no-op."""
    for module in model.modules():
        if "RMSNorm" in type(module).__name__:
            module.weight.copy_(1.0 + 0.1 * torch.randn_like(module.weight))
        elif isinstance(module, torch.nn.Linear) and module.bias is not None:
            module.bias.normal_(0.0, 0.2)
    emb = model.get_input_embeddings()
    if emb.padding_idx is not None:
        # transformers zeroes the padding row; a random one makes pad positions visible to the tests.
        emb.weight[emb.padding_idx].normal_(0.0, model.config.initializer_range)


def legacy_config(path: Path) -> None:
    """Rewrite config.json in the transformers 4 / Hub layout: top-level rope_theta plus rope_scaling.

    Like the released Qwen2.5 configs, qwen2 then has no layer_types and a numeric sliding_window
    that use_sliding_window=false switches off.
    """
    cfg = json.loads(path.read_text())
    if cfg["model_type"] == "qwen2":
        cfg.pop("layer_types", None)
        cfg["sliding_window"] = cfg["sliding_window"] or 4096
    rope = dict(cfg.pop("rope_parameters"))
    cfg["rope_theta"] = rope.pop("rope_theta")
    cfg["rope_scaling"] = rope if rope.get("rope_type", "default") != "default" else None
    cfg["torch_dtype"] = cfg.pop("dtype", None)
    path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")


def check_tokenizer(out: Path) -> None:
    """transformers' AutoTokenizer must encode exactly like tokenizer.json read on its own."""
    raw = Tokenizer.from_file(str(out / "tokenizer.json"))
    auto = AutoTokenizer.from_pretrained(out)
    probes = CORPUS + ["  Hello\n\nworld 1234567 it's", "<|im_start|>user\nHi<|im_end|>", "<|eot_id|>x"]
    for text in probes:
        for special in (True, False):
            want = raw.encode(text, add_special_tokens=special).ids
            got = auto(text, add_special_tokens=special)["input_ids"]
            if want != got:
                raise SystemExit(f"tokenizer mismatch on {text!r}: tokenizer.json {want} vs AutoTokenizer {got}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", choices=["llama", "qwen2"], required=True)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default="float32")
    ap.add_argument(
        "--jinja-file",
        action="store_true",
        help="save the chat template as chat_template.jinja (newer layout) instead of inside tokenizer_config.json",
    )
    ap.add_argument(
        "--legacy-config",
        action="store_true",
        help="write config.json with top-level rope_theta/rope_scaling, as Llama 3.1 and Qwen2.5 on the Hub do",
    )
    args = ap.parse_args()

    torch.manual_seed(args.seed)
    tokenizer = build_tokenizer(args.arch)
    config = build_config(args.arch, tokenizer)
    model_cls = LlamaForCausalLM if args.arch == "llama" else Qwen2ForCausalLM
    model = model_cls(config)
    randomize_extras(model)
    model = model.to(getattr(torch, args.dtype)).eval()

    # Like the Instruct releases, generation stops at either end token.
    stop = ["<|end_of_text|>", "<|eot_id|>"] if args.arch == "llama" else ["<|im_end|>", "<|endoftext|>"]
    eos_ids = tokenizer.convert_tokens_to_ids(stop)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=eos_ids, pad_token_id=tokenizer.pad_token_id
    )

    args.out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(args.out, safe_serialization=True)
    tokenizer.save_pretrained(args.out, save_jinja_files=args.jinja_file)
    if args.legacy_config:
        legacy_config(args.out / "config.json")
    check_tokenizer(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
