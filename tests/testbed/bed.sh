#!/usr/bin/env bash
# A real Kubernetes control plane on 127.0.0.1: etcd, kube-apiserver and
# kube-controller-manager. No nodes: pods stay Pending, which is all kubesu's
# tests need.
#
#   bed.sh up     build (cached) and start; writes $dir/admin.kubeconfig
#   bed.sh down   stop exactly the processes this bed started
#   bed.sh env    print the variables tests read, for `eval`
#   bed.sh stop-apiserver | start-apiserver   for fault tests
#
# Environment (two beds can run side by side with different values):
#   KUBESU_TESTBED_DIR        state directory (default /var/tmp/kubesu-testbed)
#   KUBESU_TESTBED_API_PORT   kube-apiserver port (default 16443)
#   KUBESU_TESTBED_ETCD_PORT  etcd client port (default 12379; peer port +1)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
dir=${KUBESU_TESTBED_DIR:-/var/tmp/kubesu-testbed}
api_port=${KUBESU_TESTBED_API_PORT:-16443}
etcd_port=${KUBESU_TESTBED_ETCD_PORT:-12379}
etcd_peer_port=$((etcd_port + 1))
server=https://127.0.0.1:$api_port

log() { printf 'testbed: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

# --- certificates -----------------------------------------------------------

sign() { # name subject ca [extfile-content]
  local name=$1 subj=$2 ca=$3 ext=${4:-}
  openssl genrsa -out "$pki/$name.key" 2048 2>/dev/null
  openssl req -new -key "$pki/$name.key" -subj "$subj" -out "$pki/$name.csr" 2>/dev/null
  printf '%s\n' "$ext" >"$pki/$name.ext"
  openssl x509 -req -in "$pki/$name.csr" -CA "$pki/$ca.crt" -CAkey "$pki/$ca.key" \
    -CAcreateserial -days 3650 -sha256 -extfile "$pki/$name.ext" -out "$pki/$name.crt" 2>/dev/null
  rm -f "$pki/$name.csr" "$pki/$name.ext"
}

make_ca() { # name cn
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$pki/$1.key" -out "$pki/$1.crt" \
    -days 3650 -subj "/CN=$2" 2>/dev/null
}

make_pki() {
  pki=$dir/pki
  [ -f "$pki/done" ] && return
  rm -rf "$pki"
  mkdir -p "$pki"
  chmod 0700 "$pki"
  make_ca ca kubesu-testbed-ca
  make_ca front-proxy-ca kubesu-testbed-front-proxy-ca
  local client='extendedKeyUsage=clientAuth'
  sign apiserver /CN=kube-apiserver ca "$(printf '%s\n%s' 'extendedKeyUsage=serverAuth' \
    'subjectAltName=IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc')"
  sign admin "/O=system:masters/CN=kubesu-testbed-admin" ca "$client"
  sign controller-manager /CN=system:kube-controller-manager ca "$client"
  sign front-proxy-client /CN=front-proxy-client front-proxy-ca "$client"
  openssl genrsa -out "$pki/sa.key" 2048 2>/dev/null
  openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
  touch "$pki/done"
}

# Client certificates for kubesu's own identity (user "kubesu", given exactly
# what `kubesu rbac` prints by install-kubesu.sh) and for an identity without
# any RBAC ("nobody-kubesu", for `kubesu check`'s tests), with a kubeconfig
# each. Created even when the rest of the pki is cached.
make_identities() {
  local user
  for user in kubesu nobody-kubesu; do
    [ -f "$pki/$user.crt" ] || sign "$user" "/CN=$user" ca 'extendedKeyUsage=clientAuth'
    kubeconfig "$dir/$user.kubeconfig" "$user"
  done
}

kubeconfig() { # file cert-name
  local b64='base64 -w0'
  cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: testbed
  cluster:
    server: $server
    certificate-authority-data: $($b64 <"$pki/ca.crt")
users:
- name: $2
  user:
    client-certificate-data: $($b64 <"$pki/$2.crt")
    client-key-data: $($b64 <"$pki/$2.key")
contexts:
- name: testbed
  context: {cluster: testbed, user: $2}
current-context: testbed
EOF
  chmod 0600 "$1"
}

# --- processes --------------------------------------------------------------

# A pid file holds "pid starttime": a recycled pid is never mistaken for ours.
start_time() { awk '{ print $22 }' "/proc/$1/stat" 2>/dev/null; }

is_ours() { # name
  local f=$dir/run/$1.pid pid st
  [ -f "$f" ] || return 1
  read -r pid st <"$f"
  [ -n "$pid" ] && [ "$(start_time "$pid")" = "$st" ]
}

launch() { # name binary args...
  local name=$1
  shift
  setsid "$@" >"$dir/log/$name.log" 2>&1 </dev/null &
  local pid=$!
  # Wait for the exec to be visible in /proc before reading the start time.
  sleep 0.05
  printf '%s %s\n' "$pid" "$(start_time "$pid")" >"$dir/run/$name.pid"
}

fail_with_log() { # name message
  log "$2; last lines of $dir/log/$1.log:"
  tail -n 30 "$dir/log/$1.log" >&2 || true
  stop_all
  exit 1
}

wait_for() { # name seconds command...
  local name=$1 secs=$2
  shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    is_ours "$name" || fail_with_log "$name" "$name exited during start-up"
    ((SECONDS < deadline)) || fail_with_log "$name" "$name not ready after ${secs}s"
    sleep 0.3
  done
}

stop_one() { # name
  local f=$dir/run/$1.pid pid st
  [ -f "$f" ] || return 0
  read -r pid st <"$f"
  if is_ours "$1"; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do is_ours "$1" || break; sleep 0.1; done
    is_ours "$1" && kill -KILL "$pid" 2>/dev/null
  fi
  rm -f "$f"
}

stop_all() {
  stop_one kube-controller-manager
  stop_one kube-apiserver
  stop_one etcd
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# --- commands ---------------------------------------------------------------

start_apiserver() { # bin-dir
  local bin=$1
  launch kube-apiserver "$bin/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$etcd_port" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$api_port" --insecure-port 0 \
    --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
    --client-ca-file "$pki/ca.crt" \
    --authorization-mode Node,RBAC --anonymous-auth=false \
    --service-account-issuer https://kubernetes.default.svc \
    --service-account-signing-key-file "$pki/sa.key" --service-account-key-file "$pki/sa.pub" \
    --api-audiences https://kubernetes.default.svc \
    --service-cluster-ip-range 10.96.0.0/16 --endpoint-reconciler-type none \
    --requestheader-client-ca-file "$pki/front-proxy-ca.crt" --requestheader-allowed-names front-proxy-client \
    --requestheader-username-headers X-Remote-User --requestheader-group-headers X-Remote-Group \
    --requestheader-extra-headers-prefix X-Remote-Extra- \
    --proxy-client-cert-file "$pki/front-proxy-client.crt" --proxy-client-key-file "$pki/front-proxy-client.key" \
    --profiling=false --cert-dir "$dir/apiserver-certs"
  wait_for kube-apiserver 90 curl -fsS --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" "$server/readyz"
}


up() {
  [ "$(id -u)" = 0 ] || die "run as root (it installs packages and binds ports)"
  bash "$here/install-deps.sh"
  local bin
  bin=$(bash "$here/build-kubernetes.sh")
  mkdir -p "$dir/run" "$dir/log"
  make_pki
  make_identities
  if is_ours kube-apiserver && is_ours etcd && is_ours kube-controller-manager; then
    log "already up at $server"
    return
  fi
  stop_all
  for p in "$api_port" "$etcd_port" "$etcd_peer_port"; do
    port_free "$p" || die "port $p on 127.0.0.1 is taken: stop what holds it, or set KUBESU_TESTBED_*_PORT"
  done
  make_pki
  kubeconfig "$dir/admin.kubeconfig" admin
  kubeconfig "$dir/controller-manager.kubeconfig" controller-manager

  # A fresh etcd each time: no state leaks from one test run to the next.
  rm -rf "$dir/etcd"
  launch etcd etcd --name kubesu-testbed --data-dir "$dir/etcd" \
    --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$etcd_peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer_port" \
    --initial-cluster "kubesu-testbed=http://127.0.0.1:$etcd_peer_port" \
    --listen-metrics-urls '' --logger zap --log-outputs stderr
  wait_for etcd 30 curl -fsS "http://127.0.0.1:$etcd_port/health"

  start_apiserver "$bin"

  launch kube-controller-manager "$bin/kube-controller-manager" \
    --kubeconfig "$dir/controller-manager.kubeconfig" \
    --authentication-kubeconfig "$dir/controller-manager.kubeconfig" \
    --authorization-kubeconfig "$dir/controller-manager.kubeconfig" \
    --use-service-account-credentials --root-ca-file "$pki/ca.crt" \
    --service-account-private-key-file "$pki/sa.key" \
    --cluster-signing-cert-file "$pki/ca.crt" --cluster-signing-key-file "$pki/ca.key" \
    --controllers '*' --port 0 --secure-port 0 --leader-elect=false --profiling=false
  # Ready when it has created the default ServiceAccount in `default`.
  wait_for kube-controller-manager 60 curl -fsS --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" \
    "$server/api/v1/namespaces/default/serviceaccounts/default"
  log "up at $server; KUBECONFIG=$dir/admin.kubeconfig"
}

case ${1:-} in
  up) up ;;
  down)
    [ -d "$dir/run" ] || exit 0
    pki=$dir/pki
    stop_all
    log "down"
    ;;
  # For fault tests: take the API server away and bring it back, keeping
  # etcd and its state.
  stop-apiserver)
    stop_one kube-apiserver
    ;;
  start-apiserver)
    pki=$dir/pki
    is_ours kube-apiserver || start_apiserver "$(bash "$here/build-kubernetes.sh")"
    ;;
  env)
    printf 'export KUBESU_TESTBED_DIR=%q\nexport KUBESU_TESTBED_KUBECONFIG=%q\nexport KUBESU_TESTBED_SERVER=%q\n' \
      "$dir" "$dir/admin.kubeconfig" "$server"
    ;;
  *) die "usage: $0 up|down|env" ;;
esac
