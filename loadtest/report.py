#!/usr/bin/env python3
"""The Python half of loadtest/run.sh: request bodies, process figures, and the report.

run.sh orchestrates (processes, oha, k6); this file only reads and writes files:

    report.py bodies DIR                         request bodies for every scenario
    report.py bodies-lines mix|fresh DIR RATE ROUND SECS MAXSECS   oha -Z line files (new prompts per run)
    report.py bodies-semantic PAIRS DIR          seed and traffic line files from a labelled pairs file
    report.py semantic-quality PAIRS URL         every ask once against a seeded gateway, hits judged
    report.py procstat PGID                      CPU ticks and memory of a process group, as JSON
    report.py audit FILE...                      time inside Switchyard from its audit log, as JSON
    report.py build RAW_DIR OUT_DIR              raw oha/k6 output -> OUT_DIR/<date>-<scenario>.{md,json},
                                                 and <date>-targets.{md,json} (the issue's targets, judged)

Standard library only.
"""

import json
import math
import os
import random
import statistics
import sys
from pathlib import Path

PCTS = ["p50", "p90", "p99", "p99.9"]
MODELS = ["mock-1", "demo"]  # what the mock-facing targets and the gateways are asked for

SCENARIOS = {
    "miss": "non-streaming, ~200 B prompt, cache bypassed (`x-switchyard-cache: off`)",
    "stream": "streaming (SSE), ~200 B prompt, cache bypassed",
    "large": "non-streaming, ~64 KB prompt, cache bypassed",
    "fresh": "non-streaming, ~200 B prompts never seen before, cache on: real misses (hash, lookup, record, store)",
    "hit": "non-streaming, ~200 B prompt repeated: exact-cache hits on Switchyard (cache on)",
    "mix": "55 % unique prompts, 30 % five hot prompts, 10 % unique streams, 5 % hot streams; cache on",
    "semantic": "semantic tier on: the gateway is seeded with one prompt of each labelled pair of "
                "tests/data/cache_pairs.jsonl, then asked the other (paraphrases that should hit, look-alikes "
                "that must not); a fresh gateway per rate",
}

# ---------------------------------------------------------------- request bodies

WORDS = ("alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november "
         "oscar papa quebec romeo sierra tango uniform victor whiskey xray yankee zulu").split()


def chat(model, content, stream=False):
    body = {"model": model, "messages": [{"role": "user", "content": content}]}
    if stream:
        body["stream"] = True
    return json.dumps(body, separators=(",", ":"))


def small_prompt(tag=""):
    # ~200 B of JSON in total with the envelope, like a short chat turn.
    text = "Summarise in one line why a gateway should add as little latency as it can " + tag
    return text.ljust(150, ".")


def cmd_bodies(out):
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(7)
    large = " ".join(rng.choice(WORDS) for _ in range(12_000))[: 64 * 1024 - 100]
    for m in MODELS:
        (out / f"small-{m}.json").write_text(chat(m, small_prompt()))
        (out / f"stream-{m}.json").write_text(chat(m, small_prompt(), stream=True))
        (out / f"large-{m}.json").write_text(chat(m, large))


