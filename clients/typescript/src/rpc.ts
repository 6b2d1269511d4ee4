/**
 * Sessions over the WebSocket JSON-RPC 2.0 endpoint (`/ws/jsonrpc`, docs/jsonrpc.md):
 * several requests in flight on one socket, matched by id, and `session.output`
 * notifications while a streamed `execute_shell` runs.
 *
 * The socket is the platform's `WebSocket` where there is one (browsers, Node 22+), else the
 * npm `ws` package (Node 18 and 20), imported only then. A browser's `WebSocket` cannot send
 * headers, so there the key goes in the URL (`?api_key=`, accepted on this route only).
 */

import { ConnectionError, errorFromRpc } from "./errors.js";
import { SessionBase } from "./session.js";
import type {
  CommandResult,
  CreateSessionOptions,
  ExecuteRequest,
  ExecuteResult,
  OutputChunk,
  SessionCommand,
  SessionInfo,
  ShellResult,
} from "./types.js";
import { AsyncQueue } from "./util.js";
import type { ShellOptions } from "./session.js";

/** The part of a WebSocket both the platform's and `ws` have. */
interface Socket {
  readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  addEventListener(type: string, listener: (event: any) => void): void;
  /** `ws` only: drop the connection without the closing handshake. */
  terminate?(): void;
}

async function openSocket(url: string, apiKey: string | undefined): Promise<Socket> {
  const Native = (globalThis as { WebSocket?: new (url: string) => Socket }).WebSocket;
  let socket: Socket;
  if (Native) {
    const u = new URL(url);
    if (apiKey) u.searchParams.set("api_key", apiKey);
    socket = new Native(u.toString());
  } else {
    const name = "ws";
    let WS: new (url: string, options: object) => Socket;
    try {
      WS = ((await import(name)) as { default: typeof WS }).default;
    } catch {
      throw new ConnectionError(
        "websocket_unavailable",
        "this runtime has no global WebSocket: install the `ws` package (npm install ws) to use sessions over JSON-RPC",
      );
    }
    socket = new WS(url, { headers: apiKey ? { "x-api-key": apiKey } : {} });
  }
  await new Promise<void>((resolve, reject) => {
    socket.addEventListener("open", () => resolve());
    socket.addEventListener("error", (e) =>
      reject(new ConnectionError("connection_error", `WebSocket ${url}: ${e?.message ?? "connection failed"}`)),
    );
  });
  return socket;
}

type Pending = { resolve: (v: any) => void; reject: (e: unknown) => void };

/** One JSON-RPC connection. Closing it does not close its sessions. */
export class RpcClient {
  private nextId = 1;
  private pending = new Map<number, Pending>();
  private listeners = new Set<(chunk: OutputChunk) => void>();
  private closed = false;

  private constructor(private readonly socket: Socket) {
    socket.addEventListener("message", (event) => this.receive(String(event.data)));
    socket.addEventListener("close", () => this.fail(new ConnectionError("connection_closed", "the WebSocket closed")));
    socket.addEventListener("error", () => this.fail(new ConnectionError("connection_error", "the WebSocket failed")));
  }

  static async connect(url: string, apiKey?: string): Promise<RpcClient> {
    const ws = new URL(url.replace(/\/+$/, "") + "/ws/jsonrpc");
    ws.protocol = ws.protocol === "https:" ? "wss:" : "ws:";
    return new RpcClient(await openSocket(ws.toString(), apiKey));
  }

