package discover

import (
	"strconv"
	"strings"
	"unicode"

	"github.com/distribution/reference"
)

// parseImage parses s as an image reference, normalised (nginx is
// docker.io/library/nginx). Values substituted later, by Kubernetes
// ($(VAR) in args and env) or by an operator ({{...}} in Argo Workflows),
// are not references yet, nor is anything with spaces.
func parseImage(s string) (reference.Named, bool) {
	if s == "" || strings.Contains(s, "$(") || strings.Contains(s, "{{") || strings.IndexFunc(s, unicode.IsSpace) >= 0 {
		return nil, false
	}
	named, err := reference.ParseNormalizedNamed(s)
	if err != nil {
		return nil, false
	}
	return named, true
}

// pinned tells whether a reference names its tag or digest. In a custom
// resource or a flag, a name alone is often a base the operator adds its
// own tag to (the Prometheus operator's --*-default-base-image and
// spec.version): bundling name:latest would bundle the wrong image.
func pinned(named reference.Named) bool {
	_, tagged := named.(reference.Tagged)
	_, digested := named.(reference.Digested)
	return tagged || digested
}

// taintEffects are the tags of strings that are taints, not images:
// node-role.kubernetes.io/control-plane:NoSchedule.
var taintEffects = map[string]bool{"NoSchedule": true, "PreferNoSchedule": true, "NoExecute": true}

// qualified returns s, normalised, when it is a fully qualified image
// reference: a registry host (with a dot or a port, or localhost), a
// path, and a tag or digest, as quay.io/org/name:v1. Only such a string is
// an image wherever it stands: svc:8081 and app/web:v1 could be anything.
// Label and taint keys (*.kubernetes.io/name:value) have the same shape
// and are not images.
func qualified(s string) (reference.Named, bool) {
	if !strings.Contains(s, "/") {
		return nil, false
	}
	r, err := reference.Parse(s)
	if err != nil {
		return nil, false
	}
	named, ok := r.(reference.Named)
	if !ok || !pinned(named) {
		return nil, false
	}
	domain := reference.Domain(named)
	if !strings.ContainsAny(domain, ".:") && domain != "localhost" {
		return nil, false
	}
	if host, _, _ := strings.Cut(domain, ":"); host == "kubernetes.io" || strings.HasSuffix(host, ".kubernetes.io") {
		return nil, false
	}
	if t, ok := named.(reference.Tagged); ok && taintEffects[t.Tag()] {
		return nil, false
	}
	return parseImage(s)
}

// splitFlag splits a command-line item: --name=value gives name, value and
// true; --name (or -name) gives name, "" and false; anything else an empty
// name.
func splitFlag(s string) (name, value string, inline bool) {
	rest := strings.TrimLeft(s, "-")
	if len(rest) == len(s) || len(s)-len(rest) > 2 || rest == "" {
		return "", "", false
	}
	name, value, inline = strings.Cut(rest, "=")
	// A flag's name starts with a letter: -1 and --=x are not flags.
	if name == "" || !unicode.IsLetter(rune(name[0])) {
		return "", "", false
	}
	return name, value, inline
}

// namesImage tells whether a flag's (or a field's) name says that it
// takes an image: its last word is "image", as in --image,
// --acme-http01-solver-image, --configReloaderImage. --image-pull-policy,
// --image-tag and --image-registry take something else.
func namesImage(name string) bool {
	words := nameWords(name)
	return len(words) > 0 && words[len(words)-1] == "image"
}

// nameWords splits a flag's name into lower-case words at '-', '_', '.'
// and camelCase humps.
func nameWords(name string) []string {
	var words []string
	var b strings.Builder
	flush := func() {
		if b.Len() > 0 {
			words = append(words, strings.ToLower(b.String()))
			b.Reset()
		}
	}
	prev := rune(0)
	for _, r := range name {
		switch {
		case r == '-' || r == '_' || r == '.':
			flush()
		case unicode.IsUpper(r) && unicode.IsLower(prev):
			flush()
			b.WriteRune(r)
		default:
			b.WriteRune(r)
		}
		prev = r
	}
	flush()
	return words
}

// separator splits a free-form string (a script, a configuration file in
// a ConfigMap) into the words that may be references.
func separator(r rune) bool {
	return unicode.IsSpace(r) || strings.ContainsRune("\"'`,;=()[]{}<>|\\", r)
}

// field is the path of key under p, as kubectl's JSONPath spells it:
// spec.image, metadata.annotations["helm.sh/hook"].
func field(p, key string) string {
	if !plainKey(key) {
		return p + `["` + key + `"]`
	}
	if p == "" {
		return key
	}
	return p + "." + key
}

// index is the path of item i of the list at p.
func index(p string, i int) string { return p + "[" + strconv.Itoa(i) + "]" }

func plainKey(key string) bool {
	if key == "" {
		return false
	}
	for _, r := range key {
		if !(r == '-' || r == '_' || r < unicode.MaxASCII && (unicode.IsLetter(r) || unicode.IsDigit(r))) {
			return false
		}
	}
	return true
}
