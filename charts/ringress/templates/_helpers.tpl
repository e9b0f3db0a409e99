{{/*
Chart name, overridable with nameOverride. 63 characters: the limit of a DNS label.
*/}}
{{- define "ringress.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name: the release name, with the chart name added unless the release name
already contains it.
*/}}
{{- define "ringress.fullname" -}}
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
{{- define "ringress.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Standard labels, on every object.
*/}}
{{- define "ringress.labels" -}}
helm.sh/chart: {{ include "ringress.chart" . }}
{{ include "ringress.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | trunc 63 | quote }}
app.kubernetes.io/component: proxy
app.kubernetes.io/part-of: ringress
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Selector labels: immutable in a Deployment, so only name and instance.
*/}}
{{- define "ringress.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ringress.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
The ServiceAccount the pods run as.
*/}}
{{- define "ringress.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "ringress.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Container image reference: a digest wins over a tag; the tag defaults to the appVersion.
*/}}
{{- define "ringress.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/*
Pod termination budget: the preStop sleep, then ringress's own --grace-period, then a margin
before the kubelet's SIGKILL. An explicit value at or below the sum would cut requests off, so it
fails the render.
*/}}
{{- define "ringress.terminationGracePeriodSeconds" -}}
{{- $needed := add .Values.preStopSleepSeconds .Values.gracePeriodSeconds }}
{{- $value := .Values.terminationGracePeriodSeconds | default (add $needed 5) | int }}
{{- if le $value (int $needed) }}
{{- fail (printf "terminationGracePeriodSeconds (%d) must exceed preStopSleepSeconds + gracePeriodSeconds (%d)" $value (int $needed)) }}
{{- end }}
{{- $value }}
{{- end }}

{{/*
The namespaces of watchNamespace (a list, or a comma-separated string), as "a,b,": callers use
splitList "," | compact | uniq. Empty means cluster-wide.
*/}}
{{- define "ringress.watchNamespaces" -}}
{{- $ns := .Values.watchNamespace | default list }}
{{- if kindIs "string" $ns }}{{ $ns = splitList "," $ns }}{{ end }}
{{- range $ns }}{{ trim . }},{{ end }}
{{- end }}

{{/*
TLS settings that the schema cannot check: with tls.enabled, at least one Secret, each named once,
and a listener port of its own. Renders nothing; fails the render with the reason.
*/}}
{{- define "ringress.tls.validate" -}}
{{- $tls := .Values.tls }}
{{- if $tls.enabled }}
{{- if not $tls.secrets }}
{{- fail "tls.enabled is true but tls.secrets is empty: name at least one kubernetes.io/tls Secret (keys tls.crt, tls.key), e.g. tls.secrets: [{name: shop-tls}]; the first is the default certificate" }}
{{- end }}
{{- $seen := dict }}
{{- range $i, $secret := $tls.secrets }}
{{- if not $secret.name }}
{{- fail (printf "tls.secrets[%d] has no name: each entry names a kubernetes.io/tls Secret, e.g. {name: shop-tls}" $i) }}
{{- end }}
{{- if hasKey $seen $secret.name }}
{{- fail (printf "tls.secrets[%d]: Secret %s is listed twice" $i $secret.name) }}
{{- end }}
{{- $_ := set $seen $secret.name true }}
{{- end }}
{{- if has (int $tls.port) (list (int .Values.listenPort) (int .Values.adminPort)) }}
{{- fail (printf "tls.port (%d) must differ from listenPort (%d) and adminPort (%d)" (int $tls.port) (int .Values.listenPort) (int .Values.adminPort)) }}
{{- end }}
{{- if eq (int $tls.servicePort) (int .Values.service.port) }}
{{- fail (printf "tls.servicePort (%d) must differ from service.port" (int $tls.servicePort)) }}
{{- end }}
{{- end }}
{{- end }}
