"""Sessions over the WebSocket JSON-RPC 2.0 endpoint (`/ws/jsonrpc`, docs/jsonrpc.md), with
the output of a streamed command as a callback or an iterator. One call at a time per
connection: `session.output` notifications belong to the call in flight."""

from __future__ import annotations

import inspect
import json
from typing import Any, AsyncIterator, Callable, Iterator, Optional, Sequence

from ._requests import execute_body, session_body, shell_command
from .errors import CodeBeakerError, TransportError, error_for, rpc_error
from .types import CommandResult, ExecuteResult, Output, Session

OnOutput = Callable[[Output], Any]


def ws_url(base: str) -> str:
    if base.startswith("https://"):
        return "wss://" + base[len("https://"):] + "/ws/jsonrpc"
    if base.startswith("http://"):
        return "ws://" + base[len("http://"):] + "/ws/jsonrpc"
    return base + "/ws/jsonrpc"


def handshake_error(e: Exception, url: str) -> CodeBeakerError:
    """A refused or failed upgrade as the error the same refusal over HTTP raises."""
    response = getattr(e, "response", None)
    if response is not None and getattr(response, "status_code", None):
        kind, message = f"http_{response.status_code}", str(e)
        try:
            err = json.loads(bytes(response.body or b""))["error"]
            kind, message = err["kind"], err["message"]
        except (ValueError, KeyError, TypeError):
            pass
        return error_for(kind, message, response.status_code)
    return TransportError("unreachable", f"cannot open the WebSocket at {url}: {e}")


def _request(rid: int, method: str, params: dict) -> str:
    return json.dumps({"jsonrpc": "2.0", "id": rid, "method": method, "params": params})


def _output(msg: dict) -> Optional[Output]:
    if msg.get("method") == "session.output" and "id" not in msg:
        p = msg.get("params") or {}
        return Output(p.get("sessionId", ""), p.get("stream", ""), p.get("data", ""))
    return None


def _result(msg: dict) -> Any:
    if msg.get("error") is not None:
        raise rpc_error(msg["error"])
    return msg.get("result")


class Rpc:
    """The synchronous connection (`Client.connect()`)."""

    def __init__(self, ws):
        self._ws, self._next = ws, 0

    def __enter__(self) -> "Rpc":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._ws.close()

    def _exchange(self, method: str, params: dict) -> Iterator[Any]:
        """Yields each `Output` of the call, then its response message."""
        self._next += 1
        rid = self._next
        self._ws.send(_request(rid, method, params))
        while True:
            msg = json.loads(self._ws.recv())
            out = _output(msg)
            if out is not None:
                yield out
            elif msg.get("id") == rid:
                yield msg
                return

    def call(self, method: str, params: dict, on_output: Optional[OnOutput] = None) -> Any:
        for item in self._exchange(method, params):
            if isinstance(item, Output):
                if on_output is not None:
                    on_output(item)
            else:
                return _result(item)

    def create_session(self, language: str, **options) -> Session:
        return Session.from_json(self.call("session.create", session_body(language, **options)))

    def list_sessions(self) -> list:
        return [Session.from_json(s) for s in self.call("session.list", {})["sessions"]]

    def close_session(self, session_id: str) -> bool:
        return bool(self.call("session.close", {"sessionId": session_id}).get("closed"))

    def execute(self, session_id: str, command: dict,
                on_output: Optional[OnOutput] = None) -> CommandResult:
        params = {"sessionId": session_id, "command": command}
        return CommandResult.from_json(self.call("session.execute", params, on_output))

    def execute_shell(self, session_id: str, command: str, args: Sequence[str] = (), *,
                      on_output: Optional[OnOutput] = None, **options) -> CommandResult:
        """With `on_output`, the command streams: the callback gets each `Output` as it comes."""
        cmd = shell_command(command, args, stream=True if on_output else None, **options)
        return self.execute(session_id, cmd, on_output)

    def stream_shell(self, session_id: str, command: str, args: Sequence[str] = (),
                     **options) -> "ShellStream":
        """Iterate a command's `Output` as it runs; `.result` is its `CommandResult` after."""
        cmd = shell_command(command, args, stream=True, **options)
        return ShellStream(self._exchange("session.execute",
                                          {"sessionId": session_id, "command": cmd}))

    def run(self, language: str, code: str, input: Any = None, **options) -> ExecuteResult:
        """`execution.run`: what `Client.execute` does, over the socket."""
        return ExecuteResult.from_json(
            self.call("execution.run", execute_body(language, code, input, **options)))


