//! OpenTelemetry export: a real OTLP receiver (otelite, started by the test) reads back the
//! trace over its API, for OTLP/HTTP and OTLP/gRPC. otelite does not keep span links, so
//! links are checked on the wire by decoding the OTLP/HTTP requests zest sends.

mod common;
use common::{node, port, text, Project, Service};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use std::io::{BufRead, BufReader, Read, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const DAG: &str = r#"
name: traced
nodes:
  load:
    op: data.load
    with: {paths: ["data/*.jsonl"]}
  short:
    op: data.sql
    in: {docs: load.data}
    with: {query: "SELECT * FROM docs ORDER BY id"}
  broken:
    op: shell
    with: {run: "echo failing on purpose >&2; exit 4"}
"#;

fn project() -> Project {
    let p = Project::new();
    p.write(
        "data/a.jsonl",
        "{\"id\": 1, \"text\": \"ibuprofen\"}\n{\"id\": 2, \"text\": \"naproxen\"}\n",
    );
    p.write("dag.yaml", DAG);
    p
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn get_json(url: &str) -> Option<serde_json::Value> {
    let out = std::process::Command::new("curl")
        .args(["-sf", "--max-time", "5", url])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

fn fetch_trace(api: &str, trace_id: &str, spans: usize) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(t) = get_json(&format!("{api}/api/traces/{trace_id}")) {
            if t["spans"].as_array().is_some_and(|s| s.len() >= spans) {
                return t;
            }
        }
        assert!(
            Instant::now() < deadline,
            "trace {trace_id} did not arrive with {spans} spans"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn span<'a>(t: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    t["spans"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no span {name} in {t}"))
}

#[test]
fn traces_reach_otelite_over_http_and_grpc() {
    let dir = tempfile::tempdir().unwrap();
    let (http, grpc, api) = (port(14000, 0), port(14000, 1), port(14000, 2));
    let svc = Service::start(
        "otelite",
        dir.path(),
        &[http.to_string(), grpc.to_string(), api.to_string()],
    );
    let api_url = svc.get("ZEST_OTELITE_API_URL");
    let p = project();

    let parent_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent_span = "00f067aa0ba902b7";
    let o = p
        .cmd()
        .env(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://127.0.0.1:{http}"),
        )
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
        .env("TRACEPARENT", format!("00-{parent_trace}-{parent_span}-01"))
        .args(["run", "dag.yaml", "--report", "r1.json"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let r1 = p.json("r1.json");
    assert_eq!(
        r1["trace_id"], parent_trace,
        "TRACEPARENT makes the run part of the CI trace"
    );
    let t = fetch_trace(&api_url, parent_trace, 4);
    let run = span(&t, "run traced");
    assert_eq!(run["parent_span_id"], parent_span);
    assert_eq!(run["attributes"]["zest.run_id"], r1["run_id"]);
    let run_span = run["span_id"].as_str().unwrap();
    let load = span(&t, "load");
    let short = span(&t, "short");
    for s in [load, short] {
        assert_eq!(s["parent_span_id"], run_span);
        assert_eq!(s["status"]["code"], "Ok", "{s}");
        assert_eq!(s["attributes"]["zest.cache_hit"], "false");
    }
    assert_eq!(short["attributes"]["zest.node"], "short");
    assert_eq!(short["attributes"]["zest.op"], "data.sql");
    let load_digest = node(&r1, "load")["outputs"]["data"]["digest"]
        .as_str()
        .unwrap();
    let short_out = &node(&r1, "short")["outputs"]["data"];
    assert_eq!(short["attributes"]["zest.input.docs"], load_digest);
    assert_eq!(short["attributes"]["zest.output.data"], short_out["digest"]);
    assert_eq!(
        short["attributes"]["zest.output.data.uri"],
        short_out["uri"]
    );
    assert!(short["events"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["name"] == "attempt.start"));
    let broken = span(&t, "broken");
    assert_eq!(broken["status"]["code"], "Error");
    assert!(
        broken["status"]["message"]
            .as_str()
            .unwrap()
            .contains("exited with code 4"),
        "{broken}"
    );
    assert_eq!(run["status"]["code"], "Error");

    // Over gRPC, with everything cached.
    let o = p
        .cmd()
        .env(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://127.0.0.1:{grpc}"),
        )
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
        .args(["run", "dag.yaml", "--report", "r2.json"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let r2 = p.json("r2.json");
    let trace2 = r2["trace_id"].as_str().unwrap();
    assert_ne!(trace2, parent_trace);
    let t2 = fetch_trace(&api_url, trace2, 4);
    let short2 = span(&t2, "short");
    assert_eq!(short2["attributes"]["zest.cache_hit"], "true");
    assert_eq!(short2["attributes"]["zest.producer.run_id"], r1["run_id"]);
    assert_eq!(
        short2["attributes"]["zest.output.data"],
        short_out["digest"]
    );
}

/// A minimal OTLP/HTTP receiver that keeps the raw protobuf requests.
fn capture_server(port: u16) -> Arc<Mutex<Vec<Vec<u8>>>> {
    let bodies = Arc::new(Mutex::new(vec![]));
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).expect("bind capture port");
    let keep = bodies.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let keep = keep.clone();
            std::thread::spawn(move || {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
                let mut w = stream.try_clone().unwrap();
                let mut r = BufReader::new(stream);
                loop {
                    let mut len = 0usize;
                    let mut line = String::new();
                    let mut first = true;
                    loop {
                        line.clear();
                        if r.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if first {
                            first = false;
                        }
                        let l = line.trim_end();
                        if l.is_empty() {
                            break;
                        }
                        if let Some((k, v)) = l.split_once(':') {
                            if k.eq_ignore_ascii_case("content-length") {
                                len = v.trim().parse().unwrap_or(0);
                            }
                        }
                    }
                    let mut body = vec![0u8; len];
                    if r.read_exact(&mut body).is_err() {
                        return;
                    }
                    keep.lock().unwrap().push(body);
                    let _ = w.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n");
                }
            });
        }
    });
    bodies
}

struct WireSpan {
    trace: String,
    span: String,
    name: String,
    links: Vec<(String, String)>,
}

fn wire_spans(bodies: &Arc<Mutex<Vec<Vec<u8>>>>) -> Vec<WireSpan> {
    let mut out = vec![];
    for b in bodies.lock().unwrap().iter() {
        let req = ExportTraceServiceRequest::decode(b.as_slice()).expect("valid OTLP protobuf");
        for rs in req.resource_spans {
            for ss in rs.scope_spans {
                for s in ss.spans {
                    out.push(WireSpan {
                        trace: hex(&s.trace_id),
                        span: hex(&s.span_id),
                        name: s.name.clone(),
                        links: s
                            .links
                            .iter()
                            .map(|l| (hex(&l.trace_id), hex(&l.span_id)))
                            .collect(),
                    });
                }
            }
        }
    }
    out
}

#[test]
fn spans_link_to_the_producers_of_their_inputs_across_runs() {
    let cap = port(15000, 3);
    let bodies = capture_server(cap);
    let p = project();
    let run = |report: &str| {
        let o = p
            .cmd()
            .env(
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                format!("http://127.0.0.1:{cap}"),
            )
            .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
            .args(["run", "dag.yaml", "--report", report])
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    };
    run("r1.json");
    let spans = wire_spans(&bodies);
    let load = spans
        .iter()
        .find(|s| s.name == "load")
        .expect("load span exported");
    let short = spans
        .iter()
        .find(|s| s.name == "short")
        .expect("short span exported");
    assert_eq!(
        short.links,
        vec![(load.trace.clone(), load.span.clone())],
        "short links to the producer of its input"
    );
    let (t1, load_span, short_span) = (load.trace.clone(), load.span.clone(), short.span.clone());

    bodies.lock().unwrap().clear();
    run("r2.json");
    let spans = wire_spans(&bodies);
    let short2 = spans
        .iter()
        .find(|s| s.name == "short")
        .expect("short span exported");
    assert_ne!(short2.trace, t1);
    // A cache hit links to the span that produced its input and to the span that first
    // produced its own outputs, both in the earlier run's trace.
    assert!(
        short2.links.contains(&(t1.clone(), load_span.clone())),
        "{:?}",
        short2.links
    );
    assert!(
        short2.links.contains(&(t1.clone(), short_span.clone())),
        "{:?}",
        short2.links
    );
}
