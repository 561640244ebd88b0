//! `zest model serve` against the `openai` Python client: 8 concurrent chat requests get the
//! greedy outputs `zest model generate` gives; streaming, `n` with a seed, `/v1/models` and
//! errors behave as the OpenAI API.

mod common;
use common::{python, text, Project, Server};
use std::process::Command;

const CLIENT: &str = r#"
import json, sys, concurrent.futures as cf
import openai
base, prompts = sys.argv[1], json.loads(sys.argv[2])
c = openai.OpenAI(base_url=base, api_key="unused", max_retries=0)
def chat(p):
    r = c.chat.completions.create(model="tiny", messages=[{"role": "user", "content": p}],
                                  temperature=0, max_tokens=16)
    return r.choices[0].message.content, r.choices[0].finish_reason, r.usage.completion_tokens
with cf.ThreadPoolExecutor(8) as ex:
    greedy = list(ex.map(chat, prompts))
chunks = c.chat.completions.create(model="tiny", messages=[{"role": "user", "content": prompts[0]}],
                                   temperature=0, max_tokens=16, stream=True)
streamed = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
def sampled():
    r = c.completions.create(model="tiny", prompt=prompts[1], n=2, temperature=0.8, seed=5, max_tokens=12)
    return [x.text for x in r.choices]
errors = {}
try:
    c.chat.completions.create(model="other", messages=[{"role": "user", "content": "x"}])
except openai.NotFoundError as e:
    errors["model"] = str(e)
try:
    c.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "x"}], temperature=7)
except openai.BadRequestError as e:
    errors["temperature"] = str(e)
print(json.dumps({"greedy": greedy, "streamed": streamed, "sampled": [sampled(), sampled()],
                  "models": [m.id for m in c.models.list()], "errors": errors}))
"#;

#[test]
fn eight_concurrent_clients_get_what_generate_gives() {
    let p = Project::new(&common::tiny_model_dag("serve", 4));
    let o = p.zest(&["run", "dag.yaml", "--report", "run.json"]);
    assert!(o.status.success(), "{}", text(&o));
    let model = p.output("init", "model");
    let model = model.to_str().unwrap();
    let port = 15000 + (std::process::id() % 97) as u16 * 20;
    let server = Server::start(&p, model, port);
    let prompts: Vec<String> = [
        "What lowers LDL?",
        "A 23-year-old pregnant woman has burning on urination.",
        "Best treatment for cystitis in pregnancy?",
        "Which drug causes a dry cough?",
        "Symptoms of hypothyroidism",
        "What is the antidote to heparin?",
        "Define tachycardia.",
        "Side effects of metformin",
    ]
    .map(String::from)
    .to_vec();
    let o = Command::new(python())
        .args(["-c", CLIENT])
        .arg(format!("http://127.0.0.1:{port}/v1"))
        .arg(serde_json::to_string(&prompts).unwrap())
        .output()
        .unwrap();
    assert!(o.status.success(), "client: {}", text(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for (i, prompt) in prompts.iter().enumerate() {
        let o = p.zest(&[
            "model",
            "generate",
            "--model",
            model,
            "--chat",
            "--prompt",
            prompt,
            "--max-new-tokens",
            "16",
            "--device",
            "cpu",
            "--json",
        ]);
        assert!(o.status.success(), "{}", text(&o));
        let g: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(r["greedy"][i][0], g["text"], "prompt {i}: {r}");
        let want = if g["finish_reason"] == "length" {
            "length"
        } else {
            "stop"
        };
        assert_eq!(r["greedy"][i][1], want);
    }
    assert_eq!(r["streamed"], r["greedy"][0][0], "{r}");
    // The concurrent requests were batched.
    let most = server.batch_sizes().into_iter().max().unwrap_or(0);
    assert!(most > 1, "no batch held more than one request");
    assert_eq!(
        r["sampled"][0], r["sampled"][1],
        "the same seed, the same samples"
    );
    assert_eq!(r["models"], serde_json::json!(["tiny"]));
    let errors = &r["errors"];
    assert!(
        errors["model"].as_str().unwrap().contains("does not exist"),
        "{r}"
    );
    assert!(
        errors["temperature"]
            .as_str()
            .unwrap()
            .contains("between 0 and 2"),
        "{r}"
    );
}
