// Package metadata is the schema of the hoist metadata carried by every cluster
// image (DESIGN.md section 3): one JSON document under the manifest annotation
// io.hoist.image.metadata, and the image type as a config label.
//
// It is a leaf package of clusterimage so that the Kubefile front end, which
// must stay free of image-store dependencies, can produce the same value the
// store reads back.
package metadata

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"

	"github.com/Masterminds/semver/v3"
)

const (
	// SchemaVersion is the version written by this hoist.
	SchemaVersion = "v1alpha1"
	// Annotation holds the whole metadata document on the image manifest (and
	// as a config label).
	Annotation = "io.hoist.image.metadata"
	// TypeLabel holds the image type alone, so that `hoist images` and other
	// tools can filter without decoding the document.
	TypeLabel = "io.hoist.image.type"
	// KubernetesVersionLabel is the config label of a base image that
	// brings Kubernetes up: the version it installs (v1.37.2). Images built
	// FROM it inherit it, and their charts are rendered for it.
	KubernetesVersionLabel = "io.hoist.kubernetes.version"
)

// ImageType is what an image is for: TypeCluster or TypeApp. A document read
// back may hold any other string, which Validate rejects.
type ImageType string

// UnmarshalJSON decodes as a plain string does, so that a document whose type
// is not a string fails with the message it always had ("of type string").
func (t *ImageType) UnmarshalJSON(b []byte) error { return json.Unmarshal(b, (*string)(t)) }

// Image types.
const (
	TypeCluster ImageType = "cluster" // brings a cluster up
	TypeApp     ImageType = "app"     // installed into an existing cluster
)

// AppType is how an app is installed; it selects the launcher at apply time.
type AppType string

// UnmarshalJSON decodes as a plain string does, for the same reason as
// ImageType's.
func (t *AppType) UnmarshalJSON(b []byte) error { return json.Unmarshal(b, (*string)(t)) }

// App types, detected from the app's files at build time.
const (
	AppHelm      AppType = "helm"
	AppManifests AppType = "manifests"
	AppShell     AppType = "shell"
)

// Metadata is the document stored under Annotation. Every list and map is
// always present in JSON (never null), so consumers need no nil checks.
type Metadata struct {
	SchemaVersion string            `json:"schemaVersion"`
	Type          ImageType         `json:"type"`
	Apps          []App             `json:"apps"`
	Launch        Launch            `json:"launch"`
	Env           map[string]string `json:"env"`
	KubeVersion   string            `json:"kubeVersion"`
	// RenderKubeVersion is the Kubernetes version (v1.37.2) the image's
	// charts were rendered for when its images were found; "" in images
	// built before hoist recorded it.
	RenderKubeVersion string   `json:"renderKubeVersion"`
	CNI               []string `json:"cni"`
	CSI               []string `json:"csi"`
	Images            []Image  `json:"images"`
}

// App is one application of the image, installed from apps/<name>/.
type App struct {
	Name  string            `json:"name"`
	Type  AppType           `json:"type"`
	Files []string          `json:"files"`
	Cmds  []string          `json:"cmds"`
	Env   map[string]string `json:"env"`
}

// Launch is what apply runs once the cluster is up: the apps in order, then
// the commands on the first master.
type Launch struct {
	Apps []string `json:"apps"`
	Cmds []string `json:"cmds"`
	// Cmd is the image's CMD (sealer's cluster command), the base image's
	// included: what an image built FROM this one inherits (CMDS are not
	// inherited). A build writes it as the first commands of Cmds, which
	// alone say what runs (a Clusterfile may replace them). Images built
	// before hoist recorded it have none.
	Cmd []string `json:"cmd"`
}

// Image is one bundled container image.
type Image struct {
	Ref      string `json:"ref"`
	Digest   string `json:"digest"`
	Platform string `json:"platform"`
	FoundIn  string `json:"foundIn"`
}

// kubeVersion is how RenderKubeVersion is written: v, major, minor, patch,
// and an optional pre-release or build part.
var kubeVersion = regexp.MustCompile(`^v[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.+-]+)?$`)

// New returns empty metadata of the given type.
func New(imageType ImageType) *Metadata {
	m := &Metadata{SchemaVersion: SchemaVersion, Type: imageType}
	m.normalize()
	return m
}

// App returns the app with the given name, or nil.
func (m *Metadata) App(name string) *App {
	for i := range m.Apps {
		if m.Apps[i].Name == name {
			return &m.Apps[i]
		}
	}
	return nil
}

