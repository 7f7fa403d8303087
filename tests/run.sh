#!/usr/bin/env bash
# The test command: unit and integration tests against real Kubernetes
# clusters, real sudo and real users. Run as root on a machine you can
# scribble on: it installs packages, creates test users, installs
# /usr/sbin/kubesu, /etc/kubesu, /etc/sudoers.d/kubesu and
# /usr/local/bin/kubectl, and stops the servers it started when it ends,
# whatever the outcome.
#
#   bash tests/run.sh [cargo test arguments...]
#
# Two beds, one after the other (tests/testbed/bed.sh):
#   current  the newest Kubernetes release, with a node: the whole suite,
#            Spark jobs run to completion with pyspark 3.5 and 4.3 (and a
#            second control plane of that release for the admission policies);
#   1.20     the oldest release tested (Debian's, no node): `run`, `gc` and
#            the Spark tests that need no node.
# KUBESU_TEST_RELEASES="current" (or "1.20") runs one of them only; the
# cargo test arguments apply to the current release's run.
#
# The end-to-end tests run against the Debian package: it is built
# (packaging/build-deb.sh), installed with dpkg -i, and the tests leave its
# /usr/sbin/kubesu in place (KUBESU_TEST_INSTALLED=1). KUBESU_TEST_PACKAGE=0
# skips the package: the tests then install the cargo-built binary, as `cargo test
# --features root-tests` does by itself.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[ "$(id -u)" = 0 ] || { echo "tests/run.sh: run as root (sudo bash tests/run.sh)" >&2; exit 1; }

bash tests/testbed/install-deps.sh
bash tests/testbed/users.sh
bash tests/testbed/install-pyspark.sh 3.5
bash tests/testbed/install-pyspark.sh 4.3
if [ "${KUBESU_TEST_PACKAGE:-1}" != 0 ]; then
  deb=$(bash packaging/build-deb.sh)
  # Keep an existing /etc/kubesu/config.toml without asking; the tests
  # install their own config anyway.
  DEBIAN_FRONTEND=noninteractive dpkg -i --force-confdef --force-confold "$deb"
  export KUBESU_TEST_INSTALLED=1
fi
# The admission policies are cluster-wide: tests/admission.rs proves them on
# a control plane of its own (no node), beside the main bed.
admission_bed() {
  KUBESU_TESTBED_DIR=/var/tmp/kubesu-admission KUBESU_TESTBED_API_PORT=17443 \
    KUBESU_TESTBED_ETCD_PORT=13379 KUBESU_TESTBED_NODE=0 KUBESU_TESTBED_KUBERNETES=current \
    bash tests/testbed/bed.sh "$1"
}
trap 'bash tests/testbed/bed.sh down; admission_bed down; bash tests/testbed/syslog.sh stop' EXIT
bash tests/testbed/syslog.sh start

for release in ${KUBESU_TEST_RELEASES:-current 1.20}; do
  echo "tests/run.sh: Kubernetes $release" >&2
  bash tests/testbed/bed.sh down
  export KUBESU_TESTBED_KUBERNETES=$release KUBESU_TESTBED_SPARK="3.5 4.3"
  bash tests/testbed/bed.sh up
  eval "$(bash tests/testbed/bed.sh env)"
  case $release in
    current)
      admission_bed up
      cargo test --locked --features root-tests "$@"
      admission_bed down
      ;;
    # No node there: the tests that need one are left out by name.
    1.20) cargo test --locked --features root-tests --test run --test gc --test spark -- --skip on_a_node:: ;;
    *) echo "tests/run.sh: unknown release '$release' in KUBESU_TEST_RELEASES" >&2; exit 1 ;;
  esac
done
