#!/usr/bin/env python3
"""The table of `loadtest/compare observe`: what the access log and tracing cost.

Reads a results dir (samples.jsonl, meta.json, calibration.jsonl, metrics-<target>.txt,
otlp-sink-access.log, access-log.txt). Medians over the repetitions not flagged busy, as in
compare_table.py (a cell with only busy samples uses them all and is marked `*`). Ratios are
variant / reference: per repetition (both measured within a minute of each other, neither busy)
and their median, for nginx and for Switchyard with both off (`switchyard`).
"""
import json
import re
import statistics
import sys
from pathlib import Path

out = Path(sys.argv[1])
samples = [json.loads(l) for l in (out / "samples.jsonl").read_text().splitlines() if l.strip()]
meta = json.loads((out / "meta.json").read_text())
cal = [json.loads(l) for l in (out / "calibration.jsonl").read_text().splitlines() if l.strip()]
MODE = "pinned" if any(s["mode"] == "pinned" for s in samples) else samples[0]["mode"]
ORDER = ["direct", "nginx", "haproxy", "switchyard"]
targets = sorted({s["target"] for s in samples}, key=lambda t: (ORDER.index(t) if t in ORDER else 9, t))
variants = [t for t in targets if t.startswith("sy-") or t == "switchyard"]
LABEL = {"switchyard": "SY off", "sy-json": "SY JSON log", "sy-text": "SY text log", "sy-before": "SY_BEFORE build"}


def label(t):
    m = re.fullmatch(r"sy-trace(.+)", t)
    return f"SY trace {m.group(1)} %" if m else LABEL.get(t, t)


def rows(target, kind, rep=None):
    return [s for s in samples if (s["mode"], s["target"], s["kind"]) == (MODE, target, kind)
            and (rep is None or s["rep"] == rep)]


def cell(target, kind, field):
    rs = [s for s in rows(target, kind) if s.get(field) is not None]
    quiet = [s for s in rs if not s["busy"]]
    use, flag = (quiet, "") if quiet else (rs, "*")
    return (statistics.median(s[field] for s in use), flag) if use else (None, "")


def paired(a, b, field):
    """a / b within each repetition where neither closed-loop sample was busy; when no repetition
    qualifies, every repetition, flagged `*` (as the medians of all-busy cells)."""
    both = []
    for rep in sorted({s["rep"] for s in samples}):
        x, y = rows(a, "closed", rep), rows(b, "closed", rep)
        if len(x) == 1 == len(y) and x[0].get(field) and y[0].get(field):
            both.append((x[0][field] / y[0][field], x[0]["busy"] or y[0]["busy"]))
    quiet = [r for r, busy in both if not busy]
    return (quiet, "") if quiet else ([r for r, _ in both], "*")


def fmt(v, digits=0, flag=""):
    return "–" if v is None else (f"{v:,.{digits}f}" if digits else f"{v:,.0f}") + flag


def ratios(a, b, field):
    r, flag = paired(a, b, field)
    return "–" if not r else f"{statistics.median(r):.3f}×{flag} ({', '.join(f'{x:.3f}' for x in r)})"


def counter(target, name):
    f = out / f"metrics-{target}.txt"
    if not f.exists():
        return None
    total = 0.0
    for line in f.read_text().splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total += float(line.rsplit(" ", 1)[1])
    return int(total)


busy = [s for s in samples if s["busy"]]
print(f"Run {meta['date']} · {meta['nproc']} cores · {meta['cpu']} · load average before start {meta['loadavg_before']}"
      f" · {MODE} (proxy on CPU 0, loader + upstream + OTLP sink on CPU 1)")
print(f"Calibration (direct, 2 s): {cal[0]['rps']:,.0f} req/s, foreign CPU {cal[0]['foreign_cores']} cores"
      + (" — BUSY MACHINE" if cal[0]["busy"] else ""))
print(f"{len(samples)} samples, {len(busy)} flagged busy and left out of the medians"
      + (f"; stopped early: {meta['stopped']}" if meta.get("stopped") else ""))
