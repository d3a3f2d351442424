package clusterfile

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/distribution/reference"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/hoistdev/hoist/agent"
)

// API versions a Clusterfile may use.
const (
	APIVersion       = "hoist.dev/v1alpha1"
	SealerClusterAPI = "sealer.io/v2"
	SealerPluginAPI  = "sealer.io/v1"
	// SealerPluginAPIv2 is the apiVersion of the plugins of sealer's own
	// plugin repository; their spec is the same.
	SealerPluginAPIv2 = "sealer.io/v2"
)

// Role is a role of a host: master or node, which say what hoist installs
// there, and any other name (a custom role, as sealer has), which only
// plugins' scopes select.
type Role string

// Roles of a host.
const (
	RoleMaster Role = "master"
	RoleNode   Role = "node"
)

// RoleNames returns roles as plain strings, for what keeps or shows them as
// such: the journal, the plan, the status, HOIST_ROLES. Nil stays nil, so
// that JSON written from it does not change.
func RoleNames(roles []Role) []string { return names(roles) }

// RolesOf is the inverse of RoleNames, for roles read back from the journal.
func RolesOf(names []string) []Role {
	if names == nil {
		return nil
	}
	out := make([]Role, len(names))
	for i, n := range names {
		out[i] = Role(n)
	}
	return out
}

// Phase is when a hook runs.
type Phase string

// The hook phases, sealer's names.
const (
	PhasePreInitHost   Phase = "pre-init-host"
	PhasePostInitHost  Phase = "post-init-host"
	PhasePreInstall    Phase = "pre-install"
	PhasePostInstall   Phase = "post-install"
	PhasePreCleanHost  Phase = "pre-clean-host"
	PhasePostCleanHost Phase = "post-clean-host"
	PhasePreUninstall  Phase = "pre-uninstall"
	PhasePostUninstall Phase = "post-uninstall"
	PhasePreScaleUp    Phase = "pre-scaleup"
	PhasePostScaleUp   Phase = "post-scaleup"
	PhaseUpgrade       Phase = "upgrade"
	PhaseUpgradeHost   Phase = "upgrade-host"
	PhaseRollback      Phase = "rollback"
)

// Phases are the hook phases hoist runs, in the order apply and delete run
// them.
var Phases = []Phase{PhasePreInitHost, PhasePostInitHost, PhasePreInstall, PhaseUpgradeHost, PhasePreScaleUp, PhasePostScaleUp, PhaseUpgrade,
	PhasePostInstall, PhasePreUninstall, PhasePreCleanHost, PhasePostCleanHost, PhasePostUninstall}

// notRun are sealer's phases hoist does not run hooks at, and why: a
// plugin for them is refused rather than kept to never run.
var notRun = map[Phase]string{
	PhaseRollback: "hoist has no rollback",
}

// sealerActions are the phase names of sealer's older plugins (action:
// PreInit, ...) that are not the new names without their dashes.
var sealerActions = map[string]Phase{
	"preinit":   PhasePreInitHost,
	"postinit":  PhasePostInitHost,
	"preclean":  PhasePreCleanHost,
	"postclean": PhasePostCleanHost,
	"prejoin":   PhasePreScaleUp,
	"postjoin":  PhasePostScaleUp,
}

// names converts a list of a string type to plain strings, nil to nil.
func names[S ~string](list []S) []string {
	if list == nil {
		return nil
	}
	out := make([]string, len(list))
	for i, s := range list {
		out[i] = string(s)
	}
	return out
}

// Defaults of a Clusterfile.
const (
	DefaultUser     = "root"
	DefaultPort     = 22
	DefaultDomain   = "registry.hoist.local"
	DefaultRegPort  = 5000
	DefaultDataRoot = "/var/lib/hoist"
)

// maxRange bounds an IP range, so that a typo (10.0.0.1-10.0.9.1) is an
// error rather than thousands of hosts.
const maxRange = 1024

// Clusterfile is a parsed Clusterfile: one cluster and its plugins.
type Clusterfile struct {
	Cluster Cluster
	Plugins []Plugin
}

// Cluster is the desired cluster, every host resolved: one Node per
// address, with the SSH defaults and the cluster env merged in.
type Cluster struct {
	Name     string
	Image    string
	Env      map[string]string
	Registry Registry
	DataRoot string
	Nodes    []Node
	// SSH is the default access, for hosts no longer listed.
	SSH SSH
	// Kubeconfig is the file of the cluster the apps go to ("" when hoist
	// brings up Kubernetes itself).
	Kubeconfig string
	// Kubeadm are the Clusterfile's kubeadm documents (InitConfiguration,
	// ClusterConfiguration, JoinConfiguration, KubeletConfiguration,
	// KubeProxyConfiguration), laid over the image's defaults.
	Kubeadm []json.RawMessage
	// Launch overrides what the image launches (sealer's spec.cmd and
	// spec.appNames, and its Application document).
	Launch Launch
	// Configs are files written into the rootfs on every node before
	// anything uses it (sealer's Config documents).
	Configs []Config
}

// Config is a file a Clusterfile writes into the rootfs (sealer's
// Config): Data, processed (Process), then written whole or merged into
// the image's YAML file at Path (Strategy).
type Config struct {
	Name string
	// Path is relative to the rootfs, clean, slash-separated.
	Path string
	Data string
	// Strategy is ConfigOverwrite (the default) or ConfigMerge.
	Strategy string
	// Process are sealer's processors of Data, in order: value, toJson,
	// toBase64.
	Process []string
}

// Config strategies and processors, sealer's names.
const (
	ConfigOverwrite = "overwrite"
	ConfigMerge     = "merge"
	ProcessValue    = "value"
	ProcessToJSON   = "toJson"
	ProcessToBase64 = "toBase64"
)

