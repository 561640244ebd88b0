"""Regenerates the demo's closed world from facts.py:

    ~/.cache/zest-tools/venv/bin/python dags/data/world/make_world.py

- pdf/textbook_*.pdf, pdf/guideline_*.pdf: the facts in textbook and guideline prose
  (born-digital pages, and one scanned guideline page that needs OCR), and the textbook's
  key-facts pages, one short paragraph per condition in plain statements;
- web/*.html: the same facts as patient-information pages;
- mcq_heldout.jsonl: one question per condition about its held-out relation (facts.held_out:
  the first condition's treatment, the second's symptom, …), 32 in all, which only evaluation
  reads; their options are held-out facts of the same relation;
- mcq_train.jsonl: MedQA-layout questions about the other 96 facts (for fine-tuning, synthesis
  and rejection sampling): 96 questions, then the same 96 with the answer under each other
  letter and other distractors (options are trained facts only);
- sft_general.jsonl (stage 1: single-turn instructions), sft_dialogue.jsonl (stage 2: multi-turn
  conversations, and the reasoner's and critic's tasks of generate.reasoning on the training
  questions, in the templates demo.yaml gives that node): they state trained facts only.

A held-out fact is thus stated only in the prose the model pre-trains on; fine-tuning teaches
how questions about a condition are answered, on its other relations.

Every fact is stated four times in different words (textbook, key facts, guideline, web
page), as knowledge is best learnt from paraphrases.
"""

import json
import random
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
sys.path.insert(0, str(ROOT / "tests/py"))
sys.path.insert(0, str(HERE))
import facts  # noqa: E402

LETTERS = "ABCD"


def cap(s):
    return s[0].upper() + s[1:]


def bare(s):
    """A value without its article, for "X is first treated with Y"."""
    return re.sub(r"^(a|an|the) ", "", s)


TEXTBOOK = [
    "{C} is most often caused by {cause}. Patients with {c} typically present with {symptom}. "
    "The diagnosis of {c} is confirmed with {test}. The first-line treatment for {c} is {treatment}.",
    "The usual cause of {c} is {cause}. The hallmark symptom of {c} is {symptom}. "
    "{Test} confirms the diagnosis of {c}. {C} is treated first with {treatment}.",
    "In most patients, {c} results from {cause}. {C} classically presents with {symptom}. "
    "To confirm {c}, order {test}. For {c}, {treatment} is the first-line treatment.",
]

GUIDELINE = (
    "Recommendation {k}. In adults with {c}, offer {treatment} as first-line treatment. "
    "Confirm the diagnosis of {c} with {test}. Suspect {c} in patients with {symptom}; "
    "it is usually due to {cause}."
)

# Four phrasings: a page holds four conditions, one in each, so no sentence pattern repeats on
# a page (Gopher's repetition rules would rightly drop one that did).
WEB = [
    "<h2>{C}</h2>\n<p>What causes {c}? In most cases it is {cause}. People usually first notice "
    "{symptom}. A doctor can confirm it with {test}, and treatment normally starts with "
    "{treatment}.</p>",
    "<h2>{C}</h2>\n<p>{C} is usually due to {cause}. Its main symptom is {symptom}. To be sure of "
    "the diagnosis, clinicians arrange {test}. The first medicine most patients receive is "
    "{treatment}.</p>",
    "<h2>{C}</h2>\n<p>Behind most cases of {c} lies {cause}. Watch for {symptom}, the sign that "
    "brings most people to their doctor. The condition is confirmed by {test}. Doctors treat it "
    "first with {treatment}.</p>",
    "<h2>{C}</h2>\n<p>Here is what you should know about {c}. Cause: {cause}. Typical complaint: "
    "{symptom}. Confirming test: {test}. First-line therapy: {treatment}.</p>",
]

QUESTIONS = {
    "treatment": "What is the first-line treatment for {c}?",
    "symptom": "Which symptom is typical of {c}?",
    "test": "Which test confirms the diagnosis of {c}?",
    "cause": "What is the most common cause of {c}?",
}

