#!/usr/bin/env python3
"""Per-repetition table of one mode's samples: each target's value and Switchyard's ratio to
the others, then medians. `value` is higher-is-better (requests per proxy CPU-s) unless the
samples say `lower_is_better` (idle memory), where the ratio is still Switchyard ÷ other."""
import json, statistics, sys
from collections import defaultdict

rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
if not rows:
    sys.exit("no samples")
variants = sorted({r.get("variant", "") for r in rows})
for variant in variants:
    rs = [r for r in rows if r.get("variant", "") == variant]
    targets = [t for t in ("switchyard", "nginx", "haproxy") if any(r["target"] == t for r in rs)]
    others = [t for t in targets if t != "switchyard"]
    by = defaultdict(dict)
    for r in rs:
        by[r["rep"]][r["target"]] = r["value"]
    unit = rs[0]["unit"]
    print(f"\n### {rs[0]['mode']}{' ' + variant if variant else ''} ({unit})\n")
    print("| rep | " + " | ".join(targets) + "".join(f" | switchyard ÷ {o}" for o in others) + " |")
    print("|---" * (1 + len(targets) + len(others)) + "|")
    ratios = defaultdict(list)
    for rep in sorted(by):
        v = by[rep]
        cells = [f"{v[t]:.2f}" if v.get(t) is not None else "—" for t in targets]
        for o in others:
            if v.get("switchyard") is not None and v.get(o):
                ratios[o].append(v["switchyard"] / v[o])
                cells.append(f"{ratios[o][-1]:.2f} ×")
            else:
                cells.append("—")
        print(f"| {rep} | " + " | ".join(cells) + " |")
    med = [statistics.median([by[r][t] for r in by if by[r].get(t) is not None] or [0]) for t in targets]
    print("| median | " + " | ".join(f"{m:.2f}" for m in med)
          + "".join(f" | {statistics.median(ratios[o]):.2f} ×" if ratios[o] else " | —" for o in others) + " |")
