//! The generation backend every generating operator uses: `local` (a model artifact of the
//! DAG, generated on the kernels in `zest-torch`) or `openai` (any OpenAI-compatible endpoint:
//! vLLM, SGLang, OpenAI, `zest model serve`; see [`super::openai`]).
//!
//! A role ([`RoleConfig`]: the reasoner, the critic, the policy, the judge) says where it
//! generates and how it samples. [`Role::complete`] sends chat requests through it and keeps
//! every response in the store's memo ([`zest_engine::memo`]) under a digest of the request
//! and of what answers it, so a rerun or a `zest resume` pays nothing for finished requests.

use crate::train::common::{check_device, default_device, Precision};
use anyhow::{bail, Result};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use zest_engine::memo::Memo;
use zest_engine::operator::OpContext;

/// Where a role generates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum BackendKind {
    /// The model on the operator's input port of the role's name, on the kernels.
    #[default]
    Local,
    /// An OpenAI-compatible HTTP endpoint (`base_url`, `model`).
    Openai,
}

/// Where a role generates and how it samples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleConfig {
    /// `local` (the model on the input port named after the role) or `openai`.
    #[serde(default)]
    pub kind: BackendKind,
    /// `openai`: the API's base URL, up to and including `/v1`
    /// (`http://127.0.0.1:8000/v1`, `https://api.openai.com/v1`).
    #[serde(default)]
    pub base_url: Option<String>,
    /// `openai`: the model the endpoint serves.
    #[serde(default)]
    pub model: Option<String>,
    /// `openai`: the environment variable that holds the API key (sent as a bearer token;
    /// never logged, stored or part of a cache key). Unset: no key is sent.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// `openai`: requests in flight at once.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// `openai`: retries of a request after a 429, a 5xx or a dropped connection, with
    /// exponential backoff (honouring `Retry-After`).
    #[serde(default = "default_retries")]
    pub max_retries: u32,
    /// `openai`: seconds one request may take.
    #[serde(default = "default_timeout")]
    pub timeout_s: f64,
    /// `local`: sequences generated together.
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// `local`: the element type the model runs in.
    #[serde(default)]
    pub dtype: Precision,
    /// `local`: the device.
    #[serde(default = "default_device")]
    pub device: String,
    /// Sampling temperature; 0 is greedy.
    #[serde(default)]
    pub temperature: f64,
    /// Nucleus sampling's mass.
    #[serde(default = "one")]
    pub top_p: f64,
    /// Most tokens per response.
    #[serde(default = "default_max_tokens")]
    pub max_tokens: usize,
    /// Reuse the responses kept in the store for identical requests.
    #[serde(default = "yes")]
    pub cache: bool,
}

fn default_concurrency() -> usize {
    8
}
fn default_retries() -> u32 {
    5
}
fn default_timeout() -> f64 {
    300.0
}
fn default_batch() -> usize {
    16
}
fn one() -> f64 {
    1.0
}
fn default_max_tokens() -> usize {
    512
}
fn yes() -> bool {
    true
}

impl Default for RoleConfig {
    fn default() -> Self {
        serde_json::from_value(json!({})).expect("every field has a default")
    }
}

