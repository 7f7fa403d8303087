#!/usr/bin/env bash
# What relaying the command's output costs (issue 13, item 2): wall time of
# 1 GiB through `cat`, written by the command to stdout and to stderr, and of
# an empty command, for two kubesu binaries run by root directly (nothing is
# installed), alternating, N times (default 5). As root, with the bed up:
#
#   sudo bash bench/output.sh OLD_KUBESU NEW_KUBESU
#
# Prints one line per iteration, then the median, min and max of each column
# (milliseconds). `floor` is `head -c 1G /dev/zero | cat` without kubesu.
set -euo pipefail
[ $# = 2 ] || { echo "usage: bench/output.sh OLD_KUBESU NEW_KUBESU" >&2; exit 64; }
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
eval "$(bash "$here/../tests/testbed/bed.sh" env)"
old=$1 new=$2
ms() { local s e; s=$(date +%s%N); "$@"; e=$(date +%s%N); echo $(((e - s) / 1000000)); }
floor() { head -c 1073741824 /dev/zero | cat >/dev/null; }
out() { "$1" run --user alice -- /usr/bin/sh -c 'head -c 1073741824 /dev/zero' </dev/null 2>/dev/null | cat >/dev/null; }
err() { "$1" run --user alice -- /usr/bin/sh -c 'head -c 1073741824 /dev/zero >&2' </dev/null 2>&1 >/dev/null | cat >/dev/null; }
none() { "$1" run --user alice -- /usr/bin/sh -c true </dev/null 2>/dev/null | cat >/dev/null; }
rows=$(for _ in $(seq 1 "${N:-5}"); do
  echo "floor $(ms floor) old-stdout $(ms out "$old") new-stdout $(ms out "$new")" \
    "old-stderr $(ms err "$old") new-stderr $(ms err "$new") old-empty $(ms none "$old") new-empty $(ms none "$new")"
done)
echo "$rows"
python3 - "$rows" <<'PY'
import statistics, sys
rows = [l.split() for l in sys.argv[1].splitlines()]
for i in range(0, len(rows[0]), 2):
    vals = [int(r[i + 1]) for r in rows]
    print(f"{rows[0][i]:12} median {statistics.median(vals):6} min {min(vals):6} max {max(vals):6}")
PY
