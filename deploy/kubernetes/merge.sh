#!/usr/bin/env bash
# Merges the allowlists collected from every node (collect.sh) into one Security Profiles
# Operator SeccompProfile per workload: the pods of NAMESPACE matching SELECTOR are grouped by
# the workload that owns them (a Deployment through its ReplicaSet, a StatefulSet, DaemonSet,
# Job, …; a bare pod by its name), and the allowlists of all their replicas, from every node,
# are merged into one profile (the union of their syscalls, as SPO's recording merge does).
#
#   deploy/kubernetes/merge.sh NAMESPACE SELECTOR ALLOWLIST_DIR OUT_DIR
#
# The pods are read with `kubectl get pods`; pods already deleted (finished Jobs, CI runs) are
# only known from a list saved while they ran, with the same namespace and selector:
# PODS_JSON=pods.json (`kubectl get pods -n NAMESPACE -l SELECTOR -o json > pods.json`). AGENT_AUDIT is the binary (default: agent-audit on PATH). Writes
# OUT_DIR/<namespace>-<workload>.yaml, to apply with `kubectl apply -f`.
set -euo pipefail
ns=${1:?usage: merge.sh NAMESPACE SELECTOR ALLOWLIST_DIR OUT_DIR}
selector=${2:?usage: merge.sh NAMESPACE SELECTOR ALLOWLIST_DIR OUT_DIR}
in_dir=${3:?usage: merge.sh NAMESPACE SELECTOR ALLOWLIST_DIR OUT_DIR}
out_dir=${4:?usage: merge.sh NAMESPACE SELECTOR ALLOWLIST_DIR OUT_DIR}
agent_audit=${AGENT_AUDIT:-agent-audit}

if [ -n "${PODS_JSON:-}" ]; then
    pods=$(cat "$PODS_JSON")
else
    pods=$(kubectl get pods -n "$ns" -l "$selector" -o json)
fi

# pod UID → workload name. A ReplicaSet owned by a Deployment is named
# <deployment>-<pod-template-hash>: the hash is dropped so that every rollout merges into one.
declare -A workload_of
while IFS=$'\t' read -r uid workload; do
    workload_of[$uid]=$workload
done < <(jq -r '.items[] |
    (.metadata.ownerReferences // [] | map(select(.controller)) | first) as $owner |
    (.metadata.labels["pod-template-hash"] // "") as $hash |
    [.metadata.uid,
     (if $owner == null then .metadata.name
      elif $owner.kind == "ReplicaSet" and $hash != "" then ($owner.name | rtrimstr("-" + $hash))
      else $owner.name end)] | @tsv' <<< "$pods")
[ "${#workload_of[@]}" -gt 0 ] || { echo "merge.sh: no pod in $ns matches $selector" >&2; exit 1; }

# allowlist → pod UID, from the cgroup path the kubelet chose (systemd: underscores).
declare -A files_of
while IFS= read -r -d '' file; do
    path=$(jq -r '.target.cgroup_path // ""' "$file")
    [[ $path =~ pod([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12}) ]] || continue
    uid=${BASH_REMATCH[1]//_/-}
    workload=${workload_of[$uid]:-}
    [ -n "$workload" ] || continue
    files_of[$workload]+="$file"$'\n'
done < <(find "$in_dir" -name '*.allowlist.json' -print0 | sort -z)

mkdir -p "$out_dir"
for workload in $(printf '%s\n' "${!files_of[@]}" | sort); do
    mapfile -t files <<< "${files_of[$workload]%$'\n'}"
    out="$out_dir/$ns-$workload.yaml"
    "$agent_audit" profile "${files[@]}" --format spo-yaml --name "$ns-$workload" -o "$out"
    echo "merge.sh: $workload: ${#files[@]} allowlist(s) -> $out"
done
