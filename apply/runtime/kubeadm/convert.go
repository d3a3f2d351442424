package kubeadm

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// Older kubeadm configuration documents, what sealer Clusterfiles hold, are
// converted to the base image's version, v1beta4, as `kubeadm config
// migrate` of kubeadm v1.31 to v1.36 did: kubeadm v1.37, the base image's,
// no longer reads v1beta3, and none since v1.27 reads v1beta2. Importing
// kubeadm's own conversion would mean importing k8s.io/kubernetes (every
// staging module replaced, client-go and apimachinery moved to v0.37 under
// Helm), so the conversion is written here, field by field, from the list
// of changes of kubeadm's API documentation (package docs of v1beta3 and
// v1beta4) and kubeadm v1.36's conversion functions:
//
// v1beta2 to v1beta3:
//   - ClusterConfiguration.useHyperKubeImage is gone: false is dropped;
//     true cannot be converted (there are no hyperkube images).
//   - ClusterConfiguration.dns.type is gone (CoreDNS is the only DNS):
//     "CoreDNS" is dropped; any other type cannot be converted.
//
// v1beta3 to v1beta4:
//   - extraArgs of apiServer, controllerManager, scheduler and etcd.local,
//     and nodeRegistration.kubeletExtraArgs, go from a map to a list of
//     {name, value}, sorted by name.
//   - ClusterConfiguration.apiServer.timeoutForControlPlane becomes
//     timeouts.controlPlaneComponentHealthCheck of both InitConfiguration
//     and JoinConfiguration (a zero timeout is dropped).
//   - JoinConfiguration.discovery.timeout becomes timeouts.discovery.
//   - Fields v1beta4 added keep their defaults: imagePullSerial (true, what
//     v1beta3 did) and etcd.external.httpEndpoints (the endpoints).
//
// A field that the document's version does not have, or a value of the
// wrong type, is refused with its path, as `kubeadm config validate`
// refuses it (sealer dropped it silently). A criSocket of dockershim,
// which Kubernetes removed in 1.24 and sealer's documents still show, is
// refused too: nothing would answer on it.

const (
	apiV1beta2 = "kubeadm.k8s.io/v1beta2"
	apiV1beta3 = "kubeadm.k8s.io/v1beta3"
)

// convert returns what a Clusterfile's kubeadm document becomes: itself,
// unless it is a v1beta2 or v1beta3 one; then its v1beta4 form, followed
// by the partial documents that receive the fields v1beta4 moved to
// another kind.
func convert(doc map[string]any) ([]map[string]any, error) {
	api, _ := doc["apiVersion"].(string)
	kind, _ := doc["kind"].(string)
	switch {
	case api == apiV1beta2 || api == apiV1beta3:
	case strings.HasPrefix(api, "kubeadm.k8s.io/") && api != kubeadmAPI:
		return nil, fmt.Errorf("apiVersion %s cannot be converted: hoist converts %s and %s to the image's %s", api, apiV1beta2, apiV1beta3, kubeadmAPI)
	default:
		return []map[string]any{doc}, nil
	}
	s, ok := schemaOf(api)[kind]
	if !ok {
		return nil, fmt.Errorf("kind %q is not a kind of %s (%s, %s, %s)", kind, api, KindInit, KindCluster, KindJoin)
	}
	if err := check(api, "", doc, s); err != nil {
		return nil, err
	}
	out := []map[string]any{doc}
	switch kind {
	case KindInit:
		if err := convertNodeRegistration(doc); err != nil {
			return nil, err
		}
	case KindJoin:
		if err := convertNodeRegistration(doc); err != nil {
			return nil, err
		}
		if d := sub(doc, "discovery"); d != nil {
			if t, ok := d["timeout"]; ok {
				delete(d, "timeout")
				if t != nil {
					child(doc, "timeouts")["discovery"] = t
				}
			}
		}
	case KindCluster:
		if api == apiV1beta2 {
			if err := dropV1beta2Cluster(doc); err != nil {
				return nil, err
			}
		}
		for _, component := range [][]string{{"apiServer"}, {"controllerManager"}, {"scheduler"}, {"etcd", "local"}} {
			toArgs(sub(doc, component...), "extraArgs")
		}
		if a := sub(doc, "apiServer"); a != nil {
			t, ok := a["timeoutForControlPlane"].(string)
			delete(a, "timeoutForControlPlane")
			// check parsed it; kubeadm moves a timeout that is not zero.
			if d, _ := time.ParseDuration(t); ok && d != 0 {
				for _, k := range []string{KindInit, KindJoin} {
					out = append(out, map[string]any{"apiVersion": kubeadmAPI, "kind": k,
						"timeouts": map[string]any{"controlPlaneComponentHealthCheck": t}})
				}
			}
		}
	}
	doc["apiVersion"] = kubeadmAPI
	return out, nil
}

func convertNodeRegistration(doc map[string]any) error {
	reg := sub(doc, "nodeRegistration")
	if reg == nil {
		return nil
	}
	if s, _ := reg["criSocket"].(string); strings.HasSuffix(s, "dockershim.sock") {
		return fmt.Errorf("nodeRegistration.criSocket: %q is dockershim's, which Kubernetes removed in 1.24: remove the field (the image runs containerd, %s)", s, DefaultCRISocket)
	}
	toArgs(reg, "kubeletExtraArgs")
	return nil
}

