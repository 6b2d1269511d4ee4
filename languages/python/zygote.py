# CodeBeaker Python zygote: a pre-initialised interpreter that forks one child per program.
#
# Starting python3 costs ~30 ms of CPU; fork costs ~1 ms. The agent starts this once per
# container, as root (it must drop each child to the sandbox uid), with a Unix socket as
# stdin. For every invocation the agent sends the program path together with three file
# descriptors (the program's stdin, stdout and stderr) over SCM_RIGHTS. The zygote forks;
# the child wires up the descriptors, closes everything else (the socket included, so user
# code can never talk to the zygote), drops to the sandbox uid and runs the program. The
# zygote reports "pid N", then "exit N" when the child ends. User code never runs in the
# zygote itself, and the child runs as another uid, so it cannot touch the zygote.
#
# A request is one JSON line {"path", "args", "cwd"}: the child behaves as `python3 PATH
# ARGS...` started in CWD would (sys.argv, sys.path[0] = the script's directory, an
# absolute __file__, exit code 2 for a missing file). Sessions use it for `python3 FILE`.
import json  # noqa: F401  (pre-loaded for every program)
import os
import signal
import socket
import sys

UID = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
SOCK_FD = os.dup(0)
_null = os.open("/dev/null", os.O_RDWR)
os.dup2(_null, 0)
os.close(_null)
sock = socket.socket(fileno=SOCK_FD)

# Warm, once, what every child would otherwise initialise lazily after its fork: the
# parser (the first compile() of a process builds its tables), text-mode files with an
# explicit encoding, and json's encoder and decoder. Done in each child, this costs it
# ~1 ms of CPU in copy-on-write page faults (BENCHMARKS.md, run K). Only our own
# constant code runs here.
exec(
    compile(
        "import json as j\n"
        "with open('/dev/null', encoding='utf-8') as f:\n"
        "    f.read()\n"
        "with open('/dev/null', 'w', encoding='utf-8') as f:\n"
        "    f.write(j.dumps(j.loads('{\"a\": [1, 2.5, \"x\", null]}'), ensure_ascii=False))\n",
        "<warm-up>",
        "exec",
    ),
    {},
)

# A package variant (docker/build-variants.sh) names heavy modules to import here, once:
# every child is a fork of this process, so its `import numpy` becomes a lookup instead of
# ~76 ms (pandas: ~319 ms; BENCHMARKS.md, run S). The modules are the image's, installed
# from hashed wheels at build time; no user code runs here. No BLAS threads: a process
# that forks must not have other threads (the containers have one CPU's quota anyway).
try:
    with open("/etc/codebeaker-python-preload", encoding="utf-8") as _f:
        _preload = [l.strip() for l in _f if l.strip() and not l.startswith("#")]
except OSError:
    _preload = []
if _preload:
    for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_v, "1")
    for _name in _preload:
        try:
            __import__(_name)
        except Exception:  # a child importing it gets the real error
            pass


# A fork copies every random generator's state: without a reseed, each child of this
# process would draw the same numbers (numpy's global generator gave 0.5259892246214956 in
# every call). The rule for any preloaded module: each child reseeds, from os.urandom,
# (1) the global generators of the libraries in RESEED, if loaded, and (2) every generator
# object a preloaded module holds at module level (found once, here, by type), so a preload
# list can grow without anyone remembering to extend a table.
def _words(n):
    return [int.from_bytes(os.urandom(4), "little") for _ in range(n)]


def _reseed_numpy(m):
    m.random.seed(_words(8))  # the legacy global RandomState (np.random.rand & co.)


def _reseed_torch(m):
    m.manual_seed(int.from_bytes(os.urandom(8), "little") >> 1)


RESEED = {
    "random": lambda m: m.seed(os.urandom(32)),
    "numpy": _reseed_numpy,
    "torch": _reseed_torch,
}


def _reseed_object(obj):
    if hasattr(obj, "bit_generator"):  # a numpy Generator: its bit generator is the state
        bg = obj.bit_generator
        bg.state = type(bg)(_words(8)).state
    elif hasattr(obj, "get_state") and hasattr(obj, "randint"):  # a numpy RandomState
        obj.seed(_words(8))
    else:  # random.Random and its subclasses
        obj.seed(os.urandom(32))


