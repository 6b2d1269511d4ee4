"""Reading answers and deciding retries: the same for the sync and the async client."""

from __future__ import annotations

import json
from typing import Optional

import httpx

from .errors import TransportError, error_for

RETRY_STATUSES = (429, 503)


def retry_after(response: httpx.Response) -> Optional[float]:
    value = response.headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def retry_delay(response: httpx.Response, attempt: int, max_retries: int,
                max_wait: float) -> Optional[float]:
    """How long to wait before sending again, or None to give up. Only a 429/503 that says
    when to come back is retried: one without `Retry-After` (`language_unavailable`) needs
    the operator, and a refused request ran nothing, so sending it again is safe."""
    if response.status_code not in RETRY_STATUSES or attempt >= max_retries:
        return None
    after = retry_after(response)
    return None if after is None else min(after, max_wait)


def raise_for(response: httpx.Response, body: bytes) -> None:
    if response.status_code < 400:
        return
    kind, message = f"http_{response.status_code}", body.decode("utf-8", "replace")[:500]
    try:
        err = json.loads(body)["error"]
        kind, message = err["kind"], err["message"]
    except (ValueError, KeyError, TypeError):
        pass
    raise error_for(kind, message, response.status_code, retry_after(response))


def decode(response: httpx.Response):
    raise_for(response, response.content)
    return response.json() if response.content else None


def transport_error(e: httpx.HTTPError, url: str) -> TransportError:
    if isinstance(e, httpx.TimeoutException):
        return TransportError("timeout", f"no answer from {url} in time ({e.__class__.__name__})")
    return TransportError("unreachable", f"cannot reach the gateway at {url}: {e}")


def headers(api_key: Optional[str]) -> dict:
    h = {"user-agent": "codebeaker-python/0.1"}
    if api_key:
        h["x-api-key"] = api_key
    return h
