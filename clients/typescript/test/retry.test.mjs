import { test } from "node:test";
import assert from "node:assert/strict";
import { SLOW_KEY, URL_ } from "./helpers.mjs";
import { CodeBeaker, RateLimitedError, RateLimitError } from "../dist/index.js";

// SLOW_KEY allows 1 request per second with a burst of 1.
const opts = { skip: !SLOW_KEY && "CODEBEAKER_SLOW_API_KEY is not set" };

test("a 429 with Retry-After is retried, and succeeds once the limit allows", opts, async () => {
  const c = new CodeBeaker({ url: URL_, apiKey: SLOW_KEY, maxRetries: 5 });
  const started = Date.now();
  const results = await Promise.all([0, 1, 2].map(() => c.execute({ language: "python", code: "result = 1" })));
  assert.deepEqual(results.map((r) => r.output), [1, 1, 1]);
  // Three requests at 1/s with a burst of 1: the last waited about two seconds.
  assert.ok(Date.now() - started >= 900, `took only ${Date.now() - started} ms`);
});

test("without retries, a 429 is RateLimitedError with retryAfter", opts, async () => {
  const c = new CodeBeaker({ url: URL_, apiKey: SLOW_KEY, maxRetries: 0 });
  await assert.rejects(
    Promise.all([0, 1, 2].map(() => c.languages())),
    (e) => {
      assert.ok(e instanceof RateLimitedError && e instanceof RateLimitError, `${e.name}: ${e.message}`);
      assert.equal(e.status, 429);
      assert.equal(e.kind, "rate_limited");
      assert.ok(e.retryAfter >= 0, `retryAfter ${e.retryAfter}`);
      return true;
    },
  );
});

test("retries are bounded: the error comes back after maxRetries", opts, async () => {
  // A fake gateway that is always over the limit: 1 + 2 attempts, then the error.
  let calls = 0;
  const fake = async () => {
    calls++;
    return new Response(JSON.stringify({ error: { kind: "overloaded", message: "shed" } }), {
      status: 503,
      headers: { "retry-after": "0", "content-type": "application/json" },
    });
  };
  const c = new CodeBeaker({ url: URL_, apiKey: "k", maxRetries: 2, fetch: fake });
  await assert.rejects(c.languages(), (e) => e.kind === "overloaded" && e.status === 503);
  assert.equal(calls, 3);
});
