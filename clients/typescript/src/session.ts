/**
 * A session: a container kept for one caller across commands, its `/workspace` persisting.
 * The helpers are the same over REST (`Session`) and over the WebSocket (`RpcSession`, in
 * rpc.ts); each transport only says how one command is sent and how the session is closed.
 */

import { CodeBeakerError } from "./errors.js";
import type { Transport } from "./http.js";
import type { CommandResult, ExecuteResult, Json, SessionCommand, SessionInfo, ShellResult } from "./types.js";
import { fromBase64, toBase64 } from "./util.js";

export interface ShellOptions {
  workingDirectory?: string;
  env?: Record<string, string>;
  timeoutMs?: number;
  stdin?: string;
}

export abstract class SessionBase {
  constructor(readonly id: string, readonly info?: SessionInfo) {}

  /** Sends one command; a command that fails answers `success: false`, it does not throw. */
  abstract execute<R = Record<string, unknown>>(command: SessionCommand): Promise<CommandResult<R>>;
  abstract close(): Promise<void>;

  /** Writes a text file (`mode`: .NET `FileMode` names, `Create` by default). */
  writeFile(path: string, content: string, mode?: string) {
    return this.execute<{ path: string; bytes: number }>({ type: "write_file", path, content, mode });
  }

  /** Reads a text file; its content, or throws the command's error. */
  async readFile(path: string): Promise<string> {
    return (await ok(this.execute<{ content: string }>({ type: "read_file", path }))).content;
  }

  /** Uploads bytes (sent as base64). */
  upload(path: string, data: Uint8Array, mode?: string) {
    return this.execute<{ path: string; bytes: number }>({
      type: "write_file",
      path,
      content: toBase64(data),
      encoding: "base64",
      mode,
    });
  }

  /** Downloads a file's bytes. */
  async download(path: string): Promise<Uint8Array> {
    const r = await ok(this.execute<{ content: string }>({ type: "read_file", path, encoding: "base64" }));
    return fromBase64(r.content);
  }

  listDirectory(path?: string) {
    return this.execute<{ path: string; count: number; entries: Array<{ name: string; type: string; size: number }> }>({
      type: "list_directory",
      path,
    });
  }

  /** Makes a directory and its parents. */
  createDirectory(path: string) {
    return this.execute<{ path: string; created: boolean }>({ type: "create_directory", path });
  }

  deleteFile(path: string, recursive?: boolean) {
    return this.execute({ type: "delete_file", path, recursive });
  }

  /** Runs an argv directly (no shell: use `sh -c` for shell syntax). */
  executeShell(commandName: string, args: string[] = [], options: ShellOptions = {}) {
    return this.execute<ShellResult>({ type: "execute_shell", commandName, args, ...options });
  }

  /** Runs code under the edge contract in this session's workspace. */
  runCode(code: string, input?: Json, timeoutMs?: number) {
    return this.execute<Omit<ExecuteResult, "executionId" | "language">>({ type: "run_code", code, input, timeoutMs });
  }
}

/** A command's result, or its error thrown (for helpers that return a value). */
async function ok<R>(pending: Promise<CommandResult<R>>): Promise<R> {
  const r = await pending;
  if (!r.success || r.result === null) {
    throw new SessionCommandError(r.error ?? "the command failed", r.errorKind ?? "command_failed", r.errorCode);
  }
  return r.result;
}

/** A session command that did not do what it was asked (`errorKind`: `not_found`, ...). */
export class SessionCommandError extends CodeBeakerError {
  constructor(message: string, kind: string, code: number | null) {
    super(kind, message, 0);
    if (code !== null) this.rpcCode = code;
  }
}

/** A session over REST (`/v1/sessions/{id}`). */
export class Session extends SessionBase {
  constructor(private readonly transport: Transport, id: string, info?: SessionInfo) {
    super(id, info);
  }

  execute<R = Record<string, unknown>>(command: SessionCommand): Promise<CommandResult<R>> {
    return this.transport.request<CommandResult<R>>("POST", `/v1/sessions/${encodeURIComponent(this.id)}/commands`, {
      body: command,
    });
  }

  /** The session as the gateway sees it now (state, activity, config). */
  get(): Promise<SessionInfo> {
    return this.transport.request<SessionInfo>("GET", `/v1/sessions/${encodeURIComponent(this.id)}`);
  }

  async close(): Promise<void> {
    await this.transport.request("DELETE", `/v1/sessions/${encodeURIComponent(this.id)}`);
  }
}
