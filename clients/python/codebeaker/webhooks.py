"""Verifying the gateway's signed callbacks (src/webhooks.rs `sign`):
`X-CodeBeaker-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`."""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Optional, Union


def _bytes(value: Union[str, bytes]) -> bytes:
    return value.encode() if isinstance(value, str) else value


def sign_webhook(secret: str, timestamp: Union[int, str], body: Union[str, bytes]) -> str:
    """The `X-CodeBeaker-Signature` the gateway sends for `body` at `timestamp`."""
    mac = hmac.new(_bytes(secret), f"{int(timestamp)}.".encode() + _bytes(body), hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify_webhook(secret: str, timestamp: Union[int, str], signature: str,
                   body: Union[str, bytes], *, tolerance: Optional[float] = 300,
                   now: Optional[float] = None) -> bool:
    """Whether a callback is the gateway's: pass the `X-CodeBeaker-Timestamp` and
    `X-CodeBeaker-Signature` headers and the raw body as received. A timestamp further than
    `tolerance` seconds from now is refused (a replayed callback); `tolerance=None` skips
    that check."""
    try:
        ts = int(timestamp)
    except (TypeError, ValueError):
        return False
    if tolerance is not None and abs((time.time() if now is None else now) - ts) > tolerance:
        return False
    return hmac.compare_digest(sign_webhook(secret, ts, body), signature or "")
