// Command wintun runs the Wintun example and manages this library's adapters.
//
//	wintun demo [--count N] [--timeout D] [--netns] [--pcap FILE]
//	wintun create NAME [--type T] [--guid G] [--address PREFIX]... [--route PREFIX]... [--mtu N] [--owner USER] [--group GROUP]
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
	"os"
	"os/signal"
	"strings"
	"syscall"
)

const usage = `usage: wintun <command> [arguments]

commands:
  demo      create adapter "demo", play the host 10.6.7.8 / fd00:6:7::8 behind it
  create    create a persistent adapter, optionally usable by a user without root
  delete    delete one of this library's adapters
  uninstall delete all of this library's adapters that nothing uses
  list      list this library's adapters with their state and counters
  stats     show an adapter's counters by direction and cause, once or every second
  pipe      UNENCRYPTED layer 3 pipe: an adapter's packets over UDP to a peer
  version   print this program's and the kernel tun driver's versions

Run "wintun <command> --help" for a command's options.
`

// version is this program's version; releases set it with -ldflags "-X main.version=...".
var version = "devel"

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	// The long-running commands stop on Ctrl+C or SIGTERM and clean up.
	stop := func() <-chan os.Signal {
		c := make(chan os.Signal, 1)
		signal.Notify(c, syscall.SIGINT, syscall.SIGTERM)
		return c
	}
	out := os.Stdout
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "demo":
		err = demo(args)
	case "create":
		err = cmdCreate(out, args)
	case "delete":
		err = cmdDelete(out, args)
	case "uninstall":
		err = cmdUninstall(out, args)
	case "list":
		err = cmdList(out, args)
	case "stats":
		err = cmdStats(out, args, stop())
	case "pipe":
		err = cmdPipe(out, args, stop())
	case "version":
		err = cmdVersion(out, args)
	case "help", "-h", "--help":
		fmt.Print(usage)
		return
	default:
		fmt.Fprintf(os.Stderr, "wintun: unknown command %q\n\n%s", cmd, usage)
		os.Exit(2)
	}
	if err != nil && !errors.Is(err, errHelp) {
		if e, ok := err.(exitError); ok {
			os.Exit(int(e))
		}
		msg := err.Error()
		if !strings.HasPrefix(msg, "wintun") {
			msg = "wintun: " + msg
		}
		fmt.Fprintln(os.Stderr, msg)
		var ue usageError
		if errors.As(err, &ue) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// exitError makes main exit with that status without printing anything more.
type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", int(e)) }
