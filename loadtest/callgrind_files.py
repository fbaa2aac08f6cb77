#!/usr/bin/env python3
"""Self cost (instructions) of a callgrind.out file by source file, inlined code counted in its
own file (callgrind's fi=/fe= records), and with --lines by file:line; divided by N_REQUESTS.
Used by loadtest/profile (CALLGRIND=1).
Usage: callgrind_files.py FILE [N_REQUESTS] [top=45] [--lines [ltop=60]]"""
import sys, re, collections
path = sys.argv[1]; n = int(sys.argv[2]) if len(sys.argv) > 2 and sys.argv[2].isdigit() else 1
lines_mode = '--lines' in sys.argv
names = {'fl': {}, 'fi': {}, 'fe': {}, 'fn': {}}
def name(kind, rest):
    m = re.match(r'\((\d+)\)(?: (.*))?', rest)
    if not m: return rest
    key = 'fl' if kind in ('fl', 'fi', 'fe') else kind
    d = names[key]
    if m.group(2) is not None: d[m.group(1)] = m.group(2)
    return d.get(m.group(1), '?')
cur_fl = cur_file = '?'; skip_next = False; last_line = 0
by_file = collections.Counter(); by_line = collections.Counter()
for raw in open(path, errors='replace'):
    raw = raw.rstrip('\n')
    if not raw: continue
    c = raw[0]
    if c.isdigit() or c in '+-*':
        parts = raw.split()
        pos = parts[0]
        if pos == '*': ln = last_line
        elif pos[0] in '+-': ln = last_line + int(pos)
        else: ln = int(pos)
        last_line = ln
        if skip_next: skip_next = False; continue
        cost = int(parts[1]) if len(parts) > 1 else 0
        by_file[cur_file] += cost
        if lines_mode: by_line[f'{cur_file}:{ln}'] += cost
        continue
    if '=' not in raw: continue
    k, rest = raw.split('=', 1)
    if k == 'fl': cur_fl = cur_file = name('fl', rest)
    elif k in ('fi', 'fe'): cur_file = name(k, rest)
    elif k == 'fn': cur_file = cur_fl; name('fn', rest)
    elif k in ('cfl', 'cfi'): name('fl', rest)
    elif k == 'cfn': name('fn', rest)
    elif k == 'calls': skip_next = True
total = sum(by_file.values())
print(f'total {total/n:.0f} per request')
def short(f):
    f = re.sub(r'.*/registry/src/[^/]+/', '', f); f = re.sub(r'/rustc/[0-9a-f]+/', 'std:', f)
    return re.sub(r'^.*?/src/', 'src/', f) if '/registry/' not in f and f.startswith('/') and '/src/' in f else f
def opt(name, default):
    """`name=N` from the command line, else `default`."""
    return int(dict(a.split('=', 1) for a in sys.argv[2:] if '=' in a).get(name, default))
for f, v in by_file.most_common(opt('top', 45)):
    print(f'{v/n:9.0f}  {short(f)}')
if lines_mode:
    print('--- lines')
    for f, v in by_line.most_common(opt('ltop', 60)): print(f'{v/n:9.0f}  {short(f)}')
