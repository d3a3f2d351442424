// The `hoist node` commands that apply runs on the nodes, as typed command
// lines: apply fills one and sends its Args; the node's command binds its
// flags to the same Flags table and calls Run.

package agent

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hoistdev/hoist/layout"
)

// UnpackCmd is `hoist node unpack`: the zstd tar on stdin becomes the tree
// at Dest (see Unpack).
type UnpackCmd struct {
	Dest         string
	Digest       string // of the content, recorded in the tree
	StreamDigest string // sha256:<hex> of the stream
}

func (c *UnpackCmd) Flags() []Flag {
	return []Flag{
		{"dest", "directory to fill", &c.Dest},
		{"digest", "digest of the content, recorded in the tree", &c.Digest},
		{"stream-digest", "sha256 of the stream, checked before the tree is put in place", &c.StreamDigest},
	}
}

func (c UnpackCmd) Args() []string { return commandLine("unpack", c.Flags()) }

// Run unpacks the stream read from in, the command's stdin.
func (c UnpackCmd) Run(in io.Reader) error {
	if c.Dest == "" || c.Digest == "" {
		return errors.New("--dest and --digest are required")
	}
	if f, ok := in.(*os.File); ok {
		// sshd feeds the stream through a pipe in 32 KiB packets; a
		// larger pipe wakes this process less often.
		unix.FcntlInt(f.Fd(), unix.F_SETPIPE_SZ, 1<<20)
	}
	return Unpack(in, c.Dest, c.Digest, c.StreamDigest)
}

// BlobsCmd is `hoist node blobs`: which of the files listed on stdin
// (BlobRequest: registry blobs, and large files by path) the tree at
// Rootfs holds, as regular files of the size listed. Apply sends a new tree
// without them (see LinkFrame); unpack checks each one's sha256.
type BlobsCmd struct {
	Rootfs string
}

func (c *BlobsCmd) Flags() []Flag {
	return []Flag{
		{"rootfs", "the tree whose registry blobs are asked about", &c.Rootfs},
	}
}

func (c BlobsCmd) Args() []string { return commandLine("blobs", c.Flags()) }

// Run writes to out the hex sha256 of each blob of the request read from
// in that the tree holds, one a line (what ParseHeldBlobs reads). A tree
// that is not there holds none.
func (c BlobsCmd) Run(in io.Reader, out io.Writer) error {
	if c.Rootfs == "" {
		return errors.New("--rootfs is required")
	}
	data, err := io.ReadAll(io.LimitReader(in, maxLinksFrame+1))
	if err != nil {
		return fmt.Errorf("reading the blobs asked about: %w", err)
	}
	if len(data) > maxLinksFrame {
		return fmt.Errorf("more than %d bytes of blobs asked about", maxLinksFrame)
	}
	wanted, err := parseLinks(append([]byte(linksHeader+"\n"), data...))
	if err != nil {
		return err
	}
	root, err := os.OpenRoot(c.Rootfs)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer root.Close()
	w := bufio.NewWriter(out)
	for _, b := range wanted {
		if info, err := root.Lstat(b.Rel()); err == nil && info.Mode().IsRegular() && info.Size() == b.Size {
			fmt.Fprintln(w, b.Key())
		}
	}
	return w.Flush()
}

// BlobRequest is what BlobsCmd reads: the blobs of segs, one
// "<sha256 hex> <size> <octal mode>" line each.
func BlobRequest(segs []Segment) []byte {
	return bytes.TrimPrefix(LinkFrame(segs)[8:], []byte(linksHeader+"\n"))
}

// ParseHeldBlobs reads a node's answer to BlobsCmd, which apply does not
// trust: every line the Key of a file asked about (a blob's hex sha256, a
// file's quoted path), none twice, the answer ending with a newline (or
// empty). It returns the set held, by Key.
func ParseHeldBlobs(answer []byte, asked map[string]bool) (map[string]bool, error) {
	held := map[string]bool{}
	if len(answer) == 0 {
		return held, nil
	}
	text, ok := strings.CutSuffix(string(answer), "\n")
	if !ok {
		return nil, errors.New("the node's list of blobs does not end with a newline")
	}
	for line := range strings.SplitSeq(text, "\n") {
		if !asked[line] || held[line] {
			return nil, fmt.Errorf("the node's list of blobs has %q: not a sha256 asked about, or twice", trimForError(line))
		}
		held[line] = true
	}
	return held, nil
}

