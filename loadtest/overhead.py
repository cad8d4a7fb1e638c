#!/usr/bin/env python3
"""Sequential requests through the gateway and straight to the mock, side by side.

Reports the gateway's own `x-switchyard-overhead-us` (median, P99) and the client-seen latency of
both paths, interleaved request by request so machine noise hits both alike.

    python3 loadtest/overhead.py --gateway 127.0.0.1:8080 --mock 127.0.0.1:9001 -n 1000
"""

import argparse
import http.client
import json
import statistics
import time


def pct(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, int(len(s) * p / 100))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gateway", default="127.0.0.1:8080")
    ap.add_argument("--mock", default="127.0.0.1:9001")
    ap.add_argument("--model", default="demo")
    ap.add_argument("-n", type=int, default=1000)
    a = ap.parse_args()

    body = json.dumps({"model": a.model, "messages": [{"role": "user", "content": "measure me"}]})
    direct_body = json.dumps({"model": "mock-1", "messages": [{"role": "user", "content": "measure me"}]})
    headers = {"content-type": "application/json"}
    gw = http.client.HTTPConnection(a.gateway)
    mock = http.client.HTTPConnection(a.mock)
    overhead, via_gw, direct = [], [], []
    for i in range(a.n + 50):
        t = time.perf_counter()
        gw.request("POST", "/v1/chat/completions", body, headers)
        r = gw.getresponse()
        r.read()
        g = time.perf_counter() - t
        if r.status != 200:
            raise SystemExit(f"gateway answered {r.status}")
        t = time.perf_counter()
        mock.request("POST", "/v1/chat/completions", direct_body, headers)
        m = mock.getresponse()
        m.read()
        d = time.perf_counter() - t
        if i >= 50:  # warm-up: connections, pools, caches
            overhead.append(int(r.getheader("x-switchyard-overhead-us")))
            via_gw.append(g * 1e6)
            direct.append(d * 1e6)
    print(f"requests: {a.n} sequential, keep-alive")
    print(f"x-switchyard-overhead-us: median {statistics.median(overhead):.0f} us, p99 {pct(overhead, 99)} us")
    print(f"client latency via gateway: median {statistics.median(via_gw):.0f} us, p99 {pct(via_gw, 99):.0f} us")
    print(f"client latency direct:      median {statistics.median(direct):.0f} us, p99 {pct(direct, 99):.0f} us")
    print(f"added (median): {statistics.median(via_gw) - statistics.median(direct):.0f} us")


if __name__ == "__main__":
    main()
