#!/usr/bin/env python3
"""Does a call through the compatibility APIs cost more than the same call made natively?

    compat.py --url http://127.0.0.1:8080 --key KEY [--n 300] [--warmup 30]
              [--concurrency 4] [--mix-seconds 20] [--solo-seconds 0] [--solo-rounds 2]

Four ways of running `print(input())` with stdin `hi` in Python, on one gateway:

  A  native sync    POST /v1/execute
  B  Piston         POST /api/v2/execute
  C  native async   POST /v1/executions, then GET /v1/executions/{id} every 5 ms until
                    the status is final (timed from the submit to the final status seen)
  D  Judge0 wait    POST /submissions?wait=true (the gateway polls its queue every 5 ms)

Phase 1 (sequential, one client, one keep-alive connection): WARMUP calls of each, then N
of each, interleaved: one call of each mode per round, the rounds going through the 24
orders of the four (so each mode comes first, and follows each other mode, equally often;
machine noise falls on all four alike; N a multiple of 24 balances it exactly).

Phase 2 (optional, --mix-seconds > 0): CONCURRENCY clients, each with its own keep-alive
connection, each going through the 24 orders of the four modes, for MIX seconds: calls/s in total and the
latency per mode under load.

Phase 3 (optional, --solo-seconds > 0): CONCURRENCY clients on one mode at a time for SOLO
seconds, the modes in turn, SOLO_ROUNDS times: calls/s per mode.

Besides the client's clock, each mode's own report of the run is kept (A and C:
`durationMs` and `queueMs`; B: `run.wall_time`; D: `time`; for C the execution's
`createdAt`/`startedAt`/`completedAt`, and for D the same read from
`GET /v1/executions/{token}` after the timed call, outside the timing).

Standard library only. Prints markdown.
"""
import argparse
import http.client
import itertools
import json
import sys
import threading
import time
import urllib.parse
from datetime import datetime

CODE = "print(input())"
STDIN = "hi"
EXPECTED = "hi\n"
FINAL = {"completed", "failed", "cancelled", "canceled", "expired"}
MODES = ["A", "B", "C", "D"]
# Round i runs the modes in the i-th of the 24 orders: over 24 rounds each mode comes
# first, second, … equally often and follows each other mode equally often.
ORDERS = [list(p) for p in itertools.permutations(MODES)]
NAMES = {
    "A": "A native sync `POST /v1/execute`",
    "B": "B Piston `POST /api/v2/execute`",
    "C": "C native async submit + poll 5 ms",
    "D": "D Judge0 `POST /submissions?wait=true`",
}


def ts(s):
    """RFC 3339 → seconds since the epoch (None if absent)."""
    if not s:
        return None
    s = s.replace("Z", "+00:00")
    # Python 3.11 takes at most 6 fractional digits.
    if "." in s:
        head, rest = s.split(".", 1)
        frac = ""
        i = 0
        while i < len(rest) and rest[i].isdigit():
            frac += rest[i]
            i += 1
        s = f"{head}.{frac[:6]}{rest[i:]}"
    return datetime.fromisoformat(s).timestamp()


class Client:
    """One keep-alive connection; reconnects once if the server closed it."""

    def __init__(self, url, key):
        u = urllib.parse.urlsplit(url)
        self.host, self.port = u.hostname, u.port or 80
        self.key = key
        self.conn = None
        self.requests = 0

    def _connect(self):
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)

    def request(self, method, path, body=None, headers=None):
        h = {"Content-Type": "application/json", "X-API-Key": self.key}
        if headers is not None:
            h = headers
        data = json.dumps(body).encode() if body is not None else None
        for attempt in (0, 1):
            if self.conn is None:
                self._connect()
            try:
                self.conn.request(method, path, body=data, headers=h)
                r = self.conn.getresponse()
                raw = r.read()
                self.requests += 1
                return r.status, raw
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError,
                    http.client.CannotSendRequest, http.client.ResponseNotReady):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise
        raise RuntimeError("unreachable")


