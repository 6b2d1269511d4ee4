import { test } from "node:test";
import assert from "node:assert/strict";
import { client } from "./helpers.mjs";

test("submit, wait and getExecution: an async execution runs to completion", async () => {
  const c = client();
  const submitted = await c.submit({ language: "python", code: "result = input_data['x'] + 1", input: { x: 41 } });
  assert.equal(submitted.status, "queued");
  assert.equal(submitted.statusUrl, `/v1/executions/${submitted.executionId}`);
  const done = await c.wait(submitted.executionId, { intervalMs: 50 });
  assert.equal(done.status, "completed");
  assert.equal(done.kind, "execute");
  assert.equal(done.result.output, 42);
  const again = await c.getExecution(submitted.executionId);
  assert.equal(again.result.output, 42);
  const list = await c.listExecutions({ status: "completed", limit: 50 });
  assert.ok(list.executions.some((e) => e.executionId === submitted.executionId));
});

test("an async batch pages its results", async () => {
  const c = client();
  const items = [1, 2, 3].map((v) => ({ id: `b${v}`, input: { v } }));
  const { executionId } = await c.submit({ language: "python", code: "result = input_data['v']", items });
  const done = await c.wait(executionId, { intervalMs: 50 });
  assert.equal(done.kind, "batch");
  assert.equal(done.result.results.length, 3);
  const page = await c.getExecution(executionId, { offset: 1, limit: 1 });
  assert.deepEqual(page.result.results.map((r) => r.id), ["b2"]);
});

test("cancel ends a running execution", async () => {
  const c = client();
  const { executionId } = await c.submit({ language: "python", code: "import time\ntime.sleep(3)\nresult = 1", timeoutMs: 5_000 });
  const cancelled = await c.cancel(executionId);
  assert.equal(cancelled.executionId, executionId);
  const final = await c.wait(executionId, { intervalMs: 50, timeoutMs: 20_000 });
  assert.equal(final.status, "cancelled");
});

test("the same Idempotency-Key and body give the same execution", async () => {
  const c = client();
  const key = `sdk-ts-${Date.now()}-${Math.random()}`;
  const body = { language: "python", code: "result = 7" };
  const first = await c.submit(body, { idempotencyKey: key });
  const second = await c.submit(body, { idempotencyKey: key });
  assert.equal(second.executionId, first.executionId);
  await c.wait(first.executionId, { intervalMs: 50 });
});

test("wait gives up after its timeout", async () => {
  const c = client();
  const { executionId } = await c.submit({ language: "python", code: "import time\ntime.sleep(2)\nresult = 1" });
  await assert.rejects(c.wait(executionId, { intervalMs: 50, timeoutMs: 200 }), (e) => e.name === "RequestTimeoutError");
  await c.cancel(executionId);
});
