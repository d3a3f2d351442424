package lb

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

// backendCases are backends files, read as want or refused with an error
// that says errWant.
var backendCases = []struct {
	name, data string
	want       []string
	errWant    string
}{
	{"one", "10.0.0.1:6443\n", []string{"10.0.0.1:6443"}, ""},
	{"no final newline", "10.0.0.1:6443\n10.0.0.2:6443", []string{"10.0.0.1:6443", "10.0.0.2:6443"}, ""},
	{"comments and blanks", "# masters of demo\n\n10.0.0.1:6443 # master-1\n  \n\t10.0.0.2:6443\n#10.0.0.3:6443\n", []string{"10.0.0.1:6443", "10.0.0.2:6443"}, ""},
	{"IPv6", "[::1]:6443\n[fd00::2]:6443\n", []string{"[::1]:6443", "[fd00::2]:6443"}, ""},
	{"IPv4 in IPv6", "[::ffff:10.0.0.1]:6443\n", []string{"10.0.0.1:6443"}, ""},
	{"CRLF", "10.0.0.1:6443\r\n10.0.0.2:6443\r\n", []string{"10.0.0.1:6443", "10.0.0.2:6443"}, ""},

	{"empty", "", nil, "backends: no backends"},
	{"comments only", "# nothing yet\n\n", nil, "backends: no backends"},
	{"missing port", "10.0.0.1:6443\n10.0.0.2\n", nil, `backends:2: "10.0.0.2": no port`},
	{"missing IPv6 port", "[fd00::2]\n", nil, `backends:1: "[fd00::2]": no port`},
	{"bare IPv6", "fd00::2\n", nil, `backends:1: "fd00::2": no port`},
	{"empty port", "10.0.0.1:\n", nil, `port "": want 1 to 65535`},
	{"port 0", "10.0.0.1:0\n", nil, `backends:1: "10.0.0.1:0": port 0`},
	{"port 70000", "\n10.0.0.1:70000\n", nil, `backends:2: "10.0.0.1:70000": port "70000": want 1 to 65535`},
	{"negative port", "10.0.0.1:-1\n", nil, `port "-1"`},
	{"named port", "10.0.0.1:https\n", nil, `port "https"`},
	{"host name", "apiserver.cluster.local:6443\n", nil, `backends:1: "apiserver.cluster.local:6443": "apiserver.cluster.local" is not an IP address (host names are not accepted)`},
	{"localhost", "localhost:6443\n", nil, `"localhost" is not an IP address`},
	{"IPv4 in brackets", "[10.0.0.1]:6443\n", nil, "backends:1:"},
	{"leading zeros", "010.0.0.1:6443\n", nil, `"010.0.0.1" is not an IP address`},
	{"URL", "https://10.0.0.1:6443\n", nil, `backends:1: "https://10.0.0.1:6443"`},
	{"two on a line", "10.0.0.1:6443 10.0.0.2:6443\n", nil, "want one IP:PORT a line"},
	{"comma list", "10.0.0.1:6443,10.0.0.2:6443\n", nil, "backends:1:"},
	{"duplicate", "10.0.0.1:6443\n10.0.0.2:6443\n10.0.0.1:6443 # again\n", nil, "backends:3: 10.0.0.1:6443 listed twice (first on line 1)"},
	{"duplicate IPv4 in IPv6", "10.0.0.1:6443\n[::ffff:10.0.0.1]:6443\n", nil, "backends:2: 10.0.0.1:6443 listed twice (first on line 1)"},
	{"unspecified", "0.0.0.0:6443\n", nil, "an unspecified address"},
	{"unspecified IPv6", "[::]:6443\n", nil, "an unspecified address"},
	{"multicast", "224.0.0.1:6443\n", nil, "multicast"},
	{"broadcast", "255.255.255.255:6443\n", nil, "broadcast"},
	{"very long line", "10.0.0.1:6443\n" + strings.Repeat("1", 100000) + "\n", nil, "backends:2: a line of 100000 bytes (at most 512)"},
	{"NUL", "10.0.0.1:6443\x00\n", nil, `backends:1: "10.0.0.1:6443\x00"`},
	{"not UTF-8", "\xff\xfe:6443\n", nil, `backends:1: "\xff\xfe:6443"`},
}

// TestParseBackends: each good file reads as its list, each bad one is
// refused with an error that names the file, the line and what is wrong.
func TestParseBackends(t *testing.T) {
	for _, tc := range backendCases {
		list, err := ParseBackends("backends", []byte(tc.data))
		if tc.errWant != "" {
			if err == nil || !strings.Contains(err.Error(), tc.errWant) {
				t.Errorf("%s: %v, %v; want an error saying %q", tc.name, list, err, tc.errWant)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		var got []string
		for _, a := range list {
			got = append(got, a.String())
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: read %v, want %v", tc.name, got, tc.want)
		}
	}
}

// FuzzParseBackends: a list accepted is of usable, distinct addresses, and
// what FormatBackends writes of it reads as the same list.
func FuzzParseBackends(f *testing.F) {
	for _, tc := range backendCases {
		f.Add([]byte(tc.data))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		list, err := ParseBackends("backends", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "backends") {
				t.Fatalf("%q: the error does not name the file: %v", data, err)
			}
			return
		}
		if len(list) == 0 {
			t.Fatalf("%q: accepted an empty list", data)
		}
		seen := map[netip.AddrPort]bool{}
		for _, a := range list {
			ip := a.Addr()
			if !a.IsValid() || a.Port() == 0 || ip.Is4In6() || ip.IsUnspecified() || ip.IsMulticast() || seen[a] {
				t.Fatalf("%q: accepted %v", data, a)
			}
			seen[a] = true
		}
		again, err := ParseBackends("backends", FormatBackends(list))
		if err != nil || !reflect.DeepEqual(again, list) {
			t.Fatalf("%q read as %v, written %q, read again as %v, %v", data, list, FormatBackends(list), again, err)
		}
	})
}
