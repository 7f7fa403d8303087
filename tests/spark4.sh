#!/usr/bin/env bash
# pyspark 4.x through kubesu, end to end on the test bed: a separate script,
# not part of CI (the pyspark 4 sdist is ~450 MB and the checks take minutes).
# Run as root on the test machine:
#
#   bash tests/spark4.sh [SERIES [KUBESU-BINARY]]
#
#   SERIES          pyspark series to install and test (default 4.3)
#   KUBESU-BINARY   installed as /usr/sbin/kubesu with tests/testbed/install-kubesu.sh
#                   (default target/debug/kubesu: `cargo build` first)
#
#   KUBESU_SPARK4_COMPARE=3.5   also measure the token re-read (check c) for
#                               this series, for comparison ("" to skip)
#   KUBESU_SPARK4_REREAD=0      skip check c altogether
#
# It installs pyspark SERIES with tests/testbed/install-pyspark.sh, writes
# /etc/kubesu/spark4-test.toml (examples/config.toml with the spark-submit
# command and SPARK_HOME of that venv; removed at exit) and runs, as root
# with `kubesu run --config` (honoured without sudo only):
#
#  a. cluster mode: SparkPi's driver pod appears in kubesu-alice, runs as the
#     run's ServiceAccount and carries kubesu.io/run; SIGTERM to kubesu ends
#     the run (143), and the pod, its Service and ConfigMap and the
#     ServiceAccount are gone, the run's token answers 401.
#  b. client mode: the local driver, as alice, creates an executor pod with
#     the run label as the run's ServiceAccount; after SIGTERM no executor
#     pod or executor ConfigMap (spark-app-selector=spark-kubesu-<run>) is left.
#  c. token re-read: a client-mode driver has its token invalidated and the
#     run's kubeconfig (and token file) rewritten with a new one, then its
#     executor pod is deleted: is a replacement executor pod created? Once with
#     the token from the kubeconfig (through kubesu: what kubesu relies on for
#     renewal) and once with spark.kubernetes.authenticate.oauthTokenFile
#     (spark-submit run directly as alice with the run's files, since kubesu
#     refuses that setting; informational). The token is invalidated the way
#     an expiry would: the run's ServiceAccount is deleted and created again
#     under the same name (new uid: the old token answers 401), its
#     RoleBinding too (garbage-collected with it), and the new token is minted
#     for it. The same name matters: the ServiceAccount admission plugin
#     refuses pods naming a missing ServiceAccount, so a replacement executor
#     can only be created if the name still exists.
#
# Prints PASS/FAIL/INFO lines and a summary; exits 1 if any check failed.
# Cleans up what it created (processes, cluster objects, files) at exit.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$(pwd)
[ "$(id -u)" = 0 ] || { echo "spark4.sh: run as root" >&2; exit 1; }

series=${1:-4.3}
binary=${2:-$repo/target/debug/kubesu}
compare=${KUBESU_SPARK4_COMPARE-3.5}
reread_enabled=${KUBESU_SPARK4_REREAD:-1}
bed=${KUBESU_TESTBED_DIR:-/var/tmp/kubesu-testbed}
admin=$bed/admin.kubeconfig
ns=kubesu-alice
config=/etc/kubesu/spark4-test.toml
# How long a spark-submit may take to create its first pod (a JVM start on a
# busy 2-core machine), a run to end once told to, and Spark to replace a
# deleted executor (its pod polling runs every 30 s).
submit_limit=240
end_limit=90
replace_limit=120

k() { kubectl --kubeconfig "$admin" "$@"; }
say() { echo "spark4.sh: $*" >&2; }

results=()
failed=0
pass() { results+=("PASS  $*"); echo "PASS  $*"; }
fail() { results+=("FAIL  $*"); echo "FAIL  $*"; failed=1; }
info() { results+=("INFO  $*"); echo "INFO  $*"; }

work=$(mktemp -d /tmp/kubesu-spark4.XXXXXX)
chmod 0755 "$work"
kubesu_pids=()   # kubesu processes (SIGTERM: kubesu revokes)
group_pids=()    # direct spark-submits, each in its own session
apps=()          # spark-app-name values, for the safety net
recreated=()     # ServiceAccounts (and RoleBindings) this script created again

