#!/usr/bin/env bash
# For machines with Docker and internet: a kind cluster named "marina" with Marina's images loaded.
# marina:dev is built from images/marina/Dockerfile (python:3.11-slim base); minio:dev is the upstream
# MinIO image retagged. Then MinIO is started (kind has a default StorageClass).
set -euo pipefail
cd "$(dirname "$0")/.."
MINIO_UPSTREAM_IMAGE=${MINIO_UPSTREAM_IMAGE:-quay.io/minio/minio:RELEASE.2025-09-07T16-13-09Z}
for tool in kind docker kubectl; do
  command -v "$tool" >/dev/null || { echo "error: '$tool' is required for make kind-up" >&2; exit 1; }
done
kind get clusters 2>/dev/null | grep -qx marina || kind create cluster --name marina --wait 120s
kind export kubeconfig --name marina
export KUBECONFIG=${KUBECONFIG:-$HOME/.kube/config}  # hack/kubectl.sh would default to the local cluster
docker build -f images/marina/Dockerfile -t marina:dev .
docker pull "$MINIO_UPSTREAM_IMAGE"
docker tag "$MINIO_UPSTREAM_IMAGE" minio:dev
kind load docker-image --name marina marina:dev minio:dev
bash hack/minio-up.sh
echo "kind cluster 'marina' is ready; kubectl's current context is kind-marina"
