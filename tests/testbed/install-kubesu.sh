#!/usr/bin/env bash
# Installs a kubesu build the way an administrator would, for the demo and the
# integration tests: the binary as /usr/sbin/kubesu, the example config, the
# Spark pod templates and the kubeconfig of the bed's user "kubesu" under /etc/kubesu, the sudoers
# drop-in (checked with visudo first), and what `kubesu rbac --user kubesu`
# prints, applied with the admin kubeconfig: kubesu's own identity holds
# exactly those permissions (least privilege, proven by the whole suite);
# on Kubernetes 1.30 and later also `kubesu rbac --admission`.
#
#   install-kubesu.sh PATH-TO-KUBESU-BINARY
#
# With KUBESU_TEST_INSTALLED=1 (tests/run.sh sets it after `dpkg -i` of the
# Debian package) /usr/sbin/kubesu is left as the package installed it and
# the binary argument is ignored; the rest is installed as always (the test
# config replaces the package's conffile: fine on a test machine).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
installed=${KUBESU_TEST_INSTALLED:-}
if [ "$installed" = 1 ]; then
  binary=${1:-}
else
  binary=${1:?usage: install-kubesu.sh PATH-TO-KUBESU-BINARY}
fi
dir=${KUBESU_TESTBED_DIR:-/var/tmp/kubesu-testbed}
[ "$(id -u)" = 0 ] || { echo "install-kubesu.sh: run as root" >&2; exit 1; }
[ -f "$dir/admin.kubeconfig" ] || { echo "install-kubesu.sh: the test bed is not up (bash tests/testbed/bed.sh up)" >&2; exit 1; }
[ -f "$dir/kubesu.kubeconfig" ] || { echo "install-kubesu.sh: $dir/kubesu.kubeconfig is missing: re-run bash tests/testbed/bed.sh up" >&2; exit 1; }

install -d -m 0755 -o root -g root /etc/kubesu
if [ "$installed" = 1 ]; then
  dpkg -S /usr/sbin/kubesu >/dev/null 2>&1 || { echo "install-kubesu.sh: KUBESU_TEST_INSTALLED=1 but /usr/sbin/kubesu is not from a package: dpkg -i the .deb of packaging/build-deb.sh first" >&2; exit 1; }
else
  # Installed beside, then renamed over: a running kubesu keeps its old file
  # (writing into a running binary fails with "Text file busy").
  install -m 0755 -o root -g root "$binary" /usr/sbin/.kubesu.new
  mv -f /usr/sbin/.kubesu.new /usr/sbin/kubesu
fi
install -m 0644 -o root -g root "$repo/examples/config.toml" /etc/kubesu/config.toml
# The Spark pod templates the example config names, as the package installs them.
install -m 0644 -o root -g root "$repo/deploy/spark-driver-template.yaml" \
  "$repo/deploy/spark-executor-template.yaml" /etc/kubesu/
install -m 0600 -o root -g root "$dir/kubesu.kubeconfig" /etc/kubesu/kubeconfig
visudo -qcf "$repo/sudoers.d/kubesu"
install -m 0440 -o root -g root "$repo/sudoers.d/kubesu" /etc/sudoers.d/kubesu
/usr/sbin/kubesu rbac --user kubesu | kubectl --kubeconfig "$dir/admin.kubeconfig" apply -f - >/dev/null
# The admission policies too, where the API server has them (1.30 and
# later): the suite runs under them, as a cluster would. Asked of the server
# itself, not of kubectl's discovery cache (kept per address, which both beds
# share), and read whole: `kubectl … | grep -q` under pipefail failed when
# grep exited before kubectl's last line, and the policies were skipped.
group=$(kubectl --kubeconfig "$dir/admin.kubeconfig" get --raw /apis/admissionregistration.k8s.io/v1)
if grep -q '"name":"validatingadmissionpolicies"' <<<"$group"; then
  /usr/sbin/kubesu rbac --admission --user kubesu |
    kubectl --kubeconfig "$dir/admin.kubeconfig" apply -f - >/dev/null
fi
# The API server's RBAC cache follows within moments: wait for it, so that
# the first run after a fresh bed is not refused.
for _ in $(seq 50); do
  ok=1
  for probe in "get namespaces" "bind clusterroles/kubesu-spark" "deletecollection persistentvolumeclaims"; do
    # shellcheck disable=SC2086
    kubectl --kubeconfig "$dir/kubesu.kubeconfig" auth can-i $probe -A >/dev/null 2>&1 || ok=
  done
  [ -n "$ok" ] && break
  sleep 0.2
done
[ -n "$ok" ] || { echo "install-kubesu.sh: kubesu's RBAC did not take effect" >&2; exit 1; }
