#!/usr/bin/env bash
# A flamegraph of the running gateway under steady load.
#
#   loadtest/profile.sh SCENARIO        SCENARIO: cache-miss | exact-hit | streaming | cache-bypass
#
#   cache-miss    a fresh prompt every request, cache on (hash, lookup, record, store: a real miss)
#   exact-hit     one prompt repeated (answered from the exact cache)
#   streaming     fresh streamed prompts, cache on
#   cache-bypass  one prompt with `x-switchyard-cache: off` (the proxy path without the cache)
#
# Starts its own mock-provider and Switchyard (generated config, free ports), drives them with oha
# at a fixed rate, records the gateway with `perf record -F 999 -g -p PID` in the middle of the
# run, and writes flamegraphs/<scenario>.svg (plus the folded stacks as flamegraphs/<scenario>.folded,
# handy for diffs with inferno-diff-folded).
#
# Knobs: RATE (default 2000), SECONDS_RECORD (10), WARMUP_SECS (3), OUT_DIR (flamegraphs),
# SKIP_BUILD=1 (use the binaries already in the target dir), BIN_DIR=DIR (take switchyard and
# mock-provider from DIR; the target dir may be shared with other worktrees' builds).
# Needs perf (Debian linux-perf) and inferno (installed with `cargo install inferno --locked` if missing).
# perf needs kernel.perf_event_paranoid <= 1 to attach to a process; as root the script lowers it
# with sysctl (and puts it back on exit). Otherwise run:  sudo sysctl -w kernel.perf_event_paranoid=1
#
# Symbols: the release profile keeps line tables (debug = "line-tables-only") but no frame
# pointers, so the call graph is unwound from DWARF by default (PERF_CALLGRAPH=dwarf: full Rust
# stacks, ~100 MB of perf.data in /tmp for 10 s, a minute of `perf script`). PERF_CALLGRAPH=fp is
# lighter but shows little more than the leaf frames.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

SCEN=${1:-}
case $SCEN in
  cache-miss | exact-hit | streaming | cache-bypass) ;;
  *) echo "usage: $0 cache-miss|exact-hit|streaming|cache-bypass" >&2; exit 2 ;;
esac
RATE=${RATE:-2000}
SECONDS_RECORD=${SECONDS_RECORD:-10}
WARMUP_SECS=${WARMUP_SECS:-3}
OUT_DIR=${OUT_DIR:-flamegraphs}
PERF_CALLGRAPH=${PERF_CALLGRAPH:-dwarf}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
export PATH="$HOME/.cargo/bin:$PATH"
log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

command -v perf >/dev/null || { echo "perf not found: apt-get install -y linux-perf" >&2; exit 1; }
command -v oha >/dev/null || { log "installing oha"; cargo install oha --locked; }
if ! command -v inferno-flamegraph >/dev/null; then
  log "installing inferno (cargo install inferno --locked)"
  cargo install inferno --locked
fi

