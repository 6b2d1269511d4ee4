/**
 * The HTTP transport: one `fetch` per attempt under a timeout (AbortController), the key on
 * every request, refused answers turned into typed errors, and 429/503 answers that carry
 * `Retry-After` tried again a bounded number of times (the gateway sends it only when
 * waiting helps: a missing image, `language_unavailable`, has none).
 */

import { CodeBeakerError, ConnectionError, RequestTimeoutError, errorFromResponse } from "./errors.js";
import { sleep } from "./util.js";

export interface TransportOptions {
  url: string;
  apiKey?: string;
  /** Per attempt, until the answer's headers (and its body, unless streamed). Default 120 000. */
  timeoutMs: number;
  /** Further attempts after a 429/503 with `Retry-After`. Default 3. */
  maxRetries: number;
  /** The longest wait between attempts, whatever `Retry-After` says. Default 30 000. */
  maxRetryDelayMs: number;
  fetch: typeof fetch;
  headers: Record<string, string>;
}

export interface RequestOptions {
  body?: unknown;
  query?: Record<string, string | number | undefined>;
  headers?: Record<string, string>;
  signal?: AbortSignal;
  /** Hand back the body unread (for streams): the timeout then covers the headers only. */
  stream?: boolean;
}

/** Seconds to wait from a `Retry-After` header (delay-seconds or an HTTP date). */
function retryAfterSeconds(value: string | null): number | undefined {
  if (value === null) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds);
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, (date - Date.now()) / 1000);
}

export class Transport {
  constructor(readonly options: TransportOptions) {}

  url(path: string, query?: RequestOptions["query"]): string {
    const url = new URL(this.options.url.replace(/\/+$/, "") + path);
    for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
    return url.toString();
  }

  /** The answer of a successful request; its body parsed as JSON unless `stream`. */
  async request<T>(method: string, path: string, opts: RequestOptions & { stream: true }): Promise<Response>;
  async request<T>(method: string, path: string, opts?: RequestOptions): Promise<T>;
  async request<T>(method: string, path: string, opts: RequestOptions = {}): Promise<T | Response> {
    const headers: Record<string, string> = { accept: "application/json", ...this.options.headers, ...opts.headers };
    if (this.options.apiKey) headers["x-api-key"] = this.options.apiKey;
    const body = opts.body === undefined ? undefined : JSON.stringify(opts.body);
    if (body !== undefined) headers["content-type"] = "application/json";
    const url = this.url(path, opts.query);

    for (let attempt = 0; ; attempt++) {
      const controller = new AbortController();
      const onAbort = () => controller.abort(opts.signal!.reason);
      opts.signal?.addEventListener("abort", onAbort, { once: true });
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        controller.abort();
      }, this.options.timeoutMs);
      // A streamed body stays tied to the caller's signal after the headers.
      let streaming = false;
      const done = () => {
        clearTimeout(timer);
        if (!streaming) opts.signal?.removeEventListener("abort", onAbort);
      };
      try {
        let response: Response;
        try {
          response = await this.options.fetch(url, { method, headers, body, signal: controller.signal });
        } catch (e) {
          throw this.failure(e, timedOut, method, path);
        }
        if (response.ok && opts.stream) {
          streaming = true;
          return response;
        }
        let text: string;
        try {
          text = await response.text();
        } catch (e) {
          throw this.failure(e, timedOut, method, path);
        }
        if (response.ok) return (text ? JSON.parse(text) : null) as T;
        let parsed: unknown = null;
        try {
          parsed = JSON.parse(text);
        } catch {
          // Not JSON (a proxy's page): the error names the status only.
        }
        const retryAfter = retryAfterSeconds(response.headers.get("retry-after"));
        const error = errorFromResponse(response.status, parsed, retryAfter);
        const retryable = (response.status === 429 || response.status === 503) && retryAfter !== undefined;
        if (!retryable || attempt >= this.options.maxRetries) throw error;
        done();
        // At least 50 ms, so a `Retry-After: 0` does not spin.
        await sleep(Math.min(Math.max(retryAfter! * 1000, 50), this.options.maxRetryDelayMs), opts.signal);
      } finally {
        done();
      }
    }
  }

  private failure(e: unknown, timedOut: boolean, method: string, path: string): CodeBeakerError {
    if (e instanceof CodeBeakerError) return e;
    if (timedOut) {
      return new RequestTimeoutError("timeout", `${method} ${path}: no answer within ${this.options.timeoutMs} ms`);
    }
    // The caller's own abort is not ours to translate.
    if ((e as { name?: string })?.name === "AbortError") throw e;
    return new ConnectionError("connection_error", `${method} ${path}: ${(e as Error)?.message ?? e}`);
  }
}
