#!/usr/bin/env python3
"""What tenant affinity costs, against a running gateway (loadtest/tenants.sh starts one).

    tenants.py URL HS256_SECRET [TENANTS]

Mints one HS256 JWT per tenant (claim `cb.tenant`) and measures, for Python `result = 1`:
  warm      p50 of 50 calls of one tenant that already holds a container;
  paced     p50 of the first call of 20 new tenants, one every 1.5 s: each claims a fresh
            container from the shared idle set, which the warmer refills in between;
  burst     p50/p90 of the first call of TENANTS new tenants back to back, then each
            tenant's second call: the shared set runs out, idle containers of earlier
            tenants are reclaimed, and new ones start cold;
  created   containers the pool created during the burst (lifecycle.created).
"""
import base64, hashlib, hmac, json, statistics, sys, time, urllib.request

url, secret = sys.argv[1], sys.argv[2].encode()
tenants = int(sys.argv[3]) if len(sys.argv) > 3 else 100
run_id = str(int(time.time()))


def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def token(tenant):
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    claims = {"sub": tenant, "exp": int(time.time()) + 3600, "iss": "codebeaker-bench", "aud": "codebeaker-api",
              "cb": {"tenant": tenant, "scopes": ["execute", "admin"], "rate_per_second": 100000,
                     "burst": 100000, "max_concurrent": 100}}
    body = b64(json.dumps(claims).encode())
    sig = b64(hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest())
    return f"{head}.{body}.{sig}"


def call(tok):
    req = urllib.request.Request(url + "/v1/execute", method="POST",
                                 data=json.dumps({"language": "python", "code": "result = 1"}).encode(),
                                 headers={"content-type": "application/json", "authorization": f"Bearer {tok}"})
    t = time.perf_counter()
    with urllib.request.urlopen(req) as r:
        body = json.load(r)
    ms = (time.perf_counter() - t) * 1000
    assert body["success"], body
    return ms, body


def pool():
    tok = token("bench-observer")
    req = urllib.request.Request(url + "/v1/languages", headers={"authorization": f"Bearer {tok}"})
    with urllib.request.urlopen(req) as r:
        return next(l for l in json.load(r) if l["name"] == "python")["pool"]


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))]


warm_tok = token(f"warm-{run_id}")
call(warm_tok)
warm = [call(warm_tok)[0] for _ in range(50)]
print(f"warm call of a tenant holding a container: p50 {statistics.median(warm):.1f} ms", flush=True)

paced = []
for i in range(20):
    time.sleep(1.5)
    paced.append(call(token(f"paced-{run_id}-{i}"))[0])
print(f"first call of a new tenant, paced (shared set refilled): p50 {statistics.median(paced):.1f} ms, "
      f"p90 {pct(paced, 0.9):.1f} ms ({statistics.median(paced) / statistics.median(warm):.2f}x warm)", flush=True)

time.sleep(2)
before = pool()
toks = [token(f"burst-{run_id}-{i}") for i in range(tenants)]
first, ids = [], set()
for t in toks:
    ms, body = call(t)
    first.append(ms)
    ids.add(body["containerId"])
second = [call(t)[0] for t in toks]
after = pool()
created = after["lifecycle"]["created"] - before["lifecycle"]["created"]
reclaimed = after["lifecycle"]["retiredReclaimed"] - before["lifecycle"]["retiredReclaimed"]
print(f"{tenants} new tenants back to back: first call p50 {statistics.median(first):.1f} ms, p90 {pct(first, 0.9):.1f} ms; "
      f"second call p50 {statistics.median(second):.1f} ms", flush=True)
print(f"containers: {len(ids)} distinct served the first calls, {created} created, {reclaimed} reclaimed; "
      f"pool now total {after['total']}, tenants {after['tenants']}, max_size {after['maxSize']}, share {after['tenantShare']}", flush=True)
