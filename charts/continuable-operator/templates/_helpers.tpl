{{/*
The chart name, or nameOverride.
*/}}
{{- define "continuable-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name of every object: fullnameOverride, or `<release>-<chart>` (just the release when it
already contains the chart name). 63 characters at most: some name fields are DNS-1123 labels.
*/}}
{{- define "continuable-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Chart name and version, for the helm.sh/chart label.
*/}}
{{- define "continuable-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels on every object.
*/}}
{{- define "continuable-operator.labels" -}}
helm.sh/chart: {{ include "continuable-operator.chart" . }}
{{ include "continuable-operator.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: continuable
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
Selector labels: fixed for the life of a release (a Deployment's selector is immutable).
*/}}
{{- define "continuable-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "continuable-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
The operator's ServiceAccount.
*/}}
{{- define "continuable-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "continuable-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The image reference; the tag defaults to the chart's appVersion.
*/}}
{{- define "continuable-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{/*
"true" when more than one replica runs: each replica runs with `--leader-elect`, and only the
one holding the Lease acts (kopf peering is not used: replicas of one operator share a priority,
and kopf freezes every one of them when it sees two at the same priority).
*/}}
{{- define "continuable-operator.leaderElection" -}}
{{- if gt (int .Values.replicaCount) 1 }}true{{- end }}
{{- end }}

{{/*
RBAC rules kopf itself needs in every namespace it watches. Cluster-scoped rights
(CustomResourceDefinitions, namespaces) are in the ClusterRole.
*/}}
{{- define "continuable-operator.frameworkRules" -}}
# Framework: kopf watches ContinuableJobs and keeps its bookkeeping in their annotations
# (progress and last-handled state), so it patches the objects themselves.
- apiGroups: ["continuable.dev"]
  resources: ["continuablejobs"]
  verbs: ["get", "list", "watch", "patch"]
# Framework: kopf posts events about the objects it handles (core and events.k8s.io APIs).
- apiGroups: ["", "events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}

{{/*
RBAC rules of the operator's own logic, in every namespace it watches.
*/}}
{{- define "continuable-operator.applicationRules" -}}
# Application: the operator owns every status field but status.checkpoint (phase, attempt,
# conditions, history, counters) and resets the checkpoint on an explicit restart.
- apiGroups: ["continuable.dev"]
  resources: ["continuablejobs/status"]
  verbs: ["get", "patch", "update"]
# Application: finished jobs are deleted after spec.ttlSecondsAfterFinished.
- apiGroups: ["continuable.dev"]
  resources: ["continuablejobs"]
  verbs: ["delete"]
# Application: the objects made for a job are owned by it with blockOwnerDeletion, which the
# OwnerReferencesPermissionEnforcement admission plugin (on in OpenShift) allows only to whoever
# may update the job's finalizers.
- apiGroups: ["continuable.dev"]
  resources: ["continuablejobs/finalizers"]
  verbs: ["update"]
# Application: the operator's own Events on a job. A repeated one (a pod creation refused at
# every retry) is aggregated: the Event already posted is read and its count patched, rather
# than a new Event posted each time.
- apiGroups: [""]
  resources: ["events"]
  verbs: ["get", "create", "patch"]
# Application: one pod per attempt, with a tracking finalizer the operator adds and removes.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch", "create", "delete", "patch"]
# Application: a DisruptionTarget condition is stamped on a pod before the operator deletes it
# (rollout, suspend, deadline), so every termination has a recorded reason.
- apiGroups: [""]
  resources: ["pods/status"]
  verbs: ["patch"]
# Application: each job's step results ConfigMap (`<job>-results`), fenced on its attempt key.
# Listed and watched (by the job label only) so that launches read it from memory, not the API.
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
# Application: the per-job ServiceAccount, when the job's template names none (merged back to
# its owner reference and labels when it already exists).
- apiGroups: [""]
  resources: ["serviceaccounts"]
  verbs: ["get", "list", "watch", "create", "patch"]
# Application: the per-job Role and RoleBinding. The Role grants get on the job
# (resourceNames), get/patch on its status and its results ConfigMap and get on its pods (a
# block of 8 attempts): all held by the operator itself, so neither `escalate` nor `bind` is
# needed.
- apiGroups: ["rbac.authorization.k8s.io"]
  resources: ["roles", "rolebindings"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
{{- end }}
