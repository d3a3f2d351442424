{{- define "lib.pod" -}}
apiVersion: v1
kind: Pod
metadata:
  name: {{ .Release.Name }}-{{ .Chart.Name }}
spec:
  containers:
    - name: main
      image: {{ .Values.image }}
{{- end }}
