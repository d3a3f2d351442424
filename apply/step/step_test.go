package step

import (
	"context"
	"strings"
	"testing"

	"github.com/hoistdev/hoist/apply/ssh"
)

// TestExportsOnlyNames: keys that are not variable names (Helm value
// paths from APPENV) never reach a script; values are quoted, whatever
// they hold, and reach the script unchanged.
func TestExportsOnlyNames(t *testing.T) {
	env := map[string]string{
		"image.tag":          "1.27",
		"A":                  `it's "$(touch /x)"; rm -rf /` + "\n`id`",
		"_B2":                "",
		"X=1; touch /x; Y":   "v",
		"controller.replica": "2",
	}
	got := Exports(env)
	if strings.Contains(got, "image.tag") || strings.Contains(got, "touch /x; Y") || strings.Contains(got, "controller") {
		t.Errorf("exports holds a key that is not a name:\n%s", got)
	}
	var out strings.Builder
	if err := ssh.Local().Run(context.Background(), got+`printf '%s|%s' "$A" "$_B2"`, nil, &out); err != nil {
		t.Fatal(err)
	}
	if want := env["A"] + "|"; out.String() != want {
		t.Errorf("the script sees A=%q, want %q", out.String(), want)
	}
}
