#!/usr/bin/env bash
# Package variants (BENCHMARKS.md, run S): per-call latency on the default images and on
# the variants, with and without the heavy imports. Needs `make images VARIANTS="python-data javascript-libs"`.
set -euo pipefail
cd "$(dirname "$0")/.."
PORT=18095 INSTANCE=bench-variants LANGS="python javascript" MIN_IDLE=2 OUT=$(mktemp -d)
. loadtest/gateway.sh
start_gateway
python3 - "$PORT" "$API_KEY" <<'PY'
import json, statistics, sys, time, urllib.request
port, key = sys.argv[1], sys.argv[2]
def call(body):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/execute", data=json.dumps(body).encode(), method="POST",
        headers={"content-type": "application/json", "x-api-key": key})
    t = time.perf_counter()
    with urllib.request.urlopen(req) as r: b = json.load(r)
    assert b["success"], b
    return (time.perf_counter() - t) * 1000, b
cases = [
 ("python default, result = 1", {"language": "python", "code": "result = 1"}),
 ("python-data, result = 1", {"language": "python", "code": "result = 1", "packages": ["numpy"]}),
 ("python-data, import numpy", {"language": "python", "code": "import numpy as np\nresult = int(np.arange(10).sum())", "packages": ["numpy"]}),
 ("python-data, import pandas", {"language": "python", "code": "import pandas as pd\nresult = int(pd.Series([1,2,3]).sum())", "packages": ["pandas"]}),
 ("javascript default, result = 1", {"language": "javascript", "code": "result = 1"}),
 ("javascript-libs, require lodash", {"language": "javascript", "code": "const _ = require('lodash'); result = _.sum([1,2]);", "packages": ["lodash"]}),
]
for name, body in cases:
    first, _ = call(body)
    xs = [call(body)[0] for _ in range(40)]
    print(f"{name}: first {first:.0f} ms, then p50 {statistics.median(xs):.1f} ms, p90 {sorted(xs)[35]:.1f} ms", flush=True)
PY
