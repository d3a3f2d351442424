package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Service is a long-running command on a node (the cluster registry): a
// systemd unit where systemd runs, otherwise a daemon kept alive by `hoist
// node supervise`, found again through its pid file.
type Service struct {
	Name        string   // e.g. hoist-registry-demo
	Description string   // for systemd
	Command     []string // absolute path of the binary, then its arguments
	StateDir    string   // pid file, command and log, without systemd
	// Self is the hoist binary that runs `node supervise`.
	Self string
	// UnitDir is where systemd units go (default /etc/systemd/system).
	UnitDir string
}

// HasSystemd tells whether systemd is the init system (as sd_booted(3)).
func HasSystemd() bool {
	fi, err := os.Stat("/run/systemd/system")
	return err == nil && fi.IsDir()
}

func (s Service) pidFile() string { return filepath.Join(s.StateDir, s.Name+".pid") }
func (s Service) cmdFile() string { return filepath.Join(s.StateDir, s.Name+".cmd") }
func (s Service) logFile() string { return filepath.Join(s.StateDir, s.Name+".log") }
func (s Service) unitFile() string {
	dir := s.UnitDir
	if dir == "" {
		dir = "/etc/systemd/system"
	}
	return filepath.Join(dir, s.Name+".service")
}

// Start makes the service run this command: nothing when it already does,
// a restart when its command changed.
func (s Service) Start(ctx context.Context) error {
	if HasSystemd() {
		return s.startSystemd(ctx)
	}
	return s.startSupervised()
}

// Stop stops the service and removes what Start wrote; stopping a service
// that does not run is not an error.
func (s Service) Stop(ctx context.Context) error {
	if _, err := os.Stat(s.unitFile()); err == nil && HasSystemd() {
		if out, err := exec.CommandContext(ctx, "systemctl", "disable", "--now", s.Name).CombinedOutput(); err != nil {
			return fmt.Errorf("systemctl disable %s: %v: %s", s.Name, err, out)
		}
		if err := os.Remove(s.unitFile()); err != nil {
			return err
		}
		return exec.CommandContext(ctx, "systemctl", "daemon-reload").Run()
	}
	if pid, ok := s.running(); ok {
		syscall.Kill(pid, syscall.SIGTERM)
		deadline := time.Now().Add(15 * time.Second)
		for alive(pid) && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if alive(pid) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	for _, f := range []string{s.pidFile(), s.cmdFile()} {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

func (s Service) unit() string {
	words := make([]string, len(s.Command))
	for i, w := range s.Command {
		words[i] = strconv.Quote(w) // systemd accepts C-style double quotes
	}
	return fmt.Sprintf(`# written by hoist
[Unit]
Description=%s
After=network-online.target

[Service]
ExecStart=%s
Restart=always
RestartSec=2

[Install]
WantedBy=multi-user.target
`, s.Description, strings.Join(words, " "))
}

func (s Service) startSystemd(ctx context.Context) error {
	unit := []byte(s.unit())
	old, _ := os.ReadFile(s.unitFile())
	systemctl := func(args ...string) error {
		if out, err := exec.CommandContext(ctx, "systemctl", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("systemctl %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
		}
		return nil
	}
	if bytes.Equal(old, unit) {
		return systemctl("enable", "--now", s.Name)
	}
	if err := writeFileAtomic(s.unitFile(), unit, 0o644); err != nil {
		return err
	}
	if err := systemctl("daemon-reload"); err != nil {
		return err
	}
	if err := systemctl("enable", s.Name); err != nil {
		return err
	}
	return systemctl("restart", s.Name)
}

// ExitNotRunning is the exit status of `hoist node service status` when a
// service does not run (LSB's "program is not running", as systemctl).
const ExitNotRunning = 3

// Running tells whether the service runs: a machine that restarted
// without systemd has lost its supervised services.
func (s Service) Running(ctx context.Context) bool {
	if _, err := os.Stat(s.unitFile()); err == nil && HasSystemd() {
		return exec.CommandContext(ctx, "systemctl", "is-active", "--quiet", s.Name).Run() == nil
	}
	_, ok := s.running()
	return ok
}

// running returns the supervisor's pid when it runs.
func (s Service) running() (int, bool) {
	data, err := os.ReadFile(s.pidFile())
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || !alive(pid) {
		return 0, false
	}
	// A recycled pid belongs to another program: check it is a supervisor
	// with our pid file.
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !bytes.Contains(cmdline, []byte(s.pidFile())) {
		return 0, false
	}
	return pid, true
}

func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	// A zombie (exited, not yet reaped) is not alive.
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	if i := bytes.LastIndexByte(stat, ')'); i > 0 && i+2 < len(stat) {
		return stat[i+2] != 'Z'
	}
	return true
}

func (s Service) startSupervised() error {
	want, _ := json.Marshal(s.Command)
	if _, ok := s.running(); ok {
		if have, _ := os.ReadFile(s.cmdFile()); bytes.Equal(have, want) {
			return nil
		}
		if err := s.Stop(context.Background()); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(s.StateDir, 0o755); err != nil {
		return err
	}
	if err := writeFileAtomic(s.cmdFile(), want, 0o644); err != nil {
		return err
	}
	log, err := os.OpenFile(s.logFile(), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer log.Close()
	args := append([]string{"node", "supervise", "--pid-file", s.pidFile(), "--"}, s.Command...)
	cmd := exec.Command(s.Self, args...)
	cmd.Stdout, cmd.Stderr = log, log
	// Its own session: the daemon outlives the SSH session that started it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	pid := cmd.Process.Pid
	cmd.Process.Release()
	// The supervisor writes its pid file itself; wait for it so that a Stop
	// right after Start finds it.
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if p, ok := s.running(); ok && p == pid {
			return nil
		}
		if !alive(pid) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("%s did not start; see %s", s.Name, s.logFile())
}

// Supervise runs command and starts it again whenever it exits, until
// SIGTERM or SIGINT, which it passes on. The pid file names the supervisor
// while it runs.
func Supervise(pidFile string, command []string) error {
	if err := writeFileAtomic(pidFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		return err
	}
	defer os.Remove(pidFile)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	backoff := time.Second
	for {
		cmd := exec.Command(command[0], command[1:]...)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		started := time.Now()
		if err := cmd.Start(); err != nil {
			fmt.Fprintf(os.Stderr, "supervise: %v\n", err)
		} else {
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			select {
			case sig := <-sigs:
				cmd.Process.Signal(sig)
				<-exited
				return nil
			case err := <-exited:
				fmt.Fprintf(os.Stderr, "supervise: %s exited (%v); starting it again\n", command[0], err)
			}
		}
		if time.Since(started) > time.Minute {
			backoff = time.Second
		}
		select {
		case <-sigs:
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}
