#!/usr/bin/env bash
# What an administrator would script instead of kubesu (comparison 2 in
# BENCHMARKS.md): a namespace, a ServiceAccount, a RoleBinding to the
# ClusterRole, a token from the TokenRequest API, a kubeconfig written with
# `kubectl config set-*`, the command as the user, then two deletes.
#
#   kubectl-run.sh ADMIN-KUBECONFIG SERVER CA-FILE NAMESPACE SERVICE-ACCOUNT USER CLUSTER-ROLE
set -euo pipefail
export KUBECONFIG=$1
server=$2 ca=$3 ns=$4 sa=$5 user=$6 role=$7

kubectl get ns "$ns" >/dev/null 2>&1 || kubectl create ns "$ns" >/dev/null
kubectl -n "$ns" create sa "$sa" >/dev/null
kubectl -n "$ns" create rolebinding "$sa" --clusterrole="$role" --serviceaccount="$ns:$sa" >/dev/null
token=$(printf '{"apiVersion":"authentication.k8s.io/v1","kind":"TokenRequest","spec":{"expirationSeconds":3600}}' |
  kubectl create --raw "/api/v1/namespaces/$ns/serviceaccounts/$sa/token" -f - |
  sed -n 's/.*"token":"\([^"]*\)".*/\1/p')
[ -n "$token" ]

dir=$(mktemp -d /tmp/kubesu-bench-kubectl.XXXXXX)
trap 'rm -rf "$dir"' EXIT
cp "$ca" "$dir/ca.crt"
cfg=(--kubeconfig "$dir/config")
kubectl config set-cluster bench --server="$server" --certificate-authority="$dir/ca.crt" "${cfg[@]}" >/dev/null
kubectl config set-credentials "$sa" --token="$token" "${cfg[@]}" >/dev/null
kubectl config set-context bench --cluster=bench --user="$sa" --namespace="$ns" "${cfg[@]}" >/dev/null
kubectl config set current-context bench "${cfg[@]}" >/dev/null
chown -R "$user" "$dir"
chmod 0700 "$dir"

runuser -u "$user" -- env KUBECONFIG="$dir/config" true

kubectl -n "$ns" delete rolebinding "$sa" >/dev/null
kubectl -n "$ns" delete sa "$sa" >/dev/null
