import { test } from "node:test";
import assert from "node:assert/strict";
import { client } from "./helpers.mjs";

const items = [1, 2, 3, 4].map((v) => ({ id: `i${v}`, input: { v } }));

test("batch answers every item and the summary", async () => {
  const r = await client().batch({ language: "python", code: "result = input_data['v'] * 2", items, maxConcurrency: 2 });
  assert.equal(r.totalItems, 4);
  assert.equal(r.successCount, 4);
  assert.deepEqual(
    r.results.map((i) => [i.id, i.output]),
    [["i1", 2], ["i2", 4], ["i3", 6], ["i4", 8]],
  );
});

test("batchStream yields NDJSON items as they finish, then the summary", async () => {
  const events = [];
  for await (const event of client().batchStream({
    language: "python",
    code: "if input_data['v'] == 3:\n    raise ValueError('three')\nresult = input_data['v']",
    items,
  })) {
    events.push(event);
  }
  assert.equal(events.length, 5);
  assert.deepEqual(events.slice(0, 4).map((e) => e.type), ["item", "item", "item", "item"]);
  const byId = Object.fromEntries(events.slice(0, 4).map((e) => [e.item.id, e.item]));
  assert.equal(byId.i3.success, false);
  assert.equal(byId.i3.error.kind, "runtime_error");
  assert.equal(byId.i4.output, 4);
  assert.equal(events[4].type, "summary");
  assert.equal(events[4].summary.failureCount, 1);
  assert.equal(events[4].summary.successCount, 3);
});

test("a batchStream can be left early", async () => {
  const many = Array.from({ length: 20 }, (_, i) => ({ id: String(i), input: { v: i } }));
  let seen = 0;
  for await (const event of client().batchStream({ language: "python", code: "result = 1", items: many, maxConcurrency: 1 })) {
    assert.equal(event.type, "item");
    if (++seen === 2) break;
  }
  assert.equal(seen, 2);
});

test("aborting a batchStream mid-way ends the iteration", async () => {
  const controller = new AbortController();
  const many = Array.from({ length: 10 }, (_, i) => ({ id: String(i), input: { v: i } }));
  const seen = [];
  await assert.rejects(async () => {
    for await (const event of client().batchStream(
      { language: "python", code: "import time\ntime.sleep(0.2)\nresult = 1", items: many, maxConcurrency: 1 },
      { signal: controller.signal },
    )) {
      seen.push(event);
      controller.abort();
    }
  }, (e) => e.name === "AbortError");
  assert.equal(seen.length, 1);
});
