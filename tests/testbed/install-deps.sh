#!/usr/bin/env bash
# Installs, idempotently, the Debian packages the test bed and the tests need.
# Run as root. Safe to run again: it does nothing when all is present.
set -euo pipefail

packages=(etcd-server golang-go rsync make sudo openssl dpkg-dev openjdk-17-jre-headless debootstrap
  golang-github-modern-go-reflect2-dev curl procps python3-venv rsyslog man-db
  iproute2 iptables conntrack ipset)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

if ((${#missing[@]})); then
  # Debian starts etcd as a system service on install; the bed runs its own.
  # A policy-rc.d that refuses starts keeps the system etcd from ever running.
  policy=/usr/sbin/policy-rc.d
  created_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 0755 "$policy"
    created_policy=1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  ((created_policy)) && rm -f "$policy"
fi

# If a system etcd came up anyway (an older install), stop it: it would hold
# port 2379 and hide a bed that failed to start.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet etcd 2>/dev/null; then
  systemctl stop etcd || true
  systemctl disable etcd || true
fi
exit 0
