package clusterfile

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// A Clusterfile that hoist keeps in a cluster's state holds no secret: SSH
// passwords and key passphrases, env values and kubeadm documents (which
// may hold tokens and keys) are left out. Its Cluster document's
// annotations name the hosts whose password or passphrase was left out, by
// address or DefaultSSH, since without them a reader could not tell a host
// that needs a password from one reached through the SSH agent. The parser
// ignores annotations, as it does the rest of sealer's metadata.
//
// The env keys whose values were left out, and the number of kubeadm
// documents, are annotations too, so that the comment that lists them
// survives the file being written again.
const (
	AnnotationNoPassword   = "hoist.dev/ssh-password-left-out"
	AnnotationNoPassphrase = "hoist.dev/ssh-passphrase-left-out"
	AnnotationNoEnv        = "hoist.dev/env-left-out"
	AnnotationNoKubeadm    = "hoist.dev/kubeadm-documents-left-out"
	AnnotationNoLaunch     = "hoist.dev/launch-left-out"
	// DefaultSSH stands for spec.ssh (the access of hosts no longer
	// listed) where hosts are named by address.
	DefaultSSH = "spec.ssh"
)

// Kept is a Clusterfile read back from a cluster's state (ParseKept).
type Kept struct {
	Clusterfile
	// NoPassword and NoPassphrase are the hosts (addresses, or DefaultSSH)
	// whose SSH password or private key's passphrase was left out: each
	// needs one (Fill) to be reached.
	NoPassword, NoPassphrase []string
	// NoEnv are the env keys whose values were left out; NoKubeadm is the
	// number of kubeadm documents left out.
	NoEnv     []string
	NoKubeadm int
	// NoLaunch: what the cluster launches (Cluster.Launch), its Config
	// documents and its registry's other certificate names were left out.
	NoLaunch bool
}

// Lacking are the secrets a Kept still lacks after Fill, by host.
type Lacking struct {
	Password, Passphrase []string
}

// MarshalKept writes cf as hoist keeps it in a cluster's state: a hoist
// Clusterfile that ParseClusterfile reads back to the same cluster, less
// what may be secret (see AnnotationNoPassword), which a comment at its
// top lists. Hosts are written one address each, grouped where
// consecutive hosts share roles, access, labels and taints.
func MarshalKept(cf *Clusterfile) ([]byte, error) { return marshalKept(&Kept{Clusterfile: *cf}) }

// Marshal writes k back as MarshalKept does, keeping what it records as
// left out.
func (k *Kept) Marshal() ([]byte, error) { return marshalKept(k) }

func marshalKept(k *Kept) ([]byte, error) {
	cf, noPassword, noPassphrase := &k.Clusterfile, k.NoPassword, k.NoPassphrase
	c := cf.Cluster
	password, passphrase := map[string]bool{}, map[string]bool{}
	// Only a secret that authentication uses is marked: a password beside a
	// key is never tried, so the host needs none.
	mark := func(who string, s SSH) {
		if s.PrivateKey == "" && (s.Password != "" || slices.Contains(noPassword, who)) {
			password[who] = true
		}
		if s.PrivateKey != "" && (s.Passphrase != "" || slices.Contains(noPassphrase, who)) {
			passphrase[who] = true
		}
	}
	access := func(s SSH) sshSpec { return sshSpec{User: s.User, Port: portSpec(s.Port), PrivateKey: s.PrivateKey} }
	mark(DefaultSSH, c.SSH)
	spec := clusterSpec{Image: c.Image, SSH: access(c.SSH), DataRoot: c.DataRoot, Kubeconfig: c.Kubeconfig,
		Registry: registrySpec{Domain: c.Registry.Domain, Port: portSpec(c.Registry.Port)}}
	for _, ip := range c.Registry.Nodes {
		spec.Registry.Nodes = append(spec.Registry.Nodes, ip.String())
	}
	for _, n := range c.Nodes {
		mark(n.IP.String(), n.SSH)
		h := hostSpec{IPs: []string{n.IP.String()}, Roles: RoleNames(n.Roles), Labels: n.Labels, Taints: n.Taints}
		if access(n.SSH) != access(c.SSH) {
			h.SSH = access(n.SSH)
		}
		if last := len(spec.Hosts) - 1; last >= 0 && sameHost(spec.Hosts[last], h) {
			spec.Hosts[last].IPs = append(spec.Hosts[last].IPs, h.IPs...)
			continue
		}
		spec.Hosts = append(spec.Hosts, h)
	}
	meta := map[string]any{"name": c.Name}
	annotations := map[string]string{}
	for key, hosts := range map[string]map[string]bool{AnnotationNoPassword: password, AnnotationNoPassphrase: passphrase} {
		if len(hosts) > 0 {
			annotations[key] = strings.Join(sortedKeys(hosts), ",")
		}
	}
	envKeys := map[string]bool{}
	for _, key := range k.NoEnv {
		envKeys[key] = true
	}
	for key := range c.Env {
		envKeys[key] = true
	}
	for _, n := range c.Nodes {
		for key := range n.Env {
			envKeys[key] = true
		}
	}
	if len(envKeys) > 0 {
		annotations[AnnotationNoEnv] = strings.Join(sortedKeys(envKeys), ",")
	}
	kubeadm := k.NoKubeadm + len(c.Kubeadm)
	if kubeadm > 0 {
		annotations[AnnotationNoKubeadm] = strconv.Itoa(kubeadm)
	}
	noLaunch := k.NoLaunch || !reflect.DeepEqual(c.Launch, Launch{}) || len(c.Registry.SANs) > 0 || len(c.Configs) > 0
	if noLaunch {
		annotations[AnnotationNoLaunch] = "true"
	}
	if len(annotations) > 0 {
		meta["annotations"] = annotations
	}
	docs := []any{map[string]any{"apiVersion": APIVersion, "kind": "Cluster", "metadata": meta, "spec": spec}}
	// A plugin of several phases (sealer's a|b) is one Plugin per phase,
	// all of its name: one document again, as a name is one document's.
	var plugins []pluginSpec
	var pluginNames []string
	for _, p := range cf.Plugins {
		if i := slices.Index(pluginNames, p.Name); i >= 0 {
			plugins[i].Phase += "|" + string(p.Phase)
			continue
		}
		pluginNames = append(pluginNames, p.Name)
		plugins = append(plugins, pluginSpec{Type: p.Type, Phase: string(p.Phase), Scope: RoleNames(p.Scope), Data: p.Data})
	}
	for i, p := range plugins {
		docs = append(docs, map[string]any{"apiVersion": APIVersion, "kind": "Plugin", "metadata": map[string]any{"name": pluginNames[i]}, "spec": p})
	}
	var out bytes.Buffer
	out.WriteString(keptHeader(c.Name, sortedKeys(envKeys), kubeadm, noLaunch))
	for i, d := range docs {
		data, err := marshalDocument(d)
		if err != nil {
			return nil, fmt.Errorf("cluster %s: writing its Clusterfile: %w", c.Name, err)
		}
		if i > 0 {
			out.WriteString("---\n")
		}
		out.Write(data)
	}
	return out.Bytes(), nil
}

