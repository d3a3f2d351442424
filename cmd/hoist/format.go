package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/template"
)

// writeFormatted renders v as docker and podman do for --format: "json" for
// indented JSON, otherwise a Go template (with a json function).
func writeFormatted(w io.Writer, format string, v any) error {
	if format == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		return enc.Encode(v)
	}
	if !strings.Contains(format, "{{") {
		return fmt.Errorf("--format %q: want json or a Go template such as '{{.Version}}'", format)
	}
	tmpl, err := template.New("format").Funcs(template.FuncMap{
		"json": func(v any) (string, error) {
			b, err := json.Marshal(v)
			return string(b), err
		},
	}).Parse(format)
	if err != nil {
		return fmt.Errorf("--format: %w", err)
	}
	if err := tmpl.Execute(w, v); err != nil {
		return fmt.Errorf("--format: %w", err)
	}
	_, err = fmt.Fprintln(w)
	return err
}
