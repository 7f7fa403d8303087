#!/usr/bin/env bash
# Container images without a registry: turn root filesystem directories into
# an OCI image archive, and import such an archive into the bed's containerd.
#
#   oci-image.sh archive OUT.tar NAME [options] ROOTFS_DIR...
#       --entrypoint ARG   (repeat for each word; none: the image has none)
#       --cmd ARG          (repeat for each word)
#       --env NAME=VALUE   (repeat)
#       --user USER[:GROUP] --workdir DIR --label KEY=VALUE (repeat)
#     Each ROOTFS_DIR becomes one layer, in order (later ones on top; no
#     whiteouts: a layer can add and replace files, not delete them). Files
#     keep their numeric owners, modes and mtimes, so build the directory as
#     root with the owners the image needs. Prints nothing; OUT.tar appears
#     only when complete.
#
#   oci-image.sh import ARCHIVE...
#     Imports into the `k8s.io` namespace of the bed's containerd (the one
#     `node.sh start-containerd` started for $KUBESU_TESTBED_DIR), unpacked
#     for the snapshotter its CRI plugin uses, so the kubelet finds the image
#     without pulling. Same as `node.sh import ARCHIVE...`.
#
# Sourcing this file defines the same as functions, oci_archive and
# oci_import, without running anything.
#
# NAME is stored the way the kubelet will ask for it: containerd's CRI
# normalises the image of a pod spec ("spark:1" becomes
# "docker.io/library/spark:1", "kubesu/spark:1" becomes
# "docker.io/kubesu/spark:1"), and an image stored under any other spelling is
# "not present". oci_archive applies the same normalisation, so the name in
# the pod spec and the name given here can be the same short one. Give a tag
# other than `latest`: with `latest` the kubelet's default pull policy is
# Always, and a pull cannot succeed here.
#
# Why the layout is written by hand rather than with umoci: the format needs
# five small JSON documents and the layer tar, each named by its sha256, which
# tar, sha256sum and printf produce directly. umoci would first unpack an
# empty image into a bundle, then repack it by walking and diffing the whole
# tree (slow for a JDK and Spark), and it adds a package without adding
# anything the bed needs. The layer is an uncompressed tar (a valid OCI layer
# media type): the archive never leaves this machine, and gzip would only make
# building and importing slower.
set -euo pipefail

_oci_here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

_oci_log() { printf 'oci-image: %s\n' "$*" >&2; }
_oci_die() { _oci_log "$*"; return 1; }