alive() { local st; st=$(ps -o stat= -p "$1" 2>/dev/null) && [[ $st != Z* ]]; }

cleanup() {
  local pid i
  set +e
  for pid in "${group_pids[@]}"; do
    kill -TERM -- "-$pid" 2>/dev/null
  done
  for pid in "${kubesu_pids[@]}"; do
    alive "$pid" && kill -TERM "$pid" 2>/dev/null
  done
  for i in $(seq "$end_limit"); do
    local any=
    for pid in "${kubesu_pids[@]}" "${group_pids[@]}"; do alive "$pid" && any=1; done
    [ -z "$any" ] && break
    sleep 1
  done
  for pid in "${group_pids[@]}"; do kill -KILL -- "-$pid" 2>/dev/null; done
  for pid in "${kubesu_pids[@]}"; do alive "$pid" && kill -KILL "$pid" 2>/dev/null; done
  wait 2>/dev/null
  for app in "${apps[@]}"; do
    k -n "$ns" delete pods,services,configmaps -l "spark-app-name=$app" --ignore-not-found --wait=false >/dev/null 2>&1
  done
  for sa in "${recreated[@]}"; do
    k -n "$ns" delete rolebinding "$sa" --ignore-not-found >/dev/null 2>&1
    k -n "$ns" delete serviceaccount "$sa" --ignore-not-found >/dev/null 2>&1
  done
  rm -f "$config"
  rm -rf "$work"
}
trap cleanup EXIT

# --- setup ------------------------------------------------------------------

k get --raw /readyz >/dev/null 2>&1 || bash tests/testbed/bed.sh up
bash tests/testbed/users.sh >/dev/null
[ -x "$binary" ] || { say "$binary missing: cargo build first, or pass a kubesu binary"; exit 1; }
bash tests/testbed/install-kubesu.sh "$binary"
server=$(k config view --minify -o jsonpath='{.clusters[0].cluster.server}')

install_series() { # series -> sets spark_home, venv
  local out
  out=$(bash tests/testbed/install-pyspark.sh "$1")
  echo "$out" >&2
  spark_home=$(sed -n 's/^SPARK_HOME=//p' <<<"$out")
  venv=/var/cache/kubesu-testbed/pyspark-$1
}
install_series "$series"
submit=$venv/bin/spark-submit
jars=$spark_home/jars
version=$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("pyspark"))')
fabric8=$(cd "$jars" && ls kubernetes-client-[0-9]*.jar | sed 's/^kubernetes-client-//; s/\.jar$//')
httpclient=$(cd "$jars" && ls kubernetes-httpclient-*.jar | sed 's/^kubernetes-httpclient-//; s/-[0-9.]*\.jar$//')
spark_k8s=$(cd "$jars" && ls spark-kubernetes_*.jar)
info "pyspark $version: $spark_k8s, fabric8 kubernetes-client $fabric8, HTTP client $httpclient"

# The variant config: the example with this venv instead of pyspark 3.5's.
grep -q '/var/cache/kubesu-testbed/pyspark-3.5/' examples/config.toml
sed "s|/var/cache/kubesu-testbed/pyspark-3.5/|$venv/|g" examples/config.toml >"$work/config.toml"
grep -q "path = \"$submit\"" "$work/config.toml"
install -m 0644 -o root -g root "$work/config.toml" "$config"

image=apache/spark:$version
examples_jar=local:///opt/spark/examples/jars/spark-examples_2.13-$version.jar
suffix=$(cut -c1-6 /proc/sys/kernel/random/uuid)
mkdir -m 0755 "$work/home"
chown alice: "$work/home"
cat >"$work/pi.py" <<'EOF'
from pyspark.sql import SparkSession
spark = SparkSession.builder.getOrCreate()
print('COUNT', spark.sparkContext.parallelize(range(1000), 2).count(), flush=True)
spark.stop()
EOF
chmod 0644 "$work/pi.py"
alice_uid=$(id -u alice)

# --- helpers ------------------------------------------------------------------

# kubesu_start LOG CONFIG COMMAND... : `kubesu run --user alice --json` in the
# background, as an administrator's root shell runs it; sets kpid.
kubesu_start() {
  local log=$1 cfg=$2
  shift 2
  (cd / && exec env -i PATH=/usr/bin:/bin /usr/sbin/kubesu run --config "$cfg" --user alice --json -- "$@") \
    >"$log" 2>&1 </dev/null &
  kpid=$!
  kubesu_pids+=("$kpid")
}

