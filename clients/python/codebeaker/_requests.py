"""What each call sends and how its answer is read, shared by `Client` and `AsyncClient`
(they differ only in how a `Call` is sent). The body builders are also what the OpenAPI
test checks against `/openapi.json`, so the fields sent cannot drift from the document."""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Optional, Sequence, Union
from urllib.parse import quote

from .errors import error_for
from .types import (BatchResult, CommandResult, ExecuteResult, Execution, File, Language,
                    Session, Submitted)

DEFAULT_URL = "http://127.0.0.1:8080"


@dataclass
class Call:
    method: str
    path: str
    json: Any = None
    params: Optional[dict] = None
    headers: dict = field(default_factory=dict)
    parse: Callable[[Any], Any] = lambda body: body


def settings(api_key: Optional[str], url: Optional[str]) -> tuple:
    """The key and base URL: the arguments, else `CODEBEAKER_API_KEY` / `CODEBEAKER_URL`."""
    key = api_key if api_key is not None else os.environ.get("CODEBEAKER_API_KEY")
    base = (url or os.environ.get("CODEBEAKER_URL") or DEFAULT_URL).rstrip("/")
    return key, base


def _files(files: Optional[Iterable[Union[File, dict]]]) -> Optional[list]:
    if files is None:
        return None
    return [f.to_json() if isinstance(f, File) else dict(f) for f in files]


def run_options(*, mode=None, timeout_ms=None, memory_limit_mb=None, packages=None,
                isolation=None, stdin=None, args=None, files=None) -> dict:
    """The members shared by execute, batch and async executions; unset ones are omitted
    (the gateway's defaults apply)."""
    body = {"mode": mode, "timeoutMs": timeout_ms, "memoryLimitMb": memory_limit_mb,
            "packages": list(packages) if packages is not None else None,
            "isolation": isolation, "stdin": stdin,
            "args": list(args) if args is not None else None, "files": _files(files)}
    return {k: v for k, v in body.items() if v is not None}


def execute_body(language: str, code: str, input: Any = None, **options) -> dict:
    body = {"language": language, "code": code}
    if input is not None:
        body["input"] = input
    body.update(run_options(**options))
    return body


def batch_body(language: Optional[str], code: Optional[str], inputs: Optional[Sequence] = None,
               *, items: Optional[Sequence[dict]] = None, max_concurrency: Optional[int] = None,
               stop_on_first_error: Optional[bool] = None, **options) -> dict:
    """`inputs` is a list of inputs (item ids are their indices); `items` gives full control
    (`{"id", "input", "language", "code", "stdin"}` each)."""
    if (inputs is None) == (items is None):
        raise ValueError("give either inputs or items")
    if items is None:
        items = [{"id": str(i), "input": x} for i, x in enumerate(inputs)]
    body: dict = {"items": [dict(i) for i in items]}
    if language is not None:
        body["language"] = language
    if code is not None:
        body["code"] = code
    if max_concurrency is not None:
        body["maxConcurrency"] = max_concurrency
    if stop_on_first_error is not None:
        body["stopOnFirstError"] = stop_on_first_error
    body.update(run_options(**options))
    return body


def submit_body(body: dict, callback_url: Optional[str]) -> dict:
    return body if callback_url is None else {**body, "callbackUrl": callback_url}


def session_body(language: str, *, idle_timeout_minutes=None, max_lifetime_minutes=None,
                 memory_limit_mb=None, cpu_shares=None, runtime=None, packages=None) -> dict:
    body = {"language": language, "idleTimeoutMinutes": idle_timeout_minutes,
            "maxLifetimeMinutes": max_lifetime_minutes, "memoryLimitMB": memory_limit_mb,
            "cpuShares": cpu_shares, "runtime": runtime,
            "packages": list(packages) if packages is not None else None}
    return {k: v for k, v in body.items() if v is not None}


def shell_command(command: str, args: Sequence[str] = (), *, working_directory=None, env=None,
                  timeout_ms=None, stdin=None, stream=None) -> dict:
    cmd = {"type": "execute_shell", "commandName": command, "args": list(args),
           "workingDirectory": working_directory, "env": env, "timeoutMs": timeout_ms,
           "stdin": stdin, "stream": stream}
    return {k: v for k, v in cmd.items() if v is not None}


