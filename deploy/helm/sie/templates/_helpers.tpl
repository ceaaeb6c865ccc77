{{/* Names: <release>-sie unless the release name already contains the chart name. */}}
{{- define "sie.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "sie.fullname" -}}
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

{{- define "sie.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "sie.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "sie.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sie.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "sie.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "sie.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The auth Secret's name: the operator's own, or the one this chart renders. */}}
{{- define "sie.authSecret" -}}
{{- default (printf "%s-auth" (include "sie.fullname" .)) .Values.auth.existingSecret -}}
{{- end -}}

{{- define "sie.catalogConfigMap" -}}
{{- default (printf "%s-catalog" (include "sie.fullname" .)) .Values.catalog.existingConfigMap -}}
{{- end -}}

{{- define "sie.pipelinesConfigMap" -}}
{{- default (printf "%s-pipelines" (include "sie.fullname" .)) .Values.pipelines.existingConfigMap -}}
{{- end -}}

{{- define "sie.hasCatalog" -}}
{{- if or .Values.catalog.existingConfigMap .Values.catalog.cards -}}true{{- end -}}
{{- end -}}

{{/*
Deep overlay of two dicts: maps merge recursively, anything else in `over` replaces `base` -- false and 0
included (sprig's merge/mergeOverwrite treat those as "unset", so a pool could not turn a default off).
Usage: include "sie.overlay" (list $base $over) | fromYaml
*/}}
{{- define "sie.overlay" -}}
{{- $out := deepCopy (index . 0) -}}
{{- range $k, $v := index . 1 -}}
{{- if and (kindIs "map" $v) (kindIs "map" (get $out $k)) -}}
{{- $_ := set $out $k (include "sie.overlay" (list (get $out $k) $v) | fromYaml) -}}
{{- else -}}
{{- $_ := set $out $k $v -}}
{{- end -}}
{{- end -}}
{{- toYaml $out -}}
{{- end -}}

{{/*
Enabled worker pools (workers.pools is a map: profiles layered with -f merge per pool), with
workers.defaults filled in: a list of dicts sorted by name, each with `name`, `fullname`, `service` (the
name of the Service its pods are behind: its own, or its servedBy pool's) and `bursts` (true when
burst pools join its Service). Numbers come back as floats: templates print them through `int`.
Usage: {{ range $pool := include "sie.pools" . | fromYamlArray }}
*/}}
{{- define "sie.pools" -}}
{{- $pools := list -}}
{{- $served := dict -}}
{{- range $name, $p := .Values.workers.pools -}}
{{- $pool := include "sie.overlay" (list $.Values.workers.defaults (default dict $p)) | fromYaml -}}
{{- if $pool.enabled -}}
{{- $_ := set $pool "name" $name -}}
{{- $_ := set $pool "fullname" (printf "%s-%s" (include "sie.fullname" $) $name | trunc 63 | trimSuffix "-") -}}
{{- $_ := set $pool "service" (printf "%s-%s" (include "sie.fullname" $) (default $name $pool.servedBy) | trunc 63 | trimSuffix "-") -}}
{{- with $pool.servedBy -}}{{- $_ := set $served . true -}}{{- end -}}
{{- $pools = append $pools $pool -}}
{{- end -}}
{{- end -}}
{{- $out := list -}}
{{- range $pool := $pools -}}
{{- with $pool.servedBy -}}
{{- $target := dict -}}
{{- range $pools }}{{ if eq .name $pool.servedBy }}{{ $target = . }}{{ end }}{{ end -}}
{{- if or (not $target) $target.servedBy -}}
{{- fail (printf "workers.pools[%s].servedBy '%s' must name an enabled pool that is not a burst pool itself" $pool.name .) -}}
{{- end -}}
{{- end -}}
{{- $_ := set $pool "bursts" (hasKey $served $pool.name) -}}
{{- $out = append $out $pool -}}
{{- end -}}
{{- toYaml $out -}}
{{- end -}}

{{/* Image of a pool: its own override, else <repository>:<appVersion>-cpu|cuda, or @digest of its flavour. */}}
{{- define "sie.poolImage" -}}
{{- $root := index . 0 -}}
{{- $pool := index . 1 -}}
{{- $repo := default $root.Values.image.repository $pool.image.repository -}}
{{- $flavor := ternary "cuda" "cpu" (eq $pool.profile "gpu") -}}
{{- $tag := default (default (printf "%s-%s" $root.Chart.AppVersion $flavor) $root.Values.image.tag) $pool.image.tag -}}
{{- $digest := default (get $root.Values.image.digest $flavor) $pool.image.digest -}}
{{- if $digest -}}
{{- printf "%s@%s" $repo $digest -}}
{{- else -}}
{{- printf "%s:%s" $repo $tag -}}
{{- end -}}
{{- end -}}

{{/* Labels selecting one pool's pods (its Deployment's selector: immutable, so never extended). */}}
{{- define "sie.poolSelector" -}}
{{- $root := index . 0 -}}
{{- $pool := index . 1 -}}
{{ include "sie.selectorLabels" $root }}
app.kubernetes.io/component: worker
sie.dev/pool: {{ $pool.name }}
{{- end -}}

{{/* The PromQL label matcher for one pool's series, as the ServiceMonitor labels them. */}}
{{- define "sie.poolMatcher" -}}
{{- $root := index . 0 -}}
{{- $pool := index . 1 -}}
namespace="{{ $root.Release.Namespace }}", service="{{ $pool.service }}"
{{- end -}}

{{/* The in-cluster URL of a pool's Service (pipelines and ingest Jobs talk to it). */}}
{{- define "sie.poolUrl" -}}
{{- $root := index . 0 -}}
{{- $name := index . 1 -}}
{{- printf "http://%s-%s.%s.svc:%v" (include "sie.fullname" $root) $name $root.Release.Namespace $root.Values.service.port -}}
{{- end -}}

{{/* Shared container environment for anything that talks to the server with keys. */}}
{{- define "sie.authEnv" -}}
{{- if .Values.auth.enabled }}
- name: SIE_API_KEYS
  valueFrom:
    secretKeyRef:
      name: {{ include "sie.authSecret" . }}
      key: {{ .Values.auth.apiKeysKey }}
- name: SIE_ADMIN_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "sie.authSecret" . }}
      key: {{ .Values.auth.adminKeyKey }}
{{- end }}
{{- end -}}

{{/* For in-cluster clients of the workers (pipelines API, ingest Jobs, helm test): where and with which key. */}}
{{- define "sie.engineEnv" -}}
- name: SIE_ENGINE_URL
  value: {{ include "sie.poolUrl" (list . .Values.routing.defaultPool) | quote }}
{{- if .Values.auth.enabled }}
- name: SIE_ENGINE_API_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "sie.authSecret" . }}
      key: {{ .Values.auth.engineKeyKey }}
{{- end }}
{{- end -}}

{{/* An HTTPRoute rule's backend for one pool: its Service, or the KEDA interceptor when it scales to zero. */}}
{{- define "sie.routeBackend" -}}
{{- $root := index . 0 -}}
{{- $pool := index . 1 -}}
{{- if $pool.scaleToZero.enabled -}}
filters:
  - type: URLRewrite
    urlRewrite:
      hostname: {{ $pool.fullname }}
backendRefs:
  - name: {{ $root.Values.keda.httpAddon.interceptorService }}
    namespace: {{ $root.Values.keda.httpAddon.namespace }}
    port: {{ $root.Values.keda.httpAddon.interceptorPort }}
{{- else -}}
backendRefs:
  - name: {{ $pool.fullname }}
    port: {{ $root.Values.service.port }}
{{- end -}}
{{- end -}}