// Launch is what a Clusterfile changes of what an image launches; nil
// fields keep the image's.
type Launch struct {
	// Apps replaces the image's LAUNCH list.
	Apps []string
	// Cmds replaces the image's CMDS (the commands run after the apps).
	Cmds []string
	// AppCmds replaces an app's APPCMDS, by app name.
	AppCmds map[string][]string
	// AppEnv is laid over an app's APPENV, by app name.
	AppEnv map[string]map[string]string
	// AppFiles are written over an app's files, by app name, in order.
	AppFiles map[string][]AppFile
}

// AppFile is a file the Clusterfile writes into an app's folder before it
// is launched (sealer's Application configs[].files): Data written whole
// at Path (ConfigOverwrite, the default) or merged into the app's YAML
// file there (ConfigMerge, a deep merge that adds what the file lacks).
type AppFile struct {
	// Path is relative to the app's folder, clean, slash-separated.
	Path     string
	Strategy string
	Data     string
}

// Masters returns the nodes with the master role, first master first.
func (c Cluster) Masters() []Node {
	var out []Node
	for _, n := range c.Nodes {
		if n.IsMaster() {
			out = append(out, n)
		}
	}
	return out
}

// Node is one machine.
type Node struct {
	IP     netip.Addr
	Roles  []Role
	SSH    SSH
	Env    map[string]string
	Labels map[string]string
	Taints []string
}

// IsMaster tells whether the node has the master role.
func (n Node) IsMaster() bool { return slices.Contains(n.Roles, RoleMaster) }

// SSH is how hoist reaches a host. Secrets stay in memory: String and the
// plan never show them.
type SSH struct {
	User       string
	Port       int
	Password   string
	PrivateKey string
	Passphrase string
}

// String describes the access without its secrets.
func (s SSH) String() string {
	auth := "agent"
	switch {
	case s.PrivateKey != "":
		auth = "key " + s.PrivateKey
	case s.Password != "":
		auth = "password"
	}
	return fmt.Sprintf("%s, port %d, %s", s.User, s.Port, auth)
}

// Registry is where the cluster's image registry runs.
type Registry struct {
	Domain string
	Port   int
	Nodes  []netip.Addr // default: the first master
	// SANs are more names and addresses its certificate holds (sealer's
	// localRegistry.cert.subjectAltName).
	SANs []string
}

// Plugin is a hook: a shell script run at a phase on the hosts of a scope.
type Plugin struct {
	Name  string
	Type  string // SHELL
	Phase Phase  // one of Phases
	Scope []Role // empty means every host
	Data  string
}

// FieldError is a problem at a field of a Clusterfile document.
type FieldError struct {
	File     string
	Document int    // 1-based
	Kind     string // Cluster, Plugin
	Name     string
	Field    string // spec.hosts[1].ips[0]
	Err      error
}

func (e *FieldError) Error() string {
	doc := fmt.Sprintf("document %d", e.Document)
	if e.Kind != "" {
		doc += " (" + e.Kind
		if e.Name != "" {
			doc += " " + strconv.Quote(e.Name)
		}
		doc += ")"
	}
	if e.Field != "" {
		return fmt.Sprintf("%s: %s: %s: %v", e.File, doc, e.Field, e.Err)
	}
	return fmt.Sprintf("%s: %s: %v", e.File, doc, e.Err)
}

func (e *FieldError) Unwrap() error { return e.Err }

// header is what every document starts with.
type header struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name string `json:"name"`
	} `json:"metadata"`
}

// ParseClusterfile reads the documents of a Clusterfile: one Cluster, and
// Plugins. name is used in errors.
func ParseClusterfile(name string, data []byte) (*Clusterfile, error) {
	return parseDocuments(name, data, true)
}

// ParsePlugins reads a file of Plugin documents only, such as those an
// image ships in plugins/.
func ParsePlugins(name string, data []byte) ([]Plugin, error) {
	cf, err := parseDocuments(name, data, false)
	if err != nil {
		return nil, err
	}
	return cf.Plugins, nil
}

