import { test } from "node:test";
import assert from "node:assert/strict";
import { client, KEY, URL_ } from "./helpers.mjs";
import { CodeBeaker, CodeBeakerError } from "../dist/index.js";

test("the URL and key come from CODEBEAKER_URL and CODEBEAKER_API_KEY", async () => {
  const cb = new CodeBeaker();
  assert.equal(cb.url, URL_.replace(/\/+$/, ""));
  const r = await cb.execute({ language: "python", code: "result = 6 * 7" });
  assert.equal(r.success, true);
  assert.equal(r.output, 42);
});

test("execute passes input, and stdin, args and files reach the program", async () => {
  const cb = client({ url: URL_, apiKey: KEY });
  const r = await cb.execute({
    language: "python",
    code: [
      "import sys",
      "from helper import twice",
      "result = {'sum': twice(sum(input_data['xs'])), 'args': sys.argv[1:], 'stdin': sys.stdin.read(),",
      "          'blob': open('data.bin', 'rb').read().hex()}",
    ].join("\n"),
    input: { xs: [1, 2, 3] },
    stdin: "from stdin",
    args: ["a", "b c"],
    files: [
      { path: "helper.py", content: "def twice(x):\n    return 2 * x\n" },
      { path: "data.bin", content: "AAEC/w==", encoding: "base64" },
    ],
    timeoutMs: 10_000,
    memoryLimitMb: 256,
    isolation: "call",
  });
  assert.equal(r.success, true, r.stderr);
  assert.deepEqual(r.output, { sum: 12, args: ["a", "b c"], stdin: "from stdin", blob: "000102ff" });
  assert.equal(typeof r.executionId, "string");
  assert.equal(typeof r.durationMs, "number");
});

test("a plain program answers on stdout; a failing program is a result, not an exception", async () => {
  const cb = client();
  const plain = await cb.execute({ language: "python", mode: "plain", code: "print('hi')" });
  assert.equal(plain.stdout, "hi\n");
  assert.equal(plain.output, null);
  const failed = await cb.execute({ language: "python", code: "raise ValueError('boom')" });
  assert.equal(failed.success, false);
  assert.equal(failed.error.kind, "runtime_error");
  assert.match(failed.error.message + failed.stderr, /boom/);
  const timeout = await cb.execute({ language: "python", code: "while True: pass", timeoutMs: 300 });
  assert.equal(timeout.error.kind, "timeout");
});

test("program isolation runs on a resident instance", async () => {
  const r = await client().execute({ language: "python", code: "result = input_data['v'] + 1", input: { v: 1 }, isolation: "program" });
  assert.equal(r.success, true, JSON.stringify(r));
  assert.equal(r.output, 2);
});

test("languages lists the served languages", async () => {
  const languages = await client().languages();
  const python = languages.find((l) => l.name === "python");
  assert.ok(python, JSON.stringify(languages));
  assert.ok(python.aliases.includes("py"));
  assert.equal(python.available, true);
});

test("abort signals are honoured", async () => {
  const controller = new AbortController();
  const pending = client().execute({ language: "python", code: "import time\ntime.sleep(2)\nresult = 1" }, { signal: controller.signal });
  setTimeout(() => controller.abort(), 100);
  await assert.rejects(pending, (e) => e.name === "AbortError" && !(e instanceof CodeBeakerError));
});
