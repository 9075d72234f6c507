"""Sorts `perf script -F tid,ip,sym` samples of `flashsale serve` into categories of work
(ADR 0065): each sample goes to the first category in CATS with a frame that contains one of
its patterns, so the order decides overlaps (page zeroing inside an allocation counts as page
zeroing; a send inside hyper's dispatch counts as a send). Prints the samples per thread id,
then the share of each category for one thread (or `all`), and µs per request when given the
thread's CPU in µs per request.
Usage: python3 scripts/perf/categories.py OUT.txt TID|all [CPU_US_PER_REQUEST]"""
import collections
import sys

CATS = [
    ("page zeroing (first touch of new heap)", ["clear_page", "folio_zero_user"]),
    ("reschedule IPIs landing on the thread", ["sysvec_reschedule_ipi", "irqentry_exit_to_user_mode"]),
    ("log: append, flush, fdatasync", ["flashsale_persistence", "runtime::executor::flusher"]),
    ("engine: shard state machine", ["flashsale_engine::shard::", "flashsale_engine::node::"]),
    ("hop between shards (flume, oneshot)", ["flume::", "oneshot"]),
    ("socket send (io_uring submit, TCP)", ["tcp_sendmsg", "sock_sendmsg"]),
    ("socket receive", ["tcp_recvmsg", "sock_recvmsg"]),
    ("allocator", ["mi_", "_mi_", "malloc", "free"]),
    ("gateway app (routing, auth, JSON, answer)", ["flashsale_gateway::", "serde_json"]),
    ("hyper (parse, encode, dispatch)", ["hyper::", "http::header", "httparse"]),
    ("executor: park, wake, timers, io_uring submit", [
        "Reactor::wait", "Parker::park", "Reactor::react", "spin_poll_io", "io_uring_enter",
        "schedule", "finish_task_switch"]),
    ("executor: task run (other)", ["glommio::"]),
]


def samples(path):
    """Yields (thread id, frames innermost first) per sample."""
    tid, frames = None, []
    for line in open(path, errors="replace"):
        if not line.strip():
            if tid is not None:
                yield tid, frames
            tid, frames = None, []
        elif line.startswith((" ", "\t")):
            parts = line.strip().split(" ", 1)
            frames.append(parts[1] if len(parts) > 1 else parts[0])
        else:
            tid = line.split()[0]
    if tid is not None:
        yield tid, frames


def category(frames):
    """The first category with a matching frame."""
    for name, pats in CATS:
        if any(p in f for f in frames for p in pats):
            return name
    return "other (kernel, libc)"


def main():
    path, sel = sys.argv[1], sys.argv[2]
    us = float(sys.argv[3]) if len(sys.argv) > 3 else 0.0
    by_tid = collections.Counter()
    cats = collections.Counter()
    for tid, frames in samples(path):
        by_tid[tid] += 1
        if sel in ("all", tid):
            cats[category(frames)] += 1
    total = sum(by_tid.values())
    print("samples by thread id:", ", ".join(
        f"{t} {c} ({100 * c / total:.1f} %)" for t, c in by_tid.most_common(6)))
    n = sum(cats.values())
    print(f"thread {sel}: {n} samples")
    for name, c in cats.most_common():
        extra = f"  {us * c / n:6.2f} µs/request" if us else ""
        print(f"  {100 * c / n:5.1f} %{extra}  {name}")


main()