func parseDocuments(name string, data []byte, wantCluster bool) (*Clusterfile, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	cf := &Clusterfile{}
	clusters := 0
	var kubeadm []json.RawMessage
	names := map[string]bool{} // of plugins
	applications := 0
	var application *Launch
	var configs []Config
	for doc := 1; ; doc++ {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return nil, &FieldError{File: name, Document: doc, Err: fmt.Errorf("not valid YAML: %w", err)}
		}
		if len(bytes.TrimSpace(raw)) == 0 || string(raw) == "null" {
			doc--
			continue
		}
		var h header
		if err := json.Unmarshal(raw, &h); err != nil {
			return nil, &FieldError{File: name, Document: doc, Err: fmt.Errorf("not a Clusterfile document: %w", err)}
		}
		fe := func(field string, err error) error {
			return &FieldError{File: name, Document: doc, Kind: h.Kind, Name: h.Metadata.Name, Field: field, Err: err}
		}
		switch {
		case h.Kind == "Cluster" && !wantCluster:
			return nil, fe("kind", errors.New("only Plugin documents belong here"))
		case h.Kind == "Cluster" && (h.APIVersion == APIVersion || h.APIVersion == SealerClusterAPI):
			clusters++
			if clusters > 1 {
				return nil, fe("", errors.New("a Clusterfile holds one Cluster"))
			}
			if err := agent.CheckClusterName(h.Metadata.Name); err != nil {
				return nil, fe("metadata.name", err)
			}
			c, err := parseCluster(raw, h.APIVersion == SealerClusterAPI, fe)
			if err != nil {
				return nil, err
			}
			c.Name = h.Metadata.Name
			cf.Cluster = *c
		case h.Kind == "Plugin" && (h.APIVersion == APIVersion || h.APIVersion == SealerPluginAPI || h.APIVersion == SealerPluginAPIv2):
			ps, err := parsePlugin(raw, h.APIVersion != APIVersion, fe)
			if err != nil {
				return nil, err
			}
			if names[h.Metadata.Name] {
				return nil, fe("metadata.name", fmt.Errorf("two plugins are named %q", h.Metadata.Name))
			}
			names[h.Metadata.Name] = true
			for _, p := range ps {
				p.Name = h.Metadata.Name
				cf.Plugins = append(cf.Plugins, p)
			}
		case h.Kind == "Application" && h.APIVersion == SealerClusterAPI && wantCluster:
			if applications++; applications > 1 {
				return nil, fe("", errors.New("a Clusterfile holds one Application"))
			}
			l, err := parseApplication(raw, fe)
			if err != nil {
				return nil, err
			}
			application = &l
		case h.Kind == "Application" && wantCluster:
			return nil, fe("apiVersion", fmt.Errorf("%q is not supported for Application (use sealer's %s)", h.APIVersion, SealerClusterAPI))
		case h.Kind == "Config" && wantCluster && (h.APIVersion == SealerClusterAPI || h.APIVersion == SealerPluginAPI):
			c, err := parseConfig(raw, fe)
			if err != nil {
				return nil, err
			}
			c.Name = h.Metadata.Name
			if slices.ContainsFunc(configs, func(o Config) bool { return o.Path == c.Path }) {
				return nil, fe("spec.path", fmt.Errorf("%s is written by two Config documents", c.Path))
			}
			configs = append(configs, c)
		case h.Kind == "Config" && wantCluster:
			return nil, fe("apiVersion", fmt.Errorf("%q is not supported for Config (use sealer's %s)", h.APIVersion, SealerClusterAPI))
		case h.Kind == "Cluster" || h.Kind == "Plugin":
			return nil, fe("apiVersion", fmt.Errorf("%q is not supported for %s (use %s, or sealer's %s)", h.APIVersion, h.Kind, APIVersion, map[string]string{"Cluster": SealerClusterAPI, "Plugin": SealerPluginAPI + " or " + SealerPluginAPIv2}[h.Kind]))
		case h.Kind == "":
			return nil, fe("kind", errors.New("missing (Cluster or Plugin)"))
		default:
			// kubeadm documents (InitConfiguration, ...) belong to the
			// Kubernetes runtime, which reads them itself.
			if !strings.HasPrefix(h.APIVersion, "kubeadm.k8s.io/") && !strings.HasPrefix(h.APIVersion, "kubelet.config.k8s.io/") && !strings.HasPrefix(h.APIVersion, "kubeproxy.config.k8s.io/") {
				return nil, fe("kind", fmt.Errorf("%q is not a Clusterfile kind (Cluster, Plugin, Application, or kubeadm configuration)", h.Kind))
			}
			kubeadm = append(kubeadm, raw)
		}
	}
	if clusters == 0 && wantCluster {
		return nil, &FieldError{File: name, Document: 1, Err: errors.New("no Cluster document (apiVersion: " + APIVersion + ", kind: Cluster)")}
	}
	cf.Cluster.Kubeadm = kubeadm
	cf.Cluster.Configs = configs
	if application != nil {
		cf.Cluster.Launch = application.under(cf.Cluster.Launch)
	}
	return cf, nil
}

// clusterSpec is hoist's Cluster spec; sealer's differs in the names noted.
type clusterSpec struct {
	Image    string       `json:"image"`
	SSH      sshSpec      `json:"ssh"`
	Hosts    []hostSpec   `json:"hosts"`
	Env      envSpec      `json:"env"`
	Registry registrySpec `json:"registry"`
	DataRoot string       `json:"dataRoot"`
	// Kubeconfig is an existing cluster's, where the apps go: with hosts,
	// instead of a Kubernetes that hoist brings up; alone, for app images.
	Kubeconfig string `json:"kubeconfig"`
}

type sshSpec struct {
	User       string   `json:"user"`
	Port       portSpec `json:"port"`
	Password   string   `json:"password"`   // sealer: passwd
	PrivateKey string   `json:"privateKey"` // sealer: pk
	Passphrase string   `json:"passphrase"` // sealer: pkPasswd
}

type hostSpec struct {
	IPs    []string          `json:"ips"`
	Roles  []string          `json:"roles"`
	SSH    sshSpec           `json:"ssh"`
	Env    envSpec           `json:"env"`
	Labels map[string]string `json:"labels"`
	Taints []string          `json:"taints"`
}

type registrySpec struct {
	Domain string   `json:"domain"`
	Port   portSpec `json:"port"`
	Nodes  []string `json:"nodes"`
}

// sealer's names for the same fields.
type sealerSSH struct {
	User      string   `json:"user"`
	Port      portSpec `json:"port"`
	Passwd    string   `json:"passwd"`
	PK        string   `json:"pk"`
	PKPasswd  string   `json:"pkPasswd"`
	Encrypted *bool    `json:"encrypted"`
}