impl RoleConfig {
    /// Checks the settings (without contacting anything); `role` names it in messages.
    pub fn check(&self, role: &str) -> Result<(), String> {
        let e = |m: String| Err(format!("{role}: {m}"));
        if !(0.0..=2.0).contains(&self.temperature) {
            return e("temperature must be between 0 and 2".into());
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return e("top_p must be in (0, 1]".into());
        }
        if self.max_tokens == 0 {
            return e("max_tokens must be at least 1".into());
        }
        match self.kind {
            BackendKind::Local => {
                if self.batch_size == 0 {
                    return e("batch_size must be at least 1".into());
                }
                check_device(&self.device).or_else(e)?;
                for (k, v) in [("base_url", &self.base_url), ("model", &self.model)] {
                    if v.is_some() {
                        return e(format!(
                            "{k} is for `kind: openai`; `local` uses the `{role}` input"
                        ));
                    }
                }
            }
            BackendKind::Openai => {
                match &self.base_url {
                    None => return e("`kind: openai` needs `base_url`".into()),
                    Some(u) if !(u.starts_with("http://") || u.starts_with("https://")) => {
                        return e(format!(
                            "base_url `{u}` must start with http:// or https://"
                        ))
                    }
                    Some(u) if u.contains('@') => {
                        return e("base_url must not hold credentials: name an `api_key_env`".into())
                    }
                    _ => {}
                }
                if self.model.as_deref().is_none_or(str::is_empty) {
                    return e("`kind: openai` needs `model`".into());
                }
                if self.concurrency == 0 {
                    return e("concurrency must be at least 1".into());
                }
                if self.timeout_s.is_nan() || self.timeout_s <= 0.0 {
                    return e("timeout_s must be positive".into());
                }
                if let Some(v) = &self.api_key_env {
                    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                        return e(format!(
                            "api_key_env `{v}` is not an environment variable name"
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

/// One chat message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// The text.
    pub content: String,
}

impl Message {
    /// A user turn.
    pub fn user(content: impl Into<String>) -> Message {
        Message {
            role: "user".into(),
            content: content.into(),
        }
    }
}

/// One chat completion request: what `/v1/chat/completions` is sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    /// The conversation so far.
    pub messages: Vec<Message>,
    /// Responses wanted.
    pub n: usize,
    /// Sampling temperature.
    pub temperature: f64,
    /// Nucleus mass.
    pub top_p: f64,
    /// Most tokens per response.
    pub max_tokens: usize,
    /// Strings that end a response (not included).
    pub stop: Vec<String>,
    /// The seed: the same request gives the same responses on a backend that honours it.
    pub seed: u64,
}

impl ChatRequest {
    /// A request with `role`'s sampling settings.
    pub fn new(role: &RoleConfig, messages: Vec<Message>, n: usize, seed: u64) -> ChatRequest {
        ChatRequest {
            messages,
            n,
            temperature: role.temperature,
            top_p: role.top_p,
            max_tokens: role.max_tokens,
            stop: vec![],
            seed,
        }
    }
}

/// Something that answers chat requests: the kernels, or an HTTP endpoint.
pub trait Generator: Send + Sync {
    /// What answers (the model's digest and settings, or the endpoint and model), for the
    /// memo keys: responses of another model are never reused.
    fn identity(&self) -> Value;

    /// Answers every request (`n` responses each), calling `done(i, responses)` on this
    /// thread as request `i` finishes, in any order. An error from `done` stops the work.
    fn complete(
        &self,
        requests: &[ChatRequest],
        done: &mut dyn FnMut(usize, Vec<String>) -> Result<()>,
    ) -> Result<()>;
}

/// Opens a `local` generator on a model directory: installed by `zest-torch`.
pub type LocalOpener =
    fn(dir: &Path, digest: &str, role: &RoleConfig) -> Result<Box<dyn Generator>>;

static LOCAL: OnceLock<LocalOpener> = OnceLock::new();

/// Installs the `local` backend (once per process; later calls are ignored).
pub fn install_local(open: LocalOpener) {
    let _ = LOCAL.set(open);
}

/// A role, opened: its generator and the store's memo.
pub struct Role<'a> {
    /// The role's name (`reasoner`, `critic`, …), for messages.
    pub name: String,
    generator: Box<dyn Generator>,
    identity: Value,
    memo: Option<Memo<'a>>,
    /// Requests answered from the memo.
    pub cached: AtomicUsize,
    /// Requests sent to the backend and answered.
    pub sent: AtomicUsize,
}

impl std::fmt::Debug for Role<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Role({})", self.name)
    }
}

/// The memo namespace of generation responses.
pub const MEMO_NAMESPACE: &str = "generate";

impl<'a> Role<'a> {
    /// Opens role `name` of a node: a `local` role loads the model on the input port `name`.
    pub fn open(name: &str, c: &RoleConfig, ctx: &'a OpContext) -> Result<Role<'a>> {
        c.check(name).map_err(anyhow::Error::msg)?;
        let generator: Box<dyn Generator> = match c.kind {
            BackendKind::Local => {
                let Some(art) = ctx.inputs(name).first() else {
                    bail!(
                        "{name}: `kind: local` generates with the model on input `{name}`, which is \
                         not connected (connect a model, or use `kind: openai`)"
                    );
                };
                let Some(open) = LOCAL.get() else {
                    bail!("{name}: the `local` backend runs in `zest-torch`; this process has no libtorch");
                };
                open(art.path()?, &art.digest, c)?
            }
            BackendKind::Openai => Box::new(super::openai::OpenAi::new(name, c)?),
        };
        Self::with_generator(
            name,
            generator,
            c.cache.then(|| ctx.memo(MEMO_NAMESPACE)).transpose()?,
        )
    }

    /// A role over `generator`, memoizing in `memo` when given.
    pub fn with_generator(
        name: &str,
        generator: Box<dyn Generator>,
        memo: Option<Memo<'a>>,
    ) -> Result<Role<'a>> {
        Ok(Role {
            name: name.to_string(),
            identity: generator.identity(),
            generator,
            memo,
            cached: AtomicUsize::new(0),
            sent: AtomicUsize::new(0),
        })
    }

    /// The memo key of `request` on this role's backend.
    pub fn key(&self, request: &ChatRequest) -> String {
        let body = json!({"v": 1, "backend": self.identity, "request": request});
        let canonical = zest_engine::digest::canonical_json(&body);
        zest_engine::digest::sha256_hex(canonical.as_bytes())
    }

    /// Answers `requests` (`n` responses each, in order): from the memo where it has them,
    /// from the backend otherwise, each response kept in the memo as it arrives.
    pub fn complete(&self, requests: &[ChatRequest]) -> Result<Vec<Vec<String>>> {
        let mut out: Vec<Option<Vec<String>>> = vec![None; requests.len()];
        let keys: Vec<String> = requests.iter().map(|r| self.key(r)).collect();
        let mut todo = vec![];
        for (i, k) in keys.iter().enumerate() {
            let hit = match &self.memo {
                Some(m) => m.get(k)?.and_then(|v| responses_of(&v, requests[i].n)),
                None => None,
            };
            match hit {
                Some(r) => {
                    self.cached.fetch_add(1, Ordering::Relaxed);
                    out[i] = Some(r);
                }
                None => todo.push(i),
            }
        }
        if !todo.is_empty() {
            let batch: Vec<ChatRequest> = todo.iter().map(|&i| requests[i].clone()).collect();
            let mut done = |j: usize, responses: Vec<String>| -> Result<()> {
                let i = todo[j];
                if responses.len() != requests[i].n {
                    bail!(
                        "{}: asked for {} response(s), got {}",
                        self.name,
                        requests[i].n,
                        responses.len()
                    );
                }
                if let Some(m) = &self.memo {
                    m.put(&keys[i], &json!({"responses": responses}))?;
                }
                self.sent.fetch_add(1, Ordering::Relaxed);
                out[i] = Some(responses);
                Ok(())
            };
            self.generator
                .complete(&batch, &mut done)
                .map_err(|e| e.context(format!("{}: generation failed", self.name)))?;
        }
        out.into_iter()
            .enumerate()
            .map(|(i, r)| {
                r.ok_or_else(|| anyhow::anyhow!("{}: request {i} got no answer", self.name))
            })
            .collect()
    }
}

fn responses_of(v: &Value, n: usize) -> Option<Vec<String>> {
    let r: Vec<String> = v
        .get("responses")?
        .as_array()?
        .iter()
        .map(|x| x.as_str().map(str::to_string))
        .collect::<Option<_>>()?;
    (r.len() == n).then_some(r)
}

/// A seed for request `parts` of a run seeded with `seed`: the same question, role and round
/// get the same seed on every run.
pub fn request_seed(seed: u64, parts: &[&str]) -> u64 {
    let mut h = Sha256::new();
    h.update(seed.to_le_bytes());
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    let d = h.finalize();
    // Below 2^53, so JSON clients that read numbers as doubles keep it exact.
    u64::from_le_bytes(d[..8].try_into().expect("8 bytes")) >> 11
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Echoes the last user turn, counting the requests it answers.
    struct Echo(Mutex<usize>);

    impl Generator for Echo {
        fn identity(&self) -> Value {
            json!("echo")
        }
        fn complete(
            &self,
            requests: &[ChatRequest],
            done: &mut dyn FnMut(usize, Vec<String>) -> Result<()>,
        ) -> Result<()> {
            for (i, r) in requests.iter().enumerate() {
                *self.0.lock().unwrap() += 1;
                let last = r.messages.last().unwrap().content.clone();
                done(i, (0..r.n).map(|k| format!("{last}/{k}")).collect())?;
            }
            Ok(())
        }
    }

    fn req(text: &str, n: usize) -> ChatRequest {
        ChatRequest::new(&RoleConfig::default(), vec![Message::user(text)], n, 1)
    }

    #[test]
    fn keys_change_with_every_part_of_the_request() {
        let role = Role::with_generator("r", Box::new(Echo(Mutex::new(0))), None).unwrap();
        let base = req("a", 2);
        let k = role.key(&base);
        assert_eq!(k, role.key(&base.clone()));
        let mut other = base.clone();
        other.seed = 2;
        assert_ne!(k, role.key(&other));
        let mut other = base.clone();
        other.temperature = 0.5;
        assert_ne!(k, role.key(&other));
        assert_ne!(k, role.key(&req("b", 2)));
        assert_ne!(k, role.key(&req("a", 3)));
    }

    #[test]
    fn responses_come_back_in_request_order() {
        let role = Role::with_generator("r", Box::new(Echo(Mutex::new(0))), None).unwrap();
        let out = role.complete(&[req("x", 1), req("y", 2)]).unwrap();
        assert_eq!(
            out,
            vec![vec!["x/0".to_string()], vec!["y/0".into(), "y/1".into()]]
        );
        assert_eq!(role.sent.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn openai_settings_are_checked() {
        let mut c = RoleConfig {
            kind: BackendKind::Openai,
            ..RoleConfig::default()
        };
        assert!(c.check("critic").unwrap_err().contains("needs `base_url`"));
        c.base_url = Some("localhost:8000".into());
        assert!(c.check("critic").unwrap_err().contains("http://"));
        c.base_url = Some("http://user:pw@host/v1".into());
        assert!(c.check("critic").unwrap_err().contains("credentials"));
        c.base_url = Some("http://127.0.0.1:8000/v1".into());
        assert!(c.check("critic").unwrap_err().contains("needs `model`"));
        c.model = Some("m".into());
        c.api_key_env = Some("MY KEY".into());
        assert!(c
            .check("critic")
            .unwrap_err()
            .contains("environment variable"));
        c.api_key_env = Some("MY_KEY".into());
        c.check("critic").unwrap();
        let local = RoleConfig {
            model: Some("m".into()),
            ..RoleConfig::default()
        };
        assert!(local
            .check("policy")
            .unwrap_err()
            .contains("`policy` input"));
    }

    #[test]
    fn request_seeds_are_stable_and_distinct() {
        let a = request_seed(7, &["q1", "critic", "2"]);
        assert_eq!(a, request_seed(7, &["q1", "critic", "2"]));
        assert_ne!(a, request_seed(8, &["q1", "critic", "2"]));
        assert_ne!(a, request_seed(7, &["q1", "critic2", ""]));
        assert!(a < 1 << 53);
    }
}
