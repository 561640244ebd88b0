//! The `openai` backend: chat completions from an OpenAI-compatible endpoint (vLLM, SGLang,
//! OpenAI, `zest model serve`), with bounded concurrency and retries.
//!
//! A request is retried after HTTP 429, a 5xx or a failed connection, up to `max_retries`
//! times, waiting `Retry-After` when the server sends one and otherwise 0.5 s doubling up to
//! 30 s (with jitter). Other answers fail at once with the server's message: a 4xx will not
//! get better. The API key is read from the environment variable the config names, sent as a
//! bearer token, and kept out of every message.

use super::backend::{ChatRequest, Generator, RoleConfig};
use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

/// An OpenAI-compatible endpoint.
pub struct OpenAi {
    role: String,
    url: String,
    base_url: String,
    model: String,
    key: Option<String>,
    concurrency: usize,
    max_retries: u32,
    client: reqwest::blocking::Client,
}

impl std::fmt::Debug for OpenAi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        write!(f, "OpenAi({} {})", self.url, self.model)
    }
}

/// Why one attempt failed.
enum Failure {
    /// Worth another attempt, after the server's `Retry-After` if it sent one.
    Retry(String, Option<Duration>),
    /// Final.
    Fatal(anyhow::Error),
}

impl OpenAi {
    /// The endpoint of role `role` (whose config has been checked).
    pub fn new(role: &str, c: &RoleConfig) -> Result<OpenAi> {
        let base_url = c
            .base_url
            .clone()
            .ok_or_else(|| anyhow!("{role}: `kind: openai` needs `base_url`"))?;
        let key = match &c.api_key_env {
            None => None,
            Some(var) => match std::env::var(var) {
                Ok(k) if !k.is_empty() => Some(k),
                _ => bail!(
                    "{role}: the environment variable `{var}` (api_key_env) is not set; it must \
                     hold the API key of {base_url}"
                ),
            },
        };
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs_f64(c.timeout_s))
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("zest/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("cannot build an HTTP client")?;
        Ok(OpenAi {
            role: role.to_string(),
            url: format!("{}/chat/completions", base_url.trim_end_matches('/')),
            base_url,
            model: c.model.clone().unwrap_or_default(),
            key,
            concurrency: c.concurrency.max(1),
            max_retries: c.max_retries,
            client,
        })
    }

    /// Hides the key, should a server echo it.
    fn clean(&self, s: &str) -> String {
        match &self.key {
            Some(k) if k.len() >= 4 => s.replace(k.as_str(), "***"),
            _ => s.to_string(),
        }
    }

    /// The request's body.
    pub fn body(&self, r: &ChatRequest) -> Value {
        let mut b = json!({
            "model": self.model,
            "messages": r.messages,
            "n": r.n,
            "temperature": r.temperature,
            "top_p": r.top_p,
            "max_tokens": r.max_tokens,
            "seed": r.seed,
        });
        if !r.stop.is_empty() {
            b["stop"] = json!(r.stop);
        }
        b
    }

    fn attempt(&self, r: &ChatRequest) -> Result<Vec<String>, Failure> {
        let mut req = self
            .client
            .post(&self.url)
            .header("content-type", "application/json")
            .body(self.body(r).to_string());
        if let Some(k) = &self.key {
            req = req.bearer_auth(k);
        }
        let resp = match req.send() {
            Ok(r) => r,
            Err(e) => {
                let what = if e.is_timeout() {
                    "timed out".to_string()
                } else if e.is_connect() {
                    format!("cannot connect ({})", root_cause(&e))
                } else {
                    root_cause(&e)
                };
                return Err(Failure::Retry(self.clean(&what), None));
            }
        };
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(|s| Duration::from_secs_f64(s.min(120.0)));
        let text = match resp.bytes() {
            Ok(t) => String::from_utf8_lossy(&t).into_owned(),
            Err(e) => {
                return Err(Failure::Retry(
                    format!("reading the response: {}", root_cause(&e)),
                    None,
                ))
            }
        };
        if status.as_u16() == 429 || status.is_server_error() {
            return Err(Failure::Retry(
                format!("HTTP {status}: {}", self.clean(&server_message(&text))),
                retry_after,
            ));
        }
        if !status.is_success() {
            return Err(Failure::Fatal(anyhow!(
                "{}: HTTP {status}: {}",
                self.url,
                self.clean(&server_message(&text))
            )));
        }
        parse_choices(&text, r.n).map_err(|e| {
            Failure::Fatal(anyhow!(
                "malformed response from {}: {e}; the response began: {}",
                self.url,
                self.clean(&excerpt(&text, 200))
            ))
        })
    }

