#!/usr/bin/env bash
# Builds the node's container runtime and its images once, into a cache
# outside the repo, and prints the bin dir (logs go to stderr):
#
#   $cache/node-containerd<version>-r<rev>/bin/      containerd, containerd-shim-runc-v2, ctr, runc
#   $cache/node-containerd<version>-r<rev>/images/   pause.tar, busybox.tar (OCI archives)
#
# Images (names as containerd stores them; see oci-image.sh):
#   registry.k8s.io/pause:3.10   the pod sandbox: a static pause of our own (pause.c)
#   kubesu.test/busybox:1.35     Debian's busybox-static, for test pods (sh, wget, nc, ...)
#
#   KUBESU_TESTBED_CACHE  cache root (default /var/cache/kubesu-testbed)
#   KUBESU_TESTBED_GO     the go command (default: go; Go 1.21 or newer fetches
#                         the toolchain node/go.mod names through the proxy)
#
# Why containerd 2.x, built here, and not Debian 12's 1.6.20: containerd 1.x
# lacks the CRI RuntimeConfig call. The kubelet 1.37 asks it for the cgroup
# driver, still falls back to its own cgroupDriver setting when the call is
# unimplemented, and announces (kubelet_cri_losing_support{version="1.38.0"})
# that 1.38 will refuse to start instead; containerd 1.6 is also outside the
# versions Kubernetes 1.37 is released against. containerd 2.4 still supports
# cgroup v1 (deprecated, maintained until 2029).
#
# runc, the CNI plugins (bridge, host-local, loopback, portmap) and iptables
# are Debian's: runc 1.1.5 runs containers for containerd 2.4 on this cgroup
# v1 machine, and CNI plugins 1.1.1 speak the CNI 1.0.0 config node.sh writes.
#
# Run as root (it installs packages). Safe to run again.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=${KUBESU_TESTBED_CACHE:-/var/cache/kubesu-testbed}
go=${KUBESU_TESTBED_GO:-go}
# Bump when build flags, pause.c or the images change, so old caches are not reused.
build_rev=1
packages=(runc containernetworking-plugins iptables gcc libc6-dev busybox-static)
logs=$cache/node-logs

log() { printf 'testbed-node: %s\n' "$*" >&2; }

# step NAME CAUSE COMMAND...: runs COMMAND with its output in $logs/NAME.log;
# on failure stops with the step, the log and the likely cause.
step() {
  local name=$1 cause=$2
  shift 2
  mkdir -p "$logs"
  # In the background, so that set -e holds inside COMMAND (it is off in
  # anything run as an `if` condition) and its first failure ends it.
  "$@" >"$logs/$name.log" 2>&1 &
  if ! wait $!; then
    log "step '$name' failed; last lines of $logs/$name.log:"
    tail -n 25 "$logs/$name.log" >&2 || true
    log "likely cause: $cause"
    exit 1
  fi
}

install_packages() {
  local missing=() p
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# node/go.mod asks for Go 1.26.6; a go of 1.21 or newer fetches that
# toolchain through the module proxy itself (GOTOOLCHAIN=auto). Debian 12's
# golang-go (1.19) cannot.
require_go() {
  local v
  v=$("$go" env GOVERSION 2>/dev/null) ||
    { log "no go command '$go': install Go 1.21 or newer, or set KUBESU_TESTBED_GO"; exit 1; }
  if ! [[ $v =~ ^go1\.([0-9]+) ]] || ((BASH_REMATCH[1] < 21)); then
    log "'$go' is $v: containerd needs Go 1.21 or newer (first on PATH, or KUBESU_TESTBED_GO)"
    exit 1
  fi
}

build_containerd() { # out-bin-dir
  local out=$1
  cd "$here/node"
  "$go" version
  # CGO off: nothing the node uses needs it (btrfs is the only cgo snapshotter,
  # and is left out with devmapper and zfs, which this machine has not).
  CGO_ENABLED=0 GOCACHE=$cache/gocache GOFLAGS=-mod=readonly \
    "$go" build -p 1 -trimpath -tags 'no_btrfs no_devmapper no_zfs' \
    -ldflags "-s -w -X github.com/containerd/containerd/v2/version.Version=v$containerd_version" \
    -o "$out/" \
    github.com/containerd/containerd/v2/cmd/containerd \
    github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2 \
    github.com/containerd/containerd/v2/cmd/ctr
  "$out/containerd" --version
}

# The pod sandbox image: one static binary, nothing else in the root.
build_pause() { # work-dir images-dir
  local work=$1 images=$2
  mkdir -p "$work/pause-root"
  gcc -O2 -Wall -Wextra -Werror -static -o "$work/pause-root/pause" "$here/pause.c"
  strip "$work/pause-root/pause"
  chmod 0755 "$work/pause-root"
  bash "$here/oci-image.sh" archive "$images/pause.tar" registry.k8s.io/pause:3.10 \
    --entrypoint /pause --user 65535:65535 "$work/pause-root"
}

# A small image for test pods: busybox's applets, root and nobody, a /tmp.
build_busybox() { # work-dir images-dir
  local work=$1 images=$2 root=$1/busybox-root applet
  mkdir -p "$root/bin" "$root/etc" "$root/tmp" "$root/root"
  chmod 0755 "$root" "$root/bin" "$root/etc"
  chmod 1777 "$root/tmp"
  chmod 0700 "$root/root"
  install -m 0755 /bin/busybox "$root/bin/busybox"
  for applet in $(/bin/busybox --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$root/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
  chmod 0644 "$root/etc/passwd" "$root/etc/group"
  bash "$here/oci-image.sh" archive "$images/busybox.tar" kubesu.test/busybox:1.35 \
    --env PATH=/bin --cmd sh "$root"
}

main() {
  [ "$(id -u)" = 0 ] || { log "run as root (it installs packages)"; exit 1; }
  step apt "the Debian archive is unreachable or apt's lists are stale (apt-get update)" install_packages
  containerd_version=$(grep -oE 'github\.com/containerd/containerd/v2 v[0-9][^ ]*' "$here/node/go.mod" | head -n1 | sed 's/.* v//')
  [ -n "$containerd_version" ] || { log "no containerd version in $here/node/go.mod"; exit 1; }
  local top=$cache/node-containerd$containerd_version-r$build_rev
  if [ -f "$top/done" ]; then
    echo "$top/bin"
    return
  fi
  require_go
  log "building containerd $containerd_version and the node's images (cold: about 10 minutes on 2 cores)"
  mkdir -p "$cache"
  work=$(mktemp -d "$cache/node-build.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  mkdir -p "$work/top/bin" "$work/top/images"
  step containerd "a module missing from the Go proxy, or a go older than node/go.mod's (set KUBESU_TESTBED_GO)" \
    build_containerd "$work/top/bin"
  ln -s /usr/sbin/runc "$work/top/bin/runc"
  step pause-image "gcc or libc6-dev (static libc) missing, or no space in $cache" \
    build_pause "$work" "$work/top/images"
  step busybox-image "busybox-static missing, or no space in $cache" \
    build_busybox "$work" "$work/top/images"
  touch "$work/top/done"
  rm -rf "$top"
  mv "$work/top" "$top"
  log "cached in $top"
  echo "$top/bin"
}

main "$@"
