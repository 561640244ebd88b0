#!/usr/bin/env python3
"""datatrove's full MinHash deduplication (its four stages, default MinhashConfig: word 5-grams,
14 buckets x 8 hashes, 64-bit) on the JSONL shards of bench/dedup.sh, local executor.
Usage: dedup_datatrove.py DATA_DIR WORK_DIR [WORKERS]

Writes the kept documents to WORK_DIR/kept and the removed ones to WORK_DIR/removed (JSONL,
uncompressed, through the filter stage's exclusion writer). Prints one JSON line with the
seconds of each stage; bench/dedup.sh times the whole process.

Tasks: stage 1 (signatures) and stage 4 (filter) run one task per input shard, stage 2 (buckets)
14 tasks (one per bucket, the minimum: the task count must be a multiple of the buckets),
stage 3 (clustering) one task (datatrove requires it); at most WORKERS tasks at once."""
import importlib.metadata
import json
import os
import sys
import time

from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.dedup.minhash import (
    MinhashConfig,
    MinhashDedupBuckets,
    MinhashDedupCluster,
    MinhashDedupFilter,
    MinhashDedupSignature,
)
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.writers import JsonlWriter


def main():
    data, work = sys.argv[1], sys.argv[2]
    workers = int(sys.argv[3]) if len(sys.argv) > 3 else 2
    shards = len([f for f in os.listdir(data) if f.endswith(".jsonl")])
    config = MinhashConfig()
    sigs, buckets, remove = (os.path.join(work, d) for d in ("signatures", "buckets", "remove_ids"))
    logs = os.path.join(work, "logs")

    def reader():
        return JsonlReader(data, text_key="text", id_key="doc_id", glob_pattern="*.jsonl")

    stages = [
        ("signatures", [reader(), MinhashDedupSignature(output_folder=sigs, config=config)], shards),
        ("buckets", [MinhashDedupBuckets(input_folder=sigs, output_folder=buckets, config=config)],
         config.num_buckets),
        ("cluster", [MinhashDedupCluster(input_folder=buckets, output_folder=remove, config=config)], 1),
        ("filter", [reader(),
                    MinhashDedupFilter(input_folder=remove,
                                       exclusion_writer=JsonlWriter(os.path.join(work, "removed"),
                                                                    compression=None)),
                    JsonlWriter(os.path.join(work, "kept"), compression=None)], shards),
    ]
    seconds = {}
    for name, pipeline, tasks in stages:
        t0 = time.perf_counter()
        LocalPipelineExecutor(pipeline=pipeline, tasks=tasks, workers=min(workers, tasks),
                              logging_dir=os.path.join(logs, name)).run()
        seconds[name] = round(time.perf_counter() - t0, 3)
    print(json.dumps({"tool": "datatrove", "version": importlib.metadata.version("datatrove"),
                      "stage_s": seconds, "tasks": {n: t for n, _, t in stages},
                      "workers": workers}))


if __name__ == "__main__":
    main()
