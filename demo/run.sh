#!/usr/bin/env bash
# The demo: a local Kubernetes with a node, kubesu installed as an
# administrator would, and runs through `sudo -n` as the platform's service
# user would start them. The first command, as user alice, shows who it is
# and what its credentials may do; afterwards the demo shows that those
# credentials are gone. Then alice's SparkPi runs to completion on the node
# in cluster mode, and nothing of its run is left.
#
#   sudo bash demo/run.sh [--keep]    (--keep leaves the cluster up)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[ "$(id -u)" = 0 ] || { echo "demo/run.sh: run as root (sudo bash demo/run.sh)" >&2; exit 1; }
keep=${1:-}

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "setting up: packages, test users, pyspark, the cluster (first time: about 30 minutes to build Kubernetes, containerd and the Spark image)"
bash tests/testbed/install-deps.sh
bash tests/testbed/users.sh
bash tests/testbed/install-pyspark.sh
bash tests/testbed/syslog.sh start
[ "$keep" = --keep ] || trap 'bash tests/testbed/bed.sh down; bash tests/testbed/syslog.sh stop' EXIT
bash tests/testbed/bed.sh up
eval "$(bash tests/testbed/bed.sh env)"
cargo build --release --locked --quiet
bash tests/testbed/install-kubesu.sh target/release/kubesu
admin() { kubectl --kubeconfig "$KUBESU_TESTBED_KUBECONFIG" "$@"; }

say "kubesu-svc (the platform) runs: sudo -n kubesu run --user alice -v -- sh -c '...'"
token_copy=$(mktemp -d)/token
chown alice "$(dirname "$token_copy")"
cd /
status=0
runuser -u kubesu-svc -- sudo -n kubesu run --user alice -v -- sh -c '
  echo "I am: $(id)"
  echo "KUBECONFIG=$KUBECONFIG (namespace $KUBESU_NAMESPACE)"
  ls -l "$(dirname "$KUBECONFIG")"
  echo "--- what this run may do in its namespace:"
  kubectl auth can-i --list | head -n 8
  echo "--- in the namespace default:"
  kubectl get pods -n default 2>&1 | tail -n 1
  cp "$(dirname "$KUBECONFIG")/token" '"$token_copy"'
  echo "$KUBESU_RUN_ID" > '"$token_copy"'.run
' || status=$?
cd - >/dev/null
echo "kubesu exited with status $status"

run=$(cat "$token_copy.run")
say "after run $run: its ServiceAccount, RoleBinding and run directory are gone"
admin get serviceaccounts,rolebindings -n kubesu-alice -l "kubesu.io/run=$run" 2>&1
ls -d "/run/kubesu/$run" 2>&1 || true

say "the token alice had now answers 401 (the API server caches token checks up to 10 s)"
for _ in $(seq 30); do
  code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$KUBESU_TESTBED_DIR/pki/ca.crt" \
    -H "Authorization: Bearer $(cat "$token_copy")" "$KUBESU_TESTBED_SERVER/api/v1/namespaces/kubesu-alice/pods")
  [ "$code" = 401 ] && break
  sleep 0.5
done
echo "GET pods with the run's token: HTTP $code"
rm -rf "$(dirname "$token_copy")"

say "alice submits SparkPi in cluster mode, through kubesu, as the platform would"
spark_submit=/var/cache/kubesu-testbed/pyspark-3.5/bin/spark-submit
cd /
runuser -u kubesu-svc -- sudo -n kubesu run --user alice -- "$spark_submit" \
  --deploy-mode cluster --name sparkpi-demo \
  --conf spark.kubernetes.container.image="$KUBESU_TESTBED_SPARK_IMAGE_3_5" \
  --conf spark.kubernetes.container.image.pullPolicy=Never \
  --conf spark.executor.instances=2 \
  --conf spark.kubernetes.driver.request.cores=0.3 --conf spark.kubernetes.executor.request.cores=0.3 \
  local:///opt/kubesu/pi.py 20 >/tmp/kubesu-demo-spark.log 2>&1 &
submission=$!
cd - >/dev/null
driver=
for _ in $(seq 240); do
  driver=$(admin get pods -n kubesu-alice -l spark-app-name=sparkpi-demo,spark-role=driver -o name 2>/dev/null | head -n1)
  [ -n "$driver" ] && break
  sleep 0.5
done
[ -n "$driver" ] || { cat /tmp/kubesu-demo-spark.log; exit 1; }
spark_run=$(admin get -n kubesu-alice "$driver" -o jsonpath='{.metadata.labels.kubesu\.io/run}')
echo "--- the driver runs on the node as the run's ServiceAccount:"
admin get -n kubesu-alice "$driver" -o jsonpath='{.spec.serviceAccountName}{"\n"}'
# The driver's output is in its log; revocation deletes the pod when
# spark-submit returns, so follow it while it runs.
admin wait -n kubesu-alice "$driver" --for=condition=Ready --timeout=180s >/dev/null 2>&1 || true
admin logs -f -n kubesu-alice "$driver" 2>/dev/null | grep -E "Pi is roughly|Registered executor" || true
spark_status=0
wait "$submission" || spark_status=$?
echo "spark-submit through kubesu exited with status $spark_status"

say "after run $spark_run: nothing of it is left (pods, Services, ConfigMaps, ServiceAccount)"
admin get pods,services,configmaps,serviceaccounts,rolebindings -n kubesu-alice -l "kubesu.io/run=$spark_run" 2>&1
admin get services,configmaps -n kubesu-alice -l spark-app-name=sparkpi-demo 2>&1

say "the audit trail of the two runs (also in syslog, facility authpriv)"
grep -E "\"run\":\"($run|$spark_run)\"" /var/log/kubesu/audit.jsonl | grep '"event":"end"' | cut -c 1-300
[ "$code" = 401 ] && [ "$spark_status" = 0 ]