    /// One request, retried as the module says.
    pub fn send(&self, r: &ChatRequest, stop: &AtomicBool) -> Result<Vec<String>> {
        let mut last = String::new();
        for attempt in 0..=self.max_retries {
            if stop.load(Ordering::Relaxed) {
                bail!("stopped");
            }
            match self.attempt(r) {
                Ok(v) => return Ok(v),
                Err(Failure::Fatal(e)) => return Err(e),
                Err(Failure::Retry(why, after)) => {
                    last = why;
                    if attempt == self.max_retries {
                        break;
                    }
                    let wait = after.unwrap_or_else(|| backoff(attempt, r.seed));
                    eprintln!(
                        "{}: {} {last}; retrying in {:.1}s ({}/{})",
                        self.role,
                        self.url,
                        wait.as_secs_f64(),
                        attempt + 1,
                        self.max_retries
                    );
                    std::thread::sleep(wait);
                }
            }
        }
        bail!(
            "{}: {last} (after {} attempt(s))",
            self.url,
            self.max_retries + 1
        )
    }
}

/// The wait before retry `attempt` (from 0): 0.5 s doubling to 30 s, ±25% jitter.
fn backoff(attempt: u32, salt: u64) -> Duration {
    let base = (0.5 * 2f64.powi(attempt.min(10) as i32)).min(30.0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() as u64);
    let jitter = ((nanos ^ salt) % 1000) as f64 / 1000.0 * 0.5 + 0.75;
    Duration::from_secs_f64(base * jitter)
}

fn root_cause(e: &dyn std::error::Error) -> String {
    let mut cur = e;
    while let Some(s) = cur.source() {
        cur = s;
    }
    cur.to_string()
}

fn excerpt(s: &str, n: usize) -> String {
    let t: String = s.chars().take(n).collect();
    if t.len() < s.len() {
        format!("{t}…")
    } else {
        t
    }
}

/// The `error.message` of an OpenAI-style error body, or the body's start.
fn server_message(text: &str) -> String {
    serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|v| {
            v.pointer("/error/message")
                .or_else(|| v.get("message"))
                .or_else(|| v.get("detail"))
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .unwrap_or_else(|| excerpt(text.trim(), 200))
}

/// The `n` messages of a chat completion, in `index` order.
pub fn parse_choices(text: &str, n: usize) -> Result<Vec<String>, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("not JSON ({e})"))?;
    let choices = v
        .get("choices")
        .and_then(Value::as_array)
        .ok_or("no `choices` list")?;
    if choices.len() != n {
        return Err(format!("{} choice(s) for n = {n}", choices.len()));
    }
    let mut out: Vec<Option<String>> = vec![None; n];
    for (pos, c) in choices.iter().enumerate() {
        let i = match c.get("index") {
            None => pos,
            Some(x) => x.as_u64().ok_or("a choice's `index` is not a number")? as usize,
        };
        let content = c
            .pointer("/message/content")
            .and_then(Value::as_str)
            .ok_or("a choice has no `message.content` text")?;
        let slot = out
            .get_mut(i)
            .ok_or(format!("choice index {i} for n = {n}"))?;
        if slot.is_some() {
            return Err(format!("choice index {i} appears twice"));
        }
        *slot = Some(content.to_string());
    }
    Ok(out
        .into_iter()
        .map(|c| c.expect("every index filled"))
        .collect())
}

impl Generator for OpenAi {
    fn identity(&self) -> Value {
        json!({"kind": "openai", "base_url": self.base_url, "model": self.model})
    }

    fn complete(
        &self,
        requests: &[ChatRequest],
        done: &mut dyn FnMut(usize, Vec<String>) -> Result<()>,
    ) -> Result<()> {
        let next = AtomicUsize::new(0);
        let stop = AtomicBool::new(false);
        // Each sender waits until `done` has taken its answer (the caller keeps it in the
        // memo) before it sends the next request: a process killed at any moment has at
        // most `concurrency` answered requests that were not kept.
        type Answer = (usize, Result<Vec<String>>, mpsc::SyncSender<()>);
        let (tx, rx) = mpsc::channel::<Answer>();
        std::thread::scope(|s| -> Result<()> {
            for _ in 0..self.concurrency.min(requests.len()) {
                let tx = tx.clone();
                let (next, stop) = (&next, &stop);
                s.spawn(move || {
                    let (ack_tx, ack_rx) = mpsc::sync_channel::<()>(1);
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= requests.len() || stop.load(Ordering::Relaxed) {
                            return;
                        }
                        let r = self.send(&requests[i], stop);
                        if tx.send((i, r, ack_tx.clone())).is_err() || ack_rx.recv().is_err() {
                            return;
                        }
                    }
                });
            }
            drop(tx);
            let mut first_err = None;
            for (i, r, ack) in rx {
                if first_err.is_none() {
                    if let Err(e) = r.and_then(|v| done(i, v)) {
                        stop.store(true, Ordering::Relaxed);
                        first_err =
                            Some(e.context(format!("request {} of {}", i + 1, requests.len())));
                    }
                }
                let _ = ack.send(());
            }
            first_err.map_or(Ok(()), Err)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choices_are_read_in_index_order() {
        let t = r#"{"choices":[{"index":1,"message":{"role":"assistant","content":"b"}},
                    {"index":0,"message":{"role":"assistant","content":"a"}}]}"#;
        assert_eq!(parse_choices(t, 2).unwrap(), vec!["a", "b"]);
    }

