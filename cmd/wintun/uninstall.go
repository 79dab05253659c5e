package main

import (
	"fmt"
	"io"
	"strings"

	"go.wintun.dev/wintun"
)

const uninstallUsage = `usage: wintun uninstall [--json]

Removes every adapter of this library in this network namespace that nothing uses any
more (persistent, no session attached), and names those left in place because a process
still uses them. Other programs' interfaces are never touched. Needs CAP_NET_ADMIN.

`

func cmdUninstall(out io.Writer, args []string) error {
	fs := newFlagSet("uninstall", uninstallUsage, out)
	asJSON := fs.Bool("json", false, "print JSON")
	if _, err := parseArgs(fs, args, 0); err != nil {
		return err
	}
	if err := requireCapNetAdmin("uninstall", ""); err != nil {
		return err
	}
	removed, inUse, err := wintun.UninstallReport()
	if err != nil && removed == nil && inUse == nil {
		return privilegeHint("uninstall", "", err)
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
	return privilegeHint("uninstall", "", err)
}
