//! The `kubernetes` executor against an in-process Kubernetes API server (no API server
//! installs offline), and against a real cluster when `KUBECONFIG` is set (opt-in).
//!
//! The in-process server speaks the part of the API that the executor uses — Jobs
//! (create, get, watch, delete), Pods (list, log) — and plays the kubelet: a created Job's
//! container command runs here as a process, with the Job's environment and its `envFrom`
//! Secrets and nothing else, its output kept as the pod's log; the Job's and the pod's
//! status follow the process (Running, then Complete, or Failed with the exit code).

mod common;
use common::{digests, node, port, text, wait_for_pid, Project};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// A pod: the process playing its container.
struct Pod {
    name: String,
    pid: i32,
    log: PathBuf,
    created: String,
    /// The container's exit code, once it ended (128 + N for a signal, as the kubelet says).
    exit: Option<i32>,
}

struct JobRec {
    object: serde_json::Value,
    pod: Pod,
}

#[derive(Default)]
struct State {
    version: u64,
    jobs: BTreeMap<String, JobRec>,
    /// Watch events: (resource version, job name, type, object).
    events: Vec<(u64, String, &'static str, serde_json::Value)>,
    /// Every Job manifest posted, as received, and what the server answered.
    posted: Vec<(serde_json::Value, u16)>,
    /// Jobs deleted through the API.
    deleted: Vec<String>,
    secrets: BTreeMap<String, BTreeMap<String, String>>,
}

/// The in-process API server.
struct FakeKube {
    shared: Arc<(Mutex<State>, Condvar)>,
    port: u16,
    _dir: tempfile::TempDir,
}

impl FakeKube {
    fn start(secrets: BTreeMap<String, BTreeMap<String, String>>) -> FakeKube {
        let listener = (0..20)
            .find_map(|slot| TcpListener::bind(("127.0.0.1", port(27000, slot))).ok())
            .expect("a free port for the API server");
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new((
            Mutex::new(State {
                secrets,
                ..Default::default()
            }),
            Condvar::new(),
        ));
        let dir = tempfile::tempdir().unwrap();
        let (s, logs) = (shared.clone(), dir.path().to_path_buf());
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (s, logs) = (s.clone(), logs.clone());
                std::thread::spawn(move || {
                    let _ = serve(conn, &s, &logs);
                });
            }
        });
        FakeKube {
            shared,
            port,
            _dir: dir,
        }
    }

    /// A kubeconfig for the server (plain HTTP, no credentials).
    fn kubeconfig(&self, p: &Project) -> PathBuf {
        p.write(
            "kubeconfig",
            &format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: http://127.0.0.1:{}\ncontexts:\n- name: test\n  context: {{cluster: test, user: test, namespace: zest}}\ncurrent-context: test\nusers:\n- name: test\n  user: {{}}\n",
                self.port
            ),
        )
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.shared.0.lock().unwrap()
    }

    /// Names of Jobs created (answered 201), in order.
    fn created(&self) -> Vec<String> {
        self.state()
            .posted
            .iter()
            .filter(|(_, code)| *code == 201)
            .map(|(m, _)| {
                m["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect()
    }
}

impl Drop for FakeKube {
    fn drop(&mut self) {
        for j in self.state().jobs.values() {
            unsafe {
                libc::kill(-j.pod.pid, libc::SIGKILL);
            }
        }
    }
}

fn now() -> String {
    // RFC 3339 with the seconds of this test run; ordering within a second is by name.
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let (days, secs) = (t / 86400, t % 86400);
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let z = days as i64 + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

fn status_json(code: u16, reason: &str, message: &str) -> serde_json::Value {
    serde_json::json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": reason, "code": code,
    })
}

/// Bumps the resource version, sets it on `object` and records a watch event.
fn record(st: &mut State, name: &str, kind: &'static str, object: &mut serde_json::Value) {
    st.version += 1;
    object["metadata"]["resourceVersion"] = st.version.to_string().into();
    st.events
        .push((st.version, name.to_string(), kind, object.clone()));
}

fn pod_json(job: &str, p: &Pod) -> serde_json::Value {
    let state = match p.exit {
        None => serde_json::json!({"running": {"startedAt": p.created}}),
        Some(code) => serde_json::json!({"terminated": {
            "exitCode": code,
            "reason": if code == 0 { "Completed" } else { "Error" },
        }}),
    };
    serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": p.name, "namespace": "zest", "creationTimestamp": p.created,
            "labels": {"batch.kubernetes.io/job-name": job, "job-name": job},
        },
        "status": {
            "phase": match p.exit { None => "Running", Some(0) => "Succeeded", Some(_) => "Failed" },
            "containerStatuses": [{
                "name": "node", "image": "zest", "imageID": "", "ready": p.exit.is_none(),
                "restartCount": 0, "state": state,
            }],
        },
    })
}