def write_command(path: str, content: Union[str, bytes], mode: Optional[str] = None) -> dict:
    cmd = {"type": "write_file", "path": path}
    if isinstance(content, bytes):
        cmd.update(content=base64.b64encode(content).decode(), encoding="base64")
    else:
        cmd["content"] = content
    if mode is not None:
        cmd["mode"] = mode
    return cmd


def read_command(path: str, encoding: str = "utf8") -> dict:
    return {"type": "read_file", "path": path, "encoding": encoding}


def run_code_command(code: str, input: Any = None, timeout_ms: Optional[int] = None) -> dict:
    cmd = {"type": "run_code", "code": code, "input": input, "timeoutMs": timeout_ms}
    return {k: v for k, v in cmd.items() if v is not None}


def file_bytes(result: CommandResult, path: str) -> bytes:
    """The content of a `read_file` with `encoding: base64`, or the command's error."""
    if not result.success:
        raise error_for(result.error_kind or "command_failed", result.error or "", None)
    return base64.b64decode(result.result["content"])


def _id(value: str) -> str:
    return quote(value, safe="")


class Api:
    """Every call that is one request. `self._send(call)` returns the parsed answer (the sync
    client) or an awaitable of it (the async client)."""

    def _send(self, call: Call):  # pragma: no cover - provided by the clients
        raise NotImplementedError

    # -- execute and batches ------------------------------------------------------------

    def execute(self, language: str, code: str, input: Any = None, *, mode: Optional[str] = None,
                timeout_ms: Optional[int] = None, memory_limit_mb: Optional[int] = None,
                packages: Optional[Sequence[str]] = None, isolation: Optional[str] = None,
                stdin: Optional[str] = None, args: Optional[Sequence[str]] = None,
                files: Optional[Sequence[Union[File, dict]]] = None):
        """Run a program (`POST /v1/execute`). A program that ran is an `ExecuteResult`
        whatever it did (see `success` and `error`); a refused request raises."""
        body = execute_body(language, code, input, mode=mode, timeout_ms=timeout_ms,
                            memory_limit_mb=memory_limit_mb, packages=packages,
                            isolation=isolation, stdin=stdin, args=args, files=files)
        return self._send(Call("POST", "/v1/execute", body, parse=ExecuteResult.from_json))

    def batch(self, language: Optional[str], code: Optional[str], inputs: Optional[Sequence] = None,
              **options):
        """One program against many inputs (`POST /v1/execute/batch`): a `BatchResult`.
        Options: `items`, `max_concurrency`, `stop_on_first_error` and those of `execute`."""
        body = batch_body(language, code, inputs, **options)
        return self._send(Call("POST", "/v1/execute/batch", body, parse=BatchResult.from_json))

    # -- async executions -----------------------------------------------------------------

    def submit(self, language: Optional[str], code: Optional[str], input: Any = None, *,
               inputs: Optional[Sequence] = None, items: Optional[Sequence[dict]] = None,
               callback_url: Optional[str] = None, idempotency_key: Optional[str] = None,
               max_concurrency: Optional[int] = None, stop_on_first_error: Optional[bool] = None,
               **options):
        """Queue an execution (`POST /v1/executions`): an execute body, or a batch body when
        `inputs` or `items` is given. Returns `Submitted` (its `execution_id`)."""
        if inputs is not None or items is not None:
            body = batch_body(language, code, inputs, items=items, max_concurrency=max_concurrency,
                              stop_on_first_error=stop_on_first_error, **options)
        else:
            body = execute_body(language, code, input, **options)
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return self._send(Call("POST", "/v1/executions", submit_body(body, callback_url),
                               headers=headers, parse=Submitted.from_json))

    def get_execution(self, execution_id: str, *, offset: Optional[int] = None,
                      limit: Optional[int] = None):
        params = {k: v for k, v in {"offset": offset, "limit": limit}.items() if v is not None}
        return self._send(Call("GET", f"/v1/executions/{_id(execution_id)}", params=params or None,
                               parse=Execution.from_json))

    def list_executions(self, *, status: Optional[str] = None, limit: Optional[int] = None):
        params = {k: v for k, v in {"status": status, "limit": limit}.items() if v is not None}
        return self._send(Call("GET", "/v1/executions", params=params or None,
                               parse=lambda b: [Execution.from_json(e) for e in
                                                (b.get("executions", []) if isinstance(b, dict) else b)]))

    def cancel(self, execution_id: str):
        return self._send(Call("DELETE", f"/v1/executions/{_id(execution_id)}",
                               parse=Execution.from_json))

    def webhook_secret(self):
        """The secret that signs this credential's callbacks (`whsec_…`)."""
        return self._send(Call("GET", "/v1/webhooks/secret", parse=lambda b: b["secret"]))

    def dead_letters(self):
        return self._send(Call("GET", "/v1/webhooks/dead", parse=lambda b: b["deliveries"]))

    # -- languages --------------------------------------------------------------------------

    def languages(self):
        return self._send(Call("GET", "/v1/languages",
                               parse=lambda b: [Language.from_json(x) for x in b]))

    # -- sessions over REST -----------------------------------------------------------------

    def create_session(self, language: str, **options):
        """Options: `idle_timeout_minutes`, `max_lifetime_minutes`, `memory_limit_mb`,
        `cpu_shares`, `runtime`, `packages`."""
        return self._send(Call("POST", "/v1/sessions", session_body(language, **options),
                               parse=Session.from_json))

    def list_sessions(self):
        return self._send(Call("GET", "/v1/sessions",
                               parse=lambda b: [Session.from_json(s) for s in b["sessions"]]))

    def get_session(self, session_id: str):
        return self._send(Call("GET", f"/v1/sessions/{_id(session_id)}", parse=Session.from_json))

    def close_session(self, session_id: str):
        return self._send(Call("DELETE", f"/v1/sessions/{_id(session_id)}",
                               parse=lambda b: bool(b.get("closed"))))

    def command(self, session_id: str, command: dict):
        """Any session command (`{"type": …}`, see docs/jsonrpc.md): a `CommandResult`."""
        return self._send(Call("POST", f"/v1/sessions/{_id(session_id)}/commands", command,
                               parse=CommandResult.from_json))

    def execute_shell(self, session_id: str, command: str, args: Sequence[str] = (), **options):
        """Run an argv in the session (never through a shell). Options: `working_directory`,
        `env`, `timeout_ms`, `stdin`."""
        return self.command(session_id, shell_command(command, args, **options))

    def write_file(self, session_id: str, path: str, content: Union[str, bytes],
                   mode: Optional[str] = None):
        """Write text (utf8) or bytes (sent as base64) to `path` in the session."""
        return self.command(session_id, write_command(path, content, mode))

    def read_file(self, session_id: str, path: str, encoding: str = "utf8"):
        return self.command(session_id, read_command(path, encoding))

    def run_code(self, session_id: str, code: str, input: Any = None,
                 timeout_ms: Optional[int] = None):
        """Run the edge contract in the session's workspace: the `CommandResult`'s `result`
        is an execute result's fields."""
        return self.command(session_id, run_code_command(code, input, timeout_ms))

    def upload(self, session_id: str, local_path: Union[str, os.PathLike], remote_path: str):
        """Copy a local file into the session (bytes, exactly)."""
        with open(local_path, "rb") as f:
            data = f.read()
        return self.write_file(session_id, remote_path, data)

    def download(self, session_id: str, remote_path: str,
                 local_path: Union[str, os.PathLike, None] = None):
        """A session file's bytes; also written to `local_path` when given."""
        def parse(body):
            data = file_bytes(CommandResult.from_json(body), remote_path)
            if local_path is not None:
                with open(local_path, "wb") as f:
                    f.write(data)
            return data
        return self._send(Call("POST", f"/v1/sessions/{_id(session_id)}/commands",
                               read_command(remote_path, "base64"), parse=parse))
