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

{{- define "raftlock.readonlyPasswordSecret" -}}
{{- if .Values.auth.readonlyPassword.existingSecret -}}
{{- .Values.auth.readonlyPassword.existingSecret -}}
{{- else -}}
{{- printf "%s-readonly-password" (include "raftlock.fullname" .) -}}
{{- end -}}
{{- end -}}

{{- define "raftlock.hasReadonlyPassword" -}}
{{- if or .Values.auth.readonlyPassword.existingSecret .Values.auth.readonlyPassword.value -}}true{{- end -}}
{{- end -}}

{{/*
The exec probe of a node that requires client certificates (the kubelet's httpGet cannot present one):
GET https://127.0.0.1:<http port><path> presenting the pod's own certificate, without verifying the
server's (as the kubelet does not); exit 0 on 2xx and 3xx, as httpGet succeeds. The path is its argument.
*/}}
{{- define "raftlock.httpsProbeScript" -}}
const fs = require('fs'); const dir = '/etc/raftlock/client-tls/';
require('https').get({ host: '127.0.0.1', port: {{ .Values.ports.http }}, path: process.argv[1], cert: fs.readFileSync(dir + 'tls.crt'), key: fs.readFileSync(dir + 'tls.key'), rejectUnauthorized: false, timeout: 2000 },
  (response) => process.exit(response.statusCode >= 200 && response.statusCode < 400 ? 0 : 1))
  .on('timeout', () => process.exit(1)).on('error', () => process.exit(1));
{{- end -}}

{{/*
The pod's volumes besides the data claim. Secrets are files, never env: a mounted Secret is not in the
process environment (nor in `kubectl describe pod`), and the kubelet updates it in place. defaultMode 256 is
0400; the pod's fsGroup makes the files 0440 root:1000, which the node's user 1000 (group 1000) reads.
*/}}
{{- define "raftlock.volumes" -}}
- name: secrets
  projected:
    defaultMode: 256 # 0400
    sources:
      - secret:
          name: {{ include "raftlock.tokenSecret" . }}
          items:
            - key: {{ .Values.auth.clusterToken.key }}
              path: cluster-token
      {{- if include "raftlock.hasPassword" . }}
      - secret:
          name: {{ include "raftlock.passwordSecret" . }}
          items:
            - key: {{ .Values.auth.password.key }}
              path: auth-password
      {{- end }}
      {{- if include "raftlock.hasReadonlyPassword" . }}
      - secret:
          name: {{ include "raftlock.readonlyPasswordSecret" . }}
          items:
            - key: {{ .Values.auth.readonlyPassword.key }}
              path: auth-readonly-password
      {{- end }}
{{- if .Values.tls.peer.enabled }}
- name: peer-tls
  secret:
    secretName: {{ .Values.tls.peer.secretName }}
    defaultMode: 256 # 0400
    items:
      - { key: tls.crt, path: tls.crt }
      - { key: tls.key, path: tls.key }
      - { key: ca.crt, path: ca.crt }
{{- end }}
{{- if .Values.tls.client.enabled }}
- name: client-tls
  secret:
    secretName: {{ .Values.tls.client.secretName }}
    defaultMode: 256 # 0400
    items:
      - { key: tls.crt, path: tls.crt }
      - { key: tls.key, path: tls.key }
      - { key: ca.crt, path: ca.crt }
{{- end }}
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
  # Secrets and certificates: files of the volumes mounted below (see raftlock.volumes).
  - --cluster-token-file=/etc/raftlock/secrets/cluster-token
  {{- if include "raftlock.hasPassword" . }}
  - --auth-password-file=/etc/raftlock/secrets/auth-password
  {{- end }}
  {{- if include "raftlock.hasReadonlyPassword" . }}
  - --auth-readonly-password-file=/etc/raftlock/secrets/auth-readonly-password
  {{- end }}
  {{- if .Values.tls.peer.enabled }}
  - --peer-tls-cert=/etc/raftlock/peer-tls/tls.crt
  - --peer-tls-key=/etc/raftlock/peer-tls/tls.key
  - --peer-tls-ca=/etc/raftlock/peer-tls/ca.crt
  {{- end }}
  {{- if .Values.tls.client.enabled }}
  - --client-tls-cert=/etc/raftlock/client-tls/tls.crt
  - --client-tls-key=/etc/raftlock/client-tls/tls.key
  {{- if .Values.tls.client.requireClientCertificates }}
  - --client-tls-ca=/etc/raftlock/client-tls/ca.crt
  {{- end }}
  # Scale-up ordinals join the first ones over https: their certificates chain to the same CA.
  - --join-tls-ca=/etc/raftlock/client-tls/ca.crt
  {{- end }}
  {{- range .Values.extraArgs }}
  - {{ . | quote }}
  {{- end }}