/// Starts the Job's container as a process; returns its pod.
fn start_pod(st: &State, name: &str, job: &serde_json::Value, logs: &Path) -> Result<Pod, String> {
    let c = &job["spec"]["template"]["spec"]["containers"][0];
    let command: Vec<String> = c["command"]
        .as_array()
        .ok_or("no command")?
        .iter()
        .map(|v| v.as_str().unwrap_or_default().to_string())
        .collect();
    let mut cmd = std::process::Command::new(&command[0]);
    cmd.args(&command[1..])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOSTNAME", name);
    for e in c["env"].as_array().into_iter().flatten() {
        cmd.env(
            e["name"].as_str().unwrap_or_default(),
            e["value"].as_str().unwrap_or_default(),
        );
    }
    for f in c["envFrom"].as_array().into_iter().flatten() {
        let secret = f["secretRef"]["name"].as_str().unwrap_or_default();
        let values = st
            .secrets
            .get(secret)
            .ok_or_else(|| format!("secret {secret} not found"))?;
        cmd.envs(values);
    }
    // The image's WORKDIR, unless the manifest names one.
    let wd = c["workingDir"]
        .as_str()
        .map(PathBuf::from)
        .unwrap_or_else(|| logs.join("image-workdir"));
    std::fs::create_dir_all(&wd).map_err(|e| e.to_string())?;
    let pod_name = format!("{name}-{:05x}", st.version % 0xfffff);
    let log = logs.join(format!("{pod_name}.log"));
    let out = std::fs::File::create(&log).map_err(|e| e.to_string())?;
    let child = cmd
        .current_dir(&wd)
        .stdin(std::process::Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .process_group(0)
        .spawn()
        .map_err(|e| e.to_string())?;
    // The process is reaped by `watch_pod` (the kubelet's side: its end becomes the status).
    Ok(Pod {
        name: pod_name,
        pid: child.id() as i32,
        log,
        created: now(),
        exit: None,
    })
}

fn job_status(object: &mut serde_json::Value, exit: Option<i32>) {
    object["status"] = match exit {
        None => serde_json::json!({"active": 1, "ready": 1, "startTime": now()}),
        Some(0) => serde_json::json!({"succeeded": 1, "completionTime": now(), "conditions": [
            {"type": "SuccessCriteriaMet", "status": "True"},
            {"type": "Complete", "status": "True"},
        ]}),
        Some(_) => serde_json::json!({"failed": 1, "conditions": [
            {"type": "FailureTarget", "status": "True", "reason": "BackoffLimitExceeded"},
            {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
             "message": "Job has reached the specified backoff limit"},
        ]}),
    };
}

/// Waits for a pod's process and records its end.
fn watch_pod(shared: Arc<(Mutex<State>, Condvar)>, job: String, pid: i32) {
    std::thread::spawn(move || {
        let mut status = 0;
        unsafe {
            libc::waitpid(pid, &mut status, 0);
            // The container ends with its main process.
            libc::kill(-pid, libc::SIGKILL);
        }
        let st = std::process::ExitStatus::from_raw(status);
        let code = st.code().unwrap_or_else(|| 128 + st.signal().unwrap_or(0));
        let (m, cv) = &*shared;
        let mut s = m.lock().unwrap();
        let Some(mut object) = s.jobs.get(&job).map(|j| j.object.clone()) else {
            return;
        };
        job_status(&mut object, Some(code));
        record(&mut s, &job, "MODIFIED", &mut object);
        if let Some(j) = s.jobs.get_mut(&job) {
            j.object = object;
            j.pod.exit = Some(code);
        }
        cv.notify_all();
    });
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = vec![];
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let h = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("00");
                out.push(u8::from_str_radix(h, 16).unwrap_or(b'?'));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).to_string()
}

