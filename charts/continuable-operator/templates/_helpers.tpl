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
one holding the Lease acts.
*/}}
{{- define "continuable-operator.leaderElection" -}}
{{- if gt (int .Values.replicaCount) 1 }}true{{- end }}
{{- end }}

{{/*
The operator's RBAC rules, all on namespaced resources: in the ClusterRole when it watches every
namespace, in a Role in each namespace of watchNamespaces otherwise.
*/}}
{{- define "continuable-operator.rules" -}}
# Lists and watches ContinuableJobs, and reads one afresh (get) before acting on it.
- apiGroups: ["continuable.dev"]
  resources: ["continuablejobs"]
  verbs: ["get", "list", "watch"]
# Removes the restart-request annotations of a restart it has handled (a JSON patch).
- apiGroups: ["continuable.dev"]
  resources: ["continuablejobs"]
  verbs: ["patch"]
# Deletes a finished job once its spec.ttlSecondsAfterFinished has passed.
- apiGroups: ["continuable.dev"]
  resources: ["continuablejobs"]
  verbs: ["delete"]
# Writes the job's status (all of it but status.checkpoint, which it resets on a restart).
- apiGroups: ["continuable.dev"]
  resources: ["continuablejobs/status"]
  verbs: ["get", "patch"]
# Lets it set blockOwnerDeletion on a job's objects (OwnerReferencesPermissionEnforcement, OpenShift).
- apiGroups: ["continuable.dev"]
  resources: ["continuablejobs/finalizers"]
  verbs: ["update"]
# Posts Events on a job, and patches the count of one it posted when the same Event repeats.
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "patch"]
# One pod per attempt, with a tracking finalizer it adds and removes (patch).
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch", "create", "delete", "patch"]
# Stamps a DisruptionTarget condition on a pod before it deletes it, so every stop has a reason.
- apiGroups: [""]
  resources: ["pods/status"]
  verbs: ["patch"]
# Each job's step results ConfigMap, watched (by the job label only) so launches read it cached.
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
# The per-job ServiceAccount, when the job's pod template names none.
- apiGroups: [""]
  resources: ["serviceaccounts"]
  verbs: ["get", "list", "watch", "create", "patch"]
# The per-job Role and RoleBinding; the Role grants only rights held here (no escalate or bind).
- apiGroups: ["rbac.authorization.k8s.io"]
  resources: ["roles", "rolebindings"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
{{- if .Values.kueue.enabled }}
# Kueue: one Workload per queued job, watched (by the job label) and created; its spec.active
# follows the job's spec.suspend (a merge patch); a finished one is deleted when its job is
# restarted (Kueue never admits a finished Workload again).
- apiGroups: ["kueue.x-k8s.io"]
  resources: ["workloads"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
# Gives an evicted Workload's quota back once its pod has ended, and writes PodsReady and Finished.
- apiGroups: ["kueue.x-k8s.io"]
  resources: ["workloads/status"]
  verbs: ["patch"]
{{- end }}
{{- end }}

{{- define "continuable-operator.kueueClusterRules" -}}
# What a Workload's admission names (its flavors' node labels and tolerations go on the pod).
- apiGroups: ["kueue.x-k8s.io"]
  resources: ["resourceflavors"]
  verbs: ["get"]
# The value of the priority class a queued job names (a Workload carries both).
- apiGroups: ["kueue.x-k8s.io"]
  resources: ["workloadpriorityclasses"]
  verbs: ["get"]
- apiGroups: ["scheduling.k8s.io"]
  resources: ["priorityclasses"]
  verbs: ["get"]
{{- end }}
