// Command wintun runs the Wintun example and manages the adapters it creates.
//
//	wintun demo [--count N] [--timeout D] [--netns] [--pcap FILE]
//	wintun create NAME [--type T] [--guid GUID] [--address PREFIX]... [--route PREFIX]... [--mtu N] [--owner USER] [--group GROUP]
//	wintun delete NAME [--force]
//	wintun uninstall [--json]
//	wintun list [--json]
//	wintun stats NAME [--watch] [--json]
//	wintun pipe NAME (--listen ADDR [--peer ADDR] | --connect ADDR) [--address PREFIX]... [--mtu N] [--pcap FILE]
//	wintun version [--json]
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

const usage = `usage: wintun <command> [arguments]

commands:
  demo      create adapter "demo", play the host 10.6.7.8 / fd00:6:7::8 behind it
  create    create a persistent adapter, optionally usable by a user without root
  delete    delete one of the adapters wintun created
  uninstall delete all the adapters wintun created that nothing uses
  list      list the adapters wintun created, with their state and counters
  stats     show an adapter's counters by direction and cause, once or every second
  pipe      UNENCRYPTED layer 3 pipe: an adapter's packets over UDP to a peer
  version   print this program's and the kernel tun driver's versions

Run "wintun <command> --help" (or "wintun help <command>") for a command's options.
`

// version is this program's version; releases set it with -ldflags "-X main.version=...".
var version = "devel"

func main() {
	// The long-running commands stop on Ctrl+C or SIGTERM and clean up.
	stop := func() <-chan os.Signal {
		c := make(chan os.Signal, 1)
		signal.Notify(c, syscall.SIGINT, syscall.SIGTERM)
		return c
	}
	os.Exit(runCommand(os.Args[1:], os.Stdout, os.Stderr, stop))
}

// runCommand runs the command line args (without the program name) and returns the exit
// status: 0 on success and after help, 2 for a mistake in the command line, 1 for
// any other failure. Help and results go to stdout, errors to stderr. stop gives the
// long-running commands the channel that stops them.
func runCommand(args []string, stdout, stderr io.Writer, stop func() <-chan os.Signal) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch cmd, args := args[0], args[1:]; cmd {
	case "demo":
		err = demo(stdout, args)
	case "create":
		err = cmdCreate(stdout, args)
	case "delete":
		err = cmdDelete(stdout, args)
	case "uninstall":
		err = cmdUninstall(stdout, args)
	case "list":
		err = cmdList(stdout, args)
	case "stats":
		err = cmdStats(stdout, args, stop())
	case "pipe":
		err = cmdPipe(stdout, args, stop())
	case "version":
		err = cmdVersion(stdout, args)
	case "help", "-h", "-help", "--help":
		if len(args) == 1 && args[0] != "help" && commands[args[0]] {
			// `wintun help CMD` is `wintun CMD --help`.
			return runCommand([]string{args[0], "--help"}, stdout, stderr, stop)
		}
		if len(args) > 1 && commands[args[0]] {
			fmt.Fprintf(stderr, "wintun: help takes one command, not %q (see `wintun --help`)\n", strings.Join(args, " "))
			return 2
		}
		if len(args) > 0 {
			fmt.Fprintf(stderr, "wintun: no command %q (see `wintun --help`)\n", args[0])
			return 2
		}
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "wintun: unknown command %q (see `wintun --help`)\n", cmd)
		return 2
	}
	if err == nil || errors.Is(err, errHelp) {
		return 0
	}
	if e, ok := err.(exitError); ok {
		return int(e)
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "wintun") {
		msg = "wintun: " + msg
	}
	fmt.Fprintln(stderr, msg)
	if errors.As(err, new(usageError)) {
		return 2
	}
	return 1
}

// commands are the subcommands that `wintun help CMD` knows.
var commands = map[string]bool{"demo": true, "create": true, "delete": true, "uninstall": true, "list": true,
	"stats": true, "pipe": true, "version": true}

// exitError makes main exit with that status without printing anything more.
type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", int(e)) }
