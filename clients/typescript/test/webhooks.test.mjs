import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { createHmac } from "node:crypto";
import { client } from "./helpers.mjs";
import { signWebhook, verifyWebhook } from "../dist/index.js";

// The vector of src/webhooks.rs's own test: HMAC-SHA256("secret", "1700000000.{}").
const VECTOR = "sha256=b8569b78799ff9e3cbff0fc2d63a33a2b57f3282abd07c37ae5e8e7d79a5f163";

test("signatures are the gateway's: the Rust sign function's known vector", async () => {
  assert.equal(await signWebhook("secret", 1_700_000_000, "{}"), VECTOR);
  assert.equal(await signWebhook("secret", "1700000000", new TextEncoder().encode("{}")), VECTOR);
  // Computed here the way the Rust function does it: key, then "<timestamp>" "." "<body>".
  const body = '{"executionId":"é","status":"completed"}';
  const expected = "sha256=" + createHmac("sha256", "whsec_x").update("1700000123").update(".").update(body).digest("hex");
  assert.equal(await signWebhook("whsec_x", 1_700_000_123, body), expected);
});

test("verifyWebhook accepts the right signature and refuses others and old timestamps", async () => {
  const now = 1_700_000_010;
  assert.equal(await verifyWebhook("secret", "1700000000", VECTOR, "{}", { now }), true);
  assert.equal(await verifyWebhook("secret", 1_700_000_000, VECTOR, "{} ", { now }), false);
  assert.equal(await verifyWebhook("other", 1_700_000_000, VECTOR, "{}", { now }), false);
  assert.equal(await verifyWebhook("secret", 1_700_000_001, VECTOR, "{}", { now }), false);
  assert.equal(await verifyWebhook("secret", 1_700_000_000, VECTOR.slice(0, -1), "{}", { now }), false);
  // Older than the tolerance (300 s by default): a replay.
  assert.equal(await verifyWebhook("secret", 1_700_000_000, VECTOR, "{}", { now: now + 1000 }), false);
  assert.equal(await verifyWebhook("secret", 1_700_000_000, VECTOR, "{}", { now: now + 1000, toleranceSeconds: Infinity }), true);
});

test("a real callback from the gateway verifies with the key's secret", async () => {
  const c = client();
  const { secret } = await c.webhookSecret();
  let receive;
  const received = new Promise((resolve) => (receive = resolve));
  const server = createServer((req, res) => {
    const chunks = [];
    req.on("data", (chunk) => chunks.push(chunk));
    req.on("end", () => {
      res.end("ok");
      receive({ headers: req.headers, body: Buffer.concat(chunks).toString("utf8") });
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  try {
    const callbackUrl = `http://127.0.0.1:${server.address().port}/hook`;
    const { executionId } = await c.submit({ language: "python", code: "result = 'called back'" }, { callbackUrl });
    const { headers, body } = await Promise.race([
      received,
      new Promise((_, reject) => setTimeout(() => reject(new Error("no callback within 30 s")), 30_000).unref()),
    ]);
    const ok = await verifyWebhook(secret, headers["x-codebeaker-timestamp"], headers["x-codebeaker-signature"], body);
    assert.equal(ok, true, JSON.stringify(headers));
    assert.equal(JSON.parse(body).executionId, executionId);
    assert.equal(await verifyWebhook(secret, headers["x-codebeaker-timestamp"], headers["x-codebeaker-signature"], body + " "), false);
  } finally {
    server.close();
    // The gateway keeps its connection alive; it must not keep this process alive.
    server.closeAllConnections();
  }
});
