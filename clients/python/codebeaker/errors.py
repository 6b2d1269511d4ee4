"""Typed exceptions: one class per error `kind` of the gateway's `{"error": {"kind", "message"}}`."""

from __future__ import annotations

from typing import Optional


class CodeBeakerError(Exception):
    """A request the gateway refused (or could not be sent)."""

    def __init__(self, kind: str, message: str, status: Optional[int] = None,
                 retry_after: Optional[float] = None):
        super().__init__(f"{kind}: {message}" if status is None else f"{status} {kind}: {message}")
        self.kind = kind
        self.message = message
        self.status = status
        self.retry_after = retry_after


class Unauthenticated(CodeBeakerError):
    """401: a missing, wrong, revoked or invalid credential."""


class Forbidden(CodeBeakerError):
    """403: the credential lacks the scope or the language."""


class LimitExceeded(Forbidden):
    """403: `timeoutMs`/`memoryLimitMb` above the credential's or the server's maximum."""


class InvalidRequest(CodeBeakerError):
    """400/415/422: the request is malformed or names a field the route does not take."""


class UnsupportedLanguage(InvalidRequest):
    """400: a language this gateway does not serve."""


class UnknownPackages(InvalidRequest):
    """422: `packages` names a package no built variant has."""


class NotFound(CodeBeakerError):
    """404: no such execution or session (or another tenant's)."""


class SessionBusy(CodeBeakerError):
    """409: the session is running another command."""


class SessionLost(CodeBeakerError):
    """410: the session's container died; the session is closed."""


class PayloadTooLarge(CodeBeakerError):
    """413: body, code, input, stdin or files over their size limit."""


class RateLimited(CodeBeakerError):
    """429: over the key's rate, in-flight cap, queue or session limit (see `retry_after`)."""


class ConcurrencyLimit(RateLimited):
    """429: over the key's `max_concurrent`."""


class QueueFull(RateLimited):
    """429: the tenant's async queue is full."""


class SessionLimitReached(RateLimited):
    """429: the tenant's `max_sessions`."""


class Overloaded(CodeBeakerError):
    """503: shed at admission, no container in time, or a replica is down; retry later."""


class LanguageUnavailable(CodeBeakerError):
    """503: the language is served but its image is not built (needs the operator)."""


class ServerError(CodeBeakerError):
    """500: the sandbox or the gateway failed (never the program's fault)."""


class TransportError(CodeBeakerError):
    """The gateway could not be reached, or did not answer in time."""


KINDS: dict[str, type[CodeBeakerError]] = {
    "unauthenticated": Unauthenticated,
    "forbidden": Forbidden,
    "limit_exceeded": LimitExceeded,
    "malformed_json": InvalidRequest,
    "unknown_field": InvalidRequest,
    "invalid_request": InvalidRequest,
    "unsupported_media_type": InvalidRequest,
    "idempotency_key_reused": InvalidRequest,
    "unsupported_language": UnsupportedLanguage,
    "unknown_packages": UnknownPackages,
    "execution_not_found": NotFound,
    "session_not_found": NotFound,
    "not_found": NotFound,
    "session_busy": SessionBusy,
    "session_lost": SessionLost,
    "payload_too_large": PayloadTooLarge,
    "rate_limited": RateLimited,
    "concurrency_limit": ConcurrencyLimit,
    "queue_full": QueueFull,
    "session_limit_reached": SessionLimitReached,
    "overloaded": Overloaded,
    "pool_exhausted": Overloaded,
    "session_unavailable": Overloaded,
    "language_unavailable": LanguageUnavailable,
    "sandbox_failure": ServerError,
    "internal": ServerError,
}

# A kind this SDK does not know yet still gets the class of its status.
_BY_STATUS: dict[int, type[CodeBeakerError]] = {
    400: InvalidRequest, 401: Unauthenticated, 403: Forbidden, 404: NotFound, 409: SessionBusy,
    410: SessionLost, 413: PayloadTooLarge, 415: InvalidRequest, 422: InvalidRequest,
    429: RateLimited, 503: Overloaded,
}

# JSON-RPC error codes (docs/jsonrpc.md) → kind.
RPC_CODES: dict[int, str] = {
    -32700: "malformed_json", -32600: "invalid_request", -32601: "invalid_request",
    -32602: "invalid_request", -32001: "session_not_found", -32002: "session_busy",
    -32003: "session_limit_reached", -32004: "forbidden", -32009: "session_lost",
    -32010: "sandbox_failure", -32011: "rate_limited", -32012: "session_unavailable",
}


def error_for(kind: str, message: str, status: Optional[int] = None,
              retry_after: Optional[float] = None) -> CodeBeakerError:
    cls = KINDS.get(kind) or _BY_STATUS.get(status or 0) or (
        ServerError if (status or 0) >= 500 else CodeBeakerError)
    return cls(kind, message, status, retry_after)


def rpc_error(error: dict) -> CodeBeakerError:
    code = error.get("code", 0)
    return error_for(RPC_CODES.get(code, "rpc_error"), str(error.get("message", "")), None)
