// Command wireguard-wintun is a userspace WireGuard daemon, a drop-in for wireguard-go's
// own program: wg(8) configures it and wg-quick(8) starts it, while its packets move
// between the kernel and wireguard-go through this library's rings (package wgtun).
//
//	WG_QUICK_USERSPACE_IMPLEMENTATION=wireguard-wintun wg-quick up wg0
//
// wireguard-go's device, conn and ipc packages do the WireGuard protocol, the UDP and
// the configuration socket; this command only puts them on a wintun adapter.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
)

const (
	// envForeground is wireguard-go's: "1" keeps the process in the foreground, and
	// marks the daemon's own child.
	envForeground = "WG_PROCESS_FOREGROUND"
	// ifNameMax is the longest interface name Linux accepts (IFNAMSIZ less the NUL).
	ifNameMax = 15
)

const usage = `Usage: wireguard-wintun [-f|--foreground] INTERFACE-NAME
       wireguard-wintun --version | --help

A userspace WireGuard daemon on a wintun adapter, driven by wg(8) and wg-quick(8)
as wireguard-go is. It creates the interface INTERFACE-NAME and the configuration
socket /var/run/wireguard/INTERFACE-NAME.sock, and runs until the interface is
deleted (ip link del, as wg-quick down does) or it receives SIGTERM or SIGINT; it
then removes the interface and the socket.

  WG_QUICK_USERSPACE_IMPLEMENTATION=wireguard-wintun wg-quick up wg0

Options:
  -f, --foreground   stay in the foreground instead of running in the background
  -h, --help         print this help
      --version      print the versions of this program and of wireguard-go

Environment:
  WG_PROCESS_FOREGROUND=1         the same as --foreground
  LOG_LEVEL=verbose|error|silent  what to log (default: error); in the background
                                  the log goes to the starting terminal only when
                                  LOG_LEVEL is set and not silent
`

// errUsage marks a command line that is not understood; the usage is printed with it.
var errUsage = errors.New("usage")

// action is what the command line asks for.
type action int

const (
	actionRun action = iota
	actionHelp
	actionVersion
)

// parseArgs reads the command line (without the program name).
func parseArgs(args []string) (act action, name string, foreground bool, err error) {
	switch {
	case len(args) == 1 && (args[0] == "-h" || args[0] == "--help"):
		return actionHelp, "", false, nil
	case len(args) == 1 && args[0] == "--version":
		return actionVersion, "", false, nil
	case len(args) == 2 && (args[0] == "-f" || args[0] == "--foreground"):
		name, foreground = args[1], true
	case len(args) == 1:
		name = args[0]
	case len(args) == 0:
		return 0, "", false, fmt.Errorf("%w: the interface name is missing", errUsage)
	default:
		for _, a := range args {
			if isOption(a) && a != "-f" && a != "--foreground" {
				return 0, "", false, fmt.Errorf("%w: unknown option %q", errUsage, a)
			}
		}
		return 0, "", false, fmt.Errorf("%w: want one interface name, got %d arguments", errUsage, len(args))
	}
	if isOption(name) {
		return 0, "", false, fmt.Errorf("%w: unknown option %q", errUsage, name)
	}
	if err := checkName(name); err != nil {
		return 0, "", false, err
	}
	return actionRun, name, foreground, nil
}

func isOption(s string) bool { return len(s) > 1 && s[0] == '-' }

// checkName refuses what Linux refuses as an interface name (dev_valid_name), before
// the name is used in the socket's path.
func checkName(name string) error {
	switch {
	case name == "":
		return errors.New("invalid interface name: empty")
	case len(name) > ifNameMax:
		return fmt.Errorf("invalid interface name %q: longer than %d bytes", name, ifNameMax)
	case name == "." || name == "..":
		return fmt.Errorf("invalid interface name %q", name)
	case strings.ContainsAny(name, "/: \t\n\v\f\r"):
		return fmt.Errorf("invalid interface name %q: it may not contain '/', ':' or white space", name)
	}
	return nil
}

// versionText says which wireguard-go the program is built with, from the build's
// module information.
func versionText() string {
	self, wg := "(devel)", "(unknown)"
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" {
			self = bi.Main.Version
		}
		for _, d := range bi.Deps {
			if d.Path == "golang.zx2c4.com/wireguard" {
				wg = d.Version
				if d.Replace != nil {
					wg += " => " + d.Replace.Path + " " + d.Replace.Version
				}
			}
		}
	}
	return fmt.Sprintf("wireguard-wintun %s\n\nUserspace WireGuard daemon for %s-%s on wintun adapters,\n"+
		"using wireguard-go %s (golang.zx2c4.com/wireguard).\n", self, runtime.GOOS, runtime.GOARCH, wg)
}

// run is the command; it returns the process's exit code.
func run(args []string, stdout, stderr io.Writer) int {
	act, name, foreground, err := parseArgs(args)
	switch {
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "wireguard-wintun: %v\n%s(--help says more)\n", err, usage[:strings.Index(usage, "\n\n")+1])
		return 2
	case err != nil:
		fmt.Fprintf(stderr, "wireguard-wintun: %v\n", err)
		return 2
	case act == actionHelp:
		fmt.Fprint(stdout, usage)
		return 0
	case act == actionVersion:
		fmt.Fprint(stdout, versionText())
		return 0
	}
	if os.Getenv(envForeground) == "1" {
		foreground = true
	}
	if err := daemon(name, foreground, stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "wireguard-wintun: %s: %v\n", name, err)
		return 1
	}
	return 0
}

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }
