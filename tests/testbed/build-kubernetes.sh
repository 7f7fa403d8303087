#!/usr/bin/env bash
# Builds kube-apiserver and kube-controller-manager from Debian's Kubernetes
# source package, once, into a cache outside the repo. Prints the bin dir.
#
#   KUBESU_TESTBED_CACHE  cache root (default /var/cache/kubesu-testbed)
#
# The source needs two fixes to work under Go >= 1.18; see patch_source.
set -euo pipefail

cache=${KUBESU_TESTBED_CACHE:-/var/cache/kubesu-testbed}
# Bump when the patches or build flags change, so old caches are not reused.
build_rev=1

log() { printf 'testbed-build: %s\n' "$*" >&2; }

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
  [ -d "$r2" ] || { log "missing $r2 (package golang-github-modern-go-reflect2-dev)"; exit 1; }
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
    { log "could not patch ServicePort.Protocol"; exit 1; }
}

build() {
  local src=$1 out=$2
  local gopath=$work/gopath
  mkdir -p "$gopath/src/k8s.io"
  ln -sfn "$src" "$gopath/src/k8s.io/kubernetes"
  (
    cd "$gopath/src/k8s.io/kubernetes"
    export GOPATH=$gopath GO111MODULE=off CGO_ENABLED=0 GOFLAGS=-mod=vendor
    export GOCACHE=$cache/gocache
    export KUBE_GIT_VERSION=v$version KUBE_GIT_TREE_STATE=clean
    make WHAT="cmd/kube-apiserver cmd/kube-controller-manager" >"$work/make.log" 2>&1 ||
      { tail -n 60 "$work/make.log" >&2; exit 1; }
  )
  mkdir -p "$out"
  for b in kube-apiserver kube-controller-manager; do
    install -m 0755 "$src/_output/local/go/bin/$b" "$out/$b"
  done
}

main() {
  ensure_deb_src
  version=$(apt-cache showsrc kubernetes 2>/dev/null | awk '/^Version:/ { print $2; exit }' | sed 's/-.*//')
  [ -n "$version" ] || { log "no kubernetes source package in the apt sources"; exit 1; }
  # Debian versions it "1.20.5+really1.20.2": the code is the latter.
  version=${version#*really}
  local bin=$cache/$version-r$build_rev/bin
  if [ -x "$bin/kube-apiserver" ] && [ -x "$bin/kube-controller-manager" ]; then
    echo "$bin"
    return
  fi
  log "building Kubernetes $version (cold build: about 10 minutes on 2 cores)"
  work=$(mktemp -d "$cache/build.XXXXXX" 2>/dev/null || { mkdir -p "$cache"; mktemp -d "$cache/build.XXXXXX"; })
  trap 'rm -rf "$work"' EXIT
  fetch_source "$work"
  patch_source "$work/src"
  build "$work/src" "$work/bin"
  mkdir -p "$(dirname "$bin")"
  rm -rf "$bin"
  mv "$work/bin" "$bin"
  log "cached in $bin"
  echo "$bin"
}

main "$@"
