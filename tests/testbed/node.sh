#!/usr/bin/env bash
# The bed's container runtime: a containerd of its own (built by
# build-node.sh), runc and a CNI bridge, everything under one state directory
# so it never meets a system containerd.
#
#   node.sh config [DIR]            write containerd's config and the CNI config
#   node.sh start-containerd [DIR]  kernel settings, config, start, wait for CRI, import images
#   node.sh stop-containerd [DIR]   kill every container, stop containerd, unmount, remove the bridge
#   node.sh import [DIR] ARCHIVE... import OCI archives into the k8s.io namespace
#   node.sh socket [DIR]            print the socket (the kubelet's runtime endpoint, without unix://)
#   node.sh snapshotter [DIR]       print the snapshotter images are unpacked for
#
# DIR defaults to $KUBESU_TESTBED_DIR, else /var/tmp/kubesu-testbed (bed.sh's).
# Under it:
#   containerd/config.toml  containerd/containerd.sock  containerd/{root,state,runc,opt}
#   cni/net.d/10-kubesu-testbed.conflist  cni/ipam (host-local's leases)
#   run/containerd.pid ("pid starttime", as bed.sh writes them)  log/containerd.log
#
# Environment:
#   KUBESU_TESTBED_POD_SUBNET  the node's pod subnet (default 10.244.0.0/24)
#   KUBESU_TESTBED_BRIDGE      the CNI bridge (default kubesu0)
# A second bed on the same machine needs other values for both: the bridge is
# a host-wide name, and each bed hands out addresses from its own leases. Its
# kubelet also needs its own cgroupRoot (made first in every cgroup v1
# hierarchy): two kubelets under the same /kubepods each take the other's pod
# cgroups for orphans and SIGKILL them every 2 s (seen here: sandboxes exiting
# 137 in a loop while no log of either kubelet says why).
#
# What the kubelet needs (configured here, on the containerd side):
#   containerRuntimeEndpoint: unix://DIR/containerd/containerd.sock (images too)
#   cgroupDriver: cgroupfs. The kubelet asks containerd (CRI RuntimeConfig), which
#     answers cgroupfs because runc's SystemdCgroup is false: there is no systemd
#     as PID 1 here to own cgroups. Set cgroupDriver: cgroupfs in the kubelet's
#     config anyway; the two must agree.
#   failCgroupV1: false. This machine has the cgroup v1 hierarchy.
#   Images: registry.k8s.io/pause:3.10 (the sandbox image, pinned by containerd
#     so the kubelet's image GC keeps it) and kubesu.test/busybox:1.35, imported
#     at start; both are present, so no pod ever pulls them.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
pod_subnet=${KUBESU_TESTBED_POD_SUBNET:-10.244.0.0/24}
bridge=${KUBESU_TESTBED_BRIDGE:-kubesu0}
sandbox_image=registry.k8s.io/pause:3.10
cni_bin=/usr/lib/cni # Debian's containernetworking-plugins
net_name=kubesu-testbed

