//! `zest model serve`: an OpenAI-compatible HTTP server on the kernels — `/v1/models`,
//! `/v1/completions`, `/v1/chat/completions`, with `n`, `temperature`, `top_p`, `max_tokens`,
//! `stop`, `seed` and streaming (server-sent events).
//!
//! One thread owns the model. Requests that arrive while it generates wait in a queue; it takes
//! up to `--max-batch` of them at a time and generates those with the same sampling settings
//! in one batch (each request with its own seed, so a request's output does not depend on what
//! it was batched with).

use crate::args::ServeArgs;
use anyhow::{bail, Context, Result};
use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};
use std::convert::Infallible;
use std::sync::{mpsc, Arc};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};
use zest_kernels::text_tokenizer::TextTokenizer;
use zest_kernels_torch::generate::{self, Finish, SamplingParams};
use zest_kernels_torch::{checkpoint, device, Transformer};

type Body = BoxBody<Bytes, Infallible>;

/// Largest request body accepted.
const MAX_BODY: usize = 8 << 20;

/// Runs `zest model serve`; returns the exit code.
pub fn run(args: &ServeArgs) -> i32 {
    match serve(args) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("zest: {e:#}");
            1
        }
    }
}

/// What one request asks to generate.
struct Job {
    /// Token ids of each prompt.
    prompts: Vec<Vec<i64>>,
    /// The seed of each prompt.
    seeds: Vec<u64>,
    params: SamplingParams,
    stream: bool,
    reply: UnboundedSender<Event>,
}

/// What the model thread sends back for a job.
enum Event {
    /// A token of sample `choice` (prompt index × n + sample index).
    Token { choice: usize, token: i64 },
    /// All samples, finished.
    Done(Vec<(Vec<i64>, Finish)>),
    /// Generation failed.
    Failed(String),
}

struct Shared {
    name: String,
    tok: Arc<TextTokenizer>,
    max_len: usize,
    jobs: mpsc::Sender<Job>,
}

fn serve(args: &ServeArgs) -> Result<()> {
    let dev = device::parse_device(&args.device)?;
    let kind = args.dtype.as_deref().map(device::parse_kind).transpose()?;
    let tok = Arc::new(
        TextTokenizer::from_dir(&args.model)
            .with_context(|| format!("cannot load the tokenizer of {}", args.model.display()))?,
    );
    let model = checkpoint::load(&args.model, dev, kind)?;
    let eos = generate::eos_ids(&args.model, &model.config, &tok)?;
    let pad = model.config.pad_token_id.unwrap_or(0);
    let max_len = model.config.max_position_embeddings as usize;
    let name = args.served_model_name.clone().unwrap_or_else(|| {
        args.model
            .file_name()
            .map_or("model".into(), |n| n.to_string_lossy().into_owned())
    });
    if args.max_batch == 0 {
        bail!("--max-batch must be at least 1");
    }
    let (tx, rx) = mpsc::channel::<Job>();
    let decode_tok = tok.clone();
    let max_batch = args.max_batch;
    let batch_wait = Duration::from_millis(args.batch_wait_ms);
    std::thread::Builder::new()
        .name("model".into())
        .spawn(move || model_loop(model, decode_tok, rx, eos, pad, max_batch, batch_wait))?;
    let shared = Arc::new(Shared {
        name,
        tok,
        max_len,
        jobs: tx,
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let addr = format!("{}:{}", args.host, args.port);
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        println!(
            "serving `{}` on http://{} (OpenAI API under /v1)",
            shared.name,
            listener.local_addr()?
        );
        loop {
            let (stream, _) = listener.accept().await?;
            let shared = shared.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| handle(req, shared.clone()));
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, svc)
                    .await;
            });
        }
    })
}