# A JSON string. Control characters other than tab and newline are refused
# rather than escaped: no image setting here needs them.
_oci_json_str() {
  local s=$1
  if [[ $s == *[$'\001'-$'\010'$'\013'-$'\037']* ]]; then
    _oci_die "control character in '$s'"
    return 1
  fi
  s=${s//\\/\\\\}
  s=${s//\"/\\\"}
  s=${s//$'\t'/\\t}
  s=${s//$'\n'/\\n}
  printf '"%s"' "$s"
}

_oci_json_array() { # words...
  local out='' w
  for w in "$@"; do out+=${out:+,}$(_oci_json_str "$w") || return 1; done
  printf '[%s]' "$out"
}

_oci_json_labels() { # KEY=VALUE...
  local out='' kv
  for kv in "$@"; do
    out+=${out:+,}$(_oci_json_str "${kv%%=*}"):$(_oci_json_str "${kv#*=}") || return 1
  done
  printf '{%s}' "$out"
}

# The reference containerd's CRI looks an image up by (see the header).
oci_normalize_name() { # name
  local name=$1 first rest
  [[ $name =~ ^[a-z0-9][a-zA-Z0-9._/:@-]*$ && $name != *//* ]] ||
    { _oci_die "'$name' is not an image reference"; return 1; }
  first=${name%%/*}
  if [[ $name != */* ]] || [[ $first != *.* && $first != *:* && $first != localhost ]]; then
    [[ $name == */* ]] || name=library/$name
    name=docker.io/$name
  fi
  rest=${name##*/}
  [[ $rest == *:* || $name == *@* ]] || name=$name:latest
  printf '%s\n' "$name"
}

_oci_blob() { # layout-dir file -> prints "digest size", moves file into blobs/
  local layout=$1 file=$2 sum size
  sum=$(sha256sum "$file" | cut -d' ' -f1)
  size=$(stat -c %s "$file")
  mv "$file" "$layout/blobs/sha256/$sum"
  printf 'sha256:%s %s\n' "$sum" "$size"
}

oci_archive() { # OUT.tar NAME [options] ROOTFS_DIR...
  (($# >= 3)) || { _oci_die "usage: oci_archive OUT.tar NAME [options] ROOTFS_DIR..."; return 1; }
  local out=$1 name
  name=$(oci_normalize_name "$2") || return 1
  shift 2
  local -a entrypoint=() cmd=() env=() labels=() dirs=()
  local user='' workdir=''
  while (($#)); do
    case $1 in
      --entrypoint) entrypoint+=("$2"); shift 2 ;;
      --cmd) cmd+=("$2"); shift 2 ;;
      --env) [[ $2 == [A-Za-z_]*=* ]] || { _oci_die "--env wants NAME=VALUE, not '$2'"; return 1; }
        env+=("$2"); shift 2 ;;
      --label) [[ $2 == ?*=* ]] || { _oci_die "--label wants KEY=VALUE, not '$2'"; return 1; }
        labels+=("$2"); shift 2 ;;
      --user) user=$2; shift 2 ;;
      --workdir) workdir=$2; shift 2 ;;
      --*) _oci_die "unknown option $1"; return 1 ;;
      *) [ -d "$1" ] || { _oci_die "root filesystem '$1' is not a directory"; return 1; }
        dirs+=("$1"); shift ;;
    esac
  done
  ((${#dirs[@]})) || { _oci_die "no root filesystem directory given"; return 1; }
  local arch
  arch=$(dpkg --print-architecture) # amd64, arm64: the same words as OCI's

  local work
  work=$(mktemp -d "$(dirname "$out")/.oci-image.XXXXXX") || return 1
  # Subshell: the trap and the cd stay local even when sourced.
  (
    trap 'rm -rf "$work"' EXIT
    set -euo pipefail
    layout=$work/layout
    mkdir -p "$layout/blobs/sha256"
    layers='' diff_ids='' history=''
    for d in "${dirs[@]}"; do
      # Sorted entries, numeric owners, no access or change times: the same
      # tree gives the same digest. security.capability is kept (e.g.
      # ping's cap_net_raw).
      tar -C "$d" --sort=name --numeric-owner --xattrs --xattrs-include=security.capability \
        --pax-option=delete=atime,delete=ctime -cf "$work/layer.tar" . ||
        { _oci_log "tar of $d failed"; exit 1; }
      read -r digest size < <(_oci_blob "$layout" "$work/layer.tar")
      layers+=${layers:+,}$(printf '{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"%s","size":%s}' "$digest" "$size")
      diff_ids+=${diff_ids:+,}\"$digest\"
      history+=${history:+,}$(printf '{"created_by":%s}' "$(_oci_json_str "oci-image.sh: $(basename "$d")")")
    done

    config='{'
    ((${#entrypoint[@]})) && config+='"Entrypoint":'$(_oci_json_array "${entrypoint[@]}")','
    ((${#cmd[@]})) && config+='"Cmd":'$(_oci_json_array "${cmd[@]}")','
    ((${#env[@]})) && config+='"Env":'$(_oci_json_array "${env[@]}")','
    ((${#labels[@]})) && config+='"Labels":'$(_oci_json_labels "${labels[@]}")','
    [ -n "$user" ] && config+='"User":'$(_oci_json_str "$user")','
    [ -n "$workdir" ] && config+='"WorkingDir":'$(_oci_json_str "$workdir")','
    config=${config%,}'}'
    printf '{"architecture":"%s","os":"linux","config":%s,"rootfs":{"type":"layers","diff_ids":[%s]},"history":[%s]}' \
      "$arch" "$config" "$diff_ids" "$history" >"$work/config.json"
    read -r cdigest csize < <(_oci_blob "$layout" "$work/config.json")

    printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%s},"layers":[%s]}' \
      "$cdigest" "$csize" "$layers" >"$work/manifest.json"
    read -r mdigest msize < <(_oci_blob "$layout" "$work/manifest.json")

    # io.containerd.image.name carries the full name through `ctr import`;
    # ref.name is the OCI layout's own (tag-only) name for other tools.
    tag=${name##*:}
    printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"%s","size":%s,"platform":{"architecture":"%s","os":"linux"},"annotations":{"io.containerd.image.name":%s,"org.opencontainers.image.ref.name":%s}}]}' \
      "$mdigest" "$msize" "$arch" "$(_oci_json_str "$name")" "$(_oci_json_str "$tag")" >"$layout/index.json"
    printf '{"imageLayoutVersion":"1.0.0"}' >"$layout/oci-layout"

    tar -C "$layout" --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 \
      -cf "$work/image.tar" oci-layout index.json blobs
    mv "$work/image.tar" "$out"
  ) || { _oci_log "could not build $out for $name"; return 1; }
  _oci_log "built $name into $out"
}

oci_import() { # ARCHIVE...
  (($#)) || { _oci_die "usage: oci_import ARCHIVE..."; return 1; }
  bash "$_oci_here/node.sh" import "$@"
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  case ${1:-} in
    archive) shift; oci_archive "$@" ;;
    import) shift; oci_import "$@" ;;
    *) _oci_die "usage: $0 archive OUT.tar NAME [options] ROOTFS_DIR... | import ARCHIVE..." ;;
  esac
fi
