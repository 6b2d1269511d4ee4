// k6: the Loopai client's flow over the JSON-RPC WebSocket, one language per run.
//   API_KEY=cb_... CB_LANGUAGE=python DURATION_MS=15000 k6 run loadtest/loopai.js
// Like CodeBeakerRuntimeService with a reused session: the key rides in the URL (the
// client sends no headers), and every call writes /workspace/input.json and the wrapped
// program with mode "Create", runs it with `shell` (python3, deno, go run, dotnet script)
// and reads /workspace/output.json. The session is created once, before measuring; one
// unmeasured call warms the compile caches (go run's build cache, dotnet script's).
// `shell_true_ms` is the same command path with `true`: the shell step minus it is the
// runtime's start-up plus the (trivial) program.
import ws from 'k6/ws';
import { check } from 'k6';
import { Trend, Counter } from 'k6/metrics';

const BASE = (__ENV.BASE_URL || 'http://127.0.0.1:8080').replace('http', 'ws');
const LANG = __ENV.CB_LANGUAGE || 'python';
const DURATION_MS = Number(__ENV.DURATION_MS || 15000);

const tFlow = new Trend('loopai_flow_ms', true);
const tShell = new Trend('shell_run_ms', true);
const tTrue = new Trend('shell_true_ms', true);
const failures = new Counter('flow_failures');

export const options = { vus: 1, iterations: 1, summaryTrendStats: ['med', 'p(90)', 'p(99)', 'count'] };

const I = '/workspace/input.json';
const O = '/workspace/output.json';
// The client's wrappers (CodeBeakerRuntimeService.cs), with `{"output": value * 2}`.
const PROGRAMS = {
  python: ['/workspace/program.py', 'python3', ['/workspace/program.py'],
    `\nimport json\n\n# Read input\nwith open('${I}', 'r') as f:\n    input_data = json.load(f)\n\n# User code\nresult = {'output': input_data['value'] * 2}\n\n# Write output (assumes 'result' variable exists)\nwith open('${O}', 'w') as f:\n    json.dump(result, f)\n`],
  javascript: ['/workspace/program.js', 'deno', ['/workspace/program.js'],
    `\n// Read input using Deno API\nconst inputText = await Deno.readTextFile('${I}');\nconst input_data = JSON.parse(inputText);\n\n// User code\nconst result = { output: input_data.value * 2 };\n\n// Write output (assumes 'result' variable exists)\nconst outputText = JSON.stringify(result);\nawait Deno.writeTextFile('${O}', outputText);\n`],
  go: ['/workspace/program.go', 'go', ['run', '/workspace/program.go'],
    `\npackage main\n\nimport (\n    "encoding/json"\n    "os"\n)\n\nfunc main() {\n    inputFile, _ := os.Open("${I}")\n    defer inputFile.Close()\n    var input_data map[string]interface{}\n    json.NewDecoder(inputFile).Decode(&input_data)\n\n    value := input_data["value"].(float64)\n    result := map[string]interface{}{"output": value * 2}\n\n    outputFile, _ := os.Create("${O}")\n    defer outputFile.Close()\n    json.NewEncoder(outputFile).Encode(result)\n}\n`],
  csharp: ['/workspace/program.cs', 'dotnet', ['script', '/workspace/program.cs'],
    `\nusing System;\nusing System.IO;\nusing System.Text.Json;\n\n// Read input\nvar inputJson = File.ReadAllText("${I}");\nvar input_data = JsonSerializer.Deserialize<JsonElement>(inputJson);\n\n// User code\nvar value = input_data.GetProperty("value").GetInt32();\nvar result = new { output = value * 2 };\n\n// Write output (assumes 'result' variable exists)\nvar outputJson = JsonSerializer.Serialize(result);\nFile.WriteAllText("${O}", outputJson);\n`],
};

export default function () {
  const [script, command, args, source] = PROGRAMS[LANG];
  const url = `${BASE}/ws/jsonrpc?api_key=${encodeURIComponent(__ENV.API_KEY || '')}`;
  const res = ws.connect(url, {}, function (socket) {
    let id = 0;
    let pending = null;
    let started = 0;
    let n = 0;
    const call = (method, p, onReply) => {
      id += 1;
      pending = { id, sent: Date.now(), onReply };
      socket.send(JSON.stringify({ jsonrpc: '2.0', id, method, params: p }) + '\n');
    };
    const exec = (sid, command, onReply) => call('session.execute', { sessionId: sid, command }, onReply);

    const flow = (sid) => {
      const measured = started > 0;
      if (measured && Date.now() - started > DURATION_MS) {
        call('session.close', { sessionId: sid }, () => socket.close());
        return;
      }
      const t0 = Date.now();
      n += 1;
      exec(sid, { type: 'write_file', path: I, content: JSON.stringify({ value: n }), mode: 'Create' }, () => {
        exec(sid, { type: 'write_file', path: script, content: source, mode: 'Create' }, () => {
          exec(sid, { type: 'shell', commandName: command, args }, (r, msShell) => {
            if (!r.result || !r.result.success) { failures.add(1); }
            exec(sid, { type: 'read_file', path: O }, (r4) => {
              const ok = r4.result && r4.result.success && JSON.parse(r4.result.result.content).output === 2 * n;
              check(r4, { 'flow output': () => ok });
              if (!ok) failures.add(1);
              if (measured) {
                tFlow.add(Date.now() - t0);
                tShell.add(msShell);
                exec(sid, { type: 'shell', commandName: 'true', args: [] }, (rt, msTrue) => {
                  tTrue.add(msTrue);
                  flow(sid);
                });
              } else {
                started = Date.now();
                flow(sid);
              }
            });
          });
        });
      });
    };

    socket.on('open', () => call('session.create', { language: LANG, idleTimeoutMinutes: 30, maxLifetimeMinutes: 120, memoryLimitMB: 512, cpuShares: 1024 },
      (r) => flow(r.result.sessionId)));
    socket.on('message', (text) => {
      const msg = JSON.parse(text);
      if (msg.id === undefined || !pending || msg.id !== pending.id) return;
      const p = pending;
      pending = null;
      p.onReply(msg, Date.now() - p.sent);
    });
    socket.setTimeout(() => socket.close(), DURATION_MS + 120000);
  });
  check(res, { 'websocket 101': (r) => r && r.status === 101 });
}
