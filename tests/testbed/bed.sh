#!/usr/bin/env bash
# A real Kubernetes cluster on this machine, loopback and one bridge only.
#
# The current release (the default): etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, and one node: kubelet with
# containerd and runc, a CNI bridge (kubesu0, 10.244.0.0/24, the node's own
# address 10.244.0.1), kube-proxy, CoreDNS serving cluster.local on
# 10.244.0.1:53, and kube-router's network policy controller enforcing
# NetworkPolicies (the bridge plugin ignores them). Pods reach the API
# server as kubernetes.default.svc (10.96.0.1:443, proxied to
# 10.244.0.1:$api_port). Spark images are built here (build-spark-image.sh)
# and imported: nothing is ever pulled.
#
# KUBESU_TESTBED_KUBERNETES=1.20: Debian's Kubernetes 1.20 control plane only
# (etcd, kube-apiserver, kube-controller-manager on 127.0.0.1, no node: pods
# stay Pending), the oldest release kubesu is tested on.
#
#   bed.sh up     build (cached) and start; returns when the node is Ready
#   bed.sh down   stop exactly the processes this bed started, remove its pods'
#                 containers and network, and kube-router's rules and ipsets
#   bed.sh env    print the variables tests read, for `eval`
#   bed.sh stop-apiserver | start-apiserver   for fault tests
#
# Environment:
#   KUBESU_TESTBED_KUBERNETES  current (default) or 1.20
#   KUBESU_TESTBED_DIR         state directory (default /var/tmp/kubesu-testbed)
#   KUBESU_TESTBED_API_PORT    kube-apiserver port (default 16443)
#   KUBESU_TESTBED_ETCD_PORT   etcd client port (default 12379; peer port +1)
#   KUBESU_TESTBED_NODE        0: no node (a control plane alone; always so on 1.20)
#   KUBESU_TESTBED_SPARK       pyspark series whose images `up` imports
#                              (default "3.5"; e.g. "3.5 4.3")
set -euo pipefail
# The servers started here live on after this script: they must not keep a
# descriptor it inherited (a caller's flock on the test lock, a test's
# pipe), or whoever waits for that lock or pipe waits for ever. 255 is
# bash's own copy of this script.
for fd in /proc/$$/fd/*; do
  fd=${fd##*/}
  if [ "$fd" -gt 2 ] && [ "$fd" != 255 ]; then eval "exec $fd>&-"; fi
done

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
release=${KUBESU_TESTBED_KUBERNETES:-current}
dir=${KUBESU_TESTBED_DIR:-/var/tmp/kubesu-testbed}
api_port=${KUBESU_TESTBED_API_PORT:-16443}
etcd_port=${KUBESU_TESTBED_ETCD_PORT:-12379}
etcd_peer_port=$((etcd_port + 1))
server=https://127.0.0.1:$api_port
# The node: its name, and its address on the bridge, which is also where the
# API server is advertised (pods cannot route to 127.0.0.1) and where CoreDNS
# listens.
node_name=kubesu-node
node_ip=10.244.0.1
pod_cidr=10.244.0.0/24
service_cidr=10.96.0.0/16
bridge=kubesu0

# Whether the bed has a node: never on 1.20; KUBESU_TESTBED_NODE=0 gives a
# control plane alone on the current release (a second bed beside the first,
# for tests of admission, which need no node).
node=${KUBESU_TESTBED_NODE:-1}
[ "$release" != 1.20 ] || node=0

case "$release" in
  current | 1.20) ;;
  *) printf 'testbed: KUBESU_TESTBED_KUBERNETES=%s: use current or 1.20\n' "$release" >&2; exit 1 ;;
esac

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

# Bump when the set of certificates changes: an older pki is made anew.
pki_rev=2

