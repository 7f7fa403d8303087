#!/usr/bin/env bash
# The test command: unit and integration tests against a real control plane,
# real sudo and real users. Run as root on a machine you can scribble on: it
# installs packages, creates test users, installs /usr/sbin/kubesu,
# /etc/kubesu and /etc/sudoers.d/kubesu, and stops the servers it started
# when it ends, whatever the outcome.
#
#   bash tests/run.sh [cargo test arguments...]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[ "$(id -u)" = 0 ] || { echo "tests/run.sh: run as root (sudo bash tests/run.sh)" >&2; exit 1; }

bash tests/testbed/install-deps.sh
bash tests/testbed/users.sh
bash tests/testbed/install-pyspark.sh
trap 'bash tests/testbed/bed.sh down; bash tests/testbed/syslog.sh stop' EXIT
bash tests/testbed/syslog.sh start
bash tests/testbed/bed.sh up
eval "$(bash tests/testbed/bed.sh env)"

cargo test --locked "$@"
