/** Request and answer types, named as the wire names them (docs/api.md, /openapi.json). */

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** A file written into `/workspace` beside the program before it runs. */
export interface FileSpec {
  path: string;
  content: string;
  /** `utf8` (the default) or `base64`. */
  encoding?: "utf8" | "base64";
}

/** The members `/v1/execute`, batches and async executions share. */
export interface RunOptions {
  /** `edge` (the default: `input_data` in, `result` out) or `plain` (a whole program). */
  mode?: "edge" | "plain";
  /** The program's time limit, in milliseconds. */
  timeoutMs?: number;
  memoryLimitMb?: number;
  /** Packages the program imports: it runs on the smallest image variant that has them. */
  packages?: string[];
  /** `call` (a fresh process per call, the default) or `program` (a resident instance). */
  isolation?: "call" | "program";
  stdin?: string;
  args?: string[];
  files?: FileSpec[];
}

export interface ExecuteRequest extends RunOptions {
  language: string;
  code: string;
  /** Any JSON; `{}` by default. */
  input?: Json;
}

export interface ProgramError {
  kind: string;
  message: string;
}

export interface ExecuteResult {
  executionId: string;
  language: string;
  success: boolean;
  output: Json;
  stdout: string;
  stderr: string;
  exitCode: number | null;
  durationMs: number;
  compileMs: number;
  cacheHit: boolean | null;
  queueMs: number;
  truncated: boolean;
  containerId?: string;
  error: ProgramError | null;
}

export interface BatchItem {
  id: string;
  input?: Json;
  /** This item's own language and code (a mixed batch). */
  language?: string;
  code?: string;
  stdin?: string;
}

export interface BatchRequest extends RunOptions {
  language?: string;
  code?: string;
  items: BatchItem[];
  maxConcurrency?: number;
  stopOnFirstError?: boolean;
}

export interface ItemResult {
  id: string;
  index: number;
  success: boolean;
  skipped: boolean;
  output: Json;
  error: ProgramError | null;
  stdout: string;
  stderr: string;
  exitCode: number | null;
  latencyMs: number;
  cacheHit: boolean | null;
}

export interface BatchSummary {
  batchId: string;
  totalItems: number;
  successCount: number;
  failureCount: number;
  skippedCount: number;
  totalDurationMs: number;
  avgLatencyMs: number;
  concurrency: number;
  startedAt: string;
  completedAt: string;
}

export interface BatchResult extends BatchSummary {
  results: ItemResult[];
}

/** One line of a streamed batch: an item as it finishes, then the summary. */
export type BatchEvent =
  | { type: "item"; item: ItemResult }
  | { type: "summary"; summary: BatchSummary };

export type ExecutionStatus = "queued" | "running" | "completed" | "failed" | "cancelled";

export interface SubmitOptions {
  /** Where the final execution is POSTed, signed (see `verifyWebhook`). */
  callbackUrl?: string;
  /** The same key with the same body returns the first execution. */
  idempotencyKey?: string;
}

export interface Submitted {
  executionId: string;
  status: ExecutionStatus;
  statusUrl: string;
}

export interface Execution<R = ExecuteResult | BatchResult> {
  executionId: string;
  kind: "execute" | "batch" | string;
  status: ExecutionStatus;
  createdAt: string;
  startedAt?: string | null;
  completedAt?: string | null;
  /** The execute result, or a batch summary with its `results`, once completed. */
  result: R | null;
  error: string | null;
  attempts: number;
  callbacks?: Array<Record<string, Json>> | null;
}

export interface LanguageInfo {
  name: string;
  title?: string;
  aliases: string[];
  file?: string;
  compiled?: boolean;
  available: boolean;
  toolchain?: string | null;
  [more: string]: unknown;
}

export interface CreateSessionOptions {
  language: string;
  idleTimeoutMinutes?: number;
  maxLifetimeMinutes?: number;
  memoryLimitMB?: number;
  cpuShares?: number;
  runtime?: string;
  packages?: string[];
}

export interface SessionInfo {
  sessionId: string;
  containerId: string;
  language: string;
  createdAt: string;
  state: string;
  config: Record<string, Json>;
  [more: string]: unknown;
}

/** A session command (`command.type`, docs/jsonrpc.md). */
export type SessionCommand =
  | { type: "write_file"; path: string; content: string; mode?: string; encoding?: "utf8" | "base64" }
  | { type: "read_file"; path: string; encoding?: "utf8" | "base64" }
  | { type: "list_directory"; path?: string }
  | { type: "create_directory"; path: string }
  | { type: "delete_file"; path: string; recursive?: boolean }
  | { type: "copy_file"; source: string; destination: string; overwrite?: boolean }
  | {
      type: "execute_shell";
      commandName: string;
      args?: string[];
      workingDirectory?: string;
      env?: Record<string, string>;
      timeoutMs?: number;
      stdin?: string;
      stream?: boolean;
    }
  | { type: "run_code"; code: string; input?: Json; timeoutMs?: number };

/** A command's answer: `success`, its `result`, and a one-line `error` when it failed. */
export interface CommandResult<R = Record<string, unknown>> {
  success: boolean;
  result: R | null;
  error: string | null;
  errorCode: number | null;
  errorKind: string | null;
  durationMs: number;
}

export interface ShellResult {
  stdout: string;
  stderr: string;
  exitCode: number;
  durationMs: number;
  timedOut: boolean;
  truncated: boolean;
}

/** A `session.output` notification: a piece of a streamed command's output. */
export interface OutputChunk {
  sessionId: string;
  stream: "stdout" | "stderr";
  data: string;
}
