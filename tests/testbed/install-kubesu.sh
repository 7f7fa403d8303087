#!/usr/bin/env bash
# Installs a kubesu build the way an administrator would, for the demo and the
# integration tests: the binary as /usr/sbin/kubesu, the example config and
# the bed's admin kubeconfig under /etc/kubesu, the sudoers drop-in (checked
# with visudo first), and the Spark ClusterRole in the bed.
#
#   install-kubesu.sh PATH-TO-KUBESU-BINARY
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
binary=${1:?usage: install-kubesu.sh PATH-TO-KUBESU-BINARY}
dir=${KUBESU_TESTBED_DIR:-/var/tmp/kubesu-testbed}
[ "$(id -u)" = 0 ] || { echo "install-kubesu.sh: run as root" >&2; exit 1; }
[ -f "$dir/admin.kubeconfig" ] || { echo "install-kubesu.sh: the test bed is not up (bash tests/testbed/bed.sh up)" >&2; exit 1; }

# install(1) writes a temporary file and renames it: a running kubesu is
# never replaced under its feet.
install -d -m 0755 -o root -g root /etc/kubesu
install -m 0755 -o root -g root "$binary" /usr/sbin/kubesu
install -m 0644 -o root -g root "$repo/examples/config.toml" /etc/kubesu/config.toml
install -m 0600 -o root -g root "$dir/admin.kubeconfig" /etc/kubesu/kubeconfig
visudo -qcf "$repo/sudoers.d/kubesu"
install -m 0440 -o root -g root "$repo/sudoers.d/kubesu" /etc/sudoers.d/kubesu
kubectl --kubeconfig "$dir/admin.kubeconfig" apply -f "$repo/deploy/spark-clusterrole.yaml" >/dev/null
