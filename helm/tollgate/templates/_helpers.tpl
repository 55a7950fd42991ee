{{/* Names and labels shared by every template. */}}

{{- define "tollgate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "tollgate.fullname" -}}
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

{{- define "tollgate.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "tollgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selector labels of the control plane's pods. */}}
{{- define "tollgate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tollgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: control-plane
{{- end -}}

{{- define "tollgate.redis.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tollgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: redis
{{- end -}}

{{- define "tollgate.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag -}}
{{- if .Values.image.digest -}}
{{- printf "%s:%s@%s" .Values.image.repository $tag .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{- define "tollgate.secretName" -}}
{{- default (include "tollgate.fullname" .) .Values.auth.existingSecret -}}
{{- end -}}

{{- define "tollgate.redis.fullname" -}}
{{- printf "%s-redis" (include "tollgate.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The control plane's Service host as the gateways' proxies name it. */}}
{{- define "tollgate.host" -}}
{{- printf "%s.%s.svc.cluster.local" (include "tollgate.fullname" .) .Release.Namespace -}}
{{- end -}}

{{/*
Cross-field rules the schema cannot say readably; each message names the values key.
*/}}
{{- define "tollgate.validate" -}}
{{- $r := .Values.redis -}}
{{- if and (eq $r.mode "memory") (or (gt (int .Values.controlPlane.replicas) 1) .Values.controlPlane.autoscaling.enabled) -}}
{{- fail "redis.mode=memory keeps counters in each pod: set controlPlane.replicas=1 and controlPlane.autoscaling.enabled=false, or use redis.mode=bundled|external" -}}
{{- end -}}
{{- if eq $r.mode "external" -}}
{{- $e := $r.external -}}
{{- $given := 0 -}}
{{- range (list $e.url $e.sentinel.nodes $e.cluster.nodes) }}{{ if . }}{{ $given = add1 $given }}{{ end }}{{ end -}}
{{- if ne $given 1 -}}
{{- fail "redis.mode=external needs exactly one of redis.external.url (standalone), redis.external.sentinel.nodes or redis.external.cluster.nodes" -}}
{{- end -}}
{{- if and $e.sentinel.nodes (not $e.sentinel.masterName) -}}
{{- fail "redis.external.sentinel.masterName is required with redis.external.sentinel.nodes" -}}
{{- end -}}
{{- end -}}
{{- if and .Values.controlPlane.autoscaling.enabled (gt (int .Values.controlPlane.autoscaling.minReplicas) (int .Values.controlPlane.autoscaling.maxReplicas)) -}}
{{- fail "controlPlane.autoscaling.minReplicas must not exceed controlPlane.autoscaling.maxReplicas" -}}
{{- end -}}
{{- end -}}

{{/*
The data-plane token the filter sends: auth.dataplaneToken, else read from auth.existingSecret
at install (Istio and Envoy Gateway have no Secret reference for plugin configuration).
*/}}
{{- define "tollgate.filterToken" -}}
{{- if .Values.auth.dataplaneToken -}}
{{- .Values.auth.dataplaneToken -}}
{{- else -}}
{{- $secret := lookup "v1" "Secret" .Release.Namespace .Values.auth.existingSecret -}}
{{- $token := "" -}}
{{- if $secret -}}
{{- /* The first line: the control plane accepts every line (rotation), the filter sends one. */ -}}
{{- $token = index $secret.data "dataplane-token" | default "" | b64dec | splitList "\n" | first | trim -}}
{{- end -}}
{{- if not $token -}}
{{- fail (printf "the filter's configuration needs the data-plane token: set auth.dataplaneToken, or create Secret %s/%s with key dataplane-token before helm install (helm template cannot read it)" .Release.Namespace .Values.auth.existingSecret) -}}
{{- end -}}
{{- $token -}}
{{- end -}}
{{- end -}}

{{/* The filter's plugin configuration as JSON (values' config plus control_plane); called with
(dict "root" $ "cluster" NAME). */}}
{{- define "tollgate.pluginConfig" -}}
{{- $root := .root -}}
{{- $cp := $root.Values.filter.controlPlane -}}
{{- $config := deepCopy $root.Values.filter.config -}}
{{- $_ := set $config "control_plane" (dict
  "cluster" .cluster
  "authority" (include "tollgate.host" $root)
  "token" (include "tollgate.filterToken" $root)
  "timeout_ms" $cp.timeoutMs
  "fail_mode" $cp.failMode
  "deny_status" $cp.denyStatus
  "settle_max_batch" $cp.settleMaxBatch
  "settle_max_delay_ms" $cp.settleMaxDelayMs) -}}
{{- toJson $config -}}
{{- end -}}

{{/* The external Redis's deployment kind and URL(s), as the control plane's config takes them. */}}
{{- define "tollgate.redis.external" -}}
{{- $e := .Values.redis.external -}}
{{- if $e.sentinel.nodes -}}
{{- dict "mode" "sentinel" "url" (join "," $e.sentinel.nodes) | toJson -}}
{{- else if $e.cluster.nodes -}}
{{- dict "mode" "cluster" "url" (join "," $e.cluster.nodes) | toJson -}}
{{- else -}}
{{- dict "mode" "standalone" "url" $e.url | toJson -}}
{{- end -}}
{{- end -}}