// sameHost tells whether two hosts differ in their addresses only.
func sameHost(a, b hostSpec) bool {
	a.IPs, b.IPs = nil, nil
	return reflect.DeepEqual(a, b)
}

// marshalDocument writes a document as YAML without its empty fields: the
// parser's own types give the field names, and a field left empty reads
// back as its default.
func marshalDocument(doc any) ([]byte, error) {
	data, err := json.Marshal(doc)
	if err != nil {
		return nil, err
	}
	var generic any
	if err := json.Unmarshal(data, &generic); err != nil {
		return nil, err
	}
	return yaml.Marshal(dropEmpty(generic))
}

func dropEmpty(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			if e = dropEmpty(e); isEmpty(e) {
				delete(v, k)
			} else {
				v[k] = e
			}
		}
	case []any:
		for i, e := range v {
			v[i] = dropEmpty(e)
		}
	}
	return v
}

func isEmpty(v any) bool {
	switch v := v.(type) {
	case nil:
		return true
	case string:
		return v == ""
	case float64:
		// A port of 0 is the default one.
		return v == 0
	case map[string]any:
		return len(v) == 0
	case []any:
		return len(v) == 0
	}
	return false
}

// keptHeader is the comment that says what the kept file leaves out, and
// how a command that reads it gets it back.
func keptHeader(cluster string, envKeys []string, kubeadm int, launch bool) string {
	lines := []string{
		fmt.Sprintf("The Clusterfile last applied to cluster %s (hoist apply -f or hoist run),", cluster),
		"kept by hoist for hoist status and hoist delete without -f. It holds no secret:",
		"- SSH passwords and private key passphrases are left out; the annotations",
		"  name the hosts that need one, which hoist delete reads from standard input",
		"  (--passwd-stdin, --pk-passwd-stdin).",
	}
	if len(envKeys) > 0 {
		lines = append(lines,
			"- env values are left out (keys: "+strings.Join(envKeys, ", ")+");",
			"  hoist delete -e KEY=VALUE gives them to the clean hooks.")
	}
	if kubeadm > 0 {
		lines = append(lines, fmt.Sprintf("- its %d kubeadm document(s) are left out: they may hold tokens and keys.", kubeadm))
	}
	if launch {
		lines = append(lines, "- what it launches (sealer's spec.cmd, spec.appNames, Application), its Config",
			"  documents (which may hold secrets) and the registry certificate's other names",
			"  are left out: status and delete need none of them.")
	}
	var b strings.Builder
	for _, l := range lines {
		b.WriteString("# " + l + "\n")
	}
	return b.String()
}

