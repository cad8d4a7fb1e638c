"""The official OpenAI Python SDK against a model served by a provider with its own wire format.

Run by tests/sdk.rs with SWITCHYARD_BASE_URL pointing at a gateway whose `translated` model is
served by the mock's Anthropic or Bedrock side (SWITCHYARD_PROVIDER names the provider). Chat,
streams with usage, tool calls and a parameter the provider lacks. Exits non-zero on the first
failed check.
"""

import json
import os
import sys

import openai

BASE_URL = os.environ["SWITCHYARD_BASE_URL"]
PROVIDER = os.environ["SWITCHYARD_PROVIDER"]
client = openai.OpenAI(base_url=BASE_URL, api_key="client-key-not-forwarded", max_retries=0)
checks = 0


def check(cond, what):
    global checks
    if not cond:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)
    checks += 1


messages = [
    {"role": "system", "content": "Answer briefly."},
    {"role": "user", "content": "hello from the sdk"},
]
raw = client.chat.completions.with_raw_response.create(model="translated", messages=messages, max_tokens=64)
check(raw.headers.get("x-switchyard-provider") == PROVIDER, f"provider header {raw.headers}")
resp = raw.parse()
check(resp.object == "chat.completion", "object")
check(resp.model == "translated", f"model {resp.model}")
check(resp.choices[0].message.content, "answer text")
check(resp.choices[0].finish_reason == "stop", f"finish_reason {resp.choices[0].finish_reason}")
check(resp.usage.prompt_tokens > 0 and resp.usage.completion_tokens > 0, f"usage {resp.usage}")

# Streaming, with usage requested: text deltas, then a usage chunk with no choices.
text, usage, finish = "", None, None
stream = client.chat.completions.create(
    model="translated", messages=messages, max_tokens=64, stream=True, stream_options={"include_usage": True}
)
for chunk in stream:
    if chunk.usage:
        usage = chunk.usage
    for c in chunk.choices:
        text += c.delta.content or ""
        finish = c.finish_reason or finish
check(text == resp.choices[0].message.content, f"streamed text {text!r} vs {resp.choices[0].message.content!r}")
check(finish == "stop", f"stream finish_reason {finish}")
check(usage is not None and usage.completion_tokens > 0, f"stream usage {usage}")

# Tool calls, then the tool result sent back.
tools = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }
]
ask = [{"role": "user", "content": "Weather in Paris?"}]
call_resp = client.chat.completions.create(
    model="translated", messages=ask, tools=tools, extra_headers={"x-mock-tool": "get_weather"}
)
check(call_resp.choices[0].finish_reason == "tool_calls", f"tool finish {call_resp.choices[0].finish_reason}")
call = call_resp.choices[0].message.tool_calls[0]
check(call.function.name == "get_weather", "tool name")
check(isinstance(json.loads(call.function.arguments), dict), "tool arguments are JSON")
followup = client.chat.completions.create(
    model="translated",
    tools=tools,
    messages=ask
    + [
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": "18C and sunny"},
    ],
)
check(followup.choices[0].message.content, "answer after the tool result")

# Streamed tool call: the SDK's accumulated arguments parse as JSON.
args, name = "", None
for chunk in client.chat.completions.create(
    model="translated", messages=ask, tools=tools, stream=True, extra_headers={"x-mock-tool": "get_weather"}
):
    for c in chunk.choices:
        for tc in c.delta.tool_calls or []:
            name = tc.function.name or name
            args += tc.function.arguments or ""
check(name == "get_weather" and isinstance(json.loads(args), dict), f"streamed tool call {name} {args!r}")

# A parameter the provider cannot express: a 400 the SDK raises, naming it.
try:
    client.chat.completions.create(model="translated", messages=ask, logit_bias={"50256": -100})
    check(False, "logit_bias should be refused")
except openai.BadRequestError as e:
    check("logit_bias" in str(e), f"error names the parameter: {e}")

print(f"{checks} checks passed against {PROVIDER}")