func dropV1beta2Cluster(doc map[string]any) error {
	if hyper, _ := doc["useHyperKubeImage"].(bool); hyper {
		return fmt.Errorf("useHyperKubeImage: true cannot be converted: kubeadm dropped hyperkube images in %s; remove the field", apiV1beta3)
	}
	delete(doc, "useHyperKubeImage")
	if dns := sub(doc, "dns"); dns != nil {
		if t, _ := dns["type"].(string); t != "" && t != "CoreDNS" {
			return fmt.Errorf("dns.type: %q cannot be converted: CoreDNS is the only DNS kubeadm installs since %s; remove the field", t, apiV1beta3)
		}
		delete(dns, "type")
	}
	return nil
}

// toArgs turns m[key], a map of flag names to values, into v1beta4's list
// of {name, value}, sorted by name as kubeadm's conversion sorts it.
func toArgs(m map[string]any, key string) {
	args, ok := m[key].(map[string]any)
	if !ok {
		return
	}
	names := make([]string, 0, len(args))
	for name := range args {
		names = append(names, name)
	}
	slices.Sort(names)
	list := make([]any, 0, len(names))
	for _, name := range names {
		list = append(list, map[string]any{"name": name, "value": args[name]})
	}
	m[key] = list
}

// sub is the map at path under m, nil when there is none.
func sub(m map[string]any, path ...string) map[string]any {
	for _, p := range path {
		next, ok := m[p].(map[string]any)
		if !ok {
			return nil
		}
		m = next
	}
	return m
}

// schema is what a field of a kubeadm document may hold: its kind, and
// for an object its fields, for a list or a map its elements.
type schema struct {
	kind   string // string, boolean, integer, duration, time, list, map, object
	fields map[string]*schema
	elem   *schema
}

func object(fields map[string]*schema) *schema { return &schema{kind: "object", fields: fields} }
func listOf(elem *schema) *schema              { return &schema{kind: "list", elem: elem} }

