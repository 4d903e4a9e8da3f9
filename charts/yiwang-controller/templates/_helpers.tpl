{{/*
Chart name, cut to 63 characters (the DNS label limit).
*/}}
{{- define "yiwang-controller.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Full resource name: "<release>-<name>", or the release name when it already contains the
chart name; cut to 63 characters.
*/}}
{{- define "yiwang-controller.fullname" -}}
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
Chart label value: "<name>-<version>".
*/}}
{{- define "yiwang-controller.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Selector labels: stable for the life of a release (never the version or chart label), because
a Deployment's selector cannot change after creation.
*/}}
{{- define "yiwang-controller.selectorLabels" -}}
app.kubernetes.io/name: {{ include "yiwang-controller.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/*
Name label of the API replicas (role=api): "<name>-api". It must differ from the name label:
the main Deployment selects on name + instance only, that selector cannot change, and a label
selector matches any pod carrying those two labels, whatever else it carries. Cut so that the
suffix always survives (a cut "<name>-api" could equal the name itself).
*/}}
{{- define "yiwang-controller.apiName" -}}
{{- printf "%s-api" (include "yiwang-controller.name" . | trunc 59 | trimSuffix "-") -}}
{{- end -}}

{{/*
Full name of the API replicas' objects (Deployment, PodDisruptionBudget): "<fullname>-api".
*/}}
{{- define "yiwang-controller.apiFullname" -}}
{{- printf "%s-api" (include "yiwang-controller.fullname" . | trunc 59 | trimSuffix "-") -}}
{{- end -}}

{{/*
Selector labels of the API replicas' Deployment: disjoint from selectorLabels (other name).
*/}}
{{- define "yiwang-controller.apiSelectorLabels" -}}
app.kubernetes.io/name: {{ include "yiwang-controller.apiName" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/*
Labels every pod that serves the REST API carries, role=all and role=api alike: the Service and
the NetworkPolicy select on them. Only labels the controller pods have carried since the
chart's first version, so that changing the Service selector to these on upgrade never leaves
the not-yet-replaced pods without traffic.
*/}}
{{- define "yiwang-controller.apiServerSelectorLabels" -}}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/part-of: yiwang
app.kubernetes.io/component: controller
{{- end -}}

{{/*
Common labels around the given selector labels; called with (dict "root" $ "selectorLabels" ...).
*/}}
{{- define "yiwang-controller.labelsWith" -}}
{{- $root := .root -}}
helm.sh/chart: {{ include "yiwang-controller.chart" $root }}
{{ .selectorLabels }}
app.kubernetes.io/version: {{ $root.Values.image.tag | default $root.Chart.AppVersion | trunc 63 | quote }}
app.kubernetes.io/managed-by: {{ $root.Release.Service }}
app.kubernetes.io/component: controller
app.kubernetes.io/part-of: yiwang
yiwang.gov.cn/tier: national
yiwang.gov.cn/cluster: {{ $root.Values.cluster }}
{{- with $root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/*
Common labels for every resource: selector labels plus release and federation labels.
*/}}
{{- define "yiwang-controller.labels" -}}
{{- include "yiwang-controller.labelsWith" (dict "root" . "selectorLabels" (include "yiwang-controller.selectorLabels" .)) -}}
{{- end -}}

{{/*
Labels of the API replicas' objects and pods: the common labels around apiSelectorLabels.
*/}}
{{- define "yiwang-controller.apiLabels" -}}
{{- include "yiwang-controller.labelsWith" (dict "root" . "selectorLabels" (include "yiwang-controller.apiSelectorLabels" .)) -}}
{{- end -}}

{{/*
Name of the ServiceAccount the pods run as.
*/}}
{{- define "yiwang-controller.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "yiwang-controller.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
Container image reference; a digest wins over the tag.
*/}}
{{- define "yiwang-controller.image" -}}
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
Secret that the chart creates (database URL and/or admin token).
*/}}
{{- define "yiwang-controller.secretName" -}}
{{- include "yiwang-controller.fullname" . -}}
{{- end -}}

