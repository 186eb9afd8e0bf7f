{{/*
Labels of every object: the ones deploy/ carries (name, component) and Helm's
own. Call with (dict "root" $ "component" "controller").
*/}}
{{- define "ferrolb.labels" -}}
app.kubernetes.io/name: ferrolb
app.kubernetes.io/component: {{ .component }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* Selector labels of a component's pods (the same as deploy/'s). */}}
{{- define "ferrolb.selector" -}}
app.kubernetes.io/name: ferrolb
app.kubernetes.io/component: {{ . }}
{{- end -}}

{{/*
FerroLB's objects live in ferrolb-system: the speakers read the membership
Secret from there whatever their --namespace.
*/}}
{{- define "ferrolb.checkNamespace" -}}
{{- if ne .Release.Namespace "ferrolb-system" -}}
{{- fail (printf "install FerroLB into the namespace ferrolb-system (--namespace ferrolb-system), not %q: the speakers read their membership Secret there" .Release.Namespace) -}}
{{- end -}}
{{- end -}}

{{/* mode: "both", "layer2" or "bgp". */}}
{{- define "ferrolb.layer2" -}}
{{- if has .Values.mode (list "both" "layer2") }}true{{ end -}}
{{- end -}}
{{- define "ferrolb.bgp" -}}
{{- if has .Values.mode (list "both" "bgp") }}true{{ end -}}
{{- end -}}
{{- define "ferrolb.checkMode" -}}
{{- if not (has .Values.mode (list "both" "layer2" "bgp")) -}}
{{- fail (printf "mode must be both, layer2 or bgp, not %q" .Values.mode) -}}
{{- end -}}
{{- end -}}

{{/* The speaker's added capabilities (see values.yaml, mode). */}}
{{- define "ferrolb.speakerCapabilities" -}}
{{- if .Values.speaker.capabilities -}}
{{ toYaml .Values.speaker.capabilities }}
{{- else -}}
- NET_RAW
{{- if include "ferrolb.layer2" . }}
- NET_ADMIN
{{- end }}
{{- if include "ferrolb.bgp" . }}
- NET_BIND_SERVICE
{{- end }}
{{- end -}}
{{- end -}}

{{- define "ferrolb.image" -}}
{{ .image.repository }}:{{ .image.tag | default .root.Chart.AppVersion }}
{{- end -}}