make_pki() {
  pki=$dir/pki
  [ -f "$pki/done-$pki_rev" ] && return
  rm -rf "$pki"
  mkdir -p "$pki"
  chmod 0700 "$pki"
  make_ca ca kubesu-testbed-ca
  make_ca front-proxy-ca kubesu-testbed-front-proxy-ca
  local client='extendedKeyUsage=clientAuth'
  sign apiserver /CN=kube-apiserver ca "$(printf '%s\n%s' 'extendedKeyUsage=serverAuth' \
    "subjectAltName=IP:127.0.0.1,IP:10.96.0.1,IP:$node_ip,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local")"
  sign admin "/O=system:masters/CN=kubesu-testbed-admin" ca "$client"
  sign controller-manager /CN=system:kube-controller-manager ca "$client"
  sign scheduler /CN=system:kube-scheduler ca "$client"
  sign kubelet "/O=system:nodes/CN=system:node:$node_name" ca "$client"
  sign kubelet-serving "/CN=$node_name" ca "$(printf '%s\n%s' 'extendedKeyUsage=serverAuth' \
    "subjectAltName=IP:$node_ip,IP:127.0.0.1,DNS:$node_name")"
  sign apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" ca "$client"
  sign kube-proxy /CN=system:kube-proxy ca "$client"
  sign coredns /CN=kubesu-testbed-coredns ca "$client"
  sign front-proxy-client /CN=front-proxy-client front-proxy-ca "$client"
  openssl genrsa -out "$pki/sa.key" 2048 2>/dev/null
  openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
  touch "$pki/done-$pki_rev"
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
  # A process that died before launch read its start time has none: not ours.
  [ -n "$pid" ] && [ -n "$st" ] && [ "$(start_time "$pid")" = "$st" ]
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

fail_with_log() { # name message [cause]
  log "$2; last lines of $dir/log/$1.log:"
  tail -n 30 "$dir/log/$1.log" >&2 || true
  [ -z "${3:-}" ] || log "likely cause: $3"
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
    ! is_ours "$1" || kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}

# Node components first (the kubelet stops its pods' containers through
# containerd), the control plane last.
stop_all() {
  # Only a bed that started kube-router cleans its rules: they are host-wide,
  # and a second bed without a node (KUBESU_TESTBED_NODE=0) beside this one
  # must not remove the first one's.
  if [ -f "$dir/run/kube-router.pid" ]; then
    stop_one kube-router
    netpol_cleanup
  fi
  stop_one coredns
  stop_one kube-proxy
  stop_one kubelet
  # Every pod's containers, containerd, its mounts and the bridge.
  [ ! -d "$dir/containerd" ] || bash "$here/node.sh" stop-containerd "$dir" || true
  unmount_kubelet
  stop_one kube-scheduler
  stop_one kube-controller-manager
  stop_one kube-apiserver
  stop_one etcd
}

# The kubelet bind-mounts its root dir onto itself and mounts each pod's
# volumes (projected tokens among them) under it; those stay when it exits.
# Deepest first.
unmount_kubelet() {
  local m
  awk -v root="$dir/kubelet" '$5 == root || index($5, root "/") == 1 { print $5 }' /proc/self/mountinfo |
    sort -r | while read -r m; do umount "$m" 2>/dev/null || umount -l "$m" || true; done
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

admin_curl() { curl -fsS --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" "$server$1"; }

# --- the control plane ------------------------------------------------------

start_etcd() { # etcd-binary
  # A fresh etcd each time: no state leaks from one test run to the next.
  rm -rf "$dir/etcd"
  launch etcd "$1" --name kubesu-testbed --data-dir "$dir/etcd" \
    --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$etcd_peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer_port" \
    --initial-cluster "kubesu-testbed=http://127.0.0.1:$etcd_peer_port" \
    --listen-metrics-urls '' --logger zap --log-outputs stderr
  wait_for etcd 30 curl -fsS "http://127.0.0.1:$etcd_port/health"
}

start_apiserver() { # bin-dir
  local bin=$1 flags=()
  if [ "$node" = 0 ]; then
    flags=(--bind-address 127.0.0.1 --advertise-address 127.0.0.1 --endpoint-reconciler-type none)
    [ "$release" != 1.20 ] || flags+=(--insecure-port 0)
  else
    # Listening on the bridge too, advertised there: the `kubernetes` Service's
    # endpoint is one that pods can reach. Privileged pods are allowed by the
    # server, as on any real cluster, so that Pod Security admission is what
    # refuses them.
    flags=(--bind-address 0.0.0.0 --advertise-address "$node_ip" --allow-privileged=true
      --enable-admission-plugins NodeRestriction
      --kubelet-client-certificate "$pki/apiserver-kubelet-client.crt"
      --kubelet-client-key "$pki/apiserver-kubelet-client.key"
      --kubelet-preferred-address-types InternalIP)
  fi
  launch kube-apiserver "$bin/kube-apiserver" "${flags[@]}" \
    --etcd-servers "http://127.0.0.1:$etcd_port" --secure-port "$api_port" \
    --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
    --client-ca-file "$pki/ca.crt" \
    --authorization-mode Node,RBAC --anonymous-auth=false \
    --service-account-issuer https://kubernetes.default.svc \
    --service-account-signing-key-file "$pki/sa.key" --service-account-key-file "$pki/sa.pub" \
    --api-audiences https://kubernetes.default.svc \
    --service-cluster-ip-range "$service_cidr" \
    --requestheader-client-ca-file "$pki/front-proxy-ca.crt" --requestheader-allowed-names front-proxy-client \
    --requestheader-username-headers X-Remote-User --requestheader-group-headers X-Remote-Group \
    --requestheader-extra-headers-prefix X-Remote-Extra- \
    --proxy-client-cert-file "$pki/front-proxy-client.crt" --proxy-client-key-file "$pki/front-proxy-client.key" \
    --profiling=false --cert-dir "$dir/apiserver-certs"
  wait_for kube-apiserver 120 admin_curl /readyz
}

start_controller_manager() { # bin-dir
  local flags=(--port 0)
  [ "$release" = 1.20 ] || flags=()
  launch kube-controller-manager "$1/kube-controller-manager" "${flags[@]}" \
    --kubeconfig "$dir/controller-manager.kubeconfig" \
    --authentication-kubeconfig "$dir/controller-manager.kubeconfig" \
    --authorization-kubeconfig "$dir/controller-manager.kubeconfig" \
    --use-service-account-credentials --root-ca-file "$pki/ca.crt" \
    --service-account-private-key-file "$pki/sa.key" \
    --cluster-signing-cert-file "$pki/ca.crt" --cluster-signing-key-file "$pki/ca.key" \
    --controllers '*' --secure-port 0 --leader-elect=false --profiling=false
  # Ready when it has created the default ServiceAccount in `default`.
  wait_for kube-controller-manager 90 admin_curl /api/v1/namespaces/default/serviceaccounts/default
}

start_scheduler() { # bin-dir
  launch kube-scheduler "$1/kube-scheduler" --kubeconfig "$dir/scheduler.kubeconfig" \
    --authentication-kubeconfig "$dir/scheduler.kubeconfig" \
    --authorization-kubeconfig "$dir/scheduler.kubeconfig" \
    --secure-port 0 --leader-elect=false --profiling=false
}

# --- the node ---------------------------------------------------------------

# The bridge exists before anything else: the API server is advertised on its
# address. The CNI bridge plugin finds it and attaches pods to it.
network_up() {
  command -v ip >/dev/null || die "no \`ip\` (package iproute2)"
  if ! ip link show "$bridge" >/dev/null 2>&1; then
    ip link add "$bridge" type bridge || die "cannot create bridge $bridge: does this kernel have bridge support?"
  fi
  ip addr show dev "$bridge" | grep -q "inet $node_ip/" || ip addr add "$node_ip/24" dev "$bridge"
  ip link set "$bridge" up
  # Pods reach services through kube-proxy's NAT rules: forwarding on, and
  # traffic between two pods on the same bridge goes through iptables too
  # (otherwise a reply to a pod that used a Service IP bypasses the NAT).
  sysctl -qw net.ipv4.ip_forward=1
  [ -e /proc/sys/net/bridge/bridge-nf-call-iptables ] ||
    die "no /proc/sys/net/bridge/bridge-nf-call-iptables: the kernel lacks br_netfilter, which kube-proxy needs for pod-to-pod Service traffic"
  sysctl -qw net.bridge.bridge-nf-call-iptables=1
}

kubelet_config() { # file
  cat >"$1" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# This machine mounts the cgroup v1 hierarchy; from 1.35 the kubelet refuses
# v1 unless told otherwise. No systemd as PID 1: the cgroupfs driver.
failCgroupV1: false
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://$containerd_socket
address: 0.0.0.0
readOnlyPort: 0
tlsCertFile: $pki/kubelet-serving.crt
tlsPrivateKeyFile: $pki/kubelet-serving.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $pki/ca.crt}
authorization: {mode: Webhook}
clusterDomain: cluster.local
clusterDNS: [$node_ip]
# The host's resolv.conf names resolvers pods must not use (there is no
# network beyond this machine).
resolvConf: ""
failSwapOn: false
# Images cannot be pulled again here: never collect them, and never evict
# for the disk use of a test machine.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
registerNode: true
serializeImagePulls: false
EOF
}

start_node() { # k8s-bin-dir
  local bin=$1
  network_up
  # containerd with its own state under $dir, the CNI bridge config, and the
  # pause image imported (node.sh: what it sets and why).
  bash "$here/node.sh" start-containerd "$dir" ||
    fail_with_log containerd "step 'start containerd' failed: see the messages above"
  containerd_socket=$(bash "$here/node.sh" socket "$dir")
  import_spark_images

  kubeconfig "$dir/kubelet.kubeconfig" kubelet
  kubelet_config "$dir/kubelet-config.yaml"
  mkdir -p "$dir/kubelet"
  launch kubelet "$bin/kubelet" --config "$dir/kubelet-config.yaml" \
    --kubeconfig "$dir/kubelet.kubeconfig" --hostname-override "$node_name" --node-ip "$node_ip" \
    --root-dir "$dir/kubelet" --cert-dir "$dir/kubelet/pki"
  kubeconfig "$dir/kube-proxy.kubeconfig" kube-proxy
  launch kube-proxy "$bin/kube-proxy" --kubeconfig "$dir/kube-proxy.kubeconfig" \
    --hostname-override "$node_name" --cluster-cidr "$pod_cidr" --proxy-mode iptables \
    --conntrack-max-per-core 0 --metrics-bind-address 127.0.0.1:10249 --healthz-bind-address 127.0.0.1:10256
  start_coredns "$bin"
  wait_for kubelet 120 node_ready
  # kube-router reads its node's address from the Node object once, at
  # start, and exits if there is none yet.
  start_kube_router "$bin"
  # Pods need the `kubernetes` Service proxied before anything in them can
  # reach the API server.
  wait_for kube-proxy 60 iptables -t nat -S KUBE-SERVICES
  wait_for coredns 60 dns_answers
  wait_for kube-router 60 kube_router_synced
}

node_ready() {
  admin_curl "/api/v1/nodes/$node_name" | tr -d ' \n' | grep -q '"type":"Ready","status":"True"'
}

# Each series' image, built once from that pyspark release, imported into
# the node, and named in $dir/spark-images for `bed.sh env`.
import_spark_images() {
  local series built archive image
  : >"$dir/spark-images"
  for series in ${KUBESU_TESTBED_SPARK:-3.5}; do
    built=$(bash "$here/build-spark-image.sh" "$series") ||
      fail_with_log containerd "step 'build the Spark $series image' failed: see the messages above"
    { read -r archive && read -r image; } <<<"$built"
    bash "$here/oci-image.sh" import "$archive" >/dev/null ||
      fail_with_log containerd "step 'import the Spark $series image' ($archive) failed"
    printf '%s %s\n' "$series" "$image" >>"$dir/spark-images"
  done
}

# Cluster DNS: CoreDNS on the node's bridge address, serving cluster.local
# from the API server, as a host process (an image for it would add nothing
# the tests look at). Its identity may only read what the kubernetes plugin
# watches.
start_coredns() { # k8s-bin-dir
  kubeconfig "$dir/coredns.kubeconfig" coredns
  "$1/kubectl" --kubeconfig "$dir/admin.kubeconfig" apply -f - >/dev/null <<'EOF'
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "kubesu-testbed:coredns"}
rules:
- apiGroups: [""]
  resources: [services, endpoints, pods, namespaces]
  verbs: [list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "kubesu-testbed:coredns"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "kubesu-testbed:coredns"}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: kubesu-testbed-coredns}
EOF
  cat >"$dir/Corefile" <<EOF
.:53 {
    bind $node_ip
    errors
    health 127.0.0.1:18080
    ready 127.0.0.1:18181
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig $dir/coredns.kubeconfig testbed
        pods insecure
    }
    cache 5
}
EOF
  launch coredns "$1/coredns" -conf "$dir/Corefile"
}

