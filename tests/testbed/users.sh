#!/usr/bin/env bash
# Creates, idempotently, the accounts the tests use:
#   kubesu-svc            the platform's service user, the only sudo caller
#   alice, bob, carol     end users in kubesu-users (alice, bob in team-red;
#                         bob also in team-blue)
#   dave                  an end user whose namespace the tests pre-create
#   erin                  an end user whose runs the tests only ever refuse
#   mallory               a user outside kubesu-users
#   lowuid                in kubesu-users, but uid below the minimum (1000)
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "users.sh: run as root" >&2; exit 1; }

group() { getent group "$1" >/dev/null || groupadd "$@"; }
user() { # name uid groups
  local name=$1 uid=$2 groups=$3
  if ! getent passwd "$name" >/dev/null; then
    useradd --create-home --shell /bin/bash --uid "$uid" --user-group "$name"
  fi
  [ -n "$groups" ] && usermod --groups "$groups" "$name"
  return 0
}

group kubesu-users
group team-red
group team-blue
user kubesu-svc 2990 ""
user alice 3001 kubesu-users,team-red
user bob 3002 kubesu-users,team-red,team-blue
user carol 3003 kubesu-users
user mallory 3004 ""
user dave 3006 kubesu-users
user erin 3007 kubesu-users
user lowuid 990 kubesu-users
