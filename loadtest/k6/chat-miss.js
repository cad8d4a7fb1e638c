// Cache misses: every request carries a prompt never sent before (a real miss on Switchyard:
// key hashing, lookup, recording and storing all happen, unlike the oha `miss` scenario's bypass).
import { check } from 'k6';
import { chat, prompt, unique, options as base } from './lib.js';
export { handleSummary } from './lib.js';

export const options = base();

export default function () {
  const res = chat(prompt(unique()), false);
  check(res, {
    'status 200': (r) => r.status === 200,
    'not a cache hit': (r) => r.headers['X-Switchyard-Cache'] !== 'hit-exact',
  });
}
