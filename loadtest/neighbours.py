#!/usr/bin/env python3
"""What one hostile call does to its neighbours (BENCHMARKS.md, run L).

Four client threads call a trivial Python program back to back; 3 s in, one hostile call
(fork, mem, flood or loop) runs with timeoutMs 3000. Prints the hostile call's outcome, every
neighbour call slower than 250 ms (with the gateway's queueMs and durationMs), and per second
the neighbours' p50 and max.

  API_KEY=cb_... BASE_URL=http://127.0.0.1:8080 loadtest/neighbours.py fork [seconds]
"""
import json, os, sys, time, threading, urllib.request
key = os.environ.get("API_KEY", "")
H = {"content-type": "application/json", "x-api-key": key}
URL = os.environ.get("BASE_URL", "http://127.0.0.1:8080") + "/v1/execute"
def call(code, timeout_ms=None):
    body = {"language": "python", "code": code, "input": {"xs": [1, 2, 3]}}
    if timeout_ms: body["timeoutMs"] = timeout_ms
    req = urllib.request.Request(URL, json.dumps(body).encode(), H)
    t = time.time()
    try:
        r = urllib.request.urlopen(req, timeout=60); st = r.status; b = json.load(r)
    except urllib.error.HTTPError as e:
        st = e.code; b = json.load(e)
    return st, b, time.time() - t
T0 = time.time() + 3
stop = time.time() + float(sys.argv[2]) if len(sys.argv) > 2 else time.time() + 15
lat = []
def worker():
    while time.time() < stop:
        st, b, dt = call('result = sum(input_data["xs"])')
        lat.append((time.time(), dt, st, b.get("success")))
        if dt > 0.25: print(f"t_end={time.time()-T0:.2f} slow {dt*1e3:.0f}ms queueMs={b.get('queueMs')} durationMs={b.get('durationMs')} st={st}", flush=True)
ths = [threading.Thread(target=worker) for _ in range(4)]
for t in ths: t.start()
time.sleep(3)
hostile = {"fork": 'import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass',
           "mem": 'x = []\nwhile True:\n    x.append(bytearray(10 * 1024 * 1024))',
           "flood": 'while True:\n    print("x" * 10000)',
           "loop": 'while True:\n    pass'}[sys.argv[1]]
st, b, dt = call(hostile, 3000)
print(f"t_end={time.time()-T0:.2f} hostile:", st, b.get("error"), f"{dt:.2f}s")
for t in ths: t.join()
t0 = lat[0][0]
per = {}
for (t, dt, st, ok) in lat:
    per.setdefault(int(t - t0), []).append((dt, st, ok))
for s in sorted(per):
    v = sorted(x[0] for x in per[s]); bad = sum(1 for x in per[s] if x[1] != 200 or not x[2])
    print(f"{s:3d}s n={len(v):4d} p50={v[len(v)//2]*1e3:7.1f}ms max={v[-1]*1e3:8.1f}ms bad={bad}")
