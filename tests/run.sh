#!/usr/bin/env bash
# The test command: unit and integration tests against a real control plane,
# real sudo and real users. Run as root on a machine you can scribble on: it
# installs packages, creates test users, installs /usr/sbin/kubesu,
# /etc/kubesu and /etc/sudoers.d/kubesu, and stops the servers it started
# when it ends, whatever the outcome.
#
#   bash tests/run.sh [cargo test arguments...]
#
# The end-to-end tests run against the Debian package: it is built
# (packaging/build-deb.sh), installed with dpkg -i, and the tests leave its
# /usr/sbin/kubesu in place (KUBESU_TEST_INSTALLED=1). KUBESU_TEST_PACKAGE=0
# skips the package: the tests then install the cargo-built binary, as a bare
# `cargo test` does.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[ "$(id -u)" = 0 ] || { echo "tests/run.sh: run as root (sudo bash tests/run.sh)" >&2; exit 1; }

bash tests/testbed/install-deps.sh
bash tests/testbed/users.sh
bash tests/testbed/install-pyspark.sh
if [ "${KUBESU_TEST_PACKAGE:-1}" != 0 ]; then
  deb=$(bash packaging/build-deb.sh)
  # Keep an existing /etc/kubesu/config.toml without asking; the tests
  # install their own config anyway.
  DEBIAN_FRONTEND=noninteractive dpkg -i --force-confdef --force-confold "$deb"
  export KUBESU_TEST_INSTALLED=1
fi
trap 'bash tests/testbed/bed.sh down; bash tests/testbed/syslog.sh stop' EXIT
bash tests/testbed/syslog.sh start
bash tests/testbed/bed.sh up
eval "$(bash tests/testbed/bed.sh env)"

cargo test --locked --features root-tests "$@"
