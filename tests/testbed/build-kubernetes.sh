#!/usr/bin/env bash
# Builds the test bed's Kubernetes once into a cache outside the repo and
# prints the directory of its binaries.
#
#   build-kubernetes.sh [current|1.20|kube-router]
#
#   current  (default) the release pinned by tests/testbed/kubernetes/go.mod,
#            built from Go modules through the module proxy with the ordinary
#            `go` command: kube-apiserver, kube-controller-manager,
#            kube-scheduler, kubelet, kube-proxy, kubectl, the etcd server
#            that release pins, and CoreDNS (tests/testbed/coredns/go.mod).
#   1.20     Debian's Kubernetes 1.20 source package: kube-apiserver and
#            kube-controller-manager only (the oldest release kubesu is
#            tested on; no node). Its etcd is Debian's etcd-server.
#   kube-router  the node's NetworkPolicy enforcement: kube-router, pinned by
#            tests/testbed/netpol/go.mod, in a cache directory of its own (a
#            new kube-router does not rebuild Kubernetes, nor the reverse).
#
#   KUBESU_TESTBED_CACHE  cache root (default /var/cache/kubesu-testbed)
#
# To move the bed to a newer release: change the k8s.io/kubernetes line and
# every k8s.io staging `replace` in kubernetes/go.mod (v1.X.Y <-> v0.X.Y), the
# etcd server to the version that release's go.mod pins, then
# `go mod tidy` in both module folders.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=${KUBESU_TESTBED_CACHE:-/var/cache/kubesu-testbed}
# Bump when the patches or build flags change, so old caches are not reused.
build_rev=1

log() { printf 'testbed-build: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

# --- the current release, from Go modules ----------------------------------

module_version() { # go.mod module
  awk -v m="$2" '$1 == "require" { $1 = ""; $0 = $0 } $1 == m && $2 ~ /^v/ { print $2; exit }' "$1"
}

# The go.mod files ask for Go 1.26; a go >= 1.21 fetches that toolchain
# through the module proxy by itself (GOTOOLCHAIN=auto).
require_go() {
  command -v go >/dev/null ||
    die "no \`go\` on PATH: install Go 1.21 or newer (it fetches the toolchain go.mod asks for through the module proxy)"
  local v
  v=$(go env GOVERSION 2>/dev/null || true)
  case "$v" in
    go1.2[1-9]* | go1.[3-9][0-9]* | go[2-9]*) ;;
    *) die "\`go\` on PATH is ${v:-too old to say} ($(command -v go)): the bed needs Go 1.21 or newer first on PATH" ;;
  esac
}

