package kubefile

import (
	"reflect"
	"testing"
)

// TestPlanBases: every image a stage starts from, variables expanded;
// stages built from other stages and scratch are not images.
func TestPlanBases(t *testing.T) {
	plan := mustParse(t, "ARG BASE=busybox:1.36\nFROM $BASE AS tools\nFROM tools AS more\nFROM scratch\nFROM alpine:3.20\nCOPY --from=more /x /x\n", nil, Options{})
	if want := []string{"busybox:1.36", "alpine:3.20"}; !reflect.DeepEqual(plan.Bases, want) {
		t.Errorf("bases = %q, want %q", plan.Bases, want)
	}
	if plan.Base != "alpine:3.20" {
		t.Errorf("base = %q", plan.Base)
	}
}
