# shellcheck shell=bash
# Test services for zest's integration tests and CI. Source this file:
#
#   source infra/scripts/test-services.sh
#   start_otelite "$dir" 14318 14317          # OTLP/HTTP, OTLP/gRPC [, API port]
#   start_seaweed "$dir" 18333 zest-test      # S3 port [, buckets to create...]
#   start_ray "$dir" 16000 2                  # GCS port (uses +0..+299) [, fake GPUs]
#   ...
#   stop_service "$dir" otelite
#   stop_service "$dir" seaweed
#
# Binaries come from infra/scripts/install-test-tools.sh, under
# ${ZEST_TOOLS_DIR:-$HOME/.cache/zest-tools}. Everything binds to 127.0.0.1.
# Each service writes DIR/NAME.log, DIR/NAME.pid and DIR/NAME.env (a file of
# `export VAR=...` lines describing the endpoints; the start functions also
# export the same variables into the calling shell).
#
# Env knobs:
#   ZEST_TOOLS_DIR         install root (default $HOME/.cache/zest-tools)
#   ZEST_SERVICE_TIMEOUT   readiness timeout in seconds (default 60)
#   ZEST_STOP_TIMEOUT      seconds to wait after SIGTERM before SIGKILL (default 15)
#   ZEST_S3_ACCESS_KEY / ZEST_S3_SECRET_KEY   S3 credentials SeaweedFS accepts
#                          (defaults zest-access / zest-secret-key)

_zts_tools_dir() { printf '%s\n' "${ZEST_TOOLS_DIR:-$HOME/.cache/zest-tools}"; }

_zts_log() { printf '[test-services] %s\n' "$*" >&2; }

_zts_fail() {
    # _zts_fail MSG [LOGFILE]
    _zts_log "ERROR: $1"
    if [[ -n "${2:-}" && -f "$2" ]]; then
        _zts_log "last lines of $2:"
        tail -n 30 "$2" | sed 's/^/    /' >&2
    fi
    return 1
}

_zts_check_port() {
    # A port must be an integer in [1024, 32767] and nothing may listen on it.
    local port="$1"
    if ! [[ "$port" =~ ^[0-9]+$ ]] || (( port < 1024 || port > 32767 )); then
        _zts_fail "port '$port' is not in 1024..32767"
        return 1
    fi
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        _zts_fail "port $port on 127.0.0.1 is already in use"
        return 1
    fi
}

_zts_tcp_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

_zts_http_code() {
    # prints the HTTP status code, 000 if no answer
    curl -s -o /dev/null -m 2 -w '%{http_code}' "$@" 2>/dev/null || true
}

_zts_prepare() {
    # _zts_prepare DIR NAME: refuse to start over a live instance.
    local dir="$1" name="$2" pid
    mkdir -p "$dir"
    if [[ -f "$dir/$name.pid" ]]; then
        pid="$(cat "$dir/$name.pid" 2>/dev/null || true)"
        if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
            _zts_fail "$name already running in $dir (pid $pid); stop_service it first"
            return 1
        fi
        rm -f "$dir/$name.pid"
    fi
}

_zts_wait_ready() {
    # _zts_wait_ready NAME PID LOG CHECK_FUNCTION [ARGS...]
    # Polls CHECK_FUNCTION every 0.2 s until it succeeds (0), fails for good
    # (2), the process dies, or ZEST_SERVICE_TIMEOUT seconds pass.
    local name="$1" pid="$2" log="$3"
    shift 3
    local timeout="${ZEST_SERVICE_TIMEOUT:-60}"
    local start=$SECONDS
    while :; do
        if ! kill -0 "$pid" 2>/dev/null; then
            _zts_fail "$name (pid $pid) exited during startup" "$log"
            return 1
        fi
        local rc=0
        "$@" || rc=$?
        if (( rc == 0 )); then
            _zts_log "$name ready after $((SECONDS - start)) s (pid $pid)"
            return 0
        fi
        if (( rc == 2 )); then
            _zts_fail "$name: permanent error (see above)" "$log"
            return 1
        fi
        if (( SECONDS - start >= timeout )); then
            _zts_fail "$name not ready after ${timeout} s (pid $pid; stopping it)" "$log"
            return 1
        fi
        sleep 0.2
    done
}

# ------------------------------------------------------------------ otelite

