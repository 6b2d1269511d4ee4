"""PyPI's `pistonapi`, unchanged, against a CodeBeaker gateway (tests/api/compat.rs runs
it). It posts a form (`files=<code>`, repeated `args`) with no credential: the gateway runs
with compat.anonymous on. Prints each answer; exits 1 naming every check that failed.

    CODEBEAKER_URL=http://127.0.0.1:PORT python pistonapi_client.py
"""
import json
import os
import sys

from pistonapi import PistonAPI
from pistonapi.exceptions import PistonError

api = PistonAPI(endpoint=os.environ["CODEBEAKER_URL"].rstrip("/") + "/api/v2")
failures = []


def check(step, cond, got):
    print(json.dumps({"step": step, "ok": bool(cond), "got": repr(got)}), flush=True)
    if not cond:
        failures.append(step)


def attempt(fn):
    try:
        return fn()
    except Exception as e:  # what the client raised is the answer under test
        return e


rts = api.runtimes
check("runtimes keyed by language", "python" in rts and rts["python"]["version"].count(".") == 2, rts)
check("languages is the same", api.languages.keys() == rts.keys(), api.languages)

out = attempt(lambda: api.execute(language="python", version="*", code="print(input())", stdin="hello from stdin", args=["a", "b"], timeout=5000))
check("stdin through a form body", out == "hello from stdin\n", out)

out = attempt(lambda: api.execute(language="py", version="3", code="print(input())"))
check("an alias, empty stdin is one newline", out == "\n", out)

out = attempt(lambda: api.execute(language="python", version="3.x", code="import sys; print(sys.argv[1:])", args=["only"]))
check("one argument", out == "['only']\n", out)

out = attempt(lambda: api.execute(language="python", version="*", code="import sys\nprint('out')\nprint('err', file=sys.stderr)"))
check("output is stdout then stderr", out == "out\nerr\n", out)

out = attempt(lambda: api.execute(language="nosuchlang", version="1.0.0", code="x"))
check("an unknown language raises PistonError", isinstance(out, PistonError) and "runtime is unknown" in str(out), out)

if failures:
    print("pistonapi: failed: " + "; ".join(failures), file=sys.stderr)
    sys.exit(1)