type sealerSpec struct {
	Image string    `json:"image"`
	SSH   sealerSSH `json:"ssh"`
	// ContainerRuntime: hoist's base installs containerd; another is
	// refused.
	ContainerRuntime *struct {
		Type string `json:"type"`
	} `json:"containerRuntime"`
	HostAliases any `json:"hostAliases"`
	Hosts       []struct {
		IPs    []string          `json:"ips"`
		Roles  []string          `json:"roles"`
		SSH    sealerSSH         `json:"ssh"`
		Env    envSpec           `json:"env"`
		Labels map[string]string `json:"labels"`
		Taints []string          `json:"taints"`
	} `json:"hosts"`
	Env      envSpec  `json:"env"`
	CMD      []string `json:"cmd"`
	APPNames []string `json:"appNames"`
	Registry struct {
		LocalRegistry *struct {
			Domain   string   `json:"domain"`
			Port     portSpec `json:"port"`
			HA       *bool    `json:"ha"`
			Insecure *bool    `json:"insecure"`
			Username string   `json:"username"`
			Password string   `json:"password"`
			Cert     *struct {
				SubjectAltName *struct {
					DNSNames []string `json:"dnsNames"`
					IPs      []string `json:"ips"`
				} `json:"subjectAltName"`
			} `json:"cert"`
		} `json:"localRegistry"`
		ExternalRegistry any `json:"externalRegistry"`
	} `json:"registry"`
	DataRoot string `json:"dataRoot"`
}

func (s sealerSSH) hoist() sshSpec {
	return sshSpec{User: s.User, Port: s.Port, Password: s.Passwd, PrivateKey: s.PK, Passphrase: s.PKPasswd}
}

// portSpec is a port written as a number or, as sealer does, a string.
type portSpec int

func (p *portSpec) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) == nil {
		if s == "" {
			*p = 0
			return nil
		}
		n, err := strconv.Atoi(s)
		if err != nil {
			return fmt.Errorf("port %q is not a number", s)
		}
		*p = portSpec(n)
		return nil
	}
	var n int
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("port %s is not a number", b)
	}
	*p = portSpec(n)
	return nil
}

// envSpec is env as a map (hoist) or a list of K=V (sealer).
type envSpec map[string]string

func (e *envSpec) UnmarshalJSON(b []byte) error {
	var m map[string]string
	if json.Unmarshal(b, &m) == nil {
		*e = m
		return nil
	}
	var list []string
	if err := json.Unmarshal(b, &list); err != nil {
		return errors.New("env is a map of KEY: value, or a list of KEY=VALUE")
	}
	*e = envSpec{}
	for _, kv := range list {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return fmt.Errorf("env %q is not KEY=VALUE", kv)
		}
		(*e)[k] = v
	}
	return nil
}

