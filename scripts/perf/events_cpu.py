#!/usr/bin/env python3
"""Where the CPU of event delivery goes (issue 16, ADR 0037): CPU per reservation of every
thread group of the server, of RabbitMQ (beam.smp), of the webhook receiver and of wrk, with
events off and on (one webhook + the AMQP sink), for one or more builds, alternated in one run.
Load-robust: CPU-seconds (utime+stime from /proc/PID/task/*/stat) divided by the reservations
done, not a wall-clock rate; a busy machine changes the rate, far less the CPU per reservation.

Usage: python3 scripts/perf/events_cpu.py [--conns 256] [--secs 10] [--rounds 1]
           [--events '"reservation.confirmed","sku.sold_out"'] [--serve-args '...']
           LABEL=path/to/flashsale [LABEL=path ...]

Per measurement: a fresh `flashsale serve` and data dir (flags as scripts/events_bench.sh),
`wrk -t2 -cC -dS` hot-item reservations; "on" adds the webhook (subscription --events) with
scripts/events_bench_receiver.py and the AMQP sink (exchange flashsale.bench). The CPU window
runs from the start of wrk until delivery caught up (lag 0, at most 90 s after wrk), so the
delivery work that lags behind the load is counted too; wrk's own CPU is its rusage. Disk:
write and flush requests completed on the data dir's device (/proc/diskstats) in the window.
Prints one table per measurement: thread group, CPU-ms in the window, us per reservation,
context switches per reservation.
Needs wrk, curl, RabbitMQ on 127.0.0.1:5672 (guest/guest). Loopback only, bounded in time.
"""

import argparse
import collections
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HTTP = "127.0.0.1:18180"
HOOK_PORT = 19180
ADMIN = "bench-admin"
TOKEN = "bench-storefront"
TCK = os.sysconf("SC_CLK_TCK")


def group(name):
    """The thread group a thread name belongs to (numbered threads folded)."""
    name = re.sub(r"-\d+$", "", name)
    return {
        "tokio-rt-worker": "tokio-rt-worker (HTTP)",
        "flashsale-event": "flashsale-events (delivery)",
        "flashsale-evblk": "flashsale-evblk (log reads)",
        "iou-wrk": "iou-wrk (io_uring workers)",
    }.get(name, name)


def threads(pid):
    """{tid: (comm, ticks, ctx switches)} of every thread of pid."""
    out = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                stat = f.read()
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                status = f.read()
        except (FileNotFoundError, ProcessLookupError):
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        ticks = int(fields[11]) + int(fields[12])
        ctx = sum(int(m) for m in re.findall(r"ctxt_switches:\s+(\d+)", status))
        out[tid] = (comm, ticks, ctx)
    return out


