package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"go.wintun.dev/wintun"
)

const uninstallUsage = `usage: wintun uninstall [--json]

Removes every adapter wintun created in this network namespace that nothing uses any
more (persistent, no session attached), and names those left in place because a process
still uses them. Other programs' interfaces are never touched. Needs CAP_NET_ADMIN.

`

func cmdUninstall(out io.Writer, args []string) error {
	c := newCommand("uninstall", uninstallUsage, out)
	asJSON := c.Bool("json", false, "print JSON")
	if _, err := c.parseArgs(args, 0); err != nil {
		return err
	}
	const rootTodo = "run `sudo wintun uninstall`"
	if err := requireCapNetAdmin("uninstall", "deleting adapters", rootTodo); err != nil {
		return err
	}
	removed, inUse, err := wintun.UninstallReport()
	if errors.Is(err, os.ErrPermission) {
		err = needRoot("uninstall", "deleting adapters", rootTodo, err)
	}
	if err != nil && removed == nil && inUse == nil {
		return err
	}
	if *asJSON {
		if removed == nil {
			removed = []string{}
		}
		if inUse == nil {
			inUse = []string{}
		}
		if jerr := writeJSON(out, struct {
			Removed []string `json:"removed"`
			InUse   []string `json:"in_use"`
		}{removed, inUse}); jerr != nil {
			return jerr
		}
	} else {
		if len(removed) == 0 && len(inUse) == 0 {
			fmt.Fprintln(out, "no wintun adapters in this network namespace")
		}
		if len(removed) > 0 {
			fmt.Fprintf(out, "removed: %s\n", strings.Join(removed, ", "))
		}
		if len(inUse) > 0 {
			fmt.Fprintf(out, "left in place, in use by a running process: %s\n", strings.Join(inUse, ", "))
		}
	}
	return err
}
