package agent

import (
	"fmt"
	"strconv"
	"strings"
)

// Flag is one flag of a `hoist node` command line. Each command's table of
// them is the only place its flags are named: Args writes the line from it
// on the machine that runs apply, and the node's command parses into it.
// String and Set make it a flag.Value (and, with a type name, a pflag one).
type Flag struct {
	Name  string
	Usage string
	// Value is the field the flag fills: *string, *int or *[]string. A
	// list is written comma-separated, empty elements dropped, as the
	// registry hosts always were; an element cannot hold a comma.
	Value any
}

// String is the value as written on a command line.
func (f Flag) String() string {
	switch v := f.Value.(type) {
	case *string:
		return *v
	case *int:
		return strconv.Itoa(*v)
	case *[]string:
		return strings.Join(*v, ",")
	}
	// The standard library's flag package asks a zero Flag for its value.
	return ""
}

// Set fills the field from the value written on a command line.
func (f Flag) Set(s string) error {
	switch v := f.Value.(type) {
	case *string:
		*v = s
	case *int:
		n, err := strconv.Atoi(s)
		if err != nil {
			return err
		}
		*v = n
	case *[]string:
		var list []string
		for e := range strings.SplitSeq(s, ",") {
			if e != "" {
				list = append(list, e)
			}
		}
		*v = list
	default:
		return fmt.Errorf("flag --%s: no command line form for a %T", f.Name, f.Value)
	}
	return nil
}

func (f Flag) zero() bool {
	switch v := f.Value.(type) {
	case *string:
		return *v == ""
	case *int:
		return *v == 0
	case *[]string:
		return len(*v) == 0
	}
	return true
}

// commandLine is the argument list, after the binary, of the node command
// at path ("registry start"). Each flag is one --name=value word, so that
// a value may be empty, start with a dash or be "--" and still be read as
// that flag's value. A zero field is left out: the command's default
// applies (containerd's certs.d, the registry port).
func commandLine(path string, flags []Flag) []string {
	args := append([]string{"node"}, strings.Fields(path)...)
	for _, f := range flags {
		if !f.zero() {
			args = append(args, "--"+f.Name+"="+f.String())
		}
	}
	return args
}
