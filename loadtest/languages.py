#!/usr/bin/env python3
"""Warm per-call latency of every language, one run: against a gateway at $BASE_URL with
$API_KEY, for each language the trivial edge program of loadtest/execute.js, 5 unmeasured
calls (compile, runner warm-up), then N sequential calls in call mode and N in program mode.
Prints a Markdown table: end-to-end p50/p90 and the container's own durationMs p50, plus the
first call's compileMs (a compile-cache miss). Usage:
  BASE_URL=http://127.0.0.1:18080 API_KEY=cb_... N=40 loadtest/languages.py [lang...]"""
import json, os, re, statistics, sys, time, urllib.request

BASE = os.environ.get("BASE_URL", "http://127.0.0.1:8080")
KEY = os.environ["API_KEY"]
N = int(os.environ.get("N", "40"))
src = open(os.path.join(os.path.dirname(__file__), "execute.js")).read()
block = src[src.index("const PROGRAMS = {"):src.index("\n};", src.index("const PROGRAMS = {"))]
PROGRAMS = {}
for m in re.finditer(r"^  (\w+): (['\"])(.*)\2,$", block, re.M):
    PROGRAMS[m.group(1)] = json.loads('"' + m.group(3).replace('"', '\\"').replace("\\'", "'") + '"') if m.group(2) == "'" else json.loads('"' + m.group(3) + '"')

def call(lang, code, isolation):
    body = json.dumps({"language": lang, "code": code, "input": {"xs": [1, 2, 3]}, "isolation": isolation}).encode()
    req = urllib.request.Request(BASE + "/v1/execute", body, {"content-type": "application/json", "x-api-key": KEY})
    t = time.perf_counter()
    with urllib.request.urlopen(req) as r:
        b = json.load(r)
    return (time.perf_counter() - t) * 1000, b

langs = sys.argv[1:] or list(PROGRAMS)
print("| language | first call (compile ms) | call p50 / p90 ms | in container p50 ms | program p50 ms |")
print("|---|---|---|---|---|")
for l in langs:
    # A comment unique to this run: the first call is a compile-cache miss.
    mark = "#" if l in ("python", "ruby", "bash") else "//"
    code = PROGRAMS[l] + f"\n{mark} {time.time()}"
    first, b = call(l, code, "call")
    assert b["success"] and b["output"] == {"sum": 6}, (l, b)
    compile_ms = b["compileMs"]
    for _ in range(5):
        call(l, code, "call")
    wall, inside = [], []
    for _ in range(N):
        t, b = call(l, code, "call")
        assert b["success"], (l, b)
        wall.append(t); inside.append(b["durationMs"])
    for _ in range(3):
        call(l, code, "program")
    prog = [call(l, code, "program")[0] for _ in range(N)]
    q = statistics.quantiles(wall, n=10)
    print(f"| {l} | {first:.0f} ({compile_ms}) | {statistics.median(wall):.1f} / {q[8]:.1f} | {statistics.median(inside):.0f} | {statistics.median(prog):.2f} |", flush=True)