  /** Calls a method; its `result`, or the error member thrown as a typed error. */
  call<T = unknown>(method: string, params: object): Promise<T> {
    if (this.closed) return Promise.reject(new ConnectionError("connection_closed", "the WebSocket is closed"));
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.socket.send(JSON.stringify({ jsonrpc: "2.0", id, method, params }));
    });
  }

  /** Calls `listener` with every `session.output` notification; returns the unsubscriber. */
  onOutput(listener: (chunk: OutputChunk) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async createSession(options: CreateSessionOptions): Promise<RpcSession> {
    const info = await this.call<SessionInfo>("session.create", options);
    return new RpcSession(this, info.sessionId, info);
  }

  /** A handle on an existing session (created earlier, on any connection). */
  session(id: string): RpcSession {
    return new RpcSession(this, id);
  }

  listSessions(): Promise<{ count: number; sessions: SessionInfo[] }> {
    return this.call("session.list", {});
  }

  /** `execution.run`: exactly `POST /v1/execute`, over the socket. */
  execute(request: ExecuteRequest): Promise<ExecuteResult> {
    return this.call("execution.run", request);
  }

  /** Closes the socket (not its sessions); resolves once it is closed. */
  close(): Promise<void> {
    this.fail(new ConnectionError("connection_closed", "the WebSocket was closed by the client"));
    if (this.socket.readyState === 3) return Promise.resolve();
    return new Promise((resolve) => {
      this.socket.addEventListener("close", () => resolve());
      this.socket.close(1000);
      // `ws` waits up to 30 s for the server's Close frame, keeping Node alive meanwhile:
      // after a short grace, drop the connection instead. (Browsers handle this themselves.)
      const terminate = this.socket.terminate;
      if (terminate) {
        const timer: unknown = setTimeout(() => {
          terminate.call(this.socket);
          resolve();
        }, 1_000);
        (timer as { unref?: () => void }).unref?.();
      }
    });
  }

  private receive(text: string): void {
    let message: any;
    try {
      message = JSON.parse(text);
    } catch {
      return;
    }
    for (const m of Array.isArray(message) ? message : [message]) {
      if (m?.method === "session.output" && m.params) {
        for (const listener of this.listeners) listener(m.params as OutputChunk);
        continue;
      }
      const waiter = typeof m?.id === "number" ? this.pending.get(m.id) : undefined;
      if (!waiter) continue;
      this.pending.delete(m.id);
      if (m.error) waiter.reject(errorFromRpc(m.error.code, m.error.message));
      else waiter.resolve(m.result);
    }
  }

  private fail(error: ConnectionError): void {
    this.closed = true;
    for (const waiter of this.pending.values()) waiter.reject(error);
    this.pending.clear();
  }
}

/** A session over JSON-RPC: the REST session's helpers, plus streamed shell output. */
export class RpcSession extends SessionBase {
  constructor(private readonly rpc: RpcClient, id: string, info?: SessionInfo) {
    super(id, info);
  }

  execute<R = Record<string, unknown>>(command: SessionCommand): Promise<CommandResult<R>> {
    return this.rpc.call("session.execute", { sessionId: this.id, command });
  }

  async close(): Promise<void> {
    await this.rpc.call("session.close", { sessionId: this.id });
  }

  /**
   * Runs an argv with its output streamed: `output` yields each piece as it is written,
   * and ends when the command does; `result` is the command's answer.
   */
  streamShell(
    commandName: string,
    args: string[] = [],
    options: ShellOptions = {},
  ): { output: AsyncIterableIterator<OutputChunk>; result: Promise<CommandResult<ShellResult>> } {
    const output = new AsyncQueue<OutputChunk>();
    const unsubscribe = this.rpc.onOutput((chunk) => {
      if (chunk.sessionId === this.id) output.push(chunk);
    });
    const result = this.execute<ShellResult>({ type: "execute_shell", commandName, args, stream: true, ...options });
    // The notifications come before the response, so the answer ends the stream.
    result.then(
      () => output.end(),
      (e) => output.end(e),
    ).finally(unsubscribe);
    return { output, result };
  }

  /** The same with a callback per piece of output; resolves to the command's answer. */
  shell(
    commandName: string,
    args: string[],
    onOutput: (chunk: OutputChunk) => void,
    options: ShellOptions = {},
  ): Promise<CommandResult<ShellResult>> {
    const unsubscribe = this.rpc.onOutput((chunk) => {
      if (chunk.sessionId === this.id) onOutput(chunk);
    });
    return this.execute<ShellResult>({ type: "execute_shell", commandName, args, stream: true, ...options }).finally(
      unsubscribe,
    );
  }
}