/// The model thread: takes waiting jobs in batches of compatible sampling settings.
fn model_loop(
    model: Transformer,
    tok: Arc<TextTokenizer>,
    rx: mpsc::Receiver<Job>,
    eos: Vec<i64>,
    pad: i64,
    max_batch: usize,
    batch_wait: Duration,
) {
    let mut waiting: Vec<Job> = vec![];
    loop {
        if waiting.is_empty() {
            match rx.recv() {
                Ok(j) => waiting.push(j),
                Err(_) => return,
            }
            // Requests sent together arrive a little apart: wait for them briefly.
            std::thread::sleep(batch_wait);
        }
        while let Ok(j) = rx.try_recv() {
            waiting.push(j);
        }
        // The oldest job and those that can share its batch.
        let key = params_key(&waiting[0].params);
        let mut batch = vec![];
        let mut rows = 0;
        let mut i = 0;
        while i < waiting.len() {
            let n = waiting[i].prompts.len() * waiting[i].params.n;
            if params_key(&waiting[i].params) == key && (batch.is_empty() || rows + n <= max_batch)
            {
                rows += n;
                batch.push(waiting.remove(i));
            } else {
                i += 1;
            }
        }
        run_batch(&model, &tok, &eos, pad, batch);
    }
}

fn params_key(p: &SamplingParams) -> String {
    format!(
        "{}|{}|{}|{}|{}|{:?}",
        p.max_new_tokens, p.temperature, p.top_k, p.top_p, p.n, p.stop_strings
    )
}

fn run_batch(model: &Transformer, tok: &TextTokenizer, eos: &[i64], pad: i64, batch: Vec<Job>) {
    let started = std::time::Instant::now();
    let mut prompts = vec![];
    let mut seeds = vec![];
    // Prompt index in the batch → (job, prompt index in the job).
    let mut owner = vec![];
    for (j, job) in batch.iter().enumerate() {
        for (k, p) in job.prompts.iter().enumerate() {
            prompts.push(p.clone());
            seeds.push(job.seeds[k]);
            owner.push((j, k));
        }
    }
    let mut params = batch[0].params.clone();
    params.stop_token_ids = eos.to_vec();
    let n = params.n;
    let decode = |ids: &[i64]| tok.decode(ids, true).unwrap_or_default();
    let mut on_token = |prompt: usize, sample: usize, token: i64| {
        let (j, k) = owner[prompt];
        if batch[j].stream {
            let _ = batch[j].reply.send(Event::Token {
                choice: k * n + sample,
                token,
            });
        }
    };
    let decode_opt: Option<generate::Decode> = if params.stop_strings.is_empty() {
        None
    } else {
        Some(&decode)
    };
    let result = generate::generate_seeded(
        model,
        &prompts,
        &seeds,
        &params,
        pad,
        decode_opt,
        Some(&mut on_token),
    );
    match result {
        Ok(samples) => {
            let tokens: usize = samples.iter().flatten().map(|x| x.token_ids.len()).sum();
            let secs = started.elapsed().as_secs_f64();
            println!(
                "batch: {} request(s), {} sequence(s), {tokens} tokens in {secs:.2}s ({:.0} tok/s)",
                batch.len(),
                prompts.len() * n,
                tokens as f64 / secs.max(1e-9)
            );
            let mut per_job: Vec<Vec<(Vec<i64>, Finish)>> = vec![vec![]; batch.len()];
            for (p, s) in samples.into_iter().enumerate() {
                let (j, _) = owner[p];
                per_job[j].extend(s.into_iter().map(|x| (x.token_ids, x.finish)));
            }
            for (job, out) in batch.iter().zip(per_job) {
                let _ = job.reply.send(Event::Done(out));
            }
        }
        Err(e) => {
            for job in &batch {
                let _ = job.reply.send(Event::Failed(e.to_string()));
            }
        }
    }
}

fn full(status: StatusCode, v: &Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(v.to_string())).boxed())
        .expect("a valid response")
}

/// An OpenAI-style error.
fn error(status: StatusCode, message: &str, param: Option<&str>) -> Response<Body> {
    let kind = if status.is_server_error() {
        "server_error"
    } else {
        "invalid_request_error"
    };
    full(
        status,
        &json!({"error": {"message": message, "type": kind, "param": param, "code": null}}),
    )
}