build_current() {
  local mods=$here/kubernetes version etcd_version coredns_version
  version=$(module_version "$mods/go.mod" k8s.io/kubernetes)
  etcd_version=$(module_version "$mods/go.mod" go.etcd.io/etcd/server/v3)
  coredns_version=$(module_version "$here/coredns/go.mod" github.com/coredns/coredns)
  [ -n "$version" ] && [ -n "$etcd_version" ] && [ -n "$coredns_version" ] ||
    die "cannot read the pinned versions from $mods/go.mod and $here/coredns/go.mod"
  local bin=$cache/kubernetes-$version-etcd-$etcd_version-coredns-$coredns_version-r$build_rev/bin
  local all=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl etcd coredns)
  local have=1 b
  for b in "${all[@]}"; do [ -x "$bin/$b" ] || have=; done
  if [ -n "$have" ]; then
    echo "$bin"
    return
  fi

  require_go
  log "building Kubernetes $version, etcd $etcd_version and CoreDNS $coredns_version from Go modules (cold: about 25 minutes on 2 cores)"
  mkdir -p "$cache"
  # Global: the EXIT trap reads it after this function has returned.
  work=$(mktemp -d "$cache/build.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  local buildlog=$cache/build-$version.log
  local minor=${version#v1.}
  minor=${minor%%.*}
  local v=k8s.io/component-base/version
  # What `make` would stamp: the version the binaries report (kubelet and the
  # API server check each other's), and a fixed date for a reproducible build.
  local ldflags="-s -w -X $v.gitVersion=$version -X $v.gitMajor=1 -X $v.gitMinor=$minor -X $v.gitTreeState=clean -X $v.buildDate=1970-01-01T00:00:00Z"
  mkdir -p "$work/bin"
  export CGO_ENABLED=0 GOFLAGS=-mod=readonly
  # Modules first, so a module the proxy does not serve is named as such.
  (cd "$mods" && go mod download) >"$buildlog" 2>&1 ||
    { tail -n 20 "$buildlog" >&2; die "step 'download Kubernetes modules' failed (log: $buildlog): is the Go module proxy reachable (go env GOPROXY)?"; }
  (cd "$here/coredns" && go mod download) >>"$buildlog" 2>&1 ||
    { tail -n 20 "$buildlog" >&2; die "step 'download CoreDNS modules' failed (log: $buildlog)"; }
  (
    cd "$mods"
    go build -trimpath -ldflags "$ldflags" -o "$work/bin/" \
      k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
      k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubelet \
      k8s.io/kubernetes/cmd/kube-proxy k8s.io/kubernetes/cmd/kubectl
    go build -trimpath -ldflags "-s -w" -o "$work/bin/etcd" ./cmd/etcd
    cd "$here/coredns"
    go build -trimpath -ldflags "-s -w" -o "$work/bin/coredns" .
  ) >>"$buildlog" 2>&1 || { tail -n 30 "$buildlog" >&2; die "step 'go build' failed (log: $buildlog)"; }
  for b in "${all[@]}"; do [ -x "$work/bin/$b" ] || die "the build made no $b (log: $buildlog)"; done
  mkdir -p "$(dirname "$bin")"
  rm -rf "$bin"
  mv "$work/bin" "$bin"
  log "cached in $bin"
  echo "$bin"
}

# --- kube-router, for NetworkPolicies ---------------------------------------

# Only its network policy controller runs (bed.sh), but the binary is the
# whole of kube-router: the command has no build without the other
# controllers.
build_kube_router() {
  local mods=$here/netpol version
  version=$(module_version "$mods/go.mod" github.com/cloudnativelabs/kube-router/v2)
  [ -n "$version" ] || die "cannot read the pinned kube-router version from $mods/go.mod"
  # Keyed by go.sum too: a dependency moved for a fix is a new build.
  local sum
  sum=$(cat "$mods/go.mod" "$mods/go.sum" | sha256sum | cut -c1-12)
  local bin=$cache/kube-router-$version-$sum-r$build_rev/bin
  if [ -x "$bin/kube-router" ]; then
    echo "$bin"
    return
  fi

  require_go
  log "building kube-router $version from Go modules (cold: about 6 minutes on 2 cores)"
  mkdir -p "$cache"
  work=$(mktemp -d "$cache/build.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  local buildlog=$cache/build-kube-router-$version.log
  mkdir -p "$work/bin"
  export CGO_ENABLED=0 GOFLAGS=-mod=readonly
  (cd "$mods" && go mod download) >"$buildlog" 2>&1 ||
    { tail -n 20 "$buildlog" >&2; die "step 'download kube-router modules' failed (log: $buildlog): is the Go module proxy reachable (go env GOPROXY)?"; }
  (
    cd "$mods"
    go build -trimpath -ldflags "-s -w -X github.com/cloudnativelabs/kube-router/v2/pkg/version.Version=$version -X github.com/cloudnativelabs/kube-router/v2/pkg/version.BuildDate=1970-01-01T00:00:00Z" \
      -o "$work/bin/" github.com/cloudnativelabs/kube-router/v2/cmd/kube-router
  ) >>"$buildlog" 2>&1 || { tail -n 30 "$buildlog" >&2; die "step 'go build kube-router' failed (log: $buildlog)"; }
  [ -x "$work/bin/kube-router" ] || die "the build made no kube-router (log: $buildlog)"
  mkdir -p "$(dirname "$bin")"
  rm -rf "$bin"
  mv "$work/bin" "$bin"
  log "cached in $bin"
  echo "$bin"
}

# --- Kubernetes 1.20, from Debian's source package -------------------------

# Debian's Go 1.19 (golang-go), named explicitly: the `go` first on PATH may
# be a newer one that this source does not build with.
debian_go=/usr/lib/go-1.19/bin

ensure_deb_src() {
  local f=/etc/apt/sources.list.d/kubesu-testbed-src.sources
  if ! grep -rqs '^Types:.*deb-src' /etc/apt/sources.list.d/ && ! grep -qs '^deb-src' /etc/apt/sources.list; then
    sed -e 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources >"$f"
    apt-get update -qq
  fi
}

fetch_source() {
  local dir=$1
  mkdir -p "$dir"
  (cd "$dir" && apt-get source --download-only -qq kubernetes >/dev/null)
  local orig
  orig=$(ls "$dir"/kubernetes_*.orig.tar.* | head -n1)
  mkdir -p "$dir/src"
  tar -xf "$orig" -C "$dir/src" --strip-components=1
}

# 1. vendored modern-go/reflect2 v1.0.1 reads runtime internals that changed in
#    Go 1.18 and panics decoding any map: replace it with Debian's v1.0.2.
# 2. Server-side apply of a Service port without `protocol` fails with HTTP 500
#    (which makes spark-submit 3.5+ delete its own driver pod). Upstream's fix
#    (kubernetes PR 98576) is a default marker that `make` turns into OpenAPI.
patch_source() {
  local src=$1
  local r2=/usr/share/gocode/src/github.com/modern-go/reflect2
  [ -d "$r2" ] || die "missing $r2 (package golang-github-modern-go-reflect2-dev)"
  rm -rf "$src/vendor/github.com/modern-go/reflect2"
  mkdir -p "$src/vendor/github.com/modern-go/reflect2"
  cp -r "$r2"/. "$src/vendor/github.com/modern-go/reflect2/"
  find "$src/vendor/github.com/modern-go/reflect2" -name '*_test.go' -delete
  sed -i 's#github.com/modern-go/reflect2 v1.0.1#github.com/modern-go/reflect2 v1.0.2#g' \
    "$src/go.mod" "$src/vendor/modules.txt"
  find "$src/staging" -name go.mod -exec sed -i 's#github.com/modern-go/reflect2 v1.0.1#github.com/modern-go/reflect2 v1.0.2#g' {} +

  local types=$src/staging/src/k8s.io/api/core/v1/types.go
  # Insert the marker on the Protocol field of `type ServicePort struct` only
  # (ContainerPort already has one); idempotent.
  awk '
    /^type ServicePort struct/ { in_sp = 1 }
    in_sp && /\/\/ \+default="TCP"/ { marked = 1 }
    in_sp && /^\tProtocol Protocol/ && !marked { print "\t// +default=\"TCP\""; marked = 1 }
    { print }
    in_sp && /^}/ { in_sp = 0 }
  ' "$types" >"$types.new"
  mv "$types.new" "$types"
  awk '/^type ServicePort struct/,/^}/' "$types" | grep -q '+default="TCP"' ||
    die "could not patch ServicePort.Protocol"
}

make_debian() {
  local src=$1 out=$2 version=$3
  local gopath=$work/gopath
  mkdir -p "$gopath/src/k8s.io"
  ln -sfn "$src" "$gopath/src/k8s.io/kubernetes"
  (
    cd "$gopath/src/k8s.io/kubernetes"
    export PATH=$debian_go:$PATH
    export GOPATH=$gopath GO111MODULE=off CGO_ENABLED=0 GOFLAGS=-mod=vendor GOTOOLCHAIN=local
    export GOCACHE=$cache/gocache-1.19
    export KUBE_GIT_VERSION=v$version KUBE_GIT_TREE_STATE=clean
    make WHAT="cmd/kube-apiserver cmd/kube-controller-manager" >"$work/make.log" 2>&1 ||
      { tail -n 60 "$work/make.log" >&2; exit 1; }
  )
  mkdir -p "$out"
  for b in kube-apiserver kube-controller-manager; do
    install -m 0755 "$src/_output/local/go/bin/$b" "$out/$b"
  done
}

build_debian() {
  [ -x "$debian_go/go" ] || die "missing $debian_go/go (package golang-go, from install-deps.sh)"
  ensure_deb_src
  local version
  version=$(apt-cache showsrc kubernetes 2>/dev/null | awk '/^Version:/ { print $2; exit }' | sed 's/-.*//')
  [ -n "$version" ] || die "no kubernetes source package in the apt sources"
  # Debian versions it "1.20.5+really1.20.2": the code is the latter.
  version=${version#*really}
  local bin=$cache/$version-r$build_rev/bin
  if [ -x "$bin/kube-apiserver" ] && [ -x "$bin/kube-controller-manager" ]; then
    echo "$bin"
    return
  fi
  log "building Kubernetes $version from Debian's source (cold build: about 10 minutes on 2 cores)"
  mkdir -p "$cache"
  work=$(mktemp -d "$cache/build.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  fetch_source "$work"
  patch_source "$work/src"
  make_debian "$work/src" "$work/bin" "$version"
  mkdir -p "$(dirname "$bin")"
  rm -rf "$bin"
  mv "$work/bin" "$bin"
  log "cached in $bin"
  echo "$bin"
}

case ${1:-current} in
  current) build_current ;;
  1.20) build_debian ;;
  kube-router) build_kube_router ;;
  *) die "usage: $0 [current|1.20|kube-router]" ;;
esac
