{{/* Names. Helm caps a release name at 53 characters; the base name is cut to 42 so that the
longest suffix ("-control", "-migrate") keeps every object name within 63 (a DNS label). */}}
{{- define "tollgate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 42 | trimSuffix "-" -}}
{{- end -}}

{{- define "tollgate.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 42 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 42 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 42 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "tollgate.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The recommended labels; call with (dict "ctx" $ "component" "control"). */}}
{{- define "tollgate.labels" -}}
helm.sh/chart: {{ include "tollgate.chart" .ctx }}
{{ include "tollgate.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/part-of: tollgate
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
{{- end -}}

{{- define "tollgate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tollgate.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* image reference for "control" or "data"; `latest` is refused here as well as by the schema */}}
{{- define "tollgate.image" -}}
{{- $img := .ctx.Values.image -}}
{{- $tag := $img.tag | default .ctx.Chart.AppVersion | toString -}}
{{- if eq $tag "latest" -}}
{{- fail "image.tag: `latest` is refused: pin a version (the default is the chart's appVersion)" -}}
{{- end -}}
{{- $repo := ternary $img.controlRepository $img.dataRepository (eq .plane "control") -}}
{{- if $img.registry -}}
{{- printf "%s/%s:%s" (trimSuffix "/" $img.registry) $repo $tag -}}
{{- else -}}
{{- printf "%s:%s" $repo $tag -}}
{{- end -}}
{{- end -}}

{{- define "tollgate.secretName" -}}
{{- .Values.secrets.existingSecret | default (include "tollgate.fullname" .) -}}
{{- end -}}

{{/* the Secret and key the server's database URL comes from */}}
{{- define "tollgate.dbSecretName" -}}
{{- .Values.postgresql.existingSecret | default (printf "%s-db" (include "tollgate.fullname" .)) -}}
{{- end -}}
{{- define "tollgate.dbSecretKey" -}}
{{- ternary .Values.postgresql.existingSecretKey "database-url" (ne .Values.postgresql.existingSecret "") -}}
{{- end -}}

{{/* the Secret and key the migration Job's (owner) URL comes from */}}
{{- define "tollgate.migrateSecretName" -}}
{{- .Values.postgresql.existingSecret | default (printf "%s-migrate" (include "tollgate.fullname" .)) -}}
{{- end -}}
{{- define "tollgate.migrateSecretKey" -}}
{{- if .Values.postgresql.existingSecret -}}
{{- .Values.postgresql.existingSecretMigrationKey | default .Values.postgresql.existingSecretKey -}}
{{- else -}}
migration-url
{{- end -}}
{{- end -}}

{{- define "tollgate.requireDatabase" -}}
{{- if and (not .Values.postgresql.url) (not .Values.postgresql.existingSecret) -}}
{{- fail "set postgresql.url (the server's role) or postgresql.existingSecret: the chart bundles no database" -}}
{{- end -}}
{{- end -}}

{{/* The container securityContext every container of the chart runs with. */}}
{{- define "tollgate.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "tollgate.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* env from Secrets: the server's database URL */}}
{{- define "tollgate.envDatabase" -}}
- name: TOLLGATE_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "tollgate.dbSecretName" . }}
      key: {{ include "tollgate.dbSecretKey" . }}
{{- end -}}

{{- define "tollgate.envSecret" -}}
- name: {{ .env }}
  valueFrom:
    secretKeyRef:
      name: {{ include "tollgate.secretName" .ctx }}
      key: {{ index .ctx.Values.secrets.keys .key }}
{{- end -}}

{{/* Spread a plane's pods over zones and nodes unless the values give constraints. */}}
{{- define "tollgate.topologySpread" -}}
{{- $p := .plane -}}
{{- if $p.topologySpreadConstraints -}}
{{ toYaml $p.topologySpreadConstraints }}
{{- else -}}
- maxSkew: 1
  topologyKey: topology.kubernetes.io/zone
  whenUnsatisfiable: ScheduleAnyway
  labelSelector:
    matchLabels:
      {{- include "tollgate.selectorLabels" (dict "ctx" .ctx "component" .component) | nindent 6 }}
  matchLabelKeys: [pod-template-hash]
- maxSkew: 1
  topologyKey: kubernetes.io/hostname
  whenUnsatisfiable: ScheduleAnyway
  labelSelector:
    matchLabels:
      {{- include "tollgate.selectorLabels" (dict "ctx" .ctx "component" .component) | nindent 6 }}
  matchLabelKeys: [pod-template-hash]
{{- end -}}
{{- end -}}
