"""The official Judge0 Python SDK (PyPI `judge0`), unchanged, against a CodeBeaker gateway
(tests/api/compat.rs runs it), written as its users write it: a self-hosted client with
the key in X-Auth-Token. Prints each check; exits 1 naming every one that failed.

    CODEBEAKER_URL=http://127.0.0.1:PORT CODEBEAKER_KEY=cb_... python judge0_client.py
"""
import os
import sys

import judge0
from judge0 import Status, Submission

failures = []


def check(name, cond, got=""):
    print(("ok   " if cond else "FAIL ") + name + f"  [{got!r}]", flush=True)
    if not cond:
        failures.append(name)


# The constructor reads GET /languages and GET /config_info (all 39 keys, typed).
client = judge0.Client(os.environ["CODEBEAKER_URL"], {"X-Auth-Token": os.environ["CODEBEAKER_KEY"]})
ids = {l.id for l in client.languages}
check("languages: python, javascript, go, c and c++ under their CE ids", {71, 63, 60, 50, 54, 52} <= ids, sorted(ids))
check("config_info", client.config.max_submission_batch_size == 20 and client.config.enable_wait_result, client.config)

# A named language goes through GET /about's version.
r = judge0.run(client=client, source_code="print(input())", language=judge0.PYTHON, stdin="hello", expected_output="hello")
check("accepted, with stdin and expected_output", r.status == Status.ACCEPTED and r.stdout == "hello\n", (r.status, r.stdout))
check("time is seconds, token a uuid, timestamps parse", isinstance(r.time, float) and len(r.token) == 36 and r.created_at is not None and r.finished_at is not None, (r.time, r.token, r.created_at, r.finished_at))
check("the source and stdin come back", r.source_code == "print(input())" and r.stdin == "hello", (r.source_code, r.stdin))

r = judge0.run(client=client, source_code="print('a')", language=71, expected_output="b")
check("wrong answer", r.status == Status.WRONG_ANSWER and r.stdout == "a\n", (r.status, r.stdout))

r = judge0.run(client=client, source_code="print('a')   \n\n", language=71, expected_output="a")
check("trailing whitespace does not count", r.status == Status.ACCEPTED, r.status)

r = judge0.run(client=client, source_code="import sys\nprint('bad', file=sys.stderr)\nsys.exit(3)", language=judge0.PYTHON)
check("runtime error (NZEC): exit code, stderr, message", r.status == Status.RUNTIME_ERROR_NZEC and r.exit_code == 3 and r.stderr == "bad\n", (r.status, r.exit_code, r.stderr, r.message))

r = judge0.run(client=client, source_code="import sys\nprint(sys.argv[1:])", language=71, command_line_arguments="one 'two words'")
check("command line arguments", r.stdout == "['one', 'two words']\n", r.stdout)

# A batch: POST /submissions/batch, then GET /submissions/batch?tokens=...
subs = [
    Submission(source_code="print(int(input()) * 2)", language=judge0.PYTHON, stdin="21", expected_output="42"),
    Submission(source_code="print('x')", language=judge0.PYTHON, expected_output="y"),
    Submission(source_code="console.log('hi')", language=judge0.JAVASCRIPT),
]
rs = judge0.run(client=client, submissions=subs)
check("batch", [x.status for x in rs] == [Status.ACCEPTED, Status.WRONG_ANSWER, Status.ACCEPTED] and rs[2].stdout == "hi\n", [(str(x.status), x.stdout) for x in rs])

rs = judge0.run(client=client, source_code="print(input()[::-1])", language=judge0.PYTHON, test_cases=[("abc", "cba"), ("xy", "yx"), ("q", "nope")])
check("test cases", [x.status for x in rs] == [Status.ACCEPTED, Status.ACCEPTED, Status.WRONG_ANSWER], [str(x.status) for x in rs])

r = judge0.run(client=client, source_code='#include <stdio.h>\nint main() { printf("hi")', language=judge0.C)
check("C compile error", r.status == Status.COMPILATION_ERROR and "error" in (r.compile_output or "") and r.stdout is None and r.time is None, (r.status, r.compile_output))
r = judge0.run(client=client, source_code="package main\nfunc main() {", language=judge0.GO)
check("Go compile error", r.status == Status.COMPILATION_ERROR, r.status)
r = judge0.run(client=client, source_code='#include <iostream>\nint main() { std::cout << "cpp" << std::endl; }', language=judge0.CPP)
check("C++ under the SDK's id (52)", r.status == Status.ACCEPTED and r.stdout == "cpp\n", (r.status, r.stdout, r.compile_output))

r = judge0.run(client=client, source_code="while True: pass", language=judge0.PYTHON, cpu_time_limit=1)
check("time limit exceeded", r.status == Status.TIME_LIMIT_EXCEEDED, (r.status, r.time))

r = judge0.run(client=client, source_code="print(1)", language=71, number_of_runs=3)
check("number_of_runs", r.status == Status.ACCEPTED and r.number_of_runs == 3, (r.status, r.number_of_runs))

s = judge0.async_run(client=client, source_code="print(6*7)", language=judge0.PYTHON)
check("async_run gives a token", s.token is not None)
s = judge0.wait(client=client, submissions=s)
check("wait", s.stdout == "42\n" and s.status == Status.ACCEPTED, (s.stdout, s.status))

check("statuses", len(client.get_statuses()) == 14, client.get_statuses())
check("one language", client.get_language(71).name.startswith("Python ("), client.get_language(71))

try:
    judge0.run(client=client, source_code="print(1)", language=71, enable_network=True)
    check("enable_network is refused", False)
except Exception as e:  # httpx.HTTPStatusError: 422
    check("enable_network is refused", "422" in str(e), str(e))

if failures:
    print("judge0: failed: " + "; ".join(failures), file=sys.stderr)
    sys.exit(1)
