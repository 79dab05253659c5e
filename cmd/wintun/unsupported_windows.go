package main

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// The management commands read the kernel's view of tun devices through netlink; on
// Windows they are not written yet.

func unsupported(cmd string) error {
	return fmt.Errorf("wintun %s: not available on Windows yet: %w", cmd, errors.ErrUnsupported)
}

func cmdCreate(out io.Writer, args []string) error                       { return unsupported("create") }
func cmdDelete(out io.Writer, args []string) error                       { return unsupported("delete") }
func cmdList(out io.Writer, args []string) error                         { return unsupported("list") }
func cmdStats(out io.Writer, args []string, stop <-chan os.Signal) error { return unsupported("stats") }