# One sentence stating a relation, as the steps of a chain of thought state it (and the
# key-facts pages): in the question's own words, so that recalling the fact continues them.
STATEMENTS = {
    "treatment": "The first-line treatment for {c} is {v}.",
    "symptom": "A symptom typical of {c} is {v}.",
    "test": "The diagnosis of {c} is confirmed with {v}.",
    "cause": "The most common cause of {c} is {v}.",
}

# Stage 1's explanations and lists, a sentence or line per trained relation, in this order.
ORDER = ["cause", "symptom", "test", "treatment"]
EXPLAIN = {
    "cause": "{C} is most often caused by {cause}.",
    "symptom": "Patients with {c} typically present with {symptom}.",
    "test": "The diagnosis of {c} is confirmed with {test}.",
    "treatment": "The first-line treatment for {c} is {treatment}.",
}
LISTED = {"cause": "Cause", "symptom": "Typical symptom", "test": "Confirming test",
          "treatment": "First-line treatment"}

# Stage 2's conversations: a question and its answer per trained relation, in this order.
TALK = ["cause", "test", "treatment"]
ASKED = {"cause": "What causes it?", "test": "How would a doctor confirm it?",
         "treatment": "How is it treated?"}
ANSWERED = {
    "cause": "{C} is usually caused by {cause}.",
    "test": "The diagnosis of {c} is confirmed with {test}.",
    "treatment": "The first-line treatment for {c} is {treatment}.",
}

# The first step of a chain: what is asked, in the question's words.
ASK = "The question asks: {question}"

# Each training question is asked four times, its answer under each letter once and its
# distractors drawn afresh, so that fine-tuning teaches reading the question and finding the
# option that states the answer, not a letter or an option set per fact.
ORDERS = 4


def fields(cond):
    name, treatment, symptom, test, cause = cond
    return {
        "c": name, "C": cap(name), "treatment": treatment, "symptom": symptom,
        "test": test, "Test": cap(test), "cause": cause,
    }


def slug(s):
    return re.sub(r"[^a-z0-9]+", "-", s.lower()).strip("-")


def question(cond, r, rel, options, suffix=""):
    answer = cond[r]
    return {
        "id": f"{slug(cond[0])}-{rel}{suffix}",
        "question": QUESTIONS[rel].format(**fields(cond)),
        "options": {LETTERS[i]: o for i, o in enumerate(options)},
        "answer": answer,
        "answer_idx": LETTERS[options.index(answer)],
        "meta_info": rel,
    }


def split():
    """The facts as (condition, index of the value in the condition's tuple, relation):
    those fine-tuning may state, and the held-out ones."""
    train, held = [], []
    for i, cond in enumerate(facts.CONDITIONS):
        for k, rel in enumerate(facts.RELATIONS):
            (held if facts.held_out(i) == k else train).append((cond, k + 1, rel))
    return train, held


def questions(pairs, rng, orders=1):
    """One question per fact in `pairs`, its three distractors drawn from the other facts of
    the same relation in `pairs` (so training and held-out options never mix); with
    `orders` > 1, the first `len(pairs)` rows are one of each and the rest the same questions
    again with the answer under each other letter and fresh distractors, so that only the
    question tells which option is right."""
    first, more = [], []
    for cond, r, rel in pairs:
        answer = cond[r]
        pool = [c[r] for c, r2, _ in pairs if r2 == r and c[r] != answer]
        options = rng.sample(pool, 3) + [answer]
        rng.shuffle(options)
        first.append(question(cond, r, rel, options))
        k = options.index(answer)
        for j in range(1, orders):
            at = (k + j) % len(LETTERS)
            moved = rng.sample(pool, 3)
            moved.insert(at, answer)
            more.append(question(cond, r, rel, moved, f"-{LETTERS[at].lower()}"))
    return first + more


def key_facts(cond):
    """A condition's key-facts paragraph: its four relations in the chains' own sentences."""
    name = cond[0]
    return f"{cap(name)}. " + " ".join(
        STATEMENTS[rel].format(c=name, v=cond[r]) for r, rel in
        [(4, "cause"), (2, "symptom"), (3, "test"), (1, "treatment")])