NATIVE = {"language": "python", "code": CODE, "mode": "plain", "stdin": STDIN}
PISTON = {"language": "python", "version": "*", "files": [{"content": CODE}], "stdin": STDIN}
JUDGE0 = {"source_code": CODE, "language_id": 71, "stdin": STDIN}
# --judge0-memory-kb / --native-memory-mb add a memory limit to D / to A and C (a control:
# Judge0's default memory_limit, 128000 KB, is 125 MiB, while a native or Piston call
# without one runs under the container's own limit, so interleaved calls make a container
# change its limit back and forth).


def call(c, mode, detail=True):
    """Runs one call; returns (client ms, ok, info dict of the server's own numbers)."""
    info = {}
    t0 = time.perf_counter_ns()
    if mode == "A":
        st, raw = c.request("POST", "/v1/execute", NATIVE)
        ms = (time.perf_counter_ns() - t0) / 1e6
        j = json.loads(raw) if raw else {}
        ok = st == 200 and j.get("stdout") == EXPECTED
        info = {"server": j.get("durationMs"), "queue": j.get("queueMs")}
    elif mode == "B":
        st, raw = c.request("POST", "/api/v2/execute", PISTON)
        ms = (time.perf_counter_ns() - t0) / 1e6
        j = json.loads(raw) if raw else {}
        run = j.get("run") or {}
        ok = st == 200 and run.get("stdout") == EXPECTED
        info = {"server": run.get("wall_time")}
    elif mode == "C":
        st, raw = c.request("POST", "/v1/executions", NATIVE)
        j = json.loads(raw) if raw else {}
        eid = j.get("executionId")
        polls = 0
        while eid and j.get("status") not in FINAL:
            time.sleep(0.005)
            st, raw = c.request("GET", f"/v1/executions/{eid}")
            polls += 1
            j = json.loads(raw) if raw else {}
            if st != 200:
                break
        ms = (time.perf_counter_ns() - t0) / 1e6
        res = j.get("result") or {}
        ok = j.get("status") == "completed" and res.get("stdout") == EXPECTED
        info = {"server": res.get("durationMs"), "queue": res.get("queueMs"), "polls": polls,
                **times(j)}
    elif mode == "D":
        h = {"Content-Type": "application/json", "X-Auth-Token": c.key}
        st, raw = c.request("POST", "/submissions?wait=true", JUDGE0, headers=h)
        ms = (time.perf_counter_ns() - t0) / 1e6
        j = json.loads(raw) if raw else {}
        ok = st == 201 and j.get("stdout") == EXPECTED and (j.get("status") or {}).get("id") == 3
        t = j.get("time")
        info = {"server": float(t) * 1000 if t is not None else None}
        if detail and j.get("token"):
            st2, raw2 = c.request("GET", f"/v1/executions/{j['token']}")
            if st2 == 200:
                e = json.loads(raw2)
                res = e.get("result") or {}
                info.update(times(e))
                info["server_native"] = res.get("durationMs")
                info["queue"] = res.get("queueMs")
    else:
        raise ValueError(mode)
    if not ok:
        info["error"] = f"{st} {raw[:200]!r}"
    return ms, ok, info


def times(j):
    c, s, d = ts(j.get("createdAt")), ts(j.get("startedAt")), ts(j.get("completedAt"))
    out = {}
    if c is not None and s is not None:
        out["claim"] = (s - c) * 1000
    if c is not None and d is not None:
        out["lifetime"] = (d - c) * 1000
    return out


def pct(xs, p):
    xs = sorted(x for x in xs if x is not None)
    if not xs:
        return None
    k = (len(xs) - 1) * p / 100
    f = int(k)
    c = min(f + 1, len(xs) - 1)
    return xs[f] + (xs[c] - xs[f]) * (k - f)


def fmt(x, d=2):
    return "–" if x is None else f"{x:.{d}f}"


class Rec:
    def __init__(self):
        self.ms = {m: [] for m in MODES}
        self.info = {m: [] for m in MODES}
        self.errors = {m: 0 for m in MODES}
        self.samples = {m: None for m in MODES}
        self.lock = threading.Lock()

    def add(self, mode, ms, ok, info):
        with self.lock:
            if ok:
                self.ms[mode].append(ms)
                self.info[mode].append(info)
            else:
                self.errors[mode] += 1
                if self.samples[mode] is None:
                    self.samples[mode] = info.get("error")


