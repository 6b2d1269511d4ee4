// k6: session latency over the JSON-RPC WebSocket, Python.
//   API_KEY=cb_... DURATION_MS=20000 k6 run loadtest/sessions.js
// Per cycle: the 5-step Loopai flow (session.create, write_file input.json, write_file
// program, execute_shell python3, read_file output.json), then 20 rounds of
// `execute_shell true` and a write_file/read_file pair, then session.close and a pause so
// the next create finds a warm container again (creation is measured from a warm pool).
import ws from 'k6/ws';
import { check } from 'k6';
import { Trend, Counter } from 'k6/metrics';

const BASE = (__ENV.BASE_URL || 'http://127.0.0.1:8080').replace('http', 'ws');
const DURATION_MS = Number(__ENV.DURATION_MS || 20000);
const PAUSE_MS = Number(__ENV.PAUSE_MS || 1000);
const ROUNDS = 20;

const tCreate = new Trend('session_create_ms', true);
const tFile = new Trend('file_command_ms', true);
const tRoundTrip = new Trend('write_read_round_trip_ms', true);
const tShellTrue = new Trend('execute_shell_true_ms', true);
const tFlow = new Trend('loopai_flow_ms', true);
const errors = new Counter('rpc_errors');

export const options = { vus: 1, iterations: 1, summaryTrendStats: ['med', 'p(90)', 'p(99)', 'count'] };

const PROGRAM = "import json\nd = json.load(open('/workspace/input.json'))\njson.dump({'sum': sum(d['xs'])}, open('/workspace/output.json', 'w'))\n";

export default function () {
  const params = { headers: { 'x-api-key': __ENV.API_KEY || '' } };
  const res = ws.connect(`${BASE}/ws/jsonrpc`, params, function (socket) {
    let id = 0;
    let pending = null; // {id, sent, onReply}
    const started = Date.now();
    const call = (method, p, onReply) => {
      id += 1;
      pending = { id, sent: Date.now(), onReply };
      socket.send(JSON.stringify({ jsonrpc: '2.0', id, method, params: p }));
    };
    const exec = (sid, command, onReply) => call('session.execute', { sessionId: sid, command }, onReply);

    const cycle = () => {
      if (Date.now() - started > DURATION_MS) { socket.close(); return; }
      const flowStart = Date.now();
      call('session.create', { language: 'python' }, (r, ms) => {
        tCreate.add(ms);
        const sid = r.result.sessionId;
        exec(sid, { type: 'write_file', path: '/workspace/input.json', content: '{"xs":[1,2,3]}' }, (r2, ms2) => {
          tFile.add(ms2);
          exec(sid, { type: 'write_file', path: '/workspace/program.py', content: PROGRAM }, (r3, ms3) => {
            tFile.add(ms3);
            exec(sid, { type: 'execute_shell', commandName: 'python3', args: ['/workspace/program.py'] }, () => {
              exec(sid, { type: 'read_file', path: '/workspace/output.json' }, (r5, ms5) => {
                tFile.add(ms5);
                tFlow.add(Date.now() - flowStart);
                check(r5, { 'flow output': (x) => x.result && x.result.result && JSON.parse(x.result.result.content).sum === 6 });
                rounds(sid, 0);
              });
            });
          });
        });
      });
    };
    const rounds = (sid, n) => {
      if (n >= ROUNDS) {
        call('session.close', { sessionId: sid }, () => socket.setTimeout(cycle, PAUSE_MS));
        return;
      }
      exec(sid, { type: 'execute_shell', commandName: 'true' }, (r, ms) => {
        tShellTrue.add(ms);
        const rtStart = Date.now();
        exec(sid, { type: 'write_file', path: 'rt.txt', content: 'x'.repeat(100) }, (w, msw) => {
          tFile.add(msw);
          exec(sid, { type: 'read_file', path: 'rt.txt' }, (rd, msr) => {
            tFile.add(msr);
            tRoundTrip.add(Date.now() - rtStart);
            rounds(sid, n + 1);
          });
        });
      });
    };

    socket.on('open', cycle);
    socket.on('message', (text) => {
      const msg = JSON.parse(text);
      if (msg.id === undefined || !pending || msg.id !== pending.id) return; // notifications
      if (msg.error || (msg.result && msg.result.success === false)) errors.add(1);
      const p = pending;
      pending = null;
      p.onReply(msg, Date.now() - p.sent);
    });
    socket.setTimeout(() => socket.close(), DURATION_MS + 30000);
  });
  check(res, { 'websocket 101': (r) => r && r.status === 101 });
}
