"""The official OpenAI Python SDK as a real client of the gateway.

Run by tests/sdk.rs with SWITCHYARD_BASE_URL pointing at a gateway whose `demo` model is served by
mock-provider. Exits non-zero on the first failed check.
"""

import os
import sys

import openai

BASE_URL = os.environ["SWITCHYARD_BASE_URL"]
client = openai.OpenAI(base_url=BASE_URL, api_key="client-key-not-forwarded", max_retries=0)
checks = 0


def check(cond, what):
    global checks
    if not cond:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)
    checks += 1


# Non-streaming, with raw headers.
raw = client.chat.completions.with_raw_response.create(
    model="demo", messages=[{"role": "user", "content": "hello from the sdk"}]
)
check(raw.headers.get("x-switchyard-provider") == "mock", "x-switchyard-provider header")
check(raw.headers.get("x-request-id"), "x-request-id header")
resp = raw.parse()
check(resp.choices[0].message.content.startswith("mock answer to: hello from the sdk"), "chat content")
check(resp.choices[0].finish_reason == "stop", "finish_reason")
check(resp.usage.completion_tokens == 16, "usage")

# Streaming, with the usage chunk.
stream = client.chat.completions.create(
    model="demo",
    messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "stream please"}],
    stream=True,
    stream_options={"include_usage": True},
)
text, usage, chunks = "", None, 0
for chunk in stream:
    chunks += 1
    if chunk.choices and chunk.choices[0].delta.content:
        text += chunk.choices[0].delta.content
    if chunk.usage:
        usage = chunk.usage
check(chunks >= 17, f"stream chunk count {chunks}")
check(text.startswith("mock answer to: stream please"), f"stream content {text!r}")
check(usage is not None and usage.completion_tokens == 16, "stream usage chunk")

# Completions and embeddings.
comp = client.completions.create(model="demo", prompt="legacy prompt", max_tokens=4)
check("legacy prompt" in comp.choices[0].text, "completion text")
emb = client.embeddings.create(model="demo", input=["one", "two"], encoding_format="float")
check(len(emb.data) == 2 and len(emb.data[0].embedding) == 8, "embeddings")

# Models.
ids = [m.id for m in client.models.list()]
check("demo" in ids, f"models list {ids}")

# With the exact cache on: a streamed answer replayed from the cache parses like a live one.
if os.environ.get("SWITCHYARD_EXPECT_CACHE") == "1":
    def stream_once():
        raw = client.chat.completions.with_raw_response.create(
            model="demo", messages=[{"role": "user", "content": "cache this stream"}], stream=True
        )
        text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
        return raw.headers.get("x-switchyard-cache"), text

    first = stream_once()
    second = stream_once()
    check(first[0] == "miss" and second[0] == "hit-exact", f"cache headers {first[0]}, {second[0]}")
    check(second[1] == first[1] and second[1].startswith("mock answer to: cache this stream"), "replayed stream text")
    plain = client.chat.completions.create(model="demo", messages=[{"role": "user", "content": "cache this stream"}])
    check(plain.choices[0].message.content == first[1], "plain answer synthesised from the cached stream")

# Errors surface as the SDK's typed exceptions (last: the 429 cools the only target down).
try:
    client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])
    check(False, "unknown model should raise")
except openai.NotFoundError as e:
    check(e.status_code == 404 and e.code == "model_not_found", f"404 error {e}")
try:
    client.chat.completions.create(
        model="demo", messages=[{"role": "user", "content": "x"}], extra_headers={"x-mock-fail-status": "429"}
    )
    check(False, "429 should raise")
except openai.RateLimitError as e:
    check(e.status_code == 429, "rate limit error")

print(f"openai {openai.__version__}: {checks} passed, 0 failed")
