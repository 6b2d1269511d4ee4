#!/usr/bin/env python3
"""Container start time per language and OCI runtime: `docker run` with the pool's flags
until the agent's `ready` line (median of 5). Needs the runtime images, `make agent`, and
runsc registered with the engine (docs/operations.md, "Stronger isolation")."""
import subprocess, time, statistics, json, sys
import os
bundle = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "target", "agent-bundle"))
res = {}
for lang in ["python", "javascript", "go", "csharp"]:
    for rt in ["runc", "runsc"]:
        ts = []
        for _ in range(5):
            t = time.perf_counter()
            p = subprocess.Popen(["docker", "run", "--rm", "-i", "--runtime", rt, "--network", "none",
                "--read-only", "--tmpfs", "/workspace:exec,uid=1000,gid=1000", "--tmpfs", "/tmp:exec", "--tmpfs", "/cache:exec",
                "-v", f"{bundle}:/opt/codebeaker:ro", "--cap-drop", "ALL", "--cap-add", "SETUID", "--cap-add", "SETGID", "--cap-add", "KILL",
                "--entrypoint", "/opt/codebeaker/codebeaker-agent", f"codebeaker-{lang}:latest", "--language", lang, "--uid", "1000", "--gid", "1000"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            line = p.stdout.readline()
            ts.append((time.perf_counter() - t) * 1000)
            ok = b"ready" in line
            p.kill(); p.wait()
            if not ok:
                print(lang, rt, "no ready line:", line[:200], file=sys.stderr)
        res[(lang, rt)] = statistics.median(ts)
        print(f"{lang} {rt} {statistics.median(ts):.0f} ms (min {min(ts):.0f})", flush=True)
