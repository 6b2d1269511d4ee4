/**
 * Webhook signatures, exactly as the gateway's `webhooks::sign` makes them:
 * `sha256=` + hex HMAC-SHA256(secret, `"<timestamp>.<body>"`), over the raw body bytes.
 * WebCrypto where it is global (browsers, Node 19+), else Node's `crypto` module (Node 18).
 */

const encoder = new TextEncoder();

async function hmacSha256(secret: string, message: string): Promise<Uint8Array> {
  let subtle = globalThis.crypto?.subtle;
  if (!subtle) {
    // A variable specifier: bundlers for browsers leave it alone, and browsers never get here.
    const nodeCrypto = "node:crypto";
    try {
      subtle = ((await import(nodeCrypto)) as { webcrypto: Crypto }).webcrypto.subtle;
    } catch {
      throw new Error("no WebCrypto here (a browser page not served over HTTPS?): signatures cannot be checked");
    }
  }
  const key = await subtle.importKey("raw", encoder.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  return new Uint8Array(await subtle.sign("HMAC", key, encoder.encode(message)));
}

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The `X-CodeBeaker-Signature` value of `body` sent at `timestamp` (unix seconds). */
export async function signWebhook(secret: string, timestamp: number | string, body: string | Uint8Array): Promise<string> {
  const text = typeof body === "string" ? body : new TextDecoder().decode(body);
  return `sha256=${hex(await hmacSha256(secret, `${timestamp}.${text}`))}`;
}

export interface VerifyOptions {
  /** Oldest accepted timestamp, in seconds before now (default 300; `Infinity` for none). */
  toleranceSeconds?: number;
  /** Now, in unix seconds (for tests). */
  now?: number;
}

/**
 * Whether a callback is genuine: the signature matches and the timestamp is recent (an old
 * one would let a captured callback be replayed). Pass the body exactly as received, before
 * any JSON parsing.
 */
export async function verifyWebhook(
  secret: string,
  timestamp: number | string,
  signature: string,
  body: string | Uint8Array,
  options: VerifyOptions = {},
): Promise<boolean> {
  const ts = Number(timestamp);
  if (!Number.isInteger(ts) || String(ts) !== String(timestamp).trim()) return false;
  const now = options.now ?? Math.floor(Date.now() / 1000);
  if (Math.abs(now - ts) > (options.toleranceSeconds ?? 300)) return false;
  const expected = await signWebhook(secret, ts, body);
  return constantTimeEqual(expected, signature.trim());
}

/** Compares without stopping at the first difference, so timing reveals nothing. */
function constantTimeEqual(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}
