#!/usr/bin/env bash
# kubesu's benchmarks (issue 8), in one command, as root:
#
#   sudo bash bench/run.sh [--quick] [-n ITERATIONS] [--idle-seconds S] [--only start,concurrent,gc,idle,trips]
#
# Starts the test bed if it is not up, builds kubesu --release, installs it
# with tests/testbed/install-kubesu.sh (as /usr/sbin/kubesu, with the example
# config and the sudoers drop-in), then runs bench/bench.py, which prints the
# tables and writes them to bench/results/DATE.md (and .json). See
# BENCHMARKS.md for what each comparison is and the last recorded numbers.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
[ "$(id -u)" = 0 ] || { echo "bench/run.sh: run as root (sudo bash bench/run.sh)" >&2; exit 1; }

missing=()
for tool in /usr/bin/curl:curl /usr/bin/sudo:sudo /usr/sbin/runuser:util-linux /usr/bin/python3:python3 \
  /usr/bin/time:time; do
  [ -x "${tool%%:*}" ] || missing+=("${tool#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "bench/run.sh: installing ${missing[*]} from apt" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

cd "$repo"
if ! curl -sk --max-time 2 -o /dev/null "${KUBESU_TESTBED_SERVER:-https://127.0.0.1:16443}/healthz" ||
  [ ! -f "${KUBESU_TESTBED_DIR:-/var/tmp/kubesu-testbed}/admin.kubeconfig" ]; then
  bash tests/testbed/bed.sh up >&2
fi
eval "$(bash tests/testbed/bed.sh env)"
command -v kubectl >/dev/null || PATH=$PATH:$(dirname "$(find /var/cache/kubesu-testbed -name kubectl -type f | head -1)")
# The test users (kubesu-svc, alice, ...), if tests/run.sh never made them.
id kubesu-svc >/dev/null 2>&1 || bash tests/testbed/users.sh >&2

cargo build --release --quiet
bash tests/testbed/install-kubesu.sh target/release/kubesu
# Make sure the user's namespace exists before timing starts.
/usr/sbin/kubesu run --user alice -- /usr/bin/true

exec /usr/bin/python3 "$here/bench.py" "$@"