async fn handle(req: Request<Incoming>, s: Arc<Shared>) -> Result<Response<Body>, Infallible> {
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let route = match (method.clone(), path.as_str()) {
        (Method::GET, "/v1/models") => {
            return Ok(full(
                StatusCode::OK,
                &json!({"object": "list", "data": [
                    {"id": s.name, "object": "model", "created": created, "owned_by": "zest"}
                ]}),
            ))
        }
        (Method::GET, "/health") => return Ok(full(StatusCode::OK, &json!({"status": "ok"}))),
        (Method::POST, "/v1/completions") => false,
        (Method::POST, "/v1/chat/completions") => true,
        (_, "/v1/models" | "/v1/completions" | "/v1/chat/completions") => {
            return Ok(error(
                StatusCode::METHOD_NOT_ALLOWED,
                &format!("{method} is not allowed on {path}"),
                None,
            ))
        }
        _ => {
            return Ok(error(
                StatusCode::NOT_FOUND,
                &format!("no route {path}"),
                None,
            ))
        }
    };
    let body = match http_body_util::Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return Ok(error(
                StatusCode::BAD_REQUEST,
                &format!("cannot read the body: {e}"),
                None,
            ))
        }
    };
    let v: Value = match serde_json::from_slice(&body) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) => {
            return Ok(error(
                StatusCode::BAD_REQUEST,
                "the body must be a JSON object",
                None,
            ))
        }
        Err(e) => {
            return Ok(error(
                StatusCode::BAD_REQUEST,
                &format!("invalid JSON: {e}"),
                None,
            ))
        }
    };
    match completion(s, route, &v, created).await {
        Ok(r) => Ok(r),
        Err((status, msg, param)) => Ok(error(status, &msg, param)),
    }
}

type Refusal = (StatusCode, String, Option<&'static str>);

fn bad(msg: impl Into<String>, param: &'static str) -> Refusal {
    (StatusCode::BAD_REQUEST, msg.into(), Some(param))
}

/// Reads the sampling settings of a request.
fn sampling(v: &Value, chat: bool) -> Result<(SamplingParams, Option<u64>, bool), Refusal> {
    let num = |k: &'static str| -> Result<Option<f64>, Refusal> {
        match v.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(x) => x
                .as_f64()
                .map(Some)
                .ok_or_else(|| bad(format!("`{k}` must be a number"), k)),
        }
    };
    let int = |k: &'static str| -> Result<Option<u64>, Refusal> {
        match v.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(x) => x
                .as_u64()
                .map(Some)
                .ok_or_else(|| bad(format!("`{k}` must be a non-negative integer"), k)),
        }
    };
    let temperature = num("temperature")?.unwrap_or(1.0);
    if !(0.0..=2.0).contains(&temperature) {
        return Err(bad("`temperature` must be between 0 and 2", "temperature"));
    }
    let top_p = num("top_p")?.unwrap_or(1.0);
    if !(top_p > 0.0 && top_p <= 1.0) {
        return Err(bad("`top_p` must be in (0, 1]", "top_p"));
    }
    let n = int("n")?.unwrap_or(1) as usize;
    if !(1..=128).contains(&n) {
        return Err(bad("`n` must be between 1 and 128", "n"));
    }
    let max_tokens = if chat {
        int("max_completion_tokens")?.or(int("max_tokens")?)
    } else {
        int("max_tokens")?
    };
    let max_tokens = max_tokens.unwrap_or(if chat { 512 } else { 16 }) as usize;
    if max_tokens == 0 {
        return Err(bad("`max_tokens` must be at least 1", "max_tokens"));
    }
    let stop = match v.get("stop") {
        None | Some(Value::Null) => vec![],
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| x.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| bad("`stop` must be a string or a list of strings", "stop"))?,
        Some(_) => return Err(bad("`stop` must be a string or a list of strings", "stop")),
    };
    if stop.len() > 4 || stop.iter().any(String::is_empty) {
        return Err(bad("`stop` takes up to 4 non-empty strings", "stop"));
    }
    let stream = match v.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(bad("`stream` must be true or false", "stream")),
    };
    let params = SamplingParams {
        max_new_tokens: max_tokens,
        temperature,
        top_k: 0,
        top_p,
        seed: 0,
        n,
        stop_token_ids: vec![],
        stop_strings: stop,
    };
    Ok((params, int("seed")?, stream))
}

