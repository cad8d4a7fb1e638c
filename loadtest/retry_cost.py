#!/usr/bin/env python3
"""What a failed first try costs: client latency when the first target refuses the connection,
or answers 503 at once, and the second target serves it — against a first try that succeeds.
Interleaved request by request, in one run. Starts its own mock providers and gateway.

    python3 loadtest/retry_cost.py [-n 500] [--bin target/release]
"""

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import tempfile
import time


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait(port):
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), 0.1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"port {port} never opened")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=500)
    ap.add_argument("--bin", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "release"))
    a = ap.parse_args()
    ok, busy, dead, gw, admin = (free_port() for _ in range(5))
    procs = [
        subprocess.Popen([f"{a.bin}/mock-provider", "--listen", f"127.0.0.1:{ok}"], stderr=subprocess.DEVNULL),
        subprocess.Popen([f"{a.bin}/mock-provider", "--listen", f"127.0.0.1:{busy}", "--fail-status", "503"],
                         stderr=subprocess.DEVNULL),
    ]
    # The breaker never opens here, so every request pays for the failed first try: round-robin's
    # cursor advances on every pick, so with two targets each request starts on the failing one.
    # Only answers with x-switchyard-attempts: 2 are counted for the failing cases.
    never = "circuit_breaker: { consecutive_failures: 1000000, min_requests: 1000000 }"
    cfg = f"""
server: {{ listen: "127.0.0.1:{gw}", admin_listen: "127.0.0.1:{admin}" }}
providers:
  ok:   {{ kind: openai, base_url: "http://127.0.0.1:{ok}/v1" }}
  busy: {{ kind: openai, base_url: "http://127.0.0.1:{busy}/v1" }}
  dead: {{ kind: openai, base_url: "http://127.0.0.1:{dead}/v1" }}
models:
  direct:  {{ targets: [ {{ provider: ok, model: m }} ] }}
  refused: {{ strategy: round-robin, targets: [ {{ provider: dead, model: m }}, {{ provider: ok, model: m }} ], retry: {{ backoff_ms: 0 }}, {never} }}
  busy503: {{ strategy: round-robin, targets: [ {{ provider: busy, model: m }}, {{ provider: ok, model: m }} ], retry: {{ backoff_ms: 0 }}, {never} }}
"""
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write(cfg)
    procs.append(subprocess.Popen([f"{a.bin}/switchyard", "serve", "--config", f.name], stderr=subprocess.DEVNULL))
    try:
        for p in (ok, busy, gw):
            wait(p)
        conn = http.client.HTTPConnection(f"127.0.0.1:{gw}")
        lat = {"direct": [], "refused": [], "busy503": []}
        for i in range(a.n * 2 + 100):
            for model in lat:
                body = json.dumps({"model": model, "messages": [{"role": "user", "content": "x"}]})
                t = time.perf_counter()
                conn.request("POST", "/v1/chat/completions", body, {"content-type": "application/json"})
                r = conn.getresponse()
                r.read()
                dt = (time.perf_counter() - t) * 1e6
                if r.status != 200:
                    raise SystemExit(f"{model}: {r.status}")
                attempts = int(r.getheader("x-switchyard-attempts"))
                if i >= 100 and (model == "direct" or attempts == 2):
                    lat[model].append(dt)
        base = statistics.median(lat["direct"])
        print(f"n per case: {min(len(v) for v in lat.values())}, sequential, keep-alive, backoff 0")
        for model, v in lat.items():
            v.sort()
            print(f"{model:8} median {statistics.median(v):6.0f} us  p99 {v[int(len(v) * .99)]:6.0f} us"
                  f"  extra vs direct (median) {statistics.median(v) - base:5.0f} us")
    finally:
        for p in procs:
            p.kill()
        os.unlink(f.name)


if __name__ == "__main__":
    main()
