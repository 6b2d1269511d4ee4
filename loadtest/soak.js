// k6: the soak mix. Trivial Python and Go calls at a fixed arrival rate, sessions with file
// commands, and one hostile call every HOSTILE_EVERY seconds (fork bomb, memory bomb,
// output flood, infinite loop in turn, each with timeoutMs 3000).
//   API_KEY=cb_... DURATION=10m PY_RATE=120 GO_RATE=80 k6 run --out json=soak.json loadtest/soak.js
// Every request is tagged `kind` (trivial, session, hostile); loadtest/soak.sh turns the
// JSON output into per-minute percentiles.
import http from 'k6/http';
import { check, sleep } from 'k6';

const BASE = __ENV.BASE_URL || 'http://127.0.0.1:8080';
const DURATION = __ENV.DURATION || '10m';
const HEADERS = { 'content-type': 'application/json', 'x-api-key': __ENV.API_KEY || '' };
const HOSTILE_EVERY = Number(__ENV.HOSTILE_EVERY || 20);

export const options = {
  discardResponseBodies: false,
  summaryTrendStats: ['med', 'p(99)', 'max', 'count'],
  scenarios: {
    python: {
      executor: 'constant-arrival-rate', rate: Number(__ENV.PY_RATE || 120), timeUnit: '1s',
      duration: DURATION, preAllocatedVUs: 24, maxVUs: 64, exec: 'python',
    },
    go: {
      executor: 'constant-arrival-rate', rate: Number(__ENV.GO_RATE || 80), timeUnit: '1s',
      duration: DURATION, preAllocatedVUs: 16, maxVUs: 48, exec: 'go',
    },
    hostile: {
      executor: 'constant-arrival-rate', rate: 1, timeUnit: `${HOSTILE_EVERY}s`,
      duration: DURATION, preAllocatedVUs: 2, maxVUs: 4, exec: 'hostile',
    },
  },
};

// SESSION_VUS=0 leaves sessions out (no container churn), to tell their cost apart.
if (Number(__ENV.SESSION_VUS ?? 2) > 0) {
  options.scenarios.sessions = { executor: 'constant-vus', vus: Number(__ENV.SESSION_VUS ?? 2), duration: DURATION, exec: 'session' };
}

const PY = JSON.stringify({ language: 'python', code: 'result = {"sum": sum(input_data["xs"])}', input: { xs: [1, 2, 3] } });
const GO = JSON.stringify({
  language: 'go',
  code: 's := 0.0\nfor _, x := range input_data["xs"].([]interface{}) { s += x.(float64) }\nresult := map[string]interface{}{"sum": s}',
  input: { xs: [1, 2, 3] },
});

function trivial(body, tag) {
  const r = http.post(`${BASE}/v1/execute`, body, { headers: HEADERS, tags: { kind: 'trivial', lang: tag }, timeout: '30s' });
  check(r, { 'trivial ok': (res) => res.status === 200 && res.json('output.sum') === 6 }, { kind: 'trivial' });
}

export function python() { trivial(PY, 'python'); }
export function go() { trivial(GO, 'go'); }

export function session() {
  const p = { headers: HEADERS, tags: { kind: 'session' }, timeout: '30s' };
  const c = http.post(`${BASE}/v1/sessions`, JSON.stringify({ language: 'python' }), p);
  if (!check(c, { 'session created': (r) => r.status === 201 }, { kind: 'session' })) return;
  const id = c.json('sessionId');
  for (let i = 0; i < 20; i++) {
    const w = http.post(`${BASE}/v1/sessions/${id}/commands`,
      JSON.stringify({ type: 'write_file', path: `f${i}.txt`, content: `v${i}` }), p);
    const rd = http.post(`${BASE}/v1/sessions/${id}/commands`,
      JSON.stringify({ type: 'read_file', path: `f${i}.txt` }), p);
    check(w, { 'session write ok': (r) => r.status === 200 }, { kind: 'session' });
    check(rd, { 'session read ok': (r) => r.status === 200 && JSON.stringify(r.json()).includes(`v${i}`) }, { kind: 'session' });
    sleep(0.1);
  }
  http.del(`${BASE}/v1/sessions/${id}`, null, p);
  // A session takes a container out of the pool for good: pace them like real clients.
  sleep(2);
}

const HOSTILE = [
  'import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass',
  'x = []\nwhile True:\n    x.append(bytearray(10 * 1024 * 1024))',
  'while True:\n    print("x" * 10000)',
  'while True:\n    pass',
];

export function hostile() {
  const code = HOSTILE[Math.floor(Date.now() / 1000 / HOSTILE_EVERY) % HOSTILE.length];
  const r = http.post(`${BASE}/v1/execute`, JSON.stringify({ language: 'python', code, input: {}, timeoutMs: 3000 }),
    { headers: HEADERS, tags: { kind: 'hostile' }, timeout: '30s' });
  // The program's fault is never a 5xx: a 200 with success false.
  check(r, { 'hostile is the program\'s failure': (res) => res.status === 200 && res.json('success') === false }, { kind: 'hostile' });
}