// normalize replaces nil lists and maps with empty ones.
func (m *Metadata) normalize() {
	if m.Apps == nil {
		m.Apps = []App{}
	}
	for i := range m.Apps {
		a := &m.Apps[i]
		if a.Files == nil {
			a.Files = []string{}
		}
		if a.Cmds == nil {
			a.Cmds = []string{}
		}
		if a.Env == nil {
			a.Env = map[string]string{}
		}
	}
	if m.Launch.Apps == nil {
		m.Launch.Apps = []string{}
	}
	if m.Launch.Cmds == nil {
		m.Launch.Cmds = []string{}
	}
	if m.Launch.Cmd == nil {
		m.Launch.Cmd = []string{}
	}
	if m.Env == nil {
		m.Env = map[string]string{}
	}
	if m.CNI == nil {
		m.CNI = []string{}
	}
	if m.CSI == nil {
		m.CSI = []string{}
	}
	if m.Images == nil {
		m.Images = []Image{}
	}
}

// MarshalJSON writes the document with every list and map present.
func (m Metadata) MarshalJSON() ([]byte, error) {
	m.normalize()
	type plain Metadata // without the method, to avoid recursion
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	// Escaping here would survive an outer encoder that does not escape.
	enc.SetEscapeHTML(false)
	if err := enc.Encode(plain(m)); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// Encode is the annotation value: compact JSON, with version ranges left
// readable (json.Marshal would write > as \u003e).
func (m *Metadata) Encode() ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(m); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// appName is what an app may be called: a Helm release name (lower-case
// letters, digits and '-', at most 53 characters). The name is a folder
// of the rootfs too (apps/<name>/), so a name from an image never leaves it.
var appName = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`)

// MaxAppName is the longest app name: Helm's limit on a release name.
const MaxAppName = 53

// IsAppName tells whether name may name an app.
func IsAppName(name string) bool { return len(name) <= MaxAppName && appName.MatchString(name) }

// KubeVersionAllows tells whether a KUBEVERSION range allows a Kubernetes
// version. Pre-release and build parts (v1.37.2-gke.1) do not take a
// cluster out of a range such as >=1.28. The error is a range or version
// that does not parse. The build's warning and apply's refusal both ask it.
func KubeVersionAllows(kubeVersion, version string) (bool, error) {
	c, err := semver.NewConstraint(kubeVersion)
	if err != nil {
		return false, fmt.Errorf("KUBEVERSION %q: %w", kubeVersion, err)
	}
	v, err := semver.NewVersion(version)
	if err != nil {
		return false, fmt.Errorf("version %q: %w", version, err)
	}
	return c.Check(semver.New(v.Major(), v.Minor(), v.Patch(), "", "")), nil
}

// Decode reads a metadata document, as found under Annotation, and checks it.
func Decode(data []byte) (*Metadata, error) {
	var m Metadata
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("decoding %s: %w", Annotation, err)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	m.normalize()
	return &m, nil
}

// Validate checks the invariants every reader relies on.
func (m *Metadata) Validate() error {
	if m.SchemaVersion != SchemaVersion {
		return fmt.Errorf("metadata schemaVersion %q is not supported (want %q)", m.SchemaVersion, SchemaVersion)
	}
	if m.Type != TypeCluster && m.Type != TypeApp {
		return fmt.Errorf("metadata type %q: must be %q or %q", m.Type, TypeCluster, TypeApp)
	}
	seen := map[string]bool{}
	for _, a := range m.Apps {
		if a.Name == "" {
			return fmt.Errorf("metadata: an app has no name")
		}
		if !IsAppName(a.Name) {
			return fmt.Errorf("metadata: app name %q: want lower-case letters, digits and '-', at most %d characters", a.Name, MaxAppName)
		}
		if seen[a.Name] {
			return fmt.Errorf("metadata: app %q appears twice", a.Name)
		}
		seen[a.Name] = true
		if !slices.Contains([]AppType{AppHelm, AppManifests, AppShell}, a.Type) {
			return fmt.Errorf("metadata: app %q has unknown type %q", a.Name, a.Type)
		}
	}
	for _, name := range m.Launch.Apps {
		if !seen[name] {
			return fmt.Errorf("metadata: launch names app %q, which the image does not hold", name)
		}
	}
	if m.RenderKubeVersion != "" && !kubeVersion.MatchString(m.RenderKubeVersion) {
		return fmt.Errorf("metadata renderKubeVersion %q: not a Kubernetes version such as v1.37.2", m.RenderKubeVersion)
	}
	for _, list := range [][]string{m.CNI, m.CSI} {
		for _, name := range list {
			if !seen[name] {
				return fmt.Errorf("metadata: plugin app %q is not among the apps", name)
			}
		}
	}
	return nil
}
