#!/usr/bin/env python3
"""Render the CodeBeaker chart offline and validate every object against the Kubernetes
JSON schemas (kubernetes-validate, from PyPI).

`helm` is not reachable where this project is built, so this is NOT helm: it renders the
small subset of Go templates the chart uses, and fails loudly on anything else:

  {{ .Values.a.b }}  {{ .Release.Name }}  {{ .Release.Namespace }}  {{ .Chart.AppVersion }}
  {{ .Files.Get "files/x" }}
  pipelines with  quote  toYaml  nindent N  default X
  {{ if X }} / {{ else }} / {{ end }}  with  not X,  and X Y,  eq X "literal"
  whitespace trimming with {{- and -}}

Usage:
  deploy/helm/render.py [--set mode=dind] [--set autoscaling.enabled=true] [--out DIR]
  deploy/helm/render.py --check        # every mode and option combination, validated
"""
import argparse
import copy
import json
import os
import re
import sys

import yaml

CHART = os.path.join(os.path.dirname(os.path.abspath(__file__)), "codebeaker")
TOKEN = re.compile(r"{{(-?)\s*(.*?)\s*(-?)}}", re.S)


class TemplateError(Exception):
    pass


def lookup(ctx, path):
    if not path.startswith("."):
        raise TemplateError(f"unsupported expression {path!r}")
    cur = ctx
    for part in path[1:].split("."):
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        else:
            return None
    return cur


def atom(ctx, tok):
    if tok.startswith('"') and tok.endswith('"'):
        return json.loads(tok)
    if re.fullmatch(r"-?\d+", tok):
        return int(tok)
    return lookup(ctx, tok)


def split_args(expr):
    return re.findall(r'"[^"]*"|\([^)]*\)|\S+', expr)


def evaluate(ctx, expr):
    """A pipeline: first command, then functions applied to the running value."""
    stages = [s.strip() for s in expr.split("|")]
    value = command(ctx, stages[0])
    for stage in stages[1:]:
        args = split_args(stage)
        fn, rest = args[0], args[1:]
        if fn == "quote":
            value = json.dumps("" if value is None else str(value))
        elif fn == "toYaml":
            value = yaml.safe_dump(value, default_flow_style=False, sort_keys=False).rstrip("\n")
        elif fn == "nindent":
            n = int(rest[0])
            text = "" if value is None else str(value).rstrip("\n")
            value = "\n" + "\n".join((" " * n + line) if line else line for line in text.split("\n"))
        elif fn == "default":
            value = value if value not in (None, "", [], {}) else atom(ctx, rest[0])
        else:
            raise TemplateError(f"unsupported function {fn!r}")
    return value


def command(ctx, expr):
    args = split_args(expr)
    head = args[0]
    if head == "not":
        return not truthy(command(ctx, " ".join(args[1:])))
    if head == "and":
        return all(truthy(term(ctx, a)) for a in args[1:])
    if head == "eq":
        return term(ctx, args[1]) == term(ctx, args[2])
    if head == ".Files.Get" and len(args) == 2:
        return open(os.path.join(CHART, json.loads(args[1]))).read()
    if len(args) != 1:
        raise TemplateError(f"unsupported command {expr!r}")
    return atom(ctx, head)


def term(ctx, tok):
    if tok.startswith("(") and tok.endswith(")"):
        return command(ctx, tok[1:-1])
    return atom(ctx, tok)


def truthy(v):
    return v not in (None, False, 0, "", [], {})


def render(text, ctx):
    # Tokenize, applying {{- and -}} trimming.
    parts = []
    pos = 0
    for m in TOKEN.finditer(text):
        literal = text[pos : m.start()]
        if m.group(1) == "-":
            literal = literal.rstrip()
        parts.append(("text", literal))
        parts.append(("tag", m.group(2)))
        pos = m.end()
        if m.group(3) == "-":
            rest = text[pos:]
            pos += len(rest) - len(rest.lstrip())
    parts.append(("text", text[pos:]))

    out = []
    stack = []  # (emitting_before, condition_taken)
    emitting = True
    for kind, value in parts:
        if kind == "text":
            if emitting:
                out.append(value)
            continue
        if value.startswith("if "):
            cond = emitting and truthy(command(ctx, value[3:]))
            stack.append((emitting, cond))
            emitting = cond
        elif value == "else":
            outer, taken = stack[-1]
            emitting = outer and not taken
        elif value == "end":
            emitting, _ = stack.pop()
        elif value.startswith("/*"):
            continue
        elif emitting:
            v = evaluate(ctx, value)
            out.append("" if v is None else str(v))
    if stack:
        raise TemplateError("unclosed {{ if }}")
    return "".join(out)


def set_value(values, assignment):
    key, raw = assignment.split("=", 1)
    cur = values
    *parents, last = key.split(".")
    for p in parents:
        cur = cur.setdefault(p, {})
    cur[last] = yaml.safe_load(raw)