// with is fields plus more: the inlined structs of kubeadm's types.
func with(fields map[string]*schema, more map[string]*schema) map[string]*schema {
	out := map[string]*schema{}
	for _, m := range []map[string]*schema{fields, more} {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

// schemaOf is the schema of each kind of a version, v1beta2 or v1beta3,
// from kubeadm's types of that version (k8s.io/kubernetes
// cmd/kubeadm/app/apis/kubeadm/v1beta3 in v1.36; v1beta2 as v1.26 and
// sealer, which vendors it, have it).
func schemaOf(api string) map[string]*schema {
	v1beta2 := api == apiV1beta2
	str := &schema{kind: "string"}
	boolean := &schema{kind: "boolean"}
	integer := &schema{kind: "integer"}
	duration := &schema{kind: "duration"}
	timestamp := &schema{kind: "time"}
	strList := listOf(str)
	strMap := &schema{kind: "map", elem: str}
	imageMeta := map[string]*schema{"imageRepository": str, "imageTag": str}
	apiEndpoint := object(map[string]*schema{"advertiseAddress": str, "bindPort": integer})
	taint := object(map[string]*schema{"key": str, "value": str, "effect": str, "timeAdded": timestamp})
	reg := map[string]*schema{"name": str, "criSocket": str, "taints": listOf(taint), "kubeletExtraArgs": strMap,
		"ignorePreflightErrors": strList}
	patches := object(map[string]*schema{"directory": str})
	mount := object(map[string]*schema{"name": str, "hostPath": str, "mountPath": str, "readOnly": boolean, "pathType": str})
	component := map[string]*schema{"extraArgs": strMap, "extraVolumes": listOf(mount)}
	token := object(map[string]*schema{"token": str, "description": str, "ttl": duration, "expires": timestamp,
		"usages": strList, "groups": strList})
	dns := imageMeta
	init := map[string]*schema{"bootstrapTokens": listOf(token), "localAPIEndpoint": apiEndpoint, "certificateKey": str}
	join := map[string]*schema{"caCertPath": str,
		"discovery": object(map[string]*schema{
			"bootstrapToken": object(map[string]*schema{"token": str, "apiServerEndpoint": str, "caCertHashes": strList,
				"unsafeSkipCAVerification": boolean}),
			"file":              object(map[string]*schema{"kubeConfigPath": str}),
			"tlsBootstrapToken": str,
			"timeout":           duration,
		}),
		"controlPlane": object(map[string]*schema{"localAPIEndpoint": apiEndpoint, "certificateKey": str}),
	}
	cluster := map[string]*schema{
		"etcd": object(map[string]*schema{
			"local": object(with(imageMeta, map[string]*schema{"dataDir": str, "extraArgs": strMap,
				"serverCertSANs": strList, "peerCertSANs": strList})),
			"external": object(map[string]*schema{"endpoints": strList, "caFile": str, "certFile": str, "keyFile": str}),
		}),
		"networking":           object(map[string]*schema{"serviceSubnet": str, "podSubnet": str, "dnsDomain": str}),
		"kubernetesVersion":    str,
		"controlPlaneEndpoint": str,
		"apiServer":            object(with(component, map[string]*schema{"certSANs": strList, "timeoutForControlPlane": duration})),
		"controllerManager":    object(component),
		"scheduler":            object(component),
		"certificatesDir":      str,
		"imageRepository":      str,
		"featureGates":         &schema{kind: "map", elem: boolean},
		"clusterName":          str,
	}
	if v1beta2 {
		cluster["useHyperKubeImage"] = boolean
		dns = with(imageMeta, map[string]*schema{"type": str})
	} else {
		reg["imagePullPolicy"] = str
		for _, kind := range []map[string]*schema{init, join} {
			kind["skipPhases"] = strList
			kind["patches"] = patches
		}
	}
	cluster["dns"] = object(dns)
	init["nodeRegistration"] = object(reg)
	join["nodeRegistration"] = object(reg)
	typeMeta := map[string]*schema{"apiVersion": str, "kind": str}
	return map[string]*schema{
		KindInit:    object(with(typeMeta, init)),
		KindCluster: object(with(typeMeta, cluster)),
		KindJoin:    object(with(typeMeta, join)),
	}
}

// laterFields are fields a later version added (or an earlier one had):
// the version to write a document in that has them.
var laterFields = map[string]string{
	"skipPhases": apiV1beta3, "patches": apiV1beta3, "imagePullPolicy": apiV1beta3,
	"timeouts": kubeadmAPI, "dryRun": kubeadmAPI, "extraEnvs": kubeadmAPI, "encryptionAlgorithm": kubeadmAPI,
	"certificateValidityPeriod": kubeadmAPI, "caCertificateValidityPeriod": kubeadmAPI, "proxy": kubeadmAPI,
	"disabled": kubeadmAPI, "imagePullSerial": kubeadmAPI, "httpEndpoints": kubeadmAPI,
	"useHyperKubeImage": apiV1beta2, "type": apiV1beta2,
}

// check refuses a value that the schema does not allow, naming its path
// in the document. A null is allowed anywhere: kubeadm reads it as unset.
func check(api, path string, v any, s *schema) error {
	if v == nil {
		return nil
	}
	bad := func(want string) error {
		switch v.(type) {
		case float64, bool:
			if s.kind == "string" {
				want += ": quote it"
			}
		}
		return fmt.Errorf("%s: %s is not %s", at(path), show(v), want)
	}
	switch s.kind {
	case "string":
		if _, ok := v.(string); !ok {
			return bad("a string")
		}
	case "boolean":
		if _, ok := v.(bool); !ok {
			return bad("true or false")
		}
	case "integer":
		if n, ok := v.(float64); !ok || n != math.Trunc(n) || n < math.MinInt32 || n > math.MaxInt32 {
			return bad("an integer")
		}
	case "duration":
		if d, ok := v.(string); !ok || !isDuration(d) {
			return bad("a duration (such as 4m0s)")
		}
	case "time":
		if t, ok := v.(string); !ok || !isTime(t) {
			return bad("a time (RFC 3339, such as 2030-01-02T15:04:05Z)")
		}
	case "list":
		list, ok := v.([]any)
		if !ok {
			return bad("a list")
		}
		for i, e := range list {
			if err := check(api, fmt.Sprintf("%s[%d]", path, i), e, s.elem); err != nil {
				return err
			}
		}
	case "map", "object":
		m, ok := v.(map[string]any)
		if !ok {
			return bad("a map")
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		// The first error is the same from one run to the next.
		slices.Sort(keys)
		for _, k := range keys {
			p := k
			if path != "" {
				p = path + "." + k
			}
			e := s.elem
			if s.kind == "object" {
				if e = s.fields[k]; e == nil {
					return unknownField(api, p, k, s)
				}
			}
			if err := check(api, p, m[k], e); err != nil {
				return err
			}
		}
	}
	return nil
}

// unknownField is the error of a field at path that s, the object that
// holds it, does not have.
func unknownField(api, path, name string, s *schema) error {
	err := fmt.Sprintf("%s: no such field in %s", path, api)
	for known := range s.fields {
		if strings.EqualFold(known, name) {
			return fmt.Errorf("%s: did you mean %q?", err, known)
		}
	}
	if v, ok := laterFields[name]; ok && v != api {
		return fmt.Errorf("%s (it is a field of %s)", err, v)
	}
	return fmt.Errorf("%s", err)
}

func isDuration(s string) bool {
	_, err := time.ParseDuration(s)
	return err == nil
}

func isTime(s string) bool {
	_, err := time.Parse(time.RFC3339, s)
	return err == nil
}

func at(path string) string {
	if path == "" {
		return "document"
	}
	return path
}

// show is a value as an error quotes it, cut short: documents come from
// users, and a fuzzer.
func show(v any) string {
	data, _ := json.Marshal(v)
	if len(data) > 40 {
		return string(data[:40]) + "..."
	}
	return string(data)
}