{{/*
Whether the chart must create its own Secret: "true" or empty.
*/}}
{{- define "yiwang-controller.createSecret" -}}
{{- if or (not .Values.database.existingSecret) (not .Values.auth.existingSecret) -}}
true
{{- end -}}
{{- end -}}

{{/*
Secret and key holding the database URL.
*/}}
{{- define "yiwang-controller.databaseSecretName" -}}
{{- default (include "yiwang-controller.secretName" .) .Values.database.existingSecret -}}
{{- end -}}
{{- define "yiwang-controller.databaseSecretKey" -}}
{{- if .Values.database.existingSecret -}}
{{- .Values.database.existingSecretKey -}}
{{- else -}}
database-url
{{- end -}}
{{- end -}}

{{/*
Secret and key holding the admin token.
*/}}
{{- define "yiwang-controller.adminTokenSecretName" -}}
{{- default (include "yiwang-controller.secretName" .) .Values.auth.existingSecret -}}
{{- end -}}
{{- define "yiwang-controller.adminTokenSecretKey" -}}
{{- if .Values.auth.existingSecret -}}
{{- .Values.auth.existingSecretKey -}}
{{- else -}}
admin-token
{{- end -}}
{{- end -}}

{{/*
Admin token value (base64): the given one, else the one already stored in the cluster (so an
upgrade keeps it), else a new random one.
*/}}
{{- define "yiwang-controller.adminTokenB64" -}}
{{- if .Values.auth.adminToken -}}
{{- .Values.auth.adminToken | b64enc -}}
{{- else -}}
{{- $existing := lookup "v1" "Secret" .Release.Namespace (include "yiwang-controller.secretName" .) -}}
{{- if and $existing (index ($existing.data | default dict) "admin-token") -}}
{{- index $existing.data "admin-token" -}}
{{- else -}}
{{- randAlphaNum 48 | b64enc -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
Name of the ConfigMap holding the policy files.
*/}}
{{- define "yiwang-controller.policiesConfigMapName" -}}
{{- default (printf "%s-policies" (include "yiwang-controller.fullname" .) | trunc 63 | trimSuffix "-") .Values.policies.existingConfigMap -}}
{{- end -}}

{{/*
Checks the schema cannot express; fails the render with a message an operator can act on.
*/}}
{{- define "yiwang-controller.validateValues" -}}
{{- if and (not .Values.database.existingSecret) (not .Values.database.url) -}}
{{- fail "yiwang-controller: set database.url or database.existingSecret (the active and standby controllers share one PostgreSQL database)" -}}
{{- end -}}
{{- if not .Values.policies.existingConfigMap -}}
{{- $files := include "yiwang-controller.policyFiles" . | fromYaml -}}
{{- if not $files -}}
{{- fail "yiwang-controller: set policies.files or policies.existingConfigMap" -}}
{{- end -}}
{{- range $required := list "topology.yaml" "failover.yaml" -}}
{{- if not (get $files $required) -}}
{{- fail (printf "yiwang-controller: the policies have no %s (the controller cannot start without the federation's topology and failover groups): keep policies.shipped or give it in policies.files" $required) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
The policy files of the ConfigMap, as YAML (file name -> text): the chart's shipped copy of the
repository's policies/ (policies.shipped), overlaid by policies.files.
*/}}
{{- define "yiwang-controller.policyFiles" -}}
{{- $files := dict -}}
{{- if .Values.policies.shipped -}}
{{- range $path, $_ := .Files.Glob "policies/*.yaml" -}}
{{- $_ := set $files (base $path) ($.Files.Get $path) -}}
{{- end -}}
{{- end -}}
{{- range $name, $text := .Values.policies.files -}}
{{- $_ := set $files $name $text -}}
{{- end -}}
{{- toYaml $files -}}
{{- end -}}
