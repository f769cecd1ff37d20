{{/* Labels on every object's metadata (never on selectors or pod templates, as the kustomize bases do): */}}
{{/* Marina's part-of label and Helm's own. */}}
{{- define "marina.labels" -}}
app.kubernetes.io/part-of: marina
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}

{{- define "marina.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag }}
{{- end -}}

{{/* MinIO's S3 endpoint: storage.endpoint, else this release's MinIO. */}}
{{- define "marina.s3Endpoint" -}}
{{- if .Values.storage.endpoint -}}
{{ .Values.storage.endpoint }}
{{- else if .Values.minio.enabled -}}
http://minio.{{ .Release.Namespace }}.svc.cluster.local:9000
{{- else -}}
{{ fail "storage.endpoint is required when minio.enabled is false" }}
{{- end -}}
{{- end -}}

{{- define "marina.namespaced" -}}
{{- if eq .Values.install.scope "namespace" -}}
{{- if not .Values.install.namespaces -}}
{{ fail "install.scope namespace needs install.namespaces: the namespaces the operator watches" }}
{{- end -}}
true
{{- else if ne .Values.install.scope "cluster" -}}
{{ fail (printf "install.scope must be cluster or namespace, not %q" .Values.install.scope) }}
{{- end -}}
{{- end -}}

{{/* The operator's rules in the watched namespaces (manifests/operator-namespaced/namespace/role.yaml); the */}}
{{/* cluster-wide ClusterRole has these too, with clusterkopfpeerings, CRDs and namespaces. */}}
{{- define "marina.workloadRules" -}}
- apiGroups: [marina.dev]
  resources: [datasets, trainingjobs, modeldeployments, batchpredictions]
  verbs: [get, list, watch, patch]
- apiGroups: [marina.dev]
  resources: [datasets/status, trainingjobs/status, modeldeployments/status, batchpredictions/status]
  verbs: [get, patch]
- apiGroups: [batch]
  resources: [jobs]
  verbs: [get, list, watch, create, delete]
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [""]
  resources: [services]
  verbs: [get, create, patch, delete]  # delete: a shadow challenger's Service, once its phase ends
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get, create, patch]
- apiGroups: [autoscaling]
  resources: [horizontalpodautoscalers]
  verbs: [get, create, patch, delete]
- apiGroups: [policy]
  resources: [poddisruptionbudgets]
  verbs: [get, create, patch, delete]
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list]
- apiGroups: ["", events.k8s.io]
  resources: [events]
  verbs: [create, patch]
# Each workload namespace's storage Secret: created, then read and rewritten by name only.
- apiGroups: [""]
  resources: [secrets]
  verbs: [create]
- apiGroups: [""]
  resources: [secrets]
  resourceNames: [{{ .Values.storage.secretName }}]
  verbs: [get, patch]
{{- end -}}
