package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"strings"

	"go.wintun.dev/wintun"
)

// usageError is a command line mistake: main prints it with a pointer to --help and
// exits with status 2.
type usageError struct{ cmd, msg string }

func (e usageError) Error() string {
	return fmt.Sprintf("wintun %s: %s (see `wintun %s --help`)", e.cmd, e.msg, e.cmd)
}

// errHelp reports that --help was asked for and the usage printed: nothing more to do.
var errHelp = errors.New("help printed")

// newFlagSet returns a flag set whose help text is usage followed by the flags.
func newFlagSet(name, usage string, out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are returned, help goes to out
	fs.Usage = func() {
		fs.SetOutput(out)
		fmt.Fprint(out, usage)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
	return fs
}

// parseArgs parses flags placed before, between or after the positional arguments
// (`create NAME --mtu 1400` and `create --mtu 1400 NAME` both work) and requires
// exactly npos positional arguments.
func parseArgs(fs *flag.FlagSet, args []string, npos int) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fs.Usage()
				return nil, errHelp
			}
			return nil, usageError{fs.Name(), err.Error()}
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		if args[0] == "--" {
			pos = append(pos, args[1:]...)
			break
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
	switch {
	case len(pos) < npos && npos == 1:
		return nil, usageError{fs.Name(), "missing adapter name"}
	case len(pos) != npos:
		return nil, usageError{fs.Name(), fmt.Sprintf("want %d argument(s), got %d: %q", npos, len(pos), pos)}
	}
	return pos, nil
}

// checkName validates an adapter name from the command line with the library's rules,
// before any system call.
func checkName(cmd, name string) error {
	if err := wintun.CheckName(name); err != nil {
		return usageError{cmd, strings.TrimPrefix(err.Error(), "wintun: ")}
	}
	return nil
}

// prefixList is a repeatable flag of IP prefixes, parsed (so validated) as given.
type prefixList []netip.Prefix

func (p *prefixList) String() string {
	s := make([]string, len(*p))
	for i, x := range *p {
		s[i] = x.String()
	}
	return strings.Join(s, ",")
}

func (p *prefixList) Set(v string) error {
	x, err := netip.ParsePrefix(v)
	if err != nil {
		return fmt.Errorf("want an address with its prefix length, like 10.0.0.1/24 or fd00::1/64: %w", err)
	}
	*p = append(*p, x)
	return nil
}

// privilegeHint turns a permission error into one that says what to do about it, for
// command cmd acting on adapter name. Other errors are returned unchanged.
func privilegeHint(cmd, name string, err error) error {
	if err == nil || !errors.Is(err, os.ErrPermission) {
		return err
	}
	switch cmd {
	case "pipe":
		return fmt.Errorf("%w\nneeds CAP_NET_ADMIN: run as root, or create the adapter with "+
			"`sudo wintun create %s --owner USER` and run `wintun %s %s ...` as USER", err, name, cmd, name)
	case "create":
		return fmt.Errorf("%w\nneeds CAP_NET_ADMIN: run as root (`sudo wintun create %s ...`); "+
			"to let a user start sessions on it without root, create it with --owner USER or with --group GROUP "+
			"(with both, a user must be the owner and in the group)", err, name)
	}
	return fmt.Errorf("%w\nneeds CAP_NET_ADMIN: run as root (sudo wintun %s ...)", err, cmd)
}

// hint adds what to do to the errors a user can act on: missing privileges, an
// adapter that exists already or does not exist.
func hint(cmd, name string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, fs.ErrExist) && name != "":
		return fmt.Errorf("%w\nadapter %s exists already: use it, pick another name, or remove it with `wintun delete %s`", err, name, name)
	case errors.Is(err, fs.ErrNotExist) && name != "":
		return fmt.Errorf("%w\nno adapter %s in this network namespace (see `wintun list`)", err, name)
	}
	return privilegeHint(cmd, name, err)
}

// requireCapNetAdmin fails early, before any system call, for commands that always
// need CAP_NET_ADMIN.
func requireCapNetAdmin(cmd, name string) error {
	if hasCapNetAdmin() {
		return nil
	}
	return privilegeHint(cmd, name, fmt.Errorf("wintun %s: %w", cmd, os.ErrPermission))
}

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }

func writeJSON(out io.Writer, v any) error {
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// humanBytes formats n bytes with a binary unit.
func humanBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
