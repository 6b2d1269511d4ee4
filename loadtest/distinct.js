// k6: many distinct Go programs called round-robin (the shared compile cache).
//   API_KEY=cb_... PROGRAMS=100 VUS=16 DURATION=15s k6 run loadtest/distinct.js
// setup() compiles each program once; the measured phase then calls them in turn, so every
// call is a cache hit on whichever container serves it. PROGRAMS=1 is the baseline.
import http from 'k6/http';
import { check } from 'k6';

const BASE = __ENV.BASE_URL || 'http://127.0.0.1:8080';
const N = Number(__ENV.PROGRAMS || 100);
const HEADERS = { 'content-type': 'application/json', 'x-api-key': __ENV.API_KEY || '' };

export const options = {
  vus: Number(__ENV.VUS || 16),
  duration: __ENV.DURATION || '15s',
  setupTimeout: '10m',
  summaryTrendStats: ['med', 'p(99)', 'count'],
};

function body(i) {
  return JSON.stringify({
    language: 'go',
    code: `result := input_data["v"].(float64) + ${i}`,
    input: { v: 1 },
  });
}

export function setup() {
  for (let i = 0; i < N; i++) {
    http.post(`${BASE}/v1/execute`, body(i), { headers: HEADERS, timeout: '120s' });
  }
}

export default function () {
  const i = (__ITER * 16 + __VU) % N;
  const r = http.post(`${BASE}/v1/execute`, body(i), { headers: HEADERS });
  check(r, {
    'right answer': (res) => res.status === 200 && res.json('output') === 1 + i,
    'cache hit': (res) => res.status === 200 && res.json('cacheHit') === true,
  });
}
