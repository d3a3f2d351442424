package clusterimage

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"go.podman.io/common/libimage"
	"go.podman.io/image/v5/signature"
	"go.podman.io/image/v5/types"
	"go.podman.io/storage"
	"go.podman.io/storage/pkg/ioutils"

	"github.com/hoistdev/hoist/layout"
)

// Storage drivers hoist uses.
const (
	DriverOverlay = "overlay"
	DriverVFS     = "vfs"
)

// Store is hoist's image store: containers/storage under --root, with the
// signature policy, registries.conf and auth file in hoist's own config
// directory, so that nothing is needed in /etc/containers.
type Store struct {
	Root      string
	ConfigDir string
	Driver    string
	Storage   storage.Store
	Runtime   *libimage.Runtime
	sys       types.SystemContext
}

// OpenOptions choose how a store is opened.
type OpenOptions struct {
	// Driver is "overlay" or "vfs"; empty means overlay where the kernel
	// allows it. A store keeps the driver it was created with.
	Driver string
}

// Open opens (creating when needed) the store under root.
func Open(root string, opts OpenOptions) (*Store, error) {
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	s := &Store{Root: root, ConfigDir: layout.Local{Root: root}.Config()}
	for _, dir := range []string{root, s.ConfigDir, s.TmpDir()} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("image store %s: %w", root, err)
		}
	}
	if err := s.writeConfig(); err != nil {
		return nil, err
	}
	if s.Driver, err = s.chooseDriver(opts.Driver); err != nil {
		return nil, err
	}
	s.Storage, err = storage.GetStore(s.storeOptions(s.Driver))
	if err != nil {
		return nil, fmt.Errorf("image store %s (%s driver): %w", root, s.Driver, err)
	}
	s.sys = types.SystemContext{
		SignaturePolicyPath:         s.PolicyPath(),
		SystemRegistriesConfPath:    filepath.Join(s.ConfigDir, "registries.conf"),
		SystemRegistriesConfDirPath: filepath.Join(s.ConfigDir, "registries.conf.d"),
		RegistriesDirPath:           filepath.Join(s.ConfigDir, "registries.d"),
		AuthFilePath:                s.AuthFile(),
		BigFilesTemporaryDir:        s.TmpDir(),
		BlobInfoCacheDir:            s.local().BlobInfoCache(),
	}
	sys := s.sys
	s.Runtime, err = libimage.RuntimeFromStore(s.Storage, &libimage.RuntimeOptions{SystemContext: &sys})
	if err != nil {
		s.Storage.Shutdown(false)
		return nil, err
	}
	return s, nil
}

// Close releases the store. Layers a command mounted are unmounted.
func (s *Store) Close() error {
	_, err := s.Storage.Shutdown(false)
	return err
}

// SystemContext returns a copy of the context for containers/image calls.
func (s *Store) SystemContext() *types.SystemContext {
	sys := s.sys
	return &sys
}

// PolicyPath is hoist's signature policy.
func (s *Store) PolicyPath() string { return filepath.Join(s.ConfigDir, "policy.json") }

// policyContext is hoist's signature policy, for a copy into the store;
// the caller destroys it.
func (s *Store) policyContext() (*signature.PolicyContext, error) {
	policy, err := signature.NewPolicyFromFile(s.PolicyPath())
	if err != nil {
		return nil, err
	}
	return signature.NewPolicyContext(policy)
}

// AuthFile holds registry credentials (containers auth.json format, 0600).
func (s *Store) AuthFile() string { return filepath.Join(s.ConfigDir, "auth.json") }

// TmpDir is where large temporary files of the store go.
func (s *Store) TmpDir() string { return s.local().Tmp() }

// local names the paths under the store's root, which is hoist's --root.
func (s *Store) local() layout.Local { return layout.Local{Root: s.Root} }

// runRoot is the store's transient state (locks, mount counts). It lives on
// /run so that a reboot clears it, as it clears the mounts it counts; a
// store root gets its own.
func (s *Store) runRoot() string { return RunRoot(s.Root) }

// RunRoot is the transient state directory of the store at root: tests
// remove it with the root they made.
func RunRoot(root string) string {
	sum := sha256.Sum256([]byte(root))
	base := "/run"
	if info, err := os.Stat(base); err != nil || !info.IsDir() {
		base = os.TempDir()
	}
	return filepath.Join(base, "hoist", hex.EncodeToString(sum[:8]))
}

func (s *Store) storeOptions(driver string) storage.StoreOptions {
	return storage.StoreOptions{
		GraphRoot:       s.local().Storage(),
		RunRoot:         s.runRoot(),
		GraphDriverName: driver,
		// The overlay driver bind-mounts its home by default; hard links
		// cannot cross a mount, and the registry layer is staged from hard
		// links to the registry cache next to it.
		GraphDriverOptions: driverOptions(driver),
	}
}

func driverOptions(driver string) []string {
	if driver == DriverOverlay {
		return []string{"overlay.skip_mount_home=true"}
	}
	return nil
}

func (s *Store) writeConfig() error {
	files := map[string]string{
		// Images are checked by digest along the way; signature checking is
		// a matter for a later policy option, not an implicit /etc file.
		"policy.json": `{"default":[{"type":"insecureAcceptAnything"}]}` + "\n",
		// Short names (nginx) mean docker.io, as in docker, and never depend
		// on which registries a machine happens to list.
		"registries.conf": "unqualified-search-registries = [\"docker.io\"]\nshort-name-mode = \"disabled\"\n",
	}
	for name, content := range files {
		path := filepath.Join(s.ConfigDir, name)
		if old, err := os.ReadFile(path); err == nil && string(old) == content {
			continue
		}
		if err := ioutils.AtomicWriteFile(path, []byte(content), 0o644); err != nil {
			return fmt.Errorf("writing %s: %w", path, err)
		}
	}
	return nil
}

// chooseDriver returns the driver the store was created with, or picks one
// for a new store and remembers it: switching drivers would hide every
// image stored so far.
func (s *Store) chooseDriver(want string) (string, error) {
	if want != "" && want != DriverOverlay && want != DriverVFS {
		return "", fmt.Errorf("storage driver %q: use %s or %s", want, DriverOverlay, DriverVFS)
	}
	marker := s.local().StorageDriver()
	data, err := os.ReadFile(marker)
	switch {
	case err == nil:
		have := strings.TrimSpace(string(data))
		if want != "" && want != have {
			return "", fmt.Errorf("the image store %s uses the %s storage driver; it cannot switch to %s (use another --root)", s.Root, have, want)
		}
		return have, nil
	case !errors.Is(err, fs.ErrNotExist):
		return "", err
	}
	driver := want
	if driver == "" {
		driver = DriverVFS
		if st, err := storage.GetStore(s.storeOptions(DriverOverlay)); err == nil {
			st.Shutdown(true)
			driver = DriverOverlay
		} else {
			// A failed overlay probe leaves an empty graph root behind.
			os.RemoveAll(s.local().Storage())
		}
	}
	if err := ioutils.AtomicWriteFile(marker, []byte(driver+"\n"), 0o644); err != nil {
		return "", err
	}
	return driver, nil
}