dns_answers() {
  curl -fsS http://127.0.0.1:18181/ready >/dev/null &&
    getent_dns kubernetes.default.svc.cluster.local | grep -q '^10\.96\.0\.1$'
}

# A DNS query to CoreDNS without any resolver library configuration: python's
# standard library only (no dig on a plain machine).
getent_dns() { # name
  python3 - "$1" "$node_ip" <<'EOF'
import socket, struct, sys
name, server = sys.argv[1], sys.argv[2]
q = struct.pack(">HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0)
q += b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
q += struct.pack(">HH", 1, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2)
s.sendto(q, (server, 53))
r, _ = s.recvfrom(512)
ancount = struct.unpack(">H", r[6:8])[0]
i = len(q)
for _ in range(ancount):
    i += 2 if r[i] & 0xC0 == 0xC0 else r.index(b"\0", i) - i + 1
    typ, _, _, rdlen = struct.unpack(">HHIH", r[i:i + 10])
    i += 10
    if typ == 1:
        print(socket.inet_ntoa(r[i:i + rdlen]))
    i += rdlen
EOF
}

# NetworkPolicies: kube-router with its network policy controller only (no
# routing, no service proxy: the bridge and kube-proxy do those). It programs
# the filter table (chains KUBE-ROUTER-*, KUBE-NWPLCY-*, KUBE-POD-FW-*) and
# ipsets (KUBE-SRC-*, KUBE-DST-*) from the pods, namespaces and policies it
# watches. Its identity may only read what its informers list and watch.
start_kube_router() { # k8s-bin-dir
  [ -f "$pki/kube-router.crt" ] ||
    sign kube-router /CN=kubesu-testbed-kube-router ca 'extendedKeyUsage=clientAuth'
  kubeconfig "$dir/kube-router.kubeconfig" kube-router
  "$1/kubectl" --kubeconfig "$dir/admin.kubeconfig" apply -f - >/dev/null <<'EOF'
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "kubesu-testbed:kube-router"}
rules:
- apiGroups: [""]
  resources: [nodes]
  verbs: [get, list, watch]
- apiGroups: [""]
  resources: [pods, namespaces, services, endpoints]
  verbs: [list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
- apiGroups: [networking.k8s.io]
  resources: [networkpolicies]
  verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "kubesu-testbed:kube-router"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "kubesu-testbed:kube-router"}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: kubesu-testbed-kube-router}
