{{- /*
Names, labels and the values several templates derive from the same settings.
*/}}

{{- /* The chart's name: nameOverride, else "r2dservice". */}}
{{- define "r2dservice.name" -}}
{{- .Values.nameOverride | default .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- /*
The name of the release's resources: fullnameOverride; else the release name when it
already contains the chart's name ("r2dservice", "r2dservice-prod"); else
"<release>-r2dservice".
*/}}
{{- define "r2dservice.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := include "r2dservice.name" . }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "r2dservice.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- /*
Labels of every resource. Call with (dict "root" $ "component" "service").
The component appears twice: as app.kubernetes.io/component and as plain "component",
the label zero-to-jupyterhub's resources carry.
*/}}
{{- define "r2dservice.labels" -}}
helm.sh/chart: {{ include "r2dservice.chart" .root }}
{{ include "r2dservice.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
{{- end }}

{{- /* The labels that select the pods of one component of one release. */}}
{{- define "r2dservice.selectorLabels" -}}
app.kubernetes.io/name: {{ include "r2dservice.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
component: {{ .component }}
{{- end }}

{{- define "r2dservice.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- .Values.serviceAccount.name | default (include "r2dservice.fullname" .) }}
{{- else }}
{{- .Values.serviceAccount.name | default "default" }}
{{- end }}
{{- end }}

{{- /* Where build pods go. */}}
{{- define "r2dservice.buildNamespace" -}}
{{- .Values.build.namespace | default .Release.Namespace }}
{{- end }}

{{- /* The hub's base URL, with a slash at each end. */}}
{{- define "r2dservice.hubBaseUrl" -}}
{{- $path := trimAll "/" .Values.hub.baseUrl }}
{{- if $path }}/{{ $path }}/{{ else }}/{{ end }}
{{- end }}

{{- /* The URL prefix of the service on the hub: <hub base URL>services/<name>/ */}}
{{- define "r2dservice.servicePrefix" -}}
{{- include "r2dservice.hubBaseUrl" . }}services/{{ .Values.service.name }}/
{{- end }}

{{- /* The hub's REST API, as the service reaches it inside the cluster. */}}
{{- define "r2dservice.hubApiUrl" -}}
{{- if .Values.hub.url }}
{{- .Values.hub.url }}
{{- else }}
{{- printf "http://hub:8081%shub/api" (include "r2dservice.hubBaseUrl" .) }}
{{- end }}
{{- end }}

{{- /*
Secret and key holding the hub API token of the service. By default the token that
zero-to-jupyterhub generates for the hub.services entry, in its Secret "hub" under
hub.services.<name>.apiToken (as BinderHub's chart reads it): nothing to copy between
the two releases, and nothing generated here, so every render (helm upgrade, GitOps
tools without cluster access) gives the same manifests. hub.apiToken: the chart's Secret.
*/}}
{{- define "r2dservice.hubTokenSecretName" -}}
{{- if .Values.hub.apiToken }}
{{- include "r2dservice.fullname" . }}
{{- else }}
{{- required "hub.existingSecret.name is empty and hub.apiToken too: name the Secret with the service's token (zero-to-jupyterhub's: hub), or set hub.apiToken" .Values.hub.existingSecret.name }}
{{- end }}
{{- end }}
{{- define "r2dservice.hubTokenSecretKey" -}}
{{- if .Values.hub.apiToken -}}
hub.apiToken
{{- else }}
{{- .Values.hub.existingSecret.key | default (printf "hub.services.%s.apiToken" .Values.service.name) }}
{{- end }}
{{- end }}

{{- /*
Build records: the database URL the service uses, and whether the chart's
PersistentVolumeClaim holds it (a sqlite file that outlives the pod).
*/}}
{{- define "r2dservice.dbDir" -}}/srv/r2dservice{{- end }}
{{- define "r2dservice.dbOnVolume" -}}
{{- if not (or .Values.db.url .Values.db.existingSecret.name) }}true{{ end }}
{{- end }}
{{- /* The sqlite URL on the volume; "" when a URL comes from a Secret (R2DSERVICE_DB_URL). */}}
{{- define "r2dservice.dbUrl" -}}
{{- if include "r2dservice.dbOnVolume" . }}
{{- printf "sqlite:///%s/r2dservice.sqlite" (include "r2dservice.dbDir" .) }}
{{- end }}
{{- end }}

{{- /* The registry credentials Secret (push and existence check), or "" for none. */}}
{{- define "r2dservice.registrySecretName" -}}
{{- if .Values.registry.existingSecret }}
{{- .Values.registry.existingSecret }}
{{- else if .Values.registry.username }}
{{- include "r2dservice.fullname" . }}-registry
{{- end }}
{{- end }}

{{- define "r2dservice.registrySecretKey" -}}
{{- if .Values.registry.existingSecret }}
{{- .Values.registry.existingSecretKey }}
{{- else -}}
.dockerconfigjson
{{- end }}
{{- end }}

{{- /*
The "auths" key of the registry credentials: registry.url, else the registry host that
imagePrefix starts with, else Docker Hub's. Docker Hub under any of its names is keyed
"https://index.docker.io/v1/", the one key the docker CLI and buildx look up for it (a
"docker.io" entry is never found, and the push goes unauthenticated).
*/}}
{{- define "r2dservice.registryAuthKey" -}}
{{- $key := "" }}
{{- if .Values.registry.url }}
{{- $key = .Values.registry.url }}
{{- else }}
{{- $parts := splitList "/" .Values.imagePrefix }}
{{- $first := first $parts }}
{{- if and (gt (len $parts) 1) (or (contains "." $first) (contains ":" $first) (eq "localhost" $first)) }}
{{- $key = $first }}
{{- end }}
{{- end }}
{{- $host := $key | trimPrefix "https://" | trimPrefix "http://" | splitList "/" | first }}
{{- if or (not $key) (has $host (list "docker.io" "index.docker.io" "registry-1.docker.io")) -}}
https://index.docker.io/v1/
{{- else }}
{{- $key }}
{{- end }}
{{- end }}

{{- /* Paths inside the service's container. */}}
{{- define "r2dservice.configDir" -}}/etc/r2dservice{{- end }}
{{- define "r2dservice.registryDir" -}}/var/run/r2dservice/registry{{- end }}
{{- define "r2dservice.dockerConfigDir" -}}/var/run/r2dservice/docker{{- end }}

{{- /* The local builder's Docker API: "socket" (a path or unix://), "tcp" or "". */}}
{{- define "r2dservice.dockerHostKind" -}}
{{- $host := .Values.build.dockerHost | default "" }}
{{- if hasPrefix "tcp://" $host }}tcp{{ else if $host }}socket{{ end }}
{{- end }}

{{- /*
values.json: the chart values r2dservice_config.py maps onto r2dservice's settings,
plus what the chart computes (names, paths). No credentials: those reach the pod as
environment variables from the Secret, or as files.
*/}}
{{- define "r2dservice.configValues" -}}
{{- $registrySecret := include "r2dservice.registrySecretName" . }}
{{- $buildLabels := merge (dict "app.kubernetes.io/instance" .Release.Name) (deepCopy .Values.build.extraLabels) }}
{{- $buildPodSecurity := deepCopy (.Values.build.podSecurityContext | default dict) }}
{{- if and (include "r2dservice.daemonEnabled" .) (eq .Values.build.daemon.type "rootless") }}
{{- /* The rootless daemon's socket is its user's, mode 0660: build pods that do not
run as root need its group. */}}
{{- $uid := include "r2dservice.daemonUid" . }}
{{- $groups := $buildPodSecurity.supplementalGroups | default list }}
{{- $has := false }}
{{- range $groups }}{{ if eq (toString .) $uid }}{{ $has = true }}{{ end }}{{ end }}
{{- if not $has }}
{{- $_ := set $buildPodSecurity "supplementalGroups" (append $groups (atoi $uid)) }}
{{- end }}
{{- end }}
{{- $build := merge (dict
    "dockerHost" (include "r2dservice.buildDockerHost" .)
    "podSecurityContext" $buildPodSecurity
    "namespace" (include "r2dservice.buildNamespace" .)
    "extraLabels" $buildLabels
    "pushSecret" $registrySecret
    "pushSecretKey" (include "r2dservice.registrySecretKey" .)
  ) (deepCopy .Values.build) }}
{{- $registry := dict "dockerConfigPath" "" }}
{{- if $registrySecret }}
{{- $_ := set $registry "dockerConfigPath" (printf "%s/config.json" (include "r2dservice.registryDir" .)) }}
{{- end }}
{{- $values := dict
    "serviceName" .Values.service.name
    "builder" .Values.builder
    "imagePrefix" .Values.imagePrefix
    "useRegistry" .Values.useRegistry
    "concurrentBuildLimit" .Values.concurrentBuildLimit
    "maxQueueLength" .Values.maxQueueLength
    "debug" .Values.debug
    "auth" (pick .Values.auth "enabled" "buildScope" "adminScope")
    "launch" .Values.launch
    "build" $build
    "registry" $registry
    "config" .Values.config
    "extraConfig" .Values.extraConfig
    "custom" .Values.custom
    "db" (dict "url" (include "r2dservice.dbUrl" .))
    "release" (dict "name" .Release.Name "namespace" .Release.Namespace "fullname" (include "r2dservice.fullname" .))
}}
{{- $values | toPrettyJson }}
{{- end }}

{{- /*
The build daemon: its folder on the node (per release, so two releases never share a
socket), the image, and the Docker API the build pods get ("" for none).
*/}}
{{- define "r2dservice.daemonEnabled" -}}
{{- if and (eq .Values.builder "kubernetes") (has .Values.build.daemon.type (list "dind" "rootless")) }}true{{ end }}
{{- end }}
{{- define "r2dservice.daemonHostDir" -}}
/var/run/r2dservice/{{ .Release.Namespace }}-{{ include "r2dservice.fullname" . }}
{{- end }}
{{- define "r2dservice.daemonDataDir" -}}
/var/lib/r2dservice/{{ .Release.Namespace }}-{{ include "r2dservice.fullname" . }}
{{- end }}
{{- /* The user the rootless image runs dockerd as (docker:*-dind-rootless: rootless,
1000): owner of the daemon's folders and of its socket (mode 0660), so build pods get
this group. */ -}}
{{- define "r2dservice.daemonUid" -}}1000{{- end }}
{{- define "r2dservice.daemonImage" -}}
{{- $d := .Values.build.daemon }}
{{- $tag := $d.image.tag | default (ternary "28.5-dind-rootless" "28.5-dind" (eq $d.type "rootless")) }}
{{- printf "%s:%s" $d.image.name $tag }}
{{- end }}
{{- define "r2dservice.buildDockerHost" -}}
{{- if include "r2dservice.daemonEnabled" . }}
{{- include "r2dservice.daemonHostDir" . }}/docker.sock
{{- else if eq .Values.build.daemon.type "host" }}
{{- .Values.build.dockerHost | default "/var/run/docker.sock" }}
{{- else }}
{{- .Values.build.dockerHost }}
{{- end }}
{{- end }}

{{- /* Egress rules from egressAllowRules (one policy style for the service and builds). */}}
{{- define "r2dservice.egressRules" -}}
{{- $allow := .allow }}
{{- $private := list "10.0.0.0/8" "172.16.0.0/12" "192.168.0.0/16" "100.64.0.0/10" }}
{{- $metadata := "169.254.169.254/32" }}
{{- if $allow.dnsPorts }}
# Name lookups (kube-dns / CoreDNS).
- ports:
    - port: 53
      protocol: UDP
    - port: 53
      protocol: TCP
{{- end }}
{{- if $allow.privateIPs }}
- to:
    {{- range $private }}
    - ipBlock:
        cidr: {{ . }}
    {{- end }}
{{- end }}
{{- if $allow.nonPrivateIPs }}
# The internet, not the private ranges or the cloud metadata server.
- to:
    - ipBlock:
        cidr: 0.0.0.0/0
        except:
          {{- range $private }}
          - {{ . }}
          {{- end }}
          - {{ $metadata }}
{{- end }}
{{- if $allow.cloudMetadataServer }}
- to:
    - ipBlock:
        cidr: {{ $metadata }}
{{- end }}
{{- with .extra }}
{{ toYaml . }}
{{- end }}
{{- end }}
