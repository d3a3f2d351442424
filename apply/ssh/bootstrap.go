package ssh

import (
	"io"
	"strconv"
	"strings"
)

// bootstrap is the whole command line of every command hoist runs on a host:
// the script itself comes on stdin, because a command line is public. The
// host's ps and /proc/<pid>/cmdline show it to every user, and sudo logs it,
// while scripts carry passwords and tokens (exported env, hook bodies).
//
// The script comes first on stdin, framed as its line count and then its
// lines, and the caller's own stdin follows it. The bootstrap reads the
// script whole before it runs any of it, so a command of the script that
// reads stdin gets the caller's bytes, never the rest of the script. That
// rules out `sh -s`: dash and busybox read their program in blocks, taking
// the caller's bytes with it, and head or dd to cut the script off are not
// on every node. The read builtin is: every POSIX sh has it, and on a pipe
// or socket it reads one byte at a time, so it stops at the end of the
// script. A line count rather than a terminator line means no script can
// end its frame early; a count that is not a number or lines that do not
// come fail with status 97 before anything runs.
//
// Lines are gathered 64 at a time before they join the script: appending
// each line to the whole script copies the script at every line, and a
// 2,000-line script then takes seconds in bash. The bootstrap's variables
// are unset before the script runs, and eval keeps what `sh -c` gave the
// script: exit status, set -e, cd, exec, heredocs, traps.
//
// Each byte of the script costs a read system call: 1 to 2 ms per kilobyte
// (BenchmarkBootstrap); hoist's scripts are a few kilobytes. Only builtins
// see the script (read, eval): no exec.
const bootstrap = `IFS= read -r hoist_n && case $hoist_n in ''|*[!0-9]*) false;; esac || { echo "hoist: no script on stdin" >&2; exit 97; }
hoist_s= hoist_c=
while [ "$hoist_n" -gt 0 ]; do
IFS= read -r hoist_l || { echo "hoist: the script on stdin is cut short" >&2; exit 97; }
hoist_c="$hoist_c$hoist_l
"
hoist_n=$((hoist_n-1))
case $((hoist_n%64)) in 0) hoist_s="$hoist_s$hoist_c" hoist_c=;; esac
done
eval "unset hoist_n hoist_s hoist_c hoist_l
$hoist_s$hoist_c"`

// scriptStdin is the stdin of the bootstrap: the framed script, then the
// caller's stdin (nil for none).
func scriptStdin(script string, stdin io.Reader) io.Reader {
	if script != "" && !strings.HasSuffix(script, "\n") {
		script += "\n"
	}
	framed := strings.NewReader(strconv.Itoa(strings.Count(script, "\n")) + "\n" + script)
	if stdin == nil {
		return framed
	}
	return io.MultiReader(framed, stdin)
}

// commandLine is what the SSH exec request asks the host to run (through
// the user's login shell): the bootstrap, through sudo for a user other
// than root. It holds nothing of the caller's.
func commandLine(sudo bool) string {
	line := "sh -c " + shellQuote(bootstrap)
	if sudo {
		line = "sudo -n " + line
	}
	return line
}
