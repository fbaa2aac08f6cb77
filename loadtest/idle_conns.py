#!/usr/bin/env python3
"""Idle keep-alive connections and what they cost a proxy in resident memory.

Opens N client connections to a proxy, sends one request on each (HTTP/1.1, or HTTP/2 with
--h2), reads the whole response, then keeps every connection open and silent. The RSS of the
proxy's processes (summed: nginx master + workers) is read before the first connection and
after the last one has settled; the difference divided by N is the cost of one idle keep-alive
connection. Prints one JSON line.

The figure is anonymous memory (RssAnon): VmRSS also counts pages of the executable read in on
first use, which is not a per-connection cost (both are printed). A warm-up of 100
connections, closed again, runs the same code paths before the first reading.

    idle_conns.py --port 18001 --pids 1234 -n 10000 [--tls] [--h2] [--src 127.0.0.2]

With --watch SECONDS the reading is watched instead of taken once: RssAnon is sampled every
--every seconds from the first connection until SECONDS after the last response, and the JSON
line adds the burst's peak, the series (seconds after the last response, KiB per connection),
the steady figure (mean of the last second; it is also `kib_per_conn`) and `settle_s`: the
first moment from which every later sample stays within --tolerance KiB per connection of
steady (0 if it never rose above that after the last response).

Needs no third-party module: HTTP/2 is spoken by hand (preface, SETTINGS, one HEADERS frame
with static-table HPACK, SETTINGS ACK), enough for a proxy to serve one stream.
"""
import argparse, json, resource, socket, ssl, struct, sys, threading, time

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def rss_kb(pids, field="VmRSS"):
    total = 0
    for p in pids:
        with open(f"/proc/{p}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    total += int(line.split()[1])
    return total


def read_h1(s):
    """Reads one response with a Content-Length (or chunked ending in 0\\r\\n\\r\\n)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(4096)
        if not chunk:
            raise ConnectionError("closed before the response head")
        buf += chunk
    head, body = buf.split(b"\r\n\r\n", 1)
    if not head.startswith(b"HTTP/1.1 200"):
        raise ConnectionError(f"unexpected response: {head[:40]!r}")
    length = None
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while (length is not None and len(body) < length) or (length is None and not body.endswith(b"0\r\n\r\n")):
        chunk = s.recv(4096)
        if not chunk:
            raise ConnectionError("closed mid-body")
        body += chunk


def frame(kind, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def h2_request(host):
    # :method GET, :scheme (http|https is not checked by proxies here: static 6 = http), :path /,
    # :authority literal without indexing (name index 1).
    auth = host.encode()
    block = bytes([0x82, 0x86, 0x84, 0x01, len(auth)]) + auth
    return PREFACE + frame(4, 0, 0) + frame(1, 0x5, 1, block)


def read_h2(s):
    """Reads frames until stream 1 ends; acknowledges the server's SETTINGS."""
    buf = b""
    while True:
        while len(buf) < 9:
            chunk = s.recv(16384)
            if not chunk:
                raise ConnectionError("closed before the response ended")
            buf += chunk
        length = int.from_bytes(buf[:3], "big")
        kind, flags = buf[3], buf[4]
        stream = int.from_bytes(buf[5:9], "big") & 0x7FFFFFFF
        while len(buf) < 9 + length:
            chunk = s.recv(16384)
            if not chunk:
                raise ConnectionError("closed mid-frame")
            buf += chunk
        buf = buf[9 + length:]
        if kind == 4 and not flags & 1:
            s.sendall(frame(4, 1, 0))
        if kind == 7:
            raise ConnectionError("GOAWAY")
        if stream == 1 and kind in (0, 1) and flags & 1:
            return


def open_one(args, ctx):
    raw = socket.create_connection((args.host, args.port), timeout=10, source_address=(args.src, 0))
    s = ctx.wrap_socket(raw, server_hostname=args.sni) if ctx else raw
    if args.h2:
        s.sendall(h2_request(args.sni))
        read_h2(s)
    else:
        s.sendall(f"GET / HTTP/1.1\r\nHost: {args.sni}\r\n\r\n".encode())
        read_h1(s)
    return s


class Sampler(threading.Thread):
    """RssAnon of the pids every `every` seconds, as (monotonic time, kB), until stopped."""

    def __init__(self, pids, every):
        super().__init__(daemon=True)
        self.pids, self.every, self.samples, self.stop = pids, every, [], threading.Event()

    def run(self):
        while not self.stop.is_set():
            self.samples.append((time.monotonic(), rss_kb(self.pids, "RssAnon")))
            self.stop.wait(self.every)


def watched(samples, before, n, t_last, tolerance):
    """The watch's figures from the samples (see the module doc)."""
    per = lambda kb: (kb - before) / n
    after = [(t - t_last, per(kb)) for t, kb in samples if t >= t_last]
    last_second = [k for t, k in after if t >= after[-1][0] - 1.0] or [after[-1][1]]
    steady = sum(last_second) / len(last_second)
    settle = 0.0
    for t, k in after:
        if k > steady + tolerance:
            settle = None
        elif settle is None:
            settle = t
    return dict(peak_kib_per_conn=round(max(per(kb) for _, kb in samples), 3), steady_kib_per_conn=round(steady, 3),
                settle_s=round(settle if settle is not None else after[-1][0], 2),
                kib_per_conn_at_2s=round(min(after, key=lambda s: abs(s[0] - 2.0))[1], 3),
                series=[[round(t, 2), round(k, 3)] for t, k in after])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--pids", required=True, help="comma- or space-separated pids whose RSS is summed")
    ap.add_argument("-n", type=int, default=10000)
    ap.add_argument("--tls", action="store_true")
    ap.add_argument("--h2", action="store_true")
    ap.add_argument("--sni", default="localhost")
    ap.add_argument("--src", default="127.0.0.1", help="source address (spread runs over 127.0.0.x to dodge TIME_WAIT)")
    ap.add_argument("--settle", type=float, default=3.0, help="seconds between the last connection and each reading")
    ap.add_argument("--label", default="")
    ap.add_argument("--watch", type=float, default=0, help="seconds to sample RssAnon after the last response")
    ap.add_argument("--every", type=float, default=0.1, help="sampling period of --watch, seconds")
    ap.add_argument("--tolerance", type=float, default=0.25, help="KiB per connection that counts as settled")
    ap.add_argument("--hold", type=float, default=0, help="seconds to keep the connections open after the reading")
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if args.n + 100 > hard:
        sys.exit(f"need {args.n + 100} file descriptors, the hard limit is {hard}")
    pids = [int(p) for p in args.pids.replace(",", " ").split()]
    ctx = None
    if args.tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.set_alpn_protocols(["h2"] if args.h2 else ["http/1.1"])
    for s in [open_one(args, ctx) for _ in range(min(100, args.n))]:
        s.close()
    time.sleep(args.settle)
    before, before_rss = rss_kb(pids, "RssAnon"), rss_kb(pids)
    sampler = Sampler(pids, args.every)
    if args.watch:
        sampler.start()
    t0 = time.time()
    conns = [open_one(args, ctx) for _ in range(args.n)]
    opened_s = time.time() - t0
    t_last = time.monotonic()
    time.sleep(args.watch or args.settle)
    after, after_rss = rss_kb(pids, "RssAnon"), rss_kb(pids)
    watch = {}
    if args.watch:
        sampler.stop.set()
        sampler.join()
        watch = watched(sampler.samples, before, args.n, t_last, args.tolerance)
        after = before + round(watch["steady_kib_per_conn"] * args.n)
    if args.hold:
        # Keeps every connection open a while longer, for whatever else is watching the proxy.
        print("reading taken; holding", file=sys.stderr, flush=True)
        time.sleep(args.hold)
    # Every connection must still be open: a proxy that closed them would look cheap.
    alive = 0
    for s in conns:
        try:
            s.setblocking(False)
            alive += 1 if s.recv(1) else 0
        except (BlockingIOError, ssl.SSLWantReadError):
            alive += 1
        except OSError:
            pass
    for s in conns:
        s.close()
    out = dict(label=args.label, n=args.n, tls=args.tls, h2=args.h2, rss_before_kb=before, rss_after_kb=after,
               kib_per_conn=round((after - before) / args.n, 3), vmrss_before_kb=before_rss,
               vmrss_after_kb=after_rss, vmrss_kib_per_conn=round((after_rss - before_rss) / args.n, 3),
               alive=alive, open_s=round(opened_s, 1), **watch)
    print(json.dumps(out))
    if alive != args.n:
        sys.exit(f"only {alive} of {args.n} connections were still open")


if __name__ == "__main__":
    main()
