// Exact-cache hits: one prompt repeated; setup() sends it once so every measured request can hit.
import { check } from 'k6';
import { chat, prompt, options as base } from './lib.js';
export { handleSummary } from './lib.js';

export const options = base();
const HOT = prompt('k6 hot prompt');

export function setup() {
  chat(HOT, false);
}

export default function () {
  const res = chat(HOT, false);
  check(res, { 'status 200': (r) => r.status === 200 });
}
