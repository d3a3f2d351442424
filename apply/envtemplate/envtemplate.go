// Package envtemplate renders the templates of cluster images as sealer
// renders them: Go templates (text/template) whose data is the env (a
// string map), with sealer's functions b64enc and b64dec. The rootfs's
// templates (apply) and the apps' (apply/launch) are rendered by it, so
// that one template means the same wherever it is.
package envtemplate

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"text/template"
	"text/template/parse"
)

// MaxSize bounds what one template may write.
const MaxSize = 64 << 20

// funcs are sealer's functions for templates.
var funcs = template.FuncMap{
	"b64enc": func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) },
	"b64dec": func(s string) (string, error) {
		data, err := base64.StdEncoding.DecodeString(s)
		return string(data), err
	},
}

// noValue is what text/template prints for a key the env does not have.
const noValue = "<no value>"

// Render executes a template with the env as its data. A key the
// env lacks reads as sealer's templates expect ({{ or .RegistryURL
// "sea.hub:5000" }} takes the default, {{ if .X }} is false), but one
// printed is an error, not the "<no value>" sealer wrote in its place.
func Render(name string, text []byte, env map[string]string) ([]byte, error) {
	t, err := template.New(name).Funcs(funcs).Parse(string(text))
	if err != nil {
		return nil, err
	}
	named := map[string]bool{}
	for _, tt := range t.Templates() {
		if tt.Tree == nil {
			continue
		}
		if err := bounded(tt.Tree, tt.Tree.Root, false, named); err != nil {
			return nil, err
		}
	}
	out := &limitedBuffer{max: MaxSize}
	if err := t.Execute(out, env); err != nil {
		if out.over {
			return nil, fmt.Errorf("%s: writes more than %d MiB", name, MaxSize>>20)
		}
		return nil, err
	}
	if bytes.Count(out.Bytes(), []byte(noValue)) > bytes.Count(text, []byte(noValue)) {
		var missing []string
		for k := range named {
			if _, ok := env[k]; !ok {
				missing = append(missing, k)
			}
		}
		slices.Sort(missing)
		return nil, fmt.Errorf("%s: prints a key the env does not have (it names %s): set it in the Clusterfile's spec.env", name, strings.Join(missing, ", "))
	}
	return out.Bytes(), nil
}

// bounded refuses what could make rendering run without end: a range
// over anything but the env, a range in a range, a call of another
// template (each can call two others...). Sealer's templates need none
// of it: the env is all their data. It notes the keys the template names
// in named.
func bounded(tree *parse.Tree, n parse.Node, inRange bool, named map[string]bool) error {
	var nodes []parse.Node
	switch n := n.(type) {
	case *parse.ListNode:
		if n == nil {
			return nil
		}
		nodes = n.Nodes
	case *parse.ActionNode:
		nodes = []parse.Node{n.Pipe}
	case *parse.PipeNode:
		if n == nil {
			return nil
		}
		for _, c := range n.Cmds {
			nodes = append(nodes, c)
		}
	case *parse.CommandNode:
		nodes = n.Args
	case *parse.ChainNode:
		nodes = []parse.Node{n.Node}
	case *parse.FieldNode:
		named[n.Ident[0]] = true
	case *parse.VariableNode:
		if len(n.Ident) > 1 && n.Ident[0] == "$" {
			named[n.Ident[1]] = true
		}
	case *parse.IfNode:
		nodes = []parse.Node{n.Pipe, n.List, n.ElseList}
	case *parse.WithNode:
		nodes = []parse.Node{n.Pipe, n.List, n.ElseList}
	case *parse.RangeNode:
		at, _ := tree.ErrorContext(n)
		if inRange {
			return fmt.Errorf("%s: a range in a range: templates range over the env, once", at)
		}
		if p := n.Pipe; len(p.Cmds) != 1 || len(p.Cmds[0].Args) != 1 || p.Cmds[0].Args[0].Type() != parse.NodeDot {
			return fmt.Errorf("%s: {{range %s}}: templates range over the env only ({{range $k, $v := .}})", at, p)
		}
		if err := bounded(tree, n.List, true, named); err != nil {
			return err
		}
		return bounded(tree, n.ElseList, inRange, named)
	case *parse.TemplateNode:
		at, _ := tree.ErrorContext(n)
		return fmt.Errorf("%s: {{template %q}}: templates do not call templates", at, n.Name)
	}
	for _, c := range nodes {
		if err := bounded(tree, c, inRange, named); err != nil {
			return err
		}
	}
	return nil
}

// limitedBuffer keeps up to max bytes, and fails the writes beyond.
type limitedBuffer struct {
	bytes.Buffer
	max  int
	over bool
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if b.Len()+len(p) > b.max {
		b.over = true
		return 0, errors.New("output too long")
	}
	return b.Buffer.Write(p)
}
