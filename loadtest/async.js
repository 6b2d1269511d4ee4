// k6: async executions under load, submit-to-complete latency.
//   API_KEY=cb_... VUS=8 DURATION=15s k6 run loadtest/async.js
// Each VU submits a trivial Python execution to POST /v1/executions, then polls its
// status every 10 ms until it is final; `async_complete_ms` is submit → completed as the
// client sees it (polling adds up to 10 ms).
import http from 'k6/http';
import { check, sleep } from 'k6';
import { Trend } from 'k6/metrics';

const BASE = __ENV.BASE_URL || 'http://127.0.0.1:8080';
const complete = new Trend('async_complete_ms', true);
const submit = new Trend('async_submit_ms', true);

export const options = {
  vus: Number(__ENV.VUS || 8),
  duration: __ENV.DURATION || '15s',
  summaryTrendStats: ['med', 'p(90)', 'p(99)', 'count'],
};

const headers = { 'content-type': 'application/json', 'x-api-key': __ENV.API_KEY || '' };

export default function () {
  const t0 = Date.now();
  const res = http.post(`${BASE}/v1/executions`, JSON.stringify({
    language: 'python', code: 'result = {"sum": sum(input_data["xs"])}', input: { xs: [1, 2, 3] },
  }), { headers });
  submit.add(Date.now() - t0);
  if (!check(res, { 'accepted': (r) => r.status === 202 })) return;
  const id = res.json('executionId');
  for (let i = 0; i < 3000; i++) {
    const s = http.get(`${BASE}/v1/executions/${id}`, { headers });
    const status = s.json('status');
    if (status === 'completed' || status === 'failed' || status === 'cancelled') {
      complete.add(Date.now() - t0);
      check(s, { 'completed with the sum': (r) => r.json('result.output.sum') === 6 });
      return;
    }
    sleep(0.01);
  }
}
