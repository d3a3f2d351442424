package kubefile

import (
	"strings"
	"testing"
)

// TestFilePlansEachPlatform: a File read once plans every platform of a
// build, each with its own ${ARCH}, and planning one leaves the other alone.
func TestFilePlansEachPlatform(t *testing.T) {
	ctx := files(t, map[string]string{"bin/amd64/tool": "a", "bin/arm64/tool": "b"})
	f, err := NewFile("Kubefile", []byte("FROM scratch\nCOPY bin/${ARCH}/ bin/\n"))
	if err != nil {
		t.Fatal(err)
	}
	var plans []*Plan
	for _, arch := range []string{"amd64", "arm64", "amd64"} {
		plan, err := f.Plan(t.Context(), Options{ContextDir: ctx, Platform: Platform{OS: "linux", Arch: arch}})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(plan.Dockerfile, "COPY bin/"+arch+"/ bin/\n") {
			t.Errorf("%s: Dockerfile:\n%s", arch, plan.Dockerfile)
		}
		plans = append(plans, plan)
	}
	if plans[0].Dockerfile != plans[2].Dockerfile {
		t.Errorf("the same platform planned twice differs:\n%s\n%s", plans[0].Dockerfile, plans[2].Dockerfile)
	}
	if base, err := f.Base(Options{ContextDir: ctx}); err != nil || base != "" {
		t.Errorf("base = %q, %v; want scratch (\"\")", base, err)
	}
}