# finish PID LIMIT : waits for a child to end; sets $finished to its exit
# status ("timeout" after LIMIT seconds, then it is killed). Not in $(...):
# a subshell cannot wait for this shell's children.
finish() {
  local pid=$1 limit=$2 i
  finished=0
  for i in $(seq "$limit"); do
    alive "$pid" || break
    sleep 1
  done
  if alive "$pid"; then
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    finished=timeout
    return 0
  fi
  wait "$pid" || finished=$?
}

# wait_pod SELECTOR LIMIT PID [EXCEPT] : the first pod in $ns matching, other
# than EXCEPT, while PID lives; prints its name.
wait_pod() {
  local selector=$1 limit=$2 pid=$3 except=${4:-} i name
  for i in $(seq "$limit"); do
    for name in $(k -n "$ns" get pods -l "$selector" -o jsonpath='{.items[*].metadata.name}' 2>/dev/null); do
      [ "$name" != "$except" ] && { echo "$name"; return 0; }
    done
    alive "$pid" || return 1
    sleep 1
  done
  return 1
}

# record LOG KEY : a field of kubesu's JSON run record (last '{' line).
record() {
  grep '^{' "$1" | tail -n 1 | python3 -c '
import json, sys
v = json.load(sys.stdin).get(sys.argv[1])
print(json.dumps(v) if isinstance(v, (list, dict)) else v)' "$2" 2>/dev/null || true
}

pod_get() { k -n "$ns" get pod "$1" -o jsonpath="$2" 2>/dev/null || true; }
label_of() { pod_get "$1" "{.metadata.labels['${2//./\\.}']}"; }

# status TOKEN : the HTTP status of listing pods in $ns with TOKEN.
status() {
  curl -s -o /dev/null -w '%{http_code}' --cacert "$bed/pki/ca.crt" \
    -H "Authorization: Bearer $1" "$server/api/v1/namespaces/$ns/pods" || true
}
[ -f "$bed/pki/ca.crt" ] || { say "$bed/pki/ca.crt missing"; exit 1; }

# unauthorized TOKEN : true once TOKEN answers 401 (within 30 s: the API
# server caches successful token authentications for 10 s).
unauthorized() {
  local i
  for i in $(seq 60); do
    [ "$(status "$1")" = 401 ] && return 0
    sleep 0.5
  done
  return 1
}

# gone KIND/NAME... : true once none of them exists (within 30 s).
gone() {
  local i left
  for i in $(seq 30); do
    left=$(k -n "$ns" get "$@" -o name --ignore-not-found 2>/dev/null || true)
    [ -z "$left" ] && return 0
    sleep 1
  done
  echo "$left" | tr '\n' ' '
  return 1
}