/// A sample's text: decoded, cut before the first stop string.
fn final_text(tok: &TextTokenizer, ids: &[i64], stops: &[String]) -> String {
    let mut t = tok.decode(ids, true).unwrap_or_default();
    if let Some(at) = generate::stop_at(&t, stops) {
        t.truncate(at);
    }
    t
}

async fn completion(
    s: Arc<Shared>,
    chat: bool,
    v: &Value,
    created: u64,
) -> Result<Response<Body>, Refusal> {
    if let Some(m) = v.get("model").and_then(Value::as_str) {
        if m != s.name {
            return Err((
                StatusCode::NOT_FOUND,
                format!(
                    "the model `{m}` does not exist; this server serves `{}`",
                    s.name
                ),
                Some("model"),
            ));
        }
    }
    let (params, seed, stream) = sampling(v, chat)?;
    let texts: Vec<Vec<i64>> = if chat {
        let messages = v
            .get("messages")
            .and_then(Value::as_array)
            .filter(|m| !m.is_empty())
            .ok_or_else(|| bad("`messages` must be a non-empty list", "messages"))?;
        for m in messages {
            if m.get("role").and_then(Value::as_str).is_none() {
                return Err(bad("every message needs a `role`", "messages"));
            }
        }
        if !s.tok.has_chat_template() {
            return Err(bad(
                "the model's tokenizer has no chat template: use /v1/completions",
                "messages",
            ));
        }
        let ids = s
            .tok
            .encode_chat(messages, true)
            .map_err(|e| bad(format!("cannot apply the chat template: {e}"), "messages"))?;
        vec![ids]
    } else {
        let prompts: Vec<String> = match v.get("prompt") {
            Some(Value::String(p)) => vec![p.clone()],
            Some(Value::Array(a)) if !a.is_empty() => a
                .iter()
                .map(|x| x.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| bad("`prompt` must be a string or a list of strings", "prompt"))?,
            _ => {
                return Err(bad(
                    "`prompt` must be a string or a list of strings",
                    "prompt",
                ))
            }
        };
        prompts
            .iter()
            .map(|p| {
                s.tok
                    .encode(p, true)
                    .map_err(|e| bad(format!("cannot tokenize the prompt: {e}"), "prompt"))
            })
            .collect::<Result<_, _>>()?
    };
    for ids in &texts {
        if ids.is_empty() {
            return Err(bad("the prompt encodes to no tokens", "prompt"));
        }
        if ids.len() + params.max_new_tokens > s.max_len {
            return Err(bad(
                format!(
                    "the prompt's {} tokens and max_tokens {} exceed the model's context of {} tokens",
                    ids.len(),
                    params.max_new_tokens,
                    s.max_len
                ),
                "max_tokens",
            ));
        }
    }
    // Without a seed, a fresh one; with one, each prompt of the request gets its own from it.
    let base = seed.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
    });
    let seeds = (0..texts.len())
        .map(|i| generate::prompt_seed(base, i))
        .collect();
    let prompt_tokens: usize = texts.iter().map(Vec::len).sum();
    let (tx, mut rx) = unbounded_channel();
    let n = params.n;
    let stops = params.stop_strings.clone();
    let choices = texts.len() * n;
    s.jobs
        .send(Job {
            prompts: texts,
            seeds,
            params,
            stream,
            reply: tx,
        })
        .map_err(|_| {
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the model thread has stopped".to_string(),
                None,
            )
        })?;
    let id = format!(
        "{}-{created}{:x}",
        if chat { "chatcmpl" } else { "cmpl" },
        base & 0xffff_ffff
    );
    let object = if chat {
        "chat.completion"
    } else {
        "text_completion"
    };
    let finish_reason = |f: Finish| match f {
        Finish::Length => "length",
        Finish::Eos | Finish::Stop => "stop",
    };
    if !stream {
        let out = loop {
            match rx.recv().await {
                Some(Event::Done(out)) => break out,
                Some(Event::Token { .. }) => {}
                Some(Event::Failed(e)) => {
                    return Err((StatusCode::INTERNAL_SERVER_ERROR, e, None));
                }
                None => {
                    return Err((
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "the model thread has stopped".into(),
                        None,
                    ))
                }
            }
        };
        let completion_tokens: usize = out.iter().map(|o| o.0.len()).sum();
        let choices: Vec<Value> = out
            .iter()
            .enumerate()
            .map(|(i, (ids, f))| {
                let text = final_text(&s.tok, ids, &stops);
                if chat {
                    json!({"index": i, "message": {"role": "assistant", "content": text},
                           "finish_reason": finish_reason(*f), "logprobs": null})
                } else {
                    json!({"index": i, "text": text, "finish_reason": finish_reason(*f), "logprobs": null})
                }
            })
            .collect();
        return Ok(full(
            StatusCode::OK,
            &json!({
                "id": id, "object": object, "created": created, "model": s.name,
                "choices": choices,
                "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                          "total_tokens": prompt_tokens + completion_tokens},
            }),
        ));
    }
    // Streaming: one event per text delta; text that could begin a stop string is held back.
    let chunk_object = if chat {
        "chat.completion.chunk"
    } else {
        "text_completion"
    };
    let name = s.name.clone();
    let hold = stops.iter().map(|x| x.chars().count()).max().unwrap_or(0);
    let (btx, brx) = unbounded_channel::<Bytes>();
    tokio::spawn(async move {
        let event = |delta: Value, i: usize, finish: Option<&str>| {
            let choice = if chat {
                json!({"index": i, "delta": delta, "finish_reason": finish, "logprobs": null})
            } else {
                json!({"index": i, "text": delta, "finish_reason": finish, "logprobs": null})
            };
            let v = json!({"id": id, "object": chunk_object, "created": created, "model": name,
                           "choices": [choice]});
            Bytes::from(format!("data: {v}\n\n"))
        };
        let mut ids: Vec<Vec<i64>> = vec![vec![]; choices];
        let mut sent: Vec<usize> = vec![0; choices];
        if chat {
            for i in 0..choices {
                let _ = btx.send(event(json!({"role": "assistant", "content": ""}), i, None));
            }
        }
        let delta = |t: &str| {
            if chat {
                json!({"content": t})
            } else {
                json!(t)
            }
        };
        loop {
            match rx.recv().await {
                Some(Event::Token { choice, token }) => {
                    ids[choice].push(token);
                    let text = s.tok.decode(&ids[choice], true).unwrap_or_default();
                    // A partial UTF-8 sequence decodes to U+FFFD: wait for the rest.
                    if text.ends_with('\u{fffd}') {
                        continue;
                    }
                    let chars: Vec<(usize, char)> = text.char_indices().collect();
                    let safe = chars.len().saturating_sub(hold);
                    let upto = chars.get(safe).map_or(text.len(), |c| c.0);
                    if upto > sent[choice] && text.is_char_boundary(sent[choice]) {
                        let _ = btx.send(event(delta(&text[sent[choice]..upto]), choice, None));
                        sent[choice] = upto;
                    }
                }
                Some(Event::Done(out)) => {
                    for (i, (ids, f)) in out.iter().enumerate() {
                        let text = final_text(&s.tok, ids, &stops);
                        let rest = text.get(sent[i].min(text.len())..).unwrap_or("");
                        if !rest.is_empty() {
                            let _ = btx.send(event(delta(rest), i, None));
                        }
                        let empty = if chat { json!({}) } else { json!("") };
                        let _ = btx.send(event(empty, i, Some(finish_reason(*f))));
                    }
                    break;
                }
                Some(Event::Failed(e)) => {
                    let v = json!({"error": {"message": e, "type": "server_error"}});
                    let _ = btx.send(Bytes::from(format!("data: {v}\n\n")));
                    break;
                }
                None => break,
            }
        }
        let _ = btx.send(Bytes::from_static(b"data: [DONE]\n\n"));
    });
    let stream = futures::stream::unfold(brx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
    });
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "text/event-stream")
        .header("cache-control", "no-cache")
        .body(BodyExt::boxed(StreamBody::new(stream)))
        .expect("a valid response"))
}
