"""The synchronous client."""

from __future__ import annotations

import json
import time
from typing import Any, Iterator, Optional, Sequence

import httpx
from websockets.exceptions import WebSocketException

from . import _http
from ._requests import Api, Call, batch_body, settings
from .errors import TransportError
from .jsonrpc import Rpc, handshake_error, ws_url
from .types import BatchItemResult, BatchSummary, Execution, Session


class BatchStream:
    """The items of an NDJSON batch as they finish (completion order, each with `index`);
    `summary` is set once the iteration ends."""

    def __init__(self, lines: Iterator[str]):
        self._lines = lines
        self.summary: Optional[BatchSummary] = None

    def __iter__(self) -> Iterator[BatchItemResult]:
        for line in self._lines:
            if not line.strip():
                continue
            msg = json.loads(line)
            if msg.get("type") == "item":
                yield BatchItemResult.from_json(msg["item"])
            elif msg.get("type") == "summary":
                self.summary = BatchSummary.from_json(msg["summary"])


class Client(Api):
    """`Client(api_key=None, url=None)`: the key and URL default to `CODEBEAKER_API_KEY` and
    `CODEBEAKER_URL`. `timeout` (seconds) bounds each request; a 429/503 with `Retry-After`
    is sent again up to `max_retries` times, waiting at most `max_retry_wait` each time."""

    def __init__(self, api_key: Optional[str] = None, url: Optional[str] = None, *,
                 timeout: float = 120.0, max_retries: int = 3, max_retry_wait: float = 30.0,
                 http: Optional[httpx.Client] = None):
        self.api_key, self.url = settings(api_key, url)
        self.timeout, self.max_retries, self.max_retry_wait = timeout, max_retries, max_retry_wait
        self._http = http or httpx.Client(timeout=timeout)

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _request(self, call: Call, stream: bool = False) -> httpx.Response:
        attempt = 0
        while True:
            request = self._http.build_request(
                call.method, self.url + call.path, json=call.json, params=call.params,
                headers={**_http.headers(self.api_key), **call.headers})
            try:
                response = self._http.send(request, stream=stream)
            except httpx.HTTPError as e:
                raise _http.transport_error(e, self.url) from None
            delay = _http.retry_delay(response, attempt, self.max_retries, self.max_retry_wait)
            if delay is None:
                return response
            response.close()
            time.sleep(delay)
            attempt += 1

    def _send(self, call: Call) -> Any:
        return call.parse(_http.decode(self._request(call)))

    def batch_stream(self, language: Optional[str], code: Optional[str],
                     inputs: Optional[Sequence] = None, **options) -> BatchStream:
        """A batch answered as NDJSON: iterate the items as they finish. Options as `batch`."""
        call = Call("POST", "/v1/execute/batch", batch_body(language, code, inputs, **options),
                    headers={"accept": "application/x-ndjson"})

        def lines() -> Iterator[str]:
            response = self._request(call, stream=True)
            try:
                if response.status_code >= 400:
                    _http.raise_for(response, response.read())
                yield from response.iter_lines()
            except httpx.HTTPError as e:
                raise _http.transport_error(e, self.url) from None
            finally:
                response.close()
        return BatchStream(lines())

    def wait(self, execution_id: str, *, poll_interval: float = 0.5,
             timeout: Optional[float] = 300.0) -> Execution:
        """Poll an async execution until it is `completed`, `failed` or `cancelled`."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            execution = self.get_execution(execution_id)
            if execution.done:
                return execution
            if deadline is not None and time.monotonic() >= deadline:
                raise TransportError("timeout", f"execution {execution_id} is still "
                                     f"{execution.status} after {timeout} s")
            time.sleep(poll_interval)

    def session(self, language: str, **options) -> "SessionScope":
        """`with client.session("python") as s:` a session closed on exit."""
        return SessionScope(self, language, options)

    def connect(self, *, open_timeout: float = 10.0) -> Rpc:
        """The WebSocket JSON-RPC connection (`/ws/jsonrpc`); use it as a context manager."""
        from websockets.sync.client import connect
        url = ws_url(self.url)
        try:
            ws = connect(url, additional_headers=_http.headers(self.api_key),
                         open_timeout=open_timeout, max_size=None)
        except (OSError, WebSocketException) as e:
            raise handshake_error(e, url) from None
        # Entered here and closed by `Rpc.close`/`__exit__` (websockets wants the
        # connection used as a context manager).
        return Rpc(ws.__enter__())


class SessionScope:
    def __init__(self, client: Client, language: str, options: dict):
        self._client, self._language, self._options = client, language, options
        self.session: Optional[Session] = None

    def __enter__(self) -> Session:
        self.session = self._client.create_session(self._language, **self._options)
        return self.session

    def __exit__(self, *exc) -> None:
        if self.session is not None:
            self._client.close_session(self.session.session_id)
