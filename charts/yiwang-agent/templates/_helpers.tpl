{{/*
Chart name, cut to 63 characters (the DNS label limit).
*/}}
{{- define "yiwang-agent.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Full resource name: "<release>-<name>", or the release name when it already contains the
chart name; cut to 63 characters.
*/}}
{{- define "yiwang-agent.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
Name with a suffix, still within 63 characters: the suffix is kept whole and the full name cut.
Call with (list $ "suffix").
*/}}
{{- define "yiwang-agent.suffixedName" -}}
{{- $root := index . 0 -}}
{{- $suffix := index . 1 -}}
{{- $max := sub 62 (len $suffix) | int -}}
{{- printf "%s-%s" (include "yiwang-agent.fullname" $root | trunc $max | trimSuffix "-") $suffix -}}
{{- end -}}

{{/*
Chart label value: "<name>-<version>".
*/}}
{{- define "yiwang-agent.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Selector labels: stable for the life of a release (never the version or chart label).
*/}}
{{- define "yiwang-agent.selectorLabels" -}}
app.kubernetes.io/name: {{ include "yiwang-agent.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/*
Federation labels every agent resource carries: tier, cluster, and adcode when set.
*/}}
{{- define "yiwang-agent.federationLabels" -}}
yiwang.gov.cn/tier: {{ .Values.cluster.tier }}
yiwang.gov.cn/cluster: {{ .Values.cluster.name }}
{{- with .Values.cluster.adcode }}
yiwang.gov.cn/adcode: {{ . | quote }}
{{- end }}
{{- end -}}

{{/*
Common labels for every resource: selector labels, release labels and federation labels.
*/}}
{{- define "yiwang-agent.labels" -}}
helm.sh/chart: {{ include "yiwang-agent.chart" . }}
{{ include "yiwang-agent.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | trunc 63 | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: agent
app.kubernetes.io/part-of: yiwang
{{ include "yiwang-agent.federationLabels" . }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/*
Name of the ServiceAccount the agent runs as.
*/}}
{{- define "yiwang-agent.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "yiwang-agent.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
Container image reference; a digest wins over the tag.
*/}}
{{- define "yiwang-agent.image" -}}
{{- $repo := .Values.image.repository -}}
{{- if .Values.image.registry -}}
{{- $repo = printf "%s/%s" .Values.image.registry .Values.image.repository -}}
{{- end -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" $repo .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repo (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}
{{- end -}}

{{/*
Secret and key holding the agent token.
*/}}
{{- define "yiwang-agent.tokenSecretName" -}}
{{- default (include "yiwang-agent.fullname" .) .Values.auth.existingSecret -}}
{{- end -}}
{{- define "yiwang-agent.tokenSecretKey" -}}
{{- if .Values.auth.existingSecret -}}
{{- .Values.auth.existingSecretKey -}}
{{- else -}}
agent-token
{{- end -}}
{{- end -}}

{{/*
Name of the metrics Service.
*/}}
{{- define "yiwang-agent.metricsServiceName" -}}
{{- include "yiwang-agent.suffixedName" (list . "metrics") -}}
{{- end -}}

{{/*
Name of the per-namespace Role (and RoleBinding) that lets the agent run tenant workloads.
*/}}
{{- define "yiwang-agent.workloadRoleName" -}}
{{- include "yiwang-agent.suffixedName" (list . "workloads") -}}
{{- end -}}

{{/*
Name of the ClusterRole (and ClusterRoleBinding) for reading cluster capacity. Cluster-scoped,
so it carries the namespace to stay unique when two releases share a name.
*/}}
{{- define "yiwang-agent.capacityClusterRoleName" -}}
{{- $suffix := "capacity-reader" -}}
{{- $max := sub 61 (add (len $suffix) (len .Release.Namespace)) | int -}}
{{- printf "%s-%s-%s" .Release.Namespace (include "yiwang-agent.fullname" . | trunc $max | trimSuffix "-") $suffix | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Checks the schema cannot express; fails the render with a message an operator can act on.
*/}}
{{- define "yiwang-agent.validateValues" -}}
{{- if not .Values.controllerUrl -}}
{{- fail "yiwang-agent: set controllerUrl (the federation controller the agent connects out to)" -}}
{{- end -}}
{{- if not .Values.cluster.name -}}
{{- fail "yiwang-agent: set cluster.name (this member cluster's name in policies/topology.yaml)" -}}
{{- end -}}
{{- if and (eq .Values.cluster.tier "province") (not .Values.cluster.adcode) -}}
{{- fail "yiwang-agent: cluster.adcode is required when cluster.tier is province" -}}
{{- end -}}
{{- if not (and .Values.cluster.capacity .Values.cluster.capacity.cpu .Values.cluster.capacity.memoryGib) -}}
{{- fail "yiwang-agent: set cluster.capacity.cpu and cluster.capacity.memoryGib (what this cluster offers the federation)" -}}
{{- end -}}
{{- if and (not .Values.auth.existingSecret) (not .Values.auth.token) -}}
{{- fail "yiwang-agent: set auth.token or auth.existingSecret (the agent token issued by the controller)" -}}
{{- end -}}
{{- end -}}
