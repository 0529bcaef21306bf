{{/* The StatefulSet's name; pod names, and so node ids, are <fullname>-<ordinal>. */}}
{{- define "raftlock.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* The governing headless Service: it gives each pod the DNS name <pod>.<service>.<namespace>.svc.<domain>. */}}
{{- define "raftlock.peersService" -}}
{{- printf "%s-peers" (include "raftlock.fullname" .) -}}
{{- end -}}

{{- define "raftlock.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "raftlock.labels" -}}
{{ include "raftlock.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* The Secret holding the cluster token: an existing one, or the chart's own. */}}
{{- define "raftlock.tokenSecret" -}}
{{- if .Values.auth.clusterToken.existingSecret -}}
{{- .Values.auth.clusterToken.existingSecret -}}
{{- else -}}
{{- printf "%s-token" (include "raftlock.fullname" .) -}}
{{- end -}}
{{- end -}}

{{- define "raftlock.passwordSecret" -}}
{{- if .Values.auth.password.existingSecret -}}
{{- .Values.auth.password.existingSecret -}}
{{- else -}}
{{- printf "%s-password" (include "raftlock.fullname" .) -}}
{{- end -}}
{{- end -}}

{{- define "raftlock.hasPassword" -}}
{{- if or .Values.auth.password.existingSecret .Values.auth.password.value -}}true{{- end -}}
{{- end -}}

{{/* The raftlock container, in containers or (nativeSidecar) in initContainers. */}}
{{- define "raftlock.container" -}}
name: raftlock
image: {{ printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) | quote }}
imagePullPolicy: {{ .Values.image.pullPolicy }}
args:
  - start
  - --id=$(POD_NAME)
  - --peers=dns:{{ include "raftlock.peersService" . }}.{{ .Release.Namespace }}.svc.{{ .Values.cluster.clusterDomain }}:{{ .Values.ports.peer }}
  - --replicas={{ .Values.cluster.initialMembers | int64 }}
  - --cluster-id={{ .Values.cluster.id }}
  - --peer-listen=0.0.0.0:{{ .Values.ports.peer }}
  - --http-listen=0.0.0.0:{{ .Values.ports.http }}
  {{- if .Values.resp.enabled }}
  - --resp-listen=0.0.0.0:{{ .Values.ports.resp }}
  {{- end }}
  - --data-dir=/data
  - --election-timeout-min-ms={{ .Values.raft.electionTimeoutMinMs | int64 }}
  - --election-timeout-max-ms={{ .Values.raft.electionTimeoutMaxMs | int64 }}
  - --heartbeat-interval-ms={{ .Values.raft.heartbeatIntervalMs | int64 }}
  - --commit-timeout-ms={{ .Values.raft.commitTimeoutMs | int64 }}
  - --snapshot-every-entries={{ .Values.raft.snapshotEveryEntries | int64 }}
  - --retained-entries={{ .Values.raft.retainedEntries | int64 }}
  - --read-mode={{ .Values.raft.readMode }}
  - --log-level={{ .Values.logLevel }}
  {{- range .Values.extraArgs }}
  - {{ . | quote }}
  {{- end }}
env:
  - name: POD_NAME
    valueFrom:
      fieldRef:
        fieldPath: metadata.name
  - name: RAFTLOCK_CLUSTER_TOKEN
    valueFrom:
      secretKeyRef:
        name: {{ include "raftlock.tokenSecret" . }}
        key: {{ .Values.auth.clusterToken.key }}
  {{- if include "raftlock.hasPassword" . }}
  - name: RAFTLOCK_AUTH_PASSWORD
    valueFrom:
      secretKeyRef:
        name: {{ include "raftlock.passwordSecret" . }}
        key: {{ .Values.auth.password.key }}
  {{- end }}
  {{- if not .Values.resp.enabled }}
  # The image defaults RAFTLOCK_RESP_LISTEN to 0.0.0.0:6381; empty turns RESP off.
  - name: RAFTLOCK_RESP_LISTEN
    value: ""
  {{- end }}
  # Where `kubectl exec ... -- raftlock members|status|transfer-leader` sends its requests.
  - name: RAFTLOCK_HTTP
    value: "127.0.0.1:{{ .Values.ports.http }}"
ports:
  - name: peer
    containerPort: {{ .Values.ports.peer }}
  - name: http
    containerPort: {{ .Values.ports.http }}
  {{- if .Values.resp.enabled }}
  - name: resp
    containerPort: {{ .Values.ports.resp }}
  {{- end }}
startupProbe:
  httpGet:
    path: /healthz
    port: http
  periodSeconds: 2
  failureThreshold: {{ div .Values.probes.startupTimeoutSeconds 2 }}
livenessProbe:
  httpGet:
    path: /healthz
    port: http
  periodSeconds: {{ .Values.probes.livenessPeriodSeconds }}
  timeoutSeconds: 3
  failureThreshold: 3
readinessProbe:
  httpGet:
    path: /readyz
    port: http
  periodSeconds: {{ .Values.probes.readinessPeriodSeconds }}
  timeoutSeconds: 3
  failureThreshold: 2
resources:
  {{- toYaml .Values.resources | nindent 2 }}
volumeMounts:
  - name: data
    mountPath: /data
securityContext:
  runAsNonRoot: true
  runAsUser: 1000
  runAsGroup: 1000
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  capabilities:
    drop: ["ALL"]
{{- end -}}
