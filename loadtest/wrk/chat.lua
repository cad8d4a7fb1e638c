-- wrk script: non-streaming chat completions with a small prompt.
--   wrk -t2 -c50 -d10s -s loadtest/wrk/chat.lua http://127.0.0.1:8080/v1/chat/completions
-- MODEL=mock-1 for the mock directly; default `demo` through the gateway.
wrk.method = "POST"
wrk.headers["content-type"] = "application/json"
local model = os.getenv("MODEL") or "demo"
wrk.body = '{"model":"' .. model .. '","messages":[{"role":"user","content":"load test prompt"}]}'

local non200 = 0
response = function(status, headers, body)
  if status ~= 200 then non200 = non200 + 1 end
end

done = function(summary, latency, requests)
  io.write(string.format("requests %d, non-2xx/3xx %d, p50 %.0f us, p99 %.0f us, p99.9 %.0f us\n",
    summary.requests, summary.errors.status, latency:percentile(50), latency:percentile(99), latency:percentile(99.9)))
end