WORK=$(mktemp -d /tmp/switchyard-profile.XXXXXX)
PIDS=()
OLD_PARANOID=
cleanup() {
  local rc=$? p
  trap - EXIT INT TERM
  for p in "${PIDS[@]}"; do kill -TERM -- "-$p" 2>/dev/null || true; done
  sleep 0.5
  for p in "${PIDS[@]}"; do kill -KILL -- "-$p" 2>/dev/null || true; done
  if [[ -n $OLD_PARANOID ]]; then sysctl -q -w kernel.perf_event_paranoid="$OLD_PARANOID" || true; fi
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

paranoid=$(cat /proc/sys/kernel/perf_event_paranoid)
if ((paranoid > 1)); then
  if sysctl -q -w kernel.perf_event_paranoid=1 2>/dev/null; then
    OLD_PARANOID=$paranoid
    log "lowered kernel.perf_event_paranoid from $paranoid to 1 (restored on exit)"
  elif [[ $(id -u) != 0 ]]; then
    echo "perf cannot attach (kernel.perf_event_paranoid=$paranoid). Run: sudo sysctl -w kernel.perf_event_paranoid=1" >&2
    exit 1
  fi
fi

mkdir -p "$WORK/bin" "$OUT_DIR"
if [[ -n ${BIN_DIR:-} ]]; then
  cp "$BIN_DIR/switchyard" "$BIN_DIR/mock-provider" "$WORK/bin/"
else
  if [[ ${SKIP_BUILD:-0} != 1 ]]; then cargo build --release --bins; fi
  cp "$CARGO_TARGET_DIR/release/switchyard" "$CARGO_TARGET_DIR/release/mock-provider" "$WORK/bin/"
fi

# shellcheck source=loadtest/lib.sh
. "$(dirname "$0")/lib.sh"
mock=$(free_port); gw=$(free_port); admin=$(free_port)
gateway_config "$gw" "$admin" "$mock" "$WORK" >"$WORK/gateway.yaml"
setsid "$WORK/bin/mock-provider" --listen "127.0.0.1:$mock" >"$WORK/mock.log" 2>&1 </dev/null &
PIDS+=($!)
RUST_LOG=warn setsid "$WORK/bin/switchyard" serve --config "$WORK/gateway.yaml" >"$WORK/gw.log" 2>&1 </dev/null &
gw_pid=$!
PIDS+=("$gw_pid")
wait_http "http://127.0.0.1:$gw/readyz" 10 || { cat "$WORK/gw.log" >&2; exit 1; }

total=$((WARMUP_SECS + SECONDS_RECORD + 2))
# Fresh prompts: oha -Z sends a random line per request, so the file holds several times more
# lines than requests and nearly every request is a first sight.
python3 - "$WORK" "$((RATE * total * 4))" <<'PY'
import json, sys
work, n = sys.argv[1], min(int(sys.argv[2]), 400_000)
p = "Summarise in one line why a gateway should add as little latency as it can"
one = lambda c, s=False: json.dumps({"model": "demo", "messages": [{"role": "user", "content": c}], **({"stream": True} if s else {})})
open(f"{work}/one.json", "w").write(one(p))
for name, stream in (("fresh", False), ("fresh-stream", True)):
    with open(f"{work}/{name}.lines", "w") as f:
        f.writelines(one(f"{p} {i}", stream) + "\n" for i in range(n))
PY
args=(--no-tui -c 50 -q "$RATE" --latency-correction -m POST -H 'content-type: application/json')
case $SCEN in
  cache-miss) args+=(-Z "$WORK/fresh.lines") ;;
  exact-hit) args+=(-D "$WORK/one.json") ;;
  streaming) args+=(-Z "$WORK/fresh-stream.lines") ;;
  cache-bypass) args+=(-H 'x-switchyard-cache: off' -D "$WORK/one.json") ;;
esac

log "load: $SCEN at $RATE RPS for ${total}s; recording ${SECONDS_RECORD}s after ${WARMUP_SECS}s"
oha "${args[@]}" -z "${total}s" "http://127.0.0.1:$gw/v1/chat/completions" >"$WORK/oha.txt" 2>&1 &
oha_pid=$!
sleep "$WARMUP_SECS"
perf record -F 999 -g --call-graph "$PERF_CALLGRAPH" -p "$gw_pid" -o "$WORK/perf.data" -- sleep "$SECONDS_RECORD" 2>"$WORK/perf.log" \
  || { cat "$WORK/perf.log" >&2; exit 1; }
wait "$oha_pid" || true
grep -E 'Success rate|Requests/sec|50.00%|99.00%' "$WORK/oha.txt" >&2 || true

perf script -i "$WORK/perf.data" 2>/dev/null | inferno-collapse-perf >"$OUT_DIR/$SCEN.folded"
inferno-flamegraph --title "switchyard $SCEN @ $RATE RPS ($(date -u +%F), $(git rev-parse --short HEAD))" \
  <"$OUT_DIR/$SCEN.folded" >"$OUT_DIR/$SCEN.svg"
log "wrote $OUT_DIR/$SCEN.svg ($(wc -l <"$OUT_DIR/$SCEN.folded") distinct stacks)"
