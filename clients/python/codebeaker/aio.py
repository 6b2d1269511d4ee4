"""The asynchronous client: the same calls as `Client`, awaited."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, AsyncIterator, Optional, Sequence

import httpx
from websockets.exceptions import WebSocketException

from . import _http
from ._requests import Api, Call, batch_body, settings
from .errors import TransportError
from .jsonrpc import AsyncRpc, handshake_error, ws_url
from .types import BatchItemResult, BatchSummary, Execution, Session


class AsyncBatchStream:
    """`async for item in stream`; `summary` is set once the iteration ends."""

    def __init__(self, lines: AsyncIterator[str]):
        self._lines = lines
        self.summary: Optional[BatchSummary] = None

    async def __aiter__(self) -> AsyncIterator[BatchItemResult]:
        async for line in self._lines:
            if not line.strip():
                continue
            msg = json.loads(line)
            if msg.get("type") == "item":
                yield BatchItemResult.from_json(msg["item"])
            elif msg.get("type") == "summary":
                self.summary = BatchSummary.from_json(msg["summary"])


class AsyncClient(Api):
    """As `Client`; every call is awaited (`await client.execute(...)`)."""

    def __init__(self, api_key: Optional[str] = None, url: Optional[str] = None, *,
                 timeout: float = 120.0, max_retries: int = 3, max_retry_wait: float = 30.0,
                 http: Optional[httpx.AsyncClient] = None):
        self.api_key, self.url = settings(api_key, url)
        self.timeout, self.max_retries, self.max_retry_wait = timeout, max_retries, max_retry_wait
        self._http = http or httpx.AsyncClient(timeout=timeout)

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _request(self, call: Call, stream: bool = False) -> httpx.Response:
        attempt = 0
        while True:
            request = self._http.build_request(
                call.method, self.url + call.path, json=call.json, params=call.params,
                headers={**_http.headers(self.api_key), **call.headers})
            try:
                response = await self._http.send(request, stream=stream)
            except httpx.HTTPError as e:
                raise _http.transport_error(e, self.url) from None
            delay = _http.retry_delay(response, attempt, self.max_retries, self.max_retry_wait)
            if delay is None:
                return response
            await response.aclose()
            await asyncio.sleep(delay)
            attempt += 1

    async def _call(self, call: Call) -> Any:
        response = await self._request(call)
        return call.parse(_http.decode(response))

    def _send(self, call: Call):
        return self._call(call)

    def batch_stream(self, language: Optional[str], code: Optional[str],
                     inputs: Optional[Sequence] = None, **options) -> AsyncBatchStream:
        call = Call("POST", "/v1/execute/batch", batch_body(language, code, inputs, **options),
                    headers={"accept": "application/x-ndjson"})

        async def lines() -> AsyncIterator[str]:
            response = await self._request(call, stream=True)
            try:
                if response.status_code >= 400:
                    _http.raise_for(response, await response.aread())
                async for line in response.aiter_lines():
                    yield line
            except httpx.HTTPError as e:
                raise _http.transport_error(e, self.url) from None
            finally:
                await response.aclose()
        return AsyncBatchStream(lines())

    async def wait(self, execution_id: str, *, poll_interval: float = 0.5,
                   timeout: Optional[float] = 300.0) -> Execution:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            execution = await self.get_execution(execution_id)
            if execution.done:
                return execution
            if deadline is not None and time.monotonic() >= deadline:
                raise TransportError("timeout", f"execution {execution_id} is still "
                                     f"{execution.status} after {timeout} s")
            await asyncio.sleep(poll_interval)

    def session(self, language: str, **options) -> "AsyncSessionScope":
        """`async with client.session("python") as s:` a session closed on exit."""
        return AsyncSessionScope(self, language, options)

    async def connect(self, *, open_timeout: float = 10.0) -> AsyncRpc:
        from websockets.asyncio.client import connect
        url = ws_url(self.url)
        try:
            ws = await connect(url, additional_headers=_http.headers(self.api_key),
                               open_timeout=open_timeout, max_size=None)
        except (OSError, asyncio.TimeoutError, WebSocketException) as e:
            raise handshake_error(e, url) from None
        return AsyncRpc(ws)


class AsyncSessionScope:
    def __init__(self, client: AsyncClient, language: str, options: dict):
        self._client, self._language, self._options = client, language, options
        self.session: Optional[Session] = None

    async def __aenter__(self) -> Session:
        self.session = await self._client.create_session(self._language, **self._options)
        return self.session

    async def __aexit__(self, *exc) -> None:
        if self.session is not None:
            await self._client.close_session(self.session.session_id)
