// Command wintun runs the Wintun example and manages this library's adapters.
//
//	wintun demo [--count N] [--timeout D] [--netns]
//	wintun version
package main

import (
	"fmt"
	"os"
	"strings"
)

const usage = `usage: wintun <command> [arguments]

commands:
  demo      create adapter "demo", play the host 10.6.7.8 / fd00:6:7::8 behind it
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
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "demo":
		err = demo(args)
	case "version":
		err = printVersion()
	case "help", "-h", "--help":
		fmt.Print(usage)
		return
	default:
		fmt.Fprintf(os.Stderr, "wintun: unknown command %q\n\n%s", cmd, usage)
		os.Exit(2)
	}
	if err != nil {
		if e, ok := err.(exitError); ok {
			os.Exit(int(e))
		}
		msg := err.Error()
		if !strings.HasPrefix(msg, "wintun") {
			msg = "wintun: " + msg
		}
		fmt.Fprintln(os.Stderr, msg)
		os.Exit(1)
	}
}

// exitError makes main exit with that status without printing anything more.
type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", int(e)) }
