#!/usr/bin/env python3
"""Offline checks of the trace and log pipeline in docker/ (no Docker engine).

compose.yaml runs Jaeger all-in-one with OTLP on and Vector; switchyard.toml
sends spans to Jaeger's OTLP/HTTP port and links its UI; Vector's config is
wired (every input names a defined component), reads only the labelled
Switchyard containers, keeps stdout JSON lines that are access log lines and
writes them to a file sink on the mounted volume. The remap program cannot be
run without Vector, so its conditions are checked against a real access log
line here (docker/access-log-example.json, written by the proxy).

Usage (from the repo root): python3 docker/check_observability.py
"""
import json
import sys
import tomllib

import yaml

errors = []


def check(ok, msg):
    if not ok:
        errors.append(msg)


compose = yaml.safe_load(open("docker/compose.yaml"))
svc = compose["services"]
jaeger = svc.get("jaeger", {})
check(str(jaeger.get("image", "")).startswith("jaegertracing/all-in-one:"), "jaeger: all-in-one image")
check(jaeger.get("environment", {}).get("COLLECTOR_OTLP_ENABLED") == "true", "jaeger: COLLECTOR_OTLP_ENABLED")
label = "org.switchyard.access-log"
for name in ("switchyard", "switchyard-1"):
    check(svc[name].get("labels", {}).get(label) == "true", f"{name}: label {label} for the log pipeline")
vector = svc.get("vector", {})
mounts = vector.get("volumes", [])
check(any(m.startswith("./vector/vector.yaml:") for m in mounts), "vector: config mounted")
check(any(m.startswith("/var/run/docker.sock:") for m in mounts), "vector: docker socket (docker_logs source)")

for path in ("docker/switchyard.toml", "docker/switchyard-fleet.toml"):
    cfg = tomllib.load(open(path, "rb"))
    tr = cfg.get("tracing", {})
    check(tr.get("endpoint") == "http://jaeger:4318", f"{path}: tracing.endpoint is Jaeger's OTLP/HTTP port")
    check(str(tr.get("ui", "")).endswith(":16686"), f"{path}: tracing.ui is Jaeger's UI")
    log = cfg.get("access_log", {})
    check(log.get("enabled", True) and "path" not in log and log.get("format", "json") == "json",
          f"{path}: access log as JSON on stdout")

v = yaml.safe_load(open("docker/vector/vector.yaml"))
components = {**v.get("sources", {}), **v.get("transforms", {})}
for kind in ("transforms", "sinks"):
    for name, c in v.get(kind, {}).items():
        for i in c.get("inputs", []):
            check(i in components, f"vector: {kind}.{name} input {i!r} is not defined")
src = v["sources"]["switchyard_stdout"]
check(src["type"] == "docker_logs" and f"{label}=true" in src.get("include_labels", []), "vector: labelled containers")
remap = v["transforms"]["access_log"]
check(remap["type"] == "remap" and remap.get("drop_on_abort") is True, "vector: remap drops what it aborts")
prog = remap["source"]
key = "http.request.method"
check('.stream != "stdout"' in prog and "parse_json(.message)" in prog and f'line."{key}"' in prog,
      "vector: remap keeps stdout access log lines only")
sink = v["sinks"]["access_log_files"]
check(sink["type"] == "file" and sink["path"].startswith("/var/log/switchyard/"), "vector: file sink")
check(any(m.startswith("access-logs:/var/log/switchyard") for m in mounts), "vector: file sink on a volume")

# The remap conditions against a line the proxy wrote.
line = json.loads(open("docker/access-log-example.json").read())
check(key in line and "trace_id" in line and "request_id" in line, "the example line is an access log line")

if errors:
    print("\n".join(errors), file=sys.stderr)
    sys.exit(1)
print("jaeger (OTLP on), vector (docker_logs -> remap -> file) and switchyard's [tracing]/[access_log] OK")
