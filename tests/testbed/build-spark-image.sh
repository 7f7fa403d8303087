#!/usr/bin/env bash
# Builds, once per pyspark release, the Spark image the bed's node runs for
# cluster-mode drivers and for executors: no registry is reachable here, so it
# is made from Debian's packages and the pyspark of PyPI that
# install-pyspark.sh puts in /var/cache/kubesu-testbed/pyspark-SERIES.
#
#   bash tests/testbed/build-spark-image.sh [SERIES]     (default 3.5; e.g. 4.3)
#
# Prints two lines: the OCI image archive and the image name,
#
#   /var/cache/kubesu-testbed/images/spark-3.5.9.tar
#   kubesu.test/spark:3.5.9
#
# to import with `oci-image.sh import ARCHIVE` and to give Spark as
# spark.kubernetes.container.image. Run as root. Cached: it does nothing when
# the archive for that release and this recipe exists.
#
# The image, two layers:
#   1. Debian bookworm (debootstrap --variant=minbase) with
#      openjdk-17-jre-headless, python3, tini and procps, and the user spark
#      (uid 185, gid 185, as in Spark's own images). Built once and cached as
#      a tarball shared by every release, so its layer is the same blob in
#      every image.
#   2. Spark: the pyspark package of the venv as SPARK_HOME=/opt/spark (jars/,
#      bin/, ...), importable by /usr/bin/python3 together with py4j (for the
#      driver's python and the executors' python workers);
#      /opt/entrypoint.sh (spark-image/entrypoint.sh: `driver`, `executor` or
#      any command, under tini); /opt/kubesu/pi.py (spark-image/pi.py, SparkPi
#      in PySpark: local:///opt/kubesu/pi.py); /opt/spark/work-dir, the
#      working directory, owned by 185.
#   USER 185, JAVA_HOME Debian's JVM, PYSPARK_PYTHON=/usr/bin/python3.
#
# Before an archive is cached, the image's tree is checked in a chroot as uid
# 185: java -version, import pyspark, and pi.py in local mode through the
# entrypoint, which must print "Pi is roughly 3.1".
#
# Environment: KUBESU_DEBIAN_MIRROR (default http://deb.debian.org/debian).
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "build-spark-image.sh: run as root" >&2; exit 1; }
umask 022

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
series=${1:-3.5}
cache=/var/cache/kubesu-testbed/images
mirror=${KUBESU_DEBIAN_MIRROR:-http://deb.debian.org/debian}
suite=bookworm
arch=$(dpkg --print-architecture)
base_packages=(openjdk-17-jre-headless python3 tini procps)
# Raise when the base recipe below changes in a way its package list does
# not show: the cached base is then built again.
base_revision=2

log() { printf 'build-spark-image: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

# --- the pyspark venv --------------------------------------------------------

out=$(bash "$here/install-pyspark.sh" "$series") ||
  die "install-pyspark.sh $series failed (see above)"
spark_src=$(sed -n 's/^SPARK_HOME=//p' <<<"$out")
version=$(sed -n 's/^pyspark \([^ ]*\) in .*/\1/p' <<<"$out")
[[ $version =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] ||
  die "install-pyspark.sh reported pyspark '$version', not a release such as 3.5.9"
site=$(dirname "$spark_src")
[ -d "$site/py4j" ] || die "no py4j beside $spark_src: install-pyspark.sh's venv differs"
image=kubesu.test/spark:$version

# An archive is reused only if it was built from this recipe: this script,
# the entrypoint, pi.py and the base.
base_key=$(printf '%s\n' "$suite" "$arch" "$base_revision" "${base_packages[@]}" |
  sha256sum | cut -c1-12)
recipe=$(cat "${BASH_SOURCE[0]}" "$here/spark-image/entrypoint.sh" "$here/spark-image/pi.py" \
  "$here/oci-image.sh" | sha256sum | cut -c1-12)
archive=$cache/spark-$version.tar
base_tar=$cache/base-$suite-$base_key.tar

mkdir -p "$cache"
chmod 0755 "$(dirname "$cache")" "$cache"
# One build at a time (a 3.5 and a 4.x build would both make the base).
exec 9>"$cache/.lock"
flock 9
# Scratch space of a build that was killed (its mounts are not followed).
rm -rf --one-file-system "$cache"/.build.* 2>/dev/null || true

if [ -f "$archive" ] && [ "$(cat "$archive.recipe" 2>/dev/null)" = "$recipe-$base_key" ]; then
  printf '%s\n%s\n' "$archive" "$image"
  exit 0
fi

# --- scratch space and mounts, always undone ---------------------------------

work=$(mktemp -d "$cache/.build.XXXXXX")
# Logs outlive the scratch space: a failed step names one to read.
logs=$cache/log
mkdir -p "$logs"
mounts=()
mount_into() { # mount args... target
  mount "$@"
  mounts+=("${!#}")
}
umount_all() { # innermost first
  local i
  for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do
    umount "${mounts[i]}" 2>/dev/null || umount -l "${mounts[i]}" 2>/dev/null || true
  done
  mounts=()
}
cleanup() {
  umount_all
  rm -rf --one-file-system "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# --- layer 1: the Debian base, cached -----------------------------------------

build_base() {
  local root=$work/base-build started=$SECONDS
  command -v debootstrap >/dev/null || {
    log "installing debootstrap"
    { apt-get update -qq &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null; } ||
      die "apt-get install debootstrap failed"
  }
  log "debootstrap $suite (minbase) from $mirror: log in $logs/debootstrap.log"
  debootstrap --variant=minbase --arch="$arch" "$suite" "$root" "$mirror" >"$logs/debootstrap.log" 2>&1 || {
    tail -n 20 "$logs/debootstrap.log" "$root/debootstrap/debootstrap.log" >&2 2>/dev/null || true
    die "debootstrap failed (mirror $mirror unreachable? see above)"
  }
  # Security and point-release updates: the JVM gets its fixes there.
  printf '%s\n' \
    "deb $mirror $suite main" \
    "deb $mirror $suite-updates main" \
    "deb http://deb.debian.org/debian-security $suite-security main" >"$root/etc/apt/sources.list"
  # No documentation, manual pages or translations: nobody reads them in a
  # container. OpenJDK's postinst links manual pages, so man1 must exist.
  cat >"$root/etc/dpkg/dpkg.cfg.d/kubesu-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
EOF
  mkdir -p "$root/usr/share/man/man1"
  printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
  chmod 0755 "$root/usr/sbin/policy-rc.d"
  cp /etc/resolv.conf "$root/etc/resolv.conf"
  mount_into -t proc proc "$root/proc"
  mount_into --bind /dev "$root/dev"
  log "installing ${base_packages[*]} in the base: log in $logs/base-apt.log"
  chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
    sh -c "apt-get update && apt-get install -y --no-install-recommends ${base_packages[*]}" \
    >"$logs/base-apt.log" 2>&1 || { tail -n 30 "$logs/base-apt.log" >&2; die "apt-get install in the base failed"; }
  chroot "$root" groupadd --system --gid 185 spark
  chroot "$root" useradd --system --uid 185 --gid 185 --no-create-home --home-dir /opt/spark/work-dir \
    --shell /bin/bash --comment 'Spark' spark
  umount_all
  # Never empty a directory that is still the host's /dev.
  ! mountpoint -q "$root/dev" && ! mountpoint -q "$root/proc" ||
    die "$root/dev or $root/proc still mounted after the build"
  # What only the build needed, and what the container runtime provides.
  chroot "$root" apt-get clean
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/log/*.log "$root"/var/log/apt/* \
    "$root"/var/cache/debconf/*-old "$root"/usr/sbin/policy-rc.d "$root"/debootstrap
  # The exclusions above came after debootstrap's own packages: remove theirs.
  rm -rf "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/locale/*
  find "$root/usr/share/doc" ! -type d ! -name copyright -delete
  : >"$root/etc/resolv.conf"
  rm -rf --one-file-system "$root"/dev/* "$root"/tmp/* "$root"/run/* "$root"/proc/* "$root"/sys/*
  tar -C "$root" --numeric-owner --xattrs --xattrs-include=security.capability \
    -cf "$work/base.tar" .
  rm -f "$cache/base-$suite-"*.tar # of an older recipe
  mv "$work/base.tar" "$base_tar"
  rm -rf --one-file-system "$root"
  log "base built in $((SECONDS - started))s: $base_tar ($(du -h "$base_tar" | cut -f1))"
}

[ -f "$base_tar" ] || build_base
mkdir "$work/base"
tar -C "$work/base" --numeric-owner --xattrs --xattrs-include=security.capability -xf "$base_tar" ||
  die "cannot unpack $base_tar: remove it and run again"

# --- layer 2: Spark ------------------------------------------------------------

started=$SECONDS
spark=$work/spark
dist=$spark/usr/lib/python3/dist-packages
mkdir -p "$spark/opt/kubesu" "$dist"
# --no-preserve=ownership: everything root's; the venv may have been built
# under another umask, so modes are set below too.
cp -a --no-preserve=ownership "$spark_src" "$spark/opt/spark"
cp -a --no-preserve=ownership "$site/py4j" "$dist/py4j"
# The pyspark package is SPARK_HOME itself; python finds it through this link.
ln -s /opt/spark "$dist/pyspark"
mkdir -p "$spark/opt/spark/conf" "$spark/opt/spark/work-dir"
install -m 0755 "$here/spark-image/entrypoint.sh" "$spark/opt/entrypoint.sh"
install -m 0644 "$here/spark-image/pi.py" "$spark/opt/kubesu/pi.py"
chmod -R a+rX,go-w "$spark/opt" "$dist/py4j"
chmod a+x "$spark/opt/spark/bin"/* "$spark/opt/spark/sbin"/*
chown 185:185 "$spark/opt/spark/work-dir"
chmod 0775 "$spark/opt/spark/work-dir"
# Parent directories in the layer must look like the base's.
chmod 0755 "$spark/opt" "$spark/usr" "$spark/usr/lib" "$spark/usr/lib/python3" "$dist"

# --- check the tree as the node will run it ------------------------------------

# The two layers merged (overlayfs, as containerd's snapshotter), with the
# writable layer, /proc, /dev and the host's name service that a pod gets.
check_image() {
  local root=$work/check out
  mkdir -p "$root" "$work/upper" "$work/overlay-work"
  mount_into -t overlay overlay \
    -o "lowerdir=$spark:$work/base,upperdir=$work/upper,workdir=$work/overlay-work" "$root"
  mount_into -t proc proc "$root/proc"
  mount_into --bind /dev "$root/dev"
  cp /etc/hosts "$root/etc/hosts"
  as_spark() {
    chroot --userspec=185:185 "$root" /usr/bin/env -i \
      PATH=/opt/spark/bin:/usr/local/bin:/usr/bin:/bin HOME=/opt/spark/work-dir \
      SPARK_HOME=/opt/spark JAVA_HOME="/usr/lib/jvm/java-17-openjdk-$arch" \
      PYSPARK_PYTHON=/usr/bin/python3 SPARK_LOCAL_IP=127.0.0.1 LANG=C.UTF-8 \
      sh -c 'cd /opt/spark/work-dir && exec "$@"' sh "$@"
  }
  out=$(as_spark java -version 2>&1) || die "java -version fails in the image: $out"
  grep -q 'version "17' <<<"$out" || die "the image's java is not 17: $out"
  out=$(as_spark python3 -c 'import pyspark, py4j; print(pyspark.__version__)' 2>&1) ||
    die "import pyspark fails in the image: $out"
  [ "$out" = "$version" ] || die "the image's pyspark is '$out', not $version"
  log "checking pi.py in local mode in the image (uid 185): log in $logs/pi-$version.log"
  as_spark /opt/entrypoint.sh spark-submit --master 'local[2]' /opt/kubesu/pi.py 4 \
    >"$logs/pi-$version.log" 2>&1 || { tail -n 30 "$logs/pi-$version.log" >&2; die "pi.py failed in the image"; }
  grep -q '^Pi is roughly 3\.1' "$logs/pi-$version.log" ||
    { tail -n 30 "$logs/pi-$version.log" >&2; die "pi.py did not print 'Pi is roughly 3.1'"; }
  umount_all
}
check_image

# --- the archive ----------------------------------------------------------------

labels=(--label "org.opencontainers.image.title=kubesu test bed Spark"
  --label "org.opencontainers.image.version=$version"
  --label "io.kubesu.recipe=$recipe-$base_key")
bash "$here/oci-image.sh" archive "$work/image.tar" "$image" \
  --entrypoint /opt/entrypoint.sh \
  --user 185 --workdir /opt/spark/work-dir \
  --env "PATH=/opt/spark/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
  --env "JAVA_HOME=/usr/lib/jvm/java-17-openjdk-$arch" \
  --env "SPARK_HOME=/opt/spark" \
  --env "PYSPARK_PYTHON=/usr/bin/python3" \
  --env "LANG=C.UTF-8" \
  "${labels[@]}" \
  "$work/base" "$spark" || die "oci-image.sh archive failed for $image"
mv "$work/image.tar" "$archive"
printf '%s\n' "$recipe-$base_key" >"$archive.recipe"
log "built $image in $((SECONDS - started))s: $archive ($(du -h "$archive" | cut -f1))"
printf '%s\n%s\n' "$archive" "$image"
