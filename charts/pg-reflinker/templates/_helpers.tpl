{{/*
Names, labels and the few derived values that more than one template needs.
*/}}

{{/* The CSI driver name: fixed, it is the StorageClass provisioner and the CSIDriver name. */}}
{{- define "pg-reflinker.driverName" -}}
pg-reflinker.csi
{{- end }}

{{- define "pg-reflinker.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name for namespaced and cluster-scoped objects of this release: the release name,
suffixed with the chart name unless it already contains it. Kept short enough for suffixes
such as "-controller-metrics".
*/}}
{{- define "pg-reflinker.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "pg-reflinker.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels shared by every object. */}}
{{- define "pg-reflinker.labels" -}}
helm.sh/chart: {{ include "pg-reflinker.chart" . }}
app.kubernetes.io/name: {{ include "pg-reflinker.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: pg-reflinker
{{- end }}

{{/*
Selector labels of one component. Call with (dict "ctx" $ "component" "controller").
*/}}
{{- define "pg-reflinker.selectorLabels" -}}
app.kubernetes.io/name: {{ include "pg-reflinker.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* All labels of one component's objects. Same argument as selectorLabels. */}}
{{- define "pg-reflinker.componentLabels" -}}
{{ include "pg-reflinker.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "pg-reflinker.controllerServiceAccountName" -}}
{{ include "pg-reflinker.fullname" . }}-controller
{{- end }}

{{- define "pg-reflinker.nodeServiceAccountName" -}}
{{ include "pg-reflinker.fullname" . }}-node
{{- end }}

{{/* The driver image, tag defaulting to the chart's appVersion. */}}
{{- define "pg-reflinker.image" -}}
{{- $repo := required "image.repository is required" .Values.image.repository }}
{{- $tag := default .Chart.AppVersion .Values.image.tag | toString }}
{{- if eq $tag "latest" }}
{{- fail "image.tag must be a pinned version, not \"latest\"" }}
{{- end }}
{{- printf "%s:%s" $repo $tag }}
{{- end }}

{{/* A sidecar image from {repository, tag}. */}}
{{- define "pg-reflinker.sidecarImage" -}}
{{- $tag := required (printf "a tag is required for sidecar image %s" .repository) .tag | toString }}
{{- if eq $tag "latest" }}
{{- fail (printf "sidecar image %s must be pinned, not \"latest\"" .repository) }}
{{- end }}
{{- printf "%s:%s" .repository $tag }}
{{- end }}

{{/* HOSTPATH_PREFIX, checked: absolute, not "/", not inside the kubelet directory. */}}
{{- define "pg-reflinker.hostpathPrefix" -}}
{{- $p := .Values.hostpathPrefix | trimSuffix "/" }}
{{- $k := .Values.kubeletDir | trimSuffix "/" }}
{{- if or (not (hasPrefix "/" $p)) (eq $p "") }}
{{- fail "hostpathPrefix must be an absolute directory other than /" }}
{{- end }}
{{- if or (eq $p $k) (hasPrefix (printf "%s/" $k) $p) (hasPrefix (printf "%s/" $p) $k) }}
{{- fail "hostpathPrefix and kubeletDir must not contain one another" }}
{{- end }}
{{- $p }}
{{- end }}

{{- define "pg-reflinker.kubeletDir" -}}
{{- .Values.kubeletDir | trimSuffix "/" }}
{{- end }}

{{/* Host directory of the node plugin's socket; kubelet finds the driver there. */}}
{{- define "pg-reflinker.pluginDir" -}}
{{ include "pg-reflinker.kubeletDir" . }}/plugins/{{ include "pg-reflinker.driverName" . }}
{{- end }}

{{/* The socket every container of a driver pod shares (an emptyDir or the plugin dir at /csi). */}}
{{- define "pg-reflinker.socketDir" -}}
/csi
{{- end }}

{{/* Ports of a driver container: the livenessprobe's health port and, if on, metrics. */}}
{{- define "pg-reflinker.driverPorts" -}}
- name: healthz
  containerPort: 9808
  protocol: TCP
{{- if .Values.metrics.enabled }}
- name: metrics
  containerPort: {{ .Values.metrics.port }}
  protocol: TCP
{{- end }}
{{- end }}

{{- define "pg-reflinker.metricsAddress" -}}
:{{ .Values.metrics.port }}
{{- end }}

{{/*
The container securityContext of every unprivileged container: what the restricted Pod
Security profile asks for, and a read-only root filesystem.
*/}}
{{- define "pg-reflinker.restrictedContainerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/*
The livenessprobe sidecar of both pods. Call with (dict "ctx" $ "asRoot" bool): in the node
pod it must run as root (without any capability) to connect to the node plugin's root-owned
socket.
*/}}
{{- define "pg-reflinker.livenessProbeContainer" -}}
{{- $v := .ctx.Values.sidecars.livenessProbe -}}
- name: liveness-probe
  image: {{ include "pg-reflinker.sidecarImage" $v.image }}
  imagePullPolicy: {{ $v.image.pullPolicy }}
  args:
    - --csi-address={{ include "pg-reflinker.socketDir" .ctx }}/csi.sock
    - --http-endpoint=:9808
    - --probe-timeout=3s
  securityContext:
    {{- include "pg-reflinker.restrictedContainerSecurityContext" .ctx | nindent 4 }}
    {{- if .asRoot }}
    runAsUser: 0
    runAsNonRoot: false
    {{- end }}
  volumeMounts:
    - name: socket-dir
      mountPath: {{ include "pg-reflinker.socketDir" .ctx }}
  {{- with $v.resources }}
  resources:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}

{{/*
livenessProbe of a driver container. The livenessprobe sidecar listens on 9808 and answers
/healthz by calling the driver's CSI Probe over the socket; the port is declared on the driver
container (see driverPorts) because kubelet resolves a named probe port in the probed container.
*/}}
{{- define "pg-reflinker.driverLivenessProbe" -}}
httpGet:
  path: /healthz
  port: healthz
initialDelaySeconds: 10
timeoutSeconds: 5
periodSeconds: 10
failureThreshold: 5
{{- end }}