EOF
  # Leftovers of a kube-router that `down` did not stop (killed with the
  # machine's session, say): a fresh start finds none of them.
  netpol_cleanup
  # No health or metrics port: the health server listens on every address
  # (no flag for one) and also serves Go's /debug/pprof/ there, to pods too.
  # -v 1: it logs the end of each sync ("sync iptables took"), which up waits
  # for instead.
  launch kube-router "$kube_router_bin/kube-router" --run-firewall=true --run-router=false \
    --run-service-proxy=false --kubeconfig "$dir/kube-router.kubeconfig" \
    --hostname-override "$node_name" --service-cluster-ip-range "$service_cidr" \
    --health-port 0 --metrics-port 0 -v 1
}

# Synced: the policy controller starts once its informers have listed
# everything, and a first full sync of the filter table has ended (an
# aborted one logs its end too, and why).
kube_router_synced() {
  grep -q 'sync iptables took' "$dir/log/kube-router.log" &&
    ! grep -q 'Aborting sync' "$dir/log/kube-router.log"
}

# kube-router leaves its rules and ipsets behind when it stops, and its own
# --cleanup-config does not remove them in v2.1.0: its policy controller's
# cleanup runs without iptables or ipset handlers, so it finds nothing, and
# the service proxy's cleanup after it panics (seen here; it would also flush
# every IPVS service on the host).
# The jumps from the built-in chains first, then its chains (flushed, then
# deleted: they refer to each other), then its ipsets (unreferenced by now).
netpol_cleanup() {
  command -v iptables >/dev/null || return 0
  local chain rule set chains
  for chain in INPUT FORWARD OUTPUT; do
    iptables -t filter -S "$chain" 2>/dev/null | grep -- '-j KUBE-ROUTER-' |
      while read -r rule; do
        # iptables -S quotes the rule's comment; xargs reads the quotes.
        printf '%s\n' "-D${rule#-A}" | xargs iptables -t filter || true
      done || true
  done
  chains=$(iptables -t filter -S 2>/dev/null | awk '$1 == "-N" && $2 ~ /^KUBE-(ROUTER|NWPLCY|POD-FW)-/ { print $2 }' || true)
  for chain in $chains; do iptables -t filter -F "$chain" || true; done
  for chain in $chains; do iptables -t filter -X "$chain" || true; done
  command -v ipset >/dev/null || return 0
  for set in $(ipset list -n 2>/dev/null | grep -E '^KUBE-(SRC|DST)-'); do
    ipset destroy "$set" || true
  done
}