fn respond(conn: &mut TcpStream, code: u16, ctype: &str, body: &[u8]) -> std::io::Result<()> {
    write!(
        conn,
        "HTTP/1.1 {code} X\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    conn.write_all(body)
}

fn respond_json(conn: &mut TcpStream, code: u16, v: &serde_json::Value) -> std::io::Result<()> {
    respond(conn, code, "application/json", v.to_string().as_bytes())
}

/// Serves one request (the server closes every connection after its answer).
fn serve(
    mut conn: TcpStream,
    shared: &Arc<(Mutex<State>, Condvar)>,
    logs: &Path,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let mut length = 0;
    loop {
        let mut h = String::new();
        reader.read_line(&mut h)?;
        if h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let q: BTreeMap<String, String> = query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), decode(v)))
        .collect();
    let seg: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (m, cv) = &**shared;
    match (method, seg.as_slice()) {
        ("POST", ["apis", "batch", "v1", "namespaces", _, "jobs"]) => {
            let mut job: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            let name = job["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let mut st = m.lock().unwrap();
            if st.jobs.contains_key(&name) {
                st.posted.push((job, 409));
                let s = status_json(
                    409,
                    "AlreadyExists",
                    &format!("jobs.batch \"{name}\" already exists"),
                );
                drop(st);
                return respond_json(&mut conn, 409, &s);
            }
            st.posted.push((job.clone(), 201));
            job["metadata"]["uid"] = format!("uid-{name}").into();
            job["metadata"]["creationTimestamp"] = now().into();
            let pod = match start_pod(&st, &name, &job, logs) {
                Ok(p) => p,
                Err(e) => {
                    drop(st);
                    return respond_json(&mut conn, 422, &status_json(422, "Invalid", &e));
                }
            };
            job_status(&mut job, None);
            record(&mut st, &name, "ADDED", &mut job);
            let pid = pod.pid;
            st.jobs.insert(
                name.clone(),
                JobRec {
                    object: job.clone(),
                    pod,
                },
            );
            cv.notify_all();
            drop(st);
            watch_pod(shared.clone(), name, pid);
            respond_json(&mut conn, 201, &job)
        }
        ("GET", ["apis", "batch", "v1", "namespaces", _, "jobs"])
            if q.get("watch").map(String::as_str) == Some("true") =>
        {
            let name = q
                .get("fieldSelector")
                .and_then(|f| f.strip_prefix("metadata.name="))
                .unwrap_or_default()
                .to_string();
            let mut from: u64 = q
                .get("resourceVersion")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let secs: u64 = q
                .get("timeoutSeconds")
                .and_then(|v| v.parse().ok())
                .unwrap_or(30);
            write!(
                conn,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            )?;
            let until = Instant::now() + Duration::from_secs(secs);
            let mut st = m.lock().unwrap();
            loop {
                let new: Vec<(u64, String)> = st
                    .events
                    .iter()
                    .filter(|(v, n, _, _)| *v > from && *n == name)
                    .map(|(v, _, t, o)| {
                        (
                            *v,
                            serde_json::json!({"type": t, "object": o}).to_string() + "\n",
                        )
                    })
                    .collect();
                for (v, line) in new {
                    from = v;
                    write!(conn, "{:x}\r\n{line}\r\n", line.len())?;
                }
                let left = until.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                st = cv.wait_timeout(st, left).unwrap().0;
            }
            drop(st);
            write!(conn, "0\r\n\r\n")
        }
        ("GET", ["apis", "batch", "v1", "namespaces", _, "jobs", name]) => {
            let st = m.lock().unwrap();
            match st.jobs.get(*name) {
                Some(j) => {
                    let o = j.object.clone();
                    drop(st);
                    respond_json(&mut conn, 200, &o)
                }
                None => {
                    drop(st);
                    let s =
                        status_json(404, "NotFound", &format!("jobs.batch \"{name}\" not found"));
                    respond_json(&mut conn, 404, &s)
                }
            }
        }
        ("DELETE", ["apis", "batch", "v1", "namespaces", _, "jobs", name]) => {
            let name = name.to_string();
            let pid = {
                let mut st = m.lock().unwrap();
                st.deleted.push(name.clone());
                st.jobs.get(&name).map(|j| j.pod.pid)
            };
            let Some(pid) = pid else {
                let s = status_json(404, "NotFound", &format!("jobs.batch \"{name}\" not found"));
                return respond_json(&mut conn, 404, &s);
            };
            // The kubelet's termination: SIGTERM, then SIGKILL after a grace period.
            unsafe {
                libc::kill(-pid, libc::SIGTERM);
            }
            let until = Instant::now() + Duration::from_secs(5);
            loop {
                let ended = m
                    .lock()
                    .unwrap()
                    .jobs
                    .get(&name)
                    .is_none_or(|j| j.pod.exit.is_some());
                if ended || Instant::now() > until {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
            }
            let mut st = m.lock().unwrap();
            let mut object = st.jobs.remove(&name).map(|j| j.object).unwrap_or_default();
            record(&mut st, &name, "DELETED", &mut object);
            cv.notify_all();
            drop(st);
            respond_json(&mut conn, 200, &object)
        }
        ("GET", ["api", "v1", "namespaces", _, "pods"]) => {
            let job = q
                .get("labelSelector")
                .and_then(|l| l.strip_prefix("batch.kubernetes.io/job-name="))
                .unwrap_or_default();
            let st = m.lock().unwrap();
            let items: Vec<serde_json::Value> = st
                .jobs
                .get(job)
                .map(|j| pod_json(job, &j.pod))
                .into_iter()
                .collect();
            drop(st);
            respond_json(
                &mut conn,
                200,
                &serde_json::json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": items}),
            )
        }
        ("GET", ["api", "v1", "namespaces", _, "pods", pod, "log"]) => {
            let st = m.lock().unwrap();
            let log = st
                .jobs
                .values()
                .find(|j| j.pod.name == *pod)
                .map(|j| j.pod.log.clone());
            drop(st);
            match log {
                Some(path) => respond(
                    &mut conn,
                    200,
                    "text/plain",
                    &std::fs::read(path).unwrap_or_default(),
                ),
                None => respond_json(
                    &mut conn,
                    404,
                    &status_json(404, "NotFound", "pod not found"),
                ),
            }
        }
        _ => respond_json(
            &mut conn,
            404,
            &status_json(404, "NotFound", &format!("{method} {path}")),
        ),
    }
}

const DATA_DAG: &str = r#"
params:
  token: {type: secret, env: ZEST_TEST_API_TOKEN}
nodes:
  load:
    op: data.load
    with: {paths: ["DATA/*.jsonl"]}
  short:
    op: data.sql
    in: {docs: load.data}
    with: {query: "SELECT id, text FROM docs WHERE id < 3 ORDER BY id"}
  copy:
    op: shell
    in: {d: short.data}
    with:
      run: "echo token=${params.token}; cp $ZEST_IN_D/data.parquet $ZEST_OUT/copy.parquet"
"#;

/// An executors file whose default profile runs every node as a Job on the fake cluster.
fn executors(p: &Project, kube: &FakeKube) {
    let kubeconfig = kube.kubeconfig(p);
    p.write(
        "executors.yaml",
        &format!(
            "default: cluster\nprofiles:\n  cluster:\n    kind: kubernetes\n    kubeconfig: {}\n    image: zest:test\n    secrets: [zest-s3]\n    zest: {}\n    work_dir: {}\n    poll: 2s\n    env: [ZEST_TEST_PLAIN]\n",
            kubeconfig.display(),
            common::bin().display(),
            p.path().join("pods").display(),
        ),
    );
}

const TOKEN: &str = "tok-9f8e7d6c5b4a";
const STORE_KEY: &str = "sk-test-0123456789abcdef";

fn secrets() -> BTreeMap<String, BTreeMap<String, String>> {
    [(
        "zest-s3".to_string(),
        [
            ("ZEST_TEST_API_TOKEN".to_string(), TOKEN.to_string()),
            ("AWS_SECRET_ACCESS_KEY".to_string(), STORE_KEY.to_string()),
        ]
        .into(),
    )]
    .into()
}

#[test]
fn runs_as_kubernetes_jobs_with_the_digests_of_a_local_run_and_no_secret_in_a_manifest() {
    let kube = FakeKube::start(secrets());
    let p = Project::new();
    p.write(
        "data/a.jsonl",
        "{\"id\": 1, \"text\": \"insulin\"}\n{\"id\": 2, \"text\": \"heparin\"}\n{\"id\": 3, \"text\": \"warfarin\"}\n",
    );
    let data = p.path().join("data");
    p.write(
        "dag.yaml",
        &DATA_DAG.replace("DATA", &data.display().to_string()),
    );
    executors(&p, &kube);
    let zest = |args: &[&str]| {
        p.cmd()
            .env("ZEST_TEST_API_TOKEN", TOKEN)
            .env("AWS_SECRET_ACCESS_KEY", STORE_KEY)
            .env("AWS_REGION", "eu-west-1")
            .env("ZEST_TEST_PLAIN", "plain-value")
            .args(args)
            .output()
            .unwrap()
    };
    let o = zest(&[
        "run",
        "dag.yaml",
        "--store",
        "local-store",
        "--report",
        "local.json",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let store = p.path().join("cluster-store");
    let o = zest(&[
        "run",
        "dag.yaml",
        "--store",
        store.to_str().unwrap(),
        "--executor-config",
        "executors.yaml",
        "--report",
        "k8s.json",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let (local, k8s) = (p.json("local.json"), p.json("k8s.json"));
    assert_eq!(digests(&local), digests(&k8s));
    let run_id = k8s["run_id"].as_str().unwrap();
    let created = kube.created();
    assert_eq!(
        created,
        ["load", "short", "copy"]
            .iter()
            .map(|n| format!("zest-{run_id}-{n}-1"))
            .collect::<Vec<_>>(),
        "one Job per node, named by run, node and attempt"
    );
    // The pod's output came back into the node's log, the secret hidden.
    let log = std::fs::read_to_string(node(&k8s, "copy")["log"].as_str().unwrap()).unwrap();
    assert!(
        log.contains(&format!("ran as Kubernetes Job zest-{run_id}-copy-1")),
        "{log}"
    );
    assert!(log.contains("token=***"), "{log}");
    assert!(!log.contains(TOKEN), "{log}");
    // The manifests: what was asked for, and no secret value anywhere.
    let st = kube.state();
    for (m, _) in &st.posted {
        let text = m.to_string();
        assert!(!text.contains(TOKEN) && !text.contains(STORE_KEY), "{text}");
        let c = &m["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(c["envFrom"][0]["secretRef"]["name"], "zest-s3");
        assert_eq!(m["spec"]["backoffLimit"], 0);
        let env: BTreeMap<&str, &str> = c["env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["name"].as_str().unwrap(), e["value"].as_str().unwrap()))
            .collect();
        assert_eq!(env.get("AWS_REGION"), Some(&"eu-west-1"), "{env:?}");
        assert_eq!(env.get("ZEST_TEST_PLAIN"), Some(&"plain-value"), "{env:?}");
        assert_eq!(
            env.get("ZEST_STORE"),
            Some(&store.to_str().unwrap()),
            "{env:?}"
        );
        assert!(!env.contains_key("AWS_SECRET_ACCESS_KEY"), "{env:?}");
        assert_eq!(c["command"][1], "node");
    }
    // Finished Jobs are left to their TTL, not deleted.
    assert!(st.deleted.is_empty(), "{:?}", st.deleted);
    let journal =
        std::fs::read_to_string(p.path().join(format!(".zest/runs/{run_id}/journal.jsonl")))
            .unwrap();
    assert!(!journal.contains(TOKEN) && !journal.contains(STORE_KEY));
}

/// The texts of the files called `name` under `runs/*/logs/`.
fn glob_logs(runs: &Path, name: &str) -> Vec<String> {
    std::fs::read_dir(runs)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|run| std::fs::read_to_string(run.path().join("logs").join(name)).ok())
        .collect()
}

#[test]
fn a_failed_pod_is_retried_a_killed_zest_reattaches_and_a_cancel_deletes_the_job() {
    let kube = FakeKube::start(secrets());
    let p = Project::new();
    executors(&p, &kube);
    let marks = p.path().join("marks");
    let pids = p.path().join("pids");
    std::fs::create_dir_all(&pids).unwrap();
    // `flaky`'s first attempt kills its pod's main process (`zest node exec`, the shell's
    // parent); `long` runs long enough for zest to be killed under it.
    p.write(
        "dag.yaml",
        &format!(
            r#"
nodes:
  flaky:
    op: shell
    retries: {{max: 1, backoff: 100ms}}
    with:
      run: |
        echo "flaky $ZEST_ATTEMPT" >> {marks}
        if [ "$ZEST_ATTEMPT" = 1 ]; then kill -9 $PPID; sleep 30; fi
        echo ok > $ZEST_OUT/ok
  long:
    op: shell
    in: {{f: flaky.out}}
    with:
      run: |
        echo "long $ZEST_ATTEMPT" >> {marks}
        echo $$ > {pids}/long
        sleep 8
        echo done > $ZEST_OUT/done
"#,
            marks = marks.display(),
            pids = pids.display()
        ),
    );
    let mut child = p
        .cmd()
        .args(["run", "dag.yaml", "--executor-config", "executors.yaml"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for_pid(&pids.join("long"), "long");
    unsafe {
        libc::kill(child.id() as i32, libc::SIGKILL);
    }
    let _ = child.wait();
    let runs = p.zest(&["runs", "--json"]);
    let runs: serde_json::Value = serde_json::from_slice(&runs.stdout).unwrap();
    let run_id = runs[0]["run_id"].as_str().unwrap().to_string();
    let o = p.zest(&[
        "resume",
        &run_id,
        "--executor-config",
        "executors.yaml",
        "--report",
        "run.json",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let r = p.json("run.json");
    assert_eq!(node(&r, "flaky")["attempts"], 2, "{r}");
    assert_eq!(
        std::fs::read_to_string(&marks)
            .unwrap()
            .lines()
            .collect::<Vec<_>>(),
        vec!["flaky 1", "flaky 2", "long 1"],
        "`long` ran once: the resumed run attached to its Job"
    );
    let long = format!("zest-{run_id}-long-1");
    {
        let st = kube.state();
        let answers: Vec<u16> = st
            .posted
            .iter()
            .filter(|(m, _)| m["metadata"]["name"] == long.as_str())
            .map(|(_, c)| *c)
            .collect();
        assert_eq!(
            answers,
            vec![201, 409],
            "the second submission found the Job"
        );
    }
    let journal =
        std::fs::read_to_string(p.path().join(format!(".zest/runs/{run_id}/journal.jsonl")))
            .unwrap();
    let failed: Vec<&str> = journal
        .lines()
        .filter(|l| l.contains("\"attempt_failed\""))
        .collect();
    assert_eq!(failed.len(), 1, "{journal}");
    assert!(
        failed[0].contains(&format!(
            "Kubernetes Job zest-{run_id}-flaky-1 failed [BackoffLimitExceeded]"
        )) && failed[0].contains("killed by SIGKILL"),
        "{}",
        failed[0]
    );
    let log = std::fs::read_to_string(node(&r, "long")["log"].as_str().unwrap()).unwrap();
    assert!(
        log.contains("found running from an earlier session"),
        "{log}"
    );

    // Cancelling a run deletes its running Job (and the pod's processes with it), after
    // copying what the pod wrote.
    p.write(
        "slow.yaml",
        &format!(
            "nodes:\n  slow:\n    op: shell\n    with:\n      run: |\n        echo started-slow\n        echo $$ > {pids}/slow\n        sleep 300\n",
            pids = pids.display()
        ),
    );
    let mut child = p
        .cmd()
        .args(["run", "slow.yaml", "--executor-config", "executors.yaml"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let shell = wait_for_pid(&pids.join("slow"), "slow");
    // The pod's output reaches the node's log while the pod runs.
    let deadline = Instant::now() + Duration::from_secs(60);
    let live = loop {
        let logs = glob_logs(&p.path().join(".zest/runs"), "slow.log");
        if let Some(l) = logs.iter().find(|l| l.contains("started-slow")) {
            break l.clone();
        }
        assert!(
            Instant::now() < deadline,
            "the running pod's log was not copied: {logs:?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    assert!(live.contains("ran as Kubernetes Job zest-"), "{live}");
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let deadline = Instant::now() + Duration::from_secs(90);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "zest did not stop after Ctrl-C");
        std::thread::sleep(Duration::from_millis(100));
    }
    let runs = p.zest(&["runs", "--json"]);
    let runs: serde_json::Value = serde_json::from_slice(&runs.stdout).unwrap();
    let slow_run = runs[0]["run_id"].as_str().unwrap().to_string();
    let job = format!("zest-{slow_run}-slow-1");
    assert!(
        kube.state().deleted.contains(&job),
        "{:?}",
        kube.state().deleted
    );
    // Gone, or a zombie that its new parent has not reaped yet.
    let running = |pid: i32| {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| s.rsplit(')').next().map(|r| r.trim().to_string()))
            .is_some_and(|r| !r.starts_with('Z'))
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while running(shell) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!running(shell), "the pod's processes are gone");
    let log = std::fs::read_to_string(
        p.path()
            .join(format!(".zest/runs/{slow_run}/logs/slow.log")),
    )
    .unwrap_or_default();
    assert!(log.contains("started-slow"), "{log}");
}

/// Opt-in: a real cluster (`KUBECONFIG` set, and `ZEST_K8S_IMAGE` an image with zest's
/// binaries that the cluster can pull; `ZEST_K8S_NAMESPACE` [default `default`]). A `shell`
/// node runs as a Job there over a local store is not possible, so the node writes nothing
/// to the store: `zest node exec` reports its result through `ZEST_K8S_STORE` (an S3 URL the
/// cluster reaches, with the `AWS_*` credentials in Secret `ZEST_K8S_SECRET`).
#[test]
#[ignore = "needs a Kubernetes cluster: KUBECONFIG, ZEST_K8S_IMAGE, ZEST_K8S_STORE, ZEST_K8S_SECRET"]
fn runs_on_a_real_cluster() {
    let need = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("set {k}"));
    let (image, store, secret) = (
        need("ZEST_K8S_IMAGE"),
        need("ZEST_K8S_STORE"),
        need("ZEST_K8S_SECRET"),
    );
    let ns = std::env::var("ZEST_K8S_NAMESPACE").unwrap_or_else(|_| "default".into());
    let p = Project::new();
    p.write(
        "executors.yaml",
        &format!(
            "default: cluster\nprofiles:\n  cluster:\n    kind: kubernetes\n    namespace: {ns}\n    image: {image}\n    secrets: [{secret}]\n    ttl_seconds_after_finished: 300\n"
        ),
    );
    p.write(
        "dag.yaml",
        "nodes:\n  hello:\n    op: shell\n    with: {run: \"echo hello from $HOSTNAME; echo hi > $ZEST_OUT/hi\"}\n",
    );
    let o = p.zest(&[
        "run",
        "dag.yaml",
        "--store",
        &store,
        "--executor-config",
        "executors.yaml",
        "--report",
        "run.json",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let r = p.json("run.json");
    let log = std::fs::read_to_string(node(&r, "hello")["log"].as_str().unwrap()).unwrap();
    assert!(log.contains("hello from zest-"), "{log}");
}