env:
  - name: POD_NAME
    valueFrom:
      fieldRef:
        fieldPath: metadata.name
  {{- if not .Values.resp.enabled }}
  # The image defaults RAFTLOCK_RESP_LISTEN to 0.0.0.0:6381; empty turns RESP off.
  - name: RAFTLOCK_RESP_LISTEN
    value: ""
  {{- end }}
  {{- if include "raftlock.hasPassword" . }}
  # For `kubectl exec ... -- raftlock members|status|transfer-leader`: the admin CLI reads the password
  # from this file. The node reads the same file through --auth-password-file (a flag wins over its variable).
  - name: RAFTLOCK_AUTH_PASSWORD_FILE
    value: /etc/raftlock/secrets/auth-password
  {{- end }}
  # Where `kubectl exec ... -- raftlock members|status|transfer-leader` sends its requests.
  {{- if .Values.tls.client.enabled }}
  # By the pod's DNS name: the name the certificate must carry anyway for joins.
  - name: RAFTLOCK_HTTP
    value: "https://$(POD_NAME).{{ include "raftlock.peersService" . }}.{{ .Release.Namespace }}.svc.{{ .Values.cluster.clusterDomain }}:{{ .Values.ports.http }}"
  - name: RAFTLOCK_TLS_CA
    value: /etc/raftlock/client-tls/ca.crt
  {{- if .Values.tls.client.requireClientCertificates }}
  - name: RAFTLOCK_TLS_CERT
    value: /etc/raftlock/client-tls/tls.crt
  - name: RAFTLOCK_TLS_KEY
    value: /etc/raftlock/client-tls/tls.key
  {{- end }}
  {{- else }}
  - name: RAFTLOCK_HTTP
    value: "127.0.0.1:{{ .Values.ports.http }}"
  {{- end }}
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
  {{- if .Values.tls.client.requireClientCertificates }}
  exec:
    command: ["node", "-e", {{ include "raftlock.httpsProbeScript" . | quote }}, "/healthz"]
  {{- else }}
  httpGet:
    path: /healthz
    port: http
    scheme: {{ if .Values.tls.client.enabled }}HTTPS{{ else }}HTTP{{ end }}
  {{- end }}
  periodSeconds: 2
  timeoutSeconds: 3
  failureThreshold: {{ div .Values.probes.startupTimeoutSeconds 2 }}
livenessProbe:
  {{- if .Values.tls.client.requireClientCertificates }}
  exec:
    command: ["node", "-e", {{ include "raftlock.httpsProbeScript" . | quote }}, "/healthz"]
  {{- else }}
  httpGet:
    path: /healthz
    port: http
    scheme: {{ if .Values.tls.client.enabled }}HTTPS{{ else }}HTTP{{ end }}
  {{- end }}
  periodSeconds: {{ .Values.probes.livenessPeriodSeconds }}
  timeoutSeconds: 3
  failureThreshold: 3
readinessProbe:
  {{- if .Values.tls.client.requireClientCertificates }}
  exec:
    command: ["node", "-e", {{ include "raftlock.httpsProbeScript" . | quote }}, "/readyz"]
  {{- else }}
  httpGet:
    path: /readyz
    port: http
    scheme: {{ if .Values.tls.client.enabled }}HTTPS{{ else }}HTTP{{ end }}
  {{- end }}
  periodSeconds: {{ .Values.probes.readinessPeriodSeconds }}
  timeoutSeconds: 3
  failureThreshold: 2
resources:
  {{- toYaml .Values.resources | nindent 2 }}
volumeMounts:
  - name: data
    mountPath: /data
  # Whole directories, never subPath: a subPath mount is not updated when its Secret changes.
  - name: secrets
    mountPath: /etc/raftlock/secrets
    readOnly: true
  {{- if .Values.tls.peer.enabled }}
  - name: peer-tls
    mountPath: /etc/raftlock/peer-tls
    readOnly: true
  {{- end }}
  {{- if .Values.tls.client.enabled }}
  - name: client-tls
    mountPath: /etc/raftlock/client-tls
    readOnly: true
  {{- end }}
securityContext:
  runAsNonRoot: true
  runAsUser: 1000
  runAsGroup: 1000
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  capabilities:
    drop: ["ALL"]
{{- end -}}