def cmd_bodies_lines(kind, out, rate, rnd, secs, maxsecs):
    """oha -Z picks a random line per request, so fresh prompts need many more lines than requests
    to stay mostly unique (about 1 in 8 draws repeats a line at 4 lines per request); the observed
    hit ratio is measured from the audit log, not assumed."""
    out = Path(out)
    expected = (20_000 * float(maxsecs)) if rate == "max" else float(rate) * float(secs)
    total = int(min(400_000, max(10_000, 4 * expected)))
    salt = f"{rate}-{rnd}-{os.getpid()}"
    hot = [small_prompt(f"hot {i}") for i in range(5)]
    if kind == "fresh":
        plan = [("unique", False, 100)]
    else:
        plan = [("unique", False, 55), ("hot", False, 30), ("unique", True, 10), ("hot", True, 5)]
    for m in MODELS:
        lines = []
        n = 0
        for which, stream, share in plan:
            for _ in range(total * share // 100):
                n += 1
                prompt = small_prompt(f"{salt} {n}") if which == "unique" else hot[n % len(hot)]
                lines.append(chat(m, prompt, stream))
        (out / f"{kind}-{rate}-r{rnd}-{m}.lines").write_text("\n".join(lines) + "\n")


def cmd_bodies_semantic(pairs, out):
    """Seed and traffic line files: seeds are one side of every labelled pair, asks the other."""
    out = Path(out)
    seeds, asks, _ = semantic_pairs(pairs)
    for m in MODELS:
        (out / f"semantic-seed-{m}.lines").write_text("\n".join(chat(m, a) for a in seeds) + "\n")
        (out / f"semantic-{m}.lines").write_text("\n".join(chat(m, b) for b in asks) + "\n")
    print(json.dumps({"seeds": len(seeds), "asks": len(asks), "labelled_hit": labelled_hits(asks)}))


def semantic_pairs(pairs):
    """The labelled pairs without conversation context: seeds, asks (each once, never a seed's own
    text) and every (seed, ask) -> label, in both directions."""
    rows = [json.loads(line) for line in Path(pairs).read_text().splitlines() if line.strip()]
    rows = [r for r in rows if not r.get("context_a") and not r.get("context_b")]
    seeds = list(dict.fromkeys(r["a"] for r in rows))
    seed_set = set(seeds)
    asks = {}
    for r in rows:
        if r["b"] not in seed_set:
            asks.setdefault(r["b"], r["label"])
    labels = {}
    for r in rows:
        labels[(r["a"], r["b"])] = labels[(r["b"], r["a"])] = r["label"]
    return seeds, asks, labels


def labelled_hits(asks):
    return sum(label == "hit" for label in asks.values())


def cmd_semantic_quality(pairs, url):
    """Asks every ask once, in order, of a gateway already seeded with the seeds, and judges each
    semantic hit by the answer it served: the mock answers `mock answer to: <prompt> ...`, so the
    served answer names the seed it was stored for, and the pair labels say whether serving it for
    this ask is right (a labelled paraphrase), wrong (a labelled look-alike) or unjudged (no label
    links the two)."""
    import http.client
    from urllib.parse import urlsplit
    seeds, asks, labels = semantic_pairs(pairs)
    # An ask that missed was answered by the model and stored too: later asks may be served it.
    by_length = [(c, c.split()) for c in sorted(seeds + list(asks), key=len, reverse=True)]
    u = urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    tally = {"asks": len(asks), "labelled_hit": labelled_hits(asks)}
    counts = {}
    judged = {"wrong": [], "unjudged": []}
    for ask, label in asks.items():
        conn.request("POST", u.path, json.dumps({"model": "demo", "messages": [{"role": "user", "content": ask}]}),
                     {"content-type": "application/json"})
        resp = conn.getresponse()
        body = resp.read()
        outcome = resp.getheader("x-switchyard-cache") or f"status {resp.status}"
        if outcome == "hit-semantic":
            content = json.loads(body)["choices"][0]["message"]["content"]
            # The mock's answer is 16 tokens: long prompts come back cut to their first words.
            served = content.split()[3:]
            seed = next((c for c, words in by_length if served[: len(words)] == words
                         or words[: len(served)] == served), None)
            verdict = {"hit": "right", "miss": "wrong"}.get(labels.get((seed, ask)), "unjudged")
            outcome = f"hit-semantic {verdict}"
            if verdict != "right":
                judged[verdict].append({"ask": ask, "served_for": seed})
        key = f"{label}: {outcome}"
        counts[key] = counts.get(key, 0) + 1
    tally["outcomes"] = dict(sorted(counts.items()))
    tally.update(judged)
    print(json.dumps(tally, indent=1))


# ---------------------------------------------------------------- process figures


def cmd_procstat(pgid):
    """Sum utime+stime and memory over every live process of the group (nginx master + worker,
    LiteLLM and its children). VmHWM is each process's own peak RSS since it started."""
    pgid = int(pgid)
    ticks = rss = hwm = 0
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = Path(f"/proc/{d}/stat").read_text()
            fields = stat[stat.rfind(")") + 2 :].split()
            if int(fields[2]) != pgid:
                continue
            ticks += int(fields[11]) + int(fields[12])
            for line in Path(f"/proc/{d}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    rss += int(line.split()[1])
                elif line.startswith("VmHWM:"):
                    hwm += int(line.split()[1])
            pids.append(int(d))
        except (OSError, ValueError, IndexError):
            continue  # exited while we looked
    print(json.dumps({"ticks": ticks, "clk_tck": os.sysconf("SC_CLK_TCK"), "rss_kb": rss, "hwm_kb": hwm,
                      "pids": sorted(pids)}))


def pct(sorted_values, p):
    if not sorted_values:
        return None
    # nearest rank: the smallest value with at least p % of the values at or below it
    k = min(len(sorted_values) - 1, max(0, math.ceil(len(sorted_values) * p / 100.0) - 1))
    return sorted_values[k]


def cmd_audit(*files):
    """Every request's `overhead_us` (the figure the x-switchyard-overhead-us header and the
    switchyard_overhead_seconds histogram carry) and its cache outcome."""
    over, cache, status = [], {}, {}
    for f in files:
        try:
            fh = open(f, encoding="utf-8")
        except OSError:
            continue
        with fh:
            for line in fh:
                try:
                    r = json.loads(line)
                except ValueError:
                    continue  # a line cut by the read racing the writer
                over.append(int(r.get("overhead_us", 0)))
                cache[r.get("cache", "?")] = cache.get(r.get("cache", "?"), 0) + 1
                status[str(r.get("status"))] = status.get(str(r.get("status")), 0) + 1
    over.sort()
    summary = {"n": len(over), "cache": cache, "status": status}
    if over:
        summary["overhead_us"] = {p: pct(over, float(p[1:])) for p in PCTS}
        summary["overhead_us"]["max"] = over[-1]
        summary["overhead_us"]["mean"] = round(statistics.fmean(over), 1)
    print(json.dumps(summary))


# ---------------------------------------------------------------- the report


def load(path, default=None):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return default


def one_run(raw, rid, meta):
    """Figures of one measured oha run."""
    oha = load(raw / f"{rid}.oha.json")
    row = dict(meta)
    if not oha:
        row["error"] = (raw / f"{rid}.oha.err").read_text()[-300:] if (raw / f"{rid}.oha.err").exists() else "no output"
        return row
    codes = {k: v for k, v in oha.get("statusCodeDistribution", {}).items()}
    errors = {k: v for k, v in oha.get("errorDistribution", {}).items() if "deadline" not in k}
    total = sum(codes.values()) + sum(errors.values())
    ok = sum(v for k, v in codes.items() if k.startswith("2"))
    lat = oha.get("latencyPercentiles", {})
    fb = oha.get("firstBytePercentiles", {})
    row.update(
        rps=oha["summary"]["requestsPerSec"],
        requests=total,
        success=(ok / total) if total else 0.0,
        statuses=codes,
        errors=errors,
        ms={p: (lat[p] * 1e3 if lat.get(p) is not None else None) for p in PCTS},
        first_byte_ms={p: (fb[p] * 1e3 if fb.get(p) is not None else None) for p in PCTS},
    )
    before, after = load(raw / f"{rid}.before.json"), load(raw / f"{rid}.after.json")
    if before and after and total:
        cpu_ms = (after["ticks"] - before["ticks"]) * 1000.0 / after["clk_tck"]
        row.update(cpu_ms=cpu_ms, cpu_ms_per_1k=cpu_ms / (total / 1000.0), rss_mb=after["rss_kb"] / 1024,
                   hwm_mb=after["hwm_kb"] / 1024)
    mb, ma = load(raw / f"{rid}.mock-before.json"), load(raw / f"{rid}.mock-after.json")
    if mb and ma and total:
        row["mock_cpu_ms_per_1k"] = (ma["ticks"] - mb["ticks"]) * 1000.0 / ma["clk_tck"] / (total / 1000.0)
    audit = load(raw / f"{rid}.audit.json")
    if audit:
        row["audit"] = audit
    return row


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def spread(values):
    values = [v for v in values if v is not None]
    return (min(values), max(values)) if len(values) > 1 else None


def rate_key(rate):
    return float("inf") if rate == "max" else float(rate)


TARGET_ORDER = ["direct", "floor", "nginx", "switchyard", "litellm"]


def aggregate(runs):
    """(rate, target) -> medians over rounds, with added latency per round against direct."""
    by = {}
    for r in runs:
        by.setdefault((r["rate"], r["target"]), []).append(r)
    direct = {(r["rate"], r["round"]): r for r in runs if r["target"] == "direct" and "ms" in r}
    out = []
    for (rate, target), rs in sorted(by.items(), key=lambda kv: (rate_key(kv[0][0]), TARGET_ORDER.index(kv[0][1])
                                                                  if kv[0][1] in TARGET_ORDER else 99)):
        good = [r for r in rs if "ms" in r]
        row = {"rate": rate, "target": target, "rounds": len(rs)}
        if not good:
            row["error"] = rs[0].get("error", "no data")
            out.append(row)
            continue
        row["rps"] = med([r["rps"] for r in good])
        row["rps_range"] = spread([r["rps"] for r in good])
        row["success"] = min(r["success"] for r in good)
        row["requests"] = sum(r["requests"] for r in good)
        row["ms"] = {p: med([r["ms"][p] for r in good]) for p in PCTS}
        row["ms_range"] = {p: spread([r["ms"][p] for r in good]) for p in PCTS}
        row["first_byte_ms"] = {p: med([r["first_byte_ms"][p] for r in good]) for p in PCTS}
        added = {p: [] for p in PCTS}
        for r in good:
            d = direct.get((rate, r["round"]))
            if d:
                for p in PCTS:
                    if r["ms"][p] is not None and d["ms"][p] is not None:
                        added[p].append(r["ms"][p] - d["ms"][p])
        row["added_ms"] = {p: med(added[p]) for p in PCTS}
        row["added_ms_range"] = {p: spread(added[p]) for p in PCTS}
        for k in ("cpu_ms_per_1k", "mock_cpu_ms_per_1k", "rss_mb"):
            row[k] = med([r.get(k) for r in good])
        row["hwm_mb"] = max((r.get("hwm_mb") or 0) for r in good) or None
        audits = [r["audit"] for r in good if r.get("audit") and r["audit"].get("n")]
        if audits:
            row["overhead_us"] = {p: med([a["overhead_us"][p] for a in audits]) for p in PCTS + ["max", "mean"]}
            n = sum(a["n"] for a in audits)
            hits = sum(a["cache"].get("hit-exact", 0) + a["cache"].get("hit-semantic", 0) for a in audits)
            row["audit_requests"] = n
            row["cache_hit_ratio"] = hits / n if n else None
            row["cache_outcomes"] = {}
            for a in audits:
                for k, v in a["cache"].items():
                    row["cache_outcomes"][k] = row["cache_outcomes"].get(k, 0) + v
        out.append(row)
    # Ratios of added latency (and of max RPS) against the floor and nginx at the same rate.
    idx = {(r["rate"], r["target"]): r for r in out}
    for r in out:
        for ref in ("floor", "nginx", "direct"):
            b = idx.get((r["rate"], ref))
            if not b or "ms" not in r or "ms" not in b or r["target"] in (ref, "direct"):
                continue
            if r["rate"] == "max":
                if b.get("rps"):
                    r[f"rps_x_{ref}"] = r["rps"] / b["rps"]
            elif ref != "direct":
                r[f"added_x_{ref}"] = {
                    p: (r["added_ms"][p] / b["added_ms"][p]
                        if r["added_ms"][p] is not None and b["added_ms"][p] not in (None, 0) and b["added_ms"][p] > 0
                        else None)
                    for p in ("p50", "p99")
                }
    return out


def f(v, digits=3, unit=""):
    if v is None:
        return "–"
    return f"{v:.{digits}f}{unit}"


def fr(v, rng, digits=3):
    """value, with the range over rounds when there were several."""
    s = f(v, digits)
    if rng:
        s += f" ({rng[0]:.{digits}f}–{rng[1]:.{digits}f})"
    return s


def ratio(v):
    return "–" if v is None else f"{v:.1f}×"


def rate_label(rate):
    return "max" if rate == "max" else f"{int(float(rate)):,}"


def scenario_md(scen, run, rows, skipped):
    L = []
    title = SCENARIOS.get(scen, scen)
    L.append(f"# Load test `{scen}`: {title}")
    L.append("")
    L.append(f"Run `{run.get('run_id')}` (started {run.get('started')}, git `{run.get('git')}`), "
             f"{run.get('nproc')} cores shared by load generator, mock and target "
             f"(load average at start {run.get('loadavg_start', '?')}; switchyard binary sha256 {run.get('switchyard_sha256', '?')}…). "
             f"oha `{run.get('versions', {}).get('oha', '?')}`, {run.get('connections')} connections, "
             + (f"each rate sends every ask once (fixed rates with `--latency-correction`) after the seeds as a "
                f"{run.get('warmup')} warm-up. " if scen == "semantic" else
                f"fixed rates with `--latency-correction` for {run.get('duration')} after a {run.get('warmup')} "
                f"warm-up; unlimited runs for {run.get('max_duration')}. ")
             + f"Rounds: {run.get('rounds')} "
             f"(figures are medians over rounds; ranges in brackets). Mock latency {run.get('mock_latency_ms')} ms.")
    L.append("")
    if scen == "semantic":
        L.append("Targets: **direct** = the mock itself; **switchyard** = a gateway of its own with the semantic "
                 "tier on (2 threads, audit on, keys off); the proxies without a semantic cache are not driven.")
    else:
        L.append("Targets: **direct** = the mock itself; **floor** = `examples/passthrough.rs` (leanest Pingora "
                 "0.9.1 pass-through, 2 threads); **nginx** = " + str(run.get("versions", {}).get("nginx", "nginx")) +
                 ", 1 worker, `proxy_pass` + upstream keepalive; **switchyard** = this gateway (2 threads, audit on, "
                 "keys off); **litellm** = LiteLLM proxy " + str(run.get("versions", {}).get("litellm") or "?") +
                 " (1 worker, no DB, no callbacks, cache off), driven only at " + str(run.get("litellm_rates")) + ".")
    if skipped:
        L.append("")
        L.append("Skipped: " + "; ".join(f"**{k}** ({v})" for k, v in sorted(skipped.items())))
    sp = run.get("semantic_pairs") or {}
    if scen == "semantic":
        if sp:
            L += ["", f"Traffic: {sp['seeds']} seed prompts are sent first (one at a time), then oha draws from "
                  f"{sp['asks']} asks ({sp['labelled_hit']} labelled paraphrases of a seed, the rest look-alikes "
                  f"that must miss) as many times as the ask count. oha picks a random line per request, so about "
                  "a third of the draws repeat an ask: those come back as exact hits when the first copy went "
                  "to the model. The quality pass at the end asks every ask exactly once."]
        L += ["", "Every semantic lookup embeds the prompt (one ONNX inference, ~4 ms of a core), searches the "
              "index and runs the gates; a hit then skips the model call. The mock answers in "
              f"{run.get('mock_latency_ms')} ms, so here a hit is slower than calling it directly: the figures to "
              "read are the lookup's cost and throughput, against a real model's hundreds of milliseconds. At "
              "the unlimited rate the embedder is the bottleneck: a lookup whose predicted wait (prompts "
              "pending × measured cost per prompt) exceeds `embed_budget_ms` skips the tier at once "
              "(counted as a miss) instead of holding the request."]
    fixed = [r for r in rows if r["rate"] != "max"]
    maxed = [r for r in rows if r["rate"] == "max"]
    if fixed:
        L += ["", "## Latency at fixed rates (ms, client-seen)", "",
              "Added = target minus direct at the same rate and round. × floor / × nginx = added latency "
              "as a multiple of the floor's / nginx's added latency (P50 / P99).", "",
              "| rate | target | RPS | ok | P50 | P90 | P99 | P99.9 | added P50 | added P90 | added P99 | added P99.9 "
              "| × floor | × nginx |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in fixed:
            if "ms" not in r:
                L.append(f"| {rate_label(r['rate'])} | {r['target']} | error: {r.get('error', '')[:80]} |"
                         + " |" * 11)
                continue
            a = r["added_ms"]
            xf, xn = r.get("added_x_floor"), r.get("added_x_nginx")
            L.append("| " + " | ".join([
                rate_label(r["rate"]), f"**{r['target']}**", f(r["rps"], 0), f"{r['success'] * 100:.2f} %",
                *(fr(r["ms"][p], r["ms_range"][p]) for p in PCTS),
                *(("–" if r["target"] == "direct" else fr(a[p], r["added_ms_range"][p])) for p in PCTS),
                (f"{ratio(xf['p50'])} / {ratio(xf['p99'])}" if xf else "–"),
                (f"{ratio(xn['p50'])} / {ratio(xn['p99'])}" if xn else "–"),
            ]) + " |")
        if scen in ("stream", "mix", "fresh"):
            L += ["", "First byte of the response (ms; for streams the head and the first chunk):", "",
                  "| rate | target | P50 | P90 | P99 | P99.9 |", "|---|---|---|---|---|---|"]
            for r in fixed:
                if "first_byte_ms" in r:
                    L.append(f"| {rate_label(r['rate'])} | {r['target']} | "
                             + " | ".join(f(r["first_byte_ms"][p]) for p in PCTS) + " |")
    if maxed:
        length = f"{sp['asks']} asks" if scen == "semantic" and sp else run.get("max_duration")
        L += ["", f"## Maximum throughput (unlimited rate, {length}, "
              f"{run.get('connections')} connections)", "",
              "| target | RPS | ok | P50 ms | P99 ms | × direct | × floor | × nginx |", "|---|---|---|---|---|---|---|---|"]
        for r in maxed:
            if "ms" not in r:
                L.append(f"| {r['target']} | error: {r.get('error', '')[:80]} | | | | | | |")
                continue
            L.append("| " + " | ".join([
                f"**{r['target']}**", fr(r["rps"], r["rps_range"], 0), f"{r['success'] * 100:.2f} %",
                f(r["ms"]["p50"]), f(r["ms"]["p99"]),
                ratio(r.get("rps_x_direct")), ratio(r.get("rps_x_floor")), ratio(r.get("rps_x_nginx"))]) + " |")
    sy = [r for r in rows if r.get("overhead_us")]
    if sy:
        L += ["", "## Time inside Switchyard (µs)", "",
              "`overhead_us` of every request of the measured run, read from the gateway's audit log: the same "
              "figure as the `x-switchyard-overhead-us` header and the `switchyard_overhead_seconds` histogram "
              "(gateway time, upstream wait excluded).", "",
              "| rate | requests | P50 | P90 | P99 | P99.9 | max | mean | cache outcomes |", "|---|---|---|---|---|---|---|---|---|"]
        for r in sy:
            o = r["overhead_us"]
            outcomes = ", ".join(f"{k} {v:,}" for k, v in sorted(r.get("cache_outcomes", {}).items()))
            L.append(f"| {rate_label(r['rate'])} | {r['audit_requests']:,} | "
                     + " | ".join(f(o[p], 0) for p in PCTS + ["max", "mean"]) + f" | {outcomes} |")
    res = [r for r in rows if r.get("cpu_ms_per_1k") is not None]
    if res:
        L += ["", "## Resources", "",
              "CPU = utime+stime of the target's processes during the measured run (10 ms tick resolution), per "
              "1,000 requests; for direct, the mock's. RSS after the run; peak = VmHWM since the process started.", "",
              "| rate | target | CPU ms / 1k req | mock CPU ms / 1k req | RSS MB | peak RSS MB |", "|---|---|---|---|---|---|"]
        for r in res:
            L.append(f"| {rate_label(r['rate'])} | {r['target']} | {f(r['cpu_ms_per_1k'], 1)} | "
                     f"{f(r.get('mock_cpu_ms_per_1k'), 1)} | {f(r.get('rss_mb'), 1)} | {f(r.get('hwm_mb'), 1)} |")
    bad = [r for r in rows if r.get("success") is not None and r["success"] < 0.999]
    if bad:
        L += ["", "## Failures", ""]
        for r in bad:
            L.append(f"- {rate_label(r['rate'])} {r['target']}: success {r['success'] * 100:.2f} %")
    L.append("")
    q = run.get("semantic_quality") if scen == "semantic" else None
    if q:
        L += ["", "## Answers served (quality pass)", "",
              f"A fresh gateway, seeded as above, is asked each of the {q['asks']} asks once, in order; a semantic "
              "hit is judged by the answer it served (the mock answers `mock answer to: <prompt> ...`, which "
              "names the prompt the answer was stored for): **right** when the pair labels call the two "
              "paraphrases, **wrong** when they call them look-alikes, **unjudged** when no label links them "
              "(another seed, or an earlier ask that was answered by the model and stored).", "",
              "| ask labelled | outcome | asks |", "|---|---|---|"]
        for k, v in q["outcomes"].items():
            label, _, outcome = k.partition(": ")
            L.append(f"| {label} | {outcome} | {v} |")
        for name in ("wrong", "unjudged"):
            if q.get(name):
                L += ["", f"{name.capitalize()} semantic hits (ask ⇐ prompt whose answer was served):", ""]
                L += [f"- {w['ask']!r} ⇐ {w['served_for']!r}" for w in q[name]]
    return "\n".join(L)


def k6_md(run, summaries):
    L = [f"# Load test `k6`: constant-arrival-rate scripts (loadtest/k6/)", "",
         f"Run `{run.get('run_id')}`, k6 {run.get('versions', {}).get('k6')}. Durations in ms.", "",
         "| script | target | rate | iterations | failed checks | req P50 | req P90 | req P99 | TTFT P50 | TTFT P99 | dropped |",
         "|---|---|---|---|---|---|---|---|---|---|---|"]
    for (script, target), s in sorted(summaries.items()):
        m = s.get("metrics", {})

        def val(metric, key):
            v = m.get(metric, {}).get("values", {}).get(key)
            return None if v is None else float(v)

        checks = m.get("checks", {}).get("values", {})
        failed = checks.get("fails")
        L.append("| " + " | ".join([
            script, target, str(s.get("options_rate", "")),
            f(val("iterations", "count"), 0), "–" if failed is None else str(int(failed)),
            f(val("http_req_duration", "med")), f(val("http_req_duration", "p(90)")), f(val("http_req_duration", "p(99)")),
            f(val("ttft", "med")), f(val("ttft", "p(99)")), f(val("dropped_iterations", "count"), 0),
        ]) + " |")
    L.append("")
    return "\n".join(L)


# ---------------------------------------------------------------- issue targets

def row(rows, rate, target):
    return next((r for r in rows if str(r["rate"]) == str(rate) and r["target"] == target and "ms" in r), None)


def target_checks(by_scen):
    """The performance targets, each judged on figures of this run only: (name, measured, goal, unit, kind)
    with kind "max" (measured must be at most goal) or "min" (at least). None = not measured in this run."""
    miss, hit, stream = by_scen.get("miss", []), by_scen.get("hit", []), by_scen.get("stream", [])
    sy5, floor5 = row(miss, 5000, "switchyard"), row(miss, 5000, "floor")
    sy_max, floor_max, lite_max = row(miss, "max", "switchyard"), row(miss, "max", "floor"), row(miss, "max", "litellm")
    hit5, hit_max = row(hit, 5000, "switchyard"), row(hit, "max", "switchyard")
    get = lambda d, *ks: None if d is None else (get(d.get(ks[0]), *ks[1:]) if ks else d)  # noqa: E731
    checks = [
        ("miss, 5k RPS: success", get(sy5, "success") and sy5["success"] * 100, 100.0, "%", "min"),
        ("miss, 5k RPS: added latency P50 ÷ floor's", get(sy5, "added_x_floor", "p50"), 1.15, "×", "max"),
        ("miss, 5k RPS: added latency P99 ÷ floor's", get(sy5, "added_x_floor", "p99"), 1.15, "×", "max"),
        ("miss, 5k RPS: time inside the gateway P50", get(sy5, "overhead_us", "p50"), 10, "µs", "max"),
        ("miss, 5k RPS: time inside the gateway P99", get(sy5, "overhead_us", "p99"), 50, "µs", "max"),
        ("miss: max RPS ÷ floor's", get(sy_max, "rps_x_floor"), 0.9, "×", "min"),
        ("miss: max RPS ÷ LiteLLM's (1 worker)",
         sy_max["rps"] / lite_max["rps"] if sy_max and lite_max and lite_max.get("rps") else None, 100, "×", "min"),
        ("exact hit: max RPS ÷ miss max RPS",
         hit_max["rps"] / sy_max["rps"] if hit_max and sy_max and sy_max.get("rps") else None, 1.5, "×", "min"),
        ("exact hit, 5k RPS: time inside the gateway P99", get(hit5, "overhead_us", "p99"), 20, "µs", "max"),
        ("miss, 5k RPS: peak RSS (semantic tier off)", get(sy5, "hwm_mb"), 64, "MB", "max"),
    ]
    for rate in sorted({r["rate"] for r in stream if r["rate"] != "max" and r["target"] == "floor"}, key=rate_key):
        s, f_, d = row(stream, rate, "switchyard"), row(stream, rate, "floor"), row(stream, rate, "direct")
        ratio_ = None
        if s and f_ and d:
            mine = s["first_byte_ms"]["p99"] - d["first_byte_ms"]["p99"]
            floors = f_["first_byte_ms"]["p99"] - d["first_byte_ms"]["p99"]
            ratio_ = mine / floors if floors > 0 else None
        checks.append((f"stream, {rate_label(rate)} RPS: added time to first byte P99 ÷ floor's", ratio_, 1.15, "×", "max"))
    return checks


def verdict(measured, goal, kind):
    if measured is None:
        return "not measured in this run"
    ok = measured <= goal if kind == "max" else measured >= goal
    if ok:
        return "met"
    by = measured / goal - 1 if kind == "max" else 1 - measured / goal
    return f"missed by {by * 100:.0f} %"


def targets_md(run, checks):
    L = [f"# Performance targets (issue 7), run `{run.get('run_id')}`", "",
         f"Each figure comes from this run's reports (git `{run.get('git')}`, {run.get('nproc')} cores shared by "
         "load generator, mock and targets): ratios are measured side by side, so they survive a noisy machine "
         "better than absolute times. \"missed by\" = how far the figure is from the goal, relative to the goal.", "",
         "| target | measured | goal | verdict |", "|---|---|---|---|"]
    for name, measured, goal, unit, kind in checks:
        digits = 2 if unit == "×" else (1 if unit in ("MB", "%") else 0)
        shown = "–" if measured is None else f"{measured:,.{digits}f} {unit}"
        L.append(f"| {name} | {shown} | {'≤' if kind == 'max' else '≥'} {goal:g} {unit} | {verdict(measured, goal, kind)} |")
    L.append("")
    return "\n".join(L)


def cmd_build(raw, out):
    raw, out = Path(raw), Path(out)
    run = load(raw / "run.json", {})
    for extra in ("semantic-pairs", "semantic-quality"):
        if (raw / f"{extra}.json").exists():
            run[extra.replace("-", "_")] = load(raw / f"{extra}.json")
    skipped = run.get("skipped", {})
    day = str(run.get("run_id", "run"))[:10]
    suffix = f"-lat{run['mock_latency_ms']}ms" if run.get("mock_latency_ms") else ""
    runs = {}
    for m in sorted(raw.glob("*.meta.json")):
        meta = load(m)
        rid = m.name[: -len(".meta.json")]
        runs.setdefault(meta["scenario"], []).append(one_run(raw, rid, meta))
    written = []
    by_scen = {}
    for scen, rs in runs.items():
        rows = aggregate(rs)
        by_scen[scen] = rows
        base = out / f"{day}-{scen}{suffix}"
        base.with_suffix(".md").write_text(scenario_md(scen, run, rows, skipped))
        base.with_suffix(".json").write_text(json.dumps(
            {"run": run, "scenario": scen, "description": SCENARIOS.get(scen), "rows": rows, "runs": rs},
            indent=1))
        written.append(str(base) + ".md")
    for p in sorted(raw.glob("*-skipped.json")):
        scen = p.name[: -len("-skipped.json")]
        if scen in runs or scen == "k6":
            continue
        base = out / f"{day}-{scen}{suffix}"
        why = load(p, {}).get("skipped", "skipped")
        base.with_suffix(".md").write_text(f"# Load test `{scen}`\n\nRun `{run.get('run_id')}`: skipped ({why}).\n")
        base.with_suffix(".json").write_text(json.dumps({"run": run, "scenario": scen, "skipped": why}, indent=1))
        written.append(str(base) + ".md")
    if "miss" in by_scen:
        checks = target_checks(by_scen)
        base = out / f"{day}-targets{suffix}"
        base.with_suffix(".md").write_text(targets_md(run, checks))
        base.with_suffix(".json").write_text(json.dumps({"run": run, "targets": [
            {"name": n, "measured": m, "goal": g, "unit": u, "kind": k, "verdict": verdict(m, g, k)}
            for n, m, g, u, k in checks]}, indent=1))
        written.append(str(base) + ".md")
    k6 = {}
    for p in sorted(raw.glob("k6-*.json")):
        s = load(p)
        if not s or "metrics" not in s:
            continue
        script, _, target = p.stem[len("k6-"):].rpartition("-")
        k6[(script, target)] = s
    if k6:
        base = out / f"{day}-k6{suffix}"
        base.with_suffix(".md").write_text(k6_md(run, k6))
        base.with_suffix(".json").write_text(json.dumps(
            {"run": run, "summaries": {f"{a}/{b}": s for (a, b), s in k6.items()}}, indent=1))
        written.append(str(base) + ".md")
    for w in written:
        print(w)


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    cmd, args = sys.argv[1], sys.argv[2:]
    {"bodies": cmd_bodies, "bodies-lines": cmd_bodies_lines, "bodies-semantic": cmd_bodies_semantic,
     "semantic-quality": cmd_semantic_quality,
     "procstat": cmd_procstat, "audit": cmd_audit,
     "build": cmd_build}[cmd](*args)


if __name__ == "__main__":
    main()
