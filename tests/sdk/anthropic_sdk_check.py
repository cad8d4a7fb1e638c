"""The official Anthropic Python SDK as a client of the gateway's `/v1/messages`.

Run by tests/sdk.rs with SWITCHYARD_BASE_URL pointing at the gateway root (the SDK adds
`/v1/messages`), SWITCHYARD_MODEL naming a model served by any provider, and SWITCHYARD_KEY a
gateway key (sent once as `x-api-key`, once as a Bearer auth token). Exits non-zero on the first
failed check.
"""

import os
import sys

import anthropic

BASE_URL = os.environ["SWITCHYARD_BASE_URL"]
MODEL = os.environ["SWITCHYARD_MODEL"]
KEY = os.environ["SWITCHYARD_KEY"]
client = anthropic.Anthropic(base_url=BASE_URL, api_key=KEY, max_retries=0)
checks = 0


def check(cond, what):
    global checks
    if not cond:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)
    checks += 1


# Plain message, system prompt, with raw headers.
raw = client.messages.with_raw_response.create(
    model=MODEL, max_tokens=64, system="Answer briefly.", messages=[{"role": "user", "content": "hello from claude sdk"}]
)
check(raw.headers.get("x-switchyard-provider"), "x-switchyard-provider header")
msg = raw.parse()
check(msg.type == "message" and msg.role == "assistant", f"message shape {msg}")
check(msg.model == MODEL, f"model {msg.model}")
check(msg.content and msg.content[0].type == "text" and msg.content[0].text, f"text block {msg.content}")
check(msg.stop_reason == "end_turn", f"stop_reason {msg.stop_reason}")
check(msg.usage.input_tokens > 0 and msg.usage.output_tokens > 0, f"usage {msg.usage}")

# Streaming through the SDK's event parser; the final message is assembled by the SDK.
with client.messages.stream(
    model=MODEL, max_tokens=64, system="Answer briefly.", messages=[{"role": "user", "content": "hello from claude sdk"}]
) as stream:
    text = "".join(stream.text_stream)
    final = stream.get_final_message()
check(text == msg.content[0].text, f"streamed text {text!r} vs {msg.content[0].text!r}")
check(final.stop_reason == "end_turn", f"stream stop_reason {final.stop_reason}")
check(final.usage.output_tokens > 0, f"stream usage {final.usage}")

ask = [{"role": "user", "content": "Weather in Paris?"}]

# Tool use, then the tool result (when the serving provider's mock answers with tool calls).
if os.environ.get("SWITCHYARD_TOOLS") == "1":
    tools = [
        {
            "name": "get_weather",
            "description": "Weather for a city",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        }
    ]
    used = client.messages.create(
        model=MODEL, max_tokens=256, tools=tools, messages=ask, extra_headers={"x-mock-tool": "get_weather"}
    )
    check(used.stop_reason == "tool_use", f"tool stop_reason {used.stop_reason}")
    block = next(b for b in used.content if b.type == "tool_use")
    check(block.name == "get_weather" and isinstance(block.input, dict), f"tool_use block {block}")
    after = client.messages.create(
        model=MODEL,
        max_tokens=256,
        tools=tools,
        messages=ask
        + [
            {"role": "assistant", "content": used.content},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": block.id, "content": "18C, sunny"}]},
        ],
    )
    check(after.content[0].type == "text", f"answer after tool_result {after.content}")

    # Streamed tool use: the SDK accumulates input_json_delta into the input object.
    with client.messages.stream(
        model=MODEL, max_tokens=256, tools=tools, messages=ask, extra_headers={"x-mock-tool": "get_weather"}
    ) as stream:
        final = stream.get_final_message()
    block = next(b for b in final.content if b.type == "tool_use")
    check(block.name == "get_weather" and isinstance(block.input, dict), f"streamed tool_use {final.content}")


# Model listing in Anthropic's shape (the SDK sends anthropic-version).
ids = [m.id for m in client.models.list()]
check(MODEL in ids, f"models.list {ids}")

# Token counting.
counted = client.messages.count_tokens(model=MODEL, messages=[{"role": "user", "content": "count these words"}])
check(counted.input_tokens > 0, f"count_tokens {counted}")

# Errors come back in Anthropic's shape, so the SDK raises its own exception types.
try:
    client.messages.create(model="no-such-model", max_tokens=8, messages=ask)
    check(False, "unknown model should fail")
except anthropic.NotFoundError as e:
    check(e.body["type"] == "error" and e.body["error"]["type"] == "not_found_error", f"not found body {e.body}")
try:
    anthropic.Anthropic(base_url=BASE_URL, api_key="wrong", max_retries=0).messages.create(
        model=MODEL, max_tokens=8, messages=ask
    )
    check(False, "wrong key should fail")
except anthropic.AuthenticationError as e:
    check(e.body["error"]["type"] == "authentication_error", f"auth body {e.body}")

# Bearer auth (the SDK sends `Authorization: Bearer` when given an auth token).
bearer = anthropic.Anthropic(base_url=BASE_URL, auth_token=KEY, api_key=None, max_retries=0)
msg = bearer.messages.create(model=MODEL, max_tokens=16, messages=ask)
check(msg.content[0].text, "bearer-authenticated answer")

print(f"{checks} checks passed")