def proc_ticks(pid):
    """utime+stime (ticks) of a whole process, 0 if gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except FileNotFoundError:
        return 0
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[11]) + int(fields[12])


def pids_named(name):
    """Pids whose comm is name."""
    out = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open(f"/proc/{p}/comm") as f:
                    if f.read().strip() == name:
                        out.append(int(p))
            except (FileNotFoundError, ProcessLookupError):
                pass
    return out


def disk_counts(path):
    """(writes completed, flushes completed) of the device holding path."""
    dev = os.stat(path).st_dev
    major, minor = os.major(dev), os.minor(dev)
    with open("/proc/diskstats") as f:
        for line in f:
            p = line.split()
            if int(p[0]) == major and int(p[1]) == minor:
                flushes = int(p[18]) if len(p) > 18 else 0
                return int(p[7]), flushes
    # A partition's minor may differ from the whole disk's; fall back to the first match.
    with open("/proc/diskstats") as f:
        for line in f:
            p = line.split()
            if int(p[0]) == major:
                return int(p[7]), int(p[18]) if len(p) > 18 else 0
    return 0, 0


def http(method, path, body=None, token=ADMIN):
    req = urllib.request.Request(f"http://{HTTP}{path}", method=method, data=body)
    req.add_header("authorization", f"Bearer {token}")
    req.add_header("content-type", "application/json")
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.read().decode()


def metric(name, kind):
    try:
        text = http("GET", "/metrics")
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(name + "{") and f'kind="{kind}"' in line:
            return float(line.split()[-1])
    return None


def measure(label, binary, mode, args, tmp):
    data = os.path.join(tmp, f"data-{label}-{mode}")
    extra = []
    if mode == "on":
        extra = ["--webhook-allow-private", "--amqp-url", "amqp://guest:guest@127.0.0.1:5672/%2f",
                 "--amqp-exchange", "flashsale.bench"]
    log = open(os.path.join(tmp, f"fs-{label}-{mode}.log"), "w")
    fs = subprocess.Popen(
        [binary, "serve", "--http", HTTP, "--quic", "127.0.0.1:0", "--data-dir", data,
         "--admin-token", ADMIN, "--storefront-token", TOKEN, "--rate-limit-buyer-rps", "0",
         "--header-timeout-ms", "120000", "--max-connections", "20000", *extra,
         *args.serve_args.split()],
        stdout=log, stderr=subprocess.STDOUT)
    rx = None
    try:
        for _ in range(150):
            try:
                http("GET", "/metrics")
                break
            except OSError:
                time.sleep(0.2)
        http("PUT", "/v1/skus/hot", b'{"name":"Hot","price_cents":100,"stock":100000000}')
        if mode == "on":
            http("POST", "/v1/webhooks",
                 f'{{"url":"http://127.0.0.1:{HOOK_PORT}/hook","events":[{args.events}]}}'.encode())
            rx = subprocess.Popen(
                [sys.executable, os.path.join(ROOT, "scripts/events_bench_receiver.py"), str(HOOK_PORT)],
                stdout=open(os.path.join(tmp, f"rx-{label}.json"), "w"), stderr=subprocess.DEVNULL)
            time.sleep(1.0)
        beams = pids_named("beam.smp")
        t0 = threads(fs.pid)
        b0 = sum(proc_ticks(p) for p in beams)
        r0 = proc_ticks(rx.pid) if rx else 0
        d0 = disk_counts(data)
        w0 = time.monotonic()
        env = dict(os.environ, TOKEN=TOKEN, SKU="hot")
        wrk = subprocess.Popen(
            ["wrk", "-t2", f"-c{args.conns}", f"-d{args.secs}s", "--timeout", "10s", "-s",
             os.path.join(ROOT, "gateway/examples/wrk/hot_item.lua"), f"http://{HTTP}"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
        out = wrk.stdout.read()
        _, _, ru = os.wait4(wrk.pid, 0)
        wrk.returncode = 0
        w1 = time.monotonic()
        d1 = disk_counts(data)
        caught = "n/a"
        if mode == "on":
            caught = "no"
            for _ in range(90):
                lw, la = metric("flashsale_events_lag_events", "webhook"), metric("flashsale_events_lag_events", "amqp")
                if lw == 0 and la == 0:
                    caught = "yes"
                    break
                time.sleep(1)
        w2 = time.monotonic()
        t1 = threads(fs.pid)
        b1 = sum(proc_ticks(p) for p in beams)
        r1 = proc_ticks(rx.pid) if rx else 0
        m = re.search(r"(\d+) requests in", out)
        reqs = int(m.group(1)) if m else 0
        rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
        rows = collections.defaultdict(lambda: [0, 0])
        for tid, (comm, ticks, ctx) in t1.items():
            before = t0.get(tid, (comm, 0, 0))
            rows[group(comm)][0] += ticks - before[1]
            rows[group(comm)][1] += ctx - before[2]
        return {
            "label": label, "mode": mode, "reqs": reqs, "rps": float(rps.group(1)) if rps else 0.0,
            "wrk_s": w1 - w0, "window_s": w2 - w0, "caught": caught, "rows": rows,
            "beam": b1 - b0, "rx": r1 - r0, "wrk_s_cpu": ru.ru_utime + ru.ru_stime,
            "writes": d1[0] - d0[0], "flushes": d1[1] - d0[1],
        }
    finally:
        if rx:
            rx.send_signal(signal.SIGTERM)
            try:
                rx.wait(timeout=5)
            except subprocess.TimeoutExpired:
                rx.kill()
        fs.send_signal(signal.SIGTERM)
        try:
            fs.wait(timeout=10)
        except subprocess.TimeoutExpired:
            fs.kill()
            fs.wait()
        log.close()
        shutil.rmtree(data, ignore_errors=True)


def report(r):
    n = max(r["reqs"], 1)
    us = lambda ticks: ticks * 1e6 / TCK / n
    total = sum(t for t, _ in r["rows"].values())
    print(f"## {r['label']} events={r['mode']} reservations={r['reqs']} rps={r['rps']:.0f} "
          f"window_s={r['window_s']:.1f} caught_up={r['caught']} load={open('/proc/loadavg').read().split()[0]}")
    print(f"{'who':32} {'cpu_ms':>9} {'us/resv':>9} {'ctxsw/resv':>10}")
    for name, (ticks, ctx) in sorted(r["rows"].items(), key=lambda kv: -kv[1][0]):
        if ticks == 0 and ctx == 0:
            continue
        print(f"{name:32} {ticks * 1000 / TCK:9.0f} {us(ticks):9.1f} {ctx / n:10.3f}")
    print(f"{'server total':32} {total * 1000 / TCK:9.0f} {us(total):9.1f}")
    print(f"{'beam.smp (RabbitMQ)':32} {r['beam'] * 1000 / TCK:9.0f} {us(r['beam']):9.1f}")
    print(f"{'receiver (python)':32} {r['rx'] * 1000 / TCK:9.0f} {us(r['rx']):9.1f}")
    wrk_s = r["wrk_s_cpu"]
    print(f"{'wrk':32} {wrk_s * 1000:9.0f} {wrk_s * 1e6 / n:9.1f}")
    print(f"{'disk writes / flushes per s':32} {r['writes'] / r['wrk_s']:9.0f} {r['flushes'] / r['wrk_s']:9.0f}"
          f"   per 1000 resv: {r['writes'] * 1000 / n:.1f} / {r['flushes'] * 1000 / n:.1f}")
    print(flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--conns", type=int, default=256)
    ap.add_argument("--secs", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--events", default='"reservation.confirmed","sku.sold_out"')
    ap.add_argument("--serve-args", default="")
    ap.add_argument("--modes", default="off,on")
    ap.add_argument("builds", nargs="+", help="LABEL=path/to/flashsale")
    args = ap.parse_args()
    builds = [b.split("=", 1) for b in args.builds]
    with tempfile.TemporaryDirectory() as tmp:
        print(f"# {time.strftime('%FT%TZ', time.gmtime())} conns={args.conns} secs={args.secs} "
              f"events=[{args.events}] serve_args=[{args.serve_args}] nproc={os.cpu_count()} "
              f"load={open('/proc/loadavg').read().split()[:3]}")
        for rnd in range(args.rounds):
            order = builds if rnd % 2 == 0 else builds[::-1]
            for label, binary in order:
                modes = args.modes.split(",")
                for mode in (modes if rnd % 2 == 0 else modes[::-1]):
                    r = measure(label, binary, mode, args, tmp)
                    report(r)


if __name__ == "__main__":
    main()
