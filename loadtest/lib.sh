# Shared by loadtest/run.sh and loadtest/profile.sh (sourced, not run).

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_http() {  # URL SECONDS [curl args...]
  local url=$1 secs=$2; shift 2
  local deadline=$((SECONDS + secs))
  while ((SECONDS < deadline)); do
    curl -fsS -o /dev/null "$@" "$url" 2>/dev/null && return 0
    sleep 0.2
  done
  return 1
}

# The gateway config both scripts measure: `demo` -> the mock, audit log and ledger under DIR/logs and
# DIR/data (like the default layout: the config directory holds only the config), exact cache
# on, semantic tier as SEMANTIC says (off by default: a miss would embed its prompt), no snapshot.
gateway_config() {  # PORT ADMIN_PORT MOCK_PORT DIR
  cat <<YAML
server: { listen: "127.0.0.1:$1", admin_listen: "127.0.0.1:$2", threads: 2, grace_period_secs: 1 }
providers:
  mock: { kind: openai, base_url: "http://127.0.0.1:$3/v1" }
models:
  demo: { targets: [ { provider: mock, model: mock-1 } ] }
audit: { path: "$4/logs/audit.jsonl", rotate_bytes: 1073741824, keep_files: 1 }
spend: { ledger_path: "$4/data/spend.ledger" }
cache:
  exact: { enabled: true, ttl_secs: 3600 }
  semantic: { enabled: ${SEMANTIC:-false} }
  snapshot_path: ""
YAML
}
