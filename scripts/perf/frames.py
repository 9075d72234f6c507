"""Counts `perf script` samples by frame (ADR 0061): prints the share of samples whose stack
holds each named frame (inclusive) and the top frames by self time.
Usage: python3 scripts/perf/frames.py OUT.txt [SUBSTRING...]"""
import collections
import sys

DEFAULT = [
    "App<E>::handle", "read_body", "parse_json", "routes::resolve", "sold_out_response",
    "From<flashsale_engine", "into_response", "add_security_headers", "Metrics::record",
    "Engine::reserve", "clock_gettime", "malloc", "free", "InTokio", "poll_read_head",
    "CoarseSleep", "authenticate",
]


def samples(path):
    """Yields each sample's frames (symbol names), innermost first."""
    frames = []
    for line in open(path, errors="replace"):
        if not line.strip():
            if frames:
                yield frames
            frames = []
        elif line.startswith((" ", "\t")):
            parts = line.strip().split(" ", 1)
            frames.append(parts[1] if len(parts) > 1 else parts[0])
    if frames:
        yield frames


def main():
    path = sys.argv[1]
    names = sys.argv[2:] or DEFAULT
    total = 0
    incl = collections.Counter()
    selfc = collections.Counter()
    for frames in samples(path):
        total += 1
        selfc[frames[0].split("+")[0]] += 1
        for n in names:
            if any(n in f for f in frames):
                incl[n] += 1
    print(f"samples {total}")
    for n in names:
        print(f"  incl {100 * incl[n] / max(total, 1):6.2f} %  {n}")
    for f, c in selfc.most_common(25):
        print(f"  self {100 * c / max(total, 1):6.2f} %  {f[:110]}")


main()
