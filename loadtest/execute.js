// k6: POST /v1/execute with a trivial program, for one language.
//   CB_LANGUAGE=python VUS=16 DURATION=20s k6 run loadtest/execute.js
//   ISOLATION=program ... runs it on a resident instance ("isolation": "program").
import http from 'k6/http';
import { check } from 'k6';

const BASE = __ENV.BASE_URL || 'http://127.0.0.1:8080';
const LANGUAGE = __ENV.CB_LANGUAGE || 'python';
const PROGRAMS = {
  python: 'result = {"sum": sum(input_data["xs"])}',
  javascript: 'const result = {sum: input_data.xs.reduce((a, b) => a + b, 0)};',
  go: 's := 0.0\nfor _, x := range input_data["xs"].([]interface{}) { s += x.(float64) }\nresult := map[string]interface{}{"sum": s}',
  csharp: 'var result = new { sum = input_data.GetProperty("xs").EnumerateArray().Sum(x => x.GetInt32()) };',
};

export const options = {
  vus: Number(__ENV.VUS || 1),
  duration: __ENV.DURATION || '15s',
  summaryTrendStats: ['avg', 'min', 'med', 'p(90)', 'p(99)', 'max'],
  thresholds: { checks: ['rate>0.99'] },
};

const body = JSON.stringify({
  language: LANGUAGE,
  code: PROGRAMS[LANGUAGE],
  input: { xs: [1, 2, 3] },
  isolation: __ENV.ISOLATION || 'call',
});
const params = { headers: { 'content-type': 'application/json', 'x-api-key': __ENV.API_KEY || '' } };

export default function () {
  const r = http.post(`${BASE}/v1/execute`, body, params);
  check(r, {
    'status 200': (res) => res.status === 200,
    'sum is 6': (res) => res.status === 200 && res.json('output.sum') === 6,
  });
}
