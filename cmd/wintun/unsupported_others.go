//go:build !linux && !windows

package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
)

// The library has adapters on Linux and Windows only. Elsewhere the command builds, so
// that the module builds as a whole, and every command that needs an adapter says the
// platform is unsupported and exits with status 1.

func unsupported(cmd string) error {
	return fmt.Errorf("wintun %s: %w on %s: wintun runs on Linux and Windows", cmd, errors.ErrUnsupported, runtime.GOOS)
}

func cmdCreate(out io.Writer, args []string) error                       { return unsupported("create") }
func cmdDelete(out io.Writer, args []string) error                       { return unsupported("delete") }
func cmdList(out io.Writer, args []string) error                         { return unsupported("list") }
func cmdStats(out io.Writer, args []string, stop <-chan os.Signal) error { return unsupported("stats") }

// hasCapNetAdmin reports whether the process may create adapters: nobody may where
// there are none.
func hasCapNetAdmin() bool { return false }

// reexecInNamespace is where the Linux demo moves to a private network namespace; here
// it is where the demo stops.
func reexecInNamespace(bool) error { return unsupported("demo") }
