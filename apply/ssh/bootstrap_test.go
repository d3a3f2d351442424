package ssh

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// shells returns the POSIX shells of this machine that a node may have as
// sh, each as the words that run a command string with it.
func shells(t testing.TB) map[string][]string {
	found := map[string][]string{}
	for name, argv := range map[string][]string{
		"dash": {"dash", "-c"}, "bash": {"bash", "-c"}, "busybox": {"busybox", "sh", "-c"},
	} {
		if _, err := exec.LookPath(argv[0]); err == nil {
			found[name] = argv
		}
	}
	if len(found) < 3 {
		t.Logf("only %d of dash, bash and busybox are installed: the bootstrap is tested with those", len(found))
	}
	if len(found) == 0 {
		t.Fatal("none of dash, bash and busybox is installed")
	}
	return found
}

// runShell runs argv with stdin and returns its stdout, stderr and status.
func runShell(t testing.TB, argv []string, stdin []byte) (stdout, stderr string, status int) {
	cmd := exec.Command(argv[0], argv[1:]...)
	var out, errOut bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = bytes.NewReader(stdin), &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		status = exit.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	return out.String(), errOut.String(), status
}

func readAll(t testing.TB, stdin []byte, script string) []byte {
	var b bytes.Buffer
	if _, err := b.ReadFrom(scriptStdin(script, bytes.NewReader(stdin))); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestBootstrapIsShC: a script run by the bootstrap, from stdin, does what
// `sh -c script` did, in every shell a node may have: same output, same
// status, same stdin for its commands.
func TestBootstrapIsShC(t *testing.T) {
	var long strings.Builder
	for i := range 2000 {
		fmt.Fprintf(&long, "v_%d='value %d'\n", i, i)
	}
	long.WriteString(`echo "$v_0 $v_1999"`)
	for _, tc := range []struct {
		name, script string
		stdin        string
	}{
		{name: "quotes and backslashes", script: `echo 'single "double" back\slash \\ \n'
printf '%s|' "a\\b" 'it'\''s' "$(printf '%s' '$HOME')" \$HOME
echo`},
		{name: "leading spaces, tabs, empty lines", script: "  echo '  leading spaces'\n\techo tab\n\t\techo '\ttab inside'\n   \n\n\t\necho end\n"},
		{name: "heredocs", script: "cat <<EOF\n$HOME \\$HOME $(echo sub) \\\n  indented\\\\\nEOF\ncat <<'EOF'\n$HOME raw \\\nEOF\ncat <<-EOF\n\t\tstripped tabs\n\tEOF\n"},
		{name: "line continuation", script: "echo one \\\n  two \\\n\tthree\n"},
		{name: "carriage returns", script: "echo a\r\necho 'b\r'\n"},
		{name: "exit status", script: "echo before\nexit 42\necho after\n"},
		{name: "set -e", script: "set -e\necho a\nfalse\necho not reached\n"},
		{name: "cd and exec", script: "cd /tmp\npwd\nexec 1>&2\necho to stderr\n"},
		{name: "traps", script: "trap 'echo bye' EXIT\necho hi\nexit 3\n"},
		{name: "functions and loops", script: "f() {\n  for i in 1 2 3; do\n    echo \"$i $1\"\n  done\n}\nf x\nwhile read -r l; do echo \"got $l\"; done\n", stdin: "a\nb\n"},
		{name: "no final newline", script: "echo no newline"},
		{name: "empty", script: ""},
		{name: "only newlines", script: "\n\n\n"},
		{name: "reads stdin", script: "IFS= read -r first\necho \"first: $first\"\ncat\nexit 7\n# more script after the reading", stdin: "line one\n\x00\xff\x01 the rest\nno newline"},
		{name: "the bootstrap's variables", script: `echo "[$#] [${hoist_n-unset}] [${hoist_s-unset}] [${hoist_c-unset}] [${hoist_l-unset}]"
case $IFS in " 	
") echo "IFS is the default";; *) echo "IFS is changed";; esac
hoist_n=5; echo "$hoist_n"`},
		{name: "2,000 lines", script: long.String()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for name, sh := range shells(t) {
				wantOut, wantErr, wantStatus := runShell(t, append(sh, tc.script), []byte(tc.stdin))
				out, errOut, status := runShell(t, append(sh, bootstrap), readAll(t, []byte(tc.stdin), tc.script))
				if out != wantOut || errOut != wantErr || status != wantStatus {
					t.Errorf("%s: stdout %q, stderr %q, status %d; sh -c gives %q, %q, %d",
						name, out, errOut, status, wantOut, wantErr, wantStatus)
				}
			}
		})
	}
}

// TestCommandLine: the command line goes through the user's login shell
// (sshd runs it with `$SHELL -c`) and sudo without losing a character.
func TestCommandLine(t *testing.T) {
	if got, want := commandLine(true), "sudo -n "+commandLine(false); got != want {
		t.Errorf("with sudo: %q, want %q", got, want)
	}
	for name, sh := range shells(t) {
		out, errOut, status := runShell(t, append(sh, commandLine(false)), readAll(t, []byte("in"), "cat\necho \" it's\"\nexit 4"))
		if out != "in it's\n" || errOut != "" || status != 4 {
			t.Errorf("%s as the login shell: %q %q %d", name, out, errOut, status)
		}
	}
}

// TestBootstrapRefusesABadFrame: when the script does not come whole, none
// of it runs.
func TestBootstrapRefusesABadFrame(t *testing.T) {
	dir := t.TempDir()
	touch := "touch " + Quote(filepath.Join(dir, "ran")) + "\n"
	for _, stdin := range []string{"", "\n" + touch, "x\n" + touch, "-1\n" + touch, "1 \n" + touch, "3\n" + touch + touch} {
		for name, sh := range shells(t) {
			_, errOut, status := runShell(t, append(sh, bootstrap), []byte(stdin))
			if status != 97 || !strings.HasPrefix(errOut, "hoist: ") {
				t.Errorf("%s, stdin %q: status %d, stderr %q", name, stdin, status, errOut)
			}
			if _, err := os.Stat(filepath.Join(dir, "ran")); err == nil {
				t.Fatalf("%s, stdin %q: the script ran", name, stdin)
			}
		}
	}
}

// BenchmarkBootstrap measures what the bootstrap costs over `sh -c`, for a
// script of 100 and of 2,000 lines of 40 bytes (`sh -c` allows no more than
// 128 KiB), in each shell.
func BenchmarkBootstrap(b *testing.B) {
	for name, sh := range shells(b) {
		for _, lines := range []int{100, 2000} {
			var script strings.Builder
			for i := range lines {
				fmt.Fprintf(&script, "v_%04d='a value of 24 bytes, %04d'\n", i, i)
			}
			framed := readAll(b, nil, script.String())
			b.Run(fmt.Sprintf("%s/lines=%d/sh-c", name, lines), func(b *testing.B) {
				for b.Loop() {
					runShell(b, append(sh, script.String()), nil)
				}
			})
			b.Run(fmt.Sprintf("%s/lines=%d/bootstrap", name, lines), func(b *testing.B) {
				for b.Loop() {
					runShell(b, append(sh, bootstrap), framed)
				}
			})
		}
	}
}