# --- commands ---------------------------------------------------------------

# The tests, the demo and the support engineer's `kubesu run -- kubectl` use
# the current release's kubectl, installed where a manual install puts it
# (the example config allows /usr/local/bin/kubectl); with 1.20 too: kubectl
# talks to servers of older releases.
install_kubectl() {
  local current
  current=$(bash "$here/build-kubernetes.sh" current)
  cmp -s "$current/kubectl" /usr/local/bin/kubectl && return
  install -m 0755 -o root -g root "$current/kubectl" /usr/local/bin/.kubectl.new
  mv -f /usr/local/bin/.kubectl.new /usr/local/bin/kubectl
}


up() {
  [ "$(id -u)" = 0 ] || die "run as root (it installs packages and binds ports)"
  bash "$here/install-deps.sh"
  local bin etcd
  bin=$(bash "$here/build-kubernetes.sh" "$release")
  if [ "$node" = 1 ]; then
    # Global: start_kube_router reads it.
    kube_router_bin=$(bash "$here/build-kubernetes.sh" kube-router)
    command -v ipset >/dev/null || die "no \`ipset\` (package ipset): kube-router keeps pod addresses in ipsets"
  fi
  install_kubectl
  if [ "$release" = 1.20 ]; then
    etcd=$(command -v etcd) || die "no etcd on PATH (package etcd-server)"
  else
    etcd=$bin/etcd
  fi
  mkdir -p "$dir/run" "$dir/log"
  make_pki
  make_identities
  local parts=(etcd kube-apiserver kube-controller-manager)
  [ "$node" = 0 ] || parts+=(kube-scheduler containerd kubelet kube-proxy coredns kube-router)
  local all_ours=1 p
  for p in "${parts[@]}"; do is_ours "$p" || all_ours=; done
  if [ -n "$all_ours" ] && [ "$(cat "$dir/release" 2>/dev/null)" = "$release node=$node" ]; then
    log "already up at $server (Kubernetes $release)"
    return
  fi
  stop_all
  for p in "$api_port" "$etcd_port" "$etcd_peer_port"; do
    port_free "$p" || die "port $p on 127.0.0.1 is taken: stop what holds it, or set KUBESU_TESTBED_*_PORT"
  done
  echo "$release node=$node" >"$dir/release"
  rm -f "$dir/spark-images"
  kubeconfig "$dir/admin.kubeconfig" admin
  kubeconfig "$dir/controller-manager.kubeconfig" controller-manager
  kubeconfig "$dir/scheduler.kubeconfig" scheduler

  start_etcd "$etcd"
  start_apiserver "$bin"
  start_controller_manager "$bin"
  if [ "$node" = 1 ]; then
    start_scheduler "$bin"
    start_node "$bin"
  fi
  log "up at $server (Kubernetes $release); KUBECONFIG=$dir/admin.kubeconfig"
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
    read -r release node_word <"$dir/release" || true
    [ "${node_word:-node=1}" = node=1 ] || node=0
    is_ours kube-apiserver || start_apiserver "$(bash "$here/build-kubernetes.sh" "$release")"
    ;;
  env)
    printf 'export KUBESU_TESTBED_DIR=%q\nexport KUBESU_TESTBED_KUBECONFIG=%q\nexport KUBESU_TESTBED_SERVER=%q\nexport KUBESU_TESTBED_KUBERNETES=%q\n' \
      "$dir" "$dir/admin.kubeconfig" "$server" "$(awk '{ print $1 }' "$dir/release" 2>/dev/null || echo "$release")"
    # KUBESU_TESTBED_SPARK_IMAGE_3_5=kubesu.test/spark:3.5.9, ...
    while read -r series image; do
      printf 'export KUBESU_TESTBED_SPARK_IMAGE_%s=%q\n' "${series//./_}" "$image"
    done < <(cat "$dir/spark-images" 2>/dev/null)
    ;;
  *) die "usage: $0 up|down|env|stop-apiserver|start-apiserver" ;;
esac
