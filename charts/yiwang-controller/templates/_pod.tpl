{{/*
Pod template shared by the controller Deployment (role "all") and the API replicas' Deployment
(role "api"): one definition, so the two kinds of pods cannot drift apart. Called with
(dict "root" $ "role" "all"|"api"). What differs by role: the labels (name and
yiwang.gov.cn/role), YIWANG_ROLE, the resources, the API replicas' extra env, and the default
anti-affinity (which spreads each Deployment's own pods).
*/}}
{{- define "yiwang-controller.podTemplate" -}}
{{- $root := .root -}}
{{- $role := .role -}}
{{- $values := $root.Values -}}
{{- $isApi := eq $role "api" -}}
metadata:
  labels:
    {{- if $isApi }}
    {{- include "yiwang-controller.apiLabels" $root | nindent 4 }}
    {{- else }}
    {{- include "yiwang-controller.labels" $root | nindent 4 }}
    {{- end }}
    yiwang.gov.cn/role: {{ $role }}
    {{- with $values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    {{- if not $values.policies.existingConfigMap }}
    checksum/policies: {{ include (print $root.Template.BasePath "/configmap-policies.yaml") $root | sha256sum }}
    {{- end }}
    {{- with $values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "yiwang-controller.serviceAccountName" $root }}
  automountServiceAccountToken: {{ $values.serviceAccount.automountServiceAccountToken }}
  {{- with $values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $values.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  terminationGracePeriodSeconds: {{ $values.terminationGracePeriodSeconds }}
  securityContext:
    {{- toYaml $values.podSecurityContext | nindent 4 }}
  {{- with $values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  affinity:
    {{- if $values.affinity }}
    {{- toYaml $values.affinity | nindent 4 }}
    {{- else }}
    podAntiAffinity:
      preferredDuringSchedulingIgnoredDuringExecution:
        - weight: 100
          podAffinityTerm:
            topologyKey: kubernetes.io/hostname
            labelSelector:
              matchLabels:
                {{- if $isApi }}
                {{- include "yiwang-controller.apiSelectorLabels" $root | nindent 16 }}
                {{- else }}
                {{- include "yiwang-controller.selectorLabels" $root | nindent 16 }}
                {{- end }}
    {{- end }}
  {{- with $values.topologySpreadConstraints }}
  topologySpreadConstraints:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  containers:
    - name: controller
      image: {{ include "yiwang-controller.image" $root }}
      imagePullPolicy: {{ $values.image.pullPolicy }}
      command: ["yiwang"]
      args:
        - serve
        - --host
        - 0.0.0.0
        - --port
        - {{ $values.containerPort | quote }}
        - --policies
        - /etc/yiwang/policies
        {{- with $values.extraArgs }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      env:
        - name: YIWANG_ENVIRONMENT
          value: {{ $values.environment | quote }}
        - name: YIWANG_MODE
          value: {{ $values.mode | quote }}
        - name: YIWANG_ROLE
          value: {{ $role | quote }}
        - name: YIWANG_DATABASE_URL
          valueFrom:
            secretKeyRef:
              name: {{ include "yiwang-controller.databaseSecretName" $root }}
              key: {{ include "yiwang-controller.databaseSecretKey" $root }}
        - name: YIWANG_ADMIN_TOKEN
          valueFrom:
            secretKeyRef:
              name: {{ include "yiwang-controller.adminTokenSecretName" $root }}
              key: {{ include "yiwang-controller.adminTokenSecretKey" $root }}
        - name: YIWANG_CLUSTER
          value: {{ $values.cluster | quote }}
        - name: POD_NAME
          valueFrom:
            fieldRef:
              fieldPath: metadata.name
        {{- with $values.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
        {{- if $isApi }}
        {{- with $values.api.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
        {{- end }}
      ports:
        - name: http
          containerPort: {{ $values.containerPort }}
          protocol: TCP
      {{- if $values.startupProbe.enabled }}
      startupProbe:
        httpGet:
          path: /healthz
          port: http
        periodSeconds: {{ $values.startupProbe.periodSeconds }}
        timeoutSeconds: {{ $values.startupProbe.timeoutSeconds }}
        failureThreshold: {{ $values.startupProbe.failureThreshold }}
      {{- end }}
      {{- if $values.livenessProbe.enabled }}
      livenessProbe:
        httpGet:
          path: /healthz
          port: http
        initialDelaySeconds: {{ $values.livenessProbe.initialDelaySeconds }}
        periodSeconds: {{ $values.livenessProbe.periodSeconds }}
        timeoutSeconds: {{ $values.livenessProbe.timeoutSeconds }}
        failureThreshold: {{ $values.livenessProbe.failureThreshold }}
      {{- end }}
      {{- if $values.readinessProbe.enabled }}
      readinessProbe:
        httpGet:
          path: /readyz
          port: http
        initialDelaySeconds: {{ $values.readinessProbe.initialDelaySeconds }}
        periodSeconds: {{ $values.readinessProbe.periodSeconds }}
        timeoutSeconds: {{ $values.readinessProbe.timeoutSeconds }}
        failureThreshold: {{ $values.readinessProbe.failureThreshold }}
      {{- end }}
      resources:
        {{- toYaml (ternary $values.api.resources $values.resources $isApi) | nindent 8 }}
      securityContext:
        {{- toYaml $values.containerSecurityContext | nindent 8 }}
      volumeMounts:
        - name: policies
          mountPath: /etc/yiwang/policies
          readOnly: true
        - name: tmp
          mountPath: /tmp
  volumes:
    - name: policies
      configMap:
        name: {{ include "yiwang-controller.policiesConfigMapName" $root }}
    # The root filesystem is read-only; Python and uvicorn still need a scratch /tmp.
    - name: tmp
      emptyDir:
        sizeLimit: 256Mi
{{- end -}}
