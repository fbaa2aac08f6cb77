#!/usr/bin/env python3
"""Check that every metric used by the alert rules and Grafana dashboards is a
Switchyard metric listed in docker/metric-names.txt (one name per line; the
list is meant to be diffed against a live /metrics scrape by a Rust test).

Also checks the PromQL syntax of every dashboard query by feeding the queries
(with Grafana variables substituted) to `promtool check rules`, when promtool
is available.

Run from the repository root: python3 docker/check_metric_names.py
"""
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent
NAMES_FILE = ROOT / "metric-names.txt"
ALERTS = ROOT / "prometheus" / "alerts.yml"
DASHBOARDS = sorted((ROOT / "grafana" / "dashboards").glob("*.json"))
# Series Prometheus synthesizes itself (not exported by Switchyard).
PROMETHEUS_BUILTINS = {"up"}
HISTOGRAMS = {"switchyard_request_duration_seconds", "switchyard_rollback_swap_seconds", "switchyard_principle_compliance",
              "switchyard_fleet_apply_lag_seconds"}
KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring",
            "group_left", "group_right", "inf", "nan", "atan2"}
GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
IDENT = re.compile(r"(?<![\w.$])([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()")


def metric_names(expr):
    """Return the metric names referenced by a PromQL expression."""
    label_values = re.findall(r"label_values\(\s*([a-zA-Z_:][\w:]*)", expr)
    if label_values or expr.strip().startswith(("label_values", "query_result")):
        return set(label_values)
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)   # string literals
    e = re.sub(r"\{[^}]*\}", "", e)                # label matchers
    e = re.sub(r"\[[^\]]*\]", "", e)               # range selectors
    e = GROUPING.sub(" ", e)                        # by (...), on (...), ...
    return {m for m in IDENT.findall(e) if m.lower() not in KEYWORDS}


def base_name(m):
    for suffix in ("_bucket", "_sum", "_count"):
        if m.endswith(suffix) and m[: -len(suffix)] in HISTOGRAMS:
            return m[: -len(suffix)]
    return m


def dashboard_exprs(d):
    out = []
    def walk(panels):
        for p in panels:
            for t in p.get("targets", []):
                if t.get("expr"):
                    out.append((p.get("title", "?"), t["expr"]))
            walk(p.get("panels", []))
    walk(d.get("panels", []))
    for a in d.get("annotations", {}).get("list", []):
        if a.get("expr"):
            out.append(("annotation " + a.get("name", "?"), a["expr"]))
    for v in d.get("templating", {}).get("list", []):
        q = v.get("query")
        if isinstance(q, dict):
            q = q.get("query")
        if v.get("type") == "query" and q:
            out.append(("variable " + v["name"], q))
    return out


def main():
    allowed = {l.strip() for l in NAMES_FILE.read_text().splitlines() if l.strip()}
    errors = []
    used = set()
    exprs = []  # (where, expr)
    rules = yaml.safe_load(ALERTS.read_text())
    for g in rules["groups"]:
        for r in g["rules"]:
            exprs.append((f"{ALERTS.name}: {r.get('alert') or r.get('record')}", r["expr"]))
    promql_for_syntax = []
    for path in DASHBOARDS:
        d = json.loads(path.read_text())
        for where, e in dashboard_exprs(d):
            exprs.append((f"{path.name}: {where}", e))
            if not e.startswith("label_values"):
                promql_for_syntax.append((f"{path.name}: {where}", e))
    for where, e in exprs:
        names = metric_names(e)
        if not names:
            errors.append(f"{where}: no metric name found in {e!r}")
        for m in names:
            b = base_name(m)
            used.add(b)
            if b not in allowed and b not in PROMETHEUS_BUILTINS:
                errors.append(f"{where}: unknown metric {m!r}")
    unused = sorted(allowed - used)
    print(f"checked {len(exprs)} expressions in {ALERTS.name} and {len(DASHBOARDS)} dashboards; "
          f"{len(used & allowed)}/{len(allowed)} listed metrics used")
    if unused:
        print("  listed but unused: " + ", ".join(unused))

    promtool = shutil.which("promtool")
    if promtool and promql_for_syntax:
        subst = {"$__rate_interval": "1m", "$__range": "1h", "$__interval": "30s",
                 "$service": ".*", "$color": "blue|green"}
        rules = []
        for i, (where, e) in enumerate(promql_for_syntax):
            for k, v in subst.items():
                e = e.replace(k, v)
            rules.append({"record": f"dashboard:query_{i}", "expr": e})
        with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as f:
            yaml.safe_dump({"groups": [{"name": "dashboard-queries", "rules": rules}]}, f)
        res = subprocess.run([promtool, "check", "rules", f.name], capture_output=True, text=True)
        Path(f.name).unlink()
        if res.returncode != 0:
            errors.append("dashboard PromQL syntax:\n" + res.stdout + res.stderr)
        else:
            print(f"promtool parsed {len(rules)} dashboard queries")
    elif not promtool:
        print("promtool not found: skipped dashboard PromQL syntax check")

    for e in errors:
        print("ERROR: " + e, file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