def latency_table(rec, title):
    print(f"### {title}\n")
    print("| mode | calls | errors | p50 ms | p90 ms | p99 ms | mean ms | max ms |")
    print("|---|---|---|---|---|---|---|---|")
    for m in MODES:
        xs = rec.ms[m]
        mean = sum(xs) / len(xs) if xs else None
        print(f"| {NAMES[m]} | {len(xs)} | {rec.errors[m]} | {fmt(pct(xs, 50))} | "
              f"{fmt(pct(xs, 90))} | {fmt(pct(xs, 99))} | {fmt(mean)} | "
              f"{fmt(max(xs) if xs else None)} |")
    print()
    for m in MODES:
        if rec.samples[m]:
            print(f"- first error of {m}: `{rec.samples[m]}`")
    print("| ratio | p50 | p90 | p99 |")
    print("|---|---|---|---|")
    for a, b in (("B", "A"), ("D", "C"), ("D", "A"), ("C", "A")):
        cells = []
        for p in (50, 90, 99):
            x, y = pct(rec.ms[a], p), pct(rec.ms[b], p)
            cells.append(fmt(x / y if x and y else None, 3))
        print(f"| {a}/{b} | " + " | ".join(cells) + " |")
    print()


def server_table(rec):
    print("### Where the time goes (medians, ms)\n")
    print("| mode | client p50 | server-reported run p50 | queueMs p50 | client − run p50 "
          "(per call, median) | created→started p50 | created→completed p50 | polls p50 |")
    print("|---|---|---|---|---|---|---|---|")
    for m in MODES:
        xs, inf = rec.ms[m], rec.info[m]
        run = [i.get("server") for i in inf]
        gap = [x - i["server"] for x, i in zip(xs, inf) if i.get("server") is not None]
        print(f"| {m} | {fmt(pct(xs, 50))} | {fmt(pct(run, 50))} | "
              f"{fmt(pct([i.get('queue') for i in inf], 50))} | {fmt(pct(gap, 50))} | "
              f"{fmt(pct([i.get('claim') for i in inf], 50))} | "
              f"{fmt(pct([i.get('lifetime') for i in inf], 50))} | "
              f"{fmt(pct([i.get('polls') for i in inf], 50), 0)} |")
    print()
    ga = pct([x - i["server"] for x, i in zip(rec.ms["A"], rec.info["A"])
              if i.get("server") is not None], 50)
    gb = pct([x - i["server"] for x, i in zip(rec.ms["B"], rec.info["B"])
              if i.get("server") is not None], 50)
    if ga is not None and gb is not None:
        print(f"Piston translation overhead (median client − run, B minus A): "
              f"{gb - ga:+.2f} ms\n")


def prev_table(rec):
    print("### Sequential p50 ms by the mode called just before\n")
    print("| mode | after A | after B | after C | after D |")
    print("|---|---|---|---|---|")
    for m in MODES:
        cells = []
        for q in MODES:
            xs = [x for x, i in zip(rec.ms[m], rec.info[m]) if i.get("prev") == q]
            cells.append(f"{fmt(pct(xs, 50))} (n={len(xs)})" if xs else "–")
        print(f"| {m} | " + " | ".join(cells) + " |")
    print()


def sequential(args):
    c = Client(args.url, args.key)
    rec = Rec()
    total = args.warmup + args.n
    prev = None
    t0 = time.perf_counter()
    for i in range(total):
        for m in ORDERS[i % len(ORDERS)]:
            ms, ok, info = call(c, m, detail=i >= args.warmup)
            if i >= args.warmup:
                info["prev"] = prev
                rec.add(m, ms, ok, info)
            elif not ok:
                print(f"warm-up call {m} failed: {info.get('error')}", file=sys.stderr)
            prev = m
    wall = time.perf_counter() - t0
    return rec, wall, c.requests


