#!/bin/sh
# Self instructions per function of a callgrind profile, summed over the source files its code
# was inlined from (callgrind_annotate lists a function once per file), highest first, with the
# count per UNIT (e.g. per pair or per replayed event) when UNITS is given (ADR 0029 addendum 7,
# ADR 0036 ninth round).
# Usage: sh scripts/perf/callgrind_self.sh CALLGRIND_OUT [TOP] [UNITS]
set -eu
out=$1
top=${2:-30}
units=${3:-1}
callgrind_annotate --auto=no --threshold=100 "$out" 2>/dev/null |
    sed -n '/file:function/,$p' | grep -E '^ *[0-9,]+ \(' |
    sed -E 's/^ *([0-9,]+) \([^)]*\) +[^:]*:(.*)$/\1\t\2/; s/ \[[^]]*\]$//' | tr -d , |
    awk -F'\t' -v u="$units" '{a[$2] += $1} END {for (k in a) printf "%14d %10.1f  %s\n", a[k], a[k] / u, k}' |
    sort -rn | head -n "$top"
