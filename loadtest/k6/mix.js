// A traffic mix, same weights as the oha `mix` scenario: 55 % unique prompts, 30 % five hot
// prompts, 10 % unique streams, 5 % hot streams. Cache on.
import { check } from 'k6';
import { Trend } from 'k6/metrics';
import { chat, prompt, unique, options as base } from './lib.js';
export { handleSummary } from './lib.js';

export const options = base();
const ttft = new Trend('ttft', true);

export default function () {
  const x = Math.random() * 100;
  const hot = prompt(`hot ${Math.floor(Math.random() * 5)}`);
  let res;
  if (x < 55) res = chat(prompt(unique()), false);
  else if (x < 85) res = chat(hot, false);
  else if (x < 95) res = chat(prompt(unique()), true);
  else res = chat(hot, true);
  if (x >= 85) ttft.add(res.timings.sending + res.timings.waiting);
  check(res, { 'status 200': (r) => r.status === 200 });
}
