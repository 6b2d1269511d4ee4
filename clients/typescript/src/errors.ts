/**
 * Errors: the gateway answers a refused request with `{"error": {"kind", "message"}}`.
 * `kind` is stable (for programs), so each kind gets its own class; the classes sit under a
 * few families, so a caller can catch "any rate limit" or "any not-found" at once.
 */

export class CodeBeakerError extends Error {
  /** The stable error kind (`rate_limited`, `session_not_found`, ...). */
  readonly kind: string;
  /** The HTTP status, or 0 when no answer came (timeout, connection error). */
  readonly status: number;
  /** Seconds from `Retry-After`, when the gateway sent one. */
  readonly retryAfter?: number;
  /** The JSON-RPC error code, for errors of the WebSocket endpoint. */
  rpcCode?: number;

  constructor(kind: string, message: string, status = 0, retryAfter?: number) {
    super(message);
    this.name = new.target.name;
    this.kind = kind;
    this.status = status;
    this.retryAfter = retryAfter;
  }
}

// Families.
/** 401: missing, wrong, revoked or expired credential. */
export class AuthenticationError extends CodeBeakerError {}
/** 403: the credential lacks the scope or language, or a limit is above its maximum. */
export class PermissionDeniedError extends CodeBeakerError {}
/** 400/413/415/422: the request itself is wrong; sending it again will not help. */
export class InvalidRequestError extends CodeBeakerError {}
/** 404: no such execution or session (or another tenant's). */
export class NotFoundError extends CodeBeakerError {}
/** 409/410: a session that cannot take the command now or any more. */
export class SessionStateError extends CodeBeakerError {}
/** 429: over a per-key or per-tenant limit; retry after `retryAfter`. */
export class RateLimitError extends CodeBeakerError {}
/** 503: the gateway is short of capacity, or something it needs is not there. */
export class UnavailableError extends CodeBeakerError {}
/** 500: the gateway's fault (a sandbox died, a bug). */
export class ServerError extends CodeBeakerError {}
/** No answer: the request timed out or the connection failed (status 0). */
export class ConnectionError extends CodeBeakerError {}

// One class per kind.
export class UnauthenticatedError extends AuthenticationError {}
export class ForbiddenError extends PermissionDeniedError {}
export class LimitExceededError extends PermissionDeniedError {}
export class MalformedJsonError extends InvalidRequestError {}
export class UnknownFieldError extends InvalidRequestError {}
export class UnsupportedLanguageError extends InvalidRequestError {}
export class PayloadTooLargeError extends InvalidRequestError {}
export class UnsupportedMediaTypeError extends InvalidRequestError {}
export class ValidationError extends InvalidRequestError {}
export class UnknownPackagesError extends InvalidRequestError {}
export class IdempotencyKeyReusedError extends InvalidRequestError {}
export class ExecutionNotFoundError extends NotFoundError {}
export class SessionNotFoundError extends NotFoundError {}
export class SessionBusyError extends SessionStateError {}
export class SessionLostError extends SessionStateError {}
export class RateLimitedError extends RateLimitError {}
export class ConcurrencyLimitError extends RateLimitError {}
export class QueueFullError extends RateLimitError {}
export class SessionLimitReachedError extends RateLimitError {}
export class OverloadedError extends UnavailableError {}
export class PoolExhaustedError extends UnavailableError {}
export class LanguageUnavailableError extends UnavailableError {}
export class SessionUnavailableError extends UnavailableError {}
export class SandboxFailureError extends ServerError {}
export class InternalError extends ServerError {}
export class RequestTimeoutError extends ConnectionError {}

type ErrorClass = new (kind: string, message: string, status?: number, retryAfter?: number) => CodeBeakerError;

/** The class of each kind the gateway sends (docs/api.md, "Answers and errors"). */
export const ERROR_CLASSES: Readonly<Record<string, ErrorClass>> = {
  unauthenticated: UnauthenticatedError,
  forbidden: ForbiddenError,
  limit_exceeded: LimitExceededError,
  malformed_json: MalformedJsonError,
  unknown_field: UnknownFieldError,
  unsupported_language: UnsupportedLanguageError,
  payload_too_large: PayloadTooLargeError,
  unsupported_media_type: UnsupportedMediaTypeError,
  invalid_request: ValidationError,
  unknown_packages: UnknownPackagesError,
  idempotency_key_reused: IdempotencyKeyReusedError,
  execution_not_found: ExecutionNotFoundError,
  session_not_found: SessionNotFoundError,
  session_busy: SessionBusyError,
  session_lost: SessionLostError,
  rate_limited: RateLimitedError,
  concurrency_limit: ConcurrencyLimitError,
  queue_full: QueueFullError,
  session_limit_reached: SessionLimitReachedError,
  overloaded: OverloadedError,
  pool_exhausted: PoolExhaustedError,
  language_unavailable: LanguageUnavailableError,
  session_unavailable: SessionUnavailableError,
  sandbox_failure: SandboxFailureError,
  internal: InternalError,
};

/** A kind this SDK does not know yet still gets its status's family. */
function familyOf(status: number): ErrorClass {
  if (status === 401) return AuthenticationError;
  if (status === 403) return PermissionDeniedError;
  if (status === 404) return NotFoundError;
  if (status === 409 || status === 410) return SessionStateError;
  if (status === 429) return RateLimitError;
  if (status === 503) return UnavailableError;
  if (status >= 500) return ServerError;
  return InvalidRequestError;
}

/** The error for a refused HTTP answer (`body` is its parsed JSON, or null). */
export function errorFromResponse(status: number, body: unknown, retryAfter?: number): CodeBeakerError {
  const detail = (body as { error?: { kind?: unknown; message?: unknown } } | null)?.error;
  const kind = typeof detail?.kind === "string" ? detail.kind : `http_${status}`;
  const message = typeof detail?.message === "string" ? detail.message : `HTTP ${status}`;
  const Class = ERROR_CLASSES[kind] ?? familyOf(status);
  return new Class(kind, message, status, retryAfter);
}

/**
 * The error for a JSON-RPC error member (`{code, message}`) of the WebSocket endpoint: the
 * class of the REST kind of the same failure, so both transports throw the same classes;
 * `rpcCode` keeps the JSON-RPC number.
 */
export function errorFromRpc(code: number, message: string): CodeBeakerError {
  const kind = RPC_KINDS[code] ?? `jsonrpc_${code}`;
  const Class = ERROR_CLASSES[kind] ?? CodeBeakerError;
  const error = new Class(kind, message, 0);
  error.rpcCode = code;
  return error;
}

const RPC_KINDS: Record<number, string> = {
  [-32700]: "malformed_json",
  [-32600]: "invalid_request",
  [-32601]: "method_not_found",
  [-32602]: "invalid_request",
  [-32001]: "session_not_found",
  [-32002]: "session_busy",
  [-32003]: "session_limit_reached",
  [-32004]: "forbidden",
  [-32009]: "session_lost",
  [-32010]: "sandbox_failure",
  [-32011]: "overloaded",
  [-32012]: "session_unavailable",
};
