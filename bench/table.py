"""table.py -- prints bench/run.sh's results table and the issue targets.

    table.py RESULTS.tsv HUPS GENERATIONS FANOUT_CONNS FANOUT_DELAY_MS "SETUP LINE" [KEY=VALUE...]

KEY=VALUE (all optional): c10k=FILE (the c10k rows, one line of key=value
pairs each, written by run.sh's c10k_row), up_conns=N (connections of the
"upstream direct" rows), split_async=A/B and split_sync=A/B (the 2-reactor
hookd's calls per reactor, %), c10k_limits=TEXT, c10k_hold_ms=MS; for the
"crash loop" rows: crashes=N (crashes hookd logged during them),
loop_crash="502:N ..." and loop_calm="200:N ..." (how the loops' calls to
/hooks/crash were answered, by status; 000: no answer), loop_s=S (the
seconds each loop ran in all).

RESULTS.tsv: scenario, server, round, req/s, p50 us, p99 us, errors, bad
bodies, server CPU us per call, context switches per call, note -- one line
per wrk run, written by run.sh. A row of the table is the median round of a
server (by req/s; its p50/p99 are that round's), errors are summed over all
rounds, "spread" is (max - min) / median of the rounds' req/s, and the CPU
and context-switch figures are medians over the rounds. Every ratio is
between two rows of this same run.
"""

import statistics
import sys

path, hups, gens, fconns, fdelay, setup = sys.argv[1:7]
hups, gens, fconns, fdelay = int(hups), int(gens), int(fconns), float(fdelay)
ideal = fconns / (fdelay / 1000.0)  # calls/s if every call took exactly the upstream delay
opt = dict(a.split("=", 1) for a in sys.argv[7:] if "=" in a)
up_conns = int(opt.get("up_conns") or 0)
up_ideal = up_conns / (fdelay / 1000.0)  # requests/s of the upstream alone at that concurrency

runs = {}
order = []
with open(path) as f:
    for line in f:
        scen, srv, rnd, rps, p50, p99, err, bad, cpu, sw, mean, note = (
            line.rstrip("\n").split("\t") + [""])[:12]
        key = (scen, srv)
        if key not in runs:
            runs[key] = []
            order.append(key)
        runs[key].append(dict(rps=float(rps), p50=int(p50) / 1000.0, p99=int(p99) / 1000.0,
                              err=int(err), bad=int(bad), cpu=float(cpu), sw=float(sw),
                              mean=int(mean) / 1000.0,
                              note=note))

