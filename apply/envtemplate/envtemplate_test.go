package envtemplate

import (
	"strings"
	"testing"
)

func TestRender(t *testing.T) {
	env := map[string]string{"PodCIDR": "100.64.0.0/10", "Token": "hoist"}
	for _, c := range []struct{ text, want string }{
		{"pods: {{ .PodCIDR }}", "pods: 100.64.0.0/10"},
		// sealer's defaults for keys the env lacks, and its functions.
		{`{{ or .RegistryURL "sea.hub:5000" }}`, "sea.hub:5000"},
		{"{{ if .Missing }}never{{ end }}x", "x"},
		{"{{ b64enc .Token }} {{ b64dec \"aG9pc3Q=\" }}", "aG9pc3Q= hoist"},
		{`{{ index . "Token" }}`, "hoist"},
		{"{{ range $k, $v := . }}{{ $k }};{{ end }}", "PodCIDR;Token;"},
		// Text that was "<no value>" before rendering is the template's.
		{"<no value>", "<no value>"},
	} {
		out, err := Render("t.tmpl", []byte(c.text), env)
		if err != nil || string(out) != c.want {
			t.Errorf("%s: %q, %v; want %q", c.text, out, err, c.want)
		}
	}
}

func TestRenderRefuses(t *testing.T) {
	env := map[string]string{"A": "a"}
	for _, c := range []struct{ text, want string }{
		{"{{ .SvcCIDR }}", "t.tmpl: prints a key the env does not have (it names SvcCIDR): set it in the Clusterfile's spec.env"},
		{"{{ b64dec .A }}", `template: t.tmpl:1:3: executing "t.tmpl" at <b64dec .A>: error calling b64dec: illegal base64 data at input byte 0`},
		{"{{ range 10 }}{{ end }}", "t.tmpl:1:9: {{range 10}}: templates range over the env only ({{range $k, $v := .}})"},
		{"{{ range . }}{{ range . }}{{ end }}{{ end }}", "t.tmpl:1:22: a range in a range: templates range over the env, once"},
		{`{{ define "a" }}{{ template "a" }}{{ end }}`, `t.tmpl:1:28: {{template "a"}}: templates do not call templates`},
		{"{{ .A", "template: t.tmpl:1: unclosed action"},
	} {
		_, err := Render("t.tmpl", []byte(c.text), env)
		if err == nil || err.Error() != c.want {
			t.Errorf("%s: %v\n want %s", c.text, err, c.want)
		}
	}
}

func TestRenderedOutputBounded(t *testing.T) {
	big := strings.Repeat("x", MaxSize/2+1)
	_, err := Render("etc/big.tmpl", []byte("{{ .A }}{{ .A }}"), map[string]string{"A": big})
	if err == nil || err.Error() != "etc/big.tmpl: writes more than 64 MiB" {
		t.Errorf("got %v", err)
	}
}

// FuzzRender: templates come with images, the env with Clusterfiles.
// Rendering ends, with an error or at most MaxSize bytes; text without
// actions is itself.
func FuzzRender(f *testing.F) {
	f.Add("networking:\n  podSubnet: {{ .PodCIDR }}\nimageRepository: {{or .RegistryURL \"sea.hub:5000\"}}\n", "100.64.0.0/10")
	f.Add("{{ b64enc .B }} {{ b64dec \"aG9pc3Q=\" }}{{ if .Missing }} never{{ end }}\n", "x")
	f.Add("{{ range $k, $v := . }}{{ $k }}={{ $v }}\n{{ end }}", "x")
	f.Add("{{ range 100000000000 }}{{ end }}", "x")
	f.Add("{{ range . }}{{ with $ }}{{ range . }}{{ end }}{{ end }}{{ end }}", "x")
	f.Add("{{ define \"a\" }}{{ template \"a\" }}{{ end }}{{ template \"a\" }}", "x")
	f.Add("{{ block \"b\" . }}{{ .PodCIDR }}{{ end }}", "x")
	f.Add("{{ b64dec .PodCIDR }}", "aG9pc3Q=")
	f.Add("{{ .PodCIDR.X }} <no value>", "")
	f.Add("{{ printf \"%0999999999d\" 1 }}", "")
	f.Fuzz(func(t *testing.T, text, value string) {
		out, err := Render("etc/f.tmpl", []byte(text), map[string]string{"PodCIDR": value, "B": "v"})
		if err != nil {
			return
		}
		if len(out) > MaxSize {
			t.Fatalf("%d bytes rendered", len(out))
		}
		if !strings.Contains(text, "{{") && string(out) != text {
			t.Fatalf("text without actions rendered as %q", out)
		}
	})
}
