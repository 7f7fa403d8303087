#!/usr/bin/env bash
# Creates, idempotently, the accounts the tests use:
#   kubesu-svc            the platform's service user, the only sudo caller
#   alice, bob, carol     end users in kubesu-users (alice, bob in team-red;
#                         bob also in team-blue)
#   dave                  an end user whose namespace the tests pre-create
#   erin                  an end user whose runs the tests only ever refuse
#   mallory               a user outside kubesu-users
#   lowuid                in kubesu-users, but uid below the minimum (1000)
#   frank                 an end user whose runs tests/security.rs only ever
#                         refuses (so no object or file of frank's may exist)
#   grace                 an end user of the fault tests (tests/faults.rs)
#   heidi, ivan           end users of the namespace policy tests
#                         (tests/tenancy.rs; ivan's runs never get a command)
#   a_b, a-b              end users whose names collide after mangling
#   toor                  uid 0 under another name, in kubesu-users: must be
#                         refused as root (no password, no home, nologin)
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
user frank 3008 kubesu-users
user grace 3011 kubesu-users
user heidi 3012 kubesu-users
user ivan 3013 kubesu-users
user a_b 3009 kubesu-users
user a-b 3010 kubesu-users
if ! getent passwd toor >/dev/null; then
  # After root in /etc/passwd, so uid 0 still resolves to root; locked password.
  useradd --non-unique --uid 0 --gid 0 --no-create-home --home-dir /nonexistent \
    --shell /usr/sbin/nologin toor
fi
usermod --groups kubesu-users toor