def _generators(roots):
    """Generator objects held at module level by the modules in `roots` and their submodules."""
    import random

    kinds = [random.Random]
    np = sys.modules.get("numpy")
    if np is not None:
        kinds += [getattr(np.random, n) for n in ("RandomState", "Generator") if hasattr(np.random, n)]
    kinds = tuple(kinds)
    found, seen = [], set()
    for name, mod in list(sys.modules.items()):
        if mod is None or not any(name == r or name.startswith(r + ".") for r in roots):
            continue
        for obj in list(vars(mod).values()):
            # SystemRandom draws from the OS: it has no state to share.
            if isinstance(obj, kinds) and not isinstance(obj, random.SystemRandom) and id(obj) not in seen:
                seen.add(id(obj))
                found.append(obj)
    return found


_GENERATORS = _generators(_preload) if _preload else []


def reseed():
    for name, fn in RESEED.items():
        mod = sys.modules.get(name)
        if mod is not None:
            try:
                fn(mod)
            except Exception:  # an unusual version of the library: its own seeding stands
                pass
    for obj in _GENERATORS:
        try:
            _reseed_object(obj)
        except Exception:
            pass


def _user_traceback(tb):
    """`tb` without this file's frames: the traceback `python3 PROGRAM` would print starts
    in the program (and a syntax error, raised by compile() here, has no frames at all)."""
    while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next
    return tb


def run_child(path, args, cwd, fds):
    os.dup2(fds[0], 0)
    os.dup2(fds[1], 1)
    os.dup2(fds[2], 2)
    os.closerange(3, 1 << 16)  # close_range(2): the socket and every other descriptor
    # The OOM killer's first choice, as for every user process (os-level calls: no file
    # object to allocate in the child).
    oom = os.open("/proc/self/oom_score_adj", os.O_WRONLY)
    os.write(oom, b"1000")
    os.close(oom)
    os.setgroups([])
    os.setgid(UID)
    os.setuid(UID)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    reseed()
    try:
        os.chdir(cwd)
        script = os.path.abspath(path)
        sys.argv = [path] + args
        sys.path.insert(0, os.path.dirname(script))
        try:
            with open(path, "rb") as src:
                source = src.read()
        except OSError as e:
            print("python3: can't open file %r: [Errno %d] %s" % (script, e.errno, e.strerror), file=sys.stderr)
            raise SystemExit(2)
        # The absolute path, as python3 names the script in a traceback.
        code = compile(source, script, "exec")
        exec(code, {"__name__": "__main__", "__file__": script, "__builtins__": __builtins__})
        status = 0
    except SystemExit as e:
        status = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        if not isinstance(e.code, (int, type(None))):
            print(e.code, file=sys.stderr)
    except BaseException as e:
        # On the exception itself: the default hook prints the exception's own traceback,
        # whatever it is passed.
        e.__traceback__ = _user_traceback(e.__traceback__)
        # As python3 does: through sys.excepthook (a program may have set its own).
        try:
            sys.excepthook(type(e), e, e.__traceback__)
        except BaseException:
            import traceback

            traceback.print_exception(type(e), e, e.__traceback__)
        status = 1
    # Skip interpreter finalisation: the container is wiped after every run.
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            pass
    os._exit(status & 0xFF)


while True:
    try:
        msg, fds, _flags, _addr = socket.recv_fds(sock, 1 << 16, 3)
    except OSError:
        break
    if not msg:
        break  # the agent is gone
    req = json.loads(msg.decode())
    pid = os.fork()
    if pid == 0:
        try:
            run_child(req["path"], req.get("args", []), req.get("cwd", "/workspace"), fds)
        finally:
            os._exit(127)
    for fd in fds:
        os.close(fd)
    sock.sendall(b"pid %d\n" % pid)
    _, status = os.waitpid(pid, 0)
    sock.sendall(b"exit %d\n" % os.waitstatus_to_exitcode(status))