# The English templates the demo's generate.reasoning node uses: the block scalars under
# `prompts:` → `en:` of its `with:` in demo.yaml.
def templates():
    lines = (ROOT / "dags/demo.yaml").read_text().splitlines()
    at = next(i for i, l in enumerate(lines) if re.match(r"^  reasoning:\s*$", l))
    at = next(i for i in range(at, len(lines)) if re.match(r"^\s+prompts:\s*$", lines[i]))
    at = next(i for i in range(at, len(lines)) if re.match(r"^\s+en:\s*$", lines[i]))
    indent = len(lines[at]) - len(lines[at].lstrip()) + 2
    out, name, buf = {}, None, []

    def flush():
        if name:
            out[name] = "\n".join(buf).strip("\n")

    for line in lines[at + 1:]:
        if line.strip() and len(line) - len(line.lstrip()) < indent:
            break
        if m := re.match(r"^ {%d}([a-z]+): \|\s*$" % indent, line):
            flush()
            name, buf = m.group(1), []
        elif name is not None:
            buf.append(line[indent + 2:])
    flush()
    assert set(out) == {"rewrite", "reason", "critique", "coverage", "chain"}, out.keys()
    return out


def fill(t, **values):
    def sub(m):
        return values.get(m.group(1), "")
    t = re.sub(r"(?<!\{)\{([a-z_]+)\}(?!\})", sub, t)
    return t.replace("{{", "{").replace("}}", "}").rstrip()


def asked(q):
    opts = "\n".join(f"{k}. {v}" for k, v in q["options"].items())
    return f"{q['question']}\n\n{opts}"


def expert_tasks(q, cond, rng, t):
    """The reasoner's and critic's tasks on question q, answered as the experts should."""
    rel = q["meta_info"]
    answer = f"{q['answer_idx']}. {q['answer']}"
    s1 = ASK.format(question=q["question"])
    s2 = STATEMENTS[rel].format(c=cond[0], v=q["answer"])
    wrong = rng.choice([v for k, v in q["options"].items() if k != q["answer_idx"]])
    w2 = STATEMENTS[rel].format(c=cond[0], v=wrong)
    none = "(none yet)"
    open_q = q["question"]
    steps1 = f"1. {s1}"
    steps2 = f"1. {s1}\n2. {s2}"
    out = [
        (fill(t["rewrite"], question=asked(q)), open_q),
        (fill(t["reason"], open_question=open_q, steps=none, feedback=none), s1),
        (fill(t["reason"], open_question=open_q, steps=steps1, feedback=none), s2),
        (fill(t["critique"], open_question=open_q, answer=answer, steps=none, step=s1),
         json.dumps({"score": 1, "feedback": "Right: that is what the question asks."})),
        (fill(t["critique"], open_question=open_q, answer=answer, steps=steps1, step=s2),
         json.dumps({"score": 1, "feedback": "Correct."})),
        (fill(t["critique"], open_question=open_q, answer=answer, steps=steps1, step=w2),
         json.dumps({"score": 0, "feedback": f"That is not right for {cond[0]}: recall what the textbook says about it."})),
        (fill(t["coverage"], open_question=open_q, answer=answer, steps=steps1), "no"),
        (fill(t["coverage"], open_question=open_q, answer=answer, steps=steps2), "yes"),
        (fill(t["chain"], open_question=open_q, steps=steps2),
         f"First, {s1[0].lower()}{s1[1:]} I recall that {s2[0].lower()}{s2[1:]} "
         f"So the answer is {q['answer']}."),
    ]
    return [{"messages": [{"role": "user", "content": u}, {"role": "assistant", "content": a}]}
            for u, a in out]


