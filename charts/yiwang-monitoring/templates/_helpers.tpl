{{/*
Chart name, cut to 63 characters (the DNS label limit).
*/}}
{{- define "yiwang-monitoring.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Full resource name: "<release>-<name>", or the release name when it already contains the
chart name; cut to 63 characters.
*/}}
{{- define "yiwang-monitoring.fullname" -}}
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
{{- define "yiwang-monitoring.suffixedName" -}}
{{- $root := index . 0 -}}
{{- $suffix := index . 1 -}}
{{- $max := sub 62 (len $suffix) | int -}}
{{- printf "%s-%s" (include "yiwang-monitoring.fullname" $root | trunc $max | trimSuffix "-") $suffix -}}
{{- end -}}

{{/*
Chart label value: "<name>-<version>".
*/}}
{{- define "yiwang-monitoring.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Selector labels: stable for the life of a release (never the version or chart label).
*/}}
{{- define "yiwang-monitoring.selectorLabels" -}}
app.kubernetes.io/name: {{ include "yiwang-monitoring.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/*
Federation labels every resource carries: tier, cluster, and adcode when set.
*/}}
{{- define "yiwang-monitoring.federationLabels" -}}
yiwang.gov.cn/tier: {{ .Values.cluster.tier }}
yiwang.gov.cn/cluster: {{ .Values.cluster.name }}
{{- with .Values.cluster.adcode }}
yiwang.gov.cn/adcode: {{ . | quote }}
{{- end }}
{{- end -}}

{{/*
Common labels for every resource: selector labels, release labels and federation labels.
*/}}
{{- define "yiwang-monitoring.labels" -}}
helm.sh/chart: {{ include "yiwang-monitoring.chart" . }}
{{ include "yiwang-monitoring.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | trunc 63 | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: monitoring
app.kubernetes.io/part-of: yiwang
{{ include "yiwang-monitoring.federationLabels" . }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/*
Name of the ServiceAccount the agent runs as.
*/}}
{{- define "yiwang-monitoring.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "yiwang-monitoring.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
Container image reference; a digest wins over the tag.
*/}}
{{- define "yiwang-monitoring.image" -}}
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
Names of the ConfigMaps: server configuration, alert rules, Grafana dashboard.
*/}}
{{- define "yiwang-monitoring.configName" -}}
{{- include "yiwang-monitoring.suffixedName" (list . "config") -}}
{{- end -}}
{{- define "yiwang-monitoring.rulesName" -}}
{{- include "yiwang-monitoring.suffixedName" (list . "rules") -}}
{{- end -}}
{{- define "yiwang-monitoring.dashboardName" -}}
{{- include "yiwang-monitoring.suffixedName" (list . "dashboard") -}}
{{- end -}}

{{/*
Name of the PersistentVolumeClaim holding the TSDB.
*/}}
{{- define "yiwang-monitoring.claimName" -}}
{{- default (include "yiwang-monitoring.suffixedName" (list . "data")) .Values.persistence.existingClaim -}}
{{- end -}}

{{/*
Relabelling that stamps the cluster name on every target of a local scrape job: `cluster` (what
a series is about, unless the target says otherwise under honor_labels) and `site` (whose
Prometheus scraped it; it survives federation, where honor_labels keeps the members' labels).
*/}}
{{- define "yiwang-monitoring.clusterRelabel" -}}
- target_label: cluster
  replacement: {{ .Values.cluster.name | quote }}
- target_label: site
  replacement: {{ .Values.cluster.name | quote }}
{{- end -}}

{{/*
Alertmanager: names, selector labels (disjoint from Prometheus's: another name), labels, image.
*/}}
{{- define "yiwang-monitoring.alertmanagerName" -}}
{{- include "yiwang-monitoring.suffixedName" (list . "alertmanager") -}}
{{- end -}}
{{- define "yiwang-monitoring.alertmanagerSelectorLabels" -}}
app.kubernetes.io/name: {{ printf "%s-alertmanager" (include "yiwang-monitoring.name" .) | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
{{- define "yiwang-monitoring.alertmanagerLabels" -}}
helm.sh/chart: {{ include "yiwang-monitoring.chart" . }}
{{ include "yiwang-monitoring.alertmanagerSelectorLabels" . }}
app.kubernetes.io/version: {{ .Values.alertmanager.image.tag | trunc 63 | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: alertmanager
app.kubernetes.io/part-of: yiwang
{{ include "yiwang-monitoring.federationLabels" . }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}
{{- define "yiwang-monitoring.alertmanagerImage" -}}
{{- $image := .Values.alertmanager.image -}}
{{- $repo := $image.repository -}}
{{- if $image.registry -}}
{{- $repo = printf "%s/%s" $image.registry $image.repository -}}
{{- end -}}
{{- if $image.digest -}}
{{- printf "%s@%s" $repo $image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repo $image.tag -}}
{{- end -}}
{{- end -}}

{{/*
Every Alertmanager this Prometheus sends to: the configured ones and this chart's own.
*/}}
{{- define "yiwang-monitoring.alertmanagerTargets" -}}
{{- $targets := list -}}
{{- range .Values.alerting.alertmanagers -}}
{{- $targets = append $targets . -}}
{{- end -}}
{{- if .Values.alertmanager.enabled -}}
{{- $targets = append $targets (printf "%s.%s.svc:%d" (include "yiwang-monitoring.alertmanagerName" .) .Release.Namespace (int .Values.alertmanager.port)) -}}
{{- end -}}
{{- toYaml $targets -}}
{{- end -}}

{{/*
Checks the schema cannot express; fails the render with a message an operator can act on.
*/}}
{{- define "yiwang-monitoring.validateValues" -}}
{{- if not .Values.cluster.name -}}
{{- fail "yiwang-monitoring: set cluster.name (it becomes external_labels.cluster)" -}}
{{- end -}}
{{- if and .Values.federation.enabled (not .Values.federation.targets) -}}
{{- fail "yiwang-monitoring: federation.enabled needs federation.targets (the provincial Prometheus servers)" -}}
{{- end -}}
{{- end -}}
