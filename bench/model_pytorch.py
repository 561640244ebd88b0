"""Training-step and generation throughput of a ~10M-parameter Llama on PyTorch + transformers:
the peer of `kernels/examples/model_bench.rs` (same model, batch, sequence length, optimizer,
thread count). Run by bench/model.sh.

    model_pytorch.py train|generate THREADS [STEPS]

Prints one JSON line: {"impl": "pytorch", "mode", "threads", "tokens", "seconds", "tokens_per_s"}.
"""

import json
import sys
import time

import torch
import transformers

BATCH, SEQ, PROMPT, NEW_TOKENS, GEN_BATCH = 8, 256, 16, 128, 4


def model() -> transformers.LlamaForCausalLM:
    config = transformers.LlamaConfig(
        vocab_size=8192, hidden_size=256, intermediate_size=688, num_hidden_layers=8,
        num_attention_heads=8, num_key_value_heads=4, max_position_embeddings=1024,
        rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False,
        bos_token_id=None, eos_token_id=None, pad_token_id=0,
    )
    return transformers.LlamaForCausalLM(config).to(torch.float32)


def train(m, steps: int):
    m.train()
    decay = [p for n, p in m.named_parameters() if not (n.endswith(".bias") or n.endswith("norm.weight"))]
    no_decay = [p for n, p in m.named_parameters() if n.endswith(".bias") or n.endswith("norm.weight")]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}], lr=1e-4
    )
    ids = torch.randint(0, 8192, (BATCH, SEQ))

    def step():
        opt.zero_grad()
        loss = m(input_ids=ids, labels=ids, use_cache=False).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        opt.step()

    for _ in range(2):
        step()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    return BATCH * SEQ * steps, time.perf_counter() - t


def generate(m, rounds: int):
    m.eval()
    ids = torch.randint(1, 8192, (GEN_BATCH, PROMPT))
    mask = torch.ones_like(ids)
    kw = dict(max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS, do_sample=False, pad_token_id=0)
    with torch.inference_mode():
        m.generate(input_ids=ids, attention_mask=mask, **kw)
        t = time.perf_counter()
        for _ in range(rounds):
            out = m.generate(input_ids=ids, attention_mask=mask, **kw)
            assert out.shape[1] == PROMPT + NEW_TOKENS
        return GEN_BATCH * NEW_TOKENS * rounds, time.perf_counter() - t


def main() -> None:
    mode = sys.argv[1]
    threads = int(sys.argv[2])
    steps = int(sys.argv[3]) if len(sys.argv) > 3 else 10
    torch.set_num_threads(threads)
    torch.set_num_interop_threads(threads)
    torch.manual_seed(0)
    m = model()
    tokens, seconds = (train if mode == "train" else generate)(m, steps)
    print(json.dumps({
        "impl": "pytorch", "mode": mode, "threads": threads, "tokens": tokens,
        "seconds": seconds, "tokens_per_s": tokens / seconds,
        "parameters": sum(p.numel() for p in m.parameters()),
    }))


if __name__ == "__main__":
    main()