    #[test]
    fn malformed_responses_say_what_is_wrong() {
        assert!(parse_choices("<html>", 1).unwrap_err().contains("not JSON"));
        assert!(parse_choices("{}", 1).unwrap_err().contains("no `choices`"));
        let one = r#"{"choices":[{"index":0,"message":{"content":"a"}}]}"#;
        assert!(parse_choices(one, 2)
            .unwrap_err()
            .contains("1 choice(s) for n = 2"));
        let none = r#"{"choices":[{"index":0,"message":{"content":null}}]}"#;
        assert!(parse_choices(none, 1)
            .unwrap_err()
            .contains("message.content"));
        let twice = r#"{"choices":[{"index":0,"message":{"content":"a"}},{"index":0,"message":{"content":"b"}}]}"#;
        assert!(parse_choices(twice, 2).unwrap_err().contains("twice"));
    }

    #[test]
    fn server_messages_come_from_the_error_body() {
        assert_eq!(
            server_message(r#"{"error":{"message":"Rate limit reached","type":"requests"}}"#),
            "Rate limit reached"
        );
        assert_eq!(server_message("Bad Gateway"), "Bad Gateway");
    }

    #[test]
    fn a_missing_key_is_named_and_the_key_never_printed() {
        let mut c = RoleConfig {
            kind: super::super::backend::BackendKind::Openai,
            base_url: Some("http://127.0.0.1:9/v1".into()),
            model: Some("m".into()),
            api_key_env: Some("ZEST_TEST_SURELY_UNSET_KEY".into()),
            ..RoleConfig::default()
        };
        let e = OpenAi::new("critic", &c).unwrap_err().to_string();
        assert!(
            e.contains("`ZEST_TEST_SURELY_UNSET_KEY` (api_key_env) is not set"),
            "{e}"
        );
        c.api_key_env = None;
        let mut o = OpenAi::new("critic", &c).unwrap();
        o.key = Some("sk-secret-123".into());
        assert!(!format!("{o:?}").contains("sk-secret"));
        assert_eq!(o.clean("echo sk-secret-123"), "echo ***");
    }

    #[test]
    fn backoff_doubles_up_to_thirty_seconds() {
        let b0 = backoff(0, 1).as_secs_f64();
        assert!((0.375..=0.625).contains(&b0), "{b0}");
        let b3 = backoff(3, 1).as_secs_f64();
        assert!((3.0..=5.0).contains(&b3), "{b3}");
        assert!(backoff(20, 1).as_secs_f64() <= 37.5);
    }
}

/// Error paths against a scripted HTTP server on 127.0.0.1 (a test double: the real server,
/// `zest model serve`, has its own end-to-end tests in `zest-operators-torch`).
#[cfg(test)]
mod http_tests {
    use super::*;
    use crate::generate::backend::{BackendKind, Message};
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;
    use std::sync::{Arc, Mutex};

    /// Answers the i-th request with `script[i]` (the last one repeats); records the requests.
    fn serve(script: Vec<(u16, &'static str, String)>) -> (String, Arc<Mutex<Vec<String>>>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(vec![]));
        let log = seen.clone();
        std::thread::spawn(move || {
            for (i, s) in l.incoming().enumerate() {
                let Ok(mut s) = s else { return };
                let mut r = BufReader::new(s.try_clone().unwrap());
                let mut head = String::new();
                let mut len = 0;
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap();
                    }
                    head.push_str(&line);
                }
                let mut body = vec![0; len];
                r.read_exact(&mut body).unwrap();
                log.lock()
                    .unwrap()
                    .push(format!("{head}\n{}", String::from_utf8_lossy(&body)));
                let (status, extra, text) = &script[i.min(script.len() - 1)];
                let _ = write!(
                    s,
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n{extra}content-length: {}\r\nconnection: close\r\n\r\n{text}",
                    text.len()
                );
            }
        });
        (format!("http://{addr}/v1"), seen)
    }

