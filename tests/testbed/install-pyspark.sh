#!/usr/bin/env bash
# Installs, idempotently, spark-submit from PyPI's pyspark 3.5 (or the series
# given as the argument, e.g. 4.3) into a venv that every user can read and
# run (spark-submit runs as the end user):
#
#   /var/cache/kubesu-testbed/pyspark-3.5/bin/spark-submit
#   SPARK_HOME=/var/cache/kubesu-testbed/pyspark-3.5/lib/python3.11/site-packages/pyspark
#
# The venv is built on Debian's /usr/bin/python3 (python3-venv, from
# install-deps.sh), never on a per-user Python such as root's pyenv, which
# other users cannot run. Java is Debian's OpenJDK 17 (openjdk-17-jre-headless),
# by its path, not the first `java` in PATH.
# Run as root. Safe to run again: it does nothing when all is present.
#
#   bash tests/testbed/install-pyspark.sh         prints SPARK_HOME and JAVA_HOME
#   bash tests/testbed/install-pyspark.sh 4.3     the same for pyspark 4.3.*, in
#                                                 /var/cache/kubesu-testbed/pyspark-4.3
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "install-pyspark.sh: run as root" >&2; exit 1; }
umask 022

series=${1:-${KUBESU_PYSPARK_SERIES:-3.5}}
[[ "$series" =~ ^[0-9]+\.[0-9]+$ ]] || { echo "install-pyspark.sh: '$series' is not a series such as 3.5 or 4.3" >&2; exit 1; }
venv=${KUBESU_PYSPARK_VENV:-/var/cache/kubesu-testbed/pyspark-$series}
python=/usr/bin/python3
marker=$venv/.kubesu-installed

[ -x "$python" ] || { echo "install-pyspark.sh: $python missing (apt-get install python3-venv)" >&2; exit 1; }
pyver=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
spark_home=$venv/lib/python$pyver/site-packages/pyspark

# Debian's OpenJDK 17, named explicitly: whatever `java` comes first in PATH
# (a Temurin in some machine images, nothing on a plain Debian) is not what
# the bed promises. Installed here if missing (install-deps.sh installs it too).
java_home=/usr/lib/jvm/java-17-openjdk-$(dpkg --print-architecture)
if [ ! -x "$java_home/bin/java" ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends openjdk-17-jre-headless >/dev/null
fi
[ -x "$java_home/bin/java" ] || { echo "install-pyspark.sh: $java_home/bin/java missing (apt-get install openjdk-17-jre-headless)" >&2; exit 1; }

installed_version() {
  "$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("pyspark"))' 2>/dev/null || true
}

# A venv is complete only once the marker is written; a half-made one (an
# interrupted pip) is removed and built again.
version=""
if [ -f "$marker" ]; then
  version=$(installed_version)
fi
case "$version" in
  "$series".*) ;;
  *)
    rm -rf "$venv"
    mkdir -p "$(dirname "$venv")"
    chmod 0755 "$(dirname "$venv")"
    "$python" -m venv "$venv"
    # The pyspark sdist (3.5: ~300 MB, 4.x: ~450 MB) builds its wheel with
    # setuptools.
    "$venv/bin/pip" install --quiet --no-input --disable-pip-version-check \
      "pyspark==$series.*"
    version=$(installed_version)
    case "$version" in
      "$series".*) ;;
      *) echo "install-pyspark.sh: pip installed pyspark '$version', not $series.*" >&2; exit 1 ;;
    esac
    # Everyone reads everything and runs what is runnable; nobody but root writes.
    chmod -R a+rX,go-w "$venv"
    chmod a+x "$spark_home"/bin/*
    date -u +%FT%TZ >"$marker"
    ;;
esac

[ -x "$spark_home/bin/spark-submit" ] || {
  echo "install-pyspark.sh: $spark_home/bin/spark-submit missing: SPARK_HOME differs" >&2
  exit 1
}

# Check it as an unprivileged user, with nothing but SPARK_HOME and a PATH in
# which another python3 could come first, as kubesu runs it.
if ! out=$(runuser -u nobody -- env -i PATH=/usr/local/bin:/usr/bin:/bin \
  SPARK_HOME="$spark_home" JAVA_HOME="$java_home" HOME=/tmp "$venv/bin/spark-submit" --version 2>&1); then
  echo "install-pyspark.sh: spark-submit --version failed as nobody:" >&2
  echo "$out" >&2
  exit 1
fi
grep -q "version $series\." <<<"$out" || {
  echo "install-pyspark.sh: spark-submit --version does not report $series.x:" >&2
  echo "$out" >&2
  exit 1
}

echo "pyspark $version in $venv"
echo "SPARK_HOME=$spark_home"
echo "JAVA_HOME=$java_home"
