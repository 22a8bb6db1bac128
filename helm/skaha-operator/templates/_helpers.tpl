{{/* Names, labels and the RBAC rules shared by the templates. */}}

{{- define "skaha-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "skaha-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains (include "skaha-operator.name" .) .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name (include "skaha-operator.name" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "skaha-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "skaha-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "skaha-operator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "skaha-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "skaha-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "skaha-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "skaha-operator.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
Exactly what the operator does (docs/kubernetes-notes.md §7, kopf's deployment RBAC; checked
against the API server's audit log by tests/chaos/test_rbac.py): users create and delete
Sessions and SkahaPlatforms, the operator watches them and patches them (kopf's finalizer);
a Session's parts are also created and deleted by the operator; every status is written with
a JSON patch (reads go through the main resource); a platform's token Secret and notebook
ConfigMaps are read, and the platform's Secrets are patched to carry the operator's finalizer
while the platform exists (so release still has its token) and, for an OIDC platform with
writeBack, to store a refresh token the issuer rotated (docs/install.md §3.1); kopf posts
core/v1 Events.
*/}}
{{- define "skaha-operator.rules" -}}
- apiGroups: ["skaha.broker.dev"]
  resources: [sessions, skahaplatforms]
  verbs: [get, list, watch, patch]
- apiGroups: ["skaha.broker.dev"]
  resources: [dockercontainers, jupyternotebooks, storages, data, computes]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: ["skaha.broker.dev"]
  resources:
    - skahaplatforms/status
    - dockercontainers/status
    - jupyternotebooks/status
    - storages/status
    - data/status
    - computes/status
    - sessions/status
  verbs: [patch]
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, patch]
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get]
- apiGroups: [""]
  resources: [events]
  verbs: [create]
{{- end }}

{{/*
Cluster-scoped: kopf's discovery (it follows CRDs always, and namespaces when it watches a list of
them) and, with secure metrics, the reviews that decide who may scrape /metrics (a TokenReview
says whose token it is, a SubjectAccessReview whether they may get /metrics).
*/}}
{{- define "skaha-operator.scanRules" -}}
- apiGroups: ["apiextensions.k8s.io"]
  resources: [customresourcedefinitions]
  verbs: [list, watch]
{{- if .Values.watchNamespaces }}
- apiGroups: [""]
  resources: [namespaces]
  verbs: [list, watch]
{{- end }}
{{- if and .Values.metrics.enabled .Values.metrics.secure }}
- apiGroups: ["authentication.k8s.io"]
  resources: [tokenreviews]
  verbs: [create]
- apiGroups: ["authorization.k8s.io"]
  resources: [subjectaccessreviews]
  verbs: [create]
{{- end }}
{{- end }}

{{/*
The replicas' Leases (runtime/shards.py): one per shard and one per live replica, listed, created,
updated as compare-and-swap PUTs and deleted on a clean stop; get, watch and patch are the rest of
the usual Lease verbs (client-go's leader-election role), for inspection and tools.
*/}}
{{- define "skaha-operator.leaseRules" -}}
- apiGroups: ["coordination.k8s.io"]
  resources: [leases]
  verbs: [get, list, watch, create, update, patch, delete]
{{- end }}
