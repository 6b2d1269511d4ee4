import { test } from "node:test";
import assert from "node:assert/strict";
import { client, URL_ } from "./helpers.mjs";
import * as cb from "../dist/index.js";

// Each error kind the gateway sends becomes its own class, under its family.
async function refused(promise, Class, Family, kind, status) {
  await assert.rejects(promise, (e) => {
    assert.ok(e instanceof Class, `${e.name} (${e.kind}: ${e.message}) is not a ${Class.name}`);
    assert.ok(e instanceof Family);
    assert.ok(e instanceof cb.CodeBeakerError);
    assert.equal(e.kind, kind);
    assert.equal(e.status, status);
    assert.ok(e.message.length > 0);
    return true;
  });
}

test("a wrong key is UnauthenticatedError (401)", async () => {
  const c = new cb.CodeBeaker({ url: URL_, apiKey: "cb_000000000000_wrong" });
  await refused(c.execute({ language: "python", code: "result = 1" }), cb.UnauthenticatedError, cb.AuthenticationError, "unauthenticated", 401);
});

test("an unknown language is UnsupportedLanguageError (400)", async () => {
  await refused(
    client().execute({ language: "cobol", code: "x" }),
    cb.UnsupportedLanguageError,
    cb.InvalidRequestError,
    "unsupported_language",
    400,
  );
});

test("an unknown member is UnknownFieldError (400)", async () => {
  await refused(
    client().execute({ language: "python", code: "result = 1", bogus: 1 }),
    cb.UnknownFieldError,
    cb.InvalidRequestError,
    "unknown_field",
    400,
  );
});

test("an ill-typed member is ValidationError (422)", async () => {
  await refused(client().execute({ language: "python", code: 5 }), cb.ValidationError, cb.InvalidRequestError, "invalid_request", 422);
});

test("a time limit above the maximum is LimitExceededError (403)", async () => {
  await refused(
    client().execute({ language: "python", code: "result = 1", timeoutMs: 10_000_000 }),
    cb.LimitExceededError,
    cb.PermissionDeniedError,
    "limit_exceeded",
    403,
  );
});

test("a package no variant has is UnknownPackagesError (422)", async () => {
  await refused(
    client().execute({ language: "python", code: "result = 1", packages: ["no-such-package-xyz"] }),
    cb.UnknownPackagesError,
    cb.InvalidRequestError,
    "unknown_packages",
    422,
  );
});

test("an unknown execution is ExecutionNotFoundError, an unknown session SessionNotFoundError (404)", async () => {
  const c = client();
  await refused(c.getExecution("00000000-0000-0000-0000-000000000000"), cb.ExecutionNotFoundError, cb.NotFoundError, "execution_not_found", 404);
  await refused(c.getSession("no-such-session"), cb.SessionNotFoundError, cb.NotFoundError, "session_not_found", 404);
});

test("every kind maps to a class, and unknown kinds to their status's family", () => {
  for (const [kind, Class] of Object.entries(cb.ERROR_CLASSES)) {
    const e = cb.errorFromResponse(400, { error: { kind, message: "m" } });
    assert.ok(e instanceof Class && e.kind === kind && e.message === "m");
  }
  assert.ok(cb.errorFromResponse(429, { error: { kind: "new_kind", message: "m" } }) instanceof cb.RateLimitError);
  assert.ok(cb.errorFromResponse(502, null) instanceof cb.ServerError);
  assert.ok(cb.errorFromRpc(-32001, "gone") instanceof cb.SessionNotFoundError);
});

test("no answer within timeoutMs is RequestTimeoutError; no gateway is ConnectionError", async () => {
  const slow = client({ timeoutMs: 200 });
  await assert.rejects(slow.execute({ language: "python", code: "import time\ntime.sleep(1)\nresult = 1" }), (e) => {
    assert.ok(e instanceof cb.RequestTimeoutError, `${e.name}: ${e.message}`);
    assert.ok(e instanceof cb.ConnectionError);
    assert.equal(e.status, 0);
    return true;
  });
  const down = new cb.CodeBeaker({ url: "http://127.0.0.1:9", apiKey: "k" });
  await assert.rejects(down.languages(), (e) => e instanceof cb.ConnectionError && e.kind === "connection_error");
});
