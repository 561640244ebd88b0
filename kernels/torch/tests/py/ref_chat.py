"""Reference chat-template rendering from transformers.

    ref_chat.py --model DIR --cases CASES.json --out OUT.json

CASES.json is a list of {"messages": [{"role": str, "content": str}, ...],
"add_generation_prompt": bool}; a case may also carry "tools" (list of JSON schemas),
passed on to the template.  OUT.json is the list of rendered strings, one per case, from
tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=...).
"""

import argparse
import json
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from transformers import AutoTokenizer


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--cases", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    with open(args.cases) as f:
        cases = json.load(f)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    rendered = [
        tokenizer.apply_chat_template(
            case["messages"],
            tools=case.get("tools"),
            tokenize=False,
            add_generation_prompt=bool(case.get("add_generation_prompt", False)),
        )
        for case in cases
    ]
    with open(args.out, "w") as f:
        json.dump(rendered, f, ensure_ascii=False, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
