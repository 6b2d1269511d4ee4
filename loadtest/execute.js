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
  typescript: 'const xs: number[] = input_data.xs;\nconst result = {sum: xs.reduce((a, b) => a + b, 0)};',
  java: 'int s = 0;\nfor (Object x : asList(input_data.get("xs"))) s += asInt(x);\nresult = Map.of("sum", s);',
  c: 'json_object *xs = json_object_object_get(input_data, "xs"); int s = 0;\nfor (size_t i = 0; i < json_object_array_length(xs); i++) s += json_object_get_int(json_object_array_get_idx(xs, i));\nresult = json_object_new_object(); json_object_object_add(result, "sum", json_object_new_int(s));',
  cpp: 'int s = 0; for (auto &x : input_data["xs"]) s += x.get<int>();\nresult = {{"sum", s}};',
  rust: 'let s: i64 = input_data["xs"].as_array().unwrap().iter().map(|x| x.as_i64().unwrap()).sum();\nresult = json!({"sum": s});',
  ruby: 'result = {"sum" => input_data["xs"].sum}',
  php: "$result = ['sum' => array_sum($input_data['xs'])];",
  bash: 'result=$(jq -c \'{sum: (.xs | add)}\' <<<"$input_data")',
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
