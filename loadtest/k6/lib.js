// Shared by the k6 scripts: options, request building and the JSON summary that run.sh collects.
//   BASE_URL  chat completions URL (default the gateway at 127.0.0.1:8080)
//   MODEL     model name to send (default demo)
//   RATE      requests per second (constant arrival rate, default 100)
//   DURATION  e.g. 10s (default 10s)
//   AUTH      an extra header line "name: value" (LiteLLM needs its master key)
//   SUMMARY_JSON  write the end-of-test summary there as JSON
import http from 'k6/http';

export const BASE_URL = __ENV.BASE_URL || 'http://127.0.0.1:8080/v1/chat/completions';
export const MODEL = __ENV.MODEL || 'demo';
const RATE = parseInt(__ENV.RATE || '100', 10);

// Constant arrival rate: requests start on schedule whether or not earlier ones finished, so a slow
// target shows up as latency (and dropped_iterations), not as a politely lower request rate.
export function options(extraThresholds) {
  return {
    discardResponseBodies: false,
    scenarios: {
      load: {
        executor: 'constant-arrival-rate',
        rate: RATE,
        timeUnit: '1s',
        duration: __ENV.DURATION || '10s',
        preAllocatedVUs: Math.min(Math.max(RATE / 10, 10), 200),
        maxVUs: 400,
      },
    },
    thresholds: Object.assign({ checks: ['rate>0.99'] }, extraThresholds || {}),
    summaryTrendStats: ['avg', 'min', 'med', 'p(90)', 'p(99)', 'p(99.9)', 'max'],
  };
}

export function headers(extra) {
  const h = Object.assign({ 'content-type': 'application/json' }, extra || {});
  if (__ENV.AUTH) {
    const i = __ENV.AUTH.indexOf(':');
    h[__ENV.AUTH.slice(0, i).trim()] = __ENV.AUTH.slice(i + 1).trim();
  }
  return h;
}

export function chat(content, stream, extraHeaders) {
  const body = { model: MODEL, messages: [{ role: 'user', content: content }] };
  if (stream) body.stream = true;
  return http.post(BASE_URL, JSON.stringify(body), { headers: headers(extraHeaders) });
}

// ~150 characters, like the oha scenarios' small prompt.
export function prompt(tag) {
  let s = 'Summarise in one line why a gateway should add as little latency as it can ' + tag;
  while (s.length < 150) s += '.';
  return s;
}

export function unique() {
  return `${__VU}-${__ITER}-${Date.now()}-${Math.random().toString(36).slice(2)}`;
}

export function handleSummary(data) {
  data.options_rate = RATE;
  data.target = __ENV.TARGET || BASE_URL;
  const out = {};
  if (__ENV.SUMMARY_JSON) out[__ENV.SUMMARY_JSON] = JSON.stringify(data, null, 1);
  const d = data.metrics.http_req_duration ? data.metrics.http_req_duration.values : {};
  const c = data.metrics.checks ? data.metrics.checks.values : {};
  out.stdout = `${data.target} @ ${RATE}/s: med ${(d.med || 0).toFixed(3)} ms, p99 ${(d['p(99)'] || 0).toFixed(3)} ms, ` +
    `checks ${(100 * (c.rate || 0)).toFixed(2)} %\n`;
  return out;
}
