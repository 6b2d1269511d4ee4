# CodeBeaker Python runner. The agent starts this ahead of time, as the sandbox user, so
# interpreter start-up and the common imports are paid before a request arrives. It then
# waits for one line on stdin: the path of the wrapped program to run.
import os
import sys
import json  # noqa: F401  (pre-loaded: every wrapped program uses it)

path = sys.stdin.readline().strip()
sys.argv = [path]
with open(path, "rb") as f:
    code = compile(f.read(), path, "exec")
del f
try:
    exec(code, {"__name__": "__main__", "__file__": path, "__builtins__": __builtins__})
    status = 0
except SystemExit as e:
    status = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    if not isinstance(e.code, (int, type(None))):
        print(e.code, file=sys.stderr)
except BaseException:
    import traceback

    traceback.print_exc()
    status = 1
# Skip interpreter finalization (several ms): the container is wiped after every run.
sys.stdout.flush()
sys.stderr.flush()
os._exit(status)