// trimForError keeps a node's bad answer short in an error.
func trimForError(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

// DigestCmd is `hoist node digest FILE`: apply asks it whether the hoist
// binary on a node is the one it would install.
type DigestCmd struct {
	File string // the positional argument
}

// Flags is empty: the command has none, only its FILE.
func (c *DigestCmd) Flags() []Flag { return nil }

func (c DigestCmd) Args() []string { return append(commandLine("digest", c.Flags()), "--", c.File) }

// Run returns the file's FileDigest.
func (c DigestCmd) Run() (string, error) { return FileDigest(c.File) }

// FileDigest is the sha256 of a file, hex.
func FileDigest(file string) (string, error) {
	f, err := os.Open(file)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("reading %s: %w", file, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// RegistryStartCmd is `hoist node registry start`: the cluster registry as
// a service of the node (see Service), serving Root.
type RegistryStartCmd struct {
	Cluster  string
	StateDir string // the service's pid file and log, without systemd
	Root     string // the registry data to serve
	Listen   string // the node's cluster address
	Port     int
	Cert     string
	Key      string
}

func (c *RegistryStartCmd) Flags() []Flag {
	return []Flag{
		{"cluster", "cluster name", &c.Cluster},
		{"state-dir", "directory of the pid file and log", &c.StateDir},
		{"root", "registry directory to serve", &c.Root},
		{"port", "port", &c.Port},
		{"listen", "the node's cluster address, the only one the registry listens on", &c.Listen},
		{"tls-cert", "certificate", &c.Cert},
		{"tls-key", "key", &c.Key},
	}
}

func (c RegistryStartCmd) Args() []string { return commandLine("registry start", c.Flags()) }

// Run starts the registry, or restarts it when its command changed, and
// returns once it accepts connections.
func (c RegistryStartCmd) Run(ctx context.Context) error {
	// The node's cluster address only: the registry is for the cluster's
	// nodes, not for every network the machine is on.
	ip, err := netip.ParseAddr(c.Listen)
	if err != nil || ip.IsUnspecified() {
		return fmt.Errorf("--listen %q: want the node's cluster address", c.Listen)
	}
	addr := net.JoinHostPort(ip.String(), strconv.Itoa(c.Port))
	svc, err := registryService(c.Cluster, c.StateDir)
	if err != nil {
		return err
	}
	// Any change to these words rewrites the unit, which restarts the
	// registry of every cluster applied again.
	svc.Command = []string{svc.Self, "registry", "serve", "--root", c.Root, "--addr", addr, "--tls-cert", c.Cert, "--tls-key", c.Key}
	if err := svc.Start(ctx); err != nil {
		return err
	}
	// Ready when it accepts connections; a registry that dies at once (a
	// port taken) fails the step here, not at the first pull.
	deadline := time.Now().Add(20 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			conn.Close()
			return nil
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(svc.logFile())
			return fmt.Errorf("the registry does not answer on %s: %v\n%s", addr, err, tail(string(log), 1500))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// RegistryStopCmd is `hoist node registry stop`.
type RegistryStopCmd struct {
	Cluster  string
	StateDir string
}

func (c *RegistryStopCmd) Flags() []Flag {
	return []Flag{
		{"cluster", "cluster name", &c.Cluster},
		{"state-dir", "directory of the pid file and log", &c.StateDir},
	}
}

func (c RegistryStopCmd) Args() []string { return commandLine("registry stop", c.Flags()) }

// Run stops the registry; one that does not run is not an error.
func (c RegistryStopCmd) Run(ctx context.Context) error {
	svc, err := registryService(c.Cluster, c.StateDir)
	if err != nil {
		return err
	}
	return svc.Stop(ctx)
}

// RegistryServiceName is the service that serves a cluster's registry on
// its registry nodes: what `hoist node service status` asks about.
func RegistryServiceName(cluster string) string { return "hoist-registry-" + cluster }

// registryService is the registry's service without its command, enough to
// stop it or find its log.
func registryService(cluster, stateDir string) (Service, error) {
	// The name becomes a unit's name and a file's: nothing else than a
	// cluster name may reach them.
	if err := CheckClusterName(cluster); err != nil {
		return Service{}, fmt.Errorf("--cluster: %w", err)
	}
	self, err := os.Executable()
	if err != nil {
		return Service{}, err
	}
	return Service{
		Name:        RegistryServiceName(cluster),
		Description: "hoist registry of cluster " + cluster,
		StateDir:    stateDir,
		Self:        self,
	}, nil
}

// MirrorsCmd is `hoist node mirrors`, the cluster CA on stdin: the hosts
// entry of the registry domain and containerd's mirrors (see WriteMirrors).
type MirrorsCmd struct {
	Cluster    string
	Registry   string   // the cluster registry, domain:port
	RegistryIP string   // the registry node the domain names
	Others     []string // the other registry nodes, IP:PORT
	Hosts      []string
	CertsDir   string // default layout.CertsDir
	HostsFile  string // default layout.HostsFile
	Record     string // for RemoveMirrors
}

func (c *MirrorsCmd) Flags() []Flag {
	return []Flag{
		{"cluster", "cluster name", &c.Cluster},
		{"registry", "the cluster registry, DOMAIN:PORT", &c.Registry},
		{"registry-ip", "address of the registry node", &c.RegistryIP},
		{"others", "the other registry nodes, IP:PORT, comma-separated: mirrors after the domain", &c.Others},
		{"hosts", "registry hosts bundled in the image, comma-separated", &c.Hosts},
		{"certs-dir", "containerd's certs.d", &c.CertsDir},
		{"hosts-file", "the hosts file", &c.HostsFile},
		{"record", "file listing what was written", &c.Record},
	}
}

func (c MirrorsCmd) Args() []string { return commandLine("mirrors", c.Flags()) }

// Run points the registry domain at the registry node and containerd's
// mirrors at the registry, whose CA it reads from ca, the command's stdin.
func (c MirrorsCmd) Run(ca io.Reader) error {
	if err := CheckClusterName(c.Cluster); err != nil {
		return fmt.Errorf("--cluster: %w", err)
	}
	pem, err := io.ReadAll(ca)
	if err != nil {
		return fmt.Errorf("reading the cluster CA from stdin: %w", err)
	}
	domain, _, err := net.SplitHostPort(c.Registry)
	if err != nil {
		return fmt.Errorf("--registry: %w", err)
	}
	if err := SetHostsEntry(c.HostsFile, c.Cluster, domain, c.RegistryIP); err != nil {
		return err
	}
	for _, o := range c.Others {
		if _, _, err := net.SplitHostPort(o); err != nil {
			return fmt.Errorf("--others %q: %w", o, err)
		}
	}
	return WriteMirrors(Mirrors{CertsDir: c.CertsDir, Registry: c.Registry, CA: pem, Hosts: c.Hosts, Record: c.Record, Others: c.Others})
}

// CleanCmd is `hoist node clean`: what apply left on the node goes.
type CleanCmd struct {
	Cluster   string
	Dir       string // <dataRoot>/<cluster>, checked by CheckClusterDir
	CertsDir  string // default layout.CertsDir
	HostsFile string // default layout.HostsFile
}

func (c *CleanCmd) Flags() []Flag {
	return []Flag{
		{"cluster", "cluster name", &c.Cluster},
		{"dir", "the cluster's directory on this node", &c.Dir},
		{"certs-dir", "containerd's certs.d", &c.CertsDir},
		{"hosts-file", "the hosts file", &c.HostsFile},
	}
}

func (c CleanCmd) Args() []string { return commandLine("clean", c.Flags()) }

// Run stops the registry and the API server balancer, removes their hosts
// entries, the mirror files and the cluster's directory; it touches
// nothing unless Dir passes CheckClusterDir.
func (c CleanCmd) Run(ctx context.Context) error {
	if err := CheckClusterDir(c.Dir, c.Cluster); err != nil {
		return err
	}
	node := layout.Node{Dir: c.Dir}
	svc, err := registryService(c.Cluster, node.State())
	if err != nil {
		return err
	}
	if err := svc.Stop(ctx); err != nil {
		return err
	}
	lb, err := NodeService(APIServerLBService(c.Cluster), node.State(), nil)
	if err != nil {
		return err
	}
	if err := lb.Stop(ctx); err != nil {
		return err
	}
	if err := RemoveHostsEntry(c.HostsFile, c.Cluster); err != nil {
		return err
	}
	if err := RemoveAPIServerHostsEntry(c.HostsFile, c.Cluster); err != nil {
		return err
	}
	if err := RemoveMirrors(node.Mirrors(), c.CertsDir); err != nil {
		return err
	}
	return os.RemoveAll(c.Dir)
}

// ServiceStatusCmd is `hoist node service status NAME...`: apply's probe
// of services that a machine restarted without systemd has lost.
type ServiceStatusCmd struct {
	Names    []string // the positional arguments
	StateDir string
}

func (c *ServiceStatusCmd) Flags() []Flag {
	return []Flag{
		{"state-dir", "directory of the pid file and log (without systemd)", &c.StateDir},
	}
}

func (c ServiceStatusCmd) Args() []string {
	return append(append(commandLine("service status", c.Flags()), "--"), c.Names...)
}

// Run returns the services that do not run; the command then exits
// ExitNotRunning.
func (c ServiceStatusCmd) Run(ctx context.Context) ([]string, error) {
	var stopped []string
	for _, name := range c.Names {
		svc, err := NodeService(name, c.StateDir, nil)
		if err != nil {
			return nil, err
		}
		if !svc.Running(ctx) {
			stopped = append(stopped, name)
		}
	}
	return stopped, nil
}

// NodeService is a daemon of the image's scripts (containerd, the kubelet),
// run as the registry is: `hoist node service start|stop|status`.
func NodeService(name, stateDir string, command []string) (Service, error) {
	if stateDir == "" {
		return Service{}, errors.New("--state-dir is required")
	}
	self, err := os.Executable()
	if err != nil {
		return Service{}, err
	}
	return Service{Name: name, Description: name + " (started by hoist)", Command: command, StateDir: stateDir, Self: self}, nil
}
