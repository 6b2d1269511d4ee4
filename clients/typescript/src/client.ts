/** `CodeBeaker`: the client of one gateway with one credential. */

import { CodeBeakerError, RequestTimeoutError } from "./errors.js";
import { Transport } from "./http.js";
import { RpcClient } from "./rpc.js";
import { Session } from "./session.js";
import type {
  BatchEvent,
  BatchRequest,
  BatchResult,
  CreateSessionOptions,
  ExecuteRequest,
  ExecuteResult,
  Execution,
  ExecutionStatus,
  LanguageInfo,
  SessionInfo,
  Submitted,
  SubmitOptions,
} from "./types.js";
import { ndjson, sleep } from "./util.js";

export interface ClientOptions {
  /** The gateway, e.g. `http://127.0.0.1:8080`; default `CODEBEAKER_URL` (Node), else that address. */
  url?: string;
  /** An API key (`cb_…`); default `CODEBEAKER_API_KEY` (Node). */
  apiKey?: string;
  /** Per HTTP attempt, in milliseconds (default 120 000). */
  timeoutMs?: number;
  /** Further attempts after a 429/503 that carries `Retry-After` (default 3; 0 for none). */
  maxRetries?: number;
  /** The longest wait between attempts (default 30 000 ms). */
  maxRetryDelayMs?: number;
  /** Another `fetch` (default the global one). */
  fetch?: typeof fetch;
  /** Extra headers on every request. */
  headers?: Record<string, string>;
}

export interface CallOptions {
  signal?: AbortSignal;
}

export interface WaitOptions extends CallOptions {
  /** Between polls (default 250 ms). */
  intervalMs?: number;
  /** Give up after this long (default 10 minutes): a `RequestTimeoutError`. */
  timeoutMs?: number;
}

const FINAL: ReadonlySet<ExecutionStatus> = new Set(["completed", "failed", "cancelled"]);

/** `process.env.NAME` in Node; undefined in browsers. */
function env(name: string): string | undefined {
  return (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env?.[name] || undefined;
}

export class CodeBeaker {
  readonly url: string;
  private readonly apiKey?: string;
  private readonly http: Transport;

  constructor(options: ClientOptions = {}) {
    this.url = (options.url ?? env("CODEBEAKER_URL") ?? "http://127.0.0.1:8080").replace(/\/+$/, "");
    this.apiKey = options.apiKey ?? env("CODEBEAKER_API_KEY");
    const f = options.fetch ?? globalThis.fetch;
    if (!f) throw new CodeBeakerError("fetch_unavailable", "no global fetch: use Node 18+ or pass `fetch`");
    this.http = new Transport({
      url: this.url,
      apiKey: this.apiKey,
      timeoutMs: options.timeoutMs ?? 120_000,
      maxRetries: options.maxRetries ?? 3,
      maxRetryDelayMs: options.maxRetryDelayMs ?? 30_000,
      // Called unbound: browsers' fetch refuses another `this`.
      fetch: (input, init) => f(input, init),
      headers: options.headers ?? {},
    });
  }

  /** Runs a program and answers its result (a program that fails is still a result). */
  execute(request: ExecuteRequest, options: CallOptions = {}): Promise<ExecuteResult> {
    return this.http.request("POST", "/v1/execute", { body: request, signal: options.signal });
  }

  /** Runs one program against many inputs; every item's result at the end. */
  batch(request: BatchRequest, options: CallOptions = {}): Promise<BatchResult> {
    return this.http.request("POST", "/v1/execute/batch", { body: request, signal: options.signal });
  }

  /**
   * The same, streamed: each item as it finishes (`{type: "item"}`, completion order), then
   * `{type: "summary"}`. Stopping the iteration early stops the items not yet started.
   */
  async *batchStream(request: BatchRequest, options: CallOptions = {}): AsyncGenerator<BatchEvent> {
    const response = await this.http.request("POST", "/v1/execute/batch", {
      body: request,
      signal: options.signal,
      headers: { accept: "application/x-ndjson" },
      stream: true,
    });
    if (!response.body) throw new CodeBeakerError("empty_body", "the batch answer has no body");
    yield* ndjson<BatchEvent>(response.body);
  }

  /** Queues an execution (an execute or a batch request) and answers at once. */
  submit(request: ExecuteRequest | BatchRequest, options: SubmitOptions & CallOptions = {}): Promise<Submitted> {
    const body = options.callbackUrl ? { ...request, callbackUrl: options.callbackUrl } : request;
    const headers: Record<string, string> = options.idempotencyKey ? { "idempotency-key": options.idempotencyKey } : {};
    return this.http.request("POST", "/v1/executions", { body, headers, signal: options.signal });
  }

  /** An execution; a batch's `results` are paged with `offset` and `limit`. */
  getExecution(id: string, options: { offset?: number; limit?: number } & CallOptions = {}): Promise<Execution> {
    return this.http.request("GET", `/v1/executions/${encodeURIComponent(id)}`, {
      query: { offset: options.offset, limit: options.limit },
      signal: options.signal,
    });
  }

  /** The caller's tenant's executions, newest first, without results. */
  listExecutions(
    options: { status?: ExecutionStatus; limit?: number } & CallOptions = {},
  ): Promise<{ count: number; executions: Execution[] }> {
    return this.http.request("GET", "/v1/executions", {
      query: { status: options.status, limit: options.limit },
      signal: options.signal,
    });
  }

  /** Polls until the execution is completed, failed or cancelled. */
  async wait(id: string, options: WaitOptions = {}): Promise<Execution> {
    const deadline = Date.now() + (options.timeoutMs ?? 600_000);
    for (;;) {
      const execution = await this.getExecution(id, options);
      if (FINAL.has(execution.status)) return execution;
      if (Date.now() >= deadline) {
        throw new RequestTimeoutError("timeout", `execution ${id} is still ${execution.status}`);
      }
      await sleep(options.intervalMs ?? 250, options.signal);
    }
  }

  /** Cancels an execution; answers it as it now stands. */
  cancel(id: string, options: CallOptions = {}): Promise<Execution> {
    return this.http.request("DELETE", `/v1/executions/${encodeURIComponent(id)}`, { signal: options.signal });
  }

  /** The secret that signs this caller's callbacks. */
  webhookSecret(): Promise<{ tenant: string; secret: string }> {
    return this.http.request("GET", "/v1/webhooks/secret");
  }

  /** Callbacks that used all their attempts. */
  deadWebhooks(): Promise<unknown> {
    return this.http.request("GET", "/v1/webhooks/dead");
  }

  /** The languages this gateway serves. */
  languages(options: CallOptions = {}): Promise<LanguageInfo[]> {
    return this.http.request("GET", "/v1/languages", { signal: options.signal });
  }

  /** Opens a session over REST. */
  async createSession(options: CreateSessionOptions): Promise<Session> {
    const info = await this.http.request<SessionInfo>("POST", "/v1/sessions", { body: options });
    return new Session(this.http, info.sessionId, info);
  }

  /** A handle on an existing session. */
  session(id: string): Session {
    return new Session(this.http, id);
  }

  listSessions(): Promise<{ count: number; sessions: SessionInfo[] }> {
    return this.http.request("GET", "/v1/sessions");
  }

  getSession(id: string): Promise<SessionInfo> {
    return this.session(id).get();
  }

  closeSession(id: string): Promise<void> {
    return this.session(id).close();
  }

  /** Opens a WebSocket JSON-RPC connection (sessions with streamed output). */
  connect(): Promise<RpcClient> {
    return RpcClient.connect(this.url, this.apiKey);
  }
}
