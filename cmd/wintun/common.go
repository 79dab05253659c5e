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
	"regexp"
	"strings"
	"syscall"
	"time"

	"go.wintun.dev/wintun"
)

// usageError is a command line mistake: main prints it on one line with a pointer to
// --help and exits with status 2.
type usageError struct{ cmd, msg string }

func (e usageError) Error() string {
	return fmt.Sprintf("wintun %s: %s (see `wintun %s --help`)", e.cmd, e.msg, e.cmd)
}

// userError is a failure told in the command's terms, with what to do about it. The
// cause stays reachable for errors.Is, but its text is not repeated: the library's
// messages speak of Go options and the kernel's of errno names, neither of which a
// user of the command can act on.
type userError struct {
	msg string
	err error
}

func (e *userError) Error() string { return e.msg }
func (e *userError) Unwrap() error { return e.err }

func userErrorf(cause error, format string, args ...any) error {
	return &userError{fmt.Sprintf(format, args...), cause}
}

// errHelp reports that --help was asked for and the help printed: nothing more to do.
var errHelp = errors.New("help printed")

// command is a subcommand's flag set with its help text: usage is the synopsis and
// description, which the options follow.
type command struct {
	*flag.FlagSet
	usage string
	out   io.Writer
}

// newCommand returns a command whose help goes to out, printed by parseArgs only:
// the flag package itself prints nothing, neither on -h nor on errors.
func newCommand(name, usage string, out io.Writer) *command {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return &command{FlagSet: fs, usage: usage, out: out}
}

// printHelp writes the usage text and the options, spelled --name as the command
// line takes them (the flag package's PrintDefaults spells them -name).
func (c *command) printHelp() {
	var b strings.Builder
	b.WriteString(c.usage)
	first := true
	c.VisitAll(func(f *flag.Flag) {
		if first {
			b.WriteString("options:\n")
			first = false
		}
		arg, text := flag.UnquoteUsage(f)
		if isBool(f) {
			arg = ""
		}
		b.WriteString("  --" + f.Name)
		if arg != "" {
			b.WriteString(" " + arg)
		}
		b.WriteString("\n")
		switch f.DefValue {
		case "", "0", "0s", "false":
		default:
			text += " (default " + f.DefValue + ")"
		}
		wrap(&b, text, "        ", 88)
	})
	io.WriteString(c.out, b.String())
}

func isBool(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// wrap writes text in lines of at most width columns, each starting with indent.
func wrap(b *strings.Builder, text, indent string, width int) {
	line := indent
	for _, w := range strings.Fields(text) {
		if line != indent && len(line)+1+len(w) > width {
			b.WriteString(line + "\n")
			line = indent
		}
		if line != indent {
			line += " "
		}
		line += w
	}
	b.WriteString(line + "\n")
}

// parseArgs parses flags placed before, between or after the positional arguments
// (`create NAME --mtu 1400` and `create --mtu 1400 NAME` both work) and requires
// exactly npos positional arguments. On -h or --help it prints the help, once, and
// returns errHelp.
func (c *command) parseArgs(args []string, npos int) ([]string, error) {
	var pos []string
	for {
		if err := c.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				c.printHelp()
				return nil, errHelp
			}
			return nil, usageError{c.Name(), c.flagError(err)}
		}
		args = c.Args()
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
	case len(pos) > npos && npos == 0:
		return nil, usageError{c.Name(), fmt.Sprintf("unexpected argument %q: %s takes options only", pos[0], c.Name())}
	case len(pos) == 0 && npos == 1:
		return nil, usageError{c.Name(), "missing adapter name"}
	case len(pos) > npos && npos == 1:
		return nil, usageError{c.Name(), fmt.Sprintf("one adapter name wanted, got %d: %s", len(pos), strings.Join(quote(pos), " "))}
	case len(pos) != npos:
		return nil, usageError{c.Name(), fmt.Sprintf("want %d arguments, got %d", npos, len(pos))}
	}
	return pos, nil
}

func quote(s []string) []string {
	q := make([]string, len(s))
	for i, x := range s {
		q[i] = fmt.Sprintf("%q", x)
	}
	return q
}

// The flag package's error messages (flag.go, failf), which name flags -name.
var (
	reUndefined = regexp.MustCompile(`^flag provided but not defined: -(.*)$`)
	reNoValue   = regexp.MustCompile(`^flag needs an argument: -(.*)$`)
	reBadValue  = regexp.MustCompile(`^invalid (?:boolean )?value ("(?:[^"\\]|\\.)*") for (?:flag )?-([^:]*): (.*)$`)
	reBadSyntax = regexp.MustCompile(`^bad flag syntax: (.*)$`)
)

// flagError rewords an error of the flag package in the command's terms: options
// spelled --name, and what a value should look like instead of "parse error".
func (c *command) flagError(err error) string {
	msg := err.Error()
	if m := reUndefined.FindStringSubmatch(msg); m != nil {
		return "unknown option --" + m[1]
	}
	if m := reNoValue.FindStringSubmatch(msg); m != nil {
		arg := "VALUE"
		if f := c.Lookup(m[1]); f != nil {
			if name, _ := flag.UnquoteUsage(f); name != "" {
				arg = name
			}
		}
		return fmt.Sprintf("--%s needs a value: --%s %s", m[1], m[1], arg)
	}
	if m := reBadValue.FindStringSubmatch(msg); m != nil {
		value, name, why := m[1], m[2], m[3]
		f := c.Lookup(name)
		switch {
		case f != nil && isBool(f):
			why = "want true or false"
		case why == "parse error" && f != nil:
			var v any
			if g, ok := f.Value.(flag.Getter); ok {
				v = g.Get()
			}
			switch v.(type) {
			case int, int64, uint, uint64:
				why = "want a whole number"
			case float64:
				why = "want a number"
			case time.Duration:
				why = "want a duration like 30s, 5m or 1h30m"
			}
		case why == "value out of range":
			why = "out of range"
		}
		return fmt.Sprintf("--%s %s: %s", name, value, why)
	}
	if m := reBadSyntax.FindStringSubmatch(msg); m != nil {
		return fmt.Sprintf("bad option %q: options are spelled --name or --name=value", m[1])
	}
	return msg
}