def render_chart(overrides):
    values = yaml.safe_load(open(os.path.join(CHART, "values.yaml")))
    for o in overrides:
        set_value(values, o)
    chart = yaml.safe_load(open(os.path.join(CHART, "Chart.yaml")))
    ctx = {
        "Values": values,
        "Release": {"Name": "codebeaker", "Namespace": "codebeaker"},
        "Chart": {"Name": chart["name"], "Version": chart["version"], "AppVersion": chart["appVersion"]},
    }
    objects = []
    tdir = os.path.join(CHART, "templates")
    for name in sorted(os.listdir(tdir)):
        if not name.endswith(".yaml"):
            continue
        text = render(open(os.path.join(tdir, name)).read(), ctx)
        for doc in yaml.safe_load_all(text):
            if doc:
                objects.append((name, doc))
    return objects


def validate(objects, version):
    import kubernetes_validate

    errors = []
    for name, obj in objects:
        if obj.get("apiVersion", "").startswith("monitoring.coreos.com/"):
            # The Prometheus operator's kinds are CRDs, which kubernetes-validate has no
            # schema for: checked here for what the operator needs.
            errors.extend(f"{name} ({obj.get('kind')}): {e}" for e in check_monitoring(obj))
            continue
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            errors.append(f"{name} ({obj.get('kind')}): {e.message} at {list(e.path)}")
        except Exception as e:  # noqa: BLE001 - schema lookups report missing kinds this way
            errors.append(f"{name} ({obj.get('kind')}): {e}")
    return errors


def check_monitoring(obj):
    """The fields the Prometheus operator reads, for its two kinds used here."""
    kind, spec, errors = obj.get("kind"), obj.get("spec") or {}, []
    if not obj.get("metadata", {}).get("name"):
        errors.append("no metadata.name")
    if kind == "ServiceMonitor":
        if not spec.get("selector", {}).get("matchLabels"):
            errors.append("no spec.selector.matchLabels")
        for ep in spec.get("endpoints") or [None]:
            if not ep or not ep.get("port") or ep.get("path") != "/metrics":
                errors.append(f"endpoint {ep!r} names no port or not /metrics")
    elif kind == "PrometheusRule":
        rules = [r for g in spec.get("groups") or [] for r in g.get("rules") or []]
        if not rules:
            errors.append("no rules")
        for r in rules:
            if not r.get("alert") or not r.get("expr"):
                errors.append(f"rule {r!r} has no alert or expr")
    else:
        errors.append(f"unexpected kind {kind}")
    return errors


CASES = [
    ("daemonset (default)", []),
    ("daemonset, existing secret, no PDB or NetworkPolicy", ["secrets.existingSecret=my-keys", "podDisruptionBudget.enabled=false", "networkPolicy.enabled=false"]),
    ("dind with the HPA", ["mode=dind", "autoscaling.enabled=true"]),
    ("dind, NetworkPolicy from a namespace", ["mode=dind", 'networkPolicy.allowFrom=[{"namespaceSelector": {"matchLabels": {"team": "loopai"}}}]']),
    ("daemonset replicas on Redis", ["shared.redisUrl=redis://redis.codebeaker:6379"]),
    ("dind replicas on Redis", ["mode=dind", "shared.redisUrl=redis://redis.codebeaker:6379"]),
    ("daemonset with the Prometheus operator and Grafana", ["monitoring.serviceMonitor.enabled=true", "monitoring.prometheusRule.enabled=true", "monitoring.grafanaDashboard.enabled=true"]),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--out")
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--kubernetes-version", default="1.30.0")
    args = ap.parse_args()
    try:
        import kubernetes_validate  # noqa: F401
    except ImportError:
        sys.exit("kubernetes-validate is not installed: pip install kubernetes-validate (make test does it in target/py)")
    if not args.check:
        objects = render_chart(args.set)
        text = "\n---\n".join(yaml.safe_dump(o, sort_keys=False) for _, o in objects)
        if args.out:
            os.makedirs(args.out, exist_ok=True)
            open(os.path.join(args.out, "codebeaker.yaml"), "w").write(text)
        else:
            print(text)
        errors = validate(objects, args.kubernetes_version)
        if errors:
            sys.exit("\n".join(errors))
        return
    failed = False
    for label, overrides in CASES:
        objects = render_chart(overrides)
        kinds = sorted(o["kind"] for _, o in objects)
        errors = validate(objects, args.kubernetes_version)
        print(f"{label}: {len(objects)} objects {kinds}: {'ok' if not errors else 'INVALID'}")
        for e in errors:
            print("  " + e)
            failed = True
        # The contract with the gateway: probes, grace, the config it reads.
        for _, o in objects:
            if o["kind"] in ("DaemonSet", "Deployment"):
                spec = o["spec"]["template"]["spec"]
                gw = next(c for c in spec["containers"] if c["name"] == "gateway")
                assert gw["readinessProbe"]["httpGet"]["path"] == "/readyz", label
                assert gw["livenessProbe"]["httpGet"]["path"] == "/healthz", label
                assert spec["terminationGracePeriodSeconds"] >= 30, label
            if o["kind"] == "ConfigMap" and "codebeaker.toml" in o["data"]:
                assert "[server]" in o["data"]["codebeaker.toml"], label
            if o["kind"] == "ConfigMap" and "codebeaker.json" in o["data"]:
                assert json.loads(o["data"]["codebeaker.json"])["panels"], label
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    try:
        main()
    except TemplateError as e:
        sys.exit(f"template error: {e}")
