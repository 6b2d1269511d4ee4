import { test } from "node:test";
import assert from "node:assert/strict";
import { client } from "./helpers.mjs";
import { SessionCommandError, SessionNotFoundError } from "../dist/index.js";

const bytes = new Uint8Array([0, 1, 2, 250, 255, 10, 13]);

test("a REST session: files up and down, shell, run_code, list, get, close", async () => {
  const c = client();
  const session = await c.createSession({ language: "python", idleTimeoutMinutes: 5 });
  try {
    assert.equal(session.info.language, "python");
    const w = await session.writeFile("hello.py", "import sys\nprint('hello', sys.argv[1])\n");
    assert.equal(w.success, true, w.error);
    assert.equal(await session.readFile("hello.py"), "import sys\nprint('hello', sys.argv[1])\n");
    assert.equal((await session.createDirectory("data")).success, true);
    await session.upload("data/blob.bin", bytes).then((r) => assert.equal(r.success, true, r.error));
    assert.deepEqual(await session.download("data/blob.bin"), bytes);
    const sh = await session.executeShell("python3", ["hello.py", "there"]);
    assert.equal(sh.success, true, sh.error);
    assert.equal(sh.result.stdout, "hello there\n");
    const failed = await session.executeShell("python3", ["-c", "raise SystemExit(3)"]);
    assert.equal(failed.success, false);
    assert.equal(failed.result.exitCode, 3);
    assert.equal(failed.errorKind, "exit_status");
    const run = await session.runCode("result = input_data * 3", 14);
    assert.equal(run.success, true, run.error);
    assert.equal(run.result.output, 42);
    const dir = await session.listDirectory("data");
    assert.deepEqual(dir.result.entries.map((e) => e.name), ["blob.bin"]);
    await assert.rejects(session.readFile("missing.txt"), (e) => e instanceof SessionCommandError && e.kind === "not_found");
    const listed = await c.listSessions();
    assert.ok(listed.sessions.some((s) => s.sessionId === session.id));
    assert.equal((await c.getSession(session.id)).sessionId, session.id);
  } finally {
    await session.close();
  }
  await assert.rejects(c.getSession(session.id), SessionNotFoundError);
});

test("a JSON-RPC session over the WebSocket, with streamed output", async () => {
  const c = client();
  const rpc = await c.connect();
  try {
    const session = await rpc.createSession({ language: "python" });
    assert.equal(session.info.state, "Active");
    await session.upload("blob.bin", bytes);
    assert.deepEqual(await session.download("blob.bin"), bytes);
    await session.writeFile("count.py", "import time\nfor i in range(3):\n    print(i, flush=True)\n    time.sleep(0.05)\n");

    // As an async iterator.
    const { output, result } = session.streamShell("python3", ["count.py"]);
    const chunks = [];
    for await (const chunk of output) chunks.push(chunk);
    const answer = await result;
    assert.equal(answer.success, true, answer.error);
    assert.ok(chunks.length >= 1);
    assert.ok(chunks.every((ch) => ch.sessionId === session.id && ch.stream === "stdout"));
    assert.equal(chunks.map((ch) => ch.data).join(""), "0\n1\n2\n");

    // With a callback.
    let streamed = "";
    const r = await session.shell("python3", ["count.py"], (chunk) => (streamed += chunk.data));
    assert.equal(r.result.stdout, "0\n1\n2\n");
    assert.equal(streamed, "0\n1\n2\n");

    const run = await session.runCode("result = {'n': input_data['n'] + 1}", { n: 1 });
    assert.deepEqual(run.result.output, { n: 2 });
    const listed = await rpc.listSessions();
    assert.ok(listed.sessions.some((s) => s.sessionId === session.id));
    const exec = await rpc.execute({ language: "python", code: "result = 'over rpc'" });
    assert.equal(exec.output, "over rpc");
    await session.close();
    await assert.rejects(session.readFile("count.py"), (e) => e instanceof SessionNotFoundError && e.rpcCode === -32001);
  } finally {
    await rpc.close();
  }
});
