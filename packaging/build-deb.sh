#!/usr/bin/env bash
# Builds the Debian package with cargo-deb (installed from crates.io if
# missing) and prints the .deb's path on stdout; cargo's output goes to stderr.
# What goes in is [package.metadata.deb] in Cargo.toml.
#
#   bash packaging/build-deb.sh [cargo-deb options...]
#   dpkg -i "$(bash packaging/build-deb.sh)"
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! cargo deb --version >/dev/null 2>&1; then
  echo "build-deb.sh: installing cargo-deb (a few minutes, once)" >&2
  cargo install cargo-deb --locked >&2
fi
# dpkg-shlibdeps (dpkg-dev) computes the package's library dependencies.
command -v dpkg-shlibdeps >/dev/null || echo "build-deb.sh: dpkg-dev is missing: Depends will lack libc6" >&2

out=target/debian
mkdir -p "$out"
# cargo-deb prints the path of the package it wrote as its last line.
deb=$(cargo deb --output "$out" "$@" -- --locked | tail -n 1)
[ -f "$deb" ] || { echo "build-deb.sh: cargo deb did not report a package (got: $deb)" >&2; exit 1; }
echo "$deb"
