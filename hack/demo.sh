#!/usr/bin/env bash
# The whole story in one command: a cluster (the current one when KUBECONFIG reaches it, else the local
# one from source), Marina's images, MinIO and the operator, then the diabetes samples — a Dataset, a
# TrainingJob, a ModelDeployment and a BatchPrediction — each waited for until Ready, and a prediction
# through the Service.
set -euo pipefail
HACK="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HACK/.." && pwd)"
NAMESPACE=${MARINA_DEMO_NAMESPACE:-default}
k() { bash "$HACK/kubectl.sh" "$@"; }
log() { printf '\n[demo] %s\n' "$*" >&2; }

LOCAL_KUBECONFIG=$ROOT/.cluster/kubeconfig
if [[ -n ${KUBECONFIG:-} && $KUBECONFIG != "$LOCAL_KUBECONFIG" ]] && k version >/dev/null 2>&1; then
  log "using the cluster of KUBECONFIG=$KUBECONFIG (its nodes must have marina.local/marina:dev and" \
    "marina.local/minio:dev: make kind-up loads them)"
else
  [[ -z ${KUBECONFIG:-} || $KUBECONFIG == "$LOCAL_KUBECONFIG" ]] ||
    log "KUBECONFIG=$KUBECONFIG does not reach a cluster; using the local one"
  export KUBECONFIG=$LOCAL_KUBECONFIG
  k version >/dev/null 2>&1 || { log "starting the local cluster"; bash "$HACK/cluster-up.sh"; }
  log "images"
  bash "$HACK/images.sh"  # built here and loaded into the local cluster's containerd
fi
log "deploy"
bash "$HACK/deploy.sh" "$NAMESPACE"

log "samples"
k -n "$NAMESPACE" apply -k "$ROOT/manifests/samples"
for resource in dataset/diabetes trainingjob/diabetes modeldeployment/diabetes batchprediction/diabetes; do
  log "waiting for $resource"
  k -n "$NAMESPACE" wait --for=condition=Ready "$resource" --timeout=600s || {
    k -n "$NAMESPACE" get "$resource" -o jsonpath='{range .status.conditions[*]}{.type}={.status} {.reason}: {.message}{"\n"}{end}' >&2
    exit 1
  }
done
k -n "$NAMESPACE" get marina -o wide
log "the test split scored: $(k -n "$NAMESPACE" get batchprediction/diabetes \
  -o jsonpath='{.status.rows} rows, manifest {.status.manifest.uri}')"

url=$(k -n "$NAMESPACE" get modeldeployment/diabetes -o jsonpath='{.status.url}')
log "prediction through the Service: POST $url/v2/models/diabetes/infer"
# One row of the diabetes data (age, sex, bmi, bp, s1..s6, already scaled as scikit-learn ships them),
# sent from a short-lived pod so it works on any cluster (kind included).
k -n "$NAMESPACE" run marina-demo-client --rm -i --quiet --restart=Never --image=marina.local/marina:dev \
  --image-pull-policy=IfNotPresent --command -- python3 -c '
import json, sys, urllib.request
row = [0.0380759, 0.0506801, 0.0616962, 0.0218724, -0.0442235, -0.0348208, -0.0434008, -0.0025923, 0.0199075, -0.0176461]
body = {"inputs": [{"name": "input-0", "shape": [1, 10], "datatype": "FP64", "data": row}]}
request = urllib.request.Request(sys.argv[1] + "/v2/models/diabetes/infer", json.dumps(body).encode(),
                                 {"Content-Type": "application/json"})
print(json.dumps(json.load(urllib.request.urlopen(request, timeout=10)), indent=2))' "$url"