errs = [s for s in samples if s["errors"] or any(k != "200" for k in s["status"])]
print(f"samples with non-200 responses or transport errors: {len(errs)}")
print()
print("| metric | " + " | ".join(label(t) for t in targets) + " |")
print("|---|" + "---|" * len(targets))
for name, kind, field, d in (
    (f"max throughput, req/s (closed, {meta['conns']} conns)", "closed", "rps", 0),
    ("requests per proxy CPU-second", "closed", "req_per_cpu_s", 0),
    (f"p50 ms at {meta['rate']} req/s", "open", "p50_ms", 3),
    (f"p99 ms at {meta['rate']} req/s", "open", "p99_ms", 3),
):
    print(f"| {name} | " + " | ".join(fmt(v, d, f) for v, f in (cell(t, kind, field) for t in targets)) + " |")
rss = meta["peak_rss_kb"]
print("| peak RSS MB (whole run) | " + " | ".join(f"{rss[t] / 1024:.1f}" if t in rss else "–" for t in targets) + " |")
print()
print("Ratios, variant ÷ reference: median of the per-repetition ratios (each repetition's values in brackets).")
print()
print("| variant | req per proxy CPU-s ÷ nginx | ÷ SY off | throughput ÷ nginx | ÷ SY off |")
print("|---|---|---|---|---|")
for v in variants:
    print(f"| {label(v)} | {ratios(v, 'nginx', 'req_per_cpu_s')} | "
          + ("1" if v == "switchyard" else ratios(v, "switchyard", "req_per_cpu_s"))
          + f" | {ratios(v, 'nginx', 'rps')} | "
          + ("1" if v == "switchyard" else ratios(v, "switchyard", "rps")) + " |")
print()

print("What each variant wrote (its /metrics at the end of the run, warm-ups included):")
for v in variants:
    req = counter(v, "switchyard_requests_total")
    if req is None:
        print(f"- {label(v)}: no metrics file")
        continue
    line = (f"- {label(v)}: {req:,} requests; spans dropped {counter(v, 'switchyard_trace_spans_dropped_total')}, "
            f"export failures {counter(v, 'switchyard_trace_export_failures_total')}, "
            f"access log lines dropped {counter(v, 'switchyard_access_log_dropped_total')}")
    sink = out / f"otlp-sink-{v}.log"
    if sink.exists():
        posts = [l.split() for l in sink.read_text().splitlines() if l.startswith("POST ")]
        bad = sum(1 for p in posts if p[1] != "200")
        size = sum(int(p[2]) for p in posts if p[2].isdigit())
        line += f"; the collector took {len(posts):,} exports ({bad} not answered 200), {size / 1e6:.1f} MB of spans"
    print(line)
log = out / "access-log.txt"
if log.exists() and log.read_text().strip():
    print(f"- access log files: {log.read_text().strip()}")
print()

print("Targets (requests per proxy CPU-second, paired median against SY off; `*`: busy samples only):")
if "sy-before" in variants:
    r, flag = paired("switchyard", "sy-before", "req_per_cpu_s")
    if r:
        print(f"- {'NOT MEASURED (busy machine)' if flag else 'reported'}: SY off ÷ SY_BEFORE build, no measurable "
              f"change wanted ({statistics.median(r):.3f}×{flag}, {', '.join(f'{x:.3f}' for x in r)})")
for v, floor in (("sy-json", 0.90), ("sy-trace1", 0.97), ("sy-trace100", None)):
    r, flag = paired(v, "switchyard", "req_per_cpu_s")
    if r:
        m = statistics.median(r)
        verdict = "reported" if floor is None else ("HOLDS" if m >= floor else "MISSES")
        if flag:
            verdict = "NOT MEASURED (busy machine)"
        need = "" if floor is None else f" ≥ {floor:.2f} × SY off"
        print(f"- {verdict}: {label(v)}{need} ({m:.3f}×{flag})")