// checkName validates an adapter name from the command line with the library's rules,
// before any system call.
func checkName(cmd, name string) error {
	if err := wintun.CheckName(name); err != nil {
		return usageError{cmd, strings.TrimPrefix(err.Error(), "wintun: ")}
	}
	if strings.HasPrefix(name, "-") {
		// Every later command would read it as an option.
		return usageError{cmd, fmt.Sprintf("adapter name %q starts with '-', which the commands would take for an option", name)}
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
		if _, aerr := netip.ParseAddr(v); aerr == nil {
			return errors.New("the prefix length is missing: want an address with it, like 10.0.0.1/24 or fd00::1/64")
		}
		return errors.New("want an address with its prefix length, like 10.0.0.1/24 or fd00::1/64")
	}
	*p = append(*p, x)
	return nil
}

func (p *prefixList) Get() any { return []netip.Prefix(*p) }

// ipv6MinMTU is the least MTU IPv6 works with (RFC 8200): below it, Linux turns IPv6
// off on the interface and refuses its IPv6 addresses and routes.
const ipv6MinMTU = 1280

// checkIPv6MTU refuses an MTU (0: the kernel's default) too small for any IPv6
// prefix among ps, before anything is created.
func checkIPv6MTU(cmd string, mtu int, ps ...[]netip.Prefix) error {
	if mtu == 0 || mtu >= ipv6MinMTU {
		return nil
	}
	for _, l := range ps {
		for _, p := range l {
			if p.Addr().Is6() && !p.Addr().Is4In6() {
				return usageError{cmd, fmt.Sprintf("--mtu %d is too small for IPv6 (%v): IPv6 needs %d or more", mtu, p, ipv6MinMTU)}
			}
		}
	}
	return nil
}

// configError explains why adding address or route p ("address" or "route") to
// adapter a failed, when the kernel's errno alone would not tell a user what to do.
func configError(cmd string, a *wintun.Adapter, what string, p netip.Prefix, err error) error {
	name := a.Name()
	if p.Addr().Is6() && (errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENODEV)) {
		if mtu, merr := a.MTU(); merr == nil && mtu < ipv6MinMTU {
			fix := fmt.Sprintf("create it with --mtu %d or more", ipv6MinMTU)
			if cmd == "pipe" {
				fix = fmt.Sprintf("raise it with `ip link set %s mtu %d`", name, ipv6MinMTU)
			}
			return userErrorf(err, "wintun %s: cannot add IPv6 %s %v: adapter %s has MTU %d and IPv6 needs %d or more: %s",
				cmd, what, p, name, mtu, ipv6MinMTU, fix)
		}
	}
	if what == "route" && errors.Is(err, fs.ErrExist) {
		if addrs, aerr := a.Addresses(); aerr == nil {
			for _, ad := range addrs {
				if ad.Masked() == p.Masked() {
					return userErrorf(err, "wintun %s: route %v exists already: the kernel adds the route to an address's own network, here %v's; leave out --route %v",
						cmd, p.Masked(), ad, p)
				}
			}
		}
		return userErrorf(err, "wintun %s: a route to %v exists already (`ip route show %v` shows it): delete it first, or leave out --route %v",
			cmd, p.Masked(), p.Masked(), p)
	}
	if what == "address" && errors.Is(err, fs.ErrExist) {
		return userErrorf(err, "wintun %s: adapter %s has address %v already (given twice?)", cmd, name, p)
	}
	if errors.Is(err, os.ErrPermission) {
		return needRoot(cmd, fmt.Sprintf("adding %s %v to adapter %s", what, p, name),
			fmt.Sprintf("run as root, or give the %s when creating the adapter: `sudo wintun create %s --%s %v ...`", what, name, what, p), err)
	}
	return err
}

// needRoot says that what the command was doing needs CAP_NET_ADMIN, and todo how
// to get there.
func needRoot(cmd, doing, todo string, err error) error {
	if errors.Is(err, syscall.EACCES) {
		// Opening /dev/net/tun, whose mode lets only root open it on this system.
		return userErrorf(err, "wintun %s: %s: /dev/net/tun is not open to this user: run as root, "+
			"or have root run `chmod 0666 /dev/net/tun` (the mode most distributions ship)", cmd, doing)
	}
	return userErrorf(err, "wintun %s: %s needs root (CAP_NET_ADMIN): %s", cmd, doing, todo)
}

// missingAdapter says that adapter name does not exist, and how to find or make one.
func missingAdapter(cmd, name string, err error) error {
	return userErrorf(err, "wintun %s: no adapter %s in this network namespace: `wintun list` lists the adapters, "+
		"`sudo wintun create %s` creates it", cmd, name, name)
}

// requireCapNetAdmin fails early, before any system call, for commands that always
// need CAP_NET_ADMIN; doing says what needs it.
func requireCapNetAdmin(cmd, doing, todo string) error {
	if hasCapNetAdmin() {
		return nil
	}
	return needRoot(cmd, doing, todo, os.ErrPermission)
}

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