// specOf decodes a document's spec strictly: an unknown field is an error
// that names it (a typo would otherwise be silently ignored).
func specOf(raw json.RawMessage, into any) error {
	var doc struct {
		Spec json.RawMessage `json:"spec"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return err
	}
	if len(doc.Spec) == 0 {
		return errors.New("missing")
	}
	if err := yaml.UnmarshalStrict(doc.Spec, into); err != nil {
		msg := err.Error()
		msg = strings.TrimPrefix(msg, "error unmarshaling JSON: while decoding JSON: ")
		msg = strings.TrimPrefix(msg, "json: ")
		return errors.New(msg)
	}
	return nil
}

func parseCluster(raw json.RawMessage, sealer bool, fe func(string, error) error) (*Cluster, error) {
	var spec clusterSpec
	var sealerLaunch Launch
	var sealerHA bool
	var sealerSANs []string
	if sealer {
		var s sealerSpec
		if err := specOf(raw, &s); err != nil {
			return nil, fe("spec", err)
		}
		spec = clusterSpec{Image: s.Image, SSH: s.SSH.hoist(), Env: s.Env, DataRoot: s.DataRoot}
		for _, h := range s.Hosts {
			spec.Hosts = append(spec.Hosts, hostSpec{IPs: h.IPs, Roles: h.Roles, SSH: h.SSH.hoist(), Env: h.Env, Labels: h.Labels, Taints: h.Taints})
		}
		var err error
		if sealerLaunch, sealerHA, sealerSANs, err = sealerOnly(s, fe); err != nil {
			return nil, err
		}
		if lr := s.Registry.LocalRegistry; lr != nil {
			spec.Registry = registrySpec{Domain: lr.Domain, Port: lr.Port}
		}
	} else if err := specOf(raw, &spec); err != nil {
		return nil, fe("spec", err)
	}

	c := &Cluster{Image: spec.Image, Env: map[string]string(spec.Env), DataRoot: spec.DataRoot, Launch: sealerLaunch}
	if c.Env == nil {
		c.Env = map[string]string{}
	}
	if c.Image == "" {
		return nil, fe("spec.image", errors.New("missing: the cluster image to install"))
	}
	if _, err := reference.ParseNormalizedNamed(c.Image); err != nil {
		return nil, fe("spec.image", fmt.Errorf("%q is not an image name: %w", c.Image, err))
	}
	if c.DataRoot == "" {
		c.DataRoot = DefaultDataRoot
	}
	if !strings.HasPrefix(c.DataRoot, "/") {
		return nil, fe("spec.dataRoot", fmt.Errorf("%q is not an absolute path", c.DataRoot))
	}
	// The cluster's directory, <dataRoot>/<name>, is what delete removes:
	// never a directory directly under /.
	if c.DataRoot = path.Clean(c.DataRoot); c.DataRoot == "/" {
		return nil, fe("spec.dataRoot", errors.New("/ is not a data root: give a directory such as "+DefaultDataRoot))
	}
	if err := checkEnvNames(spec.Env); err != nil {
		return nil, fe("spec.env", err)
	}
	defaults, err := resolveSSH(SSH{User: DefaultUser, Port: DefaultPort}, spec.SSH)
	if err != nil {
		return nil, fe("spec.ssh", err)
	}
	c.SSH = defaults
	c.Kubeconfig = spec.Kubeconfig
	if len(spec.Hosts) == 0 && c.Kubeconfig != "" {
		// An existing cluster: the apps go there, no host is touched.
		c.Registry = Registry{Domain: spec.Registry.Domain, Port: int(spec.Registry.Port)}
		return c, nil
	}
	if len(spec.Hosts) == 0 {
		return nil, fe("spec.hosts", errors.New("no hosts (or give spec.kubeconfig, for an existing cluster)"))
	}
	seen := map[netip.Addr]string{}
	for i, h := range spec.Hosts {
		at := fmt.Sprintf("spec.hosts[%d]", i)
		if len(h.Roles) == 0 {
			return nil, fe(at+".roles", errors.New("missing: master, node, or both"))
		}
		for j, r := range h.Roles {
			if err := checkRole(r); err != nil {
				return nil, fe(fmt.Sprintf("%s.roles[%d]", at, j), err)
			}
		}
		if !slices.Contains(h.Roles, string(RoleMaster)) && !slices.Contains(h.Roles, string(RoleNode)) {
			return nil, fe(at+".roles", fmt.Errorf("%v: a host is a master, a node, or both (other roles only select plugins)", h.Roles))
		}
		ssh, err := resolveSSH(defaults, h.SSH)
		if err != nil {
			return nil, fe(at+".ssh", err)
		}
		if err := checkEnvNames(h.Env); err != nil {
			return nil, fe(at+".env", err)
		}
		if len(h.IPs) == 0 {
			return nil, fe(at+".ips", errors.New("no addresses"))
		}
		for j, s := range h.IPs {
			addrs, err := ParseIPs(s)
			if err != nil {
				return nil, fe(fmt.Sprintf("%s.ips[%d]", at, j), err)
			}
			for _, ip := range addrs {
				field := fmt.Sprintf("%s.ips[%d]", at, j)
				if prev, ok := seen[ip]; ok {
					return nil, fe(field, fmt.Errorf("%s is already listed at %s", ip, prev))
				}
				seen[ip] = field
				env := map[string]string{}
				for k, v := range c.Env {
					env[k] = v
				}
				for k, v := range h.Env {
					env[k] = v
				}
				c.Nodes = append(c.Nodes, Node{IP: ip, Roles: RolesOf(h.Roles), SSH: ssh, Env: env, Labels: h.Labels, Taints: h.Taints})
			}
		}
		for j, t := range h.Taints {
			if err := checkTaint(t); err != nil {
				return nil, fe(fmt.Sprintf("%s.taints[%d]", at, j), err)
			}
		}
	}
	if len(c.Masters()) == 0 {
		return nil, fe("spec.hosts", errors.New("no host has the master role"))
	}

	c.Registry = Registry{Domain: spec.Registry.Domain, Port: int(spec.Registry.Port)}
	if c.Registry.Domain == "" {
		c.Registry.Domain = DefaultDomain
	}
	if c.Registry.Port == 0 {
		c.Registry.Port = DefaultRegPort
	}
	if c.Registry.Port < 1 || c.Registry.Port > 65535 {
		return nil, fe("spec.registry.port", fmt.Errorf("%d is not a port", c.Registry.Port))
	}
	for j, s := range spec.Registry.Nodes {
		ip, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fe(fmt.Sprintf("spec.registry.nodes[%d]", j), fmt.Errorf("%q is not an IP address", s))
		}
		if _, ok := seen[ip]; !ok {
			return nil, fe(fmt.Sprintf("spec.registry.nodes[%d]", j), fmt.Errorf("%s is not one of the hosts", ip))
		}
		c.Registry.Nodes = append(c.Registry.Nodes, ip)
	}
	if sealerHA {
		for _, m := range c.Masters() {
			c.Registry.Nodes = append(c.Registry.Nodes, m.IP)
		}
	}
	if len(c.Registry.Nodes) == 0 {
		c.Registry.Nodes = []netip.Addr{c.Masters()[0].IP}
	}
	c.Registry.SANs = sealerSANs
	return c, nil
}

// sealerOnly reads the fields of sealer's Cluster spec that hoist's has
// not: the launch overrides, the registry's high availability and
// certificate names; those hoist does not implement are refused, saying
// why, rather than ignored.
func sealerOnly(s sealerSpec, fe func(string, error) error) (Launch, bool, []string, error) {
	var l Launch
	if s.CMD != nil {
		l.Cmds = s.CMD
	}
	if s.APPNames != nil {
		l.Apps = s.APPNames
	}
	if rt := s.ContainerRuntime; rt != nil && rt.Type != "" && rt.Type != "containerd" {
		return l, false, nil, fe("spec.containerRuntime.type", fmt.Errorf("%q: hoist's Kubernetes runs on containerd, which its base image installs (docker and others are not supported)", rt.Type))
	}
	if s.HostAliases != nil {
		return l, false, nil, fe("spec.hostAliases", errors.New("not supported: write the hosts entries with a pre-init-host plugin"))
	}
	if s.SSH.Encrypted != nil && *s.SSH.Encrypted {
		return l, false, nil, fe("spec.ssh.encrypted", errors.New("sealer's encrypted passwords are not supported: give the password in clear in a file only root reads, or use a key"))
	}
	for i, h := range s.Hosts {
		if h.SSH.Encrypted != nil && *h.SSH.Encrypted {
			return l, false, nil, fe(fmt.Sprintf("spec.hosts[%d].ssh.encrypted", i), errors.New("sealer's encrypted passwords are not supported: give the password in clear in a file only root reads, or use a key"))
		}
	}
	if s.Registry.ExternalRegistry != nil {
		return l, false, nil, fe("spec.registry.externalRegistry", errors.New("not supported: hoist serves the image's registry on the cluster's own nodes"))
	}
	lr := s.Registry.LocalRegistry
	if lr == nil {
		return l, false, nil, nil
	}
	if lr.Username != "" || lr.Password != "" {
		return l, false, nil, fe("spec.registry.localRegistry.username", errors.New("not supported: hoist's registry on the nodes serves the bundled images to the cluster without credentials, over TLS with the cluster's CA"))
	}
	var sans []string
	if lr.Cert != nil && lr.Cert.SubjectAltName != nil {
		for i, n := range lr.Cert.SubjectAltName.DNSNames {
			if !isDNSName(n) {
				return l, false, nil, fe(fmt.Sprintf("spec.registry.localRegistry.cert.subjectAltName.dnsNames[%d]", i), fmt.Errorf("%q is not a DNS name", n))
			}
			sans = append(sans, n)
		}
		for i, a := range lr.Cert.SubjectAltName.IPs {
			ip, err := netip.ParseAddr(a)
			if err != nil {
				return l, false, nil, fe(fmt.Sprintf("spec.registry.localRegistry.cert.subjectAltName.ips[%d]", i), fmt.Errorf("%q is not an IP address", a))
			}
			sans = append(sans, ip.String())
		}
	}
	// insecure is accepted and has no effect: every node trusts the
	// registry through the cluster CA hoist installs.
	return l, lr.HA != nil && *lr.HA, sans, nil
}

// configSpec is sealer's Config.
type configSpec struct {
	Path     string `json:"path"`
	Data     string `json:"data"`
	Strategy string `json:"strategy"`
	Process  string `json:"process"`
}

// parseConfig reads sealer's Config: a path inside the rootfs, a strategy
// and processors hoist knows.
func parseConfig(raw json.RawMessage, fe func(string, error) error) (Config, error) {
	var spec configSpec
	if err := specOf(raw, &spec); err != nil {
		return Config{}, fe("spec", err)
	}
	p := strings.TrimPrefix(spec.Path, "./")
	if p == "" || path.IsAbs(p) || path.Clean(p) != p || p == "." || strings.HasPrefix(p, "../") || p == ".." || strings.ContainsAny(p, "\x00\n") {
		return Config{}, fe("spec.path", fmt.Errorf("%q is not a clean path inside the rootfs (etc/app.yaml)", spec.Path))
	}
	c := Config{Path: p, Data: spec.Data, Strategy: spec.Strategy}
	switch c.Strategy {
	case "":
		c.Strategy = ConfigOverwrite
	case ConfigOverwrite, ConfigMerge:
	default:
		return Config{}, fe("spec.strategy", fmt.Errorf("%q: want %s or %s", spec.Strategy, ConfigOverwrite, ConfigMerge))
	}
	if spec.Process != "" {
		for _, name := range strings.Split(spec.Process, "|") {
			switch name {
			case ProcessValue, ProcessToJSON, ProcessToBase64:
				c.Process = append(c.Process, name)
			default:
				return Config{}, fe("spec.process", fmt.Errorf("%q is not a processor (%s, %s, %s)", name, ProcessValue, ProcessToJSON, ProcessToBase64))
			}
		}
	}
	return c, nil
}

// applicationSpec is sealer's Application.
type applicationSpec struct {
	Cmds       []string `json:"cmds"`
	LaunchApps []string `json:"launchApps"`
	Configs    []struct {
		Name  string  `json:"name"`
		Env   envSpec `json:"env"`
		Files []struct {
			Path     string `json:"path"`
			Strategy string `json:"strategy"`
			Data     string `json:"data"`
		} `json:"files"`
		Launch *struct {
			Cmds []string `json:"cmds"`
		} `json:"launch"`
	} `json:"configs"`
}

// parseApplication reads sealer's Application: the apps to launch, the
// commands after them, and an app's own launch commands.
func parseApplication(raw json.RawMessage, fe func(string, error) error) (Launch, error) {
	var spec applicationSpec
	if err := specOf(raw, &spec); err != nil {
		return Launch{}, fe("spec", err)
	}
	l := Launch{Cmds: spec.Cmds, Apps: spec.LaunchApps}
	for i, a := range spec.LaunchApps {
		if a == "" {
			return Launch{}, fe(fmt.Sprintf("spec.launchApps[%d]", i), errors.New("empty app name"))
		}
	}
	seen := map[string]bool{}
	for i, c := range spec.Configs {
		at := fmt.Sprintf("spec.configs[%d]", i)
		if c.Name == "" {
			return Launch{}, fe(at+".name", errors.New("missing: the app the config is for"))
		}
		if seen[c.Name] {
			return Launch{}, fe(at+".name", fmt.Errorf("app %q has two configs", c.Name))
		}
		seen[c.Name] = true
		for k := range c.Env {
			if k == "" || strings.ContainsAny(k, "\x00\n") {
				return Launch{}, fe(at+".env", fmt.Errorf("key %q is not a name", k))
			}
		}
		if len(c.Env) > 0 {
			if l.AppEnv == nil {
				l.AppEnv = map[string]map[string]string{}
			}
			l.AppEnv[c.Name] = c.Env
		}
		for j, f := range c.Files {
			fat := fmt.Sprintf("%s.files[%d]", at, j)
			if f.Strategy == "" {
				f.Strategy = ConfigOverwrite
			}
			if f.Strategy != ConfigOverwrite && f.Strategy != ConfigMerge {
				return Launch{}, fe(fat+".strategy", fmt.Errorf("%q is not %s or %s", f.Strategy, ConfigOverwrite, ConfigMerge))
			}
			if err := checkAppPath(f.Path); err != nil {
				return Launch{}, fe(fat+".path", err)
			}
			if l.AppFiles == nil {
				l.AppFiles = map[string][]AppFile{}
			}
			l.AppFiles[c.Name] = append(l.AppFiles[c.Name], AppFile{Path: f.Path, Strategy: f.Strategy, Data: f.Data})
		}
		if c.Launch == nil {
			continue
		}
		if l.AppCmds == nil {
			l.AppCmds = map[string][]string{}
		}
		l.AppCmds[c.Name] = c.Launch.Cmds
	}
	return l, nil
}

// checkAppPath accepts a file's path inside an app's folder: relative,
// clean, not the folder itself, not a template (a *.tmpl would be
// rendered over what the Clusterfile wrote).
func checkAppPath(p string) error {
	switch {
	case p == "":
		return errors.New("missing: the file's path in the app's folder")
	case !fs.ValidPath(p) || p == "." || strings.Contains(p, "\\"):
		return fmt.Errorf("%q is not a clean relative path inside the app's folder (a/b.yaml)", p)
	case strings.HasSuffix(p, ".tmpl"):
		return fmt.Errorf("%q is a template's name: give the rendered file's (without .tmpl)", p)
	}
	return nil
}

// under is the Application's launch with the Cluster's spec.cmd and
// spec.appNames over it, as sealer ranks them.
func (l Launch) under(cluster Launch) Launch {
	if cluster.Apps != nil {
		l.Apps = cluster.Apps
	}
	if cluster.Cmds != nil {
		l.Cmds = cluster.Cmds
	}
	return l
}

// isDNSName accepts a host name or a wildcard one (*.example.com), as a
// certificate names them.
func isDNSName(n string) bool {
	n = strings.TrimPrefix(n, "*.")
	if n == "" || len(n) > 253 {
		return false
	}
	for _, label := range strings.Split(n, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

func resolveSSH(base SSH, s sshSpec) (SSH, error) {
	if s.User != "" {
		base.User = s.User
	}
	if s.Port != 0 {
		base.Port = int(s.Port)
	}
	if base.Port < 1 || base.Port > 65535 {
		return SSH{}, fmt.Errorf("port %d is not a port", base.Port)
	}
	// Credentials given for a host replace the defaults as a whole: a host
	// with its own password does not also try the default key.
	if s.Password != "" || s.PrivateKey != "" {
		base.Password, base.PrivateKey, base.Passphrase = s.Password, s.PrivateKey, s.Passphrase
	} else if s.Passphrase != "" {
		base.Passphrase = s.Passphrase
	}
	if base.Passphrase != "" && base.PrivateKey == "" {
		return SSH{}, errors.New("passphrase given without privateKey")
	}
	return base, nil
}

// IsEnvName tells whether key is a shell variable name
// ([A-Za-z_][A-Za-z0-9_]*): only such keys are exported to the scripts and
// hooks that run on the nodes.
func IsEnvName(key string) bool {
	if key == "" {
		return false
	}
	for i, r := range key {
		letter := r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r == '_'
		if !letter && (i == 0 || r < '0' || r > '9') {
			return false
		}
	}
	return true
}

// checkEnvNames refuses a Clusterfile env whose keys are not shell names:
// they are exported on every node, where a key such as
// "X=1; touch /x; Y" would be a command.
func checkEnvNames(env envSpec) error {
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !IsEnvName(k) {
			return fmt.Errorf("key %q is not a variable name ([A-Za-z_][A-Za-z0-9_]*): the env is exported to the nodes' shells", k)
		}
	}
	return nil
}

// checkTaint accepts key[=value]:Effect, as kubectl taint does.
func checkTaint(t string) error {
	kv, effect, ok := strings.Cut(t, ":")
	if !ok || kv == "" {
		return fmt.Errorf("taint %q: want key[=value]:Effect", t)
	}
	switch effect {
	case "NoSchedule", "PreferNoSchedule", "NoExecute":
		return nil
	}
	return fmt.Errorf("taint %q: effect %q is not NoSchedule, PreferNoSchedule or NoExecute", t, effect)
}

// ParseIPs reads an address, or a range first-last of one family
// (10.0.0.2-10.0.0.9).
func ParseIPs(s string) ([]netip.Addr, error) {
	s = strings.TrimSpace(s)
	first, last, isRange := strings.Cut(s, "-")
	a, err := netip.ParseAddr(strings.TrimSpace(first))
	if err != nil {
		return nil, fmt.Errorf("%q is not an IP address or a range first-last", s)
	}
	if !isRange {
		return []netip.Addr{a}, nil
	}
	b, err := netip.ParseAddr(strings.TrimSpace(last))
	if err != nil || a.Is4() != b.Is4() {
		return nil, fmt.Errorf("%q is not a range of one address family (10.0.0.2-10.0.0.9)", s)
	}
	if b.Less(a) {
		return nil, fmt.Errorf("range %q ends before it starts", s)
	}
	var out []netip.Addr
	for ip := a; ; ip = ip.Next() {
		out = append(out, ip)
		if ip == b {
			return out, nil
		}
		if len(out) >= maxRange {
			return nil, fmt.Errorf("range %q holds more than %d addresses", s, maxRange)
		}
	}
}

type pluginSpec struct {
	Type  string `json:"type"`
	Phase string `json:"phase"`
	Scope any    `json:"scope"`
	Data  string `json:"data"`
}

type sealerPluginSpec struct {
	Type   string `json:"type"`
	Action string `json:"action"`
	Scope  any    `json:"scope"`
	Data   string `json:"data"`
	On     string `json:"on"`
}

// parsePlugin reads a Plugin document: one Plugin per phase it names
// (sealer's action: a|b).
func parsePlugin(raw json.RawMessage, sealer bool, fe func(string, error) error) ([]Plugin, error) {
	var spec pluginSpec
	phaseField := "spec.phase"
	if sealer {
		var s sealerPluginSpec
		if err := specOf(raw, &s); err != nil {
			return nil, fe("spec", err)
		}
		if s.On != "" {
			return nil, fe("spec.on", errors.New("selecting hosts by label is not supported; use scope"))
		}
		spec = pluginSpec{Type: s.Type, Phase: s.Action, Scope: s.Scope, Data: s.Data}
		phaseField = "spec.action"
	} else if err := specOf(raw, &spec); err != nil {
		return nil, fe("spec", err)
	}
	if !strings.EqualFold(spec.Type, "SHELL") {
		return nil, fe("spec.type", fmt.Errorf("%q is not supported (SHELL)", spec.Type))
	}
	if strings.TrimSpace(spec.Data) == "" {
		return nil, fe("spec.data", errors.New("empty: the shell script to run"))
	}
	scope, err := parseScope(spec.Scope)
	if err != nil {
		return nil, fe("spec.scope", err)
	}
	var out []Plugin
	for _, word := range strings.Split(spec.Phase, "|") {
		phase, err := normalizePhase(strings.TrimSpace(word))
		if err != nil {
			return nil, fe(phaseField, err)
		}
		if !slices.ContainsFunc(out, func(p Plugin) bool { return p.Phase == phase }) {
			out = append(out, Plugin{Type: "SHELL", Phase: phase, Scope: scope, Data: spec.Data})
		}
	}
	return out, nil
}

// normalizePhase accepts hoist's names and sealer's, new (post-install)
// and old (PostInstall, PreInit).
func normalizePhase(s string) (Phase, error) {
	key := strings.ToLower(strings.ReplaceAll(s, "-", ""))
	if p, ok := sealerActions[key]; ok {
		key = strings.ReplaceAll(string(p), "-", "")
	}
	for p, why := range notRun {
		if strings.ReplaceAll(string(p), "-", "") == key {
			return "", fmt.Errorf("%q: %s", s, why)
		}
	}
	for _, p := range Phases {
		if strings.ReplaceAll(string(p), "-", "") == key {
			return p, nil
		}
	}
	return "", fmt.Errorf("%q is not a phase (%s)", s, strings.Join(names(Phases), ", "))
}

// checkRole accepts master, node and custom roles: names of letters,
// digits, '-', '_' and '.', as sealer's roles and Kubernetes label values
// are, since HOIST_ROLES carries them to the hooks.
func checkRole(r string) error {
	if r == "" || len(r) > 63 {
		return fmt.Errorf("%q is not a role (master, node, or a name of up to 63 letters, digits, '-', '_' and '.')", r)
	}
	for i, c := range r {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || i > 0 && (c == '-' || c == '_' || c == '.')
		if !ok {
			return fmt.Errorf("%q is not a role (master, node, or a name of up to 63 letters, digits, '-', '_' and '.')", r)
		}
	}
	return nil
}

// parseScope reads roles as a list, or a string with | or , between them.
func parseScope(v any) ([]Role, error) {
	var roles []string
	switch s := v.(type) {
	case nil:
		return nil, nil
	case string:
		roles = strings.FieldsFunc(s, func(r rune) bool { return r == '|' || r == ',' || r == ' ' })
	case []any:
		for _, r := range s {
			str, ok := r.(string)
			if !ok {
				return nil, fmt.Errorf("%v is not a role", r)
			}
			roles = append(roles, str)
		}
	default:
		return nil, fmt.Errorf("%v is not a list of roles", v)
	}
	for _, r := range roles {
		if err := checkRole(r); err != nil {
			return nil, err
		}
	}
	sort.Strings(roles)
	return RolesOf(slices.Compact(roles)), nil
}

// ClusterFromFlags builds the cluster `hoist run` describes with flags:
// hosts, or the kubeconfig of an existing cluster.
func ClusterFromFlags(image, masters, nodes, kubeconfig string, ssh SSH, env []string) (*Cluster, error) {
	doc := map[string]any{
		"apiVersion": APIVersion,
		"kind":       "Cluster",
		"metadata":   map[string]any{"name": "default"},
	}
	envMap := map[string]string{}
	for _, kv := range env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("-e %q: want KEY=VALUE", kv)
		}
		envMap[k] = v
	}
	var hosts []any
	for _, group := range []struct {
		list string
		role Role
	}{{masters, RoleMaster}, {nodes, RoleNode}} {
		if strings.TrimSpace(group.list) == "" {
			continue
		}
		var ips []string
		for _, s := range strings.Split(group.list, ",") {
			ips = append(ips, strings.TrimSpace(s))
		}
		hosts = append(hosts, map[string]any{"ips": ips, "roles": []Role{group.role}})
	}
	doc["spec"] = map[string]any{
		"image": image,
		"ssh": map[string]any{"user": ssh.User, "port": ssh.Port, "password": ssh.Password,
			"privateKey": ssh.PrivateKey, "passphrase": ssh.Passphrase},
		"hosts":      hosts,
		"env":        envMap,
		"kubeconfig": kubeconfig,
	}
	data, err := json.Marshal(doc)
	if err != nil {
		return nil, err
	}
	cf, err := ParseClusterfile("flags", data)
	if err != nil {
		var fe *FieldError
		if errors.As(err, &fe) {
			return nil, fmt.Errorf("%s: %v", flagName(fe.Field), fe.Err)
		}
		return nil, err
	}
	return &cf.Cluster, nil
}

// flagName names the flag a field of the flags' Clusterfile came from.
func flagName(field string) string {
	switch {
	case strings.HasPrefix(field, "spec.hosts"):
		return "--masters/--nodes"
	case strings.HasPrefix(field, "spec.ssh"):
		return "ssh flags"
	case field == "spec.image":
		return "IMAGE"
	case field == "spec.env":
		return "-e"
	}
	return field
}
