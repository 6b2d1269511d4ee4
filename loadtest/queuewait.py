#!/usr/bin/env python3
"""Prints the queue-wait histogram of one language between two /metrics scrapes.

    queuewait.py BEFORE AFTER LANGUAGE

BEFORE and AFTER are saved bodies of the gateway's /metrics; the difference of the
cumulative `codebeaker_queue_wait_seconds` buckets is what the run in between recorded.
"""
import re
import sys

PAT = re.compile(r'^codebeaker_queue_wait_seconds_bucket\{(?P<labels>[^}]*)\} (?P<v>\S+)$')


def buckets(path, lang):
    out = {}
    for line in open(path):
        m = PAT.match(line.strip())
        if not m or f'language="{lang}"' not in m["labels"]:
            continue
        le = re.search(r'le="([^"]+)"', m["labels"]).group(1)
        out[le] = float(m["v"])
    return out


before, after, lang = sys.argv[1], sys.argv[2], sys.argv[3]
b, a = buckets(before, lang), buckets(after, lang)
total = a.get("+Inf", 0) - b.get("+Inf", 0)
if total <= 0:
    print(f"queue wait ({lang}): no samples")
    sys.exit(0)
cells, prev = [], 0.0
for le, v in sorted(a.items(), key=lambda kv: float(kv[0])):
    cum = v - b.get(le, 0)
    if cum - prev > 0:
        label = f"≤{float(le) * 1000:g} ms" if le != "+Inf" else "> 30 s"
        cells.append(f"{label}: {100 * (cum - prev) / total:.1f}%")
    prev = cum
print(f"queue wait ({lang}, {total:.0f} calls): " + ", ".join(cells))
