#!/usr/bin/env python3
"""One sample line (JSON) from a wrk or h2load output: requests, errors, proxy CPU seconds."""
import json, re, sys

raw, mode, target, rep, ticks, hz = sys.argv[1:]
text = open(raw).read()
proxy_s = int(ticks) / float(hz)
m = re.search(r"(\d+) requests in ([\d.]+)(m?s)", text)  # wrk
if m:
    requests = int(m.group(1))
    secs = float(m.group(2)) / (1000 if m.group(3) == "ms" else 1)
    errors = sum(int(x) for x in re.findall(r"Non-2xx or 3xx responses: (\d+)", text))
    errors += sum(int(x) for x in re.findall(r"(?:connect|read|write|timeout) (\d+)", text))
else:  # h2load
    m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored", text)
    if not m:
        sys.exit(f"{raw}: neither wrk nor h2load output")
    requests, errors = int(m.group(4)), int(m.group(5)) + int(m.group(6))
    t = re.search(r"finished in ([\d.]+)(m?s)", text)
    secs = float(t.group(1)) / (1000 if t.group(2) == "ms" else 1) if t else 0.0
out = dict(mode=mode, target=target, rep=int(rep), requests=requests, errors=errors, duration_s=secs,
           rps=requests / secs if secs else None, proxy_cpu_s=proxy_s,
           value=requests / proxy_s if proxy_s > 0 else None, unit="requests per proxy CPU-s")
print(json.dumps(out))
print(f"{mode:9} {target:10} rep {rep}: {requests} requests, {errors} errors, {out['rps'] or 0:.0f}/s, "
      f"proxy CPU {proxy_s:.2f} s → {out['value'] or 0:.0f} per CPU-s", file=sys.stderr)
