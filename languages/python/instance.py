# CodeBeaker resident runner for Python ("isolation": "program").
#
# Started by the agent as the sandbox user with a control socket as fd 0 and the call's
# stdout/stderr as pipes. It compiles the program once, says "ready", then for each input
# line runs the compiled code in a fresh globals dict (fresh top-level variables; imported
# modules and anything hung on them persist, by design of the mode), and answers
# "done <exit> <result bytes or -1> <leaked>\n" followed by the result bytes.
#
# A SystemExit ends the call with its code and this process (the agent starts a fresh
# instance); any other exception is the call's failure, printed as Python prints it, and
# the instance lives on.
import builtins
import io
import json
import os
import sys
import threading
import traceback

ctl = os.dup(0)
_null = os.open("/dev/null", os.O_RDONLY)
os.dup2(_null, 0)
os.close(_null)

path, mode = sys.argv[1], sys.argv[2]
plain = mode == "plain"


def _send(data):
    view = memoryview(data)
    while view:
        n = os.write(ctl, view)
        view = view[n:]


def _flush():
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass


def _exit_code(e):
    code = e.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


with open(path, encoding="utf-8") as f:
    source = f.read()
try:
    code = compile(source, path, "exec")
except SyntaxError as e:
    # As `python3 program.py` prints it: no traceback, the location and the error.
    traceback.print_exception(type(e), e, None)
    _flush()
    os._exit(1)
del source

reader = io.open(ctl, "rb", buffering=65536, closefd=False)
_send(b"ready\n")
dumps = json.dumps
loads = json.loads

while True:
    line = reader.readline()
    if not line:
        os._exit(0)
    g = {"__name__": "__main__", "__builtins__": builtins, "__file__": path}
    if not plain:
        g["input_data"] = loads(line)
    exit_code = 0
    try:
        exec(code, g)
    except SystemExit as e:
        _flush()
        os._exit(_exit_code(e))
    except BaseException as e:
        # The runner's own frame (the exec above) is not the program's: skip it.
        tb = e.__traceback__.tb_next if e.__traceback__ is not None else None
        traceback.print_exception(type(e), e, tb)
        exit_code = 1
    payload = b""
    size = -1
    if exit_code == 0 and not plain and "result" in g:
        result = g["result"]
        try:
            text = dumps(result, ensure_ascii=False)
        except (TypeError, ValueError) as e:
            print("codebeaker: result is not JSON-serializable:", e, file=sys.stderr)
            text = repr(result)
        payload = text.encode("utf-8", "surrogatepass")
        size = len(payload)
    del g
    _flush()
    leaked = 1 if threading.active_count() > 1 else 0
    _send(b"done %d %d %d\n" % (exit_code, size, leaked) + payload)