# The pid of the local driver JVM of APP, if any.
driver_jvm() {
  local f
  for f in /proc/[0-9]*/cmdline; do
    if tr '\0' ' ' <"$f" 2>/dev/null | grep -q -- "java .*org.apache.spark.deploy.SparkSubmit.*$1"; then
      f=${f#/proc/}
      echo "${f%/cmdline}"
      return
    fi
  done
}

show_log() { say "last lines of $1:"; tail -n 25 "$1" | sed 's/^/    /' >&2; }

# --- a. cluster mode -------------------------------------------------------------

# check_cluster TAG [SPARK-SUBMIT ARGS...] : returns 2 when spark-submit
# failed because the run may not create Spark 4.2's NetworkPolicy.
check_cluster() {
  local tag=$1 app=kubesu-s4-cluster${1:+-nonp}-$suffix log=$work/cluster${1:+-nonp}.log pod run sa owned rc left t
  shift
  apps+=("$app")
  kubesu_start "$log" "$config" "$submit" --deploy-mode cluster --name "$app" "$@" \
    --class org.apache.spark.examples.SparkPi --conf "spark.kubernetes.container.image=$image" \
    "$examples_jar" 10
  if ! pod=$(wait_pod "spark-app-name=$app,spark-role=driver" "$submit_limit" "$kpid"); then
    fail "a$tag. cluster mode: no driver pod in $ns"
    show_log "$log"
    kill -TERM "$kpid" 2>/dev/null || true
    finish "$kpid" "$end_limit"
    return 1
  fi
  run=$(label_of "$pod" kubesu.io/run)
  sa=$(pod_get "$pod" '{.spec.serviceAccountName}')
  sleep 3
  if ! alive "$kpid"; then
    finish "$kpid" 1; rc=$finished
    if grep -q 'cannot patch resource "networkpolicies"' "$log"; then
      fail "a$tag. cluster mode: spark-submit exited $rc after creating the driver pod: Spark >= 4.2 creates a NetworkPolicy (NetworkPolicyFeatureStep, server-side apply PATCH) and the run's ClusterRole kubesu-spark has no networkpolicies"
      grep -m 1 'cannot patch resource "networkpolicies"' "$log" | cut -c1-300 | sed 's/^/    /'
      return 2
    fi
    fail "a$tag. cluster mode: spark-submit exited $rc while the driver pod should be waited for"
    show_log "$log"
    return 1
  fi
  if [ -n "$run" ] && [ "$sa" = "$(k -n "$ns" get sa -l "kubesu.io/run=$run" -o jsonpath='{.items[*].metadata.name}')" ]; then
    pass "a$tag. cluster mode: driver pod $pod in $ns, label kubesu.io/run=$run, runs as the run's ServiceAccount $sa"
  else
    fail "a$tag. cluster mode: driver pod $pod: kubesu.io/run='$run', serviceAccountName='$sa' is not the run's ServiceAccount"
  fi
  t=$(cat "/run/kubesu/$run/token" 2>/dev/null || true)
  # Spark's driver Service and ConfigMap, owned by the driver pod.
  sleep 2
  owned=$(k -n "$ns" get services,configmaps -o json | python3 -c '
import json, sys
for o in json.load(sys.stdin)["items"]:
    if any(r.get("name") == sys.argv[1] for r in o["metadata"].get("ownerReferences", [])):
        print(o["kind"].lower() + "/" + o["metadata"]["name"])' "$pod")
  kill -TERM "$kpid" 2>/dev/null || true
  finish "$kpid" "$end_limit"; rc=$finished
  if [ "$rc" = 143 ] && [ "$(record "$log" revoked)" = True ] && [ "$(record "$log" service_account)" = "$sa" ]; then
    pass "a$tag. cluster mode: SIGTERM ended the run with 143, revoked"
  else
    fail "a$tag. cluster mode: after SIGTERM: exit $rc, revoked=$(record "$log" revoked), service_account=$(record "$log" service_account)"
    show_log "$log"
  fi
  # shellcheck disable=SC2086
  if left=$(gone "pod/$pod" "serviceaccount/$sa" $owned); then
    pass "a$tag. cluster mode: afterwards pod, ServiceAccount and $(echo $owned | tr ' ' ',') are gone"
  else
    fail "a$tag. cluster mode: left after the run: $left"
  fi
  if [ -n "$t" ] && unauthorized "$t"; then
    pass "a$tag. cluster mode: the run's token answers 401"
  else
    fail "a$tag. cluster mode: the run's token answers $(status "$t") (want 401)"
  fi
}

# --- b. client mode --------------------------------------------------------------

check_client() {
  local app=kubesu-s4-client-$suffix log=$work/client.log pod run sa appid jvm uid rc left maps
  apps+=("$app")
  kubesu_start "$log" "$config" "$submit" --deploy-mode client --name "$app" \
    --conf spark.executor.instances=1 --conf spark.scheduler.maxRegisteredResourcesWaitingTime=5s \
    --conf "spark.kubernetes.container.image=$image" "$work/pi.py"
  if ! pod=$(wait_pod "spark-app-name=$app,spark-role=executor" "$submit_limit" "$kpid"); then
    fail "b. client mode: no executor pod in $ns"
    show_log "$log"
    kill -TERM "$kpid" 2>/dev/null || true
    finish "$kpid" "$end_limit"
    return
  fi
  run=$(label_of "$pod" kubesu.io/run)
  sa=$(pod_get "$pod" '{.spec.serviceAccountName}')
  appid=$(label_of "$pod" spark-app-selector)
  if [ -n "$run" ] && [ "$sa" = "$(k -n "$ns" get sa -l "kubesu.io/run=$run" -o jsonpath='{.items[*].metadata.name}')" ] \
    && [ "$appid" = "spark-kubesu-$run" ]; then
    pass "b. client mode: executor pod $pod in $ns, label kubesu.io/run=$run, ServiceAccount $sa, spark-app-selector=$appid"
  else
    fail "b. client mode: executor pod $pod: kubesu.io/run='$run' serviceAccountName='$sa' spark-app-selector='$appid'"
  fi
  jvm=$(driver_jvm "$app")
  uid=$( [ -n "$jvm" ] && awk '/^Uid:/ {print $2}' "/proc/$jvm/status" 2>/dev/null || true)
  if [ "$uid" = "$alice_uid" ]; then
    pass "b. client mode: the local driver JVM (pid $jvm) runs as alice"
  else
    fail "b. client mode: the local driver JVM '$jvm' runs as uid '$uid', not alice ($alice_uid)"
  fi
  maps=$(k -n "$ns" get configmaps -l "spark-app-selector=$appid" -o name | tr '\n' ' ')
  kill -TERM "$kpid" 2>/dev/null || true
  finish "$kpid" "$end_limit"; rc=$finished
  if [ "$rc" = 143 ] && grep -q SIGTERM <<<"$(record "$log" signals_forwarded)"; then
    pass "b. client mode: SIGTERM forwarded to the driver, run ended with 143"
  else
    fail "b. client mode: after SIGTERM: exit $rc, signals_forwarded=$(record "$log" signals_forwarded)"
    show_log "$log"
  fi
  left=""
  for _ in $(seq 30); do
    left=$(k -n "$ns" get pods -l "kubesu.io/run=$run" -o name; k -n "$ns" get configmaps -l "spark-app-selector=$appid" -o name; k -n "$ns" get sa "$sa" -o name --ignore-not-found)
    [ -z "$left" ] && break
    sleep 1
  done
  if [ -z "$left" ]; then
    pass "b. client mode: afterwards no executor pod, no executor ConfigMap (${maps:-none seen}), no ServiceAccount of the run"
  else
    fail "b. client mode: left after the run: $(echo "$left" | tr '\n' ' ')"
  fi
}

# --- c. token re-read --------------------------------------------------------------

# rewrite RUN TOKEN : the run's kubeconfig and token file with TOKEN, owned by
# the user, 0600, each replaced by a rename as kubesu's renewal does.
rewrite() {
  local dir=/run/kubesu/$1 token=$2 owner
  owner=$(stat -c %u:%g "$dir/kubeconfig")
  python3 - "$dir/kubeconfig" "$token" >"$dir/.kubeconfig.spark4" <<'EOF'
import json, sys
c = json.load(open(sys.argv[1]))
for u in c["users"]:
    u["user"]["token"] = sys.argv[2]
json.dump(c, sys.stdout, indent=2)
EOF
  printf '%s' "$token" >"$dir/.token.spark4"
  chown "$owner" "$dir/.kubeconfig.spark4" "$dir/.token.spark4"
  chmod 0600 "$dir/.kubeconfig.spark4" "$dir/.token.spark4"
  mv -f "$dir/.token.spark4" "$dir/token"
  mv -f "$dir/.kubeconfig.spark4" "$dir/kubeconfig"
}

# invalidate SA : deletes the ServiceAccount (its tokens answer 401; the
# garbage collector takes its RoleBinding) and creates both again under the
# same names, labels and annotations; prints a new token for it.
invalidate() {
  local sa=$1 old i
  old=$(k -n "$ns" get serviceaccount,rolebinding "$sa" -o json)
  k -n "$ns" delete serviceaccount "$sa" >/dev/null
  for i in $(seq 30); do
    [ -z "$(k -n "$ns" get rolebinding "$sa" -o name --ignore-not-found)" ] && break
    sleep 1
  done
  k -n "$ns" delete rolebinding "$sa" --ignore-not-found >/dev/null
  python3 -c '
import json, sys
items = json.loads(sys.argv[1])["items"]
keep = ("name", "namespace", "labels", "annotations")
sa = next(o for o in items if o["kind"] == "ServiceAccount")
sa = {"apiVersion": "v1", "kind": "ServiceAccount",
      "metadata": {k: v for k, v in sa["metadata"].items() if k in keep}}
print(json.dumps(sa))' "$old" | k create -f - >/dev/null
  python3 -c '
import json, sys
items = json.loads(sys.argv[1])["items"]
uid = sys.argv[2]
keep = ("name", "namespace", "labels", "annotations")
rb = next(o for o in items if o["kind"] == "RoleBinding")
meta = {k: v for k, v in rb["metadata"].items() if k in keep}
meta["ownerReferences"] = [dict(r, uid=uid) for r in rb["metadata"].get("ownerReferences", [])]
print(json.dumps({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                  "metadata": meta, "roleRef": rb["roleRef"], "subjects": rb["subjects"]}))' \
    "$old" "$(k -n "$ns" get serviceaccount "$sa" -o jsonpath='{.metadata.uid}')" | k create -f - >/dev/null
  k -n "$ns" create token "$sa" --duration 10m
}

# reread SERIES MODE : MODE kubeconfig (through kubesu) or tokenfile (direct).
reread() {
  local s=$1 mode=$2 cfg sub sh app log pod run sa old new i rc spid=""
  local what="c. pyspark $s, token from the ${mode/tokenfile/oauthTokenFile}"
  [ "$mode" = kubeconfig ] && what="c. pyspark $s, token from the kubeconfig"
  if [ "$s" = "$series" ]; then
    cfg=$config sub=$submit sh=$spark_home
  else
    install_series "$s" 2>/dev/null
    sub=$venv/bin/spark-submit sh=$spark_home
    info "pyspark $s: $(cd "$sh/jars" && ls spark-kubernetes_*.jar kubernetes-client-[0-9]*.jar kubernetes-httpclient-*.jar | tr '\n' ' ')"
    cfg=/etc/kubesu/config.toml
    grep -q "path = \"$sub\"" "$cfg" || { fail "$what: $cfg has no command $sub"; return; }
  fi
  app=kubesu-s4-reread-${s//./}-$mode-$suffix
  log=$work/reread-$s-$mode.log
  apps+=("$app")
  local common=(--deploy-mode client --name "$app" --conf spark.executor.instances=1
    --conf spark.scheduler.maxRegisteredResourcesWaitingTime=5s
    --conf "spark.kubernetes.container.image=apache/spark:$s.0")
  if [ "$mode" = kubeconfig ]; then
    kubesu_start "$log" "$cfg" "$sub" "${common[@]}" "$work/pi.py"
  else
    # A run holding the credentials; the driver reads its token file itself.
    kubesu_start "$work/sleep-$s.log" "$cfg" /usr/bin/sleep 1800
    for i in $(seq 30); do
      sa=$(k -n "$ns" get sa -l kubesu.io/user=alice -o json | python3 -c '
import json, sys
for o in json.load(sys.stdin)["items"]:
    if o["metadata"].get("annotations", {}).get("kubesu.io/pid") == sys.argv[1]:
        print(o["metadata"]["name"])' "$kpid")
      [ -n "$sa" ] && [ -f "/run/kubesu/${sa##*-}/token" ] && break
      sleep 1
    done
    run=$(k -n "$ns" get sa "$sa" -o jsonpath="{.metadata.labels['kubesu\.io/run']}")
    (cd "$work" && exec setsid runuser -u alice -- env -i PATH=/usr/bin:/bin HOME="$work/home" \
      SPARK_HOME="$sh" "$sub" --master "k8s://$server" "${common[@]}" \
      --conf "spark.kubernetes.namespace=$ns" \
      --conf "spark.kubernetes.authenticate.oauthTokenFile=/run/kubesu/$run/token" \
      --conf "spark.kubernetes.authenticate.caCertFile=/run/kubesu/$run/ca.crt" \
      --conf "spark.kubernetes.authenticate.driver.serviceAccountName=$sa" \
      --conf "spark.app.id=spark-kubesu-$run" \
      --conf "spark.kubernetes.driver.label.kubesu.io/run=$run" \
      --conf "spark.kubernetes.executor.label.kubesu.io/run=$run" \
      "$work/pi.py") >"$log" 2>&1 </dev/null &
    spid=$!
    group_pids+=("$spid")
  fi
  local driver=${spid:-$kpid}
  if ! pod=$(wait_pod "spark-app-name=$app,spark-role=executor" "$submit_limit" "$driver"); then
    fail "$what: no executor pod before the rotation"
    show_log "$log"
  else
    run=$(label_of "$pod" kubesu.io/run)
    sa=$(pod_get "$pod" '{.spec.serviceAccountName}')
    old=$(cat "/run/kubesu/$run/token")
    recreated+=("$sa")
    new=$(invalidate "$sa")
    for i in $(seq 20); do
      [ "$(status "$new")" = 200 ] && break
      sleep 0.5
    done
    rewrite "$run" "$new"
    unauthorized "$old" || true
    local before after
    before=$(grep -c -i 'unauthorized' "$log" || true)
    if [ "$(status "$old")" != 401 ] || [ "$(status "$new")" != 200 ]; then
      fail "$what: rotation did not take: old token $(status "$old") (want 401), new $(status "$new") (want 200)"
    else
      k -n "$ns" delete pod "$pod" --wait=false >/dev/null
      if new_pod=$(wait_pod "spark-app-name=$app,spark-role=executor" "$replace_limit" "$driver" "$pod"); then
        after=$(grep -c -i 'unauthorized' "$log" || true)
        local m="$what: RE-READ: old token 401, kubeconfig/token file rewritten, $pod deleted, replacement $new_pod created (driver log: $((after - before)) 'Unauthorized' lines meanwhile)"
        if [ "$mode" = kubeconfig ]; then pass "$m"; else info "$m"; fi
      else
        after=$(grep -c -i 'unauthorized' "$log" || true)
        local m="$what: NOT RE-READ: old token 401, kubeconfig/token file rewritten, $pod deleted, no replacement within ${replace_limit}s (driver log: $((after - before)) 'Unauthorized' lines meanwhile)"
        alive "$driver" || m="$m; the driver exited"
        if [ "$mode" = kubeconfig ]; then fail "$m"; else info "$m"; fi
      fi
      grep -i -m 3 'unauthorized\|forbidden' "$log" | cut -c1-220 | sed 's/^/    driver log: /' || true
    fi
  fi
  if [ -n "$spid" ]; then
    kill -TERM -- "-$spid" 2>/dev/null || true
    finish "$spid" "$end_limit"
  fi
  kill -TERM "$kpid" 2>/dev/null || true
  finish "$kpid" "$end_limit"; rc=$finished
  [ "$rc" = 143 ] || info "$what: kubesu exited $rc after SIGTERM"
  [ "$(record "$log" revoked)" = True ] || [ "$mode" != kubeconfig ] ||
    info "$what: kubesu's record after the rotation: revoked=$(record "$log" revoked)"
  # kubesu deletes what it recorded; the ServiceAccount created again here may
  # differ (uid): remove it and its RoleBinding, and Spark's leftovers.
  k -n "$ns" delete rolebinding,serviceaccount "$sa" --ignore-not-found >/dev/null 2>&1 || true
  k -n "$ns" delete pods,configmaps -l "spark-app-name=$app" --ignore-not-found >/dev/null 2>&1 || true
  k -n "$ns" delete configmaps -l "spark-app-selector=spark-kubesu-$run" --ignore-not-found >/dev/null 2>&1 || true
}

# --- run -------------------------------------------------------------------------

rc=0
check_cluster "" || rc=$?
if [ "$rc" = 2 ]; then
  # The rest of cluster mode, with the NetworkPolicy step excluded.
  check_cluster "'" --conf spark.kubernetes.driver.pod.excludedFeatureSteps=org.apache.spark.deploy.k8s.features.NetworkPolicyFeatureStep || true
fi
check_client
if [ "$reread_enabled" != 0 ]; then
  measured=("$series")
  if [ -n "$compare" ] && [ "$compare" != "$series" ]; then measured+=("$compare"); fi
  for s in "${measured[@]}"; do
    reread "$s" kubeconfig
    reread "$s" tokenfile
  done
fi

echo
echo "== tests/spark4.sh: pyspark $version (fabric8 $fabric8, $httpclient) =="
printf '%s\n' "${results[@]}"
if [ "$failed" = 0 ]; then echo "== PASS"; else echo "== FAIL"; fi
exit "$failed"