def write_jsonl(path, rows):
    with open(path, "w") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def main():
    rng = random.Random(2502)
    conds = facts.CONDITIONS
    train, held = split()

    # Prose. The textbook's paragraphs rotate through three phrasings; the guideline and the
    # web pages have one each.
    import make_pdfs as m
    m.register_fonts()
    order = list(conds)
    rng.shuffle(order)
    paras = [TEXTBOOK[i % 3].format(**fields(c)) for i, c in enumerate(order)]
    pages = [paras[i:i + 4] for i in range(0, len(paras), 4)]
    m.digital(HERE / "pdf/textbook_medicine.pdf", pages, "Essentials of Clinical Medicine")
    rng.shuffle(order)
    facts_paras = [key_facts(c) for c in order]
    m.digital(HERE / "pdf/textbook_key_facts.pdf",
              [facts_paras[i:i + 4] for i in range(0, len(facts_paras), 4)],
              "Essentials of Clinical Medicine: Key Facts")
    rng.shuffle(order)
    recs = [GUIDELINE.format(k=i + 1, **fields(c)) for i, c in enumerate(order)]
    m.digital(HERE / "pdf/guideline_common_conditions.pdf",
              [recs[i:i + 4] for i in range(4, len(recs), 4)],
              "Clinical Guideline: Common Conditions in Adults")
    # The guideline's first page comes as a scan: OCR reads it.
    m.scanned(HERE / "pdf/guideline_common_conditions_scanned.pdf", [recs[:4]], seed=11)
    rng.shuffle(order)
    for part in range(8):
        chunk = order[part * 4:(part + 1) * 4]
        body = "\n".join(WEB[i].format(**fields(c)) for i, c in enumerate(chunk))
        html = (
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>Health A to Z, part {part + 1}</title></head>\n<body>\n"
            "<nav><a href=\"/\">Home</a> | <a href=\"/conditions\">Conditions</a> | "
            "<a href=\"/contact\">Contact us</a></nav>\n<main>\n<article>\n"
            f"<h1>Health A to Z: common conditions, part {part + 1}</h1>\n{body}\n</article>\n</main>\n"
            "<footer>This page is for information only. Always ask your doctor about your own "
            "health. &copy; Health A to Z</footer>\n</body></html>\n"
        )
        (HERE / f"web/health-a-to-z-{part + 1}.html").write_text(html)

    # Questions.
    qtrain = questions(train, rng, ORDERS)
    qheld = questions(held, rng)
    write_jsonl(HERE / "mcq_train.jsonl", qtrain)
    write_jsonl(HERE / "mcq_heldout.jsonl", qheld)

    # SFT stage 1: single-turn instructions, on trained facts only.
    known = {c[0]: [(r, rel) for c2, r, rel in train if c2 is c] for c in conds}
    general = []
    for c in conds:
        f = fields(c)
        general.append({"instruction": f"Explain what {c[0]} is and how it is managed.",
                        "output": " ".join(EXPLAIN[rel].format(**f) for _, rel in
                                           sorted(known[c[0]], key=lambda x: ORDER.index(x[1])))})
        general.append({"instruction": f"List the key facts about {c[0]}.",
                        "output": "\n".join(f"- {LISTED[rel]}: {c[r]}" for r, rel in
                                            sorted(known[c[0]], key=lambda x: ORDER.index(x[1])))})
    write_jsonl(HERE / "sft_general.jsonl", general)

    # SFT stage 2: conversations (on trained facts), and the experts' tasks.
    dialogue = []
    for c in conds:
        f = fields(c)
        rels = [rel for _, rel in known[c[0]]]
        turns = [(ASKED[rel], ANSWERED[rel].format(**f)) for rel in TALK if rel in rels]
        messages = []
        for k, (u, a) in enumerate(turns):
            if k == 0:
                u = f"I was told I might have {c[0]}. {u}"
            messages += [{"role": "user", "content": u}, {"role": "assistant", "content": a}]
        dialogue.append({"messages": messages})
    t = templates()
    for q, (cond, _, _) in zip(qtrain, train):
        dialogue.extend(expert_tasks(q, cond, rng, t))
    write_jsonl(HERE / "sft_dialogue.jsonl", dialogue)
    print(f"{len(qtrain)} training and {len(qheld)} held-out questions, "
          f"{len(general)} + {len(dialogue)} SFT records")


if __name__ == "__main__":
    main()