rows = []
for key in order:
    rr = sorted(runs[key], key=lambda r: r["rps"])
    med = rr[(len(rr) - 1) // 2]  # the lower median: a real round, not an average
    mid = statistics.median(r["rps"] for r in rr)
    failed = any(r["err"] < 0 for r in rr)
    rows.append(dict(scen=key[0], srv=key[1], rps=mid, p50=med["p50"], p99=med["p99"],
                     rounds=[r["rps"] for r in runs[key]],
                     err=-1 if failed else sum(r["err"] for r in rr),
                     bad=sum(r["bad"] for r in rr), note=med["note"], n=len(rr),
                     spread=(rr[-1]["rps"] - rr[0]["rps"]) / mid if mid > 0 else 0.0,
                     p99max=max(r["p99"] for r in rr), mean=med["mean"],
                     cpu=statistics.median(r["cpu"] for r in rr),
                     sw=statistics.median(r["sw"] for r in rr)))


def find(scen, srv):
    for r in rows:
        if r["scen"] == scen and r["srv"] == srv:
            return r
    return None


def ratio(a, b):
    """Median of the per-round ratios: round r of every server of a scenario
    ran back to back, so a disturbance of the machine hits both sides of a
    ratio alike; the ratio of the two medians could pair a calm round with a
    disturbed one."""
    if not a or not b:
        return None
    pairs = [x / y for x, y in zip(a["rounds"], b["rounds"]) if x > 0 and y > 0]
    return statistics.median(pairs) if pairs else None


def fmt(x, suffix="x", digits=2):
    return "%.*f%s" % (digits, x, suffix) if x is not None else "-"


def crash_summary():
    secs = float(opt.get("loop_s") or 0)
    n = int(opt.get("crashes") or 0)
    return "crash calls answered %s; %d crashes (%s/s)" % (
        opt.get("loop_crash") or "-", n, "%.1f" % (n / secs) if secs > 0 else "-")


hdr = ("scenario", "server", "req/s", "spread", "p50 ms", "p99 ms", "errors", "x ref", "x fastapi",
       "cpu us/call", "ctxsw/call", "note")
out = []
for r in rows:
    ref = find(r["scen"], "ref")
    peer = find(r["scen"], "fastapi")
    note = r["note"]
    x_ref = ratio(r, ref)
    if r["scen"] == "fanout":
        # wrk counts finished calls only: the call each connection had in
        # flight at the end is lost. conns / mean latency (Little's law) is
        # the steady-state rate without that cut.
        little = fconns / (r["mean"] / 1000.0) if r["mean"] > 0 else 0
        note = ("%.1f %% of ideal %d calls/s (steady state %d/mean latency: %.1f %%)"
                % (100 * r["rps"] / ideal, ideal, fconns, 100 * little / ideal)
                + ("; " + note if note else ""))
    if r["scen"] == "upstream direct" and up_ideal > 0:
        little = up_conns / (r["mean"] / 1000.0) if r["mean"] > 0 else 0
        note = ("%.1f %% of its ideal %d req/s (steady state %d/mean latency: %.1f %%)"
                % (100 * r["rps"] / up_ideal, up_ideal, up_conns, 100 * little / up_ideal)
                + ("; " + note if note else ""))
    if r["scen"].startswith("reactors") and r["srv"] == "hookd r=2":
        note += "; %s of r=1" % fmt(ratio(r, find(r["scen"], "hookd r=1")))
        split = opt.get("split_async" if r["scen"] == "reactors: async" else "split_sync")
        if split:
            note += "; calls per reactor %s %%" % split
    if r["scen"] == "reload" and r["srv"] != "no HUP":
        kept = ratio(r, find("reload", "no HUP"))
        note = "kept %s of no-HUP req/s; %d SIGHUPs, %d new generations" % (
            fmt(kept and kept * 100, " %"), hups, gens)
    if r["scen"].startswith("isolated ") and r["srv"] == "isolated":
        inp = find(r["scen"], "in-process")
        note += "; %s of in-process req/s, %s its cpu/call" % (
            fmt(ratio(r, inp)), fmt(r["cpu"] / inp["cpu"] if inp and inp["cpu"] > 0 else None))
    if r["scen"] == "crash loop" and r["srv"] != "no loop":
        note += "; kept %s of no-loop req/s" % fmt(ratio(r, find("crash loop", "no loop")) and
                                                  ratio(r, find("crash loop", "no loop")) * 100, " %")
        if r["srv"].startswith("crash"):
            note += ", %s of calm-loop; %s" % (
                fmt(ratio(r, find("crash loop", "calm/100ms")) and
                    ratio(r, find("crash loop", "calm/100ms")) * 100, " %"), crash_summary())
        else:
            note += "; loop calls answered %s" % (opt.get("loop_calm") or "-")
    if r["scen"] == "access log" and r["srv"] == "access_log file":
        note += "; %s of access_log off req/s" % fmt(ratio(r, find("access log", "access_log off")))
    if r["scen"] == "cpu" and r["srv"] == "hookd w=2":
        note += "; %s of w=1" % fmt(ratio(r, find("cpu", "hookd w=1")))
    ngx = find(r["scen"], "nginx")
    if ngx and r["srv"] != "nginx":
        note += ("; " if note else "") + "%s of nginx" % fmt(ratio(r, ngx))
    out.append((r["scen"], r["srv"], "%.0f" % r["rps"], "%.0f %%" % (100 * r["spread"]),
                "%.2f" % r["p50"], "%.2f" % r["p99"],
                str(r["err"]) if r["err"] >= 0 else "wrk failed",
                fmt(x_ref), fmt(ratio(r, peer)) if r["srv"] != "fastapi" else "1.00x" if peer else "-",
                "%.1f" % r["cpu"], "%.2f" % r["sw"] if r["sw"] >= 0 else "-", note))

widths = [max(len(str(x[i])) for x in out + [hdr]) for i in range(len(hdr))]


def line(cells):
    return "  ".join(str(c).rjust(w) if 2 <= i <= 10 else str(c).ljust(w)
                     for i, (c, w) in enumerate(zip(cells, widths))).rstrip()


print()
print("hookd benchmark -- " + setup)
print("req/s, p50, p99: the median round; spread: (max - min) / median req/s over the rounds;"
      " errors: status >= 400 + socket errors (+ fan-out answers carrying an \"error\"),"
      " all rounds")
print("x ref: req/s / the bare evhttp+cJSON server's (bench/ref) in the same scenario;"
      " x fastapi: / the FastAPI peer's; both the median of the per-round ratios")
if any(r["srv"] == "nginx" for r in rows):
    print("nginx: `return 200` (Debian nginx-light, 1 worker, pinned as the servers), the ceiling;"
          " \"Nx of nginx\" in a note: req/s / nginx's in the same scenario, median of the per-round ratios")
print("cpu us/call, ctxsw/call: the server process's CPU time (user+system, all threads, and its"
      " child processes': an isolated hookd's plugin processes) and context switches during a round"
      " / calls answered (median round)")
print()
print(line(hdr))
print(line(["-" * w for w in widths]))
prev = None
for cells in out:
    if prev is not None and cells[0] != prev:
        print()
    prev = cells[0]
    print(line(cells))

# --- c10k: one line of key=value pairs per row ------------------------------
c10k = []
if opt.get("c10k"):
    try:
        with open(opt["c10k"]) as f:
            for ln in f:
                kv = dict(x.split("=", 1) for x in ln.split() if "=" in x)
                if kv:
                    c10k.append(kv)
    except OSError:
        pass


def num(kv, k):
    try:
        return float(kv.get(k, 0))
    except ValueError:
        return 0.0


if c10k:
    n0 = int(num(c10k[0], "n"))
    print()
    print("c10k -- bench/c10k: %d keep-alive connections, one POST /hooks/delay {\"ms\": 1000} each,"
          " every answer read, then the connections held open, idle, %s ms;"
          " a dedicated hookd (workers 2); %s" % (n0, opt.get("c10k_hold_ms", "?"),
                                                   opt.get("c10k_limits", "")))
    print("connects: all at once, or paced (per second); latencies from connect() to the whole answer;"
          " in flight: hookd's calls_in_flight (GET /health), the peak of 100 ms samples")
    print("peak RSS: hookd's VmRSS, the peak of 100 ms samples; VmHWM: the kernel's high-water mark;"
          " per conn: (peak RSS - RSS before) / connections; overflows: the netns' listen-queue"
          " overflows (SYNs dropped, retried after 1 s and longer back-offs)")
    print()
    chdr = ("hookd", "connects", "conns", "answered 200", "in flight", "p50 ms", "p99 ms", "max ms",
            "connect max ms", "peak RSS MB", "VmHWM MB", "per conn KB", "overflows")
    crows = []
    for kv in c10k:
        rate = int(num(kv, "rate"))
        n = num(kv, "n")
        pin = ("CPU 0, c10k on CPU 1" if kv.get("pinning") == "pinned" else "unpinned")
        crows.append(("reactors=%s (%s)" % (kv.get("reactors", "?"), pin),
                      "at once" if rate == 0 else "%d/s (%.2f s)" % (rate, n / rate),
                      "%d" % num(kv, "connected"), "%d" % num(kv, "ok"),
                      "%d" % num(kv, "inflight_peak"),
                      "%d" % num(kv, "p50_ms"), "%d" % num(kv, "p99_ms"), "%d" % num(kv, "max_ms"),
                      "%d" % num(kv, "connect_max_ms"),
                      "%.1f" % (num(kv, "peak_kb") / 1024), "%.1f" % (num(kv, "hwm_kb") / 1024),
                      "%.1f" % ((num(kv, "peak_kb") - num(kv, "rss0_kb")) / n if n else 0),
                      "%d" % num(kv, "overflows")))
    cw = [max(len(str(x[i])) for x in crows + [chdr]) for i in range(len(chdr))]

    def cline(cells):
        return "  ".join(str(c).rjust(w) if i >= 2 else str(c).ljust(w)
                         for i, (c, w) in enumerate(zip(cells, cw))).rstrip()

    print(cline(chdr))
    print(cline(["-" * w for w in cw]))
    for cells in crows:
        print(cline(cells))

# --- the targets of issues 3, 4 and 12, from this run -------------------------
heading = ["Targets (issues 3, 4 and 12), this run:"]  # printed before the first line under it


def target(label, ok, value):
    if ok is None and value == "-":
        return  # its rows did not run (ONLY=...)
    if heading:
        print()
        print(heading.pop())
    state = "-" if ok is None else ("met" if ok else "MISSED")
    print("  %-66s %-7s %s" % (label, state, value))


def chk(x, pred):
    return None if x is None else pred(x)


ea, es = find("echo_async", "hookd"), find("echo (sync)", "hookd")
x = ratio(ea, find("echo_async", "ref"))
target("async echo >= 90 % of the reference's req/s", chk(x, lambda v: v >= 0.90), fmt(x, digits=3))
x = ratio(es, find("echo (sync)", "ref"))
target("sync echo (pool) >= 75 % of the reference's req/s", chk(x, lambda v: v >= 0.75), fmt(x, digits=3))
x = ratio(ea, find("echo_async", "fastapi"))
target("async echo >= 10x the FastAPI peer (async def)", chk(x, lambda v: v >= 10), fmt(x))
x = ratio(es, find("echo (sync)", "fastapi"))
target("sync echo >= 10x the FastAPI peer (plain def)", chk(x, lambda v: v >= 10), fmt(x))
# issue 12: nginx `return 200` (one worker, pinned as hookd) is the ceiling
ngx_a, ngx_s = find("echo_async", "nginx"), find("echo (sync)", "nginx")
x = ratio(ea, ngx_a)
target("async echo >= 0.85x nginx return 200 (issue 12)", chk(x, lambda v: v >= 0.85),
       "%s (hookd %.0f, nginx %.0f req/s)" % (fmt(x, digits=3), ea["rps"], ngx_a["rps"]) if x is not None else "-")
x = ratio(es, ngx_s)
target("  sync echo (pool) / nginx return 200 (no target)", None,
       "%s (hookd %.0f, nginx %.0f req/s)" % (fmt(x, digits=3), es["rps"], ngx_s["rps"]) if x is not None else "-")
fo = find("fanout", "hookd")
if fo:
    share = fo["rps"] / ideal
    target("fan-out >= 95 %% of ideal (%d calls/s), p99 < 150 ms, 0 errors" % ideal,
           share >= 0.95 and fo["p99"] < 150 and fo["err"] == 0,
           "%.1f %%, p99 %.1f ms (worst round %.1f), %d errors"
           % (100 * share, fo["p99"], fo["p99max"], fo["err"]))
ups = [r for r in rows if r["scen"] == "upstream direct"]
if ups and up_ideal > 0:
    target("  context: upstream alone, -c%d GET /delay/%d (ideal %d/s)"
           % (up_conns, fdelay, up_ideal), None,
           "; ".join("%s: %.1f %%, p50 %.1f, p99 %.1f ms" % (
               r["srv"].replace("upstream, ", ""), 100 * r["rps"] / up_ideal, r["p50"], r["p99"])
               for r in ups))
rl = find("reload", "HUP/100ms")
if rl:
    kept = ratio(rl, find("reload", "no HUP"))
    target("reload every 100 ms: 0 failed calls, req/s within 10 %",
           rl["err"] == 0 and kept is not None and kept >= 0.90 and hups > 0 and gens > 0,
           "%d failed, kept %s, %d SIGHUPs" % (rl["err"], fmt(kept and kept * 100, " %"), hups))
ra1, ra2 = find("reactors: async", "hookd r=1"), find("reactors: async", "hookd r=2")
if ra1 and ra2:
    x = ratio(ra2, ra1)
    target("2 reactors on 2 cores vs 1 (async echo, unpinned): more req/s", chk(x, lambda v: v > 1.0),
           "%s (r=1 %.0f, r=2 %.0f req/s)" % (fmt(x, digits=3), ra1["rps"], ra2["rps"]))
rs1, rs2 = find("reactors: sync", "hookd r=1"), find("reactors: sync", "hookd r=2")
if rs1 and rs2:
    x = ratio(rs2, rs1)
    target("  sync echo, 2 workers, 2 reactors vs 1 (no target)", None,
           "%s (r=1 %.0f, r=2 %.0f req/s)" % (fmt(x, digits=3), rs1["rps"], rs2["rps"]))


def c10k_find(reactors, paced):
    for kv in c10k:
        if kv.get("reactors") == str(reactors) and (num(kv, "rate") > 0) == paced:
            return kv
    return None


def c10k_ok(kv, need_all_in_flight):
    n = int(num(kv, "n"))
    # the higher of the sampled peak and the kernel's high-water mark
    return (n >= 10000 and int(num(kv, "ok")) == n
            and max(num(kv, "peak_kb"), num(kv, "hwm_kb")) / 1024 < 200
            and (not need_all_in_flight or int(num(kv, "inflight_peak")) >= n))


def c10k_value(kv):
    return ("%d/%d answered 200, peak RSS %.1f MB (VmHWM %.1f), %d in flight at most, p99 %d ms"
            % (num(kv, "ok"), num(kv, "n"), num(kv, "peak_kb") / 1024, num(kv, "hwm_kb") / 1024,
               num(kv, "inflight_peak"), num(kv, "p99_ms")))


cb, cp = c10k_find(1, False), c10k_find(1, True)
if cb:
    target("c10k: 10,000 conns, a 1 s call on each: all 200, RSS < 200 MB", c10k_ok(cb, False),
           "connects at once: " + c10k_value(cb))
if cp:
    rate = num(cp, "rate")
    target("  the same with all 10,000 in flight at once (paced %d conn/s)" % rate, c10k_ok(cp, True),
           c10k_value(cp))
cb2, cp2 = c10k_find(2, False), c10k_find(2, True)
for kv, paced in ((cb2, False), (cp2, True)):
    if kv:
        target("  the same with 2 reactors (%s)" % ("paced %d conn/s, all in flight" % num(kv, "rate")
                                                  if paced else "at once"),
               c10k_ok(kv, paced), c10k_value(kv))
w1, w2 = find("cpu", "hookd w=1"), find("cpu", "hookd w=2")
x = ratio(w2, w1)
target("cpu hook: 2 workers on 2 CPUs vs 1 worker (no target; ~2x ideal)", None, fmt(x))

# --- isolation (issue 9): no targets, ratios of this run -------------------
iso = [(sc, find(sc, "isolated"), find(sc, "in-process"))
       for sc in ("isolated echo (sync)", "isolated echo_async")]
cl = find("crash loop", "crash/100ms")
if any(a and b for _, a, b in iso) or cl:
    heading[:] = ["Isolation (issue 9; no targets), this run:"]
    for sc, a, b in iso:
        if a and b:
            target("%s: isolated / in-process" % sc.replace("isolated ", ""), None,
                   "req/s %s (%.0f vs %.0f), p50 %.2f vs %.2f ms, p99 %.2f vs %.2f ms, cpu/call %s"
                   " (%.1f vs %.1f us)"
                   % (fmt(ratio(a, b), digits=3), a["rps"], b["rps"], a["p50"], b["p50"], a["p99"],
                      b["p99"], fmt(a["cpu"] / b["cpu"] if b["cpu"] > 0 else None), a["cpu"], b["cpu"]))
    if cl:
        base, calm = find("crash loop", "no loop"), find("crash loop", "calm/100ms")
        target("echo (in-process) while an isolated plugin crashes / without", None,
               "%s (%.0f vs %.0f req/s), %d errors; vs the calm loop %s; %s"
               % (fmt(ratio(cl, base), digits=3), cl["rps"], base["rps"] if base else 0, cl["err"],
                  fmt(ratio(cl, calm), digits=3), crash_summary()))
