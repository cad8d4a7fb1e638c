// Streaming: time to first token as a custom Trend. k6 reads the whole body, but its `waiting`
// timing ends at the response's first byte; the mock sends the head and the first chunk together
// (set MOCK_TPS to pace the rest of the stream with the mock's x-mock-tokens-per-sec), so
// `ttft` is the client-seen time to the first token.
import { check } from 'k6';
import { Trend } from 'k6/metrics';
import { chat, prompt, unique, options as base } from './lib.js';
export { handleSummary } from './lib.js';

export const options = base();
const ttft = new Trend('ttft', true);
const extra = __ENV.MOCK_TPS ? { 'x-mock-tokens-per-sec': __ENV.MOCK_TPS } : {};

export default function () {
  const res = chat(prompt(unique()), true, extra);
  ttft.add(res.timings.sending + res.timings.waiting);
  check(res, {
    'status 200': (r) => r.status === 200,
    'stream ends with [DONE]': (r) => typeof r.body === 'string' && r.body.includes('data: [DONE]'),
  });
}
