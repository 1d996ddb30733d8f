#!/usr/bin/env bash
# Copies the allowlists of every node's recorder into DIR/<node>/.
#   deploy/kubernetes/collect.sh DIR
set -euo pipefail
dir=${1:?usage: collect.sh DIR}
ns=${AGENT_AUDIT_NAMESPACE:-agent-audit}
kubectl get pods -n "$ns" -l app.kubernetes.io/name=agent-audit \
    -o jsonpath='{range .items[*]}{.metadata.name} {.spec.nodeName}{"\n"}{end}' |
    while read -r pod node; do
        mkdir -p "$dir/$node"
        kubectl cp -n "$ns" -c files "$pod:/out" "$dir/$node"
        echo "collect.sh: $node: $(find "$dir/$node" -name '*.allowlist.json' | wc -l) allowlist(s)"
    done
