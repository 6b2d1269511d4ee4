// k6: one batch of N trivial Python items through POST /v1/execute/batch.
//   API_KEY=cb_... ITEMS=1000 k6 run loadtest/batch.js
// items/s = ITEMS / the request's duration; bench.sh prints it beside /v1/execute's req/s
// from the same run.
import http from 'k6/http';
import { check } from 'k6';

const BASE = __ENV.BASE_URL || 'http://127.0.0.1:8080';
const ITEMS = Number(__ENV.ITEMS || 1000);

export const options = {
  vus: 1,
  iterations: 1,
  summaryTrendStats: ['med', 'max', 'count'],
  // A 10,000-item batch takes tens of seconds at today's per-item cost.
  setupTimeout: '5m',
};

export default function () {
  const items = [];
  for (let i = 0; i < ITEMS; i++) items.push({ id: `i${i}`, input: { xs: [i, 1, 2] } });
  const body = JSON.stringify({ language: 'python', code: 'result = {"sum": sum(input_data["xs"])}', items });
  const res = http.post(`${BASE}/v1/execute/batch`, body, {
    headers: { 'content-type': 'application/json', 'x-api-key': __ENV.API_KEY || '' },
    timeout: '600s',
  });
  check(res, {
    'status 200': (r) => r.status === 200,
    'every item succeeded': (r) => r.status === 200 && r.json('successCount') === ITEMS,
  });
}
