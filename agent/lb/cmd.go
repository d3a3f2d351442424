package lb

import (
	"context"
	"errors"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/hoistdev/hoist/agent"
)

// Cmd is `hoist node lb`: the balancer as a node service runs it, until
// its context ends (SIGTERM, SIGINT).
type Cmd struct {
	Listen   string
	Backends string
	CA       string
}

func (c *Cmd) Flags() []agent.Flag {
	return []agent.Flag{
		{Name: "listen", Usage: "address to listen on, e.g. 127.0.0.1:6443", Value: &c.Listen},
		{Name: "backends", Usage: "file of the API servers, one IP:PORT a line", Value: &c.Backends},
		{Name: "ca", Usage: "CA file to verify the API servers' certificates in health checks (default: not verified)", Value: &c.CA},
	}
}

// Args is the command line, after the hoist binary, that runs c: one
// --name=value word a flag, as agent's command lines, a zero field left out.
func (c Cmd) Args() []string {
	args := []string{"node", "lb"}
	for _, f := range c.Flags() {
		if v := f.String(); v != "" {
			args = append(args, "--"+f.Name+"="+v)
		}
	}
	return args
}

// Run serves until ctx ends, then closes the listener and the connections
// and returns nil. SIGHUP re-reads the backends file. The balancer's log
// goes to log.
func (c Cmd) Run(ctx context.Context, log io.Writer) error {
	if c.Listen == "" || c.Backends == "" {
		return errors.New("--listen and --backends are required")
	}
	// Before Start: a SIGHUP from then on is a reload, never the end of
	// the process.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	b, err := Start(Config{Listen: c.Listen, Backends: c.Backends, CA: c.CA, Log: log})
	if err != nil {
		return err
	}
	for {
		select {
		case <-hup:
			b.Reload()
		case <-ctx.Done():
			b.Close()
			return nil
		}
	}
}
