package ssh

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// executors returns an SSH client to a real sshd on loopback and the
// executor of a host that is this machine: what Run promises holds for both.
func executors(t *testing.T) []struct {
	name string
	e    Executor
} {
	t.Helper()
	s := startSSHD(t)
	client, err := Dial(context.Background(), s.config(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	local, _ := localExecutor(t)
	return []struct {
		name string
		e    Executor
	}{{"ssh", client}, {"local", local}}
}

// commandLines returns the command line of every process of this machine.
func commandLines() [][]string {
	files, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	var argvs [][]string
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil || len(data) == 0 {
			continue // gone, or a kernel thread
		}
		argvs = append(argvs, strings.Split(strings.TrimSuffix(string(data), "\x00"), "\x00"))
	}
	return argvs
}

// unique returns prefix and random hex digits: a string no other process
// of this machine holds.
func unique(t *testing.T, prefix string) string {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return prefix + hex.EncodeToString(b)
}

// TestNoSecretInCommandLines: what a script holds (exported passwords,
// tokens, hook bodies) is in no process's command line while it runs, where
// ps, /proc and sudo's log would show it to every user of the host.
func TestNoSecretInCommandLines(t *testing.T) {
	for _, ex := range executors(t) {
		t.Run(ex.name, func(t *testing.T) {
			secret := unique(t, "hoist-test-secret-")
			// The marker is a command line the script shows on purpose:
			// seeing it proves the scan sees the script's processes.
			marker := unique(t, "hoist-test-marker-")
			script := "export HOIST_TEST_PASSWORD='" + secret + "'\n" +
				"echo ready\n" +
				"sh -c 'cat >/dev/null' " + marker + "\n" +
				"echo \"done $HOIST_TEST_PASSWORD\"\n"
			stdinR, stdinW := io.Pipe()
			outR, outW := io.Pipe()
			done := make(chan error, 1)
			go func() {
				err := ex.e.Run(context.Background(), script, stdinR, outW)
				outW.Close()
				done <- err
			}()
			out := bufio.NewReader(outR)
			if line, err := out.ReadString('\n'); line != "ready\n" {
				t.Fatalf("the script did not start: %q %v", line, err)
			}
			// The script now waits for its stdin to close, in cat.
			var holding []string
			sawMarker := false
			for deadline := time.Now().Add(5 * time.Second); !sawMarker && time.Now().Before(deadline); {
				holding = holding[:0]
				for _, argv := range commandLines() {
					joined := strings.Join(argv, " ")
					if strings.Contains(joined, secret) {
						holding = append(holding, joined)
					}
					sawMarker = sawMarker || slices.Contains(argv, marker)
				}
				time.Sleep(20 * time.Millisecond)
			}
			stdinW.Close()
			rest, _ := io.ReadAll(out)
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if string(rest) != "done "+secret+"\n" {
				t.Errorf("the script's output: %q", rest)
			}
			if !sawMarker {
				t.Fatal("the scan of /proc/*/cmdline did not see the script's own command")
			}
			if len(holding) > 0 {
				t.Errorf("%d command lines hold the secret: %q", len(holding), holding)
			}
		})
	}
}

// TestStdinReachesTheScript: the caller's stdin reaches the script's
// commands byte for byte, none of the script's own text with it, whatever
// follows the command that reads it; the script's exit status comes back.
func TestStdinReachesTheScript(t *testing.T) {
	binary := make([]byte, 0, 256*64)
	for i := range 256 * 64 {
		binary = append(binary, byte(i))
	}
	large := make([]byte, 32<<20)
	if _, err := rand.Read(large); err != nil {
		t.Fatal(err)
	}
	// A script that reads its stdin first and has much more to run after:
	// if the script itself came on stdin unread, cat would print it.
	script := "cat\n" + strings.Repeat(": the rest of the script\n", 1000) + "exit 5"
	for _, ex := range executors(t) {
		for _, in := range []struct {
			name string
			data []byte // nil: no stdin
		}{{"none", nil}, {"empty", []byte{}}, {"binary", binary}, {"large", large}} {
			t.Run(ex.name+"/"+in.name, func(t *testing.T) {
				var stdin io.Reader
				if in.data != nil {
					stdin = bytes.NewReader(in.data)
				}
				var out bytes.Buffer
				err := ex.e.Run(context.Background(), script, stdin, &out)
				var exit *ExitError
				if !errors.As(err, &exit) || exit.Status != 5 {
					t.Errorf("err = %v, want exit status 5", err)
				}
				if !bytes.Equal(out.Bytes(), in.data) {
					t.Errorf("the script read %d bytes other than the %d of its stdin", out.Len(), len(in.data))
				}
			})
		}
	}
}

// TestLocalCancelKillsTheScript: cancelling a command on this machine kills
// the whole script, the command it waits for included, and returns at once.
func TestLocalCancelKillsTheScript(t *testing.T) {
	e, _ := localExecutor(t)
	// A unique duration names the sleep among this machine's processes.
	b := make([]byte, 2)
	rand.Read(b)
	sleep := []string{"sleep", fmt.Sprintf("30.%05d", int(b[0])<<8|int(b[1]))}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx, strings.Join(sleep, " ")+"\necho never", nil, nil) }()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("err = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("cancelling did not stop the command")
	}
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if !slices.ContainsFunc(commandLines(), func(argv []string) bool { return slices.Equal(argv, sleep) }) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still runs after the cancel", sleep)
		}
	}
}
