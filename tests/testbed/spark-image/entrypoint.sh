#!/bin/bash
# Entrypoint of the bed's Spark image (build-spark-image.sh). Spark's
# Kubernetes backend creates pods that give only `args`, never `command`, and
# expects the image to understand them:
#
#   driver SPARK-SUBMIT-ARGS...   a cluster-mode driver: spark-submit in client
#       mode inside the pod, listening on the pod's IP, which Spark passes as
#       SPARK_DRIVER_BIND_ADDRESS; the args name the properties file Spark
#       mounted, the main class and the application.
#   executor   an executor: the JVM backend that registers with the driver,
#       configured entirely by environment variables Spark sets on the pod
#       (SPARK_DRIVER_URL, SPARK_EXECUTOR_ID, _CORES, _MEMORY, _POD_IP,
#       _POD_NAME, SPARK_APPLICATION_ID, SPARK_RESOURCE_PROFILE_ID, and the
#       JVM options as SPARK_JAVA_OPT_0, SPARK_JAVA_OPT_1, ... in order).
#   anything else   run as given (kubectl run ... -- spark-submit ..., a shell).
#
# The command runs under tini, which forwards signals to it and reaps orphans:
# the JVM is never PID 1, so SIGTERM from the kubelet ends it normally.
set -euo pipefail

SPARK_HOME=${SPARK_HOME:-/opt/spark}
JAVA_HOME=${JAVA_HOME:-/usr/lib/jvm/java-17-openjdk-$(dpkg --print-architecture)}
export SPARK_HOME JAVA_HOME

die() { printf 'entrypoint.sh: %s\n' "$*" >&2; exit 1; }

need() { # NAME...: variables Spark sets on the pod
  local v
  for v in "$@"; do
    [ -n "${!v:-}" ] || die "$v is not set: this pod was not made by Spark's Kubernetes backend?"
  done
}

# Hadoop's login (UnixLoginModule) fails for a uid without a passwd entry; the
# image has one for 185 only. Say so early instead of in a stack trace.
getent passwd "$(id -u)" >/dev/null ||
  printf 'entrypoint.sh: warning: uid %s has no passwd entry (run as 185)\n' "$(id -u)" >&2

# The executor's class path: configuration first (the ConfigMap Spark mounts
# at SPARK_CONF_DIR, Hadoop's if any), then Spark's jars, then what the job
# added with spark.executor.extraClassPath (SPARK_EXTRA_CLASSPATH) and a
# distribution's own (SPARK_DIST_CLASSPATH).
executor_classpath() {
  local cp=${SPARK_CONF_DIR:-$SPARK_HOME/conf}
  [ -n "${HADOOP_CONF_DIR:-}" ] && cp=$HADOOP_CONF_DIR:$cp
  cp+=:$SPARK_HOME/jars/*
  [ -n "${SPARK_EXTRA_CLASSPATH:-}" ] && cp+=:$SPARK_EXTRA_CLASSPATH
  [ -n "${SPARK_DIST_CLASSPATH:-}" ] && cp+=:$SPARK_DIST_CLASSPATH
  printf '%s' "$cp"
}

# Spark's version, from its core jar (spark-core_2.12-3.5.9.jar -> 3.5.9).
spark_version() {
  local jar
  for jar in "$SPARK_HOME"/jars/spark-core_*.jar; do
    [ -e "$jar" ] || die "no spark-core jar in $SPARK_HOME/jars"
    jar=${jar##*-}
    printf '%s\n' "${jar%.jar}"
    return
  done
}

case ${1:-} in
  driver)
    shift
    need SPARK_DRIVER_BIND_ADDRESS
    cmd=("$SPARK_HOME/bin/spark-submit"
      --conf "spark.driver.bindAddress=$SPARK_DRIVER_BIND_ADDRESS"
      --deploy-mode client
      "$@")
    ;;
  executor)
    shift
    need SPARK_DRIVER_URL SPARK_EXECUTOR_ID SPARK_EXECUTOR_CORES SPARK_EXECUTOR_MEMORY \
      SPARK_APPLICATION_ID SPARK_EXECUTOR_POD_IP
    java_opts=()
    i=0
    while var=SPARK_JAVA_OPT_$i && [ -n "${!var+set}" ]; do
      java_opts+=("${!var}")
      i=$((i + 1))
    done
    version=$(spark_version)
    IFS=. read -r major minor _ <<<"$version"
    backend_args=(--driver-url "$SPARK_DRIVER_URL" --executor-id "$SPARK_EXECUTOR_ID"
      --cores "$SPARK_EXECUTOR_CORES" --app-id "$SPARK_APPLICATION_ID"
      --hostname "$SPARK_EXECUTOR_POD_IP")
    if ((major > 3 || (major == 3 && minor >= 2))); then
      # Since 3.2 the Kubernetes backend knows its pod (for decommissioning
      # and resource profiles).
      need SPARK_RESOURCE_PROFILE_ID SPARK_EXECUTOR_POD_NAME
      backend=org.apache.spark.scheduler.cluster.k8s.KubernetesExecutorBackend
      backend_args+=(--resourceProfileId "$SPARK_RESOURCE_PROFILE_ID"
        --podName "$SPARK_EXECUTOR_POD_NAME")
    else
      backend=org.apache.spark.executor.CoarseGrainedExecutorBackend
      [ -n "${SPARK_RESOURCE_PROFILE_ID:-}" ] &&
        backend_args+=(--resourceProfileId "$SPARK_RESOURCE_PROFILE_ID")
    fi
    cmd=("$JAVA_HOME/bin/java" "${java_opts[@]}"
      "-Xms$SPARK_EXECUTOR_MEMORY" "-Xmx$SPARK_EXECUTOR_MEMORY"
      -cp "$(executor_classpath)"
      "$backend" "${backend_args[@]}")
    ;;
  '')
    die "no command: give driver, executor or a command to run"
    ;;
  *)
    cmd=("$@")
    ;;
esac

# -s: reap orphans even when tini is not PID 1 (a pod sharing its process
# namespace, a chroot).
exec /usr/bin/tini -s -- "${cmd[@]}"
