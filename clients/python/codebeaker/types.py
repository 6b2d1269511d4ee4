"""The answers, as dataclasses. Each keeps the JSON it came from in `raw`, so a field the
gateway adds later is readable before this SDK names it."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field, fields
from typing import Any, Optional, Union


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def _build(cls, data: dict, **overrides):
    """`cls` from a camelCase JSON object: known fields taken, the rest left in `raw`."""
    known = {f.name for f in fields(cls)}
    kwargs = {}
    for key, value in data.items():
        name = _snake(key)
        if name in known:
            kwargs[name] = value
    kwargs.update(overrides)
    kwargs["raw"] = data
    return cls(**kwargs)


@dataclass
class File:
    """A file written into `/workspace` beside the program (`files` of execute and batch)."""

    path: str
    content: Union[str, bytes]

    def to_json(self) -> dict:
        if isinstance(self.content, bytes):
            return {"path": self.path, "content": base64.b64encode(self.content).decode(),
                    "encoding": "base64"}
        return {"path": self.path, "content": self.content}


@dataclass
class ProgramError:
    """Why a program that ran did not succeed (`compile_error`, `runtime_error`, `timeout`, …)."""

    kind: str
    message: str
    raw: dict = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, data: Optional[dict]) -> Optional["ProgramError"]:
        return None if data is None else _build(cls, data)


@dataclass
class ExecuteResult:
    """The answer of `POST /v1/execute` (and of a session's `run_code`)."""

    success: bool
    output: Any = None
    stdout: str = ""
    stderr: str = ""
    exit_code: Optional[int] = None
    duration_ms: int = 0
    execution_id: Optional[str] = None
    language: Optional[str] = None
    compile_ms: Optional[int] = None
    cache_hit: Optional[bool] = None
    queue_ms: Optional[int] = None
    truncated: bool = False
    container_id: Optional[str] = None
    error: Optional[ProgramError] = None
    raw: dict = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, data: dict) -> "ExecuteResult":
        return _build(cls, data, error=ProgramError.from_json(data.get("error")))


@dataclass
class BatchItemResult:
    """One item of a batch, in the JSON answer or one NDJSON line."""

    id: str
    index: int
    success: bool
    skipped: bool = False
    output: Any = None
    stdout: str = ""
    stderr: str = ""
    exit_code: Optional[int] = None
    latency_ms: int = 0
    cache_hit: Optional[bool] = None
    error: Optional[ProgramError] = None
    raw: dict = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, data: dict) -> "BatchItemResult":
        return _build(cls, data, error=ProgramError.from_json(data.get("error")))


@dataclass
class BatchSummary:
    batch_id: str
    total_items: int
    success_count: int
    failure_count: int
    skipped_count: int = 0
    total_duration_ms: int = 0
    avg_latency_ms: float = 0.0
    concurrency: int = 0
    started_at: Optional[str] = None
    completed_at: Optional[str] = None
    raw: dict = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, data: dict) -> "BatchSummary":
        return _build(cls, data)


@dataclass
class BatchResult:
    """The JSON answer of `POST /v1/execute/batch`: the summary and every item, in order."""

    summary: BatchSummary
    results: list

    @classmethod
    def from_json(cls, data: dict) -> "BatchResult":
        return cls(BatchSummary.from_json({k: v for k, v in data.items() if k != "results"}),
                   [BatchItemResult.from_json(r) for r in data.get("results", [])])


@dataclass
class Submitted:
    """The 202 of `POST /v1/executions`."""

    execution_id: str
    status: str
    status_url: str = ""
    raw: dict = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, data: dict) -> "Submitted":
        return _build(cls, data)


FINAL_STATUSES = frozenset({"completed", "failed", "cancelled"})


@dataclass
class Execution:
    """An async execution: `queued`, `running`, `completed`, `failed` or `cancelled`."""

    execution_id: str
    status: str
    kind: Optional[str] = None
    created_at: Optional[str] = None
    started_at: Optional[str] = None
    completed_at: Optional[str] = None
    # An `ExecuteResult` for an execute body, a `BatchResult` for a batch body.
    result: Any = None
    error: Optional[str] = None
    attempts: int = 0
    callbacks: Optional[list] = None
    raw: dict = field(default_factory=dict, repr=False)

    @property
    def done(self) -> bool:
        return self.status in FINAL_STATUSES

    @classmethod
    def from_json(cls, data: dict) -> "Execution":
        result = data.get("result")
        if isinstance(result, dict):
            result = (BatchResult.from_json(result) if "results" in result
                      else ExecuteResult.from_json(result))
        return _build(cls, data, result=result)


@dataclass
class Session:
    """A session: a container dedicated to the caller, whose `/workspace` persists."""

    session_id: str
    language: str
    container_id: Optional[str] = None
    state: Optional[str] = None
    created_at: Optional[str] = None
    last_activity: Optional[str] = None
    execution_count: int = 0
    runtime: Optional[str] = None
    config: dict = field(default_factory=dict)
    raw: dict = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, data: dict) -> "Session":
        return _build(cls, data)


@dataclass
class CommandResult:
    """A session command's answer; a failed command is a result (`success` false), not an
    exception: `error` is one readable line, `error_kind` the machine-readable kind."""

    success: bool
    result: Any = None
    error: Optional[str] = None
    error_code: Optional[int] = None
    error_kind: Optional[str] = None
    duration_ms: int = 0
    raw: dict = field(default_factory=dict, repr=False)

    @property
    def stdout(self) -> str:
        return (self.result or {}).get("stdout", "")

    @property
    def stderr(self) -> str:
        return (self.result or {}).get("stderr", "")

    @property
    def exit_code(self) -> Optional[int]:
        return (self.result or {}).get("exitCode")

    @classmethod
    def from_json(cls, data: dict) -> "CommandResult":
        return _build(cls, data)


@dataclass
class Output:
    """A chunk of a streamed command's output (`stream` is `stdout` or `stderr`)."""

    session_id: str
    stream: str
    data: str


@dataclass
class Language:
    name: str
    title: str = ""
    aliases: list = field(default_factory=list)
    file: str = ""
    compiled: bool = False
    available: bool = True
    toolchain: Optional[str] = None
    image: Optional[str] = None
    note: Optional[str] = None
    variants: list = field(default_factory=list)
    raw: dict = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, data: dict) -> "Language":
        return _build(cls, data)
