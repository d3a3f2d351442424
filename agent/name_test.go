package agent

import (
	"strings"
	"testing"
)

func TestCheckClusterName(t *testing.T) {
	for _, ok := range []string{"demo", "a", "my-cluster-2", strings.Repeat("a", 63), "0"} {
		if err := CheckClusterName(ok); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
	for name, want := range map[string]string{
		"":                         "empty",
		"../../x":                  "not a DNS-1123 label",
		"a/b":                      "not a DNS-1123 label",
		"Demo":                     "not a DNS-1123 label",
		"-a":                       "not a DNS-1123 label",
		"a-":                       "not a DNS-1123 label",
		"a b":                      "not a DNS-1123 label",
		"a;rm -rf /":               "not a DNS-1123 label",
		"a.b":                      "not a DNS-1123 label",
		"\u00e9t\u00e9":            "not a DNS-1123 label",
		strings.Repeat("a", 64):    "longer than 63",
		"a\nb":                     "not a DNS-1123 label",
		"*":                        "not a DNS-1123 label",
		"$(touch /tmp/x)":          "not a DNS-1123 label",
		"demo\x00":                 "not a DNS-1123 label",
		"a_b":                      "not a DNS-1123 label",
		"..":                       "not a DNS-1123 label",
		".":                        "not a DNS-1123 label",
		"a--b-" + "c" + "-":        "not a DNS-1123 label",
		strings.Repeat("-", 3):     "not a DNS-1123 label",
		"\u0430bc" /* cyrillic */ : "not a DNS-1123 label",
	} {
		if err := CheckClusterName(name); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", name, err, want)
		}
	}
}

func TestCheckClusterDir(t *testing.T) {
	if err := CheckClusterDir("/var/lib/hoist/demo", "demo"); err != nil {
		t.Errorf("the usual directory refused: %v", err)
	}
	for _, tc := range []struct{ dir, cluster, want string }{
		{"/", "demo", "not <dataRoot>/demo"},
		{"/var/lib/hoist", "demo", "not <dataRoot>/demo"},
		{"/var/lib/hoist/demo/..", "demo", "not <dataRoot>/demo"},
		{"/var/lib/hoist/../demo/", "demo", "not <dataRoot>/demo"},
		{"var/lib/hoist/demo", "demo", "not <dataRoot>/demo"},
		{"/etc", "etc", "not directly under /"},
		{"/srv/etc", "etc", ""},
		{"/x/../../x", "x", "not <dataRoot>/x"},
		{"/var/lib/hoist/..", "..", "cluster name"},
		{"/var/lib/hoist/", "", "cluster name: empty"},
	} {
		err := CheckClusterDir(tc.dir, tc.cluster)
		if tc.want == "" {
			if err != nil {
				t.Errorf("%s %s: %v", tc.dir, tc.cluster, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s %s: %v, want %q", tc.dir, tc.cluster, err, tc.want)
		}
	}
}
