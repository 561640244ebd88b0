#!/usr/bin/env python3
"""datatrove's MinHash signature stage (MinhashDedupSignature, default MinhashConfig) on a
JSONL corpus, one process. Prints one JSON line. Usage: minhash_datatrove.py CORPUS [REPEAT]

Documents are made as in kernels/examples/minhash_bench.rs: a line's `text`, or PubMedQA's
`contexts` and `long_answer` joined with newlines. Timed: the stage's run over the documents
(shingling, hashing, signatures, writing the bucket files); not timed: imports and set-up."""
import json
import sys
import tempfile
import time

from datatrove.data import Document
from datatrove.pipeline.dedup.minhash import MinhashConfig, MinhashDedupSignature
import importlib.metadata


def document(v):
    if isinstance(v.get("text"), str):
        return v["text"]
    parts = [c for c in v.get("contexts", []) if isinstance(c, str)]
    if isinstance(v.get("long_answer"), str):
        parts.append(v["long_answer"])
    return "\n".join(parts)


def main():
    path = sys.argv[1]
    repeat = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    with open(path) as f:
        texts = [document(json.loads(line)) for line in f if line.strip()]
    docs = [Document(text=t, id=str(i)) for i, t in enumerate(texts * repeat)]
    with tempfile.TemporaryDirectory() as out:
        step = MinhashDedupSignature(output_folder=out, config=MinhashConfig())
        t0 = time.perf_counter()
        r = step.run(iter(docs), rank=0, world_size=1)
        if r is not None:
            for _ in r:
                pass
        secs = time.perf_counter() - t0
    print(json.dumps({"tool": "datatrove", "version": importlib.metadata.version("datatrove"),
                      "docs": len(docs), "seconds": round(secs, 4), "docs_per_s": round(len(docs) / secs),
                      "threads": 1, "config": "MinhashConfig() defaults: 5-grams, 14x8, 64-bit xxhash"}))


if __name__ == "__main__":
    main()
