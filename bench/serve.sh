#!/usr/bin/env bash
# `zest model serve` throughput on CPU: PROMPTS chat prompts (MedQA questions of the embedded
# sample), greedy, MAX_TOKENS new tokens each (no end-of-sequence token can stop them early:
# the model is random), on a ~10M-parameter Llama (model.init, size 10m, vocabulary 8,192).
# Three ways, one after the other on the same machine:
#   - sequential: one request at a time through the `openai` client;
#   - concurrent: CLIENTS clients at once (the server batches them);
#   - transformers: `model.generate` on the same directory, batches of CLIENTS left-padded
#     prompts, the same templates, greedy, the same THREADS intra-op threads.
# Reports generated tokens per second of wall time for each, and checks that the concurrent
# answers equal the sequential ones.
# Usage: bash bench/serve.sh   (PROMPTS=32, CLIENTS=8, MAX_TOKENS=64, THREADS=2)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(dirname "$here")"
PROMPTS="${PROMPTS:-32}"
CLIENTS="${CLIENTS:-8}"
MAX_TOKENS="${MAX_TOKENS:-64}"
THREADS="${THREADS:-2}"
PORT="${PORT:-18700}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/zest/target}"
VENV="${ZEST_TORCH_VENV:-$HOME/.cache/zest-py/torch-venv}"
py="$VENV/bin/python"
zest="${ZEST:-$CARGO_TARGET_DIR/release/zest}"
[ -x "$zest" ] || { echo "build first: make build (or set ZEST)" >&2; exit 1; }
scratch="$(mktemp -d)"
server=""
cleanup() { [ -n "$server" ] && kill "$server" 2>/dev/null; wait 2>/dev/null; rm -rf "$scratch"; }
trap cleanup EXIT
cd "$scratch"
cat > dag.yaml <<YAML
name: bench-serve
nodes:
  medqa:
    op: data.load
    with: {paths: ["$repo/dags/data/medqa_sample.jsonl"]}
  text:
    op: data.sql
    in: {m: medqa.data}
    with: {query: "SELECT question || ' Answer: ' || answer AS text FROM m"}
  tok:
    op: train.tokenizer
    in: {data: text.data}
    with: {vocab_size: 8192}
  init:
    op: model.init
    in: {tokenizer: tok.tokenizer}
    with: {size: 10m, seed: 1}
YAML
"$zest" run dag.yaml --quiet --report run.json >&2
model="$("$py" -c 'import json; r = json.load(open("run.json")); print([n for n in r["nodes"] if n["node"] == "init"][0]["outputs"]["model"]["uri"])')"
OMP_NUM_THREADS="$THREADS" "$zest" model serve --model "$model" --port "$PORT" --device cpu \
  --served-model-name bench > server.log 2>&1 &
server=$!
for _ in $(seq 1 600); do grep -q "serving" server.log && break; sleep 0.2; done
grep -q "serving" server.log || { cat server.log >&2; exit 1; }
"$py" - "$repo/dags/data/medqa_sample.jsonl" "$model" "$PORT" "$PROMPTS" "$CLIENTS" "$MAX_TOKENS" "$THREADS" <<'PY'
import json, sys, time, concurrent.futures as cf
import openai, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
data, model_dir, port, n, clients, max_tokens, threads = sys.argv[1:]
n, clients, max_tokens, threads = int(n), int(clients), int(max_tokens), int(threads)
questions = [json.loads(l)["question"] for l in open(data)][:n]
c = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0, timeout=600)
def ask(q):
    r = c.chat.completions.create(model="bench", messages=[{"role": "user", "content": q}],
                                  temperature=0, max_tokens=max_tokens)
    return r.choices[0].message.content, r.usage.completion_tokens
ask(questions[0])  # warm-up
t = time.perf_counter(); seq = [ask(q) for q in questions]; t_seq = time.perf_counter() - t
with cf.ThreadPoolExecutor(clients) as ex:
    t = time.perf_counter(); conc = list(ex.map(ask, questions)); t_conc = time.perf_counter() - t
same = sum(a[0] == b[0] for a, b in zip(seq, conc))
toks = sum(x[1] for x in seq)
torch.set_num_threads(threads)
tok = AutoTokenizer.from_pretrained(model_dir)
tok.padding_side = "left"
model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
texts = [tok.apply_chat_template([{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True) for q in questions]
model.generate(**tok(texts[:1], return_tensors="pt", add_special_tokens=False), max_new_tokens=4, do_sample=False)
t = time.perf_counter(); hf_toks = 0
for i in range(0, n, clients):
    enc = tok(texts[i:i + clients], return_tensors="pt", padding=True, add_special_tokens=False)
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=max_tokens, min_new_tokens=max_tokens, do_sample=False,
                             pad_token_id=tok.pad_token_id)
    hf_toks += (out.shape[1] - enc["input_ids"].shape[1]) * out.shape[0]
t_hf = time.perf_counter() - t
print(json.dumps({"prompts": n, "clients": clients, "max_tokens": max_tokens, "threads": threads,
                  "sequential_tok_s": round(toks / t_seq, 1), "concurrent_tok_s": round(toks / t_conc, 1),
                  "transformers_batched_tok_s": round(hf_toks / t_hf, 1),
                  "concurrent_equal_to_sequential": f"{same}/{n}",
                  "seconds": {"sequential": round(t_seq, 2), "concurrent": round(t_conc, 2), "transformers": round(t_hf, 2)}}))
PY
grep "^batch:" server.log | awk '{print $2}' | sort -n | uniq -c | awk '{printf "batches of %s request(s): %s\n", $2, $1}' >&2
