package lb

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
)

// maxFile and maxLine bound what is read of a backends file: a few
// masters take a few hundred bytes, so anything near these is not a list
// hoist wrote.
const (
	maxFile = 64 << 10
	maxLine = 512
)

// ParseBackends reads a backends file: one IP:PORT a line ([IPv6]:PORT),
// blank lines and # comments (whole lines or after the address) ignored.
// Host names are refused (the balancer must not depend on a resolver whose
// answer can change under it, and /etc/hosts may well point the API
// server's name at the balancer itself), as are ports 0, unspecified and
// multicast addresses, an address listed twice and an empty list. name is
// the file's, for the errors, which name it and the line.
func ParseBackends(name string, data []byte) ([]netip.AddrPort, error) {
	var list []netip.AddrPort
	first := map[netip.AddrPort]int{}
	for i, raw := range strings.Split(string(data), "\n") {
		n := i + 1
		if len(raw) > maxLine {
			return nil, fmt.Errorf("%s:%d: a line of %d bytes (at most %d): %q", name, n, len(raw), maxLine, raw[:40]+"...")
		}
		text, _, _ := strings.Cut(raw, "#")
		text = strings.TrimSpace(text)
		if text == "" {
			continue
		}
		addr, err := parseBackend(text)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %q: %w", name, n, text, err)
		}
		if prev, ok := first[addr]; ok {
			return nil, fmt.Errorf("%s:%d: %s listed twice (first on line %d)", name, n, addr, prev)
		}
		first[addr] = n
		list = append(list, addr)
	}
	if len(list) == 0 {
		// Most likely a file being written or truncated: an empty list
		// would refuse every connection, keeping the last one does not.
		return nil, fmt.Errorf("%s: no backends", name)
	}
	return list, nil
}

func parseBackend(text string) (netip.AddrPort, error) {
	if strings.ContainsAny(text, " \t\v\f\r") {
		return netip.AddrPort{}, errors.New("want one IP:PORT a line")
	}
	addr, err := netip.ParseAddrPort(text)
	if err != nil {
		host, port, splitErr := net.SplitHostPort(text)
		switch {
		case splitErr != nil:
			if _, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(text, "["), "]")); err == nil {
				return netip.AddrPort{}, errors.New("no port: want IP:PORT")
			}
			return netip.AddrPort{}, errors.New("want IP:PORT, or [IPv6]:PORT")
		case !isIP(host):
			return netip.AddrPort{}, fmt.Errorf("%q is not an IP address (host names are not accepted)", host)
		default:
			return netip.AddrPort{}, fmt.Errorf("port %q: want 1 to 65535", port)
		}
	}
	ip := addr.Addr().Unmap()
	switch {
	case addr.Port() == 0:
		return netip.AddrPort{}, errors.New("port 0: want 1 to 65535")
	case ip.IsUnspecified():
		return netip.AddrPort{}, errors.New("an unspecified address: want a master's address")
	case ip.IsMulticast() || ip == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return netip.AddrPort{}, errors.New("a multicast or broadcast address: want a master's address")
	}
	return netip.AddrPortFrom(ip, addr.Port()), nil
}

func isIP(s string) bool {
	_, err := netip.ParseAddr(s)
	return err == nil
}

// FormatBackends is the backends file of addrs, as ParseBackends reads it.
func FormatBackends(addrs []netip.AddrPort) []byte {
	var b bytes.Buffer
	for _, a := range addrs {
		b.WriteString(a.String() + "\n")
	}
	return b.Bytes()
}

// readBackends reads file, refusing one too large to be a backends list.
func readBackends(file string) ([]byte, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFile+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", file, err)
	}
	if len(data) > maxFile {
		return nil, fmt.Errorf("%s: larger than %d bytes: not a backends list", file, maxFile)
	}
	return data, nil
}