class ShellStream:
    def __init__(self, exchange: Iterator[Any]):
        self._exchange = exchange
        self.result: Optional[CommandResult] = None

    def __iter__(self) -> Iterator[Output]:
        for item in self._exchange:
            if isinstance(item, Output):
                yield item
            else:
                self.result = CommandResult.from_json(_result(item))


class AsyncRpc:
    """The asynchronous connection (`await AsyncClient.connect()`); callbacks may be
    coroutine functions."""

    def __init__(self, ws):
        self._ws, self._next = ws, 0

    async def __aenter__(self) -> "AsyncRpc":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def close(self) -> None:
        await self._ws.close()

    async def _exchange(self, method: str, params: dict) -> AsyncIterator[Any]:
        self._next += 1
        rid = self._next
        await self._ws.send(_request(rid, method, params))
        while True:
            msg = json.loads(await self._ws.recv())
            out = _output(msg)
            if out is not None:
                yield out
            elif msg.get("id") == rid:
                yield msg
                return

    async def call(self, method: str, params: dict, on_output: Optional[OnOutput] = None) -> Any:
        async for item in self._exchange(method, params):
            if isinstance(item, Output):
                if on_output is not None:
                    r = on_output(item)
                    if inspect.isawaitable(r):
                        await r
            else:
                return _result(item)

    async def create_session(self, language: str, **options) -> Session:
        return Session.from_json(await self.call("session.create",
                                                 session_body(language, **options)))

    async def list_sessions(self) -> list:
        return [Session.from_json(s) for s in (await self.call("session.list", {}))["sessions"]]

    async def close_session(self, session_id: str) -> bool:
        return bool((await self.call("session.close", {"sessionId": session_id})).get("closed"))

    async def execute(self, session_id: str, command: dict,
                      on_output: Optional[OnOutput] = None) -> CommandResult:
        params = {"sessionId": session_id, "command": command}
        return CommandResult.from_json(await self.call("session.execute", params, on_output))

    async def execute_shell(self, session_id: str, command: str, args: Sequence[str] = (), *,
                            on_output: Optional[OnOutput] = None, **options) -> CommandResult:
        cmd = shell_command(command, args, stream=True if on_output else None, **options)
        return await self.execute(session_id, cmd, on_output)

    def stream_shell(self, session_id: str, command: str, args: Sequence[str] = (),
                     **options) -> "AsyncShellStream":
        cmd = shell_command(command, args, stream=True, **options)
        return AsyncShellStream(self._exchange("session.execute",
                                               {"sessionId": session_id, "command": cmd}))

    async def run(self, language: str, code: str, input: Any = None, **options) -> ExecuteResult:
        return ExecuteResult.from_json(
            await self.call("execution.run", execute_body(language, code, input, **options)))


class AsyncShellStream:
    def __init__(self, exchange: AsyncIterator[Any]):
        self._exchange = exchange
        self.result: Optional[CommandResult] = None

    async def __aiter__(self) -> AsyncIterator[Output]:
        async for item in self._exchange:
            if isinstance(item, Output):
                yield item
            else:
                self.result = CommandResult.from_json(_result(item))


__all__ = ["Rpc", "AsyncRpc", "ShellStream", "AsyncShellStream", "ws_url"]