func sortedKeys(m map[string]bool) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// ParseKept reads a Clusterfile kept in a cluster's state (MarshalKept):
// the Clusterfile, and the hosts whose secrets were left out. name is used
// in errors.
func ParseKept(name string, data []byte) (*Kept, error) {
	cf, err := ParseClusterfile(name, data)
	if err != nil {
		return nil, err
	}
	k := &Kept{Clusterfile: *cf}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	for doc := 1; ; doc++ {
		var raw json.RawMessage
		if err := dec.Decode(&raw); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, &FieldError{File: name, Document: doc, Err: fmt.Errorf("not valid YAML: %w", err)}
		}
		var h struct {
			Kind     string `json:"kind"`
			Metadata struct {
				Annotations map[string]string `json:"annotations"`
			} `json:"metadata"`
		}
		if len(bytes.TrimSpace(raw)) == 0 || string(raw) == "null" {
			doc--
			continue
		}
		if json.Unmarshal(raw, &h) != nil || h.Kind != "Cluster" {
			continue
		}
		annotations := h.Metadata.Annotations
		fe := func(key string, err error) error {
			return &FieldError{File: name, Document: doc, Kind: "Cluster", Name: k.Cluster.Name, Field: "metadata.annotations[" + key + "]", Err: err}
		}
		if v := annotations[AnnotationNoEnv]; v != "" {
			k.NoEnv = strings.Split(v, ",")
			for _, key := range k.NoEnv {
				if !IsEnvName(key) {
					return nil, fe(AnnotationNoEnv, fmt.Errorf("%q is not a variable name", key))
				}
			}
		}
		if v, ok := annotations[AnnotationNoLaunch]; ok {
			if v != "true" {
				return nil, fe(AnnotationNoLaunch, fmt.Errorf("%q: want true", v))
			}
			k.NoLaunch = true
		}
		if v, ok := annotations[AnnotationNoKubeadm]; ok {
			if k.NoKubeadm, err = strconv.Atoi(v); err != nil || k.NoKubeadm < 0 {
				return nil, fe(AnnotationNoKubeadm, fmt.Errorf("%q is not a number of documents", v))
			}
		}
		for key, into := range map[string]*[]string{AnnotationNoPassword: &k.NoPassword, AnnotationNoPassphrase: &k.NoPassphrase} {
			v, ok := annotations[key]
			if !ok {
				continue
			}
			for _, who := range strings.Split(v, ",") {
				who = strings.TrimSpace(who)
				if _, err := netip.ParseAddr(who); err != nil && who != DefaultSSH {
					return nil, fe(key, fmt.Errorf("%q is neither a host address nor %s", who, DefaultSSH))
				}
				*into = append(*into, who)
			}
		}
		break
	}
	// A host reached with a password had no key: the key it would
	// otherwise inherit from spec.ssh, on reading, is not its own.
	if slices.Contains(k.NoPassword, DefaultSSH) {
		k.Cluster.SSH.PrivateKey, k.Cluster.SSH.Passphrase = "", ""
	}
	for i, n := range k.Cluster.Nodes {
		if slices.Contains(k.NoPassword, n.IP.String()) {
			k.Cluster.Nodes[i].SSH.PrivateKey, k.Cluster.Nodes[i].SSH.Passphrase = "", ""
		}
	}
	return k, nil
}

// Fill gives the hosts whose secrets were left out the SSH password and
// the key passphrase ("": not given), and returns those it could not.
// One password serves every host that needs one.
func (k *Kept) Fill(password, passphrase string) Lacking {
	var l Lacking
	give := func(who string, s *SSH) {
		if slices.Contains(k.NoPassword, who) {
			if password == "" {
				l.Password = append(l.Password, who)
			} else {
				s.Password = password
			}
		}
		if slices.Contains(k.NoPassphrase, who) {
			if passphrase == "" {
				l.Passphrase = append(l.Passphrase, who)
			} else {
				s.Passphrase = passphrase
			}
		}
	}
	give(DefaultSSH, &k.Cluster.SSH)
	for i := range k.Cluster.Nodes {
		give(k.Cluster.Nodes[i].IP.String(), &k.Cluster.Nodes[i].SSH)
	}
	return l
}

// Without returns the kept Clusterfile without the hosts of addrs, and
// false when that would leave it without a master (a Clusterfile needs
// one); registry nodes among them go too (the first master serves when
// none is left).
func (k *Kept) Without(addrs []string) (*Kept, bool) {
	out := *k
	out.Cluster.Nodes = nil
	for _, n := range k.Cluster.Nodes {
		if !slices.Contains(addrs, n.IP.String()) {
			out.Cluster.Nodes = append(out.Cluster.Nodes, n)
		}
	}
	if len(k.Cluster.Nodes) > 0 && len(out.Cluster.Masters()) == 0 {
		return nil, false
	}
	out.Cluster.Registry.Nodes = nil
	for _, ip := range k.Cluster.Registry.Nodes {
		if !slices.Contains(addrs, ip.String()) {
			out.Cluster.Registry.Nodes = append(out.Cluster.Registry.Nodes, ip)
		}
	}
	if len(out.Cluster.Registry.Nodes) == 0 && len(out.Cluster.Nodes) > 0 {
		out.Cluster.Registry.Nodes = []netip.Addr{out.Cluster.Masters()[0].IP}
	}
	return &out, true
}