log() { printf 'testbed-node: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

set_dir() { # [DIR]
  dir=${1:-${KUBESU_TESTBED_DIR:-/var/tmp/kubesu-testbed}}
  # Mount points under DIR are read back from /proc/self/mounts, which escapes
  # blanks: keep the path plain. A socket path must also stay under 108 bytes.
  [[ $dir == /* && $dir =~ ^[A-Za-z0-9/._-]+$ ]] || die "state directory '$dir' must be an absolute path of letters, digits, / . _ -"
  cd_dir=$dir/containerd
  sock=$cd_dir/containerd.sock
  ((${#sock} < 100)) || die "socket path $sock is too long for a unix socket: use a shorter state directory"
}

bin_dir() { bash "$here/build-node.sh"; }

# --- kernel prerequisites ---------------------------------------------------

# What the node needs from the kernel, found on this machine (Debian 12 VM,
# kernel 6.x, no systemd): /proc/sys/net/bridge exists (br_netfilter is
# available) and bridge-nf-call-iptables is already 1; ip_forward is 0.
#  - net.ipv4.ip_forward=1: a pod's packet to a Service IP is DNATed by
#    kube-proxy to another pod and must then be forwarded back out through
#    the bridge. Without it Service traffic (executors -> driver, pods -> DNS)
#    is dropped.
#  - net.bridge.bridge-nf-call-iptables=1: a reply between two pods on the
#    same bridge is bridged, not routed; only with this does it pass
#    iptables, where conntrack undoes kube-proxy's DNAT. Without it a pod
#    talking to a Service backed by a pod on the same node sees replies from
#    the wrong address.
# Neither is undone at stop: other software may rely on them by then.
prepare_kernel() {
  if [ "$(cat /proc/sys/net/ipv4/ip_forward)" != 1 ]; then
    echo 1 >/proc/sys/net/ipv4/ip_forward ||
      die "cannot set net.ipv4.ip_forward=1 (read-only /proc/sys?): Service traffic between pods would be dropped"
    log "set net.ipv4.ip_forward=1"
  fi
  [ -d /proc/sys/net/bridge ] || modprobe br_netfilter 2>/dev/null || true
  if [ -d /proc/sys/net/bridge ]; then
    if [ "$(cat /proc/sys/net/bridge/bridge-nf-call-iptables)" != 1 ]; then
      echo 1 >/proc/sys/net/bridge/bridge-nf-call-iptables ||
        die "cannot set net.bridge.bridge-nf-call-iptables=1"
      log "set net.bridge.bridge-nf-call-iptables=1"
    fi
  else
    log "warning: no br_netfilter (/proc/sys/net/bridge missing): a pod reaching a Service backed by a pod on this node may fail"
  fi
  local c
  for c in cpu cpuacct cpuset memory pids devices freezer; do
    [ -d "/sys/fs/cgroup/$c" ] || [ -f /sys/fs/cgroup/cgroup.controllers ] ||
      die "cgroup controller $c is not mounted under /sys/fs/cgroup: the kubelet needs it"
  done
}

# overlayfs when the kernel can mount an overlay on DIR's file system (it
# cannot when DIR itself is on overlayfs, e.g. inside a container), else
# native (full copies: slower, bigger, always works). Found here: DIR is on
# ext4 and overlay mounts work, so overlayfs.
probe_snapshotter() {
  local t
  mkdir -p "$cd_dir"
  t=$(mktemp -d "$cd_dir/.overlay-probe.XXXXXX")
  mkdir "$t/lower" "$t/upper" "$t/work" "$t/merged"
  if mount -t overlay overlay -o "lowerdir=$t/lower,upperdir=$t/upper,workdir=$t/work" "$t/merged" 2>/dev/null; then
    umount "$t/merged"
    echo overlayfs
  else
    echo native
  fi
  rm -rf "$t"
}

snapshotter() {
  if [ ! -s "$cd_dir/snapshotter" ]; then
    mkdir -p "$cd_dir"
    probe_snapshotter >"$cd_dir/snapshotter.new"
    mv "$cd_dir/snapshotter.new" "$cd_dir/snapshotter"
  fi
  cat "$cd_dir/snapshotter"
}

# --- configuration ----------------------------------------------------------

write_config() {
  local bin snap
  bin=$(bin_dir)
  mkdir -p "$cd_dir" "$dir/cni/net.d" "$dir/cni/ipam" "$dir/run" "$dir/log"
  chmod 0711 "$cd_dir"
  snap=$(snapshotter)
  # Version 4 is the format of containerd 2.4 (`containerd config default`).
  # Every path is under DIR: root, state, the sockets, the opt plugin's
  # /opt/containerd, runc's state (/run/containerd/runc by default). No
  # imports: the default, /etc/containerd/conf.d/*.toml, would pull in a
  # system containerd's drop-ins. NRI is off: its socket is a fixed system
  # path that a system containerd would also claim, and nothing here uses it.
  cat >"$cd_dir/config.toml.new" <<EOF
# Written by tests/testbed/node.sh: the kubesu test bed's own containerd.
version = 4
root = "$cd_dir/root"
state = "$cd_dir/state"
imports = []
disabled_plugins = ["io.containerd.nri.v1.nri"]

[plugins]
  [plugins."io.containerd.server.v1.grpc"]
    address = "$sock"
  [plugins."io.containerd.server.v1.ttrpc"]
    address = "$sock.ttrpc"

  [plugins."io.containerd.internal.v1.opt"]
    path = "$cd_dir/opt"

  [plugins."io.containerd.cri.v1.images"]
    # overlayfs or native: whichever mounts on this file system (probed).
    snapshotter = "$snap"
    # Nothing is ever pulled: every registry (the _default hosts entry
    # below) is served by a closed port on loopback, so a pod naming an
    # image the node lacks fails at once, without any traffic leaving this
    # machine.
    [plugins."io.containerd.cri.v1.images".registry]
      config_path = "$cd_dir/certs.d"
    [plugins."io.containerd.cri.v1.images".pinned_images]
      # Built here from pause.c and imported at start; pinned, so the
      # kubelet's image garbage collection never removes it.
      sandbox = "$sandbox_image"

  [plugins."io.containerd.cri.v1.runtime"]
    # runc cannot lower a process's oom_score_adj below its parent's without
    # CAP_SYS_RESOURCE, which root lacks here: without this, every pod whose
    # QoS class asks for a low score (Guaranteed: -997, and the pause
    # container: -998) fails to start with "permission denied" writing
    # /proc/self/oom_score_adj. With it, containerd clamps the score to its
    # own.
    restrict_oom_score_adj = true
    # No hugetlb controller is mounted on this machine.
    tolerate_missing_hugetlb_controller = true
    disable_hugetlb_controller = true
    # Pod network namespaces are bind-mounted under the state dir, not
    # /var/run/netns, so stop-containerd finds and unmounts every one.
    netns_mounts_under_state_dir = true

    [plugins."io.containerd.cri.v1.runtime".containerd]
      default_runtime_name = "runc"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
          BinaryName = "$bin/runc"
          Root = "$cd_dir/runc"
          # cgroupfs, not systemd cgroups: systemd is not PID 1 here. This is
          # what the kubelet's cgroup driver is detected from.
          SystemdCgroup = false

    [plugins."io.containerd.cri.v1.runtime".cni]
      bin_dirs = ["$cni_bin"]
      conf_dir = "$dir/cni/net.d"
      max_conf_num = 1

  [plugins."io.containerd.grpc.v1.cri"]
    # Exec, attach and port-forward streams, which the kubelet proxies.
    stream_server_address = "127.0.0.1"
    stream_server_port = "0"
EOF
  mv "$cd_dir/config.toml.new" "$cd_dir/config.toml"
  mkdir -p "$cd_dir/certs.d/_default"
  printf '%s\n' '# Written by tests/testbed/node.sh: no registry is reachable from the bed.' \
    'server = "http://127.0.0.1:1"' >"$cd_dir/certs.d/_default/hosts.toml"

  # The pod network: one bridge with the node's pod subnet, the bridge's
  # address as the pods' gateway, host-local leases under DIR. No
  # masquerading (ipMasq false): pods only talk to each other and to this
  # host's own addresses (the API server, the kubelet), none of which needs
  # NAT, and the bridge plugin would otherwise add iptables rules per pod.
  # hairpinMode lets a pod reach itself through its own Service. portmap
  # serves hostPort; containerd runs the loopback plugin itself.
  cat >"$dir/cni/net.d/10-$net_name.conflist.new" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "$net_name",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$bridge",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{ "subnet": "$pod_subnet" }]],
        "routes": [{ "dst": "0.0.0.0/0" }],
        "dataDir": "$dir/cni/ipam"
      }
    },
    { "type": "portmap", "capabilities": { "portMappings": true } }
  ]
}
EOF
  mv "$dir/cni/net.d/10-$net_name.conflist.new" "$dir/cni/net.d/10-$net_name.conflist"
  local p
  for p in bridge host-local loopback portmap; do
    [ -x "$cni_bin/$p" ] || die "CNI plugin $cni_bin/$p missing (package containernetworking-plugins; run build-node.sh)"
  done
}

# --- processes --------------------------------------------------------------

start_time() { awk '{ print $22 }' "/proc/$1/stat" 2>/dev/null; }

running_pid() { # prints the pid of our containerd if it runs
  local f=$dir/run/containerd.pid pid st
  [ -f "$f" ] || return 1
  read -r pid st <"$f"
  [ -n "$pid" ] && [ "$(start_time "$pid")" = "$st" ] && echo "$pid"
}

ctr_() { "$bin/ctr" --address "$sock" "$@"; }

start_containerd() {
  [ "$(id -u)" = 0 ] || die "run as root"
  bin=$(bin_dir)
  prepare_kernel
  write_config
  if running_pid >/dev/null; then
    log "containerd already running on $sock"
  else
    [ ! -S "$sock" ] || ! ctr_ version >/dev/null 2>&1 ||
      die "something else serves $sock: stop it first"
    # PATH: containerd finds containerd-shim-runc-v2 there.
    PATH=$bin:$PATH setsid "$bin/containerd" --config "$cd_dir/config.toml" \
      >"$dir/log/containerd.log" 2>&1 </dev/null &
    local pid=$!
    sleep 0.05
    printf '%s %s\n' "$pid" "$(start_time "$pid")" >"$dir/run/containerd.pid"
    local deadline=$((SECONDS + 30))
    # Ready when the CRI plugin answers (it loads after the socket appears).
    until ctr_ plugins ls 2>/dev/null | grep -Eq 'io\.containerd\.grpc\.v1 +cri +.* ok'; do
      if ! running_pid >/dev/null; then
        log "containerd exited during start-up; last lines of $dir/log/containerd.log:"
        tail -n 30 "$dir/log/containerd.log" >&2
        exit 1
      fi
      if ((SECONDS >= deadline)); then
        log "containerd's CRI plugin not ready after 30s; plugins that failed, and the log's end ($dir/log/containerd.log):"
        ctr_ plugins ls 2>&1 | grep -v ' ok *$' >&2 || true
        tail -n 30 "$dir/log/containerd.log" >&2
        exit 1
      fi
      sleep 0.3
    done
    log "containerd $("$bin/containerd" --version | awk '{ print $3 }') on $sock (snapshotter $(snapshotter))"
  fi
  local images=$bin/../images
  import "$images/pause.tar" "$images/busybox.tar"
}

import() { # archive...
  [ -n "${bin:-}" ] || bin=$(bin_dir)
  running_pid >/dev/null || die "no containerd of this bed runs on $sock: start it with node.sh start-containerd $dir"
  local a snap
  snap=$(snapshotter)
  for a in "$@"; do
    [ -f "$a" ] || die "no image archive $a"
    ctr_ -n k8s.io images import --snapshotter "$snap" "$a" >"$dir/log/import.log" 2>&1 || {
      log "importing $a into $sock failed; $dir/log/import.log:"
      tail -n 20 "$dir/log/import.log" >&2
      exit 1
    }
  done
}

# Our shims: containerd-shim-runc-v2 processes started with our socket.
our_shims() {
  local p
  for p in /proc/[0-9]*; do
    [ "$(readlink "$p/exe" 2>/dev/null)" = "$bin/containerd-shim-runc-v2" ] || continue
    tr '\0' '\n' <"$p/cmdline" 2>/dev/null | grep -qxF -- "$sock" && echo "${p#/proc/}"
  done
  return 0
}

stop_containerd() {
  bin=$(bin_dir)
  local pid ns id
  # 1. Every container of every namespace, while containerd still answers:
  #    killed and deleted, so their shims exit and their mounts go.
  if pid=$(running_pid); then
    for ns in $(ctr_ namespaces ls -q 2>/dev/null); do
      for id in $(ctr_ -n "$ns" tasks ls -q 2>/dev/null); do
        ctr_ -n "$ns" tasks kill -a -s SIGKILL "$id" >/dev/null 2>&1 || true
      done
      for id in $(ctr_ -n "$ns" tasks ls -q 2>/dev/null); do
        for _ in $(seq 20); do ctr_ -n "$ns" tasks rm -f "$id" >/dev/null 2>&1 && break; sleep 0.1; done
      done
      for id in $(ctr_ -n "$ns" containers ls -q 2>/dev/null); do
        ctr_ -n "$ns" containers rm "$id" >/dev/null 2>&1 || true
      done
      # The CRI's pod sandbox records: left, they come back as NotReady
      # pods the next kubelet has to garbage-collect.
      for id in $(ctr_ -n "$ns" sandboxes ls 2>/dev/null | awk 'NR > 1 { print $1 }'); do
        ctr_ -n "$ns" sandboxes rm -f "$id" >/dev/null 2>&1 || true
      done
    done
    # 2. containerd itself.
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do running_pid >/dev/null || break; sleep 0.1; done
    running_pid >/dev/null && kill -KILL "$pid" 2>/dev/null
  fi
  rm -f "$dir/run/containerd.pid"
  # 3. What survived (containerd was killed earlier, or a task would not
  #    die): runc's own view of our containers, then our shims.
  local r
  for r in "$cd_dir"/runc/*; do
    [ -d "$r" ] || continue
    for id in $("$bin/runc" --root "$r" list -q 2>/dev/null); do
      "$bin/runc" --root "$r" kill --all "$id" KILL 2>/dev/null || true
      "$bin/runc" --root "$r" delete -f "$id" 2>/dev/null || true
    done
  done
  for pid in $(our_shims); do kill -KILL "$pid" 2>/dev/null || true; done
  # 4. Mounts under our directory (pod network namespaces, shm, root
  #    filesystems), deepest first. A network namespace with no process
  #    and no mount disappears, and its veth with it.
  awk -v d="$cd_dir/" 'index($2, d) == 1 { print $2 }' /proc/self/mounts | sort -r |
    while read -r m; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || log "cannot unmount $m"; done
  # 5. No pod holds an address any more: drop the leases, and the bridge
  #    unless another bed's pods are still plugged into it (same name).
  rm -rf "$dir/cni/ipam"
  if [ -d "/sys/class/net/$bridge/brif" ] && [ -z "$(ls -A "/sys/class/net/$bridge/brif")" ]; then
    ip link delete "$bridge" || true
  fi
  log "containerd on $sock stopped"
}

cmd=${1:-}
shift || true
case $cmd in
  config) set_dir "${1:-}"; write_config; log "wrote $cd_dir/config.toml and $dir/cni/net.d" ;;
  start-containerd) set_dir "${1:-}"; start_containerd ;;
  stop-containerd) set_dir "${1:-}"; stop_containerd ;;
  import)
    if [ -d "${1:-}" ]; then set_dir "$1"; shift; else set_dir ""; fi
    (($#)) || die "usage: $0 import [DIR] ARCHIVE..."
    import "$@"
    ;;
  socket) set_dir "${1:-}"; echo "$sock" ;;
  snapshotter) set_dir "${1:-}"; snapshotter ;;
  *) die "usage: $0 config|start-containerd|stop-containerd|import|socket|snapshotter [DIR]" ;;
esac