def concurrent(args, modes_of_worker, seconds):
    rec = Rec()
    stop = time.perf_counter() + seconds
    reqs = [0] * args.concurrency

    def worker(w):
        c = Client(args.url, args.key)
        modes = modes_of_worker(w)
        i = 0
        while time.perf_counter() < stop:
            m = modes[i % len(modes)]
            ms, ok, info = call(c, m, detail=False)
            rec.add(m, ms, ok, info)
            i += 1
        reqs[w] = c.requests

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(w,)) for w in range(args.concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return rec, time.perf_counter() - t0, sum(reqs)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--url", default="http://127.0.0.1:8080")
    ap.add_argument("--key", required=True)
    ap.add_argument("--n", type=int, default=300, help="measured calls per mode")
    ap.add_argument("--warmup", type=int, default=30, help="unmeasured calls per mode")
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--mix-seconds", type=float, default=0,
                    help="concurrent mixed phase length (0: skip)")
    ap.add_argument("--solo-seconds", type=float, default=0,
                    help="concurrent one-mode phases, each this long (0: skip)")
    ap.add_argument("--solo-rounds", type=int, default=2)
    ap.add_argument("--solo-modes", default="ABCD",
                    help="the modes of the one-mode phases (e.g. B for profiling B alone)")
    ap.add_argument("--judge0-memory-kb", type=int, default=None,
                    help="control: send this memory_limit with D")
    ap.add_argument("--native-memory-mb", type=int, default=None,
                    help="control: send this memoryLimitMb with A and C")
    args = ap.parse_args()
    if args.judge0_memory_kb is not None:
        JUDGE0["memory_limit"] = args.judge0_memory_kb
    if args.native_memory_mb is not None:
        NATIVE["memoryLimitMb"] = args.native_memory_mb

    print(f"## compat.py: {args.url}, n={args.n}, warmup={args.warmup}, "
          f"judge0 memory_limit={args.judge0_memory_kb}, native memoryLimitMb="
          f"{args.native_memory_mb}\n")
    if args.n > 0:
        rec, wall, reqs = sequential(args)
        latency_table(rec, f"Sequential, one client, interleaved ({wall:.1f} s, "
                           f"{reqs} HTTP requests)")
        server_table(rec)
        prev_table(rec)

    if args.mix_seconds > 0:
        # Worker w goes through the 24 orders from the (6w)-th on: every mode follows every
        # other equally often on each connection.
        rec, wall, reqs = concurrent(
            args, lambda w: [m for k in range(24) for m in ORDERS[(k + 6 * w) % 24]],
            args.mix_seconds)
        calls = sum(len(rec.ms[m]) + rec.errors[m] for m in MODES)
        latency_table(rec, f"Concurrent mix, {args.concurrency} clients, {wall:.1f} s: "
                           f"{calls / wall:.1f} calls/s ({reqs / wall:.1f} HTTP requests/s)")

    if args.solo_seconds > 0:
        per = {m: [] for m in MODES}
        lat = {m: [] for m in MODES}
        solo = [m for m in MODES if m in args.solo_modes.upper()]
        for _ in range(args.solo_rounds):
            for m in solo:
                rec, wall, reqs = concurrent(args, lambda w, m=m: [m], args.solo_seconds)
                per[m].append((len(rec.ms[m]) / wall, reqs / wall, rec.errors[m]))
                lat[m].extend(rec.ms[m])
        print(f"### One mode at a time, {args.concurrency} clients, "
              f"{args.solo_rounds} × {args.solo_seconds:g} s each\n")
        print("| mode | calls/s (per round) | mean calls/s | HTTP req/s | errors | p50 ms | p90 ms | p99 ms |")
        print("|---|---|---|---|---|---|---|---|")
        base = {}
        for m in solo:
            rates = [r for r, _, _ in per[m]]
            mean = sum(rates) / len(rates)
            base[m] = mean
            print(f"| {NAMES[m]} | {', '.join(f'{r:.1f}' for r in rates)} | {mean:.1f} | "
                  f"{sum(h for _, h, _ in per[m]) / len(per[m]):.1f} | "
                  f"{sum(e for _, _, e in per[m])} | {fmt(pct(lat[m], 50))} | "
                  f"{fmt(pct(lat[m], 90))} | {fmt(pct(lat[m], 99))} |")
        print()
        ratios = [f"{a}/{b} {base[a] / base[b]:.3f}" for a, b in (("B", "A"), ("D", "C"), ("D", "A"))
                  if a in base and b in base and base[b]]
        if ratios:
            print("Throughput ratios: " + ", ".join(ratios) + "\n")


if __name__ == "__main__":
    main()
