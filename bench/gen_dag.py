#!/usr/bin/env python3
"""Writes the benchmark DAG: LAYERS layers of WIDTH noop nodes; node (l, i) depends on (l-1, i).
Every node has a distinct tag, so each one produces its own artifact."""
import sys

layers = int(sys.argv[1]) if len(sys.argv) > 1 else 100
width = int(sys.argv[2]) if len(sys.argv) > 2 else 100
out = [f"name: noop-{layers}x{width}", "nodes:"]
for l in range(layers):
    for i in range(width):
        out.append(f"  n{l}_{i}:")
        out.append("    op: noop")
        # A distinct tag per node: every node is its own computation with its own artifact,
        # so nothing is deduplicated by content addressing.
        out.append(f"    with: {{tag: n{l}_{i}}}")
        if l > 0:
            out.append(f"    in: {{x: n{l-1}_{i}.out}}")
print("\n".join(out))
