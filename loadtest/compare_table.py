#!/usr/bin/env python3
"""Turns a loadtest/compare results dir (samples.jsonl, meta.json) into the markdown table.

Medians over the repetitions that were not flagged busy; when every repetition of a cell was busy,
the cell uses them all and is marked with `*`. Ratios are Switchyard / other (higher is better for
throughput, lower is better for latency and RSS).
"""
import json
import statistics
import sys
from pathlib import Path

out = Path(sys.argv[1])
samples = [json.loads(l) for l in (out / "samples.jsonl").read_text().splitlines() if l.strip()]
meta = json.loads((out / "meta.json").read_text())
cal = [json.loads(l) for l in (out / "calibration.jsonl").read_text().splitlines() if l.strip()]


def cell(mode, target, kind, field):
    rows = [s for s in samples if (s["mode"], s["target"], s["kind"]) == (mode, target, kind) and s.get(field) is not None]
    quiet = [s for s in rows if not s["busy"]]
    use, flag = (quiet, "") if quiet else (rows, "*")
    if not use:
        return None, ""
    return statistics.median(s[field] for s in use), flag


def fmt(v, digits=0, flag=""):
    if v is None:
        return "–"
    return (f"{v:,.{digits}f}" if digits else f"{v:,.0f}") + flag


def ratio(a, b, digits=2):
    return "–" if a is None or b in (None, 0) else f"{a / b:.{digits}f}×"


def paired(mode, kind, field, other):
    """Switchyard / other within each repetition where neither sample was busy."""
    out = []
    for rep in sorted({s["rep"] for s in samples}):
        pick = {t: [s for s in samples if (s["mode"], s["target"], s["kind"], s["rep"]) == (mode, t, kind, rep)]
                for t in ("switchyard", other)}
        if all(len(v) == 1 and not v[0]["busy"] and v[0].get(field) for v in pick.values()):
            out.append(pick["switchyard"][0][field] / pick[other][0][field])
    return out


modes = sorted({s["mode"] for s in samples}, key=lambda m: m != "pinned")
targets = [t for t in ["direct", "switchyard", "nginx", "haproxy"] if any(s["target"] == t for s in samples)]
busy = [s for s in samples if s["busy"]]
print(f"Run {meta['date']} · {meta['nproc']} cores · {meta['cpu']} · load average before start {meta['loadavg_before']}"
      + f" · {meta.get('workers', 1)} worker(s) per proxy")
print(f"Calibration (direct, 2 s): {cal[0]['rps']:,.0f} req/s, foreign CPU {cal[0]['foreign_cores']} cores"
      + (" — BUSY MACHINE" if cal[0]["busy"] else ""))
print(f"{len(samples)} samples, {len(busy)} flagged busy (foreign CPU above threshold) and left out of the medians"
      + (f"; stopped early: {meta['stopped']}" if meta.get("stopped") else ""))
errs = [s for s in samples if s["errors"] or any(k not in ("200",) for k in s["status"])]
print(f"samples with non-200 responses or transport errors: {len(errs)}")
print()
for mode in modes:
    print(f"### {mode}" + (" (proxy on CPU 0, loader + upstream on CPU 1)" if mode == "pinned" else " (no affinity)"))
    print()
    print("| metric | " + " | ".join(targets) + " | SY/nginx | SY/HAProxy |")
    print("|---|" + "---|" * (len(targets) + 2))
    rows = [
        ("max throughput, req/s (closed, %d conns)" % meta["conns"], "closed", "rps", 0, "hi"),
        ("requests per proxy CPU-second", "closed", "req_per_cpu_s", 0, "hi"),
        ("p50 ms at %d req/s" % meta["rate"], "open", "p50_ms", 3, "lo"),
        ("p99 ms at %d req/s" % meta["rate"], "open", "p99_ms", 3, "lo"),
    ]
    vals = {}
    for label, kind, field, d, _ in rows:
        line = []
        for t in targets:
            v, f = cell(mode, t, kind, field)
            vals[(field, t)] = v
            line.append(fmt(v, d, f))
        sy, ng, ha = (vals.get((field, t)) for t in ("switchyard", "nginx", "haproxy"))
        print(f"| {label} | " + " | ".join(line) + f" | {ratio(sy, ng)} | {ratio(sy, ha)} |")
    for q in ("p50_ms", "p99_ms"):
        d = vals.get((q, "direct"))
        added = {t: (vals[(q, t)] - d if d is not None and vals.get((q, t)) is not None else None) for t in targets}
        sy, ng, ha = added.get("switchyard"), added.get("nginx"), added.get("haproxy")
        print(f"| added {q[:3]} ms (proxy − direct) | " + " | ".join(fmt(added[t], 3) if t != "direct" else "0" for t in targets)
              + f" | {ratio(sy, ng)} | {ratio(sy, ha)} |")
    rss = meta["peak_rss_kb"]
    print("| peak RSS MB (whole run) | " + " | ".join(
        (f"{rss[t] / 1024:.1f}" if t in rss else "–") for t in targets)
        + f" | {ratio(rss.get('switchyard'), rss.get('nginx'))} | {ratio(rss.get('switchyard'), rss.get('haproxy'))} |")
    print()
    paired_lines = []
    for label, kind, field in (("max throughput", "closed", "rps"), ("requests per proxy CPU-second", "closed", "req_per_cpu_s")):
        parts = []
        for other, name in (("nginx", "SY/nginx"), ("haproxy", "SY/HAProxy")):
            r = paired(mode, kind, field, other)
            if r:
                parts.append(f"{name} {statistics.median(r):.2f}× ({', '.join(f'{x:.2f}' for x in r)})")
        if parts:
            paired_lines.append(f"- {label}: " + "; ".join(parts))
    if paired_lines:
        print("Paired ratios, one per repetition (Switchyard and the other proxy measured within a minute of each other in the")
        print("same repetition; their median is less exposed to drift over the run than the ratio of medians):")
        print("\n".join(paired_lines))
        print()

print("Targets (pinned):")
def v(kind, field, t):
    return cell("pinned", t, kind, field)[0]
checks = []
for other in ("nginx", "haproxy"):
    sy, ot = v("closed", "req_per_cpu_s", "switchyard"), v("closed", "req_per_cpu_s", other)
    if sy and ot:
        checks.append((f"req per proxy CPU-s ≥ 1.2 × {other}", sy >= 1.2 * ot, f"{sy:,.0f} vs {1.2 * ot:,.0f}"))
    sy, ot = v("closed", "rps", "switchyard"), v("closed", "rps", other)
    if sy and ot:
        checks.append((f"max throughput ≥ {other}", sy >= ot, f"{sy:,.0f} vs {ot:,.0f}"))
d50, d99 = v("open", "p50_ms", "direct"), v("open", "p99_ms", "direct")
for q, d in (("p50_ms", d50), ("p99_ms", d99)):
    sy, ng = v("open", q, "switchyard"), v("open", q, "nginx")
    if None not in (sy, ng, d):
        checks.append((f"added {q[:3]} ≤ nginx", sy - d <= ng - d, f"{sy - d:.3f} vs {ng - d:.3f} ms"))
for name, ok, detail in checks:
    print(f"- {'HOLDS' if ok else 'MISSES'}: {name} ({detail})")
