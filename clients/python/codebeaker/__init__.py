"""CodeBeaker's Python SDK: `Client` (sync) and `AsyncClient` (async) over HTTP, sessions
over REST or WebSocket JSON-RPC (`client.connect()`), and webhook verification."""

from .aio import AsyncBatchStream, AsyncClient
from .client import BatchStream, Client
from .errors import (CodeBeakerError, ConcurrencyLimit, Forbidden, InvalidRequest,
                     LanguageUnavailable, LimitExceeded, NotFound, Overloaded, PayloadTooLarge,
                     QueueFull, RateLimited, ServerError, SessionBusy, SessionLimitReached,
                     SessionLost, TransportError, Unauthenticated, UnknownPackages,
                     UnsupportedLanguage)
from .jsonrpc import AsyncRpc, Rpc
from .types import (BatchItemResult, BatchResult, BatchSummary, CommandResult, ExecuteResult,
                    Execution, File, Language, Output, ProgramError, Session, Submitted)
from .webhooks import sign_webhook, verify_webhook

__version__ = "0.1.0"

__all__ = [
    "Client", "AsyncClient", "BatchStream", "AsyncBatchStream", "Rpc", "AsyncRpc",
    "CodeBeakerError", "Unauthenticated", "Forbidden", "LimitExceeded", "InvalidRequest",
    "UnsupportedLanguage", "UnknownPackages", "NotFound", "SessionBusy", "SessionLost",
    "PayloadTooLarge", "RateLimited", "ConcurrencyLimit", "QueueFull", "SessionLimitReached",
    "Overloaded", "LanguageUnavailable", "ServerError", "TransportError",
    "ExecuteResult", "ProgramError", "BatchResult", "BatchItemResult", "BatchSummary",
    "Submitted", "Execution", "Session", "CommandResult", "Output", "Language", "File",
    "sign_webhook", "verify_webhook",
]
