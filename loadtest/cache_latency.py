#!/usr/bin/env python3
"""Time inside the gateway for cache hits, per tier, at a given concurrency.

Seeds one answer, then sends N requests from C concurrent clients: an identical request (exact
hit) or a paraphrase (semantic hit: embedding + vector search + gates each time, since a
semantic hit stores nothing new). Reports `x-switchyard-overhead-us` P50/P90/P99 per tier and the
client-seen latency.

    scripts/run &   # or any gateway with the cache on and the `demo` model
    python3 loadtest/cache_latency.py --gateway 127.0.0.1:8080 -n 2000 -c 8
"""

import argparse
import http.client
import json
import threading
import time

SEED = "How do I reset my password?"
PARAPHRASE = "how can I reset my password"


def pct(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, int(len(s) * p / 100))] if s else float("nan")


def run(host, port, model, prompt, n, conc, headers):
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": prompt}]})
    inside, seen, statuses = [], [], {}
    lock = threading.Lock()
    per_worker = n // conc

    def worker():
        conn = http.client.HTTPConnection(host, port)
        for _ in range(per_worker):
            t0 = time.perf_counter()
            conn.request("POST", "/v1/chat/completions", body, {"content-type": "application/json", **headers})
            r = conn.getresponse()
            r.read()
            dt = (time.perf_counter() - t0) * 1e6
            with lock:
                status = r.getheader("x-switchyard-cache", "")
                statuses[status] = statuses.get(status, 0) + 1
                inside.append(int(r.getheader("x-switchyard-overhead-us", "0")))
                seen.append(dt)

    threads = [threading.Thread(target=worker) for _ in range(conc)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    return inside, seen, statuses, len(seen) / wall


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gateway", default="127.0.0.1:8080")
    ap.add_argument("--model", default="demo")
    ap.add_argument("-n", type=int, default=2000)
    ap.add_argument("-c", type=int, default=8, help="concurrent clients")
    a = ap.parse_args()
    host, port = a.gateway.split(":")
    port = int(port)
    # Seed (fresh answer stored with its vector), then wait for the entry to settle.
    run(host, port, a.model, SEED, 1, 1, {"x-switchyard-cache": "refresh"})
    time.sleep(0.2)
    print(f"{a.n} requests per tier, {a.c} concurrent clients\n")
    print("| tier | result | inside gateway P50 / P90 / P99 (µs) | client-seen P50 / P99 (µs) | RPS |")
    print("|---|---|---|---|---|")
    for tier, prompt in (("exact", SEED), ("semantic", PARAPHRASE)):
        inside, seen, statuses, rps = run(host, port, a.model, prompt, a.n, a.c, {})
        result = ", ".join(f"{k or 'none'} {v}" for k, v in sorted(statuses.items()))
        print(
            f"| {tier} | {result} | {pct(inside, 50)} / {pct(inside, 90)} / {pct(inside, 99)} "
            f"| {pct(seen, 50):.0f} / {pct(seen, 99):.0f} | {rps:.0f} |"
        )


if __name__ == "__main__":
    main()