_zts_otelite_ready() {
    local http_port="$1" grpc_port="$2" api_port="$3"
    [[ "$(_zts_http_code "http://127.0.0.1:$api_port/api/health")" == 200 ]] &&
        [[ "$(_zts_http_code "http://127.0.0.1:$http_port/health")" == 200 ]] &&
        _zts_tcp_open "$grpc_port"
}

# start_otelite DIR HTTP_PORT GRPC_PORT [API_PORT]
#   OTLP/HTTP on 127.0.0.1:HTTP_PORT (POST /v1/traces, /v1/logs, /v1/metrics),
#   OTLP/gRPC on 127.0.0.1:GRPC_PORT, REST API + UI on 127.0.0.1:API_PORT
#   (default HTTP_PORT+2). Data (SQLite) in DIR/otelite-data.
#   Exports ZEST_OTELITE_API_URL, ZEST_OTLP_HTTP_ENDPOINT, ZEST_OTLP_GRPC_ENDPOINT.
start_otelite() {
    if (( $# < 3 )); then
        _zts_fail "usage: start_otelite DIR HTTP_PORT GRPC_PORT [API_PORT]"
        return 1
    fi
    local dir="$1" http_port="$2" grpc_port="$3" api_port="${4:-$(( $2 + 2 ))}"
    local bin
    bin="$(_zts_tools_dir)/bin/otelite"
    [[ -x "$bin" ]] || { _zts_fail "otelite not found at $bin (run infra/scripts/install-test-tools.sh)"; return 1; }
    if [[ "$api_port" == "$grpc_port" || "$api_port" == "$http_port" || "$http_port" == "$grpc_port" ]]; then
        _zts_fail "otelite ports must differ (http=$http_port grpc=$grpc_port api=$api_port)"
        return 1
    fi
    _zts_check_port "$http_port" && _zts_check_port "$grpc_port" && _zts_check_port "$api_port" || return 1
    _zts_prepare "$dir" otelite || return 1
    dir="$(cd "$dir" && pwd)"
    mkdir -p "$dir/otelite-data" "$dir/otelite-config"

    # HTTPS_PROXY points at a closed loopback port: otelite fetches an LLM
    # pricing table from the internet at startup; this makes it fail at once
    # instead of trying to leave the machine.
    env -u RUST_LOG \
        OTELITE_DATA_DIR="$dir/otelite-data" \
        XDG_CONFIG_HOME="$dir/otelite-config" \
        OTELITE_OTLP_HTTP_PORT="$http_port" \
        OTELITE_OTLP_GRPC_PORT="$grpc_port" \
        HTTPS_PROXY="http://127.0.0.1:9" https_proxy="http://127.0.0.1:9" \
        NO_PROXY="127.0.0.1,localhost" no_proxy="127.0.0.1,localhost" \
        NO_COLOR=1 \
        "$bin" serve --addr "127.0.0.1:$api_port" \
        </dev/null >"$dir/otelite.log" 2>&1 &
    local pid=$!
    echo "$pid" >"$dir/otelite.pid"

    _zts_wait_ready otelite "$pid" "$dir/otelite.log" \
        _zts_otelite_ready "$http_port" "$grpc_port" "$api_port" ||
        { stop_service "$dir" otelite; return 1; }

    export ZEST_OTELITE_API_URL="http://127.0.0.1:$api_port"
    export ZEST_OTLP_HTTP_ENDPOINT="http://127.0.0.1:$http_port"
    export ZEST_OTLP_GRPC_ENDPOINT="http://127.0.0.1:$grpc_port"
    cat >"$dir/otelite.env" <<EOF
export ZEST_OTELITE_API_URL=$ZEST_OTELITE_API_URL
export ZEST_OTLP_HTTP_ENDPOINT=$ZEST_OTLP_HTTP_ENDPOINT
export ZEST_OTLP_GRPC_ENDPOINT=$ZEST_OTLP_GRPC_ENDPOINT
EOF
}

# ------------------------------------------------------------------ SeaweedFS

_zts_s3_curl() {
    # _zts_s3_curl PORT [curl args...] -> signed (SigV4) request, prints status code
    local port="$1"
    shift
    curl -s -o /dev/null -m 5 -w '%{http_code}' \
        --aws-sigv4 "aws:amz:us-east-1:s3" \
        --user "$ZEST_S3_ACCESS_KEY:$ZEST_S3_SECRET_KEY" \
        -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" \
        "$@" 2>/dev/null || true
}

_zts_seaweed_ready() {
    local port="$1"
    [[ "$(_zts_http_code "http://127.0.0.1:$port/healthz")" == 200 ]] &&
        [[ "$(_zts_http_code "http://127.0.0.1:$((port + 1))/cluster/healthz")" == 200 ]]
}

_zts_seaweed_serving() {
    # _zts_seaweed_serving DIR PORT: the master lists every volume on disk, and an object
    # round-trips. After a restart over existing data, /healthz answers seconds before the
    # volume server has registered its volumes, and reads of stored objects get HTTP 500
    # until it has.
    local dir="$1" port="$2" want have url="http://127.0.0.1:$2/zest-services-ready/probe"
    want="$(find "$dir/seaweed-data" -maxdepth 1 -name '*.dat' | wc -l)"
    have="$(curl -s -m 2 "http://127.0.0.1:$((port + 1))/dir/status" 2>/dev/null |
        grep -o '"Volumes": *[0-9]*' | awk -F: '{ s += $2 } END { print s + 0 }')"
    (( have >= want )) &&
        [[ "$(_zts_s3_curl "$port" -X PUT --data-binary ready "$url")" == 200 ]] &&
        [[ "$(_zts_s3_curl "$port" "$url")" == 200 ]]
}

_zts_seaweed_bucket() {
    # create (idempotent) and check a bucket: 200 created, 409 already ours
    local port="$1" bucket="$2" code
    code="$(_zts_s3_curl "$port" -X PUT "http://127.0.0.1:$port/$bucket")"
    case "$code" in
        200 | 409) ;;
        400 | 403) _zts_log "creating bucket '$bucket' got HTTP $code"; return 2 ;;
        *) return 1 ;;
    esac
    [[ "$(_zts_s3_curl "$port" -I "http://127.0.0.1:$port/$bucket")" == 200 ]]
}

# start_seaweed DIR S3_PORT [BUCKET...]
#   `weed mini` (master+volume+filer+S3 in one process), everything on
#   127.0.0.1. Ports used: S3_PORT .. S3_PORT+8 and S3_PORT+10008 (admin
#   gRPC, fixed offset), so S3_PORT must be in 1024..22759:
#     S3 P, master P+1 (gRPC P+2), volume P+3 (gRPC P+4), filer P+5 (gRPC P+6),
#     S3 gRPC P+7, admin P+8 (gRPC P+8+10000).
#   Data in DIR/seaweed-data. Auth is on: requests must be SigV4-signed with
#   ZEST_S3_ACCESS_KEY / ZEST_S3_SECRET_KEY; anonymous requests get 403.
#   Ready once the master lists every volume on disk and an object round-trips (bucket
#   zest-services-ready), so data written before a restart is readable. Creates the BUCKETs (PutObject also auto-creates a
#   missing bucket).
#   Exports ZEST_S3_ENDPOINT, ZEST_S3_ACCESS_KEY, ZEST_S3_SECRET_KEY.
start_seaweed() {
    if (( $# < 2 )); then
        _zts_fail "usage: start_seaweed DIR S3_PORT [BUCKET...]"
        return 1
    fi
    local dir="$1" p="$2"
    shift 2
    local bin
    bin="$(_zts_tools_dir)/venv/bin/weed"
    [[ -x "$bin" ]] || { _zts_fail "weed not found at $bin (run infra/scripts/install-test-tools.sh)"; return 1; }
    if ! [[ "$p" =~ ^[0-9]+$ ]] || (( p < 1024 || p > 22759 )); then
        _zts_fail "S3 port '$p' must be in 1024..22759 (SeaweedFS uses P..P+8 and P+10008)"
        return 1
    fi
    local b
    for b in "$@"; do
        if ! [[ "$b" =~ ^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$ ]]; then
            _zts_fail "invalid S3 bucket name '$b' (3-63 chars: a-z 0-9 . -)"
            return 1
        fi
    done
    local off
    for off in 0 1 2 3 4 5 6 7 8 10008; do
        _zts_check_port $((p + off)) || return 1
    done
    _zts_prepare "$dir" seaweed || return 1
    dir="$(cd "$dir" && pwd)"
    mkdir -p "$dir/seaweed-data"

    export ZEST_S3_ACCESS_KEY="${ZEST_S3_ACCESS_KEY:-zest-access}"
    export ZEST_S3_SECRET_KEY="${ZEST_S3_SECRET_KEY:-zest-secret-key}"

    # AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY make `weed mini` create an admin
    # identity; with no identity at all SeaweedFS runs in anonymous mode.
    # -admin.port.grpc is left at its default (admin.port+10000): the built-in
    # worker always dials that, whatever the flag says.
    env -u S3_BUCKET -u S3_TABLE_BUCKET -u AWS_SESSION_TOKEN \
        AWS_ACCESS_KEY_ID="$ZEST_S3_ACCESS_KEY" \
        AWS_SECRET_ACCESS_KEY="$ZEST_S3_SECRET_KEY" \
        "$bin" mini \
        -dir="$dir/seaweed-data" \
        -ip=127.0.0.1 -ip.bind=127.0.0.1 \
        -s3.port="$p" -s3.port.grpc=$((p + 7)) \
        -master.port=$((p + 1)) -master.port.grpc=$((p + 2)) \
        -volume.port=$((p + 3)) -volume.port.grpc=$((p + 4)) \
        -filer.port=$((p + 5)) -filer.port.grpc=$((p + 6)) \
        -admin.port=$((p + 8)) -admin.ui=false \
        -webdav=false -s3.port.iceberg=0 -s3.port.lance=0 \
        -master.telemetry=false -master.volumeSizeLimitMB=64 \
        </dev/null >"$dir/seaweed.log" 2>&1 &
    local pid=$!
    echo "$pid" >"$dir/seaweed.pid"

    _zts_wait_ready seaweed "$pid" "$dir/seaweed.log" _zts_seaweed_ready "$p" ||
        { stop_service "$dir" seaweed; return 1; }
    _zts_wait_ready "seaweed reads and writes" "$pid" "$dir/seaweed.log" \
        _zts_seaweed_serving "$dir" "$p" ||
        { stop_service "$dir" seaweed; return 1; }

    local bucket
    for bucket in "$@"; do
        _zts_wait_ready "seaweed bucket $bucket" "$pid" "$dir/seaweed.log" \
            _zts_seaweed_bucket "$p" "$bucket" ||
            { stop_service "$dir" seaweed; return 1; }
    done

    export ZEST_S3_ENDPOINT="http://127.0.0.1:$p"
    cat >"$dir/seaweed.env" <<EOF
export ZEST_S3_ENDPOINT=$ZEST_S3_ENDPOINT
export ZEST_S3_ACCESS_KEY=$ZEST_S3_ACCESS_KEY
export ZEST_S3_SECRET_KEY=$ZEST_S3_SECRET_KEY
export ZEST_S3_REGION=us-east-1
EOF
}

# ------------------------------------------------------------------ stop

# stop_service DIR NAME   (NAME: otelite | seaweed)
#   SIGTERM, wait up to ZEST_STOP_TIMEOUT (15 s), then SIGKILL. Returns 0 if
#   the process is gone (or was not running).
# start_ray DIR PORT [GPUS]: a Ray cluster on 127.0.0.1 of two nodes, as services `ray-head`
# (CPU only; GCS on PORT, the dashboard and its Jobs API on PORT+1) and `ray-gpu` (2 CPUs
# and GPUS fake GPUs, default 2), each with its own agent ports, using PORT..PORT+30 and the
# worker ports PORT+100..PORT+299. Exports RAY_ADDRESS (the dashboard's URL).
start_ray() {
    if (( $# < 2 )); then
        _zts_fail "usage: start_ray DIR PORT [GPUS]"
        return 1
    fi
    local dir="$1" p="$2" gpus="${3:-2}"
    local bin
    bin="$(_zts_tools_dir)/ray-venv/bin"
    [[ -x "$bin/ray" ]] || { _zts_fail "ray not found at $bin/ray (run infra/scripts/install-test-tools.sh)"; return 1; }
    if ! [[ "$p" =~ ^[0-9]+$ ]] || (( p < 1024 || p > 32467 )); then
        _zts_fail "Ray port '$p' must be in 1024..32467 (the cluster uses P..P+299)"
        return 1
    fi
    local off
    for off in $(seq 0 30); do
        _zts_check_port $((p + off)) || return 1
    done
    _zts_prepare "$dir" ray-head || return 1
    _zts_prepare "$dir" ray-gpu || return 1
    dir="$(cd "$dir" && pwd)"
    mkdir -p "$dir/ray-tmp"
    local loopback
    loopback="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/ray_node_loopback.py"
    # Loopback only (see ray_node_loopback.py); no usage reports; the head's two metrics
    # ports that have no flag are moved below 32768.
    local common=(--node-ip-address=127.0.0.1 --disable-usage-stats --block
                  --object-store-memory=200000000)
    env RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 RAY_USAGE_STATS_ENABLED=0 \
        AUTOSCALER_METRIC_PORT=$((p + 9)) DASHBOARD_METRIC_PORT=$((p + 10)) \
        PATH="$bin:$PATH" \
        "$bin/ray" start --head "${common[@]}" --port="$p" \
        --dashboard-host=127.0.0.1 --dashboard-port=$((p + 1)) \
        --ray-client-server-port=$((p + 2)) --object-manager-port=$((p + 3)) \
        --node-manager-port=$((p + 4)) --dashboard-agent-listen-port=$((p + 5)) \
        --dashboard-agent-grpc-port=$((p + 6)) --metrics-export-port=$((p + 7)) \
        --runtime-env-agent-port=$((p + 8)) \
        --min-worker-port=$((p + 100)) --max-worker-port=$((p + 199)) \
        --num-cpus=1 --num-gpus=0 --temp-dir="$dir/ray-tmp" \
        </dev/null >"$dir/ray-head.log" 2>&1 &
    echo "$!" >"$dir/ray-head.pid"
    export RAY_ADDRESS="http://127.0.0.1:$((p + 1))"
    _zts_wait_ready ray-head "$(cat "$dir/ray-head.pid")" "$dir/ray-head.log" \
        _zts_http_ok "$RAY_ADDRESS/api/version" ||
        { stop_service "$dir" ray-head; return 1; }
    env RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 RAY_USAGE_STATS_ENABLED=0 \
        PATH="$bin:$PATH" \
        "$bin/python" "$loopback" start "${common[@]}" --address="127.0.0.1:$p" \
        --object-manager-port=$((p + 13)) --node-manager-port=$((p + 14)) \
        --dashboard-agent-listen-port=$((p + 15)) --dashboard-agent-grpc-port=$((p + 16)) \
        --metrics-export-port=$((p + 17)) --runtime-env-agent-port=$((p + 18)) \
        --min-worker-port=$((p + 200)) --max-worker-port=$((p + 299)) \
        --num-cpus=2 --num-gpus="$gpus" \
        </dev/null >"$dir/ray-gpu.log" 2>&1 &
    echo "$!" >"$dir/ray-gpu.pid"
    _zts_wait_ready "ray-gpu (joined, GPUs listed)" "$(cat "$dir/ray-gpu.pid")" "$dir/ray-gpu.log" \
        _zts_ray_has_gpus "$bin" "$p" "$gpus" ||
        { stop_service "$dir" ray-gpu; stop_service "$dir" ray-head; return 1; }
    printf 'export RAY_ADDRESS=%q\n' "$RAY_ADDRESS" >"$dir/ray-head.env"
    cp "$dir/ray-head.env" "$dir/ray-gpu.env"
}

_zts_http_ok() {
    curl -fsS -o /dev/null --max-time 2 "$1" 2>/dev/null
}

_zts_ray_has_gpus() {
    # ray status lists the cluster's resources, e.g. "0.0/2.0 GPU".
    local bin="$1" p="$2" gpus="$3"
    (( gpus == 0 )) && { env RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 "$bin/ray" status --address="127.0.0.1:$p" 2>/dev/null | grep -q "3.0 CPU"; return; }
    env RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 "$bin/ray" status --address="127.0.0.1:$p" 2>/dev/null |
        grep -q "/${gpus}.0 GPU"
}

stop_service() {
    if (( $# < 2 )); then
        _zts_fail "usage: stop_service DIR NAME"
        return 1
    fi
    local dir="$1" name="$2" pid
    local pidfile="$dir/$name.pid"
    if [[ ! -f "$pidfile" ]]; then
        _zts_log "$name: no pid file $pidfile, nothing to stop"
        return 0
    fi
    pid="$(cat "$pidfile" 2>/dev/null || true)"
    if ! [[ "$pid" =~ ^[0-9]+$ ]]; then
        rm -f "$pidfile"
        _zts_fail "$name: bad pid file $pidfile"
        return 1
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
        rm -f "$pidfile"
        _zts_log "$name (pid $pid) was not running"
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null || true
    local timeout="${ZEST_STOP_TIMEOUT:-15}" start=$SECONDS
    while kill -0 "$pid" 2>/dev/null; do
        if (( SECONDS - start >= timeout )); then
            _zts_log "$name (pid $pid) ignored SIGTERM for ${timeout} s, sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            local _
            for _ in $(seq 1 50); do
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.1
            done
            break
        fi
        sleep 0.1
    done
    # reap it if it is our child (keeps `wait` from reporting it later)
    wait "$pid" 2>/dev/null || true
    if kill -0 "$pid" 2>/dev/null; then
        _zts_fail "$name (pid $pid) still alive after SIGKILL"
        return 1
    fi
    rm -f "$pidfile"
    _zts_log "$name (pid $pid) stopped after $((SECONDS - start)) s"
}
