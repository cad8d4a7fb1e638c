#!/usr/bin/env bash
# Fixed-rate load through the gateway and straight to the mock, in one run, with oha.
#   loadtest/compare.sh [RATE] [SECONDS]        (default 2000 RPS, 10 s, 50 connections)
# Starts its own mock-provider (:19001) and gateway (:18080, admin :19090); installs oha if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
RATE="${1:-2000}"; SECS="${2:-10}"
command -v oha >/dev/null || cargo install oha --locked
cargo build --release --bins
bin="${CARGO_TARGET_DIR:-target}/release"
tmp=$(mktemp -d)
cat > "$tmp/gw.yaml" <<YAML
server: { listen: "127.0.0.1:18080", admin_listen: "127.0.0.1:19090", threads: 2 }
providers:
  mock: { kind: openai, base_url: "http://127.0.0.1:19001/v1" }
models:
  demo: { targets: [ { provider: mock, model: mock-1 } ] }
YAML
"$bin/mock-provider" --listen 127.0.0.1:19001 & mock=$!
"$bin/switchyard" serve --config "$tmp/gw.yaml" 2>"$tmp/gw.log" & gw=$!
trap 'kill $mock $gw 2>/dev/null; rm -rf "$tmp"' EXIT
sleep 1
body='{"model":"demo","messages":[{"role":"user","content":"load"}]}'
direct='{"model":"mock-1","messages":[{"role":"user","content":"load"}]}'
run() { oha --no-tui -q "$RATE" -z "${SECS}s" -c 50 -m POST -H 'content-type: application/json' -d "$2" "$1" \
          | grep -E "Requests/sec|Success rate|50.00%|99.00%|99.90%"; }
echo "== direct to mock";   run http://127.0.0.1:19001/v1/chat/completions "$direct"
echo "== through switchyard"; run http://127.0.0.1:18080/v1/chat/completions "$body"
echo "== gateway RSS: $(ps -o rss= -p $gw) KiB"