    fn role(base: &str, retries: u32) -> RoleConfig {
        RoleConfig {
            kind: BackendKind::Openai,
            base_url: Some(base.into()),
            model: Some("m".into()),
            max_retries: retries,
            concurrency: 2,
            timeout_s: 10.0,
            ..RoleConfig::default()
        }
    }

    fn ok(text: &str) -> String {
        json!({"choices": [{"index": 0, "message": {"role": "assistant", "content": text}}]})
            .to_string()
    }

    fn req() -> ChatRequest {
        ChatRequest::new(&RoleConfig::default(), vec![Message::user("hi")], 1, 3)
    }

    fn run(o: &OpenAi, n: usize) -> Result<Vec<Vec<String>>> {
        let mut out = vec![vec![]; n];
        o.complete(&vec![req(); n], &mut |i, r| {
            out[i] = r;
            Ok(())
        })?;
        Ok(out)
    }

    #[test]
    fn bursts_of_429_are_waited_out() {
        let busy = r#"{"error":{"message":"Rate limit reached"}}"#.to_string();
        let (base, seen) = serve(vec![
            (429, "retry-after: 0\r\n", busy.clone()),
            (429, "retry-after: 0\r\n", busy),
            (503, "retry-after: 0\r\n", "overloaded".into()),
            (200, "", ok("fine")),
        ]);
        let o = OpenAi::new("critic", &role(&base, 5)).unwrap();
        assert_eq!(run(&o, 2).unwrap(), vec![vec!["fine".to_string()]; 2]);
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 5);
        // The body is the OpenAI request, seed included.
        assert!(
            seen[0].contains(r#""model":"m""#) && seen[0].contains(r#""seed":3"#),
            "{}",
            seen[0]
        );
    }

    #[test]
    fn retries_end_with_the_servers_message() {
        let (base, seen) = serve(vec![(
            500,
            "retry-after: 0\r\n",
            r#"{"error":{"message":"CUDA out of memory"}}"#.into(),
        )]);
        let o = OpenAi::new("critic", &role(&base, 2)).unwrap();
        let e = format!("{:#}", run(&o, 1).unwrap_err());
        assert!(
            e.contains("HTTP 500")
                && e.contains("CUDA out of memory")
                && e.contains("after 3 attempt(s)"),
            "{e}"
        );
        assert_eq!(seen.lock().unwrap().len(), 3);
    }

    #[test]
    fn malformed_answers_and_client_errors_fail_at_once() {
        let (base, seen) = serve(vec![(200, "", "<html>gateway</html>".into())]);
        let o = OpenAi::new("critic", &role(&base, 5)).unwrap();
        let e = format!("{:#}", run(&o, 1).unwrap_err());
        assert!(
            e.contains("malformed response from") && e.contains("not JSON") && e.contains("<html>"),
            "{e}"
        );
        assert_eq!(seen.lock().unwrap().len(), 1);
        let (base, _) = serve(vec![(
            404,
            "",
            r#"{"error":{"message":"The model `m` does not exist"}}"#.into(),
        )]);
        let o = OpenAi::new("critic", &role(&base, 5)).unwrap();
        let e = format!("{:#}", run(&o, 1).unwrap_err());
        assert!(
            e.contains("HTTP 404") && e.contains("does not exist"),
            "{e}"
        );
    }

    #[test]
    fn a_dead_endpoint_is_named() {
        // A port nothing listens on: bind, learn it, close.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let o = OpenAi::new("critic", &role(&format!("http://127.0.0.1:{port}/v1"), 1)).unwrap();
        let e = format!("{:#}", run(&o, 1).unwrap_err());
        assert!(
            e.contains(&format!("http://127.0.0.1:{port}/v1/chat/completions"))
                && e.contains("cannot connect")
                && e.contains("after 2 attempt(s)"),
            "{e}"
        );
    }

    #[test]
    fn the_key_is_sent_but_never_shown() {
        let (base, seen) = serve(vec![(
            401,
            "",
            r#"{"error":{"message":"bad key sk-test-0123456789"}}"#.into(),
        )]);
        let mut c = role(&base, 0);
        c.api_key_env = Some("ZEST_TEST_OPENAI_KEY_HTTP".into());
        std::env::set_var("ZEST_TEST_OPENAI_KEY_HTTP", "sk-test-0123456789");
        let o = OpenAi::new("critic", &c).unwrap();
        let e = format!("{:#}", run(&o, 1).unwrap_err());
        assert!(
            e.contains("HTTP 401") && e.contains("bad key ***") && !e.contains("sk-test"),
            "{e}"
        );
        assert!(seen.lock().unwrap()[0]
            .to_lowercase()
            .contains("authorization: bearer sk-test-0123456789"));
    }
}
